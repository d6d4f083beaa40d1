"""The HTML report in headless Chromium: how fast a page of many videos opens, or a screenshot.

    python bench/report.py                       # 1,000 videos x 300 snippets: one JSON line
    python bench/report.py --videos 100 --snippets 1000
    python bench/report.py --screenshot out/report.html figure/report.png --seek 0.4

Timing (``bench: report.open``): the page is written by :func:`iefvad.report.page.write_report`
(random scores, one ground-truth span and the detected segments per video, a ``<video>`` each,
``preload="none"``) and opened from a file:// URL; ``shell_ms`` (the table and the cards'
shells built) and ``first_render_ms`` (the timelines in view drawn) are the browser's own
``performance.now()``, milliseconds after navigation started; median of ``--repeat`` loads.
``--screenshot PAGE PNG``: opens a page, seeks its first video to ``--seek`` of its length,
waits for the frame, and saves the window.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from iefvad.inference.offline import find_segments  # noqa: E402
from iefvad.report.page import Report, Timeline, write_report  # noqa: E402

from browser_helpers import Browser, find_chromium  # noqa: E402


def timing(args: argparse.Namespace, binary: str, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    frames = 16 * args.snippets
    timelines = []
    for i in range(args.videos):
        s, w = rng.random(args.snippets), rng.random(args.snippets)
        timelines.append(
            Timeline(f"video_{i:04d}", s, w, 1 - w, frames, 30.0,
                     segments=find_segments(s, frames, 30.0, 0.9, 0),
                     truth=[(frames // 6, frames // 3)], video=f"videos/video_{i:04d}.mp4",
                     stats={"error": float(s.mean()), "max_score": float(s.max())})
        )  # fmt: skip
    page = write_report(tmp / "report.html", Report("bench", timelines, sort="error"))
    runs = []
    for k in range(args.repeat):
        b = Browser(binary, tmp / f"profile{k}")
        try:
            b.open(page.as_uri())
            runs.append(
                b.wait_for(
                    "window.reportTiming && window.reportTiming.first_render_ms !== null "
                    "&& window.reportTiming"
                )
            )
        finally:
            b.close()
    return {
        "bench": "report.open",
        "videos": args.videos,
        "snippets_per_video": args.snippets,
        "page_mb": round(page.stat().st_size / 1e6, 2),
        "shell_ms": round(statistics.median(r["shell_ms"] for r in runs)),
        "first_render_ms": round(statistics.median(r["first_render_ms"] for r in runs)),
        "timelines_drawn_at_first": runs[0]["rendered"],
        "repeat": args.repeat,
        "browser": subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }


def screenshot(page: Path, png: Path, seek: float, binary: str, tmp: Path) -> None:
    b = Browser(binary, tmp / "profile", width=1000, height=860)
    try:
        b.open(page.resolve().as_uri())
        b.wait_for("window.reportTiming && window.reportTiming.rendered > 0")
        v = "document.querySelector('#v0 video')"
        b.wait_for(f"{v}.readyState >= 1")
        b.click_element("#v0 svg.timeline", seek)
        b.wait_for(f"!{v}.seeking && {v}.readyState >= 2")
        b.js("new Promise(r => setTimeout(r, 1000))")  # the spinner fades
        b.js("window.scrollTo(0, 0)")
        b.screenshot(png)
    finally:
        b.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--snippets", type=int, default=300)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--screenshot", nargs=2, metavar=("PAGE", "PNG"))
    p.add_argument("--seek", type=float, default=0.5, help="share of the timeline's width")
    args = p.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("no Chromium installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as d:
        if args.screenshot:
            screenshot(
                Path(args.screenshot[0]), Path(args.screenshot[1]), args.seek, binary, Path(d)
            )
        else:
            print(json.dumps(timing(args, binary, Path(d))))


if __name__ == "__main__":
    main()
