"""Event features of recordings without videos (event-only data): snippets from a fixed time
window or a fixed number of events, per-crop features in the usual layout.

Every recording under the folder (by suffix, recursively) gives ``<root>/<folder>/<stem>__<crop>
.npy`` (``float32 [T, D]``) and a manifest written last; a rerun skips recordings whose manifest
matches the settings, and a recording that cannot be read is listed in the failures file with
the reason while the others are extracted. The count maps use the sensor size as the 340x256
frame of the video recipe (rescaled coordinates) and the same ten crops, so features of
recordings and of videos are drawn alike.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad import __version__
from iefvad.errors import UserInputError
from iefvad.events.alignment import count_windows, window_edges_us
from iefvad.events.representations import snippet_counts
from iefvad.events.types import Events
from iefvad.extraction.encoders import Encoder
from iefvad.extraction.event_sources import (
    RECORDING_SUFFIXES,
    EventSourceError,
    Recording,
    default_opener,
)
from iefvad.extraction.layout import failures_name
from iefvad.extraction.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX
from iefvad.extraction.recipe import encode_event_counts
from iefvad.fileio import atomic_write, save_json, save_npy

log = logging.getLogger(__name__)

GROUP_SNIPPETS = 32
"""Snippets turned into count maps and encoded at once (bounds memory)."""


def recording_windows(
    rec: Recording, window_us: int | None = None, per_snippet: int | None = None
) -> Iterator[Events]:
    """The snippets of a recording: windows of ``window_us`` from its first event, or batches
    of ``per_snippet`` events (exactly one of the two)."""
    if (window_us is None) == (per_snippet is None):
        raise EventSourceError("give exactly one of --event_window_us and --event_count")
    if window_us is not None:
        return rec.windows(window_edges_us(rec.time_range(), window_us))
    return count_windows(iter(rec), per_snippet)  # type: ignore[call-overload,arg-type]


@torch.inference_mode()
def encode_recording(
    encoder: Encoder,
    rec: Recording,
    crops: tuple[int, ...],
    repr: str,
    window_us: int | None = None,
    per_snippet: int | None = None,
    batch_size: int = 128,
) -> tuple[dict[int, np.ndarray], int]:
    """``({crop: float32 [T, D]}, events)`` of one recording (see :func:`recording_windows`)."""
    if rec.sensor_size is None:
        raise EventSourceError(
            f"{rec.path}: the recording does not give its sensor size; pass --event_sensor_size"
        )
    parts: list[torch.Tensor] = []
    batch: list[Events] = []
    events = 0

    def flush() -> None:
        counts = snippet_counts(batch, rec.sensor_size)  # type: ignore[arg-type]
        parts.append(encode_event_counts(encoder, counts, crops, repr, batch_size).cpu())
        batch.clear()

    for w in recording_windows(rec, window_us, per_snippet):
        batch.append(w)
        events += len(w)
        if len(batch) == GROUP_SNIPPETS:
            flush()
    if batch:
        flush()
    if not parts:
        return {c: np.zeros((0, encoder.embed_dim), np.float32) for c in crops}, 0
    out = torch.cat(parts, dim=1).numpy().astype(np.float32, copy=False)
    return {c: out[i] for i, c in enumerate(crops)}, events


@dataclass
class EventOnlyConfig:
    """An event-only run: recordings under ``event_dir`` -> features under ``root``."""

    event_dir: Path
    root: Path
    crops: tuple[int, ...]
    repr: str = "counts"
    window_us: int | None = None
    per_snippet: int | None = None
    sensor_size: tuple[int, int] | None = None
    class_folders: bool = True
    overwrite: bool = False
    opener: Any = field(default=default_opener, repr=False)

    def settings(self, encoder: Encoder) -> dict[str, Any]:
        return {
            "fingerprint": encoder.fingerprint,
            "event_source": "recordings",
            "event_repr": self.repr,
            "event_window_us": self.window_us,
            "event_count": self.per_snippet,
            "event_sensor_size": list(self.sensor_size) if self.sensor_size else None,
        }


@dataclass
class EventOnlySummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def text(self) -> str:
        lines = [
            f"{len(self.done) + len(self.skipped) + len(self.failed)} recordings: "
            f"{len(self.done)} extracted, {len(self.skipped)} already complete, "
            f"{len(self.failed)} failed"
        ]
        lines += [f"  FAILED {rel}: {why}" for rel, why in sorted(self.failed.items())]
        return "\n".join(lines)


def _complete(manifest: Path, settings: dict[str, Any], files: list[Path]) -> bool:
    import json

    try:
        m = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return m.get("settings") == settings and all(f.exists() for f in files)


def run_event_only(
    cfg: EventOnlyConfig, encoder: Encoder, batch_size: int = 128
) -> EventOnlySummary:
    """Extract every recording under ``cfg.event_dir`` (see the module doc)."""
    root = Path(cfg.event_dir)
    if not root.is_dir():
        raise EventSourceError(f"--event_dir {root} is not a folder")
    recs = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in RECORDING_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not recs:
        raise EventSourceError(
            f"no recordings ({', '.join(RECORDING_SUFFIXES)}) under --event_dir {root}"
        )
    summary = EventOnlySummary()
    settings = cfg.settings(encoder)
    for path in recs:
        rel = path.relative_to(root).as_posix()
        folder = cfg.root / path.parent.relative_to(root) if cfg.class_folders else cfg.root
        files = [folder / f"{path.stem}__{c}.npy" for c in cfg.crops]
        manifest = folder / f"{path.stem}{MANIFEST_SUFFIX}"
        if not cfg.overwrite and _complete(manifest, settings, files):
            summary.skipped.append(rel)
            continue
        try:
            rec = cfg.opener(path, cfg.sensor_size)
            feats, n = encode_recording(
                encoder, rec, cfg.crops, cfg.repr, cfg.window_us, cfg.per_snippet, batch_size
            )
            folder.mkdir(parents=True, exist_ok=True)
            for c, f in zip(cfg.crops, files):
                save_npy(f, feats[c])
        except (UserInputError, OSError) as e:
            summary.failed[rel] = str(e)
            log.warning("skipped %s: %s", path, e)
            continue
        save_json(
            manifest,
            {
                "format": MANIFEST_FORMAT,
                "modality": "event",
                "recording": {"path": str(path), "rel": rel, "format": getattr(rec, "format", "")},
                "T": int(feats[cfg.crops[0]].shape[0]),
                "dim": encoder.embed_dim,
                "crops": list(cfg.crops),
                "files": {str(c): f.name for c, f in zip(cfg.crops, files)},
                "settings": settings,
                "events": {
                    "source": "recordings",
                    "repr": cfg.repr,
                    "events": n,
                    "sensor_size": list(rec.sensor_size or ()),
                },
                "encoder": encoder.metadata(),
                "iefvad_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
        )
        summary.done.append(rel)
    cfg.root.mkdir(parents=True, exist_ok=True)
    with atomic_write(cfg.root / failures_name(0, 1), "w") as f:
        f.writelines(f"{rel}\t{why}\n" for rel, why in sorted(summary.failed.items()))
    return summary
