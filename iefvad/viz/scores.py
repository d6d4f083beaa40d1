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

from iefvad.viz.figures import (  # noqa: E402
    EVENT_COLOR,
    IMAGE_COLOR,
    SCORE_COLOR,
    SPAN_COLOR,
    draw_scores_and_weights,
    save_figure,
    score_weight_pairs,
)

MODEL_COLORS = {"image-only": IMAGE_COLOR, "event-only": EVENT_COLOR, "fused": SCORE_COLOR}
DETECTED_COLOR = "#fadbd8"


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
    fig, pairs = score_weight_pairs(n, 2.9, 0.8, 1.6, layout="constrained")
    for i, ((ax, axw), v) in enumerate(zip(pairs, videos)):
        draw_scores_and_weights(
            ax,
            axw,
            frames=v.frames,
            fps=v.fps,
            scores=[
                (name, s, MODEL_COLORS.get(name, "k"), 2.0 if name == "fused" else 1.3)
                for name, s in v.scores.items()
            ],
            w_image=v.w_image,
            w_event=v.w_event,
            spans=v.spans,
            weight_style="--",
        )
        ax.set_title(f"{v.name}  ({v.kind})", fontsize=10, loc="left")
        ax.tick_params(labelbottom=False)
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
    draw_scores_and_weights(
        ax,
        axw,
        frames=frames,
        fps=fps,
        scores=[("anomaly score", scores, SCORE_COLOR, 1.6)],
        w_image=w_image,
        w_event=w_event,
        spans=segments,
        span_color=DETECTED_COLOR,
        span_alpha=1.0,
    )
    ax.axhline(threshold, color="k", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    if segments:
        ax.add_patch(plt.Rectangle((0, 0), 0, 0, color=DETECTED_COLOR, label="segments reported"))
    ax.set_title(name, fontsize=10, loc="left")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    axw.set_xlabel("time (s)")
    axw.legend(loc="upper right", fontsize=8, frameon=False, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


__all__ = ["ComparedVideo", "plot_comparison", "plot_video_scores"]
