"""The minor defects of the second reliability sweep (docs/reliability.md, "Round 2"): each
case as a user met it, with what they get now."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from iefvad.errors import UserInputError

# ---------------------------------------------------------- a path that is not a readable file


def _not_a_file(kind: str, tmp_path: Path) -> Path:
    p = tmp_path / f"x_{kind}"
    if kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "loop":
        p.symlink_to(p.name)
    else:  # broken
        p.symlink_to(tmp_path / "gone")
    return p


SAYS = {
    "folder": "is a folder, not a file",
    "fifo": r"is a named pipe \(FIFO\)",
    "loop": "is a symbolic link that loops",
    "broken": "is a broken symbolic link",
}


def _readers():
    from iefvad.data.annotations import read_annotations
    from iefvad.data.csv_lists import read_list
    from iefvad.data.features import read_feature
    from iefvad.data.groundtruth import load_gt, num_snippets
    from iefvad.engine.resume import read_state
    from iefvad.extraction.encoders import read_weights_file
    from iefvad.models.checkpoint import read_checkpoint

    return {
        "list": read_list,
        "annotations": read_annotations,
        "feature": read_feature,
        "feature header": num_snippets,
        "ground truth": load_gt,
        "resume state": read_state,
        "weights": read_weights_file,
        "checkpoint": read_checkpoint,
    }


@pytest.mark.parametrize("reader", list(_readers()))
@pytest.mark.parametrize("kind", list(SAYS))
def test_a_path_that_is_not_a_file_is_named_for_what_it_is(tmp_path, kind, reader):
    path = _not_a_file(kind, tmp_path)
    result: list[BaseException | None] = []

    def call() -> None:
        try:
            _readers()[reader](path)
            result.append(None)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            result.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), f"{reader} hangs on a {kind}"  # a FIFO is never opened
    (err,) = result
    assert isinstance(err, UserInputError), repr(err)
    assert "does not exist" not in str(err)
    assert str(path.name) in str(err)
    import re

    assert re.search(SAYS[kind], str(err)), str(err)


# ---------------------------------------------------------- headers


def test_a_header_repeated_mid_file_is_named(tmp_path):
    from iefvad.data.csv_lists import ListError, read_list

    p = tmp_path / "train.csv"
    p.write_text("path,label\na__0.npy,normal\npath,label\nb__0.npy,normal\n")
    with pytest.raises(ListError, match=r"line 3 repeats the header 'path,label' \(two files"):
        read_list(p)


def test_a_duplicated_column_name_is_named(tmp_path):
    from iefvad.data.annotations import AnnotationError, read_annotations
    from iefvad.data.csv_lists import ListError, read_list

    p = tmp_path / "train.csv"
    p.write_text("path,label,label\na__0.npy,normal,abnormal\n")
    with pytest.raises(ListError, match=r"names the column 'label' twice"):
        read_list(p)
    a = tmp_path / "ann.csv"
    a.write_text("video,start_frame,end_frame,end_frame\nv,1,2,3\n")
    with pytest.raises(AnnotationError, match=r"names the column 'end_frame' twice"):
        read_annotations(a)


# ---------------------------------------------------------- lists that share videos


def test_training_and_test_lists_sharing_videos_warn_once(synth_set, tmp_path):
    from iefvad.data.csv_lists import read_list
    from iefvad.engine.train import warn_shared_videos

    train = read_list(synth_set.train_csv)
    test = read_list(synth_set.test_csv)
    with pytest.warns(UserWarning) as rec:
        warn_shared_videos(train, [*test, *train[:3]], synth_set.train_csv, synth_set.test_csv)
    assert len(rec) == 1
    msg = str(rec[0].message)
    stems = sorted({r.stem for r in train[:3]})
    assert f"{len(stems)} video(s) of the training list" in msg and stems[0] in msg
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_shared_videos(train, test, synth_set.train_csv, synth_set.test_csv)  # none shared


# ---------------------------------------------------------- generate_gt.py's own flags


def test_generate_gt_with_a_missing_csv_suggests_its_own_flag(tmp_path, capsys):
    from iefvad.cli.lists import generate_gt_main

    rc = generate_gt_main(["--dataset", "custom", "--csv_path", str(tmp_path / "none.csv"),
                           "--save_path", str(tmp_path / "gt.npy")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "none.csv does not exist" in err and "--csv_path" in err
    assert "--train_list" not in err and "--test_list" not in err


# ---------------------------------------------------------- a full disk


def _no_space(*args) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f) -> None:
        self._f = f

    write = staticmethod(_no_space)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def fill_the_disk(monkeypatch, at: str) -> None:
    if at == "write":
        real = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real(fd, *a, **k)))
    else:
        monkeypatch.setattr(os, "fsync", _no_space)  # delayed allocation: at fsync


@pytest.mark.parametrize("at", ["write", "fsync"])
def test_a_full_disk_names_the_file_and_keeps_the_earlier_one(tmp_path, monkeypatch, capsys, at):
    from iefvad.cli.entry import run_entry
    from iefvad.fileio import save_json

    log = tmp_path / "metrics.json"
    save_json(log, {"run": 1})
    fill_the_disk(monkeypatch, at)
    rc = run_entry(lambda: save_json(log, {"run": 2}))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {log}: No space left on device (the disk is full" in err
    assert json.loads(log.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_the_evaluation_log_is_replaced_atomically(tmp_path, monkeypatch):
    from iefvad.engine import runlog

    logger = runlog.RunLogger.__new__(runlog.RunLogger)
    logger.eval_path, logger._evals = tmp_path / "eval_log.csv", []
    logger.tb = logger.wb = None
    logger.evaluation(1, 10, {"auc": 0.5})
    before = logger.eval_path.read_bytes()
    fill_the_disk(monkeypatch, "write")
    with pytest.raises(OSError) as e:
        logger.evaluation(2, 20, {"auc": 0.6})
    monkeypatch.undo()
    assert e.value.filename == str(logger.eval_path)
    assert logger.eval_path.read_bytes() == before


# ---------------------------------------------------------- infer.py twice into one folder


def test_a_second_infer_run_keeps_another_videos_results(tmp_path, capsys):
    from iefvad.cli.infer import main

    from extract_helpers import tiny_scoring_checkpoint, torch_threads, write_video

    ckpt = tiny_scoring_checkpoint(tmp_path / "tiny.pth")
    a = write_video(tmp_path / "cam1" / "clip.mp4", 17, (64, 48), seed=1)
    b = write_video(tmp_path / "cam2" / "clip.mp4", 33, (64, 48), seed=2)
    out = tmp_path / "out"

    def run(video: Path) -> None:
        with torch_threads(1), pytest.raises(SystemExit) as e:
            main([str(video), "--ckpt_path", str(ckpt), "--out_dir", str(out), "--no_plots",
                  "--no_report"])  # the per-run report.html is not a video's result
        assert e.value.code == 0

    run(a)
    first = (out / "clip.csv").read_bytes()
    run(b)  # the same stem, another video: new names, the first run's files untouched
    assert (out / "clip.csv").read_bytes() == first
    assert json.loads((out / "clip-2.json").read_text())["video"] == str(b)
    assert "outputs named clip-2.*" in capsys.readouterr().out
    run(a)  # a video's own earlier results are replaced, not copied again
    assert sorted(p.name for p in out.iterdir()) == [
        "clip-2.csv", "clip-2.json", "clip.csv", "clip.json"
    ]  # fmt: skip


# ---------------------------------------------------------- test2.py into a folder it cannot write


def test_test2_checks_its_output_folder_before_any_pass(tmp_path, monkeypatch):
    from iefvad.cli.explore import explore_config, explore_parser
    from iefvad.engine.outpaths import OutputPathError
    from iefvad.studies.explore import run_explore

    blocker = tmp_path / "file"
    blocker.write_text("")
    args = explore_parser().parse_args(
        ["--ckpt_path", str(tmp_path / "never_read.pth"), "--out_dir", str(blocker / "out")]
    )
    with pytest.raises(OutputPathError, match="--out_dir"):
        run_explore(explore_config(args))  # before the checkpoint is read
    # a folder this user cannot write (root ignores permissions: mkstemp is made to fail)
    import tempfile

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    args = explore_parser().parse_args(
        ["--ckpt_path", str(tmp_path / "never_read.pth"), "--out_dir", str(tmp_path / "ro")]
    )
    with pytest.raises(OutputPathError, match=r"--out_dir: cannot write into .*Permission denied"):
        run_explore(explore_config(args))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_test2_read_only_folder_fails_before_any_pass(tmp_path):
    from iefvad.cli.explore import explore_config, explore_parser
    from iefvad.engine.outpaths import OutputPathError
    from iefvad.studies.explore import run_explore

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        args = explore_parser().parse_args(
            ["--ckpt_path", str(tmp_path / "never_read.pth"), "--out_dir", str(ro)]
        )
        with pytest.raises(OutputPathError, match="--out_dir"):
            run_explore(explore_config(args))
    finally:
        ro.chmod(0o700)
