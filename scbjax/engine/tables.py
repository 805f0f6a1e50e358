"""Runs as tables: the columns of ``Runs.to_dataframe`` / ``Runs.curves`` and of a sweep's
``table.csv``.

Settings are numeric columns named after the setting (``batch``, ``lr_V``, ``lr_A``, ``lam``,
``dataset``) when the config has one phase, and ``<name>_<p>`` for phase p = 0, 1, ... (the
index of ``phases[p]``, as in a sweep's per-phase axes and their labels) when it has several
(``batch_0``, ``batch_1``); ``dataset`` is one column. A label named like another
column is left out when it holds that column's values (``seed``; a sweep's labels that are its
settings as text, ``0.05/0.02``), else kept as ``label_<name>``. pandas (``scbjax[tables]``)
is imported only to build a DataFrame.
"""

from __future__ import annotations

import numpy as np

from scbjax.sim.config import PER_RUN
from scbjax.util.errors import ConfigError

EXTRA = "pip install 'scbjax[tables]'"


def fmt_setting(v) -> str:
    """A per-phase setting as text: its phases joined by / (0.05/0.02)."""
    return "/".join(f"{float(x):g}" for x in np.atleast_1d(v))


def setting_names(n_phases: int, names=PER_RUN) -> list[str]:
    """The columns of per-phase settings ``names`` under a config of ``n_phases`` phases."""
    if n_phases == 1:
        return list(names)
    return [f"{k}_{p}" for k in names for p in range(n_phases)]


def setting_columns(runs) -> dict[str, np.ndarray]:
    """Column -> [R] values of every saved setting: ``dataset``, then each per-run setting (one
    column, or one per phase), in their saved dtypes."""
    out = {}
    if "settings/dataset" in runs.arrays:
        out["dataset"] = runs.arrays["settings/dataset"]
    names = [k[9:] for k in runs.arrays if k.startswith("settings/") and k != "settings/dataset"]
    names = [k for k in PER_RUN if k in names] + sorted(k for k in names if k not in PER_RUN)
    P = len(runs.meta["config"]["phases"])
    for k in names:
        a = runs.arrays[f"settings/{k}"]
        for col, p in zip(setting_names(P, (k,)), range(P)):
            out[col] = a[:, p]
    return out


def _same(label: np.ndarray, column: np.ndarray) -> bool:
    """Whether a label holds the values of a column (as numbers, or as their text)."""
    if label.dtype.kind in "biuf" and column.dtype.kind in "biuf":
        return bool(np.array_equal(label, column))
    texts = [str(x) for x in label.tolist()]
    if column.dtype.kind in "biuf":
        return texts == [fmt_setting(x) for x in column.tolist()]
    return texts == [str(x) for x in column.tolist()]


def label_columns(runs, reserved) -> dict[str, np.ndarray]:
    """Column -> [R] values of every label; one named like a column in ``reserved`` (name ->
    [R] values, or None for a column of no per-run value) is left out when it holds those
    values, else named ``label_<name>``."""
    out = {}
    for k in runs.label_names:
        x = runs.label(k)
        if k not in reserved:
            out[k] = x
        elif reserved[k] is None or not _same(x, reserved[k]):
            out[f"label_{k}"] = x
    return out


def _reserved(runs, settings: dict, extra=()) -> dict:
    """The columns a label may be named like: name -> [R] values to compare it with (None:
    none); with several phases a setting's base name (``batch``) holds its text (``4/4``)."""
    res = {"run": runs.index, "seed": runs.arrays["seeds"], **settings}
    for k in runs.arrays:
        if k.startswith("settings/") and k[9:] not in res:
            res[k[9:]] = np.asarray([fmt_setting(v) for v in runs.arrays[k]])
    res.update({k: None for k in ("samples", "diverged_step", *extra)})
    return res


def pandas():
    """The pandas module; an ImportError saying how to install it if it is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"Runs.to_dataframe and Runs.curves need pandas: {EXTRA}") from None
    return pd


def frame(runs):
    """``Runs.to_dataframe``: one row per run (see the module docstring for the columns)."""
    pd = pandas()
    settings = setting_columns(runs)
    metrics = [k[8:] for k in runs.arrays if k.startswith("metrics/")]
    labels = label_columns(runs, _reserved(runs, settings, metrics))
    cols = {"run": runs.index, "seed": runs.arrays["seeds"], **labels, **settings,
            "diverged_step": runs.arrays["diverged_step"], "samples": runs.samples[:, -1]}
    cols.update({k: runs.metric(k)[:, -1] for k in metrics})
    return pd.DataFrame(cols)


def curves(runs, metrics=None):
    """``Runs.curves``: one row per (run, metric, log point), in that order."""
    pd = pandas()
    have = [k[8:] for k in runs.arrays if k.startswith("metrics/")]
    if metrics is None:
        metrics = have
    elif isinstance(metrics, str):
        metrics = [metrics]
    for k in metrics:
        if k not in have:
            raise ConfigError("metrics", f"no metric {k!r} (have: {', '.join(have)})")
    R, L, M = len(runs), len(runs.steps), len(metrics)
    extra = ("step", "metric", "value")
    labels = label_columns(runs, _reserved(runs, setting_columns(runs), extra))
    per_run = {"run": runs.index, "seed": runs.arrays["seeds"], **labels}
    cols = {k: np.repeat(v, M * L) for k, v in per_run.items()}
    cols["step"] = np.tile(runs.steps, R * M)
    cols["samples"] = np.repeat(runs.samples[:, None, :], M, axis=1).reshape(-1)
    cols["metric"] = np.tile(np.repeat(np.asarray(metrics, dtype=object), L), R)
    values = [runs.metric(k) for k in metrics]
    cols["value"] = (np.stack(values, axis=1).reshape(-1) if M else
                     np.zeros(0, np.float32))
    return pd.DataFrame(cols)


def concat(frames: dict):
    """DataFrames by spec name, stacked with a first column ``spec``."""
    pd = pandas()
    if not frames:
        return pd.DataFrame({"spec": []})
    parts = [df.assign(spec=name)[["spec", *df.columns]] for name, df in frames.items()]
    return pd.concat(parts, ignore_index=True)
