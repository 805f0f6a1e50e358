"""The scaling study's statistics and claim logic, without training: the bootstrap exponent fit
on synthetic stage lengths, stage lengths on hand-made curves, and the claims' PASS/FAIL on
hand-made tables of exponents."""

import numpy as np
import pytest

from scbjax.optim import l1
from scbjax.studies import scaling
from scbjax.studies.base import Fit, fit_exponent
from scbjax.studies.scaling import (check_shrink, check_stage1, check_stage2, check_transfer,
                                    speedups, stage_lengths)

XS = np.asarray([16, 32, 64, 128, 256], float)


def synthetic(b: float, seeds: int = 8, sigma: float = 0.3, c: float = 30.0, seed: int = 0):
    """Lengths c x^b times lognormal noise, one row per x."""
    rng = np.random.default_rng(seed)
    return c * XS[:, None] ** b * np.exp(sigma * rng.standard_normal((XS.size, seeds)))


@pytest.mark.parametrize("b", [0.0, 0.25, 1.0, 2.0])
def test_fit_recovers_a_known_exponent_within_its_interval(b):
    f = fit_exponent(XS, synthetic(b, seed=int(10 * b)))
    assert f.lo <= b <= f.hi, f
    assert abs(f.b - b) < 0.2
    assert f.hi - f.lo < 0.6  # 8 seeds, sigma 0.3, a factor 16: a useful interval
    assert f.undefined == 0.0


def test_interval_excludes_zero_when_the_true_slope_is_one():
    for s in range(5):
        f = fit_exponent(XS, synthetic(1.0, seed=100 + s))
        assert f.lo > 0, f
    # and contains 0 for a flat length (most draws)
    hits = sum(fit_exponent(XS, synthetic(0.0, seed=200 + s)).lo <= 0
               <= fit_exponent(XS, synthetic(0.0, seed=200 + s)).hi for s in range(10))
    assert hits >= 8


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    cover = [fit_exponent(XS, synthetic(0.7, seed=1000 + s), n_boot=500).lo <= 0.7
             <= fit_exponent(XS, synthetic(0.7, seed=1000 + s), n_boot=500).hi
             for s in range(100)]
    # a percentile bootstrap of medians of 8 is somewhat narrow; loose bounds
    assert 0.8 <= np.mean(cover) <= 1.0


def test_fit_is_deterministic_and_handles_censoring():
    Y = synthetic(1.0)
    f0, f1 = fit_exponent(XS, Y), fit_exponent(XS, Y)
    assert (f0.b, f0.lo, f0.hi) == (f1.b, f1.lo, f1.hi)
    Y1 = Y.copy()
    Y1[-1, :1] = np.inf  # 1 of 8 censored at the largest x: few resamples lose their median
    f = fit_exponent(XS, Y1)
    assert np.isfinite(f.b) and np.isfinite(f.lo) and np.isfinite(f.hi)
    assert 0 < f.undefined < 0.025
    assert f.b >= fit_exponent(XS, Y).b  # censoring can only raise the median
    Y1[-1, :2] = np.inf  # 2 of 8: over 2.5% of the resamples have no slope
    f = fit_exponent(XS, Y1)
    assert np.isfinite(f.b) and f.lo == -np.inf and f.hi == np.inf
    assert not check_stage1(f) and not check_stage2(fit(1, .9, 1.1), f, f, f)
    Y2 = Y.copy()
    Y2[-1, :5] = np.inf  # most censored: no median, no slope, an unbounded interval
    f2 = fit_exponent(XS, Y2)
    assert np.isnan(f2.b) and f2.lo == -np.inf and f2.hi == np.inf
    assert not check_stage1(f2)


def test_stage_lengths_on_hand_made_curves():
    x = np.arange(0, 1000, 100)[None, :].repeat(2, 0)  # samples at 10 log points
    corr = np.asarray([[0, .1, .2, .4, .6, .8, .9, .95, .97, .99],
                       [0, .1, .1, .1, .1, .1, .1, .1, .1, .1]])
    ex = np.asarray([[1, .9, .9, .8, .5, .3, .09, .05, .04, .03],
                     [1, .9, .8, .7, .6, .5, .4, .3, .2, .1]])
    L = stage_lengths(corr, ex, x, 0.5, 0.1)
    np.testing.assert_array_equal(L["S1"], [400, np.inf])
    np.testing.assert_array_equal(L["S2"], [200, np.inf])  # 0.09 at 600
    np.testing.assert_array_equal(L["to_eps"], [600, 900])
    # eps relative to another run's initial excess loss (a finetuned run)
    L2 = stage_lengths(corr, ex, x, 0.5, 0.1, ex0_R=np.asarray([0.5, 0.5]))
    np.testing.assert_array_equal(L2["to_eps"], [700, np.inf])


def test_speedups_pair_seeds():
    s = speedups([100, 200, np.inf, 50], [50, np.inf, np.inf, 100])
    np.testing.assert_array_equal(s[[0, 1, 3]], [2.0, 0.0, 0.5])
    assert np.isnan(s[2])


def fit(b, lo, hi):
    return Fit(b, lo, hi, 0.0, XS, np.ones(XS.size), 0.0)


def test_stage1_claim():
    assert check_stage1(fit(0.9, 0.8, 1.0))
    assert not check_stage1(fit(0.3, -0.1, 0.7))  # interval touches 0
    assert not check_stage1(fit(0.9, np.nan, np.nan))  # undefined


def test_stage2_claim():
    s1 = fit(1.0, 0.85, 1.15)
    grows, flat = fit(0.5, 0.2, 0.8), fit(0.0, -0.2, 0.2)
    assert check_stage2(s1, fit(0.2, 0.1, 0.3), grows, flat)  # grows with N
    assert check_stage2(s1, fit(0.2, 0.1, 0.3), flat, grows)  # grows with Q
    assert not check_stage2(s1, fit(0.2, 0.1, 0.3), flat, flat)  # grows with neither
    assert not check_stage2(s1, fit(0.7, 0.5, 0.9), grows, grows)  # overlaps stage 1
    assert not check_stage2(s1, fit(1.0, 0.9, 1.1), grows, grows)  # grows like stage 1
    assert not check_stage2(s1, fit(0.2, np.nan, np.nan), grows, grows)


def test_transfer_claim():
    sc = fit(0.3, 0.2, 0.4)
    ft = {0.5: fit(0.05, -0.05, 0.15), 0.9: fit(0.0, -0.1, 0.1)}
    sp = {0.5: fit(0.25, 0.1, 0.4), 0.9: fit(0.3, 0.2, 0.4)}
    no_speedup = [0.9, 0.8, 0.5, 0.0, 0.0]
    assert check_transfer(sc, ft, sp, no_speedup)
    # rho = 0 speeds up at one T
    assert not check_transfer(sc, ft, sp, [0.9, 1.2, 0.5, 0.0, 0.0])
    # undefined speedup at rho = 0 counts as a speedup we cannot exclude
    assert not check_transfer(sc, ft, sp, [0.9, np.nan, 0.5, 0.0, 0.0])
    # finetuned interval overlapping scratch's at rho = 0.5
    assert not check_transfer(sc, {**ft, 0.5: fit(0.15, 0.05, 0.25)}, sp, no_speedup)
    # speedup not growing with T at rho = 0.9
    assert not check_transfer(sc, ft, {**sp, 0.9: fit(0.1, -0.05, 0.25)}, no_speedup)
    # a rho below RHO_STRONG is not required to pass
    weak = {0.25: fit(0.3, 0.2, 0.4)}
    assert check_transfer(sc, {**ft, **weak}, {**sp, 0.25: fit(0.0, -0.1, 0.1)}, no_speedup)


def test_shrink_claim():
    assert check_shrink({0.0: 0.8, 0.5: 1.3, 0.9: 2.0})
    assert not check_shrink({0.0: 1.2, 0.5: 1.3, 0.9: 2.0})
    assert not check_shrink({0.0: np.nan, 0.9: 2.0})


def test_specs_share_one_compile_per_setting_and_fixed_schedules():
    """Every spec is one (N, T, Q) with a single constant phase; both schedules and both arms
    ride in it as traced settings; finetuned runs share the scratch run's seed (same task,
    same data)."""
    for mode in ("tiny", "quick", "full"):
        su = scaling.MODES[mode]
        specs = scaling.runs(su)
        shapes = [(s.config.task.N, s.config.task.T, s.config.task.Q) for s in specs.values()]
        assert len(set(shapes)) == len(shapes)
        assert len(su.Ts) >= 2 and su.T_fix in su.Ts and su.N in su.Ns and su.Q in su.Qs
        for name, s in specs.items():
            s.validate(name)
            assert len(s.config.phases) == 1
            st = s.settings()
            for sched, B, lr in su.schedules:
                m = np.asarray([r.label_dict["sched"] == sched for r in s.runs])
                assert (st["batch"][m] == B).all() and np.allclose(st["lr_V"][m], lr)
                lam = l1.default_lam(s.config.task, B, lr)
                assert np.allclose(st["lam"][m], lam)
    su = scaling.MODES["quick"]
    assert max(su.Ts) / min(su.Ts) >= 16 and len(su.Ts) >= 5
    T = scaling.runs(su)[f"T{su.T_fix}"]
    seeds = {(r.label_dict["arm"], r.label_dict["rho"]): sorted(r.seed for r in T.runs
                                                                if r.label_dict["sched"] == "A")
             for r in T.runs}
    assert len(set(map(tuple, seeds.values()))) == 1


def test_finetune_start_has_the_requested_correlation():
    """The finetuned V is P1 with cos(P1 C_N, P C_N) = rho for the seed's own task P (the one
    the engine draws from the run's key)."""
    from scbjax.core.metrics import corr_V
    from scbjax.core.task import TaskConfig
    from scbjax.core.keys import task_of as seed_task

    su = scaling.MODES["tiny"]
    rr = scaling._runs(su, True, TaskConfig(N=su.N, T=8, Q=su.Q))
    p0 = scaling._starts(su.N, 8, su.Q, rr)
    for i, r in enumerate(rr):
        P = seed_task(r.seed, TaskConfig(N=su.N, T=8, Q=su.Q)).P
        if r.label_dict["arm"] == "finetune":
            assert abs(float(corr_V(p0.V[i], P)) - r.label_dict["rho"]) < 1e-3
            np.testing.assert_allclose(p0.V[i].sum(0), 1.0, atol=1e-5)
        else:
            np.testing.assert_allclose(p0.V[i], 1.0 / su.N)
        np.testing.assert_allclose(p0.A[i], 1.0 / 8)
