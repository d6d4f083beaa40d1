"""Anomaly scores for your own videos and for live streams (``infer.py``).

A video (or a stream) is decoded frame by frame, cut into 16-frame snippets (the last partial
snippet padded by repeating its last frame, so every decoded frame gets a score), turned into
image and event features by the encoders the checkpoint was trained on, and scored by the
fusion model under a *temporal context*:

- ``chunk`` (offline default): consecutive, non-overlapping windows of ``window`` snippets
  (256, as ``test.py`` evaluates), each zero-padded to 256 and scored at once; a snippet sees
  the snippets before and after it in its window. With the default window the scores equal
  ``test.py``'s for the same features.
- ``causal`` (streams): each snippet is scored as soon as it arrives, with the ``window - 1``
  snippets before it (zero-padded to 256); it never sees the future. Scoring a file offline
  with ``causal`` gives exactly the scores the live stream gives for it.

Event maps are normalised per snippet or over groups of ``group_snippets`` snippets (the
reference normalises over 32 snippets = 512 frames), as the checkpoint's features were; a
stream uses groups of 1 unless told otherwise (less latency, different features for a
group-normalised model: see ``docs/inference.md``).

Memory is bounded for any video length: frames live only in one group buffer, features only
in the context window; per-snippet scores (three floats per 16 frames) are kept for the JSON
and the plot.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from iefvad.cli.entry import run_entry
from iefvad.data.features import CLIP_LEN
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.errors import UserInputError
from iefvad.extraction.encoders import resolve_device, resolve_precision
from iefvad.extraction.provenance import CHECKPOINT_KEY, build_encoder, recipe_of
from iefvad.extraction.recipe import (
    Encoders,
    RecipeOptions,
    SnippetFeatures,
    background,
    iter_snippet_features,
)
from iefvad.extraction.weights import WeightsOptions, add_weights_flags, weights_options
from iefvad.fileio import atomic_write, save_json
from iefvad.models.checkpoint import Checkpoint, load_model
from iefvad.models.model import IEFVAD
from iefvad.video.decode import VideoError, open_video
from iefvad.viz.scores import plot_video_scores

log = logging.getLogger(__name__)

CONTEXTS: tuple[str, ...] = ("chunk", "causal")
MIN_CONTEXT = 8
"""Snippets of context a stream needs before it may alert (``--min_context``)."""
DEFAULT_FPS = 25.0
"""Assumed (unless ``--fps`` is given) when a container or camera reports no usable frame
rate; the output says so."""
FPS_RANGE = (0.1, 1000.0)
"""Frame rates outside this range (a broken header: 0, NaN, 2e9 ...) are not believed."""


class InferError(UserInputError):
    """Bad options, source or checkpoint for ``infer.py`` (the message says what to fix)."""


def frame_rate(reported: float, override: float | None = None) -> tuple[float, str | None]:
    """``(fps, warning)``: ``override`` (``--fps``) if given, else the ``reported`` rate when
    it is plausible (:data:`FPS_RANGE`), else :data:`DEFAULT_FPS` with a warning."""
    if override is not None:
        return float(override), None
    if math.isfinite(reported) and FPS_RANGE[0] <= reported <= FPS_RANGE[1]:
        return float(reported), None
    said = (
        "no frame rate"
        if not reported or math.isnan(reported)
        else f"a frame rate of {reported:g} fps, which cannot be right"
    )
    return DEFAULT_FPS, (
        f"reports {said}: times assume {DEFAULT_FPS:g} fps (pass --fps to give the true rate)"
    )


def check_finite_scores(s: InferSetup, scores: Iterable[float], where: str) -> None:
    """Stop at the first NaN/inf score (no threshold or alert fires on NaN)."""
    for x in scores:
        if not math.isfinite(x):
            raise InferError(
                f"checkpoint {s.checkpoint.path} gave a score of {x} on {where}: the encoders' "
                "weights or features hold NaN/inf (a half-precision overflow: try --precision "
                "fp32; else check the --clip_ckpt / --event_clip_ckpt files)"
            )


# ------------------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class Context:
    """Temporal context of the model: ``mode`` ``chunk`` or ``causal`` (see the module doc),
    ``window`` snippets (1..256)."""

    mode: str = "chunk"
    window: int = CLIP_LEN

    def __post_init__(self) -> None:
        if self.mode not in CONTEXTS:
            raise InferError(f"context must be one of {', '.join(CONTEXTS)}, found {self.mode!r}")
        if not 1 <= self.window <= CLIP_LEN:
            raise InferError(
                f"--window {self.window}: the model takes 1..{CLIP_LEN} snippets of context"
            )


@dataclass
class SnippetScore:
    """Score of one snippet: probability of an anomaly and the mean fusion weights."""

    index: int
    """Snippet index in its video or stream (frames ``16*index .. 16*index + 15``)."""
    score: float
    w_image: float
    w_event: float


class Scorer:
    """Scores a sequence of snippet features with ``model`` under ``context``.

    Feed features with :meth:`push` (``[S, D]`` per modality, any S, in order) and collect the
    snippets it returns; :meth:`flush` scores what is left (the last chunk). Holds at most
    ``context.window`` snippets of features.
    """

    def __init__(
        self,
        model: IEFVAD,
        device: torch.device | str = "cpu",
        context: Context = Context(),
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.device = torch.device(device)
        self.context = context
        self.batch_size = batch_size
        self.dim = model.cfg.dim
        self._img: deque[torch.Tensor] = deque()
        self._evt: deque[torch.Tensor] = deque()
        self._next = 0
        """Index of the next snippet pushed."""
        self.seen = 0
        """Snippets in the last chunk scored (chunk mode)."""

    def _zeros(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.dim)

    def push(self, image: torch.Tensor | None, event: torch.Tensor | None) -> list[SnippetScore]:
        """Add ``S`` snippets (``[S, D]``; None for a modality the model does not use)."""
        ref = image if image is not None else event
        if ref is None:
            raise ValueError("push needs image or event features")
        s = int(ref.shape[0])
        image = image if image is not None else self._zeros(s)
        event = event if event is not None else self._zeros(s)
        if image.shape != event.shape or image.shape[-1] != self.dim:
            raise InferError(
                f"features {tuple(image.shape)} / {tuple(event.shape)} do not fit a model of "
                f"width D={self.dim}: are these the checkpoint's encoders?"
            )
        out: list[SnippetScore] = []
        for i in range(s):
            self._img.append(image[i].float().cpu())
            self._evt.append(event[i].float().cpu())
            if self.context.mode == "chunk" and len(self._img) == self.context.window:
                out.extend(self._score_chunk())
        if self.context.mode == "causal":
            out.extend(self._score_causal(s))
        return out

    def flush(self) -> list[SnippetScore]:
        """Score the snippets still buffered (chunk mode's last, partial window)."""
        if self.context.mode == "chunk" and self._img:
            return self._score_chunk()
        return []

    @torch.no_grad()
    def _run(self, windows: list[tuple[list[torch.Tensor], list[torch.Tensor]]], take: list[int]):
        """Score windows (each zero-padded to 256); return (prob, w_i, w_e) at ``take``."""
        probs, wis, wes = [], [], []
        for a in range(0, len(windows), self.batch_size):
            part = windows[a : a + self.batch_size]
            img = torch.zeros(len(part), CLIP_LEN, self.dim)
            evt = torch.zeros(len(part), CLIP_LEN, self.dim)
            lengths = torch.empty(len(part), dtype=torch.long)
            for j, (wi, we) in enumerate(part):
                img[j, : len(wi)] = torch.stack(wi)
                evt[j, : len(we)] = torch.stack(we)
                lengths[j] = len(wi)
            o = self.model(img.to(self.device), evt.to(self.device), lengths.to(self.device))
            pos = torch.tensor(take[a : a + len(part)])
            rows = torch.arange(len(part))
            probs.append(torch.sigmoid(o.logits.float()).cpu()[rows, pos])
            wis.append(o.w_image.float().mean(-1).cpu()[rows, pos])
            wes.append(o.w_event.float().mean(-1).cpu()[rows, pos])
        return torch.cat(probs), torch.cat(wis), torch.cat(wes)

    @torch.no_grad()
    def _score_chunk(self) -> list[SnippetScore]:
        img, evt = list(self._img), list(self._evt)
        self._img.clear()
        self._evt.clear()
        o = self.model(
            torch.nn.functional.pad(torch.stack(img), (0, 0, 0, CLIP_LEN - len(img)))[None].to(
                self.device
            ),
            torch.nn.functional.pad(torch.stack(evt), (0, 0, 0, CLIP_LEN - len(evt)))[None].to(
                self.device
            ),
            torch.tensor([len(img)], device=self.device),
        )
        p = torch.sigmoid(o.logits.float())[0, : len(img)].cpu()
        wi = o.w_image.float().mean(-1)[0, : len(img)].cpu()
        we = o.w_event.float().mean(-1)[0, : len(img)].cpu()
        first = self._next
        self._next += len(img)
        self.seen = len(img)
        return [
            SnippetScore(first + k, float(p[k]), float(wi[k]), float(we[k]))
            for k in range(len(img))
        ]

    def _score_causal(self, new: int) -> list[SnippetScore]:
        """Score the last ``new`` snippets pushed, each with the window that ends at it."""
        w = self.context.window
        img, evt = list(self._img), list(self._evt)
        windows, take = [], []
        for k in range(len(img) - new, len(img)):
            lo = max(0, k + 1 - w)
            windows.append((img[lo : k + 1], evt[lo : k + 1]))
            take.append(k - lo)
        p, wi, we = self._run(windows, take)
        while len(self._img) > w - 1:  # keep the context of the next snippet only
            self._img.popleft()
            self._evt.popleft()
        first = self._next
        self._next += new
        return [
            SnippetScore(first + j, float(p[j]), float(wi[j]), float(we[j])) for j in range(new)
        ]


# ------------------------------------------------------------------------------ setup


@dataclass
class InferSetup:
    """A checkpoint's model with the encoders and recipe of its features."""

    model: IEFVAD
    checkpoint: Checkpoint
    encoders: Encoders
    opts: RecipeOptions
    crop: int
    group_snippets: int
    device: torch.device
    record: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        enc = {
            m: {"source": e.source, "fingerprint": e.fingerprint, "arch": e.arch}
            for m in self.encoders.modalities
            if (e := getattr(self.encoders, m)) is not None
        }
        return {
            "checkpoint": str(self.checkpoint.path),
            "fusion": self.model.cfg.fusion,
            "encoders": enc,
            "recipe": {**self.opts.as_dict(), "group_snippets": self.group_snippets},
            "encoders_from_checkpoint": self.record is not None,
            "encoder_warning": unverified_encoders(self),
        }


def unverified_encoders(s: InferSetup) -> str | None:
    """The warning for a checkpoint without a feature record (released checkpoints have none):
    encoders of the right width are accepted, but nothing shows they made its features."""
    if s.record is not None:
        return None
    used = ", ".join(
        f"{m} {e.source}"
        for m in s.encoders.modalities
        if (e := getattr(s.encoders, m)) is not None
    )
    return (
        f"checkpoint {s.checkpoint.path} does not record the encoders of its training features "
        f"(released checkpoints do not), so the encoders used ({used}) cannot be verified "
        "against them: the scores are meaningful only if these are the exact CLIP weights and "
        "extraction recipe the model was trained with"
    )


def setup(
    ckpt_path: str | os.PathLike[str],
    clip_ckpt: str | os.PathLike[str] | None = None,
    event_clip_ckpt: str | os.PathLike[str] | None = None,
    clip_model: str = "ViT-L-14",
    device: str = "auto",
    precision: str = "auto",
    crop: int | None = None,
    event_norm: str | None = None,
    threshold: float | None = None,
    group_snippets: int | None = None,
    check_encoders: bool = True,
    batch_size: int | None = None,
    weights: WeightsOptions | None = None,
) -> InferSetup:
    """Load the model and the encoders of its features (from its record, or the files
    passed); options left None come from the checkpoint's record (or the reference recipe).
    ``weights``: where weights not passed as files come from (caches, downloads, trust)."""
    dev = resolve_device(device)
    model, ckpt = load_model(ckpt_path, dev)
    rec = ckpt.meta.get(CHECKPOINT_KEY)
    opts, rec_crop, rec_group = recipe_of(rec)
    crop = rec_crop if crop is None else crop
    opts = RecipeOptions(
        crops=(crop,),
        tail="pad",
        threshold=opts.threshold if threshold is None else threshold,
        event_norm=opts.event_norm if event_norm is None else event_norm,  # type: ignore[arg-type]
        clamp=opts.clamp,
    )
    prec = resolve_precision(precision, dev)
    towers = {}
    for kind, path in (("image", clip_ckpt), ("event", event_clip_ckpt)):
        if kind not in model.cfg.modalities:
            continue
        sub = None if rec is None else rec.get(kind)
        enc = build_encoder(
            kind, sub, path, str(ckpt.path), clip_model, check=check_encoders, weights=weights
        )
        towers[kind] = enc.to(dev, prec)
    dims = {e.embed_dim for e in towers.values()}
    if dims != {model.cfg.dim}:
        raise InferError(
            f"checkpoint {ckpt.path} takes D={model.cfg.dim} features but the encoders give "
            f"{sorted(dims)}: pass the CLIP weights it was trained with"
        )
    batch = batch_size or (256 if dev.type == "cuda" else 64)
    encoders = Encoders(image=towers.get("image"), event=towers.get("event"), batch_size=batch)
    group = rec_group if group_snippets is None else group_snippets
    return InferSetup(model, ckpt, encoders, opts, crop, group, dev, rec)


# ------------------------------------------------------------------------------ offline


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


class _Counter:
    """Counts the frames of an iterator and notes when each was read."""

    def __init__(self, frames: Iterable[np.ndarray], keep_times: bool = False) -> None:
        self.frames = frames
        self.n = 0
        self.keep_times = keep_times
        self.times: dict[int, float] = {}

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self.frames:
            self.n += 1
            if self.keep_times and self.n % SNIPPET_FRAMES == 0:
                self.times[self.n // SNIPPET_FRAMES - 1] = time.perf_counter()
            yield f
        if self.keep_times and self.n % SNIPPET_FRAMES:
            self.times[self.n // SNIPPET_FRAMES] = time.perf_counter()


def _features(feats: SnippetFeatures, crop: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return feats.image.get(crop), feats.event.get(crop)


def _copy_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """Frames of a capture, each a new array (safe to hand to another thread)."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame


def score_video(
    s: InferSetup,
    path: str | os.PathLike[str],
    context: Context = Context(),
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
    """Runs of snippets scoring ``>= threshold``, as frame spans ``[start, end)`` and seconds,
    with their peak and mean score; the ``top_k`` with the highest peaks (0: all), in time
    order."""
    if top_k < 0:
        raise InferError(f"--top_k {top_k}: give the number of segments to keep, or 0 for all")
    above = np.asarray(scores) >= threshold
    segs = []
    t = 0
    while t < above.size:
        if not above[t]:
            t += 1
            continue
        a = t
        while t < above.size and above[t]:
            t += 1
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
                    f"{vs.scores[k]:.6f}",
                    f"{vs.w_image[k]:.6f}",
                    f"{vs.w_event[k]:.6f}",
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
    summary = {
        "video": vs.path,
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
            name,
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


# ------------------------------------------------------------------------------ streams


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


def open_stream(source: str | int) -> tuple[cv2.VideoCapture, float]:
    """Open a camera index, a file or a URL with OpenCV; returns (capture, the frame rate it
    reports: may be 0, NaN or absurd, see :func:`frame_rate`)."""
    src: str | int = int(source) if isinstance(source, str) and source.isdigit() else source
    if isinstance(src, str) and "://" not in src and not Path(src).exists():
        raise InferError(
            f"--stream {source}: no such file; pass a camera index (0, 1, ...), a video file "
            "or a URL that OpenCV can open (rtsp://..., http://...)"
        )
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        cap.release()
        raise InferError(
            f"--stream {source}: OpenCV cannot open it (no such camera, unreachable URL, or a "
            "codec this OpenCV build lacks)"
        )
    return cap, float(cap.get(cv2.CAP_PROP_FPS) or 0.0)


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
    context: Context = Context("causal", 64),
    group_snippets: int = 1,
    alert: float | None = None,
    max_snippets: int | None = None,
    realtime: bool = False,
    min_context: int = MIN_CONTEXT,
    fps: float | None = None,
    on_warning: Callable[[str], None] = log.warning,
) -> Iterator[StreamScore]:
    """Score a live source snippet by snippet (see :func:`open_stream`); ends when the source
    does, after ``max_snippets``, or when the caller stops iterating. No alert is raised
    before ``min_context`` snippets of context exist (the first seconds of a stream give the
    model far less context than it was trained with). ``fps`` overrides the source's frame
    rate; an implausible one is replaced by :data:`DEFAULT_FPS` and reported to
    ``on_warning``. The source is opened at once (a bad one raises here, not when iterating).
    """
    cap, reported = open_stream(source)
    rate, warning = frame_rate(reported, fps)
    if warning:
        on_warning(f"{source} {warning}")
    return _stream_loop(
        s, source, cap, rate, context, group_snippets, alert, max_snippets, realtime, min_context
    )


def _stream_loop(
    s: InferSetup,
    source: str | int,
    cap: cv2.VideoCapture,
    rate: float,
    context: Context,
    group_snippets: int,
    alert: float | None,
    max_snippets: int | None,
    realtime: bool,
    min_context: int,
) -> Iterator[StreamScore]:
    frames: Iterable[np.ndarray] = _copy_frames(cap)
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
        cap.release()


# ------------------------------------------------------------------------------ command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infer.py",
        description="Anomaly scores for your own videos (per-frame CSV, top segments JSON, "
        "plot) or a live stream (camera, file or URL).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("videos", nargs="*", help="video files to score")
    p.add_argument("--stream", help="score a live source: camera index, video file or URL")
    p.add_argument("--ckpt_path", required=True, help="a checkpoint (main.py's or the demo's)")
    p.add_argument("--out", default="infer_out", help="output folder")
    g = p.add_argument_group("encoders (default: those the checkpoint records)")
    g.add_argument("--clip_ckpt", help="image CLIP weights")
    g.add_argument("--event_clip_ckpt", help="event-CLIP weights")
    g.add_argument(
        "--clip_model",
        default="ViT-L-14",
        help="open_clip name (or hf-hub:ORG/REPO) of image weights not passed as a file",
    )
    g.add_argument(
        "--allow_other_encoders",
        action="store_true",
        help="score even when the weights are not those the checkpoint was trained on",
    )
    add_weights_flags(g)
    g = p.add_argument_group("recipe (default: the checkpoint's, else the reference's)")
    g.add_argument("--crop", type=int, help="crop scored (reference: 5, the flipped centre)")
    g.add_argument("--event_norm", choices=("group", "snippet"), help="event normalisation")
    g.add_argument("--event_threshold", type=float, help="event threshold (gray levels)")
    g.add_argument(
        "--group_snippets",
        type=int,
        help="snippets per event normalisation group (reference 32; streams: 1)",
    )
    g = p.add_argument_group("temporal context")
    g.add_argument(
        "--context",
        choices=CONTEXTS,
        help="chunk: windows of --window snippets, as test.py (offline default); causal: "
        "each snippet with the --window - 1 before it (streams)",
    )
    g.add_argument("--window", type=int, help="snippets of context (offline 256, stream 64)")
    g = p.add_argument_group("outputs")
    g.add_argument("--threshold", type=float, default=0.5, help="segment / alert threshold")
    g.add_argument("--top_k", type=int, default=5, help="segments in the JSON (0: all)")
    g.add_argument(
        "--fps",
        type=float,
        help="frame rate for the times (default: the video's; 25 when it reports none or an "
        "impossible one)",
    )
    g.add_argument("--no_plot", action="store_true", help="skip the PNG")
    g = p.add_argument_group("streams")
    g.add_argument("--alert", type=float, help="print ALERT when a snippet scores >= this")
    g.add_argument(
        "--min_context",
        type=int,
        default=MIN_CONTEXT,
        help="no alert before this many snippets of context",
    )
    g.add_argument("--max_snippets", type=int, help="stop after this many snippets")
    g.add_argument("--realtime", action="store_true", help="read a file at its frame rate")
    g.add_argument("--quiet", action="store_true", help="print only alerts and the summary")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="auto", help="encoders: auto, fp32, fp16, bf16")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    return p


def _positive(flag: str, value: float | None, low: float = 1) -> None:
    if value is not None and not (math.isfinite(value) and value >= low):
        raise InferError(f"{flag} {value}: must be >= {low:g}")


def check_args(args: argparse.Namespace) -> None:
    """Refuse nonsensical numbers before any model or encoder is loaded; errors name the flag."""
    if args.window is not None and not 1 <= args.window <= CLIP_LEN:
        raise InferError(
            f"--window {args.window}: the model takes 1..{CLIP_LEN} snippets of context"
        )
    for flag, v in (("--threshold", args.threshold), ("--alert", args.alert)):
        if v is not None and not 0 <= v <= 1:
            raise InferError(f"{flag} {v}: scores are probabilities, give a value in [0, 1]")
    if args.top_k < 0:
        raise InferError(f"--top_k {args.top_k}: give the number of segments to keep, or 0 for all")
    _positive("--min_context", args.min_context, 0)
    for flag in ("--max_snippets", "--threads", "--group_snippets"):
        _positive(flag, getattr(args, flag[2:]))
    if args.crop is not None and not 0 <= args.crop <= 9:
        raise InferError(f"--crop {args.crop}: crops are numbered 0..9 (reference: 5)")
    if args.event_threshold is not None and not 0 <= args.event_threshold < 255:
        raise InferError(
            f"--event_threshold {args.event_threshold}: gray levels, give a value in [0, 255)"
        )
    if args.fps is not None and not FPS_RANGE[0] <= args.fps <= FPS_RANGE[1]:
        raise InferError(
            f"--fps {args.fps}: give the frame rate, {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}"
        )
    if args.stream and args.alert is not None:
        window = args.window or 64
        if args.min_context > window:
            raise InferError(
                f"--min_context {args.min_context} exceeds --window {window}: a snippet never "
                "has more context than the window, so no alert could ever fire; lower "
                "--min_context or raise --window"
            )


def _score_files(args: argparse.Namespace, s: InferSetup) -> int:
    context = Context(args.context or "chunk", CLIP_LEN if args.window is None else args.window)
    names = output_names(args.videos)
    for v, name in zip(args.videos, names):
        if name != Path(v).stem:
            print(f"[infer] {v}: outputs named {name}.* (another input has the same name)")
    failed: dict[str, str] = {}
    for v, name in zip(args.videos, names):
        try:
            vs = score_video(s, v, context, args.fps)
        except VideoError as e:
            failed[v] = e.reason
            print(f"error: {v}: {e.reason}; skipped", file=sys.stderr)
            continue
        paths = write_outputs(
            vs, s, args.out, context, args.threshold, args.top_k, not args.no_plot, name
        )
        segs = find_segments(vs.scores, vs.frames, vs.fps, args.threshold, 0)
        top = max(segs, key=lambda d: d["peak_score"]) if segs else None
        kept = f" ({args.top_k} in the JSON)" if 0 < args.top_k < len(segs) else ""
        print(
            f"{v}: {vs.frames} frames, {vs.scores.size} snippets in {vs.seconds:.1f} s; max "
            f"score {vs.scores.max():.3f}; {len(segs)} segment(s) >= {args.threshold}{kept}"
            + (
                f", top {top['start_s']:.2f}-{top['end_s']:.2f} s (peak {top['peak_score']:.3f})"
                if top
                else ""
            )
            + f" -> {', '.join(str(p) for p in paths.values())}"
        )
        for w in vs.warnings:
            print(f"warning: {v}: {w}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(args.videos)} videos failed:", file=sys.stderr)
        for v, why in failed.items():
            print(f"  {v}: {why}", file=sys.stderr)
        return 1
    return 0


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


def _score_stream(args: argparse.Namespace, s: InferSetup) -> int:
    context = Context(args.context or "causal", 64 if args.window is None else args.window)
    group = args.group_snippets or 1
    scores = stream_scores(
        s,
        args.stream,
        context,
        group,
        args.alert,
        args.max_snippets,
        args.realtime,
        args.min_context,
        args.fps,
        lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True),
    )
    csv_path, f = new_log(Path(args.out))
    n, alerts, lat = 0, 0, []
    norm = "per snippet" if s.opts.event_norm == "snippet" else f"over {group} snippet(s)"
    kept = f" (earlier logs in {args.out} are kept)" if csv_path.name != "stream.csv" else ""
    print(
        f"[stream] {args.stream}: {context.mode} context of {context.window} snippets, event "
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
                if sc.alert or not args.quiet:
                    print(sc.line(), flush=True)
        except KeyboardInterrupt:
            print("[stream] interrupted", file=sys.stderr)
    if lat:
        print(
            f"[stream] {n} snippets, {alerts} alert(s); latency median "
            f"{float(np.median(lat)):.1f} ms, max {max(lat):.1f} ms"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """``infer.py`` with parsed arguments; returns the exit status."""
    if bool(args.videos) == bool(args.stream):
        raise InferError("pass video files to score, or --stream SOURCE (not both)")
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = setup(
        args.ckpt_path,
        args.clip_ckpt,
        args.event_clip_ckpt,
        args.clip_model,
        args.device,
        args.precision,
        args.crop,
        args.event_norm,
        args.event_threshold,
        args.group_snippets,
        check_encoders=not args.allow_other_encoders,
        weights=weights_options(args),
    )
    if (note := unverified_encoders(s)) is not None:
        print(f"warning: {note}", file=sys.stderr)
    return _score_stream(args, s) if args.stream else _score_files(args, s)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    raise SystemExit(run_entry(lambda: run(args)))


__all__ = [
    "CONTEXTS",
    "Context",
    "InferError",
    "InferSetup",
    "check_args",
    "Scorer",
    "SnippetScore",
    "StreamScore",
    "VideoScores",
    "find_segments",
    "frame_rate",
    "main",
    "new_log",
    "open_stream",
    "output_names",
    "score_video",
    "setup",
    "stream_scores",
    "unverified_encoders",
    "write_frame_csv",
    "write_outputs",
]
