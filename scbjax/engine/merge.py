"""Merged groups: specs that compile to the same program run as one vmapped call.

The compiled advance of a group depends on the config less its initialisation (the task
generator's knobs but N and T, ``init``, ``init_scale``) and less the per-run ``Phase``
fields (the runs' own settings are traced), on each phase's padded batch and mask, the
fixed-dataset size and the chunking (``compile_key``). Specs with the same key are merged
(``groups``): each member is initialised on its own (its own tasks, starts and generator),
their states are stacked along the run axis (``stack``), advanced together, and split back
(``take``) into each spec's own checkpoint and results, written exactly as a group of one
writes them. A run draws the same numbers in any group (per-step data come from
``fold_in(key, step)`` of its own key) and, on a CPU, the same bits: the task is built with
sums in a fixed order, metrics are measured one run at a time and a group has 2 runs at least
(docs/findings.md §5.1; on an accelerator, to float32 rounding).
A user optimizer's factory may read any field: its specs merge only with identical configs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np

from scbjax.engine.checkpoint import pad, to_global, to_host
from scbjax.engine.meta import config_to_dict
from scbjax.engine.spec import RunSpec, digest_json
from scbjax.optim import registry
from scbjax.sim.config import PER_RUN
from scbjax.sim.train import intervals

INIT_ONLY = ("init", "init_scale")  # TrainConfig fields read by a run's init only
TASK_SHAPE = ("N", "T")  # the TaskConfig fields the compiled steps see (shapes)


@dataclasses.dataclass
class Member:
    """One spec of a group: its name, validated spec, folder, hash and resolved inputs."""

    name: str
    spec: RunSpec
    sdir: Path
    key: str
    tasks: Any = None
    params0: Any = None

    @property
    def R(self) -> int:
        return len(self.spec.runs)


def chunk_limits(spec: RunSpec) -> tuple[int, int]:
    """(steps, intervals) a chunk holds at most: ``chunk_steps`` (default: the larger of
    ``log_every`` and a tenth of the run) and ``chunk_steps // log_every`` (at least 1)."""
    cfg = spec.config
    chunk = spec.chunk_steps or max(cfg.log_every, -(-cfg.total_steps // 10))
    return chunk, max(1, chunk // cfg.log_every)


def next_chunk(length, phase, i: int, steps: int, C: int) -> list[int]:
    """The log intervals of the chunk from interval ``i``: consecutive intervals of one phase,
    at most ``steps`` steps in all (at least one interval) and at most ``C`` of them."""
    sel, n = [i], int(length[i])
    j = i + 1
    while (j < len(length) and phase[j] == phase[i] and len(sel) < C
           and n + int(length[j]) <= steps):
        sel.append(j)
        n += int(length[j])
        j += 1
    return sel


def scan_length(spec: RunSpec) -> int:
    """Intervals per compiled chunk: the most that a chunk of the run from step 0 holds."""
    _, length, phase = intervals(spec.config)
    steps, C = chunk_limits(spec)
    i, most = 0, 1
    while i < len(length):
        sel = next_chunk(length, phase, i, steps, C)
        most, i = max(most, len(sel)), sel[-1] + 1
    return most


def compile_key(spec: RunSpec) -> str:
    """Digest of what determines a spec's compiled advance (see the module docstring)."""
    d = config_to_dict(spec.config)
    code = registry.digest(spec.config.optimizer)
    if not code:  # a built-in optimizer reads no generator knob and no per-run default
        d["task"] = {k: d["task"][k] for k in TASK_SHAPE}
        for k in INIT_ONLY:
            d.pop(k)
        d["phases"] = [{k: v for k, v in p.items() if k not in PER_RUN} for p in d["phases"]]
    d["optimizer_code"] = code
    d["max_batch"], d["masked"] = spec.max_batch(), spec.masked()
    d["max_dataset"] = spec.max_dataset
    d["chunk"] = chunk_limits(spec)[0], scan_length(spec)
    return digest_json(d)


def groups(specs: Mapping[str, RunSpec],
           fits: Callable[[RunSpec, int], bool] = lambda spec, runs: True) -> list[list[str]]:
    """The specs' names in groups, in the order the groups run (that of their first spec): a
    spec joins the latest group of its ``compile_key`` while ``fits(first spec, runs of the
    group with it)`` holds, unless its ``tasks``/``params0`` are functions (a function may
    read the results of the specs before it: such a spec is never run before its turn, and
    heads a group of its own, which later specs may join). Specs are validated."""
    out: list[list[str]] = []
    open_: dict = {}  # compile key -> (group, its runs)
    for n, s in specs.items():
        k = compile_key(s.validate(n))
        g = open_.get(k)
        if (g is not None and not (callable(s.tasks) or callable(s.params0))
                and fits(specs[g[0][0]], g[1] + len(s.runs))):
            g[0].append(n)
            open_[k] = (g[0], g[1] + len(s.runs))
            continue
        out.append([n])
        open_[k] = (out[-1], len(s.runs))
    return out


def stack(trees: list, Rs: list[int], R_pad: int, shard=None) -> Any:
    """The first ``Rs[i]`` runs of each pytree ``trees[i]`` concatenated along the run axis and
    padded to ``R_pad`` runs: on the devices with ``shard``, on the host when None."""
    def cat(*xs):
        x = pad(np.concatenate([to_host(a)[:r] for a, r in zip(xs, Rs)]), R_pad)
        return x if shard is None else to_global(x, shard)
    return jax.tree.map(cat, *trees)


def take(tree, lo: int, hi: int) -> Any:
    """Runs ``lo:hi`` of a pytree of (host or device) arrays, on the host."""
    return jax.tree.map(lambda x: to_host(x)[lo:hi], tree)


def offsets(members: list[Member]) -> list[tuple[int, int]]:
    """Each member's runs ``(lo, hi)`` in the stacked group."""
    ends = np.cumsum([0] + [m.R for m in members])
    return [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def label(members: list[Member]) -> str:
    """A group's names for its progress lines: "a", or "a+b+c"."""
    names = [m.name for m in members]
    return names[0] if len(names) == 1 else "+".join(names)


__all__ = ["Member", "chunk_limits", "next_chunk", "scan_length", "compile_key", "groups", "stack", "take", "offsets", "label"]
