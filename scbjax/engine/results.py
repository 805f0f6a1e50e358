"""A spec's folder around its run: the checks before it (its files are files; it holds no
other configuration's runs unless overwriting), the reuse of finished results (checked
against the spec, ``run.json`` repaired from the results file), and the final write."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from scbjax.engine.checkpoint import to_host
from scbjax.engine.spec import RunSpec
from scbjax.engine.store import (ARRAYS, CHECKPOINT, META, SIDECAR, Runs, checkpoint_hash,
                                 final_shapes, identify, kept, read_results)
from scbjax.sim.train import METRICS, PER_RUN, log_schedule
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write, load_json


def check_files(sdir: Path) -> None:
    """The files a spec writes must be files where they exist (not folders, FIFOs...)."""
    for f in (ARRAYS, SIDECAR, CHECKPOINT):
        p = sdir / f
        if (p.exists() or p.is_symlink()) and not p.is_file():
            raise ConfigError(str(p), "exists and is not a regular file: remove it")


def check_other(sdir: Path, key: str, overwrite: bool) -> None:
    """Refuse to replace what ``sdir`` holds of another configuration (finished results, or a
    checkpoint) unless ``overwrite``; damaged files are recomputed (and named) instead."""
    held, _ = identify(sdir)
    if held is None or held == "?" or held == key:
        held = checkpoint_hash(sdir) if held is None else held
    if held not in (None, "?", key) and not overwrite:
        raise ConfigError(str(sdir), f"holds the runs of another configuration (hash {held}, "
                          f"this one is {key}): choose another output folder, or overwrite "
                          "(--overwrite) to replace them")


def reuse(name: str, spec: RunSpec, sdir: Path, key: str,
          say: Callable[[str], None]) -> Runs | None:
    """The finished results in ``sdir`` if they carry the hash ``key``, load, and hold this
    spec's seeds and settings, else None (said why, when there are results). A ``run.json``
    that does not match them (a write interrupted between the two files) is rewritten from
    the copy the results file carries."""
    if not ((sdir / SIDECAR).exists() or (sdir / ARRAYS).exists()):
        return None
    try:
        arrays, meta = read_results(sdir)
        if meta["hash"] != key:
            raise ConfigError(str(sdir / ARRAYS), f"holds other runs (hash {meta['hash']}, "
                              f"want {key})")
        settings = spec.settings()
        same = np.array_equal(arrays["seeds"], [r.seed for r in spec.runs]) and all(
            f"settings/{k}" in arrays and np.array_equal(arrays[f"settings/{k}"], v)
            for k, v in settings.items())
        if not same:
            raise ConfigError(str(sdir / ARRAYS), "its seeds or settings are not those its "
                              "hash stands for")
        lacks = [k for k in spec.kept if k not in kept(meta)]
        if lacks:
            raise ConfigError(str(sdir / ARRAYS), f"was written without {', '.join(lacks)} "
                              "(another keep), which this spec keeps")
    except ConfigError as e:  # a damaged, inconsistent or missing file
        say(f"{e}: recomputing")
        return None
    try:
        side = load_json(sdir / SIDECAR)
    except ConfigError:
        side = None
    if side != meta:
        _write_sidecar(sdir, meta)
        say(f"{sdir / SIDECAR} did not match {sdir / ARRAYS} (a write was interrupted): "
            "rewritten from the copy in the results file")
    say(f"finished earlier, reused ({sdir})")
    return Runs(arrays, meta, name)


def _write_sidecar(sdir: Path, meta: dict) -> None:
    text = json.dumps(meta, indent=2).encode()
    atomic_write(sdir / SIDECAR, lambda f: f.write(text))


def write(sdir: Path, arrays: dict, meta: dict) -> dict:
    """Write a finished spec's results file (its arrays and ``meta`` as JSON text) and then
    ``run.json`` (atomically, on process 0), drop the checkpoint; return ``meta`` as it reads
    back. The results file is the authority: a crash between the two writes leaves a
    ``run.json`` that ``reuse`` rewrites from it."""
    meta = json.loads(json.dumps(meta))
    if jax.process_index() == 0:
        atomic_write(sdir / ARRAYS, lambda f: np.savez_compressed(  # zip-deflated: q is sparse
            f, **arrays, **{META: json.dumps(meta)}))
        _write_sidecar(sdir, meta)
        (sdir / CHECKPOINT).unlink(missing_ok=True)
    return meta


def _label_array(values: list) -> np.ndarray:
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.asarray(values, bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return np.asarray(values, np.float64)
    return np.asarray([str(v) for v in values])


def result_bytes(spec: RunSpec) -> int:
    """Bytes of the arrays ``result_arrays`` gives for ``spec`` (its results.npz, less the
    JSON copy of run.json and the zip headers), from the shapes alone."""
    cfg = spec.config
    R, L, P = len(spec.runs), len(log_schedule(cfg)[0]), len(cfg.phases)
    N, T = cfg.task.N, cfg.task.T
    n = 8 * (R + L + R * L)  # seeds, steps, samples (int64)
    final = final_shapes(N, T)
    n += 4 * R * (1 + sum(math.prod(final[k]) for k in spec.kept))  # diverged_step, final
    n += 4 * R * (len(PER_RUN) * P + 1)  # settings (per phase), dataset
    n += 4 * R * L * len(METRICS)
    return n + sum(_label_array([r.label_dict[k] for r in spec.runs]).nbytes
                   for k in spec.label_names)


def result_arrays(spec: RunSpec, state, metrics: dict, sa: dict, R: int) -> dict:
    cfg = spec.config
    steps, _ = log_schedule(cfg)
    per_log = np.diff(np.concatenate([[0], steps]))  # steps added at each log point
    ends = np.cumsum([p.steps for p in cfg.phases])
    ph = np.minimum(np.searchsorted(ends, steps - 1, side="right"), len(ends) - 1)
    samples = np.cumsum(per_log[None, :] * sa["batch"][:R][:, ph].astype(np.int64), axis=1)
    arrays = {"seeds": np.asarray([r.seed for r in spec.runs], np.int64), "steps": steps,
              "samples": samples.astype(np.int64),
              "diverged_step": to_host(state.diverged_step)[:R]}
    for k in spec.kept:  # "params/V" -> state.params.V
        group, leaf = k.split("/")
        arrays[k] = to_host(getattr(getattr(state, group), leaf))[:R]
    for k, v in sa.items():
        arrays[f"settings/{k}"] = v[:R]
    for k in METRICS:
        arrays[f"metrics/{k}"] = np.concatenate(metrics[k], axis=1)[:R]
    for k in spec.label_names:
        arrays[f"labels/{k}"] = _label_array([r.label_dict[k] for r in spec.runs])
    return arrays
