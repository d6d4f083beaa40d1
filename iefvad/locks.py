"""Advisory folder locks: one run at a time writes a folder (an extraction's output root, a
training's experiment), and a second run is told at once who holds it.

A lock is ``flock`` on a small file that names its holder (``PID N on HOST, since TIME``); the
kernel releases it when the holder's file is closed or the process dies, so a killed run
never leaves a stale lock. File systems without ``flock`` get a warning and no lock.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)


def holder_text(extra: str = "") -> bytes:
    """What a lock file says about its holder: ``PID N on HOST<extra>, since TIME``."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"PID {os.getpid()} on {socket.gethostname()}{extra}, since {now}\n".encode()


def open_lock(path: Path) -> tuple[int, bool]:
    """``(fd, writable)``: a lock file another user created may only open read-only (a lock
    needs no write access; the PID is then not recorded)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666), True
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False


def is_held(path: Path) -> bool:
    """Whether some process holds a lock on ``path`` (probed with a non-blocking lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def holder(path: Path) -> str:
    """The holder a lock file names (``PID unknown`` when it names none)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        text = ""
    return text or "PID unknown"


def try_lock(path: Path, exclusive: bool, text: bytes, what: str) -> int | None:
    """Lock ``path`` without waiting; the open file descriptor (close it to release), -1 when
    the file system has no locks (warned: ``what`` says what would go undetected), or None
    when another process holds it. An exclusive holder writes ``text`` into the file."""
    fd, writable = open_lock(path)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        log.warning("cannot lock %s (%s): %s would not be detected", path, e.strerror, what)
        return -1
    if exclusive and writable:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    return fd


class FolderLock:
    """Exclusive use of ``path`` (a lock file) by this process, as a context manager: taken
    without waiting; when another process holds it, ``refuse(holder)`` builds the exception
    raised (``holder``: ``PID N on HOST, since TIME``)."""

    def __init__(self, path: str | os.PathLike[str], refuse, what: str) -> None:
        self.path, self.refuse, self.what = Path(path), refuse, what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = try_lock(self.path, True, holder_text(), self.what)
        if fd is None:
            raise self.refuse(holder(self.path))
        self._fd = fd if fd >= 0 else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its lock
            self._fd = None


__all__ = ["FolderLock", "holder", "holder_text", "is_held", "open_lock", "try_lock"]
