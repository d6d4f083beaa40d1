"""HDF5 recordings laid out as DSEC's: datasets ``events/x``, ``events/y``, ``events/t``,
``events/p`` (``t`` in microseconds relative to the scalar ``t_offset`` at the file's root, when
there is one), optionally ``ms_to_idx``. Compressed datasets (DSEC uses Blosc/zstd) need
``hdf5plugin``, imported before the file is opened.

Read by slices of ``chunk_events`` (h5py reads only the HDF5 chunks a slice touches); the first
event of a window is found by a binary search on ``events/t`` (a few dozen one-element reads),
which needs no ``ms_to_idx`` and trusts none. The sensor size comes from ``height``/``width``
attributes of the root or of ``events`` when present (DSEC has none: give ``sensor_size``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from iefvad.events.recording import Recording, need_package
from iefvad.events.types import Events

COLUMNS = ("t", "x", "y", "p")


class Hdf5Recording(Recording):
    format = "hdf5"
    empty_checked_at_open = True

    def __init__(self, path: Path, sensor_size=None, chunk_events: int = 2_000_000) -> None:
        super().__init__(path, sensor_size, chunk_events)
        h5py = need_package("h5py", "h5py", self.path, "HDF5 event files")
        need_package("hdf5plugin", "hdf5plugin", self.path, "compressed HDF5 event files")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise self.fail(f"not a readable HDF5 file ({e}; truncated?)") from None
        try:
            self._open()
        except BaseException:
            self._h5.close()
            raise

    def _open(self) -> None:
        group = self._h5.get("events")
        names = list(group.keys()) if group is not None and hasattr(group, "keys") else []
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise self.fail(
                "expected the datasets events/t, events/x, events/y, events/p (DSEC layout); "
                f"missing {', '.join('events/' + c for c in missing)}"
            )
        self._cols = [group[c] for c in COLUMNS]
        lengths = [d.shape for d in self._cols]
        if any(len(s) != 1 for s in lengths) or len({s[0] for s in lengths}) != 1:
            raise self.fail(
                "events/t, x, y, p must be 1-D of one length; found "
                + ", ".join(f"{c} {s}" for c, s in zip(COLUMNS, lengths))
            )
        self.count = lengths[0][0]
        if self.count == 0:
            raise self.fail("the recording holds no events")
        offset = self._h5.get("t_offset")
        self.t_offset = 0 if offset is None else int(np.asarray(offset[()]).reshape(-1)[0])
        size = None
        for obj in (self._h5, group):
            if "height" in obj.attrs and "width" in obj.attrs:
                size = (int(obj.attrs["height"]), int(obj.attrs["width"]))
                break
        self.set_sensor_size(size)

    def _read(self, i0: int, i1: int) -> list[np.ndarray]:
        try:
            return [d[i0:i1] for d in self._cols]
        except (OSError, ValueError, RuntimeError) as e:
            raise self.fail(
                f"events {i0}..{i1} can't be read ({e}; damaged or truncated?)"
            ) from None

    def _t_at(self, i: int) -> int:
        return int(self._read(i, i + 1)[0][0]) + self.t_offset

    def _first_last(self) -> tuple[int, int]:
        return self._t_at(0), self._t_at(self.count - 1)

    def _search(self, start_us: int) -> int:
        lo, hi = 0, self.count  # first index with t >= start_us, by bisection
        while lo < hi:
            mid = (lo + hi) // 2
            if self._t_at(mid) < start_us:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        i = 0 if start_us is None else self._search(start_us)
        while i < self.count:
            j = min(self.count, i + self.chunk_events)
            t, x, y, p = self._read(i, j)
            if t.dtype.kind in "iu":
                t = t.astype(np.int64) + self.t_offset
            elif self.t_offset:
                t = t + self.t_offset
            yield Events(t, x, y, p)
            i = j

    def close(self) -> None:
        self._h5.close()
