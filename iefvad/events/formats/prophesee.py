"""Prophesee recordings: ``.raw`` files in EVT 2.0, EVT 2.1 or EVT 3.0, and ``.dat`` files,
decoded by vectorised NumPy code written from Prophesee's published format descriptions
(docs.prophesee.ai, "Data Encoding Formats"); no Prophesee SDK is needed.

Every file starts with ASCII header lines ``% key value`` (a ``.raw`` header may end with
``% end``). The format comes from ``% format EVT3;height=720;width=1280`` or ``% evt 3.0``; the
sensor size from the ``format`` options, ``% geometry 1280x720`` or ``% Height``/``% Width``.

Words are read ``chunk_events`` at a time and decoded with the state (time base, row, vector
base) carried from one chunk to the next; a vector word expands to up to 12 (EVT 3.0) or 32
(EVT 2.1) events, so a chunk may hold that many times more events than words. Timestamps that
wrap around (EVT 2.0/2.1 every 2^34 us, EVT 3.0 every 2^24 us, DAT every 2^32 us) are unwrapped;
events before the first time-base word (EVT 2.x, 3.0) are dropped, as Prophesee's decoder does.
Sequential: a window late in the file decodes the words before it.

EVT 2.1 words are little-endian 64-bit words; a header with ``endianness=legacy`` (the two
32-bit halves swapped) is honoured.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iefvad.events.recording import Recording, RecordingError
from iefvad.events.types import Events

MAX_HEADER = 1 << 20  # bytes of header lines read at most


@dataclass
class Header:
    fields: dict[str, str]
    size: int  # bytes before the data
    format: str | None  # "evt2" | "evt21" | "evt3" from the header, or None
    options: dict[str, str] = field(default_factory=dict)  # the `format` line's options

    def sensor_size(self) -> tuple[int, int] | None:
        h, w = self.options.get("height"), self.options.get("width")
        if (h is None or w is None) and "geometry" in self.fields:
            parts = self.fields["geometry"].lower().split("x")
            if len(parts) == 2:
                w, h = parts
        if h is None or w is None:
            h, w = self.fields.get("height"), self.fields.get("width")
        try:
            return (int(h), int(w)) if h is not None and w is not None else None
        except ValueError:
            return None


def _format_name(name: str) -> str | None:
    name = name.strip().lower().replace(".", "").replace(" ", "")
    names = {"evt2": "evt2", "evt20": "evt2", "evt21": "evt21", "evt3": "evt3", "evt30": "evt3"}
    return names.get(name if name.startswith("evt") else "evt" + name)


def read_header(path: Path) -> Header:
    """The ``%`` header lines of a Prophesee file: a line counts when it starts with ``% ``
    (or is ``%`` alone) and is ASCII; reading stops after ``% end`` or at the first other
    line."""
    fields: dict[str, str] = {}
    pos = 0
    with open(path, "rb") as f:
        while pos < MAX_HEADER:
            f.seek(pos)
            line = f.readline(4096)
            if not line.startswith(b"%") or not line.endswith(b"\n"):
                break
            if len(line) > 2 and line[1:2] not in (b" ", b"\r", b"\n"):
                break
            try:
                text = line.decode("ascii").strip()
            except UnicodeDecodeError:
                break
            pos += len(line)
            body = text[1:].strip()
            if body.lower() == "end":
                break
            key, _, value = body.partition(" ")
            if key:
                fields[key.lower()] = value.strip()
    fmt, options = None, {}
    if "format" in fields:
        name, *opts = fields["format"].split(";")
        fmt = _format_name(name)
        for opt in opts:
            k, _, v = opt.partition("=")
            options[k.strip().lower()] = v.strip()
    elif "evt" in fields:
        fmt = _format_name(fields["evt"])
    return Header(fields, pos, fmt, options)


def _unwrap(values: np.ndarray, prev: int | None, loops: int, period: int):
    """Unwrap a counter that wraps at ``period``: a drop of at least half a period between
    consecutive values is a wrap
    (as in Prophesee's decoders). Returns (unwrapped int64, last raw value, loops)."""
    v = values.astype(np.int64)
    if len(v) == 0:
        return v, prev, loops
    seq = np.concatenate([[v[0] if prev is None else prev], v])
    wraps = np.cumsum(np.diff(seq) <= -(period // 2)) + loops
    return v + wraps * period, int(v[-1]), int(wraps[-1])


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the last ``True`` at or before it (-1 if none)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(idx) if len(idx) else idx


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(v: np.ndarray) -> np.ndarray:
    """Set bits of each uint32."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(v).astype(np.int64)
    return _BYTE_BITS[v.astype("<u4").view(np.uint8)].reshape(-1, 4).sum(1, dtype=np.int64)


def set_bits(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The set bits of a vector word's mask, as (word index, bit index) in word order, then
    bit order: one pass per bit rank (a word's k-th lowest set bit), over the words that
    still have bits."""
    counts = popcount(valid)
    start = np.cumsum(counts) - counts
    rows = np.repeat(np.arange(len(valid)), counts)
    cols = np.empty(len(rows), np.int32)
    idx = np.flatnonzero(counts)
    v = valid[idx].astype(np.int64)
    rank = 0
    while len(idx):
        low = v & -v
        cols[start[idx] + rank] = popcount((low - 1).astype(np.uint32))
        v ^= low
        more = v != 0
        idx, v = idx[more], v[more]
        rank += 1
    return rows, cols


class _Evt2State:
    high: int | None = None  # unwrapped time base (us) of the last TIME_HIGH
    raw: int | None = None
    loops = 0


def decode_evt2(w: np.ndarray, s: _Evt2State, wide: bool = False) -> tuple[np.ndarray, ...]:
    """EVT 2.0 (32-bit words; ``wide``: EVT 2.1, 64-bit words with a 32-pixel valid mask).

    type = top 4 bits: 0 CD_OFF, 1 CD_ON, 8 TIME_HIGH (28 bits of time base, in 64 us), others
    ignored. A CD word holds 6 bits of timestamp, x (11 bits) and y (11 bits).
    """
    shift = 32 if wide else 0
    top = (w >> np.uint64(shift)).astype(np.uint32) if wide else w
    typ = top >> 28
    is_high = typ == 8
    highs, s.raw, s.loops = _unwrap(top[is_high] & 0x0FFFFFFF, s.raw, s.loops, 1 << 28)
    highs = highs << 6
    last = _ffill_index(is_high)
    n_high = np.cumsum(is_high) - 1
    cd = typ <= 1
    before = cd & (last < 0)
    base = np.where(last >= 0, highs[np.maximum(n_high, 0)] if len(highs) else 0, s.high or 0)
    keep = cd & ~(before & (s.high is None))
    if len(highs):
        s.high = int(highs[-1])
    ts = base[keep] + ((top[keep] >> 22) & 0x3F).astype(np.int64)
    x = ((top[keep] >> 11) & 0x7FF).astype(np.int32)
    y = (top[keep] & 0x7FF).astype(np.int32)
    p = typ[keep].astype(np.int8)
    if not wide:
        return ts, x, y, p
    rows, cols = set_bits((w[keep] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    return ts[rows], x[rows] + cols, y[rows], p[rows]


class _Evt3State:
    high: int | None = None  # unwrapped 12-bit time high (units of 4096 us)
    raw: int | None = None
    loops = 0
    time: int | None = None  # the current timestamp (us)
    y = 0
    base_x = 0
    pol = 0


def decode_evt3(w: np.ndarray, s: _Evt3State) -> tuple[np.ndarray, ...]:
    """EVT 3.0 (16-bit words; type = top 4 bits): 0 ADDR_Y (y), 2 ADDR_X (one event: x and
    polarity), 3 VECT_BASE_X (base x and polarity of the vectors that follow), 4 VECT_12 and
    5 VECT_8 (events at base x + set bits; base x then advances by 12 or 8), 6 TIME_LOW (low
    12 bits of the 24-bit time), 8 TIME_HIGH (high 12 bits). Other types (triggers, counters,
    continuations) carry no CD event and are skipped."""
    typ = w >> 12
    pay = (w & 0xFFF).astype(np.int64)
    is_high, is_low = typ == 8, typ == 6
    highs, s.raw, s.loops = _unwrap(pay[is_high], s.raw, s.loops, 1 << 12)
    # the time base in force at each word: the last TIME_HIGH's, else the previous chunk's
    last_high = _ffill_index(is_high)
    high_at = np.where(
        last_high >= 0, highs[np.maximum(np.cumsum(is_high) - 1, 0)] if len(highs) else 0,
        -1 if s.high is None else s.high,
    )  # fmt: skip
    # the time at each word: set by TIME_LOW (high << 12 | low) and by a TIME_HIGH that changes
    # the high bits (to high << 12; one repeating them keeps the low bits, as Prophesee's does)
    prev = np.concatenate([[-1 if s.high is None else s.high], highs[:-1]])
    is_time = is_low.copy()
    is_time[np.flatnonzero(is_high)[highs != prev]] = True
    value = np.where(is_low, (high_at << 12) + pay, high_at << 12)
    last_time = _ffill_index(is_time)
    time_at = np.where(
        last_time >= 0, value[np.maximum(last_time, 0)], -1 if s.time is None else s.time
    )
    valid_time = (last_time >= 0) & (high_at >= 0) | (last_time < 0) & (s.time is not None)
    # row: the last ADDR_Y
    is_y = typ == 0
    last_y = _ffill_index(is_y)
    y_at = np.where(last_y >= 0, pay[np.maximum(last_y, 0)] & 0x7FF, s.y)
    # vectors: base x from the last VECT_BASE_X plus the advances of the vectors since
    is_base = typ == 3
    inc = np.where(typ == 4, 12, np.where(typ == 5, 8, 0))
    before = np.cumsum(inc) - inc  # advances before each word
    anchor = np.where(is_base, (pay & 0x7FF) - before, 0)
    last_base = _ffill_index(is_base)
    base_at = np.where(last_base >= 0, anchor[np.maximum(last_base, 0)], s.base_x) + before
    pol_at = np.where(last_base >= 0, (pay[np.maximum(last_base, 0)] >> 11) & 1, s.pol)
    # state for the next chunk
    if len(highs):
        s.high = int(highs[-1])
    if len(w):
        if last_time[-1] >= 0 and high_at[last_time[-1]] >= 0:
            s.time = int(time_at[-1])
        s.y = int(y_at[-1])
        s.base_x = int(base_at[-1] + inc[-1])
        s.pol = int(pol_at[-1])
    # events: one per ADDR_X word, one per set bit of a vector word
    is_x = typ == 2
    is_vec = (typ == 4) | (typ == 5)
    ev = (is_x | is_vec) & valid_time
    mask = np.where(is_x, 1, np.where(typ == 4, pay & 0xFFF, pay & 0xFF))[ev]
    start = np.where(is_x, pay & 0x7FF, base_at)[ev]
    pol = np.where(is_x, (pay >> 11) & 1, pol_at)[ev]
    rows, cols = set_bits(mask.astype(np.uint32))
    return (
        time_at[ev][rows], (start[rows] + cols).astype(np.int32),
        y_at[ev][rows].astype(np.int32), pol[rows].astype(np.int8),
    )  # fmt: skip


class _DatState:
    raw: int | None = None
    loops = 0


DAT_RECORD = np.dtype([("t", "<u4"), ("data", "<u4")])


def decode_dat(a: np.ndarray, s: _DatState) -> tuple[np.ndarray, ...]:
    """DAT records: uint32 timestamp (us), uint32 with x (bits 0-13), y (14-27), p (28-31)."""
    t, s.raw, s.loops = _unwrap(a["t"], s.raw, s.loops, 1 << 32)
    d = a["data"]
    return t, (d & 0x3FFF).astype(np.int32), ((d >> 14) & 0x3FFF).astype(np.int32), (d >> 28)


class PropheseeRecording(Recording):
    """A ``.raw`` (EVT 2.0 / 2.1 / 3.0) or ``.dat`` file."""

    WORDS = {"evt2": np.dtype("<u4"), "evt21": np.dtype("<u8"), "evt3": np.dtype("<u2")}

    def __init__(
        self, path: Path, sensor_size=None, chunk_events: int = 2_000_000, fmt: str | None = None
    ) -> None:
        super().__init__(path, sensor_size, chunk_events)
        self.header = read_header(self.path)
        self.format = self._resolve(fmt)
        start = self.header.size
        if self.format == "dat":
            with open(self.path, "rb") as f:
                f.seek(start)
                kind = f.read(2)
            if len(kind) < 2:
                raise self.fail("truncated: the DAT file ends inside its header")
            if kind[1] != DAT_RECORD.itemsize:
                raise self.fail(
                    f"DAT events of {kind[1]} bytes; only 8-byte CD events are supported"
                )
            start += 2
            self.word = DAT_RECORD
        else:
            self.word = self.WORDS[self.format]
            self.legacy = self.header.options.get("endianness", "").lower() == "legacy"
        self.data_start = start
        size = self.path.stat().st_size - start
        self.words = size // self.word.itemsize
        if size % self.word.itemsize:
            warnings.warn(
                f"{self.path}: the file ends inside an event word (truncated?); its last "
                f"{size % self.word.itemsize} byte(s) are ignored",
                stacklevel=3,
            )
        self.set_sensor_size(self.header.sensor_size())

    def _resolve(self, fmt: str | None) -> str:
        said = self.header.format
        is_dat = self.path.suffix.lower() == ".dat"
        if fmt is None:
            if said is not None:
                return said
            if is_dat:
                return "dat"
            raise self.fail(
                "the header names no event format (no '% format' or '% evt' line); give the "
                "format explicitly: evt2, evt21 or evt3"
            )
        if said is not None and fmt != said:
            raise self.fail(f"not a {fmt} recording (its header says {said})")
        if fmt == "dat" and (said is not None or not self.header.fields):
            raise self.fail("not a DAT recording (no DAT header)")
        return fmt

    def _decoder(self):
        if self.format == "dat":
            s = _DatState()
            return lambda w: decode_dat(w, s)
        if self.format == "evt3":
            s3 = _Evt3State()
            return lambda w: decode_evt3(w, s3)
        s2 = _Evt2State()
        wide = self.format == "evt21"

        def evt2x(w: np.ndarray) -> tuple[np.ndarray, ...]:
            if wide and self.legacy:
                w = (w << np.uint64(32)) | (w >> np.uint64(32))
            return decode_evt2(w, s2, wide=wide)

        return evt2x

    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        decode = self._decoder()
        per_read = max(1, self.chunk_events)
        with open(self.path, "rb") as f:
            f.seek(self.data_start)
            done = 0
            while done < self.words:
                n = min(per_read, self.words - done)
                words = np.fromfile(f, self.word, n)
                if len(words) != n:
                    raise self.fail(f"truncated: word {done + len(words)} can't be read")
                done += n
                t, x, y, p = decode(words)
                for i in range(0, len(t), self.chunk_events):
                    j = i + self.chunk_events
                    yield Events(t[i:j], x[i:j], y[i:j], p[i:j])


def open_prophesee(path: Path, fmt: str | None, sensor_size, chunk_events: int) -> Recording:
    try:
        return PropheseeRecording(path, sensor_size, chunk_events, fmt)
    except OSError as e:
        raise RecordingError(f"{path}: can't be read ({e})") from None
