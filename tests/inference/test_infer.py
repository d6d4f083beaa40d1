"""``infer.py``: per-frame CSV, segments JSON and plot for generated and real mp4 videos, the
snippet scorer's temporal contexts, streams against offline scoring, and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.infer import main
from iefvad.data.csv_lists import ListRow
from iefvad.data.features import CLIP_LEN, chunk, num_chunks
from iefvad.engine import evaluate
from iefvad.extraction.encoders import random_encoder
from iefvad.inference import offline as infer
from iefvad.inference.offline import find_segments, output_names, score_video
from iefvad.inference.scorer import Context, Scorer
from iefvad.inference.session import InferError, frame_rate, setup
from iefvad.inference.stream import stream_scores
from iefvad.models.checkpoint import save_checkpoint
from iefvad.models.model import IEFVAD, ModelConfig
from iefvad.synthetic.videos import DemoVideoSpec, plan_video, write_video

from extract_helpers import TINY, tiny_scoring_checkpoint, torch_threads
from extract_helpers import write_video as write_mp4


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A small untrained model whose checkpoint records two random towers (snippet events)."""
    return tiny_scoring_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A generated demo video (80 frames) and a cv2-written mp4 of 37 frames (3 snippets, the
    last one partial)."""
    root = tmp_path_factory.mktemp("videos")
    spec = DemoVideoSpec(width=160, height=120, snippets=(5, 5), span_snippets=(1, 2))
    gen = write_video(plan_video(spec, "gen", "test", "motion", 7), spec, root / "gen.mp4")
    real = write_mp4(root / "real.mp4", 37, size=(64, 48), fps=20.0)
    return {"gen": gen, "real": real}


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def decoded_frames(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_outputs_for_a_generated_and_a_real_mp4(ckpt, videos, tmp_path, capsys):
    out = tmp_path / "out"
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main([str(videos["gen"]), str(videos["real"]), "--ckpt_path", str(ckpt), "--out", str(out),
              "--threshold", "0.0"])  # fmt: skip
    assert e.value.code == 0
    for name, fps in (("gen", 25.0), ("real", 20.0)):
        rows = read_csv(out / f"{name}.csv")
        n = decoded_frames(videos[name])
        assert [int(r["frame"]) for r in rows] == list(range(n))  # every decoded frame
        assert list(rows[0]) == ["frame", "time_s", "score", "w_image", "w_event"]
        assert float(rows[-1]["time_s"]) == pytest.approx((n - 1) / fps, abs=1e-3)
        snippets = np.array([float(r["score"]) for r in rows]).reshape(-1)
        for k in range(-(-n // 16)):  # one score per snippet, the last partial one included
            assert len(set(snippets[16 * k : 16 * k + 16])) == 1
        for r in rows:
            assert 0 <= float(r["score"]) <= 1
            assert float(r["w_image"]) + float(r["w_event"]) == pytest.approx(1, abs=1e-4)
        js = json.loads((out / f"{name}.json").read_text())
        assert js["frames"] == n and js["snippets"] == -(-n // 16) and js["fps"] == fps
        assert js["context"] == {"mode": "chunk", "window": CLIP_LEN}
        assert js["encoders_from_checkpoint"] and js["recipe"]["event_norm"] == "snippet"
        seg = js["segments"][0]  # threshold 0: the whole video is one segment
        assert (seg["start_frame"], seg["end_frame"], seg["start_s"]) == (0, n, 0.0)
        assert seg["end_s"] == pytest.approx(n / fps, abs=1e-3)
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert "real.mp4: 37 frames, 3 snippets" in capsys.readouterr().out


def test_corrupt_video_is_reported_and_skipped(ckpt, videos, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "out"
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main(
            [
                str(bad),
                str(videos["real"]),
                "--ckpt_path",
                str(ckpt),
                "--out",
                str(out),
                "--no_plot",
            ]
        )
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert f"error: {bad}" in err and "skipped" in err and "1 of 2 videos failed" in err
    assert (out / "real.csv").is_file() and not (out / "broken.csv").exists()
    assert not (out / "real.png").exists()


@pytest.mark.parametrize(("event_norm", "group"), [("snippet", 1), ("group", 2)])
def test_stream_equals_offline_scoring_with_the_same_context(ckpt, videos, event_norm, group):
    with torch_threads(1):
        s = setup(ckpt, event_norm=event_norm, group_snippets=group)
        ctx = Context("causal", 3)
        offline = score_video(s, videos["gen"], ctx)
        streamed = list(stream_scores(s, str(videos["gen"]), ctx, group_snippets=group))
    assert [x.index for x in streamed] == list(range(offline.scores.size)) == list(range(5))
    np.testing.assert_allclose([x.score for x in streamed], offline.scores, atol=1e-5)
    np.testing.assert_allclose([x.w_event for x in streamed], offline.w_event, atol=1e-5)
    assert all(x.latency_ms >= 0 for x in streamed)
    assert [x.context for x in streamed] == [1, 2, 3, 3, 3]
    assert [(x.start_frame, x.end_frame) for x in streamed][-1] == (64, 80)


def test_chunk_context_equals_test_py_and_causal_sees_only_the_past():
    torch.manual_seed(1)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0)).eval()
    t = 300
    img, evt = torch.randn(t, 16), torch.randn(t, 16)
    # test.py's path: chunks of 256, zero-padded, scored as a batch
    test_set = evaluate.TestSet(
        [ListRow(Path("x__5.npy"), "normal")],
        torch.from_numpy(chunk(img.numpy())),
        torch.from_numpy(chunk(evt.numpy())),
        np.zeros(num_chunks(t), int),
        torch.tensor([256, t - 256]),
        np.array([t]),
    )
    ref = evaluate.predict(model, test_set)
    sc = Scorer(model, context=Context("chunk", CLIP_LEN))
    got = sc.push(img[:100], evt[:100]) + sc.push(img[100:], evt[100:]) + sc.flush()
    np.testing.assert_allclose([g.score for g in got], ref.scores[0], atol=1e-5)
    np.testing.assert_allclose([g.w_image for g in got], ref.w_image[0], atol=1e-5)
    # causal, window 4: snippet k is scored on snippets k-3..k only
    sc = Scorer(model, context=Context("causal", 4))
    got = [g.score for k in range(0, 20, 3) for g in sc.push(img[k : k + 3], evt[k : k + 3])]
    for k in (0, 2, 10, 19):
        lo = max(0, k - 3)
        alone = Scorer(model, context=Context("chunk", CLIP_LEN))
        last = (alone.push(img[lo : k + 1], evt[lo : k + 1]) + alone.flush())[-1]
        assert got[k] == pytest.approx(last.score, abs=1e-5)


def test_find_segments():
    s = np.array([0.1, 0.7, 0.9, 0.2, 0.6, 0.1, 0.95])
    segs = find_segments(s, frames=100, fps=25.0, threshold=0.5, top_k=2)
    assert [(d["start_frame"], d["end_frame"], d["peak_score"]) for d in segs] == [
        (16, 48, 0.9),
        (96, 100, 0.95),
    ]
    assert segs[0]["start_s"] == 0.64 and segs[1]["end_s"] == 4.0 and segs[0]["peak_frame"] == 32
    assert find_segments(s, 100, 25.0, threshold=0.99) == []
    assert len(find_segments(s, 100, 25.0, threshold=0.5, top_k=0)) == 3  # 0: every segment
    with pytest.raises(InferError, match="--top_k -1"):
        find_segments(s, 100, 25.0, top_k=-1)


def test_stream_cli_alerts_and_log(ckpt, videos, tmp_path, capsys):
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main(["--stream", str(videos["real"]), "--ckpt_path", str(ckpt), "--out", str(tmp_path),
              "--alert", "0.0", "--min_context", "2", "--window", "4"])  # fmt: skip
    assert e.value.code == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("snippet")]
    assert len(lines) == 3 and "warming up" in lines[0] and "ALERT" not in lines[0]
    assert all("ALERT" in ln for ln in lines[1:]) and "latency" in lines[0]
    rows = read_csv(tmp_path / "stream.csv")
    assert [r["alert"] for r in rows] == ["0", "1", "1"] and rows[-1]["end_frame"] == "37"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--stream", "nope.mp4"], "no such file; pass a camera index"),
        (["V", "--stream", "0"], "not both"),
        (["V", "--window", "300"], "--window 300: the model takes 1..256 snippets"),
        (["V", "--window", "0"], "--window 0: the model takes 1..256 snippets"),
        (["V", "--top_k", "-1"], "--top_k -1: give the number of segments to keep, or 0 for all"),
        (["V", "--threshold", "1.5"], "--threshold 1.5: scores are probabilities"),
        (["--stream", "V", "--alert", "-0.1"], "--alert -0.1: scores are probabilities"),
        (["V", "--threshold", "nan"], "--threshold nan: scores are probabilities"),
        (["V", "--fps", "0"], "--fps 0.0: give the frame rate"),
        (["V", "--fps", "2e9"], "--fps 2000000000.0: give the frame rate"),
        (["V", "--crop", "10"], "--crop 10: crops are numbered 0..9"),
        (["V", "--event_threshold", "-1"], "--event_threshold -1.0: gray levels"),
        (["V", "--group_snippets", "0"], "--group_snippets 0: must be >= 1"),
        (["V", "--threads", "-2"], "--threads -2: must be >= 1"),
        (["--stream", "V", "--max_snippets", "0"], "--max_snippets 0: must be >= 1"),
        (["--stream", "V", "--min_context", "-1"], "--min_context -1: must be >= 0"),
        (
            ["--stream", "V", "--alert", "0.5", "--min_context", "100"],
            "--min_context 100 exceeds --window 64: a snippet never has more context",
        ),
    ],
)
def test_bad_input_names_the_fix(ckpt, videos, tmp_path, capsys, argv, needle):
    argv = [str(videos["real"]) if a == "V" else a for a in argv]
    argv = [str(tmp_path / a) if a == "nope.mp4" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--ckpt_path", str(ckpt), "--out", str(tmp_path)])
    assert e.value.code == 2
    assert needle in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))
    with pytest.raises(InferError, match="1..256"):
        Context("causal", 0)


def test_other_encoder_weights_are_refused_unless_allowed(ckpt, videos, tmp_path, capsys):
    other = tmp_path / "other.pt"
    torch.save(random_encoder(TINY, 5).module.state_dict(), other)
    args = [str(videos["real"]), "--ckpt_path", str(ckpt), "--out", str(tmp_path), "--no_plot"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--clip_ckpt", str(other)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "fingerprint" in err and "--allow_other_encoders" in err
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main([*args, "--clip_ckpt", str(other), "--allow_other_encoders"])
    assert e.value.code == 0


def test_output_names_are_unique_per_input():
    assert output_names(["a/x.mp4", "b/y.mp4"]) == ["x", "y"]
    assert output_names(["a/x.mp4", "b/x.mp4", "b/x.avi"]) == ["a__x", "b__x.mp4", "b__x.avi"]
    assert output_names(["x.mp4", "sub/x.mp4"]) == ["x", "sub__x"]
    assert output_names(["x.mp4", "x.mp4"]) == ["x", "x-2"]  # the same file twice
    assert output_names(["A/X.mp4", "a/x.mp4"]) == ["X", "x-2"]  # case-blind file systems
    assert output_names(["a/x.mp4", "b/x.mp4", "a__x.mp4"]) == ["a__x", "b__x", "a__x-2"]


def test_videos_with_the_same_name_do_not_overwrite_each_other(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    vids = [
        write_mp4(src / "a" / "x.mp4", 17, size=(64, 48)),
        write_mp4(src / "b" / "x.mp4", 33, size=(64, 48)),
        write_mp4(src / "b" / "x.avi", 20, size=(64, 48), fourcc="MJPG"),
    ]
    out = tmp_path / "out"
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main([*map(str, vids), "--ckpt_path", str(ckpt), "--out", str(out), "--no_plot"])
    assert e.value.code == 0
    for name, video, frames in zip(("a__x", "b__x.mp4", "b__x.avi"), vids, (17, 33, 20)):
        assert len(read_csv(out / f"{name}.csv")) == frames
        js = json.loads((out / f"{name}.json").read_text())
        assert js["video"] == str(video) and js["frames"] == frames
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.{ext}" for n in ("a__x", "b__x.mp4", "b__x.avi") for ext in ("csv", "json")]
        + ["report.html", "report_videos"]
    )
    # the report's playable copies (mp4v and MJPG are not) are named as the outputs
    copies = sorted(p.stem for p in (out / "report_videos").iterdir())
    assert copies == ["a__x", "b__x.avi", "b__x.mp4"]
    said = capsys.readouterr().out
    assert (
        f"{vids[2]}: outputs named b__x.avi.*" in said
        and f"{vids[0]}: outputs named a__x.*" in said
    )


def test_a_second_stream_run_keeps_the_first_log(ckpt, videos, tmp_path, capsys):
    argv = ["--stream", str(videos["real"]), "--ckpt_path", str(ckpt), "--out", str(tmp_path),
            "--max_snippets", "1", "--quiet"]  # fmt: skip
    with torch_threads(1), pytest.raises(SystemExit):
        main(argv)
    first = (tmp_path / "stream.csv").read_text()
    capsys.readouterr()
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert (tmp_path / "stream.csv").read_text() == first and len(first.splitlines()) == 2
    assert len(read_csv(tmp_path / "stream-2.csv")) == 1
    assert f"log {tmp_path / 'stream-2.csv'} (earlier logs" in capsys.readouterr().out


def test_nan_weights_stop_with_the_checkpoint_named(ckpt, videos, tmp_path, capsys):
    payload = torch.load(ckpt, map_location="cpu", weights_only=False)
    sd = payload["model_state_dict"]
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = torch.full_like(sd[key], float("nan"))
    bad = tmp_path / "diverged.pth"
    torch.save(payload, bad)
    with pytest.raises(SystemExit) as e:
        main([str(videos["real"]), "--ckpt_path", str(bad), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"checkpoint {bad} has NaN/Inf weights" in err and key in err
    assert not (tmp_path / "o").exists()
    # NaN that appears only while scoring (finite checkpoint) stops too, naming it
    with torch_threads(1):
        s = setup(ckpt)
        with torch.no_grad():
            for p in s.model.parameters():
                p.fill_(float("nan"))
        with pytest.raises(InferError, match=f"checkpoint {ckpt} gave a score of nan on video"):
            score_video(s, videos["real"])


def test_impossible_frame_rate_is_replaced_and_reported(
    ckpt, videos, tmp_path, monkeypatch, capsys
):
    assert frame_rate(30.0) == (30.0, None) and frame_rate(2e9, 12.5) == (12.5, None)
    real_open = infer.open_video
    reported = {"fps": 2e9}

    def lying_open(path):
        cap, info = real_open(path)
        info.fps = reported["fps"]
        return cap, info

    monkeypatch.setattr(infer, "open_video", lying_open)
    with torch_threads(1):
        s = setup(ckpt)
        cases = [(2e9, "2e+09 fps, which cannot be"), (0.0, "no frame rate"),
                 (float("nan"), "no frame rate"), (-5.0, "-5 fps, which cannot be")]  # fmt: skip
        for fps, said in cases:
            reported["fps"] = fps
            vs = score_video(s, videos["real"])
            assert vs.fps == 25.0 and vs.fps_assumed
            assert any(said in w and "assume 25 fps" in w for w in vs.warnings)
    reported["fps"] = 2e9
    out = tmp_path / "o"
    argv = [str(videos["real"]), "--ckpt_path", str(ckpt), "--out", str(out), "--no_plot"]
    with torch_threads(1), pytest.raises(SystemExit):
        main(argv)
    assert f"warning: {videos['real']}: reports a frame rate of 2e+09" in capsys.readouterr().err
    assert read_csv(out / "real.csv")[-1]["time_s"] == "1.440"  # frame 36 at 25 fps
    with torch_threads(1), pytest.raises(SystemExit):
        main([*argv, "--fps", "20"])
    assert "warning" not in capsys.readouterr().err
    assert read_csv(out / "real.csv")[-1]["time_s"] == "1.800"
    assert json.loads((out / "real.json").read_text())["fps"] == 20.0


def test_unrecorded_checkpoint_warns_once_that_encoders_are_unverified(videos, tmp_path, capsys):
    bare = tmp_path / "released.pth"
    torch.manual_seed(0)
    save_checkpoint(bare, IEFVAD(ModelConfig(dim=32, heads=1, refine_steps=1, dropout=0.0)))
    img, evt = tmp_path / "img.pt", tmp_path / "evt.pt"
    torch.save(random_encoder(TINY, 0).module.state_dict(), img)
    torch.save(random_encoder(TINY, 1, normalise=False).module.state_dict(), evt)
    second = shutil.copy(videos["real"], tmp_path / "second.mp4")
    out = tmp_path / "o"
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main([str(videos["real"]), str(second), "--ckpt_path", str(bare), "--clip_ckpt", str(img),
              "--event_clip_ckpt", str(evt), "--out", str(out), "--no_plot"])  # fmt: skip
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert err.count("cannot be verified") == 1
    assert f"checkpoint {bare} does not record the encoders" in err and str(img) in err
    js = json.loads((out / "second.json").read_text())
    assert not js["encoders_from_checkpoint"] and "cannot be verified" in js["encoder_warning"]


# --- streams that send nothing, or stop sending (--stream_timeout) ------------------------


def test_a_fifo_that_is_never_written_times_out_with_a_clear_message(ckpt, tmp_path):
    import os
    import time

    from iefvad.inference.source import StreamError

    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    s = setup(ckpt, device="cpu")
    t0 = time.monotonic()
    try:
        with pytest.raises(StreamError, match=r"nothing arrived within 1 s.*--stream_timeout"):
            stream_scores(s, str(fifo), timeout=1.0)
        assert time.monotonic() - t0 < 10
    finally:  # let the reader thread's blocked open return
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(fifo) else None
        if fd is not None:
            os.close(fd)


def _has_reader(fifo) -> bool:
    import os

    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


class _StallingCapture:
    """A cv2.VideoCapture stand-in: ``n`` frames, then a read that blocks (a source that went
    silent without closing)."""

    def __init__(self, n: int) -> None:
        import threading

        self.n, self.blocked = n, threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop) -> float:
        return 25.0

    def read(self):
        if self.n == 0:
            self.blocked.wait(30)
            return False, None
        self.n -= 1
        return True, np.full((48, 64, 3), 40 * (self.n % 5), np.uint8)

    def release(self) -> None:
        self.blocked.set()


def test_a_source_that_stops_mid_stream_keeps_what_was_scored(ckpt, tmp_path, monkeypatch, capsys):
    from iefvad.inference import source

    monkeypatch.setattr(source, "_capture", lambda src, timeout: _StallingCapture(40))
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main(["--stream", "rtsp://cam/1", "--ckpt_path", str(ckpt), "--out_dir", str(tmp_path),
              "--stream_timeout", "1"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no frame for 1 s after frame 40" in err and "2 snippet(s) scored" in err, err
    assert str(tmp_path / "stream.csv") in err
    assert len(read_csv(tmp_path / "stream.csv")) == 2  # frames 0-31: two whole snippets


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9"])
def test_stream_timeout_flag_is_checked(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--stream", "V", "--ckpt_path", "c.pth", "--stream_timeout", value])
    assert e.value.code == 2 and "--stream_timeout" in capsys.readouterr().err


def test_stream_timeout_default_is_stated_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--stream_timeout SECONDS" in out and "(default: 10.0)" in out


@pytest.mark.slow
def test_ctrl_c_ends_infer_blocked_on_a_silent_fifo_within_seconds(ckpt, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "infer.py"), "--stream", str(fifo), "--ckpt_path", str(ckpt),
         "--out_dir", str(tmp_path / "out"), "--stream_timeout", "600", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert p.stdout is not None
        for line in p.stdout:  # the model is loaded; now it waits on the FIFO
            if line.startswith("[stream] opening"):
                break
        time.sleep(1.0)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        # the script gives up at once; the interpreter's own teardown (torch) takes the rest,
        # seconds on a loaded machine. Without the reader thread it would wait for the FIFO.
        assert time.monotonic() - t0 < 20, "Ctrl-C took too long"
        assert p.returncode == 130 and "interrupted" in err, err
    finally:
        if p.poll() is None:
            p.kill()
