"""Faults a hostile user meets in extraction: permissions, stale or damaged outputs, locked,
read-only or unreadable folders, out-of-range flags. One fast test per fault."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.extract import main
from iefvad.errors import UserInputError
from iefvad.extraction.encoders import random_encoder
from iefvad.extraction.layout import (
    LOCK_NAME,
    ExtractError,
    RunLock,
    event_tree_name,
    feature_file_status,
)
from iefvad.extraction.pipeline import RunConfig, plan, run_extraction
from iefvad.extraction.recipe import Encoders, RecipeOptions
from iefvad.fileio import save_json, save_npy
from iefvad.video.decode import VideoError, open_video

from extract_helpers import ROOT, torch_threads, write_video

NOBODY = 65534
TINY = ["--random_init", "--random_arch", "tiny", "--no_progress", "--workers", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


@contextmanager
def unprivileged() -> Iterator[None]:
    """Make permission bits bind: as root, run the block as user ``nobody`` (effective ids,
    restored after; modes below give group and others the same rights, as root's group stays)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder ``nobody`` can enter (pytest's tmp_path lies under a 0700 folder of root's)."""
    d = Path(tempfile.mkdtemp(prefix="iefvad-faults-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        for sub in [d, *d.rglob("*")]:
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o777)
        shutil.rmtree(d)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_honour_the_umask(tmp_path, mask: int, want: int) -> None:
    with umask(mask):
        save_npy(tmp_path / "a" / "x.npy", np.zeros((2, 3), np.float32))
        save_json(tmp_path / "a" / "m.json", {"k": "é"})
    assert _mode(tmp_path / "a" / "x.npy") == want
    assert _mode(tmp_path / "a" / "m.json") == want
    assert not list((tmp_path / "a").glob(".*.tmp"))


@pytest.fixture(scope="module")
def tiny() -> Encoders:
    return Encoders(image=random_encoder("tiny", 0), event=random_encoder("tiny", 1))


def _cfg(tmp_path: Path, **kw) -> RunConfig:
    base = dict(
        video_dir=tmp_path / "videos",
        roots={"image": tmp_path / "out" / "rgb", "event": tmp_path / "out" / "event_thr_10"},
        opts=RecipeOptions(crops=(0, 5)),
        workers=1,
        progress=False,
    )
    return RunConfig(**{**base, **kw})


def _outputs(root: Path) -> list[str]:
    """Feature files and manifests (not the reports, nor the hidden lock files)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith((".", "extract_"))
    )


def test_a_failed_redo_leaves_no_stale_features(tmp_path, tiny) -> None:
    """A video replaced by a corrupt file: its old features (every crop, both modalities, and
    crops of an earlier run) go with its manifest, so no list can pick them up."""
    v = tmp_path / "videos"
    write_video(v / "A" / "x.mp4", 40, (24, 16))
    write_video(v / "A" / "y.mp4", 40, (24, 16), seed=1)
    assert run_extraction(_cfg(tmp_path, opts=RecipeOptions(crops=(0, 3, 5))), tiny).exit_code == 0
    out = tmp_path / "out"
    assert len(_outputs(out)) == 2 * 2 * 4
    (v / "A" / "x.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    again = run_extraction(_cfg(tmp_path), tiny)  # crops 0, 5 now
    assert "OpenCV cannot open it" in again.failed["A/x.mp4"] and again.skipped == ["A/y.mp4"]
    assert again.redone == {"A/x.mp4": "image: video changed; event: video changed"}
    assert [p for p in _outputs(out) if "/x" in p] == []  # x__3.npy of the first run too
    assert len(_outputs(out)) == 2 * 4  # y untouched
    # features without a manifest (a killed run; a released set) are never claimed: they stay
    # while the run goes (an interrupted run loses nothing), and go if the redo fails
    save_npy(out / "rgb" / "A" / "x__0.npy", np.zeros((2, 32), np.float32))
    assert plan(_cfg(tmp_path), tiny).remove == {}
    assert "A/x.mp4" in run_extraction(_cfg(tmp_path), tiny).failed
    assert not (out / "rgb" / "A" / "x__0.npy").exists()


def test_a_truncated_or_damaged_feature_file_is_redone(tmp_path, tiny) -> None:
    v = tmp_path / "videos"
    write_video(v / "A" / "x.mp4", 40, (24, 16))
    cfg = _cfg(tmp_path)
    run_extraction(cfg, tiny)
    f = tmp_path / "out" / "rgb" / "A" / "x__5.npy"
    good = f.read_bytes()
    assert feature_file_status(f) is None
    f.write_bytes(good[:-10])  # cut after extraction (disk full, interrupted copy)
    assert "truncated" in feature_file_status(f)
    redo = run_extraction(cfg, tiny)
    assert (
        redo.done == ["A/x.mp4"] and "image: damaged x__5.npy: truncated" in redo.redone["A/x.mp4"]
    )
    assert f.read_bytes() == good
    save_npy(f, np.zeros((7, 32), np.float32))  # another shape than the manifest's T
    assert "the manifest says float32 [2, 32]" in feature_file_status(f)
    assert run_extraction(cfg, tiny).done == ["A/x.mp4"]
    np.save(f, np.zeros((2, 32), np.float64))
    assert "float64" in feature_file_status(f)
    assert run_extraction(cfg, tiny).done == ["A/x.mp4"] and f.read_bytes() == good
    assert run_extraction(cfg, tiny).skipped == ["A/x.mp4"]
    assert feature_file_status(f.with_name("x__3.npy")) == "crop 3 not in its manifest"
    assert feature_file_status(tmp_path / "elsewhere__0.npy") == "no manifest"


def test_a_failed_redo_keeps_outputs_still_valid(tmp_path, tiny) -> None:
    """--overwrite of a complete video that now fails (here: stricter truncation check): the
    old outputs are for the same video and settings, so they stay, with their manifest."""
    v = tmp_path / "videos"
    data = write_video(tmp_path / "long.avi", 200, (24, 16), "MJPG").read_bytes()
    (v / "t.avi").parent.mkdir(parents=True)
    (v / "t.avi").write_bytes(data[: len(data) // 2])
    assert run_extraction(_cfg(tmp_path, truncation_tolerance=None), tiny).done == ["t.avi"]
    before = {p: (tmp_path / "out" / p).read_bytes() for p in _outputs(tmp_path / "out")}
    again = run_extraction(_cfg(tmp_path, overwrite=True), tiny)
    assert "truncated" in again.failed["t.avi"] and "previous outputs" in again.failed["t.avi"]
    assert {p: (tmp_path / "out" / p).read_bytes() for p in _outputs(tmp_path / "out")} == before


class _Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_read_only_outputs_are_refused_before_any_decoding(shared_dir, tiny, capsys) -> None:
    v = shared_dir / "videos"
    write_video(v / "A" / "x.mp4", 40, (24, 16))
    write_video(v / "B" / "y.mp4", 40, (24, 16), seed=1)
    out = shared_dir / "out"
    for d in (out, out / "rgb", out / "rgb" / "B", out / "event_thr_10"):
        d.mkdir(exist_ok=True)
        d.chmod(0o777)
    (out / "rgb" / "B").chmod(0o555)  # one class folder the user cannot write
    counting = _Counting(tiny.image.module)
    enc = Encoders(image=replace(tiny.image, module=counting), event=tiny.event)
    cfg = _cfg(shared_dir)
    with unprivileged(), pytest.raises(ExtractError) as e:
        run_extraction(cfg, enc)
    msg = str(e.value)
    assert f"cannot write features to {out / 'rgb' / 'B'}: Permission denied" in msg
    assert "nothing was extracted" in msg and "chmod u+w" in msg and "--out_root" in msg
    assert counting.calls == 0 and not list(out.rglob("*.npy"))
    # a read-only root through the command line: status 2, before the weights are even loaded
    (out / "event_thr_10").chmod(0o555)
    with unprivileged():
        code = main(["--video_dir", str(v), "--out_root", str(out), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: cannot write features to {out / 'event_thr_10'}: Permission denied" in err


def test_unreadable_videos_and_folders_are_reported_as_such(shared_dir, tiny, caplog) -> None:
    v = shared_dir / "videos"
    write_video(v / "A" / "ok.mp4", 40, (24, 16))
    write_video(v / "A" / "locked.mp4", 40, (24, 16), seed=1)
    write_video(v / "Secret" / "z.mp4", 40, (24, 16), seed=2)
    (v / "A" / "locked.mp4").chmod(0o000)
    (v / "Secret").chmod(0o000)
    out = shared_dir / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    with unprivileged():
        with pytest.raises(VideoError) as e:
            open_video(v / "A" / "locked.mp4")
        assert e.value.kind == "permission"
        summary = run_extraction(_cfg(shared_dir), tiny)
    why = summary.failed["A/locked.mp4"]
    assert why.startswith("permission denied") and "chmod a+r" in why and "corrupt" not in why
    assert summary.done == ["A/ok.mp4"] and summary.unreadable == ["Secret/"]
    assert summary.exit_code == 1 and "1 folders unreadable" in summary.text()
    assert "UNREADABLE Secret/: permission denied" in summary.text()
    assert "cannot be read (permission denied)" in caplog.text and "Secret/" in caplog.text
    lines = (out / "rgb" / "extract_failures.txt").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["A/locked.mp4", "Secret/"]
    assert "make it readable (chmod a+rx)" in lines[1]


def test_the_event_folder_is_named_for_its_threshold(tmp_path, caplog) -> None:
    assert event_tree_name("event_thr_10", 10) == "event_thr_10"
    assert event_tree_name("event", 10.0) == "event"  # ShanghaiTech's released name
    assert event_tree_name("event_thr_10", 40) == "event_thr_40"
    assert event_tree_name("event", 12.5) == "event_thr_12.5"
    v = tmp_path / "videos"
    write_video(v / "A" / "x.mp4", 40, (24, 16))
    base = ["--video_dir", str(v), "--modality", "event", "--crops", "0", *TINY]
    assert main([*base, "--out_root", str(tmp_path / "o"), "--threshold", "40"]) == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["event_thr_40"]
    m = (tmp_path / "o" / "event_thr_40" / "A" / "x.manifest.json").read_text()
    assert '"threshold": 40.0' in m
    # both modalities from --save_dir .../rgb: the event tree beside it follows the threshold
    argv = ["--video_dir", str(v), "--save_dir", str(tmp_path / "s" / "rgb"), "--threshold",
            "25", "--dry_run", *TINY]  # fmt: skip
    caplog.set_level("INFO")
    assert main(argv) == 0
    assert f"-> {tmp_path / 's' / 'event_thr_25'}" in caplog.text
    # a folder the user named for another threshold: extracted as asked, with a warning
    named = str(tmp_path / "e" / "event_thr_10")
    assert main([*base, "--save_dir", named, "--threshold", "40", "--dry_run"]) == 0
    assert "a folder named for threshold 10; name it event_thr_40" in caplog.text


def test_a_second_run_into_the_same_folder_fails_fast(tmp_path, tiny) -> None:
    write_video(tmp_path / "videos" / "A" / "x.mp4", 40, (24, 16))
    cfg = _cfg(tmp_path)
    roots = list(cfg.roots.values())
    for r in roots:
        r.mkdir(parents=True)
    with RunLock(roots):  # the other run (another open file: flock refuses it as another process)
        with pytest.raises(ExtractError) as e:
            run_extraction(cfg, tiny)
    msg = str(e.value)
    assert f"another extraction (PID {os.getpid()} on " in msg
    assert f"is writing to {roots[1]}" in msg and "--shard RANK/WORLD" in msg
    assert not list(tmp_path.rglob("*.npy"))
    # a lock file left by a dead process holds no lock: taken over
    (roots[0] / LOCK_NAME).write_text("PID 999999 on elsewhere, since 2020-01-01\n")
    assert run_extraction(cfg, tiny).exit_code == 0
    assert (roots[0] / LOCK_NAME).read_text().startswith(f"PID {os.getpid()} on ")
    # torchrun / --shard: the ranks of one run share the roots, nothing else does
    with RunLock(roots, 0, 2), RunLock(roots, 1, 2):
        with pytest.raises(ExtractError, match=r"\(PID \d+ on .*, shard 0/2, since"):
            RunLock(roots, 0, 2).__enter__()
        with pytest.raises(ExtractError, match=r"shard 0/2, since .*; PID .*shard 1/2"):
            run_extraction(cfg, tiny)
    with RunLock(roots), pytest.raises(ExtractError, match="another extraction"):
        RunLock(roots, 1, 2).__enter__()
    with RunLock(roots, 1, 2):  # all released again
        pass


@pytest.mark.parametrize(
    "flag, value, allowed",
    [
        ("--event_threshold", "-1", "gray levels 0 <= t < 255"),
        ("--event_threshold", "nan", "gray levels 0 <= t < 255"),
        ("--batch_size", "0", "an integer >= 1"),
        ("--workers", "0", "an integer >= 1"),
        ("--threads", "-2", "an integer >= 1"),
        ("--truncation_tolerance", "1.5", "a fraction 0 <= f < 1"),
        ("--clamp", "0", "a number > 0"),
        ("--crops", "12", "crops must lie in 0..9"),
        ("--crops", "5-3", "A <= B"),
    ],
)
def test_out_of_range_flags_name_the_flag_and_the_allowed_values(
    tmp_path, capsys, flag: str, value: str, allowed: str
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--video_dir", str(tmp_path), "--out_root", str(tmp_path / "o"), *TINY, flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and allowed in err and "Traceback" not in err


def test_the_api_rejects_out_of_range_options_as_user_errors() -> None:
    with pytest.raises(UserInputError, match=r"clamp must be > 0"):
        RecipeOptions(clamp=0)
    with pytest.raises(UserInputError, match=r"threshold must be in \[0, 255\)"):
        RecipeOptions(threshold=-1)
    with pytest.raises(UserInputError, match="batch_size must be >= 1"):
        Encoders(image=random_encoder("tiny", 0), batch_size=0)


@pytest.mark.slow
def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path, tiny) -> None:
    write_video(tmp_path / "videos" / "A" / "x.mp4", 40, (24, 16))
    cfg = _cfg(tmp_path)
    roots = [str(r) for r in cfg.roots.values()]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom iefvad.extraction.layout import RunLock\n"
         "with RunLock(sys.argv[1:]):\n    print('locked', flush=True)\n    time.sleep(300)\n",
         *roots],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExtractError, match=rf"another extraction \(PID {holder.pid} on "):
            run_extraction(cfg, tiny)
    finally:
        holder.kill()  # SIGKILL: no cleanup, the kernel drops its locks
        holder.wait(timeout=30)
    assert (Path(roots[0]) / LOCK_NAME).read_text().startswith(f"PID {holder.pid} ")
    assert run_extraction(cfg, tiny).done == ["A/x.mp4"]
