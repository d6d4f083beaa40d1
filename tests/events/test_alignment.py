"""Snippet edges of a paired video, recordings shorter or longer than the video, event-only
windows."""

from __future__ import annotations

import numpy as np
import pytest

from iefvad.events.alignment import (
    count_windows,
    coverage,
    frame_times_us,
    snippet_edges_us,
    window_edges_us,
)
from iefvad.events.types import Events


def events_at(times) -> Events:
    t = np.asarray(times, np.int64)
    z = np.zeros(len(t), np.int32)
    return Events(t, z, z, np.ones(len(t), np.int8))


def test_edges_from_fps_timestamps_and_offset() -> None:
    e = snippet_edges_us(3, fps=25.0)
    assert e.tolist() == [0, 640_000, 1_280_000, 1_920_000]
    assert snippet_edges_us(2, fps=30.0, first_snippet=1).tolist() == [
        533_333,
        1_066_667,
        1_600_000,
    ]
    # a recording that starts 0.1 s after the video: its clock reads video time - 0.1 s
    assert snippet_edges_us(1, fps=25.0, offset_us=100_000).tolist() == [-100_000, 540_000]
    ts = np.arange(32) * 40_000 + 5_000  # the video's own timestamps
    ts[20:] += 1_000  # a small jump
    assert snippet_edges_us(2, timestamps_us=ts).tolist() == [5_000, 645_000, 1_286_000]
    assert frame_times_us(2, fps=29.97).tolist() == [0, 33_367, 66_733]
    with pytest.raises(ValueError, match="fps"):
        frame_times_us(3, fps=0)
    with pytest.raises(ValueError, match="backwards"):
        frame_times_us(2, timestamps_us=np.array([5, 3]))


def test_a_short_recording_leaves_the_tail_empty_and_says_how_much() -> None:
    edges = snippet_edges_us(10, fps=25.0)  # 6.4 s of video
    cov = coverage(edges, (0, 4_000_000))  # events up to 4.0 s
    assert cov.empty_tail == 3 and cov.empty_head == 0  # snippets from 4.48 s on
    assert cov.missing_tail_s == pytest.approx(2.4, abs=1e-5) and cov.missing
    assert "2.40 s before the video" in cov.text() and "last 3 of 10" in cov.text()
    rec = events_at(np.arange(0, 4_000_001, 10_000))
    per = [len(rec.slice_time(a, b)) for a, b in zip(edges[:-1], edges[1:])]
    assert per[-3:] == [0, 0, 0] and all(n > 0 for n in per[:-3])


def test_a_long_or_late_recording_is_reported() -> None:
    edges = snippet_edges_us(4, fps=25.0)  # 2.56 s
    long = coverage(edges, (0, 5_000_000))
    assert not long.missing and long.ignored_s == pytest.approx(2.44, abs=1e-5)
    assert "ignored" in long.text()
    late = coverage(snippet_edges_us(4, fps=25.0, offset_us=-1_000_000), (0, 9_000_000))
    # video 0 s is recording 1 s: 1 s of events before it and 5.44 s after it are unused
    assert late.empty_head == 0 and late.ignored_s == pytest.approx(6.44, abs=1e-5)
    early = coverage(edges, (1_500_000, 2_000_000))
    assert early.empty_head == 2 and early.empty_tail == 0 and "starts 1.50 s after" in early.text()
    none = coverage(edges, None)
    assert none.empty_tail == 4 and none.missing_tail_s == pytest.approx(2.56)
    assert coverage(edges, (0, 2_559_999)).text() == "the recording covers the video"


def test_fixed_windows_and_fixed_counts() -> None:
    assert window_edges_us((100, 1_000), 300).tolist() == [100, 400, 700, 1_000, 1_300]
    assert window_edges_us((100, 999), 300).tolist() == [100, 400, 700, 1_000]
    with pytest.raises(ValueError):
        window_edges_us((0, 1), 0)
    chunks = [events_at(np.arange(a, b)) for a, b in ((0, 7), (7, 8), (8, 30))]
    out = list(count_windows(chunks, 10))
    assert [len(e) for e in out] == [10, 10, 10]
    assert np.array_equal(np.concatenate([e.t for e in out]), np.arange(30))
    assert [len(e) for e in count_windows(chunks, 12)] == [12, 12, 6]
    assert list(count_windows([], 5)) == []
