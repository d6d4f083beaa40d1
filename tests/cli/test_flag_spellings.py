"""Canonical flag names (iefvad.cli.aliases): each old spelling still parses to the same
destination as the canonical flag, and --help shows only the canonical one."""

from __future__ import annotations

import pytest

from iefvad.cli.ablate import ablation_parser
from iefvad.cli.aliases import OLD_SPELLINGS, spelled
from iefvad.cli.demo import parser as demo_parser
from iefvad.cli.extract import build_parser as extract_parser
from iefvad.cli.infer import parser as infer_parser

INFER = ["v.mp4", "--ckpt_path", "c.pth"]
EXTRACT = ["--video_dir", "v", "--out_root", "o"]

# (parser, required flags, canonical, old spelling, value or None for a switch, destination)
CASES = [
    (infer_parser, INFER, "--no_plots", "--no_plot", None, "no_plots"),
    (infer_parser, INFER, "--out_dir", "--out", "scores", "out_dir"),
    (infer_parser, INFER, "--score_threshold", "--threshold", "0.25", "score_threshold"),
    (ablation_parser, [], "--no_plots", "--no_plot", None, "no_plots"),
    (demo_parser, [], "--out_dir", "--out", "d", "out_dir"),
    (demo_parser, [], "--max_epoch", "--epochs", "3", "max_epoch"),
    (extract_parser, EXTRACT, "--event_threshold", "--threshold", "40", "threshold"),
]


@pytest.mark.parametrize(("make", "base", "new", "old", "value", "dest"), CASES)
def test_old_spelling_parses_to_the_canonical_destination(make, base, new, old, value, dest):
    given = [] if value is None else [value]
    canonical = make().parse_args([*base, new, *given])
    legacy = make().parse_args([*base, old, *given])
    default = make().parse_args(base)
    assert getattr(legacy, dest) == getattr(canonical, dest) != getattr(default, dest)


@pytest.mark.parametrize(("make", "base", "new", "old", "value", "dest"), CASES)
def test_help_shows_only_the_canonical_spelling(make, base, new, old, value, dest):
    text = make().format_help()
    assert new in text
    assert old not in text.replace(new, "").replace("_" + old[2:], "")


def test_infer_checks_name_the_spelling_typed():
    typed = infer_parser().parse_args([*INFER, "--threshold", "0.3"])
    assert spelled(typed, "score_threshold", "--score_threshold") == "--threshold"
    default = infer_parser().parse_args(INFER)
    assert spelled(default, "score_threshold", "--score_threshold") == "--score_threshold"
    assert OLD_SPELLINGS == {"--no_plot", "--out", "--threshold", "--epochs"}
