"""Issue 18: results that cannot be wrong. Each class of the probe has a test here that fails
on the tree before the fix: the results file tied to its configuration (fault injection in the
write window between results.npz and run.json), one writer per output folder, nothing computed
replaced without --overwrite (train, sweep, reproduce, execute), checkpoints that resume on
any device count and are checked before use, and the files a run writes checked before it
trains."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import interrupt_after_saves

from scbjax.app.cli import main
from scbjax.engine import executor, outdir
from scbjax.engine.executor import Log, execute, run_spec
from scbjax.engine.spec import RunSpec, grid
from scbjax.engine.store import load_runs
from scbjax.sim.config import Phase, TrainConfig
from scbjax.core.task import TaskConfig
from scbjax.util.errors import ConfigError
from scbjax.util import fileio

B = ["--N", "4", "--T", "5", "--Q", "2", "--steps", "8", "--batch", "2", "--log-every", "4",
     "--seeds", "2", "--quiet"]
CFG = TrainConfig(task=TaskConfig(N=4, T=5, Q=2), phases=(Phase(steps=8, batch=2),),
                  log_every=4)
QUIET = Log(quiet=True)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


class Killed(BaseException):
    """A process killed at this point (raised by the fault injection, caught by the test)."""


@pytest.fixture
def kill_after_replace(monkeypatch):
    """``arm(name)``: the next ``os.replace`` onto a file called ``name`` happens, then the
    process "dies" (Killed) before its next statement: the write window of the probe."""
    real = os.replace

    def arm(name: str):
        def replace(src, dst, *a, **k):
            real(src, dst, *a, **k)
            if Path(dst).name == name:
                monkeypatch.setattr(os, "replace", real)
                raise Killed

        monkeypatch.setattr(os, "replace", replace)

    return arm


def arrays_of(d: Path) -> dict:
    return fileio.load_npz(d / "results.npz")


# --- 1, 5: the results file carries its configuration ---------------------------------------


def test_a_crash_between_the_two_final_writes_never_reuses_the_wrong_arrays(
        tmp_path, kill_after_replace, capsys):
    """(1) Killed right after results.npz of an lr 0.05 --overwrite run is renamed into place
    (run.json still says lr 0.01): the lr 0.01 command said "reused" and returned the lr 0.05
    arrays. Now it is refused (the folder holds the lr 0.05 results), and (5) the command that
    was interrupted, run again as its message says, finishes with the lr 0.05 results and a
    repaired run.json."""
    out = tmp_path / "X"
    assert main(["train", *B, "--lr", "0.01", "--out", str(out)]) == 0
    kill_after_replace("results.npz")
    with pytest.raises(Killed):
        main(["train", *B, "--lr", "0.05", "--out", str(out), "--overwrite"])
    capsys.readouterr()
    assert main(["train", *B, "--lr", "0.01", "--out", str(out)]) == 2
    assert f"{out} holds other results" in capsys.readouterr().err
    assert main(["train", *B, "--lr", "0.05", "--out", str(out), "--overwrite"]) == 0
    r = load_runs(out)
    np.testing.assert_array_equal(r["settings/lr_V"], np.float32(0.05))
    assert r.config.phases[0].lr_V == 0.05
    assert json.loads((out / "run.json").read_text())["hash"] == r.meta["hash"]


def test_a_crash_in_the_window_of_a_sweep_group_gives_the_table_of_the_spec(
        tmp_path, kill_after_replace):
    """(1, 3) The same window in a sweep whose spec was edited (lr 0.02 -> 0.03): table.csv
    showed lr 0.03 where the spec said 0.02. Now the edited spec is refused without
    --overwrite, before training; with it, killed in the window and run again, the table and
    every group hold lr 0.03; the first spec again is refused (its groups were replaced)."""
    spec = tmp_path / "s.toml"
    text = ('name = "s"\nseeds = 2\n[base]\nlog_every = 4\n[base.task]\nN = 4\nT = 5\nQ = 2\n'
            '[[base.phases]]\nsteps = 8\nbatch = 2\n[axes]\nlr = [{lr}]\n')
    out = tmp_path / "S"
    spec.write_text(text.format(lr=0.02))
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    spec.write_text(text.format(lr=0.03))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    kill_after_replace("results.npz")
    with pytest.raises(Killed):
        main(["sweep", str(spec), "--out", str(out), "--quiet", "--overwrite"])
    assert main(["sweep", str(spec), "--out", str(out), "--quiet", "--overwrite"]) == 0
    rows = (out / "table.csv").read_text().splitlines()
    lr = rows[0].split(",").index("lr_V")
    assert [float(r.split(",")[lr]) for r in rows[1:]] == [0.03, 0.03]
    for g in (out / "groups").iterdir():
        np.testing.assert_array_equal(load_runs(g)["settings/lr_V"], np.float32(0.03))


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two finished spec folders: 2 seeds lr 0.05, and 1 seed lr 0.02."""
    d = tmp_path_factory.mktemp("two")
    a = RunSpec(CFG, grid(range(2), lr=0.05))
    b = RunSpec(CFG, grid(range(1), lr=0.02))
    run_spec("a", a, d / "a", log=QUIET)
    run_spec("b", b, d / "b", log=QUIET)
    return d, a, b


def _swap(d: Path, e: Path) -> None:
    x, y = (d / "results.npz").read_bytes(), (e / "results.npz").read_bytes()
    (d / "results.npz").write_bytes(y)
    (e / "results.npz").write_bytes(x)


def _edit_run_json(d: Path, **changes) -> None:
    m = json.loads((d / "run.json").read_text())
    m.update(changes)
    (d / "run.json").write_text(json.dumps(m))


def _drop_array(d: Path, key: str, value=None) -> None:
    z = dict(np.load(d / "results.npz"))
    if value is None:
        del z[key]
    else:
        z[key] = value
    np.savez(d / "results.npz", **z)


def _edit_meta(d: Path, **changes) -> None:
    z = dict(np.load(d / "results.npz"))
    m = json.loads(str(z["meta"]))
    m.update(changes)
    z["meta"] = np.asarray(json.dumps(m))
    np.savez(d / "results.npz", **z)
    (d / "run.json").write_text(json.dumps(m))


# (what is done to folder "a" (and "b"), what the one error names); the results file is the
# authority: where it holds another configuration's runs, reuse refuses them (REFUSED) and
# only ``overwrite`` recomputes
REFUSED = "holds the runs of another configuration"
DAMAGE = [
    ("swap", lambda a, b: _swap(a, b), "run.json and results.npz disagree"),
    ("copied 1-seed results", lambda a, b: shutil.copy(b / "results.npz", a), "disagree"),
    ("no metric", lambda a, b: _drop_array(a, "metrics/excess_loss"),
     "no array 'metrics/excess_loss'"),
    ("string metric", lambda a, b: _drop_array(a, "metrics/corr_V", np.full((2, 3), "x")),
     "array 'metrics/corr_V' is not numeric"),
    ("wrong shape", lambda a, b: _drop_array(a, "params/A", np.zeros((2, 5, 3))),
     "array 'params/A' has shape (2, 5, 3), its configuration gives (2, 5, 4)"),
    ("no meta (older version)", lambda a, b: _drop_array(a, "meta"),
     "carries no configuration"),
    ("run.json without timings", lambda a, b: _edit_run_json(a, timings=None), "disagree"),
    ("run.json of format 99", lambda a, b: _edit_run_json(a, format=99),
     "format 99, this version reads"),
    ("edited config", lambda a, b: _edit_run_json(
        a, config={**json.loads((a / "run.json").read_text())["config"], "log_every": 2}),
     "disagree"),
    ("meta and run.json with 3 runs", lambda a, b: _edit_meta(a, runs=3),
     "array 'seeds' has shape (2,), its configuration gives (3,)"),
]


@pytest.mark.parametrize("what, damage, says", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_or_mismatched_results_are_named_on_load_and_recomputed_on_reuse(
        two, tmp_path, what, damage, says, capsys):
    """(1, 8, 9) A results file that is not the one its run.json and hash stand for (swapped,
    copied from a 1-seed run, a metric missing or of strings, another shape, no embedded
    configuration) or a run.json edited (no timings, format 99, another config): loading names
    the folder or file (plot gives exit 2 on it), and the executor recomputes the spec (or
    resumes it) instead of reusing the arrays: the result equals the original."""
    src, spec_a, _ = two
    a, b = Path(shutil.copytree(src / "a", tmp_path / "a")), Path(
        shutil.copytree(src / "b", tmp_path / "b"))
    ref = arrays_of(a)
    damage(a, b)
    with pytest.raises(ConfigError) as e:
        load_runs(a, spec_a.key())
    assert says in str(e.value) and str(a) in str(e.value)
    if what in ("swap", "copied 1-seed results"):  # b's valid runs now sit in a
        with pytest.raises(ConfigError, match=REFUSED):
            run_spec("a", spec_a, a, log=QUIET)
        assert arrays_of(a).keys() == arrays_of(b if what == "swap" else src / "b").keys()
    r = run_spec("a", spec_a, a, log=Log(), overwrite=True)
    err = capsys.readouterr().err
    assert "recomputing" in err or "rewritten" in err, err
    got = arrays_of(a)
    for k in ref:
        if k != "meta":
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    assert len(r) == 2 and load_runs(a, spec_a.key()).meta["hash"] == spec_a.key()


def test_plot_refuses_swapped_results(two, tmp_path, capsys):
    """(1) Two specs' results.npz swapped in a reproduce output flipped a claim and exited 0:
    the load behind plot (``executor.load``) now refuses, naming the folder."""
    src, spec_a, spec_b = two
    out = tmp_path / "study"
    shutil.copytree(src, out)
    executor.load({"a": spec_a, "b": spec_b}, out)
    _swap(out / "a", out / "b")
    with pytest.raises(ConfigError, match="disagree"):
        executor.load({"a": spec_a, "b": spec_b}, out)


# --- 2: one writer per output folder -------------------------------------------------------

HOLDER = """
import sys, time
from scbjax.engine.outdir import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """A folder held by another process (``outdir.hold``); yields (folder, pid)."""
    out = tmp_path / "Y"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                         text=True, env=ENV)
    try:
        assert p.stdout.readline().strip() == "held"
        yield out, p.pid
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("argv", [
    ["train", *B, "--out", "{out}"],
    ["sweep", "{spec}", "--out", "{out}"],
])
def test_a_second_writer_is_refused_naming_the_holder(held, argv, tmp_path, capsys,
                                                      monkeypatch):
    """(2) Two trains into one --out both exited 0 and only one configuration survived. Now
    the folder is held by one process (fcntl.flock on OUT/.scbjax.lock): the second command
    exits 2 before training, naming the holder's PID; the holder's lock is untouched."""
    out, pid = held
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "s", "seeds": 1, "base": {
        "task": {"N": 4, "T": 5, "Q": 2}, "phases": [{"steps": 4, "batch": 2}]}}))

    def trained(*a, **k):
        raise AssertionError("trained while another process held the folder")

    monkeypatch.setattr(executor, "intervals", trained)
    argv = [x.replace("{out}", str(out)).replace("{spec}", str(spec)) for x in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use by another scbjax process (PID {pid}" in err, err
    assert (out / ".scbjax.lock").read_text() == f"{pid}\n"


def test_hold_is_reentrant_removes_its_traces_and_stale_temp_files(tmp_path):
    """(2, 11) Within one process ``hold`` nests; on exit the lock file and the folders made
    for it are gone; leftover temp files of killed writes are removed on the way in."""
    out = tmp_path / "a" / "b"
    with outdir.hold(out):
        assert (out / ".scbjax.lock").read_text() == f"{os.getpid()}\n"
        with outdir.hold(out):
            pass
        assert (out / ".scbjax.lock").exists()
    assert not (tmp_path / "a").exists()
    out.mkdir(parents=True)
    (out / ".checkpoint.npz.abc123.tmp").write_bytes(b"half")
    (out / "keep.tmp").write_bytes(b"mine")
    with outdir.hold(out):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["keep.tmp"]


def test_two_trains_started_together_one_runs_one_is_refused(tmp_path):
    """(2) Started at the same instant: exactly one trains, the other exits 2 naming the
    holder (never the probe's "File exists"), and the result is the one that ran."""
    out = tmp_path / "Z"
    cmd = [sys.executable, "-m", "scbjax", "train", *B, "--steps", "2000", "--log-every", "400",
           "--out", str(out)]
    ps = [subprocess.Popen([*cmd, "--lr", lr], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, env=ENV) for lr in ("0.01", "0.02")]
    res = [(p.wait(timeout=300), p.stderr.read()) for p in ps]
    codes = sorted(rc for rc, _ in res)
    assert codes == [0, 2], res
    (rc0, _), (rc1, err1) = res if res[1][0] == 2 else res[::-1]
    assert "in use by another scbjax process (PID" in err1 and "File exists" not in err1
    winner = "0.01" if res[0][0] == 0 else "0.02"
    np.testing.assert_array_equal(load_runs(out)["settings/lr_V"], np.float32(winner))


# --- 3, 4: nothing computed replaced without --overwrite ------------------------------------


def test_execute_refuses_other_results_unless_overwrite_before_training(two, tmp_path,
                                                                        monkeypatch):
    """(3) ``execute`` replaced a spec's results of another configuration (a sweep's groups,
    with no message under --quiet). Now it refuses, before any spec trains, unless
    ``overwrite``; with it, the new results replace the old."""
    src, spec_a, spec_b = two
    out = Path(shutil.copytree(src, tmp_path / "o"))
    edited = RunSpec(CFG, grid(range(2), lr=0.07))
    real = executor.intervals
    monkeypatch.setattr(executor, "intervals", lambda *a: (_ for _ in ()).throw(
        AssertionError("trained")))
    with pytest.raises(ConfigError, match=r"o/a: holds the runs of another configuration"):
        execute({"new": RunSpec(CFG, grid(range(1))), "a": edited}, out)
    assert not (out / "new").exists()
    monkeypatch.setattr(executor, "intervals", real)
    r = execute({"a": edited}, out, overwrite=True)
    np.testing.assert_array_equal(r["a"]["settings/lr_V"], np.float32(0.07))


def test_reproduce_overwrite_only_touches_only_that_study(tmp_path, monkeypatch, capsys):
    """(4) ``reproduce --overwrite --only population`` deleted every study in OUT (recovery/
    and claims.json included) before any training. Now nothing is deleted: only the named
    study is (re)computed, the others and claims.json stay; with another mode, --only is
    refused (it would leave the other studies in the old mode)."""
    from scbjax.app import reproduce

    out = tmp_path / "R"
    (out / "recovery" / "spec").mkdir(parents=True)
    (out / "recovery" / "spec" / "results.npz").write_bytes(b"PK recovery results")
    (out / "claims.json").write_text("[]")
    (out / "job.json").write_text(json.dumps({"kind": "reproduce", "mode": "tiny"}))
    ran = []

    def fake_execute(specs, o, **k):
        ran.append(Path(o).name)
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "execute", fake_execute)
    monkeypatch.setattr(reproduce, "calibrate", lambda: None)
    before = sorted(str(p) for p in out.rglob("*"))
    assert main(["reproduce", "--tiny", "--overwrite", "--only", "population", "--out",
                 str(out)]) == 130
    assert ran == ["population"] and sorted(str(p) for p in out.rglob("*")) == before
    assert (out / "recovery" / "spec" / "results.npz").read_bytes() == b"PK recovery results"
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--overwrite", "--only", "population", "--out",
                 str(out)]) == 2
    assert "--only: " in capsys.readouterr().err and ran == ["population"]


# --- 7: checkpoints on any device count, checked before use ----------------------------------


def _interrupted(spec: RunSpec, d: Path, monkeypatch, after: int = 1) -> None:
    interrupt_after_saves(monkeypatch, lambda: run_spec("x", spec, d, log=QUIET), after)


def test_checkpoints_are_unpadded_and_resume_on_four_devices(tmp_path, monkeypatch):
    """(7) A 1-device checkpoint resumed on 4 devices was thrown away ("does not match this
    version's state"). Checkpoints are now stored without the padding (3 runs stored as 3),
    and a 4-device process resumes one (it says so) of the probe's case, 4 seeds: one run per
    device. Its results equal a straight 1-device run to float32 rounding, not bitwise: the
    device count changes XLA's per-device batch (measured and stated in docs/robustness.md:
    parameters within 4.5e-8, metrics within 1.2e-5)."""
    cfg = TrainConfig(task=TaskConfig(N=4, T=5, Q=2), phases=(Phase(steps=40, batch=4),),
                      log_every=5)
    three = tmp_path / "three"
    _interrupted(RunSpec(cfg, grid(range(3)), chunk_steps=10), three, monkeypatch)
    assert fileio.load_npz(three / "checkpoint.npz")["state/.params.V"].shape[0] == 3
    spec = RunSpec(cfg, grid(range(4)), chunk_steps=10)
    ref = run_spec("x", spec, tmp_path / "ref", log=QUIET)
    d = tmp_path / "x"
    _interrupted(spec, d, monkeypatch)
    z = fileio.load_npz(d / "checkpoint.npz")
    assert z["state/.params.V"].shape[0] == 4 and int(z["next_interval"]) == 2
    code = f"""
import jax, numpy as np
from scbjax.engine.executor import Log, run_spec
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim.config import Phase, TrainConfig
from scbjax.core.task import TaskConfig
assert jax.device_count() == 4
cfg = TrainConfig(task=TaskConfig(N=4, T=5, Q=2), phases=(Phase(steps=40, batch=4),),
                  log_every=5)
run_spec("x", RunSpec(cfg, grid(range(4)), chunk_steps=10), {str(d)!r})
"""
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr and "restarting" not in r.stderr, r.stderr
    got = load_runs(d)
    for k in ("params/V", "params/A"):
        np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-6, err_msg=k)
    for k in (k for k in ref.arrays if k.startswith("metrics/")):
        np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-4, err_msg=k)
    np.testing.assert_array_equal(got["samples"], ref["samples"])


@pytest.mark.parametrize("ni, says", [(10**6, "next_interval 1000000"),
                                      (-1, "next_interval -1"), (0, "metrics/")])
def test_a_checkpoint_with_a_bad_next_interval_restarts_said_so(tmp_path, monkeypatch, ni,
                                                                 says, capsys):
    """(8) ``next_interval = 10**6`` gave an IndexError, a negative one wrote 1,296 metric
    columns for 1,001 steps; one that disagrees with the stored metrics is as bad. Now the
    checkpoint is named as not matching, the spec restarts, and the result is right."""
    spec = RunSpec(CFG, grid(range(2)), chunk_steps=4)
    ref = run_spec("x", spec, tmp_path / "ref", log=QUIET)
    d = tmp_path / "x"
    _interrupted(spec, d, monkeypatch)
    z = dict(np.load(d / "checkpoint.npz"))
    z["next_interval"] = np.asarray(ni)
    np.savez(d / "checkpoint.npz", **z)
    capsys.readouterr()
    r = run_spec("x", spec, d, log=Log())
    err = capsys.readouterr().err
    assert says in err and "restarting from scratch" in err, err
    for k in ref.arrays:
        np.testing.assert_array_equal(r[k], ref[k], err_msg=k)


# --- 10, 11: the files a run writes, checked before it trains --------------------------------


@pytest.mark.parametrize("name", ["checkpoint.npz", "results.npz", "run.json"])
def test_a_folder_in_place_of_an_output_file_is_named_before_training(tmp_path, name,
                                                                     monkeypatch):
    """(10) ``checkpoint.npz`` as a directory failed after training, naming a .tmp file. Now
    the spec's files are checked first: one ConfigError naming the path, nothing trained."""
    d = tmp_path / "x"
    (d / name).mkdir(parents=True)
    monkeypatch.setattr(executor, "intervals", lambda *a: (_ for _ in ()).throw(
        AssertionError("trained")))
    with pytest.raises(ConfigError) as e:
        run_spec("x", RunSpec(CFG, grid(range(1))), d, log=QUIET)
    assert e.value.field == str(d / name) and "not a regular file" in str(e.value)
