"""The training loop: MIL top-k objective with video-level labels only.

Model selection (``select``):

* ``last`` (default): the model after the last epoch; the test set is never looked at during
  training.
* ``val``: a seeded, stratified fraction of the *training videos* (all crops of a video
  together) is held out and scored at video level; the best epoch by video AUC is kept.
* ``test``: the reference protocol: the test set is scored every ``eval_every`` steps, the
  best weights are kept and reloaded at the end of each epoch. Its numbers are optimistic;
  the output and the checkpoint say so.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from iefvad.checkpoint import save_checkpoint
from iefvad.csvlist import ListError, ListRow, read_list
from iefvad.data import BatchSampler, DeviceBank, TrainBank, build_bank
from iefvad.datasets import DatasetSpec
from iefvad.errors import UserInputError
from iefvad.evaluate import (
    TestSet,
    autocast,
    compute_metrics,
    headline,
    load_test_set,
    predict,
    video_results,
)
from iefvad.fileio import save_json
from iefvad.groundtruth import check_gt_length, load_gt, num_snippets
from iefvad.losses import ief_vad_loss, topk_video_scores
from iefvad.metrics import abnormal_only, auc_ap
from iefvad.model import IEFVAD, ModelConfig, kl_shift, num_parameters, num_used_parameters
from iefvad.recipes import plan_budget

SELECTIONS = ("last", "val", "test")
LOSS_NAMES = ("loss", "cls", "align", "kl")


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
    datasets have few steps per epoch; :mod:`iefvad.recipes`)."""
    milestone_fractions: tuple[float, ...] | None = None
    """When set, the lr milestones are these fractions of the (adapted) epoch budget and
    ``milestones`` is ignored."""
    feature_noise: float = 0.0
    """Training augmentation: add Gaussian noise of this many within-video feature stds (per
    stream) to every batch; 0 = off (docs/training.md)."""
    epoch_hook: Any = None
    """Optional ``hook(epoch, step, model)`` called after each epoch (studies, curves)."""

    def as_record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("epoch_hook", None)
        d["spec"] = self.spec.name
        d["normal_label"] = self.spec.normal_label
        return json.loads(json.dumps(d, default=str))


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
    """Parameters the model's fusion uses (:func:`iefvad.model.num_used_parameters`)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def split_validation(
    rows: Sequence[ListRow], spec: DatasetSpec, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Row indices (train, val): a stratified, seeded fraction of *videos* held out."""
    videos: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        videos.setdefault(f"{r.path.parent.name}/{r.stem}", []).append(i)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for normal in (True, False):
        keys = sorted(
            k for k, idx in videos.items() if spec.is_normal(rows[idx[0]].label) == normal
        )
        n = int(round(fraction * len(keys)))
        if fraction > 0 and len(keys) >= 2:
            n = max(1, min(n, len(keys) - 1))
        for k in rng.permutation(keys)[:n]:
            val.extend(videos[str(k)])
    held = set(val)
    return [i for i in range(len(rows)) if i not in held], sorted(val)


@torch.no_grad()
def score_videos(
    model: IEFVAD, bank: TrainBank, device: torch.device, amp: str, batch: int = 64
) -> np.ndarray:
    """Video-level scores (top-k mean of snippet probabilities) of each bank row."""
    model.eval()
    out = []
    for s in range(0, len(bank), batch):
        img = torch.from_numpy(np.asarray(bank.image[s : s + batch])).to(device)
        evt = torch.from_numpy(np.asarray(bank.event[s : s + batch])).to(device)
        lengths = torch.from_numpy(bank.lengths[s : s + batch]).to(device)
        with autocast(device, amp):
            o = model(img, evt, lengths)
        out.append(topk_video_scores(o.logits.float(), lengths).cpu().numpy())
    model.train()
    return np.concatenate(out)


def validation_metrics(model: IEFVAD, bank: TrainBank, device, amp: str) -> dict[str, float]:
    """Video AUC (crops averaged per video) and BCE on held-out training videos."""
    s = score_videos(model, bank, device, amp)
    keys = [f"{r.path.parent.name}/{r.stem}" for r in bank.rows]
    uniq = sorted(set(keys))
    pos = {k: i for i, k in enumerate(uniq)}
    idx = np.array([pos[k] for k in keys])
    vid_score = np.bincount(idx, weights=s, minlength=len(uniq)) / np.bincount(idx)
    vid_label = np.zeros(len(uniq))
    vid_label[idx] = bank.labels
    p = np.clip(vid_score, 1e-7, 1 - 1e-7)
    bce = float(-np.mean(vid_label * np.log(p) + (1 - vid_label) * np.log(1 - p)))
    auc = float(roc_auc_score(vid_label, vid_score)) if 0 < vid_label.sum() < len(uniq) else None
    return {"val_auc": auc, "val_bce": bce, "val_videos": len(uniq)}


class RunLogger:
    """Per-step losses and evaluations as CSV; optional TensorBoard / wandb mirrors."""

    def __init__(self, out_dir: Path, cfg: TrainConfig) -> None:
        self.out_dir = out_dir
        self.step_path = out_dir / "train_log.csv"
        self.eval_path = out_dir / "eval_log.csv"
        self._step_file = open(self.step_path, "w", newline="")
        self._step = csv.writer(self._step_file)
        self._step.writerow(["epoch", "step", "lr", "loss", "cls", "align", "kl", "seconds"])
        self._evals: list[dict[str, Any]] = []
        self.tb = self.wb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise SystemExit("--tensorboard needs `pip install tensorboard`") from e
            self.tb = SummaryWriter(str(out_dir / "tb"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError as e:
                raise SystemExit("--wandb needs `pip install wandb` (it is optional)") from e
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
        with open(self.eval_path, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
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
        self.sums += vals.sum(0)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{vals[-1][0]:.4f}", cls=f"{vals[-1][1]:.4f}")
        self.pending.clear()


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


def selection_metrics(pred, gt, rows: Sequence[ListRow], spec: DatasetSpec) -> dict:
    """Frame AUC/AP and abnormal-video AUC of one in-training test pass (what ``--select
    test`` compares); the per-class breakdown is left to the final evaluation."""
    scores = pred.frame_scores()
    videos = video_results(rows, [s.size for s in pred.scores], spec)
    return {**auc_ap(gt.frames, scores), **abnormal_only(videos, gt.frames, scores)}


def _say(msg: str) -> None:
    tqdm.write(msg)


def train(cfg: TrainConfig) -> TrainResult:
    """Train one model; write ``<ckpt_dir>/<exp_name>.pth``, logs and the final metrics."""
    if cfg.select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {cfg.select!r}")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    spec = cfg.spec
    event_dir = cfg.event_dir or spec.event_dir
    rows = read_list(cfg.train_list, cfg.data_root, event_dir, cfg.image_dir)
    check_labels(rows, spec, cfg.train_list)

    val_bank: TrainBank | None = None
    if cfg.select == "val":
        tr_idx, va_idx = split_validation(rows, spec, cfg.val_fraction, cfg.seed)
        if not va_idx:
            raise UserInputError("--select val holds out no video: raise --val_fraction")
        train_rows = [rows[i] for i in tr_idx]
        val_rows = [rows[i] for i in va_idx]
    else:
        train_rows, val_rows = rows, []

    # the test list and its ground truth are checked (headers only) before the long read
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
        train_rows, spec, dim, cfg.nan_policy, cfg.cache_dir, cfg.workers, progress=cfg.progress
    )
    if val_rows:
        val_bank = build_bank(
            val_rows, spec, bank.dim, cfg.nan_policy, None, cfg.workers, progress=cfg.progress
        )

    test_set: TestSet | None = None
    if test_rows:
        test_set = load_test_set(test_rows, bank.dim, cfg.nan_policy, cfg.workers, cfg.progress)

    mcfg = ModelConfig.from_dict({**cfg.model, "dim": bank.dim})
    model = IEFVAD(mcfg).to(device)
    step_model = torch.compile(model) if cfg.compile else model
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
    dev_bank = DeviceBank(bank, device)
    shift = kl_shift(mcfg)
    noise_scale = feature_noise_scale(bank, cfg.feature_noise)

    cfg.ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.ckpt_dir / f"{cfg.exp_name}.pth"
    save_json(cfg.ckpt_dir / "config.json", {"train": cfg.as_record(), "model": mcfg.to_dict()})
    log = RunLogger(cfg.ckpt_dir, cfg)
    steps = StepLosses(log, cfg.log_every)
    _say(
        f"[train] {spec.name}: {len(train_rows)} train rows ({int(bank.labels.sum())} abnormal)"
        f", {len(val_rows)} val rows, {len(test_rows)} test videos; D={bank.dim}; "
        f"{num_parameters(model):,} parameters; fusion {mcfg.fusion}"
        f"{'' if mcfg.mask_padding else ' (padding not masked)'}; device {device}; "
        f"select={cfg.select}"
    )
    if cfg.select == "test":
        _say(
            "[train] model selection on the TEST set (reference protocol): the reported "
            "test metrics are optimistic and not comparable to a held-out evaluation"
        )

    eval_every = cfg.eval_every
    best: dict[str, Any] = {"value": None}
    best_state: dict[str, torch.Tensor] | None = None

    def evaluate_now(epoch: int, step: int) -> None:
        nonlocal best_state
        if cfg.select == "val" and val_bank is not None:
            vals = validation_metrics(model, val_bank, device, cfg.amp)
            key = (vals["val_auc"] if vals["val_auc"] is not None else 0.0, -vals["val_bce"])
        else:
            assert test_set is not None
            # features already in memory; only the headline metrics (no per-class pass)
            pred = predict(model, test_set, device, amp=cfg.amp)
            m = selection_metrics(pred, gt, test_rows, spec)
            vals = {k: m[k] for k in ("auc", "ap", "ano_auc")}
            key = (m[spec.headline] or 0.0,)
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

    steps_per_epoch = len(sampler)
    if cfg.select == "test" and eval_every == 0:
        eval_every = max(1, 1280 // (cfg.batch_size * (2 if spec.paired else 1)))
    global_step = 0
    t0 = time.perf_counter()
    history = []
    try:
        for epoch in range(max_epoch):
            model.train()
            bar = tqdm(
                sampler.epoch(),
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{max_epoch}",
                disable=not cfg.progress,
                unit="step",
                leave=False,
            )
            steps.start_epoch(epoch + 1, bar)
            for idx in bar:
                img, evt, lengths, labels = dev_bank.gather(idx)
                if cfg.feature_noise > 0:  # fresh noise each step: no exact row to memorise
                    img = img + noise_scale[0] * torch.randn_like(img)
                    evt = evt + noise_scale[1] * torch.randn_like(evt)
                with autocast(device, cfg.amp):
                    out = step_model(img, evt, lengths)
                parts = ief_vad_loss(
                    out, labels, lengths, cfg.lam, shift, mcfg.mask_padding, mcfg.modalities
                )
                opt.zero_grad(set_to_none=True)
                scaler.scale(parts.total).backward()
                scaler.step(opt)
                scaler.update()
                global_step += 1
                steps.add(
                    global_step,
                    opt.param_groups[0]["lr"],
                    time.perf_counter() - t0,
                    torch.stack(parts).detach(),
                )
                if cfg.select != "last" and eval_every and global_step % eval_every == 0:
                    steps.flush()
                    evaluate_now(epoch + 1, global_step)
            steps.flush()
            sched.step()
            mean = steps.sums / max(1, steps_per_epoch)
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": mean[0],
                    "cls": mean[1],
                    "align": mean[2],
                    "kl": mean[3],
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
    train_secs = time.perf_counter() - t0

    test_metrics = None
    if test_set is not None and cfg.final_test:
        pred = predict(model, test_set, device, amp=cfg.amp)
        test_metrics = compute_metrics(pred, gt, test_rows, spec)
        test_metrics["selection"] = selection["mode"]
        save_json(cfg.ckpt_dir / "test_metrics.json", test_metrics)
        _say(
            f"[test] {headline(test_metrics)}"
            + ("  (selected on the test set: optimistic)" if cfg.select == "test" else "")
        )
    save_checkpoint(
        ckpt_path,
        model,
        dataset=spec.name,
        normal_label=spec.normal_label,
        train=cfg.as_record(),
        selection=selection,
        train_seconds=train_secs,
        test_metrics={k: test_metrics[k] for k in ("auc", "ap", "ano_auc")}
        if test_metrics
        else None,
    )
    _say(f"[train] checkpoint {ckpt_path} ({train_secs:.1f} s of training)")
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
