"""Runs as data: a ``RunSpec`` is a ``TrainConfig`` plus its runs (seed, traced settings, labels).

Every job (``scbjax train``, a sweep, each study of ``scbjax reproduce``) is a set of named
``RunSpec``s; ``scbjax.engine.executor`` runs them (one compiled group per spec, runs vmapped and
sharded, chunked, checkpointed, resumed) and ``scbjax.engine.store`` loads them back, addressed by
label: ``runset["downstream"].select(arm="finetune", rho=0.9)``.

A ``Run`` is one seed's training: its key is ``PRNGKey(seed)`` folded with ``fold`` (in
order), split into task, init and data streams as in ``make_stepper``; its traced settings
(learning rates, l1 weight, batch size per phase, fixed-dataset size) default to the config's
phases; its ``labels`` (name -> str/int/float/bool) name it for the analysis. A spec may also
carry per-run tasks and starting parameters (transfer), stacked along the run axis, or a
function that builds them from the specs run before it (``RunSet -> Task``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from scbjax.core.model import Params
from scbjax.core.task import Task
from scbjax.engine.meta import config_to_dict
from scbjax.optim import registry
from scbjax.util.errors import ConfigError, is_int, require
from scbjax.sim.config import HOW_FIELDS, PER_RUN, Phase, TrainConfig
from scbjax.util import fields

FORMAT = 3  # bump when the meaning of a spec's hash or its saved arrays changes
LabelValue = str | int | float | bool
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")
# The final arrays a results file may hold (``RunSpec.keep`` chooses; metrics are always kept).
FINAL = ("params/V", "params/A", "task/P", "task/mu", "task/q")
FINAL_SMALL = ("params/V", "task/P", "task/mu")  # those that do not grow with T


@dataclasses.dataclass(frozen=True)
class Run:
    """One run: ``seed`` (and ``fold``) choose its key; ``settings`` holds (name, values) for
    the per-run ``Phase`` fields it sets (one value: every phase; else one per phase; a field
    left out keeps the config's); ``dataset`` > 0 trains on that many samples drawn once;
    ``labels`` name it."""

    seed: int
    labels: tuple[tuple[str, LabelValue], ...] = ()
    settings: tuple[tuple[str, tuple], ...] = ()
    dataset: int = 0
    fold: tuple[int, ...] = ()

    @property
    def label_dict(self) -> dict[str, LabelValue]:
        return dict(self.labels)

    def setting(self, name: str) -> tuple | None:
        """The values this run sets for per-run field ``name`` (None: the config's)."""
        return dict(self.settings).get(name)


def run(seed: int, labels: Mapping[str, LabelValue] | None = None, *, lr=None, dataset: int = 0,
        fold: Sequence[int] = (), **settings) -> Run:
    """A ``Run``; each keyword of ``settings`` is a per-run ``Phase`` field (``PER_RUN``: batch,
    lr_V, lr_A, lam), given as a number (every phase) or a sequence (one per phase); ``lr``
    sets lr_V and lr_A."""
    if lr is not None:
        require(settings.get("lr_V") is None and settings.get("lr_A") is None, "lr",
                "give lr or lr_V/lr_A, not both")
        settings = {**settings, "lr_V": lr, "lr_A": lr}
    for k in settings:
        require(k in PER_RUN, k, f"not a per-run setting (known: lr, {', '.join(PER_RUN)})")

    def per_phase(x):
        return tuple(x) if isinstance(x, (list, tuple, np.ndarray)) else (x,)

    st = tuple((k, per_phase(settings[k])) for k in PER_RUN if settings.get(k) is not None)
    return Run(seed=seed, labels=tuple(sorted((labels or {}).items())), settings=st,
               dataset=dataset, fold=tuple(fold))


@dataclasses.dataclass(frozen=True, eq=False)
class RunSpec:
    """A config and its runs (one compiled group). ``tasks`` / ``params0``: None (each run
    draws its task / starts from ``config.init``), stacked per-run arrays (a ``Task`` /
    ``Params`` with a leading run axis), or a function of the ``RunSet`` of the specs run
    before this one that returns them. ``chunk_steps``: steps between checkpoints and
    progress lines (whole log intervals; does not change results). ``keep``: the final arrays
    of ``FINAL`` its results file stores (None: all; the T-sized ``params/A`` and ``task/q``
    are most of a large spec's bytes); not part of the hash."""

    config: TrainConfig
    runs: tuple[Run, ...]
    tasks: Any = None
    params0: Any = None
    chunk_steps: int | None = None
    keep: tuple[str, ...] | None = None

    @property
    def kept(self) -> tuple[str, ...]:
        """The final arrays its results file stores (``keep``, in ``FINAL``'s order)."""
        return FINAL if self.keep is None else tuple(k for k in FINAL if k in self.keep)

    def __post_init__(self):
        if isinstance(self.runs, list):  # a list of runs is taken as the tuple it stands for
            object.__setattr__(self, "runs", tuple(self.runs))

    def validate(self, where: str = "") -> "RunSpec":
        w = f"{where}." if where else ""
        cfg = self.config.validate()
        require(isinstance(self.runs, tuple) and len(self.runs) >= 1, w + "runs",
                "need a tuple of at least one Run")
        P = len(cfg.phases)
        names = None
        for i, r in enumerate(self.runs):
            f = f"{w}runs[{i}]."
            require(isinstance(r, Run), f[:-1], f"must be a Run, got {type(r).__name__}")
            require(is_int(r.seed) and 0 <= r.seed < 2**32, f + "seed",
                    f"must be an integer in [0, 2^32), got {r.seed!r}")
            require(all(is_int(x) and 0 <= x < 2**32 for x in r.fold), f + "fold",
                    f"must be integers in [0, 2^32), got {r.fold!r}")
            for k, v in r.labels:
                require(isinstance(k, str) and k.isidentifier(), f + "labels",
                        f"label names must be identifiers, got {k!r}")
                require(isinstance(v, (str, int, float, bool, np.integer, np.floating)),
                        f + f"labels.{k}", f"must be a str, int, float or bool, got {v!r}")
            keys = tuple(k for k, _ in r.labels)
            require(names is None or keys == names, f + "labels",
                    f"every run needs the same label names: {names} vs {keys}")
            names = keys
            require(isinstance(r.settings, tuple), f + "settings", "must be a tuple of "
                    "(name, values) pairs")
            for name, v in r.settings:
                require(name in PER_RUN, f + name, f"not a per-run setting (known: "
                        f"{', '.join(PER_RUN)})")
                require(isinstance(v, tuple) and len(v) in (1, P), f + name,
                        f"want 1 value (every phase) or {P} (one per phase), got {v!r}")
                for x in v:
                    fields.check_bound(Phase, name, x, f + name)
            require(is_int(r.dataset) and r.dataset >= 0, f + "dataset",
                    f"must be an integer >= 0 (0: online), got {r.dataset!r}")
            if r.dataset > 0:
                b = max(self._setting(r, "batch"))
                require(b <= r.dataset, f + "dataset",
                        f"a fixed dataset of {r.dataset} samples needs batch <= it, got {b}")
                require(not cfg.population, f + "dataset", "population mode has no dataset")
        seen: dict = {}
        for i, r in enumerate(self.runs):
            k = (r.seed, r.fold, r.labels)
            require(k not in seen, f"{w}runs[{i}]", f"the same run as runs[{seen.get(k)}] "
                    f"(seed {r.seed}, fold {r.fold}, labels {dict(r.labels)}): give each run "
                    "its own seed, fold or labels")
            seen[k] = i
        fixed = {r.dataset > 0 for r in self.runs}
        require(len(fixed) == 1, w + "runs", "online (dataset 0) and fixed-dataset runs need "
                "separate specs")
        require(self.chunk_steps is None or (is_int(self.chunk_steps) and self.chunk_steps >= 1),
                w + "chunk_steps", f"must be an integer >= 1, got {self.chunk_steps!r}")
        require(self.keep is None or (isinstance(self.keep, tuple) and all(
            k in FINAL for k in self.keep)), w + "keep", f"want None (all) or a tuple of "
            f"{', '.join(FINAL)}, got {self.keep!r}")
        return self

    def _setting(self, r: Run, name: str) -> tuple:
        v = r.setting(name)
        if v is None:
            return self.config.per_phase(name)
        return v * len(self.config.phases) if len(v) == 1 else v

    def settings(self) -> dict[str, np.ndarray]:
        """Per-run traced settings: each per-run Phase field [R, phases] (batch int32, the
        others float32), dataset [R] int32."""
        out = {s: np.asarray([self._setting(r, s) for r in self.runs],
                             np.int32 if s == "batch" else np.float32) for s in PER_RUN}
        out["dataset"] = np.asarray([r.dataset for r in self.runs], np.int32)
        return out

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.runs[0].labels)

    @property
    def max_dataset(self) -> int:
        return max(r.dataset for r in self.runs)

    def max_batch(self) -> list[int]:
        return [int(b) for b in self.settings()["batch"].max(0)]

    def masked(self) -> list[bool]:
        b = self.settings()["batch"]
        return [bool((b[:, p] < b[:, p].max()).any()) for p in range(b.shape[1])]

    def samples(self) -> int:
        """Samples drawn in all (runs x steps x batch)."""
        b = self.settings()["batch"].astype(np.int64)
        steps = np.asarray([p.steps for p in self.config.phases], np.int64)
        return int((b * steps[None, :]).sum())

    def key(self, tasks_digest: str = "", params0_digest: str = "") -> str:
        """Hash of everything that changes the numbers: format, config (less ``HOW_FIELDS``),
        runs (seeds, folds, settings, labels), and the digests of given tasks / starting
        parameters."""
        st = self.settings()
        cfg = {k: v for k, v in config_to_dict(self.config).items() if k not in HOW_FIELDS}
        if cfg.get("bits") == "jax":  # the default: left out, so hashes from before it stay
            del cfg["bits"]
        d = {"format": FORMAT, "config": cfg,
             "seeds": [int(r.seed) for r in self.runs], "folds": [list(r.fold) for r in self.runs],
             "labels": [[[k, _jsonable(v)] for k, v in r.labels] for r in self.runs],
             "settings": {k: v.tolist() for k, v in st.items()},
             "tasks": tasks_digest, "params0": params0_digest}
        code = registry.digest(self.config.optimizer)
        if code:  # a user optimizer: its code is part of what the numbers depend on
            d["optimizer_code"] = code
        return digest_json(d)


def _jsonable(v):
    return v.item() if isinstance(v, (np.integer, np.floating)) else v


def digest_json(d) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def digest_arrays(tree) -> str:
    """Digest of a pytree of arrays (for the hash of given tasks / starts); '' for None."""
    if tree is None:
        return ""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# The arrays of a given Task / Params and their dimensions, per run.
INPUT_ARRAYS = {"tasks": (Task, {"P": ("N", "N"), "mu": ("N",), "q": ("T", "N")}),
                "params0": (Params, {"V": ("N", "N"), "A": ("T", "N")})}


def check_input(x, kind: str, config: TrainConfig, R: int, where: str = ""):
    """A spec's given ``tasks`` / ``params0`` (``kind``) with the shapes its config gives, per
    run (P [R, N, N], mu [R, N], q [R, T, N]; V [R, N, N], A [R, T, N]); one without the run
    axis (P [N, N]...) is repeated over the ``R`` runs. ConfigError naming the array and the
    shape it needs otherwise. None stays None."""
    if x is None:
        return None
    w = f"{where}.{kind}" if where else kind
    cls, dims = INPUT_ARRAYS[kind]
    require(isinstance(x, cls), w, f"want a {cls.__name__} (or a function of the earlier "
            f"specs' RunSet returning one), got {type(x).__name__}")
    size = {"N": config.task.N, "T": config.task.T, "R": R}
    arrays = {k: np.asarray(getattr(x, k)) for k in dims}
    first = next(iter(dims))
    single = arrays[first].ndim == len(dims[first])
    for k, a in arrays.items():
        require(a.dtype.kind in "biuf", f"{w}.{k}", f"must be numeric, got dtype {a.dtype}")
        want = dims[k] if single else ("R",) + dims[k]
        if a.shape != tuple(size[d] for d in want):
            one = "" if single else f" (or {tuple(size[d] for d in dims[k])}: one for every run)"
            raise ConfigError(f"{w}.{k}", f"shape {a.shape}, want "
                              f"({', '.join(f'{d}={size[d]}' for d in want)}){one}")
    if single:
        arrays = {k: np.repeat(a[None], R, axis=0) for k, a in arrays.items()}
    return cls(**arrays)


def check_name(name: str, field: str) -> str:
    """A name usable as one directory component: letters, digits and ``._=+-``."""
    require(isinstance(name, str) and bool(NAME_RE.fullmatch(name)) and name not in (".", ".."),
            field, f"must be a name of letters, digits and ._=+- (one directory component), "
            f"got {name!r}")
    return name


def grid(seeds: Sequence[int], labels: Mapping[str, LabelValue] | None = None,
         **settings) -> tuple[Run, ...]:
    """Runs for each seed with the same labels and settings (see ``run``), ``seed`` added to
    the labels."""
    return tuple(run(int(s), {**(labels or {}), "seed": int(s)}, **settings) for s in seeds)


Specs = Mapping[str, RunSpec]
Builder = Callable[..., Any]

__all__ = ["Run", "RunSpec", "run", "grid", "FINAL", "FINAL_SMALL", "check_name", "check_input",
           "digest_arrays", "digest_json", "FORMAT", "ConfigError"]
