"""A run group's arrays between the devices and the host, and its checkpoint file.

The runs of a group lie along a 1-D mesh "runs" over all devices (all processes' under
``jax.distributed``), padded to a multiple of the device count. A checkpoint stores the state's
leaves by pytree path, the metrics logged so far, the next log interval, the spec's hash and
the format version, for the group's runs without the padding (so it resumes on any number of
devices); ``load`` gives it back only when all of these match and the shapes fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from scbjax.engine.spec import FORMAT
from scbjax.sim.train import METRICS
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write, load_npz


def run_mesh() -> jax.sharding.Mesh:
    """1-D mesh "runs" over all devices (all processes' under ``jax.distributed``)."""
    return jax.sharding.Mesh(np.asarray(jax.devices()), ("runs",))


def to_global(x, sharding) -> jax.Array:
    """A host array placed on the devices with ``sharding`` (each process gives its part)."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly sharded) device array on the host (a host array as it is)."""
    if isinstance(x, np.ndarray) or jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def pad(x: np.ndarray, R_pad: int) -> np.ndarray:
    """``x`` with its last run repeated up to ``R_pad`` runs."""
    x = np.asarray(x)
    return np.concatenate([x, np.repeat(x[-1:], R_pad - x.shape[0], axis=0)]) \
        if R_pad > x.shape[0] else x


def _leaf_names(state) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


def save(path: Path, key: str, state, metrics: dict, next_interval: int, R: int) -> None:
    """Write the checkpoint of the first ``R`` runs atomically (on process 0): unpadded, so
    that it resumes on any number of devices."""
    leaves = [to_host(x)[:R] for x in jax.tree.leaves(state)]
    if jax.process_index() != 0:
        return
    z = {f"state/{n}": x for n, x in zip(_leaf_names(state), leaves)}
    z.update({f"metrics/{k}": np.concatenate(v, axis=1)[:R] for k, v in metrics.items()})
    z["hash"] = np.asarray(key)
    z["format"] = np.asarray(FORMAT)
    z["next_interval"] = np.asarray(next_interval)
    atomic_write(path, lambda f: np.savez(f, **z))


def load(path: Path, key: str, state, shard, say: Callable[[str], None], R: int, n_int: int):
    """(state, metrics, next interval) from a checkpoint of this spec's ``R`` runs, padded
    again to ``state``'s runs, or None (said why); ``state`` gives the tree and the shapes the
    stored leaves must have, ``n_int`` the number of log intervals."""
    try:
        z = load_npz(path)
    except ConfigError as e:
        say(f"checkpoint {e}: restarting this spec from scratch")
        return None
    fmt = int(z["format"]) if "format" in z else None
    if fmt != FORMAT:
        say(f"checkpoint {path} has format {fmt}, this version writes {FORMAT}: "
            "restarting this spec from scratch")
        return None
    if str(z.get("hash")) != key:
        say(f"checkpoint {path} belongs to another configuration: restarting from scratch")
        return None
    names = _leaf_names(state)
    leaves, treedef = jax.tree.flatten(state)
    R_pad = leaves[0].shape[0]
    missing = [n for n in names if f"state/{n}" not in z]
    bad = [n for n, x in zip(names, leaves) if f"state/{n}" in z and z[f"state/{n}"].shape
           != (R,) + tuple(x.shape[1:])]
    ni = z.get("next_interval")
    if ni is None or ni.shape != () or ni.dtype.kind not in "iu" or not 0 <= int(ni) <= n_int:
        bad.append(f"next_interval {None if ni is None else ni.tolist()} (of {n_int})")
    else:
        bad += [f"metrics/{k}" for k in METRICS if f"metrics/{k}" in z
                and z[f"metrics/{k}"].shape != (R, int(ni) + 1)]
    missing += [f"metrics/{k}" for k in METRICS if f"metrics/{k}" not in z]
    if missing or bad:
        say(f"checkpoint {path} does not match this spec's state "
            f"({(missing + bad)[:1]}): restarting from scratch")
        return None
    state = jax.tree.unflatten(treedef, [to_global(pad(z[f"state/{n}"], R_pad), shard)
                                         for n in names])
    metrics = {k: [pad(z[f"metrics/{k}"], R_pad)] for k in METRICS}
    return state, metrics, int(ni)
