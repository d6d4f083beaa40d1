"""Open an event-camera recording in any supported format and read it in time windows.

>>> with open_recording("Abuse001_x264.npz") as rec:           # doctest: +SKIP
...     for ev in rec.windows(edges_us):                       # one Events per window
...         ...

The format comes from the suffix, then the file's first bytes; a format given explicitly that
the file's content contradicts is an error naming both. See docs/extraction.md
("Reading recordings") for the formats and their optional packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from iefvad.events.recording import EXTRA, Recording, RecordingError

__all__ = ["EXTRA", "SUPPORTED_FORMATS", "Recording", "RecordingError", "open_recording"]

SUPPORTED_FORMATS: tuple[str, ...] = ("npz", "npy")

SUFFIXES = {".npz": "npz", ".npy": "npy"}

# The first bytes of each container; a format missing here has none of its own.
MAGIC = {"npz": (b"PK\x03\x04", b"PK\x05\x06"), "npy": (b"\x93NUMPY",)}


def _sniff(head: bytes) -> str | None:
    for fmt, magics in MAGIC.items():
        if any(head.startswith(m) for m in magics):
            return fmt
    return None


def _reader(fmt: str) -> type[Recording]:
    from iefvad.events.formats import numpy_files

    return {"npz": numpy_files.NpzRecording, "npy": numpy_files.NpyRecording}[fmt]


def detect_format(path: Path, head: bytes) -> str:
    """The format of ``path`` from its suffix, else its first bytes."""
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    sniffed = _sniff(head)
    if sniffed is None:
        raise RecordingError(
            f"{path}: unknown event recording format (suffix {path.suffix or 'none'}); give "
            f"the format explicitly, one of {', '.join(SUPPORTED_FORMATS)}"
        )
    return sniffed


def open_recording(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    sensor_size: tuple[int, int] | None = None,
    chunk_events: int = 2_000_000,
) -> Recording:
    """Open ``path`` for streaming reads (see :class:`Recording`).

    ``fmt``: one of :data:`SUPPORTED_FORMATS`, or ``None`` for the suffix / first bytes.
    ``sensor_size``: ``(height, width)`` for formats that don't state it (it must agree with
    a file that does). ``chunk_events``: the most events held at once while reading.
    """
    path = Path(path)
    if fmt is not None and fmt not in SUPPORTED_FORMATS:
        raise RecordingError(
            f"{path}: unknown event format {fmt!r}; one of {', '.join(SUPPORTED_FORMATS)}"
        )
    if not path.is_file():
        raise RecordingError(
            f"{path}: no such event recording" + (" (it is a folder)" if path.is_dir() else "")
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise RecordingError(f"{path}: the file is empty (0 bytes)")
    sniffed = _sniff(head)
    if fmt is None:
        fmt = detect_format(path, head)
    if fmt in MAGIC and sniffed != fmt:
        what = f"it looks like {sniffed}" if sniffed else "its first bytes are not that format's"
        raise RecordingError(f"{path}: not a {fmt} recording ({what})")
    if sniffed is not None and sniffed != fmt:
        raise RecordingError(f"{path}: not a {fmt} recording (it looks like {sniffed})")
    return _reader(fmt)(path, sensor_size, chunk_events)
