"""A sweep's tidy tables: one row per run (``table_rows``, ``OUT/table.csv``), medians over
seeds per setting (``summarize``, ``OUT/summary.csv``), and the summary as text."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from scbjax.core.metrics import stage1_length
from scbjax.engine.spec import digest_json
from scbjax.engine.store import Runs
from scbjax.sim.config import PER_RUN
from scbjax.sim.step import METRICS
from scbjax.util.fileio import check_file

SETTING_COLS = ("optimizer", "N", "T", "Q", "dataset") + PER_RUN
SUMMARY_METRICS = ("excess_loss", "excess_ratio", "dist_V", "dist_A", "corr_V", "corr_A",
                   "batch_loss", "stage1_samples")


def fmt_setting(v) -> str:
    """A per-phase setting as text: its phases joined by / (0.05/0.02)."""
    return "/".join(f"{float(x):g}" for x in v)


def run_id(runs: Runs, r: int) -> str:
    """A stable id of run ``r``: its spec's config, settings and seed."""
    st = {k[9:]: runs[k][r].tolist() for k in runs.arrays if k.startswith("settings/")}
    return digest_json({"config": runs.meta["config"], "settings": st,
                        "seed": int(runs["seeds"][r])})


def table_rows(runs: Runs) -> list[dict]:
    cfg = runs.meta["config"]
    out = []
    for r in range(len(runs)):
        m = {k[8:]: runs[k][r] for k in runs.arrays if k.startswith("metrics/")}
        e = m["excess_loss"]
        row = {"group": runs.name, "run_id": run_id(runs, r), "seed": int(runs["seeds"][r]),
               "optimizer": cfg["optimizer"], "N": cfg["task"]["N"], "T": cfg["task"]["T"],
               "Q": cfg["task"]["Q"], "dataset": int(runs["settings/dataset"][r]),
               **{k: fmt_setting(runs[f"settings/{k}"][r]) for k in PER_RUN},
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
    cols = list(SETTING_COLS) + ["seeds_finite", "seeds_diverged", "median_excess_ratio",
                                 "median_dist_V", "median_dist_A"]
    lines = ["  ".join(f"{c:>12}" for c in cols)]
    for d in summary:
        lines.append("  ".join(f"{d[c]:>12.4g}" if isinstance(d[c], float) else f"{d[c]!s:>12}"
                               for c in cols))
    return "\n".join(lines)
