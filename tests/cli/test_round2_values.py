"""Round 2 minor defects: checkpoints that pickle code, one-class lists, negative seeds,
absurd --synth values and noise levels, huge feature values; each one error line, exit 2."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from iefvad.cli.entry import ablate_main, explore_main, train_main
from iefvad.data.csv_lists import read_list
from iefvad.data.features import FeatureError, read_pairs
from iefvad.engine.resume import ResumeError, read_state
from iefvad.models.checkpoint import CheckpointError, read_checkpoint
from iefvad.synthetic.features import SynthSpec, make_feature_set


class _Code:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_that_pickles_code_is_called_so_not_truncated(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": _Code()}, path)
    for read, error in ((read_checkpoint, CheckpointError), (read_state, ResumeError)):
        with pytest.raises(error) as e:
            read(path)
        msg = str(e.value)
        assert "pickled Python code" in msg and "system" in msg, msg
        assert "truncated" not in msg and "weights_only" not in msg


@pytest.fixture()
def small(tmp_path):
    spec = SynthSpec(train_normal=2, train_abnormal=2, test_normal=2, test_abnormal=2, crops=1,
                     dim=8, seed=5)  # fmt: skip
    return make_feature_set(tmp_path / "f", spec)


def _train(small, tmp_path, *extra):
    return train_main(
        ["--dataset", "ucfcrime", "--train_list", str(small.train_csv), "--no_test",
         "--ckpt_dir", str(tmp_path / "ck"), "--batch_size", "1", "--max_epoch", "1",
         "--heads", "2", "--no_progress", *extra]
    )  # fmt: skip


def test_a_one_class_training_list_says_it_needs_both_classes(small, tmp_path, capsys):
    lines = small.train_csv.read_text().splitlines()
    only = [lines[0]] + [ln for ln in lines[1:] if "Normal" in ln.split(",")[-1]]
    one = tmp_path / "normal_only.csv"
    one.write_text("\n".join(only) + "\n")
    with pytest.raises(SystemExit) as e:
        _train(small, tmp_path, "--train_list", str(one))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "needs both normal and abnormal" in err and str(one) in err
    assert "batch_size" not in err


@pytest.mark.parametrize(
    "run, argv, flag",
    [
        ("train", ["--seed", "-1"], "--seed"),
        ("ablate", ["--seeds", "1", "-1"], "--seeds"),
        ("ablate", ["--synth", "dim=-3"], "dim"),
        ("ablate", ["--synth", "train_normal=10000000000"], "train_normal"),
        ("ablate", ["--synth", "noise=nan"], "noise"),
    ],
)
def test_negative_seeds_and_absurd_synth_values_are_one_error(small, tmp_path, capsys, run,
                                                              argv, flag):  # fmt: skip
    with pytest.raises(SystemExit) as e:
        if run == "train":
            _train(small, tmp_path, *argv)
        else:
            ablate_main(["--out_dir", str(tmp_path / "ab"), "--max_epoch", "1", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error:") and flag in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_test2_noise_level_1e308_is_refused(small, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        explore_main(["--ckpt_path", str(tmp_path / "none.pth"), "--test_list",
                      str(small.test_csv), "--noise_levels", "1e308",
                      "--perturbation", "noise"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--noise_levels" in err and "Traceback" not in err, err


def test_huge_finite_feature_values_name_the_file_and_the_value(small):
    rows = read_list(small.test_csv, event_dir="event_thr_10")
    a = np.load(rows[1].path)
    a[2, 3] = 1e30
    np.save(rows[1].path, a)
    with pytest.raises(FeatureError) as e:
        read_pairs(rows, None)
    msg = str(e.value)
    assert str(rows[1].path) in msg and "1e+30" in msg and "snippet 2, column 3" in msg
    assert "--lr" not in msg
