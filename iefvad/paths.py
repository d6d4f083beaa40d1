"""Paths a command is given and names it builds paths from, checked before anything is written.

Three rules every script keeps (docs/reliability.md, "Round 2"):

- **No output destroys an input** (:func:`check_outputs`): an output that is the same file as
  one of the command's inputs (the same path, or the same file through a symbolic or hard
  link), or as another of its outputs, is refused before anything is written.
- **Names stay in their folder** (:func:`child`, :func:`safe_name`): a name the user types
  (``--exp_name``) that is not a plain file name (``..``, ``/``, an absolute path, a NUL
  byte, more than 255 bytes) is refused with the flag named; a name that comes from data
  (a video's stem, a class label in a list) is made into a plain file name instead, since the
  user did not type it and one odd file must not stop the others.
- **File names are bytes** (:func:`shown`): on POSIX a file name need not be UTF-8; Python
  carries its undecodable bytes as lone surrogates (``os.fsdecode``). Messages show them
  backslash-escaped (``caf\\xe9.mp4``); files the toolkit writes (CSV, logs) keep the original
  bytes (:func:`iefvad.fileio.atomic_write` writes text with ``surrogateescape``).

:func:`path_problem` says what a path that should be a readable file is instead (a folder, a
named pipe, a looping or broken link), without ever opening it.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from iefvad.errors import UserInputError

NAME_MAX = 255
"""Longest file name, in bytes, on the usual file systems (ext4, XFS, APFS, NTFS in UTF-16
units)."""

Labelled = Iterable[tuple[str, "str | os.PathLike[str] | None"]]
"""``(label, path)`` pairs: the label names the flag (``--test_list``) or the file's role."""


class PathClashError(UserInputError):
    """An output path is the same file as an input or as another output."""


class UnsafeNameError(UserInputError):
    """A user-given name would put an output outside its folder, or cannot be a file name."""


def shown(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (carried as lone surrogates, or
    raw in ``bytes``) become ``\\xNN``; everything else is unchanged."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


ESCAPE_ERRORS = "iefvad-escape"
"""Codec error handler of the scripts' stdout and stderr (:func:`safe_console`): a file
name's undecodable byte (a lone surrogate) prints as ``\\xNN``, as :func:`shown` shows it, and
any other character the console cannot encode as a backslash escape, instead of a
``UnicodeEncodeError`` that would stop the run."""


def _escape(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    text = err.object[err.start : err.end]
    out = [
        f"\\x{ord(c) - 0xDC00:02x}"
        if 0xDC80 <= ord(c) <= 0xDCFF
        else c.encode("ascii", "backslashreplace").decode("ascii")
        for c in text
    ]
    return "".join(out), err.end


codecs.register_error(ESCAPE_ERRORS, _escape)


def safe_console() -> None:
    """Make printing any path safe: stdout and stderr escape what they cannot encode
    (:data:`ESCAPE_ERRORS`). Streams that cannot be reconfigured are left alone."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=ESCAPE_ERRORS)
            except (ValueError, OSError):  # closed, or not a text wrapper after all
                pass


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """None when ``path`` is a regular file (through links); else what it is instead:
    "does not exist", "is a folder, not a file", "is a named pipe (FIFO) ...", "is a symbolic
    link that loops ...", "is a broken symbolic link (its target ... is missing)". Nothing is
    opened, so a FIFO never blocks."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = shown(os.readlink(path))
            return f"is a broken symbolic link (its target {target} is missing)"
        return "does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link that loops (it points, maybe through others, back to itself)"
        return f"cannot be reached ({e.strerror or e})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file; it is not read, since a pipe can wait forever"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    return "is not a regular file"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are the same file: the same inode when both exist (hard and
    symbolic links included), else the same path once links and ``..`` are resolved."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        try:
            return os.path.realpath(a) == os.path.realpath(b)
        except (OSError, ValueError):
            return False


def _pairs(items: Labelled) -> list[tuple[str, str | os.PathLike[str]]]:
    return [(label, p) for label, p in items if p is not None and str(p) != ""]


def check_outputs(outputs: Labelled, inputs: Labelled = ()) -> None:
    """Refuse, before anything is written, an output that is the same file as an input, or
    two outputs that are the same file (raises :class:`PathClashError` naming both)."""
    outs, ins = _pairs(outputs), _pairs(inputs)
    for i, (out_label, out) in enumerate(outs):
        for in_label, source in ins:
            if same_file(out, source):
                how = "" if os.fspath(out) == os.fspath(source) else " (through a link)"
                raise PathClashError(
                    f"{out_label} {shown(out)} is the same file as the input {in_label} "
                    f"{shown(source)}{how}: writing it would destroy the input; pass another "
                    f"path for {out_label}. Nothing was written"
                )
        for other_label, other in outs[i + 1 :]:
            if same_file(out, other):
                raise PathClashError(
                    f"{out_label} {shown(out)} and {other_label} {shown(other)} are the same "
                    "file: one output would overwrite the other; pass two different paths. "
                    "Nothing was written"
                )


def check_inputs_outside(folders: Labelled, inputs: Labelled) -> None:
    """Refuse an input that lies inside a folder the command fills with outputs whose names it
    does not know in advance (a demo's generated tree): :class:`PathClashError`."""
    for in_label, source in _pairs(inputs):
        real = Path(os.path.realpath(source))
        for label, folder in _pairs(folders):
            if real.is_relative_to(os.path.realpath(folder)):
                raise PathClashError(
                    f"the input {in_label} {shown(source)} lies in {shown(folder)}, which "
                    f"{label} fills with its outputs: it could be overwritten; move it "
                    "elsewhere. Nothing was written"
                )


def name_problem(name: str, reserve: int = 0) -> str | None:
    """None when ``name`` is a plain file name (with ``reserve`` bytes to spare for the
    suffixes added to it); else what is wrong with it."""
    if name == "":
        return "is empty"
    if "\0" in name:
        return "holds a NUL byte"
    if any(sep and sep in name for sep in ("/", os.sep, os.altsep)):
        return "holds a path separator ('/'): a name, not a path, is expected"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder"
    size = len(os.fsencode(name))
    if size + reserve > NAME_MAX:
        return (
            f"is {size} bytes long; with the {reserve} bytes added to it, a file name would "
            f"exceed the {NAME_MAX}-byte limit of file systems"
            if reserve
            else f"is {size} bytes long, more than the {NAME_MAX}-byte limit of file names"
        )
    return None


def check_name(name: str, what: str, reserve: int = 0) -> str:
    """``name`` when it is a plain file name; else :class:`UnsafeNameError` naming ``what``
    (the flag)."""
    problem = name_problem(name, reserve)
    if problem is not None:
        raise UnsafeNameError(
            f"{what} {shown(name)!r} {problem}; it names files inside their folder, so pass "
            "a plain name (letters, digits, '-', '_', '.')"
        )
    return name


def child(folder: str | os.PathLike[str], name: str, what: str, suffix: str = "") -> Path:
    """``folder / (name + suffix)`` for a user-given ``name`` (:func:`check_name`): it stays in
    ``folder`` whatever ``name`` holds, or :class:`UnsafeNameError` names ``what``."""
    check_name(name, what, len(os.fsencode(suffix)))
    return Path(folder) / f"{name}{suffix}"


def safe_name(name: str, reserve: int = 0) -> str:
    """A plain file name made of a name that comes from data (a video's stem, a class label):
    separators and NUL become ``_``, ``.`` / ``..`` / empty become ``_``, and a name longer
    than ``255 - reserve`` bytes is cut, ending in 8 hex digits of its hash so that two long
    names stay apart. Undecodable bytes (surrogates) are kept: they are a valid file name."""
    out = name.replace("\0", "_")
    for sep in {"/", os.sep, os.altsep} - {None}:
        out = out.replace(sep, "_")  # type: ignore[arg-type]
    if out in ("", ".", ".."):
        out = out.replace(".", "_") or "_"
    limit = NAME_MAX - reserve
    raw = os.fsencode(out)
    if len(raw) > limit:
        digest = hashlib.sha1(raw).hexdigest()[:8]
        cut = raw[: max(1, limit - 9)]
        out = f"{os.fsdecode(cut)}-{digest}"  # a character cut in half stays as its bytes
    return out
