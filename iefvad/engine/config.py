"""What a training run is told: :class:`TrainConfig`, its range checks and what a run returns.

A :class:`TrainConfig` holds every option of one run, already resolved (presets merged with the
command line); building one runs :func:`validate_config`, which stops on the first option out
of its range with a :class:`ConfigError` naming the flag, the value and what is allowed, before
anything is read. :class:`TrainResult` is what :func:`iefvad.engine.train.train` hands back.
``SELECTIONS`` lists the model-selection modes (:mod:`iefvad.engine.selection`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iefvad.data.features import CLIP_LEN
from iefvad.datasets.specs import DatasetSpec
from iefvad.errors import UserInputError
from iefvad.models.losses import TOPK_DIV

SELECTIONS = ("last", "val", "test")
TRAIN_SAMPLES = ("mean", "pick")


@dataclass
class TrainConfig:
    """Everything a training run needs, already resolved (presets merged with the CLI)."""

    spec: DatasetSpec
    train_list: Path
    test_list: Path | None = None
    gt_path: Path | None = None
    data_root: Path | None = None
    exp_name: str = "run"
    ckpt_dir: Path = Path("checkpoints/run")
    batch_size: int = 64
    lr: float = 2e-5
    weight_decay: float = 0.01
    max_epoch: int = 10
    milestones: tuple[int, ...] = (4, 8)
    gamma: float = 0.1
    lam: float = 1.0
    seed: int = 42
    select: str = "last"
    val_fraction: float = 0.1
    eval_every: int = 0
    """Steps between evaluations for selection; 0 = once per epoch."""
    device: str = "auto"
    amp: str = "none"
    compile: bool = False
    nan_policy: str = "error"
    cache_dir: Path | None = None
    workers: int = 8
    event_dir: str | None = None
    image_dir: str = "rgb"
    model: dict[str, Any] = field(default_factory=dict)
    """ModelConfig fields (``dim`` is filled from the features unless given)."""
    uncertainty: dict[str, Any] = field(default_factory=dict)
    """Reliability recipe (:class:`iefvad.engine.reliability.TrainingRecipe` record): corruption
    augmentation and the heteroscedastic term; empty = the plain objective."""
    log_every: int = 10
    """Steps between fetches of the loss values (each fetch waits for the accelerator)."""
    final_test: bool = True
    progress: bool = True
    epoch_lines: bool = True
    """Print a line per epoch (the demo, which trains three small models, turns it off)."""
    wandb: bool = False
    tensorboard: bool = False
    min_steps: int = 0
    """Raise ``max_epoch`` until the run takes at least this many optimizer steps (small
    datasets have few steps per epoch; :mod:`iefvad.engine.budget`)."""
    milestone_fractions: tuple[float, ...] | None = None
    """When set, the lr milestones are these fractions of the (adapted) epoch budget and
    ``milestones`` is ignored."""
    topk_div: int = TOPK_DIV
    """Top-k size of the MIL loss: the mean of the top ``len // topk_div + 1`` snippet scores
    of each training video (the reference: 16)."""
    train_len: int = CLIP_LEN
    """Snippets per training row: longer videos are averaged into this many bins, shorter
    ones zero-padded (the reference: 256)."""
    train_sample: str = "mean"
    """How a training video longer than ``train_len`` becomes a row: ``mean`` (the reference:
    the mean of each of ``train_len`` bins) or ``pick`` (at every step, one random snippet of
    each bin, so that training rows keep the per-snippet statistics the test videos have;
    :func:`iefvad.engine.train.pick_rows`)."""
    feature_noise: float = 0.0
    """Training augmentation: add Gaussian noise of this many within-video feature stds (per
    stream) to every batch; 0 = off (docs/training.md)."""
    sparsity: float = 0.0
    """Weight of the sparsity term (:func:`iefvad.models.losses.sparsity_loss`: the mean
    snippet score of the abnormal videos); 0 = off, the reference objective."""
    video_noise: float = 0.0
    """Training augmentation: add to every training row one Gaussian offset (the same for all
    its snippets, drawn afresh at each step) of this many within-video feature stds per
    stream; 0 = off. Against telling the training videos apart by what a whole video looks
    like rather than by its anomalous snippets (docs/training.md, "Regimes")."""
    epoch_hook: Any = None
    """Optional ``hook(epoch, step, model)`` called after each epoch (studies, curves)."""
    resume: Path | None = None
    """Continue from this state file (:mod:`iefvad.engine.resume`); None starts afresh."""

    def __post_init__(self) -> None:
        validate_config(self)

    def as_record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("epoch_hook", None)
        d["spec"] = self.spec.name
        d["normal_label"] = self.spec.normal_label
        return json.loads(json.dumps(d, default=str))


class ConfigError(UserInputError):
    """A training option is out of its range."""


def _check(ok: bool, flag: str, value: Any, allowed: str, why: str = "") -> None:
    if not ok:
        raise ConfigError(
            f"{flag} {value!r} is out of range: it must be {allowed}{why}; pass a value in range"
        )


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate_config(cfg: TrainConfig) -> None:
    """Every option's range, checked before anything is read: one message naming the flag,
    the value and what is allowed."""
    _check(
        _int(cfg.batch_size) and cfg.batch_size >= 1,
        "--batch_size",
        cfg.batch_size,
        "an integer >= 1",
    )
    _check(
        _int(cfg.seed) and 0 <= cfg.seed < 2**32,
        "--seed",
        cfg.seed,
        "an integer in 0..4294967295",
    )
    _check(
        _finite(cfg.lr) and cfg.lr > 0,
        "--lr",
        cfg.lr,
        "a finite number > 0",
        " (0 never changes the weights and would save an untrained model)"
        if _finite(cfg.lr) and cfg.lr == 0
        else "",
    )
    _check(
        _finite(cfg.weight_decay) and cfg.weight_decay >= 0,
        "--weight_decay",
        cfg.weight_decay,
        "a finite number >= 0",
    )
    _check(
        _int(cfg.max_epoch) and cfg.max_epoch >= 1, "--max_epoch", cfg.max_epoch, "an integer >= 1"
    )
    _check(
        all(_int(m) and m >= 1 for m in cfg.milestones),
        "--milestones",
        list(cfg.milestones),
        "epochs >= 1",
    )
    _check(
        _finite(cfg.gamma) and cfg.gamma > 0,
        "--gamma",
        cfg.gamma,
        "a finite number > 0",
        " (the factor the learning rate is multiplied by at each milestone)",
    )
    _check(_finite(cfg.lam) and cfg.lam >= 0, "--lam", cfg.lam, "a finite number >= 0")
    _check(_int(cfg.topk_div) and cfg.topk_div >= 1, "--topk_div", cfg.topk_div, "an integer >= 1")
    _check(
        _int(cfg.train_len) and cfg.train_len >= 1, "--train_len", cfg.train_len, "an integer >= 1"
    )
    _check(
        _finite(cfg.sparsity) and cfg.sparsity >= 0,
        "--sparsity",
        cfg.sparsity,
        "a finite number >= 0",
    )
    _check(
        _finite(cfg.video_noise) and cfg.video_noise >= 0,
        "--video_noise",
        cfg.video_noise,
        "a finite number >= 0",
    )
    _check(
        cfg.train_sample in TRAIN_SAMPLES,
        "--train_sample",
        cfg.train_sample,
        f"one of {', '.join(TRAIN_SAMPLES)}",
    )
    _check(cfg.select in SELECTIONS, "--select", cfg.select, f"one of {', '.join(SELECTIONS)}")
    _check(
        _finite(cfg.val_fraction) and 0 < cfg.val_fraction < 1,
        "--val_fraction",
        cfg.val_fraction,
        "between 0 and 1 (exclusive)",
        " (the fraction of training videos held out by --select val)",
    )
    _check(
        _int(cfg.eval_every) and cfg.eval_every >= 0,
        "--eval_every",
        cfg.eval_every,
        "an integer >= 0 (0: once per epoch)",
    )
    _check(cfg.amp in ("none", "bf16", "fp16"), "--amp", cfg.amp, "none, bf16 or fp16")
    _check(cfg.nan_policy in ("error", "zero"), "--nan_policy", cfg.nan_policy, "error or zero")
    _check(_int(cfg.workers) and cfg.workers >= 0, "--workers", cfg.workers, "an integer >= 0")
    _check(
        _int(cfg.log_every) and cfg.log_every >= 1, "log_every", cfg.log_every, "an integer >= 1"
    )
    m = cfg.model
    if "dropout" in m:
        _check(
            _finite(m["dropout"]) and 0 <= m["dropout"] < 1,
            "--dropout",
            m["dropout"],
            "in [0, 1) (the probability of zeroing an attention weight)",
        )
    for key, flag, low in (
        ("dim", "--embed_dim", 1),
        ("heads", "--heads", 1),
        ("layers", "--layers", 0),
        ("refine_steps", "--refine_steps", 0),
        ("robust_steps", "--robust_steps", 0),
    ):
        if key in m:
            _check(_int(m[key]) and m[key] >= low, flag, m[key], f"an integer >= {low}")
    for key, flag in (("lambda_ref", "--lambda_ref"), ("nu", "--nu")):
        if key in m:
            _check(_finite(m[key]), flag, m[key], "a finite number")


@dataclass
class TrainResult:
    checkpoint: Path
    selection: dict[str, Any]
    test_metrics: dict[str, Any] | None
    log_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    """Wall time of the training loop (epochs; not reading features, not the final test)."""
    parameters: int = 0
    """Parameters the model's fusion uses (:func:`iefvad.models.model.num_used_parameters`)."""
