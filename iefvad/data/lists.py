"""Train/test list CSVs and frame-level ground truth, for the four benchmarks and custom folders.

One implementation for every dataset: what differs is data in :data:`LIST_SPECS` (which shipped
split files give membership and labels, the annotation file and what its text column means,
folder-name aliases, a naming quirk). Custom folders (``normal/...``, ``abnormal/<class>/...``)
get their labels from the folder names.

Feature files are ``<root>/[<Class>/]<stem>__<crop>.npy``. Train rows hold every crop of a
training video, test rows one crop (``test_crop``). A tree written by our extractor holds a
``<stem>.manifest.json`` per complete video; in such a tree, videos without a complete manifest
(a failed or interrupted extraction) are left out with one warning. Rows follow the order of
the split file (so ``--split ief-vad`` reproduces the reference's CSVs row for row); custom rows
follow the natural order of their folder and name. Every feature header is read once to catch
unreadable, truncated or inconsistent files before training does.
"""

from __future__ import annotations

import json
import os
import random
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from iefvad.data.annotations import read_annotations
from iefvad.data.csv_lists import ListError, crop_of, shorten, video_stem, write_list
from iefvad.data.groundtruth import (  # noqa: F401 (generate_gt ...: re-exported)
    FeatureFileError,
    GTSummary,
    check_annotation_classes,
    default_annotations,
    feature_shape,
    generate_gt,
    load_annotations,
    num_snippets,
)
from iefvad.data.list_rules import (
    CUSTOM_ABNORMAL_DIR,
    CUSTOM_NORMAL_DIR,
    CUSTOM_NORMAL_LABEL,
    DEFAULT_TEST_CROP,
    VIDEO_SUFFIXES,
    ListWarning,
    Member,
    get_list_spec,
    index_members,
    read_membership,
    read_names,
    split_spec,
)
from iefvad.datasets.specs import get_spec
from iefvad.extraction.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX

# --------------------------------------------------------------------------- feature trees


@dataclass
class FeatureVideo:
    """All crop files of one video found under the feature root."""

    stem: str
    folder: str
    """Folder relative to the root, ``/``-separated; ``""`` for files in the root."""
    crops: dict[int, Path] = field(default_factory=dict)

    @property
    def rel(self) -> str:
        return f"{self.folder}/{self.stem}" if self.folder else self.stem

    @property
    def class_folder(self) -> str | None:
        """Innermost folder name (the reference's class folder), None in the root."""
        return PurePosixPath(self.folder).name if self.folder else None


def natural_key(text: str) -> list:
    """``Assault_2`` sorts before ``Assault_11``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def scan_features(base_path: str | os.PathLike[str]) -> list[FeatureVideo]:
    """Find every ``<stem>__<crop>.npy`` under ``base_path`` (symbolic links followed).

    Raises :class:`ListError` when the folder is missing, holds no features (videos only:
    extract them first), or holds ``.npy`` files without a ``__<crop>`` suffix.
    """
    base = Path(base_path)
    if not base.is_dir():
        raise ListError(
            f"feature folder {base} does not exist or is not a folder; pass --base_path with "
            "the root of the extracted features (e.g. .../rgb)"
        )
    videos: dict[tuple[str, str], FeatureVideo] = {}
    bad: list[str] = []
    n_video_files = 0
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            if fn.lower().endswith(VIDEO_SUFFIXES):
                n_video_files += 1
            if not fn.endswith(".npy"):
                continue
            crop = crop_of(fn)
            if crop is None:
                bad.append(f"{rel_dir}/{fn}" if rel_dir else fn)
                continue
            stem = video_stem(fn)
            v = videos.setdefault((rel_dir, stem), FeatureVideo(stem, rel_dir))
            v.crops[crop] = Path(dirpath) / fn
    if bad:
        raise ListError(
            f"feature folder {base}: {len(bad)} .npy files are not named <video>__<crop>.npy: "
            f"{shorten(bad)}. Rename them (crop 0..9, e.g. Abuse028_x264__0.npy) or move them out"
        )
    if not videos:
        hint = (
            f" It holds {n_video_files} video files: extract features first (extracting/) and "
            "pass the feature folder"
            if n_video_files
            else ""
        )
        raise ListError(f"feature folder {base} holds no <video>__<crop>.npy files.{hint}")
    return list(videos.values())


def has_manifests(root: Path) -> bool:
    """True when any ``<stem>.manifest.json`` lies under ``root`` (a tree our extractor wrote)."""
    for _, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(f.endswith(MANIFEST_SUFFIX) for f in filenames):
            return True
    return False


def manifest_problem(root: Path, v: FeatureVideo) -> str | None:
    """Why ``v``'s features under ``root`` are not complete by its manifest, or None.

    Incomplete: no manifest (extraction failed or was interrupted), an unreadable one, a crop
    the manifest lists but whose file is missing, or a crop file the manifest does not list
    (left over from an earlier run with other settings).
    """
    folder = root / v.folder if v.folder else root
    path = folder / f"{v.stem}{MANIFEST_SUFFIX}"
    if not path.is_file():
        return "no manifest"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unreadable manifest"
    listed = m.get("crops") if isinstance(m, dict) and m.get("format") == MANIFEST_FORMAT else None
    if not isinstance(listed, list) or not all(isinstance(c, int) for c in listed):
        return "manifest of another format"
    absent = [c for c in listed if not (folder / f"{v.stem}__{c}.npy").is_file()]
    if absent:
        return f"crops {','.join(map(str, absent))} missing"
    extra = sorted(set(v.crops) - set(listed))
    if extra:
        return f"crops {','.join(map(str, extra))} not in its manifest"
    return None


def drop_incomplete(
    base: Path, videos: Sequence[FeatureVideo], event_base: Path | None = None
) -> list[FeatureVideo]:
    """``videos`` less those whose extraction is incomplete, with one warning naming them.

    Checked in each tree (``base`` and ``event_base``) that holds manifests; a tree without
    any (released features) is taken as it is, without a warning.
    """
    roots = [(base, "")]
    if event_base is not None:
        roots.append((event_base, "event "))
    roots = [(r, what) for r, what in roots if has_manifests(r)]
    if not roots:
        return list(videos)
    kept: list[FeatureVideo] = []
    dropped: list[str] = []
    for v in videos:
        why = [f"{what}{p}" for r, what in roots if (p := manifest_problem(r, v))]
        if why:
            dropped.append(f"{v.rel} ({'; '.join(why)})")
        else:
            kept.append(v)
    if dropped:
        trees = " and ".join(str(r) for r, _ in roots)
        warnings.warn(
            f"left out {len(dropped)} videos whose extraction is incomplete: {trees} was written "
            f"by the extractor (<video>{MANIFEST_SUFFIX} marks a finished video) but these "
            f"videos have no complete manifest: {shorten(dropped)}. Rerun the extractor with "
            "the same options (it redoes only unfinished videos), then rebuild the lists",
            ListWarning,
            stacklevel=3,
        )
    return kept


def index_videos(
    base: Path, videos: Sequence[FeatureVideo], key: Callable[[str], str]
) -> dict[str, FeatureVideo]:
    """Videos by matching key; two folders holding the same video is an error."""
    out: dict[str, FeatureVideo] = {}
    dups: list[str] = []
    for v in videos:
        k = key(v.stem)
        if k in out:
            dups.append(f"{out[k].rel} and {v.rel}")
        else:
            out[k] = v
    if dups:
        raise ListError(
            f"feature folder {base}: {len(dups)} videos appear more than once (same name in "
            f"two places): {shorten(dups)}. Keep one copy of each video's features"
        )
    return out


def check_features(videos: Sequence[FeatureVideo]) -> dict[str, int]:
    """Read every crop's header; return T per video stem.

    Raises :class:`FeatureFileError` for unreadable or truncated files, crops of one video with
    different shapes, or videos of different feature widths D.
    """
    errors: list[str] = []
    lengths: dict[str, int] = {}
    widths: dict[int, list[str]] = defaultdict(list)
    for v in videos:
        shapes = {}
        for c, p in sorted(v.crops.items()):
            try:
                shape = feature_shape(p)
                if len(shape) != 2 or shape[0] < 1:
                    num_snippets(p)  # raises with the [T, D] message
                shapes[c] = shape
            except FeatureFileError as e:
                errors.append(str(e))
        if len(set(shapes.values())) > 1:
            errors.append(
                f"the crops of video {v.rel} have different shapes "
                f"({', '.join(f'crop {c}: {s}' for c, s in shapes.items())}); every crop of a "
                "video must have the same [T, D]: re-extract it"
            )
        elif shapes:
            t, d = next(iter(shapes.values()))
            lengths[v.stem] = t
            widths[d].append(v.rel)
    if errors:
        raise FeatureFileError(
            f"{len(errors)} problems with feature files:\n  " + shorten(errors, sep="\n  ")
        )
    if len(widths) > 1:
        parts = [f"D={d} ({len(vs)} videos, e.g. {vs[0]})" for d, vs in sorted(widths.items())]
        raise FeatureFileError(
            "feature files of different widths in one tree: "
            + "; ".join(parts)
            + ". Features from different encoders cannot be mixed: keep one width"
        )
    return lengths


def event_paths(
    base: Path, event_base: Path, videos: Sequence[FeatureVideo], lengths: Mapping[str, int]
) -> dict[Path, Path]:
    """Image path -> event path in the parallel tree ``event_base``; check existence and T."""
    out: dict[Path, Path] = {}
    errors: list[str] = []
    for v in videos:
        for p in v.crops.values():
            e = event_base / p.relative_to(base)
            try:
                shape = feature_shape(e)
            except FeatureFileError as err:
                errors.append(str(err))
                continue
            if shape[:1] != (lengths.get(v.stem),):
                errors.append(
                    f"event features {e} have shape {shape} but the image features {p} have "
                    f"T={lengths.get(v.stem)}; both must come from the same frames"
                )
            out[p] = e
    if errors:
        raise FeatureFileError(
            f"{len(errors)} problems with the event tree {event_base}:\n  "
            + shorten(errors, sep="\n  ")
        )
    return out


# --------------------------------------------------------------------------- building lists


@dataclass(frozen=True)
class ListEntry:
    """One CSV row."""

    path: Path
    label: str
    event_path: Path | None = None


@dataclass
class Lists:
    """Rows of the train and test CSVs and what was found on the way."""

    dataset: str
    split: str
    train: list[ListEntry]
    test: list[ListEntry]
    train_videos: int
    test_videos: int
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Per part (``train``/``test``): listed videos without features."""
    unknown: list[str] = field(default_factory=list)
    """Feature videos in no split file (only kept when ``skip_unknown``)."""
    notes: list[str] = field(default_factory=list)


def _train_entries(v: FeatureVideo, label: str, events: Mapping[Path, Path]) -> list[ListEntry]:
    return [ListEntry(p, label, events.get(p)) for _, p in sorted(v.crops.items())]


def _test_entry(v: FeatureVideo, label: str, crop: int, events: Mapping[Path, Path]) -> ListEntry:
    if crop not in v.crops:
        raise ListError(
            f"test video {v.rel} has no crop {crop} (found crops "
            f"{', '.join(map(str, sorted(v.crops)))}); pass --test_crop with a crop every test "
            "video has"
        )
    p = v.crops[crop]
    return ListEntry(p, label, events.get(p))


def _warn_crop_sets(videos: Sequence[FeatureVideo]) -> None:
    sets = Counter(tuple(sorted(v.crops)) for v in videos)
    if len(sets) > 1:
        common = sets.most_common(1)[0][0]
        odd = [
            f"{v.rel} (crops {','.join(map(str, sorted(v.crops)))})"
            for v in videos
            if tuple(sorted(v.crops)) != common
        ]
        warnings.warn(
            f"{len(odd)} videos do not have the usual crops {','.join(map(str, common))}: "
            f"{shorten(odd)}; their training rows hold only the crops present",
            ListWarning,
            stacklevel=3,
        )


def benchmark_lists(
    dataset: str,
    base_path: str | os.PathLike[str],
    split: str = "standard",
    test_crop: int = DEFAULT_TEST_CROP,
    skip_unknown: bool = False,
    event_base_path: str | os.PathLike[str] | None = None,
) -> Lists:
    """Train/test rows of a benchmark's feature tree under the given split.

    Membership and labels come from the shipped split files; a video found in a known class
    folder that disagrees with its listed label is an error. Feature videos in no split file
    are an error unless ``skip_unknown`` (then they are left out with a warning).
    """
    spec, dspec, sp = get_list_spec(dataset), get_spec(dataset), split_spec(dataset, split)
    if sp.note:
        warnings.warn(sp.note, ListWarning, stacklevel=2)
    base = Path(base_path)
    event_base = Path(event_base_path) if event_base_path else None
    found = drop_incomplete(base, scan_features(base), event_base)
    videos = index_videos(base, found, spec.key)
    parts: dict[str, dict[str, Member]] = {}
    for part, m in (("train", sp.train), ("test", sp.test)):
        path = dspec.resource(m.file)
        parts[part] = index_members(
            path, read_membership(path, m.label_rule, spec, dspec), spec.key
        )
    both = sorted(set(parts["train"]) & set(parts["test"]))
    if both:
        raise ListError(
            f"{dataset} split {split!r}: {len(both)} videos are in both the train and the test "
            f"file: {shorten(both)}"
        )
    known_labels = set(dspec.label_map) | set(spec.folder_aliases)
    unknown_keys = [k for k in videos if k not in parts["train"] and k not in parts["test"]]
    unknown = [videos[k].rel for k in unknown_keys]
    if unknown and not skip_unknown:
        hint = _elsewhere(dataset, split, unknown_keys)
        raise ListError(
            f"{len(unknown)} feature videos under {base} are in neither the train nor the test "
            f"list of {dataset} split {split!r}: {shorten(unknown)}.{hint} "
            "Check --dataset/--split and the feature folder, or pass --skip_unknown to leave "
            "them out"
        )
    if unknown:
        warnings.warn(
            f"left out {len(unknown)} feature videos that are in no {dataset} {split!r} split "
            f"file: {shorten(unknown)}",
            ListWarning,
            stacklevel=2,
        )
    conflicts = []
    for part in parts.values():
        for k, m in part.items():
            v = videos.get(k)
            folder = v.class_folder if v else None
            if folder in known_labels and dspec.class_folders:
                if spec.folder_aliases.get(folder, folder) != m.label:
                    conflicts.append(f"{v.rel} (listed as {m.label})")
    if conflicts:
        raise ListError(
            f"{len(conflicts)} feature videos sit in a class folder that disagrees with the "
            f"{dataset} split files: {shorten(conflicts)}. Move them to the right folder"
        )
    used = [videos[k] for part in parts.values() for k in part if k in videos]
    lengths = check_features(used)
    events = event_paths(base, event_base, used, lengths) if event_base else {}
    _warn_crop_sets([videos[k] for k in parts["train"] if k in videos])
    train = [
        e
        for k, m in parts["train"].items()
        if k in videos
        for e in _train_entries(videos[k], m.label, events)
    ]
    test = [
        _test_entry(videos[k], m.label, test_crop, events)
        for k, m in parts["test"].items()
        if k in videos
    ]
    missing = {p: [m.name for k, m in parts[p].items() if k not in videos] for p in parts}
    for part, names in missing.items():
        if names:
            warnings.warn(
                f"{len(names)} of the {len(parts[part])} {part} videos of {dataset} split "
                f"{split!r} have no features under {base}: {shorten(names)}; the {part} list "
                "covers only the videos found",
                ListWarning,
                stacklevel=2,
            )
    n_train = sum(k in videos for k in parts["train"])
    return Lists(dataset, split, train, test, n_train, len(test), missing, unknown)


def _elsewhere(dataset: str, split: str, keys: Sequence[str]) -> str:
    """A hint naming another split of ``dataset`` whose files list the ``keys``."""
    spec, dspec = get_list_spec(dataset), get_spec(dataset)
    for name, other in spec.splits.items():
        if name == split or other == spec.splits[split]:
            continue
        listed = set()
        for m in (other.train, other.test):
            path = dspec.resource(m.file)
            listed |= {spec.key(x.name) for x in read_membership(path, m.label_rule, spec, dspec)}
        n = sum(k in listed for k in keys)
        if n:
            return (
                f" {n} of them are in the {name!r} split files (the {split!r} files leave "
                "them out)."
            )
    return ""


def custom_labels(base: Path, videos: Sequence[FeatureVideo]) -> dict[str, str]:
    """Label of each custom video from its folder: ``normal`` or the class under ``abnormal/``."""
    labels: dict[str, str] = {}
    bad: list[str] = []
    for v in videos:
        parts = PurePosixPath(v.folder).parts
        if parts and parts[0] == CUSTOM_NORMAL_DIR:
            labels[v.stem] = CUSTOM_NORMAL_LABEL
        elif len(parts) >= 2 and parts[0] == CUSTOM_ABNORMAL_DIR:
            if parts[1].casefold() == CUSTOM_NORMAL_LABEL:
                bad.append(f"{v.rel} (class folder may not be called {parts[1]!r})")
            labels[v.stem] = parts[1]
        else:
            bad.append(v.rel)
    if bad:
        raise ListError(
            f"custom feature folder {base}: {len(bad)} videos are not under "
            f"{CUSTOM_NORMAL_DIR}/ or {CUSTOM_ABNORMAL_DIR}/<class>/: {shorten(bad)}. Expected "
            f"{base}/{CUSTOM_NORMAL_DIR}/<...>/<video>__<crop>.npy and "
            f"{base}/{CUSTOM_ABNORMAL_DIR}/<class>/<...>/<video>__<crop>.npy"
        )
    return labels


def select_fraction(
    labels: Mapping[str, str], fraction: float, seed: int, eligible: Callable[[str], bool]
) -> set[str]:
    """Stratified random test pick with ``random.Random(seed)``.

    Of a label with n videos, ``round(fraction * n)`` go to test, at least 1 and at most n - 1
    when n >= 2; they are drawn among the ``eligible`` videos only (annotated ones), with a
    warning when there are too few of those.
    """
    if not 0 < fraction < 1:
        raise ListError(f"--test_fraction must be between 0 and 1 (exclusive), got {fraction}")
    rng = random.Random(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    for stem, label in labels.items():
        groups[label].append(stem)
    picked: set[str] = set()
    short: list[str] = []
    for label in sorted(groups):
        n_all = len(groups[label])
        n = round(fraction * n_all)
        if n_all >= 2:
            n = min(max(n, 1), n_all - 1)
        names = sorted((s for s in groups[label] if eligible(s)), key=natural_key)
        if len(names) < n:
            short.append(f"{label} ({len(names)} of {n})")
            n = len(names)
        rng.shuffle(names)
        picked.update(names[:n])
    if short:
        warnings.warn(
            f"too few annotated videos to draw the test fraction from, per class: "
            f"{shorten(short)}; annotate more videos or pass --test_list",
            ListWarning,
            stacklevel=3,
        )
    return picked


def custom_lists(
    base_path: str | os.PathLike[str],
    test_list: str | os.PathLike[str] | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    test_crop: int = DEFAULT_TEST_CROP,
    annotations: str | os.PathLike[str] | None = None,
    event_base_path: str | os.PathLike[str] | None = None,
) -> Lists:
    """Train/test rows of a custom folder ``normal/...``, ``abnormal/<class>/...``.

    The test split is ``test_list`` (names, one per line), else a stratified ``test_fraction``
    drawn with ``seed``, else the videos named in ``annotations`` (a
    ``video,start_frame,end_frame[,class]`` CSV), else empty (training only). With
    ``annotations`` and ``test_fraction``, only annotated abnormal videos are drawn for test.
    """
    if test_list is not None and test_fraction is not None:
        raise ListError("pass either --test_list or --test_fraction, not both")
    base = Path(base_path)
    event_base = Path(event_base_path) if event_base_path else None
    found = drop_incomplete(base, scan_features(base), event_base)
    videos = index_videos(base, found, video_stem)
    labels = custom_labels(base, list(videos.values()))
    ann = read_annotations(annotations, key=video_stem) if annotations is not None else None
    if ann is not None:
        extra = [n for n in ann if n not in videos]
        if extra:
            raise ListError(
                f"annotation file {ann.path} names {len(extra)} videos with no features under "
                f"{base}: {shorten(extra)}. Fix the names (video file stem, e.g. clip_01) or "
                "remove those rows"
            )
        check_annotation_classes(ann, labels)

    notes: list[str] = []
    if test_list is not None:
        names = read_names(test_list)
        unknown = [n for _, n in names if n not in videos]
        if unknown:
            raise ListError(
                f"test list {test_list} names {len(unknown)} videos with no features under "
                f"{base}: {shorten(unknown)}. Use the video names (file stem without __<crop>)"
            )
        test_keys = [n for _, n in names]
        if len(set(test_keys)) != len(test_keys):
            dup = [n for n, c in Counter(test_keys).items() if c > 1]
            raise ListError(f"test list {test_list} names videos more than once: {shorten(dup)}")
        notes.append(f"test split from {test_list}")
    elif test_fraction is not None:

        def eligible(s: str) -> bool:
            return ann is None or labels[s] == CUSTOM_NORMAL_LABEL or s in ann

        picked = select_fraction(labels, test_fraction, seed, eligible)
        test_keys = sorted(picked, key=lambda s: natural_key(videos[s].rel))
        notes.append(f"test split: fraction {test_fraction} per class, seed {seed}")
    elif ann is not None:
        test_keys = sorted((n for n in ann), key=lambda s: natural_key(videos[s].rel))
        notes.append(f"test split: the videos named in {ann.path}")
    else:
        test_keys = []
        notes.append(
            "no test split (pass --test_list, --test_fraction or --frame_lbl_txt to make one): "
            "every video is a training video"
        )
    if ann is not None:
        unannotated = [
            videos[s].rel for s in test_keys if labels[s] != CUSTOM_NORMAL_LABEL and s not in ann
        ]
        if unannotated:
            raise ListError(
                f"{len(unannotated)} abnormal test videos have no entry in {ann.path}: "
                f"{shorten(unannotated)}. Add rows 'video,start_frame,end_frame' for them or "
                "leave them out of the test list"
            )
    test_set = set(test_keys)
    train_keys = sorted(
        (k for k in videos if k not in test_set), key=lambda s: natural_key(videos[s].rel)
    )
    lengths = check_features([videos[k] for k in videos])
    events = event_paths(base, event_base, list(videos.values()), lengths) if event_base else {}
    _warn_crop_sets([videos[k] for k in train_keys])
    train = [e for k in train_keys for e in _train_entries(videos[k], labels[k], events)]
    test = [_test_entry(videos[k], labels[k], test_crop, events) for k in test_keys]
    train_labels = Counter(labels[k] == CUSTOM_NORMAL_LABEL for k in train_keys)
    if train_keys and (not train_labels[True] or not train_labels[False]):
        warnings.warn(
            f"the custom training split has {train_labels[True]} normal and "
            f"{train_labels[False]} abnormal videos; weakly-supervised training needs both",
            ListWarning,
            stacklevel=2,
        )
    return Lists("custom", "custom", train, test, len(train_keys), len(test), notes=notes)


def write_lists(
    lists: Lists,
    train_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    relative: bool = True,
) -> list[Path]:
    """Write the non-empty CSVs; return the paths written."""
    written = []
    for rows, path in ((lists.train, train_path), (lists.test, test_path)):
        if not rows:
            continue
        if all(r.event_path is not None for r in rows):
            write_list(path, [(r.path, r.label, r.event_path) for r in rows], relative)
        else:
            write_list(path, [(r.path, r.label) for r in rows], relative)
        written.append(Path(path))
    return written
