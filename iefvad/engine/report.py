"""One evaluation run (``test.py``): checkpoint + test list -> metrics, scores and plots."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from iefvad.data.csv_lists import ListRow, read_list
from iefvad.data.groundtruth import (
    GroundTruth,
    check_gt_length,
    load_gt,
    num_snippets,
    sidecar_path,
)
from iefvad.data.list_rules import default_paths
from iefvad.datasets.specs import DatasetSpec, resolve_spec
from iefvad.devices import resolve_device
from iefvad.engine.evaluate import (
    compute_metrics,
    headline,
    load_test_set,
    predict,
    segments_of,
    video_results,
)
from iefvad.engine.outpaths import check_output_dir, check_output_file
from iefvad.engine.report_page import evaluation_report
from iefvad.engine.train import check_labels
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write, save_json, save_npy
from iefvad.models.checkpoint import load_model
from iefvad.paths import check_name, check_outputs, safe_name, same_file
from iefvad.report.page import number, write_report
from iefvad.viz.figures import VideoTrace, plot_by_class


@dataclass(frozen=True)
class EvaluationInputs:
    """What a checkpoint is evaluated on: the dataset's record, its test list and rows, and the
    frame ground truth (``test.py`` and the explorers)."""

    dataset: str
    spec: DatasetSpec
    test_list: Path
    gt_path: Path
    rows: list[ListRow]
    gt: GroundTruth

    def files(self) -> list[tuple[str, Path]]:
        """The files read, labelled by their flags (the outputs must not land on them)."""
        return [
            ("--test_list", self.test_list),
            ("--gt_path", self.gt_path),
            ("--gt_path's sidecar", sidecar_path(self.gt_path)),
        ]


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions:
    """What every evaluation of a checkpoint shares (``test.py``, ``test2.py``): where its test
    data is and how the passes run. None: the checkpoint's, the dataset's or the default."""

    dataset: str | None = None
    """Default: the checkpoint's dataset, else ucfcrime."""
    test_list: Path | None = None
    gt_path: Path | None = None
    data_root: Path | None = None
    event_dir_name: str | None = None
    image_dir_name: str = "rgb"
    normal_label: str | None = None
    nan_policy: str = "error"
    workers: int = 8
    batch_size: int = 64
    heads: int | None = None
    nu: float | None = None
    noise: str | None = None
    device: str = "auto"
    amp: str = "none"
    progress: bool = True


def evaluation_inputs(meta: dict[str, Any], opts: EvaluationOptions) -> EvaluationInputs:
    """Resolve and read the test list and ground truth of a checkpoint with record ``meta``:
    options left None come from the record (dataset, normal label) or the dataset's defaults
    (``list/<dataset>/test.csv``, ``gt.npy``, event folder); labels are checked."""
    dataset = opts.dataset or meta.get("dataset") or "ucfcrime"
    spec = resolve_spec(dataset, opts.normal_label or meta.get("normal_label"))
    lists = default_paths(dataset)
    test_list = opts.test_list or lists.test
    gt_path = opts.gt_path or lists.gt
    event_dir = opts.event_dir_name or spec.event_dir
    rows = read_list(test_list, opts.data_root, event_dir, opts.image_dir_name, "--test_list")
    check_labels(rows, spec, test_list)
    return EvaluationInputs(dataset, spec, test_list, gt_path, rows, load_gt(gt_path))


def experiment_name(
    exp_name: str | None, ckpt_path: Path | None, dataset: str | None
) -> str:
    """The name of an evaluation's output folder: ``--exp_name`` (a plain name, else an
    error naming the flag), or the checkpoint's stem made into one, or the dataset."""
    if exp_name is not None:
        return check_name(exp_name, "--exp_name")
    if ckpt_path is not None:
        return safe_name(Path(ckpt_path).stem)
    return dataset or "ucfcrime"


def format_table(metrics: dict[str, Any]) -> str:
    """Per-class AUC / AP as an aligned text table (percent)."""
    pc = metrics.get("per_class", {})
    width = max([len(c) for c in pc] + [5])
    lines = [f"{'class':<{width}}  {'videos':>6}  {'AUC':>6}  {'AP':>6}"]
    for c, m in pc.items():
        f = lambda v: "   n/a" if v is None else f"{100 * v:6.2f}"  # noqa: E731
        lines.append(f"{c:<{width}}  {m['videos']:>6}  {f(m['auc'])}  {f(m['ap'])}")
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class TestConfig(EvaluationOptions):
    """One evaluation (``test.py``'s flags); None: the checkpoint's, the dataset's or the
    default (see :func:`run_test`)."""

    __test__ = False  # not a pytest test class

    ckpt_path: Path | None = None
    """Default ``checkpoints/<exp_name>/<exp_name>.pth``."""
    exp_name: str | None = None
    """Names the output folder (default: the checkpoint's stem)."""
    out_dir: Path | None = None
    """Default ``results/<exp_name>``."""
    metrics_json: Path | None = None
    plots: bool = True
    plot_max_videos: int = 4
    map_iou: bool = False
    report: bool = False
    """Also write ``report.html`` (:mod:`iefvad.engine.report_page`)."""
    video_root: Path | None = None
    """Where the test videos are, for the report to play them."""


def run_test(cfg: TestConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on the test list; write outputs; return the metrics."""
    exp = experiment_name(cfg.exp_name, cfg.ckpt_path, cfg.dataset)
    ckpt_path = cfg.ckpt_path or Path("checkpoints") / exp / f"{exp}.pth"
    # every flag and output path is checked before the checkpoint and the features are read
    device = resolve_device(cfg.device)
    for flag, value, low in (
        ("--batch_size", cfg.batch_size, 1),
        ("--plot_max_videos", cfg.plot_max_videos, 0),
        ("--workers", cfg.workers, 0),
    ):
        if value < low:
            raise UserInputError(f"{flag} {value} is out of range: it must be an integer >= {low}")
    out_dir = check_output_dir(cfg.out_dir or Path("results") / exp, "--out_dir")
    if cfg.video_root is not None and not Path(cfg.video_root).is_dir():
        raise UserInputError(f"--video_root {cfg.video_root}: no such folder")
    for name in ("metrics.json", "frame_scores.npy", "snippets.csv") + (
        ("report.html",) if cfg.report else ()
    ):
        check_output_file(out_dir / name, "--out_dir")
    if cfg.metrics_json:
        check_output_file(cfg.metrics_json, "--metrics_json")
    files = ("metrics.json", "frame_scores.npy", "snippets.csv")
    outputs = [("--out_dir", out_dir / n) for n in files]
    if cfg.metrics_json and not same_file(cfg.metrics_json, out_dir / "metrics.json"):
        outputs.append(("--metrics_json", cfg.metrics_json))  # the same file: the same metrics
    given = [("--ckpt_path", ckpt_path), ("--test_list", cfg.test_list), ("--gt_path", cfg.gt_path)]
    check_outputs(outputs, given)
    model, ckpt = load_model(ckpt_path, device, heads=cfg.heads, nu=cfg.nu, noise=cfg.noise)
    inputs = evaluation_inputs(ckpt.meta, cfg)
    check_outputs(outputs, [*given, *inputs.files()])  # the defaults, now known
    dataset, spec, rows, gt = inputs.dataset, inputs.spec, inputs.rows, inputs.gt
    test_list, gt_path = inputs.test_list, inputs.gt_path
    trained_on = ckpt.meta.get("dataset")
    if trained_on and trained_on != dataset:
        tqdm.write(f"[test] note: checkpoint was trained on {trained_on}, testing on {dataset}")
    # fail fast, from the file headers alone, before reading and scoring every video
    check_gt_length(gt, [r.stem for r in rows], [num_snippets(r.path) for r in rows])
    test_set = load_test_set(
        rows, ckpt.config.dim, cfg.nan_policy, cfg.workers, progress=cfg.progress
    )
    pred = predict(model, test_set, device, cfg.batch_size, cfg.amp)
    metrics = compute_metrics(pred, gt, rows, spec, detection=spec.detection or cfg.map_iou)
    metrics.update(
        checkpoint=str(ckpt_path),
        checkpoint_kind=ckpt.kind,
        selection=ckpt.meta.get("selection"),
        test_list=str(test_list),
        gt_path=str(gt_path),
    )

    save_json(out_dir / "metrics.json", metrics)
    if cfg.metrics_json and not same_file(cfg.metrics_json, out_dir / "metrics.json"):
        save_json(cfg.metrics_json, metrics)
    save_npy(out_dir / "frame_scores.npy", pred.frame_scores().astype(np.float32))
    with atomic_write(out_dir / "snippets.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["video", "snippet", "start_frame", "score", "w_image", "w_event"])
        for r, s, wi, we in zip(rows, pred.scores, pred.w_image, pred.w_event):
            for i in range(s.size):
                w.writerow([r.stem, i, 16 * i, number(s[i]), number(wi[i]), number(we[i])])

    videos = video_results(rows, [s.size for s in pred.scores], spec)
    segs = segments_of(gt, videos)
    plots: list[Path] = []
    if cfg.plots:
        by_class: dict[str, list[VideoTrace]] = {}
        for i, v in enumerate(videos):
            trace = VideoTrace(v.name, pred.scores[i], pred.w_image[i], pred.w_event[i], segs[i])
            for c in v.classes:
                by_class.setdefault(c, []).append(trace)
        plots = plot_by_class(by_class, out_dir / "plots", cfg.plot_max_videos)

    page = None
    if cfg.report:
        report = evaluation_report(
            rows,
            videos,
            pred,
            gt.frames,
            segs,
            out_dir,
            f"test.py: {exp} on {dataset} ({len(rows)} videos)",
            [headline(metrics), f"checkpoint {ckpt_path}, test list {test_list}"],
            cfg.video_root,
        )
        page = write_report(out_dir / "report.html", report)

    tqdm.write(f"[test] {headline(metrics)}")
    if ckpt.meta.get("selection", {}) and ckpt.meta["selection"].get("mode") == "test":
        tqdm.write("[test] this checkpoint was selected on the test set: optimistic numbers")
    tqdm.write(format_table(metrics))
    tqdm.write(
        f"[test] wrote {out_dir}/metrics.json, frame_scores.npy, snippets.csv"
        + (f" and {len(plots)} plots in {out_dir / 'plots'}" if plots else "")
    )
    if page is not None:
        tqdm.write(f"[test] report: {page} (open it in a browser)")
    return metrics
