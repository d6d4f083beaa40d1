"""Entry points of the command-line scripts and the one error boundary they all go through.

:func:`run_entry` turns what went wrong into what the user sees:

- :class:`~iefvad.errors.UserInputError` -> ``error: <message>``, exit status 2;
- an OSError about a user's path (missing, no permission, a folder, read-only, disk full) ->
  ``error: <file>: <reason> (<what to do>)``, exit status 2;
- Ctrl-C or SIGTERM -> ``interrupted``, exit status 130 (code that saves state on Ctrl-C
  re-raises after); the process then ends within seconds even if a thread is stuck in a read
  (:mod:`iefvad.interrupts`);
- anything else is a bug and keeps its traceback.

``IEFVAD_TRACEBACK=1`` shows the traceback of every error.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence

from iefvad.errors import UserInputError
from iefvad.interrupts import exit_promptly, sigterm_as_interrupt
from iefvad.paths import safe_console

USAGE_ERROR = 2
"""Exit status of bad input (as argparse uses for bad flags)."""
INTERRUPTED = 130
"""Exit status of Ctrl-C (128 + SIGINT), as shells report it."""

_HINTS: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.EACCES: "no permission: check its permissions or pass a path you own",
    errno.EPERM: "not permitted: check its permissions or pass a path you own",
    errno.EISDIR: "this is a folder; pass a file",
    errno.ENOTDIR: "part of this path is a file, not a folder",
    errno.EEXIST: "it already exists (a file where a folder goes?); move it or pass another path",
    errno.EROFS: "the filesystem is read-only; write the outputs to a writable folder",
    errno.ENOSPC: "the disk is full; free space or write the outputs elsewhere, then rerun",
    errno.EFBIG: "the file grew past the filesystem's limit; write the outputs elsewhere",
    errno.ENAMETOOLONG: "shorten the path",
    errno.ELOOP: "a symbolic link on this path points back to itself; fix the link",
}
if hasattr(errno, "EDQUOT"):
    _HINTS[errno.EDQUOT] = "the disk quota is used up; free space or write elsewhere, then rerun"


def _traceback_wanted() -> bool:
    return os.environ.get("IEFVAD_TRACEBACK", "") not in ("", "0")


def os_error_message(e: OSError) -> str | None:
    """``<file>: <reason> (<hint>)`` for an OSError that a user's path or disk explains;
    ``None`` for any other OSError (a bug, or a failure the user cannot fix by input)."""
    hint = _HINTS.get(e.errno or -1)
    if hint is None:
        return None
    names = [os.fsdecode(f) for f in (e.filename, e.filename2) if isinstance(f, (str, bytes))]
    reason = e.strerror or os.strerror(e.errno or 0)
    if e.errno == errno.ENOENT and names and not os.path.isabs(names[0]):
        hint += f"; it is relative to {os.getcwd()}"
    where = f"{' -> '.join(names)}: " if names else ""
    return f"{where}{reason} ({hint})"


def run_entry(fn: Callable[[], object]) -> int:
    """Run one script's work; return its exit status.

    ``fn`` returns its own status (an ``int``), or anything else for 0. User errors print one
    ``error:`` line to stderr and give 2, Ctrl-C gives 130, a bug propagates with its traceback
    (see the module doc). ``SystemExit`` (argparse, ``--help``) passes through.
    """
    safe_console()
    try:
        with sigterm_as_interrupt():
            result = fn()
    except UserInputError as e:
        if _traceback_wanted():
            raise
        _report(f"error: {e}")
        return USAGE_ERROR
    except OSError as e:
        message = os_error_message(e)
        if message is None or _traceback_wanted():
            raise
        _report(f"error: {message}")
        return USAGE_ERROR
    except KeyboardInterrupt as e:
        exit_promptly(INTERRUPTED)  # threads stuck in a read cannot hold the process open
        if _traceback_wanted():
            raise
        _report(f"interrupted{f' ({e})' if str(e) else ''}")
        return INTERRUPTED
    return result if type(result) is int else 0


def _report(line: str) -> None:
    sys.stdout.flush()  # what was printed before stays before the error
    print(line, file=sys.stderr, flush=True)


def exit_on_failure(fn: Callable[[], object]) -> None:
    """:func:`run_entry` for entry points that return normally: raise ``SystemExit`` only
    when the status is not 0."""
    code = run_entry(fn)
    if code:
        raise SystemExit(code)


def train_main(argv: Sequence[str] | None = None) -> None:
    """``main.py``: train on a dataset preset, every flag honoured."""
    from iefvad.cli.options import preset_choice, resolve_train, train_parser
    from iefvad.engine.train import train

    args = train_parser().parse_args(argv)

    def run() -> None:
        cfg, source = resolve_train(args)
        name, why = preset_choice(args)
        print(f"[train] preset {name} ({why})")
        resolved = ", ".join(f"{k}={getattr(cfg, k)} ({v})" for k, v in source.items())
        print(f"[train] {cfg.spec.name}: {resolved}")
        train(cfg)

    exit_on_failure(run)


def test_main(argv: Sequence[str] | None = None) -> None:
    """``test.py``: evaluate a checkpoint on a test list."""
    from iefvad.cli.options import evaluation_config, test_parser
    from iefvad.engine.report import run_test

    args = test_parser().parse_args(argv)
    exit_on_failure(lambda: run_test(evaluation_config(args)))


def ablate_main(argv: Sequence[str] | None = None) -> None:
    """``ablate.py``: train every fusion variant with the same seeds; table and plot."""
    from iefvad.cli.ablate import main

    main(argv)


def explore_main(argv: Sequence[str] | None = None) -> None:
    """``test2.py``: degrade one modality at test time and measure the effect."""
    from iefvad.cli.explore import main

    main(argv)
