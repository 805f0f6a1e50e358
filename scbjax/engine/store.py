"""The one on-disk layout and its loader.

A spec's directory holds ``results.npz`` (per-run arrays, leading axis = run, and ``meta``:
the sidecar's JSON text) and ``run.json`` (name, hash, format, config, labels, timings,
versions, devices: a readable copy of ``meta``), plus ``checkpoint.npz`` while it runs. The
results file is the authority: ``load_runs`` checks its ``meta`` (hash, format), the shapes of
its arrays against that configuration, and that ``run.json`` says the same. ``scbjax train``
writes one such directory; a sweep ``OUT/groups/<name>/``; a study ``OUT/<study>/<name>/``.
Arrays: ``seeds`` [R]; ``steps`` [L]; ``samples`` [R, L];
``metrics/<name>`` [R, L]; ``params/V`` [R, N, N], ``params/A`` [R, T, N]; ``task/P``,
``task/mu``, ``task/q`` (those the spec's ``keep`` names, listed in ``meta["keep"]``);
``settings/<name>`` [R, phases] (``dataset`` [R]); ``labels/<name>`` [R];
``diverged_step`` [R] (-1: never).

``Runs`` is one spec's results (or a selection of its runs) addressed by label:
``runs.select(arm="finetune", rho=0.9).metric("excess_loss")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scbjax.engine import tables
from scbjax.engine.meta import config_from_dict
from scbjax.engine.spec import FINAL, FORMAT
from scbjax.sim.train import METRICS, log_schedule
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import load_json, load_npz

META = "meta"  # the results file's copy of run.json (JSON text)
ARRAYS = "results.npz"
SIDECAR = "run.json"
CHECKPOINT = "checkpoint.npz"


class Runs:
    """Results of a spec's runs (or a selection): arrays with a leading run axis, labels;
    ``index`` [R]: each run's index in its spec."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict, name: str = "",
                 index: np.ndarray | None = None):
        self.arrays, self.meta, self.name = arrays, meta, name
        self.label_names = tuple(meta.get("label_names", ()))
        self.index = np.arange(len(self)) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return int(self.arrays["seeds"].shape[0])

    def __repr__(self) -> str:
        labels = ", ".join(f"{k}={self.values(k)}" for k in self.label_names if k != "seed")
        return (f"Runs({self.name!r}: {len(self)} runs, seeds {sorted(set(self['seeds'].tolist()))}"
                + (f", labels {labels}" if labels else "") + f", {len(self.steps)} log points)")

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            why = (" (its spec's keep left it out of the results file)"
                   if key in FINAL and key not in kept(self.meta) else "")
            raise KeyError(f"{self.name}: no array {key!r}{why}")
        return self.arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    @property
    def config(self):
        return config_from_dict(self.meta["config"])

    def label(self, name: str) -> np.ndarray:
        """The values of label ``name`` per run."""
        if name not in self.label_names:
            raise KeyError(f"{self.name}: no label {name!r} (labels: "
                           f"{', '.join(self.label_names)})")
        return self.arrays[f"labels/{name}"]

    def values(self, name: str) -> list:
        """Distinct values of a label, in order of first appearance."""
        out = []
        for v in self.label(name).tolist():
            if v not in out:
                out.append(v)
        return out

    def where(self, mask: np.ndarray) -> "Runs":
        mask = np.asarray(mask)
        R = len(self)
        arrays = {k: (v[mask] if k != "steps" and v.ndim >= 1 and v.shape[0] == R else v)
                  for k, v in self.arrays.items()}
        return Runs(arrays, self.meta, self.name, self.index[mask])

    def select(self, **labels) -> "Runs":
        """The runs whose labels equal the given values (floats compared with isclose); an
        unknown label name or an empty selection is an error."""
        mask = np.ones(len(self), bool)
        for k, v in labels.items():
            x = self.label(k)
            if isinstance(v, float) and x.dtype.kind == "f":
                mask &= np.isclose(x, v, rtol=1e-6, atol=0)
            else:
                mask &= x == v
        if not mask.any():
            raise KeyError(f"{self.name}: no run with {labels}")
        return self.where(mask)

    def split(self, name: str) -> dict:
        """value -> the runs with label ``name`` equal to it."""
        return {v: self.select(**{name: v}) for v in self.values(name)}

    def metric(self, name: str) -> np.ndarray:
        """Metric ``name`` [R, L] at the log points."""
        return self[f"metrics/{name}"]

    def final(self, name: str) -> np.ndarray:
        return self.metric(name)[:, -1]

    @property
    def samples(self) -> np.ndarray:
        """Samples seen at each log point [R, L]."""
        return self.arrays["samples"]

    @property
    def samples_L(self) -> np.ndarray:
        """The log points' sample counts shared by every run [L] (error if they differ)."""
        s = self.arrays["samples"]
        if not (s == s[:1]).all():
            raise ValueError(f"{self.name}: runs differ in samples per log point")
        return s[0]

    @property
    def steps(self) -> np.ndarray:
        return self.arrays["steps"]

    def to_dataframe(self):
        """A pandas DataFrame, one row per run: ``run`` (its index in the spec), ``seed``, the
        labels, the settings as numbers (``batch``, ``lr_V``... for a 1-phase config;
        ``batch_0``, ``batch_1``... one per phase otherwise; ``dataset``), ``diverged_step``,
        the final ``samples`` and the final value of every metric. A label named like a
        column is left out when it holds its values, else named ``label_<name>``
        (``scbjax.engine.tables``). Needs pandas (``pip install 'scbjax[tables]'``)."""
        return tables.frame(self)

    def curves(self, metrics=None):
        """A long pandas DataFrame: one row per run, metric (all, or the names in
        ``metrics``) and log point, with columns run, seed, the labels, step, samples, metric,
        value. Needs pandas (``pip install 'scbjax[tables]'``)."""
        return tables.curves(self, metrics)


class RunSet(dict):
    """spec name -> ``Runs`` (one job's results)."""

    def __getitem__(self, name: str) -> Runs:
        if name not in self:
            raise KeyError(f"no runs named {name!r} (have: {', '.join(self)})")
        return dict.__getitem__(self, name)

    def to_dataframe(self):
        """Every spec's ``Runs.to_dataframe()`` in one DataFrame, with a first column ``spec``
        (its name); columns one spec lacks are empty (NaN) in its rows."""
        return tables.concat({k: v.to_dataframe() for k, v in self.items()})

    def curves(self, metrics=None):
        """Every spec's ``Runs.curves(metrics)`` in one long DataFrame, with a column ``spec``."""
        return tables.concat({k: v.curves(metrics) for k, v in self.items()})


def _check_meta(meta, where: str) -> dict:
    if not isinstance(meta, dict):
        raise ConfigError(where, f"not a scbjax result (a JSON {type(meta).__name__}, not an "
                          "object)")
    for k in ("hash", "format", "config", "label_names", "runs"):
        if k not in meta:
            raise ConfigError(where, f"no {k!r} entry: not a scbjax result (or an older format)")
    if meta["format"] != FORMAT:
        raise ConfigError(where, f"format {meta['format']!r}, this version reads {FORMAT}: "
                          "recompute it (--overwrite)")
    if not isinstance(meta["runs"], int) or isinstance(meta["runs"], bool) or meta["runs"] < 1:
        raise ConfigError(where, f"'runs' must be an integer >= 1, got {meta['runs']!r}")
    if not (isinstance(meta["label_names"], list)
            and all(isinstance(k, str) for k in meta["label_names"])):
        raise ConfigError(where, "'label_names' must be a list of names")
    if "keep" in meta and not (isinstance(meta["keep"], list)
                               and all(k in FINAL for k in meta["keep"])):
        raise ConfigError(where, f"'keep' must be a list of {', '.join(FINAL)}")
    return meta


def embedded_meta(arrays: dict, path) -> dict:
    """The sidecar a results file carries (``META``), checked: ConfigError(path) otherwise."""
    if META not in arrays:
        raise ConfigError(str(path), "carries no configuration (written by an older version, "
                          "or not by scbjax): recompute it (--overwrite)")
    try:
        meta = json.loads(str(arrays[META]))
    except (json.JSONDecodeError, TypeError) as e:
        raise ConfigError(str(path), f"its configuration is not valid JSON ({e})") from None
    return _check_meta(meta, str(path))


def final_shapes(N: int, T: int) -> dict[str, tuple[int, ...]]:
    """The shape of one run's entry of each final array (``spec.FINAL``)."""
    return {"params/V": (N, N), "params/A": (T, N), "task/P": (N, N), "task/mu": (N,),
            "task/q": (T, N)}


def kept(meta: dict) -> tuple[str, ...]:
    """The final arrays (``spec.FINAL``) a result's ``meta`` says its file holds (all when it
    does not say: results written before ``RunSpec.keep``)."""
    return tuple(meta.get("keep", FINAL))


def expected_shapes(meta: dict, cfg) -> dict[str, tuple]:
    """The shape each array of a results file must have under its ``meta`` and config."""
    R, N, T, L = meta["runs"], cfg.task.N, cfg.task.T, len(log_schedule(cfg)[0])
    final = final_shapes(N, T)
    shapes = {"seeds": (R,), "steps": (L,), "samples": (R, L), "diverged_step": (R,),
              **{k: (R, *final[k]) for k in kept(meta)}}
    shapes.update({f"metrics/{k}": (R, L) for k in METRICS})
    shapes.update({f"labels/{k}": (R,) for k in meta["label_names"]})
    return shapes


def check_arrays(arrays: dict, meta: dict, path) -> None:
    """Every array a result must have, with the shape its configuration gives and a numeric
    type (labels excepted), and the log points of its configuration: ConfigError(path) naming
    the first that is not."""
    try:
        cfg = config_from_dict(meta["config"], "config")
    except ConfigError as e:
        raise ConfigError(str(path), f"its configuration is not valid ({e})") from None
    for k, shape in expected_shapes(meta, cfg).items():
        if k not in arrays:
            raise ConfigError(str(path), f"no array {k!r}")
        a = arrays[k]
        if a.shape != shape:
            raise ConfigError(str(path), f"array {k!r} has shape {a.shape}, its configuration "
                              f"gives {shape}")
        if not k.startswith("labels/") and a.dtype.kind not in "biuf":
            raise ConfigError(str(path), f"array {k!r} is not numeric ({a.dtype})")
    if not np.array_equal(arrays["steps"], log_schedule(cfg)[0]):
        raise ConfigError(str(path), "array 'steps' is not its configuration's log schedule")
    for k, a in arrays.items():
        if k.startswith("settings/") and (a.ndim < 1 or a.shape[0] != meta["runs"]):
            raise ConfigError(str(path), f"array {k!r} has shape {a.shape}, want "
                              f"{meta['runs']} runs")


def read_results(spec_dir) -> tuple[dict, dict]:
    """(arrays, meta) of a spec directory's results file, checked (``embedded_meta``,
    ``check_arrays``), without looking at ``run.json``."""
    path = Path(spec_dir) / ARRAYS
    arrays = load_npz(path)
    meta = embedded_meta(arrays, path)
    check_arrays(arrays, meta, path)
    del arrays[META]
    return arrays, meta


def load_runs(spec_dir, expect_hash: str | None = None, name: str = "") -> Runs:
    """The saved runs of one spec directory, checked: ``run.json`` readable and equal to the
    configuration its results file carries, the arrays of the shapes it gives, and with
    ``expect_hash`` its hash equal to that (ConfigError naming the file otherwise)."""
    d = Path(spec_dir)
    side = _check_meta(load_json(d / SIDECAR), str(d / SIDECAR))
    if expect_hash is not None and side["hash"] != expect_hash:
        raise ConfigError(str(d), f"holds other runs (hash {side['hash']}, want {expect_hash})")
    arrays, meta = read_results(d)
    if meta != side:
        raise ConfigError(str(d), f"{SIDECAR} and {ARRAYS} disagree (hash {side['hash']} and "
                          f"{meta['hash']}): an interrupted write, or files copied or edited")
    return Runs(arrays, meta, name or meta.get("name", d.name))


def identify(spec_dir) -> tuple[str | None, str]:
    """(hash, why) of what ``spec_dir`` holds: the hash its results file carries (the
    authority), else the one ``run.json`` names, else the checkpoint's; None for nothing (or
    only a damaged checkpoint), "?" for results that cannot be identified (``why`` says so)."""
    d = Path(spec_dir)
    if (d / ARRAYS).exists() or (d / SIDECAR).exists():
        try:
            return read_results(d)[1]["hash"], ""
        except ConfigError as e:
            why = str(e)
        try:
            side = load_json(d / SIDECAR)
        except ConfigError as e:
            return "?", str(e)
        if isinstance(side, dict) and isinstance(side.get("hash"), str):
            return side["hash"], why
        return "?", f"{d / SIDECAR}: not a scbjax result"
    return checkpoint_hash(d), ""


def checkpoint_hash(spec_dir) -> str | None:
    """The hash of the checkpoint in ``spec_dir``; None without one, or for a damaged one."""
    p = Path(spec_dir) / CHECKPOINT
    if not p.exists():
        return None
    try:
        z = load_npz(p)
    except ConfigError:
        return None
    return str(z["hash"]) if "hash" in z else None
