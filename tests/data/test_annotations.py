"""Annotation parsers: every shipped format, the custom CSV, and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from iefvad.data.annotations import (
    AnnotationError,
    read_annotation_csv,
    read_annotations,
    read_span_table,
)
from iefvad.data.list_rules import LIST_SPECS
from iefvad.data.lists import load_annotations
from iefvad.datasets.specs import get_spec


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- slices of the shipped files


def test_ucf_double_spaces_and_extension(tmp_path):
    p = write(
        tmp_path,
        "ucf.txt",
        "Abuse028_x264.mp4  Abuse  165  240  -1  -1  \n"
        "Arson011_x264.mp4  Arson  150  420  680  1267  \n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \n",
    )
    ann = read_annotations(p)
    assert list(ann) == ["Abuse028_x264", "Arson011_x264", "Normal_Videos_003_x264"]
    assert ann["Abuse028_x264"].segments == ((165, 240),)
    assert ann["Arson011_x264"].segments == ((150, 420), (680, 1267))
    assert ann["Arson011_x264"].label == "Arson"
    assert ann["Normal_Videos_003_x264"].segments == ()
    assert ann["Arson011_x264"].line == 2


def test_ucf_key_matches_names_without_x264(tmp_path):
    p = write(tmp_path, "ucf.txt", "Abuse028_x264  Abuse  165  240  -1  -1\n")
    ann = read_annotations(p, key=LIST_SPECS["ucfcrime"].key)
    # the reference's test_list.txt drops _x264; feature files keep it
    assert ann.find("Abuse028").segments == ((165, 240),)
    assert ann.find("rgb/Abuse/Abuse028_x264__5.npy").segments == ((165, 240),)
    assert ann.find("Abuse030") is None


def test_msad_second_column_is_a_scene(tmp_path):
    p = write(tmp_path, "msad.txt", "Assault_2.mp4  sidewalk  20  200  -1  -1  \n")
    (entry,) = read_span_table(p, text_column="scene")
    assert (entry.name, entry.label, entry.scene, entry.segments) == (
        "Assault_2",
        None,
        "sidewalk",
        ((20, 200),),
    )


def test_xd_standard_has_no_class_and_optional_mp4(tmp_path):
    p = write(
        tmp_path,
        "xd.txt",
        "v=S-7rRLrxnVQ__#1_label_B4-0-0 0 1517 1970 3038\n"
        "v=U6MC8JJJZSY__#1_label_G-0-0.mp4 150 779",  # no final newline, as shipped
    )
    ann = read_annotations(p)
    # the dots inside XD names are not extensions
    assert list(ann) == ["v=S-7rRLrxnVQ__#1_label_B4-0-0", "v=U6MC8JJJZSY__#1_label_G-0-0"]
    assert ann["v=S-7rRLrxnVQ__#1_label_B4-0-0"].segments == ((0, 1517), (1970, 3038))
    assert ann["v=S-7rRLrxnVQ__#1_label_B4-0-0"].label is None
    assert ann["v=U6MC8JJJZSY__#1_label_G-0-0"].segments == ((150, 779),)


def test_xd_reference_file_with_padding(tmp_path):
    pad = " ".join(["-1"] * 40)
    p = write(
        tmp_path,
        "xd.txt",
        f"Death.Proof.2007__#00-45-05_00-47-36_label_B5-0-0.mp4 Abuse 1268 1600 3418 3450 {pad}\n"
        f"A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A.mp4 Normal -1 -1 {pad}\n",
    )
    ann = read_annotations(p)
    e = ann["Death.Proof.2007__#00-45-05_00-47-36_label_B5-0-0"]
    assert e.segments == ((1268, 1600), (3418, 3450)) and e.label == "Abuse"
    assert ann["A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A"].segments == ()


def test_shang_many_spans_and_empty_span(tmp_path):
    p = write(
        tmp_path,
        "shang.txt",
        "01_0028.avi robbery 266 328 330 330 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n"
        "08_0077.avi vehicle 34 71 79 327 362 365 384 390 401 401 403 414 421 429 -1 -1\n",
    )
    ann = read_annotations(p)
    # [330, 330) and [401, 401) mark no frame: dropped
    assert ann["01_0028"].segments == ((266, 328),)
    assert ann["08_0077"].segments == (
        (34, 71),
        (79, 327),
        (362, 365),
        (384, 390),
        (403, 414),
        (421, 429),
    )


@pytest.mark.parametrize(
    "dataset, entries",
    [("ucfcrime", 290), ("xd", 500), ("shang", 203), ("msad", 241)],
)
def test_shipped_files_parse(dataset, entries):
    ann = load_annotations(dataset, None)
    assert len(ann) == entries
    spec = get_spec(dataset)
    assert ann.path == spec.resource(LIST_SPECS[dataset].splits["standard"].annotations)


def test_shipped_xd_reference_file_agrees_with_standard():
    """The reference's 753-video file has the standard spans for every video it shares."""
    std = load_annotations("xd", None, "standard")
    ref = load_annotations("xd", None, "ief-vad")
    assert len(ref) == 753
    shared = [n for n in ref if ref[n].segments]
    assert len(shared) == 453
    assert all(std[n].segments == ref[n].segments for n in shared)


# ---------------------------------------------------------------- custom CSV


def test_custom_csv_rows_per_span(tmp_path):
    p = write(
        tmp_path,
        "ann.csv",
        "video,start_frame,end_frame,class\n"
        "fight_02.mp4,100,160,fight\n"
        "fight_02,10,20,fight\n"
        "walk_01,,,\n"
        "fire_01,-1,-1,fire\n",
    )
    ann = read_annotations(p)
    assert ann["fight_02"].segments == ((10, 20), (100, 160))
    assert ann["fight_02"].label == "fight"
    assert ann["walk_01"].segments == () and ann["walk_01"].label is None
    assert ann["fire_01"].segments == ()
    assert ann["fire_01"].line == 5


def test_custom_csv_without_class_column(tmp_path):
    p = write(tmp_path, "ann.txt", "video,start_frame,end_frame\nclip,0,32\n")
    (e,) = read_annotation_csv(p)
    assert (e.name, e.segments, e.label) == ("clip", ((0, 32),), None)
    # detected as CSV from its header even without a .csv suffix
    assert read_annotations(p)["clip"].segments == ((0, 32),)


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "text, match",
    [
        ("a.mp4 Abuse 10 20 30\n", r"line 1: expected pairs of frame numbers.*found 3 numbers"),
        ("a.mp4 Abuse 30 20\n", r"line 1: span \(30, 20\) ends before it starts"),
        ("a.mp4 Abuse 10 -1\n", r"line 1: span \(10, -1\) has a negative frame"),
        ("a.mp4 Abuse 10 2O\n", r"line 1: expected integer frame numbers.*found '2O'"),
        ("\n\n", r"has no entries"),
    ],
)
def test_span_table_errors(tmp_path, text, match):
    p = write(tmp_path, "bad.txt", text)
    with pytest.raises(AnnotationError, match=match) as info:
        read_annotations(p)
    assert str(p) in str(info.value)


def test_duplicate_entry(tmp_path):
    p = write(tmp_path, "dup.txt", "a.mp4 A 1 2\nb.mp4 B 3 4\na.avi A 5 6\n")
    with pytest.raises(AnnotationError, match=r"video 'a' appears twice \(lines 1 and 3\)"):
        read_annotations(p)


def test_duplicate_after_key_normalisation(tmp_path):
    p = write(tmp_path, "dup.txt", "Abuse028_x264 Abuse 1 2\nAbuse028 Abuse 3 4\n")
    with pytest.raises(AnnotationError, match="appears twice"):
        read_annotations(p, key=LIST_SPECS["ucfcrime"].key)


@pytest.mark.parametrize(
    "text, match",
    [
        ("video,start\na,1\n", r"lacks 'start_frame' and 'end_frame'; expected the header"),
        ("video,start_frame,end_frame\na,1\n", r"line 2: expected 3 columns"),
        ("video,start_frame,end_frame\na,x,5\n", r"line 2: expected integer start_frame"),
        ("video,start_frame,end_frame\n", r"has a header but no rows"),
        (
            "video,start_frame,end_frame,class\na,1,5,fire\na,7,9,fight\n",
            r"line 3: video 'a' has class 'fight' but line 2 gives it 'fire'",
        ),
    ],
)
def test_csv_errors(tmp_path, text, match):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(AnnotationError, match=match):
        read_annotations(p)


def test_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match=r"does not exist; pass the right file"):
        read_annotations(tmp_path / "nope.txt")
