"""Output paths checked before the long work: a run that cannot write its results stops at
once, naming the flag, instead of failing after hours of training or scoring."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from iefvad.errors import UserInputError


class OutputPathError(UserInputError):
    """An output path is a file where a folder is needed (or the reverse) or not writable."""


def _probe(folder: Path, flag: str) -> None:
    """Check that ``folder`` is, or can be created as, a writable folder (nothing is left
    behind: a scratch file goes into its nearest existing ancestor and is removed)."""
    base = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not base.is_dir():
        raise OutputPathError(
            f"{flag}: {base} is a file, but {folder} needs it to be a folder; "
            f"pass another {flag} or move the file"
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(
            f"{flag}: cannot write into {base} ({e.strerror or e}); pass a writable {flag}"
        ) from e


def check_output_dir(folder: str | os.PathLike[str], flag: str) -> Path:
    """``folder`` is a folder, or can be created as one, and is writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(
            f"{flag} {folder} is a file, not a folder; pass a folder path for {flag}"
        )
    _probe(folder, flag)
    return folder


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` can be written as a file: not a folder, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(
            f"{flag} {path} is a folder, not a file; pass a file path, e.g. {path / 'out.json'}"
        )
    _probe(path.parent if str(path.parent) else Path("."), flag)
    return path
