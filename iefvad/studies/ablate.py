"""The fusion ablation (``ablate.py``): every variant through the same training loop and seeds.

Each variant is a fusion rule (:data:`iefvad.models.model.FUSIONS`), optionally with model fields,
written ``fusion[:field=value...]`` (``student_t:nu=2``, ``kalman:noise=gaussian``). Each
(variant, seed) run trains with the same data, optimiser, epochs and seed, is evaluated on the
test list, and lands in ``<out_dir>/runs/<variant>/seed<k>/``. The outputs are:

* ``runs.csv``: one row per run (AUC, AP, training seconds, parameters, checkpoint);
* ``summary.csv`` and ``ablation.md``: per variant, mean and sample standard deviation over
  seeds (and min / max), the table docs/fusion.md quotes;
* ``ablation.png``: AUC and AP bars (mean, error bar = standard deviation, dots = seeds);
* ``ablation.json``: the command, the machine, the data and every number.

A variant can also carry a training recipe (:data:`iefvad.engine.reliability.VARIANT_KEYS`):
``reference:recipe=reliable:weight_power=3``, ``reference:corrupt=noise+drop``. ``recipe=NAME``
sets the training recipe (corruption and reliability term) only: the model fields that
``main.py --recipe NAME`` also sets (:data:`iefvad.engine.reliability.RECIPE_MODEL`, e.g.
``weight_power 3`` for ``reliable``) are keys of their own, so that the variant strings of the
published tables keep their meaning. With
``--corruption_bench`` every run is then benchmarked under test-time corruption
(:func:`iefvad.studies.reliability_bench.run_benchmark`, ``<out_dir>/corruption/``).

``--synth KEY=VALUE ...`` first generates a feature set
(:class:`iefvad.synthetic.features.SynthSpec` fields) under ``<out_dir>/features`` and runs on it.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iefvad.devices import resolve_device
from iefvad.engine.config import TrainConfig
from iefvad.engine.reliability import (
    VARIANT_KEYS,
    TrainingRecipe,
    require_stats_head,
    variant_bool,
    variant_recipe,
)
from iefvad.errors import UserInputError
from iefvad.fileio import atomic_write, save_json
from iefvad.models.model import FUSIONS, ModelConfig
from iefvad.paths import check_outputs, safe_name
from iefvad.stored import Bound, check_value
from iefvad.synthetic.features import SynthSpec, make_feature_set

DEFAULT_VARIANTS = FUSIONS


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a label and the ModelConfig fields it sets."""

    label: str
    model: dict[str, Any]
    recipe: dict[str, Any] = field(default_factory=dict)
    """Training recipe fields (:data:`iefvad.engine.reliability.VARIANT_KEYS`), e.g.
    ``corrupt=``."""

    @property
    def fusion(self) -> str:
        return str(self.model["fusion"])


def _convert(name: str, text: str, kind: Any, where: str) -> Any:
    kind = str(kind)
    try:
        if "bool" in kind:
            return variant_bool(text)
        if "int" in kind and "float" not in kind and "tuple" not in kind:
            return int(text)
        if "float" in kind and "tuple" not in kind:
            return float(text)
        if "tuple" in kind:
            return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserInputError(f"{where}: {name}={text!r} is not a valid {kind}") from None
    return text


def parse_variant(text: str) -> Variant:
    """``fusion[:field=value...]`` -> :class:`Variant` (values typed by ModelConfig)."""
    head, *pairs = text.split(":")
    if head not in FUSIONS:
        raise UserInputError(
            f"--variants: unknown fusion {head!r} in {text!r}; choose from {', '.join(FUSIONS)}"
        )
    types = {f.name: f.type for f in fields(ModelConfig)}
    model: dict[str, Any] = {"fusion": head}
    recipe: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key in VARIANT_KEYS:
            recipe[key] = value
            continue
        if not sep or key not in types or key in ("fusion", "dim"):
            allowed = ", ".join(k for k in types if k not in ("fusion", "dim"))
            raise UserInputError(
                f"--variants: {pair!r} in {text!r} is not field=value with a model field "
                f"({allowed})"
            )
        model[key] = _convert(key, value, types[key], f"--variants {text!r}")
    rec = variant_recipe(recipe, f"--variants {text!r}") if recipe else {}
    if rec:
        reliability = TrainingRecipe.from_record(rec).reliability
        require_stats_head(
            reliability, bool(model.get("variance_temporal")), f"--variants {text!r}: "
        )
    return Variant(text, model, rec)


_COUNT = Bound("int", 0, 100_000)
_SCALE = Bound("float", 0.0, 1e4)
SYNTH_BOUNDS = {
    **dict.fromkeys(("train_normal", "train_abnormal", "test_normal", "test_abnormal"), _COUNT),
    "dim": Bound("int", 1, 8192),
    "crops": Bound("int", 1, 10),
    "scenes": Bound("int", 1, 100_000),
    "t_min": Bound("int", 1, 100_000),
    "t_max": Bound("int", 1, 100_000),
    "t_median": Bound("float", 1.0, 100_000.0),
    "seed": Bound("int", 0, 2**32 - 1),
    **dict.fromkeys(("t_sigma", "signal", "noise", "scene", "scene_jitter", "burst_sigma"), _SCALE),
    "burst_fraction": Bound("float", 0.0, 1.0),
}
"""Ranges of the numeric :class:`SynthSpec` fields ``--synth`` may set: a generated set
stays within memory and its numbers finite."""


def parse_synth(pairs: Sequence[str]) -> SynthSpec:
    """``KEY=VALUE`` strings -> :class:`SynthSpec` (``--synth signal_modality=image``)."""
    types = {f.name: f.type for f in fields(SynthSpec)}
    kw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise UserInputError(
                f"--synth: {pair!r} is not KEY=VALUE with a SynthSpec field ({', '.join(types)})"
            )
        kw[key] = _convert(key, value, types[key], "--synth")
        if key in SYNTH_BOUNDS:
            check_value(kw[key], SYNTH_BOUNDS[key], "--synth", key, "give a value in range")
    try:
        return SynthSpec(**kw)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"--synth: {e}") from e


@dataclass
class RunRecord:
    variant: str
    fusion: str
    seed: int
    auc: float | None
    ap: float | None
    train_seconds: float
    parameters: int
    checkpoint: str

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


OUTPUT_FILES = ("runs.csv", "summary.csv", "ablation.md", "ablation.json", "ablation.png")
"""What an ablation writes into its ``--out_dir`` (besides ``runs/`` and ``features/``)."""


def run_dir(out_dir: Path, variant: Variant, seed: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-=" else "_" for c in variant.label)
    return out_dir / "runs" / safe_name(safe) / f"seed{seed}"


def run_one(
    base: TrainConfig, variant: Variant, seed: int, out_dir: Path, reuse: bool
) -> RunRecord:
    """Train and test one (variant, seed); with ``reuse``, read a finished run instead."""
    from iefvad.engine.train import train

    where = run_dir(out_dir, variant, seed)
    done = where / "result.json"
    if reuse and done.is_file():
        return RunRecord(**json.loads(done.read_text()))
    cfg = replace(
        base,
        seed=seed,
        model={**base.model, **variant.model},
        uncertainty=variant.recipe or base.uncertainty,
        exp_name="model",
        ckpt_dir=where,
        final_test=True,
    )
    result = train(cfg)
    m = result.test_metrics or {}
    rec = RunRecord(
        variant.label,
        variant.fusion,
        seed,
        m.get("auc"),
        m.get("ap"),
        round(result.train_seconds, 3),
        result.parameters,
        os.path.relpath(result.checkpoint, out_dir),
    )
    save_json(done, rec.__dict__)
    return rec


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def summarise(records: Sequence[RunRecord], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant (in ``order``): seeds, AUC / AP / seconds statistics, parameters."""
    out = []
    for label in order:
        rs = [r for r in records if r.variant == label]
        if not rs:
            continue
        row: dict[str, Any] = {"variant": label, "fusion": rs[0].fusion, "seeds": len(rs)}
        for key in ("auc", "ap", "train_seconds"):
            for stat, val in _stats([getattr(r, key) for r in rs]).items():
                row[f"{key}_{stat}"] = val
        row["parameters"] = rs[0].parameters
        out.append(row)
    return out


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table (percent; mean ± sample std over seeds)."""
    lines = [
        "| variant | AUC (%) | AP (%) | AUC min-max (%) | train s | params | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        span = (
            f"{100 * r['auc_min']:.2f}-{100 * r['auc_max']:.2f}"
            if r["auc_min"] is not None and r["seeds"] > 1
            else ""
        )
        secs = r["train_seconds_mean"]
        lines.append(
            f"| {r['variant']} | {_pct(r['auc_mean'], r['auc_std'])} | "
            f"{_pct(r['ap_mean'], r['ap_std'])} | {span} | {secs:.1f} | "
            f"{r['parameters']:,} | {r['seeds']} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line naming the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    threads = torch.get_num_threads()
    return (
        f"{platform.machine()} {cpu}, {os.cpu_count()} CPUs visible, torch {torch.__version__}"
        f" ({threads} threads)"
    )


def write_outputs(
    records: Sequence[RunRecord],
    summary: Sequence[dict[str, Any]],
    out_dir: Path,
    meta: dict[str, Any],
    plot: bool = True,
) -> list[Path]:
    """runs.csv, summary.csv, ablation.md, ablation.json and (``plot``) ablation.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in OUTPUT_FILES[:3]]
    with atomic_write(paths[0], "w") as f:
        w = csv.DictWriter(f, RunRecord.columns(), lineterminator="\n")
        w.writeheader()
        w.writerows(r.__dict__ for r in records)
    with atomic_write(paths[1], "w") as f:
        w = csv.DictWriter(f, list(summary[0]) if summary else ["variant"], lineterminator="\n")
        w.writeheader()
        w.writerows(summary)
    head = [
        f"# Fusion ablation: {meta.get('title', '')}".rstrip(": "),
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']}; device {meta['device']}.",
        "",
        f"Data: {meta['data']}",
        "",
        "Frame-level AUC / AP on the test list, mean ± sample standard deviation over "
        f"seeds {', '.join(map(str, meta['seeds']))}; `train s` is the mean wall time of the "
        "training loop; `params` counts the parameters the variant uses.",
        "",
    ]
    with atomic_write(paths[2], "w") as f:
        f.write("\n".join(head) + "\n" + markdown_table(summary) + "\n")
    save_json(
        out_dir / "ablation.json",
        {**meta, "runs": [r.__dict__ for r in records], "summary": list(summary)},
    )
    paths.append(out_dir / "ablation.json")
    if plot and summary:
        from iefvad.viz.degradation import plot_ablation

        paths.append(plot_ablation(summary, records, out_dir / "ablation.png", meta.get("title")))
    return paths


@dataclass(frozen=True)
class AblationConfig:
    """One ablation (``ablate.py``'s flags, :mod:`iefvad.cli.ablate`): the training every run
    shares, and what varies between runs."""

    base: TrainConfig
    """Data, optimisation and model options of every run (seed, fusion and folder are set per
    run). With ``synth`` its lists are replaced by the generated ones."""
    variants: Sequence[str] = DEFAULT_VARIANTS
    """``fusion[:field=value...]`` (:func:`parse_variant`)."""
    seeds: Sequence[int] = (42,)
    out_dir: Path = Path("results/ablation_ucfcrime")
    synth: SynthSpec | None = None
    """Generate this feature set under ``<out_dir>/features`` first and run on it."""
    reuse: bool = False
    """Keep runs that already finished."""
    threads: int | None = None
    plot: bool = True
    dataset: str = "ucfcrime"
    title: str = ""
    """Names the data in the table and plot (default: the dataset)."""
    command: str = ""
    """The command line, recorded in ablation.md and ablation.json."""
    corruption_bench: bool = False
    preset: str = ""
    """The preset and why (``small (--preset auto: ...)``), printed first: the presets set
    more than the flags an ablation usually names (``feature_noise``, ``min_steps``)."""
    """Then run the reliability benchmark on every run (``<out_dir>/corruption/``)."""


def run_ablation(cfg: AblationConfig) -> list[dict[str, Any]]:
    """(Generate,) train every variant x seed, write the outputs; return the summary."""
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise UserInputError(f"--threads must be >= 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)
    variants = [parse_variant(v) for v in cfg.variants]
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise UserInputError(f"--variants lists a variant twice: {' '.join(labels)}")
    seeds = list(cfg.seeds)
    dataset = cfg.dataset
    out_dir = cfg.out_dir
    base = cfg.base
    if cfg.synth is None:  # the summary files must not land on the lists (a --synth set is new)
        check_outputs(
            [("--out_dir", out_dir / n) for n in OUTPUT_FILES],
            [("--train_list", base.train_list), ("--test_list", base.test_list),
             ("--gt_path", base.gt_path)],
        )  # fmt: skip
    data_note = ""
    title = cfg.title or dataset
    if cfg.synth is not None:
        spec = cfg.synth
        s = make_feature_set(out_dir / "features", spec)
        base = replace(base, train_list=s.train_csv, test_list=s.test_csv, gt_path=s.gt_path)
        data_note = f"generated feature set {spec}"
        title = f"generated, anomaly in {spec.signal_modality}"
        if spec.burst_modality != "none" and spec.burst_fraction > 0:
            title += (
                f", {spec.burst_modality} noisy ({spec.burst_fraction:g} of snippets, "
                f"std {spec.burst_sigma:g})"
            )
    if not Path(base.train_list).is_file():
        raise UserInputError(
            f"train list {base.train_list} does not exist: pass --train_list (and --test_list, "
            "--gt_path), or --synth to generate a feature set"
        )
    if base.test_list is None or not Path(base.test_list).is_file():
        raise UserInputError(
            f"test list {base.test_list} does not exist: the ablation scores every run on it "
            "(--test_list, --gt_path)"
        )
    data_note = data_note or (
        f"train {base.train_list}, test {base.test_list}, ground truth {base.gt_path}"
    )
    opt = (
        f"batch {base.batch_size}, lr {base.lr:g}, {base.max_epoch} epochs, milestones "
        f"{list(base.milestones)}, lam {base.lam:g}, select {base.select}, model "
        f"{base.model or 'defaults'}, feature noise {base.feature_noise:g}, min steps "
        f"{base.min_steps}"
    )
    if cfg.preset:
        print(f"[ablate] preset {cfg.preset}")
    print(f"[ablate] {len(variants)} variants x {len(seeds)} seeds on {dataset}; {opt}")
    records: list[RunRecord] = []
    t0 = time.perf_counter()
    for variant in variants:
        for seed in seeds:
            rec = run_one(base, variant, seed, out_dir, cfg.reuse)
            records.append(rec)
            auc = "n/a" if rec.auc is None else f"{100 * rec.auc:.2f}"
            ap = "n/a" if rec.ap is None else f"{100 * rec.ap:.2f}"
            print(
                f"[ablate] {variant.label} seed {seed}: AUC {auc} AP {ap} "
                f"({rec.train_seconds:.1f} s, {rec.parameters:,} params)",
                flush=True,
            )
    summary = summarise(records, labels)
    meta = {
        "title": title,
        "command": cfg.command,
        "machine": machine(),
        "device": str(resolve_device(base.device)),
        "data": data_note,
        "optimisation": opt,
        "seeds": seeds,
        "variants": [v.__dict__ for v in variants],
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    paths = write_outputs(records, summary, out_dir, meta, plot=cfg.plot)
    print(markdown_table(summary))
    print(f"[ablate] wrote {', '.join(str(p) for p in paths)}")
    if cfg.corruption_bench:
        from iefvad.studies.reliability_bench import run_benchmark

        runs = [(r.variant, r.seed, out_dir / r.checkpoint) for r in records]
        run_benchmark(
            runs,
            Path(base.test_list),
            Path(base.gt_path),
            out_dir / "corruption",
            device=str(resolve_device(base.device)),
            meta=meta,
            event_dir=base.event_dir or base.spec.event_dir,
        )
    return summary
