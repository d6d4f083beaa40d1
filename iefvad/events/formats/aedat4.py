"""AEDAT4 recordings (iniVation DV cameras), read with the ``aedat`` package (a small Rust
decoder): the file is a sequence of compressed packets, decoded one at a time and gathered into
chunks of about ``chunk_events``; the first stream of events is read (frames, IMU and triggers
are skipped), its sensor size taken from the file's stream description. Sequential: a window
late in the file decodes the packets before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from iefvad.events.recording import Recording, need_package
from iefvad.events.types import Events


class Aedat4Recording(Recording):
    format = "aedat4"

    def __init__(self, path: Path, sensor_size=None, chunk_events: int = 2_000_000) -> None:
        super().__init__(path, sensor_size, chunk_events)
        self._aedat = need_package("aedat", "aedat", self.path, "AEDAT4 files")
        decoder = self._decoder()
        streams = {k: v for k, v in decoder.id_to_stream().items() if v.get("type") == "events"}
        if not streams:
            raise self.fail("the AEDAT4 file has no event stream")
        self._stream = min(streams)
        info = streams[self._stream]
        size = (int(info["height"]), int(info["width"])) if "height" in info else None
        self.set_sensor_size(size)

    def _decoder(self):
        try:
            return self._aedat.Decoder(self.path)
        except Exception as e:  # the Rust decoder raises plain exceptions on bad headers
            raise self.fail(f"not a readable AEDAT4 file ({e})") from None

    def _packets(self) -> Iterator[np.ndarray]:
        it = iter(self._decoder())
        while True:
            try:
                packet = next(it)
            except StopIteration:
                return
            except Exception as e:  # damaged or truncated packet
                raise self.fail(f"a packet can't be decoded ({e}; truncated or damaged?)") from None
            if packet.get("stream_id") == self._stream and "events" in packet:
                yield packet["events"]

    def _chunks(self, start_us: int | None = None) -> Iterator[Events]:
        parts: list[np.ndarray] = []
        held = 0
        for events in self._packets():
            if start_us is not None and len(events) and events["t"][-1] < start_us:
                continue  # a packet wholly before the first window
            parts.append(events)
            held += len(events)
            if held >= self.chunk_events:
                yield from self._split(np.concatenate(parts))
                parts, held = [], 0
        if parts:
            yield from self._split(np.concatenate(parts))

    def _split(self, a: np.ndarray) -> Iterator[Events]:
        for i in range(0, len(a), self.chunk_events):
            b = a[i : i + self.chunk_events]
            yield Events(b["t"], b["x"], b["y"], b["on"])
