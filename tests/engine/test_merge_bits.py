"""Merged groups at realistic sizes: specs of 60, 3 and 1 runs trained separately and as one
merged group of 64 give the same bits in every array of results.npz. (XLA's CPU code for a
vmapped batch picks its summation order and its fused multiply-adds by the batch's size: the
task's construction sums in a fixed order, metrics are measured one run at a time on a CPU,
and a group has 2 runs at least; docs/findings.md §5.1.)"""

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.core import keys as keys_mod
from scbjax.core.sums import total
from scbjax.core.task import TaskConfig, make_task, solve
from scbjax.engine import group
from scbjax.engine.checkpoint import run_mesh
from scbjax.engine.executor import Log, execute
from scbjax.engine.spec import RunSpec, run
from scbjax.sim.config import Phase, TrainConfig
from scbjax.sim.step import make_stepper, measure_runs
from scbjax.util import fileio

CFG = TrainConfig(task=TaskConfig(N=16, T=64, Q=2), phases=(Phase(4, 8, 0.05, 0.05, 1e-3),),
                  log_every=2)


def _specs(cfg, sizes=(60, 3, 1)):
    out, s0 = {}, 0
    for i, R in enumerate(sizes):
        out[f"s{i}"] = RunSpec(cfg, tuple(run(s0 + j, {"seed": s0 + j}) for j in range(R)))
        s0 += R
    return out


def test_merged_groups_are_the_bits_of_separate_groups(tmp_path):
    specs = _specs(CFG)
    execute(specs, tmp_path / "sep", log=Log(quiet=True), merge=False)
    rs = execute(specs, tmp_path / "mer", log=Log(quiet=True))
    assert rs["s1"].meta["group"] == ["s0", "s1", "s2"]
    for n in specs:
        a = fileio.load_npz(tmp_path / "sep" / n / "results.npz")
        b = fileio.load_npz(tmp_path / "mer" / n / "results.npz")
        for k in a:
            if k != "meta":
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{n}: {k}")


def test_a_task_is_the_same_bits_in_any_batch():
    """One vmapped batch of 21 runs, a batch of 1, and the group's sampler (batches of
    task_chunk(R) runs, the last padded: group.sample_tasks)."""
    cfg = TaskConfig(N=8, T=16, Q=2, q_weights="dirichlet")
    run_keys = np.asarray(group.run_keys(RunSpec(CFG, tuple(run(i, {}) for i in range(21)))))
    make = jax.jit(jax.vmap(lambda k: make_task(k, cfg)))
    ref = make(jnp.asarray(np.stack([keys_mod.streams(k)[0] for k in run_keys])))
    shard = jax.sharding.NamedSharding(run_mesh(), jax.sharding.PartitionSpec("runs"))
    got = group.sample_tasks(cfg, run_keys, shard)
    assert group.task_chunk(21) == 16 and got.P.shape[0] == 21  # two calls, the last padded
    assert [group.task_chunk(R) for R in (1, 1024, 1025, 16384)] == [16, 16, 32, 256]
    one = make(jnp.asarray(keys_mod.streams(run_keys[0])[0])[None])
    for a, b, c in zip(jax.tree.leaves(got), jax.tree.leaves(ref), jax.tree.leaves(one)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(c), np.asarray(b)[:1])


def test_fixed_order_sum_and_solve_are_the_usual_ones_to_rounding():
    x = jax.random.normal(jax.random.PRNGKey(1), (37, 5))
    np.testing.assert_allclose(total(x), np.asarray(x, np.float64).sum(), rtol=1e-5)
    np.testing.assert_allclose(total(x, 1), np.asarray(x, np.float64).sum(1), rtol=1e-5,
                               atol=1e-6)
    assert total(x[:0], 0).shape == (5,) and float(total(x[:1, 0])) == float(x[0, 0])
    M = jax.random.normal(jax.random.PRNGKey(2), (9, 9))
    b = jax.random.normal(jax.random.PRNGKey(3), (9,))
    np.testing.assert_allclose(np.asarray(M, np.float64) @ np.asarray(solve(M, b)), b, atol=1e-4)


def test_measuring_one_run_at_a_time_is_the_vmapped_measure_to_rounding():
    st = make_stepper(CFG)
    state = jax.jit(jax.vmap(st.init))(jax.random.split(jax.random.PRNGKey(4), 6))
    one = jax.jit(lambda s: measure_runs(s, st.model, 2, per_run=True))(state)
    all_ = jax.jit(lambda s: measure_runs(s, st.model, 1, per_run=False))(state)
    assert set(one) == set(all_)
    for k in one:
        np.testing.assert_allclose(one[k], all_[k], rtol=1e-5, atol=1e-7, err_msg=k)
