"""Property 2: names stay in their folder. A name the user types (``--exp_name``) that is not a
plain file name is refused with the flag named, before anything is written; a name that comes
from data (a video's stem, a class label, a checkpoint's stem) is made a plain file name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iefvad.paths import NAME_MAX, UnsafeNameError, child, safe_name

BAD_NAMES = ["../evil", "/tmp/abs", "a/b", "x\0y", "..", "", "e" * 250]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_child_refuses_what_is_not_a_plain_name(tmp_path, name):
    with pytest.raises(UnsafeNameError, match="--exp_name"):
        child(tmp_path, name, "--exp_name", ".resume.pt")
    assert child(tmp_path, "run-1", "--exp_name", ".pth") == tmp_path / "run-1.pth"


@pytest.mark.parametrize(
    "name", ["../../up", "/abs", "..", ".", "", "a\0b", "x" * 300, os.fsdecode(b"\xe9" * 200)]
)
def test_safe_name_is_a_plain_name_that_fits(tmp_path, name):
    out = safe_name(name, reserve=5)
    assert "/" not in out and "\0" not in out and out not in ("", ".", "..")
    assert len(os.fsencode(out)) <= NAME_MAX - 5
    (tmp_path / f"{out}.json").write_text("{}")  # a file the file system accepts
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]
    if len(os.fsencode(name)) > NAME_MAX:  # long names stay apart
        assert safe_name(name + "1", 5) != safe_name(name + "2", 5)


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil_abs", "a/b", "x\0y", "e" * 250])
def test_main_py_exp_name_stays_in_ckpt_dir(synth_set, tmp_path, name, monkeypatch):
    from iefvad.engine.train import train

    from conftest import synth_train_cfg

    monkeypatch.chdir(tmp_path)
    cfg = synth_train_cfg(synth_set, tmp_path / "a" / "ck", name)
    with pytest.raises(UnsafeNameError, match="--exp_name"):
        train(cfg)
    assert list(tmp_path.iterdir()) == []  # nothing written, inside or outside
    assert not Path("/tmp/evil_abs.pth").exists()


@pytest.mark.parametrize("script", ["test", "test2"])
def test_evaluation_exp_name_must_be_plain(tmp_path, script, monkeypatch):
    from iefvad.cli.explore import explore_config, explore_parser
    from iefvad.cli.options import evaluation_config, test_parser
    from iefvad.engine.report import run_test
    from iefvad.studies.explore import run_explore

    monkeypatch.chdir(tmp_path)
    argv = ["--ckpt_path", str(tmp_path / "never_read.pth"), "--exp_name", "../../escape"]
    with pytest.raises(UnsafeNameError, match="--exp_name '../../escape' holds a path sep"):
        if script == "test":
            run_test(evaluation_config(test_parser().parse_args(argv)))
        else:
            run_explore(explore_config(explore_parser().parse_args(argv)))
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_stem_names_a_folder_inside_results():
    from iefvad.engine.report import experiment_name

    assert experiment_name(None, Path("x/...pth"), None) == "__"  # stem "..": not the parent
    assert experiment_name(None, Path("x/ucf.pth"), None) == "ucf"


def test_infer_output_names_of_long_and_odd_stems_fit(tmp_path):
    from iefvad.inference.offline import OfflineConfig, plan_outputs

    videos = [f"a/{'v' * 251}.mp4", f"b/{'v' * 251}.mp4", f"c/{'v' * 250}1.mp4", "..mp4"]
    names = plan_outputs(OfflineConfig(tuple(videos), tmp_path))
    assert len({n.casefold() for n in names}) == 4
    for n in names:
        assert "/" not in n and n not in (".", "..")
        for ext in (".csv", ".json", ".png"):
            (tmp_path / f"{n}{ext}").write_text("")  # the file system takes every name
    assert len(list(tmp_path.iterdir())) == 12


def test_class_plots_stay_in_their_folder(tmp_path):
    import numpy as np

    from iefvad.viz.figures import VideoTrace, plot_by_class

    trace = VideoTrace("v", np.zeros(3), np.zeros(3), np.zeros(3), [])
    out = tmp_path / "plots"
    paths = plot_by_class({"../../up": [trace], "c" * 300: [trace], "..": [trace]}, out, 1)
    assert len(paths) == 3 and all(p.parent == out and p.is_file() for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]
