"""The length rule, header-only feature reading, per-video ground truth and the length check."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from iefvad.data.annotations import read_annotations
from iefvad.data.csv_lists import ListRow, video_stem
from iefvad.data.groundtruth import (
    FeatureFileError,
    GroundTruthError,
    GroundTruthWarning,
    UnverifiedOrderWarning,
    VideoGT,
    check_gt_length,
    feature_shape,
    gt_videos,
    load_gt,
    num_snippets,
    save_gt,
)
from iefvad.datasets.specs import get_spec

XD_A = "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A"
XD_B = "A.Beautiful.Mind.2001__#00-40-52_00-42-01_label_A"


def feat(path: Path, t: int, d: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ones((t, d), np.float32))
    return path


# ---------------------------------------------------------------- header-only reading


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_feature_shape_from_header(tmp_path, version):
    p = tmp_path / "v__0.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array(f, np.zeros((7, 4), np.float32), version=version)
    assert feature_shape(p) == (7, 4)
    assert num_snippets(p) == 7


def test_feature_shape_reads_only_the_header(tmp_path, monkeypatch):
    p = feat(tmp_path / "v__0.npy", 9)

    def no_load(*a, **k):
        raise AssertionError("np.load must not be called for a 1.0 header")

    monkeypatch.setattr(np, "load", no_load)
    assert feature_shape(p) == (9, 4)


def test_unreadable_npy(tmp_path):
    p = tmp_path / "v__0.npy"
    p.write_bytes(b"this is not numpy")
    with pytest.raises(FeatureFileError, match=rf"feature file {p} is not a readable \.npy"):
        feature_shape(p)


def test_truncated_npy(tmp_path):
    p = feat(tmp_path / "v__0.npy", 10)
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(
        FeatureFileError, match=r"is truncated: its header promises shape \(10, 4\) float32"
    ):
        feature_shape(p)


def test_missing_npy(tmp_path):
    with pytest.raises(FeatureFileError, match=r"v__0\.npy does not exist"):
        feature_shape(tmp_path / "v__0.npy")


@pytest.mark.parametrize("shape", [(0, 4), (5,), (2, 3, 4)])
def test_not_t_by_d(tmp_path, shape):
    p = tmp_path / "v__0.npy"
    np.save(p, np.zeros(shape, np.float32))
    with pytest.raises(FeatureFileError, match=r"expected \[T, D\] with T >= 1"):
        num_snippets(p)


# ---------------------------------------------------------------- per-video ground truth


def test_gt_videos_exact(tmp_path):
    """UCF slice: spans set, a span clipped at 16 x T with a warning naming the video."""
    ann_file = tmp_path / "ann.txt"
    ann_file.write_text(
        "Abuse028_x264.mp4  Abuse  165  240  -1  -1  \n"
        "Burglary021_x264.mp4  Burglary  60  200  840  1340  \n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \n"
    )
    rows = [
        ListRow(feat(tmp_path / "Abuse/Abuse028_x264__5.npy", 20), "Abuse", line=2),
        ListRow(feat(tmp_path / "Burglary/Burglary021_x264__5.npy", 70), "Burglary", line=3),
        ListRow(feat(tmp_path / "Normal/Normal_Videos_003_x264__5.npy", 3), "Normal", line=4),
    ]
    with pytest.warns(GroundTruthWarning, match=r"Burglary021_x264: annotated span \[840, 1340\)"):
        videos = gt_videos(rows, get_spec("ucfcrime"), read_annotations(ann_file))
    assert [(v.name, v.label, v.frames, v.segments) for v in videos] == [
        ("Abuse028_x264", "Abuse", 320, [(165, 240)]),
        ("Burglary021_x264", "Burglary", 1120, [(60, 200), (840, 1120)]),
        ("Normal_Videos_003_x264", "Normal", 48, []),
    ]
    gt = save_gt(tmp_path / "gt.npy", videos, "ucfcrime")
    expected = np.concatenate(
        [
            np.zeros(165), np.ones(75), np.zeros(80),  # Abuse028: 320 frames
            np.zeros(60), np.ones(140), np.zeros(640), np.ones(280),  # Burglary021: 1120
            np.zeros(48),  # Normal_Videos_003
        ]
    )  # fmt: skip
    assert gt.dtype == np.float32
    np.testing.assert_array_equal(gt, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "gt.npy"), expected)


def test_unannotated_abnormal_is_an_error_normal_is_not(tmp_path):
    ann_file = tmp_path / "ann.txt"
    ann_file.write_text("Abuse028_x264  Abuse  165  240  -1  -1\n")
    rows = [
        ListRow(feat(tmp_path / "Abuse028_x264__5.npy", 20), "Abuse", line=2),
        ListRow(feat(tmp_path / "Normal_Videos_006_x264__5.npy", 4), "Normal", line=3),
        ListRow(feat(tmp_path / "Arrest001_x264__5.npy", 4), "Arrest", line=4),
    ]
    with pytest.raises(GroundTruthError) as info:
        gt_videos(rows, get_spec("ucfcrime"), read_annotations(ann_file))
    msg = str(info.value)
    assert f"1 abnormal test videos have no entry in the annotation file {ann_file}" in msg
    assert "Arrest001_x264 (Arrest)" in msg and "Normal_Videos_006" not in msg
    # without the abnormal one, the normal video needs no entry
    videos = gt_videos(rows[:2], get_spec("ucfcrime"), read_annotations(ann_file))
    assert [(v.name, v.frames, v.segments) for v in videos] == [
        ("Abuse028_x264", 320, [(165, 240)]),
        ("Normal_Videos_006_x264", 64, []),
    ]


def test_gt_videos_reports_every_problem(tmp_path):
    bad = tmp_path / "Arson011_x264__5.npy"
    bad.write_bytes(b"garbage")
    rows = [
        ListRow(feat(tmp_path / "Abuse028_x264__5.npy", 2), "Abuse", line=2),
        ListRow(feat(tmp_path / "Abuse028_x264__4.npy", 2), "Abuse", line=3),
        ListRow(bad, "Arson", line=4),
        ListRow(feat(tmp_path / "x__5.npy", 2), "B1-0-0", line=5),
    ]
    ann_file = tmp_path / "a.txt"
    ann_file.write_text("Abuse028_x264 Abuse 1 2\n")
    with pytest.raises(GroundTruthError) as info:
        gt_videos(rows, get_spec("ucfcrime"), read_annotations(ann_file))
    msg = str(info.value)
    assert "names 1 videos more than once: Abuse028_x264 (lines 2 and 3)" in msg
    assert "line 5: unknown label 'B1-0-0' for dataset 'ucfcrime'" in msg
    assert f"feature file {bad} is not a readable .npy" in msg
    assert "x (B1-0-0)" in msg  # and it has no annotation


def test_label_and_spans_disagree_warns(tmp_path):
    ann_file = tmp_path / "a.txt"
    ann_file.write_text("v1 5 9\nv2 -1 -1\n")
    rows = [
        ListRow(feat(tmp_path / "v1__5.npy", 1), "normal", line=2),
        ListRow(feat(tmp_path / "v2__5.npy", 1), "fight", line=3),
    ]
    spec = get_spec("custom")
    with pytest.warns(GroundTruthWarning) as rec:
        videos = gt_videos(rows, spec, read_annotations(ann_file))
    msgs = [str(w.message) for w in rec]
    assert any(m.startswith("v1: labelled normal (normal)") for m in msgs)
    assert any(m.startswith("v2: labelled abnormal (fight)") and "no span" in m for m in msgs)
    assert [v.segments for v in videos] == [[(5, 9)], []]


def test_span_entirely_beyond_the_video_is_dropped_with_a_warning(tmp_path):
    ann_file = tmp_path / "ann.txt"
    ann_file.write_text("Vandalism036_x264.mp4  Vandalism  540  780  990  1080\n")
    rows = [ListRow(feat(tmp_path / "Vandalism036_x264__5.npy", 40), "Vandalism", line=2)]
    with pytest.warns(GroundTruthWarning) as rec:
        (video,) = gt_videos(rows, get_spec("ucfcrime"), read_annotations(ann_file))
    assert [str(w.message) for w in rec] == [
        "Vandalism036_x264: annotated span [540, 780) reaches beyond the 640 frames covered by "
        "its features; clipped to [540, 640)",
        "Vandalism036_x264: annotated span [990, 1080) reaches beyond the 640 frames covered by "
        "its features; dropped (no frame of it is left)",
    ]
    assert video.segments == [(540, 640)]


# ---------------------------------------------------------------- length check and loading


def _videos() -> list[VideoGT]:
    return [VideoGT(XD_A, "A", 32, []), VideoGT(XD_B, "A", 48, [(0, 16)])]


def test_check_gt_length_accepts_matching(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    gt = load_gt(tmp_path / "gt.npy")
    assert gt.frames.size == 80 and gt.videos is not None
    check_gt_length(gt, [f"{XD_A}__5", f"/x/{XD_B}__5.npy"], [2, 3])


def test_check_gt_length_names_the_diverging_video(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    gt = load_gt(tmp_path / "gt.npy")
    with pytest.raises(GroundTruthError, match=rf"#1 '{XD_B}': 64 frames from its features"):
        check_gt_length(gt, [XD_A, XD_B], [2, 4])


def test_check_gt_length_tells_apart_xd_names_with_dots(tmp_path):
    """XD names share everything before the first dot; they must not compare equal."""
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    gt = load_gt(tmp_path / "gt.npy")
    other = "A.Beautiful.Mind.2001__#00-50-26_00-55-16_label_A"
    with pytest.raises(
        GroundTruthError,
        match=rf"test video #1 is '{other}' but the ground truth's video #1 is "
        rf"'{XD_B}' \(the ground truth has no video of that name",
    ):
        check_gt_length(gt, [XD_A, other], [2, 3])


def test_check_gt_length_without_sidecar(tmp_path):
    np.save(tmp_path / "gt.npy", np.zeros(80, np.float32))
    gt = load_gt(tmp_path / "gt.npy")
    assert gt.videos is None
    with pytest.warns(UnverifiedOrderWarning):
        check_gt_length(gt, [XD_A, XD_B], [2, 3])
    with pytest.raises(GroundTruthError, match=r"needs 96 .*ends inside or before video #1"):
        check_gt_length(gt, [XD_A, XD_B], [2, 4])


def test_stale_sidecar_is_refused(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    np.save(tmp_path / "gt.npy", np.zeros(96, np.float32))
    with pytest.raises(GroundTruthError, match=r"describes 80 frames over 2 videos but .* 96"):
        load_gt(tmp_path / "gt.npy")


def test_sidecar_content(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    meta = json.loads((tmp_path / "gt.json").read_text())
    assert meta["total_frames"] == 80
    assert [(v["name"], v["frames"], v["segments"]) for v in meta["videos"]] == [
        (XD_A, 32, []),
        (XD_B, 48, [[0, 16]]),
    ]


def test_video_stem_keeps_dotted_names():
    assert video_stem(f"rgb/{XD_A}__5.npy") == XD_A
    assert video_stem(XD_A) == XD_A
    assert video_stem("Abuse/Abuse028_x264.mp4") == "Abuse028_x264"


# ---------------------------------------------------------------- order (issue: reordered list)


def test_reordered_test_list_is_refused_with_a_sidecar(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    gt = load_gt(tmp_path / "gt.npy")
    # same videos, same total frames (16 x 5), other order: the frame count alone cannot tell
    with pytest.raises(
        GroundTruthError,
        match=rf"does not match the test list's order: test video #0 is '{XD_B}' but the "
        rf"ground truth's video #0 is '{XD_A}' \(it is video #1 of the ground truth: the list "
        r"is in another order\)",
    ):
        check_gt_length(gt, [XD_B, XD_A], [3, 2])


def test_bare_gt_warns_once_that_order_cannot_be_verified(tmp_path):
    bare = tmp_path / "released_gt.npy"
    np.save(bare, np.zeros(80, np.float32))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):  # training checks before the first epoch and at every evaluation
            check_gt_length(load_gt(bare), [XD_B, XD_A], [3, 2])
    msgs = [str(w.message) for w in rec if issubclass(w.category, UnverifiedOrderWarning)]
    assert len(msgs) == 1
    assert f"ground truth {bare} has no sidecar (released_gt.json)" in msgs[0]
    assert "order of the test list cannot be verified" in msgs[0]
    assert "list/generate_gt.py" in msgs[0]


def test_every_writer_writes_the_sidecar(tmp_path):
    """save_gt is the one writer (generate_gt, synth, demo use it): the sidecar names videos."""
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    gt = load_gt(tmp_path / "gt.npy")
    assert [v.name for v in gt.videos] == [XD_A, XD_B]


def test_sidecar_from_another_run_is_refused(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    # another order of the same videos written over the .npy only: same length, other frames
    np.save(tmp_path / "gt.npy", np.concatenate([np.ones(16), np.zeros(64)]).astype(np.float32))
    with pytest.raises(
        GroundTruthError,
        match=rf"gt\.json does not describe .*gt\.npy: at index 0 \(video #0 '{XD_A}'\) its "
        r"spans give 0 but the \.npy holds 1",
    ):
        load_gt(tmp_path / "gt.npy")


# ---------------------------------------------------------------- values (issue: 0.4, 2, NaN)


@pytest.mark.parametrize(
    "value, what",
    [
        (0.4, r"0\.4.*neither 0 nor 1"),
        (2.0, r"2\.0.*neither 0 nor 1"),
        (np.nan, r"nan.*not a finite"),
    ],
)
def test_gt_values_other_than_0_1_are_refused(tmp_path, value, what):
    a = np.zeros(80, np.float32)
    a[37] = value
    np.save(tmp_path / "gt.npy", a)
    with pytest.raises(
        GroundTruthError,
        match=rf"ground-truth file {tmp_path}/gt\.npy: the value at index 37 is {what}",
    ):
        load_gt(tmp_path / "gt.npy")


def test_gt_value_error_names_the_video_from_the_sidecar(tmp_path):
    save_gt(tmp_path / "gt.npy", _videos(), "xd")
    a = np.load(tmp_path / "gt.npy")
    a[40] = np.inf
    np.save(tmp_path / "gt.npy", a)
    with pytest.raises(
        GroundTruthError, match=rf"index 40 \(frame 8 of video #1 '{XD_B}'\) is inf"
    ):
        load_gt(tmp_path / "gt.npy")


def test_gt_int_and_bool_arrays_are_accepted(tmp_path):
    np.save(tmp_path / "i.npy", np.array([0, 1, 1, 0], np.int64))
    np.save(tmp_path / "b.npy", np.array([False, True]))
    assert load_gt(tmp_path / "i.npy").frames.tolist() == [0, 1, 1, 0]
    assert load_gt(tmp_path / "b.npy").frames.dtype == np.float32


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda p: p.write_bytes(b"not an npy"), "is not a readable .npy array"),
        (lambda p: np.save(p, np.array(["a", "b"])), "holds <U1 values; expected 0/1 numbers"),
        (lambda p: p.write_bytes(_npy_header((1000,)) + b"\0" * 8), "is truncated"),
    ],
)
def test_unreadable_gt_files(tmp_path, make, what):
    make(tmp_path / "gt.npy")
    with pytest.raises(GroundTruthError, match=re.escape(what)):
        load_gt(tmp_path / "gt.npy")


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@pytest.mark.parametrize(
    "sidecar, what",
    [
        (b"{", "not JSON"),
        (b"[]", "expected an object with a 'videos' list"),
        (b'{"videos": [{"name": "a"}]}', "video #0 lacks name, label, frames or segments"),
        (
            b'{"videos": [{"name": "a", "label": "A", "frames": 1e400, "segments": []}]}',
            "frames must be an integer >= 0",
        ),
        (
            b'{"videos": [{"name": "a", "label": "A", "frames": 80, "segments": [[1]]}]}',
            "segments must be [start, end] integer pairs",
        ),
        (b"\xff\xfe{}", "is not UTF-8 text: byte 0xff at byte offset 0"),
    ],
)
def test_malformed_sidecar(tmp_path, sidecar, what):
    np.save(tmp_path / "gt.npy", np.zeros(80, np.float32))
    (tmp_path / "gt.json").write_bytes(sidecar)
    with pytest.raises(GroundTruthError, match=re.escape(what)):
        load_gt(tmp_path / "gt.npy")
