"""Synthetic event maps of snippets (docs/reference.md section 3), as torch ops on any device.

Per snippet of 16 RGB frames: ``gray = 0.2989 R + 0.5870 G + 0.1140 B`` (float32, 0..255), the
15 absolute differences of consecutive frames, ``event = diff > threshold``, and the count map
``sum(event)`` in 0..15. The count maps are normalised to [0, 1] by a maximum: over the whole
group of up to 32 snippets in ``group`` mode (the reference, so features match the released
ones) or over each snippet in ``snippet`` mode. Unlike the reference, a motionless group or
snippet (maximum 0) gives zeros, never NaN. The network input is the normalised map repeated on
3 channels, without CLIP mean/std.

All of it is pointwise except the maximum, so the count map of a crop is the crop of the count
map of the full frame: the pipeline computes counts once per snippet at 256x340 and crops them.
"""

from __future__ import annotations

from typing import Literal

import torch

from iefvad.datasets.specs import SNIPPET_FRAMES

GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)
"""R, G, B weights of the grayscale conversion."""
DEFAULT_THRESHOLD = 10.0
"""Event threshold of every released feature set (grayscale levels, 0..255)."""
DEFAULT_CLAMP = 16.0
"""The reference clamps counts to 16 before normalising: a no-op since counts are <= 15."""

EventNorm = Literal["group", "snippet"]
EVENT_NORMS: tuple[str, ...] = ("group", "snippet")


def grayscale(rgb: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` RGB (uint8 or float, 0..255) -> ``[...]`` float32 gray, 0..255.

    Computed as ``(R*0.2989 + G*0.5870) + B*0.1140`` in float32 (weights rounded to float32).
    """
    w = torch.tensor(GRAY_WEIGHTS, dtype=torch.float32, device=rgb.device)
    gray = rgb[..., 0].float() * w[0]
    gray += rgb[..., 1].float() * w[1]
    gray += rgb[..., 2].float() * w[2]
    return gray


def event_counts(gray: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Count maps of snippets: ``gray`` ``[S, 16, H, W]`` -> ``[S, H, W]`` float32 in 0..15."""
    if gray.ndim != 4 or gray.shape[1] != SNIPPET_FRAMES:
        raise ValueError(f"expected gray snippets [S, 16, H, W], found {tuple(gray.shape)}")
    diffs = (gray[:, 1:] - gray[:, :-1]).abs_()
    return (diffs > threshold).sum(dim=1, dtype=torch.float32)


def normalise_counts(
    counts: torch.Tensor, mode: EventNorm = "group", clamp: float = DEFAULT_CLAMP
) -> torch.Tensor:
    """Scale count maps ``[S, H, W]`` to [0, 1].

    ``group``: divide by the maximum over all S snippets given (the reference passes groups of
    up to 32); ``snippet``: by each snippet's own maximum. A maximum of 0 gives zeros.
    """
    if mode not in EVENT_NORMS:
        raise ValueError(f"event normalisation must be one of {EVENT_NORMS}, found {mode!r}")
    c = counts.clamp(0, clamp)
    if mode == "group":
        peak = c.amax() if c.numel() else c.new_zeros(())
    else:
        peak = c.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, c / peak.clamp_min(1e-12), torch.zeros_like(c))


def to_event_input(maps: torch.Tensor) -> torch.Tensor:
    """Normalised maps ``[S, H, W]`` -> encoder input ``[S, 3, H, W]`` (channels repeated)."""
    return maps.unsqueeze(1).expand(-1, 3, -1, -1)


def snippet_event_counts(rgb: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Count maps of RGB frames ``[16*S, H, W, 3]`` (channel-last, 0..255) -> ``[S, H, W]``."""
    f = rgb.shape[0]
    if f % SNIPPET_FRAMES:
        raise ValueError(f"expected a multiple of {SNIPPET_FRAMES} frames, found {f}")
    gray = grayscale(rgb)
    return event_counts(
        gray.reshape(f // SNIPPET_FRAMES, SNIPPET_FRAMES, *gray.shape[1:]), threshold
    )
