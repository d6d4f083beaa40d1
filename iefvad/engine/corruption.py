"""Corruption of one modality, per snippet: training-time augmentation and test-time benchmark.

The same operations serve both (docs/fusion.md, "Weights that follow reliability"):

* ``noise``: ``x + sigma * s * N(0, 1)``, ``s`` the modality's feature std (of the batch's
  real snippets in training, of the test set in the benchmark);
* ``attenuate``: ``x * attenuation`` (0.01, as the explorer);
* ``drop``: ``x = 0`` (the sensor is off);
* ``freeze``: every snippet of the span repeats the span's first snippet (a frozen camera).

Two more kinds serve the benchmark's held-out corruptions (:data:`HELD_OUT_KINDS`, never
drawn in training): ``shuffle`` (the span's snippets in a random order: a stream out of sync
with itself) and ``swap`` (the span replaced by another video's features, ``donor``).

Training (:func:`corrupt_batch`): each row of a batch is corrupted with probability ``prob``;
one modality (either, at random) gets one kind of corruption on one contiguous span covering a
random fraction of its real snippets (padding is never touched). The other modality of that
row stays clean, which is what lets :mod:`iefvad.engine.reliability` use it as the target of the
corrupted one. The masks say which snippets were altered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from iefvad.errors import UserInputError

KINDS = ("noise", "attenuate", "drop", "freeze")
HELD_OUT_KINDS = ("shuffle", "swap")
"""Test-time only (:func:`apply_corruption`); the training augmentation draws from KINDS."""
MODALITY_CHOICES = ("either", "image", "event")


CORRUPT_ROWS = ("all", "normal")


@dataclass(frozen=True)
class CorruptionSpec:
    """Training-time corruption (``--corrupt``); stored in the checkpoint's training record."""

    kinds: tuple[str, ...] = ()
    """Corruption kinds drawn from (uniformly); empty = no corruption."""
    prob: float = 0.5
    """Fraction of training rows that get one corrupted modality."""
    modality: str = "either"
    """Which stream is corrupted: ``either`` (at random per row), ``image`` or ``event``."""
    sigma: tuple[float, float] = (0.5, 4.0)
    """Noise std range (uniform), in units of the modality's feature std."""
    span: tuple[float, float] = (0.1, 1.0)
    """Fraction of a row's real snippets covered by the corrupted span (uniform)."""
    whole: float = 0.25
    """Probability that a corrupted row's span is the whole row (a sensor off or failing for
    the whole video: a case a uniform span almost never draws)."""
    attenuation: float = 0.01
    rows: str = "all"
    """Which training rows may be corrupted: ``all``, or ``normal`` (rows whose video label is
    normal only). On complementary streams a dropped or noised stream can remove the only
    evidence of an abnormal video's anomaly while its label stays abnormal: a wrong bag for
    the MIL loss. A corrupted normal video is still normal (docs/fusion.md, issue 21)."""

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise UserInputError(f"--corrupt: unknown kind(s) {bad}; choose from {KINDS}")
        if not (0.0 <= self.prob <= 1.0 and 0.0 <= self.whole <= 1.0):
            raise UserInputError(
                f"corruption prob and whole must be in [0, 1], got {self.prob}, {self.whole}"
            )
        if self.rows not in CORRUPT_ROWS:
            raise UserInputError(
                f"corruption rows must be one of {CORRUPT_ROWS}, got {self.rows!r}"
            )
        if self.modality not in MODALITY_CHOICES:
            raise UserInputError(
                f"corruption modality must be one of {MODALITY_CHOICES}, got {self.modality!r}"
            )
        lo, hi = self.span
        if not 0.0 < lo <= hi <= 1.0:
            raise UserInputError(f"corruption span must satisfy 0 < lo <= hi <= 1, got {self.span}")
        if not 0.0 <= self.sigma[0] <= self.sigma[1]:
            raise UserInputError(f"corruption sigma range must be 0 <= lo <= hi, got {self.sigma}")

    @property
    def active(self) -> bool:
        return bool(self.kinds) and self.prob > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorruptionSpec:
        known = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**kw)


def chunk_noise(like: Tensor, chunks: Tensor, seed: int) -> Tensor:
    """Standard normal draws shaped like ``like`` ``[C, T, D]``, one seeded generator per test
    chunk index in ``chunks`` ``[C]``: the same chunk gets the same noise whatever the batch."""
    return torch.stack(
        [
            torch.randn(
                like.shape[1:], generator=torch.Generator().manual_seed(seed * 1_000_003 + int(c))
            )
            for c in chunks
        ]
    ).to(like.device, like.dtype)


def apply_corruption(
    x: Tensor,
    mask: Tensor,
    kind: str,
    sigma: Tensor | float = 0.0,
    attenuation: float = 0.01,
    noise: Tensor | None = None,
    donor: Tensor | None = None,
) -> Tensor:
    """``x`` ``[B, T, D]`` with ``kind`` applied where ``mask`` ``[B, T]`` is True.

    ``sigma``: absolute noise std, a float or ``[B]``; ``noise``: the standard normal draws
    (``[B, T, D]``; drawn from the global generator when None; ``shuffle`` orders the span by
    ``noise[..., 0]``). ``freeze`` repeats, in each row, the first masked snippet over the
    row's masked snippets (a mask is one span). ``swap``: ``donor`` ``[B, T, D]`` (another
    video's features) where masked.
    """
    m = mask.unsqueeze(-1)
    if kind == "noise":
        if noise is None:
            noise = torch.randn_like(x)
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        s = s.view(-1, 1, 1) if s.ndim == 1 else s
        return torch.where(m, x + s * noise, x)
    if kind == "attenuate":
        return torch.where(m, x * attenuation, x)
    if kind == "drop":
        return x.masked_fill(m, 0.0)
    if kind == "freeze":
        t = x.shape[1]
        pos = torch.arange(t, device=x.device).expand(x.shape[0], t)
        first = torch.where(mask, pos, torch.full_like(pos, t)).min(1).values.clamp(max=t - 1)
        idx = torch.where(mask, first[:, None].expand_as(pos), pos)
        return x.gather(1, idx.unsqueeze(-1).expand_as(x))
    if kind == "shuffle":
        keys = (torch.randn(x.shape[:2]) if noise is None else noise[..., 0].cpu()).float()
        idx = torch.arange(x.shape[1]).expand(x.shape[0], -1).clone()
        for r in range(x.shape[0]):
            pos = mask[r].cpu().nonzero().flatten()
            idx[r, pos] = pos[torch.argsort(keys[r, pos])]
        return x.gather(1, idx.to(x.device).unsqueeze(-1).expand_as(x))
    if kind == "swap":
        if donor is None:
            raise ValueError("swap needs the donor features")
        return torch.where(m, donor.to(x.device, x.dtype), x)
    raise ValueError(f"unknown corruption kind {kind!r}; choose from {KINDS + HELD_OUT_KINDS}")


def valid_std(x: Tensor, lengths: Tensor) -> Tensor:
    """Std of all values of ``x`` ``[B, T, D]`` over real snippets (a detached scalar)."""
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    v = x.detach()[valid]
    return v.float().std() if v.numel() > 1 else x.new_ones(())


class Corruptor:
    """Draws and applies the training-time corruption of :class:`CorruptionSpec`.

    Its own generators (seeded) leave the training's random streams untouched."""

    def __init__(self, spec: CorruptionSpec, seed: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([seed, 7919])
        self.gen = torch.Generator().manual_seed(seed * 1_000_003 + 7919)

    def __call__(
        self, image: Tensor, event: Tensor, lengths: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(image, event, mask_image, mask_event)``; masks ``[B, T]`` bool, True where that
        modality was corrupted. A row has at most one corrupted modality. ``labels`` ``[B]``
        (video labels, > 0 abnormal): needed by ``rows="normal"``."""
        return corrupt_batch(image, event, lengths, self.spec, self.rng, self.gen, labels)


def corrupt_batch(
    image: Tensor,
    event: Tensor,
    lengths: Tensor,
    spec: CorruptionSpec,
    rng: np.random.Generator,
    gen: torch.Generator | None = None,
    labels: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """See :class:`Corruptor`."""
    if spec.rows == "normal" and labels is None:
        raise ValueError("corruption of normal rows only needs the batch's video labels")
    b, t, _ = image.shape
    masks = {m: torch.zeros(b, t, dtype=torch.bool) for m in ("image", "event")}
    kinds: dict[tuple[str, str], list[int]] = {}
    sig = np.zeros(b, dtype=np.float32)
    lens = lengths.detach().cpu().numpy()
    if not spec.active:
        z = torch.zeros(b, t, dtype=torch.bool, device=image.device)
        return image, event, z, z.clone()
    abnormal = (
        labels.detach().cpu().reshape(b).numpy() > 0
        if spec.rows == "normal"
        else np.zeros(b, dtype=bool)
    )
    for r in range(b):
        n = int(lens[r])
        if n < 1 or rng.random() >= spec.prob or abnormal[r]:
            continue
        mod = spec.modality if spec.modality != "either" else ("image", "event")[rng.integers(2)]
        kind = spec.kinds[rng.integers(len(spec.kinds))]
        frac = 1.0 if rng.random() < spec.whole else rng.uniform(*spec.span)
        w = max(1, min(n, int(round(frac * n))))
        s = int(rng.integers(0, n - w + 1))
        masks[mod][r, s : s + w] = True
        kinds.setdefault((mod, kind), []).append(r)
        sig[r] = rng.uniform(*spec.sigma)
    out = {"image": image, "event": event}
    dev = image.device
    for (mod, kind), rows in kinds.items():
        x = out[mod]
        sel = torch.zeros(b, dtype=torch.bool)
        sel[rows] = True
        m = (masks[mod] & sel[:, None]).to(dev)
        noise = None
        sigma: Tensor | float = 0.0
        if kind == "noise":
            noise = torch.randn(x.shape, generator=gen).to(dev, x.dtype)
            sigma = torch.from_numpy(sig).to(dev, x.dtype) * valid_std(x, lengths).to(x.dtype)
        out[mod] = apply_corruption(x, m, kind, sigma, spec.attenuation, noise)
    return out["image"], out["event"], masks["image"].to(dev), masks["event"].to(dev)
