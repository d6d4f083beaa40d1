"""A physically-based event camera watching a video: the ESIM / v2e pixel model, vectorised.

Each pixel memorises a reference log intensity ``L_ref``. Between two frames at ``t_k`` and
``t_k+1`` its log intensity ``L = log(max(I / 255, log_floor))`` is taken to change linearly
(ESIM's linear interpolation); every time ``L`` crosses ``L_ref + C_on`` (or ``L_ref - C_off``)
the pixel emits an ON (OFF) event at the interpolated crossing time and moves ``L_ref`` by one
threshold. So a change of ``d`` in log intensity gives ``floor(d / C)`` events spread evenly
over the frame interval, whatever the scene's absolute brightness (a contrast, not a
difference, sensor).

Parameters (:class:`SimulatorConfig`):

- ``threshold_on``, ``threshold_off``: contrast thresholds ``C_on``, ``C_off`` in log intensity
  (default 0.2 each, v2e's default; real sensors sit around 0.1-0.5).
- ``threshold_sigma``: per-pixel threshold mismatch, the standard deviation of a normal draw
  added to each pixel's ``C_on`` and ``C_off`` once (clipped to at least ``min_threshold``),
  from ``seed``: a fixed pattern, as in a real sensor. 0 turns it off.
- ``refractory_us``: after an emitted event a pixel stays blind this long (default 100 µs,
  evlib's ESIM default); the crossings
  it misses still move its reference (the pixel's memorised level follows the light).
- ``log_floor``: intensities (0..1) below it count as it, so black pixels have a finite log.
- ``seed``: of the mismatch draw.

Not modelled: leak and shot-noise events, the photoreceptor's low-pass bandwidth, motion blur
between frames (events are only as fine in time as the video's frames allow).

:func:`simulate` runs a whole frame sequence; :class:`EventSimulator` keeps a pixel array's state
between calls, so a long video is fed group by group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from iefvad.events.types import Events


@dataclass(frozen=True)
class SimulatorConfig:
    """Sensor parameters; see the module doc."""

    threshold_on: float = 0.2
    threshold_off: float = 0.2
    threshold_sigma: float = 0.03
    min_threshold: float = 0.01
    refractory_us: int = 100
    log_floor: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.threshold_on > 0 and self.threshold_off > 0):
            raise ValueError(
                f"contrast thresholds must be > 0, found {self.threshold_on}, {self.threshold_off}"
            )
        if self.threshold_sigma < 0 or self.refractory_us < 0 or not self.min_threshold > 0:
            raise ValueError("threshold_sigma and refractory_us must be >= 0, min_threshold > 0")
        if not 0 < self.log_floor < 1:
            raise ValueError(f"log_floor must be in (0, 1), found {self.log_floor}")

    def as_dict(self) -> dict:
        return asdict(self)


def log_intensity(gray: np.ndarray, log_floor: float) -> np.ndarray:
    """Gray levels 0..255 -> ``log(max(gray / 255, log_floor))`` (float64)."""
    return np.log(np.maximum(np.asarray(gray, np.float64) / 255.0, log_floor))


class EventSimulator:
    """The state of a pixel array; :meth:`feed` frames in time order, get their events."""

    def __init__(self, config: SimulatorConfig = SimulatorConfig()) -> None:
        self.config = config
        self.shape: tuple[int, int] | None = None
        self._ref: np.ndarray | None = None  # memorised log intensity
        self._last_l: np.ndarray | None = None  # log intensity of the last frame
        self._last_t: int = 0
        self._last_event: np.ndarray | None = None  # time of each pixel's last event (float µs)
        self._c_on: np.ndarray | None = None
        self._c_off: np.ndarray | None = None

    def _start(self, log_i: np.ndarray, t: int) -> None:
        cfg = self.config
        self.shape = log_i.shape
        rng = np.random.default_rng(cfg.seed)
        noise = rng.standard_normal((2, *log_i.shape)) * cfg.threshold_sigma
        self._c_on = np.maximum(cfg.threshold_on + noise[0], cfg.min_threshold).ravel()
        self._c_off = np.maximum(cfg.threshold_off + noise[1], cfg.min_threshold).ravel()
        self._ref = log_i.ravel().copy()
        self._last_l = log_i.ravel().copy()
        self._last_t = int(t)
        self._last_event = np.full(log_i.size, -np.inf)

    def feed(self, gray: np.ndarray, times_us: np.ndarray) -> Events:
        """Frames ``gray`` ``[N, H, W]`` (0..255) at ``times_us`` ``[N]`` (int µs, increasing,
        after any frame fed before) -> the events since the previous frame, sorted by time.
        The very first frame only sets the pixels' reference (no events)."""
        gray = np.asarray(gray)
        times = np.asarray(times_us, dtype=np.int64)
        if gray.ndim != 3 or len(times) != len(gray):
            raise ValueError(
                f"expected frames [N, H, W] and N times, found {gray.shape} and {times.shape}"
            )
        parts = []
        for frame, t in zip(gray, times):
            log_i = log_intensity(frame, self.config.log_floor)
            if self._ref is None:
                self._start(log_i, t)
                continue
            if log_i.shape != self.shape:
                raise ValueError(f"frame of size {log_i.shape}, the sensor is {self.shape}")
            if t <= self._last_t:
                raise ValueError(f"frame times must increase: {t} after {self._last_t}")
            parts.append(self._interval(log_i.ravel(), int(t)))
        return Events.concat(parts)

    def _interval(self, l1: np.ndarray, t1: int) -> Events:
        """Events of the linear change from the last frame to ``l1`` at ``t1``."""
        assert self._ref is not None and self._last_l is not None and self._last_event is not None
        assert self._c_on is not None and self._c_off is not None
        ref, l0, t0 = self._ref, self._last_l, self._last_t
        up = l1 - ref
        n_on = np.where(up > 0, np.floor(up / self._c_on), 0).astype(np.int64)
        n_off = np.where(up < 0, np.floor(-up / self._c_off), 0).astype(np.int64)
        n = n_on + n_off  # one polarity per pixel: L moves one way in an interval
        pix = np.flatnonzero(n)
        if not len(pix):
            self._last_l, self._last_t = l1, t1
            return Events.empty()
        on = n_on[pix] > 0
        step = np.where(on, self._c_on[pix], -self._c_off[pix])  # signed level spacing
        counts = n[pix]
        which = np.repeat(np.arange(len(pix)), counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1  # 1..n
        # crossing k of a pixel: L(t) = ref + k * step on the line from l0 to l1
        frac = (ref[pix][which] + k * step[which] - l0[pix][which]) / (l1 - l0)[pix][which]
        t = t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0)
        self._ref[pix] += counts * step
        keep = self._refractory(pix, which, t)
        t, which = t[keep], which[keep]
        order = np.argsort(t, kind="stable")
        h, w = self.shape  # type: ignore[misc]
        p_idx = pix[which[order]]
        events = Events(
            np.rint(t[order]).astype(np.int64),
            (p_idx % w).astype(np.int32),
            (p_idx // w).astype(np.int32),
            on[which[order]].astype(np.int8),
        )
        self._last_l, self._last_t = l1, t1
        return events

    def _refractory(self, pix: np.ndarray, which: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Mask of the events a pixel emits given its refractory period; updates each pixel's
        last event time. Events of one pixel in one interval are evenly spaced (``s``), so the
        kept ones are every ``m``-th from the first allowed one, ``m = ceil(R / s)``."""
        assert self._last_event is not None
        r = float(self.config.refractory_us)
        if r <= 0:
            last = np.full(len(pix), -np.inf)
            last[which] = t  # events of a pixel come in increasing time
            self._last_event[pix] = last
            return np.ones(len(t), bool)
        first = np.full(len(pix), np.inf)
        np.minimum.at(first, which, t)
        count = np.bincount(which, minlength=len(pix))
        span = np.zeros(len(pix))
        np.maximum.at(span, which, t)
        spacing = np.where(count > 1, (span - first) / np.maximum(count - 1, 1), 0.0)
        j = np.arange(len(t)) - np.repeat(np.cumsum(count) - count, count)  # 0-based index
        allowed = self._last_event[pix] + r
        spaced = spacing > 0
        safe = np.where(spaced, spacing, 1.0)
        # first index at or after `allowed`; then every m-th (m: events per refractory period)
        j0 = np.where(
            first >= allowed, 0, np.where(spaced, np.ceil((allowed - first) / safe), count)
        )
        m = np.where(spaced, np.maximum(np.ceil(r / safe - 1e-9), 1), count + 1)
        j0e, me = j0[which], m[which]
        keep = (j >= j0e) & ((j - j0e) % me == 0)
        kept_t = np.where(keep, t, -np.inf)
        last = np.full(len(pix), -np.inf)
        np.maximum.at(last, which, kept_t)
        self._last_event[pix] = np.maximum(self._last_event[pix], last)
        return keep


def simulate(
    gray: np.ndarray, times_us: np.ndarray, config: SimulatorConfig = SimulatorConfig()
) -> Events:
    """Events of a whole frame sequence ``[N, H, W]`` (0..255) at ``times_us`` ``[N]``."""
    return EventSimulator(config).feed(gray, times_us)
