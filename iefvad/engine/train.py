"""The training loop: MIL top-k objective with video-level labels only.

Model selection (``select``):

* ``last`` (default): the model after the last epoch; the test set is never looked at during
  training.
* ``val``: a seeded, stratified fraction of the *training videos* (all crops of a video
  together) is held out and scored at video level; the best epoch by video AUC is kept.
* ``test``: the reference protocol: the test set is scored every ``eval_every`` steps, the
  best weights are kept and reloaded at the end of each epoch. Its numbers are optimistic;
  the output and the checkpoint say so.

Every epoch leaves a resumable state next to the checkpoint (:mod:`iefvad.engine.resume`); Ctrl-C
saves one and exits with status 130; a NaN/Inf loss stops the run and keeps the last good
weights; the checkpoint is written before the final test evaluation.
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
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from iefvad.data.bank import BatchSampler, DeviceBank, TrainBank, build_bank
from iefvad.data.csv_lists import ListError, ListRow, read_list
from iefvad.data.groundtruth import check_gt_length, load_gt, num_snippets
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
    check_same_settings,
    plain,
    read_state,
    resume_command,
    rng_states,
    save_state,
    set_rng_states,
    state_path,
)
from iefvad.engine.runlog import LOSS_NAMES, Diverged, RunLogger, StepLosses
from iefvad.engine.selection import (
    score_videos,
    selection_metrics,
    split_validation,
    validation_metrics,
)
from iefvad.errors import UserInputError
from iefvad.fileio import save_json
from iefvad.models.checkpoint import save_checkpoint
from iefvad.models.losses import ief_vad_loss
from iefvad.models.model import IEFVAD, ModelConfig, kl_shift, num_parameters, num_used_parameters

__all__ = [
    "LOSS_NAMES",
    "SELECTIONS",
    "ConfigError",
    "DeviceError",
    "Diverged",
    "RunLogger",
    "StepLosses",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_labels",
    "feature_noise_scale",
    "resolve_device",
    "score_videos",
    "seed_everything",
    "selection_metrics",
    "split_validation",
    "train",
    "validate_config",
    "validation_metrics",
    "warn_duplicates",
]


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


class TrainingDiverged(UserInputError):
    """Training stopped because the loss became NaN/Inf (usually ``--lr`` too high)."""


class TrainingInterrupted(SystemExit):
    """Ctrl-C: the run stopped (exit status 130); ``state`` resumes it with ``command``."""

    def __init__(self, state: Path | None, command: str | None) -> None:
        super().__init__(130)
        self.state, self.command = state, command


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


def _say(msg: str) -> None:
    tqdm.write(msg)


def _warn(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


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
        shown = "; ".join(f"line {a} repeats line {b} ({p.name})" for a, b, p in dups[:5])
        more = f" and {len(dups) - 5} more" if len(dups) > 5 else ""
        warnings.warn(
            f"list {path}: {len(dups)} row(s) repeat an earlier row's features ({shown}{more}). "
            "They are kept and weigh twice in training; delete them from the list unless that "
            "is intended",
            UserWarning,
            stacklevel=2,
        )


def _nonfinite_weights(model: IEFVAD) -> list[str]:
    """Names of parameters holding NaN/Inf (one transfer from the device)."""
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    ok = torch.stack([torch.isfinite(p).all() for _, p in named]).cpu()
    return [n for (n, _), good in zip(named, ok.tolist()) if not good]


@dataclass
class _Saved:
    """What a run has on disk, for the messages of an interrupted or failed run."""

    state: Path | None = None
    """A consistent resume state written (or resumed from) by this run."""
    state_label: str = ""
    checkpoint: Path | None = None
    """The final checkpoint, once written."""


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


def _train(cfg: TrainConfig, saved: _Saved) -> TrainResult:
    """The body of :func:`train`; ``saved`` records what is on disk for its messages."""
    device = resolve_device(cfg.device)
    spec = cfg.spec
    check_output_dir(cfg.ckpt_dir, "--ckpt_dir")
    ckpt_path = cfg.ckpt_dir / f"{cfg.exp_name}.pth"
    state_file = state_path(cfg.ckpt_dir, cfg.exp_name)
    for out in (ckpt_path, state_file, cfg.ckpt_dir / "test_metrics.json"):
        if out.is_dir():
            raise OutputPathError(
                f"--ckpt_dir/--exp_name: {out} is a folder, but the run writes a file there; "
                "pass another --exp_name or move the folder"
            )
    resume: dict[str, Any] | None = None
    if cfg.resume is not None:
        resume = read_state(cfg.resume)
        check_same_settings(cfg.resume, resume["train"], cfg.as_record())
        if resume["epoch"] >= cfg.max_epoch and not cfg.min_steps:
            raise ResumeError(
                f"--resume: {cfg.resume} has trained {resume['epoch']} epochs already and "
                f"--max_epoch is {cfg.max_epoch}: nothing is left to train; pass a --max_epoch "
                f"above {resume['epoch']} to train on (the finished model is {ckpt_path})"
            )
    seed_everything(cfg.seed)
    event_dir = cfg.event_dir or spec.event_dir
    rows = read_list(cfg.train_list, cfg.data_root, event_dir, cfg.image_dir)
    check_labels(rows, spec, cfg.train_list)
    warn_duplicates(rows, cfg.train_list)

    val_bank: TrainBank | None = None
    if cfg.select == "val":
        tr_idx, va_idx = split_validation(rows, spec, cfg.val_fraction, cfg.seed)
        if not va_idx:
            raise UserInputError("--select val holds out no video: raise --val_fraction")
        train_rows = [rows[i] for i in tr_idx]
        val_rows = [rows[i] for i in va_idx]
    else:
        train_rows, val_rows = rows, []

    # the test list and its ground truth (values and length, from the file headers) are
    # checked before the long read and the first epoch
    test_rows: list[ListRow] = []
    gt = None
    need_test = cfg.select == "test" or cfg.final_test
    if need_test and cfg.test_list is not None and Path(cfg.test_list).is_file():
        test_rows = read_list(cfg.test_list, cfg.data_root, event_dir, cfg.image_dir)
        check_labels(test_rows, spec, cfg.test_list)
        if cfg.gt_path is None:
            raise UserInputError("a test list needs --gt_path")
        gt = load_gt(cfg.gt_path)
        check_gt_length(gt, [r.stem for r in test_rows], [num_snippets(r.path) for r in test_rows])
    elif cfg.select == "test":
        raise UserInputError(f"--select test needs a test list; {cfg.test_list} does not exist")
    elif cfg.final_test:
        _say(f"[train] no test list at {cfg.test_list}: the final evaluation is skipped")

    dim = cfg.model.get("dim")
    bank = build_bank(
        train_rows,
        spec,
        dim,
        cfg.nan_policy,
        cfg.cache_dir,
        cfg.workers,
        n=cfg.train_len,
        progress=cfg.progress,
    )
    if val_rows:
        val_bank = build_bank(
            val_rows,
            spec,
            bank.dim,
            cfg.nan_policy,
            None,
            cfg.workers,
            n=cfg.train_len,
            progress=cfg.progress,
        )

    test_set: TestSet | None = None
    if test_rows:
        test_set = load_test_set(test_rows, bank.dim, cfg.nan_policy, cfg.workers, cfg.progress)

    mcfg = ModelConfig.from_dict({**cfg.model, "dim": bank.dim})
    model = IEFVAD(mcfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    sampler = BatchSampler(bank.labels, cfg.batch_size, spec.paired, cfg.seed)
    max_epoch, milestones = plan_budget(
        len(sampler), cfg.max_epoch, cfg.milestones, cfg.min_steps, cfg.milestone_fractions
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), cfg.gamma)
    if (max_epoch, milestones) != (cfg.max_epoch, tuple(cfg.milestones)):
        _say(
            f"[train] budget: {max_epoch} epochs x {len(sampler)} steps (min_steps "
            f"{cfg.min_steps}); lr milestones at epochs {list(milestones)}"
        )
    if resume is not None and resume["epoch"] >= max_epoch:
        raise ResumeError(
            f"--resume: {cfg.resume} has trained {resume['epoch']} epochs already, the whole "
            f"budget ({max_epoch} epochs): nothing is left to train (the finished model is "
            f"{ckpt_path})"
        )
    dev_bank = DeviceBank(bank, device)
    shift = kl_shift(mcfg)
    noise_scale = feature_noise_scale(bank, cfg.feature_noise)
    recipe = make_step(cfg.uncertainty, mcfg.modalities, cfg.seed)  # None: the plain step

    eval_every = cfg.eval_every
    best: dict[str, Any] = {"value": None}
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, start_step, global_step, secs_before = 0, 0, 0, 0.0
    history: list[dict[str, float]] = []
    last_good: tuple[str, dict[str, torch.Tensor]] | None = None
    if resume is not None:
        if resume["model_config"] != mcfg.to_dict():
            diff = [
                f"{k}: state {resume['model_config'].get(k)!r}, now {v!r}"
                for k, v in mcfg.to_dict().items()
                if resume["model_config"].get(k) != v
            ]
            raise ResumeError(
                f"--resume: {cfg.resume} holds a model of another shape ({'; '.join(diff)}); "
                "resume with the original features and model flags"
            )
        model.load_state_dict(resume["model_state_dict"])
        opt.load_state_dict(resume["optimizer_state_dict"])
        sched.load_state_dict(resume["scheduler_state_dict"])
        if cfg.amp == "fp16" and resume["scaler_state_dict"]:
            scaler.load_state_dict(resume["scaler_state_dict"])
        sampler.rng.bit_generator.state = resume["sampler_rng"]
        set_rng_states(resume["rng"])
        if recipe is not None:
            recipe.set_rng_state(resume.get("recipe_rng") or {})
        best = dict(resume["best"])
        best_state = resume["best_state_dict"]
        if best_state is not None:
            best_state = {k: v.to(device) for k, v in best_state.items()}
        history = list(resume["history"])
        start_epoch, start_step = resume["epoch"], resume["step_in_epoch"]
        global_step, secs_before = resume["global_step"], resume["train_seconds"]
        saved.state = Path(cfg.resume)
        saved.state_label = f"at step {global_step}"
        last_good = (f"at step {global_step}", resume["model_state_dict"])
    step_model = torch.compile(model) if cfg.compile else model

    cfg.ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_json(cfg.ckpt_dir / "config.json", {"train": cfg.as_record(), "model": mcfg.to_dict()})
    log = RunLogger(cfg.ckpt_dir, cfg, resume_step=global_step if resume is not None else None)
    steps = StepLosses(log, cfg.log_every)
    _say(
        f"[train] {spec.name}: {len(train_rows)} train rows ({int(bank.labels.sum())} abnormal)"
        f", {len(val_rows)} val rows, {len(test_rows)} test videos; D={bank.dim}; "
        f"{num_parameters(model):,} parameters; fusion {mcfg.fusion}"
        f"{'' if mcfg.mask_padding else ' (padding not masked)'}; device {device}; "
        f"select={cfg.select}"
    )
    if resume is not None:
        _say(f"[train] resuming from {cfg.resume}: epoch {start_epoch + 1}, step {global_step}")
    elif state_file.is_file():
        _say(f"[train] note: {state_file} (an earlier run's state) will be overwritten")
    if cfg.select == "test":
        _say(
            "[train] model selection on the TEST set (reference protocol): the reported "
            "test metrics are optimistic and not comparable to a held-out evaluation"
        )

    def check_weights(epoch: int, step: int) -> None:
        bad = _nonfinite_weights(model)
        if bad:
            raise Diverged(epoch, step, {"non-finite weights": float("nan")})

    def evaluate_now(epoch: int, step: int) -> None:
        nonlocal best_state
        check_weights(epoch, step)
        if cfg.select == "val" and val_bank is not None:
            vals = validation_metrics(model, val_bank, device, cfg.amp, cfg.topk_div)
            key = (vals["val_auc"] if vals["val_auc"] is not None else 0.0, -vals["val_bce"])
        else:
            assert test_set is not None
            # features already in memory; only the headline metrics (no per-class pass)
            pred = predict(model, test_set, device, amp=cfg.amp)
            m = selection_metrics(pred, gt, test_rows, spec)
            vals = {k: m[k] for k in ("auc", "ap", "ano_auc")}
            key = (m[spec.headline] or 0.0,)
        vals, key = plain(vals), plain(key)
        log.evaluation(epoch, step, vals)
        if best["value"] is None or key > best["value"]:
            best.update(value=key, epoch=epoch, step=step, metrics=vals)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if cfg.select == "test":  # the reference's early checkpoint, wrapped layout
                save_checkpoint(
                    cfg.ckpt_dir / f"{cfg.exp_name}_best.pth",
                    model,
                    epoch=epoch,
                    step=step,
                    selection={"mode": "test", **vals},
                )

    def snapshot(epoch: int, step_in_epoch: int, sampler_rng: dict[str, Any]) -> dict[str, Any]:
        """The resumable state at ``step_in_epoch`` steps into epoch index ``epoch``."""
        return {
            "train": cfg.as_record(),
            "model_config": mcfg.to_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "sampler_rng": sampler_rng,
            "rng": rng_states(),
            "recipe_rng": recipe.rng_state() if recipe is not None else {},
            "model_state_dict": {
                k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            },
            "optimizer_state_dict": opt.state_dict(),
            "scheduler_state_dict": sched.state_dict(),
            "scaler_state_dict": scaler.state_dict(),
            "best": plain(best),
            "best_state_dict": None
            if best_state is None
            else {k: v.detach().cpu() for k, v in best_state.items()},
            "history": plain(history),
            "loss_sums": steps.sums.tolist(),
            "train_seconds": secs_before + time.perf_counter() - t0,
        }

    def keep(state: dict[str, Any], label: str) -> None:
        nonlocal last_good
        save_state(state_file, state)
        saved.state, saved.state_label = state_file, label
        last_good = (label, state["model_state_dict"])

    steps_per_epoch = len(sampler)
    if cfg.select == "test" and eval_every == 0:
        eval_every = max(1, 1280 // (cfg.batch_size * (2 if spec.paired else 1)))
    t0 = time.perf_counter()
    pos: dict[str, Any] = {"epoch": start_epoch, "step": start_step, "rng": None}
    try:
        with DeferredInterrupt() as stop:
            for epoch in range(start_epoch, max_epoch):
                model.train()
                skip = start_step if epoch == start_epoch else 0
                pos.update(epoch=epoch, step=skip, rng=sampler.rng.bit_generator.state)
                bar = tqdm(
                    itertools.islice(sampler.epoch(), skip, None),
                    total=steps_per_epoch,
                    initial=skip,
                    desc=f"epoch {epoch + 1}/{max_epoch}",
                    disable=not cfg.progress,
                    unit="step",
                    leave=False,
                )
                steps.start_epoch(epoch + 1, bar)
                if skip:
                    steps.sums = np.asarray(resume["loss_sums"], dtype=np.float64)
                for idx in bar:
                    img, evt, lengths, labels = dev_bank.gather(idx)
                    if cfg.feature_noise > 0:  # fresh noise each step: no exact row to memorise
                        img = img + noise_scale[0] * torch.randn_like(img)
                        evt = evt + noise_scale[1] * torch.randn_like(evt)
                    with autocast(device, cfg.amp):
                        if recipe is None:
                            out = step_model(img, evt, lengths)
                        else:
                            out, extra = recipe(step_model, img, evt, lengths)
                    parts = ief_vad_loss(
                        out,
                        labels,
                        lengths,
                        cfg.lam,
                        shift,
                        mcfg.mask_padding,
                        mcfg.modalities,
                        cfg.topk_div,
                    )
                    if recipe is not None:  # the reliability term counts in the logged loss
                        parts = parts._replace(total=parts.total + extra)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(parts.total).backward()
                    scaler.step(opt)
                    scaler.update()
                    global_step += 1
                    pos["step"] += 1
                    steps.add(
                        global_step,
                        opt.param_groups[0]["lr"],
                        secs_before + time.perf_counter() - t0,
                        torch.stack(parts).detach(),
                    )
                    if cfg.select != "last" and eval_every and global_step % eval_every == 0:
                        steps.flush()
                        evaluate_now(epoch + 1, global_step)
                    if stop.requested:
                        raise StopRequested
                steps.flush()
                check_weights(epoch + 1, 0)
                sched.step()
                mean = steps.sums / max(1, steps_per_epoch)
                history.append(
                    {
                        "epoch": epoch + 1,
                        "loss": float(mean[0]),
                        "cls": float(mean[1]),
                        "align": float(mean[2]),
                        "kl": float(mean[3]),
                    }
                )
                msg = f"[train] epoch {epoch + 1}: loss {mean[0]:.4f} (cls {mean[1]:.4f})"
                if cfg.select != "last" and not eval_every:
                    evaluate_now(epoch + 1, global_step)
                if cfg.select != "last" and best["value"] is not None:
                    msg += f"; best {best['metrics']} at step {best['step']}"
                if cfg.epoch_lines:
                    _say(msg)
                if cfg.epoch_hook is not None:
                    cfg.epoch_hook(epoch + 1, global_step, model)
                if cfg.select == "test" and best_state is not None:
                    model.load_state_dict(best_state)  # reference: reload the best each epoch
                pos.update(epoch=epoch + 1, step=0, rng=sampler.rng.bit_generator.state)
                keep(snapshot(epoch + 1, 0, pos["rng"]), f"after epoch {epoch + 1}")
                if stop.requested:
                    raise StopRequested
    except StopRequested:
        try:
            steps.flush()
            check_weights(pos["epoch"] + 1, global_step)
        except Diverged as d:
            raise _diverged(cfg, model, d, last_good) from None
        if pos["step"]:
            keep(
                snapshot(pos["epoch"], pos["step"], pos["rng"]),
                f"at epoch {pos['epoch'] + 1}, step {global_step}",
            )
        cmd = resume_command(state_file)
        _warn(
            f"[train] stopped by Ctrl-C {saved.state_label}; the state is saved in "
            f"{state_file}. Resume with:\n  {cmd}"
        )
        raise TrainingInterrupted(state_file, cmd) from None
    except Diverged as d:
        raise _diverged(cfg, model, d, last_good) from None
    finally:
        log.close()

    if cfg.select != "last" and best_state is not None:
        model.load_state_dict(best_state)
        selection = {
            "mode": cfg.select,
            "epoch": best["epoch"],
            "step": best["step"],
            **best["metrics"],
        }
    else:
        selection = {"mode": "last", "epoch": max_epoch, "step": global_step}
    if cfg.select == "test":
        selection["warning"] = "selected on the test set (reference protocol): optimistic"
    train_secs = secs_before + time.perf_counter() - t0
    meta: dict[str, Any] = {
        "dataset": spec.name,
        "normal_label": spec.normal_label,
        "train": cfg.as_record(),
        "selection": selection,
        "train_seconds": train_secs,
    }
    # saved before the final evaluation: a failing evaluation never loses the trained model
    save_checkpoint(ckpt_path, model, **meta, test_metrics=None)
    saved.checkpoint = ckpt_path
    _say(f"[train] checkpoint {ckpt_path} ({train_secs:.1f} s of training)")

    test_metrics = None
    if test_set is not None and cfg.final_test:
        try:
            pred = predict(model, test_set, device, amp=cfg.amp)
            test_metrics = compute_metrics(pred, gt, test_rows, spec)
        except Exception:
            _warn(
                f"[train] the final evaluation failed; the trained model is saved in "
                f"{ckpt_path}. Once the cause below is fixed, evaluate it with: python test.py "
                f"--ckpt_path {shlex.quote(str(ckpt_path))}"
            )
            raise
        test_metrics["selection"] = selection["mode"]
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
    bank.close()
    return TrainResult(
        ckpt_path,
        selection,
        test_metrics,
        cfg.ckpt_dir,
        history,
        train_secs,
        num_used_parameters(model),
    )


def _diverged(
    cfg: TrainConfig,
    model: IEFVAD,
    d: Diverged,
    last_good: tuple[str, dict[str, torch.Tensor]] | None,
) -> TrainingDiverged:
    """Save the last good weights (never the NaN ones) and say which flag to change."""
    where = f"epoch {d.epoch}" + (f", step {d.step}" if d.step else " (end of epoch)")
    values = ", ".join(f"{k} {v:.4g}" for k, v in d.values.items())
    amp = " or --amp none instead of fp16" if cfg.amp == "fp16" else ""
    msg = (
        f"training diverged at {where}: {values}. The learning rate --lr {cfg.lr:g} is most "
        f"likely too high: lower it (e.g. --lr {cfg.lr / 10:g}; the dataset presets use "
        f"2e-05 to 0.0001){amp}."
    )
    if last_good is None:
        return TrainingDiverged(
            msg + " No epoch had finished, so nothing was saved and no checkpoint was written."
        )
    label, weights = last_good
    model.load_state_dict(weights)
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
        f"{msg} The weights {label}, the last with a finite loss, are saved in {path} (the "
        f"resume state {state_path(cfg.ckpt_dir, cfg.exp_name)} holds the same point); no "
        "final checkpoint was written."
    )
