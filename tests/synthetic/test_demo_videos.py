"""The generated demo dataset: deterministic, balanced, laid out as custom data, and each kind
of anomaly visible to the modality it is meant for."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace

import cv2
import numpy as np
import torch

from iefvad.synthetic.videos import (
    FAILURES,
    DemoVideoSpec,
    calibration_plans,
    camera_failure,
    make_demo_videos,
    plan_dataset,
    plan_video,
    render_frames,
)
from iefvad.video.decode import resize_frame
from iefvad.video.events import snippet_event_counts

SMALL = DemoVideoSpec(
    width=96, height=72, train=(2, 1, 1), test=(1, 1, 1), snippets=(4, 5), span_snippets=(1, 2)
)


def frames_of(plan, spec, n=None):
    out = []
    for i, f in enumerate(render_frames(plan, spec)):
        if n is not None and i >= n:
            break
        out.append(f.copy())
    return np.stack(out)


def test_same_seed_same_videos_other_seed_other_videos():
    a, b = plan_dataset(SMALL), plan_dataset(SMALL)
    assert a == b
    np.testing.assert_array_equal(frames_of(a[3], SMALL, 20), frames_of(b[3], SMALL, 20))
    c = plan_dataset(replace(SMALL, seed=1))
    assert [p.seed for p in c] != [p.seed for p in a]
    assert [p.name for p in a] == [
        "train_normal_01",
        "train_normal_02",
        "train_appearance_01",
        "train_motion_01",
        "test_normal_01",
        "test_appearance_01",
        "test_motion_01",
    ]


def test_cameras_are_balanced_over_labels_and_calibration_is_separate():
    spec = DemoVideoSpec()
    plans = plan_dataset(spec)
    for split in ("train", "test"):
        for kind in ("normal", "appearance", "motion"):
            scenes = Counter(p.scene for p in plans if p.split == split and p.kind == kind)
            assert max(scenes.values()) - min(scenes.values()) <= 1, (split, kind, scenes)
            assert len(scenes) == spec.scenes
    cal = calibration_plans(spec, 8)
    assert {p.scene for p in cal} == set(range(spec.scenes))
    assert not {p.seed for p in cal} & {p.seed for p in plans}
    for p in plans:
        assert p.frames % 16 == 0
        assert bool(p.spans) == (p.kind != "normal")
        for s, e in p.spans:
            assert 16 <= s < e <= p.frames - 1


def test_layout_lists_and_annotations(tmp_path):
    vids = make_demo_videos(tmp_path, SMALL, workers=1)
    names = {p.name: p for p in vids.plans}
    for p in vids.plans:
        path = vids.path_of(p)
        assert path.is_file()
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n == p.frames, path
    assert (tmp_path / "videos" / "abnormal" / "appearance").is_dir()
    assert (tmp_path / "videos" / "abnormal" / "motion").is_dir()
    test = vids.test_list.read_text().split()
    assert test == ["test_normal_01", "test_appearance_01", "test_motion_01"]
    rows = list(csv.DictReader(vids.annotations.open()))
    assert [r["video"] for r in rows] == ["test_appearance_01", "test_motion_01"]
    for r in rows:
        assert r["class"] == names[r["video"]].kind
        assert (int(r["start_frame"]), int(r["end_frame"])) == names[r["video"]].spans[0]
    assert (tmp_path / "videos.json").is_file()
    again = make_demo_videos(tmp_path, SMALL, workers=1)  # reuses the files
    assert [p.name for p in again.plans] == [p.name for p in vids.plans]


def event_counts(frames: np.ndarray) -> np.ndarray:
    rgb = np.stack([resize_frame(f, rgb=True) for f in frames])
    return snippet_event_counts(torch.from_numpy(rgb)).numpy()


def test_appearance_anomaly_shows_in_frames_not_in_events():
    spec = replace(DemoVideoSpec(), noise=0.0)
    plan = next(p for p in plan_dataset(spec) if p.kind == "appearance")
    without = plan_video(spec, plan.name, plan.split, plan.kind, plan.seed, plan.scene)
    without.objects = without.objects[:-1]  # the same video without the parked cart
    a, b = frames_of(plan, spec), frames_of(without, spec)
    s, e = plan.spans[0]
    mid = (s + e) // 2
    changed = np.abs(a[mid].astype(int) - b[mid].astype(int)).max(-1) > 30
    assert changed.mean() > 0.04  # a large, differently coloured object in the frame
    ca, cb = event_counts(a), event_counts(b)
    extra = (np.abs(ca - cb) > 0).mean(axis=(1, 2))
    assert extra.max() < 0.02  # it changes under 2% of the event map of any snippet


def test_motion_anomaly_shows_in_events():
    spec = replace(DemoVideoSpec(), noise=0.0)
    for behaviour in ("run", "erratic"):
        plan = next(
            p
            for p in plan_dataset(spec)
            if p.kind == "motion" and p.objects[0].behaviour == behaviour
        )
        counts = event_counts(frames_of(plan, spec))
        active = (counts > 0).mean(axis=(1, 2))
        s, e = plan.spans[0]
        inside = [k for k in range(len(active)) if 16 * k >= s and 16 * k + 16 <= e]
        outside = [k for k in range(len(active)) if 16 * k + 16 <= s or 16 * k >= e]
        assert min(active[inside]) > 2 * max(active[outside]), (behaviour, active)


def test_camera_failure_hits_exactly_its_span():
    plan = plan_dataset(SMALL)[4]
    clean = frames_of(plan, SMALL, 40)
    span = (10, 25)
    inside = np.zeros(len(clean), bool)
    inside[span[0] : span[1]] = True
    for mode in FAILURES:
        got = np.stack(
            [f.copy() for f in camera_failure(render_frames(plan, SMALL), span, mode, seed=3)][:40]
        )
        np.testing.assert_array_equal(got[~inside], clean[~inside])  # untouched elsewhere
        failed = got[inside]
        if mode == "black":
            assert not failed.any()
        elif mode == "frozen":
            assert (failed == clean[span[0] - 1]).all()
        else:  # heavy noise: unlike the frame, spread over the whole range, new every frame
            assert failed.std() > 60 and np.abs(failed.astype(int) - clean[inside]).mean() > 40
            assert (failed[0] != failed[1]).mean() > 0.9
            again = [f.copy() for f in camera_failure(render_frames(plan, SMALL), span, mode, 3)]
            np.testing.assert_array_equal(np.stack(again[:40]), got)  # seeded


def test_failure_videos_of_the_camera_failure_study():
    from iefvad.studies.camera_failure import FailureConfig, failure_videos

    plans = plan_dataset(SMALL)
    cfg = FailureConfig(span_snippets=2)
    got = failure_videos(plans, cfg)
    assert [(f.plan.name, f.mode) for f in got] == [
        (name, mode) for name in ("test_normal_01", "test_motion_01") for mode in FAILURES
    ]
    for f in got:
        s, e = f.span
        assert s % 16 == 0 and e - s == 32 and s >= 16 and e <= f.plan.frames - 16
    assert [f.span for f in failure_videos(plans, cfg)] == [f.span for f in got]
