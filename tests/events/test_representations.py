"""Event maps: the event-CLIP count picture, the polarity option, rescaled coordinates and the
ten crops paired with the image crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from iefvad.events.representations import (
    crop_maps,
    event_maps,
    polarity_counts,
    rescale_coords,
    snippet_counts,
)
from iefvad.events.types import Events
from iefvad.video.decode import crop_array, resize_frame

from extract_helpers import reference_crop


def make_events(x, y, p, t=None) -> Events:
    n = len(x)
    return Events(
        np.arange(n, dtype=np.int64) if t is None else np.asarray(t, np.int64),
        np.asarray(x, np.int32), np.asarray(y, np.int32), np.asarray(p, np.int8),
    )  # fmt: skip


def test_counts_follow_the_event_clip_recipe() -> None:
    """ON count 3 and OFF count 1 at one pixel, ON 1 at another: each polarity / (its max + 1),
    averaged, repeated on 3 channels, black elsewhere, no mean/std."""
    ev = make_events([5, 5, 5, 5, 9], [2, 2, 2, 2, 7], [1, 1, 1, 0, 1])
    counts = torch.from_numpy(polarity_counts(ev, (256, 340)))[None]
    assert counts.shape == (1, 2, 256, 340)
    assert counts[0, 0, 2, 5] == 3 and counts[0, 1, 2, 5] == 1 and counts[0, 0, 7, 9] == 1
    m = event_maps(counts, "counts")
    assert m.shape == (1, 3, 256, 340) and torch.equal(m[:, 0], m[:, 2])
    assert m[0, 0, 2, 5].item() == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert m[0, 0, 7, 9].item() == pytest.approx((1 / 4 + 0) / 2)
    assert m.sum().item() == pytest.approx(m[0, :, 2, 5].sum().item() + m[0, :, 7, 9].sum().item())
    p = event_maps(counts, "polarity")
    assert p[0, 0, 2, 5].item() == pytest.approx(3 / 4) and p[0, 1, 2, 5].item() == 0.5
    assert p[0, 1, 7, 9].item() == 0 and torch.equal(p[:, 2], m[:, 0])
    empty = event_maps(snippet_counts([Events.empty()], (10, 10)), "counts")
    assert empty.shape == (1, 3, 256, 340) and empty.abs().sum() == 0  # black, never NaN
    with pytest.raises(ValueError, match="framediff"):
        event_maps(counts, "framediff")


def test_coordinates_are_rescaled_not_images_resampled() -> None:
    """A 720x1280 sensor: x -> x*340//1280, y -> y*256//720; every event lands in one cell."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 1280, 5000), rng.integers(0, 720, 5000)
    ev = make_events(x, y, rng.integers(0, 2, 5000))
    col, row = rescale_coords(ev, (720, 1280))
    assert np.array_equal(col, x * 340 // 1280) and np.array_equal(row, y * 256 // 720)
    assert col.max() < 340 and row.max() < 256
    c = polarity_counts(ev, (720, 1280))
    assert c.sum() == 5000 and c[0].sum() == (ev.p == 1).sum()


@pytest.mark.parametrize("crop", [0, 2, 4, 6, 9])
def test_each_crop_is_the_reference_crop_box_of_the_counts(crop: int) -> None:
    rng = np.random.default_rng(crop)
    ev = make_events(
        rng.integers(0, 340, 3000), rng.integers(0, 256, 3000), rng.integers(0, 2, 3000)
    )
    counts = snippet_counts([ev], (256, 340))
    got = crop_maps(counts, crop, "polarity")
    ref_counts = reference_crop(counts.numpy().transpose(0, 2, 3, 1), crop)  # [1, 224, 224, 2]
    norm = ref_counts / (ref_counts.max(axis=(1, 2), keepdims=True) + 1)
    want = np.concatenate([norm, norm.mean(-1, keepdims=True)], -1).transpose(0, 3, 1, 2)
    assert got.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("crop", range(10))
def test_image_and_event_crops_see_the_same_place(crop: int) -> None:
    """A bright block in a 720x1280 frame, and events on that block's pixels: in every crop the
    event map is lit where the image crop is bright (the crops stay paired)."""
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[300:380, 180:260] = 255  # left of centre, inside crops 0, 1, 3 (and their flips)
    img = crop_array(resize_frame(frame)[None], crop)[0, ..., 0] > 127
    ys, xs = np.nonzero(frame[..., 0])
    ev = make_events(xs, ys, np.ones(len(xs)))
    maps = crop_maps(snippet_counts([ev], (720, 1280)), crop, "counts")[0, 0].numpy() > 0
    assert img.any() == maps.any()
    if img.any():
        # rescaled coordinates vs an INTER_LINEAR resize: the same block, edges within a pixel
        grown = cv2.dilate(img.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert (maps & ~grown).sum() == 0 and (img & ~maps).sum() <= 2 * img.shape[0]
