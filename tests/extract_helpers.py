"""Helpers of the extraction tests: generated videos, tiny CLIP models, plain re-implementations.

The ``reference_*`` functions re-implement docs/reference.md sections 2-3 the straightforward way
(per-frame cv2 resize, numpy slicing, the seed scripts' 512-frame loop) without using the code
under test, so the tests compare two independent implementations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from iefvad.extraction.encoders import VisionArch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster
    (no OpenMP barriers spinning against other processes); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
# docs/reference.md s.2.2, written out: (rows, cols, flipped) of crops 0..9.
CROP_SLICES = {
    0: (slice(16, 240), slice(58, 282)),
    1: (slice(None, 224), slice(None, 224)),
    2: (slice(None, 224), slice(-224, None)),
    3: (slice(-224, None), slice(None, 224)),
    4: (slice(-224, None), slice(-224, None)),
}


def reference_crop(frames: np.ndarray, crop: int) -> np.ndarray:
    """``[N, 256, 340, 3]`` -> ``[N, 224, 224, 3]`` by the slices of docs/reference.md s.2.2."""
    rows, cols = CROP_SLICES[crop % 5]
    out = frames[:, rows, cols]
    return out[:, :, ::-1] if crop >= 5 else out


def write_video(
    path: Path,
    n: int,
    size: tuple[int, int] = (37, 29),
    fourcc: str = "mp4v",
    fps: float = 25.0,
    seed: int = 0,
    still_from: int | None = None,
) -> Path:
    """A video of ``n`` frames (W x H ``size``) with moving content; frames from ``still_from``
    on are one flat gray frame (no motion, and nothing for lossy codecs to refine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened(), f"cv2 cannot write {path} with {fourcc}"
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    still = np.full((h, w, 3), 128, np.uint8)
    for i in range(n):
        if still_from is not None and i >= still_from:
            frame = still
        else:
            frame = np.roll(base, shift=(i * 3) % w, axis=1)
            frame[: h // 3] = (i * 37) % 256
        vw.write(frame)
    vw.release()
    return path


def decode_reference(path: Path) -> np.ndarray:
    """Every frame, cv2 INTER_LINEAR-resized to 340x256, BGR->RGB, as the seed's crop.py."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        img = cv2.resize(f, dsize=(340, 256))
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames) if frames else np.zeros((0, 256, 340, 3), np.uint8)


def reference_groups(n: int) -> list[tuple[int, int]]:
    """``(start, frames)`` of the snippet groups the seed scripts' loop encodes for N frames."""
    groups, start, pending = [], 0, 0
    for _ in range(n):
        pending += 1
        if pending == 512:
            groups.append((start, 512))
            start, pending = start + 512, 0
    if pending > 16:
        groups.append((start, (pending // 16) * 16))
    return groups


def reference_event_maps(rgb: np.ndarray, crop: int, threshold: float = 10.0) -> np.ndarray:
    """docs/reference.md s.3 for one group of snippets: ``[16*S, 256, 340, 3]`` RGB -> ``[S, 3,
    224, 224]`` float32, normalised by the group maximum (0 stays 0 instead of NaN)."""
    c = reference_crop(rgb, crop).astype(np.float32)
    w = np.array([0.2989, 0.5870, 0.1140], np.float32)
    gray = (c[..., 0] * w[0] + c[..., 1] * w[1]) + c[..., 2] * w[2]
    gray = gray.reshape(-1, 16, 224, 224)
    counts = (np.abs(gray[:, 1:] - gray[:, :-1]) > threshold).sum(1).astype(np.float32)
    peak = counts.max()
    maps = counts / peak if peak > 0 else np.zeros_like(counts)
    return np.repeat(maps[:, None], 3, axis=1)


def reference_image_input(rgb: np.ndarray, crop: int) -> torch.Tensor:
    """CLIP input of frames ``[N, 256, 340, 3]`` RGB: ``[N, 3, 224, 224]`` float32."""
    x = reference_crop(rgb, crop).astype(np.float32) / 255.0
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def tiny_clip(seed: int = 0, layers: int = 1, embed: int = 16):
    """A tiny open_clip ``CLIP`` (ViT 224/32, width 64) with seeded random weights, fp32."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(
            embed,
            CLIPVisionCfg(layers=layers, width=64, patch_size=32, image_size=224),
            CLIPTextCfg(context_length=8, vocab_size=50, width=64, heads=1, layers=1),
            quick_gelu=True,
        )
        # Non-trivial LayerNorm/class/positional parameters, so a loader that drops them fails.
        for name, p in model.named_parameters():
            if "ln" in name or "embedding" in name:
                p.data.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def reference_embed(model, pixels: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """``model.encode_image`` of ``pixels [N, 3, 224, 224]`` in 0..1, with CLIP's mean/std
    normalisation (image tower) or without it (event tower): the expected encoder output."""
    x = pixels
    if normalise:
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
        x = (x - mean) / std
    with torch.no_grad():
        return model.encode_image(x)


def openai_state_dict(model) -> dict[str, torch.Tensor]:
    """The OpenAI-format state dict of an open_clip ``CLIP`` (same key names)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Flatten(nn.Module):
    """An "encoder" whose embedding is its input, flattened: exposes what the pipeline feeds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def identity_encoder(normalise: bool):
    """An :class:`iefvad.extraction.encoders.Encoder` returning its (normalised) input pixels."""
    from iefvad.extraction.encoders import OPENAI_MEAN, OPENAI_STD, Encoder

    return Encoder(
        module=Flatten(),
        embed_dim=3 * 224 * 224,
        image_size=224,
        mean=OPENAI_MEAN if normalise else None,
        std=OPENAI_STD if normalise else None,
        fingerprint="identity",
        source="test",
    )


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


TINY = VisionArch(width=64, layers=1, patch_size=32, embed_dim=32)
"""The towers of :func:`tiny_scoring_checkpoint`."""


def tiny_scoring_checkpoint(path: Path) -> Path:
    """A small untrained model (seed 0) whose checkpoint records two random :data:`TINY`
    towers (per-snippet events): what ``infer.py`` needs to score a video in about a second."""
    from iefvad.extraction.encoders import random_encoder
    from iefvad.extraction.provenance import attach_to_checkpoint, encoder_record, feature_record
    from iefvad.extraction.recipe import RecipeOptions
    from iefvad.models.checkpoint import save_checkpoint
    from iefvad.models.model import IEFVAD, ModelConfig

    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=32, heads=1, refine_steps=1, dropout=0.0))
    save_checkpoint(path, model, dataset="custom")
    img, evt = random_encoder(TINY, 0), random_encoder(TINY, 1, normalise=False)
    rec = feature_record(
        encoder_record(img, TINY, 0),
        encoder_record(evt, TINY, 1),
        RecipeOptions(crops=(5,), event_norm="snippet"),
        test_crop=5,
    )
    attach_to_checkpoint(path, rec)
    return path
