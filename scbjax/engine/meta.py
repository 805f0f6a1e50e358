"""What a result records besides its arrays: package versions, the git commit, devices, and
the config as a dict (the on-disk layout itself is ``scbjax.engine.store``)."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax

from scbjax.sim.train import TrainConfig
from scbjax.util import fields


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("scbjax", "jax", "jaxlib", "optax", "numpy", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def devices() -> list[str]:
    """The devices JAX runs on, as text (all processes' under ``jax.distributed``)."""
    return [str(d) for d in jax.devices()]


# Fields added after the hash's format was fixed: left out of the dict at their default, so
# that the hashes (and reuse) of the configurations that do not set them stay as they were.
LATER_FIELDS = {"log_per_decade": 0}


def config_to_dict(config: TrainConfig) -> dict:
    d = dataclasses.asdict(config)
    for k, default in LATER_FIELDS.items():
        if d.get(k) == default:
            del d[k]
    return d


def config_from_dict(d: dict, where: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from ``config_to_dict``'s output, every field type-checked."""
    return fields.from_dict(TrainConfig, d, where)
