"""Shared fixtures: a generated feature set and a checkpoint trained on it (built once)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# An empty hub cache of the suite's own: weights a developer has cached must never be found by
# a test that expects none (tests that need a cache write one and point HF_HUB_CACHE at it).
_HUB = tempfile.mkdtemp(prefix="iefvad-test-hub-")
os.environ["HF_HOME"] = _HUB
os.environ["HF_HUB_CACHE"] = os.path.join(_HUB, "hub")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]

# Small and fast on 2 CPU cores, strong enough planted signal to be learnt in seconds.
# lam 0.1: with padding masked (new models) the alignment/KL means run over valid snippets
# only, which weighs them more on the short generated videos; at UCF's lam = 1 the frame AUC
# of this run depends on the seed (0.85-0.997 over seeds 1, 2, 42), at 0.1 it is 0.97-0.998.
TINY_MODEL = ["--heads", "2", "--refine_steps", "2"]
TINY_OPT = [
    "--batch_size", "4", "--lr", "1e-3", "--max_epoch", "16", "--milestones", "--lam", "0.1",
]  # fmt: skip


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory: pytest.TempPathFactory):
    from iefvad.synthetic.features import SynthSpec, make_feature_set

    root = tmp_path_factory.mktemp("synth")
    return make_feature_set(root / "features", SynthSpec(seed=3))


def synth_train_cfg(synth_set, ckpt_dir, exp_name: str, *extra: str):
    """The TrainConfig ``main.py`` makes for a run on ``synth_set`` (its train, test and
    ground-truth files, the UCF-Crime preset, no progress bars) plus ``extra`` flags."""
    from iefvad.cli.options import resolve_train, train_parser

    args = train_parser().parse_args(
        [
            "--dataset", "ucfcrime", "--train_list", str(synth_set.train_csv),
            "--test_list", str(synth_set.test_csv), "--gt_path", str(synth_set.gt_path),
            "--exp_name", exp_name, "--ckpt_dir", str(ckpt_dir), "--no_progress", *extra,
        ]
    )  # fmt: skip
    return resolve_train(args)[0]


@pytest.fixture(scope="session")
def trained(synth_set, tmp_path_factory: pytest.TempPathFactory):
    """(checkpoint path, TrainResult) of a short run on ``synth_set``."""
    from iefvad.engine.train import train

    out = tmp_path_factory.mktemp("run")
    result = train(synth_train_cfg(synth_set, out / "ckpt", "synth", *TINY_MODEL, *TINY_OPT))
    return result.checkpoint, result
