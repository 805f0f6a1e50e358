"""Robustness: typed config fields, dict/CLI loaders, task checks, file reads, names, memory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import stat
from typing import Literal

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax import fields, fileio, resources
from scbjax.errors import ConfigError
from scbjax.task import check_tasks, stationary_np

FAST = settings(max_examples=30, deadline=None)
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


def error_of(fn) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn()
    return e.value


def field_of(fn) -> str:
    return error_of(fn).field


# --- fields.check: every kind of field -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Inner:
    x: float = fields.field(1.0, "a float")


@dataclasses.dataclass(frozen=True)
class Every:
    flag: bool = fields.field(False, "a bool")
    count: int = fields.field(3, "an int")
    rate: float = fields.field(0.5, "a float")
    kind: Literal["a", "b"] = fields.field("a", "a choice")
    label: str = fields.field("x", "a string")
    inner: Inner = fields.field(Inner(), "a nested dataclass")  # noqa: RUF009
    inners: tuple[Inner, ...] = fields.field((Inner(),), "a tuple of dataclasses")
    maybe: int | None = fields.field(None, "an optional int")


def test_defaults_pass_check():
    e = Every()
    assert fields.check(e) is e
    assert fields.check(s.TrainConfig()) == s.TrainConfig()


@FAST
@given(bad=st.one_of(st.sampled_from(["false", "no", "true", "0", ""]), st.integers(0, 1),
                     st.floats(allow_nan=False), st.none()))
def test_bool_field_takes_only_bool(bad):
    e = error_of(lambda: fields.check(Every(flag=bad)))
    assert e.field == "flag" and "true or false" in str(e)
    assert field_of(lambda: s.TrainConfig(population=bad).validate()) == "population"


@FAST
@given(bad=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.integers().map(str)))
def test_int_field_rejects_float_bool_str(bad):
    assert field_of(lambda: fields.check(Every(count=bad))) == "count"


@FAST
@given(good=st.one_of(st.integers(-10**6, 10**6), st.integers(0, 100).map(np.int64)))
def test_int_field_accepts_int_and_numpy_int(good):
    assert fields.check(Every(count=good)).count == good


@FAST
@given(bad=st.one_of(st.floats(0.01, 10).map(str), st.booleans(), st.just("0.05"), st.none()))
def test_float_field_rejects_str_and_bool(bad):
    e = error_of(lambda: fields.check(Every(rate=bad)))
    assert e.field == "rate" and "must be a number" in str(e)


@FAST
@given(x=st.floats(min_value=1e-300, max_value=F32_TINY * 0.999), sign=st.sampled_from([1, -1]))
def test_float_underflow_rejected(x, sign):
    e = error_of(lambda: fields.check(Every(rate=sign * x)))
    assert e.field == "rate" and "underflows float32" in str(e)


@FAST
@given(x=st.floats(min_value=F32_MAX * 1.001, max_value=1e308), sign=st.sampled_from([1, -1]))
def test_float_overflow_rejected(x, sign):
    e = error_of(lambda: fields.check(Every(rate=sign * x)))
    assert e.field == "rate" and "overflows float32" in str(e)


def test_float_edge_values():
    for bad, word in [(1e-50, "underflows"), (1e39, "overflows"), (10**400, "overflows"),
                      (math.nan, "finite"), (math.inf, "finite"), (-math.inf, "finite")]:
        assert word in str(error_of(lambda b=bad: fields.check(Every(rate=b))))
    for good in (0.0, -0.0, F32_TINY, -F32_TINY, F32_MAX, 7, np.float32(0.25), np.int32(2)):
        assert fields.check(Every(rate=good)).rate == good
    # the same rules on the real configs, with the field's full name
    assert field_of(lambda: s.TrainConfig(task=s.TaskConfig(alpha=1e-50)).validate()) \
        == "task.alpha"
    assert field_of(lambda: s.TrainConfig(phases=(s.Phase(5, lr_V=1e39),)).validate()) \
        == "phases[0].lr_V"
    assert field_of(lambda: s.TrainConfig(mu_prior=True).validate()) == "mu_prior"


@FAST
@given(bad=st.one_of(st.text().filter(lambda t: t not in ("a", "b")), st.booleans(),
                     st.integers()))
def test_literal_field_takes_only_listed_values(bad):
    e = error_of(lambda: fields.check(Every(kind=bad)))
    assert e.field == "kind" and "'a', 'b'" in str(e)


def test_literal_on_train_config_lists_choices():
    e = error_of(lambda: s.TrainConfig(optimizer="lbfgs").validate())
    assert e.field == "optimizer" and "'ppd', 'sgd', 'adam'" in str(e)
    assert field_of(lambda: s.TrainConfig(task=s.TaskConfig(q_weights="flat")).validate()) \
        == "task.q_weights"


def test_str_field():
    assert field_of(lambda: fields.check(Every(label=3))) == "label"


def test_tuple_field_given_a_single_dataclass():
    e = error_of(lambda: s.TrainConfig(phases=s.Phase(10)).validate())
    assert e.field == "phases" and str(e) == "phases: must be a tuple of Phase, got Phase"
    assert field_of(lambda: s.TrainConfig(phases=[s.Phase(10)]).validate()) == "phases"
    assert field_of(lambda: fields.check(Every(inners=Inner()))) == "inners"


def test_tuple_entries_checked_by_index():
    ph = (s.Phase(10), s.Phase(10, batch=2.0))
    assert field_of(lambda: s.TrainConfig(phases=ph).validate()) == "phases[1].batch"
    assert field_of(lambda: s.TrainConfig(phases=(s.Phase(10), "x")).validate()) == "phases[1]"
    assert field_of(lambda: fields.check(Every(inners=(Inner(), Inner(x="1"))))) \
        == "inners[1].x"


def test_nested_dataclass_given_a_dict():
    e = error_of(lambda: s.TrainConfig(task={"N": 4}).validate())
    assert e.field == "task" and str(e) == "task: must be a TaskConfig, got dict"
    assert field_of(lambda: fields.check(Every(inner={"x": 1.0}))) == "inner"
    assert field_of(lambda: fields.check(Every(inner=Inner(x=True)))) == "inner.x"


def test_optional_field():
    assert fields.check(Every(maybe=None)).maybe is None
    assert fields.check(Every(maybe=4)).maybe == 4
    assert field_of(lambda: fields.check(Every(maybe="4"))) == "maybe"


def test_check_prefixes_where():
    assert field_of(lambda: fields.check(Every(count=1.5), "spec.every")) == "spec.every.count"


# --- make_task and the task checks -----------------------------------------------------------


def test_make_task_type_checks_its_config():
    key = jax.random.PRNGKey(0)
    assert field_of(lambda: s.make_task(key, s.TaskConfig(alpha="1"))) == "task.alpha"
    assert field_of(lambda: s.make_task(key, s.TaskConfig(N=6.0))) == "task.N"
    assert field_of(lambda: s.make_task(key, {"N": 6})) == "task"


def test_check_tasks_flags_zero_mu_and_names_the_run():
    P = np.full((3, 3), 1 / 3)
    q = np.zeros((2, 3))
    q[0] = 1.0
    good = s.Task(P=P, mu=np.full(3, 1 / 3), q=q)
    check_tasks(good)  # passes
    P_bad = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    bad = s.Task(P=P_bad, mu=np.array([1.0, 0.0, 0.0]), q=q)
    e = error_of(lambda: check_tasks(bad))
    assert e.field == "task" and "mu has a zero entry" in str(e) and "raise mix or alpha" in str(e)
    batch = jax.tree.map(lambda *x: np.stack(x), good, good, good, bad, good)
    e = error_of(lambda: check_tasks(batch, where="base.task"))
    assert e.field == "base.task" and "in run 3" in str(e)


def test_check_tasks_flags_nan_and_non_stationary_mu():
    P = np.full((3, 3), 1 / 3)
    q = np.full((2, 3), 0.5)
    nanP = P.copy()
    nanP[1, 2] = np.nan
    assert "P has NaN" in str(error_of(lambda: check_tasks(s.Task(P=nanP, mu=np.full(3, 1 / 3),
                                                                  q=q))))
    nanq = q.copy()
    nanq[0, 0] = np.inf
    assert "raise beta" in str(error_of(lambda: check_tasks(s.Task(P=P, mu=np.full(3, 1 / 3),
                                                                   q=nanq))))
    P2 = np.array([[0.9, 0.5, 0.2], [0.05, 0.3, 0.3], [0.05, 0.2, 0.5]])
    wrong = s.Task(P=P2, mu=np.full(3, 1 / 3), q=q)  # positive but not stationary
    assert "not stationary" in str(error_of(lambda: check_tasks(wrong)))


def test_generated_tasks_without_mix_flagged_with_mix_accepted():
    """mix = 0, alpha = 0.01: the float32 Dirichlet columns are nearly one-hot, most chains are
    reducible and some token gets mu = 0. check_tasks flags exactly the runs whose mu has a zero
    (or is not stationary); the same keys with the default mix = 0.1 all pass."""
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    cfg = s.TaskConfig(N=6, T=8, Q=2, alpha=0.01, mix=0.0)
    tasks = jax.jit(jax.vmap(lambda k: s.make_task(k, cfg)))(keys)
    flagged = []
    for i in range(16):
        one = jax.tree.map(lambda x, i=i: np.asarray(x[i]), tasks)
        try:
            check_tasks(one)
        except ConfigError as e:
            assert "raise mix or alpha" in str(e)
            flagged.append(i)
        else:
            assert one.mu.min() > 1e-12
            np.testing.assert_allclose(one.P @ one.mu, one.mu, atol=1e-3)
    mu = np.asarray(tasks.mu)
    zero = [i for i in range(16) if mu[i].min() <= 1e-12]
    assert zero and set(zero) <= set(flagged)
    e = error_of(lambda: check_tasks(tasks))
    assert f"in run {flagged[0]}" in str(e) and f"{len(flagged)} of 16 runs bad" in str(e)
    ok = jax.jit(jax.vmap(lambda k: s.make_task(k, dataclasses.replace(cfg, mix=0.1))))(keys)
    check_tasks(ok)


@FAST
@given(N=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_task_from_arrays_computes_stationary_mu(N, seed):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(N), size=N).T
    q = np.zeros((3, N))
    q[0] = 1.0
    t = s.task_from_arrays(P, q)
    mu = np.asarray(t.mu, np.float64)
    np.testing.assert_allclose(P @ mu, mu, atol=1e-5)
    np.testing.assert_allclose(mu.sum(), 1.0, atol=1e-5)
    assert np.all(mu > 0)


def test_task_from_arrays_periodic_and_identity_chains_no_nan():
    q = np.zeros((2, 2))
    q[0] = 1.0
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # periodic: power iteration would not converge
    np.testing.assert_allclose(s.task_from_arrays(swap, q).mu, [0.5, 0.5], atol=1e-6)
    ident = np.eye(2)  # every distribution is stationary: singular system, no NaN
    mu = stationary_np(ident)
    assert np.all(np.isfinite(mu)) and np.isclose(mu.sum(), 1.0)
    np.testing.assert_allclose(ident @ mu, mu)
    P = np.array([[1.0, 1.0], [0.0, 0.0]])  # token 1 unreachable: mu = (1, 0), refused
    e = error_of(lambda: s.task_from_arrays(P, q))
    assert e.field == "mu" and "NaN" not in str(e)


# --- from_dict / to_dict ---------------------------------------------------------------------


unit = st.one_of(st.just(0.0), st.floats(1e-6, 1.0))  # no float32 underflow
configs = st.builds(
    s.TrainConfig,
    task=st.builds(s.TaskConfig, N=st.integers(2, 50), T=st.integers(4, 50),
                   Q=st.integers(1, 4), alpha=st.floats(0.01, 10), mix=unit,
                   q_weights=st.sampled_from(["uniform", "dirichlet"])),
    phases=st.lists(st.builds(s.Phase, steps=st.integers(1, 10**6), batch=st.integers(1, 4096),
                              lr_V=st.floats(1e-6, 10), lr_A=st.floats(1e-6, 10),
                              lam=unit), min_size=1, max_size=4).map(tuple),
    optimizer=st.sampled_from(["ppd", "sgd", "adam"]), population=st.booleans(),
    log_every=st.integers(1, 1000))


@FAST
@given(cfg=configs)
def test_from_dict_round_trips_through_json(cfg):
    d = json.loads(json.dumps(fields.to_dict(cfg)))
    assert isinstance(d["phases"], list) and isinstance(d["task"], dict)
    back = fields.from_dict(s.TrainConfig, d)
    assert back == cfg and isinstance(back.phases, tuple)


def test_from_dict_errors_name_the_key_path():
    d = fields.to_dict(s.TrainConfig())
    d["phases"][0]["lr_V"] = "0.05"
    e = error_of(lambda: fields.from_dict(s.TrainConfig, d))
    assert e.field == "phases[0].lr_V" and "must be a number" in str(e)
    d["phases"][0]["lr_V"] = 0.05
    d["phases"][0]["colour"] = "red"
    e = error_of(lambda: fields.from_dict(s.TrainConfig, d, "base"))
    assert e.field == "base.phases[0].colour" and "known: batch, lam, lr_A, lr_V, steps" in str(e)
    assert field_of(lambda: fields.from_dict(s.TrainConfig, {"task": {"N": "8"}}, "base")) \
        == "base.task.N"
    assert field_of(lambda: fields.from_dict(s.TrainConfig, {"task": [8]})) == "task"
    assert field_of(lambda: fields.from_dict(s.TrainConfig, {"phases": {"steps": 3}})) \
        == "phases"
    assert field_of(lambda: fields.from_dict(s.TrainConfig, {"phases": [{"batch": 3}]})) \
        == "phases[0].steps"
    assert field_of(lambda: fields.from_dict(s.TrainConfig, {"population": "false"})) \
        == "population"


def test_from_dict_ints_for_floats_become_floats():
    cfg = fields.from_dict(s.TrainConfig, {"phases": [{"steps": 3, "lr_V": 1}],
                                           "task": {"alpha": 2}})
    assert type(cfg.phases[0].lr_V) is float and type(cfg.task.alpha) is float
    assert field_of(lambda: fields.from_dict(s.TaskConfig, {"alpha": 10**400})) == "alpha"


def test_train_config_type_errors():
    assert field_of(lambda: s.TrainConfig(population="no").validate()) == "population"
    assert field_of(lambda: s.TrainConfig(phases=s.Phase(10)).validate()) == "phases"
    assert field_of(lambda: s.TrainConfig(task={"N": 8}).validate()) == "task"
    assert field_of(lambda: s.TrainConfig(phases=(s.Phase(2**31),)).validate()) == "phases"


# --- help and argparse -----------------------------------------------------------------------


def test_every_config_field_has_help():
    for cls in (s.TaskConfig, s.Phase, s.TrainConfig):
        for f in dataclasses.fields(cls):
            assert fields.help_of(cls, f.name), f"{cls.__name__}.{f.name} has no help"
    assert "vocabulary" in fields.help_of(s.TaskConfig, "N")
    with pytest.raises(KeyError):
        fields.help_of(s.TaskConfig, "nope")


def test_add_arguments_derives_options():
    p = argparse.ArgumentParser(exit_on_error=False)
    added = fields.add_arguments(p, s.TrainConfig, skip=("init_scale",))
    assert "task" not in added and "phases" not in added and "init_scale" not in added
    fields.add_arguments(p, s.Phase, defaults={"steps": 2000})
    fields.add_arguments(p, s.TaskConfig)
    a = p.parse_args(["--lr-V", "0.5", "--log-every", "7", "--projection-V", "simplex",
                      "--population", "--q-weights", "dirichlet", "--N", "5"])
    train = fields.values_from_args(a, s.TrainConfig)
    assert train["log_every"] == 7 and train["projection_V"] == "simplex"
    assert train["population"] is True and "init_scale" not in train
    phase = fields.values_from_args(a, s.Phase)
    assert phase == {"steps": 2000, "batch": 8, "lr_V": 0.5, "lr_A": 0.01, "lam": 0.0}
    task = fields.values_from_args(a, s.TaskConfig)
    assert task["N"] == 5 and task["q_weights"] == "dirichlet"
    cfg = s.TrainConfig(task=s.TaskConfig(**task), phases=(s.Phase(**phase),), **train)
    assert cfg.validate().phases[0].lr_V == 0.5
    assert fields.values_from_args(p.parse_args(["--no-population"]), s.TrainConfig)[
        "population"] is False


@pytest.mark.parametrize("argv", [["--N", "1.5"], ["--lr-V", "fast"], ["--optimizer", "lbfgs"],
                                  ["--population", "yes"]])
def test_add_arguments_bad_values_exit_2(argv, capsys):
    p = argparse.ArgumentParser()
    for cls in (s.TrainConfig, s.TaskConfig, s.Phase):
        fields.add_arguments(p, cls)
    with pytest.raises(SystemExit) as e:
        p.parse_args(argv)
    assert e.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_add_arguments_prefix():
    p = argparse.ArgumentParser()
    fields.add_arguments(p, s.TaskConfig, prefix="task-")
    a = p.parse_args(["--task-N", "12", "--task-q-weights", "dirichlet"])
    assert fields.values_from_args(a, s.TaskConfig, prefix="task-")["N"] == 12
    assert a.task_q_weights == "dirichlet"


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../x", "", "a/b", "..", ".", "a b", "x\\y", "é", None, 3])
def test_check_name_rejects(bad):
    assert field_of(lambda: fields.check_name(bad, "name")) == "name"


@FAST
@given(name=st.from_regex(r"[A-Za-z0-9._=+-]{1,40}", fullmatch=True).filter(
    lambda t: t not in (".", "..")))
def test_check_name_accepts_safe_names(name):
    assert fields.check_name(name, "name") == name


def test_check_name_examples():
    assert fields.check_name("sweep_1.a", "name") == "sweep_1.a"
    assert fields.check_name("lr=0.05+b-2", "name") == "lr=0.05+b-2"


# --- files -----------------------------------------------------------------------------------


def test_atomic_write_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = fileio.atomic_write(tmp_path / "sub" / "a.npz", lambda f: np.savez(f, x=np.ones(3)))
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.umask(0o027)
        t = fileio.atomic_write_text(tmp_path / "b.json", "{}")
        assert stat.S_IMODE(t.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    np.testing.assert_array_equal(fileio.load_npz(p)["x"], np.ones(3))
    assert fileio.load_json(t) == {}
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []  # no temp left


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = fileio.atomic_write_text(tmp_path / "a.txt", "old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fileio.atomic_write(p, boom)
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


@FAST
@given(frac=st.floats(0.0, 0.99))
def test_truncated_npz_names_the_path(tmp_path_factory, frac):
    d = tmp_path_factory.mktemp("npz")
    good = d / "good.npz"
    np.savez(good, a=np.arange(100), b=np.ones((4, 4)))
    data = good.read_bytes()
    bad = d / "bad.npz"
    bad.write_bytes(data[: int(frac * len(data))])
    e = error_of(lambda: fileio.load_npz(bad))
    assert e.field == str(bad) and "\n" not in str(e)


def test_corrupt_and_missing_npz(tmp_path):
    p = tmp_path / "c.npz"
    np.savez_compressed(p, x=np.random.default_rng(0).random(5000))
    b = bytearray(p.read_bytes())
    b[1000:1100] = bytes(100)
    p.write_bytes(bytes(b))
    assert field_of(lambda: fileio.load_npz(p)) == str(p)
    np.save(tmp_path / "a.npy", np.arange(3))
    assert "not an .npz" in str(error_of(lambda: fileio.load_npz(tmp_path / "a.npy")))
    e = error_of(lambda: fileio.load_npz(tmp_path / "missing.npz"))
    assert e.field == str(tmp_path / "missing.npz") and "no such file" in str(e)


def test_json_errors_name_the_path(tmp_path):
    cases = {"bad.json": b'{"a": 1,', "latin.json": b'{"a": "caf\xe9"}', "empty.json": b" \n"}
    words = {"bad.json": "not valid JSON", "latin.json": "not UTF-8",
             "empty.json": "empty file"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        e = error_of(lambda n=name: fileio.load_json(tmp_path / n))
        assert e.field == str(tmp_path / name) and words[name] in str(e)
    e = error_of(lambda: fileio.load_json(tmp_path / "nope.json"))
    assert e.field == str(tmp_path / "nope.json") and "no such file" in str(e)


def test_read_text_for_specs(tmp_path):
    p = tmp_path / "spec.toml"
    p.write_bytes(b"name = '\xff'")
    e = error_of(lambda: fileio.read_text(p, "spec"))
    assert e.field == "spec" and str(p) in str(e) and "not UTF-8" in str(e)
    p.write_text("")
    assert "empty file" in str(error_of(lambda: fileio.read_text(p)))
    p.write_text("name = 'x'\n")
    assert fileio.read_text(p, "spec") == "name = 'x'\n"


def test_load_runs_damaged_files_are_config_errors(tmp_path):
    """A spec directory with a truncated results.npz, invalid run.json, or a run.json of
    another format: one ConfigError naming the file."""
    from scbjax.executor import Log, run_spec
    from scbjax.runs import RunSpec, grid
    from scbjax.store import load_runs

    cfg = s.TrainConfig(task=s.TaskConfig(N=3, T=4, Q=1), phases=(s.Phase(4, 2),), log_every=2)
    d = tmp_path / "r"
    run_spec("r", RunSpec(cfg, grid(range(2))), d, log=Log(quiet=True))
    assert len(load_runs(d)) == 2
    raw = (d / "results.npz").read_bytes()
    (d / "results.npz").write_bytes(raw[: len(raw) // 2])
    assert field_of(lambda: load_runs(d)) == str(d / "results.npz")
    (d / "results.npz").write_bytes(raw)
    (d / "run.json").write_text("{")
    assert field_of(lambda: load_runs(d)) == str(d / "run.json")
    (d / "run.json").write_text('{"config": {}}')
    assert field_of(lambda: load_runs(d)) == str(d / "run.json")


# --- memory ----------------------------------------------------------------------------------


def canonical(N=16, T=64, batch=8):
    return s.TrainConfig(task=s.TaskConfig(N=N, T=T, Q=2), phases=(s.Phase(500, batch=batch),))


def test_check_fits_refuses_huge_vocabulary():
    cfg = s.TrainConfig(task=s.TaskConfig(N=100000))
    e = error_of(lambda: resources.check_fits(cfg, 1))
    assert e.field == "task.N" and "estimate" in str(e) and "available" in str(e)
    assert resources.estimate_bytes(cfg, 1) > 4 * 100000**2  # V alone is 40 GB


def test_check_fits_accepts_canonical_256_runs():
    est = resources.check_fits(canonical(), 256)
    assert 0 < est < 1e9


def test_estimate_scales_and_uses_available():
    cfg = canonical()
    one = resources.estimate_bytes(cfg, 1)
    assert resources.estimate_bytes(cfg, 10) == 10 * one
    assert resources.estimate_bytes(canonical(batch=64), 1) > one
    assert resources.estimate_bytes(cfg, 1, max_dataset=10000) > one
    assert resources.estimate_bytes(dataclasses.replace(cfg, optimizer="adam"), 1) > one
    resources.check_fits(cfg, 4, available=4 * one)
    e = error_of(lambda: resources.check_fits(cfg, 5, available=4 * one, where="runs"))
    assert e.field == "runs"
    avail = resources.available_bytes()
    assert avail is None or avail > 0
