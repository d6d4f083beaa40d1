"""Cutting an event stream into snippets: by the paired video's frame times, by a fixed time
window, or by a fixed number of events.

Paired video: snippet ``i`` holds frames ``16i .. 16i+15``, so its events are those with
``t(16i) <= t < t(16i+16)``, where ``t(f)`` is the time of frame ``f`` (``f * 1e6 / fps``, or
the video's own timestamps) in the recording's clock: ``t_recording = t_video - offset``, with
``offset`` (``--event_time_offset``, µs) the video time at which the recording's clock reads 0
(positive: the recording starts later than the video).

A recording shorter or longer than the video (:func:`coverage`): snippets past the recording's
last event (or before its first) get empty maps, and the seconds missing are reported (a
warning in the extraction log and the manifest); events past the video's last snippet are
ignored and their seconds reported. A still scene at either end looks the same as a missing
one: the report is about where events are, the only clock a recording has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.events.types import Events

US = 1_000_000


def frame_times_us(
    num_frames: int, fps: float | None = None, timestamps_us: np.ndarray | None = None
) -> np.ndarray:
    """Times (int64 µs, video clock) of frames ``0 .. num_frames`` (one past the last: the end
    of the last frame). From ``fps`` (``round(f * 1e6 / fps)``) or from per-frame
    ``timestamps_us`` (at least ``num_frames`` of them; the end of the last frame is extrapolated
    by the median frame interval)."""
    if timestamps_us is not None:
        ts = np.asarray(timestamps_us, dtype=np.float64)[:num_frames]
        if len(ts) < num_frames:
            raise ValueError(f"{len(ts)} timestamps for {num_frames} frames")
        if num_frames and np.any(np.diff(ts) < 0):
            raise ValueError("frame timestamps go backwards")
        step = float(np.median(np.diff(ts))) if num_frames > 1 else (US / fps if fps else 0.0)
        end = ts[-1] + step if num_frames else 0.0
        return np.round(np.append(ts, end)).astype(np.int64)
    if not fps or not fps > 0:
        raise ValueError(f"frame times need fps > 0 or timestamps, found fps {fps}")
    return np.round(np.arange(num_frames + 1) * (US / fps)).astype(np.int64)


def snippet_edges_us(
    num_snippets: int,
    fps: float | None = None,
    timestamps_us: np.ndarray | None = None,
    offset_us: int = 0,
    first_snippet: int = 0,
) -> np.ndarray:
    """Edges (int64 µs, recording clock) of snippets ``first_snippet ..
    first_snippet + num_snippets``: ``num_snippets + 1`` values, snippet ``k`` spans
    ``[edges[k], edges[k+1])``."""
    last = (first_snippet + num_snippets) * SNIPPET_FRAMES
    times = frame_times_us(last, fps, timestamps_us)
    return times[first_snippet * SNIPPET_FRAMES :: SNIPPET_FRAMES] - int(offset_us)


@dataclass(frozen=True)
class Coverage:
    """How a recording's events ``[first, last]`` cover the snippets ``edges`` (µs)."""

    snippets: int
    empty_head: int
    """Snippets wholly before the first event (empty maps)."""
    empty_tail: int
    """Snippets wholly after the last event (empty maps)."""
    missing_head_s: float
    missing_tail_s: float
    """Seconds of video before the first / after the last event."""
    ignored_s: float
    """Seconds of events before the first or after the last snippet (not used)."""

    @property
    def missing(self) -> bool:
        return bool(self.empty_head or self.empty_tail)

    def text(self) -> str:
        parts = []
        if self.empty_tail:
            parts.append(
                f"the recording ends {self.missing_tail_s:.2f} s before the video: the last "
                f"{self.empty_tail} of {self.snippets} snippets have no events (empty maps)"
            )
        if self.empty_head:
            parts.append(
                f"the recording starts {self.missing_head_s:.2f} s after the video: the first "
                f"{self.empty_head} of {self.snippets} snippets have no events (empty maps); "
                "check --event_time_offset"
            )
        if self.ignored_s > 0:
            parts.append(f"{self.ignored_s:.2f} s of events outside the video are ignored")
        return "; ".join(parts) or "the recording covers the video"

    def as_dict(self) -> dict:
        return asdict(self)


def coverage(edges_us: np.ndarray, time_range: tuple[int, int] | None) -> Coverage:
    """Compare snippet ``edges_us`` with a recording's ``(first, last)`` event time (None: no
    events at all, so every snippet is empty)."""
    edges = np.asarray(edges_us, dtype=np.int64)
    n = max(len(edges) - 1, 0)
    if n == 0:
        return Coverage(0, 0, 0, 0.0, 0.0, 0.0)
    start, end = int(edges[0]), int(edges[-1])
    if time_range is None:
        return Coverage(n, 0, n, 0.0, (end - start) / US, 0.0)
    first, last = int(time_range[0]), int(time_range[1])
    empty_tail = int(np.sum(edges[:-1] > last))
    empty_head = int(np.sum(edges[1:] <= first)) if empty_tail < n else 0
    ignored = max(0, start - first) + max(0, last + 1 - end)
    return Coverage(
        snippets=n,
        empty_head=empty_head,
        empty_tail=empty_tail,
        missing_head_s=max(0, first - start) / US,
        missing_tail_s=max(0, end - (last + 1)) / US,
        ignored_s=ignored / US,
    )


def window_edges_us(time_range: tuple[int, int], window_us: int) -> np.ndarray:
    """Edges of fixed windows from the first event on, covering the last one (the last window
    may be partly empty): ``[first, first + w, ..., first + k*w]`` with ``first + k*w > last``."""
    if window_us < 1:
        raise ValueError(f"the event window must be >= 1 µs, found {window_us}")
    first, last = int(time_range[0]), int(time_range[1])
    k = (last - first) // window_us + 1
    return first + window_us * np.arange(k + 1, dtype=np.int64)


def count_windows(chunks: Iterable[Events], per_snippet: int) -> Iterator[Events]:
    """Re-cut a stream of event batches into snippets of exactly ``per_snippet`` events each;
    a last shorter remainder is yielded too (it is the stream's end)."""
    if per_snippet < 1:
        raise ValueError(f"events per snippet must be >= 1, found {per_snippet}")
    pending: list[Events] = []
    have = 0
    for chunk in chunks:
        pending.append(chunk)
        have += len(chunk)
        if have < per_snippet:
            continue
        joined = Events.concat(pending)
        full = (len(joined) // per_snippet) * per_snippet
        for a in range(0, full, per_snippet):
            yield _part(joined, a, a + per_snippet)
        rest = _part(joined, full, len(joined))
        pending, have = [rest], len(rest)
    if have:
        yield Events.concat(pending)


def _part(e: Events, a: int, b: int) -> Events:
    return Events(e.t[a:b], e.x[a:b], e.y[a:b], e.p[a:b])
