"""The setup of inference: a checkpoint's model with the encoders and recipe of its features
(read off the checkpoint's feature record, else the files passed), and the checks every scoring
path shares (frame rates, NaN scores)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from iefvad.errors import UserInputError
from iefvad.extraction.encoders import resolve_device, resolve_precision
from iefvad.extraction.provenance import CHECKPOINT_KEY, build_encoder, check_record, recipe_of
from iefvad.extraction.recipe import Encoders, RecipeOptions
from iefvad.extraction.weights import WeightsOptions
from iefvad.models.checkpoint import Checkpoint, load_model
from iefvad.models.model import IEFVAD

DEFAULT_FPS = 25.0
"""Assumed (unless ``--fps`` is given) when a container or camera reports no usable frame
rate; the output says so."""
FPS_RANGE = (0.1, 1000.0)
"""Frame rates outside this range (a broken header: 0, NaN, 2e9 ...) are not believed."""


class InferError(UserInputError):
    """Bad options, source or checkpoint for ``infer.py`` (the message says what to fix)."""


def frame_rate(reported: float, override: float | None = None) -> tuple[float, str | None]:
    """``(fps, warning)``: ``override`` (``--fps``) if given, else the ``reported`` rate when
    it is plausible (:data:`FPS_RANGE`), else :data:`DEFAULT_FPS` with a warning."""
    if override is not None:
        return float(override), None
    if math.isfinite(reported) and FPS_RANGE[0] <= reported <= FPS_RANGE[1]:
        return float(reported), None
    said = (
        "no frame rate"
        if not reported or math.isnan(reported)
        else f"a frame rate of {reported:g} fps, which cannot be right"
    )
    return DEFAULT_FPS, (
        f"reports {said}: times assume {DEFAULT_FPS:g} fps (pass --fps to give the true rate)"
    )


def check_finite_scores(s: InferSetup, scores: Iterable[float], where: str) -> None:
    """Stop at the first NaN/inf score (no threshold or alert fires on NaN)."""
    for x in scores:
        if not math.isfinite(x):
            raise InferError(
                f"checkpoint {s.checkpoint.path} gave a score of {x} on {where}: the encoders' "
                "weights or features hold NaN/inf (a half-precision overflow: try --precision "
                "fp32; else check the --clip_ckpt / --event_clip_ckpt files)"
            )


# ------------------------------------------------------------------------------ setup


@dataclass
class InferSetup:
    """A checkpoint's model with the encoders and recipe of its features."""

    model: IEFVAD
    checkpoint: Checkpoint
    encoders: Encoders
    opts: RecipeOptions
    crop: int
    group_snippets: int
    device: torch.device
    record: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        enc = {
            m: {"source": e.source, "fingerprint": e.fingerprint, "arch": e.arch}
            for m in self.encoders.modalities
            if (e := getattr(self.encoders, m)) is not None
        }
        return {
            "checkpoint": str(self.checkpoint.path),
            "fusion": self.model.cfg.fusion,
            "encoders": enc,
            "recipe": {**self.opts.as_dict(), "group_snippets": self.group_snippets},
            "encoders_from_checkpoint": self.record is not None,
            "encoder_warning": unverified_encoders(self),
        }


def unverified_encoders(s: InferSetup) -> str | None:
    """The warning for a checkpoint without a feature record (released checkpoints have none):
    encoders of the right width are accepted, but nothing shows they made its features."""
    if s.record is not None:
        return None
    used = ", ".join(
        f"{m} {e.source}"
        for m in s.encoders.modalities
        if (e := getattr(s.encoders, m)) is not None
    )
    return (
        f"checkpoint {s.checkpoint.path} does not record the encoders of its training features "
        f"(released checkpoints do not), so the encoders used ({used}) cannot be verified "
        "against them: the scores are meaningful only if these are the exact CLIP weights and "
        "extraction recipe the model was trained with"
    )


def setup(
    ckpt_path: str | os.PathLike[str],
    clip_ckpt: str | os.PathLike[str] | None = None,
    event_clip_ckpt: str | os.PathLike[str] | None = None,
    clip_model: str = "ViT-L-14",
    device: str = "auto",
    precision: str = "auto",
    crop: int | None = None,
    event_norm: str | None = None,
    threshold: float | None = None,
    group_snippets: int | None = None,
    check_encoders: bool = True,
    batch_size: int | None = None,
    weights: WeightsOptions | None = None,
) -> InferSetup:
    """Load the model and the encoders of its features (from its record, or the files
    passed); options left None come from the checkpoint's record (or the reference recipe).
    ``weights``: where weights not passed as files come from (caches, downloads, trust)."""
    dev = resolve_device(device)
    model, ckpt = load_model(ckpt_path, dev)
    rec = check_record(ckpt.meta.get(CHECKPOINT_KEY), ckpt.path)
    opts, rec_crop, rec_group = recipe_of(rec)
    crop = rec_crop if crop is None else crop
    opts = RecipeOptions(
        crops=(crop,),
        tail="pad",
        threshold=opts.threshold if threshold is None else threshold,
        event_norm=opts.event_norm if event_norm is None else event_norm,  # type: ignore[arg-type]
        clamp=opts.clamp,
    )
    prec = resolve_precision(precision, dev)
    towers = {}
    for kind, path in (("image", clip_ckpt), ("event", event_clip_ckpt)):
        if kind not in model.cfg.modalities:
            continue
        sub = None if rec is None else rec.get(kind)
        enc = build_encoder(
            kind, sub, path, str(ckpt.path), clip_model, check=check_encoders, weights=weights
        )
        towers[kind] = enc.to(dev, prec)
    dims = {e.embed_dim for e in towers.values()}
    if dims != {model.cfg.dim}:
        raise InferError(
            f"checkpoint {ckpt.path} takes D={model.cfg.dim} features but the encoders give "
            f"{sorted(dims)}: pass the CLIP weights it was trained with"
        )
    batch = batch_size or (256 if dev.type == "cuda" else 64)
    encoders = Encoders(image=towers.get("image"), event=towers.get("event"), batch_size=batch)
    group = rec_group if group_snippets is None else group_snippets
    return InferSetup(model, ckpt, encoders, opts, crop, group, dev, rec)


@dataclass(frozen=True)
class SessionConfig:
    """What :func:`setup` needs (``infer.py``'s encoder, recipe and runtime flags); None:
    the checkpoint's record (or the reference recipe) decides."""

    ckpt_path: str | os.PathLike[str]
    clip_ckpt: str | os.PathLike[str] | None = None
    event_clip_ckpt: str | os.PathLike[str] | None = None
    clip_model: str = "ViT-L-14"
    device: str = "auto"
    precision: str = "auto"
    crop: int | None = None
    event_norm: str | None = None
    threshold: float | None = None
    """Event threshold in gray levels (``--event_threshold``)."""
    group_snippets: int | None = None
    check_encoders: bool = True
    batch_size: int | None = None
    weights: WeightsOptions = field(default_factory=WeightsOptions)


def open_session(cfg: SessionConfig) -> InferSetup:
    """:func:`setup` with the options of ``cfg``."""
    return setup(**{f.name: getattr(cfg, f.name) for f in fields(cfg)})
