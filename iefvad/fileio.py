"""Atomic file writes: a reader never sees a half-written output, a killed run leaves none."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globs for outputs
    (``*.npy``) never match it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def save_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
