"""Runs as tables: ``Runs.to_dataframe`` / ``Runs.curves`` equal the arrays, settings one
column per phase, selections, and the message without pandas."""

import sys

import numpy as np
import pytest

import scbjax as s
from scbjax.app.sweep_tables import csv_bytes, format_summary, summarize, table_rows
from scbjax.engine.executor import Log, run_spec
from scbjax.engine.spec import RunSpec, grid, run
from scbjax.sim.train import METRICS

TASK = s.TaskConfig(N=4, T=5, Q=2)
ONE = s.TrainConfig(task=TASK, phases=(s.Phase(10, 4, 0.05, 0.05, 0.0),), log_every=5)
TWO = s.TrainConfig(task=TASK, phases=(s.Phase(10, 4, 0.05, 0.05, 1e-3),
                                       s.Phase(5, 8, 0.02, 0.02, 0.0)), log_every=5)
QUIET = Log(quiet=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    one = RunSpec(ONE, grid(range(2), {"arm": "a"}) + grid(range(2), {"arm": "b"}, lr=0.1))
    two = RunSpec(TWO, (run(0, {"arm": "a", "seed": 0}),
                        run(1, {"arm": "b", "seed": 1}, batch=(2, 6), lr_V=(0.1, 0.03))))
    return run_spec("one", one, d / "one", log=QUIET), run_spec("two", two, d / "two", log=QUIET)


def test_to_dataframe_equals_the_arrays(runs):
    r = runs[0]
    df = r.to_dataframe()
    assert list(df.columns) == ["run", "seed", "arm", "dataset", "batch", "lr_V", "lr_A", "lam",
                                "diverged_step", "samples", *METRICS]
    assert len(df) == len(r) == 4
    np.testing.assert_array_equal(df["run"], np.arange(4))
    np.testing.assert_array_equal(df["seed"], r["seeds"])
    assert df["arm"].tolist() == r.label("arm").tolist() == ["a", "a", "b", "b"]
    for k in ("batch", "lr_V", "lr_A", "lam"):
        np.testing.assert_array_equal(df[k].to_numpy(), r[f"settings/{k}"][:, 0])
        assert df[k].dtype == r[f"settings/{k}"].dtype
    np.testing.assert_array_equal(df["lr_V"], np.float32([0.05, 0.05, 0.1, 0.1]))
    np.testing.assert_array_equal(df["samples"], r.samples[:, -1])
    np.testing.assert_array_equal(df["diverged_step"], r["diverged_step"])
    for k in METRICS:
        np.testing.assert_array_equal(df[k].to_numpy(), r.metric(k)[:, -1])


def test_a_two_phase_config_gives_a_column_per_phase(runs):
    r = runs[1]
    df = r.to_dataframe()
    for k in ("batch", "lr_V", "lr_A", "lam"):
        assert k not in df.columns
        for p in (0, 1):
            np.testing.assert_array_equal(df[f"{k}_{p}"].to_numpy(), r[f"settings/{k}"][:, p])
    assert df["batch_0"].tolist() == [4, 2] and df["batch_1"].tolist() == [8, 6]
    np.testing.assert_array_equal(df["lr_V_1"], np.float32([0.02, 0.03]))
    assert df["samples"].tolist() == [10 * 4 + 5 * 8, 10 * 2 + 5 * 6]


def test_a_label_named_like_a_column_is_kept_only_when_it_differs(runs):
    r = runs[0]
    r.arrays["labels/batch"] = np.asarray(["4", "4", "4", "4"])  # the text of the setting
    r.arrays["labels/lam"] = np.asarray(["x", "y", "z", "w"])    # something else
    r.label_names = r.label_names + ("batch", "lam")
    try:
        df = r.to_dataframe()
        assert "label_batch" not in df.columns and df["batch"].tolist() == [4] * 4
        assert df["label_lam"].tolist() == ["x", "y", "z", "w"]
        assert "label_seed" not in df.columns  # the seed label equals the seed
    finally:
        del r.arrays["labels/batch"], r.arrays["labels/lam"]
        r.label_names = r.label_names[:-2]


def test_curves_is_long_and_equals_the_arrays(runs):
    r = runs[1]
    c = r.curves()
    R, L, M = len(r), len(r.steps), len(METRICS)
    assert len(c) == R * L * M
    assert list(c.columns) == ["run", "seed", "arm", "step", "samples", "metric", "value"]
    for i in range(R):
        for k in METRICS:
            rows = c[(c["run"] == i) & (c["metric"] == k)]
            np.testing.assert_array_equal(rows["value"].to_numpy(), r.metric(k)[i])
            np.testing.assert_array_equal(rows["step"].to_numpy(), r.steps)
            np.testing.assert_array_equal(rows["samples"].to_numpy(), r.samples[i])
    two = r.curves(["corr_V", "excess_loss"])
    assert len(two) == R * L * 2 and set(two["metric"]) == {"corr_V", "excess_loss"}
    with pytest.raises(s.ConfigError) as e:
        r.curves(["nope"])
    assert e.value.field == "metrics"


def test_a_selection_exports_only_its_runs(runs):
    r = runs[0]
    sel = r.select(arm="b")
    df = sel.to_dataframe()
    assert df["run"].tolist() == [2, 3] and df["arm"].tolist() == ["b", "b"]
    np.testing.assert_array_equal(df["excess_loss"], r.final("excess_loss")[2:])
    c = sel.curves(["dist_V"])
    assert sorted(set(c["run"])) == [2, 3] and len(c) == 2 * len(r.steps)
    assert r.select(arm="b").select(seed=1).to_dataframe()["run"].tolist() == [3]


def test_without_pandas_the_error_says_how_to_install_it(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    for f in (runs[0].to_dataframe, runs[0].curves):
        with pytest.raises(ImportError, match=r"pip install 'scbjax\[tables\]'"):
            f()


def test_the_sweep_table_has_the_setting_columns_of_to_dataframe(runs):
    for r, names in ((runs[0], ["dataset", "batch", "lr_V", "lr_A", "lam"]),
                     (runs[1], ["dataset"] + [f"{k}_{p}" for k in ("batch", "lr_V", "lr_A", "lam")
                                              for p in (0, 1)])):
        rows, df = table_rows(r), r.to_dataframe()
        cols = list(rows[0])
        assert cols[cols.index("Q") + 1:cols.index("steps")] == names
        for k in names:  # numbers, exactly the saved values
            assert [type(x[k]) for x in rows] == [int if k.startswith(("batch", "dataset"))
                                                  else float] * len(r)
            np.testing.assert_array_equal(np.asarray([x[k] for x in rows], df[k].dtype), df[k])
    rows = table_rows(runs[1])
    assert [(x["batch_0"], x["batch_1"], x["lr_V_1"]) for x in rows] == [(4, 8, 0.02),
                                                                       (2, 6, 0.03)]
    assert b"lr_V_0,lr_V_1" in csv_bytes(rows) and b",0.03," in csv_bytes(rows)
    summary, _ = summarize(rows)
    assert [d["batch_1"] for d in summary] == [8, 6] and "batch_1" in format_summary(summary)


def test_a_runset_stacks_its_specs_with_a_spec_column(runs):
    from scbjax.engine.store import RunSet
    rs = RunSet(one=runs[0], two=runs[1])
    df = rs.to_dataframe()
    assert df.columns[0] == "spec" and len(df) == len(runs[0]) + len(runs[1])
    assert df["spec"].tolist() == ["one"] * 4 + ["two"] * 2
    np.testing.assert_array_equal(df[df.spec == "one"]["rel_dist_A"],
                                  runs[0].final("rel_dist_A"))
    assert df[df.spec == "one"]["batch_1"].isna().all()  # a column only "two" has
    long = rs.curves("dist_A")
    assert len(long) == sum(len(r) * len(r.steps) for r in runs)
    assert set(long["spec"]) == {"one", "two"} and set(long["metric"]) == {"dist_A"}
