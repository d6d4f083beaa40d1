"""The generator's regime knobs (bench/regimes.py): lengths, span counts, per-class streams,
training frame labels; the defaults leave earlier sets unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from iefvad.data.csv_lists import read_list
from iefvad.data.groundtruth import load_gt
from iefvad.synthetic.features import SynthSpec, make_feature_set


def _make(tmp_path, **kw):
    spec = SynthSpec(train_normal=3, train_abnormal=4, test_normal=2, test_abnormal=4,
                     crops=1, dim=8, **kw)  # fmt: skip
    return make_feature_set(tmp_path, spec, workers=1)


def test_uniform_lengths_span_counts_and_training_labels(tmp_path):
    s = _make(tmp_path, t_dist="uniform", t_min=40, t_max=60, span_count=(3, 3),
              span_fraction=(0.02, 0.03), train_gt=True)  # fmt: skip
    train = load_gt(tmp_path / "train_gt.npy").videos
    rows = read_list(s.train_csv, event_dir="event_thr_10")
    assert [v.name for v in train] == [r.stem.rsplit("__", 1)[0] for r in rows]
    videos = train + load_gt(s.gt_path).videos
    counts = []
    for v in videos:
        assert 40 * 16 <= v.frames <= 60 * 16
        if v.label == "Normal":
            assert not v.segments
        else:
            counts.append(len(v.segments))
    assert max(counts) == 3 and min(counts) >= 1  # 3 spans each, merged where they overlap


def test_mixed_plants_both_streams_for_one_class_and_events_for_the_other(tmp_path):
    s = _make(tmp_path, signal_modality="mixed", noise=0.0, scene=0.0, scene_jitter=0.0)
    for r, v in zip(read_list(s.test_csv, event_dir="event_thr_10"), load_gt(s.gt_path).videos):
        img, evt = np.abs(np.load(r.path)).sum(), np.abs(np.load(r.event_path)).sum()
        if v.label == "Abuse":
            assert img > 0 and evt > 0
        elif v.label == "Fighting":
            assert img == 0 and evt > 0


def test_bad_knobs_are_named():
    from iefvad.synthetic.features import check_spec

    with pytest.raises(ValueError, match="t_dist"):
        check_spec(SynthSpec(t_dist="gamma"))
    with pytest.raises(ValueError, match="span_count"):
        check_spec(SynthSpec(span_count=(2, 1)))
