"""``make demo`` at CI size: generated videos -> extraction -> lists/GT -> three trainings ->
table and figure, then ``infer.py`` on one of its videos with the fused checkpoint."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from iefvad.cli.infer import main as infer_main
from iefvad.engine.metrics import auc_ap
from iefvad.extraction.provenance import read_record
from iefvad.studies.demo import MODELS, extract_features, format_table, quick_config, run_demo

pytestmark = pytest.mark.slow  # end to end: the whole pipeline in seconds to minutes

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = quick_config(tmp_path_factory.mktemp("demo") / "out")
    cfg.quiet = True
    return cfg, run_demo(cfg)


def test_quick_demo_writes_table_figure_and_checkpoints(demo):
    cfg, res = demo
    assert [r["model"] for r in res.table] == list(MODELS)
    for r in res.table:
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["ap"] <= 1.0
        assert set(r) >= {"auc_appearance", "auc_motion"}
    text = format_table(res.table)
    assert "fused" in text and "AUC motion" in text
    assert res.figure.is_file() and res.figure.stat().st_size > 10_000
    assert res.plots and all(p.is_file() for p in res.plots)
    saved = json.loads((cfg.out / "results" / "metrics.json").read_text())
    assert saved["table"] == res.table
    # the fused model's checkpoint names the encoders, so infer.py can rebuild them
    rec = read_record(res.checkpoints["fused"])
    assert rec is not None and rec["image"]["random_init"] and rec["event"]["random_init"]
    assert rec["recipe"]["event_norm"] == cfg.event_norm


def test_table_auc_is_the_frame_auc_of_the_lists(demo):
    """Recompute one row of the table from the list files the demo wrote."""
    from iefvad.data.csv_lists import read_list
    from iefvad.data.groundtruth import load_gt
    from iefvad.datasets.specs import get_spec
    from iefvad.engine.evaluate import load_test_set, predict
    from iefvad.models.checkpoint import load_model

    cfg, res = demo
    lists = cfg.out / "lists"
    rows = read_list(lists / "test.csv", None, get_spec("custom").event_dir)
    gt = load_gt(lists / "gt.npy").frames
    assert gt.size == 16 * sum(int(np.load(r.path, mmap_mode="r").shape[0]) for r in rows)
    model, _ = load_model(res.checkpoints["fused"], "cpu")
    scores = predict(model, load_test_set(rows, None, progress=False), "cpu").frame_scores()
    fused = next(r for r in res.table if r["model"] == "fused")
    assert fused["auc"] == pytest.approx(auc_ap(gt, scores)["auc"], abs=1e-9)


def test_infer_scores_a_demo_video_with_the_demo_checkpoint(demo, tmp_path):
    cfg, res = demo
    video = next((cfg.out / "data" / "videos" / "abnormal" / "motion").glob("*.mp4"))
    with pytest.raises(SystemExit) as e:
        infer_main([str(video), "--ckpt_path", str(res.checkpoints["fused"]), "--out",
                    str(tmp_path)])  # fmt: skip
    assert e.value.code == 0
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    with open(tmp_path / f"{video.stem}.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(frames))
    w = np.array([[float(r["w_image"]), float(r["w_event"])] for r in rows])
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    for ext in ("json", "png"):
        assert (tmp_path / f"{video.stem}.{ext}").is_file()


def test_rerun_reuses_videos_and_features(demo):
    """A second run finds every video and feature file in place and extracts nothing."""
    cfg, _ = demo
    summary, _, _ = extract_features(cfg, cfg.out / "data" / "videos")
    assert not summary.done and not summary.failed and summary.skipped


def test_camera_failure_study_reports_every_recipe_and_mode(demo):
    from iefvad.studies.camera_failure import RECIPE_NAMES, FailureConfig, run_camera_failure

    cfg, _ = demo  # reuses the demo's videos and features
    out = run_camera_failure(FailureConfig(demo=cfg))
    table = out["table"]
    assert [(r["recipe"], r["mode"]) for r in table] == [
        (rec, mode) for rec in RECIPE_NAMES for mode in ("all", "black", "frozen", "noise")
    ]
    for r in table:
        assert 0.0 <= r["w_image_inside"] <= 1.0 and 0.0 <= r["clean_auc"] <= 1.0
        # the two weights of a snippet sum to one, inside the span and outside it
        assert r["w_image_inside"] + r["w_event_inside"] == pytest.approx(1.0, abs=1e-3)
    assert out["summary"].is_file() and out["figure"].stat().st_size > 10_000
    assert len(out["summary"].read_text().splitlines()) == len(table) + 1


def test_two_sensor_camera_failure_keeps_the_events_of_the_clean_scene(demo):
    """``--two_sensors``: event features from the simulator watching the clean videos; a
    failing copy pairs its own image features with the clean video's event features."""
    from iefvad.studies.camera_failure import SIM_TREE, FailureConfig, run_camera_failure

    cfg, _ = demo
    out = run_camera_failure(FailureConfig(demo=cfg, two_sensors=True))
    assert out["figure"].name == "demo_camera_failure_two_sensors.png"
    assert "two_sensors" in str(out["summary"]) and len(out["table"]) == 8
    sim = sorted((cfg.out / "features" / SIM_TREE).rglob("*.manifest.json"))
    assert sim and all(json.loads(p.read_text())["events"]["source"] == "simulator" for p in sim)
    crop = cfg.crops[0]
    for p in sim[:3]:  # the simulated events differ from the frame differences of the video
        stem = p.name.removesuffix(".manifest.json")
        a = np.load(p.parent / f"{stem}__{crop}.npy")
        rel = p.parent.relative_to(cfg.out / "features" / SIM_TREE)
        b = np.load(cfg.out / "features" / "event_thr_10" / rel / f"{stem}__{crop}.npy")
        assert a.shape == b.shape and not np.allclose(a, b)
