"""Plots of the fusion study (PNG, CPU only): the ablation bars and the degradation curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iefvad.viz.figures import save_figure  # noqa: E402

AUC_COLOR = "#2874a6"
AP_COLOR = "#d68910"


def plot_ablation(
    summary: Sequence[dict[str, Any]],
    records: Sequence[Any],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Grouped bars per variant: mean AUC and AP (%), error bars = sample std over seeds,
    one dot per seed."""
    n = len(summary)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * n + 2), 4.2))
    x = np.arange(n)
    width = 0.38
    for off, key, color, name in ((-0.5, "auc", AUC_COLOR, "AUC"), (0.5, "ap", AP_COLOR, "AP")):
        means = [100 * (r[f"{key}_mean"] or 0.0) for r in summary]
        stds = [100 * (r[f"{key}_std"] or 0.0) for r in summary]
        ax.bar(x + off * width, means, width, yerr=stds, capsize=3, color=color, label=name)
        for i, r in enumerate(summary):
            vals = [getattr(rec, key) for rec in records if rec.variant == r["variant"]]
            vals = [100 * v for v in vals if v is not None]
            if len(vals) > 1:
                ax.plot(np.full(len(vals), i + off * width), vals, "o", ms=3, color="k", alpha=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels([r["variant"] for r in summary], rotation=30, ha="right", fontsize=9)
    low = min([100 * (r[f"{k}_min"] or 0.0) for r in summary for k in ("auc", "ap")] + [100.0])
    ax.set_ylim(max(0.0, low - 5.0), 100.5)
    ax.set_ylabel("frame-level score (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    seeds = max(r["seeds"] for r in summary)
    ax.set_title(
        (f"{title}: " if title else "") + f"mean over {seeds} seed(s), bars = std", fontsize=10
    )
    fig.tight_layout()
    return save_figure(fig, path)


def _grid(rows: Sequence[dict[str, Any]]):
    """(perturbations, modalities, fig, axes): one panel per (perturbation, degraded
    modality), in the order the rows name them."""
    perts = list(dict.fromkeys(r["perturbation"] for r in rows))
    mods = list(dict.fromkeys(r["modality"] for r in rows))
    fig, axes = plt.subplots(
        len(perts), len(mods), figsize=(4.6 * len(mods), 3.2 * len(perts)), squeeze=False
    )
    return perts, mods, fig, axes


def _model_series(rows: Sequence[dict[str, Any]], models: Sequence[str]):
    """``(fig, axes, series)``: the panel grid of :func:`_grid` and, for every panel and
    checkpoint, ``(ax, perturbation, modality, colour, checkpoint, its rows by level)``."""
    perts, mods, fig, axes = _grid(rows)
    cmap = plt.get_cmap("tab10")
    series = [
        (axes[i, j], pert, mod, cmap(k % 10), model, _series(rows, pert, mod, model))
        for i, pert in enumerate(perts)
        for j, mod in enumerate(mods)
        for k, model in enumerate(models)
    ]
    return fig, axes, series


def _label_panel(ax, pert: str, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(LEVEL_LABELS.get(pert, "level"))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _series(
    rows: Sequence[dict[str, Any]], pert: str, mod: str, model: str
) -> list[dict[str, Any]]:
    """The rows of one checkpoint under one degradation, by level."""
    sel = [r for r in rows if (r["perturbation"], r["modality"], r["model"]) == (pert, mod, model)]
    return sorted(sel, key=lambda r: r["level"])


def plot_degradation(
    rows: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    value: str = "auc",
    ylabel: str = "frame AUC",
) -> Path:
    """One panel per (perturbation, degraded modality): ``value`` against the degradation
    level, one line per checkpoint."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes, series = _model_series(rows, models)
    for ax, pert, mod, color, model, sel in series:
        ys = [r[value] if r[value] is not None else np.nan for r in sel]
        ax.plot([r["level"] for r in sel], ys, "o-", ms=3, color=color, label=model)
        _label_panel(ax, pert, f"{pert} {mod}", ylabel)
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


LEVEL_LABELS = {
    "attenuate": "fraction of snippets x attenuation",
    "noise": "noise std (x the modality's feature std)",
    "drop": "fraction of the video dropped (one span)",
}


def plot_weight_shift(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Mean weight of the *degraded* modality against the level: on normal frames (solid),
    abnormal frames (dashed) and the degraded snippets themselves (dotted)."""
    models = [
        m
        for m in dict.fromkeys(r["model"] for r in rows)
        if any(r["model"] == m and r[f"w_{r['modality']}_normal"] is not None for r in rows)
    ]
    fig, axes, series = _model_series(rows, models)
    for ax, pert, mod, color, model, sel in series:
        lv = [r["level"] for r in sel]
        for key, style in (("normal", "-"), ("abnormal", "--"), ("affected", ":")):
            ys = [r[f"w_{mod}_{key}"] for r in sel]
            ys = [np.nan if y is None else y for y in ys]
            label = f"{model} ({key})" if ax is axes[0, -1] else None
            ax.plot(lv, ys, style, marker="o", ms=2.5, color=color, label=label)
        _label_panel(ax, pert, f"{pert} {mod}: weight of {mod}", f"mean {mod} weight")
        ax.set_ylim(-0.02, 1.02)
    if models:
        axes[0, -1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
