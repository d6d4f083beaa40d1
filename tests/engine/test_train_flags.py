"""Bad flags, output paths, checkpoints, ground truth and lists: each stops early with a message
naming the flag or file (or warns), never a traceback or a silently useless run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.options import evaluation_config, resolve_train, train_parser
from iefvad.cli.options import test_parser as eval_parser
from iefvad.data.csv_lists import read_list
from iefvad.data.groundtruth import GroundTruthError, load_gt
from iefvad.engine.outpaths import OutputPathError
from iefvad.engine.report import run_test
from iefvad.engine.train import (
    ConfigError,
    DeviceError,
    TrainingDiverged,
    train,
    warn_duplicates,
)
from iefvad.models.checkpoint import CheckpointError, load_model, save_checkpoint
from iefvad.models.model import IEFVAD, ModelConfig
from iefvad.synthetic.features import SynthSpec, make_feature_set

from conftest import ROOT

TINY = [
    "--heads",
    "2",
    "--refine_steps",
    "1",
    "--batch_size",
    "2",
    "--dropout",
    "0",
    "--milestones",
]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """4 + 4 training videos (one crop), 2 + 2 test videos, D = 8: 2 steps per epoch."""
    spec = SynthSpec(
        train_normal=4, train_abnormal=4, test_normal=2, test_abnormal=2, crops=1, dim=8, seed=5
    )
    return make_feature_set(tmp_path_factory.mktemp("tiny") / "f", spec)


def cfg_of(tiny, out: Path, *extra: str, gt: Path | None = None):
    args = train_parser().parse_args(
        [
            "--dataset", "ucfcrime",
            "--train_list", str(tiny.train_csv),
            "--test_list", str(tiny.test_csv),
            "--gt_path", str(gt or tiny.gt_path),
            "--ckpt_dir", str(out),
            "--exp_name", "x",
            "--no_progress",
            "--workers", "1",
            *TINY,
            *extra,
        ]
    )  # fmt: skip
    return resolve_train(args)[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch_size", "0"], r"--batch_size 0 is out of range: it must be an integer >= 1"),
        (["--batch_size", "-2"], r"--batch_size -2 .* >= 1"),
        (["--lr", "-1"], r"--lr -1\.0 .* a finite number > 0"),
        (["--lr", "nan"], r"--lr nan .* a finite number > 0"),
        (["--lr", "0"], r"--lr 0\.0 .* > 0 \(0 never changes the weights and would save an untr"),
        (["--dropout", "1.5"], r"--dropout 1\.5 .* in \[0, 1\)"),
        (["--max_epoch", "0"], r"--max_epoch 0 .* integer >= 1"),
        (["--gamma", "-1"], r"--gamma -1\.0 .* a finite number > 0"),
        (["--eval_every", "-5"], r"--eval_every -5 .* integer >= 0"),
        (["--val_fraction", "1.5"], r"--val_fraction 1\.5 .* between 0 and 1 \(exclusive\)"),
        (["--val_fraction", "0"], r"--val_fraction 0\.0 .* between 0 and 1"),
        (["--milestones", "0", "4"], r"--milestones \[0, 4\] .* epochs >= 1"),
        (["--heads", "0"], r"--heads 0 .* integer >= 1"),
        (["--weight_decay", "inf"], r"--weight_decay inf .* finite number >= 0"),
        (["--topk_div", "0"], r"--topk_div 0 .* integer >= 1"),
        (["--train_len", "0"], r"--train_len 0 .* integer >= 1"),
    ],
)
def test_out_of_range_flags_name_flag_value_and_range(flags, message):
    with pytest.raises(ConfigError, match=message):
        resolve_train(train_parser().parse_args(flags))


@NO_CUDA
def test_cuda_without_cuda_suggests_cpu(tiny, tmp_path):
    with pytest.raises(DeviceError, match=r"--device cuda: CUDA is not available.*--device cpu"):
        train(cfg_of(tiny, tmp_path, "--device", "cuda"))
    assert not (tmp_path / "train_log.csv").exists()
    args = eval_parser().parse_args(["--ckpt_path", str(tmp_path / "none.pth"), "--device", "cuda"])
    with pytest.raises(DeviceError, match=r"pass --device cpu"):
        run_test(evaluation_config(args))


def test_unknown_device_name(tiny, tmp_path):
    with pytest.raises(DeviceError, match=r"--device 'gpu' is not a device name.*auto, cpu"):
        train(cfg_of(tiny, tmp_path, "--device", "gpu"))


def test_output_paths_are_checked_before_training(tiny, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputPathError, match=rf"--ckpt_dir {afile} is a file, not a folder"):
        train(cfg_of(tiny, afile))
    with pytest.raises(OutputPathError, match=rf"--ckpt_dir: {afile} is a file, but"):
        train(cfg_of(tiny, afile / "sub"))
    (tmp_path / "run" / "x.pth").mkdir(parents=True)
    with pytest.raises(OutputPathError, match=r"x\.pth is a folder, but the run writes a file"):
        train(cfg_of(tiny, tmp_path / "run"))
    assert not (tmp_path / "run" / "train_log.csv").exists()  # stopped before the first epoch


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_ckpt_dir(tiny, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match=rf"--ckpt_dir: cannot write into {ro}"):
            train(cfg_of(tiny, ro))
    finally:
        ro.chmod(0o700)


def test_test_py_checks_outputs_before_reading_the_checkpoint(tmp_path):
    missing = str(tmp_path / "none.pth")  # never reached: the output checks come first
    (tmp_path / "mdir").mkdir()
    args = eval_parser().parse_args(
        ["--ckpt_path", missing, "--out_dir", str(tmp_path / "o"), "--metrics_json",
         str(tmp_path / "mdir"), "--device", "cpu"]
    )  # fmt: skip
    with pytest.raises(OutputPathError, match=r"--metrics_json .*mdir is a folder, not a file"):
        run_test(evaluation_config(args))
    (tmp_path / "ofile").write_text("")
    args = eval_parser().parse_args(
        ["--ckpt_path", missing, "--out_dir", str(tmp_path / "ofile"), "--device", "cpu"]
    )
    with pytest.raises(OutputPathError, match=r"--out_dir .*ofile is a file, not a folder"):
        run_test(evaluation_config(args))
    args = eval_parser().parse_args(["--ckpt_path", missing, "--batch_size", "0"])
    with pytest.raises(ValueError, match=r"--batch_size 0 is out of range"):
        run_test(evaluation_config(args))


def small_model() -> IEFVAD:
    torch.manual_seed(0)
    return IEFVAD(ModelConfig(dim=8, heads=2, refine_steps=1))


def test_broken_checkpoints_say_why(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth is an empty file \(0 bytes\)"):
        load_model(empty)
    good = tmp_path / "good.pth"
    save_checkpoint(good, small_model())
    data = good.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: it is truncated or not a torch"):
        load_model(cut)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all\n" * 10)
    with pytest.raises(CheckpointError, match=r"junk\.pth: it is truncated or not a torch"):
        load_model(junk)
    sd = small_model().state_dict()
    torch.save({"format": "iefvad-ckpt/1", "model_state_dict": sd}, tmp_path / "nocfg.pth")
    with pytest.raises(CheckpointError, match=r"nocfg\.pth says format .* lacks 'model_config'"):
        load_model(tmp_path / "nocfg.pth")

    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match=r"obj\.pth holds pickled Python code .*argparse"):
        load_model(tmp_path / "obj.pth")
    load_model(good)  # the intact file loads


def test_nan_weights_are_named_not_loaded(tmp_path):
    m = small_model()
    with torch.no_grad():
        m.temporal.classifier.weight[0, 3] = float("nan")
    save_checkpoint(tmp_path / "nan.pth", m)
    with pytest.raises(
        CheckpointError,
        match=r"nan\.pth has NaN/Inf weights in 1 tensor\(s\): "
        r"temporal\.classifier\.weight\. The training that wrote it diverged",
    ):
        load_model(tmp_path / "nan.pth")


def test_divergence_stops_naming_lr_and_writes_no_final_checkpoint(tiny, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"loss nan.*--lr 1e\+06 is most likely too high"):
        train(cfg_of(tiny, tmp_path, "--lr", "1e6", "--max_epoch", "3", "--no_test"))
    assert not (tmp_path / "x.pth").exists()
    for p in tmp_path.glob("*.pth"):  # whatever was kept is finite
        load_model(p)


def test_divergence_keeps_the_last_good_epoch(tiny, tmp_path, monkeypatch):
    import iefvad.engine.train as tr

    ref = train(cfg_of(tiny, tmp_path / "ref", "--max_epoch", "1", "--no_test"))
    real, calls = tr.ief_vad_loss, [0]

    def poisoned(*a, **k):
        parts = real(*a, **k)
        calls[0] += 1
        if calls[0] == 4:  # the last step of epoch 2: its loss and then its weights are NaN
            return parts._replace(total=parts.total * float("nan"))
        return parts

    monkeypatch.setattr(tr, "ief_vad_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, step 4.*weights after epoch 1") as e:
        train(cfg_of(tiny, tmp_path / "run", "--max_epoch", "3", "--no_test"))
    assert "no final checkpoint was written" in str(e.value)
    assert not (tmp_path / "run" / "x.pth").exists()
    good, ckpt = load_model(tmp_path / "run" / "x_last_good.pth")
    assert ckpt.meta["selection"]["mode"] == "last_good"
    want = torch.load(ref.checkpoint, weights_only=True)["model_state_dict"]
    assert all(torch.equal(v, want[k]) for k, v in good.state_dict().items())
    state = torch.load(tmp_path / "run" / "x.resume.pt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 2


def test_failed_final_evaluation_keeps_the_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    import iefvad.engine.train as tr

    def broken(*a, **k):
        raise ValueError("evaluation blew up")

    monkeypatch.setattr(tr, "compute_metrics", broken)
    with pytest.raises(ValueError, match="evaluation blew up"):
        train(cfg_of(tiny, tmp_path, "--max_epoch", "1"))
    model, ckpt = load_model(tmp_path / "x.pth")
    assert ckpt.meta["selection"]["mode"] == "last" and ckpt.meta["test_metrics"] is None
    assert "final evaluation failed; the trained model is saved in" in capsys.readouterr().err


def _gt_values_checked(path: Path) -> bool:
    try:
        load_gt(path)
    except GroundTruthError:
        return True
    return False


@pytest.mark.parametrize("bad", [0.4, 2.0, float("nan")])
def test_bad_ground_truth_values_stop_before_the_first_epoch(tiny, tmp_path, bad):
    gt = np.load(tiny.gt_path)
    gt[5] = bad
    path = tmp_path / "gt.npy"
    np.save(path, gt)
    if not _gt_values_checked(path):
        pytest.skip("iefvad.data.groundtruth.load_gt does not check values in this checkout")
    with pytest.raises(GroundTruthError):
        train(cfg_of(tiny, tmp_path / "run", "--max_epoch", "1", gt=path))
    assert not (tmp_path / "run" / "train_log.csv").exists()


def test_duplicate_training_rows_are_named_in_a_warning(tiny, tmp_path):
    lines = tiny.train_csv.read_text().splitlines()
    # relative paths resolve against the original list's folder
    dup = tiny.train_csv.with_name("train_dup.csv")
    dup.write_text("\n".join([*lines, lines[1], lines[3]]) + "\n")
    rows = read_list(dup, event_dir="event_thr_10")
    n = len(lines) - 1
    with pytest.warns(UserWarning, match=rf"2 row\(s\) repeat .*line {n + 2} repeats line 2 .*"
                      rf"line {n + 3} repeats line 4 .*weigh twice"):  # fmt: skip
        warn_duplicates(rows, dup)
    clean = read_list(tiny.train_csv, event_dir="event_thr_10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_duplicates(clean, tiny.train_csv)


@pytest.mark.slow
def test_main_py_rejects_bad_flags_without_traceback(tmp_path):
    p = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--lr", "0", "--no_progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: --lr 0.0 is out of range") and "Traceback" not in p.stderr
