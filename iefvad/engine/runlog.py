"""What a run records while it trains: the per-step losses and the evaluations.

:class:`RunLogger` writes ``train_log.csv`` (one row per step) and ``eval_log.csv`` (one row per
model-selection evaluation) in the run's folder, mirrored to TensorBoard or wandb on request;
a resumed run keeps the rows up to the step it resumes from. The kept rows replace a log
atomically and new rows are appended and flushed one by one: a run killed at any moment leaves
every row written so far. :class:`StepLosses` fetches the
loss values from the accelerator every few steps in one transfer, sums them per epoch and
raises :class:`Diverged` on the first NaN/Inf among them.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad.engine.config import TrainConfig
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write

LOSS_NAMES = ("loss", "cls", "align", "kl")


def _rows_up_to(path: Path, step: int | None) -> list[dict[str, Any]]:
    """Rows of a log CSV with ``step <= step`` (none when ``step`` is None)."""
    if step is None or not path.is_file():
        return []
    with open(path, newline="") as f:
        return [
            r
            for r in csv.DictReader(f)
            if (r.get("step") or "").isdigit() and int(r["step"]) <= step
        ]


class RunLogger:
    """Per-step losses and evaluations as CSV; optional TensorBoard / wandb mirrors."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, resume_step: int | None = None) -> None:
        """``resume_step``: continue the logs of a resumed run, keeping their rows up to this
        step (later rows belong to steps the resumed run redoes)."""
        self.out_dir = out_dir
        self.step_path = out_dir / "train_log.csv"
        self.eval_path = out_dir / "eval_log.csv"
        header = ["epoch", "step", "lr", "loss", "cls", "align", "kl", "seconds"]
        kept = _rows_up_to(self.step_path, resume_step)
        # the kept rows replace the old log atomically (a run killed now leaves the old log
        # or the new one, never an empty file); new rows are appended and flushed line by line
        with atomic_write(self.step_path, "w") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows([r.get(k, "") for k in header] for r in kept)
        self._step_file = open(self.step_path, "a", newline="", buffering=1, encoding="utf-8")
        self._step = csv.writer(self._step_file, lineterminator="\n")
        self._evals: list[dict[str, Any]] = _rows_up_to(self.eval_path, resume_step)
        self.tb = self.wb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise UserInputError(
                    "--tensorboard needs `pip install tensorboard` (it is optional)"
                ) from e
            self.tb = SummaryWriter(str(out_dir / "tb"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError as e:
                raise UserInputError("--wandb needs `pip install wandb` (it is optional)") from e
            self.wb = wandb.init(project="iefvad", name=cfg.exp_name, config=cfg.as_record())

    def step(self, epoch: int, step: int, lr: float, parts: dict[str, float], secs: float) -> None:
        self._step.writerow(
            [epoch, step, f"{lr:.3g}"]
            + [f"{parts[k]:.6f}" for k in ("loss", "cls", "align", "kl")]
            + [f"{secs:.3f}"]
        )
        if self.tb:
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, step)
        if self.wb:
            self.wb.log({f"train/{k}": v for k, v in parts.items()}, step=step)

    def evaluation(self, epoch: int, step: int, values: dict[str, Any]) -> None:
        flat = {k: v for k, v in values.items() if isinstance(v, (int, float)) or v is None}
        row = {"epoch": epoch, "step": step, **flat}
        self._evals.append(row)
        keys = list(dict.fromkeys(k for r in self._evals for k in r))
        with atomic_write(self.eval_path, "w") as f:  # a full disk keeps the earlier log
            w = csv.DictWriter(f, keys, lineterminator="\n")
            w.writeheader()
            w.writerows(self._evals)
        if self.tb:
            for k, v in flat.items():
                if v is not None:
                    self.tb.add_scalar(f"eval/{k}", v, step)
        if self.wb:
            self.wb.log({f"eval/{k}": v for k, v in flat.items() if v is not None}, step=step)

    def close(self) -> None:
        self._step_file.close()
        if self.tb:
            self.tb.close()
        if self.wb:
            self.wb.finish()


class Diverged(Exception):
    """Internal to training: a loss (:class:`StepLosses`) or, checked by the loop, a weight
    became NaN/Inf (``step`` 0: found at epoch end)."""

    def __init__(self, epoch: int, step: int, values: dict[str, float]) -> None:
        super().__init__(epoch, step, values)
        self.epoch, self.step, self.values = epoch, step, values


class StepLosses:
    """Loss values of recent steps, fetched from the accelerator every ``every`` steps in one
    transfer (fetching each step would make the host wait for the device every step)."""

    def __init__(self, log: RunLogger, every: int) -> None:
        self.log, self.every = log, max(1, every)
        self.pending: list[tuple[int, float, float, torch.Tensor]] = []
        self.epoch, self.bar, self.sums = 0, None, np.zeros(len(LOSS_NAMES))

    def start_epoch(self, epoch: int, bar) -> None:
        self.epoch, self.bar, self.sums = epoch, bar, np.zeros(len(LOSS_NAMES))

    def add(self, step: int, lr: float, secs: float, parts: torch.Tensor) -> None:
        self.pending.append((step, lr, secs, parts))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        vals = torch.stack([p[3] for p in self.pending]).float().cpu().numpy()
        for (step, lr, secs, _), v in zip(self.pending, vals):
            self.log.step(self.epoch, step, lr, dict(zip(LOSS_NAMES, v.tolist())), secs)
        bad = np.flatnonzero(~np.isfinite(vals).all(1))
        if bad.size:
            step = self.pending[bad[0]][0]
            self.pending.clear()
            raise Diverged(self.epoch, step, dict(zip(LOSS_NAMES, vals[bad[0]].tolist())))
        for v in vals.astype(np.float64):  # step by step: the same sums however grouped
            self.sums += v
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{vals[-1][0]:.4f}", cls=f"{vals[-1][1]:.4f}")
        self.pending.clear()
