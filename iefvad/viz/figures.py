"""Plots (PNG, CPU only): anomaly score and modality weights over time, spans shaded."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iefvad.datasets.specs import SNIPPET_FRAMES  # noqa: E402
from iefvad.paths import safe_name as plain_name

SCORE_COLOR = "#c0392b"
IMAGE_COLOR = "#2874a6"
EVENT_COLOR = "#d68910"
SPAN_COLOR = "#f5b7b1"


@dataclass
class VideoTrace:
    """What one panel shows: per-snippet score and mean weights ``[T]``, frame spans."""

    name: str
    scores: np.ndarray
    w_image: np.ndarray
    w_event: np.ndarray
    segments: Sequence[tuple[int, int]]
    fps: float | None = None


def steps(values: np.ndarray, frames: int, fps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Step curve of per-snippet ``values`` over ``frames`` frames: (x in seconds, or in frames
    when ``fps`` is unknown, y)."""
    y = np.repeat(np.asarray(values, np.float64), SNIPPET_FRAMES)[:frames]
    return np.arange(y.size) / (fps or 1.0), y


def draw_scores_and_weights(
    ax_score,
    ax_weight,
    *,
    frames: int,
    fps: float | None,
    scores: Sequence[tuple[str, np.ndarray, str, float]],
    w_image: np.ndarray,
    w_event: np.ndarray,
    spans: Sequence[tuple[int, int]] = (),
    span_color: str = SPAN_COLOR,
    span_alpha: float = 0.6,
    weight_style: str = "-",
) -> None:
    """The panel pair of every per-video figure: score curves ``(label, [T], color, width)`` on
    ``ax_score`` above the image/event weights ``[T]`` on ``ax_weight``, both 0..1 against
    seconds (frames when ``fps`` is unknown), frame ``spans`` ``[start, end)`` shaded on both.
    Titles, x labels and legends are the caller's."""
    end = max(frames, 1) / (fps or 1.0)
    for ax in (ax_score, ax_weight):
        for s, e in spans:
            ax.axvspan(s / (fps or 1.0), e / (fps or 1.0), color=span_color, alpha=span_alpha, lw=0)
        ax.set_xlim(0, end)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    for label, values, color, width in scores:
        ax_score.plot(*steps(values, frames, fps), color=color, lw=width, label=label)
    ax_score.set_ylabel("score")
    for w, color, label in (
        (w_image, IMAGE_COLOR, "image weight"),
        (w_event, EVENT_COLOR, "event weight"),
    ):
        ax_weight.plot(*steps(w, frames, fps), weight_style, color=color, lw=1.3, label=label)
    ax_weight.set_ylabel("weight")


def draw_trace(ax_score, ax_weight, v: VideoTrace) -> None:
    """Score on ``ax_score`` (0..1) and image/event weights on ``ax_weight`` (0..1), both
    against frame index (or seconds when ``fps`` is known), annotated spans shaded."""
    draw_scores_and_weights(
        ax_score,
        ax_weight,
        frames=v.scores.size * SNIPPET_FRAMES,
        fps=v.fps,
        scores=[("anomaly score", v.scores, SCORE_COLOR, 1.4)],
        w_image=v.w_image,
        w_event=v.w_event,
        spans=v.segments,
    )
    ax_score.set_title(v.name, fontsize=9, loc="left")
    ax_weight.set_xlabel("time (s)" if v.fps else "frame")


def score_weight_pairs(
    n: int, height: float, extra: float, weight_ratio: float, **figure: Any
) -> tuple[plt.Figure, list[tuple[plt.Axes, plt.Axes]]]:
    """A figure of ``n`` (score panel, weight panel) pairs stacked in one column, each pair
    ``height`` inches tall (plus ``extra`` for titles); the weight panel is ``weight_ratio``
    to the score panel's 3."""
    fig, axes = plt.subplots(
        2 * n,
        1,
        figsize=(10, height * n + extra),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, weight_ratio] * n},
        **figure,
    )
    return fig, [(axes[2 * i, 0], axes[2 * i + 1, 0]) for i in range(n)]


def plot_videos(
    traces: Sequence[VideoTrace], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """One figure, a score panel above a weight panel per video; returns the PNG path."""
    fig, pairs = score_weight_pairs(len(traces), 2.6, 0.6, 2.0)
    for (ax, axw), v in zip(pairs, traces):
        draw_trace(ax, axw, v)
    handles = [
        plt.Line2D([], [], color=SCORE_COLOR, label="anomaly score"),
        plt.Line2D([], [], color=IMAGE_COLOR, label="mean image weight"),
        plt.Line2D([], [], color=EVENT_COLOR, label="mean event weight"),
        plt.Rectangle((0, 0), 1, 1, color=SPAN_COLOR, alpha=0.6, label="annotated anomaly"),
    ]
    fig.legend(handles=handles, loc="upper right", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (parent folders created), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def safe_name(name: str) -> str:
    """A plot's file name (less ``.png``) made of a class label: letters, digits, ``._-``,
    never ``.``/``..``, at most 251 bytes (:func:`iefvad.paths.safe_name`)."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "plot"
    return plain_name(plain, reserve=len(".png"))


def plot_by_class(
    traces_by_class: dict[str, Sequence[VideoTrace]],
    out_dir: str | os.PathLike[str],
    max_videos: int = 4,
) -> list[Path]:
    """One PNG per class with up to ``max_videos`` of its videos; returns the paths."""
    out = []
    for cls, traces in sorted(traces_by_class.items()):
        shown = list(traces)[:max_videos]
        if shown:
            out.append(
                plot_videos(
                    shown,
                    Path(out_dir) / f"{safe_name(cls)}.png",
                    f"class: {cls} ({len(shown)} of {len(traces)} videos)",
                )
            )
    return out
