"""A sweep's tidy tables: one row per run (``table_rows``, ``OUT/table.csv``), medians over
seeds per setting (``summarize``, ``OUT/summary.csv``), and the summary as text. Settings are
numeric columns named as in ``Runs.to_dataframe`` (``scbjax.engine.tables``): ``batch``,
``lr_V``... for a 1-phase base config, ``batch_0``, ``batch_1``... one per phase otherwise."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from scbjax.core.metrics import stage1_length
from scbjax.engine.spec import digest_json
from scbjax.engine.store import Runs
from scbjax.engine.tables import setting_columns
from scbjax.sim.config import PER_RUN
from scbjax.sim.step import METRICS
from scbjax.util.fileio import check_file

CONFIG_COLS = ("optimizer", "N", "T", "Q")
SUMMARY_METRICS = ("excess_loss", "excess_ratio", "dist_V", "dist_A", "corr_V", "corr_A",
                   "batch_loss", "stage1_samples")


def setting_cols(row: dict) -> list[str]:
    """The columns of a row (of the table or the summary) that name its setting: optimizer,
    N, T, Q, dataset and the per-run settings (one column per phase with several)."""
    def per_run(c: str) -> bool:
        base, _, p = c.rpartition("_")
        return c in PER_RUN or (base in PER_RUN and p.isdigit())
    return list(CONFIG_COLS) + [c for c in row if c == "dataset" or per_run(c)]


def number(x):
    """A saved value as a Python number: an int, or the shortest decimal that reads back as
    the saved float (0.05, not 0.05000000074505806)."""
    x = np.asarray(x)
    return int(x) if x.dtype.kind in "biu" else float(str(x[()]))


def _text(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_id(runs: Runs, r: int) -> str:
    """A stable id of run ``r``: its spec's config, settings and seed."""
    st = {k[9:]: runs[k][r].tolist() for k in runs.arrays if k.startswith("settings/")}
    return digest_json({"config": runs.meta["config"], "settings": st,
                        "seed": int(runs["seeds"][r])})


def table_rows(runs: Runs) -> list[dict]:
    """One row per run: group, run_id, seed, the config and settings, steps, samples,
    diverged_step, the final metrics, excess_ratio, stage1_samples."""
    cfg = runs.meta["config"]
    settings = setting_columns(runs)
    out = []
    for r in range(len(runs)):
        m = {k[8:]: runs[k][r] for k in runs.arrays if k.startswith("metrics/")}
        e = m["excess_loss"]
        row = {"group": runs.name, "run_id": run_id(runs, r), "seed": int(runs["seeds"][r]),
               "optimizer": cfg["optimizer"], "N": cfg["task"]["N"], "T": cfg["task"]["T"],
               "Q": cfg["task"]["Q"], **{k: number(v[r]) for k, v in settings.items()},
               "steps": int(runs.steps[-1]), "samples": int(runs.samples[r, -1]),
               "diverged_step": int(runs["diverged_step"][r])}
        for k in METRICS:
            row[k] = float(m[k][-1])
        row["excess_ratio"] = float(e[-1] / e[0]) if e[0] > 0 else float("nan")
        row["stage1_samples"] = stage1_length(m["corr_V"], runs.samples[r])
        out.append(row)
    return out


def summarize(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Medians over seeds per setting, diverged runs excluded; and a warning per diverged run."""
    warnings, agg = [], {}
    cols = setting_cols(rows[0]) if rows else list(CONFIG_COLS)
    for row in rows:
        if row["diverged_step"] >= 0:
            warnings.append(f"WARNING: run {row['run_id']} (seed {row['seed']}, "
                            + ", ".join(f"{c}={_text(row[c])}" for c in cols)
                            + f") diverged at step {row['diverged_step']} (non-finite "
                            "parameters); excluded from the aggregates")
        agg.setdefault(tuple(row[c] for c in cols), []).append(row)
    out = []
    for k, rs in agg.items():
        ok = [r for r in rs if r["diverged_step"] < 0]
        d = dict(zip(cols, k))
        d["seeds_finite"], d["seeds_diverged"] = len(ok), len(rs) - len(ok)
        for mname in SUMMARY_METRICS:
            v = np.asarray([r[mname] for r in ok], float)
            v = v[~np.isnan(v)]
            d[f"median_{mname}"] = float(np.median(v)) if v.size else float("nan")
        out.append(d)
    return out, warnings


def csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def load_table(out) -> list[dict]:
    """``OUT/table.csv`` as a list of dicts (strings)."""
    path = check_file(Path(out) / "table.csv")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def format_summary(summary: list[dict]) -> str:
    """The summary as a text table, one line per setting."""
    cols = (setting_cols(summary[0]) if summary else list(CONFIG_COLS)) + [
        "seeds_finite", "seeds_diverged", "median_excess_ratio", "median_dist_V", "median_dist_A"]
    lines = ["  ".join(f"{c:>12}" for c in cols)]
    for d in summary:
        lines.append("  ".join(f"{d[c]:>12.4g}" if isinstance(d[c], float) else f"{d[c]!s:>12}"
                               for c in cols))
    return "\n".join(lines)
