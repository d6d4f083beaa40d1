"""The extraction pipeline: reference parity, layout, manifests, resume, failures, sharding, API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.extract import main
from iefvad.extraction.encoders import load_encoder, random_encoder
from iefvad.extraction.layout import (
    ExtractError,
    OutputLayout,
    discover_videos,
    parse_shard,
    shard,
    shard_from_env,
)
from iefvad.extraction.pipeline import RunConfig, run_extraction
from iefvad.extraction.recipe import (
    Encoders,
    RecipeOptions,
    extract_video_features,
    iter_snippet_features,
)
from iefvad.video.decode import num_snippets

from extract_helpers import (
    decode_reference,
    openai_state_dict,
    reference_event_maps,
    reference_groups,
    reference_image_input,
    tiny_clip,
    torch_threads,
    write_video,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_encoders() -> Encoders:
    return Encoders(
        image=random_encoder("tiny", 0), event=random_encoder("tiny", 1, normalise=False)
    )


def test_features_equal_a_plain_fp32_reimplementation(tmp_path) -> None:
    """Image (and event) features of the CLI = per-frame cv2 resize, crop slicing, CLIP
    normalisation, encode, mean of 16 (event: maps of docs/reference.md s.3 through event-CLIP)."""
    img_model, evt_model = tiny_clip(seed=3, layers=2), tiny_clip(seed=4, layers=2)
    torch.save(openai_state_dict(img_model), tmp_path / "clip.pt")
    evt_sd = {f"encoder_k.{k}": v for k, v in openai_state_dict(evt_model).items()}
    torch.save({"checkpoint": evt_sd}, tmp_path / "event.pt")
    video = write_video(tmp_path / "videos" / "Abuse" / "Abuse001_x264.mp4", 64, (37, 29))
    write_video(tmp_path / "videos" / "Normal" / "n.avi", 40, (22, 18), "MJPG", seed=2)
    argv = ["--dataset", "ucfcrime", "--video_dir", str(tmp_path / "videos"),
            "--out_root", str(tmp_path / "out"), "--clip_ckpt", str(tmp_path / "clip.pt"),
            "--event_clip_ckpt", str(tmp_path / "event.pt"), "--device", "cpu",
            "--no_progress", "--workers", "2", "--batch_size", "50"]  # fmt: skip
    assert main(argv) == 0

    rgb = decode_reference(video)
    groups = reference_groups(len(rgb))
    t = num_snippets(len(rgb))
    assert t == 4
    for crop in range(10):
        img = np.load(tmp_path / "out" / "rgb" / "Abuse" / f"Abuse001_x264__{crop}.npy")
        evt = np.load(tmp_path / "out" / "event_thr_10" / "Abuse" / f"Abuse001_x264__{crop}.npy")
        assert img.dtype == evt.dtype == np.float32 and img.shape == evt.shape == (t, 16)
        with torch.no_grad():
            ref_img = torch.stack(
                [
                    img_model.encode_image(reference_image_input(rgb[s : s + 16], crop)).mean(0)
                    for s in range(0, 16 * t, 16)
                ]
            ).numpy()
            ref_evt = torch.cat(
                [
                    evt_model.encode_image(
                        torch.from_numpy(reference_event_maps(rgb[s : s + f], crop))
                    )
                    for s, f in groups
                ]
            ).numpy()
        np.testing.assert_allclose(img, ref_img, atol=1e-4, rtol=0)
        np.testing.assert_allclose(evt, ref_evt, atol=1e-4, rtol=0)
        assert np.abs(ref_img).max() > 0.1  # a real signal, not zeros

    m = json.loads((tmp_path / "out" / "rgb" / "Abuse" / "Abuse001_x264.manifest.json").read_text())
    assert m["T"] == t and m["crops"] == list(range(10)) and m["modality"] == "image"
    v = m["video"]
    assert (v["frames_decoded"], v["frames_used"], v["width"], v["height"]) == (64, 64, 36, 28)
    assert v["fps"] == pytest.approx(25.0) and v["rel"] == "Abuse/Abuse001_x264.mp4"
    assert m["encoder"]["fingerprint"] == load_encoder(tmp_path / "clip.pt").fingerprint
    assert m["encoder"]["random_init"] is False and m["settings"]["precision"] == "fp32"
    e = json.loads(
        (tmp_path / "out" / "event_thr_10" / "Abuse" / "Abuse001_x264.manifest.json").read_text()
    )
    assert e["settings"]["threshold"] == 10.0 and e["settings"]["event_norm"] == "group"
    assert np.load(tmp_path / "out" / "rgb" / "Normal" / "n__5.npy").shape == (2, 16)


def _cfg(tmp_path: Path, **kw) -> RunConfig:
    base = dict(
        video_dir=tmp_path / "videos",
        roots={"image": tmp_path / "out" / "rgb", "event": tmp_path / "out" / "event_thr_10"},
        opts=RecipeOptions(crops=(0, 5)),
        workers=2,
        progress=False,
    )
    return RunConfig(**{**base, **kw})


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.npy")}


def test_rerun_skips_complete_and_redoes_partial_or_changed(tmp_path, tiny_encoders) -> None:
    for i, name in enumerate(["A/a.mp4", "A/b.avi", "B/c.mp4"]):
        write_video(tmp_path / "videos" / name, 40 + 16 * i, (30, 20), seed=i,
                    fourcc="MJPG" if name.endswith("avi") else "mp4v")  # fmt: skip
    first = run_extraction(_cfg(tmp_path), tiny_encoders)
    assert sorted(first.done) == ["A/a.mp4", "A/b.avi", "B/c.mp4"] and first.exit_code == 0
    out = tmp_path / "out"
    before = _mtimes(out)
    assert len(before) == 3 * 2 * 2

    again = run_extraction(_cfg(tmp_path), tiny_encoders)
    assert again.done == [] and len(again.skipped) == 3 and _mtimes(out) == before

    # partial: one file lost and a temporary left by a killed writer
    (out / "rgb" / "A" / "b__5.npy").unlink()
    stale = out / "rgb" / "A" / ".b__0.npy.x1y2.tmp"
    stale.write_bytes(b"half")
    redo = run_extraction(_cfg(tmp_path), tiny_encoders)
    assert redo.done == ["A/b.avi"] and redo.redone == {"A/b.avi": "image: partial"}
    assert not stale.exists() and (out / "rgb" / "A" / "b__5.npy").is_file()
    assert _mtimes(out)["rgb/A/a__0.npy"] == before["rgb/A/a__0.npy"]

    # new event threshold: event features redone, image features kept
    cfg = _cfg(tmp_path, opts=RecipeOptions(crops=(0, 5), threshold=30))
    changed = run_extraction(cfg, tiny_encoders)
    assert sorted(changed.done) == ["A/a.mp4", "A/b.avi", "B/c.mp4"]
    assert set(changed.redone.values()) == {"event: settings changed: threshold"}
    now = _mtimes(out)
    assert now["rgb/B/c__0.npy"] == before["rgb/B/c__0.npy"]
    assert now["event_thr_10/B/c__0.npy"] != before["event_thr_10/B/c__0.npy"]

    # a subset of the crops is complete; --overwrite redoes everything
    assert len(run_extraction(_cfg(tmp_path, opts=RecipeOptions(crops=(5,), threshold=30)),
                              tiny_encoders).skipped) == 3  # fmt: skip
    assert len(run_extraction(_cfg(tmp_path, overwrite=True), tiny_encoders).done) == 3


def test_unusable_videos_are_reported_and_the_rest_extracted(tmp_path, capsys) -> None:
    v = tmp_path / "videos"
    write_video(v / "good.mp4", 50, (33, 21))
    (v / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (v / "empty.avi").write_bytes(b"")
    data = write_video(tmp_path / "long.avi", 200, (30, 20), "MJPG").read_bytes()
    (v / "truncated.avi").write_bytes(data[: len(data) // 3])
    write_video(v / "short.avi", 15, (30, 20), "MJPG")
    write_video(v / "sixteen.avi", 16, (30, 20), "MJPG")
    (v / "notes.txt").write_text("not a video")
    argv = ["--dataset", "xd", "--video_dir", str(v), "--out_root", str(tmp_path / "out"),
            "--random_init", "--random_arch", "tiny", "--crops", "0", "--no_progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "6 videos: 1 extracted, 0 already complete, 5 failed" in err
    lines = (tmp_path / "out" / "rgb" / "extract_failures.txt").read_text().splitlines()
    reasons = dict(line.split("\t") for line in lines)
    assert sorted(reasons) == [
        "corrupt.mp4",
        "empty.avi",
        "short.avi",
        "sixteen.avi",
        "truncated.avi",
    ]
    assert "OpenCV cannot open it" in reasons["corrupt.mp4"]
    assert "empty file (0 bytes)" in reasons["empty.avi"]
    assert "truncated or corrupt: decoded" in reasons["truncated.avi"]
    assert "15 frames, fewer than one 16-frame snippet" in reasons["short.avi"]
    assert "--tail full" in reasons["sixteen.avi"]
    assert np.load(tmp_path / "out" / "rgb" / "good__0.npy").shape == (3, 32)  # XD: flat
    assert np.load(tmp_path / "out" / "event_thr_10" / "good__0.npy").shape == (3, 32)
    summary = json.loads((tmp_path / "out" / "event_thr_10" / "extract_summary.json").read_text())
    assert summary["done"] == ["good.mp4"] and len(summary["failed"]) == 5
    # a rerun retries only the failures, and --allow_truncated keeps the truncated one
    assert main([*argv, "--allow_truncated"]) == 1
    assert "truncated.avi" not in (tmp_path / "out" / "rgb" / "extract_failures.txt").read_text()
    m = json.loads((tmp_path / "out" / "rgb" / "truncated.manifest.json").read_text())
    assert "decoded" in m["video"]["warnings"][0]


def test_discovery_layout_and_errors(tmp_path) -> None:
    v = tmp_path / "videos"
    for name in ["Abuse/x.mp4", "Normal/y.avi", "top.mp4", ".hidden/z.mp4", "Abuse/readme.txt"]:
        (v / name).parent.mkdir(parents=True, exist_ok=True)
        (v / name).write_bytes(b"0")
    jobs = discover_videos(v, class_folders=True)
    assert [(j.rel, j.out_dir, j.stem) for j in jobs] == [
        ("Abuse/x.mp4", "Abuse", "x"),
        ("Normal/y.avi", "Normal", "y"),
        ("top.mp4", "", "top"),
    ]
    flat = discover_videos(v, class_folders=False)
    assert {j.out_dir for j in flat} == {""}
    xd = tmp_path / "xd"
    xd.mkdir()
    name = "A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_[A]"  # dots, '#', '__', brackets
    (xd / f"{name}.mp4").write_bytes(b"0")
    (job,) = discover_videos(xd, class_folders=False)
    xd_layout = OutputLayout({"image": tmp_path / "xd_rgb"})
    assert xd_layout.feature_path("image", job, 3).name == f"{name}__3.npy"
    (tmp_path / "xd_rgb").mkdir()
    for left in (f".{name}__3.npy.k2.tmp", f".{name}.manifest.json.k3.tmp", ".B__0.npy.k4.tmp"):
        (tmp_path / "xd_rgb" / left).write_bytes(b"")
    assert len(xd_layout.stale_temporaries("image", job)) == 2
    layout = OutputLayout({"image": tmp_path / "rgb", "event": tmp_path / "event"})
    assert layout.feature_path("event", jobs[0], 7) == tmp_path / "event" / "Abuse" / "x__7.npy"
    assert layout.manifest_path("image", flat[0]) == tmp_path / "rgb" / "x.manifest.json"
    (v / "Normal" / "x.avi").write_bytes(b"0")  # flat: x.mp4 and x.avi collide
    with pytest.raises(ExtractError, match=r"x\.mp4 and .*x\.avi would both write"):
        discover_videos(v, class_folders=False)
    (tmp_path / "list.txt").write_text("Abuse/x.mp4\n# comment\nNormal/y.avi\n")
    assert [j.rel for j in discover_videos(v, True, tmp_path / "list.txt")] == [
        "Abuse/x.mp4",
        "Normal/y.avi",
    ]
    (tmp_path / "bad.txt").write_text("Abuse/nope.mp4\n")
    with pytest.raises(ExtractError, match=r"1 listed files do not exist, first .*nope\.mp4"):
        discover_videos(v, True, tmp_path / "bad.txt")
    with pytest.raises(ExtractError, match=r"is not a folder"):
        discover_videos(tmp_path / "nowhere")
    (tmp_path / "none").mkdir()
    with pytest.raises(ExtractError, match=r"no video files under"):
        discover_videos(tmp_path / "none")


def test_shards_cover_every_video_once() -> None:
    from iefvad.extraction.layout import VideoJob

    rng = np.random.default_rng(0)
    jobs = [VideoJob(Path(f"v{i}.mp4"), f"v{i}.mp4", "", f"v{i}", int(s))
            for i, s in enumerate(rng.integers(1, 10**6, 37))]  # fmt: skip
    for world in (1, 2, 3, 8):
        parts = [shard(jobs, r, world) for r in range(world)]
        names = [j.rel for p in parts for j in p]
        assert sorted(names) == sorted(j.rel for j in jobs) and len(set(names)) == len(jobs)
        loads = [sum(j.size for j in p) for p in parts]
        assert max(loads) - min(loads) <= max(j.size for j in jobs)
    assert shard_from_env({}) == (0, 1, "single process")
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "4"})[:2] == (1, 4)
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_env(slurm)[:2] == (2, 3)
    assert shard_from_env({**slurm, "RANK": "1", "WORLD_SIZE": "2"})[:2] == (5, 6)
    assert parse_shard("2/5") == (2, 5)
    with pytest.raises(ExtractError, match="RANK/WORLD"):
        parse_shard("5")
    with pytest.raises(ExtractError, match="0 <= RANK < WORLD"):
        parse_shard("5/5")


def test_in_process_api_on_files_frames_and_streams(tmp_path, tiny_encoders) -> None:
    video = write_video(tmp_path / "v.mp4", 70, (26, 18))
    opts = RecipeOptions(crops=(0, 8), tail="full", event_norm="snippet")
    from_file = extract_video_features(tiny_encoders, video, opts)
    assert from_file.num_snippets == 4 and from_file.image[8].shape == (4, 32)
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    from_frames = extract_video_features(tiny_encoders, iter(frames), opts)
    for m in ("image", "event"):
        for c in opts.crops:
            np.testing.assert_array_equal(getattr(from_frames, m)[c], getattr(from_file, m)[c])
    # a live stream, one snippet at a time, gives the same rows (per-snippet event maps)
    stream = list(iter_snippet_features(tiny_encoders, iter(frames), opts, group_snippets=1))
    assert [s.start_snippet for s in stream] == [0, 1, 2, 3]
    for c in opts.crops:
        rows = torch.cat([s.image[c] for s in stream]).numpy()
        np.testing.assert_allclose(rows, from_file.image[c], atol=1e-5, rtol=0)
        rows = torch.cat([s.event[c] for s in stream]).numpy()
        np.testing.assert_allclose(rows, from_file.event[c], atol=1e-5, rtol=0)
    padded = list(iter_snippet_features(tiny_encoders, iter(frames), opts, 2, pad=True))
    assert [s.num_snippets for s in padded] == [2, 2, 1]  # 70 frames -> 5 snippets
    # the pad tail of extract_video_features agrees with the padded stream's last snippet
    pad = extract_video_features(
        tiny_encoders, video, RecipeOptions((0,), "pad", event_norm="snippet")
    )
    np.testing.assert_allclose(pad.image[0][-1], padded[-1].image[0][0], atol=1e-5, rtol=0)
    assert pad.info.frames_used == 80 and pad.info.frames_decoded == 70


class _InterruptAfter(torch.nn.Module):
    """Wraps an encoder module; raises KeyboardInterrupt (Ctrl-C, or SIGTERM in the CLI) on
    call number ``after + 1``."""

    def __init__(self, inner: torch.nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.inner(x)


def test_an_interrupted_run_keeps_finished_videos_and_resumes(tmp_path, tiny_encoders) -> None:
    from dataclasses import replace

    for i in range(3):
        write_video(tmp_path / "videos" / "A" / f"v{i}.mp4", 32 + 16 * i, (24, 16), seed=i)
    image = replace(tiny_encoders.image, module=_InterruptAfter(tiny_encoders.image.module, 1))
    flaky = Encoders(image=image, event=tiny_encoders.event, batch_size=64)
    cfg = _cfg(tmp_path, opts=RecipeOptions(crops=(0,)), workers=1)
    stopped = run_extraction(cfg, flaky)
    assert stopped.interrupted and stopped.exit_code == 130
    assert stopped.done == ["A/v2.mp4"]  # the largest goes first; the second one is cut
    report = json.loads((tmp_path / "out" / "rgb" / "extract_summary.json").read_text())
    assert report["interrupted"] and report["done"] == ["A/v2.mp4"]
    resumed = run_extraction(cfg, tiny_encoders)
    assert resumed.skipped == ["A/v2.mp4"] and sorted(resumed.done) == ["A/v0.mp4", "A/v1.mp4"]
    assert resumed.exit_code == 0
