"""Readers of event recordings: every format reads back the events its writer stored, windows()
equals slicing the whole array, and bad files give one RecordingError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iefvad.errors import UserInputError
from iefvad.events.readers import SUPPORTED_FORMATS, RecordingError, open_recording
from iefvad.events.types import Events

from event_helpers import SENSOR, assert_same, random_events, save_npy, save_npz, video_events

# name -> (suffix, writer(path, events))
WRITERS = {
    "npz": (".npz", save_npz),
    "npz_compressed": (".npz", lambda p, e: save_npz(p, e, compressed=True)),
    "npy": (".npy", save_npy),
}


def write(tmp_path: Path, kind: str, ev: Events, name: str = "rec") -> Path:
    suffix, writer = WRITERS[kind]
    path = tmp_path / f"{name}{suffix}"
    writer(path, ev)
    return path


def read_all(path: Path, **kw) -> Events:
    with open_recording(path, **kw) as rec:
        return Events.concat(list(rec))


@pytest.mark.parametrize("kind", list(WRITERS))
def test_video_events_read_back_exactly(tmp_path: Path, kind: str) -> None:
    ev = video_events()
    path = write(tmp_path, kind, ev)
    with open_recording(path, sensor_size=SENSOR, chunk_events=100_000) as rec:
        assert rec.format == kind.split("_")[0] and rec.path == path
        assert rec.sensor_size == SENSOR
        chunks = list(rec)
        assert max(len(c) for c in chunks) <= 100_000 and len(chunks) >= 4
        assert_same(Events.concat(chunks), ev)
        assert rec.time_range() == (int(ev.t[0]), int(ev.t[-1]))
        edges = np.arange(0, int(ev.t[-1]) + 40_000, 40_000)  # 25 fps frames
        wins = list(rec.windows(edges))
    assert len(wins) == len(edges) - 1
    for w, (a, b) in zip(wins, zip(edges[:-1], edges[1:])):
        assert_same(w, ev.slice_time(int(a), int(b)))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(list(WRITERS)),
    chunk=st.integers(1, 400),
    edges=st.lists(st.integers(-50, 1_200), min_size=2, max_size=12, unique=True),
)
def test_windows_equal_slicing(tmp_path: Path, kind: str, chunk: int, edges: list[int]) -> None:
    ev = random_events(1_000, seed=1, span_us=1_000)  # many equal timestamps
    path = write(tmp_path, kind, ev)
    edges = sorted(edges)
    with open_recording(path, chunk_events=chunk) as rec:
        wins = list(rec.windows(edges))
    assert len(wins) == len(edges) - 1
    for w, a, b in zip(wins, edges[:-1], edges[1:]):
        assert_same(w, ev.slice_time(a, b))


def test_windows_skip_what_lies_outside_the_edges(tmp_path: Path) -> None:
    """Unsorted events before the first edge (seek) and after the last (not read) go unseen."""
    ev = random_events(10_000, seed=2)
    t = ev.t.copy()
    t[:50] = t[:50][::-1]
    t[-50:] = t[-50:][::-1]
    bad = Events(t, ev.x, ev.y, ev.p)
    for kind in ("npz", "npy"):
        path = write(tmp_path, kind, bad)
        lo, hi = int(ev.t[200]), int(ev.t[-200])
        with open_recording(path, chunk_events=100) as rec:
            wins = list(rec.windows([lo, (lo + hi) // 2, hi]))
            with pytest.raises(RecordingError, match="back in time"):
                list(rec)
        assert_same(Events.concat(wins), ev.slice_time(lo, hi))


def test_polarity_minus_one_and_bool(tmp_path: Path) -> None:
    ev = random_events(500)
    np.savez(tmp_path / "pm.npz", t=ev.t, x=ev.x, y=ev.y, p=np.where(ev.p > 0, 1, -1))
    np.savez(tmp_path / "b.npz", t=ev.t, x=ev.x, y=ev.y, p=ev.p.astype(bool))
    assert_same(read_all(tmp_path / "pm.npz"), ev)
    assert_same(read_all(tmp_path / "b.npz"), ev)


def bad_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    ev = random_events(2_000, seed=3, size=(100, 200))
    out = {}

    def case(name, match, t=ev.t, x=ev.x, y=ev.y, p=ev.p):
        path = tmp_path / f"{name}.npz"
        np.savez(path, t=t, x=x, y=y, p=p)
        out[name] = (path, match)

    t = ev.t.copy()
    t[1500], t[1501] = t[1501] + 5, t[1500]
    case("unsorted", "back in time at event 1501", t=t)
    case("negative", "negative timestamp", t=ev.t - 10**6)
    case("outside", "x=200, outside the sensor", x=np.where(np.arange(2000) == 7, 200, ev.x))
    case("negative_y", "y=-1", y=np.where(np.arange(2000) == 9, -1, ev.y))
    case("empty", "no events", t=ev.t[:0], x=ev.x[:0], y=ev.y[:0], p=ev.p[:0])
    case("lengths", "differ in length", p=ev.p[:10])
    case("seconds", "not whole microseconds", t=ev.t / 1e6)
    case("polarity", "polarity values", p=ev.p * 2)
    np.savez(tmp_path / "keys.npz", ts=ev.t, x=ev.x, y=ev.y, p=ev.p)
    out["keys"] = (tmp_path / "keys.npz", "no array named t")
    full = tmp_path / "full.npz"
    np.savez(full, t=ev.t, x=ev.x, y=ev.y, p=ev.p)
    (tmp_path / "truncated.npz").write_bytes(full.read_bytes()[:-200])
    out["truncated_npz"] = (tmp_path / "truncated.npz", "truncated")
    save_npy(tmp_path / "full.npy", ev)
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:-100])
    out["truncated_npy"] = (tmp_path / "truncated.npy", "truncated")
    np.save(tmp_path / "plain.npy", np.zeros((10, 4)))
    out["plain_npy"] = (tmp_path / "plain.npy", "structured array with the fields t, x, y, p")
    (tmp_path / "zero.npz").write_bytes(b"")
    out["zero_bytes"] = (tmp_path / "zero.npz", "empty")
    (tmp_path / "notes.txt").write_text("hello")
    out["unknown"] = (tmp_path / "notes.txt", "unknown event recording format")
    out["missing"] = (tmp_path / "nothing.npz", "no such event recording")
    return out


@pytest.mark.parametrize(
    "name",
    ["unsorted", "negative", "outside", "negative_y", "empty", "lengths", "seconds", "polarity",
     "keys", "truncated_npz", "truncated_npy", "plain_npy", "zero_bytes", "unknown", "missing"],
)  # fmt: skip
def test_bad_recordings_raise_one_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path, match = bad_cases(tmp_path)[name]
    with pytest.raises(RecordingError, match=match) as info:
        read_all(path, sensor_size=(100, 200))
    assert str(path) in str(info.value)
    assert isinstance(info.value, UserInputError)


def test_compressed_member_damage_is_a_recording_error(tmp_path: Path) -> None:
    ev = random_events(50_000, seed=4)
    path = tmp_path / "c.npz"
    save_npz(path, ev, compressed=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside a deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=str(path)):
        read_all(path)


def test_wrong_format_flag(tmp_path: Path) -> None:
    ev = random_events(100)
    npz = write(tmp_path, "npz", ev)
    npy = write(tmp_path, "npy", ev)
    with pytest.raises(RecordingError, match="not a npy recording.*looks like npz"):
        open_recording(npz, "npy")
    with pytest.raises(RecordingError, match="not a npz recording.*looks like npy"):
        open_recording(npy, "npz")
    with pytest.raises(RecordingError, match="unknown event format 'mp4'"):
        open_recording(npy, "mp4")
    renamed = tmp_path / "events.bin"
    renamed.write_bytes(npz.read_bytes())
    assert_same(read_all(renamed), ev)  # no known suffix: the first bytes say npz


def test_sensor_size_given_is_checked(tmp_path: Path) -> None:
    ev = random_events(300, size=(50, 60))
    path = write(tmp_path, "npz", ev)
    with open_recording(path, sensor_size=(50, 60)) as rec:
        assert rec.sensor_size == (50, 60)
    with pytest.raises(RecordingError, match="outside the sensor"):
        read_all(path, sensor_size=(40, 40))


def test_windows_arguments() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        next(iter(_dummy().windows([5, 5])))
    with pytest.raises(ValueError, match="at least two"):
        _dummy().windows([5])


def _dummy():
    from iefvad.events.recording import Recording

    return Recording(Path("x"))


def test_supported_formats_listed() -> None:
    assert {"npz", "npy"} <= set(SUPPORTED_FORMATS)
