"""Loading CLIP and event-CLIP weights through open_clip from every accepted file format."""

from __future__ import annotations

import argparse

import huggingface_hub  # noqa: F401 - reads the environment at import: before tests patch it
import numpy as np
import pytest
import torch

from iefvad.extraction.encoders import (
    EncoderError,
    load_encoder,
    random_encoder,
    read_weights_file,
    state_dict_of,
)
from iefvad.extraction.recipe import Encoders, RecipeOptions, encode_snippets
from iefvad.video.decode import decode_resized

from extract_helpers import (
    cosine_rows,
    openai_state_dict,
    reference_embed,
    tiny_clip,
    torch_threads,
    write_video,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def models():
    return tiny_clip(seed=0, layers=2), tiny_clip(seed=1, layers=2)


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def test_openai_state_dict_builds_the_architecture_from_the_weights(tmp_path, models, pixels):
    path = tmp_path / "tiny_openai.pt"
    torch.save(openai_state_dict(models[0]), path)
    enc = load_encoder(path)
    assert (enc.embed_dim, enc.image_size) == (16, 224)
    assert "width=64 layers=2 patch=32" in enc.arch and not enc.random_init
    assert enc.source == str(path)
    torch.testing.assert_close(
        enc.encode(pixels), reference_embed(models[0], pixels), atol=1e-5, rtol=0
    )
    assert not load_encoder(path, kind="event").metadata()["normalise"]


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_open_clip_and_vision_only_files_give_the_same_weights(
    tmp_path, models, pixels
):
    sd = openai_state_dict(models[0])
    torch.save(sd, tmp_path / "plain.pt")
    ref = load_encoder(tmp_path / "plain.pt")
    traced = torch.jit.trace_module(  # an archive like OpenAI's ViT-L-14.pt
        tiny_clip(seed=0, layers=2), {"encode_image": (torch.ones(1, 3, 224, 224),)}
    )
    torch.jit.save(traced, tmp_path / "jit.pt")
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
        tmp_path / "open_clip.pt",
    )
    from safetensors.torch import save_file

    vision = {k[len("visual.") :]: v.contiguous() for k, v in sd.items() if k.startswith("visual.")}
    save_file(vision, str(tmp_path / "vision.safetensors"))
    for name in ("jit.pt", "open_clip.pt", "vision.safetensors"):
        enc = load_encoder(tmp_path / name)
        assert enc.fingerprint == ref.fingerprint, name
        torch.testing.assert_close(enc.encode(pixels), ref.encode(pixels), atol=1e-6, rtol=0)


def test_event_clip_checkpoint_keeps_encoder_k(tmp_path, models, pixels):
    key = openai_state_dict(models[0])
    query = openai_state_dict(models[1])
    ckpt = {
        "checkpoint": {
            **{f"encoder_k.{k}": v for k, v in key.items()},
            **{f"encoder_q.{k}": v for k, v in query.items()},
            "queue": torch.zeros(3, 16),
        },
        "epoch": 7,
        "args": argparse.Namespace(lr=0.1),  # not loadable with weights_only=True
    }
    torch.save(ckpt, tmp_path / "event_clip.pt")
    enc = load_encoder(tmp_path / "event_clip.pt", kind="event")
    assert enc.mean is None  # event maps are fed raw, without CLIP mean/std
    want = reference_embed(models[0], pixels, normalise=False)
    torch.testing.assert_close(enc.encode(pixels), want, atol=1e-5, rtol=0)
    other = reference_embed(models[1], pixels, normalise=False)
    assert (enc.encode(pixels) - other).abs().max() > 1e-2
    assert set(state_dict_of(read_weights_file(tmp_path / "event_clip.pt"))) == set(key)


def test_bad_files_give_errors_naming_file_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # empty cache; offline (conftest)
    with pytest.raises(EncoderError, match=r"missing\.pt does not exist"):
        load_encoder(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(EncoderError, match=r"junk\.pt cannot be read \(.+\): expected a Torch"):
        load_encoder(tmp_path / "junk.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(EncoderError, match=r"other\.pt: not in OpenAI CLIP layout.*fc\.weight"):
        load_encoder(tmp_path / "other.pt", clip_format="openai")
    with pytest.raises(EncoderError, match=r"as model 'no-such-model'.*--clip_model"):
        load_encoder(tmp_path / "other.pt", clip_model="no-such-model")
    with pytest.raises(EncoderError, match=r"event-CLIP.*--event_clip_ckpt"):
        load_encoder(None, kind="event")
    with pytest.raises(EncoderError, match=r"--random_init builds one of"):
        load_encoder(None, random_init=True, random_arch="ViT-H-14")


def test_cache_fallback_then_offline_message(tmp_path, monkeypatch, models, pixels):
    """Without --clip_ckpt: open_clip's URL cache is used; offline with nothing cached, the
    error names the file to place, where, and the flag."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError) as e:
        load_encoder(None, clip_model="ViT-L-14")
    msg = str(e.value)
    cached = tmp_path / ".cache" / "clip" / "ViT-L-14.pt"
    assert "openaipublic.azureedge.net" in msg and f"at {cached}" in msg and "--clip_ckpt" in msg
    assert "offline" in msg and "HF_HUB_OFFLINE" in msg
    cached.parent.mkdir(parents=True)
    torch.save(openai_state_dict(models[0]), cached)
    enc = load_encoder(None, clip_model="ViT-L-14")
    assert enc.source == str(cached)
    assert enc.metadata()["origin"]["pretrained"] == "openai"
    torch.testing.assert_close(
        enc.encode(pixels), reference_embed(models[0], pixels), atol=1e-5, rtol=0
    )


def test_random_init_is_seeded_and_recorded():
    a, b, c = random_encoder("tiny", 0), random_encoder("tiny", 0), random_encoder("tiny", 1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.random_init and a.metadata()["random_init"] and a.source == "random(seed=0)"
    ev = load_encoder(None, kind="event", random_init=True, random_arch="tiny")
    assert ev.fingerprint == c.fingerprint and ev.mean is None  # event default seed 1


def test_encoders_reject_a_non_224_tower():
    from iefvad.extraction.encoders import ARCHS, VisionArch, random_encoder

    arch = VisionArch(**{**ARCHS["tiny"].__dict__, "image_size": 96})
    with pytest.raises(ValueError, match="96x96 inputs.*224x224"):
        Encoders(image=random_encoder(arch))


def test_low_precision_within_cosine_0999_of_fp32_per_snippet(tmp_path, models):
    path = tmp_path / "tiny.pt"
    torch.save(openai_state_dict(models[0]), path)
    frames = decode_resized(write_video(tmp_path / "v.mp4", 32, (45, 31)))
    opts = RecipeOptions(crops=(6,))

    def run(prec: str):
        enc = Encoders(
            image=load_encoder(path).to("cpu", prec),
            event=load_encoder(path, kind="event").to("cpu", prec),
            batch_size=32,
        )
        return encode_snippets(enc, frames, opts)

    ref = run("fp32")
    for precision in ("fp16", "bf16"):
        low = run(precision)
        for m in ("image", "event"):
            a, b = getattr(low, m)[6].numpy(), getattr(ref, m)[6].numpy()
            assert a.dtype == np.float32 and a.shape == (2, 16)
            assert not np.array_equal(a, b)  # it did run in lower precision
            assert cosine_rows(a, b).min() >= 0.999, (precision, m)
