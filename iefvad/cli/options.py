"""Command-line options of ``main.py`` and ``test.py`` and their resolution against presets.

Flags that a preset can fill default to ``None``; the preset (docs/reference.md section 6, held in
:mod:`iefvad.datasets.specs`) fills only what the user did not pass. Every value the user passes is
honoured. The resolved configuration is printed and stored with each checkpoint.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, TypeVar

from iefvad.cli.aliases import HelpFormatter
from iefvad.cli.reliability import add_recipe_args, recipe_model_fields, recipe_record
from iefvad.data.features import CLIP_LEN
from iefvad.data.list_rules import default_paths
from iefvad.datasets.specs import DATASETS, resolve_spec, with_preset
from iefvad.engine.budget import PRESETS, auto_preset, preset_defaults
from iefvad.engine.config import SELECTIONS, TRAIN_SAMPLES, TrainConfig
from iefvad.engine.report import EvaluationOptions, TestConfig
from iefvad.engine.resume import state_path
from iefvad.models.losses import TOPK_DIV
from iefvad.models.model import ModelConfig

E = TypeVar("E", bound=EvaluationOptions)


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="benchmark preset (default: ucfcrime, or the checkpoint's dataset)",
    )
    g.add_argument("--test_list", type=Path, help="test CSV (default list/<dataset>/test.csv)")
    g.add_argument(
        "--gt_path", type=Path, help="frame ground truth .npy (default list/<dataset>/gt.npy)"
    )
    g.add_argument(
        "--data_root",
        type=Path,
        help="resolve relative CSV paths against this folder (default: the CSV's)",
    )
    g.add_argument(
        "--event_dir_name",
        help="event tree that replaces 'rgb' in image paths "
        "(default: event_thr_10; ShanghaiTech: event)",
    )
    g.add_argument("--image_dir_name", default="rgb", help="image tree name in list paths")
    g.add_argument(
        "--normal_label",
        default=None,
        help="label of normal videos for --dataset custom (default: normal)",
    )
    g.add_argument(
        "--nan_policy",
        choices=("error", "zero"),
        default="error",
        help="NaN/Inf in features: error stops and lists the files; zero replaces them "
        "by 0, as the reference silently does",
    )
    g.add_argument("--workers", type=int, default=8, help="threads reading feature files")


MODEL_GROUP = "model (new models; released checkpoints are read off the file)"


def model_dest(f: Field) -> str:
    """The flag (less ``--``) and argparse dest of a :class:`ModelConfig` field: its name unless
    its metadata names one (``dim``: ``--embed_dim``)."""
    return f.metadata.get("flag", f.name)


def add_model_args(
    p: argparse.ArgumentParser, only: Sequence[str] | None = None, title: str = MODEL_GROUP
) -> None:
    """One flag per :class:`ModelConfig` field (or the fields in ``only``), generated from the
    field's metadata; defaults are None so that unset flags leave the field's own default."""
    g = p.add_argument_group(title)
    for f in fields(ModelConfig):
        if only is not None and f.name not in only:
            continue
        dest, meta = model_dest(f), f.metadata
        flag = f"--{dest}"
        shown = meta.get("shown", f"default {f.default}")
        text = f"{meta['help']} ({shown})"
        if isinstance(f.default, bool):
            g.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
            g.add_argument(f"--no_{f.name}", dest=dest, action="store_false", help=meta["off"])
        elif "choices" in meta:
            g.add_argument(flag, dest=dest, choices=meta["choices"], help=text)
        else:
            g.add_argument(flag, dest=dest, type=type(f.default), help=text)


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument(
        "--amp",
        choices=("none", "bf16", "fp16"),
        default="none",
        help="mixed precision on the accelerator",
    )
    g.add_argument("--no_progress", action="store_true", help="no progress bars")


def model_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`ModelConfig` fields the command line set."""
    given = {f.name: getattr(args, model_dest(f), None) for f in fields(ModelConfig)}
    return {k: v for k, v in given.items() if v is not None}


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train IEF-VAD on extracted image + event features (video-level labels).",
        formatter_class=HelpFormatter,
    )
    add_data_args(p)
    p.add_argument("--train_list", type=Path, help="train CSV (default list/<dataset>/train.csv)")
    g = p.add_argument_group("optimisation (default: the dataset's preset)")
    g.add_argument("--batch_size", type=int, help="videos per loader per step")
    g.add_argument("--lr", type=float)
    g.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay")
    g.add_argument("--max_epoch", type=int)
    g.add_argument("--milestones", type=int, nargs="*", help="epochs at which lr *= gamma")
    g.add_argument("--gamma", type=float)
    g.add_argument("--lam", type=float, help="weight of the alignment + KL terms")
    g.add_argument("--seed", type=int, default=42, help="training seed")
    g.add_argument(
        "--preset",
        choices=PRESETS,
        default="auto",
        help="paper: the dataset's published preset (budget in epochs); small: batch 4, at "
        "least --min_steps optimizer steps with milestones as fractions of them, lr 5e-4, "
        "lam 0.1, --feature_noise 1; auto: small for custom, paper for the benchmarks, "
        "printed with the reason (docs/training.md)",
    )
    g.add_argument(
        "--min_steps",
        type=int,
        help="raise --max_epoch until the run has this many optimizer steps "
        "(small preset: 400 unless --max_epoch is given)",
    )
    g.add_argument(
        "--feature_noise",
        type=float,
        help="add Gaussian noise of this many feature stds to each training batch, against "
        "memorising a few dozen videos (default 0; small preset 1.0)",
    )
    g.add_argument(
        "--topk_div",
        type=int,
        default=TOPK_DIV,
        help="MIL loss: each training video's score is the mean of its top "
        "len // topk_div + 1 snippets (16 as the reference)",
    )
    g.add_argument(
        "--train_len",
        type=int,
        default=CLIP_LEN,
        help="snippets per training row: longer videos are averaged into this many bins, "
        "shorter ones padded (256 as the reference)",
    )
    g.add_argument(
        "--train_sample",
        choices=TRAIN_SAMPLES,
        default="mean",
        help="training videos longer than --train_len: mean of each bin (reference) or pick "
        "one random snippet per bin at every step (keeps the per-snippet noise of test videos)",
    )
    g.add_argument(
        "--sparsity",
        type=float,
        default=0.0,
        help="weight of a loss term on the mean snippet score of abnormal training videos, so "
        "that most of an abnormal video stays normal (Sultani et al. 2018); 0 = off",
    )
    g.add_argument(
        "--video_noise",
        type=float,
        default=0.0,
        help="add to each training row one random offset shared by all its snippets, of this "
        "many within-video feature stds, drawn afresh each step; 0 = off",
    )
    g = p.add_argument_group("model selection and outputs")
    g.add_argument(
        "--select",
        choices=SELECTIONS,
        default="last",
        help="last: final model; val: best on held-out training videos; test: the "
        "reference protocol (optimistic)",
    )
    g.add_argument(
        "--val_fraction",
        type=float,
        default=0.1,
        help="share of the training videos --select val holds out",
    )
    g.add_argument(
        "--eval_every",
        type=int,
        default=0,
        help="steps between selection evaluations (0: once per epoch; --select "
        "test defaults to the reference's every 1280 videos)",
    )
    g.add_argument("--exp_name", help="run name (default: the dataset)")
    g.add_argument("--ckpt_dir", type=Path, help="default checkpoints/<exp_name>")
    g.add_argument(
        "--cache_dir", type=Path, help="keep the resampled training arrays here and reuse them"
    )
    g.add_argument("--no_test", action="store_true", help="skip the final test evaluation")
    g.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="continue a stopped run from its state (default PATH: "
        "<ckpt_dir>/<exp_name>.resume.pt, written every epoch and on Ctrl-C); pass the "
        "run's other flags unchanged (--max_epoch may grow)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the training step")
    g.add_argument("--wandb", action="store_true", help="mirror logs to wandb (optional)")
    g.add_argument("--tensorboard", action="store_true", help="mirror logs to TensorBoard")
    add_model_args(p)
    add_recipe_args(p)
    add_runtime_args(p)
    return p


def preset_choice(args: argparse.Namespace) -> tuple[str, str]:
    """``(preset, why)``: the preset a training run uses and the reason, for the first line
    of its output (``--preset auto`` resolved by :func:`iefvad.engine.budget.auto_preset`)."""
    spec = resolve_spec(args.dataset or "ucfcrime", args.normal_label)
    if args.preset in (None, "auto"):
        name, why = auto_preset(spec)
        return name, f"--preset auto: {why}"
    return args.preset, "--preset on the command line"


def resolve_train(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, str]]:
    """Merge CLI values with the dataset preset; also return where each value came from."""
    dataset = args.dataset or "ucfcrime"
    spec = resolve_spec(dataset, args.normal_label)
    preset_name = preset_choice(args)[0]
    defaults, budget, model_defaults = preset_defaults(preset_name, spec.preset)
    source: dict[str, str] = {}
    chosen: dict[str, Any] = {}
    for name in ("batch_size", "lr", "max_epoch", "milestones", "gamma", "lam"):
        cli = getattr(args, name)
        chosen[name] = tuple(cli) if name == "milestones" and cli is not None else cli
        if cli is None:
            chosen[name] = defaults[name]
            source[name] = (
                f"preset {dataset}" if preset_name == "paper" else f"preset {preset_name}"
            )
        else:
            source[name] = "command line"
    if args.max_epoch is not None:  # an explicit epoch count is honoured as given
        budget["min_steps"] = 0
    if args.milestones is not None:
        budget["milestone_fractions"] = None
    if args.min_steps is not None:
        budget["min_steps"] = args.min_steps
    if args.feature_noise is not None:
        budget["feature_noise"] = args.feature_noise
    spec = with_preset(spec, **chosen)
    lists = default_paths(dataset)
    exp = args.exp_name or dataset
    ckpt_dir = args.ckpt_dir or Path("checkpoints") / exp
    resume = None
    if getattr(args, "resume", None) is not None:
        resume = Path(args.resume) if args.resume else state_path(ckpt_dir, exp)
    cfg = TrainConfig(
        spec=spec,
        train_list=args.train_list or lists.train,
        test_list=args.test_list or lists.test,
        gt_path=args.gt_path or lists.gt,
        data_root=args.data_root,
        exp_name=exp,
        ckpt_dir=ckpt_dir,
        batch_size=chosen["batch_size"],
        lr=chosen["lr"],
        weight_decay=args.weight_decay,
        max_epoch=chosen["max_epoch"],
        milestones=chosen["milestones"],
        gamma=chosen["gamma"],
        lam=chosen["lam"],
        seed=args.seed,
        select=args.select,
        val_fraction=args.val_fraction,
        eval_every=args.eval_every,
        device=args.device,
        amp=args.amp,
        compile=args.compile,
        nan_policy=args.nan_policy,
        cache_dir=args.cache_dir,
        workers=args.workers,
        event_dir=args.event_dir_name,
        image_dir=args.image_dir_name,
        model=recipe_model_fields(args, {**model_defaults, **model_fields(args)}),
        uncertainty=recipe_record(args),
        final_test=not args.no_test,
        progress=not args.no_progress,
        wandb=args.wandb,
        tensorboard=args.tensorboard,
        resume=resume,
        topk_div=args.topk_div,
        train_len=args.train_len,
        train_sample=args.train_sample,
        video_noise=args.video_noise,
        sparsity=args.sparsity,
        **budget,
    )
    return cfg, source


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Evaluate an IEF-VAD checkpoint: frame AUC/AP, per class, plots.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--ckpt_path",
        type=Path,
        help="checkpoint (ours or the authors' released "
        ".pth); default checkpoints/<exp_name>/<exp_name>.pth",
    )
    p.add_argument("--exp_name", help="names the output folder (default: checkpoint stem)")
    add_data_args(p)
    g = p.add_argument_group("outputs")
    g.add_argument("--out_dir", type=Path, help="default results/<exp_name>")
    g.add_argument("--metrics_json", type=Path, help="also write the metrics here")
    g.add_argument("--no_plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--plot_max_videos", type=int, default=4, help="videos per class plot")
    g.add_argument(
        "--map_iou", action="store_true", help="compute mAP@IoU for any dataset (always on for xd)"
    )
    g.add_argument(
        "--report",
        action="store_true",
        help="also write report.html: every test video's score and weights over time, its "
        "ground truth, AUC / AP, a table sorted by error (worst first)",
    )
    g.add_argument(
        "--video_root",
        type=Path,
        help="folder of the test videos (found by name, any depth): the report plays them",
    )
    g.add_argument("--batch_size", type=int, default=64, help="chunks of 256 snippets per batch")
    add_model_args(p, ("heads", "nu", "noise"), "released checkpoints (not recorded in the file)")
    add_runtime_args(p)
    return p


def evaluation_config(args: argparse.Namespace, cls: type[E] = TestConfig) -> E:  # type: ignore[assignment]
    """The evaluation record ``cls`` (default :class:`~iefvad.engine.report.TestConfig`) of
    parsed flags: every flag names a field, ``--no_plots`` / ``--no_progress`` turned into
    ``plots`` / ``progress``."""
    values = vars(args).copy()
    values["plots"] = not values.pop("no_plots")
    values["progress"] = not values.pop("no_progress")
    return cls(**values)
