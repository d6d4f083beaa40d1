"""The dual-stream uncertainty-weighted fusion model (docs/reference.md section 5).

A pure ``nn.Module``: no data loading, no training glue. Module and parameter names are those
of the released checkpoints (``temporal.image_attn_layers.0.in_proj_weight``, ...), so the
authors' ``.pth`` files load strictly.

Shapes: B videos, T snippets, D feature width. Inputs are ``[B, T, D]`` image and event
features; ``lengths`` ``[B]`` gives the number of valid snippets of each row.

Fusion rules (``ModelConfig.fusion``, docs/fusion.md): ``reference`` is the released model and
has exactly its parameters. Other rules add their own modules under new names
(``temporal.kalman.log_q``, ``temporal.concat_proj.*``, ``temporal.gate.*``,
``temporal.cross_image.*`` / ``temporal.cross_event.*`` / ``temporal.cross_norm.*``) and only
when selected, so released files keep loading strictly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iefvad.errors import UserInputError
from iefvad.models.attention import SINK_INIT, sink_attention
from iefvad.models.fusion import KalmanState, kalman_fuse, reference_fuse, student_t_fuse
from iefvad.stored import StoredValueError, check_fields, dataclass_bounds

NOISE_MODELS = ("student_t", "gaussian")
UNCERTAINTY_FUSIONS = ("reference", "student_t", "kalman", "kalman_smooth")
"""Rules that weight the modalities by their predicted variances."""
BASELINE_FUSIONS = ("image_only", "event_only", "concat", "cross_attention", "gating")
FUSIONS = UNCERTAINTY_FUSIONS + BASELINE_FUSIONS
"""``reference``: the released per-element inverse-variance fusion (the Student-t factor
cancels). ``student_t``: robust re-weighting by each value's residual to the fused estimate.
``kalman``: a causal filter over time, the fused latent is a state updated by both modalities
each snippet; ``kalman_smooth``: the same, smoothed backwards (offline). ``image_only`` /
``event_only``: one stream (the other is not computed). ``concat``: a linear layer on both
means. ``cross_attention``: each stream attends to the other. ``gating``: a learned sigmoid
gate per value. See docs/fusion.md."""
SHARE_FUSIONS = ("concat", "cross_attention")
"""Rules without fusion weights: their ``w_image`` / ``w_event`` report each modality's
contribution share ``|c_i| / (|c_i| + |c_e|)`` per value (docs/fusion.md), not a weight."""
DEFAULT_FUSION = "reference"
"""Fusion of new models (released checkpoints always load as ``reference``)."""
INPUT_NORMS = ("none", "video_median", "video_mean")
WEIGHT_POOLS = ("value", "snippet")


def _opt(default: Any, help: str, **flag: Any) -> Any:
    """A field with its command-line flag's text, from which iefvad.cli.options generates the
    flag. ``flag`` may hold ``flag`` (the name when not ``--<field>``), ``choices``, ``shown``
    (the help's parenthesis when not ``default <value>``) and, for a bool, ``off`` (the help of
    its ``--no_<field>``)."""
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and fusion settings; stored in every checkpoint we write."""

    dim: int = _opt(
        768,
        "feature width D",
        flag="embed_dim",
        shown="default: from the features",
        bounds=(1, 8192),
    )
    """Feature and embedding width D (768 for CLIP ViT-L/14, 512 for ViT-B)."""
    heads: int = _opt(8, "attention heads", bounds=(1, 256))
    layers: int = _opt(2, "self-attention layers per modality", bounds=(0, 64))
    """Self-attention layers per modality."""
    dropout: float = _opt(0.1, "attention dropout", bounds=(0.0, 1.0))
    refine_steps: int = _opt(10, "refinement blocks K", bounds=(0, 256))
    """Number K of refinement blocks."""
    lambda_ref: float = _opt(0.5, "refinement step size", bounds=(-100.0, 100.0))
    """Step size of each refinement: ``fused -= lambda_ref * R_k(fused)``."""
    nu: float = _opt(8.0, "Student-t degrees of freedom", bounds=(0.0, 1e6), lo_open=True)
    """Degrees of freedom of the Student-t noise model."""
    noise: str = _opt("student_t", "noise model", choices=NOISE_MODELS)
    """``student_t`` or ``gaussian``: the KL offset; identical fused output in ``reference``
    fusion; in ``kalman*`` fusion, ``student_t`` makes the measurement update robust."""
    fusion: str = _opt(
        DEFAULT_FUSION,
        "fusion rule",
        choices=FUSIONS,
        shown=f"default {DEFAULT_FUSION}; reference = the released model; see docs/fusion.md",
    )
    """Fusion rule, one of :data:`FUSIONS`."""
    mask_padding: bool = _opt(
        True,
        "mask padded snippets in attention, fusion and losses",
        shown="default for new models",
        off="let padded snippets into attention and the alignment/KL means, as the released "
        "code does",
    )
    """Mask padded snippets in attention, fusion and the alignment/KL terms. On for new
    models; released checkpoints (which do not mask) load with it off."""
    robust_steps: int = _opt(2, "student_t fusion: re-weighting iterations", bounds=(0, 100))
    """``student_t`` fusion: re-weighting iterations after the Gaussian start."""
    weight_power: float = _opt(
        1.0,
        "uncertainty rules weight each modality by variance^-k",
        shown="default 1: released",
        bounds=(0.0, 100.0),
        lo_open=True,
    )
    """Calibration of the uncertainty rules' weights: each modality is weighted by its
    predicted variance to the power ``-weight_power`` (``exp(-k lv)``; 1 = the released
    rule, exactly). The log-variances the losses see are not scaled."""
    attention_sink: bool = _opt(
        True,
        "one learned null slot in every self-attention (docs/fusion.md)",
        shown="default for new models",
        off="no null slot: padded or short clips attend only among their snippets",
    )
    """Every self-attention gets one learned null slot (:mod:`iefvad.models.attention`): padding
    can be masked without short clips attending only to themselves (on for new models;
    released checkpoints and files written before the option load without it). Parameters
    ``temporal.image_sink`` / ``temporal.event_sink`` ``[layers, heads]``, only when on."""
    sink_trainable: bool = _opt(
        True,
        "learn the null slot's logit offsets",
        off="keep the null slot's logit offsets fixed at log 256",
    )
    """Learn the null slot's logit offsets (False: fixed at their initial ``log 256``)."""
    input_norm: str = _opt(
        "none",
        "subtract each input row's median or mean over its valid snippets (docs/training.md)",
        choices=INPUT_NORMS,
        shown="default none: the released models",
    )
    """``none`` (released models); ``video_median`` / ``video_mean``: subtract each input
    row's median / mean over its valid snippets from both streams, so that a per-video offset
    (camera, scene) shared by normal and abnormal videos is gone before the first layer. The
    median keeps an anomaly that covers less than half of the row (docs/training.md)."""
    variance_temporal: bool = _opt(
        False,
        "the log-variance heads also see each snippet's input energy and its change from the "
        "neighbouring snippets (docs/fusion.md)",
        shown="default off: the released heads",
        off="the log-variance heads see the encoder's latent only, as released",
    )
    """The log-variance heads also read :func:`temporal_stats` of the raw input (energy, and
    the mean squared change to the previous and next snippet), through a zero-initialised
    ``Linear(3, D)`` per modality (``temporal.image_logvar_temporal`` /
    ``temporal.event_logvar_temporal``, only when on): a frozen, dropped or noisy stream is
    visible in these numbers even where each snippet alone looks like a real one."""
    temporal_hidden: int = _opt(
        0,
        "with --variance_temporal: hidden width of a small MLP on the stats instead of the "
        "linear map (0: linear)",
        bounds=(0, 4096),
    )
    """With ``variance_temporal``: ``Linear(3, h) -> ReLU -> Linear(h, D)`` (the last layer
    zero-initialised) instead of ``Linear(3, D)``. A linear map of the stats is monotone in
    each: it can raise the variance for a change of zero (frozen) or for a large change
    (noise), not for both; trained on both kinds it flagged the frozen event stream and lost
    the noise (docs/fusion.md, round 3)."""
    stats_scale: float = _opt(
        0.1,
        "with --variance_temporal: the stats are this times the log of energy and change",
        bounds=(0.0, 100.0),
        lo_open=True,
    )
    """With ``variance_temporal``: :func:`temporal_stats` multiplies the logs by this. At 0.1
    (the first version) 4-std noise moves a stat by 0.28 while a drop moves it by 1.8: the
    zero-initialised map, whose weights Adam moves by about ``lr`` a step, needed several
    hundred steps before a noisy stream's weight fell (docs/fusion.md, round 4)."""
    weight_pool: str = _opt(
        "value",
        "fusion weights per value (as released) or one per snippet and stream, from the mean "
        "log-variance over the values",
        choices=WEIGHT_POOLS,
    )
    """``value``: each of the D values has its own weight (the released rule). ``snippet``:
    the log-variances enter the fusion averaged over the values, so each stream gets one
    weight per snippet. Made because the per-value weights of a corrupted stream spread
    widely, so their mean stayed high where the mean log-variance said "unreliable"; trained
    with it, the weights settled at the same level (docs/fusion.md, round 3)."""

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise UserInputError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.fusion not in FUSIONS:
            raise UserInputError(
                f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r} (--fusion)"
            )
        if self.dim % self.heads:
            raise UserInputError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if not self.nu > 0:
            raise UserInputError(f"nu must be > 0 (--nu), got {self.nu}")
        if not self.weight_power > 0:
            raise UserInputError(f"weight_power must be > 0, got {self.weight_power}")
        if not self.stats_scale > 0:
            raise UserInputError(f"stats_scale must be > 0, got {self.stats_scale}")
        if self.robust_steps < 0:
            raise UserInputError(f"robust_steps must be >= 0, got {self.robust_steps}")
        if self.input_norm not in INPUT_NORMS:
            raise UserInputError(
                f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {self.input_norm!r}"
            )
        if self.weight_pool not in WEIGHT_POOLS:
            raise UserInputError(
                f"weight_pool must be one of {', '.join(WEIGHT_POOLS)}, got {self.weight_pool!r}"
            )
        if self.temporal_hidden < 0 or (self.temporal_hidden and not self.variance_temporal):
            raise UserInputError(
                f"temporal_hidden {self.temporal_hidden}: must be >= 0, and > 0 only with "
                "--variance_temporal"
            )

    @classmethod
    def released(cls, **fields: Any) -> ModelConfig:
        """The released model's behaviour: ``reference`` fusion, padding not masked."""
        return cls(
            **{"fusion": "reference", "mask_padding": False, "attention_sink": False, **fields}
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_stored(
        cls, d: dict[str, Any], where: str, overrides: dict[str, Any] | None = None
    ) -> ModelConfig:
        """:meth:`from_dict` for a configuration read from a file (``where`` names it): each
        known key is checked for type and range first (the ``bounds`` of the field metadata,
        :mod:`iefvad.stored`), before anything is built from it; ``overrides`` (the user's
        flags, checked by the command line) then replace fields."""
        check_fields(d, dataclass_bounds(cls), where)
        try:
            return cls.from_dict({**d, **(overrides or {})})
        except UserInputError as e:
            raise StoredValueError(f"{where}: {e}") from None

    @property
    def modalities(self) -> tuple[str, ...]:
        """The streams this model uses: ``("image", "event")`` or one of them."""
        return {"image_only": ("image",), "event_only": ("event",)}.get(
            self.fusion, ("image", "event")
        )

    @property
    def noise_scale(self) -> float:
        """c in ``w = c * exp(-logvar)``: (nu+1)/nu for Student-t, 1 for Gaussian."""
        return (self.nu + 1.0) / self.nu if self.noise == "student_t" else 1.0


class FusionOutput(NamedTuple):
    """Everything the forward pass returns; all ``[B, T, D]`` except ``logits`` ``[B, T]``."""

    fused: Tensor
    logits: Tensor
    mu_image: Tensor
    mu_event: Tensor
    logvar_image: Tensor
    logvar_event: Tensor
    w_image: Tensor
    w_event: Tensor
    stats_image: Tensor | None = None
    """With ``variance_temporal``: the stats head's part of ``logvar_image`` (else None)."""
    stats_event: Tensor | None = None
    """With ``variance_temporal``: the stats head's part of ``logvar_event`` (else None)."""


def padding_mask(lengths: Tensor, t: int) -> Tensor:
    """``[B, T]`` bool, True at padded positions (index >= length)."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


def center_rows(x: Tensor, lengths: Tensor | None, how: str) -> Tensor:
    """``x`` ``[B, T, D]`` minus each row's median or mean over its first ``lengths`` snippets
    (all ``T`` when ``lengths`` is None); padded positions are centred the same way."""
    if how == "none":
        return x
    if lengths is None:
        ref = x.median(1, keepdim=True).values if how == "video_median" else x.mean(1, True)
        return x - ref
    pad = padding_mask(lengths, x.shape[1])[..., None]
    if how == "video_median":
        ref = torch.nanmedian(x.masked_fill(pad, float("nan")), 1, keepdim=True).values
    else:
        n = (~pad).sum(1, keepdim=True).clamp(min=1)
        ref = x.masked_fill(pad, 0.0).sum(1, keepdim=True) / n
    return x - torch.nan_to_num(ref)


def contribution_shares(c_i: Tensor, c_e: Tensor) -> tuple[Tensor, Tensor]:
    """``|c_i| / (|c_i| + |c_e|)`` and its complement, per value, without gradient: how much
    of a fused value comes from each modality's term (reported, never trained on)."""
    a_i, a_e = c_i.detach().abs(), c_e.detach().abs()
    share = a_i / (a_i + a_e).clamp(min=1e-12)
    return share, 1.0 - share


TEMPORAL_STATS = 3
STATS_EPS = 1e-8
STATS_SCALE = 0.1
"""Default of ``stats_scale``: the stats are ``0.1 log(eps + .)``, scale-free numbers."""


def temporal_stats(x: Tensor, lengths: Tensor | None = None, scale: float = STATS_SCALE) -> Tensor:
    """``[B, T, 3]`` per snippet of ``x`` ``[B, T, D]``: ``scale * log(eps + s)`` of its mean square
    (0 for a dropped stream), of its mean squared change from the previous snippet and to the
    next one (0 for a frozen one; large for noise). The first (last real, by ``lengths``)
    snippet's missing neighbour counts as the change next to it; one snippet alone gets
    changes of 0."""
    x = x.float()
    energy = x.pow(2).mean(-1)
    if x.shape[1] > 1:
        d = (x[:, 1:] - x[:, :-1]).pow(2).mean(-1)
        prev = torch.cat([d[:, :1], d], 1)
        nxt = torch.cat([d, d[:, -1:]], 1)
        if lengths is not None:  # the last real snippet has no next one (padding follows)
            last = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None] - 1
            nxt = torch.where(last, prev, nxt)
    else:
        prev = nxt = torch.zeros_like(energy)
    return scale * torch.log(STATS_EPS + torch.stack([energy, prev, nxt], -1))


def _detached(x: Tensor, rows: bool | Tensor) -> Tensor:
    """``x`` ``[B, T, D]`` without gradient where ``rows`` says so: everywhere (True),
    nowhere (False), or on the rows of a ``[B]`` bool tensor (same values either way)."""
    if isinstance(rows, Tensor):
        return torch.where(rows[:, None, None], x.detach(), x)
    return x.detach() if rows else x


def _temporal_head(d: int, hidden: int) -> nn.Module:
    """The stats' map into a log-variance offset: ``Linear(3, d)``, or with ``hidden`` > 0
    ``Linear(3, hidden) -> ReLU -> Linear(hidden, d)``; the last layer is zero-initialised,
    so a new model starts as the plain heads."""
    if hidden > 0:
        head: nn.Module = nn.Sequential(
            nn.Linear(TEMPORAL_STATS, hidden), nn.ReLU(), nn.Linear(hidden, d)
        )
        last = head[-1]
    else:
        head = last = nn.Linear(TEMPORAL_STATS, d)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return head


class TemporalFusion(nn.Module):
    """Per-modality self-attention encoders, uncertainty heads, fusion and refinement."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim

        def attn() -> nn.ModuleList:
            return nn.ModuleList(
                nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
                for _ in range(cfg.layers)
            )

        def norms() -> nn.ModuleList:
            return nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.layers))

        self.image_attn_layers = attn()
        self.image_norms = norms()
        self.event_attn_layers = attn()
        self.event_norms = norms()
        self.whiten_image = nn.LayerNorm(d)
        self.whiten_event = nn.LayerNorm(d)
        self.image_mu = nn.Linear(d, d)
        self.event_mu = nn.Linear(d, d)
        self.image_logvar = nn.Linear(d, d)
        self.event_logvar = nn.Linear(d, d)
        self.refinement_blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
            for _ in range(cfg.refine_steps)
        )
        self.classifier = nn.Linear(d, 1)
        if cfg.variance_temporal:  # new names; zero-initialised: starts as the plain heads
            self.image_logvar_temporal = _temporal_head(d, cfg.temporal_hidden)
            self.event_logvar_temporal = _temporal_head(d, cfg.temporal_hidden)
        if cfg.attention_sink:  # one null-slot logit offset per layer and head (new names)
            init = torch.full((cfg.layers, cfg.heads), SINK_INIT)
            self.image_sink = nn.Parameter(init.clone(), requires_grad=cfg.sink_trainable)
            self.event_sink = nn.Parameter(init.clone(), requires_grad=cfg.sink_trainable)
        # Modules of the other fusion rules, registered only when selected (new key names).
        if cfg.fusion in ("kalman", "kalman_smooth"):
            self.kalman = nn.Module()
            self.kalman.log_q = nn.Parameter(torch.zeros(d))  # log process variance per dim
        elif cfg.fusion in ("concat", "gating"):
            layer = nn.Linear(2 * d, d)
            setattr(self, "concat_proj" if cfg.fusion == "concat" else "gate", layer)
        elif cfg.fusion == "cross_attention":
            self.cross_image = nn.MultiheadAttention(
                d, cfg.heads, dropout=cfg.dropout, batch_first=True
            )
            self.cross_event = nn.MultiheadAttention(
                d, cfg.heads, dropout=cfg.dropout, batch_first=True
            )
            self.cross_norm = nn.LayerNorm(d)

    @staticmethod
    def _encode(
        x: Tensor,
        layers: nn.ModuleList,
        norms: nn.ModuleList,
        pad: Tensor | None,
        sink: Tensor | None = None,
    ) -> Tensor:
        for j, (attn, norm) in enumerate(zip(layers, norms)):
            if sink is None:
                h, _ = attn(x, x, x, key_padding_mask=pad, need_weights=False)
            else:
                h, _ = sink_attention(attn, x, pad, sink[j])
            x = norm(x + h)
        return x

    def fuse(
        self,
        mu_i: Tensor,
        lv_i: Tensor,
        mu_e: Tensor,
        lv_e: Tensor,
        pad: Tensor | None = None,
        causal: bool = False,
        init: KalmanState | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Fuse both streams by ``cfg.fusion``; returns ``(fused, w_image, w_event)``, all
        ``[B, T, D]``. ``pad`` ``[B, T]`` True at padded snippets (only when masking).
        ``causal``: ``kalman_smooth`` runs the filter alone (streaming). ``init``: Kalman
        state to continue from (the ``state`` of a previous chunk)."""
        cfg = self.cfg
        if cfg.fusion == "reference":
            return reference_fuse(mu_i, lv_i, mu_e, lv_e, cfg.noise_scale)
        if cfg.fusion == "student_t":
            return student_t_fuse(mu_i, lv_i, mu_e, lv_e, cfg.nu, cfg.robust_steps)
        if cfg.fusion in ("kalman", "kalman_smooth"):
            r = kalman_fuse(
                mu_i,
                lv_i,
                mu_e,
                lv_e,
                self.kalman.log_q,
                valid=None if pad is None else ~pad,
                nu=cfg.nu if cfg.noise == "student_t" else None,
                smooth=cfg.fusion == "kalman_smooth" and not causal,
                init=init,
            )
            self.last_state = KalmanState(r.state.x.detach(), r.state.p.detach())
            return r.fused, r.w_image, r.w_event
        if cfg.fusion == "gating":
            g = torch.sigmoid(self.gate(torch.cat([mu_i, mu_e], -1)))
            return g * mu_i + (1.0 - g) * mu_e, g, 1.0 - g
        if cfg.fusion == "concat":  # W [mu_i; mu_e] + b, written as the sum of two terms
            w, b = self.concat_proj.weight, self.concat_proj.bias
            c_i = F.linear(mu_i, w[:, : cfg.dim])
            c_e = F.linear(mu_e, w[:, cfg.dim :])
            return (c_i + c_e + b, *contribution_shares(c_i, c_e))
        if cfg.fusion == "cross_attention":
            # image queries read event values and vice versa: the image-side content of the
            # sum is mu_i plus what the event queries read from the image (h_e)
            hi, _ = self.cross_image(mu_i, mu_e, mu_e, key_padding_mask=pad, need_weights=False)
            he, _ = self.cross_event(mu_e, mu_i, mu_i, key_padding_mask=pad, need_weights=False)
            fused = self.cross_norm(0.5 * (mu_i + hi + mu_e + he))
            return (fused, *contribution_shares(mu_i + he, mu_e + hi))
        raise AssertionError(cfg.fusion)

    def _sink(self, modality: str) -> Tensor | None:
        return getattr(self, f"{modality}_sink") if self.cfg.attention_sink else None

    def forward(
        self,
        image: Tensor,
        event: Tensor,
        lengths: Tensor | None = None,
        causal: bool = False,
        init: KalmanState | None = None,
        detach_weights: bool | Tensor = False,
        detach_stats: bool = False,
    ) -> FusionOutput:
        if image.shape != event.shape:
            raise ValueError(
                f"image features {tuple(image.shape)} and event features "
                f"{tuple(event.shape)} must have the same shape [B, T, D]"
            )
        if image.shape[-1] != self.cfg.dim:
            raise ValueError(
                f"features have width D={image.shape[-1]} but the model expects D={self.cfg.dim}"
            )
        raw = (image, event)
        if self.cfg.input_norm != "none":
            image = center_rows(image, lengths, self.cfg.input_norm)
            event = center_rows(event, lengths, self.cfg.input_norm)
        t_i = t_e = None
        pad = None
        if self.cfg.mask_padding and lengths is not None:
            pad = padding_mask(lengths, image.shape[1])
            if not self.training and not bool(pad.any()):
                pad = None  # nothing to mask: same result, and attention's fast path applies
        use = self.cfg.modalities
        if "image" in use:
            zi = self.whiten_image(
                self._encode(
                    image, self.image_attn_layers, self.image_norms, pad, self._sink("image")
                )
            )
            mu_i, lv_i = self.image_mu(zi), self.image_logvar(zi)
            if self.cfg.variance_temporal:
                t_i = self.image_logvar_temporal(
                    temporal_stats(raw[0], lengths, self.cfg.stats_scale).to(lv_i.dtype)
                )
                lv_i = lv_i + (t_i.detach() if detach_stats else t_i)
        if "event" in use:
            ze = self.whiten_event(
                self._encode(
                    event, self.event_attn_layers, self.event_norms, pad, self._sink("event")
                )
            )
            mu_e, lv_e = self.event_mu(ze), self.event_logvar(ze)
            if self.cfg.variance_temporal:
                t_e = self.event_logvar_temporal(
                    temporal_stats(raw[1], lengths, self.cfg.stats_scale).to(lv_e.dtype)
                )
                lv_e = lv_e + (t_e.detach() if detach_stats else t_e)
        if use == ("image",):  # the unused stream reads as zeros with weight 0
            mu_e, lv_e = torch.zeros_like(mu_i), torch.zeros_like(lv_i)
            fused, wi, we = mu_i, torch.ones_like(mu_i), torch.zeros_like(mu_i)
        elif use == ("event",):
            mu_i, lv_i = torch.zeros_like(mu_e), torch.zeros_like(lv_e)
            fused, wi, we = mu_e, torch.zeros_like(mu_e), torch.ones_like(mu_e)
        else:
            k = self.cfg.weight_power
            fi, fe = _detached(lv_i, detach_weights), _detached(lv_e, detach_weights)
            if self.cfg.weight_pool == "snippet":
                fi = fi.mean(-1, keepdim=True).expand_as(fi)
                fe = fe.mean(-1, keepdim=True).expand_as(fe)
            if k != 1.0:
                fi, fe = k * fi, k * fe
            fused, wi, we = self.fuse(mu_i, fi, mu_e, fe, pad, causal, init)
        for block in self.refinement_blocks:
            fused = fused - self.cfg.lambda_ref * block(fused)
        logits = self.classifier(fused).squeeze(-1)
        return FusionOutput(fused, logits, mu_i, mu_e, lv_i, lv_e, wi, we, t_i, t_e)


class IEFVAD(nn.Module):
    """Top-level model; the fusion network lives under ``temporal`` as in the released files."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.temporal = TemporalFusion(self.cfg)

    def forward(
        self,
        image: Tensor,
        event: Tensor,
        lengths: Tensor | None = None,
        causal: bool = False,
        init: KalmanState | None = None,
        detach_weights: bool | Tensor = False,
        detach_stats: bool = False,
    ) -> FusionOutput:
        """``causal``/``init``: see :meth:`TemporalFusion.fuse` (Kalman fusions only); after a
        Kalman forward, ``model.temporal.last_state`` holds the state to continue from.
        ``detach_weights``: the log-variances enter the fusion without gradient (values
        unchanged; the training recipe's ``detach_weights``); a ``[B]`` bool tensor: on
        those rows only (the recipe's ``detach_corrupted``). ``detach_stats``: the same for
        the stats head's part only (``stats_image`` / ``stats_event`` keep their gradient)."""
        return self.temporal(image, event, lengths, causal, init, detach_weights, detach_stats)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def num_used_parameters(model: IEFVAD) -> int:
    """Parameters the configured fusion actually uses (a single-modality baseline does not
    count the other stream's encoder and heads)."""
    use = model.cfg.modalities
    skip = []
    if "image" not in use:
        skip = ["image_", "whiten_image"]
    elif "event" not in use:
        skip = ["event_", "whiten_event"]
    return sum(
        p.numel()
        for n, p in model.temporal.named_parameters()
        if not any(n.startswith(s) for s in skip)
    )


def kl_shift(cfg: ModelConfig) -> float:
    """Offset added to logvar in the KL term: log(nu/(nu+1)) for Student-t, else 0."""
    return math.log(cfg.nu / (cfg.nu + 1.0)) if cfg.noise == "student_t" else 0.0
