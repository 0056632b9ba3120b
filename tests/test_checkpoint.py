"""jaxfund.checkpoint: atomic, checksummed files that restore a training state exactly or fail
with an error naming the path. (Bitwise resume of fit is tested in test_train.py.)"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxfund import checkpoint, data, models, optimizers, tasks, train


@pytest.fixture(scope="module")
def course():
    return data.load("classification")


def _setup(ds, hidden=(50,)):
    model = models.MLP(ds.num_features, hidden, tasks.output_features("multiclass", 2))
    tx = optimizers.adam(lr=1e-3)
    return model, tx, train.TrainState.create(model.init(jax.random.key(0)), tx)


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_checkpoint_roundtrip_is_atomic(course, tmp_path, monkeypatch):
    path = tmp_path / "state.ckpt"
    model, tx, state = _setup(course)
    checkpoint.save(path, state, {"epoch": 0, "config": {"hidden": [50]}})
    assert os.listdir(tmp_path) == ["state.ckpt"]
    restored, extra = checkpoint.restore(str(path), state)
    assert _leaves_equal(restored, state) and extra == {"epoch": 0, "config": {"hidden": [50]}}
    assert restored.step.dtype == jnp.int32

    def killed(*args):
        raise KeyboardInterrupt("killed mid-write")

    changed = state.replace(step=state.step + 7)
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, changed, {"epoch": 1})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["state.ckpt"]  # no temp file left, old checkpoint intact
    restored, extra = checkpoint.restore(path, state)
    assert int(restored.step) == 0 and extra["epoch"] == 0
    checkpoint.save(path, changed, {"epoch": 1})
    assert int(checkpoint.restore(path, state)[0].step) == 7
    with pytest.raises(TypeError, match="extra must be JSON-serialisable"):
        checkpoint.save(path, state, {"bad": object()})


def test_missing_or_corrupt_checkpoint_names_the_path(course, tmp_path):
    _, _, state = _setup(course)
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match=f"checkpoint file not found: {missing}"):
        checkpoint.restore(missing, state)
    path = tmp_path / "ckpt"
    checkpoint.save(path, state)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=f"checkpoint {path} is corrupt or truncated"):
        checkpoint.restore(path, state)
    flipped = bytearray(blob)
    flipped[-3] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        checkpoint.restore(path, state)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{path} is not a jaxfund checkpoint"):
        checkpoint.restore(path, state)


def test_restore_into_different_structure_or_shape(course, tmp_path):
    path = tmp_path / "ckpt"
    _, _, state = _setup(course)
    checkpoint.save(path, state)
    _, _, wider = _setup(course, hidden=(60,))
    with pytest.raises(ValueError, match=r"leaf \.params\[0\]\['b'\] has shape \(50,\).*expects "
                                         r"shape \(60,\)"):
        checkpoint.restore(path, wider)
    sgd_state = train.TrainState.create(state.params, optax.sgd(0.1, momentum=0.9))
    with pytest.raises(ValueError, match=f"checkpoint {path} does not match the structure"):
        checkpoint.restore(path, sgd_state)
    with jax.enable_x64(True):
        f64 = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a,
                           state)
        with pytest.raises(ValueError, match="dtype float32, but `like` expects .* float64"):
            checkpoint.restore(path, f64)


