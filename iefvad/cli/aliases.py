"""Canonical flag names and the old spellings still accepted.

One name per idea across the scripts; an old spelling is a second option string of the same
``add_argument`` (same destination), accepted but left out of ``--help``:

=================  ===========================  ==========================================
old spelling       canonical                    scripts
=================  ===========================  ==========================================
``--no_plot``      ``--no_plots``               infer.py, ablate.py (test.py, test2.py)
``--out``          ``--out_dir`` (result folder) infer.py, the demo (test.py, test2.py,
                                                ablate.py)
``--threshold``    ``--score_threshold``        infer.py (a score in [0, 1])
``--threshold``    ``--event_threshold``        extraction (gray levels; infer.py's recipe)
``--epochs``       ``--max_epoch``              the demo (main.py, ablate.py)
=================  ===========================  ==========================================

Extraction's ``--out_root`` is not a result folder but the root of the feature trees
(``<out_root>/rgb``, ``<out_root>/event_thr_10``): it keeps its name and takes no
``--out_dir`` spelling, which would read as "where the results go".
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

OLD_SPELLINGS = frozenset({"--no_plot", "--out", "--threshold", "--epochs"})
"""Option strings accepted for compatibility and hidden from ``--help``."""


class HelpFormatter(argparse.HelpFormatter):
    """Every script's ``--help``: one default per flag, the true one, and the
    :data:`OLD_SPELLINGS` left out (the usage line shows the first, canonical, option string
    anyway).

    ``(default: VALUE)`` is appended, VALUE being the parser's default, unless the help already
    says what the default is in words (``(default ...``: a default that depends on the dataset
    or the checkpoint, which the parser holds as None), the default is None (not set), or the
    flag takes no value (``store_true``: off unless given).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or "%(default)" in text:
            return text
        if action.default is None or action.default is argparse.SUPPRESS or action.nargs == 0:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = shown_default(action.default).replace("%", "%%")
            return f"{text} (default: {shown})" if text else f"(default: {shown})"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = [s for s in action.option_strings if s not in OLD_SPELLINGS]
        if shown and len(shown) < len(action.option_strings):
            action = copy.copy(action)
            action.option_strings = shown
        return super()._format_action_invocation(action)


def shown_default(value: object) -> str:
    """A default as ``--help`` shows it: a list as its items, space-separated (as typed)."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


class Spelled(argparse._StoreAction):
    """``store`` that remembers the option string typed, so that a check can name the flag
    as the user wrote it (:func:`spelled`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        typed = dict(getattr(namespace, "_spelled", {}))
        typed[self.dest] = option_string
        namespace._spelled = typed


def spelled(args: argparse.Namespace, dest: str, canonical: str) -> str:
    """The option string the user typed for ``dest`` (``canonical`` when not typed)."""
    return getattr(args, "_spelled", {}).get(dest) or canonical
