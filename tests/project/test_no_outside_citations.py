"""The repository stands alone: no tracked file cites notes or data that live outside it.

A design note outside the repository is cited by its page inside it (``docs/reference.md
section N``), a data file by the folder the code reads (``iefvad/resources/``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not cite them itself.
FORBIDDEN = ["REFERENCE" + ".md", "DESIGN" + ".md", "../" + "shared"] + [
    "shared/" + d for d in ("data", "docs", "seed")
]


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and b"\0" not in p.read_bytes()[:8192]]


def test_no_tracked_file_cites_outside_notes() -> None:
    hits = []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{n}: {w}" for w in FORBIDDEN if w in line]
    assert not hits, "citations of files outside the repository:\n" + "\n".join(hits)
