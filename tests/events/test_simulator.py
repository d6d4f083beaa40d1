"""The event simulator against a plain per-pixel loop of the same model and against evlib's ESIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iefvad.events.simulator import EventSimulator, SimulatorConfig, log_intensity, simulate


def reference_loop(gray: np.ndarray, times: np.ndarray, cfg: SimulatorConfig) -> list[tuple]:
    """The ESIM/v2e pixel model written one pixel and one crossing at a time:
    ``(t, x, y, p)`` of every event, sorted by time."""
    n, h, w = gray.shape
    rng = np.random.default_rng(cfg.seed)
    noise = rng.standard_normal((2, h, w)) * cfg.threshold_sigma
    c_on = np.maximum(cfg.threshold_on + noise[0], cfg.min_threshold)
    c_off = np.maximum(cfg.threshold_off + noise[1], cfg.min_threshold)
    logs = log_intensity(gray, cfg.log_floor)
    out = []
    for y in range(h):
        for x in range(w):
            ref, last = logs[0, y, x], -math.inf
            for k in range(1, n):
                l0, l1, t0, t1 = logs[k - 1, y, x], logs[k, y, x], times[k - 1], times[k]
                while True:
                    if l1 - ref >= c_on[y, x]:
                        ref += c_on[y, x]
                        p = 1
                    elif ref - l1 >= c_off[y, x]:
                        ref -= c_off[y, x]
                        p = 0
                    else:
                        break
                    t = t0 + (ref - l0) / (l1 - l0) * (t1 - t0)
                    if t - last >= cfg.refractory_us:
                        out.append((t, x, y, p))
                        last = t
    out.sort(key=lambda e: e[0])
    return out


def smooth_frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Frames whose pixels drift, through dark and bright levels (1..254; never clipped: a
    pixel that returns exactly to a level it left sits on a threshold, where float rounding
    decides an event either way)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (h, w)) + rng.normal(0, 0.6, (n, h, w)).cumsum(0)
    return 127.5 + 126.5 * np.sin(phase)


@pytest.mark.parametrize(
    "cfg",
    [
        SimulatorConfig(threshold_sigma=0.0, refractory_us=0),
        SimulatorConfig(threshold_on=0.15, threshold_off=0.3, threshold_sigma=0.05, seed=3),
        SimulatorConfig(refractory_us=4000, seed=1),
    ],
)
def test_matches_the_per_pixel_loop(cfg: SimulatorConfig) -> None:
    gray = smooth_frames(9, 7, 11, seed=2)
    times = np.cumsum(np.r_[0, np.random.default_rng(5).integers(20_000, 50_000, 8)])
    ref = reference_loop(gray, times, cfg)
    ev = simulate(gray, times, cfg)
    assert len(ev) == len(ref) > 50
    # per pixel, in time order: same polarities, times within 1 µs (rounding)
    got = np.array(sorted(zip(ev.y.tolist(), ev.x.tolist(), ev.t.tolist(), ev.p.tolist())))
    want = np.array(sorted((y, x, t, p) for t, x, y, p in ref))
    assert np.array_equal(got[:, [0, 1, 3]], want[:, [0, 1, 3]])
    assert np.abs(got[:, 2] - want[:, 2]).max() <= 1
    assert np.all(np.diff(ev.t) >= 0)
    assert ev.t.dtype == np.int64 and ev.x.dtype == ev.y.dtype == np.int32
    assert ev.p.dtype == np.int8


def test_the_refractory_period_removes_events_and_fed_in_parts_equals_at_once() -> None:
    gray = smooth_frames(12, 6, 5, seed=4)
    times = np.arange(12) * 33_333
    free = simulate(gray, times, SimulatorConfig(refractory_us=0))
    blind = simulate(gray, times, SimulatorConfig(refractory_us=20_000))
    assert 0 < len(blind) < len(free)
    sim = EventSimulator(SimulatorConfig(refractory_us=20_000))
    parts = [sim.feed(gray[a:b], times[a:b]) for a, b in ((0, 1), (1, 5), (5, 12))]
    joined = np.concatenate([p.t for p in parts])
    assert np.array_equal(joined, blind.t)
    for a in ("x", "y", "p"):
        assert np.array_equal(np.concatenate([getattr(p, a) for p in parts]), getattr(blind, a))


def test_contrast_not_difference_and_mismatch_is_seeded() -> None:
    """Doubling the light gives the same events in a dark and in a bright region."""
    dark = np.full((2, 4, 4), 10.0)
    dark[1] = 20.0
    bright = dark * 10
    cfg = SimulatorConfig(threshold_sigma=0.0)
    assert len(simulate(dark, [0, 1000], cfg)) == len(simulate(bright, [0, 1000], cfg)) == 16 * 3
    g = smooth_frames(5, 8, 8, 0)
    a = simulate(g, np.arange(5) * 1000, SimulatorConfig(seed=1))
    b = simulate(g, np.arange(5) * 1000, SimulatorConfig(seed=1))
    c = simulate(g, np.arange(5) * 1000, SimulatorConfig(seed=2))
    assert np.array_equal(a.t, b.t) and len(a) != len(c)
    with pytest.raises(ValueError, match="increase"):
        EventSimulator().feed(g[:2], [5, 5])


def test_per_pixel_counts_agree_with_evlib_esim() -> None:
    """evlib's ESIM (pip evlib, evlib.simulation) on the same frames: its events come at frame
    times, ours are interpolated, so counts per pixel and polarity are compared. Same model,
    float64: equal on every pixel but a 1e-3 fraction (float rounding at a threshold; evlib
    takes its log floor in float32)."""
    sim_mod = pytest.importorskip("evlib.simulation")
    gray = smooth_frames(10, 24, 32, seed=7)
    times = np.arange(10) * 40_000
    esim = sim_mod.ESIMSimulator(
        sim_mod.ESIMConfig(
            positive_threshold=0.2, negative_threshold=0.2, refractory_period_ms=0.1,
            log_floor=1e-3, device="cpu", dtype="float64",
        )
    )  # fmt: skip
    theirs = np.zeros((2, 24, 32), np.int64)
    for f, t in zip(gray, times):
        x, y, _, p = esim.process_frame(f, t / 1e6)
        if len(x):
            np.add.at(theirs, ((p < 0).astype(int), y.astype(int), x.astype(int)), 1)
    ev = simulate(gray, times, SimulatorConfig(threshold_sigma=0.0, refractory_us=100))
    ours = np.zeros_like(theirs)
    np.add.at(ours, ((ev.p == 0).astype(int), ev.y, ev.x), 1)
    assert ours.sum() > 1000
    assert abs(int(ours.sum()) - int(theirs.sum())) <= 1e-3 * theirs.sum()
    assert np.mean(ours != theirs) <= 1e-3
