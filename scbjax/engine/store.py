"""The one on-disk layout and its loader.

A spec's directory holds ``results.npz`` (per-run arrays, leading axis = run) and ``run.json``
(name, hash, format, config, labels, timings, versions, devices), plus ``checkpoint.npz`` while
it runs. ``scbjax train`` writes one such directory; a sweep ``OUT/groups/<name>/``; a study
``OUT/<study>/<name>/``. Arrays: ``seeds`` [R]; ``steps`` [L]; ``samples`` [R, L];
``metrics/<name>`` [R, L]; ``params/V`` [R, N, N], ``params/A`` [R, T, N]; ``task/P``,
``task/mu``, ``task/q``; ``settings/<name>`` [R, phases] (``dataset`` [R]); ``labels/<name>`` [R];
``diverged_step`` [R] (-1: never).

``Runs`` is one spec's results (or a selection of its runs) addressed by label:
``runs.select(arm="finetune", rho=0.9).metric("excess_loss")``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scbjax.engine.meta import config_from_dict
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import load_json, load_npz

ARRAYS = "results.npz"
SIDECAR = "run.json"
CHECKPOINT = "checkpoint.npz"


class Runs:
    """Results of a spec's runs (or a selection): arrays with a leading run axis, labels."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict, name: str = ""):
        self.arrays, self.meta, self.name = arrays, meta, name
        self.label_names = tuple(meta.get("label_names", ()))

    def __len__(self) -> int:
        return int(self.arrays["seeds"].shape[0])

    def __repr__(self) -> str:
        labels = ", ".join(f"{k}={self.values(k)}" for k in self.label_names if k != "seed")
        return (f"Runs({self.name!r}: {len(self)} runs, seeds {sorted(set(self['seeds'].tolist()))}"
                + (f", labels {labels}" if labels else "") + f", {len(self.steps)} log points)")

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise KeyError(f"{self.name}: no array {key!r}")
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
        return Runs(arrays, self.meta, self.name)

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


class RunSet(dict):
    """spec name -> ``Runs`` (one job's results)."""

    def __getitem__(self, name: str) -> Runs:
        if name not in self:
            raise KeyError(f"no runs named {name!r} (have: {', '.join(self)})")
        return dict.__getitem__(self, name)


def load_runs(spec_dir, expect_hash: str | None = None, name: str = "") -> Runs:
    """The saved runs of one spec directory; with ``expect_hash``, ConfigError unless the
    stored hash equals it."""
    d = Path(spec_dir)
    meta = load_json(d / SIDECAR)
    if not isinstance(meta, dict):
        raise ConfigError(str(d / SIDECAR), f"not a scbjax result (a JSON {type(meta).__name__}, "
                          "not an object)")
    for k in ("hash", "format", "config", "label_names"):
        if k not in meta:
            raise ConfigError(str(d / SIDECAR), f"no {k!r} entry: not a scbjax result (or an "
                              "older format)")
    if expect_hash is not None and meta["hash"] != expect_hash:
        raise ConfigError(str(d), f"holds other runs (hash {meta['hash']}, want {expect_hash})")
    arrays = load_npz(d / ARRAYS)
    need = ["seeds", "steps", "samples", "diverged_step"] + [f"labels/{k}"
                                                            for k in meta["label_names"]]
    for k in need:
        if k not in arrays:
            raise ConfigError(str(d / ARRAYS), f"no array {k!r}")
    return Runs(arrays, meta, name or meta.get("name", d.name))

