"""Phase is the one declaration of per-phase settings: everything else derives from its fields."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import scbjax as s
from scbjax.app import sweep
from scbjax.app.cli import build_parser
from scbjax.engine.spec import RunSpec, run
from scbjax.optim import registry
from scbjax.sim.config import HPARAMS, PER_RUN, Phase
from scbjax.sim.step import RunSettings, default_settings, make_stepper
from scbjax.util import fields
from scbjax.util.errors import ConfigError

CFG = s.TrainConfig(task=s.TaskConfig(N=3, T=4, Q=1), phases=(Phase(4, 2), Phase(4, 4)),
                    log_every=2)


def test_per_run_fields_are_the_marked_phase_fields():
    marked = tuple(f.name for f in dataclasses.fields(Phase) if f.metadata.get("per_run"))
    assert PER_RUN == marked == ("batch", "lr_V", "lr_A", "lam")
    assert HPARAMS == ("lr_V", "lr_A", "lam")  # the float ones reach the optimizer


def test_everything_per_run_derives_from_phase():
    axes = {f.name for f in dataclasses.fields(sweep.Axes)}
    assert set(PER_RUN) <= axes and {"lr", "dataset"} <= axes
    assert set(default_settings(CFG).phase) == set(PER_RUN)
    assert set(RunSpec(CFG, (run(0),)).settings()) == set(PER_RUN) | {"dataset"}
    opts = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]
            ._actions}
    assert {f.name for f in dataclasses.fields(Phase)} <= opts
    with pytest.raises(ConfigError, match="not a per-run setting"):
        run(0, momentum=0.9)
    with pytest.raises(ConfigError, match="not a per-run hyperparameter"):
        s.Hparams(momentum=jnp.ones(2))
    with pytest.raises(ConfigError):
        RunSettings.of({"lr_V": 1})


@pytest.mark.parametrize("name", PER_RUN)
def test_one_bound_checks_a_field_in_config_run_and_sweep(name):
    """The bound of a Phase field rejects the same value wherever it enters."""
    op, x = dataclasses.fields(Phase)[[f.name for f in dataclasses.fields(Phase)].index(name)
                                      ].metadata["bound"]
    bad = (x - 1 if op == ">=" else x) if name == "batch" else (-1.0 if op == ">=" else 0.0)
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(CFG, phases=(dataclasses.replace(CFG.phases[0], **{name: bad}),)
                            ).validate()
    assert e.value.field == f"phases[0].{name}"
    with pytest.raises(ConfigError) as e:
        RunSpec(CFG, (run(0, **{name: bad}),)).validate("x")
    assert e.value.field == f"x.runs[0].{name}"
    with pytest.raises(ConfigError) as e:
        sweep.SweepSpec(base=CFG, axes=sweep.Axes(**{name: (bad,)})).validate()
    assert e.value.field == f"axes.{name}"
    fields.check_bound(Phase, name, getattr(Phase(1), name), name)  # the default passes


def test_every_float_per_run_field_reaches_the_optimizer_at_its_phase():
    """The step passes each HPARAMS field by name, with the value of the step's phase: an
    optimizer whose update is the injected values themselves shows them in the parameters."""
    names = []

    def echo(config):
        def update(g, state, params=None, **extra):
            names.append(sorted(k for k in extra if k in HPARAMS))
            return s.Params(V=jnp.full_like(g.V, extra["lr_V"] + 10 * extra["lam"]),
                            A=jnp.full_like(g.A, extra["lr_A"])), state

        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)

    registry.register_optimizer("echo_test", echo)
    cfg = dataclasses.replace(CFG, optimizer="echo_test", projection_V="none",
                              projection_A="none",
                              phases=(Phase(2, 2, 0.1, 0.2, 0.0), Phase(2, 2, 0.3, 0.4, 0.05)))
    st = make_stepper(cfg)
    s0 = st.init(s.seed_keys([0])[0])
    s1, _ = st.step(s0, jnp.asarray(0, jnp.int32), 2, False)  # phase 0
    s2, _ = st.step(s0, jnp.asarray(2, jnp.int32), 2, False)  # phase 1
    assert names[0] == sorted(HPARAMS)
    np.testing.assert_allclose(s1.params.V - s0.params.V, 0.1, rtol=1e-6)
    np.testing.assert_allclose(s1.params.A - s0.params.A, 0.2, rtol=1e-6)
    np.testing.assert_allclose(s2.params.V - s0.params.V, 0.3 + 0.5, rtol=1e-6)
    np.testing.assert_allclose(s2.params.A - s0.params.A, 0.4, rtol=1e-6)
