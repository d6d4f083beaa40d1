"""The HTML report without a browser: escaping of names and embedded JSON, the numbers as the
CSV holds them, which videos browsers play and the playable copies."""

from __future__ import annotations

import html
import json
import re

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iefvad.report import playable
from iefvad.report.page import Report, Timeline, as_numbers, number, render, script_json

from extract_helpers import write_video

HOSTILE = "</script><script>alert(1)</script>\u2028\u2029<!-- & \"'"


def embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


@given(st.text())
def test_any_name_stays_data_in_the_script_element(name):
    text = script_json({"name": name})
    assert not set(text) & set("<>&\u2028\u2029")  # nothing can end or comment the element
    assert text.isascii()
    assert json.loads(text) == {"name": name}


def test_a_hostile_name_is_text_everywhere():
    t = Timeline(HOSTILE, [0.5], [0.4], [0.6], 16, 25.0, video="%3Cscript%3E.mp4")
    page = render(Report(HOSTILE, [t], notes=[HOSTILE]))
    assert page.count("<script") == 2  # the JSON and the page's own script, nothing else
    assert HOSTILE not in page
    assert f"<title>{html.escape(HOSTILE)}</title>" in page
    data = embedded(page)
    assert data["title"] == HOSTILE and data["videos"][0]["name"] == HOSTILE
    assert "textContent" in page and "innerHTML" not in page  # names are set as text


def test_the_page_holds_the_numbers_of_the_csv():
    rng = np.random.default_rng(0)
    s, wi = rng.random(7).astype(np.float32), rng.random(7).astype(np.float32)
    t = Timeline("v", s, wi, 1 - wi, 100, 25.0, stats={"auc": float("nan"), "ap": None})
    v = embedded(render(Report("r", [t])))["videos"][0]
    assert v["scores"] == [float(number(x)) for x in s] == as_numbers(s)
    assert v["w_event"] == [float(f"{x:.6f}") for x in 1 - wi]
    assert v["stats"] == {"auc": None, "ap": None}  # NaN is n/a, never invalid JSON
    with pytest.raises(ValueError, match="differ in length"):
        Timeline("v", s, wi[:3], wi, 100).as_json()


def test_relative_url_encodes_each_part(tmp_path):
    page_dir = tmp_path / "out"
    assert playable.relative_url(tmp_path / "a b" / "<x>#1?.mp4", page_dir) == (
        "../a%20b/%3Cx%3E%231%3F.mp4"
    )
    assert playable.relative_url(page_dir / "report_videos" / "v.mp4", page_dir) == (
        "report_videos/v.mp4"
    )


def test_browsers_play_h264_and_vp8_not_mp4v_or_mjpg(tmp_path):
    mp4v = write_video(tmp_path / "a.mp4", 20, size=(64, 48))
    mjpg = write_video(tmp_path / "b.avi", 20, size=(64, 48), fourcc="MJPG")
    assert playable.browser_plays(mp4v) == (False, "mpeg4 in mp4")
    assert playable.browser_plays(mjpg)[0] is False
    webm = tmp_path / "c.webm"
    w = cv2.VideoWriter(str(webm), cv2.VideoWriter_fourcc(*"VP80"), 25, (64, 48))
    if not w.isOpened():
        pytest.skip("this OpenCV cannot write VP8")
    for i in range(10):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    assert playable.browser_plays(webm) == (True, "vp8 in webm")
    # the codec, not the name, decides: a VP8 stream in a file named .avi is not opened
    assert playable.browser_plays(webm.rename(tmp_path / "c.avi"))[0] is False


@pytest.mark.parametrize("pyav", [True, False])
def test_playable_copy_of_an_mp4v_video(tmp_path, monkeypatch, pyav):
    if pyav and not playable.have_pyav():
        pytest.skip("PyAV is not installed (pip install av)")
    monkeypatch.setattr(playable, "have_pyav", lambda: pyav)
    src = write_video(tmp_path / "<v>.mp4", 33, size=(65, 49))  # odd sizes: cropped to even
    p = playable.make_playable(src, tmp_path / "copies", "<v>", 20.0)
    if not pyav and p.path is None:
        assert "no playable copy could be made" in p.note
        return
    assert p.path is not None and p.path.parent == tmp_path / "copies"
    assert p.path.suffix == (".mp4" if pyav else ".webm")
    how = "H.264 mp4, made with PyAV" if pyav else "VP8 webm, made with OpenCV"
    assert p.note == f"a copy ({how}): browsers do not play mpeg4 in mp4"
    assert playable.browser_plays(p.path)[0]
    cap = cv2.VideoCapture(str(p.path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 33 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0, abs=0.01)
    cap.release()
    assert not list((tmp_path / "copies").glob(".*"))  # no partial file left
    # a playable original is used as it is
    again = playable.make_playable(p.path, tmp_path / "copies2", "x", 20.0)
    assert again.path == p.path and again.note.startswith("the original file (")
