"""Dataset specifications: the one place that knows how the four benchmarks differ.

Everything per dataset that the rest of the toolkit needs (normal label, label map, batch
style, headline metric, the event-tree name, the training preset of docs/reference.md section 6) is
data here, never a chain of ``if dataset == ...`` elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from iefvad.errors import UserInputError

RESOURCES = Path(str(resources.files("iefvad") / "resources"))

SNIPPET_FRAMES = 16
"""Frames per snippet: every feature row covers 16 consecutive frames."""


@dataclass(frozen=True)
class TrainPreset:
    """Optimisation settings of the reference for one dataset (docs/reference.md section 6).

    ``batch_size`` is per loader: paired datasets draw ``batch_size`` normal plus
    ``batch_size`` abnormal videos per step.
    """

    batch_size: int
    lr: float
    max_epoch: int
    milestones: tuple[int, ...]
    gamma: float
    lam: float
    """Weight of the alignment + KL terms in the loss."""


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset names, labels and batches its videos."""

    name: str
    normal_label: str
    """CSV label of normal videos (``Normal``, ``normal`` or ``A``)."""
    label_map: dict[str, str] = field(repr=False)
    """Label code -> class name, normal class first (``iefvad/resources/*/label_map.json``)."""
    paired: bool
    """True: each step takes B normal + B abnormal videos; False: one mixed loader."""
    headline: str
    """Metric printed first and used for ``--select test``: ``auc`` or ``ap``."""
    class_folders: bool
    """Features live in ``<root>/<Class>/``; False for XD (flat)."""
    event_dir: str
    """Name of the event-feature tree that replaces ``rgb`` in image paths."""
    multi_label: bool
    """Labels like ``B2-G-0`` list several classes (XD)."""
    preset: TrainPreset
    strict_labels: bool = True
    """Reject labels that are not in ``label_map`` (False for custom data)."""

    def is_normal(self, label: str) -> bool:
        return label == self.normal_label

    def codes_of(self, label: str) -> list[str]:
        """Label codes of a CSV label: ``B2-G-0`` -> ``['B2', 'G']`` for XD, else ``[label]``."""
        return [c for c in label.split("-") if c != "0"] if self.multi_label else [label]

    def classes_of(self, label: str) -> list[str]:
        """Class names of a CSV label; ``B2-G-0`` -> ``['shooting', 'explosion']`` for XD."""
        return [self.label_map.get(c, c) for c in self.codes_of(label)]

    def case_fix(self, label: str) -> str | None:
        """The known label that ``label`` matches up to case (``normal`` -> ``Normal``)."""
        by_fold = {k.casefold(): k for k in self.label_map}
        if self.multi_label:
            parts = [c if c == "0" else by_fold.get(c.casefold(), c) for c in label.split("-")]
            fixed = "-".join(parts)
        else:
            fixed = by_fold.get(label.casefold(), label)
        return fixed if fixed != label and self.check_label(fixed) is None else None

    def check_label(self, label: str) -> str | None:
        """Return an error text if ``label`` is not a label of this dataset, else None.

        Labels are case-sensitive: ``Normal`` in a list whose normal label is ``normal`` would
        silently count as an abnormal class, so a case mismatch is an error that names the fix.
        """
        if not label:
            return f"empty label: every row needs one (normal videos: {self.normal_label!r})"
        codes = self.codes_of(label)
        if codes and all(c in self.label_map for c in codes):
            return None
        folded = {k.casefold() for k in self.label_map}
        if any(c not in self.label_map and c.casefold() in folded for c in codes):
            fix = self.case_fix(label)
            hint = f"did you mean {fix!r}? " if fix else ""
            known = (
                f"Known labels: {', '.join(self.label_map)}"
                if self.strict_labels
                else f"Fix the list, or pass --normal_label {label} if that is your normal label"
            )
            return (
                f"label {label!r} is not a label of dataset {self.name!r}: {hint}Labels are "
                f"case-sensitive (normal videos are {self.normal_label!r}; anything else counts "
                f"as abnormal). {known}"
            )
        if not self.strict_labels and codes and all(codes):
            return None
        return (
            f"unknown label {label!r} for dataset {self.name!r}; "
            f"known labels: {', '.join(self.label_map)}"
        )

    @property
    def normal_class(self) -> str:
        return self.label_map.get(self.normal_label, self.normal_label)

    def resource(self, name: str) -> Path:
        """Path of a shipped annotation or split file of this dataset."""
        return RESOURCES / self.name / name


def _label_map(name: str) -> dict[str, str]:
    with open(RESOURCES / name / "label_map.json", encoding="utf-8") as f:
        return json.load(f)


# docs/reference.md section 6, as data.
PRESETS: dict[str, TrainPreset] = {
    "ucfcrime": TrainPreset(64, 2e-5, 10, (4, 8), 0.1, 1.0),
    "xd": TrainPreset(2, 2e-5, 10, (2, 6, 10), 0.1, 0.01),
    "shang": TrainPreset(8, 1e-4, 20, (8, 15), 0.5, 1.0),
    "msad": TrainPreset(64, 2e-5, 10, (4, 8), 0.1, 1.0),
    # Not in the reference: small folders of the user's own videos.
    "custom": TrainPreset(16, 1e-4, 20, (12, 16), 0.1, 1.0),
}

_SPECS: dict[str, DatasetSpec] = {
    "ucfcrime": DatasetSpec(
        "ucfcrime",
        "Normal",
        _label_map("ucfcrime"),
        True,
        "auc",
        True,
        "event_thr_10",
        False,
        PRESETS["ucfcrime"],
    ),
    "xd": DatasetSpec(
        "xd",
        "A",
        _label_map("xd"),
        False,
        "ap",
        False,
        "event_thr_10",
        True,
        PRESETS["xd"],
    ),
    "shang": DatasetSpec(
        "shang",
        "normal",
        _label_map("shang"),
        True,
        "auc",
        True,
        "event",
        False,
        PRESETS["shang"],
    ),
    "msad": DatasetSpec(
        "msad",
        "Normal",
        _label_map("msad"),
        True,
        "auc",
        True,
        "event_thr_10",
        False,
        PRESETS["msad"],
    ),
}

BENCHMARKS: tuple[str, ...] = tuple(_SPECS)
DATASETS: tuple[str, ...] = (*BENCHMARKS, "custom")


def custom_spec(normal_label: str = "normal", classes: list[str] | None = None) -> DatasetSpec:
    """Spec for a user's own folder: any label is accepted, ``normal_label`` is normal."""
    label_map = {normal_label: "normal", **{c: c for c in classes or [] if c != normal_label}}
    return DatasetSpec(
        "custom",
        normal_label,
        label_map,
        True,
        "auc",
        True,
        "event_thr_10",
        False,
        PRESETS["custom"],
        strict_labels=False,
    )


def get_spec(name: str, **custom: object) -> DatasetSpec:
    """Spec of a dataset by name (``ucfcrime``, ``xd``, ``shang``, ``msad``, ``custom``)."""
    if name == "custom":
        return custom_spec(**custom)  # type: ignore[arg-type]
    if name not in _SPECS:
        raise UserInputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return _SPECS[name]


def with_preset(spec: DatasetSpec, **changes: object) -> DatasetSpec:
    """A copy of ``spec`` whose preset fields are replaced by ``changes``."""
    return replace(spec, preset=replace(spec.preset, **changes))
