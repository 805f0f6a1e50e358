"""Inputs a probe found unchecked: huge jobs (refused from their count, before any Run is built),
a sweep spec given to ``train --config``, axis values equal in float32, duplicate runs, the
arrays of ``task_from_arrays``, ``bench --grid``'s sizes and output paths, and a zero initial
excess loss in the train summary. No training: every CLI case is refused before it."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from scbjax.app import bench_grid, commands, sweep
from scbjax.app.cli import main
from scbjax.app.commands import summary_table
from scbjax.core.task import task_from_arrays
from scbjax.engine import executor, resources
from scbjax.engine.spec import RunSpec, run
from scbjax.engine.store import Runs
from scbjax.sim.config import Phase, TrainConfig
from scbjax.core.task import TaskConfig
from scbjax.util.errors import ConfigError

B = ["--N", "5", "--T", "6", "--Q", "2", "--steps", "40", "--log-every", "20", "--seeds", "2",
     "--quiet"]
BASE = {"task": {"N": 5, "T": 6, "Q": 2}, "phases": [{"steps": 40}], "log_every": 20}
GB = 10**9


def small() -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=5, T=6, Q=2), phases=(Phase(40),), log_every=20)


def error_of(fn) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn()
    return e.value


def never(*a, **k):
    raise AssertionError("reached: this input was not refused before it")


@pytest.fixture
def refused(tmp_path, capsys, monkeypatch):
    """``refused(argv, field, *texts)``: main(argv) exits 2 with one line naming ``field`` (and
    ``texts``), having trained nothing and built no Run; returns the line."""
    monkeypatch.setattr(executor, "intervals", never)  # right after init and the task check
    monkeypatch.setattr(bench_grid, "run_grid", never)
    monkeypatch.setattr(sweep, "run", never)  # a sweep's Run objects
    monkeypatch.setattr(commands, "grid", never)  # train's Run objects
    monkeypatch.chdir(tmp_path)

    def check(argv, field, *texts):
        rc = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.startswith(f"scbjax: error: {field}: ") and err.count("\n") == 1, err
        assert all(t in err for t in texts), err
        return err

    return check


@pytest.fixture
def memory_16gb(monkeypatch):
    """The device and the host have 16 GB available (the same answer on every machine)."""
    monkeypatch.setattr(resources, "available_bytes", lambda device=None: 16 * GB)
    monkeypatch.setattr(resources, "host_available_bytes", lambda: 16 * GB, raising=False)


def spec_file(tmp_path, d: dict, name: str = "spec.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


# --- A: huge jobs, refused arithmetically ---------------------------------------------------

MILLION = {"lr": [1e-3 * (i + 1) for i in range(1000)], "lam": [1e-4 * i for i in range(1000)]}
HUGE = [
    ("sweep 1000 lr x 1000 lam", {"name": "big", "seeds": 1, "base": BASE, "axes": MILLION},
     "axes", "1000000 run(s)"),
    ("sweep seeds 1e9", {"name": "big", "seeds": 1000000000, "base": BASE}, "seeds",
     "1000000000 run(s)"),
    ("sweep 1e6 seeds x 8 groups", {"name": "big", "seeds": 1000000, "base": BASE,
                                     "axes": {"N": [5, 6], "T": [6, 7], "batch": [4, 8],
                                              "optimizer": ["ppd", "adam"]}},
     "seeds", "16000000 run(s)"),
]


@pytest.mark.parametrize("d, field, text", [h[1:] for h in HUGE], ids=[h[0] for h in HUGE])
def test_huge_sweep_is_refused_from_its_count(d, field, text, refused, memory_16gb, tmp_path):
    t0 = time.perf_counter()
    refused(["sweep", spec_file(tmp_path, d), "--quiet"], field, text, "memory")
    assert time.perf_counter() - t0 < 2


def test_huge_train_is_refused_from_its_count(refused, memory_16gb):
    t0 = time.perf_counter()
    refused(["train", *B, "--seeds", "10000000"], "seeds", "10000000 run(s)", "memory")
    assert time.perf_counter() - t0 < 2


def test_spec_from_dict_refuses_a_huge_sweep_before_listing_its_seeds(memory_16gb, monkeypatch):
    monkeypatch.setattr(sweep, "run", never)
    t0 = time.perf_counter()
    e = error_of(lambda: sweep.spec_from_dict({"seeds": 10**9, "base": BASE}))
    assert e.field == "seeds" and "1000000000 run(s)" in str(e)
    e = error_of(lambda: sweep.SweepSpec(base=small(), axes=sweep.Axes(**{
        k: tuple(v) for k, v in MILLION.items()})).validate())
    assert e.field == "axes" and "1000000 run(s)" in str(e)
    assert time.perf_counter() - t0 < 2


def test_a_sweep_that_fits_is_counted_and_accepted(memory_16gb):
    s = sweep.spec_from_dict({"seeds": 3, "base": BASE, "axes": {"lr": [0.01, 0.02],
                                                                 "N": [5, 6]}})
    assert sum(len(sp.runs) for sp in sweep.specs(s).values()) == 12


@pytest.mark.parametrize("kw, field", [
    ({"runs": 1, "job_runs": 10**7}, "where"),  # the job's Run objects alone: 80 GB
    ({"runs": 600_000}, "where"),  # 13.6 GB to train + 4.9 GB to build: one memory on a CPU
], ids=["Run objects", "train and build"])
def test_check_fits_counts_what_building_the_job_costs(kw, field, memory_16gb, monkeypatch):
    monkeypatch.setattr(resources, "_shares_host", lambda: True, raising=False)
    e = error_of(lambda: resources.check_fits(small(), where="where", **kw))
    assert e.field == field and "memory" in str(e)
    assert resources.check_fits(small(), 1000) == resources.estimate_bytes(small(), 1000)


def test_check_fits_checks_the_host_apart_from_a_given_device(monkeypatch):
    monkeypatch.setattr(resources, "host_available_bytes", lambda: 1 * GB, raising=False)
    assert resources.host_bytes(small(), 10) == 10 * resources.host_bytes(small(), 1)
    resources.check_fits(small(), 1000, available=100 * GB)
    e = error_of(lambda: resources.check_fits(small(), 1, available=100 * GB,
                                              job_runs=10**6, where="seeds"))
    assert e.field == "seeds" and "1000000 run(s)" in str(e) and "host memory" in str(e)


# --- B: a sweep spec given to train --config ------------------------------------------------

CONFIGS = [
    ("sweep toml", "s.toml", 'name = "x"\nseeds = 4\n[base.task]\nN = 5\n[axes]\nlr = [0.1]\n',
     "is a sweep spec (it has name/seeds/axes): run it with `scbjax sweep`"),
    ("sweep json, seeds only", "s.json", json.dumps({"seeds": 3, "base": BASE}),
     "is a sweep spec (it has seeds)"),
    ("base and chunk_steps", "s.toml", "chunk_steps = 10\n[base.task]\nN = 5\n",
     "is a sweep spec (it has chunk_steps)"),
    ("base and an unknown key", "s.toml", "extra = 1\n[base.task]\nN = 5\n",
     "unknown top-level key 'extra' beside [base]"),
]


@pytest.mark.parametrize("fname, text, msg", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_train_config_refuses_a_sweep_spec(fname, text, msg, refused, tmp_path):
    (tmp_path / fname).write_text(text)
    refused(["train", *B, "--config", tmp_path / fname], "--config", msg)


def test_train_config_still_reads_a_lone_base(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text("[base.task]\nN = 5\n")
    assert commands.load_config_file(p).task.N == 5


# --- C: sweep axis values equal in float32 --------------------------------------------------

SAME = [
    ("lr", [0.01, 0.01000000001], "0.01 and 0.01000000001", "float32"),
    ("lam", [0.0, -0.0], "0.0 and -0.0", "float32"),
    ("lr_V", [0.001, 0.002, 0.001], "0.001 and 0.001", ""),
    ("batch", [8, 4, 8], "8 and 8", ""),
    ("optimizer", ["ppd", "ppd"], "'ppd' and 'ppd'", ""),
]


@pytest.mark.parametrize("axis, values, both, note", SAME, ids=[s[0] for s in SAME])
def test_sweep_refuses_axis_values_equal_in_float32(axis, values, both, note):
    e = error_of(lambda: sweep.spec_from_dict({"seeds": 2, "base": BASE,
                                               "axes": {axis: values}}))
    assert e.field == f"axes.{axis}" and both in str(e) and note in str(e)


def test_sweep_cli_refuses_axis_values_equal_in_float32(refused, tmp_path):
    d = {"name": "dup", "seeds": 2, "base": BASE, "axes": {"lr": [0.01, 0.01000000001]}}
    refused(["sweep", spec_file(tmp_path, d)], "axes.lr", "0.01 and 0.01000000001")


def test_sweep_keeps_values_distinct_in_float32():
    s = sweep.spec_from_dict({"seeds": 2, "base": BASE, "axes": {"lr": [0.01, 0.0100001]}})
    assert len(sweep.specs(s)["ppd_N5_T6_Q2"].runs) == 4


# --- D: duplicate runs in a RunSpec ---------------------------------------------------------

DUPS = [
    ("same seed", [run(0), run(1), run(0)], "runs[2]", "runs[0]"),
    ("same seed and labels, other lr", [run(3, {"a": 1}, lr=0.1), run(3, {"a": 1}, lr=0.2)],
     "runs[1]", "runs[0]"),
    ("same seed, fold and labels", [run(1, {"a": "x"}, fold=(2,)), run(1, {"a": "x"}, fold=(2,))],
     "runs[1]", "fold (2,)"),
]


@pytest.mark.parametrize("runs, field, text", [d[1:] for d in DUPS], ids=[d[0] for d in DUPS])
def test_runspec_refuses_duplicate_runs(runs, field, text):
    e = error_of(lambda: RunSpec(small(), tuple(runs)).validate("g"))
    assert e.field == f"g.{field}" and text in str(e)


@pytest.mark.parametrize("runs", [
    [run(0), run(1)],
    [run(0, fold=(1,)), run(0, fold=(2,))],
    [run(0, {"a": 1}), run(0, {"a": 2})],
], ids=["seeds", "folds", "labels"])
def test_runspec_accepts_runs_that_differ(runs):
    RunSpec(small(), tuple(runs)).validate()


# --- E: task_from_arrays --------------------------------------------------------------------

P2 = np.array([[0.5, 0.25], [0.5, 0.75]])
Q2 = np.full((3, 2), 1 / 3)
ARRAYS = [
    ("P strings", {"P": P2.astype(str)}, "P", "dtype"),
    ("P complex", {"P": P2 + 1e-3j}, "P", "complex"),
    ("P bools", {"P": np.eye(2, dtype=bool)}, "P", "dtype bool"),
    ("P objects", {"P": np.array([[0.5, 0.5], [0.5, None]], dtype=object)}, "P", "dtype"),
    ("q strings", {"q": [["0.5", "0.5"], ["0.5", "0.5"]]}, "q", "dtype"),
    ("mu complex", {"mu": np.array([0.4, 0.6], complex)}, "mu", "complex"),
    ("atol 1 (columns summing to 1.8)", {"P": P2 * 1.8, "atol": 1.0}, "atol", "(0, 0.01]"),
    ("atol nan", {"atol": float("nan")}, "atol", "nan"),
    ("atol 0", {"atol": 0.0}, "atol", "(0, 0.01]"),
    ("atol negative", {"atol": -1e-5}, "atol", "(0, 0.01]"),
    ("atol inf", {"atol": float("inf")}, "atol", "inf"),
    ("atol str", {"atol": "1e-5"}, "atol", "str"),
    ("atol bool", {"atol": True}, "atol", "bool"),
    ("Q str", {"Q": "1"}, "Q", "str"),
    ("Q bool", {"Q": True}, "Q", "bool"),
    ("Q float", {"Q": 2.0}, "Q", "float"),
    ("Q zero", {"Q": 0}, "Q", ">= 1"),
]


@pytest.mark.parametrize("kw, field, text", [a[1:] for a in ARRAYS], ids=[a[0] for a in ARRAYS])
def test_task_from_arrays_refuses_what_it_would_coerce(kw, field, text):
    args = {"P": P2, "q": Q2, **kw}
    e = error_of(lambda: task_from_arrays(**args))
    assert e.field == field and text in str(e), str(e)


def test_task_from_arrays_accepts_real_numbers_of_any_width():
    import jax.numpy as jnp

    for P in (P2, P2.tolist(), P2.astype(np.float32), jnp.asarray(P2, jnp.bfloat16)):
        assert task_from_arrays(P, Q2, Q=np.int64(3), atol=np.float32(1e-2)).N == 2
    assert task_from_arrays(np.eye(2, dtype=np.int64), np.ones((1, 2), int)).T == 1


# --- F: bench --grid, checked before it runs ------------------------------------------------

GRID = ["bench", "--grid", "--grid-T", "16", "--grid-seeds", "1", "--grid-N"]


def test_bench_grid_refuses_a_point_that_cannot_fit(refused, memory_16gb):
    refused([*GRID, "8,100000"], "grid_N", "N=100000", "memory")
    refused([*GRID[:-3], "--grid-seeds", "1,100000000", "--grid-N", "8"], "grid_seeds",
            "100000000 run(s)")


@pytest.mark.parametrize("option, path, field, text", [
    ("--grid-figure", "out.xyz", "grid_figure", "unknown figure format 'xyz'"),
    ("--grid-figure", "adir", "grid_figure", "is a directory"),
    ("--grid-figure", "afile/out.png", "grid_figure", "not a directory"),
    ("--grid-md", "adir", "grid_md", "is a directory"),
    ("--grid-md", "afile/b.md", "grid_md", "not a directory"),
], ids=["figure format", "figure dir", "figure under a file", "md dir", "md under a file"])
def test_bench_grid_checks_its_outputs_before_running(option, path, field, text, refused,
                                                      tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    refused([*GRID, "8", option, path], field, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


def test_bench_grid_accepts_the_formats_matplotlib_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_grid, "run_grid", never)
    g = bench_grid.GridConfig(Ns=(8,), Ts=(16,), seeds=(1,))
    for fig in ("a.png", "a.PDF", "sub/a.svg", "noext"):
        o = bench_grid.GridOptions(g, figure=str(tmp_path / fig), markdown=str(tmp_path / "b.md"))
        with pytest.raises(AssertionError, match="reached"):  # checked, then run
            bench_grid.grid_command(o)
    assert {"png", "pdf", "svg"} <= bench_grid.figure_formats()


# --- G: the train summary with a zero initial excess loss (mix 1) ---------------------------


def fake_runs(e0: list[float]) -> Runs:
    R = len(e0)
    e = np.stack([np.asarray(e0), np.full(R, 1e-4)], axis=1)
    arrays = {"seeds": np.arange(R), "diverged_step": np.full(R, -1), "steps": np.array([0, 40]),
              "samples": np.tile([0, 320], (R, 1)), "metrics/excess_loss": e,
              "metrics/corr_V": np.zeros((R, 2))}
    return Runs(arrays, {})


@pytest.mark.parametrize("e0, row", [
    ([0.0, 0.0], "n/a"),
    ([0.0, 2e-4], "over the 1/2 seeds with an initial excess loss > 0"),
    ([2e-4, 4e-4], "0.375"),
], ids=["all zero", "one zero", "none zero"])
def test_summary_table_without_an_initial_excess_loss(e0, row):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = summary_table(fake_runs(e0))
    line = next(x for x in text.splitlines() if x.startswith("excess/initial"))
    assert row in line and "inf" not in line, line
