"""Teaching the log-variance heads reliability, and measuring whether they learnt it.

Training recipe (docs/fusion.md, "Weights that follow reliability"):

* corruption augmentation (:mod:`iefvad.corruption`, ``--corrupt``): one modality of some
  training rows is degraded on a span (noise, attenuation, dropped, frozen);
* a heteroscedastic objective (``--reliability_loss gaussian|student_t``): each modality's
  predicted variance must explain its error against the *other* modality's latent (detached),
  ``NLL_m = 0.5 (lv_m + (mu_m - sg(mu_other))^2 exp(-lv_m))`` per value (Gaussian), or the
  Student-t version. The mean is detached as well (``sg``): the term trains the variance heads
  (and, through them, the encoders) only, never pulls the means. A modality's term is counted
  only where the other modality is clean, so a target is never a corrupted stream. Its
  minimiser is ``lv_m = log E[(mu_m - mu_other)^2 | input]``: on clean data both streams get
  the same variance (the alignment gap), on a corrupted snippet the corrupted stream's error
  and hence its variance rise, and the released inverse-variance rule then down-weights it.

Benchmark (:func:`run_benchmark`, ``ablate.py --corruption_bench`` or
``python -m iefvad.reliability``): per checkpoint and corruption (one modality; noise of
0.5-4 feature std, attenuation, dropped, frozen; on a contiguous span of each test video), the
frame AUC/AP, the AUC lost against the clean pass, the degraded modality's mean weight on the
altered snippets, and the AUROC with which its weight detects altered snippets (positives:
altered snippets of the degraded pass; negatives: every snippet of the clean pass; score
``1 - w``).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from iefvad.corruption import KINDS, MODALITY_CHOICES, CorruptionSpec, Corruptor, apply_corruption
from iefvad.errors import UserInputError

RELIABILITY_LOSSES = ("none", "gaussian", "student_t")
RELIABILITY_TARGETS = ("other", "clean")
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
    clean self."""

    def __post_init__(self) -> None:
        if self.target not in RELIABILITY_TARGETS:
            raise UserInputError(
                f"reliability target must be one of {RELIABILITY_TARGETS}, got {self.target!r}"
            )
        if self.loss not in RELIABILITY_LOSSES:
            raise UserInputError(
                f"--reliability_loss must be one of {RELIABILITY_LOSSES}, got {self.loss!r}"
            )
        if self.weight < 0 or self.nu <= 0:
            raise UserInputError(
                f"--reliability_weight must be >= 0 and nu > 0, got {self.weight}, {self.nu}"
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
    """The training step's hook: ``out, extra = step(model, image, event, lengths)``."""

    def __init__(self, recipe: TrainingRecipe, modalities: Sequence[str], seed: int) -> None:
        self.recipe = recipe
        self.corruptor = Corruptor(recipe.corrupt, seed) if recipe.corrupt.active else None
        self.both = "image" in modalities and "event" in modalities

    def __call__(self, model, image: Tensor, event: Tensor, lengths: Tensor):
        mi = me = None
        clean_in = (image, event)
        if self.corruptor is not None:
            image, event, mi, me = self.corruptor(image, event, lengths)
        out = model(image, event, lengths)
        spec = self.recipe.reliability
        if not (spec.active and self.both):
            return out, out.logits.new_zeros(())
        clean = None
        if spec.target == "clean":
            with torch.no_grad():
                clean = model(*clean_in, lengths)
        return out, spec.weight * reliability_loss(out, lengths, spec, mi, me, clean)


def make_step(record: dict[str, Any] | None, modalities: Sequence[str], seed: int):
    """A :class:`RecipeStep`, or None when the record asks for nothing (the plain step)."""
    recipe = TrainingRecipe.from_record(record)
    return RecipeStep(recipe, modalities, seed) if recipe.active else None


# --- command line (main.py / ablate.py) -------------------------------------------------


RELIABLE = TrainingRecipe(
    CorruptionSpec(kinds=KINDS, prob=0.5, whole=0.5),
    ReliabilitySpec(loss="gaussian", target="clean"),
)
"""``--recipe reliable``: corruption of one stream (every kind, half of the corrupted rows on
the whole row) and the Gaussian NLL against the clean pass (shift^2 + gap^2); with
``weight_power`` 3 (docs/fusion.md)."""
RECIPES = {"released": TrainingRecipe(), "reliable": RELIABLE}
RECIPE_MODEL = {"released": {}, "reliable": {"weight_power": 3.0}}
"""Model fields a named recipe sets unless given (``--weight_power``)."""
DEFAULT_RECIPE = "released"


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reliability recipe (docs/fusion.md, weights that follow reliability)")
    g.add_argument(
        "--recipe",
        choices=RECIPES,
        default=DEFAULT_RECIPE,
        help="released: the released objective; reliable: corruption + heteroscedastic NLL + "
        "weight_power 3 (the flags below change single parts)",
    )
    g.add_argument(
        "--corrupt",
        nargs="*",
        choices=KINDS,
        default=None,
        metavar="KIND",
        help=f"corrupt one modality of some training rows on a span, kinds from {KINDS} "
        "(the flag alone: no corruption)",
    )
    g.add_argument("--corrupt_prob", type=float, help="fraction of rows corrupted (default 0.5)")
    g.add_argument(
        "--corrupt_whole", type=float, help="fraction of corrupted rows hit on the whole row"
    )
    g.add_argument(
        "--corrupt_modality", choices=MODALITY_CHOICES, help="stream to corrupt (default either)"
    )
    g.add_argument(
        "--corrupt_span",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="span fraction range (default 0.1 1)",
    )
    g.add_argument(
        "--corrupt_sigma",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="noise std range in feature std (default 0.5 4)",
    )
    g.add_argument(
        "--reliability_loss",
        choices=RELIABILITY_LOSSES,
        help="heteroscedastic term: each modality's variance explains its error against the "
        "other modality (default none)",
    )
    g.add_argument("--reliability_weight", type=float, help="weight of that term (default 1)")
    g.add_argument(
        "--reliability_target",
        choices=RELIABILITY_TARGETS,
        help="other: error against the other stream (default); clean: corruption shift plus "
        "the clean gap, from an extra gradient-free pass",
    )


def recipe_model_fields(args: argparse.Namespace, model: dict[str, Any]) -> dict[str, Any]:
    """``model`` (ModelConfig fields from the flags) plus what the named recipe sets."""
    named = RECIPE_MODEL.get(getattr(args, "recipe", None) or DEFAULT_RECIPE, {})
    return {**named, **model}


def recipe_record(args: argparse.Namespace) -> dict[str, Any]:
    """``TrainConfig.uncertainty`` from the parsed flags ({} when none is given)."""
    base = RECIPES[getattr(args, "recipe", None) or DEFAULT_RECIPE].to_record()
    c: dict[str, Any] = {}
    if getattr(args, "corrupt", None) is not None:
        c["kinds"] = list(args.corrupt)
    for flag, key in (
        ("corrupt_prob", "prob"),
        ("corrupt_whole", "whole"),
        ("corrupt_modality", "modality"),
        ("corrupt_span", "span"),
        ("corrupt_sigma", "sigma"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            c[key] = v
    r: dict[str, Any] = {}
    if getattr(args, "reliability_loss", None):
        r["loss"] = args.reliability_loss
    if getattr(args, "reliability_weight", None) is not None:
        r["weight"] = args.reliability_weight
    if getattr(args, "reliability_target", None):
        r["target"] = args.reliability_target
    rec = TrainingRecipe.from_record(
        {"corrupt": {**base["corrupt"], **c}, "reliability": {**base["reliability"], **r}}
    )  # validates
    return rec.to_record() if rec.active else {}


VARIANT_KEYS = {
    "recipe": ("", ""),
    "corrupt": ("corrupt", "kinds"),
    "corrupt_prob": ("corrupt", "prob"),
    "corrupt_modality": ("corrupt", "modality"),
    "corrupt_span": ("corrupt", "span"),
    "corrupt_sigma": ("corrupt", "sigma"),
    "corrupt_whole": ("corrupt", "whole"),
    "reliability_loss": ("reliability", "loss"),
    "reliability_weight": ("reliability", "weight"),
    "reliability_nu": ("reliability", "nu"),
    "reliability_target": ("reliability", "target"),
}
"""``ablate.py --variants reference:corrupt=noise+drop:reliability_loss=gaussian``."""


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
            elif name in ("prob", "weight", "nu", "whole"):
                value = float(text)
            else:
                value = text
        except ValueError:
            raise UserInputError(f"{where}: {key}={text!r} is not valid") from None
        rec[section][name] = value
    return TrainingRecipe.from_record(rec).to_record()


# --- the benchmark ----------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One test-time corruption: ``modality`` altered by ``kind`` (noise: ``level`` feature
    std) on a contiguous span covering ``fraction`` of each test video."""

    modality: str
    kind: str
    level: float
    fraction: float

    @property
    def name(self) -> str:
        lv = f"{self.level:g}" if self.kind == "noise" else ""
        return f"{self.modality}:{self.kind}{lv}@{self.fraction:g}"


DEFAULT_NOISE = (0.5, 1.0, 2.0, 4.0)


def default_conditions(
    fractions: Sequence[float] = (1.0,),
    noise: Sequence[float] = DEFAULT_NOISE,
    kinds: Sequence[str] = ("attenuate", "drop", "freeze"),
    modalities: Sequence[str] = ("image", "event"),
) -> list[Condition]:
    out = []
    for f in fractions:
        for m in modalities:
            out += [Condition(m, "noise", float(s), f) for s in noise]
            out += [Condition(m, k, 1.0, f) for k in kinds]
    return out


def span_masks(test, fraction: float, seed: int) -> np.ndarray:
    """``[C, 256]`` bool over the test chunks: one contiguous span of ``fraction`` of each
    video's snippets, at a seeded random place (all snippets when ``fraction`` is 1)."""
    from iefvad.explore import chunk_offsets
    from iefvad.features import CLIP_LEN

    c = test.image.shape[0]
    flat = np.zeros(c * CLIP_LEN, dtype=bool)
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    for first, t in zip(chunk_offsets(test), test.lengths):
        t = int(t)
        n = max(1, min(t, int(round(fraction * t))))
        start = int(rng.integers(0, t - n + 1))
        base = int(first) * CLIP_LEN
        flat[base + start : base + start + n] = True
    return flat.reshape(c, CLIP_LEN)


class BenchDegrader:
    """``transform`` for :func:`iefvad.evaluate.predict`: one condition, seeded noise per
    chunk (so the batch size does not matter)."""

    def __init__(self, cond: Condition, mask: np.ndarray, std: float, seed: int) -> None:
        self.cond, self.mask, self.std, self.seed = cond, torch.from_numpy(mask), std, seed

    def __call__(self, image: Tensor, event: Tensor, chunks: Tensor):
        x = image if self.cond.modality == "image" else event
        m = self.mask[chunks].to(x.device)
        noise = None
        if self.cond.kind == "noise":
            noise = torch.stack(
                [
                    torch.randn(
                        x.shape[1:],
                        generator=torch.Generator().manual_seed(self.seed * 1_000_003 + int(c)),
                    )
                    for c in chunks
                ]
            ).to(x.device, x.dtype)
        y = apply_corruption(x, m, self.cond.kind, self.cond.level * self.std, noise=noise)
        return (y, event) if self.cond.modality == "image" else (image, y)


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if pos.size == 0 or neg.size == 0:
        return None
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    return float(roc_auc_score(y, np.r_[pos, neg]))


BENCH_COLUMNS = [
    "variant",
    "seed",
    "fusion",
    "condition",
    "modality",
    "kind",
    "level",
    "fraction",
    "auc",
    "ap",
    "auc_clean",
    "auc_lost",
    "w_deg_affected",
    "w_deg_clean",
    "detect_auroc",
]


def bench_checkpoint(
    path: Path,
    test,
    gt: np.ndarray,
    conditions: Sequence[Condition],
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Every condition on one checkpoint; rows with the :data:`BENCH_COLUMNS` metrics."""
    from iefvad.checkpoint import load_model
    from iefvad.evaluate import predict
    from iefvad.explore import feature_std, per_video
    from iefvad.metrics import auc_ap

    model, ckpt = load_model(path, device)
    clean = predict(model, test, device)
    base = auc_ap(gt, clean.frame_scores().astype(np.float64))
    stds = {m: feature_std(test, m) for m in ("image", "event")}
    rows = []
    for cond in conditions:
        mask = span_masks(test, cond.fraction, seed)
        pred = predict(
            model, test, device, transform=BenchDegrader(cond, mask, stds[cond.modality], seed)
        )
        m = auc_ap(gt, pred.frame_scores().astype(np.float64))
        aff = np.concatenate(per_video(mask, test))
        w_deg = np.concatenate(pred.w_image if cond.modality == "image" else pred.w_event)
        w_cln = np.concatenate(clean.w_image if cond.modality == "image" else clean.w_event)
        rows.append(
            {
                "fusion": ckpt.config.fusion,
                "condition": cond.name,
                "modality": cond.modality,
                "kind": cond.kind,
                "level": cond.level,
                "fraction": cond.fraction,
                "auc": m["auc"],
                "ap": m["ap"],
                "auc_clean": base["auc"],
                "auc_lost": None if m["auc"] is None else base["auc"] - m["auc"],
                "w_deg_affected": float(w_deg[aff].mean()),
                "w_deg_clean": float(w_cln[aff].mean()),
                "detect_auroc": _auroc(1.0 - w_deg[aff], 1.0 - w_cln),
            }
        )
    return rows


METRICS = ("auc", "auc_lost", "w_deg_affected", "detect_auroc", "auc_clean")


def summarise_bench(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (variant, condition): mean and sample std over seeds of :data:`METRICS`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["condition"]), []).append(r)
    out = []
    for rs in groups.values():
        s: dict[str, Any] = {
            k: rs[0][k] for k in ("variant", "condition", "modality", "kind", "level", "fraction")
        }
        s["seeds"] = len(rs)
        for k in METRICS:
            v = np.array([r[k] for r in rs if r[k] is not None], dtype=np.float64)
            s[f"{k}_mean"] = float(v.mean()) if v.size else None
            s[f"{k}_std"] = float(v.std(ddof=1)) if v.size > 1 else None
        out.append(s)
    return out


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> None:
    from iefvad.fileio import atomic_write

    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, list(cols), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _pm(s: dict[str, Any], key: str, scale: float = 1.0, digits: int = 1) -> str:
    m, sd = s.get(f"{key}_mean"), s.get(f"{key}_std")
    if m is None:
        return "n/a"
    return f"{scale * m:.{digits}f}" + (f" ± {scale * sd:.{digits}f}" if sd is not None else "")


def goal_table(summary: Sequence[dict[str, Any]], baseline: str | None) -> str:
    """Markdown: per variant and goal condition (noise 4 and drop, whole video or the widest
    fraction run), the AUC, AUC lost (and its ratio to the baseline's), weight, detection."""
    fr = max((s["fraction"] for s in summary), default=1.0)
    picks = [
        s
        for s in summary
        if s["fraction"] == fr
        and ((s["kind"] == "noise" and s["level"] == 4.0) or s["kind"] == "drop")
    ]
    clean = {s["variant"]: s for s in summary}
    lost_base = {s["condition"]: s["auc_lost_mean"] for s in picks if s["variant"] == baseline}
    lines = [
        "| variant | clean AUC | corruption | AUC | AUC lost | lost / baseline | "
        "weight on affected | detection AUROC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in picks:
        lb = lost_base.get(s["condition"])
        ratio = (
            f"{s['auc_lost_mean'] / lb:.2f}"
            if lb and s["auc_lost_mean"] is not None and lb > 1e-9
            else ""
        )
        lines.append(
            f"| {s['variant']} | {_pm(clean[s['variant']], 'auc_clean', 100)} | "
            f"{s['modality']} {s['kind']}{' 4 std' if s['kind'] == 'noise' else ''} | "
            f"{_pm(s, 'auc', 100)} | {_pm(s, 'auc_lost', 100)} | {ratio} | "
            f"{_pm(s, 'w_deg_affected', 1, 3)} | {_pm(s, 'detect_auroc', 1, 3)} |"
        )
    return "\n".join(lines)


def _legend_below(fig, axes) -> None:
    """One legend for the figure, under the panels (variant labels are long)."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = max(1, len(labels))
    fig.tight_layout(rect=(0, 0.02 + 0.022 * rows, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=7, frameon=False)


def plot_bench(summary: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """``noise.png`` (AUC, weight, detection vs noise level, per modality) and ``kinds.png``
    (the same for attenuate / drop / freeze, bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(s["variant"] for s in summary))
    fr = max((s["fraction"] for s in summary), default=1.0)
    mets = [
        ("auc", "frame AUC"),
        ("w_deg_affected", "weight of degraded modality"),
        ("detect_auroc", "detection AUROC (weight)"),
    ]
    paths = []
    fig, axes = plt.subplots(2, 3, figsize=(13, 9), squeeze=False)
    for i, mod in enumerate(("image", "event")):
        for j, (key, title) in enumerate(mets):
            ax = axes[i][j]
            for v in variants:
                ss = sorted(
                    (
                        s
                        for s in summary
                        if s["variant"] == v
                        and s["modality"] == mod
                        and s["kind"] == "noise"
                        and s["fraction"] == fr
                    ),
                    key=lambda s: s["level"],
                )
                if not ss:
                    continue
                x = [s["level"] for s in ss]
                y = [s[f"{key}_mean"] or np.nan for s in ss]
                e = [s[f"{key}_std"] or 0.0 for s in ss]
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=v)
            ax.set_title(f"{mod} noise: {title}", fontsize=9)
            ax.set_xlabel("noise std (feature std)")
            ax.grid(alpha=0.3)
    _legend_below(fig, axes)
    paths.append(out / "noise.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    kinds = [k for k in ("attenuate", "drop", "freeze") if any(s["kind"] == k for s in summary)]
    if kinds:
        fig, axes = plt.subplots(2, 3, figsize=(13, 9), squeeze=False)
        width = 0.8 / max(1, len(variants))
        for i, mod in enumerate(("image", "event")):
            for j, (key, title) in enumerate(mets):
                ax = axes[i][j]
                for n, v in enumerate(variants):
                    ys, es = [], []
                    for k in kinds:
                        s = next(
                            (
                                s
                                for s in summary
                                if s["variant"] == v
                                and s["modality"] == mod
                                and s["kind"] == k
                                and s["fraction"] == fr
                            ),
                            None,
                        )
                        ys.append(
                            np.nan if s is None or s[f"{key}_mean"] is None else s[f"{key}_mean"]
                        )
                        es.append(0.0 if s is None or s[f"{key}_std"] is None else s[f"{key}_std"])
                    ax.bar(
                        np.arange(len(kinds)) + n * width, ys, width, yerr=es, label=v, capsize=2
                    )
                ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds)
                ax.set_title(f"{mod}: {title}", fontsize=9)
                ax.grid(alpha=0.3, axis="y")
        _legend_below(fig, axes)
        paths.append(out / "kinds.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def run_benchmark(
    runs: Sequence[tuple[str, int, Path]],
    test_list: Path,
    gt_path: Path,
    out: Path,
    conditions: Sequence[Condition] | None = None,
    seed: int = 0,
    baseline: str | None = None,
    device: str = "cpu",
    meta: dict[str, Any] | None = None,
    event_dir: str = "event_thr_10",
) -> list[dict[str, Any]]:
    """Benchmark ``runs`` ((variant, seed, checkpoint)); write ``runs.csv``, ``summary.csv``,
    ``goals.md``, ``bench.json`` and the plots under ``out``; return the summary."""
    from iefvad.csvlist import read_list
    from iefvad.evaluate import load_test_set
    from iefvad.fileio import save_json
    from iefvad.groundtruth import load_gt

    conditions = list(conditions or default_conditions())
    test = load_test_set(read_list(test_list, None, event_dir), progress=False)
    gt = load_gt(gt_path).frames
    rows: list[dict[str, Any]] = []
    for variant, s, path in runs:
        for r in bench_checkpoint(Path(path), test, gt, conditions, seed, device):
            rows.append({"variant": variant, "seed": s, **r})
            print(
                f"[reliability] {variant} seed {s} {r['condition']}: AUC "
                f"{100 * (r['auc'] or 0):.1f} (clean {100 * r['auc_clean']:.1f}) weight "
                f"{r['w_deg_affected']:.3f} detect {r['detect_auroc'] or float('nan'):.3f}",
                flush=True,
            )
    summary = summarise_bench(rows)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "runs.csv", rows, BENCH_COLUMNS)
    scols = list(summary[0]) if summary else ["variant"]
    _write_csv(out / "summary.csv", summary, scols)
    baseline = baseline or (runs[0][0] if runs else None)
    table = goal_table(summary, baseline)
    (out / "goals.md").write_text(
        "# Reliability benchmark: goal conditions\n\n"
        + (f"Command: `{meta['command']}`\n\n" if meta and "command" in meta else "")
        + f"Baseline for `lost / baseline`: `{baseline}`. Mean ± sample std over seeds; AUC "
        "in percent; weight = the degraded modality's mean fusion weight on the altered "
        "snippets; detection AUROC = how well `1 - weight` separates altered snippets from "
        "the clean pass's snippets.\n\n" + table + "\n"
    )
    save_json(
        out / "bench.json",
        {
            **(meta or {}),
            "conditions": [c.name for c in conditions],
            "rows": rows,
            "summary": summary,
        },
    )
    plot_bench(summary, out)
    print(table)
    return summary


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Reliability benchmark: corrupt one modality at test time; AUC, the "
        "degraded modality's weight and how well it detects the corruption."
    )
    p.add_argument("--ckpt_path", type=Path, nargs="+", required=True)
    p.add_argument("--labels", nargs="+", help="variant label per checkpoint (default: stem)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seed per checkpoint (default 0)")
    p.add_argument("--test_list", type=Path, required=True)
    p.add_argument("--gt_path", type=Path, required=True)
    p.add_argument("--event_dir_name", default="event_thr_10")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0])
    p.add_argument("--noise_levels", type=float, nargs="+", default=list(DEFAULT_NOISE))
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    p.add_argument("--baseline", help="variant whose AUC loss the others are compared with")
    p.add_argument("--out_dir", type=Path, default=Path("results/reliability"))
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    import shlex
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = bench_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = args.labels or [p.stem for p in args.ckpt_path]
    seeds = args.seeds or [0] * len(args.ckpt_path)
    if len(labels) != len(args.ckpt_path) or len(seeds) != len(args.ckpt_path):
        raise UserInputError("--labels and --seeds need one value per --ckpt_path")
    conds = default_conditions(args.fractions, args.noise_levels)
    run_benchmark(
        list(zip(labels, seeds, args.ckpt_path)),
        args.test_list,
        args.gt_path,
        args.out_dir,
        conds,
        args.seed,
        args.baseline,
        meta={"command": "python -m iefvad.reliability " + " ".join(map(shlex.quote, argv))},
        event_dir=args.event_dir_name,
    )


if __name__ == "__main__":
    from iefvad.cli import exit_on_failure

    exit_on_failure(main)
