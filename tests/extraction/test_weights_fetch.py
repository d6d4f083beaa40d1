"""Weights without a file: found in prepared local caches, offline messages, and downloads
from a stand-in hub on 127.0.0.1 that fail (404, cut-off, corrupted) without leaving a partial
file. Nothing here reaches the real network: hf_hub_download and urlopen are replaced by
functions that fail the test, except where the local server is the endpoint."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

# huggingface_hub reads the environment once, at import: here, before any test patches it
import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.file_download
import numpy as np
import pytest
import torch

from iefvad.extraction.encoders import EncoderError, load_encoder
from iefvad.extraction.weights import WeightsOptions, WeightsUnavailable

from extract_helpers import (
    ROOT,
    openai_state_dict,
    reference_embed,
    tiny_clip,
    torch_threads,
    write_video,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OPENAI_L14_REPO = "timm/vit_large_patch14_clip_224.openai"


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def caches(tmp_path, monkeypatch) -> dict[str, Path]:
    """Empty caches under ``tmp_path`` (HOME, HF_HUB_CACHE), offline, and no network."""
    import urllib.request

    home, hf = tmp_path / "home", tmp_path / "hf"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError(f"network access attempted: {a} {k}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return {"home": home, "hf": hf, "clip": home / ".cache" / "clip"}


def put_in_hf_cache(cache: Path, repo: str, filename: str, data: bytes) -> Path:
    """Lay ``data`` out as huggingface_hub does: blob by SHA-256, snapshot link, refs/main."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = folder / "snapshots" / COMMIT / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return snap


def _safetensors_bytes(model, tmp_path: Path) -> bytes:
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in openai_state_dict(model).items()}
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    return path.read_bytes()


def _event_ckpt_bytes(model, tmp_path: Path) -> bytes:
    """An event-CLIP file as its training script wrote it: weights, arguments, numpy values."""
    sd = openai_state_dict(model)
    ckpt = {
        "checkpoint": {f"encoder_k.{k}": v for k, v in sd.items()},
        "args": argparse.Namespace(arch="ViT-L/14", lr=1e-5),
        "best_acc": np.float64(0.5),
    }
    path = tmp_path / "e.pt"
    torch.save(ckpt, path)
    return path.read_bytes()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------- local caches


def test_prepared_caches_are_used_offline(tmp_path, caches):
    image_model, event_model = tiny_clip(seed=0, layers=2), tiny_clip(seed=5)
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    img = put_in_hf_cache(
        caches["hf"],
        OPENAI_L14_REPO,
        "open_clip_model.safetensors",
        _safetensors_bytes(image_model, tmp_path),
    )
    ev = put_in_hf_cache(
        caches["hf"], "Eavn/event-clip", "vitl.pt", _event_ckpt_bytes(event_model, tmp_path)
    )
    enc = load_encoder(None, kind="image")
    assert enc.source == str(img) and not enc.random_init
    assert enc.origin == {
        "hub": "open_clip",
        "model": "ViT-L-14",
        "pretrained": "openai",
        "file": f"{OPENAI_L14_REPO}/open_clip_model.safetensors",
    }
    assert enc.fingerprint == load_encoder(img).fingerprint  # same weights, same fingerprint
    want = reference_embed(image_model, pixels, True)
    torch.testing.assert_close(enc.encode(pixels), want, atol=1e-5, rtol=0)

    event = load_encoder(None, kind="event")  # the safe loader takes Namespace + numpy
    assert event.source == str(ev) and event.mean is None
    assert event.metadata()["origin"] == {
        "hub": "huggingface",
        "repo": "Eavn/event-clip",
        "file": "vitl.pt",
        "revision": COMMIT,
    }
    want = reference_embed(event_model, pixels, False)
    torch.testing.assert_close(event.encode(pixels), want, atol=1e-5, rtol=0)
    # open_clip's URL cache is the other standard place (OpenAI's ViT-B-32.pt)
    caches["clip"].mkdir(parents=True)
    torch.save(openai_state_dict(event_model), caches["clip"] / "ViT-B-32.pt")
    assert load_encoder(None, clip_model="ViT-B-32").source == str(caches["clip"] / "ViT-B-32.pt")


def test_hf_hub_model_name_builds_from_its_cached_config(tmp_path, caches):
    """``--clip_model hf-hub:ORG/REPO``: open_clip_config.json + weights from the HF cache."""
    model = tiny_clip(seed=2)
    config = {
        "model_cfg": {
            "embed_dim": 16,
            "quick_gelu": True,
            "vision_cfg": {"layers": 1, "width": 64, "patch_size": 32, "image_size": 224},
            "text_cfg": {"context_length": 8, "vocab_size": 50, "width": 64, "heads": 1,
                         "layers": 1},
        },
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }  # fmt: skip
    put_in_hf_cache(caches["hf"], "org/tiny", "open_clip_config.json", json.dumps(config).encode())
    w = put_in_hf_cache(
        caches["hf"], "org/tiny", "open_clip_model.safetensors", _safetensors_bytes(model, tmp_path)
    )
    enc = load_encoder(None, clip_model="hf-hub:org/tiny")
    assert enc.source == str(w) and enc.origin["model"] == "hf-hub:org/tiny"
    assert enc.origin["revision"] == COMMIT
    assert enc.mean == (0.5, 0.5, 0.5) and enc.std == (0.25, 0.25, 0.25)  # the repo's own
    pixels = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.encode_image((pixels - 0.5) / 0.25)
    torch.testing.assert_close(enc.encode(pixels), want, atol=1e-5, rtol=0)


def test_offline_with_empty_caches_names_file_place_and_flag(tmp_path, caches, monkeypatch):
    with pytest.raises(WeightsUnavailable) as e:
        load_encoder(None, kind="image")
    msg = str(e.value)
    place = caches["clip"] / "ViT-L-14.pt"
    assert "place https://openaipublic.azureedge.net/clip/models/" in msg
    assert f"ViT-L-14.pt at {place}" in msg and "--clip_ckpt PATH" in msg
    assert (
        "HF_HUB_OFFLINE=1" in msg
        and str(caches["hf"] / f"models--{OPENAI_L14_REPO.replace('/', '--')}") in msg
    )

    with pytest.raises(EncoderError) as e:  # WeightsUnavailable is an EncoderError
        load_encoder(None, kind="event", clip_model="ViT-B-32")
    msg = str(e.value)
    assert "event-CLIP" in msg and "Eavn/event-clip/vitb.pt" in msg
    assert str(caches["hf"] / "models--Eavn--event-clip") in msg
    assert "`hf download Eavn/event-clip vitb.pt`" in msg and "--event_clip_ckpt PATH" in msg
    assert "https://huggingface.co/Eavn/event-clip/resolve/main/vitb.pt" in msg

    # --offline alone (HF_HUB_OFFLINE unset) is enough to keep off the network
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    opts = WeightsOptions(offline=True, event_file="mine.pt", event_revision="v2")
    with pytest.raises(WeightsUnavailable, match=r"mine\.pt \(revision v2\).*--revision v2"):
        load_encoder(None, kind="event", weights=opts)
    with pytest.raises(WeightsUnavailable, match=r"--clip_pretrained nope: not in open_clip"):
        load_encoder(None, weights=WeightsOptions(pretrained="nope"))


def test_extract_and_infer_flags_reach_the_loader(tmp_path, caches, monkeypatch, capsys):
    from iefvad.cli.extract import main
    from iefvad.cli.infer import parser as infer_parser
    from iefvad.cli.weights import weights_options

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    (tmp_path / "videos").mkdir()
    argv = ["--video_dir", str(tmp_path / "videos"), "--save_dir", str(tmp_path / "e"),
            "--offline", "--event_clip_file", "other.pt", "--event_clip_repo", "me/ev"]  # fmt: skip
    assert main(argv, dataset="ucfcrime", modality="event", compat=True) == 2
    err = capsys.readouterr().err
    assert "me/ev/other.pt" in err and "--clip_ckpt PATH" in err  # the event scripts' flag
    args = infer_parser().parse_args(
        ["v.mp4", "--ckpt_path", "c.pth", "--clip_pretrained", "laion2b_s32b_b82k",
         "--event_clip_revision", "abc", "--offline", "--trust_weights_file"]
    )  # fmt: skip
    assert weights_options(args) == WeightsOptions(
        pretrained="laion2b_s32b_b82k", event_revision="abc", offline=True, trust_file=True
    )


def test_checkpoint_encoders_are_fetched_again_from_their_origin(tmp_path, caches):
    """infer.py: a record whose cache file moved (another machine) is fetched by its origin;
    a checkpoint without a record gets the default event-CLIP from the cache."""
    from iefvad.extraction.provenance import FeatureMetaError, build_encoder, encoder_record

    model = tiny_clip(seed=4)
    put_in_hf_cache(caches["hf"], "Eavn/event-clip", "vitl.pt", _event_ckpt_bytes(model, tmp_path))
    enc = load_encoder(None, kind="event")
    rec = {**encoder_record(enc), "source": "/elsewhere/models--Eavn--event-clip/vitl.pt"}
    again = build_encoder("event", rec, None, "ckpt.pth")
    assert again.fingerprint == enc.fingerprint and again.source == enc.source
    assert build_encoder("event", None, None, "released.pth").fingerprint == enc.fingerprint
    rec["fingerprint"] = "0" * 16
    with pytest.raises(FeatureMetaError, match="not the one checkpoint ckpt.pth was trained"):
        build_encoder("event", rec, None, "ckpt.pth")


def test_demo_pretrained_weights_mode_takes_both_towers_from_the_caches(tmp_path, caches):
    from iefvad.cli.demo import parser
    from iefvad.extraction.recipe import RecipeOptions
    from iefvad.studies.demo import DemoConfig, build_encoders

    put_in_hf_cache(
        caches["hf"], OPENAI_L14_REPO, "open_clip_model.safetensors",
        _safetensors_bytes(tiny_clip(seed=0), tmp_path),
    )  # fmt: skip
    put_in_hf_cache(
        caches["hf"], "Eavn/event-clip", "vitl.pt", _event_ckpt_bytes(tiny_clip(seed=1), tmp_path)
    )
    cfg = DemoConfig(out=tmp_path, pretrained_weights=True, device="cpu")
    encoders, records = build_encoders(cfg, RecipeOptions(crops=(5,)))
    assert encoders.image.embed_dim == encoders.event.embed_dim == 16
    assert records["image"]["origin"]["pretrained"] == "openai"
    assert records["event"]["origin"]["repo"] == "Eavn/event-clip"
    assert not records["image"]["random_init"] and records["image"]["standardize"] is None
    args = parser().parse_args(["--pretrained_weights", "--offline", "--trust_weights_file"])
    assert args.pretrained_weights and args.offline and args.trust_weights_file


# ------------------------------------------------------------------- a stand-in hub


class _Hub(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path] = (bytes, mode)`` the way the Hub's resolve URLs do; mode
    ``ok``, ``cut`` (announces the full length, sends half), ``corrupt`` (right length, wrong
    bytes: the ETag is the true SHA-256). Unknown paths: 404 EntryNotFound."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path))  # type: ignore[attr-defined]
        path = re.sub(r"/resolve/[^/]+/", "/resolve/main/", self.path)
        entry = self.server.files.get(path)  # type: ignore[attr-defined]
        if entry is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, mode = entry
        start = 0
        rng = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if rng and body:
            start = int(rng.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        if mode == "cut":
            self.wfile.write(data[start : max(start, len(data) // 2)])
        elif mode == "corrupt":
            self.wfile.write(data[start:-16] + b"\0" * 16)
        else:
            self.wfile.write(data[start:])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def hub(caches, monkeypatch) -> Iterator[http.server.ThreadingHTTPServer]:
    """A stand-in hub on 127.0.0.1 as HF_ENDPOINT, online mode, stopped after the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    server.files, server.requests = {}, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.undo()  # drop the network stubs of ``caches``; keep its folders
    monkeypatch.setenv("HOME", str(caches["home"]))
    monkeypatch.setenv("HF_HUB_CACHE", str(caches["hf"]))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(huggingface_hub.file_download.time, "sleep", lambda s: None)  # retries
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_download_then_cache_then_failures_leave_no_partial_file(
    tmp_path, caches, hub, monkeypatch
):
    model = tiny_clip(seed=6)
    data = _event_ckpt_bytes(model, tmp_path)
    hub.files["/Eavn/event-clip/resolve/main/vitl.pt"] = (data, "ok")
    repo = caches["hf"] / "models--Eavn--event-clip"

    enc = load_encoder(None, kind="event")  # downloaded, SHA-256 checked, safe-loaded
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    assert blob.read_bytes() == data and enc.source == str(repo / "snapshots" / COMMIT / "vitl.pt")
    assert enc.origin["revision"] == COMMIT
    n = len(hub.requests)
    assert load_encoder(None, kind="event").fingerprint == enc.fingerprint
    assert len(hub.requests) == n  # the second run is served by the cache

    def fails(file: str, mode: str | None, pattern: str) -> None:
        if mode is not None:  # other weights: a blob already in the cache is not fetched again
            other = _event_ckpt_bytes(tiny_clip(seed=100 + len(file)), tmp_path)
            hub.files[f"/Eavn/event-clip/resolve/main/{file}"] = (other, mode)
        before = _files(repo)
        with pytest.raises(WeightsUnavailable, match=pattern) as e:
            load_encoder(None, kind="event", weights=WeightsOptions(event_file=file))
        assert "--event_clip_ckpt PATH" in str(e.value) and "Nothing was kept" in str(e.value)
        assert _files(repo) == before or set(_files(repo)) - set(before) <= {
            f".no_exist/{COMMIT}/{file}"  # huggingface_hub's empty "not on the Hub" marker
        }, _files(repo)
        assert not list(repo.rglob("*.incomplete"))
        assert not list((repo / "snapshots").rglob(file))

    fails("missing.pt", None, r"does not exist \(404\).*no file 'missing\.pt'")
    fails("cut.pt", "cut", r"downloading event-CLIP weights .*cut\.pt failed")
    fails("corrupted.pt", "corrupt", r"SHA-256 .* is not the Hub's")

    with socket.socket() as s:  # a port nobody listens on: "no network"
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
    with pytest.raises(WeightsUnavailable, match=r"cannot reach http://127\.0\.0\.1.*no network"):
        load_encoder(None, kind="event", weights=WeightsOptions(event_file="other.pt"))


def test_open_clip_url_download_is_checked_and_atomic(tmp_path, caches, hub, monkeypatch):
    """A registry tag with only a URL (as OpenAI's files): open_clip's SHA-256 in the URL is
    checked, the file lands in ~/.cache/clip only when complete."""
    import open_clip.pretrained as registry

    model = tiny_clip(seed=8)
    path = tmp_path / "tiny.pt"
    torch.save(openai_state_dict(model), path)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    base = os.environ["HF_ENDPOINT"]
    for name, mode, digest in (("good", "ok", sha), ("cut", "cut", sha), ("bad", "ok", "f" * 64)):
        url_path = f"/clip/models/{digest}/{name}.pt"
        hub.files[url_path] = (data, mode)
        monkeypatch.setitem(
            registry._PRETRAINED, f"tiny-{name}", {"openai": {"url": base + url_path, "hf_hub": ""}}
        )
    enc = load_encoder(None, clip_model="tiny-good")
    assert enc.source == str(caches["clip"] / "good.pt")
    assert enc.fingerprint == load_encoder(path).fingerprint
    for name, pattern in (("cut", r"truncated: received \d+ of \d+ bytes"),
                          ("bad", r"is not open_clip's checksum ffff")):  # fmt: skip
        with pytest.raises(WeightsUnavailable, match=pattern) as e:
            load_encoder(None, clip_model=f"tiny-{name}")
        assert "--clip_ckpt PATH" in str(e.value)
    assert _files(caches["clip"]) == ["good.pt"]  # no partial or unverified file


# -------------------------------------------------------------- the seed's command


@pytest.mark.slow
def test_seed_image_command_runs_on_cached_weights(tmp_path, caches):
    """``python extracting/ucf_gen_img.py --video_dir ... --save_dir ...`` as the seed
    repository's instructions have it, no --clip_ckpt: the ViT-L-14/openai weights come from
    the Hugging Face cache."""
    model = tiny_clip(seed=9)
    snap = put_in_hf_cache(
        caches["hf"], OPENAI_L14_REPO, "open_clip_model.safetensors",
        _safetensors_bytes(model, tmp_path),
    )  # fmt: skip
    v = tmp_path / "videos"
    write_video(v / "Abuse" / "x.mp4", 40, (31, 23))
    env = {k: val for k, val in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1")  # HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=1 from ``caches``
    run = subprocess.run(
        [sys.executable, "extracting/ucf_gen_img.py", "--video_dir", str(v), "--save_dir",
         str(tmp_path / "rgb")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    feats = sorted((tmp_path / "rgb" / "Abuse").glob("x__*.npy"))
    assert len(feats) == 10 and np.load(feats[0]).shape == (2, 16)
    m = json.loads((tmp_path / "rgb" / "Abuse" / "x.manifest.json").read_text())
    assert m["encoder"]["source"] == str(snap)
    assert m["encoder"]["origin"]["pretrained"] == "openai" and not m["encoder"]["random_init"]
    assert m["encoder"]["fingerprint"] == load_encoder(snap).fingerprint
