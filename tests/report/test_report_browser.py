"""The HTML reports in a real browser (headless Chromium over the DevTools protocol): the page
plays the video (or its playable copy), the cursor and the listed segments match the CSV,
clicking the timeline or a segment seeks the video, file names stay text; test.py's page with
ground truth and its table; a page of 1,000 videos opens at once (lazy drawing, timed).

Skipped, saying why, when no Chromium is installed (``apt-get install chromium``).
``IEFVAD_REPORT_SCREENSHOT=PATH`` also saves the infer.py page's screenshot there.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from iefvad.cli import entry
from iefvad.cli.infer import main as infer_main
from iefvad.data.csv_lists import read_list
from iefvad.inference.offline import find_segments
from iefvad.report.page import Report, Timeline, write_report
from iefvad.report.playable import browser_plays
from iefvad.synthetic.videos import DemoVideoSpec, plan_video, write_video

from browser_helpers import Browser, browser_or_skip
from extract_helpers import tiny_scoring_checkpoint, torch_threads
from extract_helpers import write_video as write_mp4

pytestmark = pytest.mark.slow

NAME = "<script><b onclick=x> &amp; #1"
"""A video name that must stay text (and a ``#`` that must stay part of the file name)."""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = browser_or_skip()
    b = Browser(binary, tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()


def snippet_rows(csv_path: Path) -> tuple[list[dict[str, str]], np.ndarray]:
    """The CSV's rows and its per-snippet scores (every 16th row)."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    return rows, np.array([float(r["score"]) for r in rows[::16]])


def run_infer(videos: list[Path], ckpt: Path, out: Path, *extra: str) -> None:
    with torch_threads(1), pytest.raises(SystemExit) as e:
        infer_main([*map(str, videos), "--ckpt_path", str(ckpt), "--out_dir", str(out), *extra])
    assert e.value.code == 0


def test_infer_report_plays_seeks_and_matches_the_csv(browser, tmp_path):
    ckpt = tiny_scoring_checkpoint(tmp_path / "tiny.pth")
    spec = DemoVideoSpec(width=160, height=120, snippets=(10, 10), span_snippets=(3, 4))
    video = write_video(plan_video(spec, "v", "test", "motion", 7), spec, tmp_path / f"{NAME}.mp4")
    assert not browser_plays(video)[0]  # mp4v: the report must make a copy
    out = tmp_path / "out"
    # a threshold between the scores, so that the video has segments and gaps
    run_infer([video], ckpt, out, "--no_report", "--no_plots")
    _, scores = snippet_rows(out / f"{NAME}.csv")
    threshold = float(np.quantile(scores, 0.5))
    run_infer([video], ckpt, out, "--score_threshold", str(threshold), "--no_plots")
    rows, scores = snippet_rows(out / f"{NAME}.csv")
    frames, fps = len(rows), json.loads((out / f"{NAME}.json").read_text())["fps"]
    expected = find_segments(scores, frames, fps, threshold, 0)
    assert 1 <= len(expected) and sum(s["end_frame"] - s["start_frame"] for s in expected) < frames

    browser.open((out / "report.html").as_uri())
    browser.wait_for("window.reportTiming && window.reportTiming.rendered === 1")
    # one source: the page's numbers are the CSV's, and the name is text
    data = browser.js("JSON.parse(document.getElementById('report-data').textContent)")
    v = data["videos"][0]
    assert v["scores"] == [float(r["score"]) for r in rows[::16]]
    assert v["w_image"] == [float(r["w_image"]) for r in rows[::16]]
    assert browser.js("document.querySelector('#v0 h2').textContent") == str(video)
    assert browser.js("document.scripts.length") == 2
    # the segments listed are those of the CSV
    listed = browser.js(
        "[...document.querySelectorAll('#v0 .segments button')]"
        ".map(b => [Number(b.dataset.startFrame), Number(b.dataset.endFrame)])"
    )
    assert listed == [[s["start_frame"], s["end_frame"]] for s in expected]

    # the playable copy plays in this browser
    note = browser.js("document.querySelector('#v0 .note').textContent")
    assert "a copy (" in note and "browsers do not play mpeg4 in mp4" in note
    duration = browser.wait_for(
        "(v => v.readyState >= 1 && !v.error && v.duration)(document.querySelector('#v0 video'))"
    )
    assert duration == pytest.approx(frames / fps, abs=0.05)
    browser.js("document.querySelector('#v0 video').play()")
    browser.wait_for("document.querySelector('#v0 video').currentTime > 0.5", timeout=20)
    t = browser.js(
        "(v => { v.pause(); return v.currentTime; })(document.querySelector('#v0 video'))"
    )
    check_cursor(browser, rows, frames, fps, t)

    # click-to-seek on the timeline: 70% of its width
    browser.click_element("#v0 svg.timeline", 0.7)
    browser.wait_for("(v => !v.seeking && v.readyState >= 2)(document.querySelector('#v0 video'))")
    t = browser.js("document.querySelector('#v0 video').currentTime")
    assert t == pytest.approx(0.7 * frames / fps, abs=2 / fps)
    check_cursor(browser, rows, frames, fps, t)

    # a listed segment seeks the video to its start
    last = expected[-1]
    browser.click_element("#v0 .segments li:last-child button")
    browser.wait_for(
        f"(v => !v.seeking && Math.abs(v.currentTime - {last['start_frame'] / fps}) < 1e-3)"
        "(document.querySelector('#v0 video'))"
    )
    assert (
        browser.js("Number(document.querySelector('#v0 .readout').dataset.frame)")
        == (last["start_frame"])
    )
    browser.wait_for("document.querySelector('#v0 video').readyState >= 2")
    browser.js("window.scrollTo(0, 0)")
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.stat().st_size > 20_000
    if os.environ.get("IEFVAD_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["IEFVAD_REPORT_SCREENSHOT"])


def check_cursor(browser: Browser, rows, frames: int, fps: float, t: float) -> None:
    """The readout and the cursor show the CSV row of the frame playing at ``t``."""
    frame = int(np.floor(t * fps + 1e-6))
    shown = browser.js(
        "(r => [Number(r.dataset.frame), Number(r.dataset.score)])"
        "(document.querySelector('#v0 .readout'))"
    )
    assert shown == [frame, float(rows[frame]["score"])]
    x = float(browser.js("document.querySelector('#v0 .cursor').getAttribute('x1')"))
    assert x == pytest.approx(1000 * frame / frames, abs=0.01)


def test_test_py_report_with_ground_truth_and_videos(browser, trained, synth_set, tmp_path):
    ckpt, _ = trained
    rows = read_list(synth_set.test_csv)
    # two of the test videos exist as files (MJPG AVI: copied), the others do not
    videos = tmp_path / "videos"
    for r in rows[:2]:
        write_mp4(videos / "sub" / f"{r.stem}.avi", 16 * 3, size=(64, 48), fourcc="MJPG")
    out = tmp_path / "res"
    entry.test_main(
        ["--ckpt_path", str(ckpt), "--test_list", str(synth_set.test_csv),
         "--gt_path", str(synth_set.gt_path), "--out_dir", str(out), "--no_progress",
         "--no_plots", "--report", "--video_root", str(videos)]
    )  # fmt: skip
    browser.open((out / "report.html").as_uri())
    browser.wait_for("window.reportTiming && window.reportTiming.rendered > 0")
    data = browser.js("JSON.parse(document.getElementById('report-data').textContent)")
    assert [v["name"] for v in data["videos"]] == [r.stem for r in rows]
    with open(out / "snippets.csv") as f:
        by_video: dict[str, list[float]] = {}
        for r in csv.DictReader(f):
            by_video.setdefault(r["video"], []).append(float(r["score"]))
    assert all(v["scores"] == by_video[v["name"]] for v in data["videos"])
    # per-video AUC only where a video has both classes of frames; sorted by error, worst first
    normal = [v for v in data["videos"] if not v["truth"]]
    assert normal and all(v["stats"]["auc"] is None for v in normal)
    assert all(v["stats"]["auc"] is not None for v in data["videos"] if v["truth"])
    order = browser.js(
        "[...document.querySelectorAll('#videos tbody tr')].map(r => Number(r.dataset.i))"
    )
    errors = [data["videos"][i]["stats"]["error"] for i in order]
    assert errors == sorted(errors, reverse=True)
    cells = browser.js(
        f"[...document.querySelector('#videos tbody tr[data-i=\"{normal_index(data)}\"]')"
        ".cells].map(c => c.textContent)"
    )
    assert cells[3:5] == ["n/a", "n/a"]
    # sort by max score by clicking its heading
    browser.click_element("#videos th button[data-key='max_score']")
    order = browser.js(
        "[...document.querySelectorAll('#videos tbody tr')].map(r => Number(r.dataset.i))"
    )
    top = [data["videos"][i]["stats"]["max_score"] for i in order]
    assert top == sorted(top, reverse=True)
    # the two videos found play (copies of the MJPG files); the others show the timeline alone
    assert [v["video"] is not None for v in data["videos"]] == [True, True] + [False] * (
        len(rows) - 2
    )
    browser.click_element("#videos a[href='#v0']")
    browser.wait_for("document.querySelector('#v0 video') !== null")
    truth = browser.js("document.querySelectorAll('#v0 rect.truth').length")
    assert truth == len(data["videos"][0]["truth"])
    browser.click_element("#v0 svg.timeline", 0.5)
    browser.wait_for(
        "(v => v.readyState >= 2 && !v.seeking && v.currentTime > 0)"
        "(document.querySelector('#v0 video'))"
    )


def normal_index(data: dict) -> int:
    return next(i for i, v in enumerate(data["videos"]) if not v["truth"])


def test_a_thousand_videos_open_at_once(browser, tmp_path, capsys):
    """1,000 videos of 300 snippets: the table and the cards' shells at once, the timelines
    only of the cards in view; times from the browser's own clock (performance.now)."""
    rng = np.random.default_rng(0)
    timelines = []
    for i in range(1000):
        s = rng.random(300)
        w = rng.random(300)
        timelines.append(
            Timeline(f"video_{i:04d}", s, w, 1 - w, 4800, 30.0,
                     segments=find_segments(s, 4800, 30.0, 0.9, 0), truth=[(800, 1600)],
                     video=f"videos/video_{i:04d}.mp4", stats={"error": float(s.mean())})
        )  # fmt: skip
    page = write_report(tmp_path / "report.html", Report("1000", timelines, sort="error"))
    browser.open(page.as_uri())
    timing = browser.wait_for(
        "window.reportTiming && window.reportTiming.first_render_ms !== null && window.reportTiming"
    )
    assert browser.js("document.querySelectorAll('#videos tbody tr').length") == 1000
    assert browser.js("document.querySelectorAll('section.card').length") == 1000
    drawn = browser.js("document.querySelectorAll('svg.timeline').length")
    assert 1 <= drawn <= 20  # only what is in view (or near it)
    assert browser.js("[...document.querySelectorAll('video')].every(v => v.preload === 'none')")
    # the last card is drawn when it comes into view
    browser.js("document.getElementById('v999').scrollIntoView()")
    browser.wait_for("document.querySelector('#v999 svg.timeline') !== null")
    with capsys.disabled():
        print(
            f"\n[report] 1000 videos x 300 snippets, {page.stat().st_size / 1e6:.1f} MB: shell "
            f"{timing['shell_ms']:.0f} ms, first timelines {timing['first_render_ms']:.0f} ms "
            f"after navigation ({drawn} drawn)"
        )
    assert timing["first_render_ms"] < 10_000
