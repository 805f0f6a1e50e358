"""Given tasks and starts: shapes checked before anything compiles (the array and the shape
it needs named), one without the run axis repeated over the runs; ``execute(quiet=True)``."""

import jax
import numpy as np
import pytest

import scbjax as s
from scbjax.core.model import Params
from scbjax.engine.executor import execute
from scbjax.engine.spec import RunSpec, check_input, grid
from scbjax.util.errors import ConfigError

CFG = s.TrainConfig(task=s.TaskConfig(N=4, T=5, Q=2), phases=(s.Phase(10, 4, 0.05, 0.05, 0.0),),
                    log_every=5)
TASK = s.make_task(jax.random.PRNGKey(3), CFG.task)  # one task: P [4, 4], mu [4], q [5, 4]
WRONG_N = s.make_task(jax.random.PRNGKey(3), s.TaskConfig(N=5, T=5, Q=2))


def stack(tree, R=2):
    return jax.tree.map(lambda a: np.stack([np.asarray(a)] * R), tree)


def params(V_shape, A_shape):
    return Params(V=np.zeros(V_shape, np.float32), A=np.full(A_shape, 0.2, np.float32))


CASES = [  # (tasks, params0, field, message)
    (stack(WRONG_N), None, "x.tasks.P", "shape (2, 5, 5), want (R=2, N=4, N=4)"),
    (stack(TASK, 3), None, "x.tasks.P", "shape (3, 4, 4), want (R=2, N=4, N=4)"),
    (WRONG_N, None, "x.tasks.P", "shape (5, 5), want (N=4, N=4)"),
    (s.Task(P=stack(TASK).P, mu=np.asarray(TASK.mu), q=stack(TASK).q), None, "x.tasks.mu",
     "shape (4,), want (R=2, N=4) (or (4,): one for every run)"),
    (s.Task(P=stack(TASK).P, mu=stack(TASK).mu, q=np.zeros((2, 4, 4))), None, "x.tasks.q",
     "shape (2, 4, 4), want (R=2, T=5, N=4)"),
    ({"P": stack(TASK).P}, None, "x.tasks", "want a Task"),
    (None, params((2, 4, 4), (2, 4, 4)), "x.params0.A", "shape (2, 4, 4), want (R=2, T=5, N=4)"),
    (None, params((3, 3), (5, 3)), "x.params0.V", "shape (3, 3), want (N=4, N=4)"),
    (None, params((2, 4, 4), (5, 4)), "x.params0.A", "want (R=2, T=5, N=4) (or (5, 4)"),
    (None, TASK, "x.params0", "want a Params"),
    (s.Task(P=np.full((4, 4), "a"), mu=TASK.mu, q=TASK.q), None, "x.tasks.P", "numeric"),
]


@pytest.mark.parametrize("tasks, params0, field, message", CASES)
def test_wrong_shapes_are_named_before_anything_compiles(tmp_path, tasks, params0, field,
                                                         message):
    spec = RunSpec(CFG, grid(range(2)), tasks=tasks, params0=params0)
    with pytest.raises(ConfigError) as e:
        execute({"x": spec}, tmp_path / "out", quiet=True)
    assert e.value.field == field and message in str(e.value), str(e.value)
    assert not (tmp_path / "out" / "x").exists()


def test_a_function_returning_a_wrong_shape_is_named_too(tmp_path):
    spec = RunSpec(CFG, grid(range(2)), tasks=lambda rs: WRONG_N)
    with pytest.raises(ConfigError) as e:
        execute({"y": spec}, tmp_path / "out", quiet=True)
    assert e.value.field == "y.tasks.P"


def test_one_task_and_start_are_repeated_over_the_runs(tmp_path, capsys):
    start = params((4, 4), (5, 4))
    one = RunSpec(CFG, grid(range(3)), tasks=TASK, params0=start)
    many = RunSpec(CFG, grid(range(3)), tasks=stack(TASK, 3), params0=stack(start, 3))
    a = execute({"a": one}, tmp_path / "a", quiet=True)["a"]
    assert capsys.readouterr() == ("", "")  # quiet: not one progress line
    b = execute({"a": many}, tmp_path / "b")["a"]
    assert "step" in capsys.readouterr().err  # not quiet: the progress lines
    assert a.meta["hash"] == b.meta["hash"]  # the same numbers, the same hash
    np.testing.assert_array_equal(a["task/P"], np.stack([TASK.P] * 3))
    for k in a.arrays:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    got = check_input(TASK, "tasks", CFG, 3)
    assert got.P.shape == (3, 4, 4) and got.q.shape == (3, 5, 4)

