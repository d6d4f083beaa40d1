"""Merge reliability-benchmark rows of separate runs (one ``ablate.py --corruption_bench`` per
seed, or per variant) into one table: ``runs.csv``, ``summary.csv`` (mean and sample std over
seeds), ``goals.md`` and the plots, as one benchmark over all of them would write.

    python bench/merge_reliability.py OUT_DIR RUN_DIR... --label 'LONG_VARIANT=short' ...
        [--baseline short] [--keep short ...]

Each RUN_DIR holds ``corruption/runs.csv`` (or is such a file). ``--label`` renames a variant
string (the ablation's full ``fusion:key=value`` text) to a short name. Used for the tables of
docs/fusion.md, rounds 3 and 4.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from iefvad.studies.reliability_bench import (  # noqa: E402
    BENCH_COLUMNS,
    _write_csv,
    goal_table,
    plot_bench,
    summarise_bench,
)

NUMERIC = {"seed", "level", "fraction", "auc", "ap", "auc_clean", "auc_lost", "w_deg_affected"}
NUMERIC |= {"w_deg_clean", "detect_auroc"}


def read_rows(path: Path) -> list[dict]:
    """The rows of one ``runs.csv``, numbers as numbers (empty cells: None)."""
    f = path / "corruption" / "runs.csv" if path.is_dir() else path
    if not f.is_file():
        raise SystemExit(f"{path}: no corruption/runs.csv (run ablate.py --corruption_bench)")
    with open(f, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in NUMERIC & set(r):
            r[k] = None if r[k] in ("", "None", "nan") else float(r[k])
        r["seed"] = int(r["seed"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--label", action="append", default=[], help="LONG=short (repeatable)")
    p.add_argument("--baseline", help="short name of the baseline variant")
    p.add_argument(
        "--keep", nargs="+", help="only these variants (names after --label; default all)"
    )
    args = p.parse_args()
    names = dict(x.rsplit("=", 1) for x in args.label)  # the short name has no "="
    rows = []
    for r in (row for path in args.runs for row in read_rows(path)):
        r["variant"] = names.get(r["variant"], r["variant"])
        if args.keep is None or r["variant"] in args.keep:
            rows.append(r)
    if not rows:
        raise SystemExit(f"no rows left (--keep {args.keep})")
    seen = {(r["variant"], r["seed"], r["condition"]) for r in rows}
    if len(seen) != len(rows):
        raise SystemExit("the same variant, seed and condition appear twice")
    summary = summarise_bench(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(args.out / "runs.csv", rows, BENCH_COLUMNS)
    _write_csv(args.out / "summary.csv", summary, list(summary[0]))
    table = goal_table(summary, args.baseline)
    (args.out / "goals.md").write_text(
        "# Reliability benchmark: goal conditions (merged runs)\n\n"
        f"Baseline: `{args.baseline}`. Mean ± sample std over seeds; AUC in percent.\n\n"
        + table
        + "\n"
    )
    plot_bench(summary, args.out)
    print(table)


if __name__ == "__main__":
    main()
