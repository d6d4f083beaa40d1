"""Every kind of bad input stops with a message that names the file and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.data.csv_lists import ListError, read_list, write_list
from iefvad.data.features import FeatureError, read_pairs
from iefvad.data.groundtruth import GroundTruthError, load_gt
from iefvad.datasets.specs import get_spec
from iefvad.engine.evaluate import compute_metrics, load_test_set, predict
from iefvad.engine.train import check_labels
from iefvad.models.model import IEFVAD, ModelConfig
from iefvad.synthetic.features import SynthSpec, make_feature_set

from conftest import ROOT


@pytest.fixture()
def small(tmp_path):
    """A fresh small feature set per test (tests modify its files)."""
    return make_feature_set(
        tmp_path / "f",
        SynthSpec(
            train_normal=2, train_abnormal=2, test_normal=2, test_abnormal=2, crops=1, dim=8, seed=5
        ),
    )


def rows_of(csv: Path):
    return read_list(csv, event_dir="event_thr_10")


def test_missing_and_unreadable_feature_files(small):
    rows = rows_of(small.test_csv)
    rows[1].path.unlink()
    with pytest.raises(FeatureError, match=rf"feature file {rows[1].path} does not exist"):
        read_pairs(rows, None)
    np.save(rows[1].path, np.load(rows[1].event_path))
    rows[2].event_path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FeatureError, match=rf"cannot read feature file {rows[2].event_path}"):
        read_pairs(rows, None)


def test_snippet_count_mismatch_between_modalities(small):
    rows = rows_of(small.test_csv)
    np.save(rows[3].event_path, np.zeros((5, 8), np.float32))
    with pytest.raises(
        FeatureError,
        match=r"have T=\d+ snippets but event features .* have "
        r"T=5; both must come from the same frames",
    ):
        read_pairs(rows, None)


def test_wrong_width_names_file_and_both_widths(small):
    rows = rows_of(small.test_csv)
    np.save(rows[2].path, np.zeros((40, 12), np.float32))
    with pytest.raises(FeatureError, match=rf"{rows[2].path.name} has width D=12 but D=8"):
        read_pairs(rows, None)
    with pytest.raises(FeatureError, match=r"has width D=8 but D=768 is expected"):
        load_test_set(rows[:1], dim=768, progress=False)


def test_nonfinite_values_are_reported_or_zeroed_on_request(small):
    rows = rows_of(small.test_csv)
    for r, bad in ((rows[0], np.nan), (rows[2], np.inf)):
        a = np.load(r.event_path)
        a[3, 1] = bad
        np.save(r.event_path, a)
    with pytest.raises(FeatureError, match=r"2 feature file pair\(s\) contain NaN or Inf") as e:
        read_pairs(rows, None)
    assert str(rows[0].path) in str(e.value) and str(rows[2].path) in str(e.value)
    assert "--nan_policy zero" in str(e.value)
    with pytest.warns(UserWarning, match=r"replaced NaN/Inf by 0 in 2"):
        items = read_pairs(rows, None, nan_policy="zero")
    assert items[0].event[3, 1] == 0.0 and np.isfinite(items[2].event).all()


def test_empty_lists_and_bad_headers(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ListError, match=r"empty\.csv is empty"):
        read_list(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("path,label\n")
    with pytest.raises(ListError, match=r"header\.csv has a header but no rows"):
        read_list(tmp_path / "header.csv")
    (tmp_path / "cols.csv").write_text("file,class\na.npy,Normal\n")
    with pytest.raises(ListError, match=r"lacks 'path' and 'label'"):
        read_list(tmp_path / "cols.csv")
    with pytest.raises(ListError, match=r"nope\.csv does not exist"):
        read_list(tmp_path / "nope.csv")


def test_unknown_labels_name_the_lines(tmp_path):
    write_list(
        tmp_path / "l.csv",
        [(tmp_path / "rgb/a__0.npy", "Normal"), (tmp_path / "rgb/b__0.npy", "Burgling")],
    )
    rows = read_list(tmp_path / "l.csv", event_dir="event_thr_10")
    with pytest.raises(ListError, match=r"line 3: 'Burgling'.*known labels: Normal, Abuse"):
        check_labels(rows, get_spec("ucfcrime"), tmp_path / "l.csv")
    xd_rows = read_list(tmp_path / "l.csv", event_dir="event_thr_10")
    with pytest.raises(ListError, match="unknown label 'Normal' for dataset 'xd'"):
        check_labels(xd_rows, get_spec("xd"), tmp_path / "l.csv")


def test_event_path_that_cannot_be_derived(tmp_path):
    (tmp_path / "l.csv").write_text("path,label\nfeats/a__0.npy,Normal\n")
    with pytest.raises(
        ListError,
        match=r"contains no 'rgb' to replace by 'event_thr_10'.*"
        "event_path",
    ):
        read_list(tmp_path / "l.csv", event_dir="event_thr_10")


def test_ground_truth_length_mismatch_names_first_video(small, tmp_path):
    rows = rows_of(small.test_csv)
    test = load_test_set(rows, progress=False)
    torch.manual_seed(0)
    pred = predict(IEFVAD(ModelConfig(dim=8, heads=2, refine_steps=1)), test)
    spec = get_spec("ucfcrime")
    gt = load_gt(small.gt_path)
    compute_metrics(pred, gt, rows, spec)  # consistent: no error
    # re-extracted third video: one snippet more than the ground truth was made for
    a = np.load(rows[2].path)
    for p in (rows[2].path, rows[2].event_path):
        np.save(p, np.concatenate([a, a[:1]]))
    pred = predict(
        IEFVAD(ModelConfig(dim=8, heads=2, refine_steps=1)), load_test_set(rows, progress=False)
    )
    total = 16 * sum(s.size for s in pred.scores)
    with pytest.raises(
        GroundTruthError,
        match=rf"has {gt.frames.size} frames, the test list "
        rf"needs {total}; the first video where they diverge is #2 "
        rf"'{rows[2].stem}'",
    ):
        compute_metrics(pred, gt, rows, spec)
    # without the sidecar the mismatch is still caught and located
    bare = tmp_path / "bare.npy"
    np.save(bare, np.load(small.gt_path))
    with pytest.raises(
        GroundTruthError,
        match=rf"needs {total} .*ends inside or before video #3 '{rows[3].stem}'; it has "
        r"no per-video sidecar",
    ):
        compute_metrics(pred, load_gt(bare), rows, spec)


@pytest.mark.slow
def test_cli_reports_user_errors_without_traceback(small, tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--train_list",
            str(tmp_path / "none.csv"),
            "--no_progress",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 2
    assert p.stderr.startswith("error: list file ") and "none.csv does not exist" in p.stderr
    assert "Traceback" not in p.stderr
    torch.save({"foo": torch.zeros(1)}, tmp_path / "x.pth")
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "test.py"),
            "--ckpt_path",
            str(tmp_path / "x.pth"),
            "--test_list",
            str(small.test_csv),
            "--gt_path",
            str(small.gt_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 2 and "x.pth has no 'temporal.classifier.weight'" in p.stderr
