"""Optimizers by name: the built-ins and a user's own, registered with ``register_optimizer``.

A factory takes the run's ``TrainConfig`` and returns an optax ``GradientTransformationExtraArgs``,
built once per run. Its ``update(grads, state, params, **extra)`` receives, as extra arguments,
the step's value of every float per-run ``Phase`` field (``lr_V``, ``lr_A``, ``lam``:
``scbjax.sim.config.HPARAMS``; a new such field reaches every optimizer under its name),
``freeze`` (its phase's flag), ``mu`` (the task's stationary distribution) and
``token_counts`` (the batch's token counts), and returns updates that are added to the
parameters, as in optax. A user factory's name and a digest of its code (its source file, or its
code object where it has none) enter the configuration hash of every run that uses it
(``RunSpec.key``): results computed with other code are never reused.

    import scbjax, optax

    def momentum(config):
        return optax.chain(optax.trace(decay=0.9), scbjax.scale_by_lr())

    scbjax.register_optimizer("momentum", momentum)

``load_plugin(path)`` imports a file of such calls (``scbjax train --plugin FILE``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import marshal
import re
import sys
from pathlib import Path
from typing import Any, Callable

from scbjax.util.errors import ConfigError

Factory = Callable[[Any], Any]  # TrainConfig -> optax.GradientTransformationExtraArgs

_FACTORIES: dict[str, Factory] = {}
_DIGESTS: dict[str, str] = {}
_BUILTIN: set[str] = set()
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def code_of(factory: Factory) -> str:
    """A digest of ``factory``'s code: its source file's bytes and its qualified name, or its
    code object (marshalled) where it has no readable source file."""
    h = hashlib.sha256(getattr(factory, "__qualname__", repr(factory)).encode())
    try:
        src = inspect.getsourcefile(factory)
        h.update(Path(src).read_bytes() if src else b"")
        if not src:
            raise TypeError
    except (TypeError, OSError):
        code = getattr(factory, "__code__", None)
        h.update(marshal.dumps(code) if code is not None else repr(factory).encode())
    return h.hexdigest()[:16]


def register_optimizer(name: str, factory: Factory, *, builtin: bool = False) -> None:
    """Make ``name`` an optimizer of ``TrainConfig.optimizer``. A user name may be registered
    again (the new factory and its digest replace the old); a built-in name may not."""
    if not (isinstance(name, str) and _NAME.match(name)):
        raise ConfigError("optimizer", f"a name is a letter then up to 63 letters, digits, "
                          f"'_', '.' or '-', got {name!r}")
    if not callable(factory):
        raise ConfigError("optimizer", f"{name}: the factory must be callable, got "
                          f"{type(factory).__name__}")
    if name in _BUILTIN:
        raise ConfigError("optimizer", f"{name!r} is built in; register under another name")
    _FACTORIES[name] = factory
    _DIGESTS[name] = "" if builtin else code_of(factory)
    if builtin:
        _BUILTIN.add(name)


def names() -> tuple[str, ...]:
    """Every registered optimizer name, in order of registration (the built-ins first)."""
    return tuple(_FACTORIES)


def factory(name: str) -> Factory:
    if name not in _FACTORIES:
        raise ConfigError("optimizer", f"must be one of {', '.join(map(repr, names()))} (or a "
                          f"name registered with scbjax.register_optimizer), got {name!r}")
    return _FACTORIES[name]


def digest(name: str) -> str:
    """The code digest of a user optimizer ("" for a built-in or an unknown name)."""
    return _DIGESTS.get(name, "")


def load_plugin(path, field: str = "--plugin") -> None:
    """Import the Python file ``path`` (its ``register_optimizer`` calls take effect); a
    missing or failing file is a ConfigError naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, f"{p}: no such file")
    mod = f"scbjax_plugin_{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(mod, p)
    if spec is None or spec.loader is None:
        raise ConfigError(field, f"{p}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as e:  # the user's code: any error, named with the file
        sys.modules.pop(mod, None)
        raise ConfigError(field, f"{p}: {type(e).__name__}: {e}") from None
