"""Reading per-video feature files and shaping them as the reference does.

Train-time: :func:`resample` maps ``[T, D]`` to ``[256, D]`` (bin means when ``T > 256``, zero
padding otherwise). Test-time: :func:`chunk` splits ``[T, D]`` into ``ceil(T / 256)`` zero-padded
chunks ``[C, 256, D]``. Files are validated as they are read; every problem names its file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iefvad.data.csv_lists import ListRow
from iefvad.errors import UserInputError
from iefvad.fileio import load_npy
from iefvad.interrupts import thread_pool
from iefvad.paths import path_problem, shown

CLIP_LEN = 256
"""Snippets per training sample / test chunk."""

NAN_POLICIES = ("error", "zero")


class FeatureError(UserInputError):
    """A feature file is missing, unreadable or does not fit."""


def read_feature(path: Path, dim: int | None = None) -> np.ndarray:
    """Load one ``.npy`` as ``float32 [T, D]``; check shape and width ``dim`` when given."""
    problem = path_problem(path)
    if problem is not None:
        raise FeatureError(
            f"feature file {shown(path)} {problem}; check the list's paths (relative paths "
            "resolve against the CSV's folder, or --data_root when given)"
        )
    try:
        arr = load_npy(path)
    except Exception as e:  # noqa: BLE001 - any read failure gets the same message
        raise FeatureError(f"cannot read feature file {path}: {e}; re-extract it") from e
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise FeatureError(
            f"feature file {path} has shape {arr.shape}; expected [T, D] with T >= 1"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise FeatureError(f"feature file {path} has dtype {arr.dtype}; expected float")
    if dim is not None and arr.shape[1] != dim:
        raise FeatureError(
            f"feature file {path} has width D={arr.shape[1]} but D={dim} is expected "
            "(from the checkpoint, --embed_dim or the first file): features of another "
            "CLIP model? ViT-L/14 gives 768, ViT-B 512"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


MAX_FEATURE_ABS = 1e4
"""Largest magnitude a feature value may have. CLIP embeddings (normalised or not, image or
event) stay within a few tens; 10^4 leaves room for any standardisation while values like
1e30 (a damaged or mis-scaled file) would overflow the model's float32 products and make
training diverge for a reason no --lr explains."""


def check_magnitude(path: Path, arr: np.ndarray) -> None:
    """Stop on a finite feature value above :data:`MAX_FEATURE_ABS`, naming the file, the
    value and where it is (NaN/Inf are counted and reported elsewhere)."""
    top = float(np.max(np.abs(arr), initial=0.0, where=np.isfinite(arr)))
    if top > MAX_FEATURE_ABS:
        t, d = np.unravel_index(
            int(np.argmax(np.where(np.isfinite(arr), np.abs(arr), 0.0))), arr.shape
        )
        raise FeatureError(
            f"feature file {path} holds the value {float(arr[t, d]):g} (snippet {t}, "
            f"column {d}): feature values beyond +-{MAX_FEATURE_ABS:g} are not CLIP "
            "embeddings and would make training diverge; re-extract the file or fix its scale"
        )


@dataclass
class VideoFeatures:
    """Image and event features of one list row, both ``float32 [T, D]``."""

    row: ListRow
    image: np.ndarray
    event: np.ndarray
    nonfinite: int = 0
    """Number of NaN/Inf values found (and zeroed, under the ``zero`` policy)."""


def read_pair(row: ListRow, dim: int | None, nan_policy: str = "error") -> VideoFeatures:
    """Read a row's image and event features and check that they belong together."""
    if row.event_path is None:
        raise FeatureError(f"list row {row.path} has no event-feature path")
    img = read_feature(row.path, dim)
    evt = read_feature(row.event_path, img.shape[1])
    if img.shape[0] != evt.shape[0]:
        raise FeatureError(
            f"image features {row.path} have T={img.shape[0]} snippets but event features "
            f"{row.event_path} have T={evt.shape[0]}; both must come from the same frames "
            "(re-extract one of them)"
        )
    bad = int(np.count_nonzero(~np.isfinite(img)) + np.count_nonzero(~np.isfinite(evt)))
    for path, arr in ((row.path, img), (row.event_path, evt)):
        check_magnitude(path, arr)
    if bad and nan_policy == "zero":
        img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
        evt = np.nan_to_num(evt, nan=0.0, posinf=0.0, neginf=0.0)
    return VideoFeatures(row, img, evt, bad)


def read_pairs(
    rows: Sequence[ListRow],
    dim: int | None,
    nan_policy: str = "error",
    workers: int = 8,
    desc: str | None = None,
) -> list[VideoFeatures]:
    """Read many rows in parallel threads, in order; report all non-finite files at once."""
    from tqdm import tqdm

    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if dim is None and rows:
        dim = read_pair(rows[0], None, nan_policy).image.shape[1]
    with thread_pool(workers, "iefvad-read") as pool:
        it = pool.map(lambda r: read_pair(r, dim, nan_policy), rows)
        out = list(tqdm(it, total=len(rows), desc=desc, disable=desc is None, unit="file"))
    check_finite(out, nan_policy)
    return out


def check_finite(items: Sequence[VideoFeatures], nan_policy: str) -> None:
    """Raise (``error``) or warn (``zero``) naming every file pair with NaN/Inf values."""
    bad = [v for v in items if v.nonfinite]
    if not bad:
        return
    names = "\n  ".join(f"{v.row.path} (+ event file): {v.nonfinite} values" for v in bad[:20])
    more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
    if nan_policy == "error":
        raise FeatureError(
            f"{len(bad)} feature file pair(s) contain NaN or Inf:\n  {names}{more}\n"
            "Re-extract them (our extractor never writes NaN), or pass --nan_policy zero "
            "to replace them by 0 as the reference silently does."
        )
    warnings.warn(
        f"replaced NaN/Inf by 0 in {len(bad)} feature file pair(s) (--nan_policy zero):"
        f"\n  {names}{more}",
        stacklevel=2,
    )


def resample_bounds(t: int, n: int = CLIP_LEN) -> np.ndarray:
    """Bin edges ``int(linspace(0, T, n + 1))`` of the reference's uniform extraction."""
    return np.linspace(0, t, n + 1, dtype=np.int32)


def resample(feat: np.ndarray, n: int = CLIP_LEN) -> tuple[np.ndarray, int]:
    """``[T, D]`` -> (``[n, D]``, valid length). ``T > n``: mean over each of n bins; else
    zero padding after the ``T`` rows (length ``T``)."""
    t, d = feat.shape
    out = np.zeros((n, d), dtype=np.float32)
    if t > n:
        r = resample_bounds(t, n)
        sums = np.add.reduceat(feat.astype(np.float64), r[:-1], axis=0)
        out[:] = sums / np.diff(r)[:, None]
        return out, n
    out[:t] = feat
    return out, t


def num_chunks(t: int, n: int = CLIP_LEN) -> int:
    return max(1, math.ceil(t / n))


def chunk(feat: np.ndarray, n: int = CLIP_LEN) -> np.ndarray:
    """``[T, D]`` -> ``[ceil(T / n), n, D]``, the last chunk zero-padded."""
    t, d = feat.shape
    c = num_chunks(t, n)
    out = np.zeros((c * n, d), dtype=np.float32)
    out[:t] = feat
    return out.reshape(c, n, d)
