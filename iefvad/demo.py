"""``make demo``: the method end to end on an embedded, generated dataset.

Generates a feature set with a planted anomaly signal (UCF-Crime layout and naming), trains
the fusion model with video-level labels only, evaluates it frame by frame and writes the
plots, all on the CPU in about a minute.

    python -m iefvad.demo [--out demo_out] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from iefvad.cli import guarded
from iefvad.options import resolve_train, test_parser, train_parser
from iefvad.run_test import run_test
from iefvad.synth import SynthSpec, make_feature_set
from iefvad.train import train


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=16)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    feats = args.out / "features"
    print(f"[demo] generating features under {feats}")
    s = make_feature_set(feats, SynthSpec(seed=args.seed))
    common = ["--test_list", str(s.test_csv), "--gt_path", str(s.gt_path)]
    ckpt_dir = args.out / "checkpoints" / "demo"
    targs = train_parser().parse_args(
        [
            "--dataset",
            "ucfcrime",
            "--train_list",
            str(s.train_csv),
            *common,
            "--exp_name",
            "demo",
            "--ckpt_dir",
            str(ckpt_dir),
            "--seed",
            str(args.seed),
            "--heads",
            "2",
            "--refine_steps",
            "2",
            "--batch_size",
            "4",
            "--lr",
            "1e-3",
            "--max_epoch",
            str(args.epochs),
            "--milestones",
            "--no_test",
        ]
    )
    cfg, _ = resolve_train(targs)
    guarded(lambda: train(cfg))
    test_args = test_parser().parse_args(
        [
            "--ckpt_path",
            str(ckpt_dir / "demo.pth"),
            *common,
            "--out_dir",
            str(args.out / "results"),
            "--plot_max_videos",
            "3",
        ]
    )
    guarded(lambda: run_test(test_args))
    print(f"[demo] done in {time.perf_counter() - t0:.0f} s; plots in {args.out / 'results'}")


if __name__ == "__main__":
    main()
