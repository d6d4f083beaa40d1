"""The reliability benchmark: do the fusion weights follow a degraded modality?

Per checkpoint and corruption (one modality; noise of 0.5-4 feature std, attenuation, dropped,
frozen, and the held-out kinds shuffled and swapped for another video's features; on a
contiguous span of each test video): the frame AUC/AP, the AUC lost against the
clean pass, the degraded modality's mean weight on the altered snippets, and the AUROC with
which its weight detects altered snippets (positives: altered snippets of the degraded pass;
negatives: every snippet of the clean pass; score ``1 - w``). Run by ``ablate.py
--corruption_bench`` or ``python -m iefvad.cli.reliability``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from iefvad.engine.corruption import HELD_OUT_KINDS, apply_corruption, chunk_noise


@dataclass(frozen=True)
class Condition:
    """One test-time corruption: ``modality`` altered by ``kind`` (noise: ``level`` feature
    std) on a contiguous span covering ``fraction`` of each test video."""

    modality: str
    kind: str
    level: float
    fraction: float

    @property
    def name(self) -> str:
        lv = f"{self.level:g}" if self.kind == "noise" else ""
        return f"{self.modality}:{self.kind}{lv}@{self.fraction:g}"


DEFAULT_NOISE = (0.5, 1.0, 2.0, 4.0)


def default_conditions(
    fractions: Sequence[float] = (1.0,),
    noise: Sequence[float] = DEFAULT_NOISE,
    kinds: Sequence[str] = ("attenuate", "drop", "freeze") + HELD_OUT_KINDS,
    modalities: Sequence[str] = ("image", "event"),
) -> list[Condition]:
    out = []
    for f in fractions:
        for m in modalities:
            out += [Condition(m, "noise", float(s), f) for s in noise]
            out += [Condition(m, k, 1.0, f) for k in kinds]
    return out


def span_masks(test, fraction: float, seed: int) -> np.ndarray:
    """``[C, 256]`` bool over the test chunks: one contiguous span of ``fraction`` of each
    video's snippets, at a seeded random place (all snippets when ``fraction`` is 1)."""
    from iefvad.data.features import CLIP_LEN
    from iefvad.studies.explore import chunk_offsets

    c = test.image.shape[0]
    flat = np.zeros(c * CLIP_LEN, dtype=bool)
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    for first, t in zip(chunk_offsets(test), test.lengths):
        t = int(t)
        n = max(1, min(t, int(round(fraction * t))))
        start = int(rng.integers(0, t - n + 1))
        base = int(first) * CLIP_LEN
        flat[base + start : base + start + n] = True
    return flat.reshape(c, CLIP_LEN)


def donor_chunks(test) -> np.ndarray:
    """``[C]``: for each test chunk, the chunk whose features ``swap`` puts in its place: the
    same chunk position (or the last one it has) of the video half the list away (another
    video whenever there are two)."""
    from iefvad.studies.explore import chunk_offsets

    first = chunk_offsets(test)
    counts = np.diff(np.r_[first, test.image.shape[0]])
    nv = len(first)
    out = np.zeros(test.image.shape[0], dtype=np.int64)
    for v in range(nv):
        d = (v + max(1, nv // 2)) % nv
        for k in range(int(counts[v])):
            out[first[v] + k] = first[d] + min(k, int(counts[d]) - 1)
    return out


def donor_rows(x: Tensor, lengths: Tensor) -> Tensor:
    """Each row ``[T, D]`` of ``x`` with its first ``lengths`` snippets repeated over all
    ``T`` positions (a donor chunk shorter than the one it replaces fills it in a loop)."""
    t = x.shape[1]
    pos = torch.arange(t)[None, :] % lengths.clamp(min=1)[:, None]
    return x.gather(1, pos.to(x.device).unsqueeze(-1).expand_as(x))


class BenchDegrader:
    """``transform`` for :func:`iefvad.engine.evaluate.predict`: one condition, seeded noise per
    chunk (so the batch size does not matter); ``donor``: the modality's ``[C, T, D]``
    features to swap in (``swap``)."""

    def __init__(
        self, cond: Condition, mask: np.ndarray, std: float, seed: int, donor: Tensor | None = None
    ) -> None:
        self.cond, self.mask, self.std, self.seed = cond, torch.from_numpy(mask), std, seed
        self.donor = donor

    def __call__(self, image: Tensor, event: Tensor, chunks: Tensor):
        x = image if self.cond.modality == "image" else event
        m = self.mask[chunks].to(x.device)
        kind = self.cond.kind
        noise = chunk_noise(x, chunks, self.seed) if kind in ("noise", "shuffle") else None
        donor = None if self.donor is None else self.donor[chunks.cpu()]
        y = apply_corruption(x, m, kind, self.cond.level * self.std, noise=noise, donor=donor)
        return (y, event) if self.cond.modality == "image" else (image, y)


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if pos.size == 0 or neg.size == 0:
        return None
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    return float(roc_auc_score(y, np.r_[pos, neg]))


BENCH_COLUMNS = [
    "variant",
    "seed",
    "fusion",
    "condition",
    "modality",
    "kind",
    "level",
    "fraction",
    "auc",
    "ap",
    "auc_clean",
    "auc_lost",
    "w_deg_affected",
    "w_deg_clean",
    "detect_auroc",
]


def bench_checkpoint(
    path: Path,
    test,
    gt: np.ndarray,
    conditions: Sequence[Condition],
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Every condition on one checkpoint; rows with the :data:`BENCH_COLUMNS` metrics."""
    from iefvad.engine.evaluate import predict
    from iefvad.engine.metrics import auc_ap
    from iefvad.models.checkpoint import load_model
    from iefvad.studies.explore import feature_std, per_video

    model, ckpt = load_model(path, device)
    clean = predict(model, test, device)
    base = auc_ap(gt, clean.frame_scores().astype(np.float64))
    stds = {m: feature_std(test, m) for m in ("image", "event")}
    donors = {}
    if any(c.kind == "swap" for c in conditions):
        idx = torch.from_numpy(donor_chunks(test))
        lens = test.chunk_lengths[idx]
        donors = {
            "image": donor_rows(test.image[idx], lens),
            "event": donor_rows(test.event[idx], lens),
        }
    rows = []
    for cond in conditions:
        mask = span_masks(test, cond.fraction, seed)
        deg = BenchDegrader(cond, mask, stds[cond.modality], seed, donors.get(cond.modality))
        pred = predict(model, test, device, transform=deg)
        m = auc_ap(gt, pred.frame_scores().astype(np.float64))
        aff = np.concatenate(per_video(mask, test))
        w_deg = np.concatenate(pred.w_image if cond.modality == "image" else pred.w_event)
        w_cln = np.concatenate(clean.w_image if cond.modality == "image" else clean.w_event)
        rows.append(
            {
                "fusion": ckpt.config.fusion,
                "condition": cond.name,
                "modality": cond.modality,
                "kind": cond.kind,
                "level": cond.level,
                "fraction": cond.fraction,
                "auc": m["auc"],
                "ap": m["ap"],
                "auc_clean": base["auc"],
                "auc_lost": None if m["auc"] is None else base["auc"] - m["auc"],
                "w_deg_affected": float(w_deg[aff].mean()),
                "w_deg_clean": float(w_cln[aff].mean()),
                "detect_auroc": _auroc(1.0 - w_deg[aff], 1.0 - w_cln),
            }
        )
    return rows


METRICS = ("auc", "auc_lost", "w_deg_affected", "detect_auroc", "auc_clean")


def summarise_bench(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (variant, condition): mean and sample std over seeds of :data:`METRICS`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["condition"]), []).append(r)
    out = []
    for rs in groups.values():
        s: dict[str, Any] = {
            k: rs[0][k] for k in ("variant", "condition", "modality", "kind", "level", "fraction")
        }
        s["seeds"] = len(rs)
        for k in METRICS:
            v = np.array([r[k] for r in rs if r[k] is not None], dtype=np.float64)
            s[f"{k}_mean"] = float(v.mean()) if v.size else None
            s[f"{k}_std"] = float(v.std(ddof=1)) if v.size > 1 else None
        out.append(s)
    return out


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> None:
    from iefvad.fileio import atomic_write

    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, list(cols), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _pm(s: dict[str, Any], key: str, scale: float = 1.0, digits: int = 1) -> str:
    m, sd = s.get(f"{key}_mean"), s.get(f"{key}_std")
    if m is None:
        return "n/a"
    return f"{scale * m:.{digits}f}" + (f" ± {scale * sd:.{digits}f}" if sd is not None else "")


def goal_table(summary: Sequence[dict[str, Any]], baseline: str | None) -> str:
    """Markdown: per variant and goal condition (noise 4, drop, and the other kinds: freeze,
    attenuate and the held-out shuffle / swap; whole video or the widest fraction run), the
    AUC, AUC lost (and its ratio to the baseline's), weight, detection."""
    fr = max((s["fraction"] for s in summary), default=1.0)
    picks = [
        s
        for s in summary
        if s["fraction"] == fr
        and ((s["kind"] == "noise" and s["level"] == 4.0) or s["kind"] != "noise")
    ]
    clean = {s["variant"]: s for s in summary}
    lost_base = {s["condition"]: s["auc_lost_mean"] for s in picks if s["variant"] == baseline}
    lines = [
        "| variant | clean AUC | corruption | AUC | AUC lost | lost / baseline | "
        "weight on affected | detection AUROC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in picks:
        lb = lost_base.get(s["condition"])
        ratio = (
            f"{s['auc_lost_mean'] / lb:.2f}"
            if lb and s["auc_lost_mean"] is not None and lb > 1e-9
            else ""
        )
        lines.append(
            f"| {s['variant']} | {_pm(clean[s['variant']], 'auc_clean', 100)} | "
            f"{s['modality']} {s['kind']}{' 4 std' if s['kind'] == 'noise' else ''} | "
            f"{_pm(s, 'auc', 100)} | {_pm(s, 'auc_lost', 100)} | {ratio} | "
            f"{_pm(s, 'w_deg_affected', 1, 3)} | {_pm(s, 'detect_auroc', 1, 3)} |"
        )
    return "\n".join(lines)


def _legend_below(fig, axes) -> None:
    """One legend for the figure, under the panels (variant labels are long)."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = max(1, len(labels))
    fig.tight_layout(rect=(0, 0.02 + 0.022 * rows, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=7, frameon=False)


def plot_bench(summary: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """``noise.png`` (AUC, weight, detection vs noise level, per modality) and ``kinds.png``
    (the same for attenuate / drop / freeze, bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(s["variant"] for s in summary))
    fr = max((s["fraction"] for s in summary), default=1.0)
    mets = [
        ("auc", "frame AUC"),
        ("w_deg_affected", "weight of degraded modality"),
        ("detect_auroc", "detection AUROC (weight)"),
    ]
    paths = []
    fig, axes = plt.subplots(2, 3, figsize=(13, 9), squeeze=False)
    for i, mod in enumerate(("image", "event")):
        for j, (key, title) in enumerate(mets):
            ax = axes[i][j]
            for v in variants:
                ss = sorted(
                    (
                        s
                        for s in summary
                        if s["variant"] == v
                        and s["modality"] == mod
                        and s["kind"] == "noise"
                        and s["fraction"] == fr
                    ),
                    key=lambda s: s["level"],
                )
                if not ss:
                    continue
                x = [s["level"] for s in ss]
                y = [s[f"{key}_mean"] or np.nan for s in ss]
                e = [s[f"{key}_std"] or 0.0 for s in ss]
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=v)
            ax.set_title(f"{mod} noise: {title}", fontsize=9)
            ax.set_xlabel("noise std (feature std)")
            ax.grid(alpha=0.3)
    _legend_below(fig, axes)
    paths.append(out / "noise.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    kinds = [
        k
        for k in ("attenuate", "drop", "freeze") + HELD_OUT_KINDS
        if any(s["kind"] == k for s in summary)
    ]
    if kinds:
        fig, axes = plt.subplots(2, 3, figsize=(13, 9), squeeze=False)
        width = 0.8 / max(1, len(variants))
        for i, mod in enumerate(("image", "event")):
            for j, (key, title) in enumerate(mets):
                ax = axes[i][j]
                for n, v in enumerate(variants):
                    ys, es = [], []
                    for k in kinds:
                        s = next(
                            (
                                s
                                for s in summary
                                if s["variant"] == v
                                and s["modality"] == mod
                                and s["kind"] == k
                                and s["fraction"] == fr
                            ),
                            None,
                        )
                        ys.append(
                            np.nan if s is None or s[f"{key}_mean"] is None else s[f"{key}_mean"]
                        )
                        es.append(0.0 if s is None or s[f"{key}_std"] is None else s[f"{key}_std"])
                    ax.bar(
                        np.arange(len(kinds)) + n * width, ys, width, yerr=es, label=v, capsize=2
                    )
                ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds)
                ax.set_title(f"{mod}: {title}", fontsize=9)
                ax.grid(alpha=0.3, axis="y")
        _legend_below(fig, axes)
        paths.append(out / "kinds.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def run_benchmark(
    runs: Sequence[tuple[str, int, Path]],
    test_list: Path,
    gt_path: Path,
    out: Path,
    conditions: Sequence[Condition] | None = None,
    seed: int = 0,
    baseline: str | None = None,
    device: str = "cpu",
    meta: dict[str, Any] | None = None,
    event_dir: str = "event_thr_10",
) -> list[dict[str, Any]]:
    """Benchmark ``runs`` ((variant, seed, checkpoint)); write ``runs.csv``, ``summary.csv``,
    ``goals.md``, ``bench.json`` and the plots under ``out``; return the summary."""
    from iefvad.data.csv_lists import read_list
    from iefvad.data.groundtruth import load_gt
    from iefvad.engine.evaluate import load_test_set
    from iefvad.fileio import save_json

    conditions = list(conditions or default_conditions())
    test = load_test_set(read_list(test_list, None, event_dir), progress=False)
    gt = load_gt(gt_path).frames
    rows: list[dict[str, Any]] = []
    for variant, s, path in runs:
        for r in bench_checkpoint(Path(path), test, gt, conditions, seed, device):
            rows.append({"variant": variant, "seed": s, **r})
            print(
                f"[reliability] {variant} seed {s} {r['condition']}: AUC "
                f"{100 * (r['auc'] or 0):.1f} (clean {100 * r['auc_clean']:.1f}) weight "
                f"{r['w_deg_affected']:.3f} detect {r['detect_auroc'] or float('nan'):.3f}",
                flush=True,
            )
    summary = summarise_bench(rows)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "runs.csv", rows, BENCH_COLUMNS)
    scols = list(summary[0]) if summary else ["variant"]
    _write_csv(out / "summary.csv", summary, scols)
    baseline = baseline or (runs[0][0] if runs else None)
    table = goal_table(summary, baseline)
    (out / "goals.md").write_text(
        "# Reliability benchmark: goal conditions\n\n"
        + (f"Command: `{meta['command']}`\n\n" if meta and "command" in meta else "")
        + f"Baseline for `lost / baseline`: `{baseline}`. Mean ± sample std over seeds; AUC "
        "in percent; weight = the degraded modality's mean fusion weight on the altered "
        "snippets; detection AUROC = how well `1 - weight` separates altered snippets from "
        "the clean pass's snippets.\n\n" + table + "\n"
    )
    save_json(
        out / "bench.json",
        {
            **(meta or {}),
            "conditions": [c.name for c in conditions],
            "rows": rows,
            "summary": summary,
        },
    )
    plot_bench(summary, out)
    print(table)
    return summary
