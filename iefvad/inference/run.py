"""One ``infer.py`` run from a typed configuration: load the checkpoint's session, then score
the files (:mod:`~iefvad.inference.offline`) or the stream (:mod:`~iefvad.inference.stream`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from iefvad.inference.offline import OfflineConfig, score_files
from iefvad.inference.session import InferError, SessionConfig, open_session, unverified_encoders
from iefvad.inference.stream import StreamConfig, score_stream


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
    s = open_session(cfg.session)
    if (note := unverified_encoders(s)) is not None:
        print(f"warning: {note}", file=sys.stderr)
    if cfg.stream is not None:
        return score_stream(cfg.stream, s)
    assert cfg.offline is not None
    return score_files(cfg.offline, s)
