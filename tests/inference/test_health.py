"""Unreliable-stream spans from the fusion weights (offline and live)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iefvad.inference.health import HealthTracker, health_streams, unreliable_spans
from iefvad.models.model import ModelConfig


def test_a_low_weight_for_two_snippets_or_more_is_a_span_in_seconds():
    w_img = np.array([0.5, 0.2, 0.1, 0.25, 0.5, 0.1, 0.5])  # 3-snippet run, then a single one
    w_evt = 1.0 - w_img
    spans = unreliable_spans({"image": w_img, "event": w_evt}, frames=112, fps=16.0)
    assert len(spans) == 1
    s = spans[0]
    assert s["stream"] == "image" and (s["start_frame"], s["end_frame"]) == (16, 64)
    assert (s["start_s"], s["end_s"], s["snippets"]) == (1.0, 4.0, 3)
    assert s["text"] == "image stream unreliable 1.0 s - 4.0 s"
    assert s["min_weight"] == 0.1


def test_only_fused_models_with_weights_are_judged():
    assert health_streams(ModelConfig(dim=16, heads=2)) == ("image", "event")
    assert health_streams(ModelConfig(dim=16, heads=2, fusion="image_only")) == ()
    assert health_streams(ModelConfig(dim=16, heads=2, fusion="concat")) == ()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_the_live_tracker_reports_the_offline_spans(ws):
    """The stream mode's lines, fed one snippet at a time, name the same spans as the
    offline report of the whole sequence (1 snippet = 1 s here)."""
    w = np.array(ws)
    offline = [s["text"] for s in unreliable_spans({"image": w}, frames=16 * len(w), fps=16.0)]
    t = HealthTracker(("image",))
    for i, x in enumerate(w):
        t.update({"image": float(x)}, float(i), float(i + 1))
    t.close()
    assert t.spans == offline
