"""Per-dataset facts live in one record per dataset (iefvad/datasets): no module outside it
compares a value with a dataset name (``dataset == "xd"``, ``spec.name != "custom"``, ``in``)."""

from __future__ import annotations

import ast
from pathlib import Path

from iefvad.datasets.specs import DATASETS

PKG = Path(__file__).resolve().parents[2] / "iefvad"

# (file, dataset name): branches still to be replaced by a record field; may only shrink (an
# entry that no longer occurs fails). report.py and explore.py: use
# ``resolve_spec(dataset, normal_label)`` (files being moved in another branch).
# synthetic/features.py compares SynthSpec.layout, whose value is also "custom".
KNOWN = {
    ("iefvad/synthetic/features.py", "custom"),
}


def _names(node: ast.expr) -> set[str]:
    """Dataset names a comparison operand spells: ``"xd"`` or a tuple/list/set of them."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {n.value for n in items if isinstance(n, ast.Constant) and n.value in DATASETS}


def branches(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                out += [(node.lineno, name) for name in sorted(_names(operand))]
    return out


def test_no_dataset_name_comparisons_outside_the_records() -> None:
    found, new = set(), []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).as_posix()
        if rel.startswith("iefvad/datasets/"):
            continue
        for line, name in branches(path):
            found.add((rel, name))
            if (rel, name) not in KNOWN:
                new.append(f"{rel}:{line} compares with dataset name {name!r}")
    assert not new, (
        "use a field of the dataset's record (iefvad/datasets/specs.py) instead:\n" + "\n".join(new)
    )
    gone = sorted(KNOWN - found)
    assert not gone, f"fixed, remove from KNOWN: {gone}"
