"""Resumable training state: everything a run needs to continue exactly where it stopped.

``<ckpt_dir>/<exp_name>.resume.pt`` is rewritten atomically after every epoch and when a run
is stopped with Ctrl-C. It holds the model, optimiser, scheduler and AMP-scaler states, the
sampler's and the global random states (torch, numpy, Python), the epoch and step counters,
the model-selection state and the loss history. Everything is a tensor or a plain Python value,
so it loads with ``torch.load(weights_only=True)``. Resuming with the same settings on the CPU
gives the same weights as a run that was never stopped.
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from iefvad.data.csv_lists import ListRow
from iefvad.data.features import CLIP_LEN
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write
from iefvad.models.checkpoint import RESUME_FORMAT, pickled_code
from iefvad.models.losses import TOPK_DIV
from iefvad.paths import path_problem, shown

FORMAT = RESUME_FORMAT
SUFFIX = ".resume.pt"

# TrainConfig fields that change what a run computes, with the flag that sets each. Outputs,
# progress, logging mirrors, workers, the device and --max_epoch may change on resume.
FLAGS = {
    "spec": "--dataset",
    "normal_label": "--normal_label",
    "train_list": "--train_list",
    "data_root": "--data_root",
    "event_dir": "--event_dir_name",
    "image_dir": "--image_dir_name",
    "nan_policy": "--nan_policy",
    "batch_size": "--batch_size",
    "lr": "--lr",
    "weight_decay": "--weight_decay",
    "milestones": "--milestones",
    "gamma": "--gamma",
    "lam": "--lam",
    "seed": "--seed",
    "select": "--select",
    "amp": "--amp",
    "feature_noise": "--feature_noise",
    "topk_div": "--topk_div",
    "train_len": "--train_len",
    "train_sample": "--train_sample",
    "video_noise": "--video_noise",
    "sparsity": "--sparsity",
}
PREDATING = {
    "feature_noise": 0.0,
    "topk_div": TOPK_DIV,
    "train_len": CLIP_LEN,
    "train_sample": "mean",
    "video_noise": 0.0,
    "sparsity": 0.0,
}
"""Settings added after states were first written, with the value a run that predates them
used: an older state is compared against these (resuming it with another value is refused)."""
MODEL_FLAGS = {"dim": "--embed_dim", "mask_padding": "--mask_padding / --no_mask_padding"}


class ResumeError(UserInputError):
    """A resume state is missing, unreadable or was made with other settings."""


def state_path(ckpt_dir: str | os.PathLike[str], exp_name: str) -> Path:
    """Where a run keeps its resumable state."""
    return Path(ckpt_dir) / f"{exp_name}{SUFFIX}"


def rng_states() -> dict[str, Any]:
    """The global random states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return out


def set_rng_states(s: dict[str, Any]) -> None:
    """Restore :func:`rng_states` (CUDA states only where the same devices exist)."""
    torch.set_rng_state(s["torch"])
    kind, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))
    if s["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(s["cuda"]):
        torch.cuda.set_rng_state_all(s["cuda"])


def plain(v: Any) -> Any:
    """``v`` with numpy scalars turned into Python numbers, in nested dicts, lists and tuples
    (what ``torch.load(weights_only=True)`` reads back)."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` atomically (a killed run leaves the previous state intact)."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state written by :func:`save_state`, with a clear error for anything else."""
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise ResumeError(
            f"--resume: {shown(path)} {problem}. A run keeps its state in "
            f"<ckpt_dir>/<exp_name>{SUFFIX}; pass the same --ckpt_dir and --exp_name as the "
            "run to resume, or the state's path after --resume"
        )
    if path.stat().st_size == 0:
        raise ResumeError(f"--resume: {path} is an empty file; start afresh without --resume")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every unreadable file gets the same message
        code = pickled_code(path)
        if code:
            raise ResumeError(
                f"--resume: {path} holds pickled Python code or objects "
                f"({', '.join(sorted(set(code))[:4])}), not a training state of this toolkit; "
                "unpickling them could run arbitrary code, so it was not loaded"
            ) from e
        raise ResumeError(
            f"--resume: {path} is truncated or not a torch file ({type(e).__name__}); start "
            "afresh without --resume"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ResumeError(
            f"--resume: {path} is not a training state of this toolkit (a checkpoint .pth "
            f"cannot be resumed); pass the {SUFFIX} file next to it"
        )
    return obj


def _shown(v: Any) -> str:
    return "(not given)" if v is None else repr(v)


def differing_flags(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``flag: state X, now Y`` for every setting of ``now`` (a ``TrainConfig.as_record()``)
    that differs from the state's record ``saved`` (a setting the state predates counts as its
    :data:`PREDATING` value)."""
    keys = dict(FLAGS)
    if now.get("select") == "val":
        keys["val_fraction"] = "--val_fraction"
    if now.get("select") != "last":
        keys["eval_every"] = "--eval_every"
    if now.get("select") == "test":
        keys.update(test_list="--test_list", gt_path="--gt_path")
    out = [
        f"{flag}: state {_shown(saved.get(k, PREDATING.get(k)))}, now {_shown(now.get(k))}"
        for k, flag in keys.items()
        if saved.get(k, PREDATING.get(k)) != now.get(k)
    ]
    sm, nm = saved.get("model", {}), now.get("model", {})
    for k in sorted(set(sm) | set(nm)):
        if sm.get(k) != nm.get(k):
            flag = MODEL_FLAGS.get(k, f"--{k}")
            out.append(f"{flag}: state {_shown(sm.get(k))}, now {_shown(nm.get(k))}")
    return out


def list_fingerprint(rows: Sequence[ListRow]) -> str:
    """sha256 of a training list's rows (feature files and labels, in order): a state is only
    resumed on the rows it was trained on."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.path}\t{r.label}\t{r.event_path or ''}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def check_same_list(path: Path, saved: dict[str, Any], now: str, train_list: Path) -> None:
    """Stop when the training list's rows changed since the state was saved; warn when the
    state predates list fingerprints (nothing to compare)."""
    before = saved.get("train_list_sha256")
    if before is None:
        warnings.warn(
            f"--resume: {path} was written before states recorded their training list, so it "
            f"cannot be checked that {train_list} still holds the same rows; resume only if "
            "the list is unchanged",
            UserWarning,
            stacklevel=2,
        )
    elif before != now:
        raise ResumeError(
            f"--resume: {path} was trained on other rows than {train_list} holds now (rows "
            f"sha256 {before[:12]}... in the state, {now[:12]}... in the list): the list "
            "changed since. Resume with the original list, or start afresh without --resume"
        )


def check_same_settings(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Stop when the resumed run's settings differ from those the state was trained with."""
    diff = differing_flags(saved, now)
    if diff:
        raise ResumeError(
            f"--resume: {path} was trained with other settings ({'; '.join(diff)}). Resume "
            "with the original run's flags (the stopped run printed its command), or start "
            "afresh without --resume"
        )


def strip_resume(argv: list[str]) -> list[str]:
    """``argv`` without any ``--resume [PATH]``."""
    out: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--resume":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            skip = nxt is not None and not nxt.startswith("-")
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return out


def resume_command(path: Path) -> str:
    """The command that continues this run from ``path``."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if script == "main.py":
        args = strip_resume(sys.argv[1:])
        return shlex.join(["python", sys.argv[0], *args, "--resume", str(path)])
    return f"python main.py <the same flags> --resume {shlex.quote(str(path))}"


class StopRequested(Exception):
    """Internal: Ctrl-C was pressed; the loop stops at the next step boundary."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class DeferredInterrupt:
    """Within ``with``: the first Ctrl-C (SIGINT) or SIGTERM (``kill``, SLURM preemption) only
    sets :attr:`requested`, so that the training loop can finish its step and save a
    consistent state; a second one raises ``KeyboardInterrupt`` at once. Only in the main
    thread, and only for signals that are not ignored; elsewhere they behave as usual."""

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self) -> None:
        self.requested = False
        self.by = ""
        """What stopped the run: ``Ctrl-C`` or ``SIGTERM``."""
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.by = self.SIGNALS.get(signum, f"signal {signum}")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.SIGTERM in self._old:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        tqdm.write(
            f"[train] {self.by}: stopping after this step to save a resumable state "
            "(press Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN:
                    self._old[sig] = old
                    signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
