"""Checkpoint files: ours (self-describing) and the authors' released ones.

Three layouts load:

* ours: ``{"format": "iefvad-ckpt/1", "model_config": {...}, "model_state_dict": {...},
  "train": {...}, ...}``: the architecture comes from the file itself;
* released plain ``state_dict`` (``temporal.*`` keys, docs/reference.md section 5);
* released wrapped ``{"epoch", "model_state_dict", "optimizer_state_dict", "ap"}``.

For released files the width, layer and refinement counts are read off the weights; the head
count cannot be (it does not change any shape) and defaults to 8. Released files have no
configuration: they always load with the released behaviour (``reference`` fusion, padding
not masked, :meth:`ModelConfig.released`); our files carry their fusion and masking flags.
Loading is strict: a file that does not fit stops with a message naming the file and the
mismatching keys.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write
from iefvad.models.model import IEFVAD, ModelConfig
from iefvad.paths import path_problem, shown

FORMAT = "iefvad-ckpt/1"
RESUME_FORMAT = "iefvad-resume/1"
"""Format of the resume states of :mod:`iefvad.engine.resume` (not loadable as a model)."""


class CheckpointError(UserInputError):
    """A checkpoint is missing, unreadable or does not fit the model."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: config, weights and whatever metadata the file carries."""

    path: Path
    kind: str
    """``iefvad``, ``released`` or ``released-wrapped``."""
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike[str], model: IEFVAD, **meta: Any) -> None:
    """Write ``model`` with its configuration and ``meta`` (atomically)."""
    payload = {
        "format": FORMAT,
        "model_config": model.cfg.to_dict(),
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **meta,
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.``; add ``temporal.`` to a bare fusion-module dict."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if sd and not any(k.startswith("temporal.") for k in sd) and "classifier.weight" in sd:
        sd = {f"temporal.{k}": v for k, v in sd.items()}
    return sd


_SAFE_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING")


def pickled_code(path: Path) -> list[str]:
    """The Python callables and classes a pickle (or a ``torch.save`` zip's ``data.pkl``)
    names beyond torch's own: what unpickling it would import and may call. Read with
    :mod:`pickletools`, nothing is executed; an unreadable pickle gives what was read."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _STRINGS:
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # noqa: BLE001 - a damaged pickle: keep what was read
        pass
    return [n for n in names if not n.startswith(_SAFE_GLOBALS)]


def _state_dict(sd: Any, path: Path) -> dict[str, torch.Tensor]:
    """``sd`` when it is a dict of named tensors, else :class:`CheckpointError`."""
    if not isinstance(sd, dict):
        raise CheckpointError(
            f"checkpoint {path}: 'model_state_dict' is a {type(sd).__name__}, not a dict of "
            "tensors: the file is damaged; use an intact copy or retrain"
        )
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {path}: 'model_state_dict' entry {k!r} is a {type(v).__name__}, "
                "not a named tensor: the file is damaged; use an intact copy or retrain"
            )
    return sd


def non_float(tensors: dict[str, torch.Tensor], allowed: tuple[str, ...] = ()) -> str | None:
    """``N tensor(s) are not floating point (key (dtype), ...)`` for the tensors of
    ``tensors`` that are integers (keys ending in ``allowed`` excepted), or None. An integer
    weight is cast silently by ``load_state_dict``: callers refuse it."""
    bad = [
        (k, v.dtype)
        for k, v in tensors.items()
        if not v.is_floating_point() and not (allowed and k.endswith(allowed))
    ]
    if not bad:
        return None
    shown = ", ".join(f"{k} ({str(d).replace('torch.', '')})" for k, d in bad[:3])
    return f"{len(bad)} tensor(s) are not floating point ({shown}{', ...' if len(bad) > 3 else ''})"


def check_float_weights(sd: dict[str, torch.Tensor], path: Path) -> None:
    """Every weight of the model is a floating-point tensor (an integer one, cast silently,
    gives weights of 0 and 1 and a model that scores everything alike)."""
    bad = non_float(sd)
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: {bad}: a model's weights are float32/float16/bfloat16; the "
            "file was converted or written wrongly; use the original checkpoint or retrain"
        )


def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


LAYER_KEY = r"temporal\.image_attn_layers\.(\d+)\.in_proj_weight$"
REFINE_KEY = r"temporal\.refinement_blocks\.(\d+)\.0\.weight$"


def _check_shapes(cfg: ModelConfig, sd: dict[str, torch.Tensor], path: Path) -> None:
    """The stored configuration's width, layer and refinement counts against the weights it
    comes with, before a model of that configuration is built (a configuration that says
    ``dim=8192`` over weights of width 32 would allocate gigabytes only to fail)."""
    w = sd.get("temporal.classifier.weight")
    read = {"dim": int(w.shape[-1]) if w is not None and w.ndim == 2 else None}
    if "image" in cfg.modalities:
        read["layers"] = _count(sd, LAYER_KEY)
    read["refine_steps"] = _count(sd, REFINE_KEY)
    wrong = [
        f"{k} {getattr(cfg, k)} (the weights hold {v})"
        for k, v in read.items()
        if v is not None and getattr(cfg, k) != v
    ]
    if wrong:
        raise CheckpointError(
            f"checkpoint {path}: its model_config does not match its weights: "
            f"{'; '.join(wrong)}. The file is damaged or was edited; use an intact copy or "
            "retrain"
        )


def infer_config(sd: dict[str, torch.Tensor], path: Path, **overrides: Any) -> ModelConfig:
    """Architecture of a released state_dict, read off its weight shapes; behaviour of the
    released code (``reference`` fusion, no padding mask) unless ``overrides`` say otherwise."""
    w = sd.get("temporal.classifier.weight")
    if w is None or w.ndim != 2:
        raise CheckpointError(
            f"checkpoint {path} has no 'temporal.classifier.weight': it is not an IEF-VAD "
            f"checkpoint (first keys: {', '.join(list(sd)[:5])})"
        )

    inferred = {
        "dim": int(w.shape[1]),
        "layers": _count(sd, LAYER_KEY),
        "refine_steps": _count(sd, REFINE_KEY),
    }
    inferred.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig.released(**inferred)


def read_checkpoint(path: str | os.PathLike[str], **overrides: Any) -> Checkpoint:
    """Read any supported checkpoint layout; ``overrides`` set config fields the file lacks
    (for released files: ``heads``, ``nu``, ``noise`` ...)."""
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {shown(path)} {problem}. Released checkpoints go to e.g. "
            "checkpoints/ucf/ucf.pth (see checkpoints/README.md)"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"checkpoint {path} is an empty file (0 bytes): its writing or copying was cut "
            "short; copy it again or retrain"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = pickled_code(path) or re.findall(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(
                f"checkpoint {path} holds pickled Python code or objects besides tensors "
                f"({', '.join(sorted(set(found))[:4])}); unpickling them could run arbitrary "
                "code, so the file was not loaded. If it is yours, re-save its state_dict alone "
                "(torch.save(model.state_dict(), path)); otherwise do not use it"
            ) from e
        # torch's own text here advises weights_only=False: never repeat that advice
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated or not a torch checkpoint "
            f"({size} bytes, not a readable pickle); copy it again or retrain"
        ) from e
    except Exception as e:  # noqa: BLE001 - any other unreadable file gets the same message
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated or not a torch checkpoint "
            f"({size} bytes; {_first_line(e)}); copy it again or retrain"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict")
    if obj.get("format") == RESUME_FORMAT:
        raise CheckpointError(
            f"{path} is a training resume state, not a checkpoint: continue the run with "
            f"`python main.py ... --resume {path}`, or evaluate the .pth checkpoint next to it"
        )
    if "format" in obj and obj["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {obj['format']!r}; this version reads {FORMAT!r} "
            "(and the released files): it was written by another version of the toolkit"
        )
    if obj.get("format") == FORMAT:
        lacking = [k for k in ("model_config", "model_state_dict") if k not in obj]
        if lacking or not isinstance(obj["model_config"], dict):
            raise CheckpointError(
                f"checkpoint {path} says format {FORMAT!r} but "
                + (
                    f"lacks {' and '.join(repr(k) for k in lacking)}"
                    if lacking
                    else "its 'model_config' is not a dict"
                )
                + ": it is damaged or was not written by iefvad.models.checkpoint.save_checkpoint; "
                "retrain, or save the bare state_dict and pass the architecture flags"
            )
        # files written before a field existed get the behaviour they were trained with
        saved = {"attention_sink": False, **obj["model_config"]}
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = ModelConfig.from_stored(saved, f"checkpoint {path}, model_config", given)
        sd = _state_dict(obj["model_state_dict"], path)
        _check_shapes(cfg, sd, path)
        meta = {k: v for k, v in obj.items() if k not in ("model_state_dict", "model_config")}
        return Checkpoint(path, "iefvad", cfg, sd, meta)
    if "model_state_dict" in obj:
        sd = _strip_prefixes(_state_dict(obj["model_state_dict"], path))
        meta = {k: v for k, v in obj.items() if k in ("epoch", "ap", "auc")}
        return Checkpoint(path, "released-wrapped", infer_config(sd, path, **overrides), sd, meta)
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = _strip_prefixes(obj)
        return Checkpoint(path, "released", infer_config(sd, path, **overrides), sd, {})
    raise CheckpointError(
        f"checkpoint {path} is a dict with keys {', '.join(list(obj)[:8])}: not a model "
        "state_dict, a released IEF-VAD file or one written by this toolkit"
    )


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", **overrides: Any
) -> tuple[IEFVAD, Checkpoint]:
    """Build the model a checkpoint describes and load its weights strictly (eval mode)."""
    ckpt = read_checkpoint(path, **overrides)
    model = IEFVAD(ckpt.config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in ckpt.state_dict]
    unexpected = [k for k in ckpt.state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in ckpt.state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"shape mismatch: {'; '.join(shapes[:3])}")
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not fit the model {ckpt.config}: "
            + "; ".join(parts)
            + ". Is it an IEF-VAD checkpoint of this architecture? Architecture options "
            "(--heads, --layers, ...) only apply to released files."
        )
    bad = [
        k
        for k, v in ckpt.state_dict.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise CheckpointError(
            f"checkpoint {ckpt.path} has NaN/Inf weights in {len(bad)} tensor(s): "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. The training that wrote it "
            "diverged; retrain (with a lower --lr) or use a checkpoint of an earlier epoch"
        )
    check_float_weights(ckpt.state_dict, ckpt.path)
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.to(device).eval(), ckpt
