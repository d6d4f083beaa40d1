"""Weights that would give meaningless features are refused: integer-typed tensors (cast
silently before), and features that come out NaN/Inf or constant stop their video with an
error in the summary instead of being written as if extracted."""

from __future__ import annotations

import copy

import pytest
import torch

from iefvad.extraction.encoders import EncoderError, load_encoder, random_encoder
from iefvad.extraction.pipeline import RunConfig, run_extraction
from iefvad.extraction.recipe import Encoders, RecipeOptions

from extract_helpers import openai_state_dict, tiny_clip, torch_threads, write_video


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def test_int8_encoder_weights_are_refused_naming_key_and_dtype(tmp_path):
    sd = openai_state_dict(tiny_clip(seed=0, layers=1))
    sd = {k: (v.to(torch.int8) if k.startswith("visual.") else v) for k, v in sd.items()}
    path = tmp_path / "int8.pt"
    torch.save(sd, path)
    with pytest.raises(EncoderError) as e:
        load_encoder(path, kind="image")
    msg = str(e.value)
    assert str(path) in msg and "int8" in msg and "visual" not in msg.split("(")[0]
    assert "not floating point" in msg


def test_float_encoder_weights_still_load(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(openai_state_dict(tiny_clip(seed=0, layers=1)), path)
    assert load_encoder(path, kind="image").embed_dim > 0


def _poisoned(value: float):
    enc = copy.deepcopy(random_encoder("tiny", 0))
    with torch.no_grad():
        for p in enc.module.parameters():
            p.fill_(value)
    return enc


def _cfg(tmp_path) -> RunConfig:
    return RunConfig(
        video_dir=tmp_path / "videos",
        roots={"image": tmp_path / "out" / "rgb", "event": tmp_path / "out" / "event_thr_10"},
        opts=RecipeOptions(crops=(0,)),
        workers=1,
        progress=False,
    )


@pytest.mark.parametrize("value, why", [(float("nan"), "NaN/Inf"), (0.0, "constant")])
def test_nan_or_constant_features_stop_the_video_not_the_run(tmp_path, value, why):
    write_video(tmp_path / "videos" / "A" / "x.mp4", 40, (24, 16))
    write_video(tmp_path / "videos" / "A" / "y.mp4", 40, (24, 16))
    enc = Encoders(image=_poisoned(value), event=random_encoder("tiny", 1))
    summary = run_extraction(_cfg(tmp_path), enc)
    assert sorted(summary.failed) == ["A/x.mp4", "A/y.mp4"], summary.failed
    assert all(why in r and "image features" in r for r in summary.failed.values())
    assert summary.exit_code == 1
    assert not list((tmp_path / "out").rglob("*.npy"))  # nothing written as if extracted


def test_healthy_encoders_still_extract(tmp_path):
    write_video(tmp_path / "videos" / "A" / "x.mp4", 40, (24, 16))
    enc = Encoders(image=random_encoder("tiny", 0), event=random_encoder("tiny", 1))
    summary = run_extraction(_cfg(tmp_path), enc)
    assert summary.done == ["A/x.mp4"] and not summary.failed
