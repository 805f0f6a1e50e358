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
from scbjax.util import fields
from scbjax.util import fileio
from scbjax.engine import resources
from scbjax.engine.spec import check_name
from scbjax.util.errors import ConfigError
from scbjax.core.task import check_tasks, stationary_np
from conftest import wait_for_file

FAST = settings(max_examples=25, deadline=None)
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
    assert field_of(lambda: s.make_task(key, alpha="1")) == "task.alpha"
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
    (or is not stationary); the same draws mixed with 0.1 of the uniform matrix all pass."""
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
    # mixing in the uniform matrix (TaskConfig.mix, here 0.1) makes every chain acceptable
    P = 0.9 * np.asarray(tasks.P, np.float64) + 0.1 / 6
    mu = np.stack([stationary_np(p) for p in P])
    check_tasks(s.Task(P=P, mu=mu, q=np.asarray(tasks.q)))


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
    assert e.field == "base.phases[0].colour" and "known: batch, freeze, lam, lr_A, lr_V, steps" in str(e)
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
    assert phase == {"steps": 2000, "batch": 8, "lr_V": 0.5, "lr_A": 0.01, "lam": 0.0,
                     "freeze": False}
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
    assert field_of(lambda: check_name(bad, "name")) == "name"


@FAST
@given(name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,39}", fullmatch=True))
def test_check_name_accepts_safe_names(name):
    assert check_name(name, "name") == name


def test_check_name_examples():
    assert check_name("sweep_1.a", "name") == "sweep_1.a"
    assert check_name("lr=0.05+b-2", "name") == "lr=0.05+b-2"


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


def test_load_runs_damaged_files_are_config_errors(trained, tmp_path):
    """A spec directory with a truncated results.npz, invalid run.json, or a run.json of
    another format: one ConfigError naming the file."""
    from scbjax.engine.store import load_runs

    d = copy_of(trained, tmp_path)
    assert len(load_runs(d)) == 2
    raw = (d / "results.npz").read_bytes()
    (d / "results.npz").write_bytes(raw[: len(raw) // 2])
    assert field_of(lambda: load_runs(d)) == str(d / "results.npz")
    (d / "results.npz").write_bytes(raw)
    for text in ("{", '{"config": {}}', "[1, 2]", "3"):
        (d / "run.json").write_text(text)
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


# --- a trained `scbjax train` output, shared (one compile) ----------------------------------

TRAIN_ARGS = ["train", "--N", "3", "--T", "4", "--Q", "1", "--steps", "4", "--batch", "2",
              "--log-every", "2", "--seeds", "2", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``scbjax train`` of a tiny config, run under umask 027 (its files must be 0640)."""
    from scbjax.app.cli import main

    d = tmp_path_factory.mktemp("trained") / "run"
    old = os.umask(0o027)
    try:
        assert main([*TRAIN_ARGS, "--out", str(d)]) == 0
    finally:
        os.umask(old)
    return d


def copy_of(d, tmp_path):
    import shutil

    return shutil.copytree(d, tmp_path / d.name)


def test_cli_output_files_follow_the_umask(trained):
    """minor: results were created 0600 whatever the umask; now 0666 & ~umask."""
    for f in ("results.npz", "run.json"):
        assert stat.S_IMODE((trained / f).stat().st_mode) == 0o640, f


def test_truncated_or_deleted_results_are_named_and_recomputed(trained, tmp_path, capsys):
    """(12, 13) a finished spec whose results.npz was truncated (a kill during a copy) or
    deleted: the rerun names the file and recomputes the spec (stopped here as it starts; a
    recomputed spec equals the first run: test_engine) instead of a BadZipFile /
    FileNotFoundError on every rerun; until then the damaged files stay as they were."""
    from scbjax.engine import executor, group
    from scbjax.app.cli import main

    d = copy_of(trained, tmp_path)
    raw = (d / "results.npz").read_bytes()

    def started(*a, **k):
        raise KeyboardInterrupt

    for damage, said in [(lambda: (d / "results.npz").write_bytes(raw[:3000]),
                          "cannot read: not a valid .npz file, truncated or corrupt"),
                         (lambda: (d / "results.npz").unlink(), "no such file")]:
        damage()
        before = snapshot(d)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(group, "make_stepper", started)
            assert main([*TRAIN_ARGS[:-1], "--out", str(d)]) == 130
        err = capsys.readouterr().err
        assert f"[train] {d / 'results.npz'}: {said}" in err and "recomputing" in err, err
        assert "Traceback" not in err and snapshot(d) == before


def test_overwrite_removes_nothing_before_the_new_run_finishes(trained, tmp_path, capsys):
    """(4) another configuration in --out is refused (see the CLI walk); with --overwrite the
    old results stay until the new run has finished and writes its own (atomically), so a bad
    or interrupted --overwrite run loses nothing."""
    from scbjax.app.cli import main
    from scbjax.engine.store import load_runs

    d = copy_of(trained, tmp_path)
    before = snapshot(d)
    other = [*TRAIN_ARGS, "--T", "5", "--out", str(d)]
    assert main(other) == 2
    assert "holds other results" in capsys.readouterr().err
    other.append("--overwrite")
    from scbjax.engine import executor, group

    def started(*a, **k):  # the new run starts: the old results are all still there (and the
        now = snapshot(d)  # lock of this run)
        assert now.pop(".scbjax.lock")[1] == f"{os.getpid()}\n".encode() and now == before
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as m:
        m.setattr(group, "make_stepper", started)
        assert main(other) == 130
    assert snapshot(d) == before and load_runs(d).config.task.T == 4


def test_stale_spec_directories_are_not_read(trained, tmp_path):
    """(1) the analysis reads the specs it names, by hash, never every directory present: a
    stale sibling (another mode's T32.. beside tiny's T8) is ignored."""
    from scbjax.engine import executor, group
    from scbjax.engine.spec import RunSpec, grid

    cfg = s.TrainConfig(task=s.TaskConfig(N=3, T=4, Q=1), phases=(s.Phase(4, 2),), log_every=2)
    spec = RunSpec(cfg, grid(range(2)))
    copy_of(trained, tmp_path)
    import shutil

    shutil.copytree(tmp_path / "run", tmp_path / "T256")
    rs = executor.load({"run": spec}, tmp_path)
    assert list(rs) == ["run"]
    other = RunSpec(dataclasses.replace(cfg, log_every=1), grid(range(2)))  # same dir, new hash
    e = error_of(lambda: executor.load({"run": other}, tmp_path))
    assert e.field == str(tmp_path / "run") and "holds other runs" in str(e)


def test_partial_claims_check_leaves_claims_json(tmp_path, monkeypatch):
    """(8) `plot --only population` used to rewrite claims.json with 2 of the 12 claims; a
    partial check now leaves it alone, a complete one writes it."""
    from scbjax.app import reproduce

    (tmp_path / reproduce.CLAIMS_FILE).write_text("[12 claims]")
    monkeypatch.setattr(reproduce, "load_results", lambda name, mode, out: None)
    for name in reproduce.STUDIES:
        st = reproduce.load_study(name)
        monkeypatch.setattr(st, "claims", lambda rs, setup, n=name: [
            reproduce.Claim(n, n, "1", "> 0", True)])
    got = reproduce.check_claims(tmp_path, ["population"], mode="tiny")
    assert [c.study for c in got] == ["population"]
    assert (tmp_path / reproduce.CLAIMS_FILE).read_text() == "[12 claims]"
    reproduce.check_claims(tmp_path, None, mode="tiny")
    assert len(json.loads((tmp_path / reproduce.CLAIMS_FILE).read_text())) == \
        len(reproduce.STUDIES)


def test_executor_refuses_what_cannot_fit_before_compiling(tmp_path, monkeypatch):
    """(16) every job (train, sweep, each study of reproduce) goes through run_spec, which
    checks the memory estimate before compiling anything."""
    from scbjax.engine import executor, group
    from scbjax.engine.spec import RunSpec, grid

    monkeypatch.setattr(group, "make_stepper", lambda *a, **k: pytest.fail("compiled"))
    cfg = s.TrainConfig(task=s.TaskConfig(N=100000))
    e = error_of(lambda: executor.run_spec("big", RunSpec(cfg, grid(range(2))), tmp_path / "b"))
    assert e.field == "big" and "estimate" in str(e) and "N=100000" in str(e)
    assert not (tmp_path / "b").exists()


# --- property tests over classes of values ----------------------------------------------------

NUMERIC_SPEC_FIELDS = {  # path in a sweep spec -> how to set it in a dict
    "base.task.N": ("base", "task", "N"), "base.task.alpha": ("base", "task", "alpha"),
    "base.task.mix": ("base", "task", "mix"), "base.task.beta": ("base", "task", "beta"),
    "base.phases[0].steps": ("base", "phases", 0, "steps"),
    "base.phases[0].batch": ("base", "phases", 0, "batch"),
    "base.phases[0].lr_V": ("base", "phases", 0, "lr_V"),
    "base.phases[0].lam": ("base", "phases", 0, "lam"),
    "base.log_every": ("base", "log_every"), "base.mu_prior": ("base", "mu_prior"),
    "base.init_scale": ("base", "init_scale"), "chunk_steps": ("chunk_steps",),
    "axes.lr[0]": ("axes", "lr", 0), "axes.lam[0]": ("axes", "lam", 0),
    "axes.batch[0]": ("axes", "batch", 0), "axes.dataset[0]": ("axes", "dataset", 0),
    "axes.T[0]": ("axes", "T", 0),
}


def spec_with(path, value) -> dict:
    d = {"name": "p", "base": {"task": {}, "phases": [{"steps": 4}]},
         "axes": {"lr": [0.1], "lam": [0.0], "batch": [2], "dataset": [0], "T": [16]}}
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


@FAST
@given(field=st.sampled_from(sorted(NUMERIC_SPEC_FIELDS)),
       value=st.one_of(st.text(max_size=8), st.floats().map(str), st.integers().map(str),
                       st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)))
def test_any_non_number_in_any_numeric_spec_field_is_named(field, value):
    """(6, 11, 15) a string (numeric-looking or not), a bool, null, a list or a table in any
    numeric field of a sweep spec: ConfigError naming exactly that field, never a coercion
    (lr = [true] ran with lr 1, "0.05" raised TypeError)."""
    from scbjax.app.sweep import spec_from_dict

    e = error_of(lambda: spec_from_dict(spec_with(NUMERIC_SPEC_FIELDS[field], value)))
    assert e.field == field, (field, value, str(e))


@FAST
@given(field=st.sampled_from(["base.population", "base.task.N"]),
       value=st.sampled_from(["false", "true", "no", "0", 0, 1, 0.0]))
def test_booleans_and_integers_are_not_coerced_in_specs(field, value):
    """(6) population = "false" ran population mode; 0/1 are not booleans, 0.0 no integer."""
    from scbjax.app.sweep import spec_from_dict

    path = {"base.population": ("base", "population"), "base.task.N": ("base", "task", "N")}
    if field == "base.task.N" and value in (0, 1) and not isinstance(value, float):
        return  # integers are integers (too small N is a range error, also named)
    e = error_of(lambda: spec_from_dict(spec_with(path[field], value)))
    assert e.field == field


@FAST
@given(x=st.one_of(st.floats(1e-300, F32_TINY * 0.999), st.floats(F32_MAX * 1.001, 1e308)),
       flag=st.sampled_from(["--lr", "--lr-V", "--lr-A", "--lam", "--alpha", "--mix"]))
def test_cli_numbers_that_do_not_survive_float32_are_refused(x, flag):
    """(10) --lr 1e-50 was stored as 0 while run.json said 1e-50, --lr 1e39 became inf (the
    CLI walk checks the printed line)."""
    from scbjax.app.cli import build_parser
    from scbjax.app.commands import config_from_args

    a = build_parser().parse_args(["train", flag, repr(x)])
    e = error_of(lambda: config_from_args(a))
    assert "underflows float32" in str(e) or "overflows float32" in str(e)
    assert e.field == {"--lr": "phases[0].lr_V", "--lr-V": "phases[0].lr_V",
                       "--lr-A": "phases[0].lr_A", "--lam": "phases[0].lam",
                       "--alpha": "task.alpha", "--mix": "task.mix"}[flag]


@FAST
@given(offset=st.integers(0, 2**40), seeds=st.integers(1, 300))
def test_seeds_at_or_beyond_2_pow_32_are_refused(offset, seeds):
    """(7) --seed-offset 4294967296 trained seed 0 and recorded 4294967296."""
    from scbjax.app.cli import build_parser
    from scbjax.app.commands import cmd_train

    a = build_parser().parse_args(["train", "--seed-offset", str(offset), "--seeds", str(seeds),
                                   "--out", "/nonexistent/never"])
    if offset + seeds <= 2**32:
        return
    e = error_of(lambda: cmd_train(a))
    assert e.field == "seed_offset"


# --- the CLI walk: every command, a table of bad arguments -----------------------------------
#
# Each case runs in-process (``scbjax.cli.main``) in a tree of pre-populated outputs: exit
# status 2, exactly one line on stderr starting "scbjax: error: " that names the field or
# path, no traceback, nothing trained, and no file anywhere in the tree changed or added.


def snapshot(root) -> dict:
    from pathlib import Path

    out = {}
    for p in sorted(Path(root).rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else (p.stat().st_mtime_ns,
                                                                  p.read_bytes())
    return out


def population_keys() -> dict:
    from scbjax.app import reproduce

    return {n: sp.key() for n, sp in reproduce.study_specs("population", "tiny").items()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Pre-populated outputs and input files for the walk."""
    from scbjax.engine.spec import FORMAT

    t = tmp_path_factory.mktemp("walk")
    (t / "afile").write_text("not a directory\n")
    # train: an --out with unrelated files; one with other results; one with a damaged run.json
    (t / "train_out" / "sub").mkdir(parents=True)
    (t / "train_out" / "notes.txt").write_text("mine\n")
    (t / "train_out" / "sub" / "x.txt").write_text("x\n")
    (t / "other").mkdir()
    (t / "other" / "run.json").write_text(json.dumps({"hash": "0" * 16}))
    (t / "other" / "results.npz").write_bytes(b"PK old results")
    (t / "damaged").mkdir()
    (t / "damaged" / "run.json").write_text("{")
    (t / "damaged" / "results.npz").write_bytes(b"PK")
    # sweep: another sweep's output, and a damaged sweep.json
    (t / "sweep_out" / "groups").mkdir(parents=True)
    (t / "sweep_out" / "sweep.json").write_text(json.dumps({"spec": {"name": "other"}}))
    (t / "sweep_out" / "table.csv").write_text("group,seed\n")
    (t / "sweep_bad").mkdir()
    (t / "sweep_bad" / "sweep.json").write_text("[")
    specs = t / "specs"
    specs.mkdir()
    ok = {"name": "ok", "seeds": 2, "base": {"task": {"N": 4, "T": 5, "Q": 2},
                                             "phases": [{"steps": 4, "batch": 2}]}}
    (specs / "ok.json").write_text(json.dumps(ok))

    def spec(name, d):
        (specs / name).write_text(json.dumps(d) if isinstance(d, dict) else d)

    spec("lr_true.json", {"name": "ok", "axes": {"lr": [True]}})
    spec("lr_str.json", {"name": "ok", "axes": {"lr": ["0.05"]}})
    spec("lrV_str.json", {"name": "ok", "base": {"phases": [{"steps": 4, "lr_V": "0.05"}]}})
    spec("alpha_str.json", {"name": "ok", "base": {"task": {"alpha": "1.0"}}})
    spec("pop_str.json", {"name": "ok", "base": {"population": "false"}})
    spec("lr_big.json", {"name": "ok", "axes": {"lr": [1e39]}})
    spec("up.json", {"name": "../../x"})
    spec("seeds.json", {"name": "ok", "seeds": [4294967296]})
    spec("bigN.json", {"name": "ok", "axes": {"N": [100000]}})
    spec("mix0.json", {"name": "other", "seeds": 8, "base": {"task": {"mix": 0.0, "alpha": 0.01}}})
    spec("empty_obj.json", {})
    spec("list.json", "[1, 2]")
    spec("empty.toml", "")
    spec("comments.toml", "# nothing here\n")
    spec("broken.toml", "name = \n")
    (specs / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    spec("dup32.json", {"name": "ok", "axes": {"lr": [0.01, 0.01000000001]}})  # issue 18
    spec("dupkey.json", '{"name": "ok", "seeds": 2, "seeds": 3}')
    (t / "ckdir" / "checkpoint.npz").mkdir(parents=True)
    (specs / "adir.toml").mkdir()
    # train --config files
    spec("cfg_str.toml", '[task]\nN = "4"\n')
    (specs / "cfg_latin1.toml").write_bytes(b'optimizer = "\xff"\n')
    spec("cfg_broken.toml", "[task\n")
    # reproduce: a tiny-mode output; figures with a figure in it
    ro = t / "repro_out"
    (ro / "population" / "pop").mkdir(parents=True)
    (ro / "job.json").write_text(json.dumps({"kind": "reproduce", "mode": "tiny"}))
    (ro / "population" / "pop" / "checkpoint.npz").write_bytes(b"PK partial")
    (t / "figures").mkdir()
    (t / "figures" / "fig.png").write_bytes(b"\x89PNG")
    # plot: damaged results of the population study (the first spec, "pop")
    key = population_keys()["pop"]
    meta = {"hash": key, "format": FORMAT, "config": {}, "label_names": ["seed"], "runs": 1}
    for name, files in {
        "res_trunc": {"run.json": json.dumps(meta), "results.npz": b"PK\x03\x04trunc"},
        "res_missing": {"run.json": json.dumps(meta)},
        "res_badjson": {"run.json": '{"hash": ', "results.npz": b"PK"},
        "res_nokeys": {"run.json": json.dumps({"hash": key}), "results.npz": b"PK"},
        "res_other": {"run.json": json.dumps({**meta, "hash": "f" * 16}),
                      "results.npz": b"PK"},
    }.items():
        d = t / name / "population" / "pop"
        d.mkdir(parents=True)
        (t / name / "job.json").write_text(json.dumps({"mode": "tiny"}))
        for f, data in files.items():
            (d / f).write_bytes(data if isinstance(data, bytes) else data.encode())
    (t / "res_badjob").mkdir()
    (t / "res_badjob" / "job.json").write_text("{")
    return t


T_OUT = ["--out", "{t}/train_out"]
WALK = [
    # (command line, what the one line must name)  -- train
    (["train", "--N", "1", *T_OUT], "N"),
    (["train", "--Q", "9", "--T", "4", *T_OUT], "Q"),
    (["train", "--lr", "1e-50", *T_OUT], "phases[0].lr_V: 1e-50 underflows float32"),  # 10
    (["train", "--lr", "1e39", *T_OUT], "phases[0].lr_V: 1e+39 overflows float32"),  # 10
    (["train", "--lr-A", "nan", *T_OUT], "phases[0].lr_A"),
    (["train", "--lam", "-1", *T_OUT], "phases[0].lam"),
    (["train", "--alpha", "inf", *T_OUT], "task.alpha"),
    (["train", "--population=yes", *T_OUT], "--population"),
    (["train", "--optimizer", "lbfgs", *T_OUT], "--optimizer"),
    (["train", "--steps", "x", *T_OUT], "--steps"),
    (["train", "--steps", "3000000000", *T_OUT], "phases"),
    (["train", "--log-every", "0", *T_OUT], "log_every"),
    (["train", "--chunk-steps", "0", *T_OUT], "chunk_steps"),
    (["train", "--seeds", "0", *T_OUT], "seeds"),
    (["train", "--seeds", "many", *T_OUT], "--seeds"),
    (["train", "--seed-offset", "4294967296", *T_OUT], "seed_offset"),  # 7
    (["train", "--seed-offset", "-1", *T_OUT], "seed_offset"),
    (["train", "--phase", "steps=-20,batch=8,lr=0.05,lam=0", *T_OUT], "phases[0].steps"),  # 20
    (["train", "--phase", "10,4", *T_OUT], "--phase"),
    (["train", "--phase", "steps=10,batch=4,lr=x", *T_OUT], "--phase"),
    (["train", "--phase", "steps=10,batch=true", *T_OUT], "--phase"),
    (["train", "--phase", "batch=4,lr=0.1", *T_OUT], "--phase"),
    (["train", "--phase", "steps=10,freeze=yes", *T_OUT], "--phase"),
    (["train", *T_OUT, "--phase"], "--phase"),
    (["train", "--phase", "steps=10,batch=4,lr=0.1,lam=0", "--steps", "5", *T_OUT], "phase"),
    (["train", "--lr", "0.1", "--lr-V", "0.1", *T_OUT], "lr"),
    (["train", "--N", "100000", *T_OUT], "task.N: 8 run(s) at N=100000"),  # 16
    (["train", "--mix", "0", "--alpha", "0.01", *T_OUT],
     "train: task: the stationary distribution mu has a zero entry"),  # 9
    (["train", "--config", "{t}/specs/missing.toml", *T_OUT], "--config"),
    (["train", "--config", "{t}/specs/cfg_latin1.toml", *T_OUT], "not UTF-8"),
    (["train", "--config", "{t}/specs/cfg_broken.toml", *T_OUT], "--config"),
    (["train", "--config", "{t}/specs/cfg_str.toml", *T_OUT], "task.N"),
    (["train", "--config", "", *T_OUT], "--config: empty path"),
    (["train", "--out", "{t}/afile"], "--out: {t}/afile is not a directory"),  # 5, 17
    (["train", "--out", "{t}/afile/sub"], "--out: cannot write to {t}/afile/sub"),
    (["train", "--out", "/proc/x"], "--out: cannot write to /proc/x"),
    (["train", "--out", ""], "--out: empty path"),
    (["train", "--out", "{t}/other"], "--out: {t}/other holds other results"),  # 4
    (["train", "--out", "{t}/damaged"], "{t}/damaged/run.json"),
    (["train", "--bogus", *T_OUT], "--bogus"),
    (["train", "--config", "{t}/specs/ok.json", *T_OUT], "--config: {t}/specs/ok.json is a "
     "sweep spec"),  # issue 18, 9
    (["train", "--seeds", "100000000", *T_OUT], "seeds"),  # 18.6
    (["train", "--out", "{t}/ckdir"], "{t}/ckdir/checkpoint.npz: exists and is not a regular"),
    # sweep
    (["sweep", "{t}/specs/lr_true.json"], "axes.lr[0]: must be a number, got bool"),  # 11
    (["sweep", "{t}/specs/empty.toml"], "spec: {t}/specs/empty.toml: empty file"),  # 11
    (["sweep", "{t}/specs/comments.toml"], "spec: {t}/specs/comments.toml: no fields"),
    (["sweep", "{t}/specs/empty_obj.json"], "spec: {t}/specs/empty_obj.json: no fields"),
    (["sweep", "{t}/specs/list.json"], "spec"),
    (["sweep", "{t}/specs/lr_str.json"], "axes.lr[0]: must be a number, got str"),  # 15
    (["sweep", "{t}/specs/lrV_str.json"], "base.phases[0].lr_V"),  # 15
    (["sweep", "{t}/specs/alpha_str.json"], "base.task.alpha"),  # 15
    (["sweep", "{t}/specs/latin1.toml"], "spec: {t}/specs/latin1.toml: not UTF-8"),  # 15
    (["sweep", "{t}/specs/pop_str.json"], "base.population"),  # 6
    (["sweep", "{t}/specs/lr_big.json"], "axes.lr[0]"),  # 10
    (["sweep", "{t}/specs/up.json"], "name"),  # 22
    (["sweep", "{t}/specs/seeds.json"], "seeds"),  # 7
    (["sweep", "{t}/specs/bigN.json"], "N=100000"),  # 16
    (["sweep", "{t}/specs/mix0.json", "--out", "{t}/sweep_out"],
     "ppd_N8_T16_Q2: task: the stationary distribution mu has"),  # 9
    (["sweep", "{t}/specs/missing.toml"], "spec: {t}/specs/missing.toml: no such file"),
    (["sweep", "{t}/specs/adir.toml"], "spec: {t}/specs/adir.toml: cannot read"),
    (["sweep", "{t}/specs/broken.toml"], "spec: {t}/specs/broken.toml: not valid TOML"),
    (["sweep", "{t}/specs/ok.json", "--out", "{t}/afile"], "--out: {t}/afile is not a dir"),
    (["sweep", "{t}/specs/ok.json", "--out", "/proc/x"], "--out: cannot write to /proc/x"),
    (["sweep", "{t}/specs/ok.json", "--out", "{t}/afile/sub"], "--out: cannot write to"),
    (["sweep", "{t}/specs/ok.json", "--out", "{t}/sweep_out"], "sweep 'other', not 'ok'"),
    (["sweep", "{t}/specs/ok.json", "--out", "{t}/sweep_bad"], "{t}/sweep_bad/sweep.json"),
    (["sweep", "{t}/specs/ok.json", "--chunk-steps", "0"], "chunk_steps"),
    (["sweep", "{t}/specs/ok.json", "--out", ""], "--out: empty path"),
    (["sweep"], "SPEC"),
    (["sweep", "{t}/specs/dup32.json"], "axes.lr: repeated value"),  # issue 18, 9
    (["sweep", "{t}/specs/dupkey.json"], "duplicate key 'seeds'"),  # 18.9
    # reproduce
    (["reproduce", "--quick", "--out", "{t}/repro_out"],
     "--out: {t}/repro_out holds results of mode 'tiny', not 'quick'"),  # 2
    (["reproduce", "--tiny", "--out", "{t}/afile"], "--out: {t}/afile is not a directory"),
    (["reproduce", "--quick", "--out", "/proc/x"], "--out: cannot write to /proc/x"),  # 5
    (["reproduce", "--tiny", "--out", "{t}/afile/sub"], "--out: cannot write to"),  # 17
    (["reproduce", "--tiny", "--out", "{t}/repro_out", "--figures", "{t}/afile"],
     "--figures: {t}/afile is not a directory"),
    (["reproduce", "--quick", "--overwrite", "--out", "{t}/repro_out", "--figures",
      "/proc/x"], "--figures: cannot write to /proc/x"),  # nothing removed first
    (["reproduce", "--tiny", "--only", "nope", "--out", "{t}/repro_out"], "study"),
    (["reproduce", "--tiny", "--quick"], "--quick"),
    (["reproduce", "--full", "--out", ""], "--out: empty path"),
    (["reproduce", "--quick", "--overwrite", "--only", "population", "--out",
      "{t}/repro_out"], "--only: {t}/repro_out holds results of mode 'tiny'"),  # 18.4
    # plot
    (["plot", "{t}/missing", "--figures", "{t}/figures"], "RESULTS_DIR"),
    (["plot", "{t}/afile", "--figures", "{t}/figures"], "RESULTS_DIR"),
    (["plot", "{t}/train_out", "--figures", "{t}/figures"], "no job.json"),
    (["plot", "{t}/res_badjob", "--figures", "{t}/figures",
      "--only", "population"], "{t}/res_badjob/job.json"),
    (["plot", "{t}/res_trunc", "--figures", "{t}/figures",
      "--only", "population"],
     "{t}/res_trunc/population/pop/results.npz: cannot read"),  # 14
    (["plot", "{t}/res_missing", "--figures", "{t}/figures",
      "--only", "population"],
     "{t}/res_missing/population/pop/results.npz: no such file"),  # 14
    (["plot", "{t}/res_badjson", "--figures", "{t}/figures",
      "--only", "population"],
     "{t}/res_badjson/population/pop/run.json: not valid JSON"),  # 14
    (["plot", "{t}/res_nokeys", "--figures", "{t}/figures",
      "--only", "population"],
     "{t}/res_nokeys/population/pop/run.json: no 'format' entry"),  # 14
    (["plot", "{t}/res_other", "--figures", "{t}/figures",
      "--only", "population"],
     "{t}/res_other/population/pop: holds other runs"),
    (["plot", "{t}/repro_out", "--figures", "{t}/afile"], "--figures: {t}/afile is not a "),
    (["plot", "{t}/repro_out", "--figures", "/proc/x"], "--figures: cannot write to /proc/x"),
    (["plot", "{t}/repro_out", "--only", "nope", "--figures", "{t}/figures"], "study"),
    (["plot", "{t}/repro_out", "--hue", "seed", "--figures", "{t}/figures"],
     "--hue: for train and sweep outputs; {t}/repro_out is a `scbjax reproduce` output"),
    (["plot", "{t}/train_out", "--only", "population"], "--only: a study of a `scbjax "),
    (["plot"], "RESULTS_DIR"),
    # bench (no output directory: the tree is the working directory)
    (["bench", "--seeds", "a,b"], "seeds"),
    (["bench", "--seeds", ""], "seeds"),
    (["bench", "--seeds", "0,8"], "seeds"),
    (["bench", "--N", "0"], "N"),
    (["bench", "--Q", "100"], "Q"),
    (["bench", "--steps", "0"], "steps"),
    (["bench", "--repeats", "x"], "--repeats"),
    (["bench", "--N", "100000", "--seeds", "1"], "task.N: 1 run(s) at N=100000"),  # 16
    # no command
    ([], "COMMAND"),
    (["nope"], "nope"),
]


@pytest.mark.parametrize("argv, names", WALK, ids=[" ".join(a)[:60] for a, _ in WALK])
def test_cli_walk_bad_arguments(argv, names, tree, capsys, monkeypatch):
    from scbjax.app import bench
    from scbjax.engine import executor, group
    from scbjax.app import reproduce
    from scbjax.app.cli import main

    def trained(*a, **k):
        raise AssertionError("trained: this bad input was not caught before training")

    monkeypatch.setattr(executor, "intervals", trained)  # right after init and the task check
    monkeypatch.setattr(reproduce, "calibrate", trained)
    monkeypatch.setattr(bench, "run_bench", trained)
    monkeypatch.chdir(tree)  # default output paths (runs/train, figures) land in the tree
    before = snapshot(tree)
    argv = [a.replace("{t}", str(tree)) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("scbjax: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert names.replace("{t}", str(tree)) in err, err
    assert "Traceback" not in err
    assert snapshot(tree) == before, "a file changed"


@pytest.mark.parametrize("argv, names", [
    (["train", "--out", "{t}/afile", "--seeds", "1"], "--out: {t}/afile is not a directory"),
    (["sweep", "{t}/specs/lr_true.json"], "axes.lr[0]"),
    (["train", "--phase", "steps=-20,batch=8,lr=0.05,lam=0"], "phases[0].steps"),
])
def test_cli_walk_in_a_real_process(argv, names, tree):
    """What reaches a terminal: one line, no traceback, exit 2 (a few cases of the walk)."""
    import subprocess
    import sys

    before = snapshot(tree)
    r = subprocess.run([sys.executable, "-m", "scbjax",
                        *[a.replace("{t}", str(tree)) for a in argv]],
                       capture_output=True, text=True, cwd=tree, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 2
    assert r.stderr.startswith("scbjax: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert names.replace("{t}", str(tree)) in r.stderr and "Traceback" not in r.stderr
    assert snapshot(tree) == before


# --- interruptions -------------------------------------------------------------------------


def interrupt_after_checkpoint(cmd, out, pattern, cwd, timeout=120, sig=None):
    """Start ``scbjax CMD``, send ``sig`` (default SIGINT) once a checkpoint matching
    ``pattern`` appears under ``out``; return (returncode, stderr, seconds from the signal to
    the exit)."""
    import signal
    import subprocess
    import sys
    import time

    p = subprocess.Popen([sys.executable, "-m", "scbjax", *cmd], cwd=cwd, text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        wait_for_file(p, out, pattern, timeout)
        t1 = time.time()
        p.send_signal(signal.SIGINT if sig is None else sig)
        _, err = p.communicate(timeout=timeout)
    finally:
        p.kill()
        p.wait()
    return p.returncode, err, time.time() - t1


def test_ctrl_c_stops_train_with_one_line_and_the_checkpoint_intact(tmp_path):
    """(3) Ctrl-C ran training to the end, then a KeyboardInterrupt traceback, nothing saved.
    Now: exit 130 at the next chunk, one line saying where it resumes; the checkpoint loads and
    is the one the same command resumes from (resuming: test_engine's
    test_resume_from_a_checkpoint_equals_straight_through)."""
    out = tmp_path / "run"
    cmd = ["train", "--N", "4", "--T", "6", "--Q", "2", "--steps", "200000", "--batch", "4",
           "--log-every", "100", "--chunk-steps", "1000", "--seeds", "2", "--quiet",
           "--out", str(out)]
    rc, err, dt = interrupt_after_checkpoint(cmd, out, "checkpoint.npz", tmp_path)
    assert rc == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"scbjax: interrupted; {out} stopped at step ") and \
        "checkpoint intact: run the same command again to resume" in err
    assert dt < 30  # not the 200000 steps
    step = int(err.split("stopped at step ")[1].split()[0])
    z = fileio.load_npz(out / "checkpoint.npz")
    assert 0 < step < 200000 and int(z["next_interval"]) * 100 == step
    assert not (out / "results.npz").exists()
    # the checkpoint is the one the same command resumes from: its spec's hash
    from scbjax.app.cli import build_parser
    from scbjax.app.commands import config_from_args
    from scbjax.engine.spec import RunSpec, grid

    cfg = config_from_args(build_parser().parse_args(cmd))
    assert str(z["hash"]) == RunSpec(cfg, grid(range(2))).key()
