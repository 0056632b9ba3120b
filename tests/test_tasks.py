"""jaxfund.tasks: the one home of the task (head width, loss, prediction, metric, inference)."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxfund import tasks

# (task, outputs, targets, torch loss on the same values, prediction, metric value)
ROWS = {
    "regression": (np.array([[0.5], [2.0], [-1.0]], np.float32), np.array([1.0, 2.0, 0.0],
                   np.float32), lambda o, t: torch.nn.functional.mse_loss(o[:, 0], t),
                   [0.5, 2.0, -1.0], ("mse", (0.25 + 0 + 1) / 3)),
    "binary": (np.array([[0.5], [-2.0], [3.0]], np.float32), np.array([1, 1, 0], np.int32),
               lambda o, t: torch.nn.functional.binary_cross_entropy_with_logits(
                   o[:, 0], t.float()), [1, 0, 1], ("accuracy", 1 / 3)),
    "multiclass": (np.array([[0.5, 2.0, -1.0], [3.0, 0.0, 1.0]], np.float32),
                   np.array([1, 2], np.int32),
                   lambda o, t: torch.nn.functional.cross_entropy(o, t.long()), [1, 0],
                   ("accuracy", 0.5)),
}


@pytest.mark.parametrize("task", tasks.TASKS)
def test_loss_prediction_metric(task):
    outputs, targets, torch_loss, prediction, (metric, value) = ROWS[task]
    ref = torch_loss(torch.from_numpy(outputs), torch.from_numpy(targets)).item()
    np.testing.assert_allclose(tasks.loss(task)(jnp.asarray(outputs), jnp.asarray(targets)), ref,
                               rtol=1e-6)
    np.testing.assert_array_equal(tasks.predict(task, jnp.asarray(outputs)), prediction)
    assert tasks.metric(task) == metric
    got = tasks.metrics(task, jnp.asarray(outputs), jnp.asarray(targets))
    assert set(got) == {metric}
    np.testing.assert_allclose(got[metric], value, rtol=1e-6)


def test_output_features():
    assert tasks.output_features("regression") == 1
    assert tasks.output_features("binary", 2) == 1
    assert tasks.output_features("multiclass", 10) == 10
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        tasks.output_features("multiclass", 1)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        tasks.output_features("multiclass", 2.0)


@pytest.mark.parametrize("call", [tasks.loss, tasks.metric, tasks.output_features,
                                  lambda t: tasks.predict(t, jnp.zeros((2, 1)))])
def test_unknown_task(call):
    with pytest.raises(ValueError,
                       match="task must be one of 'regression', 'binary', 'multiclass'"):
        call("ranking")


@pytest.mark.parametrize("targets,expected", [
    (np.array([0, 1, 1, 0]), ("binary", 2)),
    (np.array([2, 0, 1], np.int32), ("multiclass", 3)),
    (np.array([0, 4]), ("multiclass", 5)),
    (np.array([0.5, 1.5]), ("regression", 0)),
    (np.array([151.0, 75.0]), ("regression", 0)),  # diabetes: whole numbers stored as floats
    (jnp.array([1, 0]), ("binary", 2)),
])
def test_infer(targets, expected):
    assert tasks.infer(targets) == expected


@pytest.mark.parametrize("targets,match", [
    (np.array([-1, 0, 1]), "class labels must be 0 .. K-1, got the label -1"),
    (np.array([0, 0]), "at least 2 classes"),
    (np.zeros((2, 2), np.int32), "1-D"),
    (np.array([], np.int32), "non-empty"),
])
def test_infer_rejects(targets, match):
    with pytest.raises(ValueError, match=match):
        tasks.infer(targets)
