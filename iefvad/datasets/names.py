"""Video names as the lists and annotation files spell them: extension and crop suffix dropped."""

from __future__ import annotations

from pathlib import PurePath

MEDIA_EXTENSIONS: frozenset[str] = frozenset(
    ".npy .mp4 .avi .mkv .mov .webm .m4v .mpg .mpeg .wmv .flv .3gp .ts".split()
)
"""Extensions stripped from names; any other dot belongs to the name (XD: ``Mind.2001__#...``)."""


def strip_extension(name: str) -> str:
    """``Abuse028_x264.mp4`` -> ``Abuse028_x264``; only :data:`MEDIA_EXTENSIONS` are dropped, so
    ``A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A`` stays whole."""
    base, dot, ext = name.rpartition(".")
    return base if dot and f".{ext.lower()}" in MEDIA_EXTENSIONS else name


def video_stem(path: str | PurePath) -> str:
    """``.../Abuse028_x264__5.npy`` -> ``Abuse028_x264`` (folder, extension and crop dropped)."""
    stem = strip_extension(PurePath(path).name)
    head, sep, tail = stem.rpartition("__")
    return head if sep and is_crop(tail) else stem


def is_crop(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` rejects."""
    return text.isascii() and text.isdigit()
