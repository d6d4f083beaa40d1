"""Annotation files: per-video ``[start, end)`` frame spans, with the class when the file has one.

Two formats are read (see ``iefvad/resources/README.md`` and docs/reference.md section 4):

- **span tables**, whitespace separated, one video per line: ``name [text] s1 e1 [s2 e2 ...]``.
  ``name`` may carry a folder and a video extension (``Abuse028_x264.mp4``); ``text`` is the
  class (UCF-Crime, ShanghaiTech, the reference's XD file) or the scene (MSAD) and is absent in
  the official XD file; ``-1 -1`` pads unused span slots. Double spaces and CRLF are fine.
- **CSV** with a header ``video,start_frame,end_frame[,class]``, one row per span (a video with
  several spans has several rows; a row with empty or ``-1`` frames lists a video with no span).

Frame numbers are kept as written; clipping to a video's length happens in ground-truth
generation, where the length is known.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from iefvad.data.csv_lists import read_header_csv, read_text, video_stem
from iefvad.errors import UserInputError
from iefvad.paths import path_problem, shown

Span = tuple[int, int]

TEXT_COLUMNS = ("class", "scene")
"""Meanings of the text column of a span table."""

CSV_COLUMNS = ("video", "start_frame", "end_frame")


class AnnotationError(UserInputError):
    """An annotation file is missing or malformed."""


@dataclass(frozen=True)
class VideoAnnotation:
    """Spans of one video as written in an annotation file."""

    name: str
    """Video name without folder and extension: ``Abuse028_x264``."""
    segments: tuple[Span, ...]
    """``[start, end)`` frame spans in file order; empty spans (``330 330``) are dropped."""
    label: str | None = None
    """Class column of the file; None when the file has none (or it is a scene)."""
    scene: str | None = None
    """Scene column (MSAD)."""
    line: int = 0
    """1-based line of the (first) entry, for messages."""


class Annotations(Mapping[str, VideoAnnotation]):
    """The entries of one annotation file, looked up by video name.

    ``key`` normalises names on both sides of a lookup (e.g. UCF-Crime's ``_x264`` suffix);
    two entries with the same key are an error.
    """

    def __init__(
        self,
        path: Path,
        entries: list[VideoAnnotation],
        key: Callable[[str], str] | None = None,
    ) -> None:
        self.path = path
        self.key = key or (lambda s: s)
        self._by_key: dict[str, VideoAnnotation] = {}
        for e in entries:
            k = self.key(e.name)
            if k in self._by_key:
                first = self._by_key[k]
                raise AnnotationError(
                    f"annotation file {path}: video {e.name!r} appears twice (lines "
                    f"{first.line} and {e.line}); expected one line per video. Merge its spans "
                    "into one line."
                )
            self._by_key[k] = e

    def __getitem__(self, name: str) -> VideoAnnotation:
        return self._by_key[self.key(video_stem(name))]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(video_stem(name)) in self._by_key

    def __iter__(self) -> Iterator[str]:
        return (e.name for e in self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def find(self, name: str) -> VideoAnnotation | None:
        """Entry of ``name`` (a stem, file name or path), or None."""
        return self._by_key.get(self.key(video_stem(name)))


def _int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def pair_spans(path: Path, line: int, numbers: list[int]) -> list[Span]:
    """Turn ``s1 e1 s2 e2 ...`` into spans, skipping ``-1 -1`` pairs; check every pair."""
    where = f"annotation file {path}, line {line}"
    if len(numbers) % 2:
        raise AnnotationError(
            f"{where}: expected pairs of frame numbers 'start end', found {len(numbers)} "
            f"numbers ({' '.join(map(str, numbers))}); pad unused slots with '-1 -1'"
        )
    spans: list[Span] = []
    for s, e in zip(numbers[0::2], numbers[1::2]):
        if s == -1 and e == -1:
            continue
        if s < 0 or e < 0:
            raise AnnotationError(
                f"{where}: span ({s}, {e}) has a negative frame; expected 'start end' >= 0, "
                "or '-1 -1' for an unused slot"
            )
        if e < s:
            raise AnnotationError(
                f"{where}: span ({s}, {e}) ends before it starts; expected start <= end "
                "(spans are [start, end) frame indices)"
            )
        if e > s:
            spans.append((s, e))
    return spans


def read_span_table(
    path: str | os.PathLike[str], text_column: str = "class"
) -> list[VideoAnnotation]:
    """Parse a whitespace span table (``name [text] s1 e1 ...``); see the module docstring.

    ``text_column`` says what a non-numeric second column holds: ``class`` or ``scene``.
    """
    if text_column not in TEXT_COLUMNS:
        raise ValueError(f"text_column must be one of {TEXT_COLUMNS}, got {text_column!r}")
    path = Path(path)
    out: list[VideoAnnotation] = []
    for lineno, raw in enumerate(_read_text(path).splitlines(), start=1):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        name, rest = video_stem(tokens[0]), tokens[1:]
        text = None
        if rest and _int(rest[0]) is None:
            text, rest = rest[0], rest[1:]
        numbers = [_int(t) for t in rest]
        bad = [t for t, n in zip(rest, numbers) if n is None]
        if bad:
            raise AnnotationError(
                f"annotation file {path}, line {lineno}: expected integer frame numbers after "
                f"'{tokens[0]}{' ' + text if text else ''}', found {bad[0]!r}. Expected format: "
                "'name [class] start end [start end ...]'"
            )
        spans = pair_spans(path, lineno, [n for n in numbers if n is not None])
        label = text if text_column == "class" else None
        scene = text if text_column == "scene" else None
        out.append(VideoAnnotation(name, tuple(spans), label, scene, lineno))
    if not out:
        raise AnnotationError(f"annotation file {path} has no entries")
    return out


def read_annotation_csv(path: str | os.PathLike[str]) -> list[VideoAnnotation]:
    """Parse a ``video,start_frame,end_frame[,class]`` CSV (several rows per video allowed)."""
    path = Path(path)
    header, rows = read_header_csv(
        _read_text(path),
        path,
        "annotation file",
        CSV_COLUMNS,
        "'video,start_frame,end_frame[,class]' and one row per span",
        AnnotationError,
        fold_case=True,
    )
    iv, is_, ie = (header.index(c) for c in CSV_COLUMNS)
    ic = header.index("class") if "class" in header else None
    spans: dict[str, list[Span]] = {}
    labels: dict[str, tuple[str | None, int]] = {}
    first_line: dict[str, int] = {}
    for lineno, rec in rows:
        name = video_stem(rec[iv].strip())
        if not name:
            raise AnnotationError(f"annotation file {path}, line {lineno}: empty video name")
        s_raw, e_raw = rec[is_].strip(), rec[ie].strip()
        numbers = [] if not s_raw and not e_raw else [_int(s_raw), _int(e_raw)]
        if None in numbers:
            raise AnnotationError(
                f"annotation file {path}, line {lineno}: expected integer start_frame and "
                f"end_frame (or both empty / -1 for a video with no span), found "
                f"{s_raw!r}, {e_raw!r}"
            )
        new = pair_spans(path, lineno, [n for n in numbers if n is not None])
        spans.setdefault(name, []).extend(new)
        first_line.setdefault(name, lineno)
        label = (rec[ic].strip() or None) if ic is not None else None
        if name in labels and label != labels[name][0]:
            raise AnnotationError(
                f"annotation file {path}, line {lineno}: video {name!r} has class {label!r} "
                f"but line {labels[name][1]} gives it {labels[name][0]!r}; one class per video"
            )
        labels.setdefault(name, (label, lineno))
    return [
        VideoAnnotation(n, tuple(sorted(s)), labels[n][0], None, first_line[n])
        for n, s in spans.items()
    ]


def is_annotation_csv(path: Path) -> bool:
    """True when ``path`` is a ``video,start_frame,end_frame`` CSV rather than a span table."""
    if path.suffix.lower() == ".csv":
        return True
    first = next((ln for ln in _read_text(path).splitlines() if ln.strip()), "")
    return "," in first and "video" in first.lower()


def read_annotations(
    path: str | os.PathLike[str],
    text_column: str = "class",
    key: Callable[[str], str] | None = None,
) -> Annotations:
    """Read any supported annotation file (format detected from its content)."""
    path = Path(path)
    entries = (
        read_annotation_csv(path) if is_annotation_csv(path) else read_span_table(path, text_column)
    )
    return Annotations(path, entries, key)


def _read_text(path: Path) -> str:
    problem = path_problem(path)
    if problem is not None:
        raise AnnotationError(
            f"annotation file {shown(path)} {problem}; pass the right file with --frame_lbl_txt"
        )
    return read_text(path, "annotation file", AnnotationError)
