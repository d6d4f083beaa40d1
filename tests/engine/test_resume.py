"""Resumable training: a stopped run continues to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import iefvad.engine.train as tr
from iefvad.cli.options import resolve_train, train_parser
from iefvad.engine.resume import ResumeError, strip_resume
from iefvad.engine.train import TrainingInterrupted, train
from iefvad.models.checkpoint import CheckpointError, load_model
from iefvad.synthetic.features import SynthSpec, make_feature_set

from conftest import ROOT

# 2 steps per epoch, a milestone (scheduler state), dropout on (torch RNG state)
TINY = ["--heads", "2", "--refine_steps", "1", "--batch_size", "2", "--milestones", "2"]
TINY += ["--gamma", "0.5", "--lr", "1e-3", "--max_epoch", "3", "--workers", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    spec = SynthSpec(
        train_normal=4, train_abnormal=4, test_normal=2, test_abnormal=2, crops=1, dim=8, seed=5
    )
    return make_feature_set(tmp_path_factory.mktemp("tiny") / "f", spec)


def args_of(tiny, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "ucfcrime",
        "--train_list", str(tiny.train_csv),
        "--test_list", str(tiny.test_csv),
        "--gt_path", str(tiny.gt_path),
        "--ckpt_dir", str(out),
        "--exp_name", "x",
        "--no_progress",
        *TINY,
        *extra,
    ]  # fmt: skip


def cfg_of(tiny, out: Path, *extra: str):
    return resolve_train(train_parser().parse_args(args_of(tiny, out, *extra)))[0]


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    """The reference runs, never stopped: ``{select: TrainResult}``."""
    out = tmp_path_factory.mktemp("ref")
    runs = {"last": train(cfg_of(tiny, out / "last"))}
    runs["test"] = train(cfg_of(tiny, out / "test", "--select", "test", "--eval_every", "1"))
    return runs


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"]


def assert_same_run(a, b) -> None:
    wa, wb = weights(a.checkpoint), weights(b.checkpoint)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history == b.history
    assert a.selection == b.selection
    for k in ("auc", "ap", "ano_auc"):
        assert a.test_metrics[k] == b.test_metrics[k]
    log_a = (a.log_dir / "train_log.csv").read_text().splitlines()
    log_b = (b.log_dir / "train_log.csv").read_text().splitlines()
    strip = [re.sub(r",[^,]*$", "", r) for r in log_a], [re.sub(r",[^,]*$", "", r) for r in log_b]
    assert strip[0] == strip[1]  # every step once, same losses (seconds differ)


def test_k_epochs_then_resume_equals_uninterrupted(tiny, tmp_path, uninterrupted):
    first = train(cfg_of(tiny, tmp_path, "--max_epoch", "1"))
    assert first.history == uninterrupted["last"].history[:1]
    state = tmp_path / "x.resume.pt"
    s = torch.load(state, weights_only=True)  # plain tensors and values only
    assert (s["epoch"], s["step_in_epoch"], s["global_step"]) == (1, 0, 2)
    assert {"optimizer_state_dict", "scheduler_state_dict", "rng", "sampler_rng"} <= set(s)
    resumed = train(cfg_of(tiny, tmp_path, "--resume"))  # default path: next to the .pth
    assert_same_run(resumed, uninterrupted["last"])


def _interrupt_at(monkeypatch, step: int, raw: bool = False) -> None:
    """Press Ctrl-C (SIGINT, or a bare KeyboardInterrupt) during training step ``step``."""
    real, calls = tr.ief_vad_loss, [0]

    def hooked(*a, **k):
        calls[0] += 1
        if calls[0] == step:
            if raw:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(tr, "ief_vad_loss", hooked)


@pytest.mark.parametrize("select", ["last", "test"])
def test_ctrl_c_mid_epoch_saves_state_and_resume_is_exact(
    tiny, tmp_path, uninterrupted, monkeypatch, capsys, select
):
    extra = ["--select", select] + (["--eval_every", "1"] if select == "test" else [])
    _interrupt_at(monkeypatch, 3)  # the first step of epoch 2
    with pytest.raises(SystemExit) as e:
        train(cfg_of(tiny, tmp_path, *extra))
    assert e.value.code == 130 and isinstance(e.value, TrainingInterrupted)
    err = capsys.readouterr().err
    assert f"Resume with:\n  {e.value.command}" in err
    assert e.value.command.endswith(f"--resume {tmp_path / 'x.resume.pt'}")
    s = torch.load(e.value.state, weights_only=True)
    assert (s["epoch"], s["step_in_epoch"], s["global_step"]) == (1, 1, 3)
    assert not (tmp_path / "x.pth").exists()
    monkeypatch.undo()
    resumed = train(cfg_of(tiny, tmp_path, *extra, "--resume", str(e.value.state)))
    assert_same_run(resumed, uninterrupted[select])


def test_second_ctrl_c_falls_back_to_the_last_epoch(tiny, tmp_path, uninterrupted, monkeypatch):
    _interrupt_at(monkeypatch, 4, raw=True)  # mid-step: that step cannot be saved
    with pytest.raises(TrainingInterrupted) as e:
        train(cfg_of(tiny, tmp_path))
    assert e.value.code == 130
    assert torch.load(e.value.state, weights_only=True)["global_step"] == 2  # after epoch 1
    monkeypatch.undo()
    assert_same_run(train(cfg_of(tiny, tmp_path, "--resume")), uninterrupted["last"])


def test_ctrl_c_before_any_epoch_says_nothing_to_resume(tiny, tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, 1, raw=True)
    with pytest.raises(TrainingInterrupted) as e:
        train(cfg_of(tiny, tmp_path))
    assert e.value.state is None and "nothing to resume" in capsys.readouterr().err


def test_resume_with_other_settings_names_the_flags(tiny, tmp_path):
    train(cfg_of(tiny, tmp_path, "--max_epoch", "1", "--no_test"))
    with pytest.raises(
        ResumeError,
        match=r"other settings \(--lr: state 0\.001, now 0\.002; --heads: state 2, now 4\)",
    ):
        train(cfg_of(tiny, tmp_path, "--resume", "--lr", "2e-3", "--heads", "4"))
    with pytest.raises(ResumeError, match=r"has trained 1 epochs already .* --max_epoch above 1"):
        train(cfg_of(tiny, tmp_path, "--resume", "--max_epoch", "1", "--no_test"))


def test_unusable_resume_files(tiny, tmp_path):
    with pytest.raises(ResumeError, match=r"--resume: .*nope\.pt does not exist"):
        train(cfg_of(tiny, tmp_path, "--resume", str(tmp_path / "nope.pt")))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ResumeError, match=r"empty\.pt is an empty file"):
        train(cfg_of(tiny, tmp_path, "--resume", str(tmp_path / "empty.pt")))
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ResumeError, match=r"junk\.pt is truncated or not a torch file"):
        train(cfg_of(tiny, tmp_path, "--resume", str(tmp_path / "junk.pt")))
    r = train(cfg_of(tiny, tmp_path / "run", "--max_epoch", "1", "--no_test"))
    with pytest.raises(ResumeError, match=r"x\.pth is not a training state"):
        train(cfg_of(tiny, tmp_path, "--resume", str(r.checkpoint)))
    with pytest.raises(CheckpointError, match=r"is a training resume state, not a checkpoint"):
        load_model(tmp_path / "run" / "x.resume.pt")


def test_resume_command_drops_an_earlier_resume_flag():
    argv = ["--lr", "1", "--resume", "--seed", "3", "--resume", "a.pt", "--resume=b.pt"]
    assert strip_resume(argv) == ["--lr", "1", "--seed", "3"]


@pytest.mark.slow
def test_main_py_ctrl_c_exits_130_and_its_command_resumes(tiny, tmp_path):
    argv = args_of(tiny, tmp_path, "--max_epoch", "10", "--no_test")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert p.stdout is not None
    for line in p.stdout:  # wait for the first epoch to finish
        if line.startswith("[train] epoch 1:"):
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    cmd = shlex.split(err.split("Resume with:\n")[1].strip().splitlines()[0])
    assert cmd[:2] == ["python", str(ROOT / "main.py")] and cmd[-2] == "--resume"
    q = subprocess.run(
        [sys.executable, *cmd[1:]], capture_output=True, text=True, cwd=ROOT, timeout=600,
        env=env,
    )  # fmt: skip
    assert q.returncode == 0, q.stderr
    assert "resuming from" in q.stdout
    steps = [r.split(",")[1] for r in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 21)]  # 10 epochs x 2 steps, each logged once
    load_model(tmp_path / "x.pth")


def test_resume_continues_the_reliability_recipe_s_corruption_exactly(tiny, tmp_path):
    """The recipe draws its corruption from generators of its own: they travel in the state."""
    recipe = ("--recipe", "reliable")
    whole = train(cfg_of(tiny, tmp_path / "whole", *recipe))
    train(cfg_of(tiny, tmp_path / "part", *recipe, "--max_epoch", "1"))
    state = torch.load(tmp_path / "part" / "x.resume.pt", weights_only=True)
    assert set(state["recipe_rng"]) == {"numpy", "torch"}
    resumed = train(cfg_of(tiny, tmp_path / "part", *recipe, "--resume"))
    assert_same_run(resumed, whole)


def test_a_state_that_predates_a_setting_counts_as_its_reference_value():
    from iefvad.engine.resume import differing_flags

    old = {"lr": 1e-3, "seed": 1}  # written before topk_div / train_len / feature_noise existed
    now = {"lr": 1e-3, "seed": 1, "topk_div": 16, "train_len": 256, "feature_noise": 0.0,
           "train_sample": "mean", "video_noise": 0.0, "sparsity": 0.0}  # fmt: skip
    assert differing_flags(old, now) == []
    assert differing_flags(old, {**now, "topk_div": 8}) == ["--topk_div: state 16, now 8"]
    assert differing_flags(old, {**now, "train_sample": "pick"}) == [
        "--train_sample: state 'mean', now 'pick'"
    ]
    # a setting every state records is still compared when it is missing
    diff = differing_flags({"seed": 1}, now)
    assert len(diff) == 1 and diff[0].startswith("--lr: state ") and diff[0].endswith("now 0.001")


@pytest.mark.slow
def test_main_py_sigterm_saves_state_and_exits_130_like_ctrl_c(tiny, tmp_path):
    argv = args_of(tiny, tmp_path, "--max_epoch", "200", "--no_test")
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith("[train] epoch 2:"):
            break
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "stopped by SIGTERM" in err and "Resume with:" in err, err
    s = torch.load(tmp_path / "x.resume.pt", weights_only=True)
    assert s["global_step"] >= 4
    steps = [r.split(",")[1] for r in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, len(steps) + 1)] and len(steps) >= 4


def test_resume_after_the_training_list_changed_is_refused(tiny, tmp_path):
    import shutil
    import warnings

    from iefvad.engine.resume import ResumeError

    lst = tiny.train_csv.with_name("train_changing.csv")  # beside it: relative paths hold
    shutil.copy(tiny.train_csv, lst)
    lines = lst.read_text().splitlines()
    out = tmp_path / "run"
    argv = ["--train_list", str(lst), "--max_epoch", "1", "--no_test"]
    train(cfg_of(tiny, out, *argv))
    state = out / "x.resume.pt"
    assert len(torch.load(state, weights_only=True)["train_list_sha256"]) == 64
    lst.write_text("\n".join([lines[0], *lines[1:][::-1]]) + "\n")  # same videos, other rows
    resume = [*argv[:-3], "--max_epoch", "2", "--no_test", "--resume", str(state)]
    with pytest.raises(ResumeError, match=rf"other rows than {lst} holds now \(rows sha256 "):
        train(cfg_of(tiny, out, *resume))
    # a state written before fingerprints: resumed with a warning that it cannot be checked
    s = torch.load(state, weights_only=True)
    del s["train_list_sha256"]
    torch.save(s, state)
    with pytest.warns(UserWarning, match="cannot be checked"):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            train(cfg_of(tiny, out, *resume))
