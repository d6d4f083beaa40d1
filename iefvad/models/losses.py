"""Training losses (docs/reference.md section 6), vectorised over the batch.

``L = L_cls + lam * (L_align + L_kl)`` (the reference), ``+ sparsity * L_sparse`` when asked.
With ``mask`` (``[B, T]`` bool, True = valid) the alignment and KL means run over valid
snippets only; without it they include padding, as the reference does.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from iefvad.models.model import FusionOutput


class LossParts(NamedTuple):
    total: Tensor
    cls: Tensor
    align: Tensor
    kl: Tensor


TOPK_DIV = 16
"""The reference's top-k size: ``k = int(len / 16 + 1)`` snippets per video."""


def topk_k(lengths: Tensor, div: int = TOPK_DIV) -> Tensor:
    """Number of snippets averaged per video: ``int(len / div + 1)`` (capped at ``len`` where
    it is used: only ``div`` 1 exceeds it)."""
    return torch.div(lengths, div, rounding_mode="floor").long() + 1


def topk_video_scores(logits: Tensor, lengths: Tensor, div: int = TOPK_DIV) -> Tensor:
    """Video scores ``[B]``: mean of the top ``k = len // div + 1`` snippet probabilities
    within ``lengths``.

    ``logits`` ``[B, T]``; positions at or beyond a row's length are never selected.
    """
    b, t = logits.shape
    p = torch.sigmoid(logits.float())
    valid = torch.arange(t, device=logits.device)[None, :] < lengths[:, None]
    k = torch.minimum(topk_k(lengths, div), lengths.clamp(min=1)).clamp(max=t)
    kmax = int(k.max())
    top = torch.topk(p.masked_fill(~valid, -1.0), kmax, dim=1).values
    take = torch.arange(kmax, device=logits.device)[None, :] < k[:, None]
    return (top * take).sum(1) / k


def mil_loss(logits: Tensor, labels: Tensor, lengths: Tensor, div: int = TOPK_DIV) -> Tensor:
    """Binary cross-entropy of the top-k video score against ``labels`` (1 = abnormal)."""
    scores = topk_video_scores(logits, lengths, div)
    # a diverged model gives NaN scores, which binary_cross_entropy rejects with an error (a
    # device-side assert on CUDA): the loss becomes NaN instead, which training stops on.
    # Finite scores pass through unchanged, without a host-device synchronisation.
    finite = torch.isfinite(scores)
    bce = F.binary_cross_entropy(scores.where(finite, 0.5), labels.to(scores.dtype))
    return torch.where(finite.all(), bce, torch.full_like(bce, float("nan")))


def sparsity_loss(logits: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
    """Mean snippet probability of the abnormal videos of the batch (over each video's valid
    snippets, then over the videos; 0 without one): the sparsity term of Sultani et al.
    (CVPR 2018). The top-k term says an abnormal video holds *some* high snippets; this one
    adds that most of its snippets are normal, so that the evidence of a short anomaly is not
    spread over the whole video."""
    p = torch.sigmoid(logits.float())
    valid = (torch.arange(p.shape[1], device=p.device)[None, :] < lengths[:, None]).to(p.dtype)
    per_video = (p * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    abnormal = (labels > 0.5).to(p.dtype)
    return (per_video * abnormal).sum() / abnormal.sum().clamp(min=1.0)


def _mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``x`` ``[B, T]`` (over valid positions when ``mask`` is given)."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def alignment_loss(mu_i: Tensor, mu_e: Tensor, mask: Tensor | None = None) -> Tensor:
    """``mean(1 - cos(mu_i, mu_e)) + mean(| ||mu_i|| - ||mu_e|| |)`` over snippets."""
    mu_i, mu_e = mu_i.float(), mu_e.float()
    cos = F.cosine_similarity(mu_i, mu_e, dim=-1)
    norm_gap = (mu_i.norm(dim=-1) - mu_e.norm(dim=-1)).abs()
    return _mean(1.0 - cos, mask) + _mean(norm_gap, mask)


def kl_loss(mu: Tensor, logvar: Tensor, shift: float, mask: Tensor | None = None) -> Tensor:
    """``-0.5 * mean(1 + s - mu^2 - exp(s))`` with ``s = logvar + shift`` (one modality)."""
    s = logvar.float() + shift
    term = 1.0 + s - mu.float().pow(2) - s.exp()
    if mask is None:
        return -0.5 * term.mean()
    return -0.5 * _mean(term.mean(-1), mask)


def ief_vad_loss(
    out: FusionOutput,
    labels: Tensor,
    lengths: Tensor,
    lam: float,
    kl_shift: float,
    mask_padding: bool = False,
    modalities: tuple[str, ...] = ("image", "event"),
    topk_div: int = TOPK_DIV,
    sparsity: float = 0.0,
    mil_rows: Tensor | None = None,
) -> LossParts:
    """The full training objective for one batch (``topk_div``: see :func:`topk_k`;
    ``sparsity`` > 0 adds that weight times :func:`sparsity_loss` to the total; ``mil_rows``,
    a ``[B]`` bool tensor: the rows the MIL term uses, all when None).

    With a single modality there is nothing to align and only its KL term counts.
    """
    mask = None
    if mask_padding:
        t = out.logits.shape[1]
        mask = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
    if mil_rows is None:
        cls = mil_loss(out.logits, labels, lengths, topk_div)
    else:
        cls = mil_loss(out.logits[mil_rows], labels[mil_rows], lengths[mil_rows], topk_div)
    zero = out.logits.new_zeros(())
    both = "image" in modalities and "event" in modalities
    align = alignment_loss(out.mu_image, out.mu_event, mask) if both else zero
    kl = zero
    if "image" in modalities:
        kl = kl + kl_loss(out.mu_image, out.logvar_image, kl_shift, mask)
    if "event" in modalities:
        kl = kl + kl_loss(out.mu_event, out.logvar_event, kl_shift, mask)
    total = cls + lam * (align + kl)
    if sparsity > 0:
        total = total + sparsity * sparsity_loss(out.logits, labels, lengths)
    return LossParts(total, cls, align, kl)
