"""Extraction with a second sensor: the simulator and recordings as event sources, their
representations, manifests, coverage reports, failures and the completion check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.extract import main
from iefvad.events.alignment import frame_times_us
from iefvad.events.representations import crop_maps, snippet_counts
from iefvad.events.simulator import SimulatorConfig, simulate
from iefvad.events.types import Events
from iefvad.extraction.encoders import random_encoder
from iefvad.extraction.event_sources import EventOptions, EventSourceError, RecordingIndex
from iefvad.extraction.layout import OutputLayout, completion, scan_videos
from iefvad.extraction.pipeline import RunConfig, run_extraction, settings_of
from iefvad.extraction.recipe import Encoders, RecipeOptions
from iefvad.video.decode import decode_resized
from iefvad.video.events import grayscale

from extract_helpers import torch_threads, write_video

FPS = 25.0


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def encoders() -> Encoders:
    return Encoders(
        image=random_encoder("tiny", 0), event=random_encoder("tiny", 1, normalise=False)
    )


@dataclass
class MemoryRecording:
    """An in-memory stand-in of :class:`iefvad.events.readers.Recording`."""

    events: Events
    sensor_size: tuple[int, int] | None
    path: str = "<memory>"
    format: str = "memory"

    def time_range(self) -> tuple[int, int] | None:
        return (int(self.events.t[0]), int(self.events.t[-1])) if len(self.events) else None

    def windows(self, edges_us):
        for a, b in zip(edges_us[:-1], edges_us[1:]):
            yield self.events.slice_time(int(a), int(b))


def simulated_recording(video: Path, cfg: SimulatorConfig | None = None) -> Events:
    """The simulator watching the video's resized frames at its frame times: a 340x256 sensor."""
    rgb = decode_resized(video)[..., ::-1].copy()
    gray = grayscale(torch.from_numpy(rgb)).numpy()
    return simulate(gray, frame_times_us(len(gray), FPS)[: len(gray)], cfg or SimulatorConfig())


def save_npz(path: Path, ev: Events) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, t=ev.t, x=ev.x, y=ev.y, p=ev.p)
    return path


def run(tmp_path: Path, enc: Encoders, events: EventOptions, videos: Path, crops=(0, 7)):
    cfg = RunConfig(
        video_dir=videos,
        roots={"image": tmp_path / "out" / "rgb", "event": tmp_path / "out" / "ev"},
        opts=RecipeOptions(crops=crops),
        workers=1,
        progress=False,
        events=events,
    )
    return cfg, run_extraction(cfg, enc)


def test_recordings_give_the_maps_of_their_snippets(tmp_path, encoders) -> None:
    """Event features from a recording = the encoder on the count maps of the events in each
    snippet's window [t(16i), t(16i+16)) - offset; a recording ending early leaves empty maps
    and the manifest says how many seconds are missing."""
    videos = tmp_path / "videos"
    write_video(videos / "A" / "a.mp4", 80, fps=FPS)  # 5 snippets, 3.2 s
    rng = np.random.default_rng(0)
    n = 20_000
    t = np.sort(rng.integers(0, 2_300_000, n))  # events end at 2.3 s (+ 0.1 s offset)
    xy = rng.integers(0, 480, (2, n)).astype(np.int32)
    ev = Events(t, xy[0], xy[1], rng.integers(0, 2, n).astype(np.int8))
    (tmp_path / "dvs").mkdir()
    (tmp_path / "dvs" / "a.npz").touch()  # found by stem; opened by the stand-in
    opened = []

    def opener(path, size):
        opened.append(path)
        return MemoryRecording(ev, (480, 640), path=str(path))

    opts = EventOptions("recordings", "polarity", tmp_path / "dvs", 100_000, opener=opener)
    cfg, summary = run(tmp_path, encoders, opts, videos)
    assert summary.done == ["A/a.mp4"] and opened == [tmp_path / "dvs" / "a.npz"]
    feats = np.load(tmp_path / "out" / "ev" / "A" / "a__7.npy")
    edges = np.arange(6) * 640_000 - 100_000
    counts = snippet_counts(
        [ev.slice_time(a, b) for a, b in zip(edges[:-1], edges[1:])], (480, 640)
    )
    with torch.no_grad():
        want = encoders.event.encode(crop_maps(counts, 7, "polarity")).numpy()
    np.testing.assert_allclose(feats, want, rtol=0, atol=1e-6)
    m = json.loads((tmp_path / "out" / "ev" / "A" / "a.manifest.json").read_text())
    assert m["events"]["source"] == "recordings" and m["events"]["repr"] == "polarity"
    assert m["events"]["time_offset_us"] == 100_000 and m["events"]["events"] <= n
    cov = m["events"]["coverage"]
    assert cov["empty_tail"] == 1 and cov["missing_tail_s"] == pytest.approx(0.8, abs=1e-3)
    assert m["settings"]["event_source"] == "recordings"
    img = json.loads((tmp_path / "out" / "rgb" / "A" / "a.manifest.json").read_text())
    assert "events" not in img


def test_missing_or_unusable_recordings_fail_that_video_only(tmp_path, encoders) -> None:
    videos = tmp_path / "videos"
    write_video(videos / "A" / "a.mp4", 40, fps=FPS)
    write_video(videos / "A" / "b.mp4", 40, fps=FPS)
    write_video(videos / "A" / "c.mp4", 40, fps=FPS)
    (tmp_path / "dvs").mkdir()
    for s in ("a", "c"):
        (tmp_path / "dvs" / f"{s}.npz").touch()
    ev = Events(np.arange(10, dtype=np.int64), *(np.zeros(10, np.int32),) * 2, np.ones(10, np.int8))

    def opener(path, size):
        if path.stem == "c":
            return MemoryRecording(ev, None, path=str(path))  # no sensor size
        return MemoryRecording(ev, (4, 4), path=str(path))

    opts = EventOptions("recordings", None, tmp_path / "dvs", opener=opener)
    _, summary = run(tmp_path, encoders, opts, videos)
    assert summary.done == ["A/a.mp4"]
    assert "no event recording named b.*" in summary.failed["A/b.mp4"]
    assert "--event_sensor_size" in summary.failed["A/c.mp4"]
    assert not (tmp_path / "out" / "rgb" / "A" / "b__0.npy").exists()
    lines = (tmp_path / "out" / "ev" / "extract_failures.txt").read_text()
    assert "A/b.mp4" in lines and "A/c.mp4" in lines


def test_simulator_source_and_the_completion_check(tmp_path, encoders) -> None:
    videos = tmp_path / "videos"
    write_video(videos / "A" / "a.mp4", 48, fps=FPS)
    opts = EventOptions("simulator", "counts")
    cfg, summary = run(tmp_path, encoders, opts, videos, crops=(0,))
    assert summary.done == ["A/a.mp4"]
    feats = np.load(tmp_path / "out" / "ev" / "A" / "a__0.npy")
    # what the simulator source draws: snippet i = events in (t(16i), t(16i+15)]
    ev = simulated_recording(videos / "A" / "a.mp4")
    ft = frame_times_us(48, FPS)
    wins = [ev.slice_time(ft[16 * i] + 1, ft[16 * i + 15] + 1) for i in range(3)]
    with torch.no_grad():
        want = encoders.event.encode(crop_maps(snippet_counts(wins, (256, 340)), 0, "counts"))
    np.testing.assert_allclose(feats, want.numpy(), rtol=0, atol=1e-6)
    m = json.loads((tmp_path / "out" / "ev" / "A" / "a.manifest.json").read_text())
    assert m["events"]["simulator"]["threshold_on"] == 0.2 and m["events"]["events"] == len(ev)
    # rerun: complete; another source or representation: redone; an old manifest without the
    # event settings counts as frame differences
    job = scan_videos(videos).jobs[0]
    layout = OutputLayout(cfg.roots)
    assert completion(layout, "event", job, settings_of("event", encoders, cfg), (0,)) is None
    for other in (EventOptions("simulator", "polarity"), EventOptions()):
        cfg2 = RunConfig(**{**cfg.__dict__, "events": other})
        why = completion(layout, "event", job, settings_of("event", encoders, cfg2), (0,))
        assert why and ("event_source" in why or "event_repr" in why)
    path = layout.manifest_path("event", job)
    for k in ("event_source", "event_repr", "simulator"):
        del m["settings"][k]
    path.write_text(json.dumps(m))
    frames = RunConfig(**{**cfg.__dict__, "events": EventOptions()})
    assert completion(layout, "event", job, settings_of("event", encoders, frames), (0,)) is None


def test_event_options_reject_what_does_not_fit(tmp_path) -> None:
    with pytest.raises(EventSourceError, match="--event_source simulator"):
        EventOptions("frames", "counts")
    with pytest.raises(EventSourceError, match="counts or polarity"):
        EventOptions("simulator", "framediff")
    with pytest.raises(EventSourceError, match="--event_dir"):
        EventOptions("recordings")
    with pytest.raises(EventSourceError, match="not a folder"):
        EventOptions("recordings", event_dir=tmp_path / "nope")
    assert EventOptions().repr == "framediff" and EventOptions("simulator").repr == "counts"
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    for f in ("A/x.npz", "B/x.h5", "A/y.raw", "A/z.txt"):
        (tmp_path / f).touch()
    idx = RecordingIndex(tmp_path)
    assert idx.find("x", "B") == tmp_path / "B" / "x.h5" and idx.find("y").name == "y.raw"
    with pytest.raises(EventSourceError, match="several recordings"):
        idx.find("x")
    with pytest.raises(EventSourceError, match="no event recording named z"):
        idx.find("z")


def test_cli_simulator_run_names_its_tree_and_records_the_source(tmp_path) -> None:
    write_video(tmp_path / "videos" / "Abuse" / "Abuse001_x264.mp4", 40, fps=FPS)
    argv = ["--dataset", "ucfcrime", "--video_dir", str(tmp_path / "videos"), "--out_root",
            str(tmp_path / "out"), "--random_init", "--random_arch", "tiny", "--device", "cpu",
            "--no_progress", "--workers", "1", "--crops", "0", "--event_source", "simulator",
            "--event_repr", "polarity", "--sim_threshold", "0.3", "--sim_seed", "4"]  # fmt: skip
    assert main(argv) == 0
    tree = tmp_path / "out" / "event_sim_polarity" / "Abuse"
    assert np.load(tree / "Abuse001_x264__0.npy").shape[0] == 2
    m = json.loads((tree / "Abuse001_x264.manifest.json").read_text())
    assert m["events"]["simulator"]["threshold_off"] == 0.3
    assert m["events"]["simulator"]["seed"] == 4 and m["events"]["repr"] == "polarity"
    bad = argv[:-8] + ["--event_source", "frames", "--event_repr", "counts"]
    assert main(bad) == 2


def test_an_npz_recording_gives_the_features_of_its_events_in_memory(tmp_path, encoders) -> None:
    """The same simulated events as a UCF-Crime-DVS-style .npz (read by the real reader) and
    as an in-memory recording: equal features (1e-6)."""
    videos = tmp_path / "videos"
    write_video(videos / "A" / "a.mp4", 64, fps=FPS)
    ev = simulated_recording(videos / "A" / "a.mp4")
    assert len(ev) > 1000
    save_npz(tmp_path / "dvs" / "A" / "a.npz", ev)
    from_file = EventOptions("recordings", "counts", tmp_path / "dvs", sensor_size=(256, 340))
    run(tmp_path / "file", encoders, from_file, videos)
    mem = EventOptions(
        "recordings", "counts", tmp_path / "dvs",
        opener=lambda path, size: MemoryRecording(ev, (256, 340), path=str(path)),
    )  # fmt: skip
    run(tmp_path / "mem", encoders, mem, videos)
    for c in (0, 7):
        a = np.load(tmp_path / "file" / "out" / "ev" / "A" / f"a__{c}.npy")
        b = np.load(tmp_path / "mem" / "out" / "ev" / "A" / f"a__{c}.npy")
        assert a.shape == (4, encoders.event.embed_dim) and np.abs(a).sum() > 0
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    m = json.loads((tmp_path / "file" / "out" / "ev" / "A" / "a.manifest.json").read_text())
    assert m["events"]["format"] == "npz" and m["events"]["events"] == len(ev)


@pytest.mark.slow
def test_video_and_its_simulated_recording_to_features_to_lists(tmp_path) -> None:
    """End to end, as a user would: generated videos and their simulated recordings (.npz) ->
    ``extract`` with ``--event_source recordings`` -> ``list/generate_file.py`` (custom)."""
    import subprocess
    import sys

    from extract_helpers import ROOT

    videos = tmp_path / "videos"
    for folder, n, seed in (("normal", 48, 0), ("normal", 40, 1), ("abnormal/Fight", 64, 2)):
        v = write_video(videos / folder / f"v{seed}.mp4", n, fps=FPS, seed=seed)
        save_npz(tmp_path / "dvs" / f"{v.stem}.npz", simulated_recording(v))
    argv = ["--video_dir", str(videos), "--out_root", str(tmp_path / "feats"),
            "--random_init", "--random_arch", "tiny", "--device", "cpu", "--no_progress",
            "--workers", "1", "--crops", "0,5", "--event_source", "recordings",
            "--event_dir", str(tmp_path / "dvs"), "--event_sensor_size", "256x340"]  # fmt: skip
    assert main(argv) == 0
    (tmp_path / "test.txt").write_text("v2\n")
    (tmp_path / "ann.csv").write_text("video,start_frame,end_frame\nv2,10,40\n")
    p = subprocess.run(
        [sys.executable, str(ROOT / "list" / "generate_file.py"), "--dataset", "custom",
         "--base_path", str(tmp_path / "feats" / "rgb"), "--event_base_path",
         str(tmp_path / "feats" / "event_dvs_counts"), "--test_list", str(tmp_path / "test.txt"),
         "--frame_lbl_txt", str(tmp_path / "ann.csv"), "--test_crop", "0",
         "--train_save_path", str(tmp_path / "train.csv"),
         "--test_save_path", str(tmp_path / "test.csv")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    train = (tmp_path / "train.csv").read_text().splitlines()
    test = (tmp_path / "test.csv").read_text().splitlines()
    assert len(train) == 1 + 2 * 2 and len(test) == 1 + 1  # header + crops 0,5 of 2 videos
    assert "event_dvs_counts" in test[1] and "v2__0.npy" in test[1]
    for row in train[1:] + test[1:]:
        for cell in row.split(","):
            if cell.endswith(".npy"):
                assert (tmp_path / cell).exists() or Path(cell).exists()


def test_event_only_recordings_by_window_and_by_count(tmp_path) -> None:
    """No videos: recordings cut by a fixed window or a fixed count of events; a recording
    that cannot be read fails alone; a rerun skips what is complete."""
    from iefvad.extraction.event_only import EventOnlyConfig, run_event_only

    rng = np.random.default_rng(3)
    n = 5_000
    t = np.sort(rng.integers(1_000, 1_001_000, n))
    ev = Events(t, rng.integers(0, 64, n).astype(np.int32), rng.integers(0, 48, n).astype(np.int32),
                rng.integers(0, 2, n).astype(np.int8))  # fmt: skip
    save_npz(tmp_path / "rec" / "walk" / "r1.npz", ev)
    (tmp_path / "rec" / "walk" / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    enc = random_encoder("tiny", 1, normalise=False)
    argv = ["--dataset", "custom", "--event_source", "recordings", "--event_dir",
            str(tmp_path / "rec"), "--event_sensor_size", "48x64", "--out_root",
            str(tmp_path / "out"), "--random_init", "--random_arch", "tiny", "--seed", "0",
            "--device", "cpu", "--crops", "0,9", "--event_window_us", "300000"]  # fmt: skip
    assert main(argv) == 1  # bad.npz failed, r1 extracted
    tree = tmp_path / "out" / "event_dvs_counts"
    got = np.load(tree / "walk" / "r1__9.npy")
    edges = int(t[0]) + 300_000 * np.arange(5)  # windows from the first event past the last
    counts = snippet_counts([ev.slice_time(a, b) for a, b in zip(edges[:-1], edges[1:])], (48, 64))
    with torch.no_grad():
        want = enc.encode(crop_maps(counts, 9, "counts")).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert "walk/bad.npz" in (tree / "extract_failures.txt").read_text()
    assert main(argv) == 1  # r1 skipped (complete), bad fails again
    cfg = EventOnlyConfig(tmp_path / "rec", tmp_path / "cnt", (0,), "polarity", per_snippet=2_000,
                          sensor_size=(48, 64))  # fmt: skip
    summary = run_event_only(cfg, enc)
    assert summary.done == ["walk/r1.npz"] and "walk/bad.npz" in summary.failed
    assert np.load(tmp_path / "cnt" / "walk" / "r1__0.npy").shape == (3, enc.embed_dim)  # 2k+2k+1k
    assert run_event_only(cfg, enc).skipped == ["walk/r1.npz"]
    assert main(argv[:-2] + ["--event_window_us", "5", "--event_count", "5"]) == 2
    assert main(argv[:4] + argv[6:]) == 2  # no --event_source recordings
