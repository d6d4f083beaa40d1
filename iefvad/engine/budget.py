"""Training budgets that adapt to the dataset size (docs/training.md, "Training on small
datasets").

The reference presets count their budget in epochs and put the lr milestones at fixed epochs.
That suits UCF-Crime (about 250 steps per epoch) but not a folder of a few dozen videos: with
6 steps per epoch, UCF's 10 epochs and milestones (4, 8) give 60 steps, 24 of them at the
initial lr. Here the budget has a floor in optimizer *steps*, and milestones can be fractions
of whatever number of epochs that floor gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from iefvad.datasets.specs import DatasetSpec
from iefvad.errors import UserInputError


def plan_budget(
    steps_per_epoch: int,
    max_epoch: int,
    milestones: Sequence[int],
    min_steps: int = 0,
    fractions: Sequence[float] | None = None,
) -> tuple[int, tuple[int, ...]]:
    """``(epochs, milestone epochs)`` of a run.

    ``epochs`` is ``max_epoch`` raised until ``epochs * steps_per_epoch >= min_steps``. With
    ``fractions`` the milestones are ``round(f * epochs)`` (each at least 1, kept in order,
    duplicates dropped); without, ``milestones`` is returned unchanged.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    epochs = max(int(max_epoch), math.ceil(max(0, min_steps) / steps_per_epoch))
    if fractions is None:
        return epochs, tuple(milestones)
    if any(not 0.0 < f < 1.0 for f in fractions):
        raise ValueError(f"milestone fractions must lie in (0, 1), got {tuple(fractions)}")
    ms = sorted({max(1, round(f * epochs)) for f in fractions})
    return epochs, tuple(m for m in ms if m < epochs)


SMALL_TRAIN: dict = {
    "batch_size": 4,
    "lr": 5e-4,
    "max_epoch": 15,
    "milestones": (),
    "gamma": 0.1,
    "lam": 0.1,
    "min_steps": 400,
    "milestone_fractions": (0.7, 0.9),
    "feature_noise": 1.0,
}
"""Optimisation of the ``small`` recipe (values from the study in docs/training.md)."""

SMALL_MODEL: dict = {"input_norm": "none"}
"""Model settings of the ``small`` recipe."""

PRESETS = ("paper", "small", "auto")
"""``paper``: the dataset's preset as published (docs/reference.md section 6; for ``custom`` the
toolkit's earlier preset), budget in epochs, no input normalisation. ``small``: the
adaptive recipe for a few dozen to a few hundred videos. ``auto`` (the default): one of the
two, chosen by :func:`auto_preset`."""


def auto_preset(spec: DatasetSpec) -> tuple[str, str]:
    """``(preset, reason)`` of ``--preset auto``.

    The four benchmarks get ``paper``, so that their published numbers are reproduced by
    default. A user's own folder (``--dataset custom``) gets ``small`` whatever its size and
    video lengths: the rule is one of dataset kind only, because the regimes benchmark
    (docs/training.md, "Regimes") measured no size or length at which another choice did
    better; what was and was not measured is listed there.
    """
    if spec.user_data:
        return "small", (
            "your own data (--dataset custom): the small-data recipe, chosen on the regimes "
            "benchmark (docs/training.md, Regimes); --preset paper for the toolkit's earlier "
            "epoch-based preset"
        )
    return "paper", f"benchmark {spec.name}: its published preset, to reproduce the paper"


def default_preset(spec: DatasetSpec) -> str:
    """The preset ``--preset auto`` resolves to (see :func:`auto_preset`)."""
    return auto_preset(spec)[0]


def preset_defaults(name: str, preset: Any) -> tuple[dict, dict, dict]:
    """``(optimisation, budget, model)`` defaults of preset ``name``.

    ``preset`` is the dataset's :class:`iefvad.datasets.specs.TrainPreset` (used by ``paper``);
    optimisation holds its fields, budget ``min_steps``, ``milestone_fractions`` and
    ``feature_noise`` (:class:`iefvad.engine.config.TrainConfig` fields), model
    :class:`iefvad.models.model.ModelConfig` fields.
    """
    if name == "paper":
        return (
            asdict(preset),
            {"min_steps": 0, "milestone_fractions": None, "feature_noise": 0.0},
            {},
        )
    if name == "auto":
        raise ValueError("resolve --preset auto with auto_preset() first")
    if name == "small":
        opt = {k: SMALL_TRAIN[k] for k in asdict(preset)}
        budget = {k: SMALL_TRAIN[k] for k in ("min_steps", "milestone_fractions", "feature_noise")}
        return opt, budget, dict(SMALL_MODEL)
    raise UserInputError(f"--preset {name!r} is unknown; choose one of {', '.join(PRESETS)}")
