"""Synthetic event maps against a direct numpy computation of docs/reference.md section 3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.extraction.recipe import (
    Encoders,
    RecipeOptions,
    encode_snippets,
    extract_video_features,
)
from iefvad.video.events import event_counts, grayscale, normalise_counts, to_event_input

from extract_helpers import (
    decode_reference,
    identity_encoder,
    reference_event_maps,
    reference_groups,
    torch_threads,
    write_video,
)

CROPS = (0, 4, 7)  # centre, a corner, a flipped corner (all ten: tests/video/test_video.py)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _event_identity(opts: RecipeOptions, video) -> dict[int, np.ndarray]:
    enc = Encoders(event=identity_encoder(normalise=False), batch_size=64)
    feats = extract_video_features(enc, video, opts)
    assert not feats.image
    return feats.event


def test_event_inputs_equal_numpy_reference_per_group_and_crop(tmp_path) -> None:
    video = write_video(tmp_path / "v.avi", 530, (41, 27), "XVID", seed=5)  # 32 + 1 snippets
    got = _event_identity(RecipeOptions(crops=CROPS), video)
    rgb = decode_reference(video)
    groups = reference_groups(len(rgb))
    assert [f for _, f in groups] == [512, 16]
    for c in CROPS:
        ref = np.concatenate([reference_event_maps(rgb[s : s + f], c) for s, f in groups]).reshape(
            33, -1
        )
        assert got[c].shape == (33, 3 * 224 * 224) and got[c].dtype == np.float32
        np.testing.assert_array_equal(got[c], ref)
    # the group maximum is 1 and the maps take several levels
    first = got[0][:32]
    assert first.max() == 1.0 and len(np.unique(first)) > 5


def test_threshold_and_per_snippet_options(tmp_path) -> None:
    video = write_video(tmp_path / "v.avi", 64, (33, 25), "MJPG", seed=2)
    rgb = decode_reference(video)
    got = _event_identity(RecipeOptions(crops=(3,), threshold=40, event_norm="snippet"), video)[3]
    ref = np.concatenate([reference_event_maps(rgb[s : s + 16], 3, 40) for s in range(0, 64, 16)])
    np.testing.assert_array_equal(got, ref.reshape(4, -1))
    default = _event_identity(RecipeOptions(crops=(3,)), video)[3]
    assert not np.array_equal(default, got)


def test_motionless_group_gives_zeros_not_nan(tmp_path) -> None:
    # 512 moving frames, then 48 flat gray ones: the tail group (3 snippets) has no event.
    video = write_video(tmp_path / "still.avi", 560, (30, 22), "MJPG", seed=1, still_from=512)
    got = _event_identity(RecipeOptions(crops=(0, 7)), video)
    for c in (0, 7):
        assert got[c].shape[0] == 35 and np.isfinite(got[c]).all()
        assert got[c][:32].max() == 1.0
        assert not got[c][32:].any()
    short = write_video(tmp_path / "short.avi", 48, (30, 22), "MJPG", seed=1, still_from=16)
    per_snippet = _event_identity(RecipeOptions(crops=(0,), event_norm="snippet"), short)[0]
    assert np.isfinite(per_snippet).all() and per_snippet[0].max() == 1.0
    assert not per_snippet[1:].any()


def test_counts_threshold_is_strict_and_gray_uses_the_reference_weights() -> None:
    rgb = torch.tensor([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]]], dtype=torch.uint8)
    gray = grayscale(rgb)[0, 0]
    expected = [255 * 0.2989, 255 * 0.5870, 255 * 0.1140, 10 * 0.2989 + 20 * 0.5870 + 30 * 0.1140]
    np.testing.assert_allclose(gray.numpy(), expected, rtol=1e-6)
    g = torch.zeros(1, 16, 1, 3)
    g[0, 1::2, 0, 0] = 10.0  # |diff| == 10 is not an event
    g[0, 1::2, 0, 1] = 10.5  # 15 events
    g[0, 5, 0, 2] = 200.0  # 2 events (up, then down)
    counts = event_counts(g, threshold=10)
    assert counts[0, 0].tolist() == [0.0, 15.0, 2.0]
    maps = normalise_counts(torch.stack([counts[0], torch.zeros(1, 3)]), "snippet")
    assert maps[0, 0].tolist() == pytest.approx([0.0, 1.0, 2 / 15]) and not maps[1].any()
    group = normalise_counts(torch.stack([counts[0], counts[0] / 2]), "group")
    assert group.amax().item() == 1.0 and group[1, 0, 1].item() == 0.5
    assert to_event_input(maps).shape == (2, 3, 1, 3)


def test_encode_snippets_checks_its_input() -> None:
    enc = Encoders(event=identity_encoder(normalise=False))
    with pytest.raises(ValueError, match="multiple of 16"):
        encode_snippets(enc, np.zeros((17, 256, 340, 3), np.uint8))
    with pytest.raises(ValueError, match=r"uint8 \[16\*S, 256, 340, 3\]"):
        encode_snippets(enc, np.zeros((16, 240, 320, 3), np.uint8))
