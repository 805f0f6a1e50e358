"""A run on disk: flat arrays in ``results.npz`` (leading axis = seed) and a JSON sidecar.

Arrays: ``seeds`` [S]; ``steps``, ``samples`` [L]; ``metrics/<name>`` [S, L];
``params/V`` [S, N, N], ``params/A`` [S, T, N]; ``task/P``, ``task/mu``, ``task/q`` [S, ...];
``hparams/<name>`` [S, n_phases]; ``diverged_step`` [S] (-1: never).
Sidecar ``run.json``: config, package versions, git commit, timings, devices.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from scbjax.fileio import atomic_write, load_json, load_npz
from scbjax.task import TaskConfig
from scbjax.train import Hparams, Phase, TrainConfig, TrainResult, log_schedule

ARRAYS = "results.npz"
SIDECAR = "run.json"


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
    import jax

    return [str(d) for d in jax.devices()]


def config_to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["task"] = TaskConfig(**d["task"])
    d["phases"] = tuple(Phase(**p) for p in d["phases"])
    return TrainConfig(**d)


def to_arrays(result: TrainResult, config: TrainConfig, seeds, hparams: Hparams) -> dict:
    steps, samples = log_schedule(config)
    arrays = {"seeds": np.asarray(seeds), "steps": steps, "samples": samples,
              "diverged_step": np.asarray(result.diverged_step),
              "params/V": np.asarray(result.params.V), "params/A": np.asarray(result.params.A),
              "task/P": np.asarray(result.task.P), "task/mu": np.asarray(result.task.mu),
              "task/q": np.asarray(result.task.q)}
    S = arrays["seeds"].shape[0]
    for f in dataclasses.fields(Hparams):
        arrays[f"hparams/{f.name}"] = np.broadcast_to(
            np.asarray(getattr(hparams, f.name)), (S, len(config.phases))).copy()
    for name, v in result.metrics.items():
        arrays[f"metrics/{name}"] = np.asarray(v)
    return arrays


_atomic_write = atomic_write  # moved to scbjax.fileio; kept for existing callers


def save_run(out_dir, arrays: dict, config: TrainConfig, timings: dict | None = None,
             extra: dict | None = None) -> Path:
    """Write ``results.npz`` then ``run.json`` (each atomically: write, then rename)."""
    out = Path(out_dir)
    _atomic_write(out / ARRAYS, lambda f: np.savez(f, **arrays))
    meta = {"config": config_to_dict(config), "versions": versions(), "git_commit": git_commit(),
            "devices": devices(), "timings": timings or {}, **(extra or {})}
    text = json.dumps(meta, indent=2, default=_jsonable).encode()
    _atomic_write(out / SIDECAR, lambda f: f.write(text))
    return out


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def load_run(run_dir) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, sidecar) of a saved run; ``sidecar['config']`` as a TrainConfig. A missing,
    truncated or corrupt file raises ConfigError naming it."""
    run = Path(run_dir)
    arrays = load_npz(run / ARRAYS)
    meta = load_json(run / SIDECAR)
    meta["config"] = config_from_dict(meta["config"])
    return arrays, meta
