"""``infer.py``: the command line of :mod:`iefvad.inference` (flags, their checks, ``main``).

Flags are checked before any model or encoder is loaded; the run itself takes an
:class:`~iefvad.inference.run.InferConfig` built from them (:func:`config_of`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from iefvad.cli.aliases import HelpFormatter, Spelled, spelled
from iefvad.cli.entry import run_entry
from iefvad.cli.weights import add_weights_flags, weights_options
from iefvad.data.features import CLIP_LEN
from iefvad.inference.offline import OfflineConfig
from iefvad.inference.run import InferConfig
from iefvad.inference.scorer import CONTEXTS
from iefvad.inference.session import FPS_RANGE, InferError, SessionConfig
from iefvad.inference.source import DEFAULT_STREAM_TIMEOUT
from iefvad.inference.stream import MIN_CONTEXT, STREAM_WINDOW, StreamConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infer.py",
        description="Anomaly scores for your own videos (per-frame CSV, top segments JSON, "
        "plot, an HTML report that plays them) or a live stream (camera, file or URL).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("videos", nargs="*", help="video files to score")
    p.add_argument("--stream", help="score a live source: camera index, video file or URL")
    p.add_argument("--ckpt_path", required=True, help="a checkpoint (main.py's or the demo's)")
    p.add_argument("--out_dir", "--out", default="infer_out", help="output folder")
    g = p.add_argument_group("encoders (default: those the checkpoint records)")
    g.add_argument("--clip_ckpt", help="image CLIP weights")
    g.add_argument("--event_clip_ckpt", help="event-CLIP weights")
    g.add_argument(
        "--clip_model",
        default="ViT-L-14",
        help="open_clip name (or hf-hub:ORG/REPO) of image weights not passed as a file",
    )
    g.add_argument(
        "--allow_other_encoders",
        action="store_true",
        help="score even when the weights are not those the checkpoint was trained on",
    )
    add_weights_flags(g)
    g = p.add_argument_group("recipe (default: the checkpoint's, else the reference's)")
    g.add_argument("--crop", type=int, help="crop scored (reference: 5, the flipped centre)")
    g.add_argument("--event_norm", choices=("group", "snippet"), help="event normalisation")
    g.add_argument("--event_threshold", type=float, help="event threshold (gray levels)")
    g.add_argument(
        "--group_snippets",
        type=int,
        help="snippets per event normalisation group (reference 32; streams: 1)",
    )
    g = p.add_argument_group("temporal context")
    g.add_argument(
        "--context",
        choices=CONTEXTS,
        help="chunk: windows of --window snippets, as test.py (offline default); causal: "
        "each snippet with the --window - 1 before it (streams)",
    )
    g.add_argument("--window", type=int, help="snippets of context (offline 256, stream 64)")
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--score_threshold",
        "--threshold",
        type=float,
        default=0.5,
        action=Spelled,
        help="segments: runs of snippets scoring >= this",
    )
    g.add_argument("--top_k", type=int, default=5, help="segments in the JSON (0: all)")
    g.add_argument(
        "--fps",
        type=float,
        help="frame rate for the times (default: the video's; 25 when it reports none or an "
        "impossible one)",
    )
    g.add_argument("--no_plots", "--no_plot", action="store_true", help="skip the PNG")
    g.add_argument(
        "--report",
        action="store_true",
        default=True,
        help="write report.html: each video playing above its score and weights (default: on)",
    )
    g.add_argument("--no_report", dest="report", action="store_false", help="skip report.html")
    g = p.add_argument_group("streams")
    g.add_argument("--alert", type=float, help="print ALERT when a snippet scores >= this")
    g.add_argument(
        "--min_context",
        type=int,
        default=MIN_CONTEXT,
        help="no alert before this many snippets of context",
    )
    g.add_argument("--max_snippets", type=int, help="stop after this many snippets")
    g.add_argument("--realtime", action="store_true", help="read a file at its frame rate")
    g.add_argument("--quiet", action="store_true", help="print only alerts and the summary")
    g.add_argument(
        "--stream_timeout",
        type=float,
        default=DEFAULT_STREAM_TIMEOUT,
        metavar="SECONDS",
        help="give up on a source that sends nothing for this long, to open or between two "
        "frames; the snippets scored before are kept",
    )
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="auto", help="encoders: auto, fp32, fp16, bf16")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    return p


def _positive(flag: str, value: float | None, low: float = 1) -> None:
    if value is not None and not (math.isfinite(value) and value >= low):
        raise InferError(f"{flag} {value}: must be >= {low:g}")


def check_args(args: argparse.Namespace) -> None:
    """Refuse nonsensical numbers before any model or encoder is loaded; errors name the flag."""
    if args.window is not None and not 1 <= args.window <= CLIP_LEN:
        raise InferError(
            f"--window {args.window}: the model takes 1..{CLIP_LEN} snippets of context"
        )
    score_flag = spelled(args, "score_threshold", "--score_threshold")
    for flag, v in ((score_flag, args.score_threshold), ("--alert", args.alert)):
        if v is not None and not 0 <= v <= 1:
            raise InferError(f"{flag} {v}: scores are probabilities, give a value in [0, 1]")
    if args.top_k < 0:
        raise InferError(f"--top_k {args.top_k}: give the number of segments to keep, or 0 for all")
    _positive("--min_context", args.min_context, 0)
    if not (math.isfinite(args.stream_timeout) and 0 < args.stream_timeout <= 86400):
        raise InferError(
            f"--stream_timeout {args.stream_timeout}: give the seconds to wait, 0 < s <= 86400"
        )
    for flag in ("--max_snippets", "--threads", "--group_snippets"):
        _positive(flag, getattr(args, flag[2:]))
    if args.crop is not None and not 0 <= args.crop <= 9:
        raise InferError(f"--crop {args.crop}: crops are numbered 0..9 (reference: 5)")
    if args.event_threshold is not None and not 0 <= args.event_threshold < 255:
        raise InferError(
            f"--event_threshold {args.event_threshold}: gray levels, give a value in [0, 255)"
        )
    if args.fps is not None and not FPS_RANGE[0] <= args.fps <= FPS_RANGE[1]:
        raise InferError(
            f"--fps {args.fps}: give the frame rate, {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}"
        )
    if args.stream and args.alert is not None:
        window = args.window or STREAM_WINDOW
        if args.min_context > window:
            raise InferError(
                f"--min_context {args.min_context} exceeds --window {window}: a snippet never "
                "has more context than the window, so no alert could ever fire; lower "
                "--min_context or raise --window"
            )


def config_of(args: argparse.Namespace) -> InferConfig:
    """The typed configuration of parsed (and checked) flags."""
    session = SessionConfig(
        args.ckpt_path,
        args.clip_ckpt,
        args.event_clip_ckpt,
        args.clip_model,
        args.device,
        args.precision,
        args.crop,
        args.event_norm,
        args.event_threshold,
        args.group_snippets,
        check_encoders=not args.allow_other_encoders,
        weights=weights_options(args),
    )
    offline = stream = None
    if args.stream:
        stream = StreamConfig(
            args.stream,
            args.out_dir,
            args.context,
            args.window,
            args.group_snippets,
            args.alert,
            args.min_context,
            args.max_snippets,
            args.realtime,
            args.fps,
            args.quiet,
            args.stream_timeout,
        )
    if args.videos:
        offline = OfflineConfig(
            tuple(args.videos),
            args.out_dir,
            args.context,
            args.window,
            args.score_threshold,
            args.top_k,
            args.fps,
            not args.no_plots,
            args.report,
        )
    return InferConfig(session, offline, stream, args.threads)


def run(args: argparse.Namespace) -> int:
    """``infer.py`` with parsed arguments; returns the exit status."""
    from iefvad.inference import run as infer_run

    if bool(args.videos) == bool(args.stream):
        raise InferError("pass video files to score, or --stream SOURCE (not both)")
    check_args(args)
    return infer_run.run_infer(config_of(args))


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    raise SystemExit(run_entry(lambda: run(args)))
