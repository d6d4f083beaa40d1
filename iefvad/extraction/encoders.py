"""CLIP image and event-CLIP encoders through open_clip, from whatever file the user has.

Accepted weights (``load_encoder``):

- an OpenAI CLIP file: the TorchScript archive (``ViT-L-14.pt``) or a plain state_dict; the
  architecture (width, layers, patch size, input size, embedding size) is read from the
  weights, so any ViT size works, and built with QuickGELU as OpenAI's ``build_model`` does;
- the event-CLIP file ``{'checkpoint': {'encoder_k.<OpenAI names>': ...}}``: the keys starting
  ``encoder_k.`` are kept and the prefix stripped (the reference's loader);
- an open_clip checkpoint (``{'state_dict': {'module.visual...'}}`` or plain, ``.pt``, ``.bin``
  or ``.safetensors``): OpenAI-layout keys are handled as above; other architectures are built
  by ``open_clip.create_model(clip_model, pretrained=path)``.

Only the vision tower is kept. Without a file, the weights come from the standard caches or
are downloaded into them (:mod:`iefvad.extraction.weights`): open_clip's pretrained ``clip_model``
(``openai`` by default) for images, the event-CLIP repository on the Hugging Face Hub for
events. Pickled files are read with ``weights_only=True`` and a short allow-list
(:func:`safe_weight_globals`); anything else needs ``--trust_weights_file``.
``random_init`` builds the architecture with seeded random weights (tests, demo; offline).

Every encoder carries a fingerprint: a hash of its weights (not of the file), so the same
weights in any file format give the same fingerprint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from iefvad.devices import resolve_device
from iefvad.extraction.weights import EncoderError, WeightsOptions, fetch_clip, fetch_event_clip
from iefvad.models.checkpoint import non_float
from iefvad.paths import path_problem, shown
from iefvad.stored import StoredValueError, check_fields, dataclass_bounds

log = logging.getLogger(__name__)

OPENAI_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
EVENT_CLIP_PREFIX = "encoder_k."

Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


@dataclass(frozen=True)
class VisionArch:
    """An OpenAI-style ViT image tower: enough to build it and to read it back from weights."""

    width: int = field(metadata={"bounds": (1, 2048)})
    layers: int = field(metadata={"bounds": (1, 64)})
    patch_size: int = field(metadata={"bounds": (1, 1024)})
    embed_dim: int = field(metadata={"bounds": (1, 4096)})
    image_size: int = field(default=224, metadata={"bounds": (1, 1024)})
    head_width: int = field(default=64, metadata={"bounds": (1, 2048)})
    quick_gelu: bool = True

    @classmethod
    def from_stored(cls, d: Any, where: str) -> VisionArch:
        """The architecture a file records (a feature record's ``random_arch``), its fields
        checked for type and range (:mod:`iefvad.stored`) before a tower is built from it:
        the bounds admit every CLIP ViT up to bigG."""
        d = check_fields(d, dataclass_bounds(cls), where)
        names = {f.name for f in fields(cls)}
        lacking = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING]
        if lacking or set(d) - names:
            raise StoredValueError(
                f"{where}: lacks {', '.join(lacking)}"
                if lacking
                else f"{where}: unknown keys {', '.join(sorted(map(str, set(d) - names)))}"
            )
        arch = cls(**d)
        if arch.width % arch.head_width or arch.patch_size > arch.image_size:
            raise StoredValueError(
                f"{where}: width {arch.width} is not a multiple of head_width "
                f"{arch.head_width}, or patch_size {arch.patch_size} exceeds image_size "
                f"{arch.image_size}: the file is damaged or was edited"
            )
        return arch

    def describe(self) -> str:
        return (
            f"ViT width={self.width} layers={self.layers} patch={self.patch_size} "
            f"image={self.image_size} embed={self.embed_dim} heads={self.width // self.head_width}"
            f"{' quickgelu' if self.quick_gelu else ''}"
        )


ARCHS: dict[str, VisionArch] = {
    "ViT-L-14": VisionArch(1024, 24, 14, 768),
    "ViT-B-16": VisionArch(768, 12, 16, 512),
    "ViT-B-32": VisionArch(768, 12, 32, 512),
    "tiny": VisionArch(64, 2, 32, 32),
}
"""Architectures ``random_init`` can build; ``tiny`` is for tests and demos on a CPU."""


@dataclass
class Encoder:
    """A loaded image tower and how to feed it.

    ``encode`` takes pixels in [0, 1] ``[B, 3, S, S]`` (S = ``image_size``), applies the CLIP
    mean/std when ``mean`` is set (image encoders; event encoders take raw maps), runs in
    ``dtype`` on ``device`` and returns float32 embeddings ``[B, embed_dim]``.
    """

    module: nn.Module
    embed_dim: int
    image_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    fingerprint: str
    source: str
    """File the weights came from, or ``random(seed=..)``."""
    random_init: bool = False
    arch: str = ""
    """Human description of the architecture."""
    origin: dict[str, str] | None = None
    """Cache or hub the weights were fetched from
    (:attr:`iefvad.extraction.weights.Fetched.origin`); None for files passed by path and random
    weights."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    _mean_t: torch.Tensor | None = field(default=None, init=False, repr=False)
    _std_t: torch.Tensor | None = field(default=None, init=False, repr=False)

    def to(self, device: str | torch.device, precision: str = "fp32") -> Encoder:
        """Move to ``device`` and cast to ``precision`` (``fp32``, ``fp16``, ``bf16``)."""
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of fp32, fp16, bf16, found {precision!r}")
        self.device = torch.device(device)
        self.dtype = _DTYPES[precision]
        self.module = self.module.to(device=self.device, dtype=self.dtype).eval()
        self._mean_t = self._std_t = None
        if self.mean is not None and self.std is not None:
            self._mean_t = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
            self._std_t = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return self

    def compile(self) -> Encoder:
        """Wrap the module in ``torch.compile`` (opt-in, after :meth:`to`): the first batches
        of each new batch size are slow while it compiles; results equal eager to ~1e-6."""
        self.module = torch.compile(self.module)
        return self

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.mean is None or self.std is None:
            return None
        if self._mean_t is None or self._mean_t.device != self.device:
            self.to(self.device, _precision_name(self.dtype))
        return self._mean_t, self._std_t  # type: ignore[return-value]

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` float in [0, 1] -> ``[B, D]`` float32 (not L2-normalised)."""
        x = pixels.to(self.device, torch.float32, non_blocking=True)
        stats = self._stats()
        if stats is not None:
            x = (x - stats[0]) / stats[1]
        return self.module(x.to(self.dtype)).float()

    @torch.inference_mode()
    def encode_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images ``[B, S, S, 3]`` uint8 (channel-last) -> ``[B, D]`` float32.

        The same arithmetic as :meth:`encode` of ``images / 255`` (torchvision's ``ToTensor``
        then ``Normalize``, in float32), done in place to spare memory traffic.
        """
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x.div_(255.0)
        stats = self._stats()
        if stats is not None:
            x.sub_(stats[0]).div_(stats[1])
        return self.module(x.to(self.dtype)).float()

    def metadata(self) -> dict[str, Any]:
        """What a manifest records about these weights."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "random_init": self.random_init,
            "arch": self.arch,
            "origin": self.origin,
            "embed_dim": self.embed_dim,
            "normalise": None if self.mean is None else {"mean": self.mean, "std": self.std},
        }


def _precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``fp16`` on CUDA (what the reference's GPU runs used), ``fp32`` elsewhere."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, found {precision!r}")
    return precision


# ---------------------------------------------------------------- reading files


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def safe_weight_globals() -> list[Any]:
    """What real CLIP / event-CLIP checkpoints pickle besides tensors, allowed in the
    ``weights_only`` load: training arguments (``argparse.Namespace``) and numpy scalars,
    arrays and dtypes (under numpy 1's ``numpy.core`` and numpy 2's ``numpy._core`` names).
    None of these can run code while unpickled."""
    import argparse

    import numpy as np

    core = getattr(np, "_core", None) or np.core
    out: list[Any] = [argparse.Namespace, np.ndarray, np.dtype]
    for name in ("scalar", "_reconstruct"):
        fn = getattr(core.multiarray, name)
        out += [(fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    dtype_classes = {type(np.dtype(t)) for t in set(np.sctypeDict.values())}
    out += sorted(dtype_classes - {np.dtype}, key=lambda c: c.__name__)
    return out


class UnsafeWeightsError(EncoderError):
    """A weights file holds pickled objects that could run code; not loaded."""


TRUST_FLAG = "--trust_weights_file"
_UNSAFE_HINTS = ("Unsupported global", "is blocked", "Can only create new object", "Can only build")


def _reason(err: BaseException) -> str:
    """The unpickler's own message inside torch's generic ``Weights only load failed...``."""
    inner = err.__cause__ or err.__context__
    msg = str(inner if inner is not None and str(inner).strip() else err)
    if "WeightsUnpickler error:" in msg:
        msg = msg.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    msg = " ".join(msg.split())
    return msg or type(err).__name__


def _resolvable(name: str) -> bool:
    """Whether ``module.attr`` names something importable (a cut-off name does not)."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001 - any import failure means "not this prefix"
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return name in dir(__import__("builtins"))


def _unsafe_globals(path: Path, err: BaseException) -> list[str]:
    """The globals of ``path`` the safe load refused: read off the pickle when it is a
    ``torch.save`` zip, else from torch's message; ``[]`` when ``err`` is not about that
    (or names only things that do not exist: a cut-off file)."""
    msg = str(err)
    if not any(h in msg for h in _UNSAFE_HINTS):
        return []
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - legacy format: fall back to the message
        found = []
    if not found:
        found = re.findall(r"GLOBAL (\S+)", msg) or [_reason(err)[:200]]
    if not any(_resolvable(n) for n in found):
        return []
    return sorted(set(found))


def _unreadable(path: Path, size: int, err: BaseException) -> EncoderError:
    """The error of a file that is neither a checkpoint nor complete, with the reason."""
    with open(path, "rb") as f:
        head = f.read(4)
    msg = _reason(err)
    cut = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
    if cut:  # a GLOBAL name cut short: see _unsafe_globals
        msg = f"its pickle names {cut.group(1)}, which does not exist"
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        why = (
            f"is truncated: a zip archive (torch.save / TorchScript) of {size} bytes without its "
            "end (central directory). An interrupted download or copy? Fetch the file again"
        )
    elif (
        isinstance(err.__context__ or err, EOFError)
        or "truncated" in msg
        or "Ran out of input" in msg
        or cut is not None
    ):
        why = (
            f"ends early or is damaged ({size} bytes; {msg[:200]}): truncated by an interrupted "
            "download or copy? Fetch the file again"
        )
    else:
        why = (
            f"cannot be read ({msg[:200]}): expected a TorchScript archive, a torch.save'd "
            "state_dict/checkpoint or a .safetensors file"
        )
    return EncoderError(f"weights file {path} {why}")


def read_weights_file(path: str | os.PathLike[str], trust: bool = False) -> Any:
    """Load a checkpoint file: TorchScript archive, ``torch.save`` pickle or safetensors.

    Pickles are read with ``weights_only=True`` and :func:`safe_weight_globals` allowed; a file
    holding other objects raises :class:`UnsafeWeightsError` naming them and the
    ``--trust_weights_file`` flag, unless ``trust`` (then it is unpickled in full, with a
    warning). TorchScript archives (OpenAI's ``ViT-L-14.pt``) go through ``torch.jit.load``,
    which reads TorchScript, not arbitrary Python pickles. Empty and truncated files get an
    :class:`EncoderError` saying so.
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise EncoderError(f"weights file {shown(path)} {problem}; check the path you passed")
    size = path.stat().st_size
    if size == 0:
        raise EncoderError(
            f"weights file {path} is empty (0 bytes): an interrupted download or copy? "
            "Fetch the file again"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - SafetensorError and OSError
            raise EncoderError(
                f"weights file {path} is not a complete .safetensors file ({size} bytes; {e}): "
                "truncated by an interrupted download or copy? Fetch it again"
            ) from e
    if _is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001
            raise _unreadable(path, size, e) from e
    allowed = safe_weight_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - sorted below
        with torch.serialization.safe_globals(allowed):
            unsafe = _unsafe_globals(path, e)
        if not unsafe:
            raise _unreadable(path, size, e) from e
        first = e
    names = ", ".join(unsafe)
    if not trust:
        raise UnsafeWeightsError(
            f"weights file {path} holds pickled Python objects besides weights ({names}); "
            "unpickling them can run arbitrary code, so the file was not loaded. If it comes "
            f"from a source you trust, pass {TRUST_FLAG} to load it in full; otherwise keep "
            "only its tensors (torch.save(state_dict)) or use a .safetensors file"
        ) from first
    log.warning(
        "%s: unpickling %s in full (it holds %s). A crafted weights file can execute "
        "arbitrary code on this machine: use this flag only for files you trust",
        TRUST_FLAG,
        path,
        names,
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise _unreadable(path, size, e) from e


def state_dict_of(obj: Any, path: str | os.PathLike[str] = "<memory>") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint with wrappers and prefixes removed.

    Unwraps ``checkpoint`` / ``state_dict`` / ``model_state_dict`` / ``model`` entries; keeps only
    ``encoder_k.*`` keys (prefix stripped) when there are any (event-CLIP); strips a ``module.``
    prefix (DDP).
    """
    for _ in range(4):
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if not isinstance(obj, dict):
            break
        inner = next(
            (
                obj[k]
                for k in ("checkpoint", "state_dict", "model_state_dict", "model")
                if isinstance(obj.get(k), (dict, nn.Module))
            ),
            None,
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise EncoderError(f"weights file {path}: expected a dict of tensors, found {type(obj)}")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith(EVENT_CLIP_PREFIX) for k in sd):
        sd = {
            k[len(EVENT_CLIP_PREFIX) :]: v for k, v in sd.items() if k.startswith(EVENT_CLIP_PREFIX)
        }
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if not sd:
        raise EncoderError(f"weights file {path} holds no tensors")
    return sd


def visual_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The OpenAI-layout ViT image tower (``visual.`` stripped) of ``sd``, or None."""
    if "visual.conv1.weight" in sd and "visual.proj" in sd:
        return {k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")}
    if "conv1.weight" in sd and "proj" in sd and "positional_embedding" in sd:
        return dict(sd)
    return None


def arch_from_state_dict(vis: dict[str, torch.Tensor], path: str = "<memory>") -> VisionArch:
    """Read an OpenAI ViT tower's architecture off its weights (as OpenAI's ``build_model``)."""
    conv = vis["conv1.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    layers = sum(
        1
        for k in vis
        if k.startswith("transformer.resblocks.") and k.endswith(".attn.in_proj_weight")
    )
    tokens = int(vis["positional_embedding"].shape[0])
    grid = round((tokens - 1) ** 0.5)
    if grid * grid + 1 != tokens:
        raise EncoderError(
            f"weights {path}: positional embedding has {tokens} tokens, expected a square grid "
            "plus one class token"
        )
    if width % 64:
        raise EncoderError(f"weights {path}: ViT width {width} is not a multiple of 64 (heads)")
    return VisionArch(width, layers, patch, int(vis["proj"].shape[1]), patch * grid)


def build_vision(arch: VisionArch) -> nn.Module:
    """An open_clip ``VisionTransformer`` with OpenAI's layout for ``arch`` (random init)."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    cfg = CLIPVisionCfg(
        layers=arch.layers,
        width=arch.width,
        head_width=arch.head_width,
        patch_size=arch.patch_size,
        image_size=arch.image_size,
    )
    return _build_vision_tower(arch.embed_dim, cfg, quick_gelu=arch.quick_gelu).eval()


def fingerprint_module(module: nn.Module, arch: str = "") -> str:
    """Hash of the weights (float32 values, names, shapes) and architecture: 16 hex digits."""
    h = hashlib.blake2b(digest_size=8)
    h.update(arch.encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()


# ---------------------------------------------------------------- building encoders


INTEGER_BUFFERS = ("num_batches_tracked", "position_ids")
"""Tensors of an image tower that are integers by nature (counters, indices)."""


def check_float_weights(tensors: dict[str, torch.Tensor], source: str) -> None:
    """The image tower's weights are floating point: an integer tensor (a file converted to
    int8, say) would be cast silently and give features that are all zero or constant, so it
    is refused, naming the key and its dtype."""
    bad = non_float(tensors, INTEGER_BUFFERS)
    if bad:
        raise EncoderError(
            f"weights {source}: {bad} in the image tower: CLIP weights are float32/float16; "
            "the file was converted or written wrongly; use the original weights file"
        )


def _from_openai_layout(
    sd: dict[str, torch.Tensor], vis: dict[str, torch.Tensor], source: str, normalise: bool
) -> Encoder:
    check_float_weights(vis, source)
    arch = arch_from_state_dict(vis, source)
    module = build_vision(arch)
    try:
        module.load_state_dict({k: v.float() for k, v in vis.items()}, strict=True)
    except RuntimeError as e:
        raise EncoderError(
            f"weights {source}: the image tower does not match the OpenAI ViT layout read from "
            f"it ({arch.describe()}): {e}"
        ) from e
    return _wrap(module, arch.embed_dim, arch.image_size, source, arch.describe(), normalise)


def _from_openai_resnet(sd: dict[str, torch.Tensor], source: str, normalise: bool) -> Encoder:
    from open_clip.model import build_model_from_openai_state_dict

    if "text_projection" not in sd:
        raise EncoderError(
            f"weights {source}: a ResNet CLIP needs the full OpenAI state dict (text keys too)"
        )
    check_float_weights({k: v for k, v in sd.items() if k.startswith("visual.")}, source)
    model = build_model_from_openai_state_dict(dict(sd), cast_dtype=None)
    visual = model.visual.float()
    # build_model_from_openai_state_dict rounds weights to fp16; reload them at full precision.
    visual.load_state_dict({k[7:]: v.float() for k, v in sd.items() if k.startswith("visual.")})
    dim = int(sd["text_projection"].shape[1])
    return _wrap(visual, dim, int(visual.image_size), source, "OpenAI ResNet", normalise)


def _from_open_clip(
    name: str, path: str | None, normalise: bool, source: str | None = None
) -> Encoder:
    """``open_clip.create_model(name, pretrained=path)`` (``path`` None: ``name`` is a
    ``local-dir:`` folder holding config and weights); its image tower."""
    import open_clip

    source = source or str(path)
    try:
        model = open_clip.create_model(name, pretrained=path, device="cpu")
    except Exception as e:  # noqa: BLE001 - open_clip raises many kinds
        raise EncoderError(
            f"open_clip could not load {source} as model {name!r}: {e}. Pass the architecture "
            "with --clip_model (see open_clip.list_models()), or an OpenAI-format file"
        ) from e
    visual = model.visual.eval()
    size = visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    dim = int(getattr(visual, "output_dim", 0) or model.text_projection.shape[-1])
    mean = tuple(getattr(visual, "image_mean", OPENAI_MEAN))
    std = tuple(getattr(visual, "image_std", OPENAI_STD))
    enc = _wrap(visual, dim, size, source, f"open_clip {name}", normalise)
    if normalise:
        enc.mean, enc.std = mean, std
    return enc


def _wrap(
    module: nn.Module, dim: int, size: int, source: str, arch: str, normalise: bool
) -> Encoder:
    module.eval().requires_grad_(False)
    return Encoder(
        module=module,
        embed_dim=dim,
        image_size=size,
        mean=OPENAI_MEAN if normalise else None,
        std=OPENAI_STD if normalise else None,
        fingerprint=fingerprint_module(module, arch),
        source=source,
        arch=arch,
    )


def random_encoder(
    arch: str | VisionArch = "ViT-L-14", seed: int = 0, normalise: bool = True
) -> Encoder:
    """An OpenAI-layout ViT with seeded random weights (``arch``: a name of :data:`ARCHS`)."""
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise EncoderError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
        arch = ARCHS[arch]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_vision(arch)
    enc = _wrap(
        module, arch.embed_dim, arch.image_size, f"random(seed={seed})", arch.describe(), normalise
    )
    enc.random_init = True
    return enc


def load_encoder(
    path: str | os.PathLike[str] | None = None,
    *,
    kind: Literal["image", "event"] = "image",
    clip_model: str = "ViT-L-14",
    clip_format: Literal["auto", "openai", "open_clip"] = "auto",
    random_init: bool = False,
    seed: int | None = None,
    random_arch: str | None = None,
    weights: WeightsOptions | None = None,
) -> Encoder:
    """Build the image (``kind='image'``) or event (``kind='event'``) encoder.

    ``path``: weights file (see the module doc); without one the weights come from the caches
    or a download (:mod:`iefvad.extraction.weights`: open_clip's
    ``clip_model``/``weights.pretrained`` for images, the event-CLIP repository for events).
    ``clip_model``: open_clip architecture
    name for that, for open_clip checkpoints that are not in OpenAI layout, and for
    ``random_init`` (unless ``random_arch`` names one of :data:`ARCHS`). ``weights``: download,
    offline and trust options (default :class:`~iefvad.extraction.weights.WeightsOptions`). Image
    encoders apply the CLIP mean/std, event encoders do not. Random weights use ``seed``
    (default 0 for image, 1 for event, so the two towers differ) and never touch the network.
    """
    normalise = kind == "image"
    opts = weights or WeightsOptions()
    if random_init:
        name = random_arch or clip_model
        if name not in ARCHS:
            raise EncoderError(
                f"--random_init builds one of {', '.join(ARCHS)}; found architecture {name!r}"
            )
        return random_encoder(name, seed if seed is not None else int(kind == "event"), normalise)
    origin: dict[str, str] | None = None
    if path is None:
        fetched = (
            fetch_event_clip(clip_model, opts) if kind == "event" else fetch_clip(clip_model, opts)
        )
        log.info("%s weights %s (%s)", kind, fetched.path, fetched.origin)
        path, origin = fetched.path, fetched.origin
        if fetched.layout == "local-dir":
            enc = _from_open_clip(f"local-dir:{fetched.path.parent}", None, normalise, str(path))
            enc.origin = origin
            return enc
        if fetched.layout == "open_clip":
            clip_format = "open_clip"
    enc = _from_file(Path(path), clip_model, clip_format, normalise, opts.trust_file)
    enc.origin = origin
    return enc


def _from_file(
    path: Path, clip_model: str, clip_format: str, normalise: bool, trust: bool
) -> Encoder:
    src = str(path)
    if clip_model.startswith("hf-hub:") and clip_format == "open_clip":
        raise EncoderError(
            f"--clip_model {clip_model} takes its weights from that repository, not from {src}: "
            "with a weights file pass the architecture name (e.g. --clip_model ViT-L-14)"
        )
    if clip_format == "open_clip":
        return _from_open_clip(clip_model, src, normalise)
    sd = state_dict_of(read_weights_file(path, trust=trust), src)
    vis = visual_state_dict(sd)
    if vis is not None:
        return _from_openai_layout(sd, vis, src, normalise)
    if "visual.layer1.0.conv1.weight" in sd:
        return _from_openai_resnet(sd, src, normalise)
    if clip_format == "openai":
        raise EncoderError(
            f"weights {src}: not in OpenAI CLIP layout (no visual.conv1.weight / visual.proj); "
            f"found keys such as {', '.join(list(sd)[:5])}"
        )
    return _from_file(path, clip_model, "open_clip", normalise, trust)


def encoder_summary(enc: Encoder) -> dict[str, Any]:
    """Short JSON-able description for logs and benchmarks."""
    return {
        **enc.metadata(),
        "device": str(enc.device),
        "dtype": str(enc.dtype).replace("torch.", ""),
    }


__all__ = [
    "ARCHS",
    "Encoder",
    "EncoderError",
    "UnsafeWeightsError",
    "VisionArch",
    "arch_from_state_dict",
    "build_vision",
    "fingerprint_module",
    "load_encoder",
    "random_encoder",
    "read_weights_file",
    "safe_weight_globals",
    "resolve_device",
    "resolve_precision",
    "state_dict_of",
    "visual_state_dict",
]
