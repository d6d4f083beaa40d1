"""Reading the per-dataset split files; the rules themselves (split files, label rules, naming
quirks) are fields of each dataset's record in :mod:`iefvad.datasets.specs`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from iefvad.data.csv_lists import ListError, read_text, video_stem
from iefvad.datasets.specs import (  # noqa: F401 (Membership, XD_LEAK_NOTE: re-exported)
    BENCHMARKS,
    XD_LEAK_NOTE,
    DatasetSpec,
    Membership,
    SplitSpec,
    get_spec,
)

SPLITS = ("standard", "ief-vad")
DEFAULT_TEST_CROP = 5
CUSTOM_NORMAL_DIR = "normal"
CUSTOM_ABNORMAL_DIR = "abnormal"
CUSTOM_NORMAL_LABEL = "normal"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

LIST_DIR_ENV = "IEFVAD_LIST_DIR"
"""Environment variable naming the folder of the default lists (``<it>/<dataset>/train.csv``).
The scripts of a checkout (``main.py``, ``test.py``, ``list/*.py``) set it to the checkout's
``list/``; without it the default is ``./list`` under the working directory (docs/lists.md)."""


def default_list_dir() -> Path:
    """The folder of the default lists: ``$IEFVAD_LIST_DIR``, else ``./list``."""
    return Path(os.environ.get(LIST_DIR_ENV) or Path.cwd() / "list")


@dataclass(frozen=True)
class ListPaths:
    train: Path
    test: Path
    gt: Path


def default_paths(dataset: str, list_dir: str | os.PathLike[str] | None = None) -> ListPaths:
    """``<list_dir>/<dataset>/{train.csv,test.csv,gt.npy}``: where presets look for lists
    (default folder: :func:`default_list_dir`)."""
    d = Path(list_dir) if list_dir is not None else default_list_dir()
    return ListPaths(d / dataset / "train.csv", d / dataset / "test.csv", d / dataset / "gt.npy")


class ListWarning(UserWarning):
    """Something in the inputs is suspicious but the lists can still be written."""


# --------------------------------------------------------------------------- dataset list specs

# The list rules are fields of each dataset's one record (iefvad.datasets.specs); these names
# keep the former list-rule API.
ListSpec = DatasetSpec
LIST_SPECS: dict[str, DatasetSpec] = {name: get_spec(name) for name in BENCHMARKS}


def get_list_spec(dataset: str) -> DatasetSpec:
    return get_spec(dataset)


def split_spec(dataset: str, split: str) -> SplitSpec:
    return get_spec(dataset).split(split)


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


def read_membership(path: Path, rule: str, spec: DatasetSpec, dspec: DatasetSpec) -> list[Member]:
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
