"""``--train_sample pick``: training rows that keep the per-snippet statistics of test videos.

The reference turns a training video of ``T > 256`` snippets into a row of 256 bin means
(:func:`iefvad.data.features.resample`) but scores test videos snippet by snippet. A bin
mean of ``k`` snippets has ``1 / sqrt(k)`` of their noise, so a model trained on long videos
sees test snippets far noisier than anything it was trained on (docs/training.md,
"Regimes"). ``pick`` keeps the training videos at (up to) full resolution and, at every step,
takes one random snippet from each of the ``train_len`` bins instead of their mean: the row
covers the whole video as before, each of its snippets is a real one, and each epoch sees
another draw. Videos of at most ``train_len`` snippets are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

STORE_BYTES = 1 << 30
"""Memory the full-resolution training rows may take (image + event, float32); longer videos
are first averaged into as many bins as fit (still far fewer snippets per bin than 256)."""


def store_length(
    lengths: Sequence[int], train_len: int, dim: int, limit_bytes: int = STORE_BYTES
) -> int:
    """Snippets per stored training row: the longest video, at most what ``limit_bytes``
    allows for ``len(lengths)`` rows of width ``dim``, and never below ``train_len``."""
    longest = max(int(t) for t in lengths)
    fit = limit_bytes // max(1, 2 * 4 * dim * len(lengths))
    return max(train_len, min(longest, fit))


def pick_positions(lengths: torch.Tensor, n: int, generator=None) -> torch.Tensor:
    """``[b, n]`` row positions: for a row of ``L > n`` valid snippets, one uniformly random
    position in each bin ``[floor(j L / n), floor((j + 1) L / n))`` (the bins of the mean);
    for ``L <= n``, ``0 .. n - 1`` (the row as stored, padding included)."""
    j = torch.arange(n, device=lengths.device)
    length = lengths.to(torch.int64)[:, None]
    lo = (j[None, :] * length) // n
    hi = ((j[None, :] + 1) * length) // n
    u = torch.rand(lo.shape, device=lengths.device, generator=generator)
    pos = lo + (u * (hi - lo)).long().clamp_max((hi - lo - 1).clamp_min(0))
    return torch.where(length > n, pos, j[None, :].expand_as(pos))


def pick_rows(
    image: torch.Tensor, event: torch.Tensor, lengths: torch.Tensor, n: int, generator=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of ``n`` snippets from stored rows ``[b, S, D]`` (``S >= n``) and their lengths,
    the same positions in both streams (:func:`pick_positions`)."""
    pos = pick_positions(lengths, n, generator)
    idx = pos[..., None].expand(-1, -1, image.shape[-1])
    return image.gather(1, idx), event.gather(1, idx), lengths.clamp_max(n)
