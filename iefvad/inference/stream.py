"""Live streams (``infer.py --stream SOURCE``): a camera, a file or a URL scored snippet by
snippet with a rolling causal context; latency, alerts after a warm-up, a CSV log per run."""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.extraction.recipe import iter_snippet_features
from iefvad.inference.health import HealthTracker, health_streams
from iefvad.inference.scorer import Context, Scorer, SnippetScore, _Counter, _features
from iefvad.inference.session import (
    InferSetup,
    check_finite_scores,
    frame_rate,
)
from iefvad.inference.source import (
    DEFAULT_STREAM_TIMEOUT,
    StreamError,
    StreamStalled,
    ThreadedCapture,
    check_source,
)

log = logging.getLogger(__name__)

MIN_CONTEXT = 8
"""Snippets of context a stream needs before it may alert (``--min_context``)."""
STREAM_WINDOW = 64
"""Snippets of context of a stream unless told otherwise (``--window``)."""
STREAM_CONTEXT = Context("causal", STREAM_WINDOW)


@dataclass(frozen=True)
class StreamConfig:
    """``infer.py --stream SOURCE``: the source, its context and alerts, the log folder."""

    source: str | int
    out_dir: str | os.PathLike[str] = "infer_out"
    context: str | None = None
    """Temporal context mode (default ``causal``)."""
    window: int | None = None
    """Snippets of context (default :data:`STREAM_WINDOW`)."""
    group_snippets: int | None = None
    """Snippets per event normalisation group (default 1: least latency)."""
    alert: float | None = None
    min_context: int = MIN_CONTEXT
    max_snippets: int | None = None
    realtime: bool = False
    fps: float | None = None
    quiet: bool = False
    timeout: float = DEFAULT_STREAM_TIMEOUT
    """Seconds the source may send nothing (to open, or between frames) before the run stops
    (``--stream_timeout``)."""


@dataclass
class StreamScore(SnippetScore):
    """A streamed snippet's score with its frames and how long it took."""

    start_frame: int = 0
    end_frame: int = 0
    """Frames ``[start_frame, end_frame)`` of the stream (decoded frames only)."""
    start_s: float = 0.0
    end_s: float = 0.0
    latency_ms: float = 0.0
    """From reading the snippet's last frame to its score (group waiting included)."""
    context: int = 0
    """Snippets the model saw for this score (this one included)."""
    warmup: bool = False
    """Fewer than ``min_context`` snippets of context: the score is shaky, no alert."""
    alert: bool = False
    """Score >= the alert threshold, with at least ``min_context`` snippets of context."""

    def line(self) -> str:
        return (
            f"snippet {self.index:5d}  frames {self.start_frame}-{self.end_frame - 1}  "
            f"{self.start_s:7.2f}-{self.end_s:7.2f} s  score {self.score:.3f}  "
            f"w_image {self.w_image:.2f}  w_event {self.w_event:.2f}  "
            f"latency {self.latency_ms:6.1f} ms{'  ALERT' if self.alert else ''}"
            f"{'  (warming up)' if self.warmup else ''}"
        )


def open_stream(
    source: str | int, timeout: float = DEFAULT_STREAM_TIMEOUT
) -> tuple[ThreadedCapture, float]:
    """Open a camera index, a file, a FIFO or a URL with OpenCV, in a reader thread that
    waits at most ``timeout`` seconds for each frame (:class:`ThreadedCapture`); returns
    (capture, the frame rate it reports: may be 0, NaN or absurd, see :func:`frame_rate`)."""
    check_source(source)
    cap = ThreadedCapture(source, timeout)
    return cap, cap.fps


def _paced(frames: Iterable[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """Yield frames no faster than ``fps`` (replaying a file as if it were live)."""
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        wait = t0 + i / fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield f


def _then(batches: Iterable[list[SnippetScore]], last) -> Iterator[list[SnippetScore]]:
    yield from batches
    yield last()


def stream_scores(
    s: InferSetup,
    source: str | int,
    context: Context = STREAM_CONTEXT,
    group_snippets: int = 1,
    alert: float | None = None,
    max_snippets: int | None = None,
    realtime: bool = False,
    min_context: int = MIN_CONTEXT,
    fps: float | None = None,
    on_warning: Callable[[str], None] = log.warning,
    timeout: float = DEFAULT_STREAM_TIMEOUT,
) -> Iterator[StreamScore]:
    """Score a live source snippet by snippet (see :func:`open_stream`); ends when the source
    does, after ``max_snippets``, or when the caller stops iterating. No alert is raised
    before ``min_context`` snippets of context exist (the first seconds of a stream give the
    model far less context than it was trained with). ``fps`` overrides the source's frame
    rate; an implausible one is replaced by :data:`DEFAULT_FPS` and reported to
    ``on_warning``. The source is opened at once (a bad one raises here, not when iterating).
    A source that sends nothing for ``timeout`` seconds raises :class:`StreamError` (on
    opening) or :class:`StreamStalled` (after frames: the snippets before it were yielded).
    """
    cap, reported = open_stream(source, timeout)
    rate, warning = frame_rate(reported, fps)
    if warning:
        on_warning(f"{source} {warning}")
    return _stream_loop(
        s, source, cap, rate, context, group_snippets, alert, max_snippets, realtime, min_context
    )


def _stream_loop(
    s: InferSetup,
    source: str | int,
    cap: ThreadedCapture,
    rate: float,
    context: Context,
    group_snippets: int,
    alert: float | None,
    max_snippets: int | None,
    realtime: bool,
    min_context: int,
) -> Iterator[StreamScore]:
    frames: Iterable[np.ndarray] = cap.frames()
    if realtime:
        frames = _paced(frames, rate)
    counter = _Counter(frames, keep_times=True)
    scorer = Scorer(s.model, s.device, context)
    done = 0
    try:
        batches = (
            scorer.push(*_features(feats, s.crop))
            for feats in iter_snippet_features(
                s.encoders, counter, s.opts, group_snippets=group_snippets, pad=True
            )
        )
        for batch in _then(batches, scorer.flush):
            check_finite_scores(s, (sc.score for sc in batch), f"stream {source}")
            for sc in batch:
                now = time.perf_counter()
                seen = (
                    min(sc.index + 1, context.window)
                    if context.mode == "causal"
                    else min(scorer.seen, context.window)
                )
                start = SNIPPET_FRAMES * sc.index
                end = min(counter.n, start + SNIPPET_FRAMES)
                yield StreamScore(
                    sc.index,
                    sc.score,
                    sc.w_image,
                    sc.w_event,
                    start_frame=start,
                    end_frame=end,
                    start_s=start / rate,
                    end_s=end / rate,
                    latency_ms=1000.0 * (now - counter.times.pop(sc.index, now)),
                    context=seen,
                    warmup=seen < min_context,
                    alert=alert is not None and sc.score >= alert and seen >= min_context,
                )
                done += 1
                if max_snippets is not None and done >= max_snippets:
                    return
    finally:
        cap.close()


def new_log(out: Path, stem: str = "stream") -> tuple[Path, Any]:
    """Create ``<stem>.csv`` in ``out``, or ``<stem>-2.csv``, ``-3`` ... when it exists: a run
    never overwrites an earlier run's log. Returns (path, the file open for writing)."""
    out.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = out / (f"{stem}.csv" if k == 1 else f"{stem}-{k}.csv")
        try:
            return path, open(path, "x", newline="")
        except FileExistsError:
            k += 1


def score_stream(cfg: StreamConfig, s: InferSetup) -> int:
    """Score ``cfg.source`` live: a line per snippet (``quiet``: alerts only), a CSV log that
    never overwrites an earlier run's, a latency summary at the end (or on Ctrl-C). A source
    that goes silent for ``cfg.timeout`` seconds ends the run with :class:`StreamError`, after
    the summary; the snippets scored before stay in the log."""
    context = Context(cfg.context or "causal", STREAM_WINDOW if cfg.window is None else cfg.window)
    group = cfg.group_snippets or 1
    print(f"[stream] opening {cfg.source} (waiting up to {cfg.timeout:g} s)", flush=True)
    scores = stream_scores(
        s,
        cfg.source,
        context,
        group,
        cfg.alert,
        cfg.max_snippets,
        cfg.realtime,
        cfg.min_context,
        cfg.fps,
        lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True),
        cfg.timeout,
    )
    csv_path, f = new_log(Path(cfg.out_dir))
    stalled: StreamStalled | None = None
    n, alerts, lat = 0, 0, []
    health = HealthTracker(health_streams(s.model.cfg))
    norm = "per snippet" if s.opts.event_norm == "snippet" else f"over {group} snippet(s)"
    kept = f" (earlier logs in {cfg.out_dir} are kept)" if csv_path.name != "stream.csv" else ""
    print(
        f"[stream] {cfg.source}: {context.mode} context of {context.window} snippets, event "
        f"maps normalised {norm}; log {csv_path}{kept}",
        flush=True,
    )
    with f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            ["snippet", "start_frame", "end_frame", "start_s", "end_s", "score", "w_image",
             "w_event", "latency_ms", "context", "alert"]
        )  # fmt: skip
        try:
            for sc in scores:
                n += 1
                lat.append(sc.latency_ms)
                alerts += sc.alert
                w.writerow(
                    [sc.index, sc.start_frame, sc.end_frame, f"{sc.start_s:.3f}", f"{sc.end_s:.3f}",
                     f"{sc.score:.6f}", f"{sc.w_image:.6f}", f"{sc.w_event:.6f}",
                     f"{sc.latency_ms:.1f}", sc.context, int(sc.alert)]
                )  # fmt: skip
                f.flush()
                if sc.alert or not cfg.quiet:
                    print(sc.line(), flush=True)
                weights = {"image": sc.w_image, "event": sc.w_event}
                for line in health.update(weights, sc.start_s, sc.end_s):
                    print(f"[stream] {line}", flush=True)
        except KeyboardInterrupt:
            print("[stream] interrupted", file=sys.stderr)
        except StreamStalled as e:
            stalled = e
        for line in health.close():
            print(f"[stream] {line}", flush=True)
    if lat:
        print(
            f"[stream] {n} snippets, {alerts} alert(s); latency median "
            f"{float(np.median(lat)):.1f} ms, max {max(lat):.1f} ms"
            + (f"; {len(health.spans)} unreliable-stream span(s)" if health.spans else "")
        )
    if stalled is not None:
        raise StreamError(
            f"{stalled}; the {n} snippet(s) scored before it are kept in {csv_path}"
        ) from None
    return 0
