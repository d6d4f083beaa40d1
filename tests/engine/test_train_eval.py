"""main.py -> test.py on a generated feature set with a planted anomaly signal."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from iefvad.cli.options import resolve_train, train_parser
from iefvad.engine.train import train
from iefvad.models.checkpoint import read_checkpoint

from conftest import ROOT, TINY_MODEL, synth_train_cfg


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def test_training_learns_the_planted_signal(trained):
    ckpt, result = trained
    assert result.test_metrics["auc"] >= 0.95
    assert result.history[-1]["cls"] < result.history[0]["cls"]
    c = read_checkpoint(ckpt)
    assert c.meta["selection"]["mode"] == "last"
    assert c.meta["dataset"] == "ucfcrime"
    assert c.config.heads == 2 and c.config.refine_steps == 2 and c.config.dim == 32
    log = (result.log_dir / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,lr,loss,cls,align,kl")
    assert len(log) - 1 == 16 * 8  # 16 epochs x (16 videos x 2 crops / batch 4) steps


@pytest.mark.slow
def test_test_py_metrics_json_agrees_with_sklearn(trained, synth_set, tmp_path):
    ckpt, result = trained
    out = tmp_path / "res"
    p = run(
        "test.py",
        "--ckpt_path",
        str(ckpt),
        "--test_list",
        str(synth_set.test_csv),
        "--gt_path",
        str(synth_set.gt_path),
        "--out_dir",
        str(out),
        "--metrics_json",
        str(tmp_path / "m.json"),
        "--no_progress",
    )
    assert p.returncode == 0, p.stderr
    assert "ucfcrime: AUC" in p.stdout  # the headline metric comes first
    m = json.loads((tmp_path / "m.json").read_text())
    scores = np.load(out / "frame_scores.npy")
    gt = np.load(synth_set.gt_path)
    assert scores.shape == gt.shape
    assert m["auc"] == pytest.approx(roc_auc_score(gt, scores), abs=1e-9)
    assert m["ap"] == pytest.approx(average_precision_score(gt, scores), abs=1e-9)
    assert 0.95 <= m["auc"] <= 1.0 and 0.0 <= m["ap"] <= 1.0
    # test.py reproduces the evaluation made at the end of training
    assert m["auc"] == pytest.approx(result.test_metrics["auc"], abs=1e-6)
    assert set(m["per_class"]) == {"abuse", "fighting", "normal"}
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["abuse.png", "fighting.png", "normal.png"]
    assert (out / "plots" / "abuse.png").stat().st_size > 10_000


def short_cfg(synth_set, tmp_path, *extra: str):
    return synth_train_cfg(
        synth_set, tmp_path, "x", "--max_epoch", "2", "--batch_size", "4", *TINY_MODEL, *extra
    )


def test_seeded_cpu_runs_repeat(synth_set, tmp_path):
    a = train(short_cfg(synth_set, tmp_path / "a", "--no_test"))
    b = train(short_cfg(synth_set, tmp_path / "b", "--no_test"))
    assert a.history == b.history
    sa, sb = (
        torch.load(a.checkpoint)["model_state_dict"],
        torch.load(b.checkpoint)["model_state_dict"],
    )
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train(short_cfg(synth_set, tmp_path / "c", "--no_test", "--seed", "7"))
    assert c.history != a.history


def test_select_val_holds_out_training_videos(synth_set, tmp_path):
    r = train(short_cfg(synth_set, tmp_path, "--select", "val", "--val_fraction", "0.25"))
    sel = read_checkpoint(r.checkpoint).meta["selection"]
    assert sel["mode"] == "val" and sel["val_videos"] == 8  # 25% of 16 normal + 16 abnormal
    assert "warning" not in sel
    evals = (tmp_path / "eval_log.csv").read_text().splitlines()
    assert evals[0].startswith("epoch,step,val_auc") and len(evals) == 3  # once per epoch


def test_select_test_is_the_reference_protocol_and_says_so(synth_set, tmp_path):
    r = train(short_cfg(synth_set, tmp_path, "--select", "test", "--eval_every", "3"))
    meta = read_checkpoint(r.checkpoint).meta
    assert meta["selection"]["mode"] == "test"
    assert "optimistic" in meta["selection"]["warning"]
    assert (tmp_path / "x_best.pth").is_file()
    evals = (tmp_path / "eval_log.csv").read_text().splitlines()
    assert evals[0].startswith("epoch,step,auc,ap") and len(evals) == 1 + 16 // 3


def test_cli_values_win_over_the_preset():
    args = train_parser().parse_args(["--dataset", "shang", "--lr", "0.5", "--milestones", "3"])
    cfg, source = resolve_train(args)
    assert cfg.lr == 0.5 and cfg.milestones == (3,) and source["lr"] == "command line"
    assert cfg.batch_size == 8 and cfg.max_epoch == 20 and cfg.gamma == 0.5
    assert source["batch_size"] == "preset shang"
    assert cfg.train_list.as_posix().endswith("list/shang/train.csv")
    xd, _ = resolve_train(train_parser().parse_args(["--dataset", "xd"]))
    assert (xd.batch_size, xd.lam, xd.milestones, xd.spec.paired) == (2, 0.01, (2, 6, 10), False)
