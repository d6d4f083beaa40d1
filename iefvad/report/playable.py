"""Which videos a browser plays, and a playable copy of those it does not.

Browsers play H.264, VP9 and AV1 in an mp4 and VP8, VP9 and AV1 in a webm (Chromium, Firefox,
Safari for H.264 mp4). What OpenCV writes by default, an ``mp4v`` (MPEG-4 part 2) mp4 or an
MJPG AVI, plays in none of them. The decision is by container (the file's extension) and codec
(read by PyAV when it is installed, else OpenCV's FourCC); a video that is not playable gets a
copy, made in this order of preference:

1. H.264 in an mp4 through PyAV (``pip install av``), when installed: plays everywhere;
2. VP8 in a webm through OpenCV, when this OpenCV can write one: plays in Chromium and Firefox;
3. none: the page says so and shows the timeline alone.

The copy is decoded frame by frame with OpenCV (as the scores were) and written at the frame
rate the scores used, so the page's times match the CSV's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from iefvad.video.decode import capture

PLAYABLE: dict[str, frozenset[str]] = {
    "mp4": frozenset({"h264", "vp9", "av1"}),
    "webm": frozenset({"vp8", "vp9", "av1"}),
}
"""Codecs that browsers play, per container."""
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".webm": "webm"}
"""Containers (by extension) that browsers open."""
_FOURCC = {
    "avc1": "h264", "h264": "h264", "x264": "h264", "vp80": "vp8", "vp90": "vp9", "av01": "av1",
    "mp4v": "mpeg4", "fmp4": "mpeg4", "xvid": "mpeg4", "divx": "mpeg4", "mjpg": "mjpeg",
}  # fmt: skip
"""OpenCV's FourCC (lower case) -> codec name, for when PyAV is not installed."""


@dataclass(frozen=True)
class Playable:
    """The video a report plays: ``path`` (None: none could be had) and a sentence on where it
    comes from, shown on the page."""

    path: Path | None
    note: str


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def codec_of(path: str | os.PathLike[str]) -> str | None:
    """The codec of the first video stream (``h264``, ``vp8``, ``mpeg4`` ...), or None when
    neither PyAV nor OpenCV can tell."""
    if have_pyav():
        import av

        try:
            with av.open(str(path)) as c:
                if c.streams.video:
                    return str(c.streams.video[0].codec_context.name)
        except (av.error.FFmpegError, OSError, ValueError):
            pass
    cap = capture(path)
    try:
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) if cap.isOpened() else 0
    finally:
        cap.release()
    if code <= 0:
        return None
    text = code.to_bytes(4, "little").decode("latin-1").strip("\x00 ").lower()
    return _FOURCC.get(text, text or None)


def browser_plays(path: str | os.PathLike[str]) -> tuple[bool, str]:
    """``(playable, what it is)``: whether browsers play this file as it is, and its codec
    and container in words (``h264 in mp4``)."""
    container = CONTAINERS.get(Path(path).suffix.lower())
    codec = codec_of(path)
    what = f"{codec or 'an unknown codec'} in {container or Path(path).suffix.lstrip('.') or '?'}"
    return bool(container and codec in PLAYABLE[container]), what


def _frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    cap = capture(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def _even(frame: np.ndarray) -> np.ndarray:
    """Crop to even width and height (yuv420p needs them)."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def _write_h264(src: str | os.PathLike[str], dst: Path, fps: float) -> int:
    """H.264 (yuv420p, ``+faststart``) mp4 through PyAV; returns the frames written."""
    from fractions import Fraction

    import av

    n = 0
    with av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in _frames(src):
            frame = _even(frame)
            if n == 0:
                stream.height, stream.width = frame.shape[:2]
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            out.mux(stream.encode(vf))
            n += 1
        out.mux(stream.encode())
    return n


def _write_vp8(src: str | os.PathLike[str], dst: Path, fps: float) -> int:
    """VP8 webm through OpenCV; returns the frames written (0: this OpenCV cannot)."""
    writer = None
    n = 0
    try:
        for frame in _frames(src):
            frame = _even(frame)
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"VP80"), fps, (w, h))
                if not writer.isOpened():
                    return 0
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n


def make_playable(
    src: str | os.PathLike[str], folder: str | os.PathLike[str], name: str, fps: float
) -> Playable:
    """The original ``src`` when browsers play it, else a copy ``folder/<name>.mp4`` (H.264,
    PyAV) or ``folder/<name>.webm`` (VP8, OpenCV), else none; the note says which and why."""
    ok, what = browser_plays(src)
    if ok:
        return Playable(Path(src), f"the original file ({what})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = [("H.264 mp4, made with PyAV", ".mp4", _write_h264)] if have_pyav() else []
    writers.append(("VP8 webm, made with OpenCV", ".webm", _write_vp8))
    for how, ext, write in writers:
        dst = folder / f"{name}{ext}"
        tmp = dst.with_name(f".{name}.partial{ext}")  # the extension tells OpenCV the format
        try:
            written = write(src, tmp, fps)
        except Exception:  # an encoder this build lacks: try the next way
            written = 0
        if written and tmp.exists() and tmp.stat().st_size > 0:
            os.replace(tmp, dst)
            return Playable(dst, f"a copy ({how}): browsers do not play {what}")
        tmp.unlink(missing_ok=True)
    return Playable(
        None,
        f"browsers do not play {what} and no playable copy could be made (install PyAV, "
        "pip install av, for an H.264 copy): the timeline is shown alone",
    )


def relative_url(path: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """``path`` as a URL relative to the folder of the page (each part percent-encoded, so a
    file named ``#1?.mp4`` or ``<script>.mp4`` stays a file name); an absolute ``file://`` URL
    where no relative path exists (another drive)."""
    path = Path(os.path.abspath(path))
    try:
        rel = os.path.relpath(path, os.path.abspath(page_dir))
    except ValueError:
        return path.as_uri()
    return "/".join(quote(os.fsencode(p)) for p in Path(rel).parts)  # a name's own bytes
