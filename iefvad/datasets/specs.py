"""Dataset specifications: the one place that knows how the four benchmarks differ.

Everything per dataset that the rest of the toolkit needs (normal label, label map, batch
style, headline metric, the event-tree name, the training preset of docs/reference.md section 6,
the shipped split files and how their lines give labels, naming quirks) is one keyword-built
:class:`DatasetSpec` record per dataset here, never a chain of ``if dataset == ...`` elsewhere
(tests/project/test_dataset_branches.py keeps it so). Code that reads the split files is
:mod:`iefvad.data.list_rules`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from iefvad.datasets.names import video_stem
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
class Membership:
    """A shipped split file and how each of its lines gives a video's name and label.

    ``label_rule``: ``column`` (``Class/name,label`` CSV), ``folder`` (``Folder/name.mp4``, the
    folder is the label after :attr:`DatasetSpec.folder_aliases`) or ``name`` (XD: the text after
    ``_label_`` in the name).
    """

    file: str
    label_rule: str


@dataclass(frozen=True)
class SplitSpec:
    """Train and test membership of one split, its annotation file and a note to warn with."""

    train: Membership
    test: Membership
    annotations: str
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """How one dataset names, labels, splits, batches and scores its videos: its one record."""

    name: str
    normal_label: str
    """CSV label of normal videos (``Normal``, ``normal`` or ``A``)."""
    label_map: dict[str, str] = field(repr=False)
    """Label code -> class name, normal class first (``iefvad/resources/*/label_map.json``)."""
    preset: TrainPreset
    paired: bool = True
    """True: each step takes B normal + B abnormal videos; False: one mixed loader (XD)."""
    headline: str = "auc"
    """Metric printed first and used for ``--select test``: ``auc`` or ``ap`` (XD)."""
    class_folders: bool = True
    """Features live in ``<root>/<Class>/``; False for XD (flat)."""
    event_dir: str = "event_thr_10"
    """Name of the event-feature tree that replaces ``rgb`` in image paths."""
    multi_label: bool = False
    """Labels like ``B2-G-0`` list several classes (XD)."""
    user_data: bool = False
    """A user's own folder (``custom``): any label is accepted, the normal label is the user's
    (``--normal_label``) and the lists are built from the folders, not from shipped splits."""
    detection: bool = False
    """Compute mAP@IoU by default (XD-Violence's benchmark reports it)."""
    frame_ap: str = "ap"
    """The frame AP its official evaluation computes: ``ap`` (step sum) or ``ap_trapz``
    (trapezoidal, XD-Violence); see :mod:`iefvad.engine.metrics`."""
    splits: Mapping[str, SplitSpec] = field(default_factory=dict, repr=False)
    """Split name (``standard``, ``ief-vad``) -> its shipped files (empty for custom data)."""
    annotation_text: str = "class"
    """Meaning of the annotation file's text column: ``class`` or ``scene`` (MSAD)."""
    folder_aliases: Mapping[str, str] = field(default_factory=dict)
    """Folder names that stand for a label (UCF's ``Testing_Normal_Videos_Anomaly``)."""
    drop_suffix: str = ""
    """Suffix ignored when matching names (UCF's ``_x264``, absent from its test_list.txt)."""

    @property
    def strict_labels(self) -> bool:
        """Reject labels that are not in ``label_map`` (False for custom data)."""
        return not self.user_data

    @property
    def dataset(self) -> str:
        """The name (the field name of the former list-rule records)."""
        return self.name

    def key(self, name: str) -> str:
        """Name used to match videos across files: ``Abuse028_x264.mp4`` -> ``Abuse028``."""
        stem = video_stem(name)
        if self.drop_suffix and stem.endswith(self.drop_suffix):
            stem = stem[: -len(self.drop_suffix)]
        return stem

    def split(self, split: str) -> SplitSpec:
        """The shipped files of ``split``; a :class:`UserInputError` names the known splits."""
        if split not in self.splits:
            raise UserInputError(
                f"unknown split {split!r} for dataset {self.name!r}; choose one of "
                f"{', '.join(self.splits)}"
            )
        return self.splits[split]

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


def _csv_split(annotations: str, note: str | None = None) -> SplitSpec:
    return SplitSpec(
        Membership("train_list_ief_vad.csv", "column"),
        Membership("test_list_ief_vad.csv", "column"),
        annotations,
        note,
    )


_REFERENCE_IS_STANDARD = {
    "standard": _csv_split("annotations.txt"),
    "ief-vad": _csv_split("annotations.txt"),
}

XD_LEAK_NOTE = (
    "the ief-vad XD split moves 47 of the 800 standard test videos into training (753 test "
    "videos): its test scores are optimistic and not comparable with the standard split. Use "
    "--split standard for reportable numbers."
)


def _benchmark(name: str, normal_label: str, **differences: Any) -> DatasetSpec:
    """A shipped dataset's record: its label map and preset by name, the rest as given (fields
    left out take the UCF-Crime-like defaults of :class:`DatasetSpec`)."""
    return DatasetSpec(
        name=name,
        normal_label=normal_label,
        label_map=_label_map(name),
        preset=PRESETS[name],
        **differences,
    )


_SPECS: dict[str, DatasetSpec] = {
    "ucfcrime": _benchmark(
        "ucfcrime",
        "Normal",
        splits={
            "standard": SplitSpec(
                Membership("Anomaly_Train.txt", "folder"),
                Membership("Anomaly_Test.txt", "folder"),
                "annotations.txt",
            ),
            "ief-vad": _csv_split("annotations.txt"),
        },
        folder_aliases={
            "Training_Normal_Videos_Anomaly": "Normal",
            "Testing_Normal_Videos_Anomaly": "Normal",
        },
        drop_suffix="_x264",
    ),
    "xd": _benchmark(
        "xd",
        "A",
        paired=False,
        headline="ap",
        class_folders=False,
        multi_label=True,
        detection=True,
        frame_ap="ap_trapz",
        splits={
            "standard": SplitSpec(
                Membership("train_list_standard.txt", "name"),
                Membership("test_list_standard.txt", "name"),
                "annotations_standard.txt",
            ),
            "ief-vad": _csv_split("annotations.txt", XD_LEAK_NOTE),
        },
    ),
    # ShanghaiTech and MSAD: the reference's lists are the standard split (docs/reference.md s.4).
    "shang": _benchmark("shang", "normal", event_dir="event", splits=_REFERENCE_IS_STANDARD),
    "msad": _benchmark("msad", "Normal", splits=_REFERENCE_IS_STANDARD, annotation_text="scene"),
}

BENCHMARKS: tuple[str, ...] = tuple(_SPECS)
CUSTOM = "custom"
"""The user's own videos (:func:`custom_spec`)."""
DATASETS: tuple[str, ...] = (*BENCHMARKS, CUSTOM)


def custom_spec(normal_label: str = "normal", classes: list[str] | None = None) -> DatasetSpec:
    """Spec for a user's own folder: any label is accepted, ``normal_label`` is normal."""
    label_map = {normal_label: "normal", **{c: c for c in classes or [] if c != normal_label}}
    return DatasetSpec(
        name=CUSTOM,
        normal_label=normal_label,
        label_map=label_map,
        preset=PRESETS["custom"],
        user_data=True,
    )


def get_spec(name: str, **custom: object) -> DatasetSpec:
    """Spec of a dataset by name (``ucfcrime``, ``xd``, ``shang``, ``msad``, ``custom``)."""
    if name == CUSTOM:
        return custom_spec(**custom)  # type: ignore[arg-type]
    if name not in _SPECS:
        raise UserInputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return _SPECS[name]


def resolve_spec(name: str, normal_label: str | None = None) -> DatasetSpec:
    """Spec of ``name`` for a run: ``normal_label`` (default ``normal``) names the normal label
    of datasets whose labels are the user's (:attr:`DatasetSpec.user_data`); benchmarks have
    their own and ignore it."""
    spec = get_spec(name)
    return get_spec(name, normal_label=normal_label or "normal") if spec.user_data else spec


def with_preset(spec: DatasetSpec, **changes: object) -> DatasetSpec:
    """A copy of ``spec`` whose preset fields are replaced by ``changes``."""
    return replace(spec, preset=replace(spec.preset, **changes))
