"""bench/merge_reliability.py: per-seed corruption benchmarks merged into one table, variants
renamed by --label and chosen by --keep."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLS = ["variant", "seed", "fusion", "condition", "modality", "kind", "level", "fraction"]
COLS += ["auc", "ap", "auc_clean", "auc_lost", "w_deg_affected", "w_deg_clean", "detect_auroc"]


def _runs(path: Path, variant: str, seed: int, w: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        out = csv.DictWriter(fh, COLS)
        out.writeheader()
        out.writerow(
            dict(variant=variant, seed=seed, fusion="reference", condition="image:noise4@1",
                 modality="image", kind="noise", level=4, fraction=1, auc=0.9, ap=0.8,
                 auc_clean=0.95, auc_lost=0.05, w_deg_affected=w, w_deg_clean=0.5,
                 detect_auroc=0.99)
        )  # fmt: skip
    return path


def _merge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "bench" / "merge_reliability.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.slow
def test_merge_relabels_keeps_and_averages_over_seeds(tmp_path):
    a = _runs(tmp_path / "a" / "corruption" / "runs.csv", "reference:long=1", 0, 0.1)
    b = _runs(tmp_path / "b.csv", "reference:long=1", 1, 0.3)
    c = _runs(tmp_path / "c.csv", "other", 0, 0.5)
    res = _merge(
        tmp_path, "out", str(a.parents[1]), str(b), str(c),
        "--label", "reference:long=1=L", "--keep", "L",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [r["variant"] for r in rows] == ["L"]
    assert float(rows[0]["w_deg_affected_mean"]) == pytest.approx(0.2)
    assert rows[0]["seeds"] == "2"
    res = _merge(tmp_path, "out2", str(c), "--keep", "L")
    assert res.returncode != 0 and "no rows left" in res.stderr
    res = _merge(tmp_path, "out3", str(b), str(b))
    assert res.returncode != 0 and "twice" in res.stderr
