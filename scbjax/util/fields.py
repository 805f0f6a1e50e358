"""Typed dataclass fields: one definition (type, default, help) drives checks, loaders and CLI.

- ``check(obj)`` type-checks every field of a dataclass instance from its annotations.
- ``from_dict(cls, d)`` / ``to_dict(obj)`` build / dump nested dataclasses (TOML, JSON).
- ``add_arguments(parser, cls)`` / ``values_from_args(ns, cls)`` derive argparse options.

Kinds: ``bool`` (only True/False), ``int`` (int or numpy integer, not bool), ``float`` (int or
float, finite and representable in float32: 0 or float32 tiny <= |x| <= float32 max), ``str``,
``Literal[...]``, ``tuple[X, ...]`` / ``tuple[X, Y]``, ``X | None`` and nested dataclasses.
CLI options are ``--name`` with underscores written as hyphens (``--lr-V``, ``--log-every``);
their ``dest`` is the field name.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, Union

import numpy as np

from scbjax.util.errors import ConfigError, is_int

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32


@functools.cache
def hints(cls) -> dict[str, Any]:
    """The resolved annotation of each field of dataclass ``cls``."""
    h = typing.get_type_hints(cls)
    return {f.name: h[f.name] for f in dataclasses.fields(cls)}


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _tname(x) -> str:
    return type(x).__name__


def _describe(tp) -> str:
    """A short human name of an annotation (for messages)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(args[0])}"
        return "a tuple (" + ", ".join(_describe(a) for a in args) + ")"
    if _is_optional(tp):
        return _describe(_strip_none(tp)) + " or None"
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return tp.__name__
        return {bool: "a bool", int: "an integer", float: "a number", str: "a string"}.get(
            tp, tp.__name__)
    return str(tp)


def _plural(tp) -> str:
    """The entries of a ``tuple[tp, ...]``: "numbers", "integers"; else ``_describe``."""
    return {bool: "bools", int: "integers", float: "numbers", str: "strings"}.get(
        tp, _describe(tp)) if isinstance(tp, type) else _describe(tp)


def _is_optional(tp) -> bool:
    origin = typing.get_origin(tp)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _strip_none(tp):
    args = tuple(a for a in typing.get_args(tp) if a is not type(None))
    return args[0] if len(args) == 1 else Union[args]  # noqa: UP007


def is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_))


def check_float(x, field: str) -> None:
    """A finite number that survives a cast to float32 (no overflow, no underflow to 0)."""
    if not is_number(x):
        raise ConfigError(field, f"must be a number, got {_tname(x)} {x!r}")
    try:
        v = float(x)
    except OverflowError:
        raise ConfigError(field, f"{x!r} overflows float32 (|x| must be <= {F32_MAX:.4g})"
                          ) from None
    if math.isnan(v):
        raise ConfigError(field, "must be a finite number, got nan")
    if math.isinf(v):
        raise ConfigError(field, f"must be a finite number, got {v}")
    if abs(v) > F32_MAX:
        raise ConfigError(field, f"{v!r} overflows float32 (|x| must be <= {F32_MAX:.4g})")
    if v != 0.0 and abs(v) < F32_TINY:
        raise ConfigError(field, f"{v!r} underflows float32 (|x| must be 0 or >= "
                          f"{F32_TINY:.4g})")


def check_value(value, tp, field: str) -> None:
    """Raise ConfigError(field, ...) unless ``value`` is of annotation ``tp``."""
    if _is_optional(tp):
        if value is not None:
            check_value(value, _strip_none(tp), field)
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if isinstance(value, bool) or not any(
                type(value) is type(a) and value == a for a in args):
            raise ConfigError(field, f"must be one of {', '.join(repr(a) for a in args)}; "
                              f"got {value!r}")
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            raise ConfigError(field, f"must be {_describe(tp)}, got {_tname(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            for i, v in enumerate(value):
                check_value(v, args[0], f"{field}[{i}]")
        elif args:
            if len(value) != len(args):
                raise ConfigError(field, f"must have {len(args)} entries, got {len(value)}")
            for i, (v, a) in enumerate(zip(value, args)):
                check_value(v, a, f"{field}[{i}]")
        return
    if tp is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(field, f"must be true or false, got {_tname(value)} {value!r}")
    elif tp is int:
        if not is_int(value):
            raise ConfigError(field, f"must be an integer, got {_tname(value)} {value!r}")
    elif tp is float:
        check_float(value, field)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(field, f"must be a string, got {_tname(value)} {value!r}")
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise ConfigError(field, f"must be a {tp.__name__}, got {_tname(value)}")
        check(value, field)
    # other annotations (Any, object, arrays): not checked here


def check(obj, where: str = ""):
    """Type-check every field of dataclass instance ``obj`` (recursively); return ``obj``."""
    for name, tp in hints(type(obj)).items():
        check_value(getattr(obj, name), tp, _join(where, name))
    return obj


# --- dicts (TOML / JSON) ----------------------------------------------------------------------


def _convert(value, tp, field: str):
    """Lists to tuples, dicts to dataclasses, ints to floats where a float is wanted."""
    if _is_optional(tp):
        return None if value is None else _convert(value, _strip_none(tp), field)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            want = (f"a list of {_plural(args[0])}" if len(args) == 2 and args[1] is Ellipsis
                    else f"a list ({_describe(tp)})")
            raise ConfigError(field, f"must be {want}, got {_tname(value)} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{field}[{i}]") for i, v in enumerate(value))
        if args and len(value) == len(args):
            return tuple(_convert(v, a, f"{field}[{i}]")
                         for i, (v, a) in enumerate(zip(value, args)))
        return tuple(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(field, f"must be a table of {tp.__name__} fields, got "
                              f"{_tname(value)}")
        return from_dict(tp, value, field, _check=False)
    if tp is float and is_int(value):
        try:
            return float(value)
        except OverflowError:
            return value  # check() reports the overflow
    return value


def from_dict(cls, d, where: str = "", _check: bool = True):
    """A ``cls`` instance from a dict (as loaded from TOML/JSON), type-checked.

    Unknown keys, wrong types (a string for a number included: no coercion) raise ConfigError
    naming the key path."""
    if not isinstance(d, dict):
        raise ConfigError(where or cls.__name__, f"must be a table of {cls.__name__} fields, "
                          f"got {_tname(d)}")
    h = hints(cls)
    for k in d:
        if k not in h:
            raise ConfigError(_join(where, str(k)),
                              f"unknown field (known: {', '.join(sorted(h))})")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in d
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(_join(where, missing[0]), "required field missing")
    kw = {k: _convert(v, h[k], _join(where, k)) for k, v in d.items()}
    obj = cls(**kw)
    return check(obj, where) if _check else obj


def to_dict(obj) -> Any:
    """JSON-able form of a (nested) dataclass: tuples as lists, numpy scalars as Python."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return obj


def field(default=dataclasses.MISSING, help: str = "", choices=None, *, per_run: bool = False,
          bound: tuple[str, float] | None = None, **kw):
    """A dataclass field with its default and its help text (read by ``help_of``).

    ``choices``: a function returning the allowed values of a ``str`` field (the CLI option's
    choices, read when the parser is built). ``per_run``: the value may differ between the runs
    of one compiled group (a traced setting: ``per_run_fields``). ``bound``: (">" | ">=", x),
    the range checked by ``check_bound`` wherever a value of the field enters (config, run,
    sweep axis)."""
    meta: dict[str, Any] = {"help": help, "per_run": per_run}
    if choices is not None:
        meta["choices"] = choices
    if bound is not None:
        meta["bound"] = bound
    return dataclasses.field(default=default, metadata=meta, **kw)


def per_run_fields(cls) -> tuple[str, ...]:
    """The fields of ``cls`` marked ``per_run``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("per_run"))


def _field(cls, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def check_bound(cls, name: str, value, where: str) -> None:
    """Type-check ``value`` as field ``name`` of ``cls`` (``check_value``), then its ``bound``;
    ConfigError(where) says what is wanted: "must be an integer >= 1, got 0"."""
    tp = hints(cls)[name]
    check_value(value, tp, where)
    bound = _field(cls, name).metadata.get("bound")
    if bound is None:
        return
    op, x = bound
    ok = value > x if op == ">" else value >= x
    if not ok:
        what = "an integer" if tp is int else "a finite number"
        raise ConfigError(where, f"must be {what} {op} {x:g}, got {value!r}")


def help_of(cls, name: str) -> str:
    """The ``metadata["help"]`` text of field ``name`` of ``cls`` ("" if none)."""
    return _field(cls, name).metadata.get("help", "")


# --- argparse --------------------------------------------------------------------------------


def option_name(name: str, prefix: str = "") -> str:
    """``--lr-V`` for field ``lr_V`` (underscores become hyphens)."""
    return "--" + (prefix + name).replace("_", "-")


def dest_name(name: str, prefix: str = "") -> str:
    return (prefix + name).replace("-", "_").replace(".", "_")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want an integer, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a number, got {text!r}") from None


_parse_int.__name__ = "integer"
_parse_float.__name__ = "number"


def parse_text(cls, name: str, text: str):
    """The value of scalar field ``name`` of ``cls`` written as command-line text: an integer,
    a number, ``true``/``false`` (nothing else is a bool), a string or one of a Literal's
    values; argparse.ArgumentTypeError otherwise."""
    tp = hints(cls)[name]
    if tp is bool:
        if text not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"want true or false, got {text!r}")
        return text == "true"
    if typing.get_origin(tp) is Literal:
        if text not in typing.get_args(tp):
            raise argparse.ArgumentTypeError(f"want one of {', '.join(typing.get_args(tp))}, "
                                             f"got {text!r}")
        return text
    return {int: _parse_int, float: _parse_float, str: str}[tp](text)


def _scalar(tp) -> bool:
    if typing.get_origin(tp) is Literal:
        return True
    return tp in (bool, int, float, str)


def add_arguments(parser, cls, *, prefix: str = "", skip=(), defaults: dict | None = None
                  ) -> list[str]:
    """Add ``--name`` options for the scalar fields of ``cls`` (not in ``skip``) to ``parser``
    (or an argument group); return the field names added. Type, choices and help come from the
    field; the default from ``defaults`` or the dataclass (None if it has none)."""
    defaults = defaults or {}
    added = []
    for f in dataclasses.fields(cls):
        tp = hints(cls)[f.name]
        if f.name in skip or not _scalar(tp):
            continue
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = None
        kw: dict[str, Any] = {"dest": dest_name(f.name, prefix), "default": default,
                              "help": f.metadata.get("help", "")}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            kw["choices"] = typing.get_args(tp)
        elif "choices" in f.metadata:
            kw["choices"] = tuple(f.metadata["choices"]())
        else:
            kw["type"] = {int: _parse_int, float: _parse_float, str: str}[tp]
            kw["metavar"] = {int: "INT", float: "X", str: "TEXT"}[tp]
        parser.add_argument(option_name(f.name, prefix), **kw)
        added.append(f.name)
    return added


def values_from_args(namespace, cls, prefix: str = "", skip=()) -> dict[str, Any]:
    """Field -> value of the options ``add_arguments`` added (None values left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not _scalar(hints(cls)[f.name]):
            continue
        v = getattr(namespace, dest_name(f.name, prefix), None)
        if v is not None:
            out[f.name] = v
    return out

