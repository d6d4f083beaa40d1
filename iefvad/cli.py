"""Entry points of the command-line scripts: parse, run one function, report errors cleanly."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from iefvad.errors import UserInputError

T = TypeVar("T")


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; a :class:`UserInputError` becomes ``error: <message>`` and exit status 2.

    Set ``IEFVAD_TRACEBACK=1`` to see the full traceback instead.
    """
    try:
        return fn()
    except UserInputError as e:
        if os.environ.get("IEFVAD_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def train_main(argv: Sequence[str] | None = None) -> None:
    """``main.py``: train on a dataset preset, every flag honoured."""
    from iefvad.options import resolve_train, train_parser
    from iefvad.train import train

    args = train_parser().parse_args(argv)

    def run() -> None:
        cfg, source = resolve_train(args)
        resolved = ", ".join(f"{k}={getattr(cfg, k)} ({v})" for k, v in source.items())
        print(f"[train] {cfg.spec.name}: {resolved}")
        train(cfg)

    guarded(run)


def test_main(argv: Sequence[str] | None = None) -> None:
    """``test.py``: evaluate a checkpoint on a test list."""
    from iefvad.options import test_parser
    from iefvad.run_test import run_test

    args = test_parser().parse_args(argv)
    guarded(lambda: run_test(args))


def ablate_main(argv: Sequence[str] | None = None) -> None:
    """``ablate.py``: train every fusion variant with the same seeds; table and plot."""
    from iefvad.ablate import run_ablation

    guarded(lambda: run_ablation(argv))


def explore_main(argv: Sequence[str] | None = None) -> None:
    """``test2.py``: degrade one modality at test time and measure the effect."""
    from iefvad.explore import explore_parser, run_explore

    args = explore_parser().parse_args(argv)
    guarded(lambda: run_explore(args))
