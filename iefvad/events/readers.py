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

SUPPORTED_FORMATS: tuple[str, ...] = (
    "npz",
    "npy",
    "hdf5",
    "aedat4",
    "evt2",
    "evt21",
    "evt3",
    "dat",
)

PROPHESEE = ("evt2", "evt21", "evt3", "dat")  # one reader; the header says which

# the format a suffix means; "raw": one of EVT 2.0 / 2.1 / 3.0, as the file's header says
SUFFIXES = {
    ".npz": "npz", ".npy": "npy", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
    ".aedat4": "aedat4", ".raw": "raw", ".dat": "dat",
}  # fmt: skip

# the first bytes of each family of files
MAGIC = {
    "npz": (b"PK\x03\x04", b"PK\x05\x06"),
    "npy": (b"\x93NUMPY",),
    "hdf5": (b"\x89HDF\r\n\x1a\n",),
    "aedat4": (b"#!AER-DAT4.0",),
    "prophesee": (b"%",),
}
FAMILY = {f: ("prophesee" if f in PROPHESEE else f) for f in SUPPORTED_FORMATS}
FAMILY_NAME = {"prophesee": "a Prophesee .raw/.dat (a '%' header)"}


def _sniff(head: bytes) -> str | None:
    """The family of a file from its first bytes (None: none known)."""
    for fmt, magics in MAGIC.items():
        if any(head.startswith(m) for m in magics):
            return fmt
    return None


def _open(path: Path, fmt: str | None, sensor_size, chunk_events: int) -> Recording:
    """The reader of ``fmt`` (``None``: a Prophesee file whose header names it)."""
    if fmt is None or fmt in PROPHESEE:
        from iefvad.events.formats.prophesee import open_prophesee

        return open_prophesee(path, fmt, sensor_size, chunk_events)
    if fmt in ("npz", "npy"):
        from iefvad.events.formats import numpy_files

        cls = numpy_files.NpzRecording if fmt == "npz" else numpy_files.NpyRecording
    elif fmt == "hdf5":
        from iefvad.events.formats.hdf5 import Hdf5Recording as cls
    else:
        from iefvad.events.formats.aedat4 import Aedat4Recording as cls
    return cls(path, sensor_size, chunk_events)


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
        fmt = SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            fmt = {"prophesee": "raw"}.get(sniffed or "", sniffed)
        if fmt is None:
            raise RecordingError(
                f"{path}: unknown event recording format (suffix {path.suffix or 'none'}, "
                f"first bytes {head[:8]!r}); give the format explicitly, one of "
                f"{', '.join(SUPPORTED_FORMATS)}"
            )
        if fmt == "raw":
            fmt = None  # EVT 2.0 / 2.1 / 3.0: the header says which
        elif fmt == "dat" and sniffed != "prophesee":
            raise RecordingError(f"{path}: not a Prophesee DAT recording (no '%' header)")
    family = FAMILY.get(fmt or "evt3")
    if sniffed != family and (sniffed is not None or family != "prophesee"):
        looks = (
            f"it looks like {FAMILY_NAME.get(sniffed, sniffed)}"
            if sniffed
            else f"its first bytes {head[:8]!r} are not that format's"
        )
        raise RecordingError(f"{path}: not a {fmt} recording ({looks})")
    return _open(path, fmt, sensor_size, chunk_events)
