"""Bad input: one ConfigError naming the field (property-based with hypothesis)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax.util.errors import ConfigError

FAST = settings(max_examples=25, deadline=None)


def field_of(fn) -> str:
    with pytest.raises(ConfigError) as e:
        fn()
    return e.value.field


@FAST
@given(N=st.integers(-5, 1))
def test_small_vocabulary_rejected(N):
    assert field_of(lambda: s.TaskConfig(N=N, T=4, Q=1).validate()) == "N"


@FAST
@given(T=st.integers(1, 20), extra=st.integers(1, 10))
def test_Q_above_T_rejected(T, extra):
    assert field_of(lambda: s.TaskConfig(N=3, T=T, Q=T + extra).validate()) == "Q"


@FAST
@given(Q=st.integers(-3, 0))
def test_Q_below_one_rejected(Q):
    assert field_of(lambda: s.TaskConfig(N=3, T=4, Q=Q).validate()) == "Q"


@FAST
@given(N=st.integers(2, 12), T=st.integers(1, 12), data=st.data())
def test_valid_sizes_accepted_and_shapes(N, T, data):
    Q = data.draw(st.integers(1, T))
    cfg = s.TaskConfig(N=N, T=T, Q=Q)
    assert cfg.validate() is cfg


@FAST
@given(bad=st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(float("nan")),
                     st.just(float("inf"))),
       which=st.sampled_from(["lr_V", "lr_A"]))
def test_non_positive_or_nan_learning_rate_rejected(bad, which):
    ph = dataclasses.replace(s.Phase(10), **{which: bad})
    assert field_of(lambda: s.TrainConfig(phases=(ph,)).validate()) == f"phases[0].{which}"


@FAST
@given(batch=st.integers(-4, 0))
def test_non_positive_batch_rejected(batch):
    cfg = s.TrainConfig(phases=(s.Phase(10), s.Phase(10, batch=batch)))
    assert field_of(cfg.validate) == "phases[1].batch"


@FAST
@given(lam=st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.just(float("nan"))))
def test_negative_lambda_rejected(lam):
    cfg = s.TrainConfig(phases=(s.Phase(10, lam=lam),))
    assert field_of(cfg.validate) == "phases[0].lam"


def test_other_config_fields_named():
    assert field_of(lambda: s.TrainConfig(optimizer="lbfgs").validate()) == "optimizer"
    assert field_of(lambda: s.TrainConfig(log_every=0).validate()) == "log_every"
    assert field_of(lambda: s.TrainConfig(phases=()).validate()) == "phases"
    assert field_of(lambda: s.TrainConfig(phases=(s.Phase(0),)).validate()) == "phases[0].steps"
    assert field_of(lambda: s.TrainConfig(projection_A="l2").validate()) == "projection_A"
    assert field_of(lambda: s.TaskConfig(mix=1.5).validate()) == "mix"
    assert field_of(lambda: s.TaskConfig(alpha=0.0).validate()) == "alpha"
    assert field_of(lambda: s.TaskConfig(N=4.5).validate()) == "N"
    # inside a TrainConfig the task fields are named with their path
    assert field_of(lambda: s.make_train(s.TrainConfig(task=s.TaskConfig(N=1)))) == "task.N"


def good_arrays(N=3, T=4):
    P = np.full((N, N), 1.0 / N)
    q = np.zeros((T, N))
    q[0] = 0.5
    q[1] = 0.5
    return P, q


@FAST
@given(N=st.integers(2, 6), j=st.integers(0, 5), delta=st.floats(0.01, 1.0))
def test_non_column_stochastic_P_rejected(N, j, delta):
    P, q = good_arrays(N)
    P[0, j % N] += delta
    assert field_of(lambda: s.task_from_arrays(P, q)) == "P"


def test_row_stochastic_but_not_column_stochastic_P_rejected():
    P = np.array([[0.9, 0.1], [0.5, 0.5]])  # rows sum to 1, columns do not
    _, q = good_arrays(2)
    assert field_of(lambda: s.task_from_arrays(P, q)) == "P"


@FAST
@given(i=st.integers(0, 2))
def test_mu_with_zero_rejected(i):
    P, q = good_arrays(3)
    mu = np.full(3, 0.5)
    mu[i] = 0.0
    assert field_of(lambda: s.task_from_arrays(P, q, mu=mu)) == "mu"


def test_chain_with_unreachable_token_rejected_via_mu():
    P = np.array([[1.0, 1.0], [0.0, 0.0]])  # token 1 never reached: mu = (1, 0)
    _, q = good_arrays(2)
    assert field_of(lambda: s.task_from_arrays(P, q)) == "mu"


@FAST
@given(field=st.sampled_from(["P", "q", "mu"]), data=st.data())
def test_nan_rejected(field, data):
    P, q = good_arrays(3)
    mu = np.full(3, 1 / 3)
    arr = {"P": P, "q": q, "mu": mu}[field]
    idx = tuple(data.draw(st.integers(0, d - 1)) for d in arr.shape)
    arr[idx] = np.nan
    assert field_of(lambda: s.task_from_arrays(P, q, mu=mu)) == field


@FAST
@given(shape=st.sampled_from([(3,), (3, 2), (2, 3, 3), (4, 4)]))
def test_wrong_shapes_rejected(shape):
    _, q = good_arrays(3)
    P = np.full(shape, 1.0 / shape[0]) if len(shape) > 0 else np.ones(())
    assert field_of(lambda: s.task_from_arrays(P, q)) in ("P", "q")


def test_q_shape_and_sparsity():
    P, q = good_arrays(3)
    assert field_of(lambda: s.task_from_arrays(P, q[:, :2])) == "q"
    assert field_of(lambda: s.task_from_arrays(P, q, Q=1)) == "q"
    t = s.task_from_arrays(P, q, Q=2)
    np.testing.assert_allclose(t.mu, 1 / 3, rtol=1e-5)


def test_error_message_names_field():
    with pytest.raises(ConfigError, match=r"^Q: sparsity must be <= T = 4"):
        s.TaskConfig(N=3, T=4, Q=9).validate()
