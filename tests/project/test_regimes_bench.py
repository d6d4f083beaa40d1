"""bench/regimes.py: the fixed rule that splits the regimes into tuning and held-out halves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("regimes", ROOT / "bench" / "regimes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_halves_alternate_along_each_axis_and_the_issue_set_is_held_out():
    b = _bench()
    r = b.regimes()
    assert r["base"][0] == "tuning" and r["issue"][0] == "heldout"
    # the literal reading of the issue's set keeps the generator's defaults, not the suite's
    assert r["issue_literal"][0] == "heldout"
    assert r["issue_literal"][2]["crops"] == 2 and "t_median" not in r["issue_literal"][2]
    for axis, levels in b.AXES.items():
        halves = [r[name][0] for name, _ in levels]
        assert halves == ["tuning" if i % 2 == 0 else "heldout" for i in range(len(levels))]
        assert all(r[name][1] == axis for name, _ in levels)
    assert set(b.QUICK) <= set(r)
    assert {r[n][0] for n in b.QUICK} == {"tuning", "heldout"}
    # the data seed depends on the name only (the same files in every session)
    assert b.data_seed("len450") == b.data_seed("len450") != b.data_seed("len60")
    assert b.variant_flags("small+train_sample=pick") == [
        "--preset",
        "small",
        "--train_sample",
        "pick",
    ]


def test_score_profile_separates_finding_the_videos_from_finding_the_spans():
    import numpy as np

    b = _bench()
    gt_normal = np.zeros(10)
    gt_abnormal = np.r_[np.zeros(6), np.ones(2), np.zeros(2)]
    frames = np.repeat(np.r_[gt_normal, gt_abnormal], 16)
    # right videos, right spans
    good = b.score_profile([np.zeros(10), gt_abnormal * 0.9 + 0.05], frames)
    assert good["video_auc"] == 1.0 and good["local_auc"] == 1.0 and good["frame_auc"] == 1.0
    assert good["score_in_span"] == 0.95 and good["score_out_of_span"] == 0.05
    # the abnormal video as a whole scores higher, but not its span: video found, span missed
    flat = np.full(10, 0.6)
    flat[6:8] = 0.5
    missed = b.score_profile([np.full(10, 0.2), flat], frames)
    assert missed["video_auc"] == 1.0 and missed["local_auc"] == 0.0
    assert missed["score_normal_videos"] == 0.2
