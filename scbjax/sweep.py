"""Sweeps: seeds x hyperparameters x batch / dataset sizes x task shapes, chunked and resumable.

A ``SweepSpec`` (TOML/JSON file or these dataclasses) is a base ``TrainConfig`` plus axes:

- traced axes, vmapped in one compiled call beside the seeds: ``lr`` (sets lr_V and lr_A),
  ``lr_V``, ``lr_A``, ``lam``, ``batch`` (padded to the largest batch with a mask) and the
  fixed-dataset size ``dataset`` (n > 0: n samples drawn once, padded to the largest n);
- static axes, one compiled call ("group") per combination: ``optimizer``, ``N``, ``T``,
  ``Q``, and online (``dataset = 0``) against fixed-dataset training.

Each group's runs (settings x seeds, flattened) are sharded over all devices (a 1-D
``Mesh`` with axis "runs", ``NamedSharding``), advanced a chunk of log intervals at a time
with an atomic checkpoint (write, then rename) between chunks; rerunning resumes from the last
checkpoint and gives the same results, and finished groups (directories keyed by a hash of
their configuration) are skipped. Results: ``OUT/table.csv`` (one row per run),
``OUT/summary.csv`` (medians over seeds, diverged runs excluded) and ``OUT/groups/<hash>/``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import sys
import time
import tomllib
from pathlib import Path

import jax
import numpy as np

from scbjax.errors import ConfigError, is_finite, is_int, require
from scbjax.metrics import stage1_length
from scbjax.results import _atomic_write, config_to_dict, git_commit, versions
from scbjax.task import TaskConfig
from scbjax.train import (METRICS, Phase, RunSettings, TrainConfig, initial_metrics, intervals,
                          log_schedule, make_stepper, seed_keys)

TRACED = ("lr", "lr_V", "lr_A", "lam", "batch", "dataset")
STATIC = ("optimizer", "N", "T", "Q")
FORMAT = 1  # bump when the meaning of a group's hash changes


@dataclasses.dataclass(frozen=True)
class Axes:
    """Values to sweep; an empty tuple keeps the base config's value. ``lr``, ``lr_V``,
    ``lr_A``, ``lam`` and ``batch`` set every phase; ``dataset`` 0 means online sampling."""

    lr: tuple[float, ...] = ()
    lr_V: tuple[float, ...] = ()
    lr_A: tuple[float, ...] = ()
    lam: tuple[float, ...] = ()
    batch: tuple[int, ...] = ()
    dataset: tuple[int, ...] = ()
    optimizer: tuple[str, ...] = ()
    N: tuple[int, ...] = ()
    T: tuple[int, ...] = ()
    Q: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``base`` config, ``seeds``, ``axes``; ``chunk_steps`` steps between checkpoints
    (rounded to whole log intervals; does not change results)."""

    name: str = "sweep"
    base: TrainConfig = TrainConfig()
    seeds: tuple[int, ...] = (0,)
    axes: Axes = Axes()
    chunk_steps: int = 1000

    def validate(self) -> "SweepSpec":
        require(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty "
                "string")
        require(len(self.seeds) >= 1 and all(is_int(s) and 0 <= s < 2**32 for s in self.seeds),
                "seeds", f"need integer seeds in [0, 2^32), got {self.seeds!r}")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", "repeated seed")
        require(is_int(self.chunk_steps) and self.chunk_steps >= 1, "chunk_steps",
                f"must be an integer >= 1, got {self.chunk_steps!r}")
        a = self.axes
        require(not (a.lr and (a.lr_V or a.lr_A)), "axes.lr", "give lr or lr_V/lr_A, not both")
        for name in ("lr", "lr_V", "lr_A"):
            for v in getattr(a, name):
                require(is_finite(v) and v > 0, f"axes.{name}",
                        f"learning rate must be a finite number > 0, got {v!r}")
        for v in a.lam:
            require(is_finite(v) and v >= 0, "axes.lam",
                    f"l1 weight must be a finite number >= 0, got {v!r}")
        for v in a.batch:
            require(is_int(v) and v >= 1, "axes.batch", f"must be an integer >= 1, got {v!r}")
        for v in a.dataset:
            require(is_int(v) and v >= 0, "axes.dataset",
                    f"must be an integer >= 0 (0: online), got {v!r}")
        for f in dataclasses.fields(Axes):
            vals = getattr(a, f.name)
            require(isinstance(vals, tuple), f"axes.{f.name}", "must be a list")
            require(len(set(vals)) == len(vals), f"axes.{f.name}", f"repeated value in {vals}")
        groups(self)  # every combination valid (Q <= T, batch <= dataset, ...)
        return self


# --- Loading ------------------------------------------------------------------------------


def load_spec(path) -> SweepSpec:
    """A ``SweepSpec`` from a ``.toml`` or ``.json`` file; ConfigError names a bad field."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("spec", f"cannot read {p}: {e.strerror}") from None
    try:
        d = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ConfigError("spec", f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}"
                          f" ({e})") from None
    return spec_from_dict(d)


def _fields(cls, d, where: str) -> dict:
    require(isinstance(d, dict), where or "spec", f"must be a table, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for k in d:
        require(k in names, f"{where}.{k}" if where else k,
                f"unknown field (known: {', '.join(sorted(names))})")
    return dict(d)


def spec_from_dict(d: dict) -> SweepSpec:
    d = _fields(SweepSpec, d, "")
    base = _fields(TrainConfig, d.get("base", {}), "base")
    if "task" in base:
        base["task"] = TaskConfig(**_fields(TaskConfig, base["task"], "base.task"))
    if "phases" in base:
        require(isinstance(base["phases"], list), "base.phases", "must be a list of tables")
        base["phases"] = tuple(Phase(**_fields(Phase, ph, f"base.phases[{i}]"))
                               for i, ph in enumerate(base["phases"]))
    d["base"] = TrainConfig(**base)
    seeds = d.get("seeds", 1)
    if is_int(seeds):
        require(seeds >= 1, "seeds", f"a count must be >= 1, got {seeds}")
        seeds = range(seeds)
    require(isinstance(seeds, (list, range, tuple)), "seeds",
            f"must be a count or a list of integers, got {seeds!r}")
    d["seeds"] = tuple(seeds)
    axes = _fields(Axes, d.get("axes", {}), "axes")
    for k, v in axes.items():
        require(isinstance(v, list), f"axes.{k}", f"must be a list, got {v!r}")
        axes[k] = tuple(v)
    d["axes"] = Axes(**axes)
    return SweepSpec(**d).validate()


def spec_to_dict(spec: SweepSpec) -> dict:
    return {"name": spec.name, "seeds": list(spec.seeds), "chunk_steps": spec.chunk_steps,
            "base": config_to_dict(spec.base),
            "axes": {k: list(v) for k, v in dataclasses.asdict(spec.axes).items() if v}}


# --- Grouping -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Group:
    """One compiled call: a static config and its vmapped rows (settings x seeds)."""

    config: TrainConfig
    max_dataset: int
    settings: tuple[dict, ...]  # per setting: lr_V, lr_A, lam, batch (lists per phase), dataset
    seeds: tuple[int, ...]

    @property
    def rows(self) -> list[tuple[int, int]]:
        """(setting index, seed) of each run, settings-major."""
        return [(i, s) for i in range(len(self.settings)) for s in self.seeds]

    def key(self) -> str:
        d = {"format": FORMAT, "config": config_to_dict(self.config),
             "max_dataset": self.max_dataset, "settings": list(self.settings),
             "seeds": list(self.seeds)}
        return _hash(d)

    def run_id(self, setting: dict, seed: int) -> str:
        return _hash({"format": FORMAT, "config": config_to_dict(self.config),
                      "setting": setting, "seed": seed})

    def max_batch(self) -> list[int]:
        return [max(s["batch"][p] for s in self.settings) for p in range(len(self.config.phases))]

    def masked(self) -> list[bool]:
        return [any(s["batch"][p] < self.max_batch()[p] for s in self.settings)
                for p in range(len(self.config.phases))]


def _hash(d) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=float).encode()).hexdigest()[:16]


def groups(spec: SweepSpec) -> list[Group]:
    """Static combinations (optimizer, N, T, Q, online/fixed data), each with its traced rows."""
    base, a = spec.base, spec.axes
    phases = base.phases
    opts = a.optimizer or (base.optimizer,)
    Ns, Ts, Qs = a.N or (base.task.N,), a.T or (base.task.T,), a.Q or (base.task.Q,)
    if a.lr:
        lrs = [(x, x) for x in a.lr]
    else:
        lrs = list(itertools.product(a.lr_V or (None,), a.lr_A or (None,)))
    lams = a.lam or (None,)
    batches = a.batch or (None,)
    datasets = a.dataset or (0,)
    out = []
    for opt, N, T, Q in itertools.product(opts, Ns, Ts, Qs):
        task = dataclasses.replace(base.task, N=N, T=T, Q=Q)
        cfg = dataclasses.replace(base, optimizer=opt, task=task)
        try:
            cfg.validate()
        except ConfigError as e:
            raise ConfigError(e.field, f"{str(e).split(': ', 1)[1]} (in the sweep combination "
                              f"optimizer={opt}, N={N}, T={T}, Q={Q})") from None
        for fixed in (False, True):
            sets = []
            for (lv, la), lam, b, n in itertools.product(lrs, lams, batches, datasets):
                if (n > 0) != fixed:
                    continue
                s = {"lr_V": [lv if lv is not None else p.lr_V for p in phases],
                     "lr_A": [la if la is not None else p.lr_A for p in phases],
                     "lam": [lam if lam is not None else p.lam for p in phases],
                     "batch": [b if b is not None else p.batch for p in phases],
                     "dataset": int(n)}
                if fixed:
                    require(max(s["batch"]) <= n, "axes.dataset",
                            f"a fixed dataset of {n} samples needs batch <= {n}, got "
                            f"{max(s['batch'])}")
                    require(not cfg.population, "axes.dataset",
                            "population mode has no dataset")
                sets.append(s)
            if sets:
                out.append(Group(config=cfg, max_dataset=max(s["dataset"] for s in sets),
                                 settings=tuple(sets), seeds=tuple(spec.seeds)))
    return out


# --- Sharding (one process or several with jax.distributed) -------------------------------


def run_mesh() -> jax.sharding.Mesh:
    """1-D mesh "runs" over all devices (all processes' under ``jax.distributed``)."""
    return jax.sharding.Mesh(np.asarray(jax.devices()), ("runs",))


def _to_global(x: np.ndarray, sharding) -> jax.Array:
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


# --- Execution ----------------------------------------------------------------------------


def _settings_arrays(group: Group, rows, R_pad: int) -> dict[str, np.ndarray]:
    idx = [i for i, _ in rows] + [rows[-1][0]] * (R_pad - len(rows))
    S = group.settings
    f32 = np.float32
    return {"lr_V": np.asarray([S[i]["lr_V"] for i in idx], f32),
            "lr_A": np.asarray([S[i]["lr_A"] for i in idx], f32),
            "lam": np.asarray([S[i]["lam"] for i in idx], f32),
            "batch": np.asarray([S[i]["batch"] for i in idx], np.int32),
            "dataset": np.asarray([S[i]["dataset"] for i in idx], np.int32)}


class Log:
    def __init__(self, quiet: bool, stream=sys.stderr):
        self.quiet, self.stream = quiet, stream

    def __call__(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()


def run_group(group: Group, gdir: Path, chunk_steps: int, log: Log, tag: str = "") -> dict:
    """Train one group to the end (resuming from ``gdir/checkpoint.npz`` if present) and
    write ``gdir/results.npz`` + ``gdir/group.json``; returns the arrays."""
    cfg = group.config
    rows = group.rows
    R = len(rows)
    ndev = jax.device_count()
    R_pad = -(-R // ndev) * ndev
    mesh = run_mesh()
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    stepper = make_stepper(cfg, group.max_dataset)
    seeds = np.asarray([s for _, s in rows] + [rows[-1][1]] * (R_pad - R), np.uint32)
    sa = _settings_arrays(group, rows, R_pad)
    keys = _to_global(np.asarray(seed_keys(seeds)), shard)
    settings = RunSettings(**{k: _to_global(v, shard) for k, v in sa.items()})
    init = jax.jit(jax.vmap(stepper.init), out_shardings=shard)
    state = init(keys, settings)
    first = jax.jit(jax.vmap(lambda s: initial_metrics(stepper, s)), out_shardings=shard)
    start, length, phase = intervals(cfg)
    n_int = len(start)
    C = max(1, chunk_steps // cfg.log_every)
    key = group.key()
    ckpt = gdir / "checkpoint.npz"
    metrics = {k: [_to_host(v)[:, None]] for k, v in first(state).items()}
    done_int = 0
    if ckpt.exists():
        with np.load(ckpt) as z:
            if str(z["group"]) == key:
                leaves, treedef = jax.tree.flatten(state)
                leaves = [_to_global(z[f"state/{i:03d}"], shard) for i in range(len(leaves))]
                state = jax.tree.unflatten(treedef, leaves)
                metrics = {k: [z[f"metrics/{k}"]] for k in METRICS}
                done_int = int(z["next_interval"])
                at = int(start[done_int]) if done_int < n_int else cfg.total_steps
                log(f"{tag}resumed from {ckpt} at step {at}")
    adv = jax.jit(jax.vmap(stepper.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4), donate_argnums=(0,))
    compiled: dict = {}
    compile_s = 0.0
    max_b, masked = group.max_batch(), group.masked()
    batch_R = sa["batch"][:R]  # [R, phases]
    t_run0 = time.perf_counter()
    samples_done = 0
    while done_int < n_int:
        p = int(phase[done_int])
        sel = [i for i in range(done_int, min(done_int + C, n_int)) if phase[i] == p]
        st = np.zeros(C, np.int32)
        ln = np.zeros(C, np.int32)
        st[:len(sel)], ln[:len(sel)] = start[sel], length[sel]
        st[len(sel):] = start[sel[-1]] + length[sel[-1]]
        ck = (max_b[p], masked[p])
        if ck not in compiled:
            t0 = time.perf_counter()
            compiled[ck] = adv.lower(state, st, ln, *ck).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        state, m = compiled[ck](state, st, ln)
        m = {k: _to_host(v)[:, :len(sel)] for k, v in m.items()}
        dt = time.perf_counter() - t0
        for k in METRICS:
            metrics[k].append(m[k])
        done_int = sel[-1] + 1
        n_samp = int(ln.sum()) * int(batch_R[:, p].sum())
        samples_done += n_samp
        _save_checkpoint(ckpt, key, state, metrics, done_int)
        step = int(start[done_int]) if done_int < n_int else cfg.total_steps
        el = time.perf_counter() - t_run0
        left = el / max(step - int(start[0]), 1) * (cfg.total_steps - step)
        log(f"{tag}step {step:>8d}/{cfg.total_steps}  {n_samp / dt:10.4g} sample-steps/s  "
            f"left ~{left:6.1f}s")
    run_s = time.perf_counter() - t_run0
    arrays = _group_arrays(group, state, metrics, sa, R)
    if jax.process_index() == 0:
        _atomic_write(gdir / "results.npz", lambda f: np.savez(f, **arrays))
        meta = {"group": key, "config": config_to_dict(cfg), "max_dataset": group.max_dataset,
                "settings": list(group.settings), "seeds": list(group.seeds),
                "timings": {"compile_s": compile_s, "run_s": run_s,
                            "sample_steps_per_s": samples_done / max(run_s, 1e-9)},
                "devices": [str(d) for d in jax.devices()], "versions": versions(),
                "git_commit": git_commit()}
        _atomic_write(gdir / "group.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
        ckpt.unlink(missing_ok=True)
    return arrays


def _save_checkpoint(path: Path, key: str, state, metrics: dict, next_interval: int) -> None:
    leaves = [_to_host(x) for x in jax.tree.leaves(state)]
    if jax.process_index() != 0:
        return
    z = {f"state/{i:03d}": x for i, x in enumerate(leaves)}
    z.update({f"metrics/{k}": np.concatenate(v, axis=1) for k, v in metrics.items()})
    z["group"] = np.asarray(key)
    z["next_interval"] = np.asarray(next_interval)
    _atomic_write(path, lambda f: np.savez(f, **z))


def _group_arrays(group: Group, state, metrics: dict, sa: dict, R: int) -> dict:
    cfg = group.config
    steps, _ = log_schedule(cfg)
    per_phase = np.diff(np.concatenate([[0], steps]))  # steps added at each log point
    ends = np.cumsum([p.steps for p in cfg.phases])
    ph = np.minimum(np.searchsorted(ends, steps - 1, side="right"), len(ends) - 1)
    batch = sa["batch"][:R]
    samples = np.cumsum(per_phase[None, :] * batch[:, ph], axis=1)
    rows = group.rows
    arrays = {"seeds": np.asarray([s for _, s in rows], np.int64), "steps": steps,
              "samples": samples.astype(np.int64),
              "run_id": np.asarray([group.run_id(group.settings[i], s) for i, s in rows]),
              "diverged_step": _to_host(state.diverged_step)[:R],
              "params/V": _to_host(state.params.V)[:R], "params/A": _to_host(state.params.A)[:R],
              "task/P": _to_host(state.task.P)[:R], "task/mu": _to_host(state.task.mu)[:R],
              "task/q": _to_host(state.task.q)[:R]}
    for k, v in sa.items():
        arrays[f"settings/{k}"] = v[:R]
    for k, v in metrics.items():
        arrays[f"metrics/{k}"] = np.concatenate(v, axis=1)[:R]
    return arrays


# --- Tidy table -----------------------------------------------------------------------------

SETTING_COLS = ("optimizer", "N", "T", "Q", "dataset", "batch", "lr_V", "lr_A", "lam")
SUMMARY_METRICS = ("excess_loss", "excess_ratio", "dist_V", "dist_A", "corr_V", "corr_A",
                   "batch_loss", "stage1_samples")


def _fmt(v: list) -> str:
    return "/".join(f"{x:g}" for x in v)


def table_rows(group: Group, arrays: dict) -> list[dict]:
    cfg = group.config
    out = []
    for r, (i, seed) in enumerate(group.rows):
        s = group.settings[i]
        m = {k[8:]: arrays[k][r] for k in arrays if k.startswith("metrics/")}
        e = m["excess_loss"]
        row = {"group": group.key(), "run_id": str(arrays["run_id"][r]), "seed": seed,
               "optimizer": cfg.optimizer, "N": cfg.task.N, "T": cfg.task.T, "Q": cfg.task.Q,
               "dataset": s["dataset"], "batch": _fmt(s["batch"]), "lr_V": _fmt(s["lr_V"]),
               "lr_A": _fmt(s["lr_A"]), "lam": _fmt(s["lam"]), "steps": cfg.total_steps,
               "samples": int(arrays["samples"][r, -1]),
               "diverged_step": int(arrays["diverged_step"][r])}
        for k in METRICS:
            row[k] = float(m[k][-1])
        row["excess_ratio"] = float(e[-1] / e[0]) if e[0] > 0 else float("nan")
        row["stage1_samples"] = stage1_length(m["corr_V"], arrays["samples"][r])
        out.append(row)
    return out


def summarize(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Medians over seeds per setting, diverged runs excluded; and a warning per diverged run."""
    warnings, agg = [], {}
    for row in rows:
        if row["diverged_step"] >= 0:
            warnings.append(f"WARNING: run {row['run_id']} (seed {row['seed']}, "
                            + ", ".join(f"{c}={row[c]}" for c in SETTING_COLS)
                            + f") diverged at step {row['diverged_step']} (non-finite "
                            "parameters); excluded from the aggregates")
        agg.setdefault(tuple(row[c] for c in SETTING_COLS), []).append(row)
    out = []
    for k, rs in agg.items():
        ok = [r for r in rs if r["diverged_step"] < 0]
        d = dict(zip(SETTING_COLS, k))
        d["seeds_finite"], d["seeds_diverged"] = len(ok), len(rs) - len(ok)
        for mname in SUMMARY_METRICS:
            v = np.asarray([r[mname] for r in ok], float)
            v = v[~np.isnan(v)]
            d[f"median_{mname}"] = float(np.median(v)) if v.size else float("nan")
        out.append(d)
    return out, warnings


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def run_sweep(spec: SweepSpec, out, quiet: bool = False) -> dict:
    """Run (or resume) every group of ``spec`` under ``out``; write the tidy tables."""
    spec = spec.validate()
    out = Path(out)
    log = Log(quiet)
    gs = groups(spec)
    all_rows = []
    timings = {}
    if jax.process_index() == 0:
        meta = {"spec": spec_to_dict(spec), "versions": versions(), "git_commit": git_commit(),
                "groups": [g.key() for g in gs], "devices": [str(d) for d in jax.devices()]}
        _atomic_write(out / "sweep.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    for gi, g in enumerate(gs):
        gdir = out / "groups" / g.key()
        tag = f"[group {gi + 1}/{len(gs)} {g.config.optimizer} N={g.config.task.N} " \
              f"T={g.config.task.T} Q={g.config.task.Q} rows={len(g.rows)}] "
        if (gdir / "results.npz").exists() and (gdir / "group.json").exists():
            log(f"{tag}finished earlier, skipped ({gdir})")
            with np.load(gdir / "results.npz") as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = run_group(g, gdir, spec.chunk_steps, log, tag)
            timings[g.key()] = json.loads((gdir / "group.json").read_text())["timings"] \
                if (gdir / "group.json").exists() else {}
        all_rows += table_rows(g, arrays)
    summary, warnings = summarize(all_rows)
    if jax.process_index() == 0:
        _atomic_write(out / "table.csv", lambda f: f.write(_csv(all_rows)))
        _atomic_write(out / "summary.csv", lambda f: f.write(_csv(summary)))
    return {"rows": all_rows, "summary": summary, "warnings": warnings, "groups": gs,
            "timings": timings}


def load_table(out) -> list[dict]:
    """``OUT/table.csv`` as a list of dicts (strings)."""
    with open(Path(out) / "table.csv", newline="") as f:
        return list(csv.DictReader(f))


def format_summary(summary: list[dict]) -> str:
    cols = list(SETTING_COLS) + ["seeds_finite", "seeds_diverged", "median_excess_ratio",
                                 "median_dist_V", "median_dist_A"]
    lines = ["  ".join(f"{c:>12}" for c in cols)]
    for d in summary:
        lines.append("  ".join(f"{d[c]:>12.4g}" if isinstance(d[c], float) else f"{d[c]!s:>12}"
                               for c in cols))
    return "\n".join(lines)


__all__ = ["Axes", "SweepSpec", "Group", "load_spec", "spec_from_dict", "groups", "run_sweep",
           "run_group", "run_mesh", "load_table", "summarize", "table_rows"]
