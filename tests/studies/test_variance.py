"""The l1 weight rule (scbjax.optim.l1) and the variance study's layout, claims and censoring."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scbjax.optim import l1
from scbjax.util.errors import ConfigError
from scbjax.studies import variance as v
from scbjax.studies._variance_tables import UNREG
from scbjax.studies.base import Fit
from scbjax.core.losses import batch_loss, population_loss
from scbjax.core.model import Params
from scbjax.core.sampler import sample
from scbjax.engine.store import Runs
from scbjax.core.task import TaskConfig, make_task

# --- the rule on hand-made inputs ---------------------------------------------------------


def test_rule_by_hand():
    s = l1.NoiseStats(c=0.5, s2=2.0)
    # sqrt(0.01 * 0.5 * 2 / 4) * ((34 - 2) / 4) ** 0.25 = 0.05 * 8 ** 0.25
    assert math.isclose(l1.lam_rule(s, 34, 2, 4, 0.01, C=1.0), 0.05 * 8 ** 0.25, rel_tol=1e-12)
    assert l1.lam_rule(s, 5, 5, 4, 0.01) == 0.0  # no off-support entry: no threshold
    assert l1.lam_rule(l1.NoiseStats(0.0, 2.0), 34, 2, 4, 0.01) == 0.0


@settings(max_examples=40, deadline=None)
@given(T=st.integers(2, 5000), Q=st.integers(1, 8), B=st.integers(1, 512),
       lr=st.floats(1e-5, 1.0), C=st.floats(0.01, 10.0))
def test_rule_scales_as_derived(T, Q, B, lr, C):
    if Q >= T:
        return
    s = l1.NoiseStats(c=0.07, s2=0.8)
    lam = l1.lam_rule(s, T, Q, B, lr, C)
    assert lam > 0
    assert math.isclose(l1.lam_rule(s, T, Q, 4 * B, lr, C), lam / 2, rel_tol=1e-9)
    assert math.isclose(l1.lam_rule(s, T, Q, B, lr / 4, C), lam / 2, rel_tol=1e-9)
    assert math.isclose(l1.lam_rule(s, T, Q, B, lr, 2 * C), 2 * lam, rel_tol=1e-9)
    T2 = Q + 16 * (T - Q)  # 16x the off-support entries: 2x lambda
    assert math.isclose(l1.lam_rule(s, T2, Q, B, lr, C), 2 * lam, rel_tol=1e-9)


@pytest.mark.parametrize("kw, field", [
    ({"T": 0}, "T"), ({"T": 4.0}, "T"), ({"Q": 9}, "Q"), ({"batch": 0}, "batch"),
    ({"batch": True}, "batch"), ({"lr_A": -1.0}, "lr_A"), ({"lr_A": float("nan")}, "lr_A"),
    ({"lr_A": "0.1"}, "lr_A"), ({"C": float("inf")}, "C")])
def test_rule_rejects_bad_input_naming_the_field(kw, field):
    args = {"T": 8, "Q": 2, "batch": 8, "lr_A": 0.01, "C": 1.0, **kw}
    with pytest.raises(ConfigError) as e:
        l1.lam_rule(l1.NoiseStats(0.1, 0.1), **args)
    assert e.value.field == field


def test_seed_task_is_the_task_the_engine_trains_on():
    from scbjax.core.keys import seed_keys, task_of as seed_task
    from scbjax.sim.train import Phase, TrainConfig, make_stepper

    cfg = TrainConfig(task=TaskConfig(N=5, T=7, Q=2), phases=(Phase(4, 2, 0.01, 0.01),))
    stepper = make_stepper(cfg)
    for s in (0, 3, l1.TUNE_SEED):
        got = stepper.init(seed_keys(np.asarray([s]))[0]).task
        want = seed_task(s, cfg.task)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_default_lam_none_and_rule():
    cfg = TaskConfig(N=4, T=16, Q=2)
    assert l1.default_lam(cfg, 8, 0.01, "none") == 0.0
    assert l1.default_lam(cfg, 8, 0.01, "rule") == l1.lam_for(cfg, 8, 0.01) > 0
    with pytest.raises(ConfigError):
        l1.default_lam(cfg, 8, 0.01, "yes")


# --- the statistics against their definitions (oracles) -------------------------------------


def _task(N=3, T=6, Q=2, seed=3):
    return make_task(jax.random.PRNGKey(seed), TaskConfig(N=N, T=T, Q=Q))


def test_curvature_is_the_preconditioned_hessian_on_the_affine_set():
    task = _task()
    truth = Params(V=task.P, A=task.q)
    c = l1.noise_stats(task, 2, n=10).c
    grad_A = jax.grad(lambda A: population_loss(Params(task.P, A), task))
    q = np.asarray(task.q)
    for k in range(q.shape[1]):
        off = np.flatnonzero(q[:, k] == 0)
        d = np.zeros_like(q)
        d[off[0], k], d[off[1], k] = 1.0, -1.0  # an affine direction off the support
        _, hd = jax.jvp(grad_A, (truth.A,), (jnp.asarray(d),))
        curv = float(np.sum(d * np.asarray(hd))) / 2  # d^T H d / |d|^2
        assert math.isclose(curv / float(task.mu[k]), c, rel_tol=1e-3)


def test_noise_is_the_batch_one_gradient_variance_off_the_support():
    """s2 = mean over columns k of Var(dL/dA[t, k]) / mu_k^2 at the truth, batch 1, any
    off-support t (Monte Carlo of the engine's own per-sample gradient)."""
    task = _task()
    s2 = l1.noise_stats(task, 2, n=40_000).s2
    b = sample(jax.random.PRNGKey(7), task, 100_000)
    truth = Params(V=task.P, A=task.q)

    def one(tok, qry, y):
        one_b = type(b)(tokens=tok[None], query=qry[None], target=y[None])
        return jax.grad(lambda A: batch_loss(Params(task.P, A), one_b))(truth.A)

    g_BxTxN = np.asarray(jax.jit(jax.vmap(one))(b.tokens, b.query, b.target), np.float64)
    q, mu = np.asarray(task.q), np.asarray(task.mu, np.float64)
    per_k = []
    for k in range(q.shape[1]):
        off = q[:, k] == 0
        per_k.append(np.mean(g_BxTxN[:, off, k] ** 2) / mu[k] ** 2)
    assert math.isclose(s2, float(np.mean(per_k)), rel_tol=0.05)


# --- the study's layout ------------------------------------------------------------------


def test_layout_of_every_mode():
    full = v.MODES["full"]
    assert full.samples[1] >= 4 * full.samples[0] and max(full.Ts) / min(full.Ts) >= 16
    for mode in ("tiny", "quick"):  # full's specs: the same code at other sizes
        su = v.MODES[mode]
        specs = v.runs(su)
        assert su.samples[1] >= 4 * su.samples[0]
        assert max(su.Ts) / min(su.Ts) >= (16 if mode != "tiny" else 2)
        for name, s in specs.items():
            s.validate(name)
            seeds = {}
            for r in s.runs:
                seeds.setdefault((r.label_dict["arm"], r.label_dict.get("lr")), set()).add(
                    r.seed)
            assert max(r.seed for r in s.runs) < l1.TUNE_SEED
            ppd = [sd for (a, _), sd in seeds.items() if a.startswith("ppd")]
            assert all(sd == ppd[0] for sd in ppd)  # every ppd arm on the same tasks/data
            for r in s.runs:
                lam = r.setting("lam")
                if r.label_dict["arm"] == "ppd_l1":
                    cfg = s.config
                    assert lam == v.rule_lams(cfg)
                    assert lam[0] == 0 and all(x > 0 for x in lam[1:])
                else:
                    assert lam == (0.0,)
    assert max(v.MODES["quick"].Ts) >= 1024 and max(v.MODES["full"].Ts) >= 4096


def test_tuning_seeds_are_disjoint_from_the_reported_ones():
    tune = {r.seed for s in v.runs(v.TUNE).values() for r in s.runs}
    for su in v.MODES.values():
        rep = {r.seed for s in v.runs(su).values() for r in s.runs}
        assert not tune & rep
    assert l1.TUNE_SEED in tune


# --- censoring and the claim logic on hand-made tables ---------------------------------------


def _runs(Y_RxL, samples_L, labels=None):
    R, L = np.asarray(Y_RxL).shape
    arrays = {"seeds": np.arange(R), "steps": np.arange(L),
              "samples": np.tile(np.asarray(samples_L), (R, 1)),
              "metrics/rel_dist_A": np.asarray(Y_RxL, float)}
    return Runs(arrays, {"label_names": []}, "hand")


def test_samples_to_eps_counts_never_as_censored():
    r = _runs([[1.0, 0.6, 0.4, 0.2], [1.0, 0.9, 0.8, 0.7], [1.0, np.nan, 0.1, 0.1],
               [0.2, 0.5, 0.5, 0.5]], [0, 10, 20, 30])
    s = v.samples_to(r, 0.5)
    assert s[0] == 20 and np.isinf(s[1]) and s[2] == 20 and s[3] == 0
    s3 = v.samples_to(r, 0.3)
    assert s3[0] == 30 and np.isinf(s3[1]) and s3[2] == 20 and s3[3] == 0


def _fit(lo, hi):
    return Fit(b=(lo + hi) / 2, lo=lo, hi=hi, a=0.0, x=np.ones(2), med=np.ones(2), undefined=0)


SU = v.Setup(N=10, Q=2, Ts=(64, 256, 1024), samples=(100, 400), seeds=2, sgd_seeds=2,
             extra=(16, 4, 1024))


def _rows(values):
    """values: (T, samples, arm) -> (rel_dist_A, rel_dist_V)."""
    return [{"N": 10, "Q": 2, "T": T, "B": 8, "samples": n, "arm": a, "rel_dist_A": A,
             "rel_dist_V": V} for (T, n, a), (A, V) in values.items()]


def _good_table():
    vals = {}
    for T, grow in ((64, 1.0), (256, 2.0), (1024, 4.0)):
        for a in UNREG:
            vals[(T, 100, a)] = (0.2 * grow, 0.2 * grow)
            vals[(T, 400, a)] = (0.25 * grow, 0.25 * grow)
        vals[(T, 100, "ppd_l1")] = (0.2, 0.2)
        vals[(T, 400, "ppd_l1")] = (0.1, 0.1)
    return vals


def _fits(l1_lo_hi=(-0.1, 0.1), unreg_lo_hi=(0.3, 0.6)):
    f = {(a, 400, "rel_dist_A"): _fit(*unreg_lo_hi) for a in UNREG}
    f[("ppd_l1", 400, "rel_dist_A")] = _fit(*l1_lo_hi)
    return f


def test_variance_claim_pass_and_fail():
    rows = _rows(_good_table())
    assert v.check_variance(_fits(), rows, SU)
    assert not v.check_variance(_fits(unreg_lo_hi=(-0.05, 0.6)), rows, SU)  # not above 0
    assert not v.check_variance(_fits(l1_lo_hi=(0.1, 0.35)), rows, SU)  # overlaps
    bad = _good_table()
    bad[(1024, 400, "sgd_const")] = (0.1, 0.1)  # SGD improves with 4x samples
    assert not v.check_variance(_fits(), _rows(bad), SU)
    nan = _fits()
    nan[("ppd", 400, "rel_dist_A")] = _fit(float("-inf"), float("inf"))  # censored: unbounded
    assert not v.check_variance(nan, rows, SU)


def test_small_batch_claim_pass_and_fail():
    vals = _good_table()
    assert v.check_small_batch(_rows(vals), SU)
    v2 = dict(vals)
    v2[(256, 400, "sgd_decay")] = (0.05, 0.5)  # an unregularized arm closer in A at T=256
    assert not v.check_small_batch(_rows(v2), SU)
    v3 = dict(vals)
    v3[(1024, 400, "ppd")] = (0.8, 0.09)  # closer in V
    assert not v.check_small_batch(_rows(v3), SU)
    v4 = dict(vals)
    v4[(1024, 100, "ppd_l1")] = (0.05, 0.2)  # does not fall with the larger budget
    assert not v.check_small_batch(_rows(v4), SU)
    v5 = dict(vals)
    v5[(64, 400, "ppd")] = (0.01, 0.01)  # T = 64 < T_large is not part of the claim
    assert v.check_small_batch(_rows(v5), SU)


def test_default_decision():
    vals = _good_table()
    assert v.decide_default(_rows(vals), SU) == "rule"
    vals[(1024, 400, "ppd_l1")] = (0.1, 1.06 * vals[(1024, 400, "ppd")][1])  # V worse
    assert v.decide_default(_rows(vals), SU) == "none"
    vals[(1024, 400, "ppd_l1")] = (2.0, 0.1)  # A worse
    assert v.decide_default(_rows(vals), SU) == "none"


def test_extra_claim_pass_and_fail():
    def rows(p_s, p_l, l_s, l_l):
        return [{"N": 16, "Q": 4, "T": 1024, "B": 8, "samples": n, "arm": a, "rel_dist_A": x}
                for (a, n), x in {("ppd", 100): p_s, ("ppd", 400): p_l, ("ppd_l1", 100): l_s,
                                  ("ppd_l1", 400): l_l}.items()]
    assert v.check_extra(rows(0.5, 0.6, 0.3, 0.2), SU)
    assert not v.check_extra(rows(0.5, 0.4, 0.3, 0.2), SU)  # ppd falls
    assert not v.check_extra(rows(0.5, 0.6, 0.55, 0.2), SU)  # l1 not below at the small
