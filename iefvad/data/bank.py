"""Training data: every list row read once, resampled once, batched by index.

The train-time resampling to 256 snippets is deterministic, so the whole training set is
turned into two ``[N, 256, D]`` arrays (image, event) once, before the first step. Each step
then gathers rows by index: no file I/O and no Python loop per sample. The arrays live in RAM
when they fit, else in memory-mapped files (optionally kept in ``cache_dir`` and reused by
later runs on the same files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from iefvad.data.csv_lists import ListRow
from iefvad.data.features import CLIP_LEN, VideoFeatures, check_finite, read_pair, resample
from iefvad.datasets.specs import DatasetSpec
from iefvad.errors import UserInputError
from iefvad.fileio import save_json
from iefvad.interrupts import thread_pool


@dataclass
class TrainBank:
    """Resampled training set. ``image``/``event`` ``[N, 256, D]`` float32 (RAM or memmap),
    ``lengths`` ``[N]`` valid snippets per row, ``labels`` ``[N]`` 1.0 = abnormal."""

    rows: list[ListRow]
    image: np.ndarray
    event: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    tmpdir: str | None = None

    @property
    def dim(self) -> int:
        return int(self.image.shape[2])

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, idx: np.ndarray) -> TrainBank:
        """Rows ``idx`` as a new bank (arrays copied into RAM)."""
        idx = np.sort(np.asarray(idx))
        return TrainBank(
            [self.rows[i] for i in idx],
            np.ascontiguousarray(self.image[idx]),
            np.ascontiguousarray(self.event[idx]),
            self.lengths[idx],
            self.labels[idx],
        )

    def close(self) -> None:
        """Remove a temporary memory-mapped backing store, if any."""
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable), or a conservative guess."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def bank_key(rows: Sequence[ListRow], n: int, dim: int, nan_policy: str) -> str:
    """Fingerprint of the inputs of a bank: paths, sizes and modification times."""
    h = hashlib.sha1(f"{n}|{dim}|{nan_policy}".encode())
    for r in rows:
        for p in (r.path, r.event_path):
            st = p.stat() if p is not None and p.exists() else None
            h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()[:16]


def _alloc(shape: tuple[int, ...], where: Path | None, name: str) -> np.ndarray:
    if where is None:
        return np.zeros(shape, dtype=np.float32)
    return np.lib.format.open_memmap(where / name, mode="w+", dtype=np.float32, shape=shape)


def _read_cached(where: Path, shape: tuple[int, ...]) -> tuple | None:
    """``(image, event, lengths)`` of a finished cache entry, or None when there is none. An
    entry that is damaged (unreadable ``meta.json``, missing or truncated arrays, other shapes)
    is reported, removed and rebuilt: a cache never decides what the model trains on."""
    meta_path = where / "meta.json"
    if not meta_path.is_file():
        return None  # not there, or a build that did not finish (meta.json is written last)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        lengths = np.asarray(meta["lengths"], dtype=np.int64)
        arrays = [np.load(where / f"{m}.npy", mmap_mode="r") for m in ("image", "event")]
        problem = next(
            (
                f"{m}.npy has shape {a.shape} and dtype {a.dtype}, expected {shape} float32"
                for m, a in zip(("image", "event"), arrays)
                if a.shape != shape or a.dtype != np.float32
            ),
            None,
        )
        if problem is None and lengths.shape != (shape[0],):
            problem = f"meta.json lists {lengths.size} lengths for {shape[0]} rows"
        if problem is None:
            return arrays[0], arrays[1], lengths
    except (OSError, ValueError, KeyError, TypeError) as e:  # truncated .npy, broken JSON
        problem = f"{type(e).__name__}: {e}"
    warnings.warn(
        f"--cache_dir entry {where} is damaged ({problem}); rebuilding it from the feature files",
        stacklevel=3,
    )
    shutil.rmtree(where, ignore_errors=True)
    return None


def build_bank(
    rows: Sequence[ListRow],
    spec: DatasetSpec,
    dim: int | None = None,
    nan_policy: str = "error",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 8,
    n: int = CLIP_LEN,
    progress: bool = True,
) -> TrainBank:
    """Read, validate and resample every row once.

    ``dim``: expected width; taken from the first file when None. ``cache_dir``: keep the
    resampled arrays there and reuse them when the same files are listed again.
    """
    rows = list(rows)
    labels = np.array([0.0 if spec.is_normal(r.label) else 1.0 for r in rows], np.float32)
    if dim is None:
        dim = read_pair(rows[0], None, nan_policy).image.shape[1]
    shape = (len(rows), n, dim)
    nbytes = 2 * int(np.prod(shape)) * 4

    where: Path | None = None
    tmpdir: str | None = None
    if cache_dir is not None:
        key = bank_key(rows, n, dim, nan_policy)
        where = Path(cache_dir) / f"bank-{key}"
        cached = _read_cached(where, shape)
        if cached is not None:
            return TrainBank(rows, cached[0], cached[1], cached[2], labels)
        where.mkdir(parents=True, exist_ok=True)
    elif nbytes > 0.6 * available_memory():
        tmpdir = tempfile.mkdtemp(prefix="iefvad-bank-")
        where = Path(tmpdir)
        warnings.warn(
            f"the resampled training set needs {nbytes / 2**30:.1f} GiB, more than fits in "
            f"RAM; memory-mapping it under {tmpdir} (pass --cache_dir to keep and reuse it)",
            stacklevel=2,
        )

    image = _alloc(shape, where, "image.npy")
    event = _alloc(shape, where, "event.npy")
    lengths = np.zeros(len(rows), dtype=np.int64)
    bad: list[VideoFeatures] = []

    def work(i: int) -> None:
        v = read_pair(rows[i], dim, nan_policy)
        image[i], lengths[i] = resample(v.image, n)
        event[i], _ = resample(v.event, n)
        if v.nonfinite:
            bad.append(VideoFeatures(v.row, v.image[:0], v.event[:0], v.nonfinite))

    try:
        with thread_pool(workers, "iefvad-read") as pool:
            it = pool.map(work, range(len(rows)))
            for _ in tqdm(
                it,
                total=len(rows),
                desc="reading train features",
                unit="file",
                disable=not progress,
            ):
                pass
        check_finite(bad, nan_policy)
    except BaseException:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    if cache_dir is not None and where is not None:
        image.flush()
        event.flush()
        save_json(where / "meta.json", {"rows": len(rows), "lengths": lengths.tolist()})
    return TrainBank(rows, image, event, lengths, labels, tmpdir)


class BatchSampler:
    """Index batches of a training epoch.

    Paired datasets: ``batch_size`` normal then ``batch_size`` abnormal rows per step, each
    from its own shuffled order, ``min`` of the two numbers of full batches per epoch. Mixed:
    one shuffled order of all rows, full batches only.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, paired: bool, seed: int) -> None:
        self.normal = np.flatnonzero(labels == 0)
        self.abnormal = np.flatnonzero(labels == 1)
        self.all = np.arange(len(labels))
        self.batch_size = batch_size
        self.paired = paired
        self.rng = np.random.default_rng(seed)
        if paired and (len(self.normal) < batch_size or len(self.abnormal) < batch_size):
            raise UserInputError(
                f"batch size {batch_size} per loader needs at least {batch_size} normal and "
                f"{batch_size} abnormal training rows; the list has {len(self.normal)} normal "
                f"and {len(self.abnormal)} abnormal. Lower --batch_size."
            )
        if not paired and len(self.all) < batch_size:
            raise UserInputError(
                f"batch size {batch_size} exceeds the {len(self.all)} training rows; "
                "lower --batch_size"
            )

    def __len__(self) -> int:
        b = self.batch_size
        if self.paired:
            return min(len(self.normal) // b, len(self.abnormal) // b)
        return len(self.all) // b

    def epoch(self) -> Iterator[np.ndarray]:
        b = self.batch_size
        if self.paired:
            n = self.rng.permutation(self.normal)
            a = self.rng.permutation(self.abnormal)
            for i in range(len(self)):
                yield np.concatenate([n[i * b : (i + 1) * b], a[i * b : (i + 1) * b]])
        else:
            p = self.rng.permutation(self.all)
            for i in range(len(self)):
                yield p[i * b : (i + 1) * b]


class DeviceBank:
    """The bank's arrays as tensors for fast gathering on ``device``.

    In-RAM arrays become resident tensors (moved to the accelerator once when they fit in a
    fraction of its free memory). Memory-mapped arrays, or ones too large for the
    accelerator, are gathered on the host in sorted row order and copied per step.
    """

    def __init__(self, bank: TrainBank, device: torch.device) -> None:
        self.device = device
        self.bank = bank
        mapped = isinstance(bank.image, np.memmap)
        nbytes = bank.image.nbytes + bank.event.nbytes
        fits = device.type != "cuda" or nbytes < 0.6 * torch.cuda.mem_get_info(device)[0]
        self.resident = not mapped and fits
        if self.resident:
            self.image = torch.from_numpy(bank.image).to(device)
            self.event = torch.from_numpy(bank.event).to(device)
        self.lengths = torch.from_numpy(bank.lengths).to(device)
        self.labels = torch.from_numpy(bank.labels).to(device)

    def gather(
        self, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image [b, n, D], event [b, n, D], lengths [b], labels [b])`` on the device."""
        idx = np.asarray(idx, dtype=np.int64)
        di = torch.from_numpy(idx).to(self.device)
        if self.resident:
            img, evt = self.image.index_select(0, di), self.event.index_select(0, di)
        else:
            order = np.argsort(idx, kind="stable")
            back = torch.from_numpy(np.argsort(order, kind="stable"))
            img = torch.from_numpy(self.bank.image[idx[order]])[back]
            evt = torch.from_numpy(self.bank.event[idx[order]])[back]
            if self.device.type == "cuda":
                img = img.pin_memory().to(self.device, non_blocking=True)
                evt = evt.pin_memory().to(self.device, non_blocking=True)
            else:
                img, evt = img.to(self.device), evt.to(self.device)
        return img, evt, self.lengths[di], self.labels[di]
