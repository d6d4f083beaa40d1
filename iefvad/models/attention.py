"""Self-attention with a learned null slot (an attention sink) that does not depend on padding.

Why (docs/fusion.md, "Padding" and "A null slot instead of padding"): in the released code a
clip of T snippets is zero-padded to 256 and the padded positions are keys too. At the first
layer a padded key is the projection of a zero input, ``k0 = b_k`` with value ``v0 = b_v``,
and there are ``256 - T`` identical copies, so together they act as one key whose logit is
raised by ``log(256 - T)``. For a short clip that null key takes most of the attention and each
snippet's representation stays its own; for a full-length video it is absent. Masking the
padding removes it, and short clips then mix every snippet into every other.

The null slot keeps what was useful and drops the dependence on padding: every attention gets
exactly one extra key/value, the projection of a zero input (``b_k``, ``b_v``: no new
projection), with a learned logit offset per head, ``s_h``, initialised at ``log(256)`` (the
multiplicity the padding gave a one-snippet clip). Padding is masked; the outputs of real
snippets depend only on real snippets and the learned parameters. A snippet can put attention
on "nothing" instead of on itself or its neighbours: a one-snippet clip no longer has to
attend to itself alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SINK_INIT = math.log(256.0)
"""Initial log-multiplicity of the null key (the padding a one-snippet clip had)."""


def sink_attention(
    attn: nn.MultiheadAttention,
    x: Tensor,
    pad: Tensor | None,
    sink: Tensor,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Self-attention of ``x`` ``[B, T, D]`` with ``attn``'s weights plus the null slot.

    ``pad`` ``[B, T]`` True at padded keys (masked), or None. ``sink`` ``[H]``: the null key's
    logit offset per head. Returns the output ``[B, T, D]`` and, with ``need_weights``, the
    attention ``[B, H, T, T + 1]`` (last column: the null slot).
    """
    b, t, d = x.shape
    h = attn.num_heads
    dh = d // h
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    if attn.in_proj_bias is not None:
        _, bk, bv = attn.in_proj_bias.chunk(3)
    else:
        bk = bv = x.new_zeros(d)
    k = torch.cat([k, bk.view(1, 1, d).expand(b, 1, d)], 1)
    v = torch.cat([v, bv.view(1, 1, d).expand(b, 1, d)], 1)
    q = q.view(b, t, h, dh).transpose(1, 2)
    k = k.view(b, t + 1, h, dh).transpose(1, 2)
    v = v.view(b, t + 1, h, dh).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # [B, H, T, T+1]
    offset = torch.zeros(h, 1, t + 1, dtype=scores.dtype, device=scores.device)
    offset[..., -1] = 1.0
    scores = scores + offset * sink.to(scores.dtype).view(h, 1, 1)
    if pad is not None:
        keymask = torch.cat([pad, pad.new_zeros(b, 1)], 1)  # the null slot is never masked
        scores = scores.masked_fill(keymask[:, None, None, :], float("-inf"))
    w = torch.softmax(scores, -1)
    wd = F.dropout(w, attn.dropout, attn.training) if attn.dropout > 0 else w
    out = (wd @ v).transpose(1, 2).reshape(b, t, d)
    out = attn.out_proj(out)
    return out, (w if need_weights else None)
