"""Lists and ground truth of the four benchmarks and of custom folders, end to end on tiny trees.

Each benchmark test builds a fake feature tree with the real naming scheme (D = 4), uses the
shipped split files and a verbatim slice of the real annotation file, and checks CSV rows
(membership, labels, order, relative paths) and the exact ground-truth array against
expectations written out by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from iefvad.cli.lists import generate_file_main, generate_gt_main
from iefvad.data.annotations import AnnotationError, read_annotations
from iefvad.data.csv_lists import ListError, derive_event_path, read_list, video_stem, write_list
from iefvad.data.groundtruth import (
    FeatureFileError,
    GroundTruthError,
    check_gt_length,
    load_gt,
    num_snippets,
)
from iefvad.data.list_rules import (
    LIST_SPECS,
    default_paths,
    read_lines,
    read_membership,
    read_names,
)
from iefvad.data.lists import (
    benchmark_lists,
    custom_lists,
    generate_gt,
    write_lists,
)
from iefvad.datasets.specs import get_spec
from iefvad.extraction.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX

REPO = Path(__file__).resolve().parents[2]
CROPS = range(10)


def make_tree(root: Path, videos: dict[str, int], crops=CROPS, d: int = 4) -> None:
    """``{'Folder/stem': T}`` -> ``root/Folder/stem__<crop>.npy`` of shape [T, d]."""
    for rel, t in videos.items():
        for c in crops:
            p = root / f"{rel}__{c}.npy"
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.full((t, d), c, np.float32))


def run(fn, *args, **kwargs):
    """Call ``fn``; return its result and the warning messages it raised."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in rec]


def csv_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def rows_of(prefix: str, rel: str, label: str, crops=CROPS) -> list[str]:
    return [f"{prefix}/{rel}__{c}.npy,{label}" for c in crops]


def z(n: int) -> np.ndarray:
    return np.zeros(n)


def o(n: int) -> np.ndarray:
    return np.ones(n)


# ====================================================================== UCF-Crime

UCF_TREE = {
    "Abuse/Abuse001_x264": 5,  # train
    "Training_Normal_Videos_Anomaly/Normal_Videos001_x264": 4,  # train, official folder name
    "Abuse/Abuse028_x264": 20,  # test: 165-240
    "Burglary/Burglary021_x264": 70,  # test: 60-200, 840-1340 (clipped at 1120)
    "Normal/Normal_Videos_003_x264": 3,  # test, the reference's folder name
}
UCF_ANNOTATIONS = (  # verbatim lines of iefvad/resources/ucfcrime/annotations.txt
    "Abuse028_x264.mp4  Abuse  165  240  -1  -1  \n"
    "Burglary021_x264.mp4  Burglary  60  200  840  1340  \n"
    "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \n"
)
UCF_GT = np.concatenate(
    [
        z(165), o(75), z(80),  # Abuse028_x264: 16 x 20 = 320 frames
        z(60), o(140), z(640), o(280),  # Burglary021_x264: 1120 frames, 2nd span clipped
        z(48),  # Normal_Videos_003_x264
    ]
)  # fmt: skip


def test_ucf_lists_and_gt(tmp_path):
    make_tree(tmp_path / "rgb", UCF_TREE)
    lists, warned = run(benchmark_lists, "ucfcrime", tmp_path / "rgb")
    assert any(w.startswith("1608 of the 1610 train videos") for w in warned)
    assert any(w.startswith("287 of the 290 test videos") for w in warned)
    out = tmp_path / "lists"
    write_lists(lists, out / "train.csv", out / "test.csv")

    # train: every crop, in the order of Anomaly_Train.txt; normals labelled Normal
    assert csv_lines(out / "train.csv") == [
        "path,label",
        *rows_of("../rgb/Abuse", "Abuse001_x264", "Abuse"),
        *rows_of("../rgb/Training_Normal_Videos_Anomaly", "Normal_Videos001_x264", "Normal"),
    ]
    # test: crop 5, in the order of Anomaly_Test.txt
    assert csv_lines(out / "test.csv") == [
        "path,label",
        "../rgb/Abuse/Abuse028_x264__5.npy,Abuse",
        "../rgb/Burglary/Burglary021_x264__5.npy,Burglary",
        "../rgb/Normal/Normal_Videos_003_x264__5.npy,Normal",
    ]
    (tmp_path / "ann.txt").write_text(UCF_ANNOTATIONS)
    s, warned = run(generate_gt, "ucfcrime", out / "test.csv", out / "gt.npy", tmp_path / "ann.txt")
    assert warned == [
        "Burglary021_x264: annotated span [840, 1340) reaches beyond the 1120 frames covered "
        "by its features; clipped to [840, 1120)"
    ]
    gt = np.load(out / "gt.npy")
    assert gt.dtype == np.float32
    np.testing.assert_array_equal(gt, UCF_GT)
    assert [v.segments for v in s.videos] == [[(165, 240)], [(60, 200), (840, 1120)], []]

    # the shipped annotation file (the default) gives the same array
    run(generate_gt, "ucfcrime", out / "test.csv", out / "gt2.npy")
    np.testing.assert_array_equal(np.load(out / "gt2.npy"), UCF_GT)

    # what test.py does: the lengths of the listed features must match the ground truth
    rows = read_list(out / "test.csv")
    check_gt_length(load_gt(out / "gt.npy"), [r.stem for r in rows], [20, 70, 3])
    assert [num_snippets(r.path) for r in rows] == [20, 70, 3]


def test_ucf_ief_vad_split_has_the_same_members(tmp_path):
    make_tree(tmp_path / "rgb", UCF_TREE)
    std, _ = run(benchmark_lists, "ucfcrime", tmp_path / "rgb")
    ief, _ = run(benchmark_lists, "ucfcrime", tmp_path / "rgb", split="ief-vad")
    assert ief.train == std.train and ief.test == std.test


def test_ucf_test_list_txt_holds_all_290_videos():
    """wc -l says 289: the 290th line has no line end. Names drop _x264; the key restores it."""
    spec = LIST_SPECS["ucfcrime"]
    path = get_spec("ucfcrime").resource("test_list.txt")
    raw = path.read_bytes()
    assert raw.count(b"\n") == 289 and not raw.endswith(b"\n")
    names = [n for _, n in read_names(path)]
    assert len(names) == 290 and names[0] == "Abuse028"
    official = read_lines(get_spec("ucfcrime").resource("Anomaly_Test.txt"))
    assert sorted(spec.key(n) for n in names) == sorted(spec.key(n) for _, n in official)


# ====================================================================== XD-Violence

XD_TREE = {
    "A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_A": 6,  # train in both splits
    "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6": 60,  # standard test; ief-vad train
    "v=S-7rRLrxnVQ__#1_label_B4-0-0": 150,  # test: 0-1517, 1970-3038 (clipped at 2400)
    "v=U6MC8JJJZSY__#1_label_G-0-0": 60,  # test; written with .mp4 in the annotation file
    "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A": 2,  # normal test: no annotation line
}
XD_ANNOTATIONS = (  # verbatim lines 20, 1 and 199 of xd/annotations_standard.txt
    "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6 157 180 185 244 250 360 582 810\n"
    "v=S-7rRLrxnVQ__#1_label_B4-0-0 0 1517 1970 3038\n"
    "v=U6MC8JJJZSY__#1_label_G-0-0.mp4 150 779\n"
)
XD_BAD_BOYS = np.concatenate([z(157), o(23), z(5), o(59), z(6), o(110), z(222), o(228), z(150)])
XD_S7 = np.concatenate([o(1517), z(453), o(430)])  # 2400 frames
XD_U6 = np.concatenate([z(150), o(629), z(181)])  # 960 frames


def test_xd_standard_lists_and_gt(tmp_path):
    make_tree(tmp_path / "rgb", XD_TREE)
    lists, _ = run(benchmark_lists, "xd", tmp_path / "rgb")
    out = tmp_path / "lists"
    write_lists(lists, out / "train.csv", out / "test.csv")
    assert csv_lines(out / "train.csv") == [
        "path,label",
        *rows_of("../rgb", "A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_A", "A"),
    ]
    # order of test_list_standard.txt; multi-label codes kept as labels
    assert csv_lines(out / "test.csv") == [
        "path,label",
        "../rgb/Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6__5.npy,G-B2-B6",
        "../rgb/v=S-7rRLrxnVQ__#1_label_B4-0-0__5.npy,B4-0-0",
        "../rgb/v=U6MC8JJJZSY__#1_label_G-0-0__5.npy,G-0-0",
        "../rgb/A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A__5.npy,A",
    ]
    (tmp_path / "ann.txt").write_text(XD_ANNOTATIONS)
    s, warned = run(generate_gt, "xd", out / "test.csv", out / "gt.npy", tmp_path / "ann.txt")
    assert len(warned) == 1 and warned[0].startswith(
        "v=S-7rRLrxnVQ__#1_label_B4-0-0: annotated span [1970, 3038)"
    )
    expected = np.concatenate([XD_BAD_BOYS, XD_S7, XD_U6, z(32)])
    np.testing.assert_array_equal(np.load(out / "gt.npy"), expected)
    assert s.videos[0].segments == [(157, 180), (185, 244), (250, 360), (582, 810)]
    # the shipped standard file gives the same
    run(generate_gt, "xd", out / "test.csv", out / "gt2.npy")
    np.testing.assert_array_equal(np.load(out / "gt2.npy"), expected)


def test_xd_ief_vad_split_warns_and_moves_test_videos(tmp_path):
    make_tree(tmp_path / "rgb", XD_TREE)
    lists, warned = run(benchmark_lists, "xd", tmp_path / "rgb", split="ief-vad")
    assert any("moves 47 of the 800 standard test videos into training" in w for w in warned)
    out = tmp_path / "lists"
    write_lists(lists, out / "train.csv", out / "test.csv")
    assert csv_lines(out / "train.csv") == [
        "path,label",
        *rows_of("../rgb", "A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_A", "A"),
        *rows_of("../rgb", "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", "G-B2-B6"),
    ]
    assert csv_lines(out / "test.csv") == [  # order of test_list_ief_vad.csv
        "path,label",
        "../rgb/A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A__5.npy,A",
        "../rgb/v=S-7rRLrxnVQ__#1_label_B4-0-0__5.npy,B4-0-0",
        "../rgb/v=U6MC8JJJZSY__#1_label_G-0-0__5.npy,G-0-0",
    ]
    run(generate_gt, "xd", out / "test.csv", out / "gt.npy", split="ief-vad")  # .mp4 names
    np.testing.assert_array_equal(np.load(out / "gt.npy"), np.concatenate([z(32), XD_S7, XD_U6]))


def test_xd_ief_vad_unknown_videos_point_at_the_standard_split(tmp_path):
    """The reference's XD train list leaves out 13 standard training videos."""
    make_tree(tmp_path / "rgb", {**XD_TREE, "Your.Name.2016__#00-36-52_00-41-00_label_A": 2})
    with pytest.raises(ListError) as info:
        run(benchmark_lists, "xd", tmp_path / "rgb", split="ief-vad")
    msg = str(info.value)
    assert "1 feature videos under" in msg and "Your.Name.2016__#00-36-52_00-41-00_label_A" in msg
    assert "1 of them are in the 'standard' split files (the 'ief-vad' files leave them out)" in msg
    lists, _ = run(benchmark_lists, "xd", tmp_path / "rgb")  # standard: a training video
    assert lists.train_videos == 2


# ====================================================================== ShanghaiTech

SHANG_TREE = {
    "car/01_0130": 4,  # train
    "normal/01_002": 5,  # train
    "normal/01_001": 3,  # test, normal
    "robbery/01_0028": 25,  # test: 266-328 and the empty span 330-330
    "vehicle/08_0077": 28,  # test: seven spans, one of them empty (401-401)
}
SHANG_ANNOTATIONS = (  # verbatim lines 1, 5 and 152 of shang/annotations.txt
    "01_001.avi normal -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n"
    "01_0028.avi robbery 266 328 330 330 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n"
    "08_0077.avi vehicle 34 71 79 327 362 365 384 390 401 401 403 414 421 429 -1 -1\n"
)
SHANG_GT = np.concatenate(
    [
        z(48),  # 01_001
        z(266), o(62), z(72),  # 01_0028: 400 frames
        z(34), o(37), z(8), o(248), z(35), o(3), z(19), o(6), z(13), o(11), z(7), o(8), z(19),
    ]  # 08_0077: 448 frames
)  # fmt: skip


@pytest.mark.parametrize(
    "layout",
    [
        "class",  # the reference's <class>/<video>
        "flat",  # the original ShanghaiTech names, no folders
        "folders",  # original names in non-class folders (training/, testing/)
    ],
)
def test_shang_layouts(tmp_path, layout):
    def place(rel: str) -> str:
        cls, stem = rel.split("/")
        if layout == "class":
            return rel
        if layout == "flat":
            return stem
        return f"{'testing' if stem in ('01_001', '01_0028', '08_0077') else 'training'}/{stem}"

    make_tree(tmp_path / "rgb", {place(k): t for k, t in SHANG_TREE.items()})
    lists, _ = run(benchmark_lists, "shang", tmp_path / "rgb")
    out = tmp_path / "lists"
    write_lists(lists, out / "train.csv", out / "test.csv")
    p = "../rgb"
    assert csv_lines(out / "train.csv") == [
        "path,label",
        *[f"{p}/{place('car/01_0130')}__{c}.npy,car" for c in CROPS],
        *[f"{p}/{place('normal/01_002')}__{c}.npy,normal" for c in CROPS],
    ]
    assert csv_lines(out / "test.csv") == [
        "path,label",
        f"{p}/{place('normal/01_001')}__5.npy,normal",
        f"{p}/{place('robbery/01_0028')}__5.npy,robbery",
        f"{p}/{place('vehicle/08_0077')}__5.npy,vehicle",
    ]
    (tmp_path / "ann.txt").write_text(SHANG_ANNOTATIONS)
    s, warned = run(generate_gt, "shang", out / "test.csv", out / "gt.npy", tmp_path / "ann.txt")
    assert warned == []
    np.testing.assert_array_equal(np.load(out / "gt.npy"), SHANG_GT)
    assert len(s.videos[2].segments) == 6


def test_shang_video_absent_from_the_reference_lists_is_reported(tmp_path):
    """04_0012_0 is in annotations.txt and test_list.txt but in neither reference list."""
    make_tree(tmp_path / "rgb", {**SHANG_TREE, "vehicle/04_0012_0": 3})
    with pytest.raises(ListError) as info:
        run(benchmark_lists, "shang", tmp_path / "rgb")
    msg = str(info.value)
    assert "1 feature videos under" in msg and "vehicle/04_0012_0" in msg
    assert "in neither the train nor the test list of shang split 'standard'" in msg
    assert "--skip_unknown" in msg
    lists, warned = run(benchmark_lists, "shang", tmp_path / "rgb", skip_unknown=True)
    assert lists.unknown == ["vehicle/04_0012_0"]
    assert any(w.startswith("left out 1 feature videos") for w in warned)
    assert all("04_0012_0" not in str(e.path) for e in lists.train + lists.test)


# ====================================================================== MSAD

MSAD_TREE = {
    "Assault/Assault_1": 3,  # train
    "Normal/frontdoor1": 3,  # train, normal
    "Assault/Assault_2": 15,  # test: 20-200
    "Assault/Assault_11": 10,  # test: 1-250, clipped at 160
    "Normal/MSAD_normal_testing_1": 2,  # test, normal
}
MSAD_ANNOTATIONS = (  # verbatim lines 1, 5 and 35 of msad/annotations.txt (column 2: scene)
    "Assault_2.mp4  sidewalk  20  200  -1  -1  \n"
    "Assault_11.mp4  office  1  250  -1  -1  \n"
    "MSAD_normal_testing_1.mp4  Normal  -1  -1  -1  -1  \n"
)


def test_msad_lists_and_gt(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    lists, _ = run(benchmark_lists, "msad", tmp_path / "rgb")
    out = tmp_path / "lists"
    write_lists(lists, out / "train.csv", out / "test.csv")
    assert csv_lines(out / "train.csv") == [
        "path,label",
        *rows_of("../rgb/Assault", "Assault_1", "Assault"),
        *rows_of("../rgb/Normal", "frontdoor1", "Normal"),
    ]
    assert csv_lines(out / "test.csv") == [  # natural order: Assault_2 before Assault_11
        "path,label",
        "../rgb/Assault/Assault_2__5.npy,Assault",
        "../rgb/Assault/Assault_11__5.npy,Assault",
        "../rgb/Normal/MSAD_normal_testing_1__5.npy,Normal",
    ]
    (tmp_path / "ann.txt").write_text(MSAD_ANNOTATIONS)
    s, warned = run(generate_gt, "msad", out / "test.csv", out / "gt.npy", tmp_path / "ann.txt")
    assert [w.split(":")[0] for w in warned] == ["Assault_11"]
    expected = np.concatenate([z(20), o(180), z(40), z(1), o(159), z(32)])
    np.testing.assert_array_equal(np.load(out / "gt.npy"), expected)
    # the scene column is not taken for a class
    assert [v.label for v in s.videos] == ["Assault", "Assault", "Normal"]


# ====================================================================== all benchmarks


@pytest.mark.parametrize(
    "dataset, split, n_train, n_test",
    [
        ("ucfcrime", "standard", 1610, 290),
        ("ucfcrime", "ief-vad", 1610, 290),
        ("xd", "standard", 3954, 800),
        ("xd", "ief-vad", 3988, 753),
        ("shang", "standard", 240, 197),
        ("msad", "standard", 479, 241),
    ],
)
def test_split_sizes(dataset, split, n_train, n_test):
    spec, dspec = LIST_SPECS[dataset], get_spec(dataset)
    sp = spec.splits[split]
    train = read_membership(dspec.resource(sp.train.file), sp.train.label_rule, spec, dspec)
    test = read_membership(dspec.resource(sp.test.file), sp.test.label_rule, spec, dspec)
    assert (len(train), len(test)) == (n_train, n_test)
    assert not {m.name for m in train} & {m.name for m in test}


def test_xd_ief_vad_leaks_exactly_47_test_videos():
    spec, dspec = LIST_SPECS["xd"], get_spec("xd")

    def names(split: str, part: str) -> set[str]:
        m = getattr(spec.splits[split], part)
        return {x.name for x in read_membership(dspec.resource(m.file), m.label_rule, spec, dspec)}

    leaked = names("standard", "test") & names("ief-vad", "train")
    assert len(leaked) == 47
    assert names("ief-vad", "test") == names("standard", "test") - leaked


@pytest.mark.parametrize("dataset", ["ucfcrime", "xd", "shang", "msad"])
def test_ief_vad_test_csv_reproduces_the_reference_rows(tmp_path, dataset):
    """With every reference test video present, the test CSV is the reference's, row for row."""
    ref = [
        ln.split(",") for _, ln in read_lines(get_spec(dataset).resource("test_list_ief_vad.csv"))
    ]
    folders = get_spec(dataset).class_folders
    make_tree(tmp_path / "rgb", {(p if folders else p.split("/")[-1]): 1 for p, _ in ref}, [5])
    lists, _ = run(benchmark_lists, dataset, tmp_path / "rgb", split="ief-vad")
    got = [(e.path.relative_to(tmp_path / "rgb").as_posix(), e.label) for e in lists.test]
    assert got == [(f"{p}__5.npy", label) for p, label in ref]


# ====================================================================== bad input


def test_duplicate_stems(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 2, "Normal/Abuse028_x264": 2})
    with pytest.raises(
        ListError,
        match=r"appear more than once.*Abuse/Abuse028_x264 and "
        r"Normal/Abuse028_x264",
    ):
        benchmark_lists("ucfcrime", tmp_path / "rgb")


def test_class_folder_conflict(tmp_path):
    make_tree(tmp_path / "rgb", {"Arrest/Abuse028_x264": 2})
    with pytest.raises(ListError, match=r"Arrest/Abuse028_x264 \(listed as Abuse\)"):
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")


def test_unreadable_and_truncated_npy(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 4})
    bad = tmp_path / "rgb/Abuse/Abuse028_x264__3.npy"
    bad.write_bytes(b"\x00\x01garbage")
    cut = tmp_path / "rgb/Abuse/Abuse028_x264__4.npy"
    cut.write_bytes(cut.read_bytes()[:-4])
    with pytest.raises(FeatureFileError) as info:
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")
    msg = str(info.value)
    assert msg.startswith("2 problems with feature files")
    assert f"feature file {bad} is not a readable .npy" in msg
    assert f"feature file {cut} is truncated" in msg


def test_crops_of_different_shapes(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 4})
    np.save(tmp_path / "rgb/Abuse/Abuse028_x264__7.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(
        FeatureFileError,
        match=r"crops of video Abuse/Abuse028_x264 have "
        r"different shapes.*crop 7: \(5, 4\)",
    ):
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")


def test_mixed_feature_widths(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 4})
    make_tree(tmp_path / "rgb", {"Abuse/Abuse030_x264": 4}, d=8)
    with pytest.raises(
        FeatureFileError,
        match=r"different widths.*D=4 \(1 videos, e.g. "
        r"Abuse/Abuse028_x264\); D=8",
    ):
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")


def test_zero_snippet_video(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 0})
    with pytest.raises(FeatureFileError, match=r"shape \(0, 4\); expected \[T, D\] with T >= 1"):
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")


def test_file_without_crop_suffix(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 2})
    np.save(tmp_path / "rgb/Abuse/Abuse030_x264.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(
        ListError,
        match=r"1 \.npy files are not named <video>__<crop>\.npy: "
        r"Abuse/Abuse030_x264\.npy",
    ):
        benchmark_lists("ucfcrime", tmp_path / "rgb")


def test_missing_test_crop(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse028_x264": 2}, crops=[0, 1])
    with pytest.raises(
        ListError,
        match=r"Abuse/Abuse028_x264 has no crop 5 \(found crops 0, "
        r"1\); pass --test_crop",
    ):
        run(benchmark_lists, "ucfcrime", tmp_path / "rgb")
    lists, _ = run(benchmark_lists, "ucfcrime", tmp_path / "rgb", test_crop=1)
    assert [e.path.name for e in lists.test] == ["Abuse028_x264__1.npy"]


def test_uneven_crops_warn(tmp_path):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse001_x264": 2, "Abuse/Abuse002_x264": 2})
    make_tree(tmp_path / "rgb", {"Abuse/Abuse003_x264": 2}, crops=[0, 1, 2])
    lists, warned = run(benchmark_lists, "ucfcrime", tmp_path / "rgb")
    assert any(
        w.startswith(
            "1 videos do not have the usual crops 0,1,2,3,4,5,6,7,8,9: "
            "Abuse/Abuse003_x264 (crops 0,1,2)"
        )
        for w in warned
    )
    assert len(lists.train) == 23


def test_missing_feature_folder_and_videos_only(tmp_path):
    with pytest.raises(ListError, match=r"feature folder .*nope does not exist"):
        benchmark_lists("ucfcrime", tmp_path / "nope")
    (tmp_path / "videos/Abuse").mkdir(parents=True)
    (tmp_path / "videos/Abuse/Abuse028_x264.mp4").write_bytes(b"")
    with pytest.raises(
        ListError,
        match=r"holds no <video>__<crop>\.npy files\. It holds 1 "
        r"video files: extract features first",
    ):
        benchmark_lists("ucfcrime", tmp_path / "videos")


def test_event_tree_column(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    make_tree(tmp_path / "event_thr_10", MSAD_TREE)
    lists, _ = run(
        benchmark_lists, "msad", tmp_path / "rgb", event_base_path=tmp_path / "event_thr_10"
    )
    write_lists(lists, tmp_path / "l/train.csv", tmp_path / "l/test.csv")
    assert csv_lines(tmp_path / "l/test.csv")[:2] == [
        "path,label,event_path",
        "../rgb/Assault/Assault_2__5.npy,Assault,../event_thr_10/Assault/Assault_2__5.npy",
    ]
    rows = read_list(tmp_path / "l/test.csv")
    assert rows[0].event_path == tmp_path / "l/../event_thr_10/Assault/Assault_2__5.npy"
    # an event file missing, another of a different length
    (tmp_path / "event_thr_10/Assault/Assault_2__3.npy").unlink()
    np.save(tmp_path / "event_thr_10/Normal/frontdoor1__0.npy", np.zeros((9, 4), np.float32))
    with pytest.raises(FeatureFileError) as info:
        run(benchmark_lists, "msad", tmp_path / "rgb", event_base_path=tmp_path / "event_thr_10")
    msg = str(info.value)
    assert "2 problems with the event tree" in msg
    assert "Assault_2__3.npy does not exist" in msg
    assert "frontdoor1__0.npy have shape (9, 4) but the image features" in msg


def test_absolute_paths_and_read_back(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    lists, _ = run(benchmark_lists, "msad", tmp_path / "rgb")
    write_lists(lists, tmp_path / "abs/train.csv", tmp_path / "abs/test.csv", relative=False)
    first = csv_lines(tmp_path / "abs/test.csv")[1]
    assert first == f"{tmp_path}/rgb/Assault/Assault_2__5.npy,Assault"
    write_lists(lists, tmp_path / "rel/train.csv", tmp_path / "rel/test.csv")
    a, r = read_list(tmp_path / "abs/test.csv"), read_list(tmp_path / "rel/test.csv")
    assert [x.path.resolve() for x in a] == [x.path.resolve() for x in r]
    assert [x.label for x in r] == ["Assault", "Assault", "Normal"]


def test_gt_wrong_dataset_and_missing_annotation(tmp_path):
    make_tree(tmp_path / "rgb", XD_TREE)
    lists, _ = run(benchmark_lists, "xd", tmp_path / "rgb")
    write_lists(lists, tmp_path / "train.csv", tmp_path / "test.csv")
    with pytest.raises(
        GroundTruthError,
        match=r"4 labels do not fit dataset 'ucfcrime' "
        r"\(wrong --dataset\?\)",
    ):
        generate_gt("ucfcrime", tmp_path / "test.csv", tmp_path / "gt.npy")
    (tmp_path / "ann.txt").write_text(XD_ANNOTATIONS.splitlines()[0] + "\n")
    with pytest.raises(GroundTruthError) as info:
        generate_gt("xd", tmp_path / "test.csv", tmp_path / "gt.npy", tmp_path / "ann.txt")
    msg = str(info.value)
    assert f"2 abnormal test videos have no entry in the annotation file {tmp_path}/ann.txt" in msg
    assert "v=S-7rRLrxnVQ__#1_label_B4-0-0 (B4-0-0), v=U6MC8JJJZSY__#1_label_G-0-0 (G-0-0)" in msg
    assert not (tmp_path / "gt.npy").exists()


# ====================================================================== custom folders

CUSTOM_TREE = {
    "normal/walk_01": 4,
    "normal/indoor/sit_02": 3,
    "abnormal/fight/fight_01": 5,
    "abnormal/fight/fight_02": 6,
    "abnormal/fire/fire_2": 4,
    "abnormal/fire/fire_10": 2,
}
CUSTOM_ANNOTATIONS = (
    "video,start_frame,end_frame,class\n"
    "fight_02.mp4,10,20,fight\n"
    "fight_02.mp4,40,200,fight\n"  # beyond 96 frames: clipped
    "sit_02,-1,-1,\n"
)


def test_custom_test_list_and_gt(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[0, 5])
    (tmp_path / "test.txt").write_text("fight_02\nsit_02.mp4\n")
    lists, warned = run(custom_lists, tmp_path / "feat", test_list=tmp_path / "test.txt")
    assert warned == []
    write_lists(lists, tmp_path / "l/train.csv", tmp_path / "l/test.csv")
    p = "../feat"
    assert csv_lines(tmp_path / "l/train.csv") == [
        "path,label",
        *rows_of(f"{p}/abnormal/fight", "fight_01", "fight", [0, 5]),
        *rows_of(f"{p}/abnormal/fire", "fire_2", "fire", [0, 5]),  # natural order
        *rows_of(f"{p}/abnormal/fire", "fire_10", "fire", [0, 5]),
        *rows_of(f"{p}/normal", "walk_01", "normal", [0, 5]),
    ]
    assert csv_lines(tmp_path / "l/test.csv") == [  # order of the test list
        "path,label",
        f"{p}/abnormal/fight/fight_02__5.npy,fight",
        f"{p}/normal/indoor/sit_02__5.npy,normal",
    ]
    (tmp_path / "ann.csv").write_text(CUSTOM_ANNOTATIONS)
    s, warned = run(
        generate_gt, "custom", tmp_path / "l/test.csv", tmp_path / "gt.npy", tmp_path / "ann.csv"
    )
    assert [w.split(":")[0] for w in warned] == ["fight_02"]
    expected = np.concatenate([z(10), o(10), z(20), o(56), z(48)])
    np.testing.assert_array_equal(np.load(tmp_path / "gt.npy"), expected)
    assert [(v.name, v.label, v.segments) for v in s.videos] == [
        ("fight_02", "fight", [(10, 20), (40, 96)]),
        ("sit_02", "normal", []),
    ]


def test_custom_annotations_define_the_test_split(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[5])
    (tmp_path / "ann.csv").write_text(CUSTOM_ANNOTATIONS)
    lists, _ = run(custom_lists, tmp_path / "feat", annotations=tmp_path / "ann.csv")
    assert [(e.path.name, e.label) for e in lists.test] == [
        ("fight_02__5.npy", "fight"),
        ("sit_02__5.npy", "normal"),
    ]
    assert lists.train_videos == 4


def test_custom_fraction_is_stratified_and_seeded(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[5])

    def split(seed: int) -> tuple[tuple[str, str], ...]:
        lists, _ = run(custom_lists, tmp_path / "feat", test_fraction=0.5, seed=seed)
        assert lists.test_videos + lists.train_videos == 6
        return tuple((e.path.name, e.label) for e in lists.test)

    first = split(0)
    assert split(0) == first
    # one of the two videos of each label
    assert sorted(label for _, label in first) == ["fight", "fire", "normal"]
    assert len({split(s) for s in range(10)}) > 1


def test_custom_fraction_draws_only_annotated_abnormal_videos(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[5])
    (tmp_path / "ann.csv").write_text("video,start_frame,end_frame\nfight_01,0,16\nfire_2,0,8\n")
    for seed in range(5):
        lists, _ = run(
            custom_lists,
            tmp_path / "feat",
            test_fraction=0.5,
            seed=seed,
            annotations=tmp_path / "ann.csv",
        )
        abnormal = sorted(e.path.name for e in lists.test if e.label != "normal")
        assert abnormal == ["fight_01__5.npy", "fire_2__5.npy"]
    (tmp_path / "ann.csv").write_text("video,start_frame,end_frame\nfight_01,0,16\n")
    lists, warned = run(
        custom_lists, tmp_path / "feat", test_fraction=0.5, annotations=tmp_path / "ann.csv"
    )
    assert [e.label for e in lists.test].count("fire") == 0
    assert any(
        w.startswith(
            "too few annotated videos to draw the test fraction from, per class: fire (0 of 1)"
        )
        for w in warned
    )


def test_custom_training_only(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[0])
    lists, _ = run(custom_lists, tmp_path / "feat")
    assert lists.test == [] and lists.train_videos == 6
    written = write_lists(lists, tmp_path / "train.csv", tmp_path / "test.csv")
    assert written == [tmp_path / "train.csv"] and not (tmp_path / "test.csv").exists()


def test_custom_bad_layouts(tmp_path):
    make_tree(tmp_path / "a", {"normal/x": 2, "clips/y": 2, "abnormal/z": 2}, crops=[5])
    with pytest.raises(
        ListError,
        match=r"2 videos are not under normal/ or abnormal/<class>/: "
        r"abnormal/z, clips/y",
    ):
        custom_lists(tmp_path / "a")
    make_tree(tmp_path / "b", {"abnormal/normal/x": 2}, crops=[5])
    with pytest.raises(ListError, match=r"class folder may not be called 'normal'"):
        custom_lists(tmp_path / "b")
    make_tree(tmp_path / "c", {"normal/x": 2, "abnormal/fire/x": 2}, crops=[5])
    with pytest.raises(ListError, match=r"appear more than once.*abnormal/fire/x and normal/x"):
        custom_lists(tmp_path / "c")


def test_custom_bad_test_inputs(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[5])
    (tmp_path / "t.txt").write_text("fight_02\nfight_99\n")
    with pytest.raises(ListError, match=r"names 1 videos with no features under .*: fight_99"):
        custom_lists(tmp_path / "feat", test_list=tmp_path / "t.txt")
    (tmp_path / "ann.csv").write_text(CUSTOM_ANNOTATIONS)
    (tmp_path / "t.txt").write_text("fight_02\nfire_10\n")
    with pytest.raises(
        ListError,
        match=r"1 abnormal test videos have no entry in .*ann\.csv: "
        r"abnormal/fire/fire_10",
    ):
        custom_lists(
            tmp_path / "feat", test_list=tmp_path / "t.txt", annotations=tmp_path / "ann.csv"
        )
    (tmp_path / "ann2.csv").write_text("video,start_frame,end_frame\nghost,0,4\n")
    with pytest.raises(ListError, match=r"names 1 videos with no features under .*: ghost"):
        custom_lists(tmp_path / "feat", annotations=tmp_path / "ann2.csv")
    with pytest.raises(ValueError, match="either --test_list or --test_fraction"):
        custom_lists(tmp_path / "feat", test_list=tmp_path / "t.txt", test_fraction=0.2)
    with pytest.raises(ValueError, match=r"between 0 and 1 \(exclusive\), got 1.0"):
        custom_lists(tmp_path / "feat", test_fraction=1.0)


def test_custom_gt_without_annotations(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[5])
    (tmp_path / "t.txt").write_text("walk_01\nfire_10\n")
    lists, _ = run(custom_lists, tmp_path / "feat", test_list=tmp_path / "t.txt")
    write_lists(lists, tmp_path / "train.csv", tmp_path / "test.csv")
    with pytest.raises(
        GroundTruthError,
        match=r"1 abnormal test videos have no entry in any "
        r"annotation file \(none was given: pass --frame_lbl_txt\): fire_10 "
        r"\(fire\)",
    ):
        generate_gt("custom", tmp_path / "test.csv", tmp_path / "gt.npy")


# ====================================================================== command line


def test_default_paths(tmp_path):
    d = default_paths("xd", tmp_path)
    assert (d.train, d.test, d.gt) == (
        tmp_path / "xd/train.csv",
        tmp_path / "xd/test.csv",
        tmp_path / "xd/gt.npy",
    )
    assert default_paths("msad").train == REPO / "list/msad/train.csv"


def test_mains_write_to_the_default_locations(tmp_path, capsys):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    assert generate_file_main(["--base_path", str(tmp_path / "rgb")], "msad", tmp_path) == 0
    assert generate_gt_main([], "msad", tmp_path) == 0
    out = capsys.readouterr()
    assert "train: 2 videos, 20 rows ->" in out.out and "test: 3 videos (crop 5)" in out.out
    assert "warning: 477 of the 479 train videos" in out.err
    assert "warning: Assault_11: annotated span [1, 250)" in out.err
    gt = load_gt(tmp_path / "msad/gt.npy")
    check_gt_length(gt, ["Assault_2", "Assault_11", "MSAD_normal_testing_1"], [15, 10, 2])


def test_main_errors_exit_2(tmp_path, capsys):
    make_tree(tmp_path / "rgb", {"Abuse/Abuse999_x264": 2})
    assert (
        generate_file_main(
            ["--dataset", "ucfcrime", "--base_path", str(tmp_path / "rgb")], list_dir=tmp_path
        )
        == 2
    )
    assert "error: 1 feature videos under" in capsys.readouterr().err
    assert (
        generate_file_main(
            ["--base_path", str(tmp_path / "rgb"), "--test_fraction", "0.2"], "ucfcrime", tmp_path
        )
        == 2
    )
    assert "--test_fraction apply to --dataset custom only" in capsys.readouterr().err
    assert generate_gt_main([], "ucfcrime", tmp_path) == 2
    assert "error: list file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate_file_main(["--dataset", "xd", "--base_path", "x"], "ucfcrime", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("cwd", ["repo", "list"])
def test_scripts_run_uninstalled(tmp_path, cwd):
    """``python list/ucf_generate_file.py`` and ``cd list; python ucf_generate_gt.py``."""
    make_tree(tmp_path / "rgb", UCF_TREE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    here = REPO if cwd == "repo" else REPO / "list"
    pre = "list/" if cwd == "repo" else ""
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, f"{pre}ucf_generate_file.py", "--base_path", str(tmp_path / "rgb"),
         "--train_save_path", str(out / "train.csv"), "--test_save_path", str(out / "test.csv")],
        cwd=here, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "test: 3 videos (crop 5)" in r.stdout
    r = subprocess.run(
        [sys.executable, f"{pre}generate_gt.py", "--dataset", "ucfcrime",
         "--csv_path", str(out / "test.csv"), "--save_path", str(out / "gt.npy")],
        cwd=here, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out / "gt.npy"), UCF_GT)


# ====================================================================== manifests (issue 4)


def write_manifests(root: Path, videos: dict[str, int], crops=CROPS) -> None:
    """The extractor's completion marks: ``root/<Folder>/<stem>.manifest.json``."""
    for rel, t in videos.items():
        p = root / f"{rel}{MANIFEST_SUFFIX}"
        p.write_text(json.dumps({"format": MANIFEST_FORMAT, "T": t, "crops": list(crops)}))


def test_extracted_tree_leaves_out_videos_without_a_complete_manifest(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    write_manifests(tmp_path / "rgb", MSAD_TREE)
    # a failed redo: the extractor drops the manifest first, then dies mid-way
    (tmp_path / "rgb/Assault/Assault_11.manifest.json").unlink()
    # an interrupted write: the manifest lists crop 7, whose file is gone
    (tmp_path / "rgb/Normal/frontdoor1__7.npy").unlink()
    lists, warned = run(benchmark_lists, "msad", tmp_path / "rgb")
    left_out = [w for w in warned if w.startswith("left out 2 videos whose extraction")]
    assert len(left_out) == 1
    assert "Assault/Assault_11 (no manifest)" in left_out[0]
    assert "Normal/frontdoor1 (crops 7 missing)" in left_out[0]
    assert "Rerun the extractor" in left_out[0]
    listed = {video_stem(e.path) for e in lists.train + lists.test}
    assert listed == {"Assault_1", "Assault_2", "MSAD_normal_testing_1"}


def test_crop_files_not_in_the_manifest_are_stale(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE, crops=[0, 5])
    write_manifests(tmp_path / "feat", CUSTOM_TREE, crops=[0])  # crop 5: an older run's
    write_manifests(tmp_path / "feat", {"normal/walk_01": 4}, crops=[0, 5])
    lists, warned = run(custom_lists, tmp_path / "feat", test_crop=0)
    assert warned[0].startswith("left out 5 videos")
    assert "abnormal/fight/fight_01 (crops 5 not in its manifest)" in warned[0]
    assert {video_stem(e.path) for e in lists.train} == {"walk_01"}


def test_event_tree_manifests_are_checked_too(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    make_tree(tmp_path / "event_thr_20", MSAD_TREE)
    write_manifests(tmp_path / "rgb", MSAD_TREE)
    write_manifests(tmp_path / "event_thr_20", MSAD_TREE)
    (tmp_path / "event_thr_20/Assault/Assault_2.manifest.json").unlink()
    lists, warned = run(
        benchmark_lists, "msad", tmp_path / "rgb", event_base_path=tmp_path / "event_thr_20"
    )
    assert any("Assault/Assault_2 (event no manifest)" in w for w in warned)
    assert [video_stem(e.path) for e in lists.test] == ["Assault_11", "MSAD_normal_testing_1"]


def test_released_tree_without_manifests_is_listed_without_warnings(tmp_path):
    make_tree(tmp_path / "feat", CUSTOM_TREE)
    lists, warned = run(custom_lists, tmp_path / "feat")
    assert warned == [] and lists.train_videos == len(CUSTOM_TREE)


# ====================================================================== labels (issue 3)


def test_label_case_mismatch_is_named(tmp_path):
    write_list(tmp_path / "train.csv", [(tmp_path / "rgb/a__0.npy", "Normal")] * 4)
    rows = read_list(tmp_path / "train.csv")
    assert rows[3].line == 5
    err = get_spec("custom").check_label(rows[3].label)
    assert "'Normal' is not a label of dataset 'custom': did you mean 'normal'?" in err
    assert "--normal_label Normal" in err
    assert "did you mean 'Normal'?" in get_spec("ucfcrime").check_label("normal")
    assert "did you mean 'B1-G-0'?" in get_spec("xd").check_label("b1-g-0")
    assert get_spec("custom").check_label("fighting") is None
    assert get_spec("custom").check_label("normal") is None
    assert "unknown label 'Burgling'" in get_spec("ucfcrime").check_label("Burgling")


def test_gt_of_a_custom_list_with_a_capitalised_normal_label(tmp_path):
    make_tree(tmp_path / "feat", {"normal/walk_01": 2}, crops=[5])
    write_list(tmp_path / "test.csv", [(tmp_path / "feat/normal/walk_01__5.npy", "Normal")])
    with pytest.raises(GroundTruthError, match=r"line 2: label 'Normal'.*did you mean 'normal'"):
        generate_gt("custom", tmp_path / "test.csv", tmp_path / "gt.npy")


def test_custom_class_folder_named_normal_in_another_case(tmp_path):
    make_tree(tmp_path / "feat", {"normal/a": 2, "abnormal/Normal/b": 2})
    with pytest.raises(ListError, match=r"abnormal/Normal/b \(class folder may not be called"):
        custom_lists(tmp_path / "feat")


# ====================================================================== encodings (issue 5)


@pytest.mark.parametrize(
    "reader, error",
    [
        (lambda p: read_list(p), ListError),
        (lambda p: read_annotations(p), AnnotationError),
        (lambda p: read_names(p), ListError),
    ],
)
def test_non_utf8_files_name_the_byte(tmp_path, reader, error):
    p = tmp_path / "list.csv"
    p.write_bytes("path,label\nfeats/caf\u00e9__0.npy,Normal\n".encode("latin-1"))
    with pytest.raises(error) as info:
        reader(p)
    msg = str(info.value)
    assert f"{p} is not UTF-8 text: byte 0xe9 at byte offset 20 (line 2)" in msg
    assert "iconv -f latin1 -t utf-8" in msg


def test_utf16_list_names_the_nul_byte(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes("path,label\n".encode("utf-16-le"))  # no BOM: every other byte is NUL
    with pytest.raises(ListError, match=r"holds a NUL byte at byte offset 1 \(line 1\).*utf-16"):
        read_list(p)


def test_malformed_csv_rows(tmp_path):
    (tmp_path / "l.csv").write_text('path,label\na__0.npy,Normal\n"' + "x" * 200_000 + '",A\n')
    with pytest.raises(ListError, match=r"l\.csv, line 3: not a valid CSV row \(field larger"):
        read_list(tmp_path / "l.csv")
    (tmp_path / "e.csv").write_text("path,label\n,Normal\n")
    with pytest.raises(ListError, match=r"e\.csv, line 2: empty path"):
        read_list(tmp_path / "e.csv")


# ====================================================================== event paths (issue 6)


def test_event_path_replaces_the_rgb_folder_only(tmp_path):
    p = Path("/data/rgb_v2/rgb/Abuse/rgb_clip__0.npy")
    assert derive_event_path(p, "event_thr_20") == Path(
        "/data/rgb_v2/event_thr_20/Abuse/rgb_clip__0.npy"
    )
    # the last folder named rgb is the image tree
    assert derive_event_path(Path("/rgb/x/rgb/a__0.npy"), "ev") == Path("/rgb/x/ev/a__0.npy")
    # other names for both trees
    assert derive_event_path(Path("/d/clip_img/a__0.npy"), "evt", "clip_img") == Path(
        "/d/evt/a__0.npy"
    )


def test_event_path_without_an_rgb_folder_names_the_options(tmp_path):
    (tmp_path / "l.csv").write_text("path,label\nfeats_rgb/a__0.npy,Normal\n")
    with pytest.raises(ListError) as info:
        read_list(tmp_path / "l.csv", event_dir="event_thr_10")
    msg = str(info.value)
    assert f"event-feature path of {tmp_path}/feats_rgb/a__0.npy" in msg
    assert "contains no 'rgb' to replace by 'event_thr_10'" in msg
    assert "--image_dir_name" in msg and "--event_dir_name" in msg
    assert "--event_base_path" in msg
    rows = read_list(tmp_path / "l.csv", event_dir="feats_ev", image_dir="feats_rgb")
    assert rows[0].event_path == tmp_path / "feats_ev/a__0.npy"


# ====================================================================== test-list order (issue 1)


def test_reordered_test_list_is_refused_by_its_generated_gt(tmp_path):
    make_tree(tmp_path / "rgb", MSAD_TREE)
    lists, _ = run(benchmark_lists, "msad", tmp_path / "rgb")
    write_lists(lists, tmp_path / "train.csv", tmp_path / "test.csv")
    run(generate_gt, "msad", tmp_path / "test.csv", tmp_path / "gt.npy")
    header, *rows = csv_lines(tmp_path / "test.csv")
    (tmp_path / "test.csv").write_text("\n".join([header, *rows[::-1]]) + "\n")
    test_rows = read_list(tmp_path / "test.csv")
    names, lengths = [r.stem for r in test_rows], [num_snippets(r.path) for r in test_rows]
    with pytest.raises(
        GroundTruthError,
        match=r"does not match the test list's order: test video #0 is 'MSAD_normal_testing_1' "
        r"but the ground truth's video #0 is 'Assault_2' \(it is video #2",
    ):
        check_gt_length(load_gt(tmp_path / "gt.npy"), names, lengths)
    # the same frames without the sidecar: accepted, with the warning that says so
    (tmp_path / "bare.npy").write_bytes((tmp_path / "gt.npy").read_bytes())
    _, warned = run(check_gt_length, load_gt(tmp_path / "bare.npy"), names, lengths)
    assert len(warned) == 1 and "cannot be verified" in warned[0]
