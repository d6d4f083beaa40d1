"""``--help`` of every script: one default per flag, and the one shown is the parser's."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re

import pytest

import iefvad.cli
from iefvad.cli.aliases import shown_default


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser factory of iefvad/cli (a function annotated to return an ArgumentParser,
    callable without arguments), called."""
    out = {}
    for info in pkgutil.iter_modules(iefvad.cli.__path__):
        mod = importlib.import_module(f"iefvad.cli.{info.name}")
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ != mod.__name__:
                continue
            ret = inspect.signature(fn).return_annotation
            if ret not in ("argparse.ArgumentParser", argparse.ArgumentParser):
                continue
            if any(p.default is p.empty for p in inspect.signature(fn).parameters.values()):
                continue
            out[f"{info.name}.{name}"] = fn()
    return out


PARSERS = parsers()


def test_every_script_parser_is_found():
    for name in ("infer.parser", "options.train_parser", "options.test_parser",
                 "extract.build_parser", "lists.file_parser", "lists.gt_parser",
                 "demo.parser", "explore.explore_parser", "ablate.ablation_parser",
                 "reliability.bench_parser"):  # fmt: skip
        assert name in PARSERS


def problems(p: argparse.ArgumentParser) -> list[str]:
    """What is wrong with the defaults of ``p``'s ``--help``, one line per flag."""
    fmt = p._get_formatter()
    out = []
    for action in p._actions:
        flag = action.option_strings[0] if action.option_strings else action.dest
        d = action.default
        valued = d is not None and d is not argparse.SUPPRESS and action.nargs != 0
        if action.help is argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if action.help is None:
            if valued and action.option_strings:
                out.append(f"{flag}: no help, so its default {d} is not shown")
            continue
        text = " ".join(fmt._expand_help(action).split())
        if text.count("(default") > 1:
            out.append(f"{flag}: two defaults: {text}")
        shown = re.search(r"\(default: ([^)]*)\)$", text)
        if not valued or not action.option_strings:
            # no value to show, or a default that the help explains in words
            if shown and shown.group(1) == "None":
                out.append(f"{flag}: (default: None): {text}")
        elif shown is None or shown.group(1) != shown_default(d):
            out.append(f"{flag}: the parser's default {d} is not the one shown: {text}")
    return out


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_one_default_per_flag_and_the_true_one(name):
    wrong = problems(PARSERS[name])
    assert not wrong, "\n".join(wrong)


def test_help_prints_each_default_once():
    out = PARSERS["options.train_parser"].format_help()
    assert "(default: None)" not in out
    assert " ".join(out.split()).count("auto: small for custom, paper for the benchmarks") == 1
    assert (
        " ".join(out.split()).count("printed with the reason (docs/training.md) (default: auto)")
        == 1
    )
