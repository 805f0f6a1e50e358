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
    """A real number that is not NaN or infinite."""
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
