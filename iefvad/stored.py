"""Values read from files (a checkpoint's model configuration, a feature record, a manifest)
checked for type and range before anything is built from them.

A stored value is data, not code: a damaged or edited file may hold ``heads=-2``,
``dim="32"`` or ``dim=10**6``, and the model, encoder or array built from it would end in a
traceback or allocate until memory runs out. :func:`check_fields` checks a whole record
against a table of :class:`Bound` (most tables come from dataclass field metadata, see
:func:`dataclass_bounds`) and raises :class:`StoredValueError`, one line naming the file and
the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from iefvad.errors import UserInputError

_KINDS = {"int": int, "float": float, "str": str, "bool": bool}


class StoredValueError(UserInputError):
    """A value read from a file has the wrong type or is out of its range."""


@dataclass(frozen=True)
class Bound:
    """What a stored value may be: ``kind`` (``int``, ``float``, ``str``, ``bool``), for
    numbers the closed range ``[lo, hi]`` (``lo_open``: ``lo`` itself excluded), for strings
    the allowed ``choices`` (None: any string up to 4096 characters)."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.kind == "str":
            return f"one of {', '.join(self.choices)}" if self.choices else "a string"
        if self.kind == "bool":
            return "true or false"
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"<= {self.hi:g}"
        rng = " and ".join(p for p in (lo, hi) if p)
        return f"{'an integer' if self.kind == 'int' else 'a finite number'}" + (
            f" {rng}" if rng else ""
        )

    def problem(self, value: Any) -> str | None:
        """None when ``value`` fits, else what is wrong with it."""
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        kind = type(value).__name__
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"the {kind} {shown}"
        if self.kind == "str":
            if not isinstance(value, str):
                return f"the {kind} {shown}"
            if self.choices is not None and value not in self.choices:
                return f"{shown}"
            return None if len(value) <= 4096 else f"a string of {len(value)} characters"
        numeric = isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "float":
            numeric = numeric or isinstance(value, float)
        if not numeric:
            return f"the {kind} {shown}"
        if isinstance(value, float) and not math.isfinite(value):
            return shown
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and value > self.hi
        return shown if below or above else None


DAMAGED = "the file is damaged or was edited by hand; use an intact copy (or retrain / re-extract)"


def check_value(value: Any, bound: Bound, where: str, key: str, fix: str = DAMAGED) -> Any:
    """``value`` when it fits ``bound``; else :class:`StoredValueError` naming ``where`` (the
    file and the record in it, or a flag) and ``key``; ``fix`` ends the message."""
    problem = bound.problem(value)
    if problem is not None:
        raise StoredValueError(f"{where}: '{key}' is {problem}, expected {bound.describe()}: {fix}")
    return value


def check_fields(
    record: Mapping[str, Any], table: Mapping[str, Bound], where: str
) -> dict[str, Any]:
    """``record`` as a dict, every key of ``table`` it holds checked (other keys pass
    unchecked; a missing key is the caller's business)."""
    if not isinstance(record, Mapping):
        raise StoredValueError(f"{where}: is a {type(record).__name__}, expected a mapping")
    for key, bound in table.items():
        if key in record:
            check_value(record[key], bound, where, key)
    return dict(record)


def dataclass_bounds(cls: type) -> dict[str, Bound]:
    """The table of a dataclass whose fields carry ``bounds=(lo, hi)`` (and for strings
    ``choices``) in their metadata; the kind comes from the field's annotation. A number
    field without ``bounds`` must be finite; ``lo_open`` in the metadata excludes ``lo``."""
    out = {}
    for f in fields(cls):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind not in _KINDS:
            continue
        lo, hi = f.metadata.get("bounds", (None, None))
        out[f.name] = Bound(
            kind,
            lo,
            hi,
            bool(f.metadata.get("lo_open", False)),
            tuple(f.metadata["choices"]) if "choices" in f.metadata else None,
        )
    return out


__all__ = ["Bound", "StoredValueError", "check_fields", "check_value", "dataclass_bounds"]
