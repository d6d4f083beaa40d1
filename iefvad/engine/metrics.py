"""Frame-level metrics: AUC / AP overall, per class, on abnormal videos, and mAP@IoU.

All values are fractions in [0, 1]; a metric that is undefined on its frames (one class only)
is ``None``, never a made-up number.

Two frame APs, because benchmarks differ: ``ap`` is scikit-learn's ``average_precision_score``
(the step sum over the precision-recall curve, as the IEF-VAD reference reports it);
``ap_trapz`` is the trapezoidal area under the same curve, ``auc(recall, precision)``, which is
XD-Violence's official evaluation (and that of RTFM, UR-DMU, PEL4VAD). :data:`BENCHMARK_AP`
says which one a dataset's published numbers use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from iefvad.datasets.specs import BENCHMARKS, get_spec

IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)

BENCHMARK_AP: dict[str, str] = {
    n: get_spec(n).frame_ap for n in BENCHMARKS if get_spec(n).frame_ap != "ap"
}
"""Dataset name -> the frame-AP key its official evaluation computes (default ``ap``); from
:attr:`iefvad.datasets.specs.DatasetSpec.frame_ap`."""


def ap_convention(dataset: str) -> str:
    """``ap_trapz`` for datasets whose benchmark takes the trapezoidal PR area, else ``ap``."""
    return BENCHMARK_AP.get(dataset, "ap")


def trapezoid_ap(gt: np.ndarray, scores: np.ndarray) -> float:
    """Trapezoidal area under the precision-recall curve (XD-Violence's evaluation)."""
    precision, recall, _ = precision_recall_curve(gt, scores)
    return float(auc(recall, precision))


def auc_ap(gt: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """Frame AUC, AP and trapezoidal AP; ``None`` where ``gt`` holds a single class."""
    gt = np.asarray(gt).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if gt.shape != scores.shape:
        raise ValueError(f"{gt.size} ground-truth frames but {scores.size} scores")
    if gt.size == 0 or gt.min() == gt.max():
        return {"auc": None, "ap": None, "ap_trapz": None}
    return {
        "auc": float(roc_auc_score(gt, scores)),
        "ap": float(average_precision_score(gt, scores)),
        "ap_trapz": trapezoid_ap(gt, scores),
    }


@dataclass
class VideoResult:
    """One test video's frame range in the concatenated arrays and its classes."""

    name: str
    start: int
    frames: int
    classes: list[str]
    normal: bool


def per_class(
    videos: Sequence[VideoResult], gt: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float | int | None]]:
    """AUC/AP over the frames of each class's videos (a multi-label video counts in each)."""
    by_class: dict[str, list[VideoResult]] = {}
    for v in videos:
        for c in v.classes:
            by_class.setdefault(c, []).append(v)
    out: dict[str, dict[str, float | int | None]] = {}
    for c in sorted(by_class):
        idx = np.concatenate([np.arange(v.start, v.start + v.frames) for v in by_class[c]])
        out[c] = {**auc_ap(gt[idx], scores[idx]), "videos": len(by_class[c]), "frames": idx.size}
    return out


def abnormal_only(
    videos: Sequence[VideoResult], gt: np.ndarray, scores: np.ndarray
) -> dict[str, float | None]:
    """AUC/AP restricted to the frames of abnormal videos (``ano_auc``, ``ano_ap``,
    ``ano_ap_trapz``)."""
    idx = [np.arange(v.start, v.start + v.frames) for v in videos if not v.normal]
    if not idx:
        return {"ano_auc": None, "ano_ap": None, "ano_ap_trapz": None}
    sel = np.concatenate(idx)
    m = auc_ap(gt[sel], scores[sel])
    return {f"ano_{k}": v for k, v in m.items()}


def segments_from_mask(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` runs of True in a 1-D bool array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def interval_iou(a: tuple[int, int], b: np.ndarray) -> np.ndarray:
    """IoU of interval ``a`` with each row ``[start, end)`` of ``b`` ``[N, 2]``."""
    inter = np.clip(np.minimum(a[1], b[:, 1]) - np.maximum(a[0], b[:, 0]), 0, None)
    union = (a[1] - a[0]) + (b[:, 1] - b[:, 0]) - inter
    return inter / np.maximum(union, 1e-9)


def proposals(
    scores: np.ndarray, thresholds: Sequence[float] = tuple(np.arange(0.1, 1.0, 0.1))
) -> list[tuple[int, int, float]]:
    """Candidate anomalous segments of one video: runs of ``scores >= t`` for several t,
    each scored by its mean score minus the mean of an equally long context around it."""
    out: dict[tuple[int, int], float] = {}
    n = scores.size
    for t in thresholds:
        for s, e in segments_from_mask(scores >= t):
            if (s, e) in out:
                continue
            w = e - s
            ctx = np.concatenate([scores[max(0, s - w // 4) : s], scores[e : min(n, e + w // 4)]])
            outer = float(ctx.mean()) if ctx.size else 0.0
            out[(s, e)] = float(scores[s:e].mean()) - 0.25 * outer
    return [(s, e, c) for (s, e), c in out.items()]


def average_precision_curve(tp: np.ndarray, conf: np.ndarray, num_gt: int) -> float:
    """Area under the interpolated precision-recall curve (VOC / ActivityNet style)."""
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-conf, kind="stable")
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def detection_map(
    video_scores: Sequence[np.ndarray],
    video_segments: Sequence[Sequence[tuple[int, int]]],
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> dict[str, float | None]:
    """Class-agnostic mAP@IoU of anomalous-segment detection.

    ``video_scores``: per test video, its frame scores; ``video_segments``: its annotated
    ``[start, end)`` frame spans (empty for normal videos). Proposals come from
    :func:`proposals`; each is matched greedily, by confidence, to the best unmatched
    annotated span of its own video with IoU >= threshold. Proposals in normal videos are
    false positives. Keys ``"0.1"`` ... and ``"avg"``.
    """
    props: list[tuple[int, int, int, float]] = []
    for v, s in enumerate(video_scores):
        props.extend((v, a, b, c) for a, b, c in proposals(np.asarray(s, dtype=np.float64)))
    num_gt = sum(len(g) for g in video_segments)
    gts = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in video_segments]
    conf = np.array([p[3] for p in props])
    order = np.argsort(-conf, kind="stable")
    out: dict[str, float | None] = {}
    for thr in iou_thresholds:
        used = [np.zeros(len(g), dtype=bool) for g in gts]
        tp = np.zeros(len(props))
        for j in order:
            v, a, b, _ = props[j]
            if not len(gts[v]):
                continue
            iou = interval_iou((a, b), gts[v])
            iou[used[v]] = -1.0
            k = int(np.argmax(iou))
            if iou[k] >= thr:
                used[v][k] = True
                tp[j] = 1.0
        ap = average_precision_curve(tp, conf, num_gt) if props else 0.0
        out[f"{thr:.1f}"] = None if np.isnan(ap) else ap
    vals = [v for v in out.values() if v is not None]
    out["avg"] = float(np.mean(vals)) if vals else None
    return out
