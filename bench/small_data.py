"""Small-dataset study: learning curves and final frame AUC of training recipes on generated
feature sets with a few dozen weakly-labelled videos (docs/training.md, "Training on small
datasets").

    python bench/small_data.py run --data split --variants paper toolkit small --seeds 1 2 3
    python bench/small_data.py plot

``run`` appends one row per (data, variant, seed) to ``docs/results/small_data/runs.csv`` and
the per-evaluation curve points to ``curves.csv``; ``plot`` writes the PNGs and
``summary.csv`` (mean and std over seeds). Every row of one data set sees the same files
(generated once from the data seed) and the same test videos.

Data sets (``--data``): ``split``: anomaly (4 noise std along one direction) in the image
stream for one class and the event stream for the other; ``both_scene``: anomaly in both
streams, large scene offsets shared by normal and abnormal videos. ``--n`` videos per class
for training (default 48, one crop each), 20 + 20 test videos and 6 + 6 validation videos
(held out from both, with frame labels, for the curves only).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from iefvad.data.csv_lists import read_list, write_list  # noqa: E402
from iefvad.data.groundtruth import load_gt, save_gt  # noqa: E402
from iefvad.datasets.specs import get_spec  # noqa: E402
from iefvad.engine.budget import SMALL_MODEL, SMALL_TRAIN  # noqa: E402
from iefvad.engine.config import TrainConfig  # noqa: E402
from iefvad.engine.evaluate import load_test_set, predict  # noqa: E402
from iefvad.engine.train import train  # noqa: E402
from iefvad.synthetic.features import SynthSpec, make_feature_set  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "small_data"
VAL_PER_CLASS = 6
TEST_PER_CLASS = 20

DATA = {
    "split": dict(signal_modality="split", scene=1.0, scenes=4),
    "both_scene": dict(signal_modality="both", scene=3.0, scenes=8),
}

PAPER = {
    "batch_size": 8,
    "lr": 2e-4,
    "max_epoch": 15,
    "milestones": (4, 8),
    "gamma": 0.1,
    "lam": 1.0,
}
"""The published settings the issue quotes (D 128 there; same budget here)."""

# Each variant: (recipe name, TrainConfig overrides, model overrides).
# "paper": the published settings of the issue (batch 8, 15 epochs, lr 2e-4, UCF milestones
# (4, 8), lam 1, padding not masked); "toolkit": the same with padding masked (the toolkit's
# model default). "small": the adaptive recipe of iefvad.engine.budget; the rest vary one factor.
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    "paper": ("paper", {}, {"mask_padding": False}),
    "toolkit": ("paper", {}, {}),
    "toolkit_lam0.1": ("paper", {"lam": 0.1}, {}),
    "toolkit_lr1e-3": ("paper", {"lr": 1e-3}, {}),
    "steps600": ("paper", {"min_steps": 600, "milestone_fractions": (0.6, 0.85)}, {}),
    "steps600_lr1e-3": (
        "paper",
        {"lr": 1e-3, "min_steps": 600, "milestone_fractions": (0.6, 0.85)},
        {},
    ),
    "steps600_lam0.1": (
        "paper",
        {"lam": 0.1, "min_steps": 600, "milestone_fractions": (0.6, 0.85)},
        {},
    ),
    "median": ("paper", {}, {"input_norm": "video_median"}),
    "small": ("small", {}, {}),
    "small_lam0": ("small", {"lam": 0.0}, {}),
    "small_lam1": ("small", {"lam": 1.0}, {}),
    "small_nonorm": ("small", {}, {"input_norm": "none"}),
    "small_mean": ("small", {}, {"input_norm": "video_mean"}),
    "small_ref0": ("small", {}, {"refine_steps": 0}),
    "small_drop0": ("small", {}, {"dropout": 0.0}),
    "small_drop0.3": ("small", {}, {"dropout": 0.3}),
    "small_steps300": ("small", {"min_steps": 300}, {}),
    "small_steps1200": ("small", {"min_steps": 1200}, {}),
    "small_lr2e-4": ("small", {"lr": 2e-4}, {}),
    "small_epochs": ("small", {"min_steps": 0, "milestone_fractions": None}, {}),
    "small_concat": ("small", {}, {"fusion": "concat"}),
    "small_layers0": ("small", {}, {"layers": 0}),
    "small_noise0.5": ("small", {"feature_noise": 0.5}, {}),
    "small_noise1": ("small", {"feature_noise": 1.0}, {}),
    "small_layers1": ("small", {}, {"layers": 1}),
    "small_student_t": ("small", {}, {"fusion": "student_t"}),
    "small_wd0.1": ("small", {"weight_decay": 0.1}, {}),
    "small_lr1e-3": ("small", {"lr": 1e-3}, {}),
    "small_lr2e-3": ("small", {"lr": 2e-3}, {}),
    "small_topk4": ("small", {"topk_div": 4}, {}),
    "small_topk64": ("small", {"topk_div": 64}, {}),
    "small_len64": ("small", {"train_len": 64}, {}),
    "small_len128": ("small", {"train_len": 128}, {}),
    # the published UCF-Crime preset (batch 64 per loader, lr 2e-5, 10 epochs, milestones
    # (4, 8), lam 1) with the toolkit's model: the "paper" side of the UCF-sized comparison
    "ucf_paper": (
        "paper",
        {"batch_size": 64, "lr": 2e-5, "max_epoch": 10, "milestones": (4, 8)},
        {},
    ),
}


def build(data: str, n: int, dim: int, root: Path) -> Path:
    """Generate (once) the feature set; split its test list into val and test parts."""
    root = root / f"{data}_n{n}_d{dim}"
    if not (root / "gt.npy").is_file():
        spec = SynthSpec(
            train_normal=n,
            train_abnormal=n,
            test_normal=VAL_PER_CLASS + TEST_PER_CLASS,
            test_abnormal=VAL_PER_CLASS + TEST_PER_CLASS,
            dim=dim,
            crops=1,
            t_median=120.0,
            t_sigma=0.8,
            t_min=24,
            t_max=600,
            signal=4.0,
            seed=11,
            **DATA[data],
        )
        make_feature_set(root, spec, workers=2)
        rows = read_list(root / "test.csv", event_dir="event_thr_10")
        gt = load_gt(root / "gt.npy")
        val = [i for i, r in enumerate(rows) if _index(r.stem) < VAL_PER_CLASS]
        rest = [i for i in range(len(rows)) if i not in val]
        for name, keep in (("val", val), ("heldtest", rest)):
            write_list(root / f"{name}.csv", [(rows[i].path, rows[i].label) for i in keep])
            save_gt(root / f"{name}_gt.npy", [gt.videos[i] for i in keep], dataset="synthetic")
    return root


def _index(stem: str) -> int:
    """Position of a test video within its class (the generator numbers them in order)."""
    i = int(stem.split("test")[1][:3])
    return i if stem.startswith("Normal") else i - (VAL_PER_CLASS + TEST_PER_CLASS)


class Curves:
    """Epoch hook: video AUC and frame AUC on the validation and test videos."""

    def __init__(self, root: Path, every_steps: int) -> None:
        self.sets = {}
        for name, lst in (("val", "val"), ("test", "heldtest")):
            g = f"{lst}_gt.npy"
            lst = f"{lst}.csv"
            rows = read_list(root / lst, event_dir="event_thr_10")
            self.sets[name] = (rows, load_test_set(rows, progress=False), load_gt(root / g))
        self.every = every_steps
        self.points: list[dict] = []
        self.last = -(10**9)

    def measure(self, model) -> dict:
        out = {}
        for name, (rows, ts, gt) in self.sets.items():
            pred = predict(model, ts)
            frames = pred.frame_scores()
            out[f"{name}_frame_auc"] = float(roc_auc_score(gt.frames, frames))
            vid = np.array([np.sort(s)[-(len(s) // 16 + 1) :].mean() for s in pred.scores])
            lab = np.array([0.0 if r.label == "Normal" else 1.0 for r in rows])
            out[f"{name}_video_auc"] = float(roc_auc_score(lab, vid))
        return out

    def __call__(self, epoch: int, step: int, model) -> None:
        if step - self.last >= self.every:
            self.last = step
            self.points.append({"epoch": epoch, "step": step, **self.measure(model)})
            p = self.points[-1]
            print(f"  step {step}: test frame AUC {p['test_frame_auc']:.3f}", flush=True)


def run(args) -> None:
    torch.set_num_threads(1)
    root = build(args.data, args.n, args.dim, Path(args.work))
    OUT.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        name, over, model_over = VARIANTS[variant]
        for seed in args.seeds:
            base_train, base_model = (PAPER, {}) if name == "paper" else (SMALL_TRAIN, SMALL_MODEL)
            fields = {**base_train, **over}
            model = {"dim": args.dim, **base_model, **model_over}
            curves = Curves(root, args.curve_every)
            cfg = TrainConfig(
                spec=get_spec("custom", normal_label="Normal"),
                train_list=root / "train.csv",
                test_list=root / "heldtest.csv",
                gt_path=root / "heldtest_gt.npy",
                exp_name="s",
                ckpt_dir=Path(args.work) / "ckpt" / f"{args.data}_{variant}_{seed}",
                seed=seed,
                select="last",
                workers=1,
                progress=False,
                epoch_lines=False,
                event_dir="event_thr_10",
                model=model,
                epoch_hook=curves,
                **fields,
            )
            t0 = time.perf_counter()
            res = train(cfg)
            secs = time.perf_counter() - t0
            hist = res.history
            final = curves.measure(_load(res.checkpoint))
            row = {
                "data": args.data,
                "n_per_class": args.n,
                "dim": args.dim,
                "variant": variant,
                "seed": seed,
                "steps": res.selection["step"],
                "epochs": len(hist),
                "lr": cfg.lr,
                "lam": cfg.lam,
                "frame_auc": res.test_metrics["auc"],
                "video_auc": final["test_video_auc"],
                "val_frame_auc": final["val_frame_auc"],
                "final_cls": hist[-1]["cls"],
                "seconds": round(secs, 1),
            }
            _append(OUT / "runs.csv", row)
            for p in curves.points:
                _append(
                    OUT / "curves.csv",
                    {
                        "data": args.data,
                        "n_per_class": args.n,
                        "variant": variant,
                        "seed": seed,
                        **p,
                        **{k: hist[p["epoch"] - 1][k] for k in ("loss", "cls", "align", "kl")},
                    },
                )
            print(
                f"{args.data} n={args.n} {variant} seed {seed}: frame AUC "
                f"{row['frame_auc']:.3f} video {row['video_auc']:.3f} ({secs:.0f} s)",
                flush=True,
            )


def _load(ckpt: Path):
    from iefvad.models.checkpoint import load_model

    return load_model(ckpt)[0]


def _append(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", choices=DATA, default="split")
    r.add_argument("--variants", nargs="+", choices=VARIANTS, default=["paper", "small"])
    r.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    r.add_argument("--n", type=int, default=48, help="training videos per class")
    r.add_argument("--dim", type=int, default=64)
    r.add_argument("--curve_every", type=int, default=30, help="steps between curve points")
    r.add_argument("--work", default="/tmp/iefvad_small_data")
    sub.add_parser("plot")
    args = p.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        plot()


LABELS = {
    "paper": "published recipe (batch 8, 15 epochs)",
    "nonoise_small": "400 steps, median centring, no noise",
    "nonoise_small_nonorm": "400 steps, no noise",
    "median_small": "400 steps, median centring, noise (global std)",
    "small_globalstd": "400 steps, noise (global std)",
    "small": "small preset: 400 steps, noise (within-video std)",
    "ucf_paper": "UCF-Crime preset (batch 64 + 64, 10 epochs, lr 2e-5)",
}
"""Variants drawn in the curve plots (run names of the study; the rest are in the CSVs)."""


def plot() -> None:
    """``summary.csv`` (mean, std over seeds) and the curve PNGs from the run CSVs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = pd.read_csv(OUT / "runs.csv")
    keys = ["data", "n_per_class", "variant"]
    # a seed run again (after a code change) replaces its earlier row
    runs = runs.drop_duplicates([*keys, "seed"], keep="last")
    g = runs.groupby(keys, sort=False)
    summary = g.agg(
        seeds=("seed", "count"),
        steps=("steps", "first"),
        frame_auc_mean=("frame_auc", "mean"),
        frame_auc_std=("frame_auc", "std"),
        frame_auc_min=("frame_auc", "min"),
        frame_auc_max=("frame_auc", "max"),
        video_auc_mean=("video_auc", "mean"),
        final_cls_mean=("final_cls", "mean"),
        seconds_mean=("seconds", "mean"),
    ).reset_index()
    summary.round(4).to_csv(OUT / "summary.csv", index=False)
    print(summary.round(3).to_string(index=False))
    _plot_sizes(summary, plt)
    _plot_ablations(summary, plt)
    curves = pd.read_csv(OUT / "curves.csv")
    curves = curves.drop_duplicates([*keys, "seed", "step"], keep="last")
    for (data, n), part in curves.groupby(["data", "n_per_class"]):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for variant, v in part.groupby("variant", sort=False):
            if variant not in LABELS:
                continue
            m = v.groupby("step").mean(numeric_only=True).reset_index()
            seeds = v["seed"].nunique()
            label = f"{LABELS[variant]} ({seeds} seed{'s' if seeds > 1 else ''})"
            style = {"marker": "o", "ms": 3}  # a run with one curve point is a dot
            axes[0].plot(m["step"], m["test_frame_auc"], label=label, **style)
            axes[1].plot(m["step"], m["val_video_auc"], label=label, **style)
            axes[2].plot(m["step"], m["cls"], label=label, **style)
        for ax, t in zip(axes, ("test frame AUC", "val video AUC", "train top-k MIL loss")):
            ax.set_xlabel("optimizer step")
            ax.set_title(f"{data}, {n}+{n} videos: {t}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(OUT / f"curves_{data}_n{n}.png", dpi=90)
        plt.close(fig)


SIZE_VARIANTS = {
    "paper": "published recipe (batch 8, 15 epochs, lr 2e-4, lam 1)",
    "ucf_paper": "UCF-Crime preset (batch 64, 10 epochs, lr 2e-5, lam 1)",
    "small": "small preset",
}
ABLATIONS = {
    "small": "small preset",
    "small_topk4": "top-k len/4+1",
    "small_topk64": "top-k len/64+1",
    "small_len128": "train_len 128",
    "small_lr1e-3": "lr 1e-3",
    "small_lr2e-4": "lr 2e-4",
    "small_ref0": "no refinement",
}
"""Rows of the size plot and the ablation plot (3-seed runs of ``split``)."""


def _plot_sizes(summary, plt) -> None:
    """Final test frame AUC against the number of training videos (``split``)."""
    part = summary[(summary["data"] == "split") & (summary["seeds"] >= 3)]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for variant, label in SIZE_VARIANTS.items():
        v = part[part["variant"] == variant].sort_values("n_per_class")
        if v.empty:
            continue
        ax.errorbar(
            2 * v["n_per_class"], v["frame_auc_mean"], yerr=v["frame_auc_std"], marker="o",
            capsize=3, label=label,
        )  # fmt: skip
    ax.set_xscale("log")
    sizes = sorted(2 * part["n_per_class"].unique())
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training videos (half normal, half abnormal)")
    ax.set_ylabel("test frame AUC (mean ± std, 3 seeds)")
    ax.set_title("split: anomaly in one stream", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "sizes_split.png", dpi=90)
    plt.close(fig)


def _plot_ablations(summary, plt) -> None:
    """One factor of the small preset changed at a time (``split``, 48 + 48 videos)."""
    part = summary[
        (summary["data"] == "split") & (summary["n_per_class"] == 48) & (summary["seeds"] >= 3)
    ]
    rows = [(ABLATIONS[v], part[part["variant"] == v]) for v in ABLATIONS]
    rows = [(label, r.iloc[0]) for label, r in rows if not r.empty]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    y = np.arange(len(rows))
    ax.barh(
        y, [r["frame_auc_mean"] for _, r in rows], xerr=[r["frame_auc_std"] for _, r in rows],
        capsize=3, color="tab:blue",
    )  # fmt: skip
    ax.set_yticks(y)
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    low = min(r["frame_auc_mean"] - r["frame_auc_std"] for _, r in rows)
    ax.set_xlim(max(0.0, low - 0.05), 1.0)
    ax.set_xlabel("test frame AUC (mean ± std, 3 seeds)")
    ax.set_title("split, 48 + 48 videos: one factor of the small preset changed", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "ablations_split_n48.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
