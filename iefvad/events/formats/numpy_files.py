"""NumPy recordings: ``.npz`` with the columns ``t, x, y, p`` (the UCF-Crime-DVS layout: ``t`` in
microseconds) and ``.npy`` holding one structured array with the fields ``t, x, y, p``.

How they are read, without loading the file:

- ``.npy``: opened with ``np.load(mmap_mode="r")`` for the header, the time range and the
  binary search of a window's first event; the chunks themselves are copied out with plain
  reads (pages of a memory map would stay resident and count towards the process's memory).
- ``.npz`` member stored uncompressed (``np.savez``): the member's bytes lie contiguous in the
  zip file, so they are read exactly like a ``.npy`` (memory-mapped for the search, read in
  chunks).
- ``.npz`` member compressed (``np.savez_compressed``): no random access; the four members
  are streamed through ``zipfile`` side by side, ``chunk_events`` at a time (a window late in
  the file decompresses everything before it).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from iefvad.events.recording import Recording
from iefvad.events.types import Events

COLUMNS = ("t", "x", "y", "p")


def _read_npy_header(f: BinaryIO) -> tuple[np.dtype, tuple[int, ...]]:
    """``(dtype, shape)`` of the ``.npy`` stream at ``f``, which is left at the data."""
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
        version, np.lib.format.read_array_header_2_0
    )
    shape, _fortran, dtype = read(f)
    return dtype, shape


class _Stored:
    """An array stored raw at ``offset`` of an open file: chunks by plain reads, and a memory
    map for searches."""

    def __init__(self, f: BinaryIO, path: Path, offset: int, dtype: np.dtype, count: int) -> None:
        self.f, self.path, self.offset, self.dtype, self.count = f, path, offset, dtype, count

    def read(self, i0: int, i1: int) -> np.ndarray:
        out = np.empty(i1 - i0, self.dtype)
        self.f.seek(self.offset + i0 * self.dtype.itemsize)
        got = self.f.readinto(out.view(np.uint8))
        if got != out.nbytes:
            raise EOFError(f"{got} of {out.nbytes} bytes")
        return out

    def mapped(self) -> np.ndarray:
        return np.memmap(self.path, self.dtype, "r", offset=self.offset, shape=(self.count,))


class NpyRecording(Recording):
    format = "npy"
    empty_checked_at_open = True

    def __init__(self, path: Path, sensor_size=None, chunk_events: int = 2_000_000) -> None:
        super().__init__(path, sensor_size, chunk_events)
        self.set_sensor_size(None)
        try:
            mm = np.load(self.path, mmap_mode="r")
        except ValueError as e:  # a bad header, or a file shorter than its header says
            raise self.fail(f"not a readable .npy array ({e}; truncated?)") from None
        names = mm.dtype.names or ()
        if mm.ndim != 1 or not set(COLUMNS) <= set(names):
            raise self.fail(
                f"expected a 1-D structured array with the fields t, x, y, p; found shape "
                f"{mm.shape}, fields {list(names) or 'none'} ({mm.dtype})"
            )
        if len(mm) == 0:
            raise self.fail("the recording holds no events")
        self._mm = mm
        self._f = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._col = _Stored(self._f, self.path, mm.offset, mm.dtype, len(mm))

    def _first_last(self) -> tuple[int, int]:
        return int(self._mm["t"][0]), int(self._mm["t"][-1])

    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        i = 0 if start_us is None else _search(self._mm["t"], start_us)
        n = self._col.count
        while i < n:
            j = min(n, i + self.chunk_events)
            try:
                a = self._col.read(i, j)
            except EOFError as e:
                raise self.fail(f"truncated: events {i}..{j} can't be read ({e})") from None
            yield Events(a["t"], a["x"], a["y"], a["p"])
            i = j

    def close(self) -> None:
        self._f.close()
        self._mm = None


def _search(t: np.ndarray, start_us: int) -> int:
    """Index of the first event at or after ``start_us`` (binary search on a memory map)."""
    return int(np.searchsorted(t, start_us, side="left"))


class NpzRecording(Recording):
    format = "npz"
    empty_checked_at_open = True

    def __init__(self, path: Path, sensor_size=None, chunk_events: int = 2_000_000) -> None:
        super().__init__(path, sensor_size, chunk_events)
        self.set_sensor_size(None)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, EOFError) as e:
            raise self.fail(f"not a complete .npz (zip) file ({e}; truncated?)") from None
        members = {Path(n).stem: n for n in self._zip.namelist() if n.endswith(".npy")}
        missing = [c for c in COLUMNS if c not in members]
        if missing:
            self._zip.close()
            raise self.fail(
                f"no array named {', '.join(missing)}; an event .npz holds t, x, y, p "
                f"(found: {', '.join(sorted(members)) or 'none'})"
            )
        self._info = {c: self._zip.getinfo(members[c]) for c in COLUMNS}
        self._f = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._stored: dict[str, _Stored] = {}
        counts = {}
        for c, info in self._info.items():
            with self._member(c) as m:
                dtype, shape = self._header(c, m)
            counts[c] = shape[0]
            if info.compress_type == zipfile.ZIP_STORED:
                self._stored[c] = _Stored(
                    self._f,
                    self.path,
                    self._data_offset(info) + self._header_len(c),
                    dtype,
                    shape[0],
                )
        if len(set(counts.values())) != 1:
            self.close()
            raise self.fail(
                "columns differ in length: " + ", ".join(f"{c} {n}" for c, n in counts.items())
            )
        self.count = counts["t"]
        if self.count == 0:
            self.close()
            raise self.fail("the recording holds no events")
        self.compressed = len(self._stored) < len(COLUMNS)

    def _member(self, c: str):
        return self._zip.open(self._info[c])

    def _header(self, c: str, m: BinaryIO) -> tuple[np.dtype, tuple[int, ...]]:
        try:
            dtype, shape = _read_npy_header(m)
        except (ValueError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            self.close()
            raise self.fail(f"array {c} has no readable .npy header ({e})") from None
        if len(shape) != 1 or dtype.hasobject or dtype.names:
            self.close()
            raise self.fail(f"array {c} must be 1-D numbers, found shape {shape} of {dtype}")
        return dtype, shape

    def _header_len(self, c: str) -> int:
        with self._member(c) as m:
            _read_npy_header(m)
            return m.tell()

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes start: after its local header (whose extra field may
        differ from the central directory's)."""
        self._f.seek(info.header_offset)
        head = self._f.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise self.fail(f"zip member {info.filename} has no local header")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        return info.header_offset + 30 + name_len + extra_len

    def _first_last(self) -> tuple[int, int] | None:
        if "t" not in self._stored:
            return None
        t = self._stored["t"].mapped()
        return int(t[0]), int(t[-1])

    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        if self.compressed:
            yield from self._streamed()
            return
        i = 0 if start_us is None else _search(self._stored["t"].mapped(), start_us)
        while i < self.count:
            j = min(self.count, i + self.chunk_events)
            try:
                cols = [self._stored[c].read(i, j) for c in COLUMNS]
            except EOFError as e:
                raise self.fail(f"truncated: events {i}..{j} can't be read ({e})") from None
            yield Events(*cols)
            i = j

    def _streamed(self) -> Iterator[Events]:
        streams = [self._member(c) for c in COLUMNS]
        try:
            dtypes = [_read_npy_header(m)[0] for m in streams]
            i = 0
            while i < self.count:
                n = min(self.count - i, self.chunk_events)
                cols = []
                for c, m, dt in zip(COLUMNS, streams, dtypes):
                    want = n * dt.itemsize
                    try:
                        buf = m.read(want)
                    except (EOFError, zlib.error, zipfile.BadZipFile) as e:
                        raise self.fail(f"array {c} is damaged near event {i} ({e})") from None
                    if len(buf) != want:
                        raise self.fail(f"truncated: array {c} ends near event {i}")
                    cols.append(np.frombuffer(buf, dt))
                yield Events(*cols)
                i += n
        finally:
            for m in streams:
                m.close()

    def close(self) -> None:
        self._zip.close()
        if hasattr(self, "_f"):
            self._f.close()
