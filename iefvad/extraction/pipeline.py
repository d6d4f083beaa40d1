"""The extraction pipeline: a folder of videos -> per-crop image and event feature files.

Each video is decoded once, by one of ``workers`` background threads (OpenCV releases the GIL),
into pooled group buffers (pinned memory on CUDA); the main thread encodes groups as they come
(:func:`iefvad.extraction.recipe.encode_snippets`) while the next ones decode, and a writer thread
saves finished videos atomically. Per video and modality a manifest is written last; a rerun
skips videos whose manifest matches the run's settings and redoes the others, so a killed run
resumes where it stopped. A video that cannot be used (unreadable, empty, truncated, T = 0) is
recorded in the failures file with the reason; the run goes on and :class:`RunSummary` says so.

Scale-out: every process extracts its shard (:func:`iefvad.extraction.layout.shard`) of the same
listing; under torchrun the ranks meet at the end (gloo) and rank 0 prints the total.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad import __version__
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.errors import UserInputError
from iefvad.extraction.event_sources import (
    EventOptions,
    RecordingIndex,
    SnippetEventSource,
    open_source,
)
from iefvad.extraction.layout import (
    KEEP_REASONS,
    MANIFEST_FORMAT,
    ExtractError,
    OutputLayout,
    RunLock,
    VideoJob,
    check_output_folders,
    completion,
    failures_name,
    scan_videos,
    shard,
    stale_outputs,
    summary_name,
)
from iefvad.extraction.recipe import Encoders, RecipeOptions, encode_snippets
from iefvad.fileio import atomic_write, save_json, save_npy
from iefvad.video.decode import GROUP_FRAMES, RESIZE_H, RESIZE_W, VideoError, VideoInfo, iter_groups

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """Everything a run needs besides the encoders.

    ``roots``: output root per modality to extract (``{'image': .../rgb, 'event': ...}``).
    ``truncation_tolerance``: see :func:`iefvad.video.decode.check_decoded` (None keeps truncated
    videos). ``rank``/``world``: this process's shard.
    """

    video_dir: Path
    roots: dict[str, Path]
    opts: RecipeOptions = field(default_factory=RecipeOptions)
    class_folders: bool = True
    precision: str = "fp32"
    workers: int = 4
    overwrite: bool = False
    truncation_tolerance: float | None = 0.02
    video_list: Path | None = None
    rank: int = 0
    world: int = 1
    progress: bool = True
    dataset: str = ""
    events: EventOptions = field(default_factory=EventOptions)
    """Where the event stream comes from and how it is drawn (default: frame differences)."""


@dataclass
class RunSummary:
    """What a run did (this rank, or all ranks after :func:`gather_summaries`)."""

    total: int = 0
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    redone: dict[str, str] = field(default_factory=dict)
    """Videos redone although outputs existed, with why (partial, settings changed...)."""
    failed: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    """Sub-folders of the video folder that could not be read: their videos were not seen."""
    frames: int = 0
    images: int = 0
    """Encoder inputs: one per crop per frame (image) plus one per crop per snippet (event)."""
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed or self.unreadable else 0)

    def text(self) -> str:
        rate = self.frames / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.total} videos: {len(self.done)} extracted, {len(self.skipped)} already "
            f"complete, {len(self.failed)} failed"
            + (f", {len(self.redone)} redone" if self.redone else "")
            + (f", {len(self.unreadable)} folders unreadable" if self.unreadable else "")
            + f"; {self.frames} frames in {self.seconds:.1f} s ({rate:.1f} frames/s, "
            f"{self.images / self.seconds if self.seconds else 0.0:.1f} images/s)"
        ]
        for rel, why in sorted(self.failed.items()):
            lines.append(f"  FAILED {rel}: {why}")
        for folder in self.unreadable:
            lines.append(f"  UNREADABLE {folder}: {UNREADABLE_FOLDER}")
        if self.interrupted:
            lines.append("  interrupted: rerun the same command to resume")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "redone": self.redone,
            "failed": self.failed,
            "unreadable": self.unreadable,
            "frames": self.frames,
            "images": self.images,
            "seconds": self.seconds,
            "interrupted": self.interrupted,
        }


UNREADABLE_FOLDER = (
    "permission denied: the folder cannot be read, its videos were not extracted; make it "
    "readable (chmod a+rx) and rerun"
)


def failure_lines(summary: RunSummary) -> list[str]:
    """Lines of the failures file: ``video<TAB>reason``, then ``folder/<TAB>reason`` for every
    unreadable folder."""
    lines = [f"{rel}\t{why}" for rel, why in sorted(summary.failed.items())]
    return lines + [f"{folder}\t{UNREADABLE_FOLDER}" for folder in summary.unreadable]


class BufferPool:
    """Reusable group buffers ``[512, 256, 340, 3]`` uint8 (pinned when ``pin``): decoding
    blocks when all are in use, which bounds memory to ``size`` groups."""

    def __init__(self, size: int, pin: bool = False) -> None:
        self._free: queue.Queue[torch.Tensor] = queue.Queue()
        for _ in range(size):
            self._free.put(
                torch.empty(
                    (GROUP_FRAMES, RESIZE_H, RESIZE_W, 3), dtype=torch.uint8, pin_memory=pin
                )
            )

    def acquire(self) -> tuple[_Lease, np.ndarray]:
        t = self._free.get()
        return _Lease(self, t), t.numpy()


class _Lease:
    def __init__(self, pool: BufferPool, tensor: torch.Tensor) -> None:
        self.pool, self.tensor = pool, tensor

    def release(self) -> None:
        if self.tensor is not None:
            self.pool._free.put(self.tensor)
            self.tensor = None


def cpu_threads(workers: int, cores: int | None = None) -> int:
    """Intra-op torch threads for CPU encoding next to ``workers`` decode threads: the cores
    left over, at least 1 (OpenMP threads that share cores spin and run several times slower).
    """
    cores = cores or os.cpu_count() or 1
    return max(1, cores - workers)


def settings_of(modality: str, encoders: Encoders, cfg: RunConfig) -> dict[str, Any]:
    """Settings that must equal a manifest's for its outputs to count as complete."""
    s: dict[str, Any] = {
        "fingerprint": encoders.of(modality).fingerprint,
        "tail": cfg.opts.tail,
        "precision": cfg.precision,
    }
    if modality == "event":
        s.update(threshold=cfg.opts.threshold, event_norm=cfg.opts.event_norm, clamp=cfg.opts.clamp)
        s.update(cfg.events.settings())
    return s


def _manifest(
    modality: str,
    job: VideoJob,
    info: VideoInfo,
    encoders: Encoders,
    cfg: RunConfig,
    layout: OutputLayout,
    events: dict[str, Any] | None = None,
) -> dict[str, Any]:
    enc = encoders.of(modality)
    m = {
        "format": MANIFEST_FORMAT,
        "modality": modality,
        "video": {
            "path": str(job.video),
            "rel": job.rel,
            "size": job.size,
            "mtime_ns": job.mtime_ns,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "frames_reported": info.frames_reported,
            "frames_decoded": info.frames_decoded,
            "frames_used": info.frames_used,
            "warnings": info.warnings,
        },
        "T": info.num_snippets,
        "dim": enc.embed_dim,
        "crops": list(cfg.opts.crops),
        "files": {str(c): layout.feature_path(modality, job, c).name for c in cfg.opts.crops},
        "settings": settings_of(modality, encoders, cfg),
        "recipe": cfg.opts.as_dict(),
        "encoder": enc.metadata(),
        "device": str(enc.device),
        "dataset": cfg.dataset,
        "rank": cfg.rank,
        "world": cfg.world,
        "iefvad_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if modality == "event":
        m["events"] = {"source": cfg.events.source, "repr": cfg.events.repr, **(events or {})}
    return m


def feature_problem(features: dict[str, dict[int, np.ndarray]]) -> str | None:
    """None when every encoded feature array is finite and varies; else why not. NaN/Inf
    features come from broken weights (NaN in the file) or an fp16 overflow; features that are
    one value throughout (all zeros, say) from weights that carry no information (an integer
    file cast to float, an all-zero tensor): neither may be written as if extracted."""
    for m, per_crop in features.items():
        for c, arr in per_crop.items():
            if arr.size == 0:
                continue
            finite = np.isfinite(arr)
            if not finite.all():
                return (
                    f"{m} features of crop {c} hold {int((~finite).sum())} NaN/Inf value(s) of "
                    f"{arr.size} after encoding: the {m} encoder's weights hold NaN/Inf or "
                    "overflow in half precision (try --precision fp32, check the weights file)"
                )
            if arr.size > 1 and float(arr.max()) == float(arr.min()):
                return (
                    f"{m} features of crop {c} are the constant {float(arr.flat[0]):g} after "
                    f"encoding: the {m} encoder's weights carry no information (an all-zero or "
                    "integer-cast file?); check the weights file"
                )
    return None


def write_video(
    layout: OutputLayout,
    job: VideoJob,
    features: dict[str, dict[int, np.ndarray]],
    manifests: dict[str, dict[str, Any]],
) -> None:
    """Save one video's feature files atomically, then its manifests (the completion mark)."""
    for modality, per_crop in features.items():
        for crop, arr in per_crop.items():
            save_npy(
                layout.feature_path(modality, job, crop), np.ascontiguousarray(arr, np.float32)
            )
    for modality, m in manifests.items():
        save_json(layout.manifest_path(modality, job), m)


@dataclass(frozen=True)
class Plan:
    """This rank's work: videos to extract (with the modalities each still needs), videos
    already complete, why existing outputs are redone, the old files to delete before redoing
    them (:func:`iefvad.extraction.layout.stale_outputs`), videos whose valid old outputs stay
    until replaced, and the size of the whole listing."""

    todo: list[tuple[VideoJob, tuple[str, ...]]]
    complete: list[VideoJob]
    redo: dict[str, str]
    listed: int
    layout: OutputLayout
    remove: dict[str, list[Path]] = field(default_factory=dict)
    kept: frozenset[tuple[str, str]] = frozenset()
    """``(video, modality)`` pairs whose old outputs stay valid through a redo."""
    unreadable: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    """Video files found that cannot be extracted, with why (rank 0 reports them)."""


def plan(cfg: RunConfig, encoders: Encoders) -> Plan:
    """Check every video of this rank's shard against its manifests (see :class:`Plan`)."""
    for m in cfg.roots:
        if m not in encoders.modalities:
            raise ExtractError(f"an output root is set for {m} features but no {m} encoder")
    layout = OutputLayout({m: Path(p) for m, p in cfg.roots.items()})
    found = scan_videos(cfg.video_dir, cfg.class_folders, cfg.video_list)
    jobs = found.jobs
    todo: list[tuple[VideoJob, tuple[str, ...]]] = []
    complete: list[VideoJob] = []
    redo: dict[str, str] = {}
    remove: dict[str, list[Path]] = {}
    kept: set[tuple[str, str]] = set()
    for job in shard(jobs, cfg.rank, cfg.world):
        reasons = {}
        for m in cfg.roots:
            why = completion(layout, m, job, settings_of(m, encoders, cfg), cfg.opts.crops)
            if why is None and not cfg.overwrite:
                continue
            reasons[m] = "overwrite" if cfg.overwrite else why
            remove.setdefault(job.rel, []).extend(
                stale_outputs(layout, m, job, why, cfg.opts.crops)
            )
            if why in KEEP_REASONS:
                kept.add((job.rel, m))
        if not reasons:
            complete.append(job)
            continue
        todo.append((job, tuple(reasons)))
        real = {m: w for m, w in reasons.items() if w != "missing"}
        if real:
            redo[job.rel] = "; ".join(f"{m}: {w}" for m, w in real.items())
    remove = {rel: paths for rel, paths in remove.items() if paths}
    rejected = found.rejected if cfg.rank == 0 else {}
    return Plan(
        todo, complete, redo, len(jobs), layout, remove, frozenset(kept), found.unreadable, rejected
    )


def remove_stale(p: Plan) -> None:
    """Delete the old outputs of the videos about to be redone that are not valid for this run
    (see :func:`iefvad.extraction.layout.stale_outputs`): if a redo fails, none of them is left
    looking complete."""
    for rel, paths in p.remove.items():
        for path in paths:
            path.unlink(missing_ok=True)
        log.debug("%s: removed %d stale outputs before redoing it", rel, len(paths))


def _discard_failed(p: Plan, cfg: RunConfig, job: VideoJob, mods: tuple[str, ...]) -> None:
    """A video failed: unless its old outputs are still valid (:attr:`Plan.kept`), remove the
    feature files of the run's crops that have no manifest (left from before the run, or half
    written now), so that nothing of it looks usable."""
    for m in mods:
        if (job.rel, m) not in p.kept and not p.layout.manifest_path(m, job).exists():
            for c in cfg.opts.crops:
                p.layout.feature_path(m, job, c).unlink(missing_ok=True)


def _decode_worker(
    jobs: queue.Queue,
    out: queue.Queue,
    pool: BufferPool,
    cfg: RunConfig,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            idx, job = jobs.get_nowait()
        except queue.Empty:
            return
        info = VideoInfo(str(job.video))
        err: VideoError | None = None
        try:
            for group in iter_groups(
                job.video, cfg.opts.tail, pool.acquire, info, cfg.truncation_tolerance, rgb=True
            ):
                if stop.is_set():
                    group.buffer.release()
                    return
                if group.index == 0:  # the video is open: its frame rate is known
                    out.put(("open", idx, info))
                out.put(("group", idx, group))
        except VideoError as e:
            err = e
        except Exception as e:  # noqa: BLE001 - any decoder crash is this video's failure
            err = VideoError(job.video, "unreadable", f"decoding failed: {type(e).__name__}: {e}")
        out.put(("end", idx, (info, err)))


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", desc=desc, dynamic_ncols=True)
        self.t0 = time.perf_counter()
        self.frames = 0
        self.images = 0
        self._last = 0.0

    def add(self, frames: int, images: int) -> None:
        self.frames += frames
        self.images += images
        now = time.perf_counter()
        if self.bar is not None and now - self._last > 0.5:
            dt = max(now - self.t0, 1e-9)
            self.bar.set_postfix_str(
                f"{self.frames / dt:.0f} frames/s, {self.images / dt:.0f} images/s", refresh=True
            )
            self._last = now

    def video_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_extraction(cfg: RunConfig, encoders: Encoders) -> RunSummary:
    """Extract every video of this rank's shard that is not complete; see the module doc.

    Writes features and manifests under ``cfg.roots``, and in each root the failures file
    (``video<TAB>reason`` lines, rewritten each run) and a JSON summary. Returns the summary;
    KeyboardInterrupt is caught, recorded (``interrupted``) and the outputs so far are kept.
    Before anything is decoded: every output folder is created and probed for writing, and the
    roots are locked against a second run (:class:`iefvad.extraction.layout.RunLock`); either
    failing raises :class:`ExtractError`.
    """
    t0 = time.perf_counter()
    check_output_folders(cfg.roots.values())
    with RunLock(cfg.roots.values(), cfg.rank, cfg.world):
        return _extract_locked(cfg, encoders, t0)


class _Collector:
    """The consumer side of an extraction: encodes each decoded group, gathers a video's
    features until its decoder reports it finished, and hands finished videos to one writer
    thread; failures (decode, write) land in ``summary`` and remove the video's outputs."""

    def __init__(
        self, p: Plan, cfg: RunConfig, encoders: Encoders, summary: RunSummary, videos: int
    ) -> None:
        self.p, self.cfg, self.encoders, self.summary = p, cfg, encoders, summary
        self.progress = _Progress(videos, cfg.progress and bool(videos), f"extract r{cfg.rank}")
        self.subsets: dict[tuple[str, ...], Encoders] = {}
        self.parts: dict[int, dict[str, dict[int, list[torch.Tensor]]]] = {}
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iefvad-writer")
        self.writes: dict[str, Future] = {}
        self.jobs_of: dict[str, tuple[VideoJob, tuple[str, ...]]] = {}
        ev = cfg.events
        self.index = RecordingIndex(ev.event_dir) if ev.source == "recordings" else None  # type: ignore[arg-type]
        self.sources: dict[int, SnippetEventSource] = {}
        self.event_failed: dict[int, str] = {}

    def _encoders_for(self, mods: tuple[str, ...]) -> Encoders:
        """The encoders of ``mods`` only (a video may need one modality redone)."""
        enc = self.subsets.get(mods)
        if enc is None:
            e = self.encoders
            enc = self.subsets[mods] = Encoders(
                *(getattr(e, m) if m in mods else None for m in ("image", "event")),
                batch_size=e.batch_size,
            )
        return enc

    def start_video(self, idx: int, job: VideoJob, mods: tuple[str, ...], info: Any) -> None:
        """Video ``idx`` is open: set up its event source (a recording or the simulator)."""
        if "event" not in mods or self.cfg.events.from_frames:
            return
        try:
            src = open_source(self.cfg.events, self.index, job.stem, job.out_dir, info.fps)
        except (UserInputError, OSError) as e:
            self.event_failed[idx] = f"events: {e}"
            return
        if src is not None:
            self.sources[idx] = src

    def _event_counts(self, idx: int, frames: torch.Tensor, start: int) -> torch.Tensor | None:
        src = self.sources.get(idx)
        if src is None:
            return None
        try:
            return src.counts(frames, start // SNIPPET_FRAMES)
        except (UserInputError, OSError) as e:
            self.event_failed[idx] = f"events: {e}"
            return None

    def add_group(self, idx: int, mods: tuple[str, ...], group: Any) -> None:
        """Encode one decoded group of video ``idx`` and keep its features."""
        crops = self.cfg.opts.crops
        n = group.frames.shape[0]
        try:
            if idx in self.event_failed:
                return
            frames = group.buffer.tensor[:n]
            counts = self._event_counts(idx, frames, group.start) if "event" in mods else None
            if idx in self.event_failed:
                return
            feats = encode_snippets(
                self._encoders_for(mods),
                frames,
                self.cfg.opts,
                bgr=False,
                event_counts=counts,
                event_repr=self.cfg.events.repr or "counts",
            )
        finally:
            group.buffer.release()
        acc = self.parts.setdefault(idx, {m: {c: [] for c in crops} for m in mods})
        for m in mods:
            for c, f in getattr(feats, m).items():
                acc[m][c].append(f)
        images = len(crops) * (n * ("image" in mods) + group.num_snippets * ("event" in mods))
        self.progress.add(n, images)

    def finish_video(self, idx: int, job: VideoJob, mods: tuple[str, ...], payload: Any) -> None:
        """Video ``idx`` is decoded (or failed): queue its files for writing, or record why
        not and remove what it had written."""
        info, err = payload
        acc = self.parts.pop(idx, None)
        self.progress.video_done()
        source = self.sources.pop(idx, None)
        if err is None and idx in self.event_failed:
            err = VideoError(job.video, "events", self.event_failed.pop(idx))
        if err is not None:
            _discard_failed(self.p, self.cfg, job, mods)
            self.summary.failed[job.rel] = err.reason + (
                "; its previous outputs (same video and settings) are kept"
                if all((job.rel, m) in self.p.kept for m in mods)
                else ""
            )
            log.warning("skipped %s: %s", job.video, err.reason)
            return
        assert acc is not None  # a video without error has at least one group
        crops = self.cfg.opts.crops
        features = {m: {c: torch.cat(acc[m][c]).numpy() for c in crops} for m in mods}
        try:
            events = source.report(info.num_snippets) if source is not None else None
        except (UserInputError, OSError) as e:
            self.summary.failed[job.rel] = f"events: {e}"
            _discard_failed(self.p, self.cfg, job, mods)
            return
        bad = feature_problem(features)
        if bad is not None:
            _discard_failed(self.p, self.cfg, job, mods)
            self.summary.failed[job.rel] = bad
            log.warning("skipped %s: %s", job.video, bad)
            return
        manifests = {
            m: _manifest(m, job, info, self.encoders, self.cfg, self.p.layout, events) for m in mods
        }
        self.writes[job.rel] = self.writer.submit(
            write_video, self.p.layout, job, features, manifests
        )
        self.jobs_of[job.rel] = (job, mods)

    def close(self) -> None:
        """Wait for the writer; a failed write counts the video as failed and removes it."""
        self.progress.close()
        self.writer.shutdown(wait=True)
        for rel, fut in self.writes.items():
            err = fut.exception()
            if err is None:
                self.summary.done.append(rel)
            else:
                self.summary.failed[rel] = f"cannot write outputs: {type(err).__name__}: {err}"
                _discard_failed(self.p, self.cfg, *self.jobs_of[rel])
        self.summary.frames, self.summary.images = self.progress.frames, self.progress.images


def _extract_locked(cfg: RunConfig, encoders: Encoders, t0: float) -> RunSummary:
    p = plan(cfg, encoders)
    check_output_folders(p.layout.folder(m, job) for job, mods in p.todo for m in mods)
    summary = RunSummary(
        total=len(p.todo) + len(p.complete) + len(p.rejected),
        skipped=[j.rel for j in p.complete],
        redone=p.redo,
        failed=dict(p.rejected),
        unreadable=p.unreadable,
    )
    log.info(
        "shard %d/%d (%s videos of %d listed): %d complete, %d to extract",
        cfg.rank,
        cfg.world,
        summary.total,
        p.listed,
        len(p.complete),
        len(p.todo),
    )
    order = sorted(p.todo, key=lambda t: (-t[0].size, t[0].rel))
    collector = _Collector(p, cfg, encoders, summary, len(order))
    workers = max(1, min(cfg.workers, len(order)))
    qsize = max(2, workers)
    pool = BufferPool(workers + qsize + 1, pin=encoders.device.type == "cuda")
    jobs_q: queue.Queue = queue.Queue()
    for idx, (job, _) in enumerate(order):
        jobs_q.put((idx, job))
    out_q: queue.Queue = queue.Queue(maxsize=qsize)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_decode_worker, args=(jobs_q, out_q, pool, cfg, stop), daemon=True)
        for _ in range(workers)
    ]
    finished = 0
    try:
        remove_stale(p)
        for t in threads:
            t.start()
        while finished < len(order):
            try:
                kind, idx, payload = out_q.get(timeout=1.0)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and out_q.empty():
                    raise RuntimeError(
                        f"decode workers stopped with {len(order) - finished} videos unfinished"
                    ) from None
                continue
            job, mods = order[idx]
            if kind == "open":
                collector.start_video(idx, job, mods, payload)
            elif kind == "group":
                collector.add_group(idx, mods, payload)
            else:
                finished += 1
                collector.finish_video(idx, job, mods, payload)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted; outputs written so far are complete, rerun to resume")
    finally:
        stop.set()
        _drain(out_q, threads)
        collector.close()
        summary.seconds = time.perf_counter() - t0
        _write_reports(cfg, summary)
    return summary


def _drain(out_q: queue.Queue, threads: list[threading.Thread]) -> None:
    """Unblock decode threads after a stop: empty the queue (returning buffers) until they end."""
    while any(t.is_alive() for t in threads):
        try:
            kind, _, payload = out_q.get(timeout=0.05)
        except queue.Empty:
            continue
        if kind == "group" and payload.buffer is not None:
            payload.buffer.release()


def _write_reports(cfg: RunConfig, summary: RunSummary) -> None:
    for root in cfg.roots.values():
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        with atomic_write(root / failures_name(cfg.rank, cfg.world), "w") as f:
            f.writelines(line + "\n" for line in failure_lines(summary))
        save_json(root / summary_name(cfg.rank, cfg.world), summary.to_json())


def gather_summaries(summary: RunSummary, cfg: RunConfig) -> RunSummary | None:
    """Under torchrun: all ranks send their summary to rank 0 (gloo), which returns the total
    and writes the merged failures file; other ranks return None. A single process returns its
    own summary."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return summary
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, summary.to_json())
    if dist.get_rank() != 0:
        return None
    total = RunSummary()
    for p in parts:
        total.total += p["total"]
        total.done += p["done"]
        total.skipped += p["skipped"]
        total.redone.update(p["redone"])
        total.failed.update(p["failed"])
        total.unreadable = sorted({*total.unreadable, *p.get("unreadable", [])})
        total.frames += p["frames"]
        total.images += p["images"]
        total.seconds = max(total.seconds, p["seconds"])
        total.interrupted |= p["interrupted"]
    for root in cfg.roots.values():
        with atomic_write(Path(root) / failures_name(0, 1), "w") as f:
            f.writelines(line + "\n" for line in failure_lines(total))
    return total


def init_distributed() -> bool:
    """Join the torchrun group over gloo (CPU, small messages only) when launched by torchrun.

    Ranks may finish hours apart, so the timeout is long. Returns True when a group was made.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    if not dist.is_available():  # pragma: no cover - all regular torch builds have it
        return False
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=_dt.timedelta(days=7))
    return True
