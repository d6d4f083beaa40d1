"""Flags of the reliability recipe (``main.py``, ``ablate.py``) and the command line of the
reliability benchmark (``python -m iefvad.cli.reliability``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from iefvad.cli.aliases import HelpFormatter
from iefvad.engine.corruption import CORRUPT_ROWS, KINDS, MODALITY_CHOICES
from iefvad.engine.reliability import (
    DEFAULT_RECIPE,
    DETECTOR_SOURCES,
    MIL_INPUTS,
    RECIPE_MODEL,
    RECIPES,
    RELIABILITY_LOSSES,
    RELIABILITY_TARGETS,
    TrainingRecipe,
)
from iefvad.errors import UserInputError
from iefvad.studies.reliability_bench import DEFAULT_NOISE, default_conditions, run_benchmark


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reliability recipe (docs/fusion.md, weights that follow reliability)")
    g.add_argument(
        "--recipe",
        choices=RECIPES,
        default=DEFAULT_RECIPE,
        help="released: the released objective; reliable: corruption + heteroscedastic NLL + "
        "weight_power 3; detector: noise / drop / freeze on normal videos, the weights "
        "trained as a detector of them, variance heads that read temporal stats "
        "(--variance_temporal --temporal_hidden 16 --stats_scale 3), docs/fusion.md round 4 "
        "(the flags below change single parts)",
    )
    g.add_argument(
        "--corrupt",
        nargs="*",
        choices=KINDS,
        default=None,
        metavar="KIND",
        help=f"corrupt one modality of some training rows on a span, kinds from {KINDS} "
        "(the flag alone: no corruption)",
    )
    g.add_argument("--corrupt_prob", type=float, help="fraction of rows corrupted (default 0.5)")
    g.add_argument(
        "--corrupt_whole", type=float, help="fraction of corrupted rows hit on the whole row"
    )
    g.add_argument(
        "--corrupt_modality", choices=MODALITY_CHOICES, help="stream to corrupt (default either)"
    )
    g.add_argument(
        "--corrupt_span",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="span fraction range (default 0.1 1)",
    )
    g.add_argument(
        "--corrupt_sigma",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="noise std range in feature std (default 0.5 4)",
    )
    g.add_argument(
        "--corrupt_rows",
        choices=CORRUPT_ROWS,
        help="rows that may be corrupted: all, or normal (videos labelled normal only: a "
        "corrupted abnormal video may have lost its only evidence) (default all)",
    )
    g.add_argument(
        "--reliability_loss",
        choices=RELIABILITY_LOSSES,
        help="heteroscedastic term: each modality's variance explains its error against a "
        "target (--reliability_target); detector: the weights' logits trained as a detector "
        "of the augmentation's corrupted snippets (BCE) (default none)",
    )
    g.add_argument("--reliability_weight", type=float, help="weight of that term (default 1)")
    g.add_argument(
        "--reliability_target",
        choices=RELIABILITY_TARGETS,
        help="other: error against the other stream (default); clean: corruption shift plus "
        "the clean gap, from an extra gradient-free pass; corruption: the corruption's shift "
        "alone plus a floor (the extra pass on the corrupted rows only)",
    )
    g.add_argument(
        "--reliability_floor",
        type=float,
        help="target corruption: the clean snippets' squared error, as a fraction of the "
        "latents' variance (default 0.1)",
    )
    g.add_argument(
        "--detector_band",
        type=float,
        help="detector loss: clean snippets' weights move freely within [B, 1-B] instead of "
        "being pulled to 0.5 (default 0: pulled)",
    )
    g.add_argument(
        "--detector_source",
        choices=DETECTOR_SOURCES,
        help="detector loss: train the fusion weights' logits (weights), or only the temporal "
        "stats head's part of them (stats, needs --variance_temporal) (default weights)",
    )
    g.add_argument(
        "--detach_stats",
        action="store_true",
        default=None,
        help="the temporal stats head learns from the detector only (with --detector_source "
        "stats), not from the anomaly loss (default off)",
    )
    g.add_argument(
        "--detach_corrupted",
        action="store_true",
        default=None,
        help="on the rows the augmentation corrupted, the anomaly loss does not reach the "
        "fusion weights (default off)",
    )
    g.add_argument(
        "--mil_input",
        choices=MIL_INPUTS,
        help="what the anomaly (MIL) loss scores: the corrupted batch (corrupted), the rows "
        "left clean only (clean_rows), or every row clean, the corrupted ones through a "
        "second pass on their clean inputs (clean) (default corrupted)",
    )
    g.add_argument(
        "--detach_weights",
        action="store_true",
        default=None,
        help="the fusion weights learn from the reliability term only, not from the anomaly "
        "loss (default off)",
    )


def recipe_model_fields(args: argparse.Namespace, model: dict[str, Any]) -> dict[str, Any]:
    """``model`` (ModelConfig fields from the flags) plus what the named recipe sets."""
    named = RECIPE_MODEL.get(getattr(args, "recipe", None) or DEFAULT_RECIPE, {})
    return {**named, **model}


def recipe_record(args: argparse.Namespace) -> dict[str, Any]:
    """``TrainConfig.uncertainty`` from the parsed flags ({} when none is given)."""
    base = RECIPES[getattr(args, "recipe", None) or DEFAULT_RECIPE].to_record()
    c: dict[str, Any] = {}
    if getattr(args, "corrupt", None) is not None:
        c["kinds"] = list(args.corrupt)
    for flag, key in (
        ("corrupt_prob", "prob"),
        ("corrupt_whole", "whole"),
        ("corrupt_modality", "modality"),
        ("corrupt_rows", "rows"),
        ("corrupt_span", "span"),
        ("corrupt_sigma", "sigma"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            c[key] = v
    r: dict[str, Any] = {}
    if getattr(args, "reliability_loss", None):
        r["loss"] = args.reliability_loss
    if getattr(args, "reliability_weight", None) is not None:
        r["weight"] = args.reliability_weight
    if getattr(args, "reliability_target", None):
        r["target"] = args.reliability_target
    if getattr(args, "reliability_floor", None) is not None:
        r["floor"] = args.reliability_floor
    if getattr(args, "detector_band", None) is not None:
        r["band"] = args.detector_band
    if getattr(args, "detector_source", None):
        r["source"] = args.detector_source
    if getattr(args, "detach_stats", None):
        r["detach_stats"] = True
    if getattr(args, "detach_corrupted", None):
        r["detach_corrupted"] = True
    if getattr(args, "mil_input", None):
        r["mil_input"] = args.mil_input
    if getattr(args, "detach_weights", None):
        r["detach_weights"] = True
    rec = TrainingRecipe.from_record(
        {"corrupt": {**base["corrupt"], **c}, "reliability": {**base["reliability"], **r}}
    )  # validates
    return rec.to_record() if rec.active else {}


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Reliability benchmark: corrupt one modality at test time; AUC, the "
        "degraded modality's weight and how well it detects the corruption.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--ckpt_path", type=Path, nargs="+", required=True)
    p.add_argument("--labels", nargs="+", help="variant label per checkpoint (default: stem)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seed per checkpoint (default 0)")
    p.add_argument("--test_list", type=Path, required=True)
    p.add_argument("--gt_path", type=Path, required=True)
    p.add_argument("--event_dir_name", default="event_thr_10", help="event feature tree")
    p.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[1.0],
        help="shares of the snippets corrupted",
    )
    p.add_argument(
        "--noise_levels",
        type=float,
        nargs="+",
        default=list(DEFAULT_NOISE),
        help="Gaussian noise levels, in feature stds",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    p.add_argument("--baseline", help="variant whose AUC loss the others are compared with")
    p.add_argument(
        "--out_dir", type=Path, default=Path("results/reliability"), help="output folder"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    import shlex
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = bench_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = args.labels or [p.stem for p in args.ckpt_path]
    seeds = args.seeds or [0] * len(args.ckpt_path)
    if len(labels) != len(args.ckpt_path) or len(seeds) != len(args.ckpt_path):
        raise UserInputError("--labels and --seeds need one value per --ckpt_path")
    conds = default_conditions(args.fractions, args.noise_levels)
    run_benchmark(
        list(zip(labels, seeds, args.ckpt_path)),
        args.test_list,
        args.gt_path,
        args.out_dir,
        conds,
        args.seed,
        args.baseline,
        meta={"command": "python -m iefvad.cli.reliability " + " ".join(map(shlex.quote, argv))},
        event_dir=args.event_dir_name,
    )


if __name__ == "__main__":
    from iefvad.cli.entry import exit_on_failure

    exit_on_failure(main)
