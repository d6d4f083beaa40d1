"""One ``infer.py`` run from a typed configuration: load the checkpoint's session, then score
the files (:mod:`~iefvad.inference.offline`) or the stream (:mod:`~iefvad.inference.stream`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from iefvad.inference.offline import OUTPUT_SUFFIXES, OfflineConfig, plan_outputs, score_files
from iefvad.inference.session import InferError, SessionConfig, open_session, unverified_encoders
from iefvad.inference.stream import StreamConfig, score_stream
from iefvad.paths import check_outputs


@dataclass(frozen=True)
class InferConfig:
    """A whole ``infer.py`` run: the session, and files (``offline``) or a ``stream``."""

    session: SessionConfig
    offline: OfflineConfig | None = None
    stream: StreamConfig | None = None
    threads: int | None = None
    """torch CPU threads (None: torch's choice)."""


def run_infer(cfg: InferConfig) -> int:
    """Score the files or the stream of ``cfg``; returns the exit status (1: a video failed)."""
    if (cfg.offline is None) == (cfg.stream is None):
        raise InferError("pass video files to score, or --stream SOURCE (not both)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    names = None
    if cfg.offline is not None:  # before any model loads: no output lands on an input
        names = plan_outputs(cfg.offline)
        out = Path(cfg.offline.out_dir)
        planned = [out / f"{n}{x}" for n in names for x in OUTPUT_SUFFIXES]
        session = cfg.session
        check_outputs(
            [("--out_dir", p) for p in planned],
            [("--ckpt_path", session.ckpt_path), ("--clip_ckpt", session.clip_ckpt),
             ("--event_clip_ckpt", session.event_clip_ckpt),
             *(("video", v) for v in cfg.offline.videos)],
        )  # fmt: skip
    s = open_session(cfg.session)
    if (note := unverified_encoders(s)) is not None:
        print(f"warning: {note}", file=sys.stderr)
    if cfg.stream is not None:
        return score_stream(cfg.stream, s)
    assert cfg.offline is not None
    return score_files(cfg.offline, s, names)
