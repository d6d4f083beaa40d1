"""Frame-level ground truth: the one implementation of the length rule.

A test video with T feature rows covers ``16 * T`` frames (REFERENCE.md section 4). The ground
truth of a test list is the concatenation, in list order, of one 0/1 array of ``16 * T`` frames
per video with the annotated ``[start, end)`` spans set to 1. It is saved as a float ``.npy``;
a JSON sidecar next to it (same stem, ``.json``) keeps the per-video names, frame counts, labels
and segments, which the length check and mAP@IoU use.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iefvad.datasets import SNIPPET_FRAMES
from iefvad.errors import UserInputError
from iefvad.fileio import save_json, save_npy

GT_FORMAT = "iefvad-gt/1"


class GroundTruthError(UserInputError):
    """The ground truth does not fit the test list."""


@dataclass
class VideoGT:
    """Ground truth of one test video.

    ``frames`` is ``16 * T``; ``segments`` are ``[start, end)`` frame spans, already clipped.
    """

    name: str
    label: str
    frames: int
    segments: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class GroundTruth:
    """A loaded ground truth: the frame array and, when the sidecar exists, per-video detail."""

    frames: np.ndarray
    videos: list[VideoGT] | None
    path: Path | None = None


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".npy")


def plain_name(name: str) -> str:
    """Video name without folder and known file suffix (names may contain dots, as XD's)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in VIDEO_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def frames_of(num_snippets: int) -> int:
    """Number of ground-truth frames of a video with ``num_snippets`` feature rows."""
    return SNIPPET_FRAMES * int(num_snippets)


def clip_segments(
    name: str, segments: Sequence[tuple[int, int]], frames: int, warn: bool = True
) -> list[tuple[int, int]]:
    """Clip ``[start, end)`` spans to ``[0, frames)``; drop empty ones; warn naming the video."""
    out: list[tuple[int, int]] = []
    for start, end in segments:
        s, e = max(0, int(start)), min(int(end), frames)
        if (s, e) != (int(start), int(end)) and warn:
            warnings.warn(
                f"{name}: annotated span [{start}, {end}) reaches beyond the {frames} frames "
                f"covered by its features; clipped to [{s}, {max(s, e)})",
                stacklevel=2,
            )
        if e > s:
            out.append((s, e))
    return out


def video_frame_labels(frames: int, segments: Sequence[tuple[int, int]]) -> np.ndarray:
    """0/1 float32 array of ``frames`` frames with every ``[start, end)`` span set to 1."""
    gt = np.zeros(frames, dtype=np.float32)
    for start, end in segments:
        gt[max(0, start) : max(0, min(end, frames))] = 1.0
    return gt


def build_gt(videos: Sequence[VideoGT]) -> np.ndarray:
    """Concatenated frame labels of ``videos`` (in order)."""
    if not videos:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([video_frame_labels(v.frames, v.segments) for v in videos])


def sidecar_path(gt_path: str | os.PathLike[str]) -> Path:
    return Path(gt_path).with_suffix(".json")


def save_gt(
    path: str | os.PathLike[str], videos: Sequence[VideoGT], dataset: str = ""
) -> np.ndarray:
    """Write the frame array to ``path`` (.npy) and the per-video sidecar; return the array."""
    path = Path(path)
    gt = build_gt(videos)
    save_npy(path, gt)
    meta = {
        "format": GT_FORMAT,
        "dataset": dataset,
        "total_frames": int(gt.size),
        "videos": [asdict(v) for v in videos],
    }
    save_json(sidecar_path(path), meta)
    return gt


def load_gt(path: str | os.PathLike[str]) -> GroundTruth:
    """Read a ground-truth ``.npy`` (and its sidecar when present)."""
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(
            f"ground-truth file {path} does not exist; create it with "
            f"`python list/generate_gt.py --dataset ... --csv_path TEST_CSV --save_path {path}` "
            "or pass --gt_path"
        )
    try:
        frames = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise GroundTruthError(f"cannot read ground-truth file {path}: {e}") from e
    frames = np.asarray(frames, dtype=np.float32).reshape(-1)
    videos = None
    side = sidecar_path(path)
    if side.is_file():
        meta = json.loads(side.read_text(encoding="utf-8"))
        videos = [
            VideoGT(v["name"], v["label"], int(v["frames"]), [tuple(s) for s in v["segments"]])
            for v in meta["videos"]
        ]
    return GroundTruth(frames, videos, path)


def check_gt_length(gt: GroundTruth, names: Sequence[str], num_snippets: Sequence[int]) -> None:
    """Raise :class:`GroundTruthError` unless ``gt`` has ``16 * T`` frames per listed video.

    The message names both lengths and the first video where the two disagree.
    """
    expected = [frames_of(t) for t in num_snippets]
    total = int(sum(expected))
    where = f" ({gt.path})" if gt.path else ""
    if gt.videos is not None:
        for i, (name, n) in enumerate(zip(names, expected)):
            if i >= len(gt.videos):
                raise GroundTruthError(
                    f"ground truth{where} has {gt.frames.size} frames but the test list needs "
                    f"{total} (16 x {sum(num_snippets)} snippets); its sidecar lists "
                    f"{len(gt.videos)} videos, the test list {len(names)}: the first video "
                    f"missing from the ground truth is {name!r}"
                )
            v = gt.videos[i]
            if v.frames != n or plain_name(v.name) != plain_name(name):
                raise GroundTruthError(
                    f"ground truth{where} has {gt.frames.size} frames, the test list needs "
                    f"{total}; the first video where they diverge is #{i} {name!r}: "
                    f"{n} frames from its features (T={n // SNIPPET_FRAMES}) but the ground "
                    f"truth holds {v.frames} frames for {v.name!r}. Regenerate the ground truth "
                    "from this test list (list/generate_gt.py)."
                )
        if len(gt.videos) != len(names):
            raise GroundTruthError(
                f"ground truth{where} lists {len(gt.videos)} videos, the test list "
                f"{len(names)}; the first extra video is {gt.videos[len(names)].name!r}"
            )
    if gt.frames.size != total:
        ends = np.cumsum(expected)
        first = int(np.searchsorted(ends, gt.frames.size, side="right"))
        hint = (
            f"the first video not covered exactly is #{first} {names[first]!r}"
            if first < len(names)
            else "every listed video is covered and the ground truth has extra frames"
        )
        raise GroundTruthError(
            f"ground truth{where} has {gt.frames.size} frames but the test list needs {total} "
            f"(16 x {sum(num_snippets)} snippets over {len(names)} videos); {hint}. "
            "Regenerate it from this test list (list/generate_gt.py)."
        )
