"""Model selection (``--select``): which weights of a run become its checkpoint. ``last`` keeps
the weights after the last epoch and evaluates nothing during training; ``val`` holds out a
seeded, stratified fraction of the training videos (:func:`split_validation`) and keeps the
epoch with the best video AUC on them, then the lowest BCE (:func:`validation_metrics`);
``test``, the reference protocol, scores the test set every ``eval_every`` steps
(:func:`selection_metrics`), writes the best weights to ``<exp_name>_best.pth`` and reloads them
at the end of each epoch, so its numbers are optimistic. :class:`Selector` does this for the
training loop and carries its part of the resume state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from iefvad.data.bank import TrainBank
from iefvad.data.csv_lists import ListRow
from iefvad.data.groundtruth import GroundTruth
from iefvad.datasets.specs import DatasetSpec
from iefvad.engine.config import TrainConfig
from iefvad.engine.evaluate import TestSet, autocast, predict, video_results
from iefvad.engine.metrics import abnormal_only, auc_ap
from iefvad.engine.resume import plain
from iefvad.engine.runlog import RunLogger
from iefvad.models.checkpoint import save_checkpoint
from iefvad.models.losses import TOPK_DIV, topk_video_scores
from iefvad.models.model import IEFVAD

TEST_WARNING = "selected on the test set (reference protocol): optimistic"


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
    model: IEFVAD,
    bank: TrainBank,
    device: torch.device,
    amp: str,
    batch: int = 64,
    topk_div: int = TOPK_DIV,
) -> np.ndarray:
    """Video-level scores (top-k mean of snippet probabilities, ``len // topk_div + 1``) of
    each bank row."""
    model.eval()
    out = []
    for s in range(0, len(bank), batch):
        img = torch.from_numpy(np.asarray(bank.image[s : s + batch])).to(device)
        evt = torch.from_numpy(np.asarray(bank.event[s : s + batch])).to(device)
        lengths = torch.from_numpy(bank.lengths[s : s + batch]).to(device)
        with autocast(device, amp):
            o = model(img, evt, lengths)
        out.append(topk_video_scores(o.logits.float(), lengths, topk_div).cpu().numpy())
    model.train()
    return np.concatenate(out)


def validation_metrics(
    model: IEFVAD, bank: TrainBank, device, amp: str, topk_div: int = TOPK_DIV
) -> dict[str, float]:
    """Video AUC (crops averaged per video) and BCE on held-out training videos."""
    s = score_videos(model, bank, device, amp, topk_div=topk_div)
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


def selection_metrics(pred, gt, rows: Sequence[ListRow], spec: DatasetSpec) -> dict:
    """Frame AUC/AP and abnormal-video AUC of one in-training test pass (what ``--select
    test`` compares); the per-class breakdown is left to the final evaluation."""
    scores = pred.frame_scores()
    videos = video_results(rows, [s.size for s in pred.scores], spec)
    return {**auc_ap(gt.frames, scores), **abnormal_only(videos, gt.frames, scores)}


class Selector:
    """The ``--select`` strategy of one run: when to evaluate, the best weights so far, the
    ``_best.pth`` of test mode and the ``selection`` record of the checkpoint.

    ``val_bank`` is the held-out bank of ``val`` mode; ``test_set``, ``gt`` and ``test_rows``
    are what ``test`` mode scores.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: IEFVAD,
        device: torch.device,
        log: RunLogger,
        val_bank: TrainBank | None = None,
        test: tuple[TestSet | None, GroundTruth | None, Sequence[ListRow]] = (None, None, ()),
    ) -> None:
        self.cfg, self.model, self.device, self.log = cfg, model, device, log
        self.val_bank = val_bank
        self.test_set, self.gt, self.test_rows = test
        self.active = cfg.select != "last"
        self.eval_every = cfg.eval_every
        """Steps between evaluations; 0: at the end of each epoch."""
        if cfg.select == "test" and self.eval_every == 0:  # the reference: every 1280 videos
            batch = cfg.batch_size * (2 if cfg.spec.paired else 1)
            self.eval_every = max(1, 1280 // batch)
        self.best: dict[str, Any] = {"value": None}
        """``value`` (the comparison key), ``epoch``, ``step`` and ``metrics`` of the best."""
        self.best_state: dict[str, torch.Tensor] | None = None

    def due_at_step(self, step: int) -> bool:
        """Whether to evaluate after global step ``step``."""
        return self.active and bool(self.eval_every) and step % self.eval_every == 0

    def due_at_epoch_end(self) -> bool:
        return self.active and not self.eval_every

    def evaluate(self, epoch: int, step: int) -> None:
        """Score the model now, log it, and keep its weights if they are the best so far."""
        cfg = self.cfg
        if cfg.select == "val" and self.val_bank is not None:
            vals = validation_metrics(self.model, self.val_bank, self.device, cfg.amp, cfg.topk_div)
            key = (vals["val_auc"] if vals["val_auc"] is not None else 0.0, -vals["val_bce"])
        else:
            assert self.test_set is not None
            # features already in memory; only the headline metrics (no per-class pass)
            pred = predict(self.model, self.test_set, self.device, amp=cfg.amp)
            m = selection_metrics(pred, self.gt, self.test_rows, cfg.spec)
            vals = {k: m[k] for k in ("auc", "ap", "ano_auc")}
            key = (m[cfg.spec.headline] or 0.0,)
        vals, key = plain(vals), plain(key)
        self.log.evaluation(epoch, step, vals)
        if self.best["value"] is None or key > self.best["value"]:
            self._keep_best(key, epoch, step, vals)

    def _keep_best(self, key: tuple, epoch: int, step: int, vals: dict[str, Any]) -> None:
        self.best.update(value=key, epoch=epoch, step=step, metrics=vals)
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.cfg.select == "test":  # the reference's early checkpoint, wrapped layout
            save_checkpoint(
                self.cfg.ckpt_dir / f"{self.cfg.exp_name}_best.pth",
                self.model,
                epoch=epoch,
                step=step,
                selection={"mode": "test", **vals},
            )

    def progress(self) -> str:
        """The best so far, for the epoch line (empty before the first evaluation)."""
        if not self.active or self.best["value"] is None:
            return ""
        return f"; best {self.best['metrics']} at step {self.best['step']}"

    def end_epoch(self) -> None:
        """Test mode reloads the best weights at the end of each epoch (the reference)."""
        if self.cfg.select == "test" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state(self) -> dict[str, Any]:
        """This object's part of a resume state (``best`` and ``best_state_dict``)."""
        return {
            "best": plain(self.best),
            "best_state_dict": None
            if self.best_state is None
            else {k: v.detach().cpu() for k, v in self.best_state.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from the part of a resume state that :meth:`state` wrote."""
        self.best = dict(state["best"])
        best_state = state["best_state_dict"]
        if best_state is not None:
            best_state = {k: v.to(self.device) for k, v in best_state.items()}
        self.best_state = best_state

    def finish(self, max_epoch: int, global_step: int) -> dict[str, Any]:
        """Load the selected weights into the model; the checkpoint's ``selection`` record."""
        if self.active and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            selection = {
                "mode": self.cfg.select,
                "epoch": self.best["epoch"],
                "step": self.best["step"],
                **self.best["metrics"],
            }
        else:
            selection = {"mode": "last", "epoch": max_epoch, "step": global_step}
        if self.cfg.select == "test":
            selection["warning"] = TEST_WARNING
        return selection
