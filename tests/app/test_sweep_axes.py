"""Sweep axes as researchers mean them (issue 19, 4): a samples budget per phase, zipped axes,
per-phase axes, their labels, and every refusal naming its field."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from scbjax.app import sweep_axes as ax
from scbjax.app.sweep import (Axes, SweepSpec, load_spec, run_sweep, spec_from_dict,
                              spec_to_dict, specs)
from scbjax.engine.store import load_runs
from scbjax.util.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TASK = {"N": 4, "T": 5, "Q": 2}


def spec(phases=None, axes=None, seeds=2, **kw) -> dict:
    phases = phases or [{"steps": 3, "batch": 2, "lr_V": 0.05, "lr_A": 0.05}]
    return {"name": "ax", "seeds": seeds, "base": {"task": TASK, "log_every": 2,
                                                   "phases": phases}, "axes": axes or {}, **kw}


def all_runs(ss) -> list:
    return [(name, sp, i) for name, sp in ss.items() for i in range(len(sp.runs))]


def test_equal_samples_budget_gives_every_run_the_budget(tmp_path):
    """samples = 16 over batch [2, 4] (then 8 samples at batch 2): 8 and 4 steps (one compiled
    group per step count), and every run's final samples in the table (counted by the trainer)
    is the budget; the runs are addressed by their per-phase label batch_0 in the store."""
    s = spec_from_dict(spec([{"samples": 16, "batch": 2, "lr_V": 0.05, "lr_A": 0.05},
                             {"samples": 8, "batch": 2}], {"phases[0].batch": [2, 4]}))
    ss = specs(s)
    assert sorted(ss) == ["ppd_N4_T5_Q2_steps4-4", "ppd_N4_T5_Q2_steps8-4"]
    for name, sp in ss.items():
        b = sp.settings()["batch"][:, 0]
        assert set(b * sp.config.phases[0].steps) == {16}, name
    res = run_sweep(s, tmp_path / "out", quiet=True)
    rows = res["rows"]
    assert len(rows) == 4
    assert {r["samples"] for r in rows} == {24}
    assert {(r["batch_0"], r["batch_1"], r["steps"]) for r in rows} == {(2, 2, 12), (4, 2, 8)}
    runs = load_runs(tmp_path / "out" / "groups" / "ppd_N4_T5_Q2_steps4-4")
    assert runs.select(batch_0=4).samples[:, -1].tolist() == [24, 24]
    with pytest.raises(KeyError):
        runs.select(batch_0=2)


def test_two_phase_budget_per_run_and_round_trip():
    """A budget in each phase, phase 1's batch a per-phase axis: every run draws 16 then 24
    samples; the spec survives spec_to_dict -> JSON -> spec_from_dict."""
    s = spec_from_dict(spec([{"samples": 16, "batch": 2}, {"samples": 24, "batch": 2}],
                            {"phases[1].batch": [2, 4, 8]}))
    ss = specs(s)
    assert len(ss) == 3
    for name, sp in ss.items():
        b = sp.settings()["batch"]
        steps = np.asarray([p.steps for p in sp.config.phases])
        np.testing.assert_array_equal(b * steps, np.tile([16, 24], (len(sp.runs), 1)), name)
        assert (b[:, 0] == 2).all()
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(s)))) == s


def test_zip_gives_paired_settings_not_their_product():
    """zip batch with lr_V: 3 settings (a value may repeat), crossed with lam's 2: 6, not 18;
    the pairs are those of equal index; counted as such for the size check."""
    axes = {"batch": [2, 2, 4], "lr_V": [0.01, 0.02, 0.03], "lam": [0.0, 1e-3],
            "zip": [["batch", "lr_V"]]}
    s = spec_from_dict(spec(axes=axes, seeds=1))
    ((_, sp),) = specs(s).items()
    st = sp.settings()
    assert len(sp.runs) == 6
    pairs = {(int(b), round(float(lr), 6)) for b, lr in zip(st["batch"][:, 0], st["lr_V"][:, 0])}
    assert pairs == {(2, 0.01), (2, 0.02), (4, 0.03)}
    np.testing.assert_allclose(sorted(set(st["lam"][:, 0].tolist())), [0.0, 1e-3])
    sizes, total, per_group = ax.count(s.axes, s.phase_axes)
    assert (sizes, total, per_group) == ({"batch+lr_V": 3, "lam": 2}, 6, 6)
    crossed = spec_from_dict(spec(axes={k: v for k, v in axes.items() if k != "zip"}
                                  | {"batch": [2, 4]}, seeds=1))
    assert len(next(iter(specs(crossed).values())).runs) == 12


def test_per_phase_axis_changes_only_that_phase():
    """phases[1].batch = [4, 8] sets phase 1 only (labelled batch_1); a plain batch axis in a
    two-phase sweep sets both phases (labelled 4/4)."""
    two = [{"steps": 3, "batch": 2, "lr_V": 0.05, "lr_A": 0.05},
           {"steps": 3, "batch": 2, "lr_V": 0.02, "lr_A": 0.02}]
    ((_, sp),) = specs(spec_from_dict(spec(two, {"phases[1].batch": [4, 8]}, seeds=1))).items()
    st = sp.settings()
    assert st["batch"].tolist() == [[2, 4], [2, 8]]
    np.testing.assert_allclose(st["lr_V"], [[0.05, 0.02]] * 2)
    assert [r.label_dict["batch_1"] for r in sp.runs] == [4, 8]
    assert [r.label_dict["batch"] for r in sp.runs] == ["2/4", "2/8"]
    ((_, sp),) = specs(spec_from_dict(spec(two, {"batch": [4, 8]}, seeds=1))).items()
    assert sp.settings()["batch"].tolist() == [[4, 4], [8, 8]]
    assert [r.label_dict["batch"] for r in sp.runs] == ["4/4", "8/8"]
    assert "batch_1" not in sp.runs[0].label_dict


def test_per_phase_axis_zipped_with_lr():
    two = [{"steps": 2, "batch": 2}, {"steps": 2, "batch": 2}]
    s = spec_from_dict(spec(two, {"phases[1].batch": [4, 8], "lr": [0.01, 0.02],
                                  "zip": [["phases[1].batch", "lr"]]}, seeds=1))
    ((_, sp),) = specs(s).items()
    st = sp.settings()
    assert st["batch"].tolist() == [[2, 4], [2, 8]]
    np.testing.assert_allclose(st["lr_A"], [[0.01, 0.01], [0.02, 0.02]])


TWO = [{"steps": 3, "batch": 2}, {"steps": 3, "batch": 2}]
BAD = [  # (phases, axes, field, words in the message)
    ([{"samples": 10, "batch": 2}], {"batch": [2, 4]}, "base.phases[0].samples", ["10", "4"]),
    ([{"samples": 9, "batch": 2}], {}, "base.phases[0].samples", ["9", "2"]),
    ([{"samples": 16, "steps": 8}], {}, "base.phases[0]", ["steps or samples"]),
    ([{"samples": "16"}], {}, "base.phases[0].samples", ["integer"]),
    ([{"samples": 0}], {}, "base.phases[0].samples", [">= 1"]),
    (None, {"batch": [2, 4], "lr_V": [0.1], "zip": [["batch", "lr_V"]]}, "axes.zip[0]",
     ["unequal", "batch 2", "lr_V 1"]),
    (None, {"batch": [2, 4], "zip": [["batch", "lr_X"]]}, "axes.zip[0]", ["unknown", "lr_X"]),
    (None, {"batch": [2, 4], "lam": [0, 1e-3], "lr_V": [0.1, 0.2],
            "zip": [["batch", "lam"], ["lr_V", "batch"]]}, "axes.zip[1]", ["twice"]),
    (None, {"batch": [2, 4], "zip": [["batch", "batch"]]}, "axes.zip[0]", ["twice"]),
    (None, {"batch": [2, 4], "N": [4, 5], "zip": [["batch", "N"]]}, "axes.zip[0]", ["static"]),
    (None, {"batch": [2, 4], "zip": [["batch"]]}, "axes.zip[0]", ["two or more"]),
    (None, {"batch": [2, 4], "zip": [["batch", "lam"]]}, "axes.zip[0]", ["no values"]),
    (None, {"batch": [2, 2], "lam": [0, 0], "zip": [["batch", "lam"]]}, "axes.zip[0]",
     ["repeated"]),
    (None, {"zip": ["batch"]}, "axes.zip[0]", ["list"]),
    (TWO, {"phases[2].batch": [4]}, "axes.phases[2].batch", ["2 phase"]),
    (TWO, {"phases[1].steps": [4]}, "axes.phases[1].steps", ["per-run"]),
    (TWO, {"phases[x].batch": [4]}, "axes.phases[x].batch", ["phases[i]"]),
    (TWO, {"phases[01].batch": [4]}, "axes.phases[01].batch", ["phases[1].batch"]),
    (TWO, {"phases[1].batch": [4], "batch": [2, 4]}, "axes.phases[1].batch", ["every phase"]),
    (TWO, {"phases[1].lr_V": [0.1], "lr": [0.1, 0.2]}, "axes.phases[1].lr_V", ["lr"]),
    (TWO, {"phases[1].batch": [2.5]}, "axes.phases[1].batch[0]", ["integer"]),
    (TWO, {"phases[1].batch": [0]}, "axes.phases[1].batch", [">= 1"]),
    (TWO, {"phases[1].batch": [4, 4]}, "axes.phases[1].batch", ["repeated"]),
    (TWO, {"phases[1].batch": 4}, "axes.phases[1].batch", ["list"]),
    (TWO, {"phases[1].batch": []}, "axes.phases[1].batch", ["at least one"]),
]


@pytest.mark.parametrize("phases,axes,field,words", BAD, ids=[c[2] for c in BAD])
def test_bad_axes_and_budgets_name_the_field(phases, axes, field, words):
    d = spec(copy.deepcopy(phases), copy.deepcopy(axes))
    with pytest.raises(ConfigError) as e:
        spec_from_dict(d)
    assert e.value.field == field, str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_dataclass_form_is_checked_the_same():
    """SweepSpec(phase_axes=..., samples=..., axes=Axes(zip=...)) as the TOML form."""
    base = spec_from_dict(spec(TWO, seeds=1)).base
    good = SweepSpec(base=base, samples=(8, 0), axes=Axes(lr=(0.01, 0.02), zip=(
        ("lr", "phases[0].batch"),)), phase_axes=(("phases[0].batch", (2, 4)),)).validate()
    assert sorted(specs(good)) == ["ppd_N4_T5_Q2_steps2-3", "ppd_N4_T5_Q2_steps4-3"]
    for kw, field in [({"samples": (8,)}, "samples"), ({"samples": (8, -1)},
                                                       "base.phases[1].samples"),
                      ({"phase_axes": (("phases[0].batch", [2]),)}, "phase_axes[0]"),
                      ({"axes": Axes(zip=(("lr",),))}, "axes.zip[0]")]:
        with pytest.raises(ConfigError) as e:
            SweepSpec(base=base, **kw).validate()
        assert e.value.field == field, (kw, str(e.value))


def test_equal_samples_example_loads():
    s = load_spec(ROOT / "examples" / "equal_samples.toml")
    ss = specs(s)
    for name, sp in ss.items():
        b = sp.settings()["batch"]
        steps = np.asarray([p.steps for p in sp.config.phases])
        assert set((b * steps).sum(1)) == {sum(s.samples)}, name
    assert len(ss) == 3 and {len(sp.runs) for sp in ss.values()} == {8}
    pairs = {(r.label_dict["batch_0"], r.label_dict["lr_V_0"]) for sp in ss.values()
             for r in sp.runs}
    assert pairs == {(32, 0.05), (64, 0.07), (128, 0.1)}
