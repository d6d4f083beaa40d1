"""Interruptions: every script stops within seconds of Ctrl-C or SIGTERM, whatever its
threads are blocked on.

Python delivers a signal to the main thread only; a worker thread stuck in a read that never
returns (a FIFO nobody writes, a stream source that went silent, a hung network mount) would
keep the process alive after the main thread has given up, since the interpreter joins its
worker threads before it exits. So:

* :func:`sigterm_as_interrupt`: SIGTERM (``kill``, SLURM preemption) raises
  ``KeyboardInterrupt("signal 15")`` like Ctrl-C, so the same state-saving code runs (the
  exit status is 130 for both);
* :func:`thread_pool`: a thread pool that, when its ``with`` body fails or is interrupted,
  cancels what has not started and does not wait for what has;
* :func:`exit_promptly`: once the interpreter starts to shut down after an interruption, the
  process ends with the given status at most ``grace`` seconds later, stuck threads or not.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

EXIT_GRACE_S = 3.0
"""Seconds threads get to finish once an interrupted script is exiting."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within ``with``: SIGTERM raises ``KeyboardInterrupt("signal 15")`` in the main thread
    (elsewhere, or where SIGTERM is ignored, nothing changes); the old handler comes back
    after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    if before is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextmanager
def thread_pool(workers: int, name: str = "iefvad") -> Iterator[ThreadPoolExecutor]:
    """``ThreadPoolExecutor(workers)`` whose ``with`` waits for its tasks on success only: on
    an error or an interruption the tasks not started are cancelled and those running are left
    to :func:`exit_promptly` (``with ThreadPoolExecutor()`` would wait for a task blocked on a
    read forever)."""
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            exit_promptly(130)
        raise
    pool.shutdown(wait=True)


_armed = False


def exit_promptly(code: int, grace: float = EXIT_GRACE_S) -> None:
    """When the interpreter shuts down (after this call), end the process with ``code`` if it
    is still alive ``grace`` seconds later: threads blocked in reads that never return cannot
    hold it open. Before that moment nothing happens, so an interrupted library call in a
    longer-lived process (a test suite) is not cut short."""
    global _armed
    register = getattr(threading, "_register_atexit", None)
    if _armed or register is None:
        return

    def arm() -> None:
        def end() -> None:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)

        timer = threading.Timer(grace, end)
        timer.daemon = True
        timer.start()

    try:
        register(arm)  # runs at the start of the interpreter's shutdown, before thread joins
    except RuntimeError:  # already shutting down
        return
    _armed = True


__all__ = ["EXIT_GRACE_S", "exit_promptly", "sigterm_as_interrupt", "thread_pool"]
