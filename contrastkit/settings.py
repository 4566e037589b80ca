"""Typed settings: dataclass fields that carry their own rule (type, range, choices, help), checked in one place.

A settings class is a dataclass whose fields are declared with :func:`setting`::

    @dataclass
    class Example:
        epochs: int | None = setting(None, "training epochs", low=1)
        optimizer: str = setting("adam", "optimizer", choices=("sgd", "adam"))

:func:`parse_settings` turns a plain mapping (from YAML, command-line flags or Python) into checked values:
the type comes from the field's annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``dict``), the
range and the accepted values from the rule. Every error names the key, where its value came from (a YAML
file, a flag, ``--set``) and what is accepted, e.g. ``run.yaml: `epochs` must be an integer >= 1, got 0``.

Conversions are deliberately few and the same everywhere:

* numbers written as text (``'1'``, ``'1e3'``, ``'0.5'``) are read as numbers: YAML 1.1 reads ``1e3`` as a string,
  and flags are text;
* an integer setting takes an integral float (``1e3`` -> 1000, ``4.0`` -> 4) and refuses any other (``100.5``);
* a float setting takes an int; NaN and infinities are refused;
* booleans are only ``true`` / ``false`` (YAML's booleans, or Python's): ``'no'``, ``'maybe'`` or ``1`` are refused,
  and a boolean is never a number (``epochs: true`` is an error).

The same rules generate command-line flags (:func:`add_flags`), so a flag and a YAML key can never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "SettingsError", "add_flags", "describe", "parse_settings", "rule_of", "setting"]


class SettingsError(ValueError):
    """A setting was refused; the message names the key, its source and the accepted values."""


@dataclass(frozen=True)
class Rule:
    """What a setting accepts besides its type: bounds (``low`` / ``high``, inclusive unless ``*_open``) and
    ``choices``; ``help`` is shown by ``--help``; ``flag=False`` keeps it out of the generated flags."""

    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    flag: bool = True
    metavar: str | None = None


def setting(default: Any, help: str, *, default_factory: Any = None, **rule: Any) -> Any:
    """A dataclass field with its :class:`Rule` (see the module docstring)."""
    metadata = {"rule": Rule(help, **rule)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def rule_of(field: dataclasses.Field) -> Rule:
    return field.metadata.get("rule") or Rule(help="")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of ``X`` or ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


def describe(annotation: Any, rule: Rule, null_note: bool = True) -> str:
    """The accepted values in words, e.g. ``an integer >= 1 (or null for the default)`` or
    ``one of 'sgd', 'adam'``; ``null_note=False`` leaves out the note on null (for ``--help``)."""
    kind, nullable = _base_type(annotation)
    if rule.choices is not None:
        text = "one of " + ", ".join(repr(c) for c in rule.choices)
    elif kind is bool:
        text = "true or false"
    elif kind in (int, float):
        text = "an integer" if kind is int else "a number"
        bounds = []
        if rule.low is not None:
            bounds.append(f"{'>' if rule.low_open else '>='} {rule.low:g}")
        if rule.high is not None:
            bounds.append(f"{'<' if rule.high_open else '<='} {rule.high:g}")
        if bounds:
            text += " " + " and ".join(bounds)
    elif kind is str:
        text = "a string"
    elif typing.get_origin(kind) is dict or kind is dict:
        text = "a mapping of settings"
    else:
        text = str(kind)
    return text + (" (or null for the default)" if nullable and null_note else "")


def _number_from_text(value: str) -> int | float | None:
    text = value.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return None


def _coerce(value: Any, annotation: Any, rule: Rule, key: str, where: str) -> Any:
    kind, nullable = _base_type(annotation)
    accepted = describe(annotation, rule)

    def refuse(reason: str = "") -> SettingsError:
        shown = f"{value!r}" + (f" ({type(value).__name__})" if not isinstance(value, str | bool | int | float)
                                 else "")
        return SettingsError(f"{where}: `{key}` must be {accepted}, got {shown}{reason}")

    if value is None and (kind is dict or typing.get_origin(kind) is dict):
        return {}  # `method_options:` with nothing under it
    if value is None:
        if nullable:
            return None
        raise refuse()
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise refuse()
    if kind in (int, float):
        if isinstance(value, bool):
            raise refuse()
        number = _number_from_text(value) if isinstance(value, str) else value
        if not isinstance(number, int | float):
            raise refuse()
        if isinstance(number, float) and not math.isfinite(number):
            raise refuse()
        if kind is int:
            if isinstance(number, float):
                if number != int(number):
                    raise refuse(": not a whole number")
                number = int(number)
        else:
            number = float(number)
        below = rule.low is not None and (number <= rule.low if rule.low_open else number < rule.low)
        above = rule.high is not None and (number >= rule.high if rule.high_open else number > rule.high)
        if below or above:
            raise refuse()
        return number
    if kind is str:
        if not isinstance(value, str):
            raise refuse()
        if rule.choices is not None and value not in rule.choices:
            raise refuse()
        return value
    if kind is dict or typing.get_origin(kind) is dict:
        if not isinstance(value, Mapping):
            raise refuse()
        return dict(value)
    return value


def parse_settings(cls: type, values: Mapping[str, Any], sources: Mapping[str, str] | None = None,
                   where: str = "settings") -> Any:
    """An instance of the settings dataclass ``cls`` from ``values``, every value checked by its field's rule.

    ``sources`` maps a key to where its value came from (``"run.yaml"``, ``"--epochs"``); other keys are
    reported as ``where``. Unknown keys are an error that lists the known ones.
    """
    if not isinstance(values, Mapping):
        raise SettingsError(f"{where}: settings must be a mapping of names to values, got {type(values).__name__}")
    sources = sources or {}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in values if k not in fields)
    if unknown:
        origin = sources.get(unknown[0], where)
        raise SettingsError(f"{origin}: unknown setting(s) {unknown}; known: {sorted(fields)}")
    hints = _field_types(cls)
    checked = {key: _coerce(value, hints[key], rule_of(fields[key]), key, sources.get(key, where))
               for key, value in values.items()}
    return cls(**checked)


def check_instance(obj: Any, where: str) -> None:
    """Check every field of an already-built settings object (built in Python, not parsed)."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        coerced = _coerce(value, hints[f.name], rule_of(f), f.name, where)
        if coerced is not value and coerced != value:
            object.__setattr__(obj, f.name, coerced)  # an int given for a float field, '1' for 1, ...


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, skip: tuple[str, ...] = (),
              helps: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None) -> list[str]:
    """Add ``--name`` flags for the fields of ``cls`` (values stay text/None; :func:`parse_settings` checks
    them). Booleans get ``--name`` / ``--no-name``. ``helps`` replaces a field's help text (e.g. a list drawn from
    a registry), ``defaults`` adds the default in words to it (e.g. ``"300"``). Returns the destination names
    added."""
    added = []
    hints = _field_types(cls)
    helps, defaults = helps or {}, defaults or {}
    for f in dataclasses.fields(cls):
        rule = rule_of(f)
        if not rule.flag or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, _ = _base_type(hints[f.name])
        accepted = describe(hints[f.name], rule, null_note=False)
        text = helps.get(f.name, rule.help)
        notes = [accepted] if accepted not in ("a string", "true or false") else []
        if f.name in defaults:
            notes.append(f"default: {defaults[f.name]}")
        if notes:
            text += f" [{'; '.join(notes)}]"
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=text,
                                metavar=rule.metavar or f.name.upper())
        added.append(f.name)
    return added
