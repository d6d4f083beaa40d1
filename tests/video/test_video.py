"""Decoding, the 340x256 resize, the frame-count rule and the crops, on generated videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.video.decode import (
    GROUP_FRAMES,
    VideoError,
    VideoInfo,
    crop_array,
    crop_box,
    crop_tensor,
    decode_resized,
    group_frames,
    iter_groups,
    num_snippets,
)

from extract_helpers import decode_reference, reference_crop, reference_groups, write_video

LENGTHS = [15, 16, 17, 511, 512, 513, 1000]


def test_rule_matches_the_seed_loop_for_every_length_up_to_1600() -> None:
    for n in range(0, 1600):
        expected = sum(f // 16 for _, f in reference_groups(n))
        assert num_snippets(n) == expected, n
    assert [num_snippets(n) for n in (16, 17, 31, 32, 512, 528, 529)] == [0, 1, 1, 2, 32, 32, 33]


def test_tail_options() -> None:
    assert [num_snippets(n, "full") for n in (15, 16, 528, 529)] == [0, 1, 33, 33]
    assert [num_snippets(n, "pad") for n in (1, 15, 16, 17, 528)] == [1, 1, 1, 2, 33]
    with pytest.raises(ValueError, match="tail must be one of"):
        num_snippets(10, "keep")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for i, n in enumerate(LENGTHS):
        fourcc, ext = [("mp4v", "mp4"), ("MJPG", "avi"), ("XVID", "avi")][i % 3]
        size = [(37, 29), (20, 48), (64, 36)][i % 3]  # odd, portrait, landscape
        out[n] = write_video(root / f"v{n}.{ext}", n, size, fourcc, seed=i)
    return out


@pytest.mark.parametrize("n", LENGTHS)
def test_groups_follow_the_rule_and_hold_the_resized_frames(videos: dict, n: int) -> None:
    ref = decode_reference(videos[n])
    assert len(ref) == n
    info = VideoInfo("")
    got = []
    try:
        for g in iter_groups(videos[n], info=info):
            got.append((g.start, g.frames.shape[0], g.frames))  # fresh buffers
    except VideoError as e:
        assert n <= 16 and e.kind == "too_short"
    assert [(s, f) for s, f, _ in got] == reference_groups(n)
    assert info.frames_decoded == n and info.num_snippets == num_snippets(n)
    assert info.frames_reported == n and info.fps == pytest.approx(25.0)
    for start, f, frames in got:  # BGR here, RGB in the reference decode
        assert np.array_equal(frames[..., ::-1], ref[start : start + f]), (n, start)


def test_decode_resized_equals_cv2_inter_linear(videos: dict) -> None:
    got = decode_resized(videos[17])
    np.testing.assert_array_equal(got[..., ::-1], decode_reference(videos[17]))
    assert got.shape == (17, 256, 340, 3) and got.dtype == np.uint8


def test_crops_equal_direct_slicing() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 256, 340, 3), dtype=np.uint8)
    t = torch.from_numpy(frames)
    tc = t.permute(0, 3, 1, 2)
    for c in range(10):
        ref = reference_crop(frames, c)
        assert ref.shape == (3, 224, 224, 3)
        np.testing.assert_array_equal(crop_array(frames, c), ref)
        np.testing.assert_array_equal(crop_tensor(t, c).numpy(), ref)
        np.testing.assert_array_equal(
            crop_tensor(tc, c, channels_last=False).permute(0, 2, 3, 1).numpy(), ref
        )
    assert crop_box(0) == (16, 58, False) and crop_box(9) == (32, 116, True)
    # crop 5 is crop 0 mirrored: its first column is crop 0's last
    np.testing.assert_array_equal(crop_array(frames, 5)[:, :, 0], crop_array(frames, 0)[:, :, -1])
    with pytest.raises(ValueError, match="0..9"):
        crop_box(10)


def test_group_frames_pads_and_splits_a_frame_stream() -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(GROUP_FRAMES + 20)]
    info = VideoInfo("<frames>")
    groups = [(g.start, g.frames.copy()) for g in group_frames(iter(frames), info, "pad")]
    assert [(s, f.shape[0]) for s, f in groups] == [(0, 512), (512, 32)]
    tail = groups[1][1]
    for i in range(20, 32):  # padded with the last real frame
        np.testing.assert_array_equal(tail[i], tail[19])
    assert info.frames_decoded == 532 and info.num_snippets == 34 and info.frames_used == 544
    assert (info.width, info.height) == (12, 10)


def test_unusable_videos_raise_with_the_reason(tmp_path, videos: dict) -> None:
    def kind_of(path) -> str:
        with pytest.raises(VideoError) as e:
            for _ in iter_groups(path):
                pass
        assert str(path) in str(e.value)
        return e.value.kind

    assert kind_of(tmp_path / "missing.mp4") == "missing"
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert kind_of(tmp_path / "empty.mp4") == "empty"
    (tmp_path / "junk.avi").write_bytes(np.random.default_rng(0).bytes(4000))
    assert kind_of(tmp_path / "junk.avi") == "unreadable"
    data = write_video(tmp_path / "full.avi", 200, fourcc="MJPG").read_bytes()  # cut at 40%
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.4)])
    assert kind_of(tmp_path / "cut.avi") == "truncated"
    assert kind_of(videos[15]) == "too_short"
    assert kind_of(videos[16]) == "too_short"  # T = 0 under the reference rule
    # ...kept by tail='full', and a truncated video is kept when the check is off
    assert sum(g.num_snippets for g in iter_groups(videos[16], "full")) == 1
    info = VideoInfo("")
    kept = sum(
        g.num_snippets
        for g in iter_groups(tmp_path / "cut.avi", info=info, truncation_tolerance=None)
    )
    assert kept == num_snippets(info.frames_decoded) > 0 and info.warnings
