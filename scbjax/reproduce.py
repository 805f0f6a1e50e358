"""The paper reproduction: run every study in ``experiments/``, plot its figures, check claims.

A study is a module ``scbjax.experiments.<name>`` (the folder ``experiments/``) with
  ``TITLE: str``, ``FIGURES: dict[str, str]`` (figure file stem -> one sentence it shows),
  ``run(mode: str, out: Path) -> None``   trains and saves raw results under ``out``,
  ``figures(out: Path) -> dict[str, Figure]``  from saved results only,
  ``claims(out: Path) -> list[Claim]``  from saved results only.
Modes: "tiny" (tests, seconds), "quick" (the whole reproduction in minutes on a 2-core CPU),
"full" (publication setting: more seeds, larger T; sized for a GPU, runnable on a CPU).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import time
from pathlib import Path
from typing import Callable

from scbjax.errors import ConfigError

STUDIES = ("two_stage", "population", "transfer", "vs_sgd", "softmax", "recovery")
MODES = ("tiny", "quick", "full")
CLAIMS_FILE = "claims.json"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One automatic check: what was measured, against which criterion, and the verdict."""

    id: str  # "1", "2a", ...
    name: str  # short title, e.g. "two stages: stage-1 length grows with T"
    measured: str  # the measured number(s), human-readable
    criterion: str  # the PASS criterion, human-readable
    passed: bool
    study: str = ""


def train_and_save(config, seeds, out, hparams=None, *, keys=None, task=None, params0=None,
                   extra: dict | None = None, arrays: dict | None = None):
    """One ``train_many`` call over ``seeds`` (keys ``seed_keys(seeds)`` unless given; hparams,
    tasks and starts stacked per run if given), saved to ``out`` (``results.npz`` + ``run.json``
    with the seconds it took, compile included; ``arrays`` adds arrays). Returns the result."""
    import jax
    import numpy as np

    from scbjax.results import save_run, to_arrays
    from scbjax.train import default_hparams, seed_keys, train_many

    seeds = np.asarray(seeds)
    keys = seed_keys(seeds) if keys is None else keys
    t0 = time.perf_counter()
    res = jax.block_until_ready(train_many(config, keys, hparams, task=task, params0=params0))
    dt = time.perf_counter() - t0
    hp = default_hparams(config) if hparams is None else hparams
    a = to_arrays(res, config, seeds, hp)
    a.update(arrays or {})
    save_run(out, a, config, {"compile_and_run_s": dt}, extra)
    return res


def load_study(name: str):
    if name not in STUDIES:
        raise ConfigError("study", f"unknown study {name!r}; one of {STUDIES}")
    return importlib.import_module(f"scbjax.experiments.{name}")


def _select(only: list[str] | None) -> list[str]:
    names = list(only) if only else list(STUDIES)
    for n in names:
        load_study(n)  # validates the name
    return names


def run_studies(mode: str, out, only: list[str] | None = None, resume: bool = False,
                log: Callable[[str], None] = print) -> dict[str, float]:
    """Run each study's training into ``out/<study>``; returns seconds per study.

    With ``resume``, a study whose ``out/<study>/DONE`` exists is skipped.
    """
    if mode not in MODES:
        raise ConfigError("mode", f"must be one of {MODES}, got {mode!r}")
    out = Path(out)
    times = {}
    for name in _select(only):
        d = out / name
        done = d / "DONE"
        if resume and done.exists():
            log(f"[{name}] done already, skipped (--resume)")
            continue
        done.unlink(missing_ok=True)
        d.mkdir(parents=True, exist_ok=True)
        log(f"[{name}] training ({mode}) ...")
        t0 = time.perf_counter()
        load_study(name).run(mode, d)
        times[name] = time.perf_counter() - t0
        done.write_text(json.dumps({"mode": mode, "seconds": times[name]}))
        log(f"[{name}] trained in {times[name]:.1f}s")
    return times


def plot_studies(out, figures_dir, only: list[str] | None = None,
                 log: Callable[[str], None] = print) -> list[Path]:
    """Regenerate every figure (PNG and PDF) from the saved results under ``out``."""
    from scbjax import plots

    out, paths = Path(out), []
    for name in _select(only):
        study = load_study(name)
        if not (out / name / "DONE").exists():
            raise ConfigError("results", f"no finished results for study {name!r} in {out}")
        with plots.style():
            figs = study.figures(out / name)
        missing = set(study.FIGURES) - set(figs)
        if missing:
            raise RuntimeError(f"study {name} did not draw {sorted(missing)}")
        for stem, fig in figs.items():
            paths += plots.save_figure(fig, figures_dir, stem)
        log(f"[{name}] figures: {', '.join(sorted(figs))}")
    return paths


def check_claims(out, only: list[str] | None = None) -> list[Claim]:
    """Every study's claim checks on the saved results; also written to ``out/claims.json``."""
    out, claims = Path(out), []
    for name in _select(only):
        claims += [dataclasses.replace(c, study=name)
                   for c in load_study(name).claims(out / name)]
    (out / CLAIMS_FILE).write_text(json.dumps([dataclasses.asdict(c) for c in claims], indent=2))
    return claims


def claims_table(claims: list[Claim]) -> str:
    """Plain-text table: id, claim, measured, criterion, PASS/FAIL; a count at the end."""
    rows = [("id", "claim", "measured", "criterion", "result")]
    rows += [(c.id, c.name, c.measured, c.criterion, "PASS" if c.passed else "FAIL")
             for c in claims]
    w = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((4, 44, 48, 48, 6))]
    lines = []
    for j, r in enumerate(rows):
        cells = [_wrap(x, w[i]) for i, x in enumerate(r)]
        for k in range(max(len(c) for c in cells)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w[i])
                                   for i, c in enumerate(cells)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * x for x in w))
    n_pass = sum(c.passed for c in claims)
    lines.append(f"{n_pass} passed, {len(claims) - n_pass} failed")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for word in words:
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return lines + [cur] if cur or not lines else lines


def fmt(x: float, digits: int = 3) -> str:
    """A number for the claims table (nan as 'n/a')."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"
