"""Each fusion rule's defining property on constructed inputs (docs/fusion.md)."""

from __future__ import annotations

import math

import pytest
import torch
from test_model import RELEASED_KEYS

from iefvad.models.checkpoint import load_model, save_checkpoint
from iefvad.models.fusion import (
    KalmanState,
    kalman_fuse,
    reference_fuse,
    student_t_fuse,
    student_t_log_weight,
)
from iefvad.models.losses import ief_vad_loss
from iefvad.models.model import (
    FUSIONS,
    IEFVAD,
    SHARE_FUSIONS,
    ModelConfig,
    kl_shift,
    num_parameters,
    num_used_parameters,
)


def const(value: float, shape=(1, 1, 1)) -> torch.Tensor:
    return torch.full(shape, float(value), dtype=torch.float64)


# ---------------------------------------------------------------- Student-t


def test_student_t_weight_falls_with_the_residual_and_nu_sets_how_fast():
    r = torch.linspace(0, 6, 13, dtype=torch.float64)
    lv = torch.zeros_like(r)
    for nu in (1.0, 4.0, 30.0):
        w = student_t_log_weight(r, lv, nu).exp()
        assert w[0] == pytest.approx((nu + 1) / nu)  # zero residual
        assert bool((w[1:] < w[:-1]).all())  # strictly decreasing in |r|
    # relative down-weighting of a 3-sigma residual: the smaller nu, the stronger
    drop = {nu: float((student_t_log_weight(const(3), const(0), nu)).exp()) for nu in (1, 4, 30)}
    assert drop[1] < drop[4] < drop[30] < 1.0
    # nu -> infinity is the Gaussian precision 1 / s^2, whatever the residual
    w_inf = student_t_log_weight(r, lv + 0.7, math.inf).exp()
    torch.testing.assert_close(w_inf, torch.full_like(r, math.exp(-0.7)))


def test_student_t_fusion_down_weights_the_disagreeing_modality():
    """Image at 0 and more precise; event moved away: its weight falls as the gap grows,
    faster for small nu; the reference (and nu = inf) keep the weight fixed."""
    gaps = torch.tensor([0.0, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64).view(1, -1, 1)
    mu_i, lv_i = torch.zeros_like(gaps), torch.full_like(gaps, -0.5)
    mu_e, lv_e = gaps, torch.zeros_like(gaps)
    w_e = {}
    for nu in (2.0, 30.0, math.inf):
        fused, wi, we = student_t_fuse(mu_i, lv_i, mu_e, lv_e, nu, steps=3)
        torch.testing.assert_close(wi + we, torch.ones_like(wi))
        torch.testing.assert_close(fused, wi * mu_i + we * mu_e)
        w_e[nu] = we.flatten()
    assert bool((w_e[2.0][1:] < w_e[2.0][:-1]).all())
    assert bool((w_e[2.0][1:] < w_e[30.0][1:]).all())  # nu matters
    gauss = 1 / (1 + math.exp(0.5))  # precision share exp(0) / (exp(0.5) + exp(0))
    torch.testing.assert_close(w_e[math.inf], torch.full_like(w_e[math.inf], gauss))
    _, _, we_ref = reference_fuse(mu_i, lv_i, mu_e, lv_e)
    torch.testing.assert_close(we_ref.flatten(), torch.full_like(we_ref.flatten(), gauss))
    # zero re-weighting steps is the Gaussian rule
    _, _, we0 = student_t_fuse(mu_i, lv_i, mu_e, lv_e, 2.0, steps=0)
    torch.testing.assert_close(we0.flatten(), torch.full_like(we0.flatten(), gauss))


# ---------------------------------------------------------------- Kalman


def random_streams(b=2, t=24, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu_i, mu_e = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    lv_i, lv_e = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    return [x.double() for x in (mu_i, lv_i, mu_e, lv_e)]


@pytest.mark.parametrize("smooth", [False, True])
def test_kalman_with_huge_process_noise_is_per_snippet_weighting(smooth):
    mu_i, lv_i, mu_e, lv_e = random_streams()
    r = kalman_fuse(mu_i, lv_i, mu_e, lv_e, torch.full((3,), 40.0), smooth=smooth)
    fused, wi, we = reference_fuse(mu_i, lv_i, mu_e, lv_e)
    torch.testing.assert_close(r.fused, fused, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(r.w_image, wi, rtol=1e-6, atol=1e-6)
    # the state variance is the per-snippet fused variance 1 / (1/R_i + 1/R_e)
    torch.testing.assert_close(r.variance, 1 / (lv_i.neg().exp() + lv_e.neg().exp()))


def test_kalman_with_tiny_process_noise_smooths_over_time():
    """Constant measurement variances, Q -> 0: the filtered state is the running mean of all
    measurements so far; the smoothed state is the mean of the whole sequence."""
    mu_i, _, mu_e, _ = random_streams(b=1, t=30, d=2)
    lv_i, lv_e = torch.zeros_like(mu_i), torch.full_like(mu_e, math.log(3.0))
    q = torch.full((2,), -40.0)
    filt = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q)
    per_snippet = (mu_i * 3 + mu_e) / 4  # precisions 1 and 1/3
    n = torch.arange(1, 31, dtype=torch.float64).view(1, -1, 1)
    torch.testing.assert_close(filt.fused, per_snippet.cumsum(1) / n)
    smooth = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q, smooth=True)
    torch.testing.assert_close(smooth.fused, per_snippet.mean(1, keepdim=True).expand(1, 30, 2))
    assert float(smooth.fused.std(1).max()) < 1e-6 < float(per_snippet.std(1).min())
    # moderate process noise lies in between: smoother than per-snippet weighting
    mid = kalman_fuse(mu_i, lv_i, mu_e, lv_e, torch.zeros(2), smooth=True)
    rough = lambda x: float((x[:, 1:] - x[:, :-1]).abs().mean())  # noqa: E731
    assert rough(smooth.fused) < rough(mid.fused) < rough(per_snippet)


def test_kalman_filter_is_causal_and_the_smoother_is_not():
    mu_i, lv_i, mu_e, lv_e = random_streams()
    q = torch.zeros(3)
    a = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q, nu=4.0)
    mu_i2 = mu_i.clone()
    mu_i2[:, 15:] += 5.0  # change the future only
    b = kalman_fuse(mu_i2, lv_i, mu_e, lv_e, q, nu=4.0)
    torch.testing.assert_close(a.fused[:, :15], b.fused[:, :15], rtol=0, atol=0)
    sa = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q, smooth=True)
    sb = kalman_fuse(mu_i2, lv_i, mu_e, lv_e, q, smooth=True)
    assert not torch.allclose(sa.fused[:, :15], sb.fused[:, :15])


@pytest.mark.parametrize("nu", [None, 4.0])
def test_kalman_state_carries_over_chunks(nu):
    mu_i, lv_i, mu_e, lv_e = random_streams(t=20)
    q = torch.full((3,), -1.0)
    whole = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q, nu=nu)
    first = kalman_fuse(*(x[:, :8] for x in (mu_i, lv_i, mu_e, lv_e)), q, nu=nu)
    rest = kalman_fuse(*(x[:, 8:] for x in (mu_i, lv_i, mu_e, lv_e)), q, nu=nu, init=first.state)
    torch.testing.assert_close(torch.cat([first.fused, rest.fused], 1), whole.fused)
    assert isinstance(first.state, KalmanState) and first.state.x.shape == (2, 3)


def test_robust_kalman_down_weights_an_outlier_measurement():
    """Both modalities track a slow signal; at one snippet the event value jumps. The robust
    update (Student-t innovations) gives that value a lower weight than the Gaussian one."""
    t = torch.arange(20, dtype=torch.float64).view(1, -1, 1)
    signal = torch.sin(t / 5)
    mu_i, mu_e = signal.clone(), signal.clone()
    mu_e[0, 12, 0] += 6.0
    lv = torch.zeros_like(signal)
    q = torch.full((1,), -3.0)
    gauss = kalman_fuse(mu_i, lv, mu_e, lv, q)
    robust = kalman_fuse(mu_i, lv, mu_e, lv, q, nu=2.0)
    assert float(gauss.w_event[0, 12, 0]) == pytest.approx(0.5)
    assert float(robust.w_event[0, 12, 0]) < 0.2
    assert abs(float(robust.fused[0, 12, 0] - signal[0, 12, 0])) < 0.5 * abs(
        float(gauss.fused[0, 12, 0] - signal[0, 12, 0])
    )


@pytest.mark.parametrize("smooth", [False, True])
def test_kalman_ignores_padded_snippets(smooth):
    mu_i, lv_i, mu_e, lv_e = random_streams(t=16)
    valid = torch.arange(16)[None, :] < torch.tensor([[16], [9]])
    q = torch.zeros(3)
    a = kalman_fuse(mu_i, lv_i, mu_e, lv_e, q, valid=valid, nu=4.0, smooth=smooth)
    mu_i2, lv_e2 = mu_i.clone(), lv_e.clone()
    mu_i2[1, 9:] = 1e3
    lv_e2[1, 9:] = -15.0
    b = kalman_fuse(mu_i2, lv_i, mu_e, lv_e2, q, valid=valid, nu=4.0, smooth=smooth)
    torch.testing.assert_close(a.fused[1, :9], b.fused[1, :9], rtol=0, atol=0)
    torch.testing.assert_close(a.state.x, b.state.x, rtol=0, atol=0)
    short = kalman_fuse(*(x[1:, :9] for x in (mu_i, lv_i, mu_e, lv_e)), q, nu=4.0, smooth=smooth)
    torch.testing.assert_close(a.fused[1:, :9], short.fused)


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("fusion", FUSIONS)
def test_masked_padding_makes_outputs_independent_of_padded_values(fusion):
    torch.manual_seed(0)
    cfg = ModelConfig(dim=16, heads=2, refine_steps=2, fusion=fusion, mask_padding=True)
    model = IEFVAD(cfg).eval()
    lengths = torch.tensor([12, 5, 1])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 12, 16, generator=g), torch.randn(3, 12, 16, generator=g)
    x2, y2 = x.clone(), y.clone()
    x2[1, 5:] = 50.0
    y2[1, 5:] = torch.randn(7, 16, generator=g) * 30
    x2[2, 1:] = -20.0
    labels = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        a, b = model(x, y, lengths), model(x2, y2, lengths)
        la = ief_vad_loss(a, labels, lengths, 1.0, kl_shift(cfg), True, cfg.modalities)
        lb = ief_vad_loss(b, labels, lengths, 1.0, kl_shift(cfg), True, cfg.modalities)
    valid = torch.arange(12)[None, :] < lengths[:, None]
    for name in ("logits", "fused", "mu_image", "w_image", "w_event"):
        u, v = getattr(a, name)[valid], getattr(b, name)[valid]
        torch.testing.assert_close(u, v, rtol=0, atol=1e-5, equal_nan=True, msg=name)
    for u, v in zip(la, lb):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.w_image + a.w_event, torch.ones_like(a.w_image))
    assert bool(((a.w_image >= 0) & (a.w_image <= 1)).all())


def test_unmasked_reference_does_see_padding():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig.released(dim=16, heads=2, refine_steps=1)).eval()
    x, y = torch.randn(1, 10, 16), torch.randn(1, 10, 16)
    x2 = x.clone()
    x2[0, 6:] = 50.0
    with torch.no_grad():
        a, b = model(x, y, torch.tensor([6])), model(x2, y, torch.tensor([6]))
    assert not torch.allclose(a.logits[0, :6], b.logits[0, :6])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_new_fusions_add_new_keys_only_and_round_trip(fusion, tmp_path):
    # the null slot (on for new models) is tested in test_reliability.py
    model = IEFVAD(ModelConfig(dim=64, heads=8, fusion=fusion, attention_sink=False))
    keys = set(model.state_dict())
    assert set(RELEASED_KEYS) <= keys
    extra = keys - set(RELEASED_KEYS)
    prefixes = {
        "kalman": "temporal.kalman.",
        "kalman_smooth": "temporal.kalman.",
        "concat": "temporal.concat_proj.",
        "gating": "temporal.gate.",
        "cross_attention": "temporal.cross_",
    }
    assert all(k.startswith(prefixes[fusion]) for k in extra) and bool(extra) == (
        fusion in prefixes
    )
    if fusion in ("reference", "student_t"):
        assert num_parameters(model) == num_parameters(IEFVAD(ModelConfig.released(dim=64)))
    if fusion in ("image_only", "event_only"):
        d = 64  # the other stream: 2 x (attention 4d^2 + 4d, norm 2d), whitening 2d, 2 heads
        other = 2 * (4 * d * d + 4 * d + 2 * d) + 2 * d + 2 * (d * d + d)
        assert num_used_parameters(model) == num_parameters(model) - other
    else:
        assert num_used_parameters(model) == num_parameters(model)
    small = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion=fusion))
    save_checkpoint(tmp_path / "m.pth", small)
    loaded, ckpt = load_model(tmp_path / "m.pth")
    assert ckpt.config.fusion == fusion and ckpt.config.mask_padding is True


@pytest.mark.parametrize("fusion", ["student_t", "kalman", "kalman_smooth", "gating"])
def test_gradients_reach_the_uncertainty_heads_and_fusion_parameters(fusion):
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion=fusion))
    out = model(torch.randn(2, 10, 16), torch.randn(2, 10, 16), torch.tensor([10, 6]))
    out.logits[:, :6].sum().backward()
    t = model.temporal
    if fusion == "gating":  # the gate, not the variances, weights the modalities
        assert t.image_logvar.weight.grad is None
        assert float(t.gate.weight.grad.abs().sum()) > 0
    else:
        assert float(t.image_logvar.weight.grad.abs().sum()) > 0
    if fusion.startswith("kalman"):
        assert float(t.kalman.log_q.grad.abs().sum()) > 0
        assert model.temporal.last_state.x.shape == (2, 16)


def test_kalman_smooth_model_runs_causally_for_streaming():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion="kalman_smooth")).eval()
    filt = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion="kalman")).eval()
    filt.load_state_dict(model.state_dict())
    x, y = torch.randn(1, 10, 16), torch.randn(1, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, y, causal=True).logits, filt(x, y).logits)
        assert not torch.allclose(model(x, y).logits, filt(x, y).logits)


@pytest.mark.parametrize("fusion", SHARE_FUSIONS)
def test_contribution_shares_follow_the_modality_that_carries_the_fused_value(fusion):
    """Concat / cross-attention have no fusion weight; they report how much of each fused
    value comes from each modality. Silencing the event means moves the share to the image."""
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion=fusion)).eval()
    t = model.temporal
    g = torch.Generator().manual_seed(3)
    mu_i, mu_e = torch.randn(2, 8, 16, generator=g), torch.randn(2, 8, 16, generator=g)
    lv = torch.zeros_like(mu_i)
    with torch.no_grad():
        f, wi, _ = t.fuse(mu_i, lv, mu_e, lv)
        _, wi_quiet, _ = t.fuse(mu_i, lv, 0.01 * mu_e, lv)
        if fusion == "concat":  # the split form is the linear layer on the concatenation
            torch.testing.assert_close(f, t.concat_proj(torch.cat([mu_i, mu_e], -1)))
    assert 0.3 < float(wi.mean()) < 0.7
    assert float(wi_quiet.mean()) > float(wi.mean()) + 0.2
