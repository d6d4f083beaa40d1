"""The folder tree is the architecture: a module imports only its own layer or lower ones.

Layers, bottom up: 0 ``errors``, ``fileio``, ``devices``, ``paths``, ``stored``, ``locks``,
``interrupts``; 1 ``datasets``, ``video``, ``events``, ``models``, ``viz``, ``report``; 2 ``data``,
``extraction``; 3 ``engine``, ``inference``, ``synthetic``, ``studies``; 4 ``cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "iefvad"
LAYER0 = ["__init__", "errors", "fileio", "devices", "stored", "locks", "interrupts", "paths"]
LAYERS = dict.fromkeys(LAYER0, 0)
for _layer, _names in enumerate(
    [[], ["datasets", "video", "events", "models", "viz", "report"], ["data", "extraction"],
     ["engine", "inference", "synthetic", "studies"], ["cli"]]
):  # fmt: skip
    LAYERS.update(dict.fromkeys(_names, _layer))

# (importing file, imported module): library code that reaches up into the command lines.
# To be removed by phase B; this set may only shrink (an entry that no longer occurs fails).
KNOWN: set[tuple[str, str]] = set()


def layer_of(dotted: str) -> int:
    """Layer of ``iefvad[.top[...]]``: its top-level module or package under iefvad."""
    parts = dotted.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"iefvad/{top} is in no layer: add it to LAYERS"
    return LAYERS[top]


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every iefvad import in ``path``, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "iefvad"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "iefvad":  # from iefvad import errors / datasets / __version__
                out += [(node.lineno, f"iefvad.{a.name}") for a in node.names if a.name in LAYERS]
                out += [(node.lineno, "iefvad") for a in node.names if a.name not in LAYERS]
            elif node.module.startswith("iefvad."):
                out.append((node.lineno, node.module))
    return out


def test_no_module_imports_a_higher_layer() -> None:
    found, new = set(), []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).as_posix()
        own = layer_of(".".join(path.relative_to(PKG.parent).with_suffix("").parts))
        for line, mod in imports(path):
            if layer_of(mod) <= own:
                continue
            found.add((rel, mod))
            if (rel, mod) not in KNOWN:
                new.append(f"{rel}:{line} (layer {own}) imports {mod} (layer {layer_of(mod)})")
    assert not new, "imports of a higher layer:\n" + "\n".join(new)
    gone = sorted(KNOWN - found)
    assert not gone, f"fixed, remove from KNOWN: {gone}"


# argparse outside cli/: only as a type that released weight files pickle (the safe-load list)
ARGPARSE_ALLOWED = {"iefvad/extraction/encoders.py"}


def test_only_the_command_line_layer_parses_arguments() -> None:
    users = set()
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).as_posix()
        if rel.startswith("iefvad/cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                users.add(rel)
            elif isinstance(node, ast.ImportFrom) and node.module == "argparse":
                users.add(rel)
    assert users == ARGPARSE_ALLOWED, f"argparse outside iefvad/cli/: {sorted(users)}"
