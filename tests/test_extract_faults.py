"""Faults a hostile user meets in extraction: permissions, stale or damaged outputs, locked,
read-only or unreadable folders, out-of-range flags. One fast test per fault."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from iefvad.encoders import random_encoder
from iefvad.extract import RunConfig, run_extraction
from iefvad.extract_core import Encoders, RecipeOptions
from iefvad.extract_layout import feature_file_status
from iefvad.fileio import save_json, save_npy

from extract_helpers import torch_threads, write_video

NOBODY = 65534


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
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "extract_" not in p.name
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
    # features without a manifest (a killed run) are not left behind by a failed redo either
    save_npy(out / "rgb" / "A" / "x__0.npy", np.zeros((2, 32), np.float32))
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
