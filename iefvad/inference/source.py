"""A live source read with a timeout: OpenCV's ``VideoCapture`` opened and read in a daemon
thread, its frames handed over through a bounded queue.

``VideoCapture.read`` (and the open of a FIFO nobody writes, or of a camera or URL that never
answers) can block forever inside native code, where neither Ctrl-C nor a timeout reaches it.
In a daemon thread it blocks only that thread: the caller waits at most ``timeout`` seconds
for each frame (a wait Ctrl-C interrupts), and a thread still stuck when the script ends does
not keep the process alive. Network sources also get OpenCV's own open/read timeouts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from iefvad.inference.session import InferError
from iefvad.paths import shown
from iefvad.video.decode import capture

DEFAULT_STREAM_TIMEOUT = 10.0
"""Seconds a stream source may send nothing (to open, or between two frames) before the run
gives up on it (``infer.py --stream_timeout``)."""


class StreamError(InferError):
    """A stream source cannot be opened, or sends nothing for too long."""


class StreamStalled(StreamError):
    """A source that had sent frames went silent for longer than the timeout."""

    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def _capture(src: str | int, timeout: float) -> cv2.VideoCapture:
    """``cv2.VideoCapture(src)``; URLs with OpenCV's open and read timeouts (where the build
    knows them) so that its own thread does not hang on a dead server forever either."""
    props = [
        getattr(cv2, name)
        for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")
        if hasattr(cv2, name)
    ]
    if isinstance(src, str) and "://" in src and props:
        ms = int(min(timeout, 3600) * 1000)
        try:
            return cv2.VideoCapture(src, cv2.CAP_ANY, [v for p in props for v in (p, ms)])
        except cv2.error:
            pass
    if isinstance(src, str) and "://" in src and shown(src) != src:
        raise StreamError(f"--stream {shown(src)}: a URL must be UTF-8 text")
    return cv2.VideoCapture(src) if isinstance(src, int) or "://" in src else capture(src)


class ThreadedCapture:
    """Frames of ``source`` (a camera index, a file, a FIFO or a URL), each waited for at most
    ``timeout`` seconds. Opening happens in the constructor: :class:`StreamError` when OpenCV
    cannot open the source or it does not answer within ``timeout``."""

    def __init__(self, source: str | int, timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        self.source, self.timeout = source, timeout
        self.fps = 0.0
        self.frames_read = 0
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        src: str | int = int(source) if isinstance(source, str) and source.isdigit() else source
        self._thread = threading.Thread(
            target=self._run, args=(src,), daemon=True, name="iefvad-stream-reader"
        )
        self._thread.start()
        kind, value = self._get("to open")
        if kind == "failed":
            raise StreamError(
                f"--stream {source}: OpenCV cannot open it (no such camera, unreachable URL, or "
                "a codec this OpenCV build lacks)"
            )
        if kind == "error":
            raise StreamError(f"--stream {source}: opening failed: {value}")
        self.fps = float(value or 0.0)

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, src: str | int) -> None:
        cap = None
        try:
            cap = _capture(src, self.timeout)
            if not cap.isOpened():
                self._put(("failed", None))
                return
            if not self._put(("opened", cap.get(cv2.CAP_PROP_FPS))):
                return
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    self._put(("end", None))
                    return
                if not self._put(("frame", frame)):
                    return
        except Exception as e:  # noqa: BLE001 - handed to the reader as the stream's failure
            self._put(("error", f"{type(e).__name__}: {e}"))
        finally:
            if cap is not None:
                cap.release()

    def _get(self, what: str) -> tuple[str, Any]:
        try:
            return self._q.get(timeout=self.timeout)
        except queue.Empty:
            self._stop.set()
            if what == "to open":
                raise StreamError(
                    f"--stream {self.source}: nothing arrived within {self.timeout:g} s of "
                    "opening it (a FIFO nobody writes, a camera or URL that does not answer); "
                    "check the source, or wait longer with --stream_timeout SECONDS"
                ) from None
            raise StreamStalled(
                f"--stream {self.source}: no frame for {self.timeout:g} s after frame "
                f"{self.frames_read} (the source stopped sending); stopped there "
                "(--stream_timeout SECONDS waits longer)",
                self.frames_read,
            ) from None

    def frames(self) -> Iterator[np.ndarray]:
        """The frames until the source ends; :class:`StreamStalled` when it goes silent."""
        try:
            while True:
                kind, value = self._get("a frame")
                if kind == "end":
                    return
                if kind == "error":
                    raise StreamError(
                        f"--stream {self.source}: reading failed after frame "
                        f"{self.frames_read}: {value}"
                    )
                self.frames_read += 1
                yield value
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader (a thread stuck in OpenCV stays behind as a daemon)."""
        self._stop.set()


def check_source(source: str | int) -> None:
    """A path that does not exist is refused before anything is opened (a camera index or a
    URL is left to OpenCV)."""
    if isinstance(source, str) and not source.isdigit() and "://" not in source:
        if not Path(source).exists():
            raise StreamError(
                f"--stream {shown(source)}: no such file; pass a camera index (0, 1, ...), a video "
                "file or a URL that OpenCV can open (rtsp://..., http://...)"
            )


__all__ = [
    "DEFAULT_STREAM_TIMEOUT",
    "StreamError",
    "StreamStalled",
    "ThreadedCapture",
    "check_source",
]
