"""``test2.py``: the command line of the uncertainty explorer (:mod:`iefvad.studies.explore`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from iefvad.cli.aliases import HelpFormatter
from iefvad.cli.entry import exit_on_failure
from iefvad.cli.options import add_data_args, add_model_args, add_runtime_args, evaluation_config
from iefvad.studies.explore import (
    DEFAULT_LEVELS,
    MODALITIES,
    PERTURBATIONS,
    ExploreConfig,
)


def explore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Uncertainty explorer: degrade one modality at test time (attenuate, "
        "noise, drop) and measure AUC/AP, Brier score, KL(clean||noisy) and the fusion "
        "weights. Several checkpoints (fusion variants) can be compared.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--ckpt_path",
        type=Path,
        nargs="+",
        help="one or more checkpoints (ours or released); default "
        "checkpoints/<exp_name>/<exp_name>.pth",
    )
    p.add_argument("--labels", nargs="+", help="names of the checkpoints in plots and CSV")
    p.add_argument("--exp_name", help="names the output folder (default: first checkpoint stem)")
    add_data_args(p)
    g = p.add_argument_group("degradations")
    g.add_argument(
        "--modality",
        nargs="+",
        choices=MODALITIES,
        default=list(MODALITIES),
        help="modalities degraded, one at a time",
    )
    g.add_argument(
        "--perturbation",
        nargs="+",
        choices=PERTURBATIONS,
        default=list(PERTURBATIONS),
        help="degradations applied",
    )
    g.add_argument(
        "--attenuate_levels",
        type=float,
        nargs="+",
        default=list(DEFAULT_LEVELS["attenuate"]),
        help="fractions of snippets attenuated (0..1; the reference uses 0..0.5)",
    )
    g.add_argument("--attenuation", type=float, default=0.01, help="factor of attenuation")
    g.add_argument(
        "--noise_levels",
        type=float,
        nargs="+",
        default=list(DEFAULT_LEVELS["noise"]),
        help="noise std, in units of the modality's feature std (see --noise_absolute)",
    )
    g.add_argument("--noise_absolute", action="store_true", help="--noise_levels are absolute stds")
    g.add_argument(
        "--drop_levels",
        type=float,
        nargs="+",
        default=list(DEFAULT_LEVELS["drop"]),
        help="fraction of each video covered by the dropped span (0..1)",
    )
    g.add_argument("--seed", type=int, default=0, help="which snippets, span starts and noise")
    g = p.add_argument_group("outputs")
    g.add_argument("--out_dir", type=Path, help="default results/<exp_name>/uncertainty")
    g.add_argument("--no_plots", action="store_true")
    g.add_argument("--batch_size", type=int, default=64, help="chunks of 256 snippets per batch")
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    add_model_args(p, ("heads", "nu", "noise"), "released checkpoints (not recorded in the file)")
    add_runtime_args(p)
    return p


def explore_config(args: argparse.Namespace) -> ExploreConfig:
    """The :class:`~iefvad.studies.explore.ExploreConfig` of parsed ``test2.py`` flags."""
    return evaluation_config(args, ExploreConfig)


def main(argv: Sequence[str] | None = None) -> None:
    """``test2.py``: degrade one modality at test time and measure the effect."""
    from iefvad.studies import explore

    args = explore_parser().parse_args(argv)
    exit_on_failure(lambda: explore.run_explore(explore_config(args)))
