"""Fusion rules for two modality estimates with predicted variances: pure tensor functions.

Every rule takes, per modality m (image ``i``, event ``e``), a mean ``mu_m`` and a log-variance
``lv_m``, both ``[B, T, D]``, and returns the fused estimate ``[B, T, D]`` and the normalised
per-value modality weights ``w_i``, ``w_e`` (``w_i + w_e = 1``). docs/fusion.md gives the
equations; :mod:`iefvad.models.model` wires them into the network.

* :func:`reference_fuse`: the released per-value inverse-variance weights
  (docs/reference.md section 5);
* :func:`student_t_fuse`: robust re-weighting with a Student-t likelihood: a value's weight
  falls as its residual to the current fused estimate grows (``nu`` sets how fast);
* :func:`kalman_fuse`: a diagonal Kalman filter over time: the fused latent is a state with a
  random-walk prior (learned process noise), updated by both modality measurements at each
  snippet; optionally robust (Student-t innovations) and optionally smoothed backwards
  (Rauch-Tung-Striebel).

The new rules compute in float32 (float64 inputs stay float64) and clamp log-variances to
``[-LOGVAR_CLAMP, LOGVAR_CLAMP]`` so that ``exp`` never overflows; the reference rule is left
exactly as released.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

LOGVAR_CLAMP = 20.0
"""New fusion rules clamp log-variances to +-20 (precisions within e^+-20)."""


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def reference_fuse(
    mu_i: Tensor, lv_i: Tensor, mu_e: Tensor, lv_e: Tensor, c: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Released rule: ``w_m = c exp(-lv_m)`` normalised per value; ``c`` cancels except for the
    ``1e-8`` guard, exactly as in the released code. Returns ``(fused, w_i, w_e)``."""
    wi = c * torch.exp(-lv_i)
    we = c * torch.exp(-lv_e)
    total = wi + we + 1e-8
    wi, we = wi / total, we / total
    return wi * mu_i + we * mu_e, wi, we


def student_t_log_weight(residual: Tensor, logvar: Tensor, nu: float) -> Tensor:
    """Log of the IRLS weight of one value: ``w = (nu+1) / (nu + r^2/s^2) / s^2``.

    ``residual`` r and ``logvar`` log s^2 broadcast together. ``nu = inf`` gives the Gaussian
    precision ``1/s^2``. The weight is the expected precision of the value under the
    Student-t scale mixture given its residual (the EM / Laplace fixed point).
    """
    lv = logvar.clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
    if math.isinf(nu):
        return -lv
    z2 = residual.pow(2) * torch.exp(-lv)
    return math.log(nu + 1.0) - torch.log(nu + z2) - lv


def student_t_fuse(
    mu_i: Tensor, lv_i: Tensor, mu_e: Tensor, lv_e: Tensor, nu: float, steps: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Robust fusion by ``steps`` re-weighting iterations from the Gaussian estimate.

    Each iteration computes both residuals to the current fused value, the Student-t weights
    of :func:`student_t_log_weight`, and the weighted mean. ``steps = 0`` is the Gaussian
    inverse-variance rule. Returns ``(fused, w_i, w_e)`` of the last iteration.
    """
    dtype, work = mu_i.dtype, _work_dtype(mu_i)
    mu_i, lv_i, mu_e, lv_e = (t.to(work) for t in (mu_i, lv_i, mu_e, lv_e))
    li = -lv_i.clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
    le = -lv_e.clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
    wi = torch.sigmoid(li - le)
    fused = wi * mu_i + (1.0 - wi) * mu_e
    for _ in range(steps):
        li = student_t_log_weight(mu_i - fused, lv_i, nu)
        le = student_t_log_weight(mu_e - fused, lv_e, nu)
        wi = torch.sigmoid(li - le)
        fused = wi * mu_i + (1.0 - wi) * mu_e
    return fused.to(dtype), wi.to(dtype), (1.0 - wi).to(dtype)


class KalmanState(NamedTuple):
    """Filter state after a snippet: mean ``x`` and variance ``p``, both ``[B, D]``."""

    x: Tensor
    p: Tensor


class KalmanResult(NamedTuple):
    fused: Tensor
    """``[B, T, D]`` filtered (or smoothed) state means."""
    w_image: Tensor
    w_event: Tensor
    """``[B, T, D]`` each modality's share of the measurement precision at each snippet."""
    variance: Tensor
    """``[B, T, D]`` filtered (or smoothed) state variances."""
    state: KalmanState
    """Filtered state after each row's last valid snippet: pass as ``init`` to continue."""


def kalman_fuse(
    mu_i: Tensor,
    lv_i: Tensor,
    mu_e: Tensor,
    lv_e: Tensor,
    log_q: Tensor,
    valid: Tensor | None = None,
    nu: float | None = None,
    smooth: bool = False,
    init: KalmanState | None = None,
) -> KalmanResult:
    """Diagonal Kalman filter over the T axis with two measurements per snippet.

    State model: ``x_t = x_{t-1} + w_t``, ``w_t ~ N(0, Q)`` with ``Q = exp(log_q)`` ``[D]``
    (or broadcastable to ``[B, D]``). Measurements: ``mu_m,t = x_t + v_m,t`` with variance
    ``R_m,t = exp(lv_m,t)``. The first snippet has no prior (flat), unless ``init`` carries
    the state of a previous chunk. ``valid`` ``[B, T]`` (True = real snippet): padded
    snippets are not measured (the state is only predicted), so they change nothing.
    ``nu``: robust (Student-t) measurements: each precision is scaled by
    ``(nu+1) / (nu + r^2 / S)`` with r the innovation and ``S = P_prior + R`` its variance.
    ``smooth``: Rauch-Tung-Striebel backward pass (uses the future: offline only).

    A Python loop over T; all work inside is ``[B, D]`` tensor algebra.
    """
    dtype, work = mu_i.dtype, _work_dtype(mu_i)
    mu_i, mu_e = mu_i.to(work), mu_e.to(work)
    lv_i = lv_i.to(work).clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
    lv_e = lv_e.to(work).clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
    b, t, d = mu_i.shape
    q = torch.exp(log_q.to(work)).expand(b, d)
    prec_i, prec_e = torch.exp(-lv_i), torch.exp(-lv_e)
    if valid is not None:
        m = valid.to(work).unsqueeze(-1)
        prec_i, prec_e = prec_i * m, prec_e * m
    # Unbind once (indexing [:, k] inside the loop makes the backward pass O(T^2)); without
    # robust scaling the measurement terms do not depend on the state: precompute them.
    robust = nu is not None
    if robust:
        parts = (mu_i, mu_e, prec_i, prec_e, lv_i.exp(), lv_e.exp())
        seq = list(zip(*(a.unbind(1) for a in parts)))
        w_i = None
    else:
        g = prec_i + prec_e
        seq = list(zip(g.unbind(1), (prec_i * mu_i + prec_e * mu_e).unbind(1)))
        w_i = prec_i / g.clamp(min=1e-30)
    xs, ps, p_priors, wis = [], [], [], []
    x, p = (init.x.to(work), init.p.to(work)) if init is not None else (None, None)
    for k in range(t):
        if robust:
            mi, me, gi, ge, vi, ve = seq[k]
            if p is not None:
                p_prior = p + q
                gi = gi * (nu + 1.0) / (nu + (mi - x).pow(2) / (p_prior + vi))
                ge = ge * (nu + 1.0) / (nu + (me - x).pow(2) / (p_prior + ve))
            gk, hk = gi + ge, gi * mi + ge * me
            wis.append(gi / gk.clamp(min=1e-30))
        else:
            gk, hk = seq[k]
            if p is not None:
                p_prior = p + q
        if p is None:  # flat prior: the first snippet is its own inverse-variance fusion
            p_prior = None
            p = 1.0 / gk.clamp(min=1e-30)
            x = hk * p
        else:
            prior_prec = 1.0 / p_prior
            p = 1.0 / (prior_prec + gk)
            x = (prior_prec * x + hk) * p
        xs.append(x)
        ps.append(p)
        p_priors.append(p_prior)
    if robust:
        w_i = torch.stack(wis, 1)
    filt_x = torch.stack(xs, 1)
    filt_p = torch.stack(ps, 1)
    if valid is not None:  # padded snippets carry no measurement: report the raw precisions
        raw = torch.sigmoid(lv_e - lv_i)
        w_i = torch.where(valid.unsqueeze(-1), w_i, raw)
    last = (
        torch.full((b,), t - 1, dtype=torch.long, device=mu_i.device)
        if valid is None
        else (valid.long().sum(1) - 1).clamp(min=0)
    )
    idx = last.view(b, 1, 1).expand(b, 1, d)
    state = KalmanState(filt_x.gather(1, idx).squeeze(1), filt_p.gather(1, idx).squeeze(1))
    fused, var = filt_x, filt_p
    if smooth and t > 1:
        sx, sp = [xs[-1]], [ps[-1]]
        for k in range(t - 2, -1, -1):
            c = ps[k] / p_priors[k + 1]
            sx.append(xs[k] + c * (sx[-1] - xs[k]))
            sp.append(ps[k] + c.pow(2) * (sp[-1] - p_priors[k + 1]))
        fused = torch.stack(sx[::-1], 1)
        var = torch.stack(sp[::-1], 1)
    return KalmanResult(fused.to(dtype), w_i.to(dtype), (1.0 - w_i).to(dtype), var.to(dtype), state)
