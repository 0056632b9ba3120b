"""jaxfund.checkpoint: atomic, checksummed files that restore a training state exactly or fail
with an error naming the path; params (and model state) alone from a full checkpoint or an
exported file. (Bitwise resume of fit is tested in test_train.py.)"""

import json
import os
import subprocess
import sys
import textwrap

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


# ------------------------------------------------------------------ params-only restore and export

WRITERS = ("save", "export")  # a full Adam TrainState checkpoint, or an exported params file


def _mlp(hidden=(50,)):
    return models.MLP(20, hidden, 2)


def _params(hidden=(50,), dtype=jnp.float32):
    return _mlp(hidden).init(jax.random.key(0), dtype)


def _batch_stats(width=50, keys=("mean", "var")):
    values = {"mean": jnp.linspace(-1.0, 1.0, width), "var": jnp.linspace(0.5, 2.0, width)}
    return {"batch_stats": {k: values[k] for k in keys}}


def _write(writer, path, params, model_state=None):
    if writer == "save":
        state = train.TrainState.create(params, optimizers.adam(lr=1e-3), model_state=model_state)
        checkpoint.save(path, state, {"epoch": 2})
    else:
        checkpoint.export(path, params, model_state, {"hidden": [50]})


def _assert_bitwise_equal(got, expected):
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("template", ["arrays", "shapes"])
@pytest.mark.parametrize("with_model_state", [False, True], ids=["no_model_state", "batch_stats"])
@pytest.mark.parametrize("writer", WRITERS)
def test_restore_params_reads_both_kinds_of_file(tmp_path, writer, with_model_state, template):
    path = tmp_path / "weights"
    params = _params()
    model_state = _batch_stats() if with_model_state else None
    _write(writer, path, params, model_state)
    like_params = _mlp().init(jax.random.key(1))  # other values: only the structure is used
    like_state = None if model_state is None else jax.tree.map(jnp.zeros_like, model_state)
    if template == "shapes":
        like_params, like_state = jax.eval_shape(lambda: (like_params, like_state))
    got_params, got_state = checkpoint.restore_params(path, like_params, like_state)
    _assert_bitwise_equal(got_params, params)
    _assert_bitwise_equal(got_state, {} if model_state is None else model_state)
    assert isinstance(got_params[0]["w"], jax.Array)


def test_fine_tune_adam_checkpoint_with_sgd(course, tmp_path):
    path = tmp_path / "ckpt"
    model, adam, state = _setup(course)
    batch = (jnp.asarray(course.x_train[:64]), jnp.asarray(course.y_train[:64]))
    state, _ = train.make_train_step(model.apply, None, adam)(state, batch)
    checkpoint.save(path, state)
    saved = jax.tree.map(np.asarray, state.params)
    params, model_state = checkpoint.restore_params(path, model.init(jax.random.key(1)))
    _assert_bitwise_equal(params, saved)
    assert model_state == {}
    sgd = optimizers.sgd(lr=0.1)
    grads = jax.grad(lambda p: tasks.loss("multiclass")(model.apply(p, batch[0]), batch[1]))(
        params)
    expected = jax.tree.map(lambda p, g: np.asarray(p - 0.1 * g), params, grads)
    tuned, metrics = train.make_train_step(model.apply, None, sgd)(
        train.TrainState.create(params, sgd), batch)
    assert int(tuned.step) == 1 and np.isfinite(metrics["loss"])
    assert jax.tree.structure(tuned.opt_state) == jax.tree.structure(sgd.init(saved))
    for got, want, before in zip(jax.tree.leaves(tuned.params), jax.tree.leaves(expected),
                                 jax.tree.leaves(saved)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert not np.array_equal(got, before)


def test_restore_of_an_export_file_is_a_structure_error(course, tmp_path):
    path = tmp_path / "weights"
    _, _, state = _setup(course)
    checkpoint.export(path, state.params)
    n_params, n_state = len(jax.tree.leaves(state.params)), len(jax.tree.leaves(state))
    with pytest.raises(ValueError, match=rf"checkpoint {path} does not match the structure of "
                                         rf"`like`: it has {n_params} leaves, `like` has "
                                         rf"{n_state}; differing leaves: \.opt_state.*"
                                         r"read it with restore_params"):
        checkpoint.restore(path, state)


# (id, model state in the file, template params, template model state, error); the entries are
# functions, so the arrays are made by the test, not at import
MISMATCHES = [
    ("params_shape", None, lambda: _params((60,)), None,
     r"leaf \.params\[0\]\['b'\] has shape \(50,\) and dtype float32, but `params` expects "
     r"shape \(60,\)"),
    ("params_dtype", None, lambda: _params(dtype=jnp.bfloat16), None,
     r"leaf \.params\[0\]\['b'\] has shape \(50,\) and dtype float32, but `params` expects "
     r"shape \(50,\) and dtype bfloat16"),
    ("params_structure", None, lambda: _params((50, 50)), None,
     r"does not match the structure of `params`: it has 4 params leaves, `params` has 6; "
     r"differing leaves: \.params\[2\]\['b'\], \.params\[2\]\['w'\]"),
    ("model_state_missing_in_template", _batch_stats, _params, None,
     r"has model state \(2 leaves, e\.g\. \.model_state\['batch_stats'\]\['mean'\]\) "
     r"but `model_state` has none: pass `model_state=` like the model's state"),
    ("model_state_missing_in_file", None, _params, _batch_stats,
     r"has no model state, but `model_state` has 2 leaves"),
    ("model_state_shape", _batch_stats, _params, lambda: _batch_stats(60),
     r"leaf \.model_state\['batch_stats'\]\['mean'\] has shape \(50,\) and dtype float32, "
     r"but `model_state` expects shape \(60,\)"),
    ("model_state_structure", _batch_stats, _params, lambda: _batch_stats(keys=("mean",)),
     r"does not match the structure of `model_state`: it has 2 model_state leaves, "
     r"`model_state` has 1; differing leaves: \.model_state\['batch_stats'\]\['var'\]"),
]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("file_state, like_params, like_state, error",
                         [row[1:] for row in MISMATCHES], ids=[row[0] for row in MISMATCHES])
def test_restore_params_mismatch_names_path_and_leaf(tmp_path, writer, file_state, like_params,
                                                     like_state, error):
    path = tmp_path / "weights"
    _write(writer, path, _params(), file_state and file_state())
    with pytest.raises(ValueError, match=f"checkpoint {path}.*{error}"):
        checkpoint.restore_params(path, like_params(), like_state and like_state())


# (id, how to spoil an exported file, exception, message)
BAD_FILES = [
    ("missing", lambda path, blob: path.unlink(), FileNotFoundError,
     "checkpoint file not found: {path}"),
    ("truncated", lambda path, blob: path.write_bytes(blob[: len(blob) // 2]), ValueError,
     "checkpoint {path} is corrupt or truncated"),
    ("flipped_byte", lambda path, blob: path.write_bytes(blob[:-3] + bytes([blob[-3] ^ 0xFF])
                                                         + blob[-2:]),
     ValueError, "checkpoint {path} is corrupt or truncated"),
    ("not_a_checkpoint", lambda path, blob: path.write_bytes(b"not a checkpoint"), ValueError,
     "{path} is not a jaxfund checkpoint"),
]


@pytest.mark.parametrize("spoil, exception, message", [row[1:] for row in BAD_FILES],
                         ids=[row[0] for row in BAD_FILES])
def test_restore_params_missing_or_corrupt_file(tmp_path, spoil, exception, message):
    path = tmp_path / "weights"
    params = _params()
    checkpoint.export(path, params)
    spoil(path, path.read_bytes())
    with pytest.raises(exception, match=message.format(path=path)):
        checkpoint.restore_params(path, params)


_SHARDED_RESTORE = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jaxfund import checkpoint, optimizers, train

    mesh = Mesh(np.array(jax.devices()), ("data",))
    params = {"w": jnp.arange(64.0).reshape(8, 8), "b": jnp.arange(8.0)}
    model_state = {"batch_stats": {"mean": jnp.arange(8.0) / 8}}
    writer = sys.argv[2]
    if writer == "save":
        checkpoint.save(sys.argv[1], train.TrainState.create(
            params, optimizers.adam(lr=1e-3), model_state=model_state))
    else:
        checkpoint.export(sys.argv[1], params, model_state)
    specs = {"w": P("data"), "b": P(), "mean": P("data")}
    put = lambda path, a: jax.device_put(
        jnp.zeros_like(a), NamedSharding(mesh, specs[path[-1].key]))
    like = jax.tree_util.tree_map_with_path(put, (params, model_state))
    got = checkpoint.restore_params(sys.argv[1], *like)
    report = {
        "devices": len(jax.devices()),
        "same_sharding": [a.sharding == b.sharding
                          for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(like))],
        "shard_shapes": [sorted({tuple(s.data.shape) for s in a.addressable_shards})
                         for a in jax.tree.leaves(got)],
        "equal": [bool(np.array_equal(a, b))
                  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves((params, model_state)))],
    }
    print(json.dumps(report))
""")


@pytest.mark.parametrize("writer", WRITERS)
def test_restore_params_places_leaves_with_the_template_sharding(tmp_path, writer):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _SHARDED_RESTORE, str(tmp_path / "w"), writer],
                         env=env, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    assert report["same_sharding"] == [True, True, True]
    # leaves in key order: params 'b' (replicated), params 'w' (rows over 8 devices), mean
    assert report["shard_shapes"] == [[[8]], [[1, 8]], [[1]]]
    assert report["equal"] == [True, True, True]
