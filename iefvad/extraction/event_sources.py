"""Where the event stream of a video comes from, and the count maps of its snippets.

``--event_source``:

- ``frames`` (default): the reference's thresholded differences of the video's own frames
  (:mod:`iefvad.video.events`), computed inside :func:`iefvad.extraction.recipe.encode_snippets`;
  nothing here is used and features are bit for bit those of before.
- ``simulator``: an event camera (:mod:`iefvad.events.simulator`) watching the resized 340x256
  frames, fed group by group with its state carried across the whole video. Like the frame
  differences, snippet ``i``'s map holds what happens between its first and its last frame
  (events with ``t(16i) < t <= t(16i+15)``); the interval to the next snippet's first frame is
  simulated (the pixels' state goes on) but belongs to no map.
- ``recordings``: an event file per video in ``--event_dir``, matched by the video's stem
  (UCF-Crime-DVS names its files like the UCF-Crime videos), read in time windows: snippet
  ``i`` holds the events with ``t(16i) <= t - offset < t(16i+16)`` (:mod:`iefvad.events.alignment`).

Both event sources give per-polarity count maps ``[S, 2, 256, 340]`` at rescaled coordinates;
the representation (``counts`` or ``polarity``, :mod:`iefvad.events.representations`) and the ten
crops are applied when encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.errors import UserInputError
from iefvad.events.alignment import coverage, frame_times_us, snippet_edges_us
from iefvad.events.representations import COUNT_REPRS, EVENT_REPRS, FRAME_SIZE, snippet_counts
from iefvad.events.simulator import EventSimulator, SimulatorConfig
from iefvad.events.types import Events
from iefvad.video.events import grayscale

log = logging.getLogger(__name__)

EVENT_SOURCES: tuple[str, ...] = ("frames", "simulator", "recordings")
RECORDING_SUFFIXES: tuple[str, ...] = (
    ".npz", ".npy", ".h5", ".hdf5", ".aedat4", ".raw", ".dat",
)  # fmt: skip
"""Files in ``--event_dir`` taken for recordings (the readers decide which they can read)."""


class EventSourceError(UserInputError):
    """The event options do not fit together (the message names the flag)."""


class Recording(Protocol):
    """What extraction needs of an opened recording (:mod:`iefvad.events.readers`)."""

    path: Any
    format: str
    sensor_size: tuple[int, int] | None

    def time_range(self) -> tuple[int, int] | None: ...

    def windows(self, edges_us: np.ndarray) -> Any: ...


def default_opener(path: Path, sensor_size: tuple[int, int] | None) -> Recording:
    from iefvad.events.readers import open_recording

    return open_recording(path, sensor_size=sensor_size)


@dataclass(frozen=True)
class EventOptions:
    """Where events come from and how they are drawn (see the module doc).

    ``repr``: None picks the source's default (``framediff`` for frames, ``counts`` otherwise).
    ``time_offset_us``: video time at which a recording's clock reads 0 (positive: it starts
    later). ``sensor_size``: (h, w) of recordings that do not store it. ``opener``: opens a
    recording file (tests pass an in-memory stand-in).
    """

    source: str = "frames"
    repr: str | None = None
    event_dir: Path | None = None
    time_offset_us: int = 0
    sensor_size: tuple[int, int] | None = None
    simulator: SimulatorConfig = SimulatorConfig()
    opener: Callable[[Path, tuple[int, int] | None], Recording] = field(
        default=default_opener, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.source not in EVENT_SOURCES:
            raise EventSourceError(
                f"--event_source must be one of {', '.join(EVENT_SOURCES)}, found {self.source!r}"
            )
        rep = self.repr or ("framediff" if self.source == "frames" else "counts")
        object.__setattr__(self, "repr", rep)
        if rep not in EVENT_REPRS:
            raise EventSourceError(
                f"--event_repr must be one of {', '.join(EVENT_REPRS)}, found {rep!r}"
            )
        if self.source == "frames" and rep != "framediff":
            raise EventSourceError(
                f"--event_repr {rep} draws events, and --event_source frames has only frame "
                "differences: use --event_source simulator (or recordings) for it"
            )
        if self.source != "frames" and rep not in COUNT_REPRS:
            raise EventSourceError(
                f"--event_repr framediff needs the video's frames; --event_source {self.source} "
                f"gives events: use --event_repr counts or polarity"
            )
        if self.source == "recordings" and self.event_dir is None:
            raise EventSourceError("--event_source recordings needs --event_dir (the recordings)")
        if self.source == "recordings" and not Path(self.event_dir).is_dir():  # type: ignore[arg-type]
            raise EventSourceError(f"--event_dir {self.event_dir} is not a folder")

    @property
    def from_frames(self) -> bool:
        return self.source == "frames"

    def settings(self) -> dict[str, Any]:
        """What decides the event features besides the recipe (for the completion check)."""
        s: dict[str, Any] = {"event_source": self.source, "event_repr": self.repr}
        if self.source == "simulator":
            s["simulator"] = self.simulator.as_dict()
        if self.source == "recordings":
            s["event_time_offset_us"] = int(self.time_offset_us)
            s["event_sensor_size"] = list(self.sensor_size) if self.sensor_size else None
        return s


class SnippetEventSource(Protocol):
    """The events of one video's snippets, group by group, in order."""

    def counts(self, rgb: torch.Tensor, first_snippet: int) -> torch.Tensor: ...

    def report(self, num_snippets: int) -> dict[str, Any]: ...


class SimulatedSource:
    """The simulator watching one video's resized frames (see the module doc)."""

    def __init__(self, config: SimulatorConfig, fps: float) -> None:
        if not fps > 0:
            raise EventSourceError("the video reports no frame rate: the simulator needs one")
        self.sim = EventSimulator(config)
        self.fps = float(fps)
        self.config = config
        self.events = 0

    def counts(self, rgb: torch.Tensor, first_snippet: int) -> torch.Tensor:
        """RGB frames ``[16*S, 256, 340, 3]`` (the next ones of the video) -> ``[S, 2, 256,
        340]``."""
        n = rgb.shape[0]
        first = first_snippet * SNIPPET_FRAMES
        times = frame_times_us(first + n, self.fps)[first : first + n]
        gray = grayscale(rgb.cpu()).numpy()
        ev = self.sim.feed(gray, times)
        self.events += len(ev)
        starts = times[::SNIPPET_FRAMES]  # t(16k): the snippet's first frame
        ends = times[SNIPPET_FRAMES - 1 :: SNIPPET_FRAMES]  # t(16k + 15): its last
        windows = [ev.slice_time(int(a) + 1, int(b) + 1) for a, b in zip(starts, ends)]
        return snippet_counts(windows, FRAME_SIZE)

    def report(self, num_snippets: int) -> dict[str, Any]:
        return {"simulator": self.config.as_dict(), "events": self.events, "fps": self.fps}


class RecordedSource:
    """A recording paired with one video (see the module doc)."""

    def __init__(self, recording: Recording, fps: float, offset_us: int) -> None:
        if not fps > 0:
            raise EventSourceError("the video reports no frame rate: it cannot be paired")
        if recording.sensor_size is None:
            raise EventSourceError(
                f"{recording.path}: the recording does not give its sensor size; pass "
                "--event_sensor_size HEIGHTxWIDTH (UCF-Crime-DVS: 720x1280)"
            )
        self.rec = recording
        self.fps = float(fps)
        self.offset = int(offset_us)
        self.events = 0

    def counts(self, rgb: torch.Tensor, first_snippet: int) -> torch.Tensor:
        s = rgb.shape[0] // SNIPPET_FRAMES
        edges = snippet_edges_us(s, self.fps, offset_us=self.offset, first_snippet=first_snippet)
        windows: list[Events] = list(self.rec.windows(edges))
        if len(windows) != s:
            raise EventSourceError(
                f"{self.rec.path}: the reader gave {len(windows)} windows for {s} snippets"
            )
        self.events += sum(len(w) for w in windows)
        return snippet_counts(windows, self.rec.sensor_size)  # type: ignore[arg-type]

    def report(self, num_snippets: int) -> dict[str, Any]:
        edges = snippet_edges_us(num_snippets, self.fps, offset_us=self.offset)
        cov = coverage(edges, self.rec.time_range())
        if cov.missing:
            log.warning("%s: %s", self.rec.path, cov.text())
        elif cov.ignored_s > 0:
            log.info("%s: %s", self.rec.path, cov.text())
        return {
            "recording": str(self.rec.path),
            "format": self.rec.format,
            "sensor_size": list(self.rec.sensor_size or ()),
            "time_offset_us": self.offset,
            "events": self.events,
            "coverage": cov.as_dict(),
            "coverage_text": cov.text(),
        }


class RecordingIndex:
    """The recordings of ``--event_dir`` by file stem (searched recursively, once)."""

    def __init__(self, event_dir: Path) -> None:
        self.root = Path(event_dir)
        self.by_stem: dict[str, list[Path]] = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() in RECORDING_SUFFIXES and not p.name.startswith("."):
                self.by_stem.setdefault(p.stem, []).append(p)

    def find(self, stem: str, folder: str = "") -> Path:
        """The recording of the video ``stem`` (in class folder ``folder``, when several share
        the stem); :class:`EventSourceError` when there is none or it is ambiguous."""
        found = self.by_stem.get(stem, [])
        if len(found) > 1 and folder:
            same = [p for p in found if p.parent.name == Path(folder).name]
            found = same or found
        if not found:
            raise EventSourceError(
                f"no event recording named {stem}.* ({', '.join(RECORDING_SUFFIXES)}) under "
                f"--event_dir {self.root}"
            )
        if len(found) > 1:
            raise EventSourceError(
                f"several recordings for {stem} under {self.root}: "
                + ", ".join(str(p) for p in found)
                + "; keep one"
            )
        return found[0]


def open_source(
    opts: EventOptions, index: RecordingIndex | None, stem: str, folder: str, fps: float
) -> SnippetEventSource | None:
    """The event source of one video (None for ``frames``)."""
    if opts.source == "frames":
        return None
    if opts.source == "simulator":
        return SimulatedSource(opts.simulator, fps)
    assert index is not None
    path = index.find(stem, folder)
    return RecordedSource(opts.opener(path, opts.sensor_size), fps, opts.time_offset_us)
