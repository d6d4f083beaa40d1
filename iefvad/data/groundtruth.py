"""Frame-level ground truth: the one implementation of the length rule.

A test video with T feature rows covers ``16 * T`` frames. The ground truth of a test list is
the concatenation, in list order, of one 0/1 array of ``16 * T`` frames per video with the
annotated ``[start, end)`` spans set to 1. It is saved as a float ``.npy``; a JSON sidecar next
to it (same stem, ``.json``) keeps the per-video names, frame counts, labels and segments, which
the order and length checks and mAP@IoU use. A bare ``.npy`` (the authors' released files) is
accepted, with one warning that the test list's order cannot be verified against it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iefvad.data.annotations import Annotations, read_annotations
from iefvad.data.csv_lists import ListRow, read_list, read_text, shorten, video_stem
from iefvad.data.list_rules import ListWarning, get_list_spec
from iefvad.datasets.specs import SNIPPET_FRAMES, DatasetSpec, get_spec
from iefvad.errors import UserInputError
from iefvad.fileio import load_npy, read_npy_header, save_json, save_npy
from iefvad.paths import path_problem, shown

GT_FORMAT = "iefvad-gt/1"


class GroundTruthError(UserInputError):
    """The ground truth does not fit the test list."""


class GroundTruthWarning(UserWarning):
    """A test video's annotation looks wrong (clipped span, label and spans disagree)."""


class UnverifiedOrderWarning(UserWarning):
    """A ground truth without its sidecar: the test list's order cannot be checked against it."""


class FeatureFileError(UserInputError):
    """A feature ``.npy`` is missing, unreadable, truncated or not ``[T, D]``."""


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


def frames_of(num_snippets: int) -> int:
    """Number of ground-truth frames of a video with ``num_snippets`` feature rows."""
    return SNIPPET_FRAMES * int(num_snippets)


def feature_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """Shape of a ``.npy`` read from its header only (no data is read).

    Raises :class:`FeatureFileError` when the file is missing, is not a ``.npy``, or is shorter
    than its header promises (an interrupted write).
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:  # never opened: a pipe would wait forever
        raise FeatureFileError(
            f"feature file {shown(path)} {problem}; regenerate the list from the features you "
            "have (list/generate_file.py) or fix the path"
        )
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FeatureFileError(
            f"feature file {shown(path)} does not exist; regenerate the list from the features "
            "you have (list/generate_file.py) or fix the path"
        ) from None
    except OSError as e:
        raise FeatureFileError(f"cannot open feature file {path}: {e}") from e
    with f:
        try:
            header = read_npy_header(f)
            if header is None:  # 3.0 (utf-8 header): let numpy parse it
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                return tuple(int(n) for n in arr.shape)
            shape, _, dtype = header
        except Exception as e:  # noqa: BLE001 - any malformed header gets the same message
            raise FeatureFileError(
                f"feature file {path} is not a readable .npy ({e}); re-extract it "
                "(extracting/) or remove it from the feature tree"
            ) from e
        need = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = os.fstat(f.fileno()).st_size
    if size < need:
        raise FeatureFileError(
            f"feature file {path} is truncated: its header promises shape {tuple(shape)} "
            f"{dtype} ({need} bytes) but the file has {size} bytes; re-extract it"
        )
    return tuple(int(n) for n in shape)


def num_snippets(path: str | os.PathLike[str]) -> int:
    """T of a ``[T, D]`` feature file, from its header; T must be at least 1."""
    shape = feature_shape(path)
    if len(shape) != 2 or shape[0] < 1:
        raise FeatureFileError(
            f"feature file {path} has shape {shape}; expected [T, D] with T >= 1 snippets "
            f"(a video needs more than {SNIPPET_FRAMES} frames). Remove it from the list or "
            "re-extract it"
        )
    return shape[0]


def video_key(name: str | os.PathLike[str]) -> str:
    """Name used to compare videos: folder, media extension and ``__<crop>`` dropped."""
    return video_stem(name)


def clip_segments(
    name: str, segments: Sequence[tuple[int, int]], frames: int, warn: bool = True
) -> list[tuple[int, int]]:
    """Clip ``[start, end)`` spans to ``[0, frames)``; drop empty ones; warn naming the video."""
    out: list[tuple[int, int]] = []
    for start, end in segments:
        s, e = max(0, int(start)), min(int(end), frames)
        if (s, e) != (int(start), int(end)) and warn:
            fate = f"clipped to [{s}, {e})" if e > s else "dropped (no frame of it is left)"
            warnings.warn(
                f"{name}: annotated span [{start}, {end}) reaches beyond the {frames} frames "
                f"covered by its features; {fate}",
                GroundTruthWarning,
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


def gt_videos(
    rows: Sequence[ListRow],
    dspec: DatasetSpec,
    annotations: Annotations | None,
    key: Callable[[str], str] = video_stem,
) -> list[VideoGT]:
    """Per-video ground truth of a test list, in list order.

    T comes from each feature file's header (16 x T frames); spans come from ``annotations``
    and are clipped to the video with a warning. A test video without an annotation entry is
    an error unless its label is normal.
    """
    seen: dict[str, int] = {}
    dups, label_errors, feature_errors, unannotated = [], [], [], []
    out: list[VideoGT] = []
    for r in rows:
        k = key(r.stem)
        if k in seen:
            dups.append(f"{r.stem} (lines {seen[k]} and {r.line})")
        seen.setdefault(k, r.line)
        err = dspec.check_label(r.label)
        if err:
            label_errors.append(f"line {r.line}: {err}")
        try:
            t = num_snippets(r.path)
        except FeatureFileError as e:
            feature_errors.append(str(e))
            continue
        frames = frames_of(t)
        entry = annotations.find(r.stem) if annotations is not None else None
        normal = dspec.is_normal(r.label)
        if entry is None:
            if not normal:
                unannotated.append(f"{r.stem} ({r.label})")
            out.append(VideoGT(r.stem, r.label, frames, []))
            continue
        if normal and entry.segments:
            warnings.warn(
                f"{r.stem}: labelled normal ({r.label}) but {annotations.path} line {entry.line} "
                f"annotates {len(entry.segments)} abnormal spans; they are set to 1",
                GroundTruthWarning,
                stacklevel=2,
            )
        if not normal and not entry.segments:
            warnings.warn(
                f"{r.stem}: labelled abnormal ({r.label}) but {annotations.path} line "
                f"{entry.line} has no span: all its frames are 0",
                GroundTruthWarning,
                stacklevel=2,
            )
        segs = clip_segments(r.stem, entry.segments, frames)
        out.append(VideoGT(r.stem, r.label, frames, segs))
    problems = []
    if dups:
        problems.append(
            f"the test list names {len(dups)} videos more than once: {shorten(dups)}; a test list "
            "holds one crop per video (generate it with list/generate_file.py)"
        )
    if label_errors:
        problems.append(
            f"{len(label_errors)} labels do not fit dataset {dspec.name!r} "
            f"(wrong --dataset?): {shorten(label_errors, 3)}"
        )
    if feature_errors:
        problems.append(
            f"{len(feature_errors)} unreadable feature files:\n  "
            + shorten(feature_errors, sep="\n  ")
        )
    if unannotated:
        src = (
            f"the annotation file {annotations.path}"
            if annotations is not None
            else "any annotation file (none was given: pass --frame_lbl_txt)"
        )
        problems.append(
            f"{len(unannotated)} abnormal test videos have no entry in {src}: "
            f"{shorten(unannotated)}. Add their spans (or -1 -1 for none) to the annotation file, "
            "or check that --dataset/--split/--frame_lbl_txt match the test list"
        )
    if problems:
        raise GroundTruthError("cannot build the ground truth:\n- " + "\n- ".join(problems))
    return out


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


REGENERATE = "Regenerate it from the test list with list/generate_gt.py"


def load_gt(path: str | os.PathLike[str]) -> GroundTruth:
    """Read a ground-truth ``.npy`` (and its sidecar when present).

    Raises :class:`GroundTruthError` naming the file when it is not a readable ``.npy`` of
    numbers, when a value is not 0 or 1 (the first one is named), or when the sidecar is
    malformed or describes another array.
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise GroundTruthError(
            f"ground-truth file {shown(path)} {problem}; create it with "
            f"`python list/generate_gt.py --dataset ... --csv_path TEST_CSV --save_path {path}` "
            "or pass --gt_path"
        )
    raw = _read_gt_array(path)
    side = sidecar_path(path)
    videos = _read_sidecar(side, path, raw.size) if side.is_file() else None
    _check_binary(path, raw, videos)
    frames = raw.astype(np.float32)
    if videos is not None:
        _check_sidecar_content(side, path, frames, videos)
    return GroundTruth(frames, videos, path)


def _read_gt_array(path: Path) -> np.ndarray:
    """The flattened array of a ground-truth ``.npy``; never reads more than the file holds."""
    try:
        with open(path, "rb") as f:
            header = read_npy_header(f)
            if header is None:  # 3.0 (utf-8 header): numpy parses it; mmap checks the size
                mm = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, dtype, need, size = mm.shape, mm.dtype, 0, 0
            else:
                shape, _, dtype = header
                need = f.tell() + math.prod(shape) * dtype.itemsize
                size = os.fstat(f.fileno()).st_size
    except Exception as e:  # noqa: BLE001 - any malformed file gets the same message
        raise GroundTruthError(
            f"ground-truth file {path} is not a readable .npy array ({e}). {REGENERATE}"
        ) from None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise GroundTruthError(
            f"ground-truth file {path} holds {dtype} values; expected 0/1 numbers (float, int "
            f"or bool). {REGENERATE}"
        )
    if size < need:
        raise GroundTruthError(
            f"ground-truth file {path} is truncated: its header promises shape {tuple(shape)} "
            f"{dtype} ({need} bytes) but the file has {size} bytes. {REGENERATE}"
        )
    try:
        arr = np.array(mm) if header is None else load_npy(path)
    except Exception as e:  # noqa: BLE001
        raise GroundTruthError(f"cannot read ground-truth file {path}: {e}. {REGENERATE}") from None
    return np.asarray(arr).reshape(-1)


def _check_binary(path: Path, raw: np.ndarray, videos: Sequence[VideoGT] | None) -> None:
    """Every value 0 or 1, else name the first bad frame (and its video when known)."""
    bad = ~((raw == 0) | (raw == 1))
    if not bad.any():
        return
    i = int(np.argmax(bad))
    value = raw[i].item()
    what = "is not a finite number" if not np.isfinite(value) else "is neither 0 nor 1"
    where = ""
    if videos:
        ends = np.cumsum([v.frames for v in videos])
        k = int(np.searchsorted(ends, i, side="right"))
        if k < len(videos):
            start = int(ends[k - 1]) if k else 0
            where = f" (frame {i - start} of video #{k} {videos[k].name!r})"
    raise GroundTruthError(
        f"ground-truth file {path}: the value at index {i}{where} is {value!r}, which {what}; "
        f"{int(bad.sum())} of its {raw.size} values are not 0/1. Frame labels are 0 (normal) "
        f"or 1 (abnormal). {REGENERATE}"
    )


def _read_sidecar(side: Path, path: Path, total: int) -> list[VideoGT]:
    """Parse and validate the per-video sidecar of ``path``."""

    def bad(why: str) -> GroundTruthError:
        return GroundTruthError(
            f"ground-truth sidecar {side} is malformed ({why}); regenerate the ground truth "
            "(list/generate_gt.py) or delete the sidecar"
        )

    text = read_text(side, "ground-truth sidecar", GroundTruthError)
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise bad(f"not JSON: {e}") from None
    entries = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        raise bad("expected an object with a 'videos' list")
    videos: list[VideoGT] = []
    for i, v in enumerate(entries):
        try:
            name, label, frames, segs = v["name"], v["label"], v["frames"], v["segments"]
        except (TypeError, KeyError):
            raise bad(f"video #{i} lacks name, label, frames or segments") from None
        if not isinstance(name, str) or not isinstance(label, str):
            raise bad(f"video #{i}: name and label must be strings")
        if not _is_int(frames) or frames < 0:
            raise bad(f"video #{i} {name!r}: frames must be an integer >= 0, found {frames!r}")
        if not isinstance(segs, list) or not all(
            isinstance(sg, list) and len(sg) == 2 and all(map(_is_int, sg)) for sg in segs
        ):
            raise bad(f"video #{i} {name!r}: segments must be [start, end] integer pairs")
        videos.append(VideoGT(name, label, frames, [(int(a), int(b)) for a, b in segs]))
    described = sum(v.frames for v in videos)
    if described != total:
        raise GroundTruthError(
            f"ground-truth sidecar {side} describes {described} frames over {len(videos)} "
            f"videos but {path} holds {total}: they come from different runs. "
            "Regenerate both with list/generate_gt.py, or delete the sidecar"
        )
    return videos


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_sidecar_content(
    side: Path, path: Path, frames: np.ndarray, videos: Sequence[VideoGT]
) -> None:
    """The sidecar's spans must rebuild the ``.npy`` exactly (same run, same order)."""
    rebuilt = build_gt(videos)
    diff = rebuilt != frames
    if not diff.any():
        return
    i = int(np.argmax(diff))
    ends = np.cumsum([v.frames for v in videos])
    k = int(np.searchsorted(ends, i, side="right"))
    raise GroundTruthError(
        f"ground-truth sidecar {side} does not describe {path}: at index {i} (video #{k} "
        f"{videos[k].name!r}) its spans give {rebuilt[i]:g} but the .npy holds {frames[i]:g}; "
        "they come from different runs. Regenerate both with list/generate_gt.py, or delete "
        "the sidecar"
    )


_WARNED_UNVERIFIED: set[str] = set()
"""Bare ground-truth files already warned about (one warning per file and process)."""


def check_gt_order(gt: GroundTruth, names: Sequence[str]) -> None:
    """Raise :class:`GroundTruthError` when the test list names its videos in another order
    (or other videos) than the ground truth's sidecar.

    A ground truth without a sidecar cannot be checked: a :class:`UnverifiedOrderWarning`
    naming the file says so, once per file.
    """
    where = f" {gt.path}" if gt.path else ""
    if gt.videos is None:
        key = str(gt.path.resolve()) if gt.path else ""
        if gt.path is not None and key not in _WARNED_UNVERIFIED:
            _WARNED_UNVERIFIED.add(key)
            warnings.warn(
                f"ground truth {gt.path} has no sidecar ({sidecar_path(gt.path).name}), so "
                "the order of the test list cannot be verified against it: a test list in "
                "another order than the one it was made from gives wrong metrics without an "
                "error. For a verifiable ground truth run `python list/generate_gt.py --dataset "
                f"... --csv_path TEST_CSV --save_path {gt.path}` (writes the .npy and its sidecar)",
                UnverifiedOrderWarning,
                stacklevel=3,
            )
        return
    for i, (v, name) in enumerate(zip(gt.videos, names)):
        if video_key(v.name) != video_key(name):
            listed = {video_key(x.name): j for j, x in enumerate(gt.videos)}
            j = listed.get(video_key(name))
            if j is not None:
                elsewhere = f"it is video #{j} of the ground truth: the list is in another order"
            else:
                elsewhere = "the ground truth has no video of that name: the list holds others"
            raise GroundTruthError(
                f"ground truth{where} does not match the test list's order: test video #{i} is "
                f"{name!r} but the ground truth's video #{i} is {v.name!r} ({elsewhere}). "
                "Metrics would be computed against the wrong frames. Restore the test list the "
                "ground truth was made from, or regenerate the ground truth from this test list "
                "(list/generate_gt.py)"
            )


def check_gt_length(gt: GroundTruth, names: Sequence[str], num_snippets: Sequence[int]) -> None:
    """Raise :class:`GroundTruthError` unless ``gt`` has ``16 * T`` frames per listed video, in
    the order of the list (checked with :func:`check_gt_order` when ``gt`` has a sidecar).

    The message names both lengths and the first video where the two disagree.
    """
    check_gt_order(gt, names)
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
            if v.frames != n or video_key(v.name) != video_key(name):
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
            f"counting frames, the ground truth ends inside or before video #{first} "
            f"{names[first]!r}; it has no per-video sidecar (.json), so the first video that "
            "diverges cannot be named exactly"
            if first < len(names)
            else "every listed video is covered and the ground truth has extra frames"
        )
        raise GroundTruthError(
            f"ground truth{where} has {gt.frames.size} frames but the test list needs {total} "
            f"(16 x {sum(num_snippets)} snippets over {len(names)} videos); {hint}. "
            "Regenerate it from this test list (list/generate_gt.py)."
        )


# --------------------------------------------------------------------------- from a test list


def default_annotations(dataset: str, split: str = "standard") -> Path | None:
    """The shipped annotation file of a benchmark split (None for custom data)."""
    spec = get_spec(dataset)
    return spec.resource(spec.split(split).annotations) if spec.splits else None


def load_annotations(
    dataset: str, path: str | os.PathLike[str] | None, split: str = "standard"
) -> Annotations | None:
    """Annotations of ``dataset`` from ``path`` (default: the shipped file of ``split``)."""
    spec = get_list_spec(dataset)
    path = path if path is not None else default_annotations(dataset, split)
    if path is None:
        return None
    return read_annotations(path, spec.annotation_text, spec.key)


@dataclass
class GTSummary:
    path: Path
    videos: list[VideoGT]
    frames: int
    abnormal_frames: int
    annotations: Path | None


def generate_gt(
    dataset: str,
    csv_path: str | os.PathLike[str],
    save_path: str | os.PathLike[str],
    frame_lbl_txt: str | os.PathLike[str] | None = None,
    split: str = "standard",
    data_root: str | os.PathLike[str] | None = None,
) -> GTSummary:
    """Write the frame ground truth (``.npy`` + ``.json`` sidecar) of a test list."""
    spec = get_list_spec(dataset)
    dspec = get_spec(dataset)
    rows = read_list(csv_path, data_root, flags="the test list with --csv_path")
    ann = load_annotations(dataset, frame_lbl_txt, split)
    videos = gt_videos(rows, dspec, ann, spec.key)
    if dspec.user_data and ann is not None:
        check_annotation_classes(ann, {v.name: v.label for v in videos})
    gt = save_gt(save_path, videos, dataset)
    return GTSummary(
        Path(save_path), videos, int(gt.size), int(gt.sum()), ann.path if ann is not None else None
    )


def check_annotation_classes(ann: Annotations, labels: Mapping[str, str]) -> None:
    """Warn when an annotation's class column disagrees with the video's folder label."""
    odd = [
        f"{n} ({ann[n].label} vs folder {labels[video_stem(n)]})"
        for n in ann
        if ann[n].label and video_stem(n) in labels and ann[n].label != labels[video_stem(n)]
    ]
    if odd:
        warnings.warn(
            f"annotation file {ann.path}: the class column of {len(odd)} videos differs from "
            f"their folder: {shorten(odd)}; the folder label is used",
            ListWarning,
            stacklevel=3,
        )
