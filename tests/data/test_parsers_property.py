"""Property tests of the parsers of user files: list CSVs, annotation files of every dataset's
format, and ground truth (``.npy`` + sidecar).

Whatever the bytes, a parser returns a result that keeps its invariants or raises a
:class:`UserInputError` (one clear message, no traceback in the command-line front ends); any
other exception is a bug.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from iefvad.data.annotations import read_annotations
from iefvad.data.csv_lists import read_list
from iefvad.data.groundtruth import load_gt, sidecar_path
from iefvad.data.list_rules import LIST_SPECS, read_names
from iefvad.errors import UserInputError

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_count = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parsers")


def fresh(workdir: Path, name: str) -> Path:
    """A new folder per example, so examples never see each other's files."""
    d = workdir / f"ex{next(_count)}"
    d.mkdir()
    return d / name


def encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Text in the encodings users' files come in, or raw bytes."""
    return st.one_of(
        st.tuples(text, st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])).map(
            lambda te: te[0].encode(te[1], errors="replace")
        ),
        st.binary(max_size=300),
    )


# ---------------------------------------------------------------- list CSVs

CELL = st.one_of(
    st.sampled_from(["rgb/Abuse/Abuse028_x264__5.npy", "a__0.npy", "Normal", "normal", "A", ""]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.text(alphabet='",\r\n\t\x00 -_/.', max_size=6),
)
CSV_TEXT = st.builds(
    lambda header, rows: header + "".join(",".join(r) + "\n" for r in rows),
    st.sampled_from(["path,label\n", "path,label,event_path\n", "label,path\n", "", "\ufeff"]),
    st.lists(
        st.one_of(st.lists(CELL, min_size=2, max_size=3), st.lists(CELL, max_size=4)), max_size=6
    ),
)


@SETTINGS
@given(data=encoded(CSV_TEXT), event_dir=st.sampled_from([None, "event_thr_10"]))
@example(data=b"path,label\n\xe9,Normal\n", event_dir=None)
@example(data="path,label\n".encode("utf-16-le"), event_dir=None)
@example(data=b'path,label\n"' + b"x" * 200_000 + b'",A\n', event_dir=None)
@example(data=b"path,label\nrgb/a__5.npy,A\n/,A\n", event_dir=None)  # found by hypothesis
def test_list_csv_parses_or_says_why(workdir, data, event_dir):
    p = fresh(workdir, "list.csv")
    p.write_bytes(data)
    try:
        rows = read_list(p, event_dir=event_dir)
    except UserInputError as e:
        assert str(p) in str(e)
        event(f"refused: {str(e).replace(str(p.parent), '')[:50]}")
        return
    event("parsed")
    assert rows
    for r in rows:
        assert r.path.name and r.line >= 2
        assert event_dir is None or r.event_path is not None


@SETTINGS
@given(data=encoded(CSV_TEXT))
def test_name_list_parses_or_says_why(workdir, data):
    p = fresh(workdir, "test.txt")
    p.write_bytes(data)
    try:
        names = read_names(p)
    except UserInputError as e:
        assert str(p) in str(e)
        event(f"refused: {str(e).replace(str(p.parent), '')[:50]}")
        return
    event("parsed")
    assert all(isinstance(n, str) for _, n in names)


# ---------------------------------------------------------------- annotation files

TOKEN = st.one_of(
    st.integers(-3, 5000).map(str),
    st.just("-1"),
    st.sampled_from(["Abuse028_x264.mp4", "01_0014", "Assault_2.mp4", "Normal", "sidewalk"]),
    st.sampled_from(["A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A", "#", "1e3", "٣"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
)
SPAN_TABLE = st.lists(st.lists(TOKEN, max_size=8).map(lambda t: " ".join(t)), max_size=6).map(
    lambda lines: "\n".join(lines) + "\n"
)
ANNOTATION_CSV = st.builds(
    lambda header, rows: header + "".join(",".join(r) + "\n" for r in rows),
    st.sampled_from(
        ["video,start_frame,end_frame,class\n", "video,start_frame,end_frame\n", "video\n", ""]
    ),
    st.lists(st.lists(st.one_of(TOKEN, st.just("")), max_size=5), max_size=6),
)

# every dataset's annotation format: the text column's meaning and the name key
FORMATS = [(spec.annotation_text, spec.key) for spec in LIST_SPECS.values()]


@SETTINGS
@given(
    data=encoded(st.one_of(SPAN_TABLE, ANNOTATION_CSV)),
    fmt=st.sampled_from(FORMATS),
    suffix=st.sampled_from([".txt", ".csv"]),
)
@example(data=b"Abuse028_x264.mp4 Abuse 165 240 -1 -1\n", fmt=FORMATS[0], suffix=".txt")
@example(data=b"video,start_frame,end_frame\nclip,10,20\n", fmt=FORMATS[0], suffix=".csv")
def test_annotation_file_parses_or_says_why(workdir, data, fmt, suffix):
    text_column, key = fmt
    p = fresh(workdir, f"annotations{suffix}")
    p.write_bytes(data)
    try:
        ann = read_annotations(p, text_column, key)
    except UserInputError as e:
        assert str(p) in str(e)
        event(f"refused: {str(e).replace(str(p.parent), '')[:50]}")
        return
    event("parsed")
    assert len(ann) >= 1
    for name in ann:
        entry = ann[name]
        assert all(0 <= s < e for s, e in entry.segments)
        assert entry.line >= 1


# ---------------------------------------------------------------- ground truth

DTYPES = st.sampled_from(["<f4", ">f8", "<i8", "|b1", "|u1", "<f2", "<U3", "|O", "<c8", "|V4"])


@st.composite
def npy_bytes(draw: st.DrawFn) -> bytes:
    """A ``.npy`` header (valid or not) followed by a payload of any length."""
    shape = draw(st.lists(st.integers(0, 40), max_size=2).map(tuple))
    header = {"descr": draw(DTYPES), "fortran_order": draw(st.booleans()), "shape": shape}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except Exception:  # noqa: BLE001 - an unwritable header: fall back to raw bytes
        return draw(st.binary(max_size=100))
    head = buf.getvalue()
    if draw(st.booleans()):  # a payload of plausible values, sometimes of the right length
        values = draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, 2.0, float("nan")]), max_size=80))
        payload = np.asarray(values, dtype="<f4").tobytes()
    else:
        payload = draw(st.binary(max_size=200))
    cut = draw(st.integers(0, len(head)))
    return head[:cut] if draw(st.integers(0, 9)) == 0 else head + payload


def _gt(frames: list[int]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(frames, np.float32))
    return buf.getvalue()


VIDEO = st.fixed_dictionaries(
    {
        "name": st.one_of(st.text(max_size=6), st.integers()),
        "label": st.sampled_from(["A", "Normal", 3]),
        "frames": st.one_of(st.integers(-2, 40), st.floats(), st.booleans(), st.none()),
        "segments": st.one_of(
            st.lists(st.lists(st.integers(-5, 50), max_size=3), max_size=3), st.text(max_size=3)
        ),
    }
)
SIDECAR = st.one_of(
    st.none(),
    st.binary(max_size=100),
    st.builds(
        lambda videos, extra: json.dumps({"videos": videos, **extra}).encode(),
        st.lists(VIDEO, max_size=3),
        st.dictionaries(st.sampled_from(["format", "total_frames"]), st.integers(), max_size=2),
    ),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=10,
    ).map(lambda x: json.dumps(x).encode()),
)


@SETTINGS
@given(npy=st.one_of(npy_bytes(), st.binary(max_size=200)), sidecar=SIDECAR)
@example(npy=_gt([0, 1, 1, 0]), sidecar=None)
@example(
    npy=_gt([0, 1, 1, 0]),
    sidecar=b'{"videos": [{"name": "v", "label": "A", "frames": 4, "segments": [[1, 3]]}]}',
)
@example(npy=b"PK\x03\x04" + b"\0" * 40, sidecar=None)  # a zip (.npz) named .npy
def test_ground_truth_parses_or_says_why(workdir, npy, sidecar):
    p = fresh(workdir, "gt.npy")
    p.write_bytes(npy)
    if sidecar is not None:
        sidecar_path(p).write_bytes(sidecar)
    try:
        gt = load_gt(p)
    except UserInputError as e:
        assert str(p) in str(e) or str(sidecar_path(p)) in str(e)
        event(f"refused: {str(e).replace(str(p.parent), '')[:50]}")
        return
    event("parsed")
    assert gt.frames.dtype == np.float32 and gt.frames.ndim == 1
    assert np.isin(gt.frames, (0.0, 1.0)).all()
    if gt.videos is not None:
        assert sum(v.frames for v in gt.videos) == gt.frames.size
