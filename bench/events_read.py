import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""Reading event recordings in bounded memory: one JSON line per format.

    python bench/events_read.py                       # 200 million events (a UCF-Crime-DVS video)
    python bench/events_read.py --events 2000000      # a quick run

Generates a recording of ``--events`` events (1280x720, random pixels, about 826,000 events/s,
i.e. 200 million over 242 s like a long UCF-Crime-DVS video) in a temporary folder, written in
chunks in each format it can produce at that size (.npy, .npz stored, HDF5 with Blosc, EVT 2.0,
EVT 2.1), then reads each through ``Recording.windows`` on the snippets of 16 frames at 30 fps,
in a fresh process per format. Prints events/s of the windowed read and its peak resident memory
(``resource.getrusage`` of the reading process, which starts small: ``rss_after_imports_mb``),
the time ``time_range()`` took apart (a full scan for the sequential formats), the file's size.
"""

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HEIGHT, WIDTH = 720, 1280
RATE = 826_000  # events per second
GEN_CHUNK = 5_000_000
HEADER = "% format {};height=720;width=1280\n% geometry 1280x720\n% end\n"


def chunks(n: int):
    """The recording, ``GEN_CHUNK`` events at a time, as (t, x, y, p); deterministic."""
    span = GEN_CHUNK * 1_000_000 // RATE  # microseconds per chunk
    for k, i in enumerate(range(0, n, GEN_CHUNK)):
        m = min(GEN_CHUNK, n - i)
        rng = np.random.default_rng(k)
        t = np.sort(rng.integers(0, span, m)) + k * span
        yield (
            t.astype(np.int64),
            rng.integers(0, WIDTH, m),
            rng.integers(0, HEIGHT, m),
            (rng.integers(0, 2, m)),
        )


def write_npy(path: Path, n: int) -> None:
    dtype = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(
            f,
            {
                "descr": np.lib.format.dtype_to_descr(dtype),
                "fortran_order": False,
                "shape": (n,),
            },  # fmt: skip
        )
        for t, x, y, p in chunks(n):
            a = np.empty(len(t), dtype)
            a["t"], a["x"], a["y"], a["p"] = t, x, y, p
            a.tofile(f)


def write_npz(path: Path, n: int) -> None:
    """``np.savez`` layout (stored members), one column at a time."""
    dtypes = {"t": "<i8", "x": "<i4", "y": "<i4", "p": "i1"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for col, (name, dt) in enumerate(dtypes.items()):
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(
                    f, {"descr": dt, "fortran_order": False, "shape": (n,)}
                )
                for c in chunks(n):
                    f.write(c[col].astype(dt).tobytes())


def write_hdf5(path: Path, n: int) -> None:
    import h5py
    import hdf5plugin

    comp = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(path, "w") as f:
        cols = [
            f.create_dataset(f"events/{c}", (n,), dtype=d, chunks=(1 << 16,), **comp)
            for c, d in (("t", "u4"), ("x", "u2"), ("y", "u2"), ("p", "u1"))
        ]
        f.create_dataset("t_offset", data=np.int64(0))
        i = 0
        for c in chunks(n):
            for ds, a in zip(cols, c):
                ds[i : i + len(a)] = a
            i += len(c[0])


def _with_time_high(cd: np.ndarray, t: np.ndarray, high_word, last_high: list[int]) -> np.ndarray:
    high = t >> 6
    new = np.ones(len(high), bool)
    new[1:] = high[1:] != high[:-1]
    new[0] = int(high[0]) != last_high[0]
    last_high[0] = int(high[-1])
    out = np.empty(len(cd) + int(new.sum()), cd.dtype)
    at = np.arange(len(cd)) + np.cumsum(new)
    out[at] = cd
    out[at[new] - 1] = high_word(high[new])
    return out


def write_evt2(path: Path, n: int) -> None:
    """EVT 2.0 words: a CD word per event, a TIME_HIGH word whenever t >> 6 changes."""
    last = [-1]
    with open(path, "wb") as f:
        f.write(HEADER.format("EVT2").encode())
        for t, x, y, p in chunks(n):
            t, x, y, p = (a.astype(np.uint32) for a in (t, x, y, p))
            cd = (p << 28) | ((t & 63) << 22) | (x << 11) | y
            words = _with_time_high(
                cd, t.astype(np.int64), lambda h: (8 << 28) | (h & 0x0FFFFFFF), last
            )
            words.astype("<u4").tofile(f)


def write_evt21(path: Path, n: int) -> None:
    """EVT 2.1 words, one event per word (random pixels leave nothing to vectorise)."""
    last = [-1]
    u = np.uint64
    with open(path, "wb") as f:
        f.write(HEADER.format("EVT21;endianness=little").encode())
        for t, x, y, p in chunks(n):
            t64, x, y, p = (a.astype(np.uint64) for a in (t, x, y, p))
            cd = (
                (p << u(60)) | ((t64 & u(63)) << u(54)) | ((x & ~u(31)) << u(43))
                | (y << u(32)) | (u(1) << (x & u(31)))
            )  # fmt: skip
            words = _with_time_high(
                cd, t, lambda h: (u(8) << u(60)) | ((h.astype(np.uint64) & u(0x0FFFFFFF)) << u(32)),
                last,
            )  # fmt: skip
            words.astype("<u8").tofile(f)


WRITERS = {"npy": ("rec.npy", write_npy), "npz": ("rec.npz", write_npz),
           "hdf5": ("rec.h5", write_hdf5), "evt2": ("rec2.raw", write_evt2),
           "evt21": ("rec21.raw", write_evt21)}  # fmt: skip


def read(path: str, chunk_events: int) -> None:
    """The child: read ``path`` by 16-frame windows at 30 fps; one JSON line."""
    from iefvad.events.readers import open_recording

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    n = windows = 0
    with open_recording(path, chunk_events=chunk_events) as rec:
        first, last = rec.time_range()  # a full scan for the streaming formats
        range_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        step = 16 * 1_000_000 / 30
        edges = np.round(first + np.arange(int((last - first) / step) + 2) * step).astype(np.int64)
        for ev in rec.windows(edges):
            n += len(ev)
            windows += 1
        fmt = rec.format
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "format": fmt, "events": n, "windows": windows, "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds),
        "time_range_seconds": round(range_seconds, 2), "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mb": round(base / 1024, 1),
    }), flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description="Reading event recordings in bounded memory")
    ap.add_argument("--events", type=int, default=200_000_000)
    ap.add_argument("--formats", default=",".join(WRITERS))
    ap.add_argument("--chunk_events", type=int, default=2_000_000)
    ap.add_argument("--read", help=argparse.SUPPRESS)
    ap.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read:
        return read(args.read, args.chunk_events)
    if args.write:  # in a child too: the peak memory of a parent carries over to its children
        return WRITERS[args.write[0]][1](Path(args.write[1]), args.events)
    machine = {"cpu_cores": os.cpu_count(), "machine": platform.machine(),
               "processor": platform.processor() or platform.machine()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="iefvad-events-bench-") as tmp:
        for fmt in args.formats.split(","):
            name, _ = WRITERS[fmt]
            path = Path(tmp) / name
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--write", fmt, str(path), "--events", str(args.events)],
                check=True,
            )
            written = time.perf_counter() - t0
            out = subprocess.run(
                [sys.executable, __file__, "--read", str(path), "--chunk_events",
                 str(args.chunk_events)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            result = json.loads(out.strip().splitlines()[-1])
            assert result["events"] == args.events, (fmt, result["events"], args.events)
            print(json.dumps({"bench": "events.read", **result, "file_mb": round(
                path.stat().st_size / 2**20), "write_seconds": round(written, 1),
                "chunk_events": args.chunk_events, **machine}), flush=True)  # fmt: skip
            path.unlink()


if __name__ == "__main__":
    main()
