"""Merged groups: specs of one compiled program run as one vmapped call, and each spec's
results are the bits of its own group (every array of results.npz), straight through and
killed after the first chunk and resumed (at realistic sizes:
tests/engine/test_merge_bits.py)."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import interrupt_after_saves

from scbjax.core.task import TaskConfig, make_task
from scbjax.engine import merge
from scbjax.engine.executor import Log, execute
from scbjax.engine.results import result_bytes
from scbjax.engine.spec import RunSpec, grid, run
from scbjax.engine.store import META, load_runs
from scbjax.sim.config import Phase, TrainConfig
from scbjax.util import fileio

CFG = TrainConfig(task=TaskConfig(N=4, T=6, Q=2),
                  phases=(Phase(16, 4, 0.05, 0.05, 1e-3),), log_every=4)
QUIET = Log(quiet=True)


def _task(seed: int):
    t = make_task(jax.random.PRNGKey(seed), CFG.task)
    return jax.tree.map(lambda x: np.asarray(x)[None].repeat(2, 0), t)


def _runs(arm, seeds, **kw):  # every spec's largest batch is 4, masked
    return (run(seeds[0], {"arm": arm, "seed": seeds[0]}, **kw),
            *(run(x, {"arm": arm, "seed": x}, batch=2 + x % 2, **kw)
              for x in seeds[1:]))


SPECS = {  # they merge: they differ in Q, seeds, lam, lr, batches, given tasks
    "a": RunSpec(CFG, _runs("a", (0, 1, 2)), chunk_steps=8),
    "b": RunSpec(dataclasses.replace(CFG, task=TaskConfig(N=4, T=6, Q=1)),
                 _runs("b", (5, 6), lam=0.01), chunk_steps=8),
    "c": RunSpec(CFG, _runs("c", (7, 8), lr=0.03), tasks=_task(3), chunk_steps=8),
}
OTHER = RunSpec(dataclasses.replace(CFG, phases=(Phase(12, 4), Phase(4, 8))), grid(range(2)))


def _arrays(d):
    return {n: fileio.load_npz(d / n / "results.npz") for n in SPECS}


def _equal(got, ref):
    for n in SPECS:
        assert set(got[n]) == set(ref[n])
        for k in ref[n]:
            if k != META:
                np.testing.assert_array_equal(got[n][k], ref[n][k], err_msg=f"{n}: {k}")


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
    d = tmp_path_factory.mktemp("separate")
    execute(SPECS, d, log=QUIET, merge=False)
    return _arrays(d)


def test_compile_key_and_groups():
    with_d = {**dict(list(SPECS.items())[:2]), "d": OTHER, "c": SPECS["c"]}
    assert merge.groups(with_d) == [["a", "b", "c"], ["d"]]
    k = merge.compile_key(SPECS["a"])
    for other in (dataclasses.replace(CFG, task=TaskConfig(N=5, T=6)),
                  dataclasses.replace(CFG, log_every=2), dataclasses.replace(CFG, optimizer="sgd")):
        assert merge.compile_key(RunSpec(other, SPECS["a"].runs, chunk_steps=8)) != k
    assert merge.compile_key(RunSpec(CFG, grid(range(3)), chunk_steps=8)) != k  # no mask
    assert merge.groups(with_d, fits=lambda spec, runs: runs <= 5) == [["a", "b"], ["d"], ["c"]]
    fn = {"a": SPECS["a"], "c": dataclasses.replace(SPECS["c"], tasks=lambda rs: _task(3))}
    assert merge.groups(fn) == [["a"], ["c"]]  # a function is never run before its turn...
    assert merge.groups(dict(reversed(fn.items()))) == [["c", "a"]]  # ...and heads a group


def test_merged_results_are_the_bits_of_separate_groups(separate, tmp_path):
    rs = execute(SPECS, tmp_path, log=QUIET)
    assert list(rs) == list(SPECS)
    _equal(_arrays(tmp_path), separate)
    assert load_runs(tmp_path / "b").meta["group"] == ["a", "b", "c"]
    one = execute({"d": OTHER}, tmp_path / "one", log=QUIET)
    assert "group" not in one["d"].meta
    for n, spec in SPECS.items():  # the plan's size of the results is the written size
        assert result_bytes(spec) == sum(v.nbytes for k, v in _arrays(tmp_path)[n].items()
                                         if k != META)
    again = execute(SPECS, tmp_path, log=QUIET)  # reused, not rerun
    np.testing.assert_array_equal(again["c"]["params/A"], rs["c"]["params/A"])


@pytest.mark.parametrize("after", [3, 1])  # every member's checkpoint written; only a's
def test_a_merged_group_killed_after_its_first_chunk_resumes_to_the_same_bits(
        separate, tmp_path, monkeypatch, capsys, after):
    interrupt_after_saves(monkeypatch, lambda: execute(SPECS, tmp_path, log=QUIET), after)
    held = [n for n in SPECS if (tmp_path / n / "checkpoint.npz").exists()]
    assert held == ["a", "b", "c"][:after]
    z = fileio.load_npz(tmp_path / "b" / "checkpoint.npz") if after == 3 else None
    assert z is None or z["state/.params.V"].shape[0] == 2  # b's own runs
    execute(SPECS, tmp_path, log=Log())
    err = capsys.readouterr().err
    assert all(f"resumed from {tmp_path / n / 'checkpoint.npz'}" in err for n in held), err
    _equal(_arrays(tmp_path), separate)
    assert not any((tmp_path / n / "checkpoint.npz").exists() for n in SPECS)


def test_a_signal_during_a_checkpoint_takes_effect_after_it():
    """The checkpoint and the step an interrupt reports are written together (a SIGINT between
    them reported the step before the checkpoint's)."""
    import os
    import signal

    from scbjax.engine.group import _signals_held
    done = []
    with pytest.raises(KeyboardInterrupt):
        with _signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("checkpoint")  # not interrupted inside the block
            done.append("step")
    assert done == ["checkpoint", "step"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_concurrent_groups_are_the_bits_of_one_at_a_time(separate, tmp_path, monkeypatch):
    """Groups on threads (``workers``): every array of every spec as run one group at a time;
    a spec with an input function waits for the groups before it (its RunSet); an interrupt
    in one group stops the others at their next checkpoint, and the rerun resumes."""
    from scbjax.engine.executor import concurrent_groups
    specs = {**SPECS, "d": OTHER,
             "e": RunSpec(CFG, grid(range(2)), tasks=lambda rs: _task(int(rs["d"]["seeds"][1])))}
    execute(specs, tmp_path / "one", log=QUIET, merge=False, workers=1)
    ref = {n: fileio.load_npz(tmp_path / "one" / n / "results.npz") for n in specs}
    rs = execute(specs, tmp_path / "many", log=QUIET, merge=False, workers=3)
    assert list(rs) == list(specs)
    for n in specs:
        got = fileio.load_npz(tmp_path / "many" / n / "results.npz")
        for k in ref[n]:
            if k != META:
                np.testing.assert_array_equal(got[k], ref[n][k], err_msg=f"{n}: {k}")
    _equal(_arrays(tmp_path / "many"), separate)
    from scbjax.engine.executor import AUTO_WORKERS
    auto = 1 if jax.devices()[0].platform == "cpu" else min(AUTO_WORKERS, 5)
    assert concurrent_groups(8, 3) == 3 and concurrent_groups(None, 5) == auto
    interrupt_after_saves(monkeypatch, lambda: execute(
        specs, tmp_path / "cut", log=QUIET, merge=False, workers=3), 2)
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "e" / "results.npz").exists()  # it waits for the others
    execute(specs, tmp_path / "cut", log=QUIET, merge=False, workers=3)
    for n in specs:
        got = fileio.load_npz(tmp_path / "cut" / n / "results.npz")
        np.testing.assert_array_equal(got["params/V"], ref[n]["params/V"], err_msg=n)
