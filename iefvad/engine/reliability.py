"""The reliability training recipe: teach the log-variance heads to predict each stream's error.

* corruption augmentation (:mod:`iefvad.engine.corruption`, ``--corrupt``): one modality of some
  training rows is degraded on a span (noise, attenuation, dropped, frozen);
* a heteroscedastic objective (``--reliability_loss gaussian|student_t``): each modality's
  predicted variance must explain its error against a detached target, the other modality's
  latent or the clean input's latents,
  ``NLL_m = 0.5 (lv_m + e_m^2 exp(-lv_m))`` per value (Gaussian), or the Student-t version. The
  mean is detached: the term trains the variance heads (and, through them, the encoders) only,
  never pulls the means. Its minimiser is ``lv_m = log E[e_m^2 | input]``: on a corrupted
  snippet the corrupted stream's error and hence its variance rise, and the inverse-variance
  rule then down-weights it.

Named recipes (``--recipe released|reliable``) and the ablation's variant keys are here too; the
benchmark that measures whether the weights learnt it is :mod:`iefvad.studies.reliability_bench`,
the flags :mod:`iefvad.cli.reliability`. See docs/fusion.md, "Weights that follow reliability".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor

from iefvad.engine.corruption import KINDS, CorruptionSpec, Corruptor
from iefvad.errors import UserInputError

RELIABILITY_LOSSES = ("none", "gaussian", "student_t", "detector")
RELIABILITY_TARGETS = ("other", "clean", "corruption")
DETECTOR_SOURCES = ("weights", "stats")
MIL_INPUTS = ("corrupted", "clean_rows", "clean")
NLL_LOGVAR_CLAMP = 12.0
"""The NLL clamps log-variances to +-12 (errors are O(1) after the heads' LayerNorm)."""


@dataclass(frozen=True)
class ReliabilitySpec:
    """The heteroscedastic term (``--reliability_loss``); stored in the training record."""

    loss: str = "none"
    weight: float = 1.0
    """Multiplies the term (added to the total loss, outside ``lam``)."""
    nu: float = 4.0
    """Degrees of freedom of the ``student_t`` NLL."""
    target: str = "other"
    """``other``: the error is ``mu_m - mu_other`` of the same pass (no extra pass); ``clean``:
    the squared error is ``(mu_m - mu_m^clean)^2 + (mu_m^clean - mu_other^clean)^2``, the
    corruption's shift plus the clean gap, from a second, gradient-free pass on the clean
    inputs: the two parts cannot cancel, so a corrupted stream never looks better than its
    clean self; ``corruption``: the squared error is ``(mu_m - mu_m^clean)^2 + floor``, only
    what the corruption moved the stream (the clean pass runs on the corrupted rows only) plus
    a floor, so a clean stream's variance is pushed to a constant and never up for seeing
    what the other stream does not. (Not used by the ``detector`` loss.)"""
    floor: float = 0.1
    """Target ``corruption``: the floor ``sigma0^2``, as a fraction of the batch's mean
    per-value variance of the clean latents (both streams' averaged: one floor for both)."""
    band: float = 0.0
    """``detector`` loss: on clean snippets, the weights may move freely in ``[band, 1 -
    band]`` (a squared hinge on the logit beyond it) instead of being pulled to 0.5 by the
    BCE; 0 = the BCE on clean snippets too. The anomaly loss can then still lean on the stream
    that sees an anomaly, while only a corrupted stream is pushed below the band."""
    source: str = "weights"
    """``detector`` loss: which logits it trains. ``weights``: the fusion weights' own,
    ``k (lv_m - lv_other)``, so clean snippets pull the whole variance heads to equal weights;
    ``stats``: only the temporal stats head's part of the log-variances (``--variance_temporal``),
    so the heads on the encoder's latent are shaped by the anomaly objective alone, as
    released, and the detector adds an offset that is learned to be equal for both streams on
    clean snippets (docs/fusion.md, round 4)."""
    detach_stats: bool = False
    """The stats head's part of the log-variances enters the fusion (and every other term)
    without gradient, so only the ``detector`` loss with ``source="stats"`` trains it: the
    anomaly objective cannot make it react to what a stream sees (docs/fusion.md, round 4)."""
    mil_input: str = "corrupted"
    """What the anomaly (MIL) loss scores. ``corrupted``: the batch as the augmentation left it
    (a corrupted normal video must still score low). ``clean_rows``: only the rows the
    augmentation left clean (the corrupted ones train the reliability term alone; fewer normal
    rows in the MIL term). ``clean``: every row, the corrupted ones through a second pass on
    their clean inputs (with gradient), so the MIL term is the released one on the clean batch
    and the corrupted pass trains the reliability term only (docs/fusion.md, round 4)."""
    detach_corrupted: bool = False
    """On the rows the augmentation corrupted, the log-variances enter the fusion without
    gradient: the anomaly loss on a corrupted (normal) video cannot teach the weights to turn
    away from a stream that looks unusual, which on clean abnormal videos is the stream that
    sees the anomaly; the reliability term still trains them there (docs/fusion.md, round 4)."""
    detach_weights: bool = False
    """The fusion weights get no gradient from the anomaly objective: the log-variances enter
    the fusion detached, so only this term (and the KL term) trains the variance heads. With
    the ``detector`` loss, clean snippets then have nothing pulling their weights away from
    0.5; without it, the MIL loss moves the weights towards whichever stream scores the
    training anomalies (docs/fusion.md, issue 21)."""

    def __post_init__(self) -> None:
        if self.target not in RELIABILITY_TARGETS:
            raise UserInputError(
                f"reliability target must be one of {RELIABILITY_TARGETS}, got {self.target!r}"
            )
        if self.loss not in RELIABILITY_LOSSES:
            raise UserInputError(
                f"--reliability_loss must be one of {RELIABILITY_LOSSES}, got {self.loss!r}"
            )
        if self.source not in DETECTOR_SOURCES:
            raise UserInputError(
                f"detector source must be one of {DETECTOR_SOURCES}, got {self.source!r}"
            )
        if self.mil_input not in MIL_INPUTS:
            raise UserInputError(f"mil_input must be one of {MIL_INPUTS}, got {self.mil_input!r}")
        if self.detach_stats and not (self.loss == "detector" and self.source == "stats"):
            raise UserInputError(
                "detach_stats needs the detector on the stats (--reliability_loss detector "
                "--detector_source stats): nothing else would train the stats head"
            )
        if not 0.0 <= self.band < 0.5:
            raise UserInputError(f"detector band must be in [0, 0.5), got {self.band}")
        if self.weight < 0 or self.nu <= 0 or self.floor <= 0:
            raise UserInputError(
                "--reliability_weight must be >= 0, nu and floor > 0, got "
                f"{self.weight}, {self.nu}, {self.floor}"
            )

    @property
    def active(self) -> bool:
        return self.loss != "none" and self.weight > 0


@dataclass(frozen=True)
class TrainingRecipe:
    """Corruption + reliability term; ``TrainConfig.uncertainty`` holds :meth:`to_record`."""

    corrupt: CorruptionSpec = CorruptionSpec()
    reliability: ReliabilitySpec = ReliabilitySpec()

    @property
    def active(self) -> bool:
        return self.corrupt.active or self.reliability.active

    def to_record(self) -> dict[str, Any]:
        return {"corrupt": self.corrupt.to_dict(), "reliability": asdict(self.reliability)}

    @classmethod
    def from_record(cls, d: dict[str, Any] | None) -> TrainingRecipe:
        d = d or {}
        rel = {k: v for k, v in d.get("reliability", {}).items() if k in _names(ReliabilitySpec)}
        return cls(CorruptionSpec.from_dict(d.get("corrupt", {})), ReliabilitySpec(**rel))


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _masked_mean(x: Tensor, keep: Tensor) -> Tensor:
    k = keep.to(x.dtype)
    return (x * k).sum() / k.sum().clamp(min=1.0)


def nll_terms(
    mu: Tensor, logvar: Tensor, target: Tensor | None, kind: str, nu: float = 4.0, sq=None
) -> Tensor:
    """Per-value negative log-likelihood (constants dropped) of ``target`` under a Gaussian
    (or Student-t with ``nu``) with mean ``mu`` and log-variance ``logvar``; ``sq``: the
    squared error itself (then ``mu`` and ``target`` are ignored)."""
    lv = logvar.float().clamp(-NLL_LOGVAR_CLAMP, NLL_LOGVAR_CLAMP)
    if sq is None:
        sq = (mu.float() - target.float()).pow(2)
    z2 = sq.float() * torch.exp(-lv)
    if kind == "gaussian":
        return 0.5 * (lv + z2)
    if kind == "student_t":
        return 0.5 * lv + 0.5 * (nu + 1.0) * torch.log1p(z2 / nu)
    raise ValueError(f"unknown reliability loss {kind!r}")


def latent_spread(mu_clean: Tensor, valid: Tensor) -> Tensor:
    """Mean per-value variance of ``mu_clean`` ``[B, T, D]`` over the real snippets
    (detached; 1 when there is at most one snippet)."""
    ref = mu_clean.detach().float()[valid]
    return ref.var(0).mean() if ref.shape[0] > 1 else mu_clean.new_ones((), dtype=torch.float32)


def corruption_sq(mu: Tensor, mu_clean: Tensor, floor_sq: Tensor | float) -> Tensor:
    """The ``corruption`` target's squared error: ``(mu - mu_clean)^2 + floor_sq`` (detached).
    ``floor_sq`` must be the same for both streams: a per-stream floor would give the streams
    different variances, hence unequal weights, on clean data (docs/fusion.md)."""
    return (mu.detach().float() - mu_clean.detach().float()).pow(2) + floor_sq


def detector_loss(
    out,
    lengths: Tensor,
    power: float,
    mask_image: Tensor,
    mask_event: Tensor,
    band: float = 0.0,
    source: str = "weights",
) -> Tensor:
    """The ``detector`` term: per value, ``BCE(k (lv_m - lv_other), corrupted_m)``, i.e. the
    fused weight's complement ``1 - w_m = sigmoid(k (lv_m - lv_o))`` is trained as the
    probability that stream ``m``'s snippet was corrupted (labels: the augmentation's masks).
    On a clean snippet both streams' terms ask for 0, which holds only at ``lv_m = lv_o``:
    clean streams are pushed to equal weights whatever they see. Mean over real snippets and
    values, summed over the two modalities. ``band`` > 0: a clean snippet's term is
    ``relu(z_m - logit(1 - band))^2`` instead, zero while ``w_m >= band``. ``source``
    ``stats``: the same on the stats head's parts of the log-variances only."""
    t = out.logvar_image.shape[1]
    valid = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
    src_i, src_e = out.logvar_image, out.logvar_event
    if source == "stats":
        if out.stats_image is None or out.stats_event is None:
            raise UserInputError(
                "the detector on the stats (detector_source=stats) needs --variance_temporal"
            )
        src_i, src_e = out.stats_image, out.stats_event
    lv_i = src_i.float().clamp(-NLL_LOGVAR_CLAMP, NLL_LOGVAR_CLAMP)
    lv_e = src_e.float().clamp(-NLL_LOGVAR_CLAMP, NLL_LOGVAR_CLAMP)
    z = power * (lv_i - lv_e)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    y_i = mask_image.to(z.dtype)[..., None].expand_as(z)
    y_e = mask_event.to(z.dtype)[..., None].expand_as(z)
    li, le = bce(z, y_i, reduction="none"), bce(-z, y_e, reduction="none")
    if band > 0:
        edge = math.log((1.0 - band) / band)
        li = torch.where(y_i > 0, li, torch.relu(z - edge).pow(2))
        le = torch.where(y_e > 0, le, torch.relu(-z - edge).pow(2))
    return _masked_mean(li.mean(-1), valid) + _masked_mean(le.mean(-1), valid)


def reliability_loss(
    out,
    lengths: Tensor,
    spec: ReliabilitySpec,
    mask_image: Tensor | None = None,
    mask_event: Tensor | None = None,
    clean=None,
) -> Tensor:
    """The heteroscedastic term of one batch (see the module doc): mean over real snippets
    (where the other modality is clean) and values, summed over the two modalities.
    ``clean``: the outputs of a gradient-free pass on the clean inputs (target ``clean``)."""
    t = out.mu_image.shape[1]
    valid = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
    if clean is not None and spec.target == "corruption":
        spread = latent_spread(clean.mu_image, valid) + latent_spread(clean.mu_event, valid)
        floor_sq = spec.floor * 0.5 * spread  # one floor for both streams
        sq_i = corruption_sq(out.mu_image, clean.mu_image, floor_sq)
        sq_e = corruption_sq(out.mu_event, clean.mu_event, floor_sq)
        nll_i = nll_terms(None, out.logvar_image, None, spec.loss, spec.nu, sq=sq_i).mean(-1)
        nll_e = nll_terms(None, out.logvar_event, None, spec.loss, spec.nu, sq=sq_e).mean(-1)
        return _masked_mean(nll_i, valid) + _masked_mean(nll_e, valid)
    if clean is not None:
        ci, ce = clean.mu_image.detach().float(), clean.mu_event.detach().float()
        gap = (ci - ce).pow(2)
        sq_i = (out.mu_image.detach().float() - ci).pow(2) + gap
        sq_e = (out.mu_event.detach().float() - ce).pow(2) + gap
        nll_i = nll_terms(None, out.logvar_image, None, spec.loss, spec.nu, sq=sq_i).mean(-1)
        nll_e = nll_terms(None, out.logvar_event, None, spec.loss, spec.nu, sq=sq_e).mean(-1)
        return _masked_mean(nll_i, valid) + _masked_mean(nll_e, valid)
    keep_i = valid if mask_event is None else valid & ~mask_event
    keep_e = valid if mask_image is None else valid & ~mask_image
    mu_i, mu_e = out.mu_image.detach(), out.mu_event.detach()
    nll_i = nll_terms(mu_i, out.logvar_image, mu_e, spec.loss, spec.nu).mean(-1)
    nll_e = nll_terms(mu_e, out.logvar_event, mu_i, spec.loss, spec.nu).mean(-1)
    return _masked_mean(nll_i, keep_i) + _masked_mean(nll_e, keep_e)


class RecipeStep:
    """The training step's hook: ``out, extra = step(model, image, event, lengths, labels)``."""

    def __init__(
        self,
        recipe: TrainingRecipe,
        modalities: Sequence[str],
        seed: int,
        weight_power: float = 1.0,
    ) -> None:
        self.recipe = recipe
        self.power = weight_power
        self.corruptor = Corruptor(recipe.corrupt, seed) if recipe.corrupt.active else None
        self.both = "image" in modalities and "event" in modalities
        self.mil_rows: Tensor | None = None
        """After a call: the rows the anomaly loss should use (None: all)."""

    def rng_state(self) -> dict[str, Any]:
        """The corruption's random state, for a resume state (plain values and a tensor)."""
        if self.corruptor is None:
            return {}
        return {
            "numpy": self.corruptor.rng.bit_generator.state,
            "torch": self.corruptor.gen.get_state(),
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Continue the corruption's random streams where :meth:`rng_state` left them."""
        if self.corruptor is not None and state:
            self.corruptor.rng.bit_generator.state = state["numpy"]
            self.corruptor.gen.set_state(state["torch"])

    def __call__(
        self, model, image: Tensor, event: Tensor, lengths: Tensor, labels: Tensor | None = None
    ):
        mi = me = None
        clean_in = (image, event)
        if self.corruptor is not None:
            image, event, mi, me = self.corruptor(image, event, lengths, labels)
        spec = self.recipe.reliability
        detach: bool | Tensor = spec.detach_weights
        self.mil_rows = None
        hit = None if mi is None else mi.any(1) | me.any(1)
        if hit is not None:
            if spec.detach_corrupted and not detach:
                detach = hit
            if spec.mil_input == "clean_rows" and not bool(hit.all()):
                self.mil_rows = ~hit
        out = model(image, event, lengths, detach_weights=detach, detach_stats=spec.detach_stats)
        if spec.mil_input == "clean" and hit is not None and bool(hit.any()):
            rows = hit.nonzero().flatten()
            clean = model(clean_in[0][rows], clean_in[1][rows], lengths[rows])
            out = out._replace(logits=out.logits.index_put((rows,), clean.logits))
        if not (spec.active and self.both):
            return out, out.logits.new_zeros(())
        if spec.loss == "detector":
            z = torch.zeros(image.shape[:2], dtype=torch.bool, device=image.device)
            mi, me = (z, z) if mi is None else (mi, me)
            term = detector_loss(out, lengths, self.power, mi, me, spec.band, spec.source)
            return out, spec.weight * term
        clean = None
        if spec.target == "clean":
            with torch.no_grad():
                clean = model(*clean_in, lengths)
        elif spec.target == "corruption":
            clean = clean_latents(model, out, clean_in, lengths, mi, me)
        return out, spec.weight * reliability_loss(out, lengths, spec, mi, me, clean)


class _Latents(NamedTuple):
    mu_image: Tensor
    mu_event: Tensor


def clean_latents(model, out, clean_in, lengths: Tensor, mi, me) -> _Latents:
    """The clean pass's latents, run (without gradient) on the corrupted rows only, and taken
    only for the stream that was corrupted there: each stream is encoded on its own and each
    row on its own, so elsewhere the pass's own latents are the clean ones (shift 0, also
    when dropout is on). Without masks (no corruption) the pass's own latents."""
    ci, ce = out.mu_image.detach(), out.mu_event.detach()
    if mi is None:
        return _Latents(ci, ce)
    hit_i, hit_e = mi.any(1), me.any(1)
    rows = (hit_i | hit_e).nonzero().flatten()
    if rows.numel() == 0:
        return _Latents(ci, ce)
    with torch.no_grad():
        sub = model(clean_in[0][rows], clean_in[1][rows], lengths[rows])
    ci, ce = ci.clone(), ce.clone()
    ri, re_ = hit_i[rows], hit_e[rows]
    ci[rows[ri]] = sub.mu_image[ri].to(ci.dtype)
    ce[rows[re_]] = sub.mu_event[re_].to(ce.dtype)
    return _Latents(ci, ce)


def require_stats_head(spec: ReliabilitySpec, variance_temporal: bool, where: str = "") -> None:
    """Refuse ``source="stats"`` (the detector on the stats) for a model without the stats
    head (``variance_temporal``), before any training; ``where`` prefixes the message."""
    if spec.source == "stats" and not variance_temporal:
        raise UserInputError(
            f"{where}the detector on the stats (--detector_source stats) needs "
            "--variance_temporal (variance_temporal=true in an ablation variant, where "
            "recipe=NAME sets no model field)"
        )


def make_step(
    record: dict[str, Any] | None,
    modalities: Sequence[str],
    seed: int,
    weight_power: float = 1.0,
    variance_temporal: bool = True,
):
    """A :class:`RecipeStep`, or None when the record asks for nothing (the plain step).
    ``weight_power``: the model's (the ``detector`` loss trains the weights' logits);
    ``variance_temporal``: whether the model has the stats head (a detector on the stats
    needs it: refused here, before training, rather than at the first step)."""
    recipe = TrainingRecipe.from_record(record)
    require_stats_head(recipe.reliability, variance_temporal)
    return RecipeStep(recipe, modalities, seed, weight_power) if recipe.active else None


RELIABLE = TrainingRecipe(
    CorruptionSpec(kinds=KINDS, prob=0.5, whole=0.5),
    ReliabilitySpec(loss="gaussian", target="clean"),
)
"""``--recipe reliable``: corruption of one stream (every kind, half of the corrupted rows on
the whole row) and the Gaussian NLL against the clean pass (shift^2 + gap^2); with
``weight_power`` 3 (docs/fusion.md)."""
DETECTOR = TrainingRecipe(
    CorruptionSpec(
        kinds=("noise", "drop", "freeze"), prob=0.75, whole=0.5, sigma=(2.0, 4.0), rows="normal"
    ),
    ReliabilitySpec(loss="detector"),
)
"""``--recipe detector``: noise, drop and freeze on 3 in 4 normal videos (noise of 2-4 std),
the fusion weights' logits trained as a detector of them, and the variance heads reading the
temporal stats through ``Linear(3, 16) -> ReLU -> Linear(16, D)`` at stats scale 3 (the
model fields of :data:`RECIPE_MODEL`). Variant SF of docs/fusion.md, round 4: on redundant
streams it meets the issue's goals but the held-out kinds' average (and, with the ``small``
preset, its noise weights stop at 0.19-0.23); on complementary streams (the demo) it costs
3.5 points of clean AUC on average over 12 seeds."""
RECIPES = {"released": TrainingRecipe(), "reliable": RELIABLE, "detector": DETECTOR}
RECIPE_MODEL = {
    "released": {},
    "reliable": {"weight_power": 3.0},
    "detector": {"variance_temporal": True, "temporal_hidden": 16, "stats_scale": 3.0},
}
"""Model fields a named recipe sets unless given (``--weight_power``)."""
DEFAULT_RECIPE = "released"


VARIANT_KEYS = {
    "recipe": ("", ""),
    "corrupt": ("corrupt", "kinds"),
    "corrupt_prob": ("corrupt", "prob"),
    "corrupt_modality": ("corrupt", "modality"),
    "corrupt_span": ("corrupt", "span"),
    "corrupt_sigma": ("corrupt", "sigma"),
    "corrupt_whole": ("corrupt", "whole"),
    "corrupt_rows": ("corrupt", "rows"),
    "reliability_loss": ("reliability", "loss"),
    "reliability_weight": ("reliability", "weight"),
    "reliability_nu": ("reliability", "nu"),
    "reliability_target": ("reliability", "target"),
    "reliability_floor": ("reliability", "floor"),
    "detach_weights": ("reliability", "detach_weights"),
    "detach_stats": ("reliability", "detach_stats"),
    "detach_corrupted": ("reliability", "detach_corrupted"),
    "mil_input": ("reliability", "mil_input"),
    "detector_band": ("reliability", "band"),
    "detector_source": ("reliability", "source"),
}
"""``ablate.py --variants reference:corrupt=noise+drop:reliability_loss=gaussian``."""


VARIANT_TRUE = ("1", "true", "yes")
VARIANT_FALSE = ("0", "false", "no")


def variant_bool(text: str) -> bool:
    """A yes/no value of an ablation variant key (``variance_temporal=true``,
    ``detach_weights=no``): one vocabulary for the model's and the recipe's keys; ValueError
    for any other word."""
    word = text.lower()
    if word not in VARIANT_TRUE + VARIANT_FALSE:
        raise ValueError(text)
    return word in VARIANT_TRUE


def variant_recipe(pairs: dict[str, str], where: str) -> dict[str, Any]:
    """Recipe fields of an ablation variant (``KEY=VALUE`` with :data:`VARIANT_KEYS`)."""
    rec: dict[str, dict[str, Any]] = {"corrupt": {}, "reliability": {}}
    if "recipe" in pairs:  # a named recipe first, the other keys change parts of it
        if pairs["recipe"] not in RECIPES:
            raise UserInputError(f"{where}: recipe must be one of {', '.join(RECIPES)}")
        rec = RECIPES[pairs["recipe"]].to_record()
    for key, text in pairs.items():
        if key == "recipe":
            continue
        section, name = VARIANT_KEYS[key]
        try:
            if name == "kinds":
                value: Any = [k for k in text.split("+") if k and k != "none"]
            elif name in ("span", "sigma"):
                value = [float(v) for v in text.split(",")]
            elif name in ("prob", "weight", "nu", "whole", "floor", "band"):
                value = float(text)
            elif name in ("detach_weights", "detach_stats", "detach_corrupted"):
                value = variant_bool(text)
            else:
                value = text
        except ValueError:
            raise UserInputError(f"{where}: {key}={text!r} is not valid") from None
        rec[section][name] = value
    return TrainingRecipe.from_record(rec).to_record()
