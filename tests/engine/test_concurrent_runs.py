"""Two trainings of one experiment at once, and a run killed after --resume: the second
training is refused naming the first one's PID and host, and the logs of a killed run keep
every row written so far (never truncated first)."""

from __future__ import annotations

import csv
import os
import socket
from types import SimpleNamespace

import pytest

from iefvad.engine.runlog import RunLogger
from iefvad.engine.train import ExperimentBusy, experiment_lock, train

from conftest import TINY_MODEL, synth_train_cfg


def test_a_second_training_of_the_same_experiment_is_refused(synth_set, tmp_path):
    cfg = synth_train_cfg(synth_set, tmp_path / "ckpt", "twin", *TINY_MODEL, "--max_epoch", "1")
    with experiment_lock(cfg):  # the first run, still training
        with pytest.raises(ExperimentBusy) as e:
            train(cfg)
    msg = str(e.value)
    assert f"PID {os.getpid()} on {socket.gethostname()}" in msg and "'twin'" in msg
    assert not (tmp_path / "ckpt" / "twin.pth").exists()
    # another experiment name in the same folder is not blocked
    with experiment_lock(cfg):
        other = synth_train_cfg(
            synth_set, tmp_path / "ckpt", "other", *TINY_MODEL, "--max_epoch", "1", "--no_test"
        )
        with experiment_lock(other):
            pass


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _logger(tmp_path, resume_step=None) -> RunLogger:
    cfg = SimpleNamespace(tensorboard=False, wandb=False)  # no mirrors
    return RunLogger(tmp_path, cfg, resume_step=resume_step)  # type: ignore[arg-type]


def test_a_resumed_log_is_never_emptied_and_rows_reach_the_disk_at_once(tmp_path):
    log = _logger(tmp_path)
    for step in range(1, 41):
        log.step(1, step, 1e-4, {"loss": 1.0, "cls": 0.5, "align": 0.1, "kl": 0.1}, 0.1)
    log.close()
    assert len(_rows(tmp_path / "train_log.csv")) == 40
    # resume from step 30 and "kill" the run before it closes its log: what is on disk is
    # the 30 kept rows plus every row written since (no buffer to lose, no truncation)
    resumed = _logger(tmp_path, resume_step=30)
    assert [r["step"] for r in _rows(tmp_path / "train_log.csv")] == [str(s) for s in range(1, 31)]
    resumed.step(2, 31, 1e-4, {"loss": 0.9, "cls": 0.4, "align": 0.1, "kl": 0.1}, 0.1)
    assert _rows(tmp_path / "train_log.csv")[-1]["step"] == "31"  # before any close
    resumed.close()


def test_evaluation_log_is_replaced_atomically(tmp_path, monkeypatch):
    log = _logger(tmp_path)
    log.evaluation(1, 10, {"auc": 0.7})
    before = (tmp_path / "eval_log.csv").read_bytes()
    import iefvad.engine.runlog as runlog

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runlog.csv, "DictWriter", disk_full)
    with pytest.raises(OSError):
        log.evaluation(2, 20, {"auc": 0.8})
    assert (tmp_path / "eval_log.csv").read_bytes() == before
    log.close()
