"""A user's own folder, end to end: list/ scripts -> main.py -> test.py (all as subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from iefvad.synthetic.features import SynthSpec, make_feature_set

from conftest import ROOT, TINY_MODEL, TINY_OPT

pytestmark = pytest.mark.slow  # end to end: the whole pipeline in seconds to minutes

def run(cwd, script, *args):
    p = subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, f"{script} failed:\n{p.stdout}\n{p.stderr}"
    return p


def test_custom_folder_trains_and_evaluates(tmp_path):
    feats = tmp_path / "feats"
    synth = make_feature_set(feats, SynthSpec(layout="custom", seed=4))
    lists = tmp_path / "lists"
    run(
        tmp_path,
        "list/generate_file.py",
        "--dataset",
        "custom",
        "--base_path",
        feats / "rgb",
        "--test_list",
        feats / "test_list.txt",
        "--frame_lbl_txt",
        feats / "annotations.csv",
        "--test_crop",
        0,
        "--train_save_path",
        lists / "train.csv",
        "--test_save_path",
        lists / "test.csv",
    )
    run(
        tmp_path,
        "list/generate_gt.py",
        "--dataset",
        "custom",
        "--csv_path",
        lists / "test.csv",
        "--save_path",
        lists / "gt.npy",
        "--frame_lbl_txt",
        feats / "annotations.csv",
    )
    np.testing.assert_array_equal(np.load(lists / "gt.npy"), np.load(synth.gt_path))
    assert (lists / "train.csv").read_text().splitlines()[1].startswith("../feats/rgb/")

    run(
        tmp_path,
        "main.py",
        "--dataset",
        "custom",
        "--train_list",
        lists / "train.csv",
        "--test_list",
        lists / "test.csv",
        "--gt_path",
        lists / "gt.npy",
        "--exp_name",
        "mine",
        "--no_progress",
        *TINY_MODEL,
        *TINY_OPT,
    )
    ckpt = tmp_path / "checkpoints" / "mine" / "mine.pth"
    assert ckpt.is_file()
    # no --dataset: the checkpoint says it is custom data, labelled normal / class folders
    p = run(
        tmp_path,
        "test.py",
        "--ckpt_path",
        ckpt,
        "--test_list",
        lists / "test.csv",
        "--gt_path",
        lists / "gt.npy",
        "--metrics_json",
        tmp_path / "m.json",
        "--no_progress",
    )
    assert "custom: AUC" in p.stdout
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["dataset"] == "custom" and m["auc"] >= 0.9
    assert set(m["per_class"]) == {"normal", "abuse", "fighting"}
    assert (tmp_path / "results" / "mine" / "plots" / "abuse.png").is_file()
