"""Per-dataset list rules as data: split files, labels, annotation files, naming quirks."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from iefvad.data.csv_lists import ListError, read_text, video_stem
from iefvad.datasets.specs import DATASETS, DatasetSpec
from iefvad.errors import UserInputError

SPLITS = ("standard", "ief-vad")
DEFAULT_TEST_CROP = 5
CUSTOM_NORMAL_DIR = "normal"
CUSTOM_ABNORMAL_DIR = "abnormal"
CUSTOM_NORMAL_LABEL = "normal"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

LIST_DIR = Path(__file__).resolve().parents[2] / "list"
"""The ``list/`` folder of a source checkout: home of the default CSV and ground-truth files."""


@dataclass(frozen=True)
class ListPaths:
    train: Path
    test: Path
    gt: Path


def default_paths(dataset: str, list_dir: str | os.PathLike[str] | None = None) -> ListPaths:
    """``list/<dataset>/{train.csv,test.csv,gt.npy}``: where presets look for lists (the
    checkout's ``list/`` folder, else ``./list``)."""
    d = Path(list_dir) if list_dir is not None else LIST_DIR if LIST_DIR.is_dir() else Path("list")
    return ListPaths(d / dataset / "train.csv", d / dataset / "test.csv", d / dataset / "gt.npy")


class ListWarning(UserWarning):
    """Something in the inputs is suspicious but the lists can still be written."""


# --------------------------------------------------------------------------- dataset list specs


@dataclass(frozen=True)
class Membership:
    """A shipped split file and how each of its lines gives a video's name and label.

    ``label_rule``: ``column`` (``Class/name,label`` CSV), ``folder`` (``Folder/name.mp4``, the
    folder is the label after :attr:`ListSpec.folder_aliases`) or ``name`` (XD: the text after
    ``_label_`` in the name).
    """

    file: str
    label_rule: str


@dataclass(frozen=True)
class SplitSpec:
    """Train and test membership of one split, its annotation file and a note to warn with."""

    train: Membership
    test: Membership
    annotations: str
    note: str | None = None


@dataclass(frozen=True)
class ListSpec:
    """How one benchmark's videos are named, split and annotated."""

    dataset: str
    splits: Mapping[str, SplitSpec]
    annotation_text: str = "class"
    """Meaning of the annotation file's text column: ``class`` or ``scene`` (MSAD)."""
    folder_aliases: Mapping[str, str] = field(default_factory=dict)
    """Folder names that stand for a label (UCF's ``Testing_Normal_Videos_Anomaly``)."""
    drop_suffix: str = ""
    """Suffix ignored when matching names (UCF's ``_x264``, absent from its test_list.txt)."""

    def key(self, name: str) -> str:
        """Name used to match videos across files: ``Abuse028_x264.mp4`` -> ``Abuse028``."""
        stem = video_stem(name)
        if self.drop_suffix and stem.endswith(self.drop_suffix):
            stem = stem[: -len(self.drop_suffix)]
        return stem


def _csv_split(annotations: str, note: str | None = None) -> SplitSpec:
    return SplitSpec(
        Membership("train_list_ief_vad.csv", "column"),
        Membership("test_list_ief_vad.csv", "column"),
        annotations,
        note,
    )


XD_LEAK_NOTE = (
    "the ief-vad XD split moves 47 of the 800 standard test videos into training (753 test "
    "videos): its test scores are optimistic and not comparable with the standard split. Use "
    "--split standard for reportable numbers."
)

LIST_SPECS: dict[str, ListSpec] = {
    "ucfcrime": ListSpec(
        "ucfcrime",
        {
            "standard": SplitSpec(
                Membership("Anomaly_Train.txt", "folder"),
                Membership("Anomaly_Test.txt", "folder"),
                "annotations.txt",
            ),
            "ief-vad": _csv_split("annotations.txt"),
        },
        folder_aliases={
            "Training_Normal_Videos_Anomaly": "Normal",
            "Testing_Normal_Videos_Anomaly": "Normal",
        },
        drop_suffix="_x264",
    ),
    "xd": ListSpec(
        "xd",
        {
            "standard": SplitSpec(
                Membership("train_list_standard.txt", "name"),
                Membership("test_list_standard.txt", "name"),
                "annotations_standard.txt",
            ),
            "ief-vad": _csv_split("annotations.txt", XD_LEAK_NOTE),
        },
    ),
    # ShanghaiTech and MSAD: the reference's lists are the standard split (docs/reference.md s.4).
    "shang": ListSpec(
        "shang",
        {"standard": _csv_split("annotations.txt"), "ief-vad": _csv_split("annotations.txt")},
    ),
    "msad": ListSpec(
        "msad",
        {"standard": _csv_split("annotations.txt"), "ief-vad": _csv_split("annotations.txt")},
        annotation_text="scene",
    ),
}

CUSTOM_LIST_SPEC = ListSpec("custom", {})


def get_list_spec(dataset: str) -> ListSpec:
    if dataset == "custom":
        return CUSTOM_LIST_SPEC
    if dataset not in LIST_SPECS:
        raise UserInputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return LIST_SPECS[dataset]


def split_spec(dataset: str, split: str) -> SplitSpec:
    spec = get_list_spec(dataset)
    if split not in spec.splits:
        raise UserInputError(
            f"unknown split {split!r} for dataset {dataset!r}; choose one of "
            f"{', '.join(spec.splits)}"
        )
    return spec.splits[split]


# --------------------------------------------------------------------------- split files


@dataclass(frozen=True)
class Member:
    """A video named by a split file, with its label."""

    name: str
    label: str
    line: int


def read_lines(path: str | os.PathLike[str], what: str = "split file") -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based numbers.

    Tolerates CRLF, a BOM and a last line without a newline (UCF's ``test_list.txt``: ``wc -l``
    counts 289 because its 290th line has no line end).
    """
    out = []
    for i, raw in enumerate(read_text(path, what).splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((i, line))
    return out


def read_names(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """Video names of a name list: one per line, or the first column of a CSV (a ``video``,
    ``path`` or ``name`` header is skipped). Folders and extensions are dropped."""
    out = []
    for i, line in read_lines(path, "test list"):
        first = line.split(",")[0].strip()
        if i == 1 and first.lower() in ("video", "path", "name"):
            continue
        out.append((i, video_stem(first)))
    return out


def read_membership(path: Path, rule: str, spec: ListSpec, dspec: DatasetSpec) -> list[Member]:
    """Members of one split file; labels checked against the dataset's label map."""
    members = []
    for i, line in read_lines(path):
        where = f"split file {path}, line {i}"
        if rule == "column":
            cols = [c.strip() for c in line.split(",")]
            if len(cols) < 2 or not cols[1]:
                raise ListError(f"{where}: expected 'Class/name,label', found {line!r}")
            name, label = video_stem(cols[0]), cols[1]
        elif rule == "folder":
            folder, _, _ = line.rpartition("/")
            if not folder:
                raise ListError(f"{where}: expected 'Folder/name.ext', found {line!r}")
            name = video_stem(line)
            label = spec.folder_aliases.get(PurePosixPath(folder).name, PurePosixPath(folder).name)
        elif rule == "name":
            name = video_stem(line)
            _, sep, label = name.rpartition("_label_")
            if not sep:
                raise ListError(f"{where}: name {name!r} has no '_label_<code>' part")
        else:
            raise ValueError(f"unknown label rule {rule!r}")
        err = dspec.check_label(label)
        if err:
            raise ListError(f"{where}: {err}")
        members.append(Member(name, label, i))
    return members


def index_members(
    path: Path, members: list[Member], key: Callable[[str], str]
) -> dict[str, Member]:
    out: dict[str, Member] = {}
    for m in members:
        k = key(m.name)
        if k in out:
            raise ListError(
                f"split file {path} lists video {m.name!r} twice (lines {out[k].line} and {m.line})"
            )
        out[k] = m
    return out
