"""Stream health: spans where a stream's fusion weight says it is unreliable.

The fused model weights each stream per snippet (``w_image + w_event = 1``, the mean over
the latent's values). A model trained to make its weights follow reliability
(docs/fusion.md, "Weights that follow reliability") lowers a failing stream's weight; a
stream whose weight stays below :data:`UNRELIABLE_WEIGHT` for at least
:data:`MIN_SNIPPETS` consecutive snippets is reported as unreliable over that span
("image stream unreliable 12.4 s - 19.0 s"): offline in ``infer.py``'s JSON and console, live
in the stream mode as the span starts and ends. With the released objective the weights sit
near 0.5 and such spans are rare and mean little (docs/inference.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.engine.metrics import segments_from_mask
from iefvad.models.model import SHARE_FUSIONS

UNRELIABLE_WEIGHT = 0.3
"""A stream is unreliable on a snippet whose weight is below this (equal weights: 0.5)."""
MIN_SNIPPETS = 2
"""... for at least this many consecutive snippets (one snippet is 16 frames)."""
STREAMS = ("image", "event")


def health_streams(cfg) -> tuple[str, ...]:
    """The streams whose weights are judged for a model config: both, when the model fuses
    two streams with weights (not for one-stream models, nor for ``concat`` /
    ``cross_attention``, whose ``w_*`` are contribution shares)."""
    two = tuple(cfg.modalities) == STREAMS
    return STREAMS if two and cfg.fusion not in SHARE_FUSIONS else ()


def span_text(stream: str, start_s: float, end_s: float) -> str:
    return f"{stream} stream unreliable {start_s:.1f} s - {end_s:.1f} s"


def unreliable_spans(
    weights: dict[str, np.ndarray],
    frames: int,
    fps: float,
    threshold: float = UNRELIABLE_WEIGHT,
    min_snippets: int = MIN_SNIPPETS,
) -> list[dict[str, Any]]:
    """Per stream in ``weights`` (``{"image": [S], "event": [S]}``, per snippet), the runs of
    at least ``min_snippets`` snippets with weight ``< threshold``, in time order: frames
    ``[start, end)``, seconds, snippets, the mean and lowest weight and the text line."""
    spans = []
    for stream, w in weights.items():
        w = np.asarray(w, dtype=np.float64)
        for a, b in segments_from_mask(w < threshold):
            if b - a < min_snippets:
                continue
            start, end = SNIPPET_FRAMES * a, min(frames, SNIPPET_FRAMES * b)
            spans.append(
                {
                    "stream": stream,
                    "start_frame": start,
                    "end_frame": end,
                    "start_s": round(start / fps, 3),
                    "end_s": round(end / fps, 3),
                    "snippets": b - a,
                    "mean_weight": round(float(w[a:b].mean()), 4),
                    "min_weight": round(float(w[a:b].min()), 4),
                    "text": span_text(stream, start / fps, end / fps),
                }
            )
    return sorted(spans, key=lambda d: (d["start_frame"], d["stream"]))


@dataclass
class _Run:
    start_s: float
    end_s: float
    snippets: int = 1


class HealthTracker:
    """Live version of :func:`unreliable_spans`: feed each snippet's weights in order with
    :meth:`update`; it returns the lines to print: ``image stream unreliable from 12.4 s``
    once a run reaches ``min_snippets``, and ``image stream unreliable 12.4 s - 19.0 s`` when
    it ends (or at :meth:`close`)."""

    def __init__(
        self,
        streams: Sequence[str] = STREAMS,
        threshold: float = UNRELIABLE_WEIGHT,
        min_snippets: int = MIN_SNIPPETS,
    ) -> None:
        self.streams, self.threshold, self.min_snippets = tuple(streams), threshold, min_snippets
        self.runs: dict[str, _Run | None] = {s: None for s in self.streams}
        self.spans: list[str] = []
        """The text of every span reported so far (ended ones)."""

    def update(self, weights: dict[str, float], start_s: float, end_s: float) -> list[str]:
        lines = []
        for s in self.streams:
            run = self.runs[s]
            if weights[s] < self.threshold:
                if run is None:
                    run = self.runs[s] = _Run(start_s, end_s)
                else:
                    run.end_s, run.snippets = end_s, run.snippets + 1
                if run.snippets == self.min_snippets:
                    lines.append(f"{s} stream unreliable from {run.start_s:.1f} s")
            elif run is not None:
                lines += self._end(s)
        return lines

    def _end(self, s: str) -> list[str]:
        run, self.runs[s] = self.runs[s], None
        if run is None or run.snippets < self.min_snippets:
            return []
        self.spans.append(span_text(s, run.start_s, run.end_s))
        return [self.spans[-1]]

    def close(self) -> list[str]:
        """End the open runs (the stream ended)."""
        return [line for s in self.streams for line in self._end(s)]
