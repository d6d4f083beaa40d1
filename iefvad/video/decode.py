"""Video decoding, the 340x256 resize, the frame-count rule and the ten 224x224 crops.

The recipe of docs/reference.md section 2: every frame is decoded with OpenCV (BGR), resized to
340x256 (W x H, aspect ignored) with ``cv2.INTER_LINEAR``, and cut into 224x224 crops. Frames
are handled in groups of 512 (32 snippets of 16 frames), the unit of the reference's batching
and of its event normalisation.

Decoding is done by :func:`iter_groups`, which yields the resized frames of one video group by
group (never the whole video in memory) into buffers the caller may supply (pinned memory).
Cropping is :func:`crop_array` (numpy, the definition) and :func:`crop_tensor` (torch, on any
device; the pipeline's path).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from iefvad.datasets.specs import SNIPPET_FRAMES

RESIZE_W = 340
RESIZE_H = 256
CROP_SIZE = 224
GROUP_SNIPPETS = 32
"""Snippets per group: the reference encodes (and normalises events over) 32 snippets at once."""
GROUP_FRAMES = GROUP_SNIPPETS * SNIPPET_FRAMES
"""512 frames per group."""
NUM_CROPS = 10

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ts"}
)

Tail = Literal["reference", "full", "pad"]
TAILS: tuple[str, ...] = ("reference", "full", "pad")
"""Frame-count rules: ``reference`` is docs/reference.md s.2.4 (the default; T matches the released
features and ground truth); ``full`` keeps every complete snippet (``floor(N/16)``; differs from
the reference only when the last group has exactly 16 frames); ``pad`` also keeps a last partial
snippet, padded by repeating its last frame (``ceil(N/16)``; for scoring every frame of a
user's video)."""

# Top-left corner (row, col) of crops 0..4 in the 256x340 frame; 5..9 are 0..4 flipped.
_CORNERS: dict[int, tuple[int, int]] = {
    0: (16, 58),
    1: (0, 0),
    2: (0, RESIZE_W - CROP_SIZE),
    3: (RESIZE_H - CROP_SIZE, 0),
    4: (RESIZE_H - CROP_SIZE, RESIZE_W - CROP_SIZE),
}


class VideoError(Exception):
    """A video cannot be used: unreadable, empty, truncated or too short.

    ``reason`` is a short human sentence (it goes to the failures file); ``kind`` is one of
    ``missing``, ``permission``, ``empty``, ``unreadable``, ``truncated``, ``too_short``.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.kind = kind
        self.reason = reason


def crop_box(crop: int) -> tuple[int, int, bool]:
    """``(row0, col0, flipped)`` of crop 0..9 in a 256x340 frame (docs/reference.md s.2.2)."""
    if not 0 <= crop < NUM_CROPS:
        raise ValueError(f"crop must be in 0..9, found {crop}")
    r0, c0 = _CORNERS[crop % 5]
    return r0, c0, crop >= 5


def crop_array(frames: np.ndarray, crop: int) -> np.ndarray:
    """Crop ``frames`` ``[..., 256, 340, C]`` to ``[..., 224, 224, C]`` (a copy when flipped)."""
    r0, c0, flip = crop_box(crop)
    out = frames[..., r0 : r0 + CROP_SIZE, c0 : c0 + CROP_SIZE, :]
    return out[..., ::-1, :] if flip else out


def crop_tensor(x: torch.Tensor, crop: int, channels_last: bool = True) -> torch.Tensor:
    """Crop a tensor of frames on its own device.

    ``x``: ``[..., 256, 340, C]`` (``channels_last``) or ``[..., C, 256, 340]``; returns the
    224x224 crop, flipped horizontally (a copy) for crops 5..9, else a view.
    """
    r0, c0, flip = crop_box(crop)
    if channels_last:
        out = x[..., r0 : r0 + CROP_SIZE, c0 : c0 + CROP_SIZE, :]
        return out.flip(-2) if flip else out
    out = x[..., r0 : r0 + CROP_SIZE, c0 : c0 + CROP_SIZE]
    return out.flip(-1) if flip else out


def num_snippets(num_frames: int, tail: Tail = "reference") -> int:
    """Feature rows T of a video of ``num_frames`` frames.

    ``reference``: ``T = 32*floor(N/512) + (floor(L/16) if L > 16 else 0)``, ``L = N mod 512``
    (a last group of exactly 16 frames is dropped, as in the reference).
    """
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {', '.join(TAILS)}, found {tail!r}")
    n = int(num_frames)
    if tail == "full":
        return n // SNIPPET_FRAMES
    if tail == "pad":
        return -(-n // SNIPPET_FRAMES)
    rest = n % GROUP_FRAMES
    return GROUP_SNIPPETS * (n // GROUP_FRAMES) + (rest // SNIPPET_FRAMES if rest > 16 else 0)


def tail_frames(rest: int, tail: Tail = "reference") -> int:
    """Frames kept (after padding) from a last group of ``rest`` (< 512) frames."""
    return SNIPPET_FRAMES * num_snippets(rest, tail)


def resize_frame(frame: np.ndarray, out: np.ndarray | None = None, rgb: bool = False) -> np.ndarray:
    """Resize one BGR frame ``[H, W, 3]`` uint8 to ``[256, 340, 3]`` with cv2 INTER_LINEAR.

    ``out``: optional ``[256, 340, 3]`` uint8 C-contiguous array written in place; ``rgb``:
    also convert BGR->RGB (as the reference does right after the resize).
    """
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"expected a frame [H, W, 3] (BGR), found shape {tuple(frame.shape)}")
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, found {frame.dtype}")
    if rgb:
        small = cv2.resize(frame, (RESIZE_W, RESIZE_H), interpolation=cv2.INTER_LINEAR)
        if out is None:
            return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        res = cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=out)
    elif out is None:
        return cv2.resize(frame, (RESIZE_W, RESIZE_H), interpolation=cv2.INTER_LINEAR)
    else:
        res = cv2.resize(frame, (RESIZE_W, RESIZE_H), dst=out, interpolation=cv2.INTER_LINEAR)
    if not np.shares_memory(res, out):  # cv2 did not write in place (unexpected layout)
        out[...] = res
    return out


@dataclass
class VideoInfo:
    """What decoding one video found; it goes to the manifest."""

    path: str
    fps: float = 0.0
    width: int = 0
    height: int = 0
    frames_reported: int = -1
    """Frame count the container claims (-1 when unknown)."""
    frames_decoded: int = 0
    """Frames actually decoded: N of the frame-count rule."""
    frames_used: int = 0
    """Frames that went into snippets (``16 * T``, padding included for ``tail='pad'``)."""
    num_snippets: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class FrameGroup:
    """Resized frames of one group: ``frames`` ``[F, 256, 340, 3]`` uint8, F = 16 * S, BGR
    (as OpenCV decodes) or RGB when ``rgb``.

    ``frames`` may be a view of a pooled buffer (see :func:`iter_groups`); ``index`` counts the
    video's groups from 0, ``start`` is the index of its first frame in the video.
    """

    frames: np.ndarray
    index: int
    start: int
    buffer: object = None
    """The pooled buffer ``frames`` lives in (hand it back to the pool when done), or None."""
    rgb: bool = False

    @property
    def num_snippets(self) -> int:
        return self.frames.shape[0] // SNIPPET_FRAMES


BufferFactory = Callable[[], tuple[object, np.ndarray]]
"""Returns ``(handle, array [512, 256, 340, 3] uint8)``: a buffer to decode one group into."""


def new_buffer() -> tuple[object, np.ndarray]:
    """A fresh (not pooled) group buffer."""
    return None, np.empty((GROUP_FRAMES, RESIZE_H, RESIZE_W, 3), dtype=np.uint8)


def group_frames(
    frames: Iterable[np.ndarray],
    info: VideoInfo,
    tail: Tail = "reference",
    alloc: BufferFactory = new_buffer,
    rgb: bool = False,
) -> Iterator[FrameGroup]:
    """Resize raw BGR frames and yield them in groups of 512 following the rule ``tail``.

    ``rgb``: convert the resized frames to RGB (in this thread: decode workers do it).

    Full groups are yielded as they fill; the last partial group is trimmed (or padded) per
    :func:`num_snippets`. Updates ``info`` (frames decoded/used, snippets, size of the first
    frame). A group that is not yielded is never returned to the caller's pool: with a pool,
    ``alloc`` must return buffers the caller can reclaim (see :mod:`iefvad.extraction.pipeline`).
    """
    handle, buf = alloc()
    n_in_group = 0
    index = 0
    total = 0
    try:
        for frame in frames:
            if total == 0:
                info.height, info.width = int(frame.shape[0]), int(frame.shape[1])
            resize_frame(frame, buf[n_in_group], rgb)
            n_in_group += 1
            total += 1
            if n_in_group == GROUP_FRAMES:
                info.frames_decoded = total
                info.frames_used += GROUP_FRAMES
                info.num_snippets += GROUP_SNIPPETS
                group = FrameGroup(buf, index, total - GROUP_FRAMES, handle, rgb)
                handle, buf = None, None
                yield group
                index += 1
                handle, buf = alloc()
                n_in_group = 0
        info.frames_decoded = total
        keep = tail_frames(n_in_group, tail)
        if keep > n_in_group:  # tail='pad': repeat the last frame
            buf[n_in_group:keep] = buf[n_in_group - 1]
        if keep:
            info.frames_used += keep
            info.num_snippets += keep // SNIPPET_FRAMES
            group = FrameGroup(buf[:keep], index, total - n_in_group, handle, rgb)
            handle, buf = None, None
            yield group
    finally:
        if handle is not None and hasattr(handle, "release"):
            handle.release()


def capture(path: str | os.PathLike[str]) -> cv2.VideoCapture:
    """``cv2.VideoCapture(path)``, safe for any file name. OpenCV's Python binding crashes the
    process (a segmentation fault) on a path that is not UTF-8 (a name Python holds with lone
    surrogates); such a file is opened through a symbolic link with a plain name in a fresh
    temporary folder, removed as soon as the decoder holds the file."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return cv2.VideoCapture(text)
    suffix = os.path.splitext(text)[1]
    try:
        suffix.encode("ascii")
    except UnicodeEncodeError:
        suffix = ".video"
    with tempfile.TemporaryDirectory(prefix="iefvad-video-") as folder:
        alias = os.path.join(folder, f"video{suffix}")
        os.symlink(os.path.abspath(text), alias)
        return cv2.VideoCapture(alias)


def open_video(path: str | os.PathLike[str]) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open ``path`` with OpenCV; raise :class:`VideoError` when it cannot be opened."""
    p = Path(path)
    try:  # OpenCV says "cannot open" for every reason: find out first
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise VideoError(path, "missing", "not a regular file (a folder, pipe or device)")
        with open(p, "rb"):
            size = st.st_size
    except FileNotFoundError:
        raise VideoError(path, "missing", "file does not exist") from None
    except PermissionError:
        raise VideoError(
            path,
            "permission",
            "permission denied: this user cannot read the file; make it readable (chmod a+r, "
            "and a+x on its folders) or run as a user who can read it",
        ) from None
    except OSError as e:
        raise VideoError(path, "unreadable", f"cannot read the file: {e.strerror}") from None
    if size == 0:
        raise VideoError(path, "empty", "empty file (0 bytes)")
    cap = capture(p)
    if not cap.isOpened():
        cap.release()
        raise VideoError(
            path,
            "unreadable",
            "OpenCV cannot open it: corrupt or truncated container (e.g. an mp4 without its "
            "moov atom), or a codec this OpenCV build lacks",
        )
    info = VideoInfo(str(p))
    info.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    info.frames_reported = int(count) if count and count > 0 else -1
    return cap, info


def read_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """Every frame of an opened capture, BGR ``[H, W, 3]`` uint8, until decoding stops."""
    frame = None
    while True:
        ok, frame = cap.read(frame)
        if not ok:
            return
        yield frame


def check_decoded(info: VideoInfo, tail: Tail, truncation_tolerance: float | None) -> None:
    """Raise :class:`VideoError` for an empty, truncated or too-short decode.

    ``truncation_tolerance``: a video is truncated when it decodes fewer than
    ``(1 - tol) * reported - 2`` frames of the ``reported`` count its container claims; None
    disables the check (the shortfall is then only recorded as a warning).
    """
    n, rep = info.frames_decoded, info.frames_reported
    if n == 0:
        raise VideoError(info.path, "empty", "no frame could be decoded")
    if rep > 0 and n < rep:
        msg = f"decoded {n} of the {rep} frames the container reports"
        if truncation_tolerance is not None and n < (1.0 - truncation_tolerance) * rep - 2:
            raise VideoError(
                info.path,
                "truncated",
                f"truncated or corrupt: {msg} (pass --allow_truncated to keep its features)",
            )
        info.warnings.append(msg)
    if info.num_snippets == 0:
        if n < SNIPPET_FRAMES:
            why = f"too short: {n} frames, fewer than one {SNIPPET_FRAMES}-frame snippet"
        else:
            why = (
                f"too short: {n} frames give T=0 under the frame-count rule {tail!r} "
                "(a last group of exactly 16 frames is dropped; --tail full keeps it)"
            )
        raise VideoError(info.path, "too_short", why)


def iter_groups(
    path: str | os.PathLike[str],
    tail: Tail = "reference",
    alloc: BufferFactory = new_buffer,
    info: VideoInfo | None = None,
    truncation_tolerance: float | None = 0.02,
    rgb: bool = False,
) -> Iterator[FrameGroup]:
    """Decode ``path`` once and yield its resized frames group by group.

    Raises :class:`VideoError` (before or after yielding groups) when the video cannot be
    opened, decodes no frame, is truncated, or has no snippet under ``tail``; ``info`` (when
    given) is filled in either way.
    """
    cap, found = open_video(path)
    if info is not None:
        info.__dict__.update(found.__dict__)
        found = info
    try:
        yield from group_frames(read_frames(cap), found, tail, alloc, rgb)
    finally:
        cap.release()
    check_decoded(found, tail, truncation_tolerance)


def decode_resized(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of ``path`` resized to ``[N, 256, 340, 3]`` uint8 BGR (tests, small videos)."""
    cap, _ = open_video(path)
    try:
        frames = [resize_frame(f) for f in read_frames(cap)]
    finally:
        cap.release()
    if not frames:
        return np.zeros((0, RESIZE_H, RESIZE_W, 3), np.uint8)
    return np.stack(frames)
