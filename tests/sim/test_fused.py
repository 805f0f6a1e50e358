"""The fused Pallas step (sim.fused) against the XLA step: the same uniforms and batches bit for
bit, the same parameters to float32 rounding, in Pallas' interpreter on the CPU; and the
kernel lowers for CUDA (Triton) from a CPU-only jaxlib."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scbjax.core.sampler import fold_in, sample, task_cdfs, uniform
from scbjax.core.task import TaskConfig
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim import fused
from scbjax.sim.config import Phase, TrainConfig
from scbjax.sim.step import RunSettings, make_stepper
from scbjax.util.errors import ConfigError

PH = (Phase(steps=5, batch=4, lr_V=0.5, lr_A=0.5, lam=0.02),
      Phase(steps=3, batch=3, lr_V=0.3, lr_A=0.4, lam=0.01))


def _cfg(optimizer="ppd", N=5, T=6, **kw):
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=2), phases=PH, optimizer=optimizer,
                       log_every=3, **kw)


def test_draw_is_the_samplers_bit_for_bit():
    cfg = _cfg(N=6, T=7)
    st = make_stepper(cfg).init(jax.random.PRNGKey(3))
    cdfs = task_cdfs(st.task)
    draw = jax.jit(fused.draw, static_argnums=(3, 4))
    ref_of = jax.jit(lambda key: (uniform(key, (3, 10)), sample(key, st.task, 3)))
    for t in (0, 1, 41):
        u, b = draw(st.k_data, t, cdfs, 7, 3)
        u_ref, ref = ref_of(fold_in(st.k_data, t))
        assert np.array_equal(np.asarray(u), np.asarray(u_ref))
        for name in ("tokens", "query", "target"):
            assert np.array_equal(np.asarray(getattr(b, name)), np.asarray(getattr(ref, name)))


def _advance(cfg, masked, batch_R=((4, 3), (2, 2), (3, 1)), lr_R=(0.5, 0.5, 0.5)):
    """Every run's state after the 3 log intervals of both phases (one call: the steps read
    their phase), with per-run batches [R, phase] (padded to 4; masked) and phase-0 lr_V, and
    the metrics."""
    stepper = make_stepper(cfg)
    R = len(batch_R)
    settings = RunSettings.of({
        "batch": jnp.asarray(batch_R, jnp.int32),
        "lr_V": jnp.stack([jnp.asarray([lr, 0.3], jnp.float32) for lr in lr_R]),
        "lr_A": jnp.tile(jnp.asarray(cfg.per_phase("lr_A"), jnp.float32), (R, 1)),
        "lam": jnp.tile(jnp.asarray(cfg.per_phase("lam"), jnp.float32), (R, 1)),
        "dataset": jnp.zeros(R, jnp.int32)})
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(R)])
    state = jax.vmap(stepper.init)(keys, settings)
    adv = jax.jit(jax.vmap(stepper.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4))
    state, m = adv(state, np.asarray([0, 3, 5], np.int32), np.asarray([3, 2, 3], np.int32),
                   4, masked)
    return stepper, state, m


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


CASES = [dict(optimizer="sgd"),
         dict(mu="true", prox="soft", order="project_prox", projection_A="none"),
         dict(mu="estimate", prox="precond"),
         dict(mu="estimate", prox="none", projection_V="none")]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_fused_advance_matches_the_xla_step(kw):
    cfg = _cfg(**kw)
    masked = kw.get("prox") != "soft"  # one case unmasked (every run at the padded batch)
    batch = ((4, 3), (2, 2), (3, 1)) if masked else ((4, 4),) * 3
    # unprojected A, run 1 at lr 0.5 reaches inf in the last step: rounding differences grow
    # with it, past any float32 tolerance (divergence: the next test)
    lr = (0.5, 0.5, 0.5) if masked else (0.5, 0.2, 0.5)
    off, s_off, m_off = _advance(dataclasses.replace(cfg, fused="off"), masked, batch, lr)
    on, s_on, m_on = _advance(dataclasses.replace(cfg, fused="on"), masked, batch, lr)
    assert on.fused and not off.fused
    _close(s_on.params.V, s_off.params.V)
    _close(s_on.params.A, s_off.params.A)
    assert not np.array_equal(np.asarray(s_on.params.A), np.asarray(on.init(
        jax.random.PRNGKey(0)).params.A)[None])  # the runs moved
    for a, b in zip(jax.tree.leaves(s_on.opt_state), jax.tree.leaves(s_off.opt_state)):
        _close(a, b)
    assert np.array_equal(np.asarray(s_on.diverged_step), np.asarray(s_off.diverged_step))
    for k in m_on:
        _close(m_on[k], m_off[k])


def test_fused_divergence_step_is_the_xla_steps():
    cfg = _cfg("sgd")
    lr = (0.5, 3e3, 1e5)
    _, s_off, _ = _advance(dataclasses.replace(cfg, fused="off"), True, lr_R=lr)
    _, s_on, _ = _advance(dataclasses.replace(cfg, fused="on"), True, lr_R=lr)
    div = np.asarray(s_off.diverged_step)
    assert div[0] == -1 and (div[1:] > 0).all()
    assert np.array_equal(np.asarray(s_on.diverged_step), div)


@pytest.mark.parametrize("kw, masked", [(dict(optimizer="sgd", phases=PH[:1]), False),
                                        (dict(mu="estimate", prox="precond"), True),
                                        (dict(order="project_prox", projection_A="none"), True)])
def test_kernel_lowers_for_cuda(kw, masked):
    cfg = dataclasses.replace(_cfg(), **kw)
    stepper = make_stepper(dataclasses.replace(cfg, fused="off"))
    state = jax.vmap(stepper.init)(jnp.stack([jax.random.PRNGKey(s) for s in range(2)]))
    run = fused.make_fused_interval(stepper.config, 4, masked, interpret=False)

    def f(s, start, length):
        return jax.vmap(lambda s: run(s, task_cdfs(s.task), start, length))(s)

    text = jax.jit(f).trace(state, 0, 3).lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("xla.gpu.triton") == 1  # the whole interval: one Triton kernel


def test_auto_off_cpu_and_coverage():
    cfg = _cfg()
    assert not make_stepper(cfg).fused  # auto on a CPU: today's step
    assert fused.resolve_fused(cfg, backend="gpu", devices=1)
    assert not fused.resolve_fused(cfg, backend="gpu", devices=2)
    assert not fused.resolve_fused(dataclasses.replace(cfg, fused="off"), backend="gpu",
                                   devices=1)
    for other in (dict(optimizer="adam"), dict(prox="affine_exact"), dict(loss="ce"),
                  dict(projection_V="simplex"), dict(model="softmax"), dict(bits="paired")):
        c = dataclasses.replace(cfg, **other)
        assert fused.covered(c) is not None
        assert not fused.resolve_fused(c, backend="gpu", devices=1)
    assert fused.covered(cfg, max_dataset=8) == "a fixed dataset"
    assert not fused.resolve_fused(cfg, grad="autodiff", backend="gpu", devices=1)
    with pytest.raises(ConfigError, match="fused"):
        make_stepper(dataclasses.replace(cfg, optimizer="adam", fused="on"))


def test_fused_is_not_in_the_run_hash():
    runs = grid(range(2))
    keys = {RunSpec(_cfg(fused=f), runs).key() for f in ("auto", "on", "off")}
    assert len(keys) == 1
    assert RunSpec(_cfg(), runs).key() != RunSpec(_cfg(mu="estimate"), runs).key()


def test_auto_checks_the_kernel_on_the_device_and_falls_back_when_it_fails(monkeypatch, capsys):
    monkeypatch.setattr(fused, "GPU_BACKENDS", (jax.default_backend(),))  # "a GPU"
    monkeypatch.setattr(fused, "_CHECKED", {})
    import scbjax.sim.step as step_module

    def real(config, max_batch, masked):  # interpreted: the CPU is the "GPU" here
        return fused.make_fused_interval(config, max_batch, masked, interpret=True)
    monkeypatch.setattr(step_module, "make_fused_interval", real)
    cfg = _cfg(N=4, T=5, mu="estimate")
    assert make_stepper(cfg).fused  # the check ran and agreed
    assert list(fused._CHECKED.values()) == [None] and capsys.readouterr().err == ""

    def wrong(config, max_batch, masked):  # a kernel that compiles but computes other numbers
        run = real(config, max_batch, masked)

        def interval(state, cdfs, start, length):
            state, loss = run(state, cdfs, start, length)
            p = state.params
            return dataclasses.replace(state, params=dataclasses.replace(p, V=p.V * 1.01)), loss
        return interval

    monkeypatch.setattr(step_module, "make_fused_interval", wrong)
    other = dataclasses.replace(cfg, mu="true")
    assert not make_stepper(other).fused
    assert "differs from the XLA step" in capsys.readouterr().err
    monkeypatch.setattr(step_module, "make_fused_interval",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("no PTX")))
    assert not make_stepper(dataclasses.replace(cfg, prox="none")).fused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: no PTX" in err and "XLA step" in err
    again = dataclasses.replace(cfg, prox="none", init="random", log_every=2)
    assert not make_stepper(again).fused  # checked once per kernel variant, not per value
    assert capsys.readouterr().err == ""
