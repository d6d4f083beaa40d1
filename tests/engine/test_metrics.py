"""Metrics on constructed inputs with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from iefvad.data.csv_lists import ListRow
from iefvad.data.groundtruth import GroundTruth
from iefvad.datasets.specs import get_spec
from iefvad.engine.evaluate import Predictions, compute_metrics, headline
from iefvad.engine.metrics import (
    VideoResult,
    abnormal_only,
    auc_ap,
    detection_map,
    per_class,
    segments_from_mask,
    trapezoid_ap,
)


def test_auc_ap_and_undefined_cases():
    gt = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    m = auc_ap(gt, s)
    assert m["auc"] == pytest.approx(roc_auc_score(gt, s))
    assert m["auc"] == pytest.approx(8 / 9)
    assert auc_ap(np.zeros(4), np.arange(4.0)) == {"auc": None, "ap": None, "ap_trapz": None}


# Ranked by score: positive, negative, positive, negative. The precision-recall points are
# (recall 0, precision 1) [sklearn's start], (1/2, 1), (1/2, 1/2), (1, 2/3), (1, 1/2).
RANKED_GT = np.array([1, 0, 1, 0], dtype=float)
RANKED_SCORES = np.array([0.9, 0.8, 0.7, 0.6])
# Trapezoids: 1/2 * (1 + 1)/2 + 0 + 1/2 * (1/2 + 2/3)/2 + 0 = 1/2 + 7/24 = 19/24.
HAND_TRAPZ = 19 / 24
# Step sum (average_precision_score): 1/2 * 1 + 1/2 * 2/3 = 5/6.
HAND_STEP = 5 / 6


def test_trapezoid_ap_is_the_hand_computed_area_and_differs_from_sklearn_ap():
    assert trapezoid_ap(RANKED_GT, RANKED_SCORES) == pytest.approx(HAND_TRAPZ)
    assert average_precision_score(RANKED_GT, RANKED_SCORES) == pytest.approx(HAND_STEP)
    m = auc_ap(RANKED_GT, RANKED_SCORES)
    assert m["ap"] == pytest.approx(HAND_STEP) and m["ap_trapz"] == pytest.approx(HAND_TRAPZ)
    assert abs(m["ap"] - m["ap_trapz"]) > 0.04


def _two_videos(dataset: str, normal: str, abnormal: str) -> dict:
    """compute_metrics on a normal video (snippets 0.8, 0.6) and an abnormal one (0.9, 0.7):
    frame for frame the ranking of RANKED_GT / RANKED_SCORES, 16 frames per snippet."""
    rows = [ListRow(Path("a__5.npy"), normal), ListRow(Path("b__5.npy"), abnormal)]
    scores = [np.array([0.8, 0.6]), np.array([0.9, 0.7])]
    pred = Predictions(scores, [np.full(2, 0.5)] * 2, [np.full(2, 0.5)] * 2)
    gt = GroundTruth(np.r_[np.zeros(32), np.ones(32)], None)
    return compute_metrics(pred, gt, rows, get_spec(dataset), detection=False)


def test_xd_headline_is_the_trapezoidal_ap_and_others_keep_auc():
    xd = _two_videos("xd", "A", "B1-0-0")
    assert xd["headline"] == "ap_trapz" and xd["ap_convention"] == "ap_trapz"
    assert xd["ap_trapz"] == pytest.approx(HAND_TRAPZ) and xd["ap"] == pytest.approx(HAND_STEP)
    assert headline(xd).startswith(f"xd: AP(trapz) {100 * HAND_TRAPZ:.2f} | AUC ")
    assert f"| AP {100 * HAND_STEP:.2f}" in headline(xd)
    assert xd["per_class"]["fighting"]["ap_trapz"] is None  # one class only: undefined
    for name, normal in (("ucfcrime", "Normal"), ("shang", "normal"), ("msad", "Normal")):
        spec = get_spec(name)
        abnormal = next(k for k in spec.label_map if k != normal)
        m = _two_videos(name, normal, abnormal)
        assert m["headline"] == "auc" and m["ap_convention"] == "ap"
        assert m["auc"] == pytest.approx(0.75)  # 3 of the 4 (positive, negative) pairs
        assert headline(m).startswith(f"{name}: AUC 75.00 | AP 83.33 | AP(trapz) 79.17")


def test_per_class_and_abnormal_only():
    # video a (normal, frames 0-3), b (cls x, 4-7), c (cls y, 8-11)
    gt = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1], dtype=float)
    s = np.array([0.9, 0.1, 0.1, 0.1, 0.2, 0.8, 0.7, 0.1, 0.3, 0.2, 0.1, 0.05])
    vids = [
        VideoResult("a", 0, 4, ["normal"], True),
        VideoResult("b", 4, 4, ["x"], False),
        VideoResult("c", 8, 4, ["y", "x"], False),
    ]
    pc = per_class(vids, gt, s)
    assert pc["normal"]["auc"] is None and pc["normal"]["videos"] == 1
    assert pc["y"]["auc"] == pytest.approx(0.0)  # abnormal frames scored lowest in c
    xs = np.r_[4:12]
    assert pc["x"]["auc"] == pytest.approx(roc_auc_score(gt[xs], s[xs]))
    assert pc["x"]["videos"] == 2
    ano = abnormal_only(vids, gt, s)
    assert ano["ano_auc"] == pytest.approx(roc_auc_score(gt[4:], s[4:]))


def test_segments_from_mask():
    assert segments_from_mask(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
    assert segments_from_mask(np.zeros(3, bool)) == []


def test_detection_map_perfect_shifted_and_false_alarms():
    scores = [np.r_[np.zeros(10), np.ones(10), np.zeros(10)], np.zeros(30)]
    gts = [[(10, 20)], []]
    m = detection_map(scores, gts)
    assert all(m[k] == pytest.approx(1.0) for k in ("0.1", "0.3", "0.5", "avg"))
    # prediction [10, 20) against annotation [15, 35): IoU 5 / 25 = 0.2
    m = detection_map([np.r_[np.zeros(10), np.ones(10), np.zeros(20)]], [[(15, 35)]])
    assert m["0.1"] == pytest.approx(1.0) and m["0.2"] == pytest.approx(1.0)
    assert m["0.3"] == 0.0 and m["0.5"] == 0.0
    assert m["avg"] == pytest.approx(0.4)
    # a confident false alarm in a normal video ranks first: precision 1/2 at full recall
    scores = [np.r_[np.zeros(10), 0.6 * np.ones(10)], np.r_[np.ones(5), np.zeros(15)]]
    m = detection_map(scores, [[(10, 20)], []])
    assert m["0.5"] == pytest.approx(0.5)
