"""One error type for bad input: it names the offending field."""

from __future__ import annotations


class ConfigError(ValueError):
    """Invalid configuration or input; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def require(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ConfigError(field, message)
