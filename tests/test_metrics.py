"""Metrics on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from iefvad.metrics import (
    VideoResult,
    abnormal_only,
    auc_ap,
    detection_map,
    per_class,
    segments_from_mask,
)


def test_auc_ap_and_undefined_cases():
    gt = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    m = auc_ap(gt, s)
    assert m["auc"] == pytest.approx(roc_auc_score(gt, s))
    assert m["auc"] == pytest.approx(8 / 9)
    assert auc_ap(np.zeros(4), np.arange(4.0)) == {"auc": None, "ap": None}


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
