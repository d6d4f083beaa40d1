"""Readers of event recordings: every format reads back the events its writer stored, windows()
equals slicing the whole array, and bad files give one RecordingError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prophesee_encoders import write_evt3, write_evt21

from iefvad.errors import UserInputError
from iefvad.events.formats.prophesee import read_header
from iefvad.events.readers import SUPPORTED_FORMATS, RecordingError, open_recording
from iefvad.events.types import Events

from event_helpers import (
    SENSOR,
    assert_same,
    random_events,
    save_aedat4,
    save_expelliarmus,
    save_hdf5,
    save_npy,
    save_npz,
    video_events,
)

# kind -> (suffix, writer(path, events)): each format's own writer library where one writes it
# correctly, else the byte-level encoders of prophesee_encoders.py (see there)
WRITERS = {
    "npz": (".npz", save_npz),
    "npz_compressed": (".npz", lambda p, e: save_npz(p, e, compressed=True)),
    "npy": (".npy", save_npy),
    "hdf5": (".h5", lambda p, e: save_hdf5(p, e, t_offset=int(e.t[0]) // 2, size=SENSOR)),
    "aedat4": (".aedat4", save_aedat4),
    "evt2": (".raw", lambda p, e: save_expelliarmus(p, e, "evt2")),
    "dat": (".dat", lambda p, e: save_expelliarmus(p, e, "dat")),
    "evt21": (".raw", lambda p, e: write_evt21(p, e, SENSOR)),
    "evt21_legacy": (".raw", lambda p, e: write_evt21(p, e, SENSOR, legacy=True)),
    "evt3": (".raw", lambda p, e: write_evt3(p, e, SENSOR)),
}
FORMAT_OF = {"npz_compressed": "npz", "evt21_legacy": "evt21"}
SIZE_IN_FILE = {"hdf5", "aedat4", "evt21", "evt21_legacy", "evt3"}


def write(tmp_path: Path, kind: str, ev: Events, name: str = "rec") -> Path:
    suffix, writer = WRITERS[kind]
    path = tmp_path / f"{name}{suffix}"
    writer(path, ev)
    return path


def read_all(path: Path, **kw) -> Events:
    with open_recording(path, **kw) as rec:
        return Events.concat(list(rec))


@pytest.fixture(scope="module")
def video_recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample video's events written once in every format."""
    root = tmp_path_factory.mktemp("recordings")
    return {kind: write(root, kind, video_events(), kind) for kind in WRITERS}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_video_events_read_back_exactly(video_recordings: dict[str, Path], kind: str) -> None:
    ev = video_events()
    path = video_recordings[kind]
    size = None if kind in SIZE_IN_FILE else SENSOR
    with open_recording(path, sensor_size=size, chunk_events=100_000) as rec:
        assert rec.format == FORMAT_OF.get(kind, kind) and rec.path == path
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


# --- the other formats: bad input ---------------------------------------------------------


def _unsorted(ev: Events) -> Events:
    """Time goes back once, at event 300 (each part sorted: dv-processing refuses an unsorted
    packet, so the AEDAT4 test cuts its packets there)."""
    t = ev.t.copy()
    t[299] = t[301] + 50
    return Events(t, ev.x, ev.y, ev.p)


@pytest.mark.parametrize("kind", ["hdf5", "aedat4", "evt2", "dat", "evt21", "evt3"])
def test_unsorted_timestamps_in_every_format(tmp_path: Path, kind: str) -> None:
    ev = _unsorted(random_events(1_000, seed=5))
    if kind == "aedat4":
        path = tmp_path / "rec.aedat4"
        save_aedat4(path, ev, packet=300)
    else:
        path = write(tmp_path, kind, ev)
    with pytest.raises(RecordingError, match="back in time at event 300") as info:
        read_all(path, sensor_size=None if kind in SIZE_IN_FILE else SENSOR)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["hdf5", "evt21", "evt3"])
def test_coordinates_outside_the_size_the_file_states(tmp_path: Path, kind: str) -> None:
    ev = random_events(500, seed=6)
    ev = Events(ev.t, np.where(np.arange(500) == 123, SENSOR[1] + 5, ev.x), ev.y, ev.p)
    path = write(tmp_path, kind, ev)
    with pytest.raises(RecordingError, match=f"event 123 has x={SENSOR[1] + 5}, outside"):
        read_all(path)


def test_sensor_size_given_against_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "evt3", random_events(100))
    with pytest.raises(RecordingError, match="the file says the sensor is 720x1280"):
        open_recording(path, sensor_size=(480, 640))


@pytest.mark.parametrize("kind", ["hdf5", "aedat4", "evt2", "dat", "evt21", "evt3"])
def test_no_events(tmp_path: Path, kind: str) -> None:
    if kind == "aedat4":
        path = tmp_path / "empty.aedat4"
        save_aedat4(path, Events.empty())
    elif kind == "hdf5":
        path = tmp_path / "empty.h5"
        save_hdf5(path, Events.empty())
    else:
        path = write(tmp_path, kind, random_events(50))
        size = read_header(path).size + (2 if kind == "dat" else 0)  # DAT: + type and size bytes
        path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(RecordingError, match="no events") as info:
        read_all(path, sensor_size=SENSOR)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["evt2", "evt21", "evt3", "dat"])
def test_truncated_prophesee_file_warns_and_keeps_whole_words(tmp_path: Path, kind: str) -> None:
    ev = random_events(2_000, seed=7)
    path = write(tmp_path, kind, ev)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.warns(UserWarning, match=f"{path}.*ends inside an event word"):
        got = read_all(path, sensor_size=None if kind in SIZE_IN_FILE else SENSOR)
    assert 0 < len(got) <= len(ev)
    assert_same(got, Events(ev.t[: len(got)], ev.x[: len(got)], ev.y[: len(got)], ev.p[: len(got)]))


@pytest.mark.parametrize("kind", ["hdf5", "aedat4"])
def test_truncated_container(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, kind, random_events(20_000, seed=8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordingError, match="truncated") as info:
        read_all(path, sensor_size=SENSOR)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("kind", "fmt", "match"),
    [
        ("evt3", "evt2", "not a evt2 recording \\(its header says evt3\\)"),
        ("evt21", "evt3", "its header says evt21"),
        ("evt2", "npz", "looks like a Prophesee"),
        ("hdf5", "aedat4", "looks like hdf5"),
        ("aedat4", "hdf5", "looks like aedat4"),
        ("npz", "evt3", "looks like npz"),
        ("dat", "npy", "looks like a Prophesee"),
    ],
)
def test_wrong_format_flag_every_family(tmp_path: Path, kind: str, fmt: str, match: str) -> None:
    path = write(tmp_path, kind, random_events(100))
    with pytest.raises(RecordingError, match=match) as info:
        open_recording(path, fmt)
    assert str(path) in str(info.value)


def test_raw_without_a_format_in_its_header(tmp_path: Path) -> None:
    ev = random_events(100)
    path = write(tmp_path, "evt3", ev)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"% evt 3.0\n", b"").replace(b"% format EVT3;", b"% size "))
    with pytest.raises(RecordingError, match="names no event format.*evt2, evt21 or evt3"):
        open_recording(path)
    assert_same(read_all(path, fmt="evt3", sensor_size=SENSOR), ev)


@pytest.mark.parametrize(
    ("kind", "module", "package"),
    [("hdf5", "h5py", "h5py"), ("hdf5", "hdf5plugin", "hdf5plugin"), ("aedat4", "aedat", "aedat")],
)
def test_missing_extra_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, module: str, package: str
) -> None:
    import sys

    path = write(tmp_path, kind, random_events(100))
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(RecordingError, match=f"needs the package '{package}'") as info:
        open_recording(path)
    assert "pip install 'iefvad[events]'" in str(info.value) and str(path) in str(info.value)


_PEAK = """
import sys
import numpy as np
from iefvad.events.readers import open_recording

def hwm():  # peak resident memory of this process since its exec, in MB
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

before = hwm()
with open_recording(sys.argv[1], chunk_events=100_000) as rec:
    first, last = rec.time_range()
    edges = np.linspace(first + (last - first) // 2, last + 1, 50).astype(np.int64)
    n = sum(len(w) for w in rec.windows(edges))
print(n, hwm() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_memory_stays_bounded_by_the_chunk(tmp_path: Path, kind: str) -> None:
    """Half of a 6M-event file read by windows: the peak grows by a few chunks, not by the
    file (78 MB) nor one column (48 MB), the seek included."""
    import subprocess
    import sys

    ev = random_events(6_000_000, seed=9, span_us=10**8)
    path = write(tmp_path, kind, ev)
    del ev
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    ).stdout.split()  # fmt: skip
    assert int(out[0]) > 2_900_000
    assert float(out[1]) < 30, f"peak memory grew by {out[1]} MB"
