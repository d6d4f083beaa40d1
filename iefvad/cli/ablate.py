"""``ablate.py``: the command line of the fusion ablation (:mod:`iefvad.studies.ablate`);
``main.py``'s training flags plus the ablation's own."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from iefvad.cli.aliases import HelpFormatter
from iefvad.cli.entry import exit_on_failure
from iefvad.cli.options import preset_choice, resolve_train
from iefvad.errors import UserInputError
from iefvad.studies.ablate import DEFAULT_VARIANTS, AblationConfig, parse_synth


def ablation_parser() -> argparse.ArgumentParser:
    """``main.py``'s options (data, optimisation, model) plus the ablation's own."""
    from iefvad.cli.options import train_parser

    p = train_parser()
    p.formatter_class = HelpFormatter
    p.description = (
        "Train every fusion variant with the same data, optimiser and seeds; write a table "
        "(markdown + CSV) and a bar plot. Every main.py option applies to all runs."
    )
    g = p.add_argument_group("ablation")
    g.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="FUSION[:FIELD=VALUE]",
        help="fusion variants to compare, e.g. reference student_t:nu=2 kalman concat",
    )
    g.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="training seeds (default: --seed); several give mean and spread",
    )
    g.add_argument("--out_dir", type=Path, help="default results/ablation_<dataset>")
    g.add_argument(
        "--synth",
        nargs="*",
        metavar="KEY=VALUE",
        help="generate a feature set first (SynthSpec fields, e.g. signal_modality=image "
        "burst_modality=event) and run on it",
    )
    g.add_argument("--reuse", action="store_true", help="keep runs that already finished")
    g.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's choice; 1 is fastest on a small "
        "machine shared with other jobs)",
    )
    g.add_argument("--no_plots", "--no_plot", action="store_true", help="skip ablation.png")
    g.add_argument(
        "--corruption_bench",
        action="store_true",
        help="then run the reliability benchmark (iefvad.studies.reliability_bench) on every run: "
        "<out_dir>/corruption/",
    )
    return p


def reject_conflicts(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Flags of main.py that the ablation sets per run: refuse them rather than ignore."""
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    per_run = {
        "--fusion": "list fusions with --variants",
        "--ckpt_dir": "runs go to --out_dir/runs/<variant>/seed<k>",
        "--no_test": "the ablation needs the test list",
    }
    for flag, why in per_run.items():
        if flag in given:
            raise UserInputError(f"ablate.py sets {flag} per run: {why}")
    if args.synth is not None:
        for flag in ("--train_list", "--test_list", "--gt_path", "--data_root"):
            if flag in given:
                raise UserInputError(
                    f"--synth generates its own lists: drop {flag}, or drop --synth to use "
                    "your feature set"
                )


def ablation_config(args: argparse.Namespace, argv: Sequence[str]) -> AblationConfig:
    """The :class:`~iefvad.studies.ablate.AblationConfig` of parsed ``ablate.py`` flags
    (``argv``: the command line, to record)."""
    if args.resume is not None:
        raise UserInputError(
            "--resume does not apply to ablate.py: it runs many trainings; a rerun with the "
            "same --out_dir already reuses every finished run"
        )
    bad = [s for s in args.seeds or [] if not 0 <= s < 2**32]
    if bad:
        raise UserInputError(
            f"--seeds {' '.join(map(str, args.seeds))}: seeds are integers in 0..4294967295, "
            f"got {bad[0]}"
        )
    synth = parse_synth(args.synth) if args.synth is not None else None
    dataset = args.dataset or "ucfcrime"
    base, _ = resolve_train(args)
    base = replace(base, progress=not args.no_progress and base.progress)
    return AblationConfig(
        base=base,
        variants=tuple(args.variants),
        seeds=tuple(args.seeds if args.seeds else [args.seed]),
        out_dir=args.out_dir or Path("results") / f"ablation_{dataset}",
        synth=synth,
        reuse=args.reuse,
        threads=args.threads,
        plot=not args.no_plots,
        dataset=dataset,
        title=f"{dataset} ({Path(args.train_list).parent.name if args.train_list else 'lists'})",
        command="python ablate.py " + " ".join(shlex.quote(a) for a in argv),
        corruption_bench=args.corruption_bench,
        preset="{} ({})".format(*preset_choice(args)),
    )


def run(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``ablate.py``'s flags and run the ablation; return its summary."""
    from iefvad.studies import ablate

    argv = list(sys.argv[1:] if argv is None else argv)
    args = ablation_parser().parse_args(argv)
    reject_conflicts(args, argv)
    return ablate.run_ablation(ablation_config(args, argv))


def main(argv: Sequence[str] | None = None) -> None:
    """``ablate.py``: train every fusion variant with the same seeds; table and plot."""
    exit_on_failure(lambda: run(argv))
