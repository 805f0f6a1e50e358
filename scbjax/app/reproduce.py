"""The paper reproduction: run every study in ``scbjax/studies/``, plot its figures, check claims.

A study is a module ``scbjax.studies.<name>`` that defines ``MODES`` and ``runs`` (the protocol:
``scbjax.studies.base.Study``); ``STUDIES`` lists them in the order of their ``ORDER``. The
executor (``scbjax.engine.executor``) runs every spec into ``OUT/<study>/<spec>/``;
``OUT/job.json`` records the mode (``scbjax.engine.outdir``), and an ``OUT`` of another mode is
refused (``overwrite`` clears it).
Modes: "tiny" (tests, seconds), "quick" (the whole reproduction in minutes on a 2-core CPU),
"full" (publication setting: more seeds, larger T; sized for a GPU, runnable on a CPU).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax

import scbjax.studies
from scbjax.core.task import TaskConfig
from scbjax.engine import merge
from scbjax.engine.executor import Job, Log, execute, fits, load, run_spec
from scbjax.engine.results import result_bytes
from scbjax.engine.meta import git_commit, versions
from scbjax.engine import outdir
from scbjax.engine.outdir import MODES, job_mode, stored_mode, write_job
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import plots
from scbjax.studies.base import Claim
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write

CLAIMS_FILE = "claims.json"


def discover() -> tuple[str, ...]:
    """The studies: the modules of the package ``scbjax.studies`` (names not starting with
    "_") that define ``MODES`` and ``runs``, in the order of their ``ORDER``."""
    found = []
    for m in pkgutil.iter_modules(scbjax.studies.__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"scbjax.studies.{m.name}")
        if hasattr(mod, "MODES") and hasattr(mod, "runs"):
            found.append((mod.ORDER, m.name))
    return tuple(name for _, name in sorted(found))


STUDIES = discover()


def load_study(name: str):
    if name not in STUDIES:
        raise ConfigError("study", f"unknown study {name!r}; one of {STUDIES}")
    return importlib.import_module(f"scbjax.studies.{name}")


def _select(only: list[str] | None) -> list[str]:
    names = list(dict.fromkeys(only)) if only else list(STUDIES)
    for n in names:
        load_study(n)  # validates the name
    return names


def study_specs(name: str, mode: str) -> dict:
    """The study's named ``RunSpec``s in ``mode``."""
    if mode not in MODES:
        raise ConfigError("mode", f"must be one of {MODES}, got {mode!r}")
    st = load_study(name)
    return st.runs(st.MODES[mode])


def check_out(out: Path, mode: str, overwrite: bool = False, create: bool = True,
              only: list[str] | None = None) -> None:
    """``out`` must be a directory for this mode's results: refuse a file, an unwritable
    path or results of another mode (unless ``overwrite``, and then only for all studies:
    ``--only`` touches only the studies it names). With ``create`` False this only checks;
    with ``create`` it makes ``out`` and records the mode in ``OUT/job.json``. Nothing is
    removed: with ``overwrite`` each spec's new results replace the old ones when they are
    done (``execute``); only the claims table of another mode is dropped."""
    out = Path(out)
    prev = job_mode(out) if out.is_dir() else None
    outdir.claim(out, prev, mode, f"{out} holds results of mode {prev!r}, not {mode!r}",
                 overwrite)
    if overwrite and only and prev is not None and prev != mode:
        raise ConfigError("--only", f"{out} holds results of mode {prev!r}: --overwrite "
                          f"--only replaces the named studies in that mode only; to run "
                          f"--{mode} drop --only (all studies), or choose another --out")
    if not create:
        return
    if overwrite and out.is_dir() and prev != mode:
        (out / CLAIMS_FILE).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("--out", f"cannot write to {out}: {e.strerror or e}") from None
    write_job(out, mode)


def plan(mode: str, only: list[str] | None = None) -> list[dict]:
    """Per spec: runs, samples (each run's own batch), samples drawn (the padded batch every
    run of a spec draws), compiled calls (groups x phases), the bytes of its results' arrays
    (``results.result_bytes``) and its merged group (``merge.groups``: the first spec of the
    group it runs in, on this machine's memory)."""
    rows = []
    for name in _select(only):
        specs = study_specs(name, mode)
        head = {m: g[0] for g in merge.groups(specs, fits) for m in g}
        for sname, spec in specs.items():
            spec = spec.validate(f"{name}.{sname}")
            c = spec.config
            drawn = len(spec.runs) * sum(p.steps * b for p, b in zip(c.phases,
                                                                     spec.max_batch()))
            rows.append({"study": name, "spec": sname, "runs": len(spec.runs),
                         "N": c.task.N, "T": c.task.T, "Q": c.task.Q,
                         "steps": c.total_steps, "samples": spec.samples(), "drawn": drawn,
                         "compiles": 1 + len(set(zip(spec.max_batch(), spec.masked()))),
                         "model": c.model, "population": c.population,
                         "bytes": result_bytes(spec), "group": f"{name}/{head[sname]}"})
    return rows


def calibrate() -> dict:
    """A short timed run on this machine: seconds per sample-step per unit of work
    (T + N) N, and seconds per compile (the estimate of ``estimate_seconds``)."""
    N, T, B, S, steps = 8, 32, 32, 16, 400
    cfg = TrainConfig(task=TaskConfig(N=N, T=T, Q=2), phases=(Phase(steps, B, 0.02, 0.02),),
                      log_every=steps // 2)
    with tempfile.TemporaryDirectory() as d:
        spec = RunSpec(cfg, grid(range(S)), chunk_steps=steps // 2)
        t0 = time.perf_counter()
        r = run_spec("calibrate", spec, Path(d) / "c", log=Log(quiet=True))
        total = time.perf_counter() - t0
    jax.clear_caches()
    tm = r.meta["timings"]
    per_sample = tm["run_s"] / (S * steps * B) / ((T + N) * N)
    return {"s_per_sample_unit": per_sample, "s_per_compile": max(total - tm["run_s"], 0.0) / 2}


def estimate_seconds(row: dict, cal: dict) -> float:
    # every run of a spec draws the spec's largest batch of each phase (padding + mask)
    work = row.get("drawn", row["samples"]) * (row["T"] + row["N"]) * row["N"]
    if row["population"]:
        work = row["steps"] * row["runs"] * (row["T"] + row["N"]) * row["N"]
    factor = 3.0 if row["model"] == "softmax" else 1.0
    own = f"{row.get('study', '')}/{row.get('spec', '')}"
    head = row.get("group", own) == own  # a merged group compiles once, for its first spec
    return (work * factor * cal["s_per_sample_unit"]
            + (row["compiles"] * cal["s_per_compile"] if head else 0.0))


def format_plan(rows: list[dict], cal: dict | None) -> str:
    lines = [f"{'study':<11} {'spec':<22} {'runs':>5} {'N':>3} {'T':>5} {'Q':>2} {'steps':>7} "
             f"{'samples':>10} {'MB':>6}" + ("  est. s" if cal else "") + "  merged into"]
    tot_s, tot_n, tot_r = 0.0, 0, 0
    for r in rows:
        e = estimate_seconds(r, cal) if cal else 0.0
        tot_s, tot_n, tot_r = tot_s + e, tot_n + r["samples"], tot_r + r["runs"]
        lines.append(f"{r['study']:<11} {r['spec'][:22]:<22} {r['runs']:>5} {r['N']:>3} "
                     f"{r['T']:>5} {r['Q']:>2} {r['steps']:>7} {r['samples']:>10.3g} "
                     f"{r.get('bytes', 0) / 1e6:6.1f}" + (f"  {e:6.0f}" if cal else "")
                     + ("" if r.get("group", r["spec"]).endswith("/" + r["spec"])
                        else f"  {r['group']}"))
    merged = len({r.get("group", r["spec"]) for r in rows})
    mb = sum(r.get("bytes", 0) for r in rows) / 1e6
    lines.append(f"{len(rows)} specs in {merged} merged groups, {tot_r} runs, {tot_n:.3g} "
                 f"samples, {mb:.1f} MB of results (arrays; the files are compressed, "
                 "about half of that at --quick)"
                 + (f", about {tot_s:.0f} s on this machine (calibrated: "
                    f"{cal['s_per_compile']:.1f} s per compile)" if cal else ""))
    return "\n".join(lines)


def run_studies(mode: str, out, only: list[str] | None = None, *,
                log: Callable[[str], None] = print, quiet: bool = False,
                overwrite: bool = False, workers: int | None = None) -> dict[str, float]:
    """Run (or resume, or reuse) each study's specs into ``out/<study>``; seconds per study.
    ``workers``: groups at once (``executor.concurrent_groups``)."""
    names = _select(only)
    out = Path(out)
    specs = {n: study_specs(n, mode) for n in names}
    for n, ss in specs.items():
        for sname, sp in ss.items():
            sp.validate(f"{n}.{sname}")
    check_out(out, mode, overwrite, create=False, only=only)
    with outdir.hold(out):
        check_out(out, mode, overwrite, only=only)
        job = Job(sum(sp.samples() for ss in specs.values() for sp in ss.values()))
        elog = Log(quiet)
        times = {}
        for n in names:
            t0 = time.perf_counter()
            log(f"[{n}] {len(specs[n])} groups ({mode})")
            execute(specs[n], out / n, log=elog, job=job, tag=f"{n}/", overwrite=overwrite,
                    workers=workers)
            times[n] = time.perf_counter() - t0
            log(f"[{n}] done in {times[n]:.1f}s")
    return times


def load_results(name: str, mode: str, out):
    """The study's saved ``RunSet`` (hashes checked against its specs in ``mode``)."""
    return load(study_specs(name, mode), Path(out) / name)


def check_results(out, only: list[str] | None = None, mode: str | None = None) -> str:
    """The mode of the results saved under ``out``, after loading every selected study's runs
    (ConfigError naming the first file that is missing, damaged or of other runs)."""
    if not Path(out).is_dir():
        raise ConfigError("RESULTS_DIR", f"no such directory: {out}")
    mode = mode or stored_mode(out)
    for name in _select(only):
        load_results(name, mode, out)
    return mode


def tracked_files(directory) -> list[str]:
    """The files git tracks in ``directory`` ([] outside a git work tree or without git)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    try:
        r = subprocess.run(["git", "ls-files", "."], cwd=d, capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return r.stdout.split() if r.returncode == 0 else []


def check_figures_target(figures, mode: str) -> None:
    """A ``tiny`` run never writes into a folder of tracked files (the README's figures)."""
    if mode == "tiny" and tracked_files(figures):
        raise ConfigError("--figures", f"{figures} holds files tracked by git (the README's "
                          "figures); a --tiny run's figures go elsewhere (default: "
                          "OUT/figures)")


def stamp_line(how: str) -> str:
    """The line a figure carries: package version, how it was made, commit, date."""
    commit = (git_commit() or "no-git")[:10]
    return (f"scbjax {versions().get('scbjax', '?')} | {how} | {commit} | "
            f"{time.strftime('%Y-%m-%d')}")


def stamp(mode: str) -> str:
    """The line every study figure carries: package version, mode, commit, date."""
    return stamp_line(f"reproduce --{mode}")


def plot_studies(out, figures_dir, only: list[str] | None = None,
                 log: Callable[[str], None] = print, mode: str | None = None) -> list[Path]:
    """Regenerate every figure (PNG and PDF) from the saved results under ``out``."""
    out, paths = Path(out), []
    mode = mode or stored_mode(out)
    for name in _select(only):
        study = load_study(name)
        rs = load_results(name, mode, out)
        with plots.style():
            figs = study.figures(rs, study.MODES[mode])
        missing = set(study.FIGURES) - set(figs)
        if missing:
            raise RuntimeError(f"study {name} did not draw {sorted(missing)}")
        for stem, fig in figs.items():
            paths += plots.save_figure(fig, figures_dir, stem, stamp=stamp(mode))
        log(f"[{name}] figures: {', '.join(sorted(figs))}")
    return paths


def check_claims(out, only: list[str] | None = None, mode: str | None = None) -> list[Claim]:
    """Every study's claim checks on the saved results; ``out/claims.json`` is written when
    every study was checked (a partial check leaves it alone)."""
    out, claims = Path(out), []
    mode = mode or stored_mode(out)
    names = _select(only)
    for name in names:
        st = load_study(name)
        claims += [dataclasses.replace(c, study=name)
                   for c in st.claims(load_results(name, mode, out), st.MODES[mode])]
    if set(names) == set(STUDIES):
        text = json.dumps([dataclasses.asdict(c) for c in claims], indent=2).encode()
        atomic_write(out / CLAIMS_FILE, lambda f: f.write(text))
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

