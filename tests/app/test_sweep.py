"""Sweeps: padded batches with a mask, fixed datasets, spec validation, grouping, sharding over
4 forced host devices, kill-and-resume, divergence, the tidy table and ``scbjax sweep``."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax.app.cli import main
from scbjax.util.errors import ConfigError
from scbjax.app.sweep import groups, load_table, run_sweep, spec_from_dict, specs
from scbjax.sim.train import (RunSettings, default_settings, intervals, make_stepper, make_train,
                          permute_index)
from conftest import wait_for_file

TASK = s.TaskConfig(N=5, T=6, Q=2)


def cfg(**kw):
    base = dict(task=TASK, phases=(s.Phase(40, 8, 0.05, 0.05, 1e-3),), log_every=10)
    base.update(kw)
    return s.TrainConfig(**base)


def with_batch(settings: RunSettings, b: int) -> RunSettings:
    return settings.replace(batch=jnp.full_like(settings.batch, b))


def test_padded_batch_with_mask_gives_the_same_updates():
    """b = 5 samples padded to 12 with a mask: the same steps as the unpadded batch of 5 (the
    running mu estimate checks that the token counts are masked too)."""
    c = cfg(mu="estimate", phases=(s.Phase(6, 5, 0.05, 0.05, 1e-3),))
    stp = make_stepper(c)
    state0 = stp.init(jax.random.PRNGKey(4))
    step = jax.jit(stp.step, static_argnums=(2, 3))
    a, b, full = state0, state0, state0
    for t in range(6):
        a, la = step(a, jnp.asarray(t, jnp.int32), 5, False)   # unpadded: 5 samples
        b, lb = step(b, jnp.asarray(t, jnp.int32), 12, True)   # 12 drawn, 7 masked out
        np.testing.assert_allclose(lb, la, rtol=1e-6)
    np.testing.assert_allclose(b.params.V, a.params.V, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.params.A, a.params.A, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.opt_state.counts, a.opt_state.counts)
    # the mask matters: 12 unmasked samples give other updates
    full = stp.init(jax.random.PRNGKey(4), with_batch(default_settings(c), 12))
    for t in range(6):
        full, _ = step(full, jnp.asarray(t, jnp.int32), 12, False)
    assert not np.allclose(full.params.V, a.params.V)


def test_chunked_stepper_equals_make_train():
    """init + advance over log intervals, two phases, one interval per call: make_train's
    numbers (one call per phase). Bit-identical on jax 0.10.1; rtol 1e-5 because XLA may round
    differently in differently compiled loops (jax 0.4.36: 1.8e-6)."""
    c = cfg(phases=(s.Phase(20, 4, 0.05, 0.05, 1e-3), s.Phase(20, 8, 0.02, 0.02, 0.0)))
    keys = s.seed_keys(range(3))
    ref = jax.jit(jax.vmap(make_train(c)))(keys)
    stp = make_stepper(c)
    state = jax.jit(jax.vmap(stp.init))(keys)
    adv = jax.jit(jax.vmap(stp.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4))
    start, length, phase = intervals(c)
    got = []
    for i in range(len(start)):
        state, m = adv(state, start[i:i + 1], length[i:i + 1], c.phases[phase[i]].batch, False)
        got.append(np.asarray(m["excess_loss"]))
    np.testing.assert_allclose(np.concatenate(got, 1), ref.metrics["excess_loss"][:, 1:],
                               rtol=1e-5)
    np.testing.assert_allclose(state.params.A, ref.params.A, rtol=1e-5, atol=1e-7)


_perm = jax.jit(jax.vmap(permute_index, in_axes=(None, 0, None)))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_permute_index_is_a_permutation(n, seed):
    """Traced n: one compile for every n."""
    p = _perm(jax.random.PRNGKey(seed), jnp.arange(300, dtype=jnp.int32),
              jnp.asarray(n, jnp.int32))
    assert sorted(np.asarray(p)[:n].tolist()) == list(range(n))


def test_fixed_dataset_visits_each_sample_once_per_epoch_and_pads():
    c = cfg(phases=(s.Phase(12, 4, 0.05, 0.05, 1e-3),))
    n = 16
    st64 = make_stepper(c, max_dataset=64)
    st16 = make_stepper(c, max_dataset=16)
    key = jax.random.PRNGKey(0)
    sett = default_settings(c, dataset=n)
    a, b = st64.init(key, sett), st16.init(key, sett)
    # the first n of the padded dataset are the unpadded dataset
    np.testing.assert_array_equal(a.data.tokens[:n], b.data.tokens)
    adv = jax.jit(lambda st_, x: st_.advance(x, jnp.zeros(1, jnp.int32),
                                             jnp.full(1, 12, jnp.int32), 4, False)[0],
                  static_argnums=0)
    np.testing.assert_allclose(adv(st64, a).params.V, adv(st16, b).params.V, rtol=1e-6)
    # two epochs of 16 = 8 steps of 4: every sample seen exactly twice, all from the dataset
    k_perm = jax.random.fold_in(a.k_data, 0x7FFFFFFF)
    pos = jnp.arange(32, dtype=jnp.int32)  # steps 0..7, 4 positions each
    seen = jax.jit(jax.vmap(lambda p: permute_index(jax.random.fold_in(k_perm, p // n),
                                                    p % n, jnp.asarray(n, jnp.uint32))))(pos)
    seen = np.asarray(seen).tolist()
    assert sorted(seen) == sorted(list(range(n)) * 2)
    assert seen[:16] != seen[16:]  # a fresh order each epoch


def spec_dict(**over):
    d = {"name": "t", "seeds": 2, "chunk_steps": 20,
         "base": {"log_every": 10, "task": {"N": 4, "T": 5, "Q": 2},
                  "phases": [{"steps": 40, "batch": 4, "lr_V": 0.05, "lr_A": 0.05,
                              "lam": 1e-3}]},
         "axes": {"lr": [0.02, 0.05], "batch": [2, 4], "dataset": [0, 8]}}
    for k, v in over.items():
        d[k] = v
    return d


@pytest.mark.parametrize("change, field", [
    ({"axes": {"lr": [0.1, -1.0]}}, "axes.lr"),
    ({"axes": {"lam": [float("nan")]}}, "axes.lam"),
    ({"axes": {"bogus": [1]}}, "axes.bogus"),
    ({"axes": {"batch": [0]}}, "axes.batch"),
    ({"axes": {"batch": [16], "dataset": [8]}}, "axes.dataset"),
    ({"axes": {"T": [2, 6], "Q": [3]}}, "task.Q"),
    ({"axes": {"optimizer": ["ppd", "rmsprop"]}}, "optimizer"),
    ({"axes": {"lr": 0.1}}, "axes.lr"),
    ({"seeds": 0}, "seeds"),
    ({"chunk_steps": 0}, "chunk_steps"),
    ({"colour": "red"}, "colour"),
])
def test_bad_spec_names_the_field(change, field):
    with pytest.raises(ConfigError) as e:
        spec_from_dict(spec_dict(**change))
    assert e.value.field == field or e.value.field.startswith(field + "[")


def test_grouping_static_axes_compile_once_per_shape():
    sp = spec_from_dict(spec_dict(axes={"lr": [0.02, 0.05], "lam": [0, 1e-3], "batch": [2, 4],
                                        "dataset": [0, 8, 16], "T": [5, 7],
                                        "optimizer": ["ppd", "sgd"]}))
    gs = groups(sp)
    # (ppd, sgd) x (T=5, T=7) x (online, fixed): 8 groups
    assert len(gs) == 8
    online = [g for g in gs if g.max_dataset == 0]
    fixed = [g for g in gs if g.max_dataset > 0]
    assert all(len(g.runs) == 2 * 2 * 2 * 2 for g in online)      # lr x lam x batch x seeds
    assert all(len(g.runs) == 2 * 2 * 2 * 2 * 2 for g in fixed)   # ... x 2 dataset sizes
    assert all(g.max_dataset == 16 and g.max_batch() == [4] and g.masked() == [True]
               for g in fixed)
    assert len({g.key() for g in gs}) == 8
    assert "sgd_N4_T7_Q2_fixed" in specs(sp)


def test_diverging_run_is_flagged_excluded_and_others_finish(tmp_path):
    sp = spec_from_dict(spec_dict(axes={"lr": [0.1, 1e6]}, base={
        "optimizer": "sgd", "log_every": 10, "task": {"N": 4, "T": 5, "Q": 2},
        "phases": [{"steps": 40, "batch": 4, "lr_V": 0.1, "lr_A": 0.1}]}))
    r = run_sweep(sp, tmp_path / "div", quiet=True)
    rows = r["rows"]
    bad = [x for x in rows if x["lr_V"] == 1e6]  # numbers: the saved float32's shortest decimal
    good = [x for x in rows if x["lr_V"] == 0.1]
    assert len(bad) == 2 and len(good) == 2
    assert all(0 < x["diverged_step"] <= 40 for x in bad)
    assert all(x["diverged_step"] == -1 and np.isfinite(x["excess_loss"]) for x in good)
    summ = {d["lr_V"]: d for d in r["summary"]}
    assert summ[1e6]["seeds_diverged"] == 2 and summ[1e6]["seeds_finite"] == 0
    assert np.isnan(summ[1e6]["median_excess_loss"])
    assert summ[0.1]["seeds_finite"] == 2 and np.isfinite(summ[0.1]["median_excess_loss"])
    assert len(r["warnings"]) == 2 and "diverged at step" in r["warnings"][0]
    assert "lr_V=1e+06" in r["warnings"][0]


# --- Subprocess tests: 4 forced host devices, kill and resume ---------------------------------

SPEC = """\
name = "sub"
seeds = 3
chunk_steps = {chunk}
[base]
log_every = 50
mu = "estimate"
[base.task]
N = 8
T = 16
Q = 2
[[base.phases]]
steps = {steps}
batch = 16
lr_V = 0.05
lr_A = 0.05
lam = 1e-3
[axes]
lr = [0.02, 0.05]
batch = [8, 16]
dataset = [0, 256]
"""


def write_spec(path: Path, steps: int, chunk: int) -> Path:
    path.write_text(SPEC.format(steps=steps, chunk=chunk))
    return path


def sweep_cmd(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scbjax", "sweep", str(spec), "--out", str(out)]


def env(devices: int) -> dict:
    e = dict(os.environ)
    e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    e["JAX_PLATFORMS"] = "cpu"
    return e


def group_arrays(out: Path) -> dict:
    res = {}
    for g in sorted((out / "groups").iterdir()):
        with np.load(g / "results.npz") as z:
            for k in set(z.files) - {"meta"}:  # meta: the sidecar (timings, devices)
                res[f"{g.name}/{k}"] = z[k]
    return res


def assert_same_results(a: dict, b: dict):
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # nan == nan here (batch_loss)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted one-device run of the subprocess spec."""
    d = tmp_path_factory.mktemp("ref")
    spec = write_spec(d / "spec.toml", steps=300, chunk=300)
    r = subprocess.run(sweep_cmd(spec, d / "out"), env=env(1), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return d / "out"


def test_four_devices_equal_one(reference, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", steps=300, chunk=100)
    probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.device_count())"],
                           env=env(4), capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "4"
    r = subprocess.run(sweep_cmd(spec, tmp_path / "out"), env=env(4), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_same_results(group_arrays(tmp_path / "out"), group_arrays(reference))
    assert (tmp_path / "out" / "table.csv").read_text() == \
        (reference / "table.csv").read_text()


def wait_for_checkpoint(p: subprocess.Popen, out) -> None:
    """Until the running sweep ``p`` has written its first checkpoint under ``out``."""
    wait_for_file(p, out, "groups/*/checkpoint.npz", timeout=120)


def test_killed_sweep_resumes_to_the_same_results(reference, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", steps=300, chunk=50)
    out = tmp_path / "out"
    p = subprocess.Popen(sweep_cmd(spec, out), env=env(1), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(p, out)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (out / "table.csv").exists()  # really interrupted
    r = subprocess.run(sweep_cmd(spec, out), env=env(1), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr
    assert_same_results(group_arrays(out), group_arrays(reference))
    # a third run skips every finished group
    r = subprocess.run(sweep_cmd(spec, out), env=env(1), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stderr.count("finished earlier, reused") == 2


def test_sigint_to_a_sweep_exits_130_with_one_line_and_resumes(reference, tmp_path):
    """Issue 12, item 18: SIGINT (Ctrl-C) gave a KeyboardInterrupt traceback. Now: exit 130,
    one line on stderr saying which group resumes from which step; the same command resumes
    there and ends with the arrays of an uninterrupted run."""
    spec = write_spec(tmp_path / "spec.toml", steps=300, chunk=50)
    out = tmp_path / "out"
    p = subprocess.Popen(sweep_cmd(spec, out) + ["--quiet"], env=env(1), text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_checkpoint(p, out)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("scbjax: interrupted; ") and f"{out}/groups/" in err, err
    assert "run the same command again" in err
    assert not (out / "table.csv").exists()
    r = subprocess.run(sweep_cmd(spec, out), env=env(1), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr or "finished earlier, reused" in r.stderr
    assert_same_results(group_arrays(out), group_arrays(reference))


def test_sweep_cli_end_to_end(tmp_path, capsys):
    spec = tmp_path / "s.json"
    import json

    spec.write_text(json.dumps(spec_dict()))
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "16 runs in 2 compiled groups" in text
    rows = load_table(out)
    assert len(rows) == 16  # 2 lr x 2 batch x (online + 1 dataset size) x 2 seeds
    assert {r["dataset"] for r in rows} == {"0", "8"}
    assert {r["batch"] for r in rows} == {"2", "4"}  # numbers, one column (1 phase)
    assert {r["lr_V"] for r in rows} == {"0.02", "0.05"}  # not 0.019999999552965164
    assert len({r["run_id"] for r in rows}) == 16
    for r in rows:  # samples follow each run's own batch size
        assert int(r["samples"]) == 40 * int(r["batch"])
    assert (out / "summary.csv").exists() and (out / "sweep.json").exists()
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.startswith("scbjax: error: spec:")


def test_example_spec_loads():
    from scbjax.app.sweep import load_spec

    sp = load_spec(Path(__file__).parents[2] / "examples" / "sweep.toml")
    assert len(groups(sp)) == 4


LAUNCH = """\
import sys, jax
pid, port, spec, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid)
assert jax.device_count() == 2 and jax.local_device_count() == 1
from scbjax.app.sweep import load_spec, run_sweep
run_sweep(load_spec(spec), out, quiet=True)
"""


def test_two_processes_with_jax_distributed_equal_one(tmp_path):
    """2 processes on localhost (jax.distributed, gloo CPU collectives), 1 device each: the
    runs are sharded over both processes and the results equal a 1-process run."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "mh"\nseeds = 3\nchunk_steps = 50\n[base]\nlog_every = 50\n'
                    '[base.task]\nN = 4\nT = 5\nQ = 2\n[[base.phases]]\nsteps = 100\nbatch = 4\n'
                    '[axes]\nlr = [0.02, 0.05]\n')
    launch = tmp_path / "launch.py"
    launch.write_text(LAUNCH)
    e = env(1)
    procs = [subprocess.Popen([sys.executable, str(launch), str(i), str(port), str(spec),
                               str(tmp_path / "multi")], env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    r = subprocess.run(sweep_cmd(spec, tmp_path / "single"), env=e, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert_same_results(group_arrays(tmp_path / "multi"), group_arrays(tmp_path / "single"))
