"""Train/test list CSVs: ``path,label`` rows (optionally ``event_path``), read and written.

Paths in a CSV may be absolute or relative. Relative paths resolve against ``data_root`` when
one is given, else against the CSV's own folder, so lists stay portable between machines.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from iefvad.datasets.names import (  # noqa: F401 (MEDIA_EXTENSIONS: re-exported)
    MEDIA_EXTENSIONS,
    is_crop,
    strip_extension,
    video_stem,
)
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write
from iefvad.paths import path_problem, shown

IMAGE_TREE = "rgb"
"""Name of the image-feature tree whose event twin is found by renaming its folder."""

SHOW = 10
"""How many items an error or warning names before saying '... and N more'."""


class ListError(UserInputError):
    """A list CSV is missing, empty or malformed."""


def read_text(
    path: str | os.PathLike[str],
    what: str,
    error: type[UserInputError] = ListError,
    byte_names: bool = False,
) -> str:
    """The text of a UTF-8 file (a BOM is dropped); ``error`` names ``what`` and ``path``.

    A file in another encoding (Latin-1, UTF-16, Windows-1252 from a spreadsheet) raises
    ``error`` naming the first undecodable byte, its offset and line, and how to convert it;
    with ``byte_names`` such bytes are kept as lone surrogates instead (file names that are not
    UTF-8, as :func:`write_list` writes them), for the caller to check (:func:`read_list`).
    A path that is not a readable file (a folder, a pipe, a looping link) is named as such.
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise error(f"{what} {shown(path)} {problem}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"cannot read {what} {shown(path)}: {e.strerror or e}") from e
    fix = (
        f"Save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {shown(path)} > fixed` (or 'CSV "
        "UTF-8' in a spreadsheet)"
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if byte_names and b"\0" not in data:
            return data.decode("utf-8-sig", "surrogateescape")
        line = data.count(b"\n", 0, e.start) + 1
        raise error(
            f"{what} {shown(path)} is not UTF-8 text: byte 0x{data[e.start]:02x} at byte offset "
            f"{e.start} (line {line}) cannot be decoded ({e.reason}). {fix}"
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise error(
            f"{what} {shown(path)} is not UTF-8 text: it holds a NUL byte at byte offset {nul} "
            f"(line {line}), as UTF-16 or binary files do. {fix.replace('latin1', 'utf-16')}"
        )
    return text


def shorten(items: Sequence[str], n: int = SHOW, sep: str = ", ") -> str:
    """The first ``n`` items joined by ``sep``, then '... and N more'."""
    shown = sep.join(items[:n])
    return shown + (f"{sep}... and {len(items) - n} more" if len(items) > n else "")


@dataclass(frozen=True)
class ListRow:
    """One row of a list: the image-feature file, its label and the event-feature file."""

    path: Path
    label: str
    event_path: Path | None = None
    line: int = 0
    """1-based line number in the CSV (header is line 1), for error messages."""

    @property
    def stem(self) -> str:
        """File stem without the ``__<crop>`` suffix: ``Abuse028_x264``."""
        return video_stem(self.path)

    @property
    def crop(self) -> int | None:
        return crop_of(self.path)


def crop_of(path: str | PurePath) -> int | None:
    """``.../Abuse028_x264__5.npy`` -> 5; None when the name has no crop suffix."""
    _, sep, tail = strip_extension(PurePath(path).name).rpartition("__")
    return int(tail) if sep and is_crop(tail) else None


def derive_event_path(path: Path, event_dir: str, image_dir: str = IMAGE_TREE) -> Path:
    """Event-feature path of an image-feature path: the last path component equal to
    ``image_dir`` (``rgb``) becomes ``event_dir`` (``event_thr_10``).

    Only a whole folder name is replaced (``/data/rgb_v2/rgb/A.npy`` -> ``/data/rgb_v2/
    event_thr_10/A.npy``). Raises :class:`ListError` when no component is ``image_dir``.
    """
    parts = list(path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == image_dir:
            parts[i] = event_dir
            return Path(*parts)
    raise ListError(
        f"cannot derive the event-feature path of {path}: it contains no {image_dir!r} "
        f"to replace by {event_dir!r} (a whole folder name is needed). Pass --image_dir_name "
        "with the name of the folder that holds the image features (and --event_dir_name with "
        "its event twin, e.g. event_thr_10), or write the list with an event_path column "
        "(list/generate_file.py --event_base_path EVENT_ROOT)"
    )


def resolve(raw: str, base: Path) -> Path:
    p = Path(os.path.expanduser(raw.strip()))
    return p if p.is_absolute() else base / p


def _names(cols: Sequence[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [f"'{c}'" for c in cols]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def read_header_csv(
    text: str,
    path: str | os.PathLike[str],
    what: str,
    required: Sequence[str],
    expected: str,
    error: type[UserInputError] = ListError,
    fold_case: bool = False,
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows (with their 1-based line numbers) of a CSV whose
    header names its columns; the one reader of list and annotation CSVs.

    Raises ``error`` naming ``what``, ``path`` and ``expected`` (the header to write) when the
    text is not CSV, is empty, lacks a ``required`` column, has no rows or a row is short.
    ``fold_case``: header names are compared in lower case.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader, None)
        if first is None:
            raise error(f"{what} {path} is empty: expected the header {expected}")
        header = [h.strip().lower() if fold_case else h.strip() for h in first]
        twice = sorted({h for h in header if h and header.count(h) > 1})
        if twice:
            raise error(
                f"{what} {shown(path)}: the header {','.join(first)!r} names the column "
                f"{_names(twice)} twice; which one holds the values is ambiguous. Keep one "
                f"column of each name; expected the header {expected}"
            )
        missing = [c for c in required if c not in header]
        if missing:
            raise error(
                f"{what} {path}: header {','.join(first)!r} lacks {_names(missing)}; "
                f"expected the header {expected}"
            )
        rows = []
        for rec in reader:
            if not rec or all(not c.strip() for c in rec):
                continue
            if [c.strip().lower() for c in rec] == [h.lower() for h in header]:
                raise error(
                    f"{what} {shown(path)}, line {reader.line_num} repeats the header "
                    f"{','.join(rec)!r} (two files joined into one?); delete that line"
                )
            if len(rec) < len(header):
                raise error(
                    f"{what} {path}, line {reader.line_num}: expected {len(header)} columns "
                    f"({','.join(header)}), found {len(rec)}: {','.join(rec)!r}"
                )
            rows.append((reader.line_num, rec))
    except csv.Error as e:
        raise error(
            f"{what} {path}, line {reader.line_num}: not a valid CSV row ({e}); expected the "
            f"header {expected}"
        ) from None
    if not rows:
        raise error(f"{what} {path} has a header but no rows")
    return header, rows


def read_list(
    csv_path: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    event_dir: str | None = None,
    image_dir: str = IMAGE_TREE,
    flags: str = "--train_list/--test_list",
) -> list[ListRow]:
    """Read a ``path,label[,event_path]`` list.

    ``event_dir``: when given and the CSV has no ``event_path`` column, event paths are
    derived from image paths (see :func:`derive_event_path`). ``flags``: the flags that pass
    the list, named when it is missing.
    """
    csv_path = Path(csv_path)
    problem = path_problem(csv_path)
    if problem is not None:
        raise ListError(f"list file {shown(csv_path)} {problem} (pass {flags})")
    base = Path(data_root) if data_root is not None else csv_path.parent
    text = read_text(csv_path, "list file", byte_names=True)
    if _has_raw_bytes(text.partition("\n")[0]):  # only paths may hold a file name's bytes
        read_text(csv_path, "list file")
    header, records = read_header_csv(
        text,
        csv_path,
        "list file",
        ("path", "label"),
        "'path,label' (optionally ',event_path')",
    )
    ip, il = header.index("path"), header.index("label")
    ie = header.index("event_path") if "event_path" in header else None
    rows: list[ListRow] = []
    for lineno, rec in records:
        if not rec[ip].strip():
            raise ListError(
                f"list file {csv_path}, line {lineno}: empty path; every row names a "
                "feature file"
            )
        path = resolve(rec[ip], base)
        if not path.name or path.name in (".", ".."):  # "/", "x/..": a folder, not a file
            raise ListError(
                f"list file {csv_path}, line {lineno}: path {rec[ip].strip()!r} names a folder, "
                "not a feature file (<video>__<crop>.npy)"
            )
        if ie is not None and rec[ie].strip():
            event = resolve(rec[ie], base)
        elif event_dir is not None:
            try:
                event = derive_event_path(path, event_dir, image_dir)
            except ListError as e:
                raise ListError(f"list file {csv_path}, line {lineno}: {e}") from None
        else:
            event = None
        if _has_raw_bytes(rec[il]) or (_has_raw_bytes(rec[ip]) and not os.path.lexists(path)):
            read_text(csv_path, "list file")  # not a file name's bytes: the encoding error
        rows.append(ListRow(path, rec[il].strip(), event, lineno))
    return rows


def _has_raw_bytes(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (lone surrogates, surrogateescape)."""
    return any("\udc80" <= c <= "\udcff" for c in text)


def write_list(
    csv_path: str | os.PathLike[str],
    rows: Sequence[tuple[str | os.PathLike[str], str]]
    | Sequence[tuple[str | os.PathLike[str], str, str | os.PathLike[str]]],
    relative: bool = True,
) -> None:
    """Write rows ``(path, label[, event_path])`` atomically.

    With ``relative`` (default) paths are written relative to the CSV's folder, with ``/``
    separators. Symbolic links are kept as they are (not resolved), so a list next to a linked
    feature tree stays valid wherever the link points.
    """
    csv_path = Path(csv_path)
    base = os.path.abspath(csv_path.parent)

    def fmt(p: str | os.PathLike[str]) -> str:
        p = os.path.abspath(p)
        if not relative:
            return p
        try:
            return Path(os.path.relpath(p, base)).as_posix()
        except ValueError:  # another drive on Windows: no relative path exists
            return p

    with_event = bool(rows) and len(rows[0]) == 3
    with atomic_write(csv_path, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "label", "event_path"] if with_event else ["path", "label"])
        for r in rows:
            w.writerow([fmt(r[0]), r[1], fmt(r[2])] if with_event else [fmt(r[0]), r[1]])
