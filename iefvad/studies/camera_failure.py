"""The demo with a failing camera (``python -m iefvad.cli.demo --camera_failure``): do the fusion
weights leave the image stream while the camera is black, frozen or noise?

1. the demo's videos, features and lists (:mod:`iefvad.studies.demo`; reused when already
   under ``--out_dir``);
2. copies of a few test videos whose camera fails on a seeded span of frames
   (:func:`iefvad.synthetic.videos.camera_failure`), extracted with the demo's towers;
3. the fused model trained twice, same seed and settings: the ``released`` recipe (the demo's
   fused row) and ``reliable`` (:mod:`iefvad.engine.reliability`);
4. per recipe and failure mode, the mean image weight (and event weight, score) on the snippets
   inside the failure span against those outside it; a CSV and a figure.

The events are computed from the same frames, so a failing camera corrupts them too: black and
frozen frames make no events at all, noise makes events everywhere. Whether the event stream
"carries the score" then is what the figure shows, not an assumption.

``two_sensors`` (``--camera_failure --two_sensors``): a second sensor. The event stream comes
from a simulated event camera (:mod:`iefvad.events.simulator`, ``--event_source simulator``)
watching the clean scene, not the RGB camera's output: the models are trained on the demo's
image features and the simulator's event features (``counts`` maps; the event tower
standardised on the simulator's maps of the calibration footage), and a failing copy gets the
image features of its failing video with the event features of the clean video, the same
scene as the other camera sees it. Outputs go to ``..._two_sensors`` names.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad.data.csv_lists import ListRow, read_list
from iefvad.data.groundtruth import load_gt
from iefvad.datasets.specs import SNIPPET_FRAMES, get_spec
from iefvad.engine.evaluate import Predictions, compute_metrics, load_test_set, predict
from iefvad.engine.reliability import RECIPE_MODEL, RECIPES
from iefvad.engine.train import train
from iefvad.extraction.encoders import random_encoder, resolve_device, resolve_precision
from iefvad.extraction.event_sources import EventOptions, SimulatedSource
from iefvad.extraction.pipeline import RunConfig, run_extraction
from iefvad.extraction.recipe import Encoders, RecipeOptions, encode_event_counts
from iefvad.extraction.standardize import fit_standardizer, standardized
from iefvad.fileio import atomic_write, save_json
from iefvad.models.checkpoint import load_model
from iefvad.studies.demo import (
    DemoConfig,
    _say,
    _train_config,
    calibration_frames,
    default_threads,
    extract_features,
    make_lists,
)
from iefvad.synthetic.videos import (
    FAILURES,
    DemoVideos,
    VideoPlan,
    make_demo_videos,
    write_video,
)

RECIPE_NAMES: tuple[str, ...] = ("released", "reliable")
SIM_TREE = "event_sim_counts"
"""Event tree of the simulated second sensor, beside the demo's ``rgb`` tree."""


@dataclass
class FailureConfig:
    demo: DemoConfig = field(default_factory=DemoConfig)
    modes: tuple[str, ...] = FAILURES
    kinds: tuple[str, ...] = ("normal", "motion")
    """Test videos (the first of each kind) that get a failing copy per mode."""
    span_snippets: int = 3
    """Length of the failure in snippets."""
    seed: int = 0
    figure: Path | None = None
    """Default: ``<out>/results/demo_camera_failure.png``."""
    summary: Path | None = None
    """Default: ``<out>/results/demo_camera_failure/summary.csv``."""
    two_sensors: bool = False
    """Events from a simulated event camera watching the clean scene (see the module doc)."""

    @property
    def tag(self) -> str:
        return "demo_camera_failure" + ("_two_sensors" if self.two_sensors else "")


@dataclass
class FailedVideo:
    plan: VideoPlan
    mode: str
    span: tuple[int, int]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.plan.name}_{self.mode}"


def failure_videos(plans: list[VideoPlan], cfg: FailureConfig) -> list[FailedVideo]:
    """One failing copy per mode of the first test video of each of ``cfg.kinds``; the span
    (``span_snippets`` long, snippet-aligned, away from both ends) is drawn from ``cfg.seed``."""
    rng = np.random.default_rng([cfg.seed, 12])
    out = []
    for kind in cfg.kinds:
        plan = next(p for p in plans if p.split == "test" and p.kind == kind)
        snippets = plan.frames // SNIPPET_FRAMES
        for mode in cfg.modes:
            first = int(rng.integers(1, max(2, snippets - cfg.span_snippets)))
            span = (first * SNIPPET_FRAMES, (first + cfg.span_snippets) * SNIPPET_FRAMES)
            out.append(FailedVideo(plan, mode, span, int(rng.integers(2**31))))
    return out


def _inside(n: int, span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Snippets wholly inside ``span`` and snippets wholly outside it, ``[n]`` bool each."""
    lo = np.arange(n) * SNIPPET_FRAMES
    hi = lo + SNIPPET_FRAMES
    return (lo >= span[0]) & (hi <= span[1]), (hi <= span[0]) | (lo >= span[1])


def _mean(x: np.ndarray, sel: np.ndarray) -> float:
    return float(x[sel].mean()) if sel.any() else float("nan")


def run_camera_failure(cfg: FailureConfig) -> dict[str, Any]:
    before = torch.get_num_threads()
    d = cfg.demo
    torch.set_num_threads(d.threads if d.threads > 0 else default_threads())
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(before)


def _failing_copies(
    cfg: FailureConfig, vids: DemoVideos
) -> tuple[list[FailedVideo], list[ListRow]]:
    """Write and extract (with the demo's towers) the failing-camera copies of the chosen test
    videos; ``(failures, their list rows)``."""
    d = cfg.demo
    root = d.out / "camera_failure"
    failed = failure_videos(vids.plans, cfg)
    for f in failed:
        path = root / "videos" / f.plan.folder / f"{f.name}{d.videos.extension}"
        if not path.is_file():
            write_video(f.plan, d.videos, path, failure=(f.mode, f.span, f.seed))
    fsum, _, _ = extract_features(d, root / "videos", root / "features")
    if fsum.failed:
        raise RuntimeError(f"feature extraction failed:\n{fsum.text()}")
    spec = get_spec("custom")
    froots = {"image": root / "features" / "rgb", "event": root / "features" / spec.event_dir}
    crop = d.crops[0]
    frows = []
    for f in failed:
        img = next(froots["image"].rglob(f"{f.name}__{crop}.npy"))
        if cfg.two_sensors:  # the event camera watches the clean scene
            evt = d.out / "features" / SIM_TREE / f.plan.folder / f"{f.plan.name}__{crop}.npy"
        else:
            evt = next(froots["event"].rglob(f"{f.name}__{crop}.npy"))
        frows.append(ListRow(img, f.plan.label, evt))
    _say(d, f"{len(failed)} failing-camera videos extracted under {root}")
    return failed, frows


def _train_recipes(
    cfg: FailureConfig, lists: Path, frows: list[ListRow]
) -> tuple[dict[str, Predictions], dict[str, float]]:
    """Train the fused model with each recipe (same seed and settings); ``(predictions on the
    failing copies, clean test frame AUC)`` per recipe."""
    d = cfg.demo
    device = resolve_device(d.device)
    spec = get_spec("custom")
    event_dir = SIM_TREE if cfg.two_sensors else spec.event_dir
    test_rows = read_list(lists / "test.csv", None, event_dir)
    gt = load_gt(lists / "gt.npy")
    clean_set = load_test_set(test_rows, None, progress=False)
    fail_set = load_test_set(frows, None, progress=False)
    preds: dict[str, Predictions] = {}
    clean_auc: dict[str, float] = {}
    for recipe in RECIPE_NAMES:
        tc = _train_config(d, f"fused-{recipe}", None, lists)
        ckpts = "checkpoints_two_sensors" if cfg.two_sensors else "checkpoints"
        tc = replace(
            tc,
            event_dir=event_dir,
            ckpt_dir=d.out / "camera_failure" / ckpts / recipe,
            model={**tc.model, **RECIPE_MODEL[recipe]},
            uncertainty=RECIPES[recipe].to_record() if recipe != "released" else {},
        )
        model, _ = load_model(train(tc).checkpoint, device)
        clean = compute_metrics(predict(model, clean_set, device), gt, test_rows, spec)
        clean_auc[recipe] = clean["auc"]
        preds[recipe] = predict(model, fail_set, device)
        _say(d, f"{recipe}: clean frame AUC {100 * clean_auc[recipe]:.2f}")
    return preds, clean_auc


def _span_table(
    cfg: FailureConfig,
    failed: list[FailedVideo],
    preds: dict[str, Predictions],
    clean_auc: dict[str, float],
) -> list[dict[str, Any]]:
    """Per recipe and failure mode (and all together): mean weights and scores inside vs
    outside the failure span."""
    table = []
    for recipe in RECIPE_NAMES:
        p = preds[recipe]
        for mode in ("all", *cfg.modes):
            acc: dict[str, list[np.ndarray]] = {k: [] for k in ("wi", "we", "s")}
            sel_in, sel_out = [], []
            for i, f in enumerate(failed):
                if mode != "all" and f.mode != mode:
                    continue
                ins, outs = _inside(p.scores[i].size, f.span)
                acc["wi"].append(p.w_image[i])
                acc["we"].append(p.w_event[i])
                acc["s"].append(p.scores[i])
                sel_in.append(ins)
                sel_out.append(outs)
            si, so = np.concatenate(sel_in), np.concatenate(sel_out)
            v = {k: np.concatenate(a) for k, a in acc.items()}
            table.append(
                {
                    "recipe": recipe,
                    "mode": mode,
                    "videos": sum(1 for f in failed if mode in ("all", f.mode)),
                    "w_image_inside": _mean(v["wi"], si),
                    "w_image_outside": _mean(v["wi"], so),
                    "w_event_inside": _mean(v["we"], si),
                    "w_event_outside": _mean(v["we"], so),
                    "score_inside": _mean(v["s"], si),
                    "score_outside": _mean(v["s"], so),
                    "clean_auc": clean_auc[recipe],
                }
            )
    return table


def _run(cfg: FailureConfig) -> dict[str, Any]:
    d = cfg.demo
    out = d.out
    vids = make_demo_videos(out / "data", d.videos)
    summary, _, _ = extract_features(d, vids.video_dir)
    if summary.failed:
        raise RuntimeError(f"feature extraction failed:\n{summary.text()}")
    lists = make_lists(d, out / "features", vids)
    if cfg.two_sensors:
        simulated_event_features(d, vids.video_dir)
    failed, frows = _failing_copies(cfg, vids)
    preds, clean_auc = _train_recipes(cfg, lists, frows)
    table = _span_table(cfg, failed, preds, clean_auc)
    summary_path = cfg.summary or out / "results" / cfg.tag / "summary.csv"
    with atomic_write(summary_path, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        for r in table:
            w.writerow({k: f"{x:.4f}" if isinstance(x, float) else x for k, x in r.items()})
    save_json(
        summary_path.with_name("videos.json"),
        [{"video": f.name, "mode": f.mode, "span": list(f.span)} for f in failed],
    )
    figure = plot_failures(
        failed, preds, clean_auc, cfg.figure or out / "results" / f"{cfg.tag}.png", d
    )
    return {"table": table, "summary": summary_path, "figure": figure, "clean_auc": clean_auc}


def simulated_event_encoder(d: DemoConfig, opts: RecipeOptions, events: EventOptions) -> Encoders:
    """The demo's random event tower, standardised on the simulator's ``counts`` maps of the
    calibration footage (as the demo standardises it on frame differences)."""
    device = resolve_device(d.device)
    enc = random_encoder(d.event_arch, d.encoder_seed + 1, normalise=False)
    frames = calibration_frames(d.videos, d.calibration_clips)
    source = SimulatedSource(events.simulator, d.videos.fps)
    crop = opts.crops[0]
    outs = []
    with torch.inference_mode():
        for a in range(0, len(frames), 512):
            counts = source.counts(torch.from_numpy(frames[a : a + 512]), a // SNIPPET_FRAMES)
            outs.append(encode_event_counts(enc, counts, (crop,), events.repr or "counts", 64)[0])
    mean, std = fit_standardizer(torch.cat(outs))
    enc = standardized(enc, mean, std).to(device, resolve_precision("auto", device))
    return Encoders(event=enc, batch_size=256 if device.type == "cuda" else 64)


def simulated_event_features(d: DemoConfig, video_dir: Path) -> None:
    """Event features of the demo's (clean) videos from the simulated event camera, in
    ``<out>/features/event_sim_counts`` beside the image tree (resumed when complete)."""
    events = EventOptions("simulator", "counts")
    opts = RecipeOptions(crops=d.crops, tail="reference", event_norm=d.event_norm)  # type: ignore[arg-type]
    encoders = simulated_event_encoder(d, opts, events)
    summary = run_extraction(
        RunConfig(
            video_dir=video_dir,
            roots={"event": d.out / "features" / SIM_TREE},
            opts=opts,
            precision=resolve_precision("auto", encoders.device),
            workers=1,
            progress=d.progress,
            dataset="custom",
            events=events,
        ),
        encoders,
    )
    if summary.failed:
        raise RuntimeError(f"simulated event features failed:\n{summary.text()}")
    _say(d, f"simulated event camera: {summary.total} videos -> {d.out / 'features' / SIM_TREE}")


def format_summary(table: list[dict[str, Any]]) -> str:
    head = (
        f"{'recipe':<9} {'mode':<7} {'w_img in':>8} {'w_img out':>9} {'w_evt in':>8} "
        f"{'w_evt out':>9} {'score in':>8} {'score out':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in table:
        lines.append(
            f"{r['recipe']:<9} {r['mode']:<7} {r['w_image_inside']:8.3f} "
            f"{r['w_image_outside']:9.3f} {r['w_event_inside']:8.3f} "
            f"{r['w_event_outside']:9.3f} {r['score_inside']:8.3f} {r['score_outside']:9.3f}"
        )
    return "\n".join(lines)


def plot_failures(
    failed: list[FailedVideo],
    preds: dict[str, Predictions],
    clean_auc: dict[str, float],
    path: Path,
    d: DemoConfig,
) -> Path:
    """One column per recipe, a score panel over a weight panel per failing video; the failure
    span shaded gray, an annotated anomaly red."""
    import matplotlib.pyplot as plt

    from iefvad.viz.figures import SCORE_COLOR, SPAN_COLOR, draw_scores_and_weights, save_figure

    n, m = len(failed), len(RECIPE_NAMES)
    fig, axes = plt.subplots(
        2 * n,
        m,
        figsize=(5.2 * m, 1.45 * 2 * n + 0.8),
        gridspec_kw={"height_ratios": [1.0, 0.8] * n},
        squeeze=False,
    )
    fps = d.videos.fps
    for j, recipe in enumerate(RECIPE_NAMES):
        p = preds[recipe]
        for i, f in enumerate(failed):
            ax_s, ax_w = axes[2 * i, j], axes[2 * i + 1, j]
            for ax in (ax_s, ax_w):
                for s, e in f.plan.spans:
                    ax.axvspan(s / fps, e / fps, color=SPAN_COLOR, alpha=0.6, lw=0)
            draw_scores_and_weights(
                ax_s,
                ax_w,
                frames=16 * int(p.scores[i].size),
                fps=fps,
                scores=[("fused score", p.scores[i], SCORE_COLOR, 1.6)],
                w_image=p.w_image[i],
                w_event=p.w_event[i],
                spans=[f.span],
                span_color="#999999",
                span_alpha=0.35,
            )
            ax_s.set_title(
                f"{recipe} (clean AUC {100 * clean_auc[recipe]:.1f}): {f.plan.name}, "
                f"camera {f.mode}",
                fontsize=8,
            )
            ax_s.tick_params(labelbottom=False)
            ax_w.set_ylabel("weight")
            if i == n - 1:
                ax_w.set_xlabel("seconds (gray: camera failure, red: annotated anomaly)")
    h, lab = axes[1, 0].get_legend_handles_labels()
    h0, lab0 = axes[0, 0].get_legend_handles_labels()
    fig.legend(h0 + h, lab0 + lab, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, path)
