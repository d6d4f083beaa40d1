"""``make demo`` / ``python -m iefvad.cli.demo``: the command line of the end-to-end demo
(:mod:`iefvad.studies.demo`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from iefvad.cli.aliases import HelpFormatter
from iefvad.cli.entry import exit_on_failure
from iefvad.cli.weights import add_weights_flags, weights_options
from iefvad.errors import UserInputError
from iefvad.paths import check_inputs_outside, path_problem, shown
from iefvad.studies import demo


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="The whole method end to end on an embedded, generated video dataset.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out_dir", "--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated videos")
    p.add_argument(
        "--quick", action="store_true", help="the CI-sized run: a dozen tiny videos (~30 s)"
    )
    p.add_argument("--clip_ckpt", type=Path, help="image CLIP weights (default: a random tower)")
    p.add_argument(
        "--event_clip_ckpt", type=Path, help="event-CLIP weights (default: a random tower)"
    )
    p.add_argument("--clip_model", default="ViT-L-14", help="open_clip name of real weights")
    p.add_argument(
        "--pretrained_weights",
        action="store_true",
        help="real weights for the towers without a file: --clip_model/--clip_pretrained and "
        "the event-CLIP, from the caches or downloaded (default: random towers)",
    )
    add_weights_flags(p)
    p.add_argument(
        "--max_epoch", "--epochs", type=int, help="training epochs per model (default 60)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: available cores, max 4)"
    )
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument(
        "--camera_failure",
        action="store_true",
        help="instead of the table: test videos whose camera goes black, frozen or noisy for a "
        "while, the fused model trained with the released and the reliable recipe, their "
        "weights inside vs outside the failure (docs/demo.md)",
    )
    p.add_argument(
        "--two_sensors",
        action="store_true",
        help="with --camera_failure: the events come from a simulated event camera watching "
        "the clean scene, so the failing RGB camera does not fail them (docs/demo.md)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m iefvad.cli.demo`` (``make demo``)."""
    args = parser().parse_args(argv)
    exit_on_failure(lambda: _main(args))


def _main(args: argparse.Namespace) -> None:
    weights = {"--clip_ckpt": args.clip_ckpt, "--event_clip_ckpt": args.event_clip_ckpt}
    for flag, path in weights.items():
        problem = None if path is None else path_problem(path)
        if problem is not None:  # fail before minutes of video generation
            raise UserInputError(
                f"{flag} {shown(path)} {problem}; pass a weights file or leave it out (random "
                "tower)"
            )
    check_inputs_outside(
        [("the demo", args.out_dir / d) for d in demo.OUTPUT_FOLDERS], weights.items()
    )
    cfg = (
        demo.quick_config(args.out_dir, args.seed)
        if args.quick
        else demo.DemoConfig(out=args.out_dir)
    )
    if not args.quick:
        cfg.videos = replace(cfg.videos, seed=args.seed)
    cfg.clip_ckpt, cfg.event_clip_ckpt, cfg.clip_model = (
        args.clip_ckpt,
        args.event_clip_ckpt,
        args.clip_model,
    )
    cfg.pretrained_weights, cfg.weights = args.pretrained_weights, weights_options(args)
    if args.max_epoch is not None:
        cfg.epochs = args.max_epoch
    cfg.device, cfg.threads, cfg.progress = args.device, args.threads, args.progress
    if args.camera_failure:
        from iefvad.studies import camera_failure

        out = camera_failure.run_camera_failure(
            camera_failure.FailureConfig(demo=cfg, two_sensors=args.two_sensors)
        )
        print()
        print(camera_failure.format_summary(out["table"]))
        print(f"[demo] {out['summary']}, {out['figure']}")
        return
    if args.two_sensors:
        raise UserInputError("--two_sensors is a variant of --camera_failure: pass both")
    res = demo.run_demo(cfg)
    print()
    print(demo.format_table(res.table))
    print()
    print(
        f"[demo] done in {res.seconds['total']:.0f} s. Figure {res.figure}; per-class plots in "
        f"{res.figure.parent / 'plots'}; checkpoints in {cfg.out / 'checkpoints'}"
    )
    print(
        f"[demo] score a video: python infer.py {cfg.out}/data/videos/abnormal/motion/"
        f"test_motion_01.mp4 --ckpt_path {res.checkpoints['fused']} --out_dir {cfg.out}/infer"
    )


if __name__ == "__main__":
    main()
