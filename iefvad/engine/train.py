"""The training loop: MIL top-k objective with video-level labels only.

:func:`train` runs one model's training, in this order: the data (:class:`TrainData`: the
training rows and their bank, the held-out validation rows, the test set and its ground truth),
the run's state (:class:`RunState`: model, optimiser, scheduler, AMP scaler, batch sampler and
reliability recipe, and the epoch budget), the epochs (:class:`EpochLoop`, one
:func:`train_step` per batch) and then the checkpoint and the final test evaluation. The options
live in :mod:`iefvad.engine.config`, model selection (``--select last|val|test``) in
:mod:`iefvad.engine.selection`, the loss and evaluation logs in :mod:`iefvad.engine.runlog`.

Every epoch leaves a resumable state next to the checkpoint (:mod:`iefvad.engine.resume`); Ctrl-C
or SIGTERM saves one and exits with status 130; a second training of the same experiment is
refused while one runs (:func:`experiment_lock`); a NaN/Inf loss stops the run and keeps the
last good weights; the checkpoint is written before the final test evaluation.
"""

from __future__ import annotations

import itertools
import os
import random
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from tqdm import tqdm

from iefvad.data.bank import BatchSampler, DeviceBank, TrainBank, build_bank
from iefvad.data.csv_lists import ListError, ListRow, read_list
from iefvad.data.groundtruth import (
    GroundTruth,
    check_gt_length,
    feature_shape,
    load_gt,
    num_snippets,
    sidecar_path,
)
from iefvad.datasets.specs import DatasetSpec
from iefvad.devices import DeviceError, resolve_device
from iefvad.engine.budget import plan_budget
from iefvad.engine.config import SELECTIONS, ConfigError, TrainConfig, TrainResult, validate_config
from iefvad.engine.evaluate import (
    TestSet,
    autocast,
    compute_metrics,
    headline,
    load_test_set,
    predict,
)
from iefvad.engine.outpaths import OutputPathError, check_output_dir
from iefvad.engine.reliability import make_step
from iefvad.engine.resume import (
    DeferredInterrupt,
    ResumeError,
    StopRequested,
    check_same_list,
    check_same_settings,
    list_fingerprint,
    plain,
    read_state,
    resume_command,
    rng_states,
    save_state,
    set_rng_states,
    state_path,
)
from iefvad.engine.runlog import LOSS_NAMES, Diverged, RunLogger, StepLosses
from iefvad.engine.sampling import pick_rows, store_length
from iefvad.engine.selection import (
    Selector,
    score_videos,
    selection_metrics,
    split_validation,
    validation_metrics,
)
from iefvad.errors import UserInputError
from iefvad.fileio import save_json
from iefvad.locks import FolderLock
from iefvad.models.checkpoint import save_checkpoint
from iefvad.models.losses import LossParts, ief_vad_loss
from iefvad.models.model import IEFVAD, ModelConfig, kl_shift, num_parameters, num_used_parameters
from iefvad.paths import check_name, check_outputs, shown

__all__ = [
    "LOSS_NAMES",
    "SELECTIONS",
    "ConfigError",
    "DeviceError",
    "Diverged",
    "EpochLoop",
    "ExperimentBusy",
    "RunLogger",
    "RunState",
    "Selector",
    "StepLosses",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_both_classes",
    "check_labels",
    "feature_noise_scale",
    "prepare_data",
    "resolve_device",
    "score_videos",
    "seed_everything",
    "selection_metrics",
    "split_validation",
    "train",
    "train_step",
    "validate_config",
    "validation_metrics",
    "warn_duplicates",
]


class TrainingDiverged(UserInputError):
    """Training stopped because the loss became NaN/Inf (usually ``--lr`` too high)."""


class TrainingInterrupted(SystemExit):
    """Ctrl-C: the run stopped (exit status 130); ``state`` resumes it with ``command``."""

    def __init__(self, state: Path | None, command: str | None) -> None:
        super().__init__(130)
        self.state, self.command = state, command


def _say(msg: str) -> None:
    tqdm.write(msg)


def _warn(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# The data: lists, validation split, test set, banks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_labels(rows: Sequence[ListRow], spec: DatasetSpec, path: Path) -> None:
    """Stop on labels the dataset does not know, naming the CSV lines."""
    bad = [(r.line, r.label, err) for r in rows if (err := spec.check_label(r.label))]
    if bad:
        lines = "; ".join(f"line {ln}: {lab!r}" for ln, lab, _ in bad[:5])
        raise ListError(
            f"list {path}: {len(bad)} row(s) with unknown labels ({lines}). {bad[0][2]}"
        )


def check_both_classes(rows: Sequence[ListRow], spec: DatasetSpec, path: Path) -> None:
    """Stop when the training list holds one class only: learning from video-level labels
    needs normal and abnormal videos both (no batch size makes up for a missing class)."""
    normal = sum(spec.is_normal(r.label) for r in rows)
    if rows and normal in (0, len(rows)):
        have, lacks = ("normal", "abnormal") if normal else ("abnormal", "normal")
        raise ListError(
            f"list {path}: all {len(rows)} rows are {have} videos: weakly-supervised training "
            f"needs both normal and abnormal videos; add {lacks} ones (label "
            f"{spec.normal_label!r} is normal, any other label abnormal)"
        )


def warn_duplicates(rows: Sequence[ListRow], path: Path) -> None:
    """Warn (naming up to 5) about rows that list the same feature files as an earlier row.

    They are kept: such a row weighs twice in training, which may be intended (oversampling);
    the published lists have none, so it is more often a list concatenated twice.
    """
    first: dict[tuple[str, str], int] = {}
    dups: list[tuple[int, int, Path]] = []
    for r in rows:
        key = (os.path.abspath(r.path), os.path.abspath(r.event_path or ""))
        if key in first:
            dups.append((r.line, first[key], r.path))
        else:
            first[key] = r.line
    if dups:
        listed = "; ".join(f"line {a} repeats line {b} ({p.name})" for a, b, p in dups[:5])
        more = f" and {len(dups) - 5} more" if len(dups) > 5 else ""
        warnings.warn(
            f"list {path}: {len(dups)} row(s) repeat an earlier row's features ({listed}{more}). "
            "They are kept and weigh twice in training; delete them from the list unless that "
            "is intended",
            UserWarning,
            stacklevel=2,
        )


def warn_shared_videos(
    train: Sequence[ListRow], test: Sequence[ListRow], train_list: Path, test_list: Path | None
) -> None:
    """Warn once when videos of the training list are also in the test list (the same feature
    folder and video name, any crop): their test scores measure memory, not detection."""
    seen = {(os.path.abspath(r.path.parent), r.stem) for r in train}
    shared = sorted({r.stem for r in test if (os.path.abspath(r.path.parent), r.stem) in seen})
    if shared:
        names = ", ".join(shown(s) for s in shared[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        warnings.warn(
            f"{len(shared)} video(s) of the training list {train_list} are also in the test "
            f"list {test_list} ({names}{more}): their test scores measure what the model "
            "remembers, not what it detects; take them out of one of the lists",
            UserWarning,
            stacklevel=2,
        )


def feature_noise_scale(bank: TrainBank, fraction: float) -> tuple[float, float]:
    """``fraction`` times each stream's *within-video* std: of the valid training snippets
    around their row's mean, so that offsets between videos (scenes) do not inflate it."""
    if fraction <= 0:
        return 0.0, 0.0
    rows = np.arange(min(len(bank), 256))
    valid = np.arange(bank.image.shape[1])[None, :] < bank.lengths[rows, None]
    out = []
    for x in (bank.image, bank.event):
        x = np.asarray(x[rows], dtype=np.float64)
        mean = (x * valid[..., None]).sum(1, keepdims=True) / valid.sum(1)[:, None, None]
        out.append(fraction * float((x - mean)[valid].std()))
    return out[0], out[1]


@dataclass
class TrainData:
    """What a run reads before its first epoch: the rows and their feature banks."""

    train_rows: list[ListRow]
    val_rows: list[ListRow]
    """Training videos held out by ``--select val`` (empty otherwise)."""
    test_rows: list[ListRow]
    """Empty when nothing is tested (no test list, or ``--no_test`` without ``--select test``)."""
    gt: GroundTruth | None
    bank: TrainBank
    val_bank: TrainBank | None
    test_set: TestSet | None


def prepare_data(cfg: TrainConfig) -> TrainData:
    """Read and check the lists and the ground truth, then every feature the run needs.

    The test list and its ground truth (values and length, from the file headers) are checked
    before the long read of the training features.
    """
    event_dir = cfg.event_dir or cfg.spec.event_dir
    rows = read_list(cfg.train_list, cfg.data_root, event_dir, cfg.image_dir)
    check_labels(rows, cfg.spec, cfg.train_list)
    check_both_classes(rows, cfg.spec, cfg.train_list)
    warn_duplicates(rows, cfg.train_list)
    train_rows, val_rows = _split_rows(cfg, rows)
    test_rows, gt = _read_test_list(cfg, event_dir)
    warn_shared_videos(rows, test_rows, cfg.train_list, cfg.test_list)
    bank = _bank(cfg, train_rows, cfg.model.get("dim"), cfg.cache_dir, store=True)
    val_bank = _bank(cfg, val_rows, bank.dim, None) if val_rows else None
    test_set: TestSet | None = None
    if test_rows:
        test_set = load_test_set(test_rows, bank.dim, cfg.nan_policy, cfg.workers, cfg.progress)
    return TrainData(train_rows, val_rows, test_rows, gt, bank, val_bank, test_set)


def _split_rows(cfg: TrainConfig, rows: list[ListRow]) -> tuple[list[ListRow], list[ListRow]]:
    """``(train, val)`` rows: the validation videos of ``--select val``, else none."""
    if cfg.select != "val":
        return rows, []
    tr_idx, va_idx = split_validation(rows, cfg.spec, cfg.val_fraction, cfg.seed)
    if not va_idx:
        raise UserInputError("--select val holds out no video: raise --val_fraction")
    return [rows[i] for i in tr_idx], [rows[i] for i in va_idx]


def _read_test_list(cfg: TrainConfig, event_dir: str) -> tuple[list[ListRow], GroundTruth | None]:
    """The test rows and ground truth, checked; none when the run tests nothing."""
    need_test = cfg.select == "test" or cfg.final_test
    if need_test and cfg.test_list is not None and Path(cfg.test_list).is_file():
        rows = read_list(cfg.test_list, cfg.data_root, event_dir, cfg.image_dir)
        check_labels(rows, cfg.spec, cfg.test_list)
        if cfg.gt_path is None:
            raise UserInputError("a test list needs --gt_path")
        gt = load_gt(cfg.gt_path)
        check_gt_length(gt, [r.stem for r in rows], [num_snippets(r.path) for r in rows])
        return rows, gt
    if cfg.select == "test":
        raise UserInputError(f"--select test needs a test list; {cfg.test_list} does not exist")
    if cfg.final_test:
        _say(f"[train] no test list at {cfg.test_list}: the final evaluation is skipped")
    return [], None


def _bank(
    cfg: TrainConfig, rows: list[ListRow], dim: int | None, cache: Path | None, store: bool = False
):
    """A training bank of ``rows`` (:func:`iefvad.data.bank.build_bank`); ``store`` (the
    training bank of ``--train_sample pick``): rows at up to full resolution."""
    n = cfg.train_len
    if store and cfg.train_sample == "pick":
        shapes = [feature_shape(r.path) for r in rows]
        n = store_length([s[0] for s in shapes], cfg.train_len, dim or shapes[0][1])
    return build_bank(
        rows,
        cfg.spec,
        dim,
        cfg.nan_policy,
        cache,
        cfg.workers,
        n=n,
        progress=cfg.progress,
    )


class Batches:
    """Training batches on the device, with the ``--feature_noise`` (per snippet) and
    ``--video_noise`` (per row) augmentations when asked."""

    def __init__(
        self,
        bank: TrainBank,
        device: torch.device,
        feature_noise: float,
        train_len: int,
        video_noise: float = 0.0,
    ) -> None:
        self.bank = DeviceBank(bank, device)
        self.noise = feature_noise
        self.scale = feature_noise_scale(bank, feature_noise)
        self.video_noise = video_noise
        self.video_scale = feature_noise_scale(bank, video_noise)
        self.train_len = train_len
        """Rows longer than this (``--train_sample pick``'s stored rows) are picked down."""

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        """``(image, event, lengths, labels)`` of the bank rows ``idx``."""
        img, evt, lengths, labels = self.bank.gather(idx)
        if img.shape[1] > self.train_len:  # --train_sample pick: one snippet per bin
            img, evt, lengths = pick_rows(img, evt, lengths, self.train_len)
        if self.noise > 0:  # fresh noise each step: no exact row to memorise
            img = img + self.scale[0] * torch.randn_like(img)
            evt = evt + self.scale[1] * torch.randn_like(evt)
        if self.video_noise > 0:  # one offset per row: no whole-video look to memorise
            img = img + self.video_scale[0] * torch.randn_like(img[:, :1])
            evt = evt + self.video_scale[1] * torch.randn_like(evt[:, :1])
        return img, evt, lengths, labels


# ---------------------------------------------------------------------------------------------
# The run's state: what a resume state holds


class RunState:
    """The model and everything its training moves: optimiser, scheduler, AMP scaler, batch
    sampler, reliability recipe, step counter, loss history and the epoch budget.

    :meth:`snapshot` gives the resume state (:mod:`iefvad.engine.resume`) and :meth:`restore`
    continues from one; the state's keys are the format of existing ``.resume.pt`` files.
    """

    def __init__(self, cfg: TrainConfig, bank: TrainBank, device: torch.device) -> None:
        """Build the model (its weights drawn from the seeded torch stream), the optimiser and the
        sampler for ``bank``, and plan the budget (:func:`iefvad.engine.budget.plan_budget`)."""
        self.cfg, self.device = cfg, device
        self.mcfg = ModelConfig.from_dict({**cfg.model, "dim": bank.dim})
        self.model = IEFVAD(self.mcfg).to(device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.sampler = BatchSampler(bank.labels, cfg.batch_size, cfg.spec.paired, cfg.seed)
        self.max_epoch, milestones = plan_budget(
            len(self.sampler),
            cfg.max_epoch,
            cfg.milestones,
            cfg.min_steps,
            cfg.milestone_fractions,
        )
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, list(milestones), cfg.gamma)
        if (self.max_epoch, milestones) != (cfg.max_epoch, tuple(cfg.milestones)):
            _say(
                f"[train] budget: {self.max_epoch} epochs x {len(self.sampler)} steps (min_steps "
                f"{cfg.min_steps}); lr milestones at epochs {list(milestones)}"
            )
        self.shift = kl_shift(self.mcfg)
        self.recipe = make_step(  # None: the plain step
            cfg.uncertainty,
            self.mcfg.modalities,
            cfg.seed,
            self.mcfg.weight_power,
            self.mcfg.variance_temporal,
        )
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.start_epoch, self.start_step, self.start_loss_sums = 0, 0, None
        """Where the first epoch starts (not 0, 0 on resume) and its loss sums so far."""
        self.global_step, self.secs_before, self.t0 = 0, 0.0, time.perf_counter()
        self.history: list[dict[str, float]] = []
        self.list_sha256 = ""
        """:func:`iefvad.engine.resume.list_fingerprint` of the training rows."""

    def start_clock(self) -> None:
        """Count the training seconds from now (the epochs; not reading the features)."""
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        """Training seconds so far, those of the run resumed from included."""
        return self.secs_before + time.perf_counter() - self.t0

    def snapshot(
        self,
        epoch: int,
        step_in_epoch: int,
        sampler_rng: dict[str, Any],
        selector_state: dict[str, Any],
        loss_sums: list[float],
    ) -> dict[str, Any]:
        """The resumable state at ``step_in_epoch`` steps into epoch index ``epoch``.

        ``sampler_rng``: the sampler's state at the start of that epoch; ``selector_state``:
        :meth:`iefvad.engine.selection.Selector.state`; ``loss_sums``: the epoch's so far.
        """
        return {
            "train": self.cfg.as_record(),
            "model_config": self.mcfg.to_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "sampler_rng": sampler_rng,
            "rng": rng_states(),
            "recipe_rng": self.recipe.rng_state() if self.recipe is not None else {},
            "model_state_dict": {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            },
            "optimizer_state_dict": self.opt.state_dict(),
            "scheduler_state_dict": self.sched.state_dict(),
            "scaler_state_dict": self.scaler.state_dict(),
            **selector_state,
            "history": plain(self.history),
            "loss_sums": loss_sums,
            "train_seconds": self.seconds(),
            "train_list_sha256": self.list_sha256,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (:meth:`snapshot`; read from ``cfg.resume``)."""
        now = self.mcfg.to_dict()
        if state["model_config"] != now:
            diff = [
                f"{k}: state {state['model_config'].get(k)!r}, now {v!r}"
                for k, v in now.items()
                if state["model_config"].get(k) != v
            ]
            raise ResumeError(
                f"--resume: {self.cfg.resume} holds a model of another shape "
                f"({'; '.join(diff)}); resume with the original features and model flags"
            )
        self.model.load_state_dict(state["model_state_dict"])
        self.opt.load_state_dict(state["optimizer_state_dict"])
        self.sched.load_state_dict(state["scheduler_state_dict"])
        if self.cfg.amp == "fp16" and state["scaler_state_dict"]:
            self.scaler.load_state_dict(state["scaler_state_dict"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        set_rng_states(state["rng"])
        if self.recipe is not None:
            self.recipe.set_rng_state(state.get("recipe_rng") or {})
        self.history = list(state["history"])
        self.start_epoch, self.start_step = state["epoch"], state["step_in_epoch"]
        self.start_loss_sums = state["loss_sums"]
        self.global_step, self.secs_before = state["global_step"], state["train_seconds"]


# ---------------------------------------------------------------------------------------------
# The epochs


def train_step(cfg: TrainConfig, run: RunState, batch: tuple[torch.Tensor, ...]) -> LossParts:
    """One optimiser step on ``batch`` (:class:`Batches`); the loss parts, total first."""
    img, evt, lengths, labels = batch
    with autocast(run.device, cfg.amp):
        if run.recipe is None:
            out = run.step_model(img, evt, lengths)
        else:
            out, extra = run.recipe(run.step_model, img, evt, lengths, labels)
    mcfg = run.mcfg
    parts = ief_vad_loss(
        out,
        labels,
        lengths,
        cfg.lam,
        run.shift,
        mcfg.mask_padding,
        mcfg.modalities,
        cfg.topk_div,
        cfg.sparsity,
        None if run.recipe is None else run.recipe.mil_rows,
    )
    if run.recipe is not None:  # the reliability term counts in the logged loss
        parts = parts._replace(total=parts.total + extra)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(parts.total).backward()
    run.scaler.step(run.opt)
    run.scaler.update()
    run.global_step += 1
    return parts


def _nonfinite_weights(model: IEFVAD) -> list[str]:
    """Names of parameters holding NaN/Inf (one transfer from the device)."""
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    ok = torch.stack([torch.isfinite(p).all() for _, p in named]).cpu()
    return [n for (n, _), good in zip(named, ok.tolist()) if not good]


def check_weights(model: IEFVAD, epoch: int, step: int) -> None:
    """Raise :class:`Diverged` when a weight is NaN/Inf."""
    if _nonfinite_weights(model):
        raise Diverged(epoch, step, {"non-finite weights": float("nan")})


@dataclass
class _Saved:
    """What a run has on disk, for the messages of an interrupted or failed run."""

    state: Path | None = None
    """A consistent resume state written (or resumed from) by this run."""
    state_label: str = ""
    state_weights: dict[str, torch.Tensor] | None = None
    """The model weights in ``state`` (the last good ones should the loss diverge)."""
    checkpoint: Path | None = None
    """The final checkpoint, once written."""

    def keep(self, state: Path, label: str, weights: dict[str, torch.Tensor]) -> None:
        self.state, self.state_label, self.state_weights = state, label, weights


class EpochLoop:
    """The epochs of one run: the steps, the evaluations of the selection, a resume state
    after every epoch, and what Ctrl-C (:class:`TrainingInterrupted`) and a NaN/Inf loss
    (:class:`TrainingDiverged`) leave behind.
    """

    def __init__(
        self,
        run: RunState,
        batches: Batches,
        selector: Selector,
        steps: StepLosses,
        saved: _Saved,
        state_file: Path,
    ) -> None:
        self.cfg, self.run, self.batches, self.selector = run.cfg, run, batches, selector
        self.steps, self.saved, self.state_file = steps, saved, state_file
        self.epoch, self.step_in_epoch = run.start_epoch, run.start_step
        """The position a resume state saved now would continue from."""
        self.epoch_rng: dict[str, Any] | None = None
        """The sampler's state at the start of epoch index ``self.epoch``."""

    def run_epochs(self) -> None:
        """Train the epochs left; on Ctrl-C save the state and raise TrainingInterrupted."""
        self.run.start_clock()
        try:
            with DeferredInterrupt() as stop:
                for epoch in range(self.run.start_epoch, self.run.max_epoch):
                    self._epoch(epoch, stop)
                    self._end_epoch(epoch)
                    if stop.requested:
                        raise StopRequested
        except StopRequested:
            self._stopped(stop.by)
        except Diverged as d:
            raise _diverged(self.cfg, self.run.model, d, self.saved) from None

    def _at(self, epoch: int, step_in_epoch: int) -> None:
        self.epoch, self.step_in_epoch = epoch, step_in_epoch
        self.epoch_rng = self.run.sampler.rng.bit_generator.state

    def _epoch(self, epoch: int, stop: DeferredInterrupt) -> None:
        """The steps of epoch index ``epoch`` (those not done before a resume)."""
        run, steps = self.run, self.steps
        run.model.train()
        skip = run.start_step if epoch == run.start_epoch else 0
        self._at(epoch, skip)
        bar = tqdm(
            itertools.islice(run.sampler.epoch(), skip, None),
            total=len(run.sampler),
            initial=skip,
            desc=f"epoch {epoch + 1}/{run.max_epoch}",
            disable=not self.cfg.progress,
            unit="step",
            leave=False,
        )
        steps.start_epoch(epoch + 1, bar)
        if skip:
            steps.sums = np.asarray(run.start_loss_sums, dtype=np.float64)
        for idx in bar:
            parts = train_step(self.cfg, run, self.batches(idx))
            self.step_in_epoch += 1
            lr = run.opt.param_groups[0]["lr"]
            steps.add(run.global_step, lr, run.seconds(), torch.stack(parts).detach())
            if self.selector.due_at_step(run.global_step):
                steps.flush()
                self._evaluate(epoch + 1, run.global_step)
            if stop.requested:
                raise StopRequested

    def _evaluate(self, epoch: int, step: int) -> None:
        check_weights(self.run.model, epoch, step)
        self.selector.evaluate(epoch, step)

    def _end_epoch(self, epoch: int) -> None:
        """Log the epoch, evaluate (once-per-epoch selection) and save the resume state."""
        run = self.run
        self.steps.flush()
        check_weights(run.model, epoch + 1, 0)
        run.sched.step()
        mean = self.steps.sums / max(1, len(run.sampler))
        run.history.append({"epoch": epoch + 1, **dict(zip(LOSS_NAMES, map(float, mean)))})
        msg = f"[train] epoch {epoch + 1}: loss {mean[0]:.4f} (cls {mean[1]:.4f})"
        if self.selector.due_at_epoch_end():
            self._evaluate(epoch + 1, run.global_step)
        msg += self.selector.progress()
        if self.cfg.epoch_lines:
            _say(msg)
        if self.cfg.epoch_hook is not None:
            self.cfg.epoch_hook(epoch + 1, run.global_step, run.model)
        self.selector.end_epoch()
        self._at(epoch + 1, 0)
        self._keep(f"after epoch {epoch + 1}")

    def _keep(self, label: str) -> None:
        """Save the resume state at the current position."""
        state = self.run.snapshot(
            self.epoch,
            self.step_in_epoch,
            self.epoch_rng,
            self.selector.state(),
            self.steps.sums.tolist(),
        )
        save_state(self.state_file, state)
        self.saved.keep(self.state_file, label, state["model_state_dict"])

    def _stopped(self, by: str) -> NoReturn:
        """Ctrl-C or SIGTERM (``by``): save the state mid-epoch (unless the weights went bad)
        and stop."""
        try:
            self.steps.flush()
            check_weights(self.run.model, self.epoch + 1, self.run.global_step)
        except Diverged as d:
            raise _diverged(self.cfg, self.run.model, d, self.saved) from None
        if self.step_in_epoch:
            self._keep(f"at epoch {self.epoch + 1}, step {self.run.global_step}")
        cmd = resume_command(self.state_file)
        _warn(
            f"[train] stopped by {by or 'Ctrl-C'} {self.saved.state_label}; the state is saved in "
            f"{self.state_file}. Resume with:\n  {cmd}"
        )
        raise TrainingInterrupted(self.state_file, cmd) from None


def _diverged(cfg: TrainConfig, model: IEFVAD, d: Diverged, saved: _Saved) -> TrainingDiverged:
    """Save the last good weights (never the NaN ones) and say which flag to change."""
    where = f"epoch {d.epoch}" + (f", step {d.step}" if d.step else " (end of epoch)")
    values = ", ".join(f"{k} {v:.4g}" for k, v in d.values.items())
    amp = " or --amp none instead of fp16" if cfg.amp == "fp16" else ""
    msg = (
        f"training diverged at {where}: {values}. The learning rate --lr {cfg.lr:g} is most "
        f"likely too high: lower it (e.g. --lr {cfg.lr / 10:g}; the dataset presets use "
        f"2e-05 to 0.0001){amp}."
    )
    if saved.state_weights is None:
        return TrainingDiverged(
            msg + " No epoch had finished, so nothing was saved and no checkpoint was written."
        )
    model.load_state_dict(saved.state_weights)
    path = cfg.ckpt_dir / f"{cfg.exp_name}_last_good.pth"
    save_checkpoint(
        path,
        model,
        dataset=cfg.spec.name,
        normal_label=cfg.spec.normal_label,
        train=cfg.as_record(),
        selection={"mode": "last_good", "warning": f"training diverged at {where}"},
    )
    return TrainingDiverged(
        f"{msg} The weights {saved.state_label}, the last with a finite loss, are saved in "
        f"{path} (the resume state {state_path(cfg.ckpt_dir, cfg.exp_name)} holds the same "
        "point); no final checkpoint was written."
    )


# ---------------------------------------------------------------------------------------------
# The run


def train(cfg: TrainConfig) -> TrainResult:
    """Train one model; write ``<ckpt_dir>/<exp_name>.pth``, logs and the final metrics.

    A resumable state is kept in ``<ckpt_dir>/<exp_name>.resume.pt`` (every epoch, and on
    Ctrl-C, which then raises :class:`TrainingInterrupted`, exit status 130). A loss that
    becomes NaN/Inf raises :class:`TrainingDiverged`; the last good weights are kept.
    """
    saved = _Saved()
    try:
        return _train(cfg, saved)
    except KeyboardInterrupt:
        if saved.checkpoint is not None:
            _warn(
                f"[train] interrupted during the final evaluation; the trained model is saved "
                f"in {saved.checkpoint}. Evaluate it with: python test.py --ckpt_path "
                f"{shlex.quote(str(saved.checkpoint))}"
            )
            raise TrainingInterrupted(None, None) from None
        if saved.state is None:
            _warn("[train] interrupted before the first epoch finished: nothing to resume")
            raise TrainingInterrupted(None, None) from None
        cmd = resume_command(saved.state)
        _warn(
            f"[train] interrupted; {saved.state} holds the state {saved.state_label} (the steps "
            f"after it are redone). Resume with:\n  {cmd}"
        )
        raise TrainingInterrupted(saved.state, cmd) from None


class ExperimentBusy(UserInputError):
    """Another training writes the same experiment (``--ckpt_dir`` and ``--exp_name``)."""


def experiment_lock(cfg: TrainConfig) -> FolderLock:
    """The lock of ``<ckpt_dir>/<exp_name>``'s outputs (checkpoint, resume state, logs): a
    second training of the same experiment is refused at once, naming the holder."""

    def refuse(holder: str) -> ExperimentBusy:
        return ExperimentBusy(
            f"another training ({holder}) is writing experiment {cfg.exp_name!r} in "
            f"{cfg.ckpt_dir}: wait for it to end or stop it, or pass another --exp_name or "
            "--ckpt_dir (two runs of one experiment would overwrite each other's checkpoint "
            "and logs)"
        )

    path = cfg.ckpt_dir / f".{cfg.exp_name}.train.lock"
    return FolderLock(path, refuse, "a second training of this experiment")


def _train(cfg: TrainConfig, saved: _Saved) -> TrainResult:
    """The body of :func:`train`; ``saved`` records what is on disk for its messages."""
    device = resolve_device(cfg.device)
    ckpt_path, state_file = _output_paths(cfg)
    with experiment_lock(cfg):
        return _train_locked(cfg, saved, device, ckpt_path, state_file)


def _train_locked(
    cfg: TrainConfig, saved: _Saved, device: torch.device, ckpt_path: Path, state_file: Path
) -> TrainResult:
    """:func:`_train` once the experiment is this run's."""
    resume = _read_resume(cfg, ckpt_path)
    seed_everything(cfg.seed)
    data = prepare_data(cfg)
    run = RunState(cfg, data.bank, device)
    if resume is not None and resume["epoch"] >= run.max_epoch:
        raise ResumeError(
            f"--resume: {cfg.resume} has trained {resume['epoch']} epochs already, the whole "
            f"budget ({run.max_epoch} epochs): nothing is left to train (the finished model is "
            f"{ckpt_path})"
        )
    batches = Batches(data.bank, device, cfg.feature_noise, cfg.train_len, cfg.video_noise)
    run.list_sha256 = list_fingerprint(data.train_rows + data.val_rows)
    if resume is not None:
        check_same_list(Path(cfg.resume), resume, run.list_sha256, cfg.train_list)
        run.restore(resume)
        label = f"at step {run.global_step}"
        saved.keep(Path(cfg.resume), label, resume["model_state_dict"])

    cfg.ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_json(cfg.ckpt_dir / "config.json", {"train": cfg.as_record(), "model": run.mcfg.to_dict()})
    log = RunLogger(cfg.ckpt_dir, cfg, resume_step=run.global_step if resume is not None else None)
    steps = StepLosses(log, cfg.log_every)
    _announce(cfg, data, run, resume is not None, state_file)
    test = (data.test_set, data.gt, data.test_rows)
    selector = Selector(cfg, run.model, device, log, data.val_bank, test)
    if resume is not None:
        selector.restore(resume)
    try:
        EpochLoop(run, batches, selector, steps, saved, state_file).run_epochs()
    finally:
        log.close()
    return _finish(run, selector, data, ckpt_path, saved)


RUN_FILES = ("config.json", "train_log.csv", "eval_log.csv", "test_metrics.json")
"""Files every run writes into its ``--ckpt_dir`` besides ``<exp_name>*.pth``."""


def _output_paths(cfg: TrainConfig) -> tuple[Path, Path]:
    """``(checkpoint, resume state)`` of the run, once its outputs are known to be writable,
    inside ``--ckpt_dir`` and apart from its inputs."""
    check_name(cfg.exp_name, "--exp_name", reserve=len("_last_good.pth"))
    check_output_dir(cfg.ckpt_dir, "--ckpt_dir")
    ckpt_path = cfg.ckpt_dir / f"{cfg.exp_name}.pth"
    state_file = state_path(cfg.ckpt_dir, cfg.exp_name)
    for out in (ckpt_path, state_file, cfg.ckpt_dir / "test_metrics.json"):
        if out.is_dir():
            raise OutputPathError(
                f"--ckpt_dir/--exp_name: {out} is a folder, but the run writes a file there; "
                "pass another --exp_name or move the folder"
            )
    run_outputs = [ckpt_path, *(cfg.ckpt_dir / n for n in RUN_FILES)]
    run_outputs += [cfg.ckpt_dir / f"{cfg.exp_name}{s}" for s in ("_best.pth", "_last_good.pth")]
    check_outputs(
        [("--ckpt_dir/--exp_name: output", p) for p in run_outputs]
        + ([] if cfg.resume is not None else [("--ckpt_dir/--exp_name: output", state_file)]),
        [("--train_list", cfg.train_list), ("--test_list", cfg.test_list),
         ("--gt_path", cfg.gt_path), ("--gt_path's sidecar", sidecar_path(cfg.gt_path)),
         ("--resume", cfg.resume)],
    )  # fmt: skip
    return ckpt_path, state_file


def _read_resume(cfg: TrainConfig, ckpt_path: Path) -> dict[str, Any] | None:
    """The state ``--resume`` names, checked against the settings; None without it."""
    if cfg.resume is None:
        return None
    resume = read_state(cfg.resume)
    check_same_settings(cfg.resume, resume["train"], cfg.as_record())
    if resume["epoch"] >= cfg.max_epoch and not cfg.min_steps:
        raise ResumeError(
            f"--resume: {cfg.resume} has trained {resume['epoch']} epochs already and "
            f"--max_epoch is {cfg.max_epoch}: nothing is left to train; pass a --max_epoch "
            f"above {resume['epoch']} to train on (the finished model is {ckpt_path})"
        )
    return resume


def _announce(
    cfg: TrainConfig, data: TrainData, run: RunState, resumed: bool, state_file: Path
) -> None:
    """The lines a run prints before its first epoch."""
    bank, mcfg = data.bank, run.mcfg
    _say(
        f"[train] {cfg.spec.name}: {len(data.train_rows)} train rows "
        f"({int(bank.labels.sum())} abnormal), {len(data.val_rows)} val rows, "
        f"{len(data.test_rows)} test videos; D={bank.dim}; "
        f"{num_parameters(run.model):,} parameters; fusion {mcfg.fusion}"
        f"{'' if mcfg.mask_padding else ' (padding not masked)'}; device {run.device}; "
        f"select={cfg.select}"
    )
    if resumed:
        _say(
            f"[train] resuming from {cfg.resume}: epoch {run.start_epoch + 1}, "
            f"step {run.global_step}"
        )
    elif state_file.is_file():
        _say(f"[train] note: {state_file} (an earlier run's state) will be overwritten")
    if cfg.select == "test":
        _say(
            "[train] model selection on the TEST set (reference protocol): the reported "
            "test metrics are optimistic and not comparable to a held-out evaluation"
        )


def _finish(
    run: RunState, selector: Selector, data: TrainData, ckpt_path: Path, saved: _Saved
) -> TrainResult:
    """Load the selected weights, write the checkpoint, then evaluate it on the test set."""
    cfg, model = run.cfg, run.model
    selection = selector.finish(run.max_epoch, run.global_step)
    train_secs = run.seconds()
    meta: dict[str, Any] = {
        "dataset": cfg.spec.name,
        "normal_label": cfg.spec.normal_label,
        "train": cfg.as_record(),
        "selection": selection,
        "train_seconds": train_secs,
    }
    # saved before the final evaluation: a failing evaluation never loses the trained model
    save_checkpoint(ckpt_path, model, **meta, test_metrics=None)
    saved.checkpoint = ckpt_path
    _say(f"[train] checkpoint {ckpt_path} ({train_secs:.1f} s of training)")
    test_metrics = None
    if data.test_set is not None and cfg.final_test:
        test_metrics = _final_test(run, data, ckpt_path, meta)
    data.bank.close()
    return TrainResult(
        ckpt_path,
        selection,
        test_metrics,
        cfg.ckpt_dir,
        run.history,
        train_secs,
        num_used_parameters(model),
    )


def _final_test(
    run: RunState, data: TrainData, ckpt_path: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """The full test metrics of the saved model, written to ``test_metrics.json`` and added
    to the checkpoint."""
    cfg, model = run.cfg, run.model
    assert data.test_set is not None
    try:
        pred = predict(model, data.test_set, run.device, amp=cfg.amp)
        test_metrics = compute_metrics(pred, data.gt, data.test_rows, cfg.spec)
    except Exception:
        _warn(
            f"[train] the final evaluation failed; the trained model is saved in "
            f"{ckpt_path}. Once the cause below is fixed, evaluate it with: python test.py "
            f"--ckpt_path {shlex.quote(str(ckpt_path))}"
        )
        raise
    test_metrics["selection"] = meta["selection"]["mode"]
    save_json(cfg.ckpt_dir / "test_metrics.json", test_metrics)
    _say(
        f"[test] {headline(test_metrics)}"
        + ("  (selected on the test set: optimistic)" if cfg.select == "test" else "")
    )
    save_checkpoint(
        ckpt_path,
        model,
        **meta,
        test_metrics={k: test_metrics[k] for k in ("auc", "ap", "ano_auc")},
    )
    return test_metrics
