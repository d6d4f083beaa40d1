"""``make demo``: the whole method end to end on an embedded, generated video dataset.

1. generate surveillance-like videos with appearance and motion anomalies
   (:mod:`iefvad.synthetic.videos`), in the custom-data layout;
2. extract image and synthetic-event features with open_clip vision towers (small seeded
   random-init ViTs by default, since no weights ship; ``--clip_ckpt``/``--event_clip_ckpt``
   for real ones from files, ``--pretrained_weights`` for real ones from the caches or
   downloaded) through the folder pipeline of ``extracting/extract.py``;
3. write the lists and the frame ground truth with the code of ``list/generate_file.py`` and
   ``list/generate_gt.py`` (``--dataset custom``);
4. train three models with video-level labels only: image-only, event-only and fused;
5. evaluate them frame by frame on the test videos, print a table, write plots.

    python -m iefvad.cli.demo [--out_dir demo_out] [--seed 0] [--quick]

Everything is written under ``--out_dir``; a rerun reuses the videos and features already there
(extraction resumes from its manifests). See ``docs/demo.md``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad.data.csv_lists import ListRow, read_list
from iefvad.data.groundtruth import load_gt
from iefvad.data.lists import custom_lists, generate_gt, write_lists
from iefvad.datasets.specs import get_spec
from iefvad.engine.config import TrainConfig
from iefvad.engine.evaluate import (
    Predictions,
    compute_metrics,
    load_test_set,
    predict,
    video_results,
)
from iefvad.engine.metrics import auc_ap
from iefvad.engine.train import train
from iefvad.errors import UserInputError
from iefvad.extraction.encoders import (
    Encoder,
    VisionArch,
    load_encoder,
    random_encoder,
    resolve_device,
    resolve_precision,
)
from iefvad.extraction.pipeline import RunConfig, RunSummary, run_extraction
from iefvad.extraction.provenance import attach_to_checkpoint, encoder_record, feature_record
from iefvad.extraction.recipe import Encoders, RecipeOptions, encode_snippets
from iefvad.extraction.standardize import fit_standardizer, standardized
from iefvad.extraction.weights import WeightsOptions
from iefvad.fileio import save_json
from iefvad.models.checkpoint import load_model
from iefvad.synthetic.videos import (
    DemoVideos,
    DemoVideoSpec,
    VideoPlan,
    calibration_plans,
    make_demo_videos,
    render_frames,
)
from iefvad.video.decode import crop_array, resize_frame
from iefvad.viz.figures import VideoTrace, plot_by_class
from iefvad.viz.scores import ComparedVideo, plot_comparison

DEMO_IMAGE_ARCH = VisionArch(width=64, layers=1, patch_size=16, embed_dim=32)
"""Random image tower of the demo (standardised on calibration footage, see
:mod:`iefvad.extraction.standardize`): patch 16 keeps colour detail, one layer keeps it cheap."""
DEMO_EVENT_ARCH = VisionArch(width=64, layers=2, patch_size=16, embed_dim=32)
"""Random event tower of the demo (runs once per snippet, not per frame)."""
TINY_ARCH = VisionArch(width=64, layers=1, patch_size=32, embed_dim=32)
"""The ``--quick`` towers: only checks that the pipeline runs."""

MODELS: dict[str, str | None] = {
    "image-only": "image_only",
    "event-only": "event_only",
    "fused": None,
}
"""Row name -> ``ModelConfig.fusion`` (None: the model's default fusion)."""


@dataclass
class DemoConfig:
    """Everything one demo run needs; the defaults are ``make demo``."""

    out: Path = Path("demo_out")
    videos: DemoVideoSpec = field(default_factory=DemoVideoSpec)
    image_arch: VisionArch = DEMO_IMAGE_ARCH
    event_arch: VisionArch = DEMO_EVENT_ARCH
    encoder_seed: int = 0
    clip_ckpt: Path | None = None
    event_clip_ckpt: Path | None = None
    clip_model: str = "ViT-L-14"
    pretrained_weights: bool = False
    """Real weights for towers without a file: the caches, else a download (``weights``)."""
    weights: WeightsOptions = field(default_factory=WeightsOptions)
    crops: tuple[int, ...] = (5,)
    """Crops extracted for training; the test list uses the first."""
    event_norm: str = "snippet"
    """Per-snippet event normalisation: the live stream computes the very same features."""
    calibration_clips: int = 8
    """Normal clips (cycling over the cameras) the random towers are standardised on; 0 =
    none."""
    epochs: int = 60
    batch_size: int = 4
    lr: float = 1e-3
    lam: float = 0.01
    """Weight of the alignment + KL terms (the XD preset's; 1 ties the two streams too hard
    when each sees a different kind of anomaly)."""
    heads: int = 2
    dropout: float = 0.0
    """Attention dropout (0: the 256x256 dropout masks cost most of a CPU training step)."""
    refine_steps: int = 2
    mask_padding: bool = False
    """Train the released way, padding not masked. The demo's videos are 8-10 snippets long,
    padded to 256: with the padding masked, self-attention mixes each short video into every
    snippet and the top-k MIL loss then localises nothing (fused frame AUC 0.40 against 0.85
    unmasked, docs/fusion.md "Padding"); the 246 padded zeros keep each snippet's
    representation local."""
    fused: str | None = None
    """Fusion rule of the ``fused`` row (None: the model's default for new models)."""
    train_seed: int = 0
    device: str = "auto"
    threads: int = 0
    """torch intra-op threads on the CPU; 0 = the cores this process may use, at most 4. On an
    idle 2-core machine 2 threads took 184 s where 1 took 247 s; on cores shared with other
    jobs 1 can be faster. The thread count changes float rounding, so the last digit of the
    table can differ between settings."""
    progress: bool = False
    quiet: bool = False


@dataclass
class DemoResult:
    table: list[dict[str, Any]]
    checkpoints: dict[str, Path]
    figure: Path
    plots: list[Path]
    seconds: dict[str, float]


def quick_config(out: Path, seed: int = 0) -> DemoConfig:
    """The CI-sized demo: a dozen short videos, tiny towers, a few epochs (~30 s on a CPU)."""
    return DemoConfig(
        out=out,
        videos=DemoVideoSpec(
            seed=seed,
            width=160,
            height=120,
            train=(4, 2, 2),
            test=(2, 1, 1),
            snippets=(7, 8),
            span_snippets=(3, 4),
        ),
        image_arch=TINY_ARCH,
        event_arch=TINY_ARCH,
        calibration_clips=2,
        epochs=4,
        batch_size=2,
        heads=1,
        refine_steps=1,
    )


def default_threads() -> int:
    """The cores this process may use, at most 4 (the demo's models are small)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _say(cfg: DemoConfig, msg: str) -> None:
    if not cfg.quiet:
        print(f"[demo] {msg}", flush=True)


def calibration_frames(spec: DemoVideoSpec, clips: int) -> np.ndarray:
    """Frames ``[N, 256, 340, 3]`` uint8 RGB (N a multiple of 16) of generated normal
    calibration footage, resized as the extraction recipe resizes decoded frames."""
    frames = []
    for plan in calibration_plans(spec, clips):
        frames.extend(resize_frame(f, rgb=True) for f in render_frames(plan, spec))
    return np.stack(frames)


def calibrate(
    enc: Encoder, kind: str, frames: np.ndarray, opts: RecipeOptions
) -> tuple[Encoder, tuple[np.ndarray, np.ndarray]]:
    """``enc`` standardised on its outputs for calibration ``frames`` (the recipe's first
    crop; image towers see every other frame, event towers every snippet), and the mean and
    std it uses."""
    crop = opts.crops[0]
    if kind == "image":
        x = torch.from_numpy(np.ascontiguousarray(crop_array(frames[::2], crop)))
        out = torch.cat([enc.encode_uint8(x[a : a + 64]) for a in range(0, len(x), 64)])
    else:
        one = RecipeOptions(crops=(crop,), threshold=opts.threshold, event_norm=opts.event_norm)
        out = encode_snippets(Encoders(event=enc), frames, one, bgr=False).event[crop]
    mean, std = fit_standardizer(out)
    return standardized(enc, mean, std), (mean, std)


def build_encoders(cfg: DemoConfig, opts: RecipeOptions) -> tuple[Encoders, dict[str, Any]]:
    """The demo's encoders and their records: random towers standardised on calibration
    footage (:mod:`iefvad.extraction.standardize`), or real weights as they are (the files
    passed, or with ``pretrained_weights`` the cached or downloaded ones)."""
    device = resolve_device(cfg.device)
    precision = resolve_precision("auto", device)
    frames = None
    records: dict[str, Any] = {}
    towers = {}
    for kind, path, arch, seed in (
        ("image", cfg.clip_ckpt, cfg.image_arch, cfg.encoder_seed),
        ("event", cfg.event_clip_ckpt, cfg.event_arch, cfg.encoder_seed + 1),
    ):
        if path is not None or cfg.pretrained_weights:
            enc = load_encoder(path, kind=kind, clip_model=cfg.clip_model, weights=cfg.weights)  # type: ignore[arg-type]
            records[kind] = encoder_record(enc)
        else:
            enc = random_encoder(arch, seed, normalise=kind == "image")
            stats = None
            if cfg.calibration_clips > 0:
                if frames is None:
                    frames = calibration_frames(cfg.videos, cfg.calibration_clips)
                enc, stats = calibrate(enc, kind, frames, opts)
            records[kind] = encoder_record(enc, arch, seed, stats)
        towers[kind] = enc.to(device, precision)
    if towers["image"].embed_dim != towers["event"].embed_dim:
        raise UserInputError(
            f"image and event towers give {towers['image'].embed_dim}- and "
            f"{towers['event'].embed_dim}-wide features; the fusion model needs one width: pass "
            "--clip_ckpt and --event_clip_ckpt of the same architecture"
        )
    batch = 256 if device.type == "cuda" else 64
    return Encoders(image=towers["image"], event=towers["event"], batch_size=batch), records


def extract_features(
    cfg: DemoConfig, video_dir: Path, feats: Path | None = None
) -> tuple[RunSummary, dict[str, Any], RecipeOptions]:
    """Extract (or resume) the demo's features under ``feats`` (default ``cfg.out /
    "features"``) with the folder pipeline of ``extracting/extract.py``; returns the run's
    summary, the encoders' records and the recipe."""
    opts = RecipeOptions(crops=cfg.crops, tail="reference", event_norm=cfg.event_norm)  # type: ignore[arg-type]
    encoders, records = build_encoders(cfg, opts)
    feats = feats or cfg.out / "features"
    summary = run_extraction(
        RunConfig(
            video_dir=video_dir,
            roots={"image": feats / "rgb", "event": feats / get_spec("custom").event_dir},
            opts=opts,
            precision=resolve_precision("auto", encoders.device),
            workers=1,
            progress=cfg.progress,
            dataset="custom",
        ),
        encoders,
    )
    return summary, records, opts


def _train_config(cfg: DemoConfig, name: str, fusion: str | None, lists: Path) -> TrainConfig:
    model: dict[str, Any] = {
        "heads": cfg.heads,
        "refine_steps": cfg.refine_steps,
        "dropout": cfg.dropout,
        "mask_padding": cfg.mask_padding,
        "attention_sink": cfg.mask_padding,  # the null slot replaces what the padding gave
    }
    fusion = fusion if fusion is not None else cfg.fused
    if fusion is not None:
        model["fusion"] = fusion
    exp = name.replace("-", "_")
    return TrainConfig(
        spec=get_spec("custom"),
        train_list=lists / "train.csv",
        test_list=lists / "test.csv",
        gt_path=lists / "gt.npy",
        exp_name=exp,
        ckpt_dir=cfg.out / "checkpoints" / exp,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_epoch=cfg.epochs,
        milestones=(),
        lam=cfg.lam,
        seed=cfg.train_seed,
        device=cfg.device,
        workers=2,
        model=model,
        final_test=False,
        progress=cfg.progress,
        epoch_lines=cfg.progress,
    )


def kind_aucs(
    pred: Predictions, gt: np.ndarray, videos: Sequence[Any], kinds: Sequence[str]
) -> dict[str, float | None]:
    """Frame AUC over the normal videos plus the videos of one anomaly kind, per kind."""
    scores = pred.frame_scores()
    out: dict[str, float | None] = {}
    for k in sorted(set(kinds) - {"normal"}):
        sel = np.zeros(scores.size, bool)
        for v, kind in zip(videos, kinds):
            if kind in ("normal", k):
                sel[v.start : v.start + v.frames] = True
        out[k] = auc_ap(gt[sel], scores[sel])["auc"]
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The demo's console table (percent)."""
    kinds = [k for k in rows[0] if k.startswith("auc_")] if rows else []
    head = f"{'model':<11} {'AUC':>6} {'AP':>6}" + "".join(f" {'AUC ' + k[4:]:>15}" for k in kinds)
    lines = [head, "-" * len(head)]
    for r in rows:
        f = lambda v: "   n/a" if v is None else f"{100 * v:6.2f}"  # noqa: E731
        lines.append(
            f"{r['model']:<11} {f(r['auc'])} {f(r['ap'])}"
            + "".join(f" {f(r[k]):>15}" for k in kinds)
        )
    return "\n".join(lines)


def _pick_videos(plans: Sequence[VideoPlan]) -> list[VideoPlan]:
    """One test video of each kind, for the figure."""
    test = [p for p in plans if p.split == "test"]
    picked = []
    for kind in ("appearance", "motion", "normal"):
        of_kind = [p for p in test if p.kind == kind]
        if of_kind:
            picked.append(of_kind[0])
    return picked


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run every stage (see the module doc); returns the table and the outputs' paths. Sets
    torch's CPU thread count for the run and restores it after."""
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads if cfg.threads > 0 else default_threads())
    try:
        return _run_demo(cfg)
    finally:
        torch.set_num_threads(before)


def make_lists(cfg: DemoConfig, feats: Path, vids: DemoVideos) -> Path:
    """Train/test lists and frame ground truth of the extracted features, in ``out/lists``."""
    lists = cfg.out / "lists"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = custom_lists(feats / "rgb", vids.test_list, None, 0, cfg.crops[0], vids.annotations)
        write_lists(built, lists / "train.csv", lists / "test.csv")
        gts = generate_gt("custom", lists / "test.csv", lists / "gt.npy", vids.annotations)
    _say(
        cfg,
        f"lists: {built.train_videos} train videos ({len(built.train)} rows, video labels only), "
        f"{built.test_videos} test videos, {gts.frames} test frames "
        f"({100 * gts.abnormal_frames / max(1, gts.frames):.1f}% anomalous) in {lists}",
    )
    return lists


def _evaluate(
    cfg: DemoConfig, ckpts: dict[str, Path], lists: Path, vids: DemoVideos
) -> tuple[list[ListRow], list[dict[str, Any]], dict[str, Predictions]]:
    """``(test rows, table, predictions)``: frame AUC / AP of every model, overall and per
    kind of anomaly."""
    device = resolve_device(cfg.device)
    spec = get_spec("custom")
    rows = read_list(lists / "test.csv", None, spec.event_dir)
    gt = load_gt(lists / "gt.npy")
    test_set = load_test_set(rows, None, progress=False)
    by_name = {p.name: p for p in vids.plans}
    kinds = [by_name[r.stem].kind for r in rows]
    table: list[dict[str, Any]] = []
    preds: dict[str, Predictions] = {}
    for name, path in ckpts.items():
        model, _ = load_model(path, device)
        preds[name] = pred = predict(model, test_set, device)
        m = compute_metrics(pred, gt, rows, spec)
        vres = video_results(rows, [s.size for s in pred.scores], spec)
        row = {"model": name, "auc": m["auc"], "ap": m["ap"]}
        row.update({f"auc_{k}": v for k, v in kind_aucs(pred, gt.frames, vres, kinds).items()})
        table.append(row)
    return rows, table, preds


def _figures(
    cfg: DemoConfig,
    rows: list[ListRow],
    table: list[dict[str, Any]],
    preds: dict[str, Predictions],
    vids: DemoVideos,
    results: Path,
) -> tuple[Path, list[Path]]:
    """``(comparison figure, per-class plots)``: the fused model's traces by class, and a few
    chosen videos scored by every model."""
    fused = preds["fused"]
    by_name = {p.name: p for p in vids.plans}
    by_class: dict[str, list[VideoTrace]] = {}
    for i, r in enumerate(rows):
        trace = VideoTrace(
            r.stem,
            fused.scores[i],
            fused.w_image[i],
            fused.w_event[i],
            by_name[r.stem].spans,
            cfg.videos.fps,
        )
        by_class.setdefault(r.label, []).append(trace)
    plots = plot_by_class(by_class, results / "plots", 3)
    index = {r.stem: i for i, r in enumerate(rows)}
    shown = []
    for p in _pick_videos(vids.plans):
        i = index[p.name]
        shown.append(
            ComparedVideo(
                p.name,
                p.kind,
                16 * int(fused.scores[i].size),
                cfg.videos.fps,
                {n: preds[n].scores[i] for n in MODELS},
                fused.w_image[i],
                fused.w_event[i],
                p.spans,
            )
        )
    auc = {r["model"]: r["auc"] for r in table}
    figure = plot_comparison(
        shown,
        results / "demo.png",
        "IEF-VAD demo: frame AUC "
        + ", ".join(f"{k} {100 * v:.1f}" for k, v in auc.items())
        + " (test videos never seen in training)",
    )
    return figure, plots


OUTPUT_FOLDERS = ("data", "features", "lists", "checkpoints", "results", "camera_failure")
"""The folders the demo (re)writes under its ``--out_dir``."""


def _run_demo(cfg: DemoConfig) -> DemoResult:
    secs: dict[str, float] = {}
    out = cfg.out
    t0 = t = time.perf_counter()

    # 1. videos
    vids: DemoVideos = make_demo_videos(out / "data", cfg.videos)
    n_frames = sum(p.frames for p in vids.plans)
    secs["videos"] = time.perf_counter() - t
    _say(
        cfg,
        f"{len(vids.plans)} videos ({n_frames} frames, {cfg.videos.width}x{cfg.videos.height}) "
        f"in {vids.video_dir} [{secs['videos']:.0f} s]",
    )

    # 2. features
    t = time.perf_counter()
    summary, records, opts = extract_features(cfg, vids.video_dir)
    feats = out / "features"
    if summary.failed:
        raise RuntimeError(f"feature extraction failed:\n{summary.text()}")
    secs["features"] = time.perf_counter() - t
    _say(
        cfg,
        f"features of crop(s) {','.join(map(str, cfg.crops))} under {feats}: image "
        f"{records['image']['arch']}, event {records['event']['arch']} "
        f"({len(summary.done)} extracted, {len(summary.skipped)} reused) "
        f"[{secs['features']:.0f} s]",
    )

    # 3. lists and ground truth (the code of list/generate_file.py and list/generate_gt.py)
    lists = make_lists(cfg, feats, vids)

    # 4. train
    record = feature_record(records["image"], records["event"], opts, cfg.crops[0])
    ckpts: dict[str, Path] = {}
    for name, fusion in MODELS.items():
        t = time.perf_counter()
        res = train(_train_config(cfg, name, fusion, lists))
        attach_to_checkpoint(res.checkpoint, record)
        ckpts[name] = res.checkpoint
        secs[f"train {name}"] = time.perf_counter() - t
        _say(cfg, f"trained {name} -> {res.checkpoint} [{secs[f'train {name}']:.0f} s]")

    # 5. evaluate, table, plots
    t = time.perf_counter()
    rows, table, preds = _evaluate(cfg, ckpts, lists, vids)
    results = out / "results"
    save_json(
        results / "metrics.json",
        {"table": table, "checkpoints": {k: str(v) for k, v in ckpts.items()}},
    )
    figure, plots = _figures(cfg, rows, table, preds, vids, results)
    secs["evaluate"] = time.perf_counter() - t
    secs["total"] = time.perf_counter() - t0
    save_json(results / "timings.json", secs)
    return DemoResult(table, ckpts, figure, plots, secs)
