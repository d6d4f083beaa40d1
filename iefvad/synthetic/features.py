"""Generated feature sets with a planted anomaly signal, laid out like real extracted features.

Used by the tests, the training benchmark and the quick demo. Files follow the real naming
scheme (``<root>/rgb/<Class>/<stem>__<crop>.npy`` and the ``event_thr_10`` twin), lists are
``path,label`` CSVs with paths relative to their folder, and the ground truth is written by the
same code as for the benchmarks.

Signal: every snippet is Gaussian noise around its video's "scene" vector (one of a few camera
prototypes shared by normal and abnormal videos, as in surveillance benchmarks, plus a small
per-video jitter); inside annotated spans of abnormal videos, a fixed anomaly direction is
added with strength ``signal`` (in both modalities, or only in one with ``signal_modality``).
Optionally one modality is intermittently unreliable: in a random ``burst_fraction`` of its
snippets (train and test alike) it gets extra Gaussian noise of std ``burst_sigma``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iefvad.data.csv_lists import write_list
from iefvad.data.groundtruth import VideoGT, save_gt
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.fileio import save_npy

NORMAL_LABEL = "Normal"
ABNORMAL_CLASSES = ("Abuse", "Fighting")


@dataclass(frozen=True)
class SynthSpec:
    """Size and difficulty of a generated set."""

    train_normal: int = 16
    train_abnormal: int = 16
    test_normal: int = 6
    test_abnormal: int = 6
    dim: int = 32
    crops: int = 2
    """Crops per training video (test lists use one crop)."""
    t_median: float = 60.0
    t_sigma: float = 0.5
    t_min: int = 20
    t_max: int = 600
    t_dist: str = "lognormal"
    """``lognormal`` (median ``t_median``, log-std ``t_sigma``, clipped to ``[t_min, t_max]``)
    or ``uniform`` (evenly spread over ``[t_min, t_max]``)."""
    signal: float = 5.0
    noise: float = 1.0
    scene: float = 1.0
    """Spread of the scene prototypes (what a model must learn to ignore)."""
    scenes: int = 4
    """Number of scene prototypes (cameras); each video picks one at random."""
    scene_jitter: float = 0.1
    span_fraction: tuple[float, float] = (0.1, 0.2)
    """Each anomalous span covers this fraction range of its video."""
    span_count: tuple[int, int] = (1, 2)
    """Each abnormal video has between these many anomalous spans (inclusive; overlapping
    spans merge)."""
    signal_modality: str = "both"
    """``both``, ``image`` or ``event``: where the anomaly direction is planted; ``split``:
    in the image stream for the first abnormal class, the event stream for the second (and so
    on alternately), so that each stream carries the anomaly of some classes only."""
    burst_modality: str = "none"
    """``none``, ``image``, ``event`` or ``both``: the stream(s) with noise bursts."""
    burst_fraction: float = 0.0
    """Fraction of snippets (chosen independently per snippet) hit by a burst."""
    burst_sigma: float = 0.0
    """Std of the extra noise in a burst (the base noise is ``noise``)."""
    train_gt: bool = False
    """Also write ``train_gt.npy``: the frame labels of the training videos (first crop),
    for a per-snippet oracle; training never reads it."""
    seed: int = 0
    layout: str = "benchmark"
    """``benchmark``: ``rgb/<Class>/...`` with UCF-style labels; ``custom``: the layout of a
    user's own folder (``rgb/normal/...``, ``rgb/abnormal/<class>/...``, labels ``normal`` and
    the class folder) plus ``test_list.txt`` and ``annotations.csv`` for ``list/``."""


@dataclass
class SynthSet:
    root: Path
    train_csv: Path
    test_csv: Path
    gt_path: Path


MODALITY_CHOICES = ("both", "image", "event")
SIGNAL_CHOICES = (*MODALITY_CHOICES, "split", "mixed")
PER_CLASS = {"split": ("image", "event"), "mixed": ("both", "event")}
"""Where each abnormal class (alternately) carries the anomaly, for the per-class choices."""


def check_spec(spec: SynthSpec) -> None:
    """Reject impossible settings with the field name."""
    if spec.signal_modality not in SIGNAL_CHOICES:
        raise ValueError(
            f"signal_modality must be one of {SIGNAL_CHOICES}, got {spec.signal_modality!r}"
        )
    if spec.t_dist not in ("lognormal", "uniform"):
        raise ValueError(f"t_dist must be lognormal or uniform, got {spec.t_dist!r}")
    if not 1 <= spec.span_count[0] <= spec.span_count[1]:
        raise ValueError(
            f"span_count must be (low, high) with 1 <= low <= high, got {spec.span_count}"
        )
    if spec.burst_modality not in ("none", *MODALITY_CHOICES):
        raise ValueError(
            f"burst_modality must be none, both, image or event, got {spec.burst_modality!r}"
        )
    if not 0.0 <= spec.burst_fraction <= 1.0 or spec.burst_sigma < 0:
        raise ValueError(
            f"burst_fraction must be in [0, 1] and burst_sigma >= 0, got "
            f"{spec.burst_fraction} and {spec.burst_sigma}"
        )


def ucf_like_lengths(n: int, rng: np.random.Generator, spec: SynthSpec) -> np.ndarray:
    """Log-normal snippet counts clipped to ``[t_min, t_max]`` (or uniform over it)."""
    if spec.t_dist == "uniform":
        return rng.integers(spec.t_min, spec.t_max + 1, size=n)
    t = rng.lognormal(np.log(spec.t_median), spec.t_sigma, size=n)
    return np.clip(np.round(t), spec.t_min, spec.t_max).astype(int)


def _spans(
    t: int,
    rng: np.random.Generator,
    fraction: tuple[float, float],
    count: tuple[int, int] = (1, 2),
) -> list[tuple[int, int]]:
    """``count`` snippet spans, each covering a ``fraction`` range of the video (merged where
    they overlap)."""
    spans = []
    for _ in range(rng.integers(count[0], count[1] + 1)):
        w = max(2, int(t * rng.uniform(*fraction)))
        s = int(rng.integers(0, max(1, t - w)))
        spans.append((s, min(t, s + w)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def make_feature_set(
    root: str | os.PathLike[str], spec: SynthSpec = SynthSpec(), workers: int = 4
) -> SynthSet:
    """Write features, ``train.csv``, ``test.csv`` and ``gt.npy`` (+ sidecar) under ``root``."""
    check_spec(spec)
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    direction = rng.standard_normal((2, spec.dim)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    plants = {"both": (1.0, 1.0), "image": (1.0, 0.0), "event": (0.0, 1.0)}
    bursty = {"none": (False, False), "both": (True, True), "image": (True, False)}.get(
        spec.burst_modality, (False, True)
    )

    prototypes = spec.scene * rng.standard_normal((spec.scenes, spec.dim)).astype(np.float32)
    jobs = []  # (path_img, path_evt, T, spans, scene, seed, plant)
    train_rows, test_rows = [], []
    gt_videos: dict[str, list[VideoGT]] = {"train": [], "test": []}
    for split, nn_, na in (
        ("train", spec.train_normal, spec.train_abnormal),
        ("test", spec.test_normal, spec.test_abnormal),
    ):
        crops = range(spec.crops) if split == "train" else [5 if spec.crops > 5 else 0]
        lengths = ucf_like_lengths(nn_ + na, rng, spec)
        for i in range(nn_ + na):
            normal = i < nn_
            cls = NORMAL_LABEL if normal else ABNORMAL_CLASSES[i % len(ABNORMAL_CLASSES)]
            where = spec.signal_modality
            if where in PER_CLASS and not normal:
                where = PER_CLASS[where][ABNORMAL_CLASSES.index(cls) % 2]
            plant = plants.get(where, (0.0, 0.0))
            stem = f"Normal_Videos_{split}{i:03d}_x264" if normal else f"{cls}{split}{i:03d}_x264"
            folder = Path(cls)
            if spec.layout == "custom":
                cls = "normal" if normal else cls.lower()
                folder = Path("normal") if normal else Path("abnormal") / cls
            t = int(lengths[i])
            spans = [] if normal else _spans(t, rng, spec.span_fraction, spec.span_count)
            scene = prototypes[rng.integers(spec.scenes)] + spec.scene_jitter * rng.standard_normal(
                spec.dim
            ).astype(np.float32)
            for c in crops:
                rel = folder / f"{stem}__{c}.npy"
                img, evt = root / "rgb" / rel, root / "event_thr_10" / rel
                jobs.append((img, evt, t, spans, scene, int(rng.integers(2**31)), plant))
                (train_rows if split == "train" else test_rows).append((img, cls))
            frames = SNIPPET_FRAMES * t
            segs = [(s * SNIPPET_FRAMES, e * SNIPPET_FRAMES) for s, e in spans]
            gt_videos[split].append(VideoGT(stem, cls, frames, segs))

    def write(job) -> None:
        img_path, evt_path, t, spans, scene, seed, plant = job
        r = np.random.default_rng(seed)
        mask = np.zeros(t, dtype=np.float32)
        for s, e in spans:
            mask[s:e] = 1.0
        burst_rng = np.random.default_rng(seed + 1)  # leaves the base draws unchanged
        for path, k in ((img_path, 0), (evt_path, 1)):
            x = scene + spec.noise * r.standard_normal((t, spec.dim), dtype=np.float32)
            x += (spec.signal * plant[k]) * mask[:, None] * direction[k]
            if bursty[k] and spec.burst_fraction > 0 and spec.burst_sigma > 0:
                hit = burst_rng.random(t) < spec.burst_fraction
                noise = burst_rng.standard_normal((t, spec.dim), dtype=np.float32)
                x += spec.burst_sigma * hit[:, None] * noise
            save_npy(path, x.astype(np.float32))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, jobs))
    train_csv, test_csv, gt_path = root / "train.csv", root / "test.csv", root / "gt.npy"
    write_list(train_csv, train_rows)
    write_list(test_csv, test_rows)
    save_gt(gt_path, gt_videos["test"], dataset="synthetic")
    if spec.train_gt:
        save_gt(root / "train_gt.npy", gt_videos["train"], dataset="synthetic")
    if spec.layout == "custom":
        test_gt = gt_videos["test"]
        (root / "test_list.txt").write_text("".join(f"{v.name}\n" for v in test_gt))
        spans = [(v.name, s, e, v.label) for v in test_gt for s, e in v.segments]
        (root / "annotations.csv").write_text(
            "video,start_frame,end_frame,class\n"
            + "".join(f"{n},{s},{e},{c}\n" for n, s, e, c in spans)
        )
    return SynthSet(root, train_csv, test_csv, gt_path)
