"""Encoders of a run, loaded and placed on their device: what ``extracting/extract.py`` and any
other caller of :func:`iefvad.extraction.pipeline.run_extraction` need first."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import torch

from iefvad.devices import resolve_device
from iefvad.extraction.encoders import load_encoder, resolve_precision
from iefvad.extraction.pipeline import cpu_threads
from iefvad.extraction.recipe import Encoders
from iefvad.extraction.weights import WeightsOptions


@dataclass(frozen=True)
class EncoderSetup:
    """Which encoders to load and where (the extraction flags, typed)."""

    modalities: tuple[str, ...] = ("image", "event")
    image_ckpt: str | os.PathLike[str] | None = None
    event_ckpt: str | os.PathLike[str] | None = None
    clip_model: str = "ViT-L-14"
    clip_format: Literal["auto", "openai", "open_clip"] = "auto"
    random_init: bool = False
    random_arch: str | None = None
    weights: WeightsOptions = field(default_factory=WeightsOptions)
    seed: int = 0
    """Seed of random image weights; the event encoder takes ``seed + 1``."""
    device: str = "auto"
    precision: str = "auto"
    images_per_batch: int | None = None
    """Images per forward pass (default 256 on CUDA, 32 elsewhere)."""
    compile: bool = False
    threads: int | None = None
    """Torch intra-op threads (default on the CPU: the cores the decode workers leave)."""
    workers: int = 1


@dataclass(frozen=True)
class ReadyEncoders:
    encoders: Encoders
    device: torch.device
    precision: str


def prepare_encoders(setup: EncoderSetup) -> ReadyEncoders:
    """Resolve the device and precision, load the encoders of ``setup.modalities``, move them
    there (compiled if asked) and set torch's threads and CUDA device for the run."""
    device = resolve_device(setup.device)
    precision = resolve_precision(setup.precision, device)
    common = dict(
        clip_model=setup.clip_model,
        clip_format=setup.clip_format,
        random_init=setup.random_init,
        random_arch=setup.random_arch,
        weights=setup.weights,
    )
    image = event = None
    if "image" in setup.modalities:
        image = load_encoder(setup.image_ckpt, kind="image", seed=setup.seed, **common)
    if "event" in setup.modalities:
        event = load_encoder(setup.event_ckpt, kind="event", seed=setup.seed + 1, **common)
    batch = setup.images_per_batch or (256 if device.type == "cuda" else 32)
    for enc in (image, event):
        if enc is not None:
            enc.to(device, precision)
            if setup.compile:
                enc.compile()
    if setup.threads is not None or device.type == "cpu":
        torch.set_num_threads(setup.threads or cpu_threads(setup.workers))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # pinned buffers and kernels on this rank's GPU
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 (reference parity)
        torch.backends.cuda.matmul.allow_tf32 = False
    return ReadyEncoders(Encoders(image=image, event=event, batch_size=batch), device, precision)
