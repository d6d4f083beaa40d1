"""The command line as users run it: seed front ends, errors, a killed run, torchrun ranks."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.cli.extract import main
from iefvad.extraction.encoders import load_encoder
from iefvad.extraction.recipe import Encoders, RecipeOptions, extract_video_features

from extract_helpers import ROOT, openai_state_dict, tiny_clip, torch_threads, write_video

TINY = ["--random_init", "--random_arch", "tiny", "--no_progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _env() -> dict[str, str]:
    """A user's shell: no PYTHONPATH (the scripts find the package themselves), offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


def _npys(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.load(p) for p in sorted(root.rglob("*.npy"))}


@pytest.mark.slow
def test_seed_front_ends_run_without_installation(tmp_path, monkeypatch, caplog) -> None:
    v = tmp_path / "videos"
    write_video(v / "Abuse" / "x.mp4", 40, (31, 23))
    out = tmp_path / "feats"
    img = subprocess.run(
        [
            sys.executable,
            "ucf_gen_ima.py",
            "--video_dir",
            str(v),
            "--save_dir",
            str(out / "rgb"),
            "--crops",
            "0",
            *TINY,
        ],  # fmt: skip
        cwd=ROOT / "extracting",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert img.returncode == 0, img.stderr
    assert np.load(out / "rgb" / "Abuse" / "x__0.npy").shape == (2, 32)

    model = tiny_clip(seed=7)
    ckpt = {"checkpoint": {f"encoder_k.{k}": t for k, t in openai_state_dict(model).items()}}
    torch.save(ckpt, tmp_path / "event_vitl.pt")
    # The seed README's command passes --save_dir twice: the last one wins, as with argparse.
    # (Run in this process to save an interpreter start; the subprocess above covers that.)
    script = ROOT / "extracting" / "shang_gen_event.py"
    argv = [str(script), "--video_dir", str(v), "--save_dir", str(out / "rgb"), "--save_dir",
            str(out / "event"), "--clip_ckpt", str(tmp_path / "event_vitl.pt"), "--crops", "0,5",
            "--no_progress"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    assert "--save_dir given 2 times" in caplog.text
    assert sorted(p.name for p in (out / "rgb" / "Abuse").glob("*.npy")) == ["x__0.npy"]
    enc = Encoders(event=load_encoder(tmp_path / "event_vitl.pt", kind="event"))
    want = extract_video_features(enc, v / "Abuse" / "x.mp4", RecipeOptions(crops=(0, 5)))
    for c in (0, 5):
        got = np.load(out / "event" / "Abuse" / f"x__{c}.npy")
        np.testing.assert_allclose(got, want.event[c], atol=1e-5, rtol=0)
    m = json.loads((out / "event" / "Abuse" / "x.manifest.json").read_text())
    assert m["dataset"] == "shang" and m["encoder"]["source"].endswith("event_vitl.pt")


def test_bad_options_are_rejected_with_what_to_do(tmp_path, capsys) -> None:
    v = tmp_path / "videos"
    write_video(v / "A" / "a.mp4", 20, (20, 20))

    def err(argv, **kw) -> str:
        assert main(argv, **kw) == 2
        return capsys.readouterr().err

    assert "is not a folder" in err(["--video_dir", str(tmp_path / "no"), "--save_dir", "x", *TINY])
    msg = err(["--video_dir", str(v), "--save_dir", str(tmp_path / "features"), *TINY])
    assert "has no 'rgb'" in msg and "--event_save_dir" in msg and "--out_root" in msg
    msg = err(["--video_dir", str(v), "--modality", "event", "--save_dir", "e", "--no_progress"])
    assert "event-CLIP" in msg and "--event_clip_ckpt" in msg
    msg = err(["--video_dir", str(v), "--modality", "event", "--save_dir", "e", "--clip_ckpt", "c"])
    assert "--event_clip_ckpt" in msg
    seed = dict(dataset="ucfcrime", modality="event", compat=True)
    base = ["--video_dir", str(v), "--save_dir", str(tmp_path / "e"), *TINY]
    assert "only 32" in err([*base, "--batch_size", "16"], **seed)
    assert "only 16" in err([*base, "--chunk_size", "8"], **seed)
    msg = err([*base, "--model", "vitb", "--clip_model", "ViT-L-14"], dataset="ucfcrime",
              modality="image", compat=True)  # fmt: skip
    assert "contradicts" in msg
    with pytest.raises(SystemExit):
        main([*base, "--crops", "3-12"])
    assert "crops must lie in 0..9" in capsys.readouterr().err
    assert main([*base, "--dry_run", "--modality", "image"]) == 0
    assert "1 videos listed; this shard: 1, 0 complete, 1 to extract" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_clean_result(tmp_path) -> None:
    v = tmp_path / "videos"
    for i in range(6):
        write_video(v / f"C{i % 2}" / f"v{i}.mp4", 96 + 16 * i, (27, 21), seed=i)
    args = ["--dataset", "msad", "--video_dir", str(v), "--crops", "0,5", "--workers", "1", *TINY]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "extracting/extract.py", *args, "--out_root", str(killed)],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(killed.rglob("*.manifest.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no video finished within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, stderr
    complete = {p.name for p in killed.rglob("*.manifest.json") if "event" in str(p)}
    assert 0 < len(complete) or list(killed.rglob("*.npy"))  # it had started writing
    assert len(complete) < 6, "the run finished before it was killed"

    assert main([*args, "--out_root", str(killed)]) == 0
    summary = json.loads((killed / "rgb" / "extract_summary.json").read_text())
    assert len(summary["skipped"]) == len(complete) and len(summary["done"]) == 6 - len(complete)
    clean = tmp_path / "clean"
    assert main([*args, "--out_root", str(clean)]) == 0
    got, want = _npys(killed), _npys(clean)
    assert sorted(got) == sorted(want) and len(want) == 6 * 2 * 2
    for name, arr in want.items():
        np.testing.assert_allclose(got[name], arr, atol=1e-6, rtol=0, err_msg=name)
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.slow
def test_torchrun_two_ranks_shard_without_overlap_or_gap(tmp_path) -> None:
    v = tmp_path / "videos"
    names = []
    for i in range(5):
        rel = f"K{i % 2}/v{i}.avi"
        write_video(v / rel, 32 + 16 * i, (24, 18), "MJPG", seed=i)
        names.append(rel)
    (v / "K0" / "broken.mp4").write_bytes(b"\x00" * 500)
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "extracting/extract.py",
            "--video_dir",
            str(v),
            "--out_root",
            str(out),
            "--crops",
            "0",
            "--workers",
            "1",
            *TINY,
        ],  # fmt: skip
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode != 0  # one video is broken: the run says so
    assert "all ranks: 6 videos: 5 extracted, 0 already complete, 1 failed" in run.stderr, (
        run.stderr[-3000:]
    )
    per_rank = [
        json.loads((out / "rgb" / f"extract_summary.rank{r}of2.json").read_text()) for r in (0, 1)
    ]
    done = [set(s["done"]) for s in per_rank]
    assert done[0] and done[1] and not done[0] & done[1]
    assert done[0] | done[1] == set(names)
    failed = {**per_rank[0]["failed"], **per_rank[1]["failed"]}
    assert list(failed) == ["K0/broken.mp4"]
    merged = (out / "event_thr_10" / "extract_failures.txt").read_text()
    assert merged.startswith("K0/broken.mp4\t")
    for r in (0, 1):
        for rel in done[r]:
            stem = Path(rel).with_suffix("")
            m = json.loads((out / "rgb" / f"{stem}.manifest.json").read_text())
            assert (m["rank"], m["world"]) == (r, 2)
            assert np.load(out / "event_thr_10" / f"{stem}__0.npy").shape[0] == m["T"]
