"""Scoring video files: a per-frame CSV, the top segments in a JSON, a plot, one distinct
output name per input (``infer.py VIDEO ...``)."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iefvad.data.features import CLIP_LEN
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.engine.metrics import segments_from_mask
from iefvad.extraction.recipe import background, iter_snippet_features
from iefvad.fileio import atomic_write, save_json
from iefvad.inference.health import (
    MIN_SNIPPETS,
    UNRELIABLE_WEIGHT,
    health_streams,
    unreliable_spans,
)
from iefvad.inference.scorer import (
    Context,
    Scorer,
    SnippetScore,
    _copy_frames,
    _Counter,
    _features,
)
from iefvad.inference.session import (
    InferError,
    InferSetup,
    check_finite_scores,
    frame_rate,
    unverified_encoders,
)
from iefvad.paths import check_outputs, safe_name, shown
from iefvad.report.page import Column, Report, Timeline, number, write_report
from iefvad.report.playable import make_playable, relative_url
from iefvad.video.decode import VideoError, open_video
from iefvad.viz.scores import plot_video_scores

OFFLINE_CONTEXT = Context()
"""Chunks of 256 snippets, as ``test.py`` scores."""


@dataclass(frozen=True)
class OfflineConfig:
    """``infer.py VIDEO ...``: what to score and what to write."""

    videos: tuple[str, ...]
    out_dir: str | os.PathLike[str] = "infer_out"
    context: str | None = None
    """Temporal context mode (default ``chunk``)."""
    window: int | None = None
    """Snippets of context (default 256)."""
    score_threshold: float = 0.5
    """Snippets scoring at least this form segments."""
    top_k: int = 5
    """Segments kept in the JSON (0: all)."""
    fps: float | None = None
    """Frame rate of the times (default: the video's, when plausible)."""
    plots: bool = True
    report: bool = True
    """Also write ``report.html``: every video playing above its timeline."""


REPORT_NAME = "report.html"
REPORT_VIDEOS = "report_videos"
"""Folder (in ``out_dir``) of the browser-playable copies the report makes when needed."""


@dataclass
class VideoScores:
    """Per-snippet scores of one video and what decoding found."""

    path: str
    fps: float
    fps_assumed: bool
    frames: int
    """Frames decoded (every one has a score)."""
    scores: np.ndarray
    w_image: np.ndarray
    w_event: np.ndarray
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).stem


def score_video(
    s: InferSetup,
    path: str | os.PathLike[str],
    context: Context = OFFLINE_CONTEXT,
    fps: float | None = None,
) -> VideoScores:
    """Score every frame of one video file; raises :class:`VideoError` for an unusable one.
    ``fps`` overrides the container's frame rate (which is used only when plausible)."""
    t0 = time.perf_counter()
    cap, info = open_video(path)
    counter = _Counter(background(_copy_frames(cap), maxsize=64))
    scorer = Scorer(s.model, s.device, context)
    out: list[SnippetScore] = []
    try:
        for feats in iter_snippet_features(
            s.encoders, counter, s.opts, group_snippets=s.group_snippets, pad=True
        ):
            out.extend(scorer.push(*_features(feats, s.crop)))
        out.extend(scorer.flush())
    finally:
        cap.release()
    warnings = []
    if counter.n == 0:
        raise VideoError(path, "empty", "no frame could be decoded (corrupt or empty video)")
    if info.frames_reported > 0 and counter.n < info.frames_reported:
        warnings.append(f"decoded {counter.n} of the {info.frames_reported} frames reported")
    check_finite_scores(s, (o.score for o in out), f"video {path}")
    rate, warning = frame_rate(info.fps, fps)
    if warning:
        warnings.append(warning)
    return VideoScores(
        str(path),
        rate,
        rate != info.fps,
        counter.n,
        np.array([o.score for o in out], np.float32),
        np.array([o.w_image for o in out], np.float32),
        np.array([o.w_event for o in out], np.float32),
        time.perf_counter() - t0,
        warnings,
    )


def find_segments(
    scores: np.ndarray, frames: int, fps: float, threshold: float = 0.5, top_k: int = 5
) -> list[dict[str, Any]]:
    """Runs of snippets scoring ``>= threshold`` (:func:`iefvad.engine.metrics.segments_from_mask`),
    as frame spans ``[start, end)`` and seconds, with their peak and mean score; the ``top_k``
    with the highest peaks (0: all), in time order."""
    if top_k < 0:
        raise InferError(f"--top_k {top_k}: give the number of segments to keep, or 0 for all")
    scores = np.asarray(scores)
    segs = []
    for a, t in segments_from_mask(scores >= threshold):
        part = scores[a:t]
        peak = a + int(np.argmax(part))
        start, end = SNIPPET_FRAMES * a, min(frames, SNIPPET_FRAMES * t)
        segs.append(
            {
                "start_frame": start,
                "end_frame": end,
                "start_s": round(start / fps, 3),
                "end_s": round(end / fps, 3),
                "peak_score": round(float(part.max()), 4),
                "peak_frame": min(frames - 1, SNIPPET_FRAMES * peak),
                "mean_score": round(float(part.mean()), 4),
            }
        )
    segs = sorted(segs, key=lambda d: -d["peak_score"])[: top_k or None]
    return sorted(segs, key=lambda d: d["start_frame"])


def write_frame_csv(vs: VideoScores, path: str | os.PathLike[str]) -> Path:
    """``frame,time_s,score,w_image,w_event``: one row per decoded frame."""
    with atomic_write(path, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["frame", "time_s", "score", "w_image", "w_event"])
        for i in range(vs.frames):
            k = i // SNIPPET_FRAMES
            w.writerow(
                [
                    i,
                    f"{i / vs.fps:.3f}",
                    number(vs.scores[k]),
                    number(vs.w_image[k]),
                    number(vs.w_event[k]),
                ]
            )
    return Path(path)


def write_outputs(
    vs: VideoScores,
    s: InferSetup,
    out_dir: str | os.PathLike[str],
    context: Context,
    threshold: float = 0.5,
    top_k: int = 5,
    plot: bool = True,
    name: str | None = None,
) -> dict[str, Path]:
    """``<name>.csv`` (per frame), ``<name>.json`` (segments, settings), ``<name>.png``;
    returns their paths. ``name``: default the video's stem (see :func:`output_names`)."""
    name = name or vs.name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_frame_csv(vs, out / f"{name}.csv")}
    every = find_segments(vs.scores, vs.frames, vs.fps, threshold, 0)
    segs = find_segments(vs.scores, vs.frames, vs.fps, threshold, top_k)
    health = stream_health(vs, s)
    summary = {
        "video": vs.path,
        "video_id": _identity(vs.path),
        "frames": vs.frames,
        "fps": vs.fps,
        "fps_assumed": vs.fps_assumed,
        "duration_s": round(vs.frames / vs.fps, 3),
        "snippets": int(vs.scores.size),
        "threshold": threshold,
        "segments_found": len(every),
        "top_k": top_k,
        "max_score": round(float(vs.scores.max()), 4) if vs.scores.size else None,
        "segments": segs,
        "unreliable_streams": health,
        "unreliable_rule": {"weight_below": UNRELIABLE_WEIGHT, "min_snippets": MIN_SNIPPETS},
        "context": asdict(context),
        **s.describe(),
        "seconds": round(vs.seconds, 3),
        "warnings": vs.warnings,
    }
    save_json(out / f"{name}.json", summary)
    paths["json"] = out / f"{name}.json"
    if plot:
        spans = [(d["start_frame"], d["end_frame"]) for d in segs]
        paths["png"] = plot_video_scores(
            shown(name),
            vs.scores,
            vs.w_image,
            vs.w_event,
            vs.frames,
            vs.fps,
            spans,
            threshold,
            out / f"{name}.png",
        )
    return paths


def stream_health(vs: VideoScores, s: InferSetup) -> list[dict[str, Any]]:
    """Spans where a stream's weight says it is unreliable (:mod:`iefvad.inference.health`)."""
    streams = health_streams(s.model.cfg)
    w = {"image": vs.w_image, "event": vs.w_event}
    return unreliable_spans({m: w[m] for m in streams}, vs.frames, vs.fps)


def output_names(videos: Sequence[str | os.PathLike[str]]) -> list[str]:
    """A distinct output name per video (compared case-insensitively): its stem; where stems
    collide, its path relative to the videos' common folder with ``/`` -> ``__`` (``a__x``),
    with the extension where that alone differs (``b__x.avi``); ``-2``, ``-3`` ... last (the
    same file twice)."""
    paths = [Path(os.path.abspath(v)) for v in videos]
    names = [p.stem for p in paths]
    if len(paths) > 1:
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        for keep_ext in (False, True):
            n = Counter(x.casefold() for x in names)
            clash = [i for i, x in enumerate(names) if n[x.casefold()] > 1]
            rel = [paths[i].relative_to(root) for i in clash]
            cand = ["__".join([*r.parent.parts, r.name if keep_ext else r.stem]) for r in rel]
            m = Counter(c.casefold() for c in cand)
            for i, c in zip(clash, cand):
                if m[c.casefold()] == 1:  # only where it tells the videos apart
                    names[i] = c
    taken = {x.casefold() for x in names}
    used: set[str] = set()
    out = []
    for x in names:
        if x.casefold() in used:
            k = 2
            while f"{x}-{k}".casefold() in taken | used:
                k += 1
            x = f"{x}-{k}"
        used.add(x.casefold())
        out.append(x)
    return out


OUTPUT_SUFFIXES = (".csv", ".json", ".png")
"""The files of one video: ``<name>.csv``, ``<name>.json``, ``<name>.png``."""


def _identity(video: str | os.PathLike[str]) -> str:
    """What a result JSON records as the video's identity: its absolute, resolved path."""
    return os.path.realpath(video)


def _owner(json_path: Path) -> str | None:
    """The video an earlier run's ``<name>.json`` belongs to (its identity); None when that
    JSON is absent or unreadable (then nothing of that name is known to be another's)."""
    try:
        rec = json.loads(json_path.read_text(encoding="utf-8", errors="surrogateescape"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict):
        return None
    if isinstance(rec.get("video_id"), str):
        return rec["video_id"]
    return _identity(rec["video"]) if isinstance(rec.get("video"), str) else None


def _taken_by_another(out: Path, name: str, video: str | os.PathLike[str]) -> bool:
    """Whether ``<out>/<name>.*`` holds the results of another video than ``video``: its JSON
    names another video, or its CSV/PNG exist without a JSON to tell whose they are."""
    files = [out / f"{name}{x}" for x in OUTPUT_SUFFIXES]
    if not any(os.path.lexists(f) for f in files):
        return False
    owner = _owner(files[1])
    return owner is None or owner != _identity(video)


def plan_outputs(cfg: OfflineConfig) -> list[str]:
    """The output name of each of ``cfg.videos`` in ``cfg.out_dir``: :func:`output_names`, made
    a plain file name (:func:`iefvad.paths.safe_name`), then ``-2``, ``-3`` ... where an earlier
    run's results of *another* video hold that name (its JSON records the video); a video's
    own earlier results are replaced. No output may be the same file as an input."""
    out = Path(cfg.out_dir)
    names = [safe_name(n, reserve=len(".json") + 4) for n in output_names(cfg.videos)]
    used: set[str] = set()
    planned = []
    for v, name in zip(cfg.videos, names):
        final, k = name, 1
        while final.casefold() in used or _taken_by_another(out, final, v):
            k += 1
            final = f"{name}-{k}"
        used.add(final.casefold())
        planned.append(final)
    suffixes = OUTPUT_SUFFIXES if cfg.plots else OUTPUT_SUFFIXES[:2]
    check_outputs([("--out_dir", out / f"{n}{x}") for n in planned for x in suffixes])
    return planned


def video_timeline(
    vs: VideoScores,
    name: str,
    out_dir: str | os.PathLike[str],
    segments: Sequence[dict[str, Any]],
    paths: dict[str, Path],
) -> Timeline:
    """The report's entry of one scored video: the arrays its CSV was written from, every
    segment, and the video itself (or a browser-playable copy in ``out_dir/report_videos``)."""
    playable = make_playable(vs.path, Path(out_dir) / REPORT_VIDEOS, name, vs.fps)
    return Timeline(
        name=vs.path,
        scores=vs.scores,
        w_image=vs.w_image,
        w_event=vs.w_event,
        frames=vs.frames,
        fps=vs.fps,
        segments=segments,
        video=None if playable.path is None else relative_url(playable.path, out_dir),
        note=playable.note,
        stats={
            "max_score": float(vs.scores.max()),
            "segments": len(segments),
            "duration": vs.frames / vs.fps,
            "frames": vs.frames,
        },
        files=[(p.name, relative_url(p, out_dir)) for p in paths.values()],
    )


def infer_report(
    timelines: Sequence[Timeline],
    s: InferSetup,
    context: Context,
    threshold: float,
    failed: dict[str, str],
) -> Report:
    """``infer.py``'s page: the scored videos, highest score first."""
    notes = [
        f"checkpoint {s.checkpoint.path} ({s.model.cfg.fusion} fusion), context "
        f"{context.mode} of {context.window} snippets",
        f"one score and one pair of weights per snippet of {SNIPPET_FRAMES} frames, as in each "
        f"video's CSV; segments: every run of snippets scoring at least {threshold} (the JSON "
        "keeps the top ones); click the timeline or a segment to seek",
    ]
    if (warning := unverified_encoders(s)) is not None:
        notes.append(f"warning: {warning}")
    notes += [f"not scored: {v}: {why}" for v, why in failed.items()]
    return Report(
        title=f"infer.py: {len(timelines)} video{'s' * (len(timelines) != 1)}",
        timelines=timelines,
        threshold=threshold,
        notes=notes,
        columns=[
            Column("max_score", "max score"),
            Column("segments", "segments", 0),
            Column("duration", "seconds", 1),
            Column("frames", "frames", 0),
        ],
        sort="max_score",
        descending=True,
    )


def score_files(cfg: OfflineConfig, s: InferSetup, names: Sequence[str] | None = None) -> int:
    """Score ``cfg.videos`` one by one, write their outputs and print a line each; a video
    that cannot be decoded is reported and skipped (status 1 at the end). ``names``: the
    output names (default :func:`plan_outputs`)."""
    context = Context(cfg.context or "chunk", CLIP_LEN if cfg.window is None else cfg.window)
    names = list(names) if names is not None else plan_outputs(cfg)
    for v, name in zip(cfg.videos, names):
        if name != Path(v).stem:
            print(
                f"[infer] {shown(v)}: outputs named {shown(name)}.* (another input, or an "
                "earlier run's results in --out_dir, have the same name)"
            )
    failed: dict[str, str] = {}
    timelines: list[Timeline] = []
    for v, name in zip(cfg.videos, names):
        try:
            vs = score_video(s, v, context, cfg.fps)
        except VideoError as e:
            failed[v] = e.reason
            print(f"error: {shown(v)}: {e.reason}; skipped", file=sys.stderr)
            continue
        paths = write_outputs(
            vs, s, cfg.out_dir, context, cfg.score_threshold, cfg.top_k, cfg.plots, name
        )
        segs = find_segments(vs.scores, vs.frames, vs.fps, cfg.score_threshold, 0)
        top = max(segs, key=lambda d: d["peak_score"]) if segs else None
        kept = f" ({cfg.top_k} in the JSON)" if 0 < cfg.top_k < len(segs) else ""
        print(
            f"{shown(v)}: {vs.frames} frames, {vs.scores.size} snippets in {vs.seconds:.1f} s; max "
            f"score {vs.scores.max():.3f}; {len(segs)} segment(s) >= {cfg.score_threshold}{kept}"
            + (
                f", top {top['start_s']:.2f}-{top['end_s']:.2f} s (peak {top['peak_score']:.3f})"
                if top
                else ""
            )
            + f" -> {', '.join(shown(p) for p in paths.values())}"
        )
        for span in stream_health(vs, s):
            print(f"{v}: {span['text']} (weight {span['mean_weight']:.2f})")
        for w in vs.warnings:
            print(f"warning: {shown(v)}: {w}", file=sys.stderr)
        if cfg.report:
            timelines.append(video_timeline(vs, name, cfg.out_dir, segs, paths))
    if timelines:
        page = write_report(
            Path(cfg.out_dir) / REPORT_NAME,
            infer_report(timelines, s, context, cfg.score_threshold, failed),
        )
        print(f"report: {page} (open it in a browser)")
    if failed:
        print(f"{len(failed)} of {len(cfg.videos)} videos failed:", file=sys.stderr)
        for v, why in failed.items():
            print(f"  {shown(v)}: {why}", file=sys.stderr)
        return 1
    return 0
