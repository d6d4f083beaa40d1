"""The one in-memory form of events every reader, simulator and representation shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Events:
    """A batch of events as columns of equal length, sorted by time.

    ``t``: int64 microseconds (non-decreasing); ``x``, ``y``: int32 pixel coordinates
    (``0 <= x < width``, ``0 <= y < height``); ``p``: int8 polarity, 1 for an ON (brighter)
    event and 0 for OFF.
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.t)
        if not (len(self.x) == len(self.y) == len(self.p) == n):
            raise ValueError(
                f"event columns differ in length: t {n}, x {len(self.x)}, y {len(self.y)}, "
                f"p {len(self.p)}"
            )

    def __len__(self) -> int:
        return len(self.t)

    @staticmethod
    def empty() -> Events:
        return Events(
            np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
            np.zeros(0, np.int8),
        )

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if not parts:
            return Events.empty()
        return Events(
            np.concatenate([e.t for e in parts]), np.concatenate([e.x for e in parts]),
            np.concatenate([e.y for e in parts]), np.concatenate([e.p for e in parts]),
        )

    def slice_time(self, t0: int, t1: int) -> Events:
        """The events with ``t0 <= t < t1`` (a view; the batch is sorted by time)."""
        i0, i1 = np.searchsorted(self.t, [t0, t1], side="left")
        return Events(self.t[i0:i1], self.x[i0:i1], self.y[i0:i1], self.p[i0:i1])
