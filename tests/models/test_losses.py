"""Losses against the reference's per-video loops (VadCLIP's CLAS2 and the spec formulas)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from iefvad.models.losses import alignment_loss, ief_vad_loss, kl_loss, mil_loss, topk_video_scores
from iefvad.models.model import IEFVAD, ModelConfig, kl_shift


def loop_mil(logits, labels, lengths, div=16):
    """The reference loop: per video, mean of top int(len/16 + 1) of sigmoid(logits[:len])."""
    p = torch.sigmoid(logits)
    scores = []
    for i in range(logits.shape[0]):
        n = int(lengths[i])
        top, _ = torch.topk(p[i, :n], k=min(n, int(n / div + 1)))
        scores.append(top.mean())
    return F.binary_cross_entropy(torch.stack(scores), labels)


def test_mil_loss_equals_reference_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 256, generator=g) * 3
    lengths = torch.tensor([256, 1, 15, 16, 17, 200])
    labels = torch.tensor([0.0, 1, 0, 1, 1, 0])
    torch.testing.assert_close(mil_loss(logits, labels, lengths), loop_mil(logits, labels, lengths))


def test_topk_div_sets_how_many_snippets_a_video_score_averages():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 64, generator=g) * 3
    lengths = torch.tensor([64, 1, 3, 4, 40])
    labels = torch.tensor([0.0, 1, 0, 1, 1])
    for div in (1, 4, 32):
        torch.testing.assert_close(
            mil_loss(logits, labels, lengths, div), loop_mil(logits, labels, lengths, div)
        )
    # div 1 averages every valid snippet; a huge div keeps only the maximum
    mean = torch.sigmoid(logits[0]).mean()
    torch.testing.assert_close(topk_video_scores(logits[:1], lengths[:1], 1)[0], mean)
    top1 = torch.sigmoid(logits[0]).max()
    torch.testing.assert_close(topk_video_scores(logits[:1], lengths[:1], 10**6)[0], top1)


def test_topk_ignores_positions_beyond_length():
    logits = torch.full((1, 10), -5.0)
    logits[0, 8:] = 10.0  # huge but padded
    s = topk_video_scores(logits, torch.tensor([8]))
    assert math.isclose(float(s), float(torch.sigmoid(torch.tensor(-5.0))), rel_tol=1e-6)


def test_alignment_and_kl_match_formulas():
    g = torch.Generator().manual_seed(1)
    mi, me, lv = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    cos = (mi * me).sum(-1) / (mi.norm(dim=-1) * me.norm(dim=-1))
    expect = (1 - cos).mean() + (mi.norm(dim=-1) - me.norm(dim=-1)).abs().mean()
    torch.testing.assert_close(alignment_loss(mi, me), expect)
    s = lv + math.log(8 / 9)
    torch.testing.assert_close(
        kl_loss(mi, lv, math.log(8 / 9)), -0.5 * (1 + s - mi**2 - s.exp()).mean()
    )


def test_masked_losses_ignore_padding_values():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=8, heads=2, refine_steps=1, mask_padding=True)).eval()
    lengths = torch.tensor([5, 3])
    x, y = torch.randn(2, 7, 8), torch.randn(2, 7, 8)
    x2, y2 = x.clone(), y.clone()
    x2[0, 5:] = 100.0
    y2[1, 3:] = -50.0
    labels = torch.tensor([1.0, 0.0])
    shift = kl_shift(model.cfg)
    with torch.no_grad():
        a = ief_vad_loss(model(x, y, lengths), labels, lengths, 1.0, shift, mask_padding=True)
        b = ief_vad_loss(model(x2, y2, lengths), labels, lengths, 1.0, shift, mask_padding=True)
        c = ief_vad_loss(model(x2, y2, lengths), labels, lengths, 1.0, shift, mask_padding=False)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    assert not torch.allclose(a.total, c.total)  # unmasked (reference) loss does see padding


def test_mil_loss_of_a_diverged_model_is_nan_not_an_error():
    logits = torch.randn(3, 40)
    logits[1, 5] = float("nan")
    labels = torch.tensor([0.0, 1.0, 1.0])
    lengths = torch.tensor([40, 40, 20])
    assert torch.isnan(mil_loss(logits, labels, lengths))
    logits[1, 5] = 0.0  # finite again: the plain binary cross-entropy, gradients included
    x = logits.clone().requires_grad_()
    y = logits.clone().requires_grad_()
    a = mil_loss(x, labels, lengths)
    b = F.binary_cross_entropy(topk_video_scores(y, lengths), labels)
    assert torch.equal(a, b)
    a.backward()
    b.backward()
    assert torch.equal(x.grad, y.grad)


def test_sparsity_is_the_mean_score_of_the_abnormal_videos_over_their_valid_snippets():
    from iefvad.models.losses import sparsity_loss

    p = torch.tensor([[0.9, 0.1, 0.1, 0.5], [0.2, 0.2, 0.2, 0.2], [0.6, 0.3, 0.99, 0.99]])
    logits = torch.logit(p)
    lengths = torch.tensor([3, 4, 2])  # the 0.99s of the third row are padding
    labels = torch.tensor([1.0, 0.0, 1.0])  # the normal row does not count
    expect = ((0.9 + 0.1 + 0.1) / 3 + (0.6 + 0.3) / 2) / 2
    torch.testing.assert_close(sparsity_loss(logits, labels, lengths), torch.tensor(expect))
    assert sparsity_loss(logits, torch.zeros(3), lengths) == 0  # no abnormal video


def test_sparsity_weight_adds_to_the_total_only_and_zero_is_the_reference():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=8, heads=2, refine_steps=1)).eval()
    lengths = torch.tensor([6, 4])
    x, y = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    labels = torch.tensor([1.0, 0.0])
    shift = kl_shift(model.cfg)
    from iefvad.models.losses import sparsity_loss

    with torch.no_grad():
        out = model(x, y, lengths)
        ref = ief_vad_loss(out, labels, lengths, 1.0, shift)
        off = ief_vad_loss(out, labels, lengths, 1.0, shift, sparsity=0.0)
        on = ief_vad_loss(out, labels, lengths, 1.0, shift, sparsity=2.0)
    assert torch.equal(ref.total, off.total)
    torch.testing.assert_close(
        on.total, ref.total + 2.0 * sparsity_loss(out.logits, labels, lengths)
    )
    assert torch.equal(on.cls, ref.cls) and torch.equal(on.kl, ref.kl)
