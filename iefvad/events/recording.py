"""What every reader of an event recording shares: the error, the per-chunk checks, and the
cutting of a stream of chunks into time windows (:meth:`Recording.windows`).

A format only says how to read its file as a stream of raw chunks (:meth:`Recording._chunks`),
optionally starting near a time; everything else lives here once.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from iefvad.errors import UserInputError
from iefvad.events.types import Events

EXTRA = "pip install 'iefvad[events]'"


class RecordingError(UserInputError):
    """An event recording that can't be read as it is: the message names the file and what is
    wrong (truncated, unsorted or negative timestamps, coordinates outside the sensor, no
    events, not the format asked for, a reader package that is not installed)."""


def need_package(module: str, package: str, path: Path, what: str) -> ModuleType:
    """Import ``module`` of the optional extra, or a :class:`RecordingError` naming the file,
    the package and the ``pip install`` line."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise RecordingError(
            f"{path}: reading {what} needs the package {package!r}, which is not installed "
            f"({e}); install the extra: {EXTRA}"
        ) from None


class Recording:
    """An event recording opened for streaming reads; a context manager.

    ``sensor_size`` is ``(height, width)`` as the file states it, or as given to
    :func:`iefvad.events.readers.open_recording`; ``None`` when neither says (then only
    negative coordinates are rejected). Memory: one chunk of ``chunk_events`` events at a time
    (plus the events of the window being assembled), whatever the file's size.
    """

    format: str = ""
    empty_checked_at_open = False  # else: no events from a full read is the error

    def __init__(
        self, path: Path, sensor_size: tuple[int, int] | None = None, chunk_events: int = 2_000_000
    ) -> None:
        if chunk_events < 1:
            raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
        self.path = Path(path)
        self.sensor_size = sensor_size
        self.chunk_events = int(chunk_events)
        self._range: tuple[int, int] | None = None

    # --- what a format provides -------------------------------------------------------------
    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        """The file's events as raw chunks of at most about ``chunk_events``, in file order,
        with any column dtypes; with ``start_us``, the stream may skip events before it (a
        seek), never one at or after it."""
        raise NotImplementedError

    def _first_last(self) -> tuple[int, int] | None:
        """First and last timestamp if the format knows them cheaply, else ``None`` (a scan)."""
        return None

    def close(self) -> None:
        """Release the file; a closed recording can't be read again."""

    # --- shared -----------------------------------------------------------------------------
    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, format={self.format!r})"

    def fail(self, what: str) -> RecordingError:
        return RecordingError(f"{self.path}: {what}")

    def set_sensor_size(self, from_file: tuple[int, int] | None) -> None:
        """Combine the size the file states with the one given: they must agree."""
        given = self.sensor_size
        if from_file is not None and given is not None and tuple(given) != tuple(from_file):
            raise self.fail(
                f"the file says the sensor is {from_file[0]}x{from_file[1]} (height x width), "
                f"but sensor_size={tuple(given)} was given"
            )
        size = from_file if from_file is not None else given
        if size is not None:
            h, w = (int(v) for v in size)
            if h < 1 or w < 1:
                raise self.fail(f"sensor size {h}x{w} (height x width) is not positive")
            size = (h, w)
        self.sensor_size = size

    def _checked(self, start_us: int | None = None) -> Iterator[Events]:
        """The chunks as :class:`Events` with the shared dtypes, each checked (cheaply: one
        pass per column) for negative or unsorted timestamps, coordinates outside the sensor
        and polarities other than 0/1 (or -1/1); no events at all is an error."""
        last = np.iinfo(np.int64).min
        seen = 0
        for raw in self._chunks(start_us):
            if len(raw) == 0:
                continue
            ev = self._normalise(raw, seen)
            t = ev.t
            back = np.flatnonzero(t[1:] < t[:-1])
            if t[0] < last or len(back):
                i = -1 if t[0] < last else int(back[0])
                before = last if i < 0 else int(t[i])
                raise self.fail(
                    f"timestamps go back in time at event {seen + i + 1}: {int(t[i + 1])} us "
                    f"after {before} us (events must be sorted by time)"
                )
            if t[0] < 0:
                raise self.fail(f"negative timestamp {int(t[0])} us at event {seen}")
            self._check_xy(ev, seen)
            last = int(t[-1])
            seen += len(ev)
            yield ev
        if seen == 0 and not self.empty_checked_at_open:
            raise self.fail("the recording holds no events")

    def _normalise(self, raw: Events, seen: int) -> Events:
        t, p = raw.t, raw.p
        if t.dtype.kind == "f":
            if not np.all(np.isfinite(t)) or np.any(t != np.floor(t)):
                raise self.fail(
                    f"timestamps near event {seen} are not whole microseconds ({t.dtype}); "
                    "t must be integer microseconds (seconds? multiply by 1e6)"
                )
        elif t.dtype.kind not in "iu":
            raise self.fail(f"timestamps are {t.dtype}, not integers (microseconds)")
        if p.dtype.kind == "b":
            p = p.astype(np.int8)
        elif p.dtype.kind in "iuf":
            lo, hi = p.min(), p.max()
            if lo < -1 or hi > 1 or (p.dtype.kind == "f" and np.any(p != np.round(p))):
                raise self.fail(
                    f"polarity values near event {seen} range {lo}..{hi}; expected 0/1 or -1/1"
                )
            p = (p > 0).astype(np.int8) if lo < 0 else p.astype(np.int8, copy=False)
        else:
            raise self.fail(f"polarities are {p.dtype}, not numbers")
        for name, col in (("x", raw.x), ("y", raw.y)):
            if col.dtype.kind not in "iu":
                raise self.fail(f"{name} coordinates are {col.dtype}, not integers")
        return Events(
            t.astype(np.int64, copy=False),
            raw.x.astype(np.int32, copy=False),
            raw.y.astype(np.int32, copy=False),
            p,
        )

    def _check_xy(self, ev: Events, seen: int) -> None:
        h, w = self.sensor_size if self.sensor_size is not None else (None, None)
        for name, col, size in (("x", ev.x, w), ("y", ev.y, h)):
            lo, hi = int(col.min()), int(col.max())
            if lo < 0 or (size is not None and hi >= size):
                bad = int(np.flatnonzero((col < 0) | (col >= (size or np.iinfo(np.int32).max)))[0])
                where = f"0..{size - 1}" if size is not None else ">= 0"
                raise self.fail(
                    f"event {seen + bad} has {name}={int(col[bad])}, outside the sensor ({where}; "
                    f"sensor size {self._size_text()})"
                )

    def _size_text(self) -> str:
        if self.sensor_size is None:
            return "unknown"
        return f"{self.sensor_size[0]}x{self.sensor_size[1]} height x width"

    def __iter__(self) -> Iterator[Events]:
        """All events, in checked chunks of at most about ``chunk_events``."""
        return self._checked()

    def time_range(self) -> tuple[int, int]:
        """First and last timestamp in microseconds (a full scan for streaming formats,
        remembered afterwards)."""
        if self._range is None:
            known = self._first_last()
            if known is None:
                first = last = None
                for ev in self._checked():
                    first = int(ev.t[0]) if first is None else first
                    last = int(ev.t[-1])
                assert first is not None and last is not None  # _checked raises when empty
                known = (first, last)
            self._range = (int(known[0]), int(known[1]))
        return self._range

    def windows(self, edges_us: Iterable[int]) -> Iterator[Events]:
        """For consecutive edges ``e0 < e1 < ... < en``, one :class:`Events` per window
        ``[e_i, e_i+1)`` (``n`` of them, empty ones included), streaming: events before ``e0``
        are skipped (by a seek where the format allows), reading stops at the first chunk that
        reaches ``en``."""
        edges = np.asarray(list(edges_us) if not isinstance(edges_us, np.ndarray) else edges_us)
        if edges.ndim != 1 or len(edges) < 2:
            raise ValueError("windows() needs at least two edges")
        if edges.dtype.kind not in "iu":
            if edges.dtype.kind != "f" or np.any(edges != np.floor(edges)):
                raise ValueError("window edges must be whole microseconds")
        edges = edges.astype(np.int64)
        if np.any(edges[1:] <= edges[:-1]):
            raise ValueError("window edges must be strictly increasing")
        return self._windows(edges)

    def _windows(self, edges: np.ndarray) -> Iterator[Events]:
        n = len(edges) - 1
        i = 0
        pending: list[Events] = []
        for chunk in self._checked(start_us=int(edges[0])):
            if chunk.t[-1] < edges[0]:
                continue
            if chunk.t[0] < edges[0]:
                chunk = chunk.slice_time(int(edges[0]), int(chunk.t[-1]) + 1)
            while i < n and chunk.t[-1] >= edges[i + 1]:
                cut = int(np.searchsorted(chunk.t, edges[i + 1], side="left"))
                pending.append(_rows(chunk, 0, cut))
                yield _owned(pending)
                pending = []
                chunk = _rows(chunk, cut, len(chunk))
                i += 1
            if i == n:
                return
            if len(chunk):
                pending.append(chunk)
        while i < n:
            yield _owned(pending)
            pending = []
            i += 1


def _rows(ev: Events, i0: int, i1: int) -> Events:
    return Events(ev.t[i0:i1], ev.x[i0:i1], ev.y[i0:i1], ev.p[i0:i1])


def _owned(parts: list[Events]) -> Events:
    """One batch that owns its memory (a window must not pin a whole chunk, or a file map)."""
    parts = [e for e in parts if len(e)]
    if len(parts) == 1:
        e = parts[0]
        return Events(e.t.copy(), e.x.copy(), e.y.copy(), e.p.copy())
    return Events.concat(parts)
