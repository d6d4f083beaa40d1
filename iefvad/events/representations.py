"""The maps an event encoder sees: events of a snippet -> per-crop 224x224 encoder inputs.

Three representations, chosen by ``--event_repr`` and recorded in the extraction manifest:

- ``framediff``: the reference's thresholded frame differences of the RGB video
  (:mod:`iefvad.video.events`, unchanged; the default for videos). It needs frames, not events.
- ``counts``: the event-CLIP training picture (arXiv 2412.03093, trained on N-ImageNet's real
  sensor events): per-pixel event counts of each polarity over the snippet, each polarity's map
  divided by (its maximum + 1), the two averaged to one grey channel on a black background,
  repeated to the 3 channels the encoder takes; no CLIP mean/std normalisation.
- ``polarity``: the same normalised ON and OFF maps kept apart: channel 0 ON, channel 1 OFF,
  channel 2 their mean (the ``counts`` grey), so both signs stay visible to the encoder.

Coordinates, not images, are rescaled: an event at sensor pixel ``(x, y)`` of a ``(h, w)``
sensor counts at ``(x * 340 // w, y * 256 // h)`` of the 340x256 frame the video recipe resizes
to, and the ten 224x224 crops (:func:`iefvad.video.decode.crop_tensor`, flips included) cut the
count maps there, so the event map of crop ``c`` shows the same part of the scene as the image
crop ``c``. The max+1 normalisation is applied per crop, after cropping: each crop is one
training-style map.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import torch

from iefvad.events.types import Events
from iefvad.video.decode import RESIZE_H, RESIZE_W, crop_tensor

EventRepr = Literal["framediff", "counts", "polarity"]
EVENT_REPRS: tuple[str, ...] = ("framediff", "counts", "polarity")
COUNT_REPRS: tuple[str, ...] = ("counts", "polarity")
"""Representations computed from events (recordings or the simulator)."""
FRAME_SIZE: tuple[int, int] = (RESIZE_H, RESIZE_W)
"""(height, width) of the frame the crops are cut from: the video recipe's 256x340."""


def rescale_coords(
    events: Events, sensor_size: tuple[int, int], out_size: tuple[int, int] = FRAME_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Sensor coordinates -> ``(col, row)`` int64 in an ``out_size`` (h, w) frame:
    ``col = x * out_w // sensor_w``, ``row = y * out_h // sensor_h`` (exact integer arithmetic)."""
    h, w = sensor_size
    oh, ow = out_size
    col = events.x.astype(np.int64) * ow // w
    row = events.y.astype(np.int64) * oh // h
    return col, row


def polarity_counts(
    events: Events, sensor_size: tuple[int, int], out_size: tuple[int, int] = FRAME_SIZE
) -> np.ndarray:
    """Per-pixel event counts of one snippet: float32 ``[2, out_h, out_w]`` (0: ON, 1: OFF),
    at rescaled coordinates (:func:`rescale_coords`)."""
    oh, ow = out_size
    col, row = rescale_coords(events, sensor_size, out_size)
    flat = (events.p.astype(np.int64) == 0) * (oh * ow) + row * ow + col
    counts = np.bincount(flat, minlength=2 * oh * ow)
    return counts.astype(np.float32).reshape(2, oh, ow)


def snippet_counts(
    windows: Iterable[Events],
    sensor_size: tuple[int, int],
    out_size: tuple[int, int] = FRAME_SIZE,
) -> torch.Tensor:
    """Counts of several snippets (one :class:`Events` each): ``[S, 2, out_h, out_w]``."""
    maps = [polarity_counts(e, sensor_size, out_size) for e in windows]
    if not maps:
        return torch.zeros((0, 2, *out_size), dtype=torch.float32)
    return torch.from_numpy(np.stack(maps))


def normalise_polarities(counts: torch.Tensor) -> torch.Tensor:
    """``[..., 2, H, W]`` counts -> each polarity's map divided by (its maximum + 1), in [0, 1)."""
    peak = counts.amax(dim=(-2, -1), keepdim=True)
    return counts / (peak + 1.0)


def event_maps(counts: torch.Tensor, repr: EventRepr) -> torch.Tensor:
    """Encoder input of count maps ``[S, 2, H, W]`` (one crop): ``[S, 3, H, W]`` float32 in
    [0, 1), without CLIP mean/std (see the module doc for ``counts`` and ``polarity``)."""
    if repr not in COUNT_REPRS:
        raise ValueError(f"event maps from events are {COUNT_REPRS}, found {repr!r}")
    norm = normalise_polarities(counts.float())
    grey = norm.mean(dim=-3, keepdim=True)
    if repr == "counts":
        return grey.expand(*grey.shape[:-3], 3, *grey.shape[-2:])
    return torch.cat([norm, grey], dim=-3)


def crop_maps(counts: torch.Tensor, crop: int, repr: EventRepr) -> torch.Tensor:
    """Count maps ``[S, 2, 256, 340]`` -> encoder input of crop 0..9 ``[S, 3, 224, 224]``: the
    crop box of the video recipe applied to the counts, then :func:`event_maps`."""
    return event_maps(crop_tensor(counts, crop, channels_last=False), repr)
