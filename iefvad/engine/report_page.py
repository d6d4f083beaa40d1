"""``test.py --report``: one HTML page of a whole test set (:mod:`iefvad.report.page`).

Per test video: its snippet scores and mean fusion weights (the arrays ``snippets.csv`` is
written from), the ground-truth spans, the segments scoring at least
:data:`REPORT_THRESHOLD`, its frame AUC / AP where it has both normal and anomalous frames (n/a
otherwise) and its error, the mean ``|score - ground truth|`` over its frames. The table sorts
by error, worst first: the anomalies missed and the false alarms at the top. With
``--video_root`` each video is found by its name (``<stem>.<ext>`` anywhere under the folder)
and plays above its timeline (or a browser-playable copy, :mod:`iefvad.report.playable`);
without, the timelines are shown alone, in frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iefvad.data.csv_lists import ListRow
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.engine.evaluate import Predictions
from iefvad.engine.metrics import VideoResult, auc_ap
from iefvad.inference.offline import find_segments
from iefvad.inference.session import frame_rate
from iefvad.report.page import Column, Report, Timeline
from iefvad.report.playable import make_playable, relative_url
from iefvad.video.decode import VIDEO_EXTENSIONS, VideoError, open_video

REPORT_THRESHOLD = 0.5
"""Detected segments on the test page: runs of snippets scoring at least this."""


def index_videos(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Video files under ``root`` (recursively) by stem; the first in sorted order wins."""
    found: dict[str, Path] = {}
    for p in sorted(Path(root).rglob("*")):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            found.setdefault(p.stem, p)
    return found


def _video_of(
    stem: str, videos: dict[str, Path] | None, out_dir: Path
) -> tuple[str | None, str, float | None]:
    """``(URL, note, fps)`` of one test video's playable file."""
    if videos is None:
        return None, "", None
    path = videos.get(stem)
    if path is None:
        return None, f"no video named {stem}.* under --video_root: the timeline alone", None
    try:
        cap, info = open_video(path)
        cap.release()
    except VideoError as e:
        return None, f"{path}: {e.reason}", None
    fps, _ = frame_rate(info.fps)
    playable = make_playable(path, out_dir / "report_videos", stem, fps)
    url = None if playable.path is None else relative_url(playable.path, out_dir)
    return url, playable.note, fps


def evaluation_report(
    rows: Sequence[ListRow],
    videos: Sequence[VideoResult],
    pred: Predictions,
    gt_frames: np.ndarray,
    truth: Sequence[Sequence[tuple[int, int]]],
    out_dir: str | os.PathLike[str],
    title: str,
    notes: Sequence[str] = (),
    video_root: str | os.PathLike[str] | None = None,
) -> Report:
    """The page of a scored test set; ``truth`` per video its annotated frame spans."""
    out_dir = Path(out_dir)
    files = None if video_root is None else index_videos(video_root)
    timelines = []
    for i, (r, v) in enumerate(zip(rows, videos)):
        scores = pred.scores[i]
        frame_scores = np.repeat(scores.astype(np.float64), SNIPPET_FRAMES)
        labels = gt_frames[v.start : v.start + v.frames]
        m = auc_ap(labels, frame_scores)
        url, note, fps = _video_of(r.stem, files, out_dir)
        segs = find_segments(scores, v.frames, fps or 1.0, REPORT_THRESHOLD, 0)
        stats: dict[str, Any] = {
            "label": r.label,
            "max_score": float(scores.max()) if scores.size else None,
            "auc": m["auc"],
            "ap": m["ap"],
            "error": float(np.abs(frame_scores - labels).mean()) if labels.size else None,
        }
        timelines.append(
            Timeline(
                name=r.stem,
                scores=scores,
                w_image=pred.w_image[i],
                w_event=pred.w_event[i],
                frames=v.frames,
                fps=fps,
                segments=segs,
                truth=truth[i],
                video=url,
                note=note,
                stats=stats,
            )
        )
    found = sum(t.video is not None for t in timelines)
    lines = [*notes]
    lines.append(
        "per video: frame AUC / AP where it has both normal and anomalous frames (n/a "
        "otherwise); error: mean |score - ground truth| over its frames (sorted worst first); "
        f"detected: runs of snippets scoring at least {REPORT_THRESHOLD}; the numbers are "
        "those of snippets.csv"
    )
    if video_root is None:
        lines.append("no --video_root: timelines alone, in frames")
    else:
        lines.append(f"videos from {video_root}: {found} of {len(timelines)} found and playable")
    return Report(
        title=title,
        timelines=timelines,
        threshold=REPORT_THRESHOLD,
        notes=lines,
        columns=[
            Column("label", "label"),
            Column("max_score", "max score"),
            Column("auc", "AUC"),
            Column("ap", "AP"),
            Column("error", "error"),
        ],
        sort="error",
        descending=True,
    )
