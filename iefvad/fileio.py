"""Atomic file writes (a reader never sees a half-written output, a killed run leaves none),
and thread-safe ``.npy`` reads."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

_TMP_ATTEMPTS = 100


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """Create ``folder/.<name>.<random>.tmp`` exclusively, with mode 0666 filtered by the
    umask (or the folder's default ACL) as for any ``open(path, 'w')``: ``tempfile.mkstemp``
    would make it 0600, and the rename would carry that mode over to the output."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(_TMP_ATTEMPTS):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name} in {folder}")


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globs for outputs
    (``*.npy``) never match it. The output's permissions honour the umask (0644 under the
    usual 022), like a plainly written file's. Text is UTF-8; file names that are not UTF-8
    (lone surrogates, see :mod:`iefvad.paths`) are written as their original bytes. An OSError
    of the write itself (a full disk) names ``path``; the earlier ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.name)
    text = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
    try:
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None and e.errno is not None:  # write(), flush(), fsync(): no name
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def probe_writable(folder: str | os.PathLike[str]) -> None:
    """Create ``folder`` (with its parents) if needed, then a file in it, and remove that file:
    raises the ``OSError`` (permission denied, read-only file system...) a write would meet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(folder, "iefvad-write-probe")
    os.close(fd)
    tmp.unlink()


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def save_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


_NPY_HEADER_LOCK = threading.Lock()
"""numpy parses ``.npy`` headers with ``ast.literal_eval``, which CPython 3.11 can fail with a
spurious ``SystemError: AST constructor recursion depth mismatch`` when several threads parse
at once (python/cpython#106905; seen here in the threaded training-set reads). Headers are
parsed one at a time; the data is still read in parallel."""


def read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` open in ``f``, which is left at the
    start of the data; None for format 3.0 (utf-8 header), which numpy must parse itself."""
    with _NPY_HEADER_LOCK:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    return None


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """``np.load(path, allow_pickle=False)``, safe to call from many threads at once."""
    with open(path, "rb") as f:
        header = read_npy_header(f)
        if header is None:
            with _NPY_HEADER_LOCK:
                f.seek(0)
                return np.load(f, allow_pickle=False)
        shape, fortran, dtype = header
        if dtype.hasobject:
            raise ValueError("the array holds Python objects, which need pickle (not allowed)")
        count = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(f, dtype=dtype, count=count)
    if data.size != count:
        raise ValueError(
            f"the file is truncated: its header promises shape {tuple(shape)} {dtype}, "
            f"the file holds {data.size} of its {count} values"
        )
    return data.reshape(shape, order="F" if fortran else "C")
