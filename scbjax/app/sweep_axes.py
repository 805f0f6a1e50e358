"""A sweep's axes as researchers mean them: zipped axes, per-phase axes, a samples budget.

- ``axes.zip = [["batch", "lr_V"]]``: those traced axes vary together (equal lengths, paired
  by index) instead of crossed.
- ``"phases[i].<field>" = [...]`` under ``[axes]`` (``SweepSpec.phase_axes``): a per-run
  setting of phase ``i`` only, labelled ``<field>_<i>`` (``batch_1``). A plain axis (``batch``)
  sets every phase; the two forms of one field are refused together.
- ``samples = n`` in a base phase instead of ``steps`` (``SweepSpec.samples``): each run trains
  ``n / batch`` steps of that phase for its own batch, so every run draws ``n`` samples.

Runs with different step counts are split into one compiled group each (``group_key``), not
padded with masked steps: a masked step is no no-op (ppd's prox and projection, adam's moments
and the log schedule all move with the step count), so one group per step count keeps each
run's trajectory that of a plain run with its batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np

from scbjax.sim.config import HPARAMS, PER_RUN, Phase, TrainConfig
from scbjax.util import fields
from scbjax.util.errors import is_int, require

LR = ("lr_V", "lr_A")  # the axis "lr" sets both
# the per-run Phase fields in the order the runs vary: learning rates, the other
# hyperparameters, then the integer sizes (batch); the fixed-dataset size last
ORDER = LR + tuple(n for n in HPARAMS if n not in LR) + tuple(n for n in PER_RUN
                                                           if n not in HPARAMS)
TRACED = ("lr",) + ORDER + ("dataset",)
STATIC = ("optimizer", "N", "T", "Q")
PHASE_KEY = re.compile(r"^phases\[(\d+)\]\.([A-Za-z_]\w*)$")


def parse_key(key: str, n_phases: int) -> tuple[int, str]:
    """(phase, field) of a per-phase axis ``phases[i].<field>``; ConfigError names it."""
    m = PHASE_KEY.fullmatch(key) if isinstance(key, str) else None
    require(m is not None, f"axes.{key}", "a per-phase axis is written phases[i].<field>")
    i, name = int(m.group(1)), m.group(2)
    require(key == f"phases[{i}].{name}", f"axes.{key}", f"write it phases[{i}].{name}")
    require(name in PER_RUN, f"axes.{key}", f"not a per-run setting (known: {', '.join(PER_RUN)})")
    require(i < n_phases, f"axes.{key}", f"phase {i} of a base with {n_phases} phase(s)")
    return i, name


def split_axes(axes: dict) -> tuple[dict, tuple]:
    """The ``[axes]`` table without its ``phases[i].<field>`` keys, and those as
    ``phase_axes`` ((key, values) pairs, lists made tuples; checked by ``check_phase_axes``)."""
    plain = {k: v for k, v in axes.items() if not str(k).startswith("phases[")}
    per = tuple((k, tuple(_as_float(v, _type(k)) for v in vs)) for k, vs in axes.items()
                if str(k).startswith("phases["))
    return plain, per


def _type(key: str):
    m = PHASE_KEY.fullmatch(key)
    return fields.hints(Phase).get(m.group(2)) if m else None


def _as_float(v, tp):
    """An integer given for a float setting as that float (as ``fields.from_dict`` does)."""
    return float(v) if tp is float and is_int(v) and abs(v) < 2**53 else v


def split_samples(base: dict) -> tuple[dict, tuple[int, ...]]:
    """The base table with each phase's ``samples`` taken out (its ``steps`` a placeholder,
    ``samples // batch``), and the budgets (0: the phase's steps; () when none is given)."""
    phases = base.get("phases") if isinstance(base, dict) else None
    if not isinstance(phases, (list, tuple)) or not any(
            isinstance(p, dict) and "samples" in p for p in phases):
        return base, ()
    out, budget = [], []
    for i, p in enumerate(phases):
        if not (isinstance(p, dict) and "samples" in p):
            out.append(p)
            budget.append(0)
            continue
        n, f = p["samples"], f"base.phases[{i}].samples"
        require("steps" not in p, f"base.phases[{i}]", "give steps or samples, not both")
        require(is_int(n) and n >= 1, f, f"must be an integer >= 1, got {n!r}")
        b = p.get("batch", 8)
        steps = n // b if is_int(b) and b >= 1 and n >= b else 1
        out.append({**{k: v for k, v in p.items() if k != "samples"}, "steps": steps})
        budget.append(n)
    return {**base, "phases": out}, tuple(budget)


def check_phase_axes(phase_axes, axes, n_phases: int) -> None:
    """Each per-phase axis: its key, its values' type and bounds; no plain axis of its field."""
    require(isinstance(phase_axes, tuple), "phase_axes", "must be a tuple of (key, values)")
    seen = set()
    for j, kv in enumerate(phase_axes):
        require(isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[1], tuple),
                f"phase_axes[{j}]", f"must be a (key, tuple of values) pair, got {kv!r}")
        key, vals = kv
        i, name = parse_key(key, n_phases)
        f = f"axes.{key}"
        require(key not in seen, f, "given twice")
        seen.add(key)
        require(len(vals) >= 1, f, "needs at least one value")
        plain = "lr" if name in LR and axes.lr else name
        require(not getattr(axes, plain), f, f"the axis {plain} sets every phase: give it or "
                f"per-phase axes phases[i].{name}, not both")
        tp = fields.hints(Phase)[name]
        for k, v in enumerate(vals):
            fields.check_value(v, tp, f"{f}[{k}]")
            fields.check_bound(Phase, name, v, f)


def names_with_values(axes, phase_axes) -> list[str]:
    """The traced axes given values, in the order the runs vary (the per-phase ones last)."""
    out = [("lr" if n == "lr_V" and axes.lr else n) for n in ORDER + ("dataset",)]
    return [n for n in out if getattr(axes, n)] + [k for k, _ in phase_axes]


def values_of(axes, phase_axes, name: str) -> tuple:
    return dict(phase_axes)[name] if name.startswith("phases[") else getattr(axes, name)


def check_zip(axes, phase_axes) -> None:
    """Each ``axes.zip[i]``: two or more traced axes with values, each zipped once, of equal
    lengths, no pair of values repeated."""
    given = names_with_values(axes, phase_axes)
    known = TRACED + tuple(k for k, _ in phase_axes)
    zipped: set = set()
    for i, names in enumerate(axes.zip):
        f = f"axes.zip[{i}]"
        require(len(names) >= 2, f, f"zip two or more axes, got {list(names)}")
        for n in names:
            require(n not in STATIC, f, f"{n} is a static axis (one compiled group per value): "
                    "only traced axes are zipped")
            require(n in known, f, f"unknown axis {n!r} (known: {', '.join(TRACED)}, "
                    "phases[i].<field>)")
            require(n not in zipped, f, f"axis {n!r} zipped twice")
            require(n in given, f, f"axis {n!r} has no values to zip")
            zipped.add(n)
        lens = {n: len(values_of(axes, phase_axes, n)) for n in names}
        require(len(set(lens.values())) == 1, f, "unequal lengths: " +
                ", ".join(f"{n} {k}" for n, k in lens.items()))
        rows = list(zip(*(values_of(axes, phase_axes, n) for n in names)))
        keys = [tuple(np.float32(x).item() if isinstance(x, float) else x for x in r)
                for r in rows]
        require(len(set(keys)) == len(keys), f, f"a repeated combination in {rows}")


def zipped_names(axes) -> set:
    return {n for names in axes.zip for n in names}


def units(axes, phase_axes) -> list[list[dict]]:
    """The traced axes as the factors of a product: one list of {axis: value} per axis, or
    per zip (its values paired by index), in the order the runs vary."""
    groups = {n: names for names in axes.zip for n in names}
    out, done = [], set()
    for n in names_with_values(axes, phase_axes):
        if n in done:
            continue
        names = groups.get(n, (n,))
        done.update(names)
        cols = [values_of(axes, phase_axes, m) for m in names]
        out.append([dict(zip(names, row)) for row in zip(*cols)])
    return out


def combinations(axes, phase_axes):
    """Every traced combination: a dict axis -> value (an axis left out keeps the base's)."""
    for xs in itertools.product(*units(axes, phase_axes)):
        yield {k: v for d in xs for k, v in d.items()}


def count(axes, phase_axes) -> tuple[dict, int, int]:
    """({unit name: length}, settings in all, the most settings of one kind of data (online or
    fixed)): counted, not built."""
    sizes, total, other, split = {}, 1, 1, None
    for u in units(axes, phase_axes):
        name = "+".join(u[0])
        sizes[name] = len(u)
        total *= len(u)
        if "dataset" in u[0]:
            split = max(sum(d["dataset"] == 0 for d in u), sum(d["dataset"] > 0 for d in u))
        else:
            other *= len(u)
    return sizes, total, other * (split if split is not None else 1)


def settings_of(base: TrainConfig, combo: dict) -> tuple[dict, int, dict]:
    """(per-phase settings {field: [value per phase]}, dataset, per-phase labels) of a
    combination."""
    P = len(base.phases)
    st = {k: list(base.per_phase(k)) for k in ORDER}
    labels = {}
    for k, x in combo.items():
        if k == "lr":
            st["lr_V"], st["lr_A"] = [x] * P, [x] * P
        elif k in ORDER:
            st[k] = [x] * P
        elif k.startswith("phases["):
            i, name = parse_key(k, P)
            st[name][i] = x
            labels[f"{name}_{i}"] = x
    return st, int(combo.get("dataset", 0)), labels


def phase_steps(base: TrainConfig, samples: tuple, batch: list) -> tuple[int, ...]:
    """Each phase's steps for a run of these batches: ``samples / batch`` where a budget is
    given (refused unless whole), else the base's."""
    out = []
    for i, p in enumerate(base.phases):
        n = samples[i] if samples else 0
        if n:
            b = int(batch[i])
            require(n % b == 0, f"base.phases[{i}].samples", f"a budget of {n} samples is not "
                    f"a whole number of batches of {b} ({n} / {b} = {n / b:g})")
        out.append(n // int(batch[i]) if n else p.steps)
    return tuple(out)


def check_samples(samples, n_phases: int) -> None:
    require(isinstance(samples, tuple) and len(samples) in (0, n_phases), "samples",
            f"want () or one budget per base phase ({n_phases}), got {samples!r}")
    for i, n in enumerate(samples):
        require(is_int(n) and n >= 0, f"base.phases[{i}].samples",
                f"must be an integer >= 1 (0: the phase's steps), got {n!r}")


def extreme_phases(base: TrainConfig, axes, phase_axes, samples) -> tuple[Phase, ...]:
    """The base phases at the largest batch and the most steps any run of the sweep has (for
    the memory estimate)."""
    out = []
    for i, p in enumerate(base.phases):
        per = [vs for k, vs in phase_axes if parse_key(k, len(base.phases)) == (i, "batch")]
        bs = per[0] if per else (axes.batch or (p.batch,))
        n = samples[i] if samples else 0
        steps = max(1, n // min(bs)) if n else p.steps
        out.append(dataclasses.replace(p, batch=max(bs), steps=steps))
    return tuple(out)


def steps_suffix(steps: tuple[int, ...]) -> str:
    """A group name's suffix for a sweep with a samples budget: ``_steps<s0>-<s1>``."""
    return "_steps" + "-".join(map(str, steps))


__all__ = ["ORDER", "TRACED", "STATIC", "split_axes", "split_samples", "check_phase_axes",
           "check_zip", "combinations", "count", "settings_of", "phase_steps", "units"]
