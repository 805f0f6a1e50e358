"""Sweeps: seeds x hyperparameters x batch / dataset sizes x task shapes, chunked and resumable.

A ``SweepSpec`` (TOML/JSON file or these dataclasses) is a base ``TrainConfig`` plus axes:

- traced axes, vmapped in one compiled call beside the seeds: ``lr`` (sets lr_V and lr_A),
  ``lr_V``, ``lr_A``, ``lam``, ``batch`` (padded to the largest batch with a mask) and the
  fixed-dataset size ``dataset`` (n > 0: n samples drawn once, padded to the largest n);
- static axes, one compiled call ("group") per combination: ``optimizer``, ``N``, ``T``,
  ``Q``, and online (``dataset = 0``) against fixed-dataset training.

Traced axes are crossed unless zipped (``axes.zip``); ``"phases[i].<field>"`` axes set one
phase; a ``samples`` budget in a base phase replaces its steps (``scbjax.app.sweep_axes``).

Each static combination is one ``RunSpec`` (``specs``), its runs (settings x seeds) labelled
with the axes and the seed, run by the one executor (``scbjax.engine.executor``: sharded over all
devices, chunked, checkpointed, resumed, finished groups reused by hash). Results:
``OUT/table.csv`` (one row per run), ``OUT/summary.csv`` (medians over seeds, diverged runs
excluded) and ``OUT/groups/<optimizer>_N<N>_T<T>_Q<Q>[_fixed]/`` (the store's layout).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import jax
import numpy as np

from scbjax.util import fields
from scbjax.util.errors import ConfigError, is_int, require
from scbjax.engine import outdir
from scbjax.engine.executor import Log, check_spec, execute
from scbjax.engine.resources import check_fits
from scbjax.util.fileio import load_json, read_table
from scbjax.util.fileio import atomic_write as _atomic_write
from scbjax.engine.meta import config_to_dict, git_commit, versions
from scbjax.engine.spec import RunSpec, check_name, run
from scbjax.engine.tables import fmt_setting
from scbjax.sim.config import Phase, TrainConfig
from scbjax.app import sweep_axes as ax
from scbjax.app.sweep_axes import ORDER, STATIC, TRACED
from scbjax.app.sweep_tables import csv_bytes, load_table, summarize, table_rows

_AXIS_HELP = {"lr": "learning rate for both V and A", "dataset": "fixed-dataset size (0: online "
              "sampling)", "optimizer": "optimizer name", "N": "vocabulary size",
              "T": "sequence length", "Q": "sparsity"}
_AXIS_TYPE = {"lr": float, "dataset": int, "optimizer": str, "N": int, "T": int, "Q": int}

# Values to sweep (an empty tuple keeps the base config's value): one axis per per-run Phase
# field (each value sets every phase), "lr", "dataset" and the static axes, derived from Phase.
Axes = dataclasses.make_dataclass(
    "Axes", [(n, tuple[_AXIS_TYPE.get(n) or fields.hints(Phase)[n], ...],
              fields.field((), _AXIS_HELP.get(n) or fields.help_of(Phase, n)))
             for n in TRACED + STATIC] + [
        ("zip", tuple[tuple[str, ...], ...], fields.field((), "groups of traced axes varied "
                                                         "together (paired by index)"))],
    frozen=True)
Axes.__module__ = __name__
Axes.__doc__ = ("Values to sweep; an empty tuple keeps the base config's value. One axis per "
                "per-run Phase field (sets every phase), lr (both learning rates), dataset (0: "
                "online sampling), optimizer, N, T, Q; zip: groups of traced axes varied "
                "together instead of crossed (see scbjax.app.sweep_axes).")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``base`` config, ``seeds``, ``axes``; ``chunk_steps`` steps between checkpoints
    (rounded to whole log intervals; does not change results). ``phase_axes``: per-phase axes
    ((``"phases[i].<field>"``, values), ...); ``samples``: a budget per base phase (0: its
    steps; a budget replaces the steps), see ``scbjax.app.sweep_axes``."""

    name: str = "sweep"
    base: TrainConfig = TrainConfig()
    seeds: tuple[int, ...] = (0,)
    axes: Axes = Axes()
    chunk_steps: int = 1000
    phase_axes: tuple = ()
    samples: tuple[int, ...] = ()

    def validate(self) -> "SweepSpec":
        """Every field, then the size of the job (counted: ``check_size``), then every
        combination (``groups``)."""
        self.check_fields()
        require(len(self.seeds) >= 1 and all(is_int(s) and 0 <= s < 2**32 for s in self.seeds),
                "seeds", f"need integer seeds in [0, 2^32), got {_short(self.seeds)}")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", "repeated seed")
        check_size(self.base, self.axes, len(self.seeds), self.phase_axes, self.samples)
        groups(self)  # every combination valid (Q <= T, batch <= dataset, ...)
        return self

    def check_fields(self) -> None:
        """The name, chunk_steps and every axis value (not the seeds)."""
        check_name(self.name, "name")
        fields.check(self.axes, "axes")  # tuples of values of the right type, before the loops
        require(is_int(self.chunk_steps) and self.chunk_steps >= 1, "chunk_steps",
                f"must be an integer >= 1, got {self.chunk_steps!r}")
        a = self.axes
        require(not (a.lr and (a.lr_V or a.lr_A)), "axes.lr", "give lr or lr_V/lr_A, not both")
        for v in a.lr:
            fields.check_bound(Phase, "lr_V", v, "axes.lr")
        for name in ORDER:
            for v in getattr(a, name):
                fields.check_bound(Phase, name, v, f"axes.{name}")
        for v in a.dataset:
            require(is_int(v) and v >= 0, "axes.dataset",
                    f"must be an integer >= 0 (0: online), got {v!r}")
        ax.check_samples(self.samples, len(self.base.phases))
        ax.check_phase_axes(self.phase_axes, a, len(self.base.phases))
        ax.check_zip(a, self.phase_axes)
        zipped = ax.zipped_names(a)
        for f in dataclasses.fields(Axes):
            if f.name == "zip" or f.name in zipped:
                continue  # a zipped axis may repeat a value (its pairs may not: check_zip)
            vals = getattr(a, f.name)
            _check_distinct(vals, f"axes.{f.name}", _AXIS_TYPE.get(f.name) is float
                            or fields.hints(Phase).get(f.name) is float)
        for key, vals in self.phase_axes:
            if key not in zipped:
                name = ax.parse_key(key, len(self.base.phases))[1]
                _check_distinct(vals, f"axes.{key}", fields.hints(Phase)[name] is float)


def _short(xs, k: int = 8) -> str:
    """``xs`` for a message, its first ``k`` entries when it is long."""
    return repr(xs) if len(xs) <= k else f"({', '.join(map(repr, xs[:k]))}, ...) ({len(xs)})"


def _check_distinct(vals: tuple, field: str, as_float32: bool) -> None:
    """No two values the same; a float axis's compared as the runs see them (float32)."""
    seen: dict = {}
    for v in vals:
        k = np.float32(v).item() if as_float32 else v
        if k in seen:
            cast = as_float32 and repr(seen[k]) != repr(v)
            note = f" (equal in float32: {k!r})" if cast else ""
            raise ConfigError(field, f"repeated value: {seen[k]!r} and {v!r}{note}")
        seen[k] = v


def check_size(base: TrainConfig, axes: Axes, n_seeds: int, phase_axes: tuple = (),
               samples: tuple = ()) -> None:
    """Refuse a sweep whose runs (the product of its axes' lengths, a zip counted once, x the
    seeds, counted, not built) would not fit (``check_fits``: its largest group on the device,
    all of its runs on the host), naming the count and the field (``seeds`` or ``axes``)."""
    sizes, settings, per_group = ax.count(axes, phase_axes)
    static = {n: len(getattr(axes, n)) for n in STATIC if getattr(axes, n)}
    datasets = axes.dataset or (0,)
    per_group *= n_seeds
    total = settings * math.prod(static.values()) * n_seeds
    counts = {**sizes, **static}
    what = f"{total} run(s) (" + "".join(f"{k} {n} x " for n, k in counts.items()) + \
        f"{n_seeds} seed(s)" + (f"; the largest compiled group {per_group}" if per_group <
                                 total else "") + ")"
    where = "seeds" if n_seeds * n_seeds >= total else "axes"
    Ns, Ts, Qs = axes.N or (base.task.N,), axes.T or (base.task.T,), axes.Q or (base.task.Q,)
    phases = ax.extreme_phases(base, axes, phase_axes, samples)
    for opt in axes.optimizer or (base.optimizer,):  # the largest N and T, the fewest Q
        cfg = dataclasses.replace(_combination(base, opt, max(Ns), max(Ts), min(Qs)),
                                  phases=phases)
        check_fits(cfg, per_group, max(datasets), where=where, job_runs=total, what=what)


# --- Loading ------------------------------------------------------------------------------


def load_spec(path) -> SweepSpec:
    """A ``SweepSpec`` from a ``.toml`` or ``.json`` file; ConfigError names a bad field."""
    p = Path(path)
    d = read_table(p, "spec")  # TOML, or JSON for .json in any case; repeated keys refused
    require(d != {}, "spec", f"{p}: no fields (an empty spec): give at least its name")
    return spec_from_dict(d)


def spec_from_dict(d: dict) -> SweepSpec:
    """A ``SweepSpec`` from a dict (as loaded from TOML/JSON): every field type-checked (no
    string taken for a number or a boolean), unknown fields named."""
    require(isinstance(d, dict), "spec", f"must be a table, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(SweepSpec)} - {"phase_axes", "samples"}
    for k in d:
        require(k in names, k, f"unknown field (known: {', '.join(sorted(names))})")
    d = dict(d)
    base, d["samples"] = ax.split_samples(d.get("base", {}))
    d["base"] = fields.from_dict(TrainConfig, base, "base")
    seeds = d.get("seeds", 1)
    require(is_int(seeds) or isinstance(seeds, (list, range, tuple)), "seeds",
            f"must be a count or a list of integers, got {seeds!r}")
    axes = d.get("axes", {})
    require(isinstance(axes, dict), "axes", f"must be a table, got {type(axes).__name__}")
    for k, v in axes.items():
        require(isinstance(v, list), f"axes.{k}", f"must be a list, got {v!r}")
    axes, d["phase_axes"] = ax.split_axes(axes)
    d["axes"] = fields.from_dict(Axes, axes, "axes")
    if "chunk_steps" in d:
        fields.check_value(d["chunk_steps"], int, "chunk_steps")
    if "name" in d:
        fields.check_value(d["name"], str, "name")
    if is_int(seeds):  # a count: the job's size is checked before the seeds are listed
        require(seeds >= 1, "seeds", f"a count must be >= 1, got {seeds}")
        SweepSpec(**{**d, "seeds": (0,)}).check_fields()
        check_size(d["base"], d["axes"], seeds, d["phase_axes"], d["samples"])
        require(seeds <= 2**32, "seeds", f"a count must be <= 2^32, got {seeds}")
        seeds = range(seeds)
    d["seeds"] = tuple(seeds)
    return SweepSpec(**d).validate()


def spec_to_dict(spec: SweepSpec) -> dict:
    """The spec as ``spec_from_dict`` reads it (budgets in the base phases, per-phase axes as
    ``phases[i].<field>`` keys)."""
    base = config_to_dict(spec.base)
    for i, n in enumerate(spec.samples):
        if n:
            ph = base["phases"][i]
            ph.pop("steps", None)
            ph["samples"] = n
    axes = {k: [list(x) if isinstance(x, tuple) else x for x in v]
            for k, v in dataclasses.asdict(spec.axes).items() if v}
    return {"name": spec.name, "seeds": list(spec.seeds), "chunk_steps": spec.chunk_steps,
            "base": base, "axes": {**axes, **{k: list(v) for k, v in spec.phase_axes}}}


# --- Runs: one RunSpec per static combination ----------------------------------------------


def group_name(optimizer: str, N: int, T: int, Q: int, fixed: bool) -> str:
    return f"{optimizer}_N{N}_T{T}_Q{Q}" + ("_fixed" if fixed else "")


def _combination(base: TrainConfig, opt: str, N: int, T: int, Q: int) -> TrainConfig:
    """The validated config of one static combination; ConfigError says which."""
    cfg = dataclasses.replace(base, optimizer=opt,
                              task=dataclasses.replace(base.task, N=N, T=T, Q=Q))
    try:
        return cfg.validate()
    except ConfigError as e:
        raise ConfigError(e.field, f"{str(e).split(': ', 1)[1]} (in the sweep combination "
                          f"optimizer={opt}, N={N}, T={T}, Q={Q})") from None


def specs(spec: SweepSpec) -> dict[str, RunSpec]:
    """One ``RunSpec`` per static combination (optimizer, N, T, Q, online/fixed data; with a
    samples budget, per step count: ``_steps<s0>-<s1>``), its runs the traced combinations
    (crossed, zips paired) x seeds (settings-major), labelled with every per-run field (its
    phases joined by /), each per-phase axis (``batch_1``), the static axes and the seed."""
    base, a = spec.base, spec.axes
    opts = a.optimizer or (base.optimizer,)
    Ns, Ts, Qs = a.N or (base.task.N,), a.T or (base.task.T,), a.Q or (base.task.Q,)
    out = {}
    for opt, N, T, Q in itertools.product(opts, Ns, Ts, Qs):
        cfg = _combination(base, opt, N, T, Q)
        parts: dict = {}  # (fixed, steps per phase) -> runs
        for combo in ax.combinations(a, spec.phase_axes):
            st, n, extra = ax.settings_of(base, combo)
            if n > 0:
                require(max(st["batch"]) <= n, "axes.dataset",
                        f"a fixed dataset of {n} samples needs batch <= {n}, got "
                        f"{max(st['batch'])}")
                require(not cfg.population, "axes.dataset", "population mode has no dataset")
            steps = ax.phase_steps(base, spec.samples, st["batch"])
            labels = {"optimizer": opt, "N": N, "T": T, "Q": Q, "dataset": n,
                      **{k: fmt_setting(v) for k, v in st.items()}, **extra}
            parts.setdefault((n > 0, steps), []).extend(
                run(int(seed), {**labels, "seed": int(seed)}, dataset=n, **st)
                for seed in spec.seeds)
        for (fixed, steps), runs in sorted(parts.items()):
            c, name = cfg, group_name(opt, N, T, Q, fixed)
            if any(spec.samples):
                c = _combination(dataclasses.replace(base, phases=tuple(
                    dataclasses.replace(p, steps=k) for p, k in zip(base.phases, steps))),
                    opt, N, T, Q)
                name += ax.steps_suffix(steps)
            out[name] = RunSpec(c, tuple(runs), chunk_steps=spec.chunk_steps)
    return out


def groups(spec: SweepSpec) -> list[RunSpec]:
    return list(specs(spec).values())


def check_out(out: Path, spec: SweepSpec, overwrite: bool = False) -> None:
    """``out`` is a directory for this sweep: refuse a file, an unwritable path, or another
    sweep's results (another name) unless ``overwrite``."""
    meta, prev = out / "sweep.json", None
    if out.is_dir() and (meta.exists() or meta.is_symlink()):
        try:
            prev = load_json(meta)["spec"]["name"]
        except (ConfigError, KeyError, TypeError):
            raise ConfigError("--out", f"{meta} cannot be read (damaged?): choose another "
                              "--out, or remove it") from None
    outdir.claim(out, prev, spec.name, f"{out} holds the results of sweep {prev!r}, not "
                 f"{spec.name!r}", overwrite)


def run_sweep(spec: SweepSpec, out, quiet: bool = False, overwrite: bool = False,
              workers: int | None = None) -> dict:
    """Run (or resume) every group of ``spec`` under ``out/groups``, holding ``out``; write
    the tidy tables. A group whose results are of another configuration (the spec was
    edited) is refused before anything trains, unless ``overwrite``."""
    spec = spec.validate()
    out = Path(out)
    ss = specs(spec)
    for name, sp in ss.items():
        check_spec(sp, name)  # fields and memory estimate, before anything is compiled
    check_out(out, spec, overwrite)
    with outdir.hold(out):
        check_out(out, spec, overwrite)  # again, now that no one else writes
        return _run(spec, ss, out, quiet, overwrite, workers)


def _run(spec: SweepSpec, ss: dict, out: Path, quiet: bool, overwrite: bool,
         workers: int | None) -> dict:

    def record():  # once the first group is known good: nothing is written for a bad sweep
        if jax.process_index() == 0:
            meta = {"spec": spec_to_dict(spec), "versions": versions(),
                    "git_commit": git_commit(), "groups": list(ss),
                    "devices": [str(d) for d in jax.devices()]}
            _atomic_write(out / "sweep.json",
                          lambda f: f.write(json.dumps(meta, indent=2).encode()))

    rs = execute(ss, out / "groups", log=Log(quiet), on_start=record, overwrite=overwrite,
                 workers=workers)
    all_rows = [row for runs in rs.values() for row in table_rows(runs)]
    summary, warnings = summarize(all_rows)
    if jax.process_index() == 0:
        _atomic_write(out / "table.csv", lambda f: f.write(csv_bytes(all_rows)))
        _atomic_write(out / "summary.csv", lambda f: f.write(csv_bytes(summary)))
    return {"rows": all_rows, "summary": summary, "warnings": warnings, "groups": list(ss),
            "runs": rs, "timings": {k: r.meta.get("timings", {}) for k, r in rs.items()}}


__all__ = ["Axes", "SweepSpec", "load_spec", "spec_from_dict", "specs", "groups", "run_sweep",
           "load_table", "summarize", "table_rows"]
