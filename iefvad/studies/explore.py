"""The uncertainty explorer (``test2.py``): degrade one modality at test time, measure the effect.

For each checkpoint, degraded modality (image / event), perturbation and level, the test list
is scored with that modality's features altered, and compared with the clean pass:

* ``attenuate``: a random fraction ``level`` (0..0.5 in the reference) of each video's snippets
  is multiplied by ``--attenuation`` (0.01, as the reference);
* ``noise``: Gaussian noise of std ``level x s`` is added to every snippet, ``s`` being the
  standard deviation of all values of that modality's test features (``--noise_absolute``:
  std ``level``);
* ``drop``: one contiguous span covering a fraction ``level`` of each video is set to zero
  (the sensor is off), at a random position.

Only real snippets are altered, never padding. The same seed gives the same snippets and noise
for every checkpoint, so the models face identical inputs. Metrics (docs/fusion.md): frame AUC
and AP, the Brier score of the frame scores, ``kl_clean_noisy`` (mean per-snippet Bernoulli KL
from the clean to the degraded anomaly probability), ``kl_hist`` (KL between the 20-bin
histograms of the clean and degraded snippet scores), and the mean fusion weight of each
modality on normal frames, on abnormal frames and on the altered snippets.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from iefvad.data.features import CLIP_LEN, num_chunks
from iefvad.data.groundtruth import check_gt_length
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.devices import resolve_device
from iefvad.engine.corruption import chunk_noise
from iefvad.engine.evaluate import Predictions, TestSet, load_test_set, predict
from iefvad.engine.metrics import auc_ap
from iefvad.engine.outpaths import check_output_dir, check_output_file
from iefvad.engine.report import EvaluationOptions, evaluation_inputs, experiment_name
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write, save_json
from iefvad.models.checkpoint import load_model
from iefvad.paths import check_outputs

PERTURBATIONS = ("attenuate", "noise", "drop")
MODALITIES = ("image", "event")
DEFAULT_LEVELS = {
    "attenuate": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "noise": (0.0, 0.5, 1.0, 2.0, 4.0),
    "drop": (0.0, 0.25, 0.5, 0.75, 1.0),
}
KL_EPS = 1e-6
"""Probabilities are clipped to ``[KL_EPS, 1 - KL_EPS]`` in the Bernoulli KL."""
HIST_BINS = 20
HIST_PRIOR = 0.5
"""Add-0.5 smoothing of the histogram counts in ``kl_hist`` (no empty bin)."""

COLUMNS = [
    "model",
    "fusion",
    "checkpoint",
    "modality",
    "perturbation",
    "level",
    "param",
    "affected_fraction",
    "auc",
    "ap",
    "brier",
    "kl_clean_noisy",
    "kl_hist",
    "w_image_normal",
    "w_image_abnormal",
    "w_event_normal",
    "w_event_abnormal",
    "w_image_affected",
    "w_event_affected",
]


@dataclass(frozen=True)
class Degradation:
    modality: str
    perturbation: str
    level: float


def chunk_offsets(test: TestSet) -> np.ndarray:
    """Index of each video's first chunk in ``test.image``."""
    counts = np.array([num_chunks(int(t)) for t in test.lengths])
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def affected_snippets(test: TestSet, d: Degradation, seed: int) -> np.ndarray:
    """``[C, 256]`` bool: the snippets ``d`` alters (a seeded choice per video)."""
    c = test.image.shape[0]
    flat = np.zeros(c * CLIP_LEN, dtype=bool)
    if d.level <= 0:
        return flat.reshape(c, CLIP_LEN)
    key = [seed, PERTURBATIONS.index(d.perturbation), int(round(d.level * 1e6))]
    rng = np.random.default_rng(key)
    for first, t in zip(chunk_offsets(test), test.lengths):
        t = int(t)
        base = int(first) * CLIP_LEN
        n = min(t, int(round(d.level * t)))
        if d.perturbation == "noise":
            idx = np.arange(t)
        elif d.perturbation == "attenuate":
            idx = rng.choice(t, size=n, replace=False)
        else:  # drop: one span
            start = int(rng.integers(0, t - n + 1))
            idx = np.arange(start, start + n)
        flat[base + idx] = True
    return flat.reshape(c, CLIP_LEN)


def feature_std(test: TestSet, modality: str) -> float:
    """Std of all values of one modality over the real (unpadded) test snippets."""
    x = test.image if modality == "image" else test.event
    valid = torch.arange(CLIP_LEN)[None, :] < test.chunk_lengths[:, None]
    return float(x[valid].double().std())


class Degrader:
    """``transform(image, event, chunk_index)`` for :func:`iefvad.engine.evaluate.predict`."""

    def __init__(
        self, d: Degradation, mask: np.ndarray, sigma: float, attenuation: float, seed: int
    ) -> None:
        self.d = d
        self.mask = torch.from_numpy(mask)
        self.sigma = sigma
        self.attenuation = attenuation
        self.seed = seed

    def __call__(self, image: torch.Tensor, event: torch.Tensor, chunks: torch.Tensor):
        x = (image if self.d.modality == "image" else event).clone()
        m = self.mask[chunks].to(x.device).unsqueeze(-1)
        if self.d.perturbation == "attenuate":
            x = torch.where(m, x * self.attenuation, x)
        elif self.d.perturbation == "drop":
            x = x.masked_fill(m, 0.0)
        else:  # noise: one generator per chunk, so the batch size does not matter
            x = torch.where(m, x + self.sigma * chunk_noise(x, chunks, self.seed), x)
        return (x, event) if self.d.modality == "image" else (image, x)


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over snippets of KL(Bern(p) || Bern(q)) in nats, probabilities clipped."""
    p = np.clip(p.astype(np.float64), KL_EPS, 1 - KL_EPS)
    q = np.clip(q.astype(np.float64), KL_EPS, 1 - KL_EPS)
    return float(np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))))


def histogram_kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) in nats between the smoothed 20-bin histograms of two sets of scores."""
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    hp = np.histogram(np.clip(p, 0, 1), edges)[0] + HIST_PRIOR
    hq = np.histogram(np.clip(q, 0, 1), edges)[0] + HIST_PRIOR
    hp, hq = hp / hp.sum(), hq / hq.sum()
    return float(np.sum(hp * np.log(hp / hq)))


def _mean_or_none(x: np.ndarray) -> float | None:
    if x.size == 0 or not np.isfinite(x).all():
        return None
    return float(x.mean())


def degradation_metrics(
    clean: Predictions,
    pred: Predictions,
    gt: np.ndarray,
    affected: Sequence[np.ndarray] | None,
) -> dict[str, Any]:
    """Metrics of one degraded pass against the clean one; ``affected``: per video, bool
    ``[T]`` of altered snippets (None for the clean pass)."""
    scores = pred.frame_scores().astype(np.float64)
    out: dict[str, Any] = dict(auc_ap(gt, scores))
    out["brier"] = float(np.mean((scores - gt) ** 2))
    p, q = np.concatenate(clean.scores), np.concatenate(pred.scores)
    out["kl_clean_noisy"] = bernoulli_kl(p, q)
    out["kl_hist"] = histogram_kl(p, q)
    normal, abnormal = gt < 0.5, gt >= 0.5
    for m, ws in (("image", pred.w_image), ("event", pred.w_event)):
        w = np.concatenate([np.repeat(x, SNIPPET_FRAMES) for x in ws]).astype(np.float64)
        out[f"w_{m}_normal"] = _mean_or_none(w[normal])
        out[f"w_{m}_abnormal"] = _mean_or_none(w[abnormal])
        if affected is None:
            out[f"w_{m}_affected"] = None
        else:
            sel = np.concatenate([x[a] for x, a in zip(ws, affected)])
            out[f"w_{m}_affected"] = _mean_or_none(sel)
    n = sum(a.size for a in affected) if affected is not None else 0
    out["affected_fraction"] = (
        float(sum(int(a.sum()) for a in affected) / n) if affected is not None and n else 0.0
    )
    return out


def per_video(mask: np.ndarray, test: TestSet) -> list[np.ndarray]:
    """``[C, 256]`` chunk layout -> per video bool ``[T]``."""
    out = []
    for first, t in zip(chunk_offsets(test), test.lengths):
        n = num_chunks(int(t))
        out.append(mask[first : first + n].reshape(-1)[: int(t)])
    return out


@dataclass(frozen=True, kw_only=True)
class ExploreConfig(EvaluationOptions):
    """One explorer run (``test2.py``'s flags, :mod:`iefvad.cli.explore`); None: the
    checkpoint's, the dataset's or the default."""

    ckpt_path: Sequence[Path] | None = None
    """One or more checkpoints; default ``checkpoints/<exp_name>/<exp_name>.pth``."""
    labels: Sequence[str] | None = None
    exp_name: str | None = None
    modality: Sequence[str] = MODALITIES
    perturbation: Sequence[str] = PERTURBATIONS
    attenuate_levels: Sequence[float] = DEFAULT_LEVELS["attenuate"]
    attenuation: float = 0.01
    noise_levels: Sequence[float] = DEFAULT_LEVELS["noise"]
    noise_absolute: bool = False
    drop_levels: Sequence[float] = DEFAULT_LEVELS["drop"]
    seed: int = 0
    out_dir: Path | None = None
    """Default ``results/<exp_name>/uncertainty``."""
    plots: bool = True
    threads: int | None = None


MAX_NOISE = 1e4
"""Largest ``--noise_levels`` value: 10^4 feature stds (or absolute units) drown any signal;
beyond, float32 features overflow (1e308 is inf)."""


def check_levels(cfg: ExploreConfig) -> dict[str, list[float]]:
    """Validated levels per chosen perturbation, level 0 (the clean pass) always included;
    errors name the flag."""
    levels = {
        "attenuate": cfg.attenuate_levels,
        "noise": cfg.noise_levels,
        "drop": cfg.drop_levels,
    }
    for name, vals in levels.items():
        flag = f"--{name}_levels"
        if any(not math.isfinite(v) or v < 0 for v in vals):
            what = "noise stds" if name == "noise" else "fractions of the video"
            raise UserInputError(f"{flag} are {what}, so each must be >= 0; got {vals}")
        if name != "noise" and any(v > 1 for v in vals):
            raise UserInputError(f"{flag} are fractions of the video: 0..1, got {vals}")
        if name == "noise" and any(v > MAX_NOISE for v in vals):
            raise UserInputError(
                f"{flag} are noise stds: at most {MAX_NOISE:g} (already far beyond any signal; "
                f"larger ones overflow the features to inf), got {vals}"
            )
    if not 0 <= cfg.attenuation <= 1:
        raise UserInputError(
            f"--attenuation {cfg.attenuation}: the factor attenuated snippets are multiplied "
            "by must be in [0, 1] (the reference uses 0.01)"
        )
    for flag, value, low in (
        ("--seed", cfg.seed, 0),
        ("--batch_size", cfg.batch_size, 1),
        ("--workers", cfg.workers, 1),
        ("--threads", cfg.threads, 1),
        ("--heads", cfg.heads, 1),
    ):
        if value is not None and value < low:
            raise UserInputError(f"{flag} must be >= {low}, got {value}")
    if cfg.nu is not None and not (math.isfinite(cfg.nu) and cfg.nu > 0):
        raise UserInputError(
            f"--nu is a Student-t degrees of freedom: give a value > 0, got {cfg.nu}"
        )
    if cfg.labels and len(cfg.labels) != len(cfg.ckpt_path or [None]):
        raise UserInputError(
            f"--labels gives {len(cfg.labels)} names for {len(cfg.ckpt_path or [None])} "
            "checkpoint(s): give one per --ckpt_path"
        )
    if cfg.labels and len(set(cfg.labels)) != len(cfg.labels):
        raise UserInputError(
            f"--labels {' '.join(cfg.labels)}: names repeat, so the rows of two checkpoints "
            "would merge in the CSV and plots; give each checkpoint its own name"
        )
    return {k: sorted(set(v) | {0.0}) for k, v in levels.items() if k in cfg.perturbation}


def run_explore(cfg: ExploreConfig) -> list[dict[str, Any]]:
    """Run every degradation for every checkpoint; write the CSV, JSON and plots.

    The CSV and JSON are rewritten (atomically) after every pass, so a crash or Ctrl-C keeps
    the finished rows (the JSON then says ``"complete": false``)."""
    levels = check_levels(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    exp = experiment_name(cfg.exp_name, cfg.ckpt_path[0] if cfg.ckpt_path else None, cfg.dataset)
    ckpts = cfg.ckpt_path or [Path("checkpoints") / str(exp) / f"{exp}.pth"]
    out_dir = cfg.out_dir or Path("results") / str(exp) / "uncertainty"
    csv_path, json_path = out_dir / "uncertainty.csv", out_dir / "uncertainty.json"
    plot_paths = [out_dir / f"{n}.png" for n in ("auc_vs_level", "ap_vs_level", "weight_shift")]
    # before any pass: the outputs can be written and none of them is an input
    check_output_dir(out_dir, "--out_dir")
    outputs = [("--out_dir", p) for p in (csv_path, json_path, *plot_paths)]
    for _, p in outputs:
        check_output_file(p, "--out_dir")
    given = [("--ckpt_path", c) for c in ckpts]
    given += [("--test_list", cfg.test_list), ("--gt_path", cfg.gt_path)]
    check_outputs(outputs, given)
    device = resolve_device(cfg.device)
    loaded = [load_model(c, device, heads=cfg.heads, nu=cfg.nu, noise=cfg.noise) for c in ckpts]
    inputs = evaluation_inputs(loaded[0][1].meta, cfg)
    check_outputs(outputs, [*given, *inputs.files()])
    dataset, rows, gt = inputs.dataset, inputs.rows, inputs.gt
    test_list, gt_path = inputs.test_list, inputs.gt_path
    labels = cfg.labels or _labels(ckpts, [c.config.fusion for _, c in loaded])
    progress = cfg.progress
    meta = {
        "checkpoints": [str(c) for c in ckpts],
        "labels": labels,
        "dataset": dataset,
        "test_list": str(test_list),
        "gt_path": str(gt_path),
        "seed": cfg.seed,
        "attenuation": cfg.attenuation,
        "noise_absolute": cfg.noise_absolute,
        "levels": levels,
    }

    sets: dict[int, TestSet] = {}
    grid = [Degradation(m, p, lv) for m in cfg.modality for p, lvs in levels.items() for lv in lvs]
    results: list[dict[str, Any]] = []
    kept = 0  # rows on disk

    def save(complete: bool) -> None:
        nonlocal kept
        write_rows(results, csv_path)
        save_json(json_path, {**meta, "complete": complete, "rows": results})
        kept = len(results)

    try:
        for label, path, (model, ckpt) in zip(labels, ckpts, loaded):
            dim = ckpt.config.dim
            if dim not in sets:
                sets[dim] = load_test_set(rows, dim, cfg.nan_policy, cfg.workers, progress)
            test = sets[dim]
            check_gt_length(gt, [r.stem for r in rows], [int(t) for t in test.lengths])
            stds = {m: feature_std(test, m) for m in cfg.modality}
            clean = predict(model, test, device, cfg.batch_size, cfg.amp)
            _check_finite_scores(clean, path)
            base = degradation_metrics(clean, clean, gt.frames, None)
            for d in tqdm(grid, desc=f"degrading ({label})", disable=not progress, unit="pass"):
                sigma = d.level if cfg.noise_absolute else d.level * stds[d.modality]
                param = {"attenuate": cfg.attenuation, "noise": sigma, "drop": 0.0}
                row: dict[str, Any] = {
                    "model": label,
                    "fusion": ckpt.config.fusion,
                    "checkpoint": str(path),
                    "modality": d.modality,
                    "perturbation": d.perturbation,
                    "level": d.level,
                    "param": param[d.perturbation],
                }
                if d.level == 0:
                    row.update(base)
                else:
                    mask = affected_snippets(test, d, cfg.seed)
                    degrade = Degrader(d, mask, sigma, cfg.attenuation, cfg.seed)
                    pred = predict(model, test, device, cfg.batch_size, cfg.amp, degrade)
                    row.update(degradation_metrics(clean, pred, gt.frames, per_video(mask, test)))
                results.append(row)
                save(complete=False)
            tqdm.write(_summary_line(label, ckpt.config.fusion, results))
    except BaseException:
        if kept:
            tqdm.write(
                f"[test2] stopped after {len(results)} of {len(grid) * len(ckpts)} passes; the "
                f"{kept} rows saved are in {csv_path} and {json_path} (marked incomplete)"
            )
        raise
    save(complete=True)
    written = [csv_path, json_path]
    if cfg.plots:
        from iefvad.viz.degradation import plot_degradation, plot_weight_shift

        written.append(plot_degradation(results, plot_paths[0]))
        written.append(plot_degradation(results, plot_paths[1], "ap", "frame AP"))
        written.append(plot_weight_shift(results, plot_paths[2]))
    tqdm.write(f"[test2] wrote {', '.join(str(p) for p in written)}")
    return results


def _check_finite_scores(pred: Predictions, path: Path) -> None:
    """Stop when a checkpoint's clean pass gives NaN/inf scores (its weights are finite: the
    features or a fp16 overflow are to blame)."""
    if not all(np.isfinite(s).all() for s in pred.scores):
        raise UserInputError(
            f"checkpoint {path} gives NaN/inf scores on the clean test features: check the "
            "features for NaN (--nan_policy) and run without --amp"
        )


def _labels(paths: Sequence[Path], fusions: Sequence[str]) -> list[str]:
    """Checkpoint names for plots: the stem, or parent/stem when stems repeat, + fusion."""
    stems = [p.stem for p in paths]
    names = [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    out = [f"{n} ({f})" for n, f in zip(names, fusions)]
    return [f"{o} #{i}" if out.count(o) > 1 else o for i, o in enumerate(out)]


def _summary_line(label: str, fusion: str, rows: Sequence[dict[str, Any]]) -> str:
    mine = [r for r in rows if r["model"] == label]
    clean = next((r for r in mine if r["level"] == 0), {"auc": None})
    worst = min(mine, key=lambda r: r["auc"] if r["auc"] is not None else 1.0)
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    return (
        f"[test2] {label}: clean AUC {fmt(clean['auc'])}; lowest AUC {fmt(worst['auc'])} "
        f"({worst['perturbation']} {worst['modality']} at {worst['level']:g})"
    )


def write_rows(rows: Sequence[dict[str, Any]], path: Path) -> None:
    def fmt(v: Any) -> Any:
        if v is None:
            return ""
        return f"{v:.6g}" if isinstance(v, float) else v

    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt(r.get(k)) for k in COLUMNS})
