"""Plots of scored videos (PNG, CPU only): the demo's model comparison and ``infer.py``'s
per-video score and modality weights."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iefvad.datasets.specs import SNIPPET_FRAMES  # noqa: E402
from iefvad.viz.figures import (  # noqa: E402
    EVENT_COLOR,
    IMAGE_COLOR,
    SCORE_COLOR,
    SPAN_COLOR,
    save_figure,
)

MODEL_COLORS = {"image-only": IMAGE_COLOR, "event-only": EVENT_COLOR, "fused": SCORE_COLOR}
DETECTED_COLOR = "#fadbd8"


def _steps(values: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Step curve of per-snippet ``values`` over ``frames`` frames: (x in seconds, y)."""
    y = np.repeat(np.asarray(values, np.float64), SNIPPET_FRAMES)[:frames]
    x = np.arange(y.size) / fps
    return x, y


@dataclass
class ComparedVideo:
    """One video of the demo figure: per-snippet scores ``[T]`` of each model, the fused
    model's mean weights, the annotated frame spans."""

    name: str
    kind: str
    frames: int
    fps: float
    scores: dict[str, np.ndarray]
    w_image: np.ndarray
    w_event: np.ndarray
    spans: Sequence[tuple[int, int]] = field(default_factory=list)


def plot_comparison(
    videos: Sequence[ComparedVideo], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Per video a score panel (one curve per model) above the fused model's weight panel,
    annotated anomalies shaded; returns the PNG path."""
    n = len(videos)
    fig, axes = plt.subplots(
        2 * n,
        1,
        figsize=(10, 2.9 * n + 0.8),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.6] * n},
        layout="constrained",
    )
    for i, v in enumerate(videos):
        ax, axw = axes[2 * i, 0], axes[2 * i + 1, 0]
        end = v.frames / v.fps
        for a in (ax, axw):
            for s, e in v.spans:
                a.axvspan(s / v.fps, e / v.fps, color=SPAN_COLOR, alpha=0.6, lw=0)
            a.set_xlim(0, end)
            a.set_ylim(-0.03, 1.03)
            a.grid(alpha=0.3)
        for name, s in v.scores.items():
            x, y = _steps(s, v.frames, v.fps)
            ax.plot(x, y, color=MODEL_COLORS.get(name, "k"), lw=2.0 if name == "fused" else 1.3)
        ax.set_ylabel("score")
        ax.set_title(f"{v.name}  ({v.kind})", fontsize=10, loc="left")
        ax.tick_params(labelbottom=False)
        for w, c in ((v.w_image, IMAGE_COLOR), (v.w_event, EVENT_COLOR)):
            x, y = _steps(w, v.frames, v.fps)
            axw.plot(x, y, color=c, lw=1.3, ls="--")
        axw.set_ylabel("weight")
        if i == n - 1:
            axw.set_xlabel("time (s)")
    handles = [
        plt.Line2D([], [], color=c, lw=2, label=f"{m} score") for m, c in MODEL_COLORS.items()
    ]
    handles += [
        plt.Line2D([], [], color=IMAGE_COLOR, ls="--", label="fused: image weight"),
        plt.Line2D([], [], color=EVENT_COLOR, ls="--", label="fused: event weight"),
        plt.Rectangle((0, 0), 1, 1, color=SPAN_COLOR, alpha=0.6, label="annotated anomaly"),
    ]
    if title:
        fig.suptitle(title, fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8.5, frameon=False)
    return save_figure(fig, path, dpi=100)


def plot_video_scores(
    name: str,
    scores: np.ndarray,
    w_image: np.ndarray,
    w_event: np.ndarray,
    frames: int,
    fps: float,
    segments: Sequence[tuple[int, int]],
    threshold: float,
    path: str | os.PathLike[str],
) -> Path:
    """``infer.py``'s figure: per-snippet ``scores`` and mean modality weights ``[T]`` over
    the video's ``frames`` frames (seconds on the x axis), detected ``segments`` (frames,
    ``[start, end)``) shaded, the ``threshold`` dashed; returns the PNG path."""
    fig, (ax, axw) = plt.subplots(
        2, 1, figsize=(10, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.6]}
    )
    end = max(frames, 1) / fps
    for a in (ax, axw):
        for s, e in segments:
            a.axvspan(s / fps, e / fps, color=DETECTED_COLOR, lw=0)
        a.set_xlim(0, end)
        a.set_ylim(-0.03, 1.03)
        a.grid(alpha=0.3)
    x, y = _steps(scores, frames, fps)
    ax.plot(x, y, color=SCORE_COLOR, lw=1.6, label="anomaly score")
    ax.axhline(threshold, color="k", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    if segments:
        ax.add_patch(plt.Rectangle((0, 0), 0, 0, color=DETECTED_COLOR, label="segments reported"))
    ax.set_ylabel("score")
    ax.set_title(name, fontsize=10, loc="left")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    for w, c, label in (
        (w_image, IMAGE_COLOR, "image weight"),
        (w_event, EVENT_COLOR, "event weight"),
    ):
        x, y = _steps(w, frames, fps)
        axw.plot(x, y, color=c, lw=1.3, label=label)
    axw.set_ylabel("weight")
    axw.set_xlabel("time (s)")
    axw.legend(loc="upper right", fontsize=8, frameon=False, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


__all__ = ["ComparedVideo", "plot_comparison", "plot_video_scores"]
