"""One self-contained HTML page of scored videos: per video a ``<video>`` above an SVG timeline
of the anomaly score and the two modality weights (threshold, detected segments, ground truth,
a cursor that follows playback, click to seek), the segments as a clickable list, and a table of
all videos sortable by any column.

The page needs no server, network or library: the numbers are embedded once as JSON and drawn
by a small script (``report.js``, ``report.css`` beside this module), card by card as they come
into view, so a thousand videos open at once. Every name reaches the page as JSON data set as
text by the script (never as HTML), and the JSON is escaped for a ``<script>`` element.

The numbers are those of the CSV files written beside the page: the callers pass the arrays the
CSV was written from, and both go through :func:`number` (six decimals).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iefvad.fileio import atomic_write

ASSETS = Path(__file__).resolve().parent
SNIPPET_FRAMES = 16
"""Frames per snippet: every frame of a snippet has the snippet's score."""
EAGER_VIDEOS = 12
"""Pages with at most this many videos let the browser read each video's header at once
(``preload="metadata"``); larger ones load a video only when it is played or seeked."""


def number(x: float) -> str:
    """A score or weight as the CSV files write it (six decimals)."""
    return f"{x:.6f}"


def as_numbers(values: Sequence[float]) -> list[float]:
    """The values as the CSV holds them (:func:`number`, read back)."""
    return [float(number(float(x))) for x in values]


@dataclass(frozen=True)
class Column:
    """A column of the table of videos: a key of :attr:`Timeline.stats`, its heading, and the
    decimals shown."""

    key: str
    label: str
    digits: int = 3


@dataclass
class Timeline:
    """One video of a report: per-snippet score and mean fusion weights, its frame count and
    rate (``fps`` None: features only, times shown as frames), spans in frames ``[start, end)``
    and where its video is."""

    name: str
    scores: Sequence[float]
    w_image: Sequence[float]
    w_event: Sequence[float]
    frames: int
    fps: float | None = None
    segments: Sequence[Mapping[str, Any]] = ()
    """Detected: ``start_frame``, ``end_frame``, ``peak_score`` (more keys are ignored)."""
    truth: Sequence[tuple[int, int]] = ()
    """Ground-truth frame spans (test sets)."""
    video: str | None = None
    """URL of the playable video, relative to the page (see :mod:`.playable`)."""
    note: str = ""
    """Where the video comes from, or why there is none."""
    stats: Mapping[str, float | str | None] = field(default_factory=dict)
    """Values of the table's columns (None: n/a)."""
    files: Sequence[tuple[str, str]] = ()
    """``(label, URL relative to the page)`` of the video's other outputs."""
    segments_note: str = ""
    """Appended to the segment list's heading (``, the 5 highest peaks of 7``)."""

    def as_json(self) -> dict[str, Any]:
        if len(self.scores) != len(self.w_image) or len(self.scores) != len(self.w_event):
            raise ValueError(f"{self.name}: scores and weights differ in length")
        return {
            "name": self.name,
            "frames": int(self.frames),
            "fps": None if self.fps is None else float(self.fps),
            "scores": as_numbers(self.scores),
            "w_image": as_numbers(self.w_image),
            "w_event": as_numbers(self.w_event),
            "segments": [
                {
                    "start_frame": int(s["start_frame"]),
                    "end_frame": int(s["end_frame"]),
                    "peak_score": float(s["peak_score"]),
                }
                for s in self.segments
            ],
            "segments_note": self.segments_note,
            "truth": [[int(a), int(b)] for a, b in self.truth],
            "video": self.video,
            "note": self.note,
            "stats": {k: _finite(v) for k, v in self.stats.items()},
            "files": [{"label": a, "href": b} for a, b in self.files],
        }


@dataclass
class Report:
    """A page: title, lines of context under it, the segment threshold drawn, the table's
    columns and its first sort, and the videos."""

    title: str
    timelines: Sequence[Timeline]
    threshold: float = 0.5
    notes: Sequence[str] = ()
    columns: Sequence[Column] = ()
    sort: str = "name"
    descending: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "notes": list(self.notes),
            "threshold": float(self.threshold),
            "snippet_frames": SNIPPET_FRAMES,
            "preload": "metadata" if len(self.timelines) <= EAGER_VIDEOS else "none",
            "columns": [{"key": c.key, "label": c.label, "digits": c.digits} for c in self.columns],
            "sort": {"key": self.sort, "desc": self.descending},
            "videos": [t.as_json() for t in self.timelines],
        }


def _finite(v: float | str | None) -> float | str | None:
    if isinstance(v, float) and v != v:  # NaN: no such number
        return None
    return v


def script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes (no
    ``</script>`` or ``<!--`` can close or comment it), everything else ASCII (U+2028/9
    escaped), no NaN."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(report: Report) -> str:
    """The page's HTML."""
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    js = (ASSETS / "report.js").read_text(encoding="utf-8")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(report.title)}</title>\n<style>\n{css}</style></head>\n<body>\n"
        '<header><h1 id="title"></h1><ul id="notes" class="notes"></ul></header>\n'
        "<noscript>This page draws its timelines with JavaScript; the numbers are in the CSV "
        "files beside it.</noscript>\n"
        '<main><div id="videos-box"><table id="videos"></table></div>\n'
        '<div id="cards"></div></main>\n'
        f'<script type="application/json" id="report-data">{script_json(report.as_json())}'
        f"</script>\n<script>\n{js}</script>\n</body></html>\n"
    )


def write_report(path: str | os.PathLike[str], report: Report) -> Path:
    """Write the page atomically; returns its path."""
    with atomic_write(path, "w") as f:
        f.write(render(report))
    return Path(path)
