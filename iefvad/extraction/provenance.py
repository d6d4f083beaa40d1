"""Which encoders and recipe made a model's features: recorded in checkpoints, used to score.

A fusion checkpoint is only meaningful on features from the encoders it was trained on. The
record written here (``checkpoint["features"]``) names them, with a fingerprint of their
weights, and the extraction recipe (crop, event threshold and normalisation), so that
``infer.py`` can rebuild or check the encoders and compute the same features:

.. code-block:: python

    {"format": "iefvad-features/1",
     "image": {"source": ..., "fingerprint": ..., "random_init": bool, "arch": "ViT width=...",
               "random_arch": {VisionArch fields} | None, "seed": int | None, "embed_dim": ...,
               "standardize": {"mean": [...], "std": [...]} | None},
     "event": {... the same ...},
     "recipe": {"crops": [...], "tail": ..., "threshold": ..., "event_norm": ..., "clamp": ...},
     "test_crop": 5, "group_snippets": 32}

Random encoders are rebuilt from ``random_arch`` and ``seed`` (and checked against the
fingerprint); encoders loaded from files are rebuilt from the files the user passes, or from
the recorded path when it still exists, and checked the same way.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from iefvad.errors import UserInputError
from iefvad.extraction.encoders import Encoder, VisionArch, load_encoder, random_encoder
from iefvad.extraction.recipe import RecipeOptions
from iefvad.extraction.standardize import standardized
from iefvad.extraction.weights import WeightsOptions, options_from_origin
from iefvad.fileio import atomic_write
from iefvad.models.checkpoint import read_checkpoint
from iefvad.stored import Bound, StoredValueError, check_fields, check_value
from iefvad.video.decode import GROUP_SNIPPETS, NUM_CROPS
from iefvad.video.events import EVENT_NORMS

FEATURES_FORMAT = "iefvad-features/1"
CHECKPOINT_KEY = "features"


class FeatureMetaError(UserInputError):
    """The encoders given do not match the checkpoint, or none can be found."""


def encoder_record(
    enc: Encoder,
    random_arch: VisionArch | None = None,
    seed: int | None = None,
    standardize: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """What to remember about one encoder: ``random_arch``/``seed`` make a random tower
    rebuildable; ``standardize`` = ``(mean, std)`` when ``enc`` ends with a
    :class:`~iefvad.extraction.standardize.Standardize` map (see
    :mod:`iefvad.extraction.standardize`)."""
    rec = dict(enc.metadata())
    rec["random_arch"] = asdict(random_arch) if random_arch is not None else None
    rec["seed"] = seed
    rec["standardize"] = (
        None
        if standardize is None
        else {"mean": [float(v) for v in standardize[0]], "std": [float(v) for v in standardize[1]]}
    )
    return rec


def feature_record(
    image: dict[str, Any] | None,
    event: dict[str, Any] | None,
    opts: RecipeOptions,
    test_crop: int,
    group_snippets: int = GROUP_SNIPPETS,
) -> dict[str, Any]:
    """The full record of a feature set (see the module doc)."""
    return {
        "format": FEATURES_FORMAT,
        "image": image,
        "event": event,
        "recipe": opts.as_dict(),
        "test_crop": int(test_crop),
        "group_snippets": int(group_snippets),
    }


def attach_to_checkpoint(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Add ``record`` to a checkpoint written by this toolkit, under ``"features"`` (atomic)."""
    path = Path(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "model_state_dict" not in obj:
        raise FeatureMetaError(f"checkpoint {path} is not a dict with a model_state_dict")
    obj[CHECKPOINT_KEY] = record
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


ENCODER_BOUNDS = {
    "embed_dim": Bound("int", 1, 4096),
    "seed": Bound("int", 0, 2**63 - 1),
    "random_init": Bound("bool"),
}
RECORD_BOUNDS = {
    "test_crop": Bound("int", 0, NUM_CROPS - 1),
    "group_snippets": Bound("int", 1, 4096),
}
RECIPE_BOUNDS = {
    "threshold": Bound("float", 0.0, 255.0),
    "clamp": Bound("float", 0.0, 1e6, lo_open=True),
    "event_norm": Bound("str", choices=EVENT_NORMS),
}


def _check_standardize(std: Any, dim: Any, where: str) -> None:
    """A record's ``standardize`` map: ``mean`` and ``std`` lists of ``dim`` finite numbers,
    ``std`` positive."""
    if not isinstance(std, dict):
        raise StoredValueError(f"{where}: 'standardize' is a {type(std).__name__}, not a map")
    for key, lo_open in (("mean", False), ("std", True)):
        values = std.get(key)
        if not isinstance(values, list) or (isinstance(dim, int) and len(values) != dim):
            n = len(values) if isinstance(values, list) else type(values).__name__
            raise StoredValueError(
                f"{where}: 'standardize.{key}' holds {n} values, the encoder's embed_dim is "
                f"{dim}: the file is damaged or was edited"
            )
        bound = Bound("float", 0.0 if lo_open else -1e6, 1e6, lo_open=lo_open)
        for i, v in enumerate(values):
            check_value(v, bound, where, f"standardize.{key}[{i}]")


def check_record(rec: Any, path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A checkpoint's feature record (None when it has none), each value checked for type
    and range (:mod:`iefvad.stored`) before an encoder or a recipe is built from it: an error
    names the checkpoint and the key."""
    if rec is None:
        return None
    where = f"checkpoint {path}, feature record"
    if not isinstance(rec, dict):
        raise StoredValueError(f"{where}: is a {type(rec).__name__}, not a map")
    if rec.get("format") != FEATURES_FORMAT:
        raise FeatureMetaError(
            f"checkpoint {path}: feature record of unknown format {rec.get('format')!r}"
        )
    check_fields(rec, RECORD_BOUNDS, where)
    check_fields(rec.get("recipe") or {}, RECIPE_BOUNDS, f"{where}, recipe")
    for kind in ("image", "event"):
        sub = rec.get(kind)
        if sub is None:
            continue
        at = f"{where}, {kind}"
        check_fields(sub, ENCODER_BOUNDS, at)
        if sub.get("seed") is not None:
            check_value(sub["seed"], ENCODER_BOUNDS["seed"], at, "seed")
        if sub.get("random_arch") is not None:
            VisionArch.from_stored(sub["random_arch"], f"{at}, random_arch")
        if sub.get("standardize") is not None:
            _check_standardize(sub["standardize"], sub.get("embed_dim"), at)
    return rec


def read_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The feature record of a checkpoint, or None (released checkpoints have none)."""
    return check_record(read_checkpoint(path).meta.get(CHECKPOINT_KEY), path)


def _check(enc: Encoder, rec: dict[str, Any] | None, kind: str, ckpt: str) -> Encoder:
    if rec is not None and rec.get("fingerprint") and enc.fingerprint != rec["fingerprint"]:
        raise FeatureMetaError(
            f"the {kind} encoder {enc.source} (fingerprint {enc.fingerprint}) is not the one "
            f"checkpoint {ckpt} was trained with ({rec.get('source')}, fingerprint "
            f"{rec['fingerprint']}, {rec.get('arch')}): its scores would be meaningless. Pass "
            f"the {kind} weights the model was trained on, or --allow_other_encoders to "
            "score anyway"
        )
    return enc


def build_encoder(
    kind: str,
    rec: dict[str, Any] | None,
    path: str | os.PathLike[str] | None,
    ckpt: str,
    clip_model: str = "ViT-L-14",
    check: bool = True,
    weights: WeightsOptions | None = None,
) -> Encoder:
    """The ``kind`` (``image``/``event``) encoder for checkpoint ``ckpt``.

    ``path`` (a weights file the user passed) wins; else a random encoder is rebuilt from the
    record, or the recorded weights file is used when it exists, or the recorded cache/hub
    origin is fetched again; a checkpoint without a record gets the default weights (caches,
    else a download; ``weights`` says how). With ``check``, the result must have the
    recorded fingerprint.
    """
    flag = "--clip_ckpt" if kind == "image" else "--event_clip_ckpt"
    opts = weights or WeightsOptions()
    if path is not None:
        enc = load_encoder(path, kind=kind, clip_model=clip_model, weights=opts)  # type: ignore[arg-type]
    elif rec is not None and rec.get("random_init") and rec.get("random_arch"):
        arch = VisionArch.from_stored(rec["random_arch"], f"checkpoint {ckpt}, {kind} random_arch")
        enc = random_encoder(arch, int(rec.get("seed") or 0), normalise=kind == "image")
    elif rec is not None and rec.get("source") and Path(rec["source"]).is_file():
        enc = load_encoder(rec["source"], kind=kind, clip_model=clip_model, weights=opts)  # type: ignore[arg-type]
    elif rec is not None and rec.get("origin"):
        model, again = options_from_origin(rec["origin"], opts, clip_model)
        enc = load_encoder(None, kind=kind, clip_model=model, weights=again)  # type: ignore[arg-type]
    elif rec is not None:
        raise FeatureMetaError(
            f"checkpoint {ckpt} was trained on {kind} features of {rec.get('source')} "
            f"({rec.get('arch')}), which is not here: pass that file with {flag}"
        )
    else:
        enc = load_encoder(None, kind=kind, clip_model=clip_model, weights=opts)  # type: ignore[arg-type]
    if rec is not None and rec.get("standardize"):
        enc = standardized(enc, rec["standardize"]["mean"], rec["standardize"]["std"])
    return _check(enc, rec, kind, ckpt) if check else enc


def recipe_of(rec: dict[str, Any] | None) -> tuple[RecipeOptions, int, int]:
    """``(recipe, test crop, event group size)`` of a record; the reference's without one
    (threshold 10, events normalised over groups of 32 snippets, crop 5)."""
    if rec is None:
        return RecipeOptions(crops=(5,), tail="pad"), 5, GROUP_SNIPPETS
    r = dict(rec.get("recipe") or {})
    crop = int(rec.get("test_crop", (r.get("crops") or [5])[0]))
    opts = RecipeOptions(
        crops=(crop,),
        tail="pad",
        threshold=float(r.get("threshold", 10.0)),
        event_norm=r.get("event_norm", "group"),
        clamp=float(r.get("clamp", 16.0)),
    )
    return opts, crop, int(rec.get("group_snippets", GROUP_SNIPPETS))


__all__ = [
    "CHECKPOINT_KEY",
    "FEATURES_FORMAT",
    "FeatureMetaError",
    "attach_to_checkpoint",
    "build_encoder",
    "check_record",
    "encoder_record",
    "feature_record",
    "read_record",
    "recipe_of",
]
