"""Faults a hostile user meets in extraction: permissions, stale or damaged outputs, locked,
read-only or unreadable folders, out-of-range flags. One fast test per fault."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from iefvad.fileio import save_json, save_npy

from extract_helpers import torch_threads

NOBODY = 65534


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_honour_the_umask(tmp_path, mask: int, want: int) -> None:
    with umask(mask):
        save_npy(tmp_path / "a" / "x.npy", np.zeros((2, 3), np.float32))
        save_json(tmp_path / "a" / "m.json", {"k": "é"})
    assert _mode(tmp_path / "a" / "x.npy") == want
    assert _mode(tmp_path / "a" / "m.json") == want
    assert not list((tmp_path / "a").glob(".*.tmp"))
