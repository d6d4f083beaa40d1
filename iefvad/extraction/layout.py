"""Where extraction reads and writes: video discovery, output names, manifests, shards.

Layout (docs/reference.md section 1): ``<root>/<Class>/<stem>__<crop>.npy`` float32 ``[T, D]``, flat
(``<root>/<stem>__<crop>.npy``) for datasets without class folders (XD). One root per modality,
side by side (``.../rgb`` and ``.../event_thr_10``). Next to a video's feature files each root
holds ``<stem>.manifest.json``, written last: its presence, with settings equal to the current
run's and every feature file's header and size matching its ``T`` and ``dim``, is what makes a
video complete. A rerun skips complete videos and redoes the rest, deleting first whatever of
the old outputs is not valid for the run (:func:`stale_outputs`), so a redo that fails leaves
nothing that looks complete. :func:`feature_file_status` checks one feature file against its
manifest (for list builders).
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iefvad.errors import UserInputError
from iefvad.extraction.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX
from iefvad.fileio import probe_writable, read_npy_header
from iefvad.locks import holder, holder_text, is_held, try_lock
from iefvad.paths import name_problem, path_problem, shown
from iefvad.stored import Bound, StoredValueError, check_value
from iefvad.video.decode import NUM_CROPS, VIDEO_EXTENSIONS

log = logging.getLogger(__name__)


class ExtractError(UserInputError):
    """The run cannot start: bad folders, lists or options (the message says what to fix)."""


@dataclass(frozen=True)
class VideoJob:
    """One video to extract and where its features go."""

    video: Path
    """The video file."""
    rel: str
    """Its path relative to the video folder (posix), used in logs and summaries."""
    out_dir: str
    """Output sub-folder relative to each root: the class folder, or ``""`` (flat)."""
    stem: str
    size: int
    """File size in bytes (shard balancing, change detection)."""
    mtime_ns: int = 0


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")


def _job(video_dir: Path, video: Path, class_folders: bool) -> VideoJob:
    rel = video.relative_to(video_dir).as_posix()
    parent = Path(rel).parent.as_posix()
    st = video.stat()
    return VideoJob(
        video=video,
        rel=rel,
        out_dir="" if not class_folders or parent == "." else parent,
        stem=video.stem,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
    )


@dataclass(frozen=True)
class Discovery:
    """The videos found, and the folders that could not be read (relative, posix, ending in
    ``/``): their videos are missing from ``jobs``."""

    jobs: list[VideoJob]
    unreadable: list[str]
    rejected: dict[str, str] = field(default_factory=dict)
    """Video files that cannot be extracted, with why (a broken or looping symbolic link, a
    pipe, a name too long for its feature files): reported as failures, the others go on."""


def _walk_videos(root: Path) -> tuple[list[Path], list[str], dict[str, str]]:
    """Video files under ``root`` (hidden files and folders skipped, symlinked folders not
    followed), the sub-folders that could not be listed, and the video names that are not
    readable files (broken or looping links, pipes) with what they are."""
    unreadable: list[str] = []
    rejected: dict[str, str] = {}

    def skipped(err: OSError) -> None:
        where = Path(err.filename or root)
        rel = where.relative_to(root).as_posix() if where != root else "."
        unreadable.append(f"{rel}/")

    videos = []
    for folder, dirs, files in os.walk(root, onerror=skipped):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            f = Path(folder) / name
            if not _is_video(f):
                continue
            try:
                if f.is_file():
                    videos.append(f)
                    continue
            except OSError:  # a folder listable but not searchable (mode r--)
                unreadable.append(f"{Path(folder).relative_to(root).as_posix()}/")
                break
            problem = path_problem(f)
            if problem is not None and not problem.startswith("is a folder"):
                rejected[f.relative_to(root).as_posix()] = f"{problem}; skipped"
    return sorted(videos), sorted(set(unreadable)), rejected


def _read_video_list(video_list: Path, root: Path) -> list[Path]:
    try:
        text = video_list.read_text(encoding="utf-8", errors="surrogateescape")  # names are bytes
    except OSError as e:
        raise ExtractError(
            f"--videos {video_list}: cannot read it ({e.strerror}); pass a readable text file "
            "of video paths, one per line"
        ) from None
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    paths = [Path(ln) if Path(ln).is_absolute() else root / ln for ln in lines]
    missing, denied = [], []
    for p in paths:
        try:
            if not p.is_file():
                missing.append(str(p))
        except PermissionError:
            denied.append(str(p))
    if denied:
        raise ExtractError(
            f"--videos {video_list}: permission denied on the folder of {len(denied)} listed "
            f"files, first {denied[0]}; make the folders readable (chmod a+rx)"
        )
    if missing:
        raise ExtractError(
            f"--videos {video_list}: {len(missing)} listed files do not exist, first "
            f"{missing[0]}; paths are relative to --video_dir {root}"
        )
    outside = [str(p) for p in paths if not p.resolve().is_relative_to(root.resolve())]
    if outside:
        raise ExtractError(f"--videos {video_list}: {outside[0]} is not under --video_dir {root}")
    return sorted(set(paths))


def scan_videos(
    video_dir: str | os.PathLike[str],
    class_folders: bool = True,
    video_list: str | os.PathLike[str] | None = None,
) -> Discovery:
    """Videos under ``video_dir`` (recursively; hidden files and non-video files skipped).

    ``class_folders``: outputs keep the video's folder (``<Class>/``); False writes them flat.
    ``video_list``: a text file of video paths (relative to ``video_dir`` or absolute), one per
    line, to extract only those. Sub-folders that cannot be read are logged as a warning and
    returned in :attr:`Discovery.unreadable`. Raises :class:`ExtractError` for a missing or
    unreadable folder, no videos, listed files that do not exist, or two videos that would
    write the same feature files.
    """
    root = Path(video_dir).expanduser()
    if not root.is_dir():
        raise ExtractError(f"--video_dir {root} is not a folder; pass the folder of the videos")
    if not os.access(root, os.R_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise ExtractError(
            f"--video_dir {root}: permission denied (this user cannot list it); make it "
            "readable (chmod a+rx) or run as a user who can read it"
        )
    unreadable: list[str] = []
    rejected: dict[str, str] = {}
    if video_list is not None:
        videos = _read_video_list(Path(video_list), root)
    else:
        videos, unreadable, rejected = _walk_videos(root)
    for v in videos:  # features are named after the video: a name too long cannot be kept
        problem = name_problem(v.stem, reserve=len(MANIFEST_SUFFIX))
        if problem is not None:
            rejected[v.relative_to(root).as_posix()] = (
                f"its name {problem} ({v.stem[:20]}...{MANIFEST_SUFFIX}); rename the video, "
                "since its features are named after it"
            )
    videos = [v for v in videos if v.relative_to(root).as_posix() not in rejected]
    for rel, why in sorted(rejected.items()):
        log.warning("%s: %s", shown(rel), why)
    if unreadable:
        log.warning(
            "%d folders under %s cannot be read (permission denied); their videos are skipped "
            "and listed as failures: %s",
            len(unreadable),
            root,
            ", ".join(unreadable),
        )
    if not videos and not rejected:
        raise ExtractError(
            f"no video files under {root} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
            + (
                f"; {len(unreadable)} folders could not be read: {unreadable[0]}"
                if unreadable
                else ""
            )
        )
    jobs = [_job(root, v, class_folders) for v in videos]
    seen: dict[tuple[str, str], VideoJob] = {}
    for j in jobs:
        key = (j.out_dir, j.stem)
        if key in seen:
            raise ExtractError(
                f"{seen[key].video} and {j.video} would both write {j.out_dir or '.'}/"
                f"{j.stem}__<crop>.npy; rename one of them or extract them separately"
            )
        seen[key] = j
    if class_folders:
        top = [j for j in jobs if not j.out_dir]
        if top:
            log.warning(
                "%d videos lie directly in %s (e.g. %s) though this dataset has class folders; "
                "their features go to the top of the output folder",
                len(top),
                root,
                top[0].rel,
            )
    return Discovery(jobs, unreadable, rejected)


def discover_videos(
    video_dir: str | os.PathLike[str],
    class_folders: bool = True,
    video_list: str | os.PathLike[str] | None = None,
) -> list[VideoJob]:
    """The jobs of :func:`scan_videos` (unreadable folders only logged)."""
    return scan_videos(video_dir, class_folders, video_list).jobs


def shard(jobs: Sequence[VideoJob], rank: int, world: int) -> list[VideoJob]:
    """This rank's share of ``jobs``: every job in exactly one of ``world`` shards.

    Greedy balancing by file size (largest first to the least-loaded shard; ties by path), the
    same on every rank since it only depends on the listing.
    """
    if world < 1 or not 0 <= rank < world:
        raise ExtractError(f"shard {rank} of {world}: need 0 <= rank < world")
    loads = [0] * world
    mine: list[VideoJob] = []
    for j in sorted(jobs, key=lambda j: (-j.size, j.rel)):
        k = min(range(world), key=lambda i: (loads[i], i))
        loads[k] += max(j.size, 1)
        if k == rank:
            mine.append(j)
    return mine


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int, str]:
    """``(rank, world, where from)``: torchrun (``RANK``/``WORLD_SIZE``), a SLURM array
    (``SLURM_ARRAY_TASK_ID``/``_COUNT``/``_MIN``) or both combined, else ``SLURM_PROCID`` /
    ``SLURM_NTASKS``, else ``(0, 1)``."""
    env = os.environ if env is None else env
    rank, world, src = 0, 1, []
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        rank = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        world = int(env["SLURM_ARRAY_TASK_COUNT"])
        src.append("SLURM array")
    if "WORLD_SIZE" in env and "RANK" in env:
        w = int(env["WORLD_SIZE"])
        rank, world = rank * w + int(env["RANK"]), world * w
        src.append("torchrun")
    elif not src and "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        src.append("SLURM tasks")
    return rank, world, " x ".join(src) or "single process"


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> ``(3, 8)`` (rank counted from 0)."""
    try:
        a, b = text.split("/")
        rank, world = int(a), int(b)
    except ValueError:
        raise ExtractError(f"--shard expects RANK/WORLD such as 0/4, found {text!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise ExtractError(f"--shard {text}: need 0 <= RANK < WORLD")
    return rank, world


RELEASED_THRESHOLD = 10.0
"""The event threshold of every released feature set (``event_thr_10``)."""


def event_tree_name(released: str, threshold: float) -> str:
    """Name of the event feature tree: the dataset's released name (``event_thr_10``;
    ShanghaiTech ``event``) at the released threshold 10, else ``event_thr_<threshold>``
    (``event_thr_40``, ``event_thr_12.5``), so that a folder never claims another threshold."""
    return released if threshold == RELEASED_THRESHOLD else f"event_thr_{threshold:g}"


@dataclass(frozen=True)
class OutputLayout:
    """Output roots per modality (``{'image': .../rgb, 'event': .../event_thr_10}``)."""

    roots: Mapping[str, Path]

    def folder(self, modality: str, job: VideoJob) -> Path:
        return self.roots[modality] / job.out_dir if job.out_dir else self.roots[modality]

    def feature_path(self, modality: str, job: VideoJob, crop: int) -> Path:
        return self.folder(modality, job) / f"{job.stem}__{crop}.npy"

    def manifest_path(self, modality: str, job: VideoJob) -> Path:
        return self.folder(modality, job) / f"{job.stem}{MANIFEST_SUFFIX}"

    def stale_temporaries(self, modality: str, job: VideoJob) -> list[Path]:
        """Temporary files a killed run left for this video (``.<name>.*.tmp``)."""
        folder = self.folder(modality, job)
        if not folder.is_dir():
            return []
        return [
            p
            for p in folder.glob(glob.escape(f".{job.stem}") + "*.tmp")
            if p.name.startswith((f".{job.stem}__", f".{job.stem}{MANIFEST_SUFFIX}"))
        ]


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A manifest, or None when it is missing or unreadable (then the video is redone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


FEATURE_DTYPE = np.dtype("<f4")


def npy_problem(path: Path, rows: int, dim: int) -> str | None:
    """None when ``path`` is a complete float32 ``[rows, dim]`` ``.npy`` (header and file size
    agree), else why not: ``missing``, ``permission denied``, a bad header, another shape or
    dtype, or a size that is not ``header + rows * dim * 4`` bytes (truncated or overlong)."""
    try:
        with open(path, "rb") as f:
            header = read_npy_header(f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "permission denied"
    except (OSError, ValueError) as e:
        return f"not a readable .npy ({e})"
    if header is None:
        return "not a readable .npy (format 3.0 header)"
    shape, fortran, dtype = header
    if tuple(shape) != (rows, dim) or dtype != FEATURE_DTYPE or fortran:
        return f"holds {dtype} {list(shape)}, the manifest says float32 [{rows}, {dim}]"
    want = offset + rows * dim * FEATURE_DTYPE.itemsize
    if size != want:
        return f"{'truncated' if size < want else 'overlong'}: {size} bytes, expected {want}"
    return None


MANIFEST_BOUNDS = {"T": Bound("int", 0, 10**7), "dim": Bound("int", 1, 8192)}
"""A manifest's shape: up to ten million snippets (over 40 days of video at 30 fps) of up to
8192 values: anything else is a damaged or edited file, never an array to expect."""


def _manifest_shape(m: Mapping[str, Any], path: Path) -> tuple[int, int] | str:
    """``(T, dim)`` of manifest ``m``, or what is wrong with them."""
    try:
        for key in ("T", "dim"):
            check_value(m.get(key), MANIFEST_BOUNDS[key], str(path), key)
    except StoredValueError as e:
        return f"manifest unreadable ({e})"
    return m["T"], m["dim"]


def _read_sized_manifest(path: Path, absent: str) -> tuple[dict[str, Any], tuple[int, int]] | str:
    """``(manifest, (T, D))`` of ``path``, or the problem: ``absent`` when there is no file,
    ``manifest unreadable`` when it cannot be parsed or names no valid shape (then with the
    key and value)."""
    m = read_manifest(path)
    if m is None:
        return "manifest unreadable" if path.exists() else absent
    shape = _manifest_shape(m, path)
    return shape if isinstance(shape, str) else (m, shape)


def completion(
    layout: OutputLayout,
    modality: str,
    job: VideoJob,
    settings: Mapping[str, Any],
    crops: Sequence[int],
) -> str | None:
    """None when ``job``'s ``modality`` outputs are complete for ``settings`` and ``crops``,
    else why not: ``missing`` (no manifest), ``manifest unreadable``, ``settings changed:
    ...``, ``video changed``, ``partial`` (a feature file is missing), ``damaged <file>: ...``
    (see :func:`npy_problem`: a truncated file is redone), ``crops missing``."""
    found = _read_sized_manifest(layout.manifest_path(modality, job), "missing")
    if isinstance(found, str):
        return found
    m, shape = found
    had = m.get("settings", {})
    changed = [k for k, v in settings.items() if had.get(k, SETTING_DEFAULTS.get(k)) != v]
    if changed:
        return "settings changed: " + ", ".join(changed)
    src = m.get("video", {})
    if src.get("size") != job.size or src.get("mtime_ns") != job.mtime_ns:
        return "video changed"
    have = set(m.get("crops", []))
    for c in crops:
        if c not in have:
            continue
        f = layout.feature_path(modality, job, c)
        problem = npy_problem(f, *shape)
        if problem == "missing":
            return "partial"
        if problem is not None:
            return f"damaged {f.name}: {problem}"
    if not set(crops) <= have:
        return "crops missing"
    return None


SETTING_DEFAULTS: dict[str, Any] = {"event_source": "frames", "event_repr": "framediff"}
"""Settings added after manifests were first written, as those manifests' features were made:
an older manifest counts as written with these (its features stay complete)."""

KEEP_REASONS: frozenset[str | None] = frozenset({None, "crops missing"})
"""Completion results under which a video's old outputs are valid for the run (same video and
settings, every file intact): a redo (``--overwrite``, more crops) replaces them in place and a
failed redo leaves them as they were."""


def stale_outputs(
    layout: OutputLayout, modality: str, job: VideoJob, why: str | None, crops: Sequence[int]
) -> list[Path]:
    """Existing files to delete before redoing ``job``'s ``modality``, given its
    :func:`completion` result ``why``: none in :data:`KEEP_REASONS`; with a manifest that does
    not vouch for them (another video or other settings, a damaged or missing file, unreadable),
    the manifest, the run's crops and every crop it claims. Without a manifest nothing (files
    there were never claimed, e.g. a released set: the redo replaces them, and the pipeline
    removes them only if the redo fails). Killed writers' temporaries always go."""
    drop = set(layout.stale_temporaries(modality, job))
    manifest = layout.manifest_path(modality, job)
    if why not in KEEP_REASONS and (manifest.exists() or manifest.is_symlink()):
        old = read_manifest(manifest) or {}
        claimed = [c for c in old.get("crops", []) if isinstance(c, int) and 0 <= c < NUM_CROPS]
        drop.add(manifest)
        drop.update(layout.feature_path(modality, job, c) for c in {*crops, *claimed})
    return sorted(p for p in drop if p.exists() or p.is_symlink())


def feature_file_status(path: str | os.PathLike[str]) -> str | None:
    """None when the feature file ``<stem>__<crop>.npy`` is claimed by the manifest beside it
    (``<stem>.manifest.json`` lists the crop) and is a complete float32 ``[T, dim]`` array of
    that manifest; else why not: ``no manifest`` (released feature sets have none), ``manifest
    unreadable``, ``crop N not in its manifest``, or :func:`npy_problem`'s answer.

    For list builders: a file that fails this was left by an unfinished or failed extraction.
    """
    path = Path(path)
    stem, sep, crop = path.name.removesuffix(".npy").rpartition("__")
    if not sep or not crop.isdigit() or not path.name.endswith(".npy"):
        return f"{path.name} is not named <video>__<crop>.npy"
    found = _read_sized_manifest(path.with_name(f"{stem}{MANIFEST_SUFFIX}"), "no manifest")
    if isinstance(found, str):
        return found
    m, shape = found
    if int(crop) not in m.get("crops", []):
        return f"crop {int(crop)} not in its manifest"
    return npy_problem(path, *shape)


def failures_name(rank: int, world: int) -> str:
    return "extract_failures.txt" if world == 1 else f"extract_failures.rank{rank}of{world}.txt"


def summary_name(rank: int, world: int) -> str:
    return "extract_summary.json" if world == 1 else f"extract_summary.rank{rank}of{world}.json"


def check_output_folders(folders: Iterable[str | os.PathLike[str]]) -> None:
    """Create every output folder and write a probe file in it, before anything is decoded:
    raise :class:`ExtractError` naming the first folder that cannot be written and the fix
    (instead of a traceback once every video is encoded)."""
    problems: list[tuple[Path, str]] = []
    for folder in sorted({Path(f) for f in folders}):
        try:
            probe_writable(folder)
        except (FileExistsError, NotADirectoryError):
            problems.append((folder, "a file, not a folder, is in the way"))
        except OSError as e:
            problems.append((folder, e.strerror or str(e)))
    if problems:
        folder, why = problems[0]
        more = f" (and {len(problems) - 1} more output folders)" if len(problems) > 1 else ""
        raise ExtractError(
            f"cannot write features to {folder}: {why}{more}; nothing was extracted. Make it "
            "writable for this user (chmod u+w, or ask its owner; a read-only mount needs "
            "another place), or pass another --out_root / --save_dir"
        )


LOCK_NAME = ".iefvad-extract.lock"
"""Lock file in each output root: held exclusively by a single-process run, shared by the
ranks of a sharded run (each of which also holds its own ``.iefvad-extract.rank<r>of<n>.lock``
exclusively). The files stay after the run; the kernel releases the locks of a dead process."""


def _rank_lock_name(rank: int, world: int) -> str:
    return f".iefvad-extract.rank{rank}of{world}.lock"


class RunLock:
    """Exclusive use of output roots by one run (or by the ranks of one sharded run): taken
    without waiting; a second run fails at once with :class:`ExtractError` naming the folder
    and the other run's PID. A context manager; released on exit or when the process dies.

    ``world == 1``: an exclusive lock on :data:`LOCK_NAME`. Sharded (torchrun, SLURM,
    ``--shard``): a shared lock on it, so that the ranks of one run coexist and a single
    process run is refused, plus an exclusive lock on this rank's own file, so that the same
    shard of two runs is refused. File systems without locks get a warning and no lock.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]], rank: int = 0, world: int = 1):
        self.roots = sorted({Path(r) for r in roots})
        self.rank, self.world = rank, world
        self._fds: list[int] = []

    def _take(self, path: Path, exclusive: bool) -> bool:
        """Lock ``path``: False when another process holds it (True when locks are not
        supported: warned, not taken)."""
        where = f", shard {self.rank}/{self.world}" if self.world > 1 else ""
        fd = try_lock(path, exclusive, holder_text(where), "a second extraction into this folder")
        if fd is None:
            return False
        if fd >= 0:
            self._fds.append(fd)
        return True

    def _refuse(self, root: Path, path: Path) -> ExtractError:
        """The error for ``path`` held by another run; behind a refused main lock may be a
        single run (its PID is in the file) or a sharded run's ranks (PIDs in theirs)."""
        holders = [holder(path)]
        if path.name == LOCK_NAME:
            ranks = [p for p in sorted(root.glob(".iefvad-extract.rank*.lock")) if is_held(p)]
            holders = [holder(p) for p in ranks] or holders
        who = "; ".join(holders[:4]) + (
            f"; and {len(holders) - 4} more" if len(holders) > 4 else ""
        )
        return ExtractError(
            f"another extraction ({who}) is writing to {root}: wait for it to end, or stop it "
            "(two runs into one folder would overwrite each other's videos); to split the "
            "videos between processes use torchrun or --shard RANK/WORLD"
        )

    def __enter__(self) -> RunLock:
        try:
            for root in self.roots:
                root.mkdir(parents=True, exist_ok=True)
                main = root / LOCK_NAME
                if not self._take(main, exclusive=self.world == 1):
                    raise self._refuse(root, main)
                if self.world > 1:
                    own = root / _rank_lock_name(self.rank, self.world)
                    if not self._take(own, exclusive=True):
                        raise self._refuse(root, own)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())  # closing the file releases its lock

    def __exit__(self, *exc: object) -> None:
        self.release()
