"""One error type for bad input: it names the offending field."""

from __future__ import annotations

import math

import numpy as np


class ConfigError(ValueError):
    """Invalid configuration or input; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def require(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ConfigError(field, message)


def is_int(x) -> bool:
    """A Python or numpy integer (not a bool)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def is_finite(x) -> bool:
    """A real number (int or float, numpy's too; not a bool, not a string such as "0.1") that
    is not NaN or infinite."""
    if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond float range
        return False
