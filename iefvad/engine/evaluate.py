"""Scoring a test list and computing its metrics (docs/reference.md section 7).

Each test video is split into ``ceil(T / 256)`` zero-padded chunks; all chunks of all videos
run through the model in large batches (chunks are independent, so this equals the reference's
video-by-video loop); the first ``T`` snippet probabilities are kept and repeated 16 times per
snippet to give frame scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from iefvad.data.csv_lists import ListRow
from iefvad.data.features import CLIP_LEN, chunk, num_chunks, read_pairs
from iefvad.data.groundtruth import GroundTruth, check_gt_length
from iefvad.datasets.specs import SNIPPET_FRAMES, DatasetSpec
from iefvad.engine.metrics import (
    VideoResult,
    abnormal_only,
    auc_ap,
    detection_map,
    per_class,
)
from iefvad.models.model import IEFVAD


@dataclass
class TestSet:
    """All chunks of a test list: ``image``/``event`` ``[C, 256, D]``; ``chunk_video`` ``[C]``
    maps chunks to videos; ``lengths`` ``[V]`` snippets per video."""

    rows: list[ListRow]
    image: torch.Tensor
    event: torch.Tensor
    chunk_video: np.ndarray
    chunk_lengths: torch.Tensor
    lengths: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.image.shape[-1])


def load_test_set(
    rows: Sequence[ListRow],
    dim: int | None = None,
    nan_policy: str = "error",
    workers: int = 8,
    progress: bool = True,
) -> TestSet:
    """Read every test row once and chunk it."""
    items = read_pairs(
        rows, dim, nan_policy, workers, desc="reading test features" if progress else None
    )
    lengths = np.array([v.image.shape[0] for v in items], dtype=np.int64)
    counts = np.array([num_chunks(int(t)) for t in lengths])
    image = torch.from_numpy(np.concatenate([chunk(v.image) for v in items]))
    event = torch.from_numpy(np.concatenate([chunk(v.event) for v in items]))
    chunk_video = np.repeat(np.arange(len(items)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(chunk_video)) - first[chunk_video]
    chunk_len = np.clip(lengths[chunk_video] - pos * CLIP_LEN, 0, CLIP_LEN)
    return TestSet(list(rows), image, event, chunk_video, torch.from_numpy(chunk_len), lengths)


@dataclass
class Predictions:
    """Per test video: snippet probabilities and mean image/event fusion weights, ``[T]``."""

    scores: list[np.ndarray]
    w_image: list[np.ndarray]
    w_event: list[np.ndarray]

    def frame_scores(self) -> np.ndarray:
        """Snippet scores repeated 16x and concatenated in list order."""
        return np.concatenate([np.repeat(s, SNIPPET_FRAMES) for s in self.scores])


def autocast(device: torch.device, amp: str | None):
    """Mixed-precision context for ``amp`` in {None, 'none', 'bf16', 'fp16'}."""
    if not amp or amp == "none":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def predict(
    model: IEFVAD,
    test: TestSet,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    amp: str | None = None,
    transform=None,
) -> Predictions:
    """Run the model over every chunk. ``transform(image, event, chunk_index)`` may alter the
    inputs of each batch (used to degrade one modality)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    c = test.image.shape[0]
    probs = torch.zeros(c, CLIP_LEN)
    wi = torch.zeros(c, CLIP_LEN)
    we = torch.zeros(c, CLIP_LEN)
    # A model that masks padding ignores padded snippets, so its chunks can run sorted by
    # length with each batch cut to its longest chunk: the cost follows the real snippets, not
    # 256 per chunk (a 24-snippet video otherwise pays ~100x its attention cost). Unmasked
    # (released) models and degraded inputs keep the fixed 256-snippet chunks.
    # (any module with the fusion output works here; only our models carry a config)
    trim = transform is None and getattr(getattr(model, "cfg", None), "mask_padding", False)
    # (on a CPU small batches keep the cut tight; the result does not depend on the batching)
    order = torch.argsort(test.chunk_lengths, descending=True, stable=True) if trim else None
    if trim and device.type == "cpu":
        batch_size = min(batch_size, 8)
    for s in range(0, c, batch_size):
        if order is None:
            idx = torch.arange(s, min(c, s + batch_size))
            t = CLIP_LEN
        else:
            idx = order[s : s + batch_size]
            t = max(1, int(test.chunk_lengths[idx].max()))
        img = test.image[idx, :t].to(device, non_blocking=True)
        evt = test.event[idx, :t].to(device, non_blocking=True)
        if transform is not None:
            img, evt = transform(img, evt, idx)
        with autocast(device, amp):
            out = model(img, evt, test.chunk_lengths[idx].to(device))
        probs[idx, :t] = torch.sigmoid(out.logits.float()).cpu()
        wi[idx, :t] = out.w_image.float().mean(-1).cpu()
        we[idx, :t] = out.w_event.float().mean(-1).cpu()
    model.train(was_training)
    scores, w_image, w_event = [], [], []
    start = 0
    for t in test.lengths:
        n = num_chunks(int(t))
        sl = slice(start, start + n)
        start += n
        scores.append(probs[sl].reshape(-1)[:t].numpy())
        w_image.append(wi[sl].reshape(-1)[:t].numpy())
        w_event.append(we[sl].reshape(-1)[:t].numpy())
    return Predictions(scores, w_image, w_event)


def video_results(rows: Sequence[ListRow], lengths: Sequence[int], spec: DatasetSpec):
    """Frame ranges and classes of the test videos in the concatenated arrays."""
    out, start = [], 0
    for r, t in zip(rows, lengths):
        n = SNIPPET_FRAMES * int(t)
        out.append(VideoResult(r.stem, start, n, spec.classes_of(r.label), spec.is_normal(r.label)))
        start += n
    return out


def compute_metrics(
    pred: Predictions,
    gt: GroundTruth,
    rows: Sequence[ListRow],
    spec: DatasetSpec,
    detection: bool | None = None,
) -> dict:
    """All metrics of one test pass. ``detection``: compute mAP@IoU (default: for XD, and
    whenever the ground truth carries per-video segments and ``detection`` is True)."""
    lengths = [s.size for s in pred.scores]
    check_gt_length(gt, [r.stem for r in rows], lengths)
    scores = pred.frame_scores()
    videos = video_results(rows, lengths, spec)
    ap_key = spec.frame_ap
    first = ap_key if spec.headline == "ap" else spec.headline
    result: dict = {"dataset": spec.name, "headline": first, "ap_convention": ap_key}
    result.update(auc_ap(gt.frames, scores))
    result.update(abnormal_only(videos, gt.frames, scores))
    result["per_class"] = per_class(videos, gt.frames, scores)
    result["num_videos"] = len(rows)
    result["num_frames"] = int(scores.size)
    if detection is None:
        detection = spec.detection
    if detection:
        segs = segments_of(gt, videos)
        snippet_segs = [
            [(s // SNIPPET_FRAMES, -(-e // SNIPPET_FRAMES)) for s, e in g] for g in segs
        ]
        m = detection_map(pred.scores, snippet_segs)
        result["map_iou"] = m
    return result


def segments_of(gt: GroundTruth, videos: Sequence[VideoResult]) -> list[list[tuple[int, int]]]:
    """Annotated frame spans per video: from the sidecar when present, else from the runs of 1
    in each video's slice of the frame array."""
    if gt.videos is not None:
        return [list(map(tuple, v.segments)) for v in gt.videos]
    from iefvad.engine.metrics import segments_from_mask

    return [segments_from_mask(gt.frames[v.start : v.start + v.frames] > 0.5) for v in videos]


LABELS = {"auc": "AUC", "ap": "AP", "ap_trapz": "AP(trapz)", "ano_auc": "ANO_AUC"}
"""Console names of the metrics in :func:`headline`."""


def headline(metrics: dict) -> str:
    """One console line with the dataset's headline metric first."""
    first = metrics["headline"]
    names = [first] + [k for k in LABELS if k != first and k in metrics]

    def fmt(k: str) -> str:
        v = metrics.get(k)
        return f"{LABELS.get(k, k.upper())} {'n/a' if v is None else f'{100 * v:.2f}'}"

    line = " | ".join(fmt(k) for k in names)
    if "map_iou" in metrics and metrics["map_iou"].get("avg") is not None:
        line += f" | mAP@IoU(0.1:0.5) {100 * metrics['map_iou']['avg']:.2f}"
    return f"{metrics['dataset']}: {line}"
