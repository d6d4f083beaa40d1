"""Model selection (``--select``): which weights of a run become its checkpoint.

* ``last``: the weights after the last epoch; nothing is evaluated during training.
* ``val``: :func:`split_validation` holds out a seeded, stratified fraction of the training
  videos; :func:`validation_metrics` scores them at video level and the best epoch by video
  AUC (then the lowest BCE) is kept.
* ``test``: the reference protocol; the test set is scored every ``eval_every`` steps
  (:func:`selection_metrics`), the best weights are also written to ``<exp_name>_best.pth`` and
  reloaded at the end of each epoch. Its numbers are optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from iefvad.data.bank import TrainBank
from iefvad.data.csv_lists import ListRow
from iefvad.datasets.specs import DatasetSpec
from iefvad.engine.evaluate import autocast, video_results
from iefvad.engine.metrics import abnormal_only, auc_ap
from iefvad.models.losses import TOPK_DIV, topk_video_scores
from iefvad.models.model import IEFVAD


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
