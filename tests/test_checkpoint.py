"""jaxfund.checkpoint: orbax checkpoints that restore a training state bit for bit (onto any
topology) or fail with one line naming the path; atomic under kill -9; fingerprints that catch
changed bytes; params (and model state) alone from any kind of checkpoint; files of the previous
single-file format still read. (Bitwise resume of fit is tested in test_train.py.)

Subprocesses (tests/_ckpt_worker.py) save in a loop and are killed, restore onto 4 devices, and
save from 2 processes."""

import glob
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import flax.linen as linen
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxfund import checkpoint, models, optimizers, train

sys.path.insert(0, str(Path(__file__).parent))
import _ckpt_worker as worker  # noqa: E402

WORKER = str(Path(__file__).with_name("_ckpt_worker.py"))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
ENV.pop("XLA_FLAGS", None)
TMP = ".orbax-checkpoint-tmp"  # the suffix of a save orbax has not committed yet


def one_line(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, (word, message)


def assert_bitwise_equal(got, expected):
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert isinstance(a, jax.Array)
        assert (a.shape, a.dtype) == (np.shape(b), b.dtype)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def random_bits(tree, seed=0):
    """``tree`` with every leaf replaced by random bits of its shape and dtype (NaN payloads,
    subnormals and all), so a roundtrip that changes any bit shows."""
    def bits(key, shape, dtype):
        if dtype == jnp.bool_:
            return jax.random.bits(key, shape, jnp.uint8) % 2 == 1
        if jnp.issubdtype(dtype, jnp.complexfloating):
            part = jnp.float32 if dtype == jnp.complex64 else jnp.float64
            return jax.lax.complex(bits(jax.random.fold_in(key, 0), shape, jnp.dtype(part)),
                                   bits(jax.random.fold_in(key, 1), shape, jnp.dtype(part)))
        unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[dtype.itemsize]
        return jax.lax.bitcast_convert_type(jax.random.bits(key, shape, unsigned), dtype)

    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, [
        bits(jax.random.key(seed * 1000 + i), leaf.shape, jnp.dtype(leaf.dtype))
        for i, leaf in enumerate(leaves)])


# ------------------------------------------------------------------------------------ states

def _mlp(hidden=(50,)):
    return models.MLP(20, hidden, 2)


def _params(hidden=(50,), dtype=jnp.float32):
    return _mlp(hidden).init(jax.random.key(0), dtype)


def _mlp_state(tx):
    return train.TrainState.create(_params(), tx)


class _BatchNormNet(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool):
        x = linen.Dense(8)(x)
        x = linen.BatchNorm(use_running_average=not train)(x)
        return linen.Dense(2)(x)


def _linen_state():
    params, model_state = models.from_linen(_BatchNormNet()).init(jax.random.key(0),
                                                                  jnp.zeros((4, 5)))
    return train.TrainState.create(params, optimizers.adam(lr=1e-3), model_state)


def _typed():
    """Leaves of every width and kind, and empty nodes (which hold no leaves)."""
    return {"step": jnp.zeros((), jnp.int32), "f32": jnp.zeros((3, 4)),
            "bf16": jnp.zeros((5,), jnp.bfloat16), "f16": jnp.zeros((2, 2), jnp.float16),
            "i8": jnp.zeros((7,), jnp.int8), "u8": jnp.zeros((3,), jnp.uint8),
            "u32": jnp.zeros((4,), jnp.uint32), "bool": jnp.zeros((6,), bool),
            "c64": jnp.zeros((2,), jnp.complex64), "f8": jnp.zeros((4,), jnp.float8_e4m3fn),
            "empty_tuple": (), "none": None, "empty_state": optax.EmptyState()}


def _typed_x64():
    return {"f64": jnp.zeros((3,), jnp.float64), "i64": jnp.zeros((2, 2), jnp.int64),
            "u64": jnp.zeros((), jnp.uint64), "c128": jnp.zeros((2,), jnp.complex128),
            "step": jnp.zeros((), jnp.int32)}


# (id, state factory, whether it needs jax_enable_x64)
STATES = [
    ("adam", lambda: _mlp_state(optimizers.adam(lr=1e-3)), False),
    ("sgd_momentum", lambda: _mlp_state(optimizers.sgd(lr=0.1, momentum=0.9)), False),
    ("clip_chain", lambda: _mlp_state(optax.chain(optax.clip_by_global_norm(1.0),
                                                  optimizers.adam(lr=1e-3))), False),
    ("linen_batch_stats", _linen_state, False),
    ("typed_leaves", _typed, False),
    ("typed_leaves_x64", _typed_x64, True),
]


def _checkpoints_writer(async_save):
    def write(path, state, extra):
        with checkpoint.Checkpoints(path, async_save=async_save) as checkpoints:
            checkpoints.save(3, state, extra)

    def read(path, like):
        return checkpoint.Checkpoints(path).restore(like)

    return write, read


# (id, write(path, state, extra), read(path, like) -> (state, extra))
ROUNDTRIPS = [
    ("save_restore", checkpoint.save, checkpoint.restore),
    ("checkpoints_async", *_checkpoints_writer(True)),
    ("checkpoints_sync", *_checkpoints_writer(False)),
]


@pytest.mark.parametrize("write, read", [row[1:] for row in ROUNDTRIPS],
                         ids=[row[0] for row in ROUNDTRIPS])
@pytest.mark.parametrize("make, x64", [row[1:] for row in STATES], ids=[row[0] for row in STATES])
def test_roundtrip_is_bitwise(tmp_path, make, x64, write, read):
    with jax.enable_x64(x64):
        like = make()
        state = random_bits(like)
        extra = {"epoch": 3, "config": {"hidden": [50], "lr": 1e-3}, "loss": None}
        write(tmp_path / "ckpt", state, extra)
        restored, got_extra = read(tmp_path / "ckpt", like)
        assert_bitwise_equal(restored, state)
        assert got_extra == extra
        # an abstract template (shapes and dtypes only) restores the same
        abstract = jax.eval_shape(lambda: like)
        assert_bitwise_equal(read(tmp_path / "ckpt", abstract)[0], state)
    if isinstance(like, train.TrainState):
        assert restored.step.dtype == jnp.int32 and type(restored) is train.TrainState


@pytest.mark.parametrize("extra, expected", [
    (None, {}),
    ({"epoch": 2, "history": [{"loss": 0.5}], "seed": 0}, None),
    ([1, 2], None),
    ("text", None),
    ({"loss": float("inf")}, None),
])
def test_extra_roundtrips_as_json(tmp_path, extra, expected):
    checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(3)}, extra)
    assert checkpoint.restore(tmp_path / "ckpt", {"w": jnp.ones(3)})[1] == (
        extra if expected is None else expected)


@pytest.mark.parametrize("extra", [{"bad": object()}, {"set": {1, 2}}, {(1, 2): "tuple key"},
                                   {"np": np.float32(1.0)}])
@pytest.mark.parametrize("writer", ["save", "checkpoints"])
def test_non_json_extra_is_a_type_error_and_writes_nothing(tmp_path, extra, writer):
    path = tmp_path / "ckpt"
    with pytest.raises(TypeError) as excinfo:
        if writer == "save":
            checkpoint.save(path, {"w": jnp.ones(3)}, extra)
        else:
            with checkpoint.Checkpoints(path) as checkpoints:
                checkpoints.save(1, {"w": jnp.ones(3)}, extra)
    one_line(excinfo, "`extra` must be JSON-serialisable")
    assert not path.exists() or checkpoint.Checkpoints(path).steps() == []


# ------------------------------------------------------------------------------ Checkpoints

@pytest.mark.parametrize("keep, kept", [(1, [4]), (2, [3, 4]), (3, [2, 3, 4]),
                                        (None, [0, 1, 2, 3, 4])])
def test_keep_the_last_k_steps(tmp_path, keep, kept):
    with checkpoint.Checkpoints(tmp_path, keep=keep) as checkpoints:
        for step in range(5):
            checkpoints.save(step, worker.filled(step), {"step": step})
        checkpoints.wait()
        assert checkpoints.steps() == kept and checkpoints.latest_step() == 4
    # nothing else: the deleted steps are gone, also from .deleting, where they were moved first
    assert set(os.listdir(tmp_path)) - {".deleting"} == {str(s) for s in kept}
    assert not (tmp_path / ".deleting").exists() or os.listdir(tmp_path / ".deleting") == []
    fresh = checkpoint.Checkpoints(tmp_path)
    for step in kept:
        state, extra = fresh.restore(worker.filled(0), step)
        assert worker.equal(state, step) and extra == {"step": step}


@pytest.mark.parametrize("keep", [0, -1, 1.5, True, "3"])
def test_invalid_keep_is_a_value_error(tmp_path, keep):
    with pytest.raises(ValueError) as excinfo:
        checkpoint.Checkpoints(tmp_path, keep=keep)
    one_line(excinfo, "`keep`", repr(keep))


def test_the_directory_is_made_absolute_and_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoints = checkpoint.Checkpoints(Path("run") / "checkpoints")
    assert checkpoints.directory == str(tmp_path / "run" / "checkpoints")
    assert (tmp_path / "run" / "checkpoints").is_dir()
    assert checkpoints.steps() == [] and checkpoints.latest_step() is None
    assert checkpoints.path_of(7) == str(tmp_path / "run" / "checkpoints" / "7")
    checkpoints.close()


@pytest.mark.parametrize("second", [3, 2])
def test_steps_must_increase(tmp_path, second):
    with checkpoint.Checkpoints(tmp_path) as checkpoints:
        checkpoints.save(3, worker.filled(3))
        with pytest.raises(ValueError) as excinfo:
            checkpoints.save(second, worker.filled(second))
        one_line(excinfo, f"cannot save step {second} in {tmp_path}", "latest step is 3")


@pytest.mark.parametrize("step, exception, words", [
    (-1, ValueError, ["`step` must be >= 0, got -1"]),
    (1.0, TypeError, ["float"]),
])
def test_a_step_is_a_non_negative_integer(tmp_path, step, exception, words):
    with pytest.raises(exception) as excinfo:
        checkpoint.Checkpoints(tmp_path).save(step, worker.filled(0))
    one_line(excinfo, *words)


def test_a_step_may_be_an_integer_array(tmp_path):
    with checkpoint.Checkpoints(tmp_path) as checkpoints:
        checkpoints.save(jnp.int32(5), worker.filled(5))
    assert checkpoints.steps() == [5]


def test_async_save_copies_the_arrays_before_it_returns(tmp_path):
    with checkpoint.Checkpoints(tmp_path, async_save=True) as checkpoints:
        state = worker.filled(1)
        checkpoints.save(1, state, {"step": 1})
        for leaf in jax.tree.leaves(state):
            leaf.delete()  # as a donated buffer would be by the next train step
        checkpoints.wait()
        assert checkpoints.steps() == [1]
        restored, extra = checkpoints.restore(worker.filled(0))
        assert worker.equal(restored, 1) and extra == {"step": 1}
        checkpoints.save(2, worker.filled(2), {"step": 2})
        restored, extra = checkpoints.restore(worker.filled(0))  # waits for the save first
        assert worker.equal(restored, 2) and extra == {"step": 2}


def test_saving_is_true_only_while_a_save_is_being_written(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    with checkpoint.Checkpoints(tmp_path, async_save=True) as checkpoints:
        assert not checkpoints.saving()  # no save yet
        checkpoints.save(1, worker.filled(1))
        checkpoints.wait()
        assert not checkpoints.saving()
        monkeypatch.setattr(ocp.CheckpointManager, "is_saving_in_progress", lambda self: True)
        assert checkpoints.saving()  # what orbax reports of its background write


def test_restore_a_given_step_and_missing_ones(tmp_path):
    with checkpoint.Checkpoints(tmp_path, keep=None) as checkpoints:
        with pytest.raises(FileNotFoundError) as excinfo:
            checkpoints.restore(worker.filled(0))
        one_line(excinfo, f"no checkpoint in {tmp_path}")
        for step in (1, 2, 3):
            checkpoints.save(step, worker.filled(step), {"step": step})
        assert worker.equal(checkpoints.restore(worker.filled(0), 2)[0], 2)
        assert worker.equal(checkpoints.restore(worker.filled(0))[0], 3)
        with pytest.raises(FileNotFoundError) as excinfo:
            checkpoints.restore(worker.filled(0), 7)
        one_line(excinfo, f"no checkpoint of step 7 in {tmp_path}", "[1, 2, 3]")
    # module restore: a Checkpoints directory is its latest step, path_of(step) that step
    assert checkpoint.restore(tmp_path, worker.filled(0))[1] == {"step": 3}
    assert checkpoint.restore(checkpoints.path_of(1), worker.filled(0))[1] == {"step": 1}


def test_save_to_a_path_keeps_one_checkpoint(tmp_path):
    path = tmp_path / "ckpt"
    for step in (1, 2):
        checkpoint.save(path, worker.filled(step), {"step": step})
    state, extra = checkpoint.restore(path, worker.filled(0))
    assert worker.equal(state, 2) and extra == {"step": 2}
    assert os.listdir(tmp_path) == ["ckpt"]
    assert checkpoint.Checkpoints(path).steps() == [1]  # the second version of the one checkpoint


# ------------------------------------------------------------------------ atomicity: kill -9

def _uncommitted(directory):
    """The uncommitted step directories in ``directory``, as (name, inode) pairs."""
    if not os.path.isdir(directory):
        return set()
    return {(entry.name, entry.inode()) for entry in os.scandir(directory) if TMP in entry.name}


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the saving subprocess made no progress"
        time.sleep(0.002)


def test_kill_9_at_any_moment_leaves_the_latest_committed_step_intact(tmp_path):
    """12 SIGKILLs of a subprocess that resumes from the latest checkpoint and saves step after
    step (async, keep=2), in turn: at a random moment of its start (restore, cleanup, first
    save); once it has committed a step of its own, within 10 ms of the next uncommitted
    directory appearing (a save being written); once it has committed a step, at a random
    moment of its saving (writing, committing, deleting an old step). After each, a fresh
    Checkpoints restores every committed step exactly, the latest included. The next subprocess
    starts up while the previous one runs and waits for a line on stdin, so the kills come
    fast."""
    directory = str(tmp_path / "run")
    rng = random.Random(0)

    def spawn():  # stderr to a file: a pipe nobody reads could fill up and block the worker
        with open(tmp_path / "stderr", "a") as stderr:
            return subprocess.Popen([sys.executable, WORKER, "loop", directory], env=ENV,
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=stderr, text=True)

    def latest_step():
        return checkpoint.Checkpoints(directory).latest_step()

    running = spare = spawn()
    mid_save, latest = 0, []
    try:
        for kill in range(12):
            running, before, uncommitted = spare, latest_step(), _uncommitted(directory)
            running.stdin.write("go\n")
            running.stdin.flush()
            spare = spawn()
            if kill % 3 == 0:
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                _wait_for(lambda: (latest_step() or -1) > (-1 if before is None else before))
            if kill % 3 == 1:
                uncommitted = _uncommitted(directory)
                _wait_for(lambda: _uncommitted(directory) - uncommitted)
                time.sleep(rng.uniform(0.0, 0.01))
            elif kill % 3 == 2:
                time.sleep(rng.uniform(0.0, 0.3))
            running.kill()
            assert running.wait() == -9, (tmp_path / "stderr").read_text()
            running.stdin.close()
            mid_save += bool(_uncommitted(directory))
            checkpoints = checkpoint.Checkpoints(directory)
            for step in checkpoints.steps():
                state, extra = checkpoints.restore(worker.filled(0), step)
                assert worker.equal(state, step) and extra == {"step": step}, step
            latest.append(checkpoints.latest_step())
            checkpoints.close()
    finally:
        for process in (running, spare):
            process.kill()
            process.wait()
            process.stdin.close()
    print(f"12 kills, {mid_save} during a save; the latest step after each: {latest}")
    assert mid_save >= 6, mid_save
    assert None not in latest[1:] and latest == sorted(latest, key=lambda s: -1 if s is None else s)
    assert latest[-1] >= 7  # 8 runs committed steps, each after the last one's latest


# ------------------------------------------------------------------- corrupt or truncated

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint (by save) of a TrainState whose params are an incompressible leaf of random
    bits (stored byte for byte, so it can be found in the data files) and a float leaf."""
    path = tmp_path_factory.mktemp("saved") / "ckpt"
    state = train.TrainState(
        step=jnp.array(3, jnp.int32), opt_state=(), model_state={},
        params={"bits": jax.random.bits(jax.random.key(0), (4096,), jnp.uint32),
                "w": jax.random.normal(jax.random.key(1), (64, 64))})
    checkpoint.save(path, state, {"epoch": 3})
    return path, state


def _copy(saved, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(saved[0], path)
    (step,) = os.listdir(path)
    return path, path / step


def _flip_middle(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


SPOILS = {
    "delete": lambda file: file.unlink(),
    "truncate": lambda file: file.write_bytes(file.read_bytes()[: file.stat().st_size // 2]),
    "flip_a_byte": _flip_middle,
    "garbage": lambda file: file.write_bytes(b"garbage"),
}
# every file orbax 0.12.8 writes for a one-process checkpoint (globs relative to the step)
FILES = ["_CHECKPOINT_METADATA", "commit_success.txt", "meta/metadata",
         "meta/commit_success.txt", "state/_METADATA", "state/_sharding",
         "state/commit_success.txt", "state/manifest.ocdbt", "state/array_metadatas/process_0",
         "state/d/*", "state/ocdbt.process_0/manifest.ocdbt", "state/ocdbt.process_0/d/*"]


@pytest.mark.parametrize("spoil", SPOILS.values(), ids=SPOILS.keys())
@pytest.mark.parametrize("pattern", FILES)
def test_a_spoiled_file_is_an_error_or_changes_nothing(saved, tmp_path, pattern, spoil):
    """Whatever file of a checkpoint is deleted, cut short, changed or replaced, restore raises
    one line naming the checkpoint, or returns the saved state bit for bit: never another one."""
    path, step_dir = _copy(saved, tmp_path)
    files = [Path(f) for f in glob.glob(str(step_dir / pattern))]
    assert files, f"orbax wrote no {pattern}"
    for file in files:
        spoil(file)
    try:
        state, extra = checkpoint.restore(path, saved[1])
    except ValueError as err:
        assert "\n" not in str(err) and f"checkpoint {step_dir} is " in str(err), str(err)
    else:
        assert_bitwise_equal(state, saved[1])
        assert extra == {"epoch": 3}


def _largest_data_file(step_dir):
    return max(Path(step_dir).glob("state/ocdbt.process_0/d/*"), key=lambda f: f.stat().st_size)


def _flip_inside_the_bits_leaf(step_dir, saved_state):
    """Flips one byte inside the stored bytes of the ``bits`` leaf (found by its content)."""
    needle = np.asarray(saved_state.params["bits"]).tobytes()[8000:8032]
    for file in Path(step_dir).glob("state/**/d/*"):
        data = bytearray(file.read_bytes())
        at = bytes(data).find(needle)
        if at >= 0:
            data[at + 5] ^= 0x01
            file.write_bytes(bytes(data))
            return
    raise AssertionError("the bits leaf is not stored byte for byte")


def _write_meta(step_dir, change):
    file = Path(step_dir) / "meta" / "metadata"
    file.write_text(json.dumps(change(json.loads(file.read_text()))))


def _bump_bits_fingerprint(meta):
    fingerprints = list(meta["fingerprints"])
    fingerprints[meta["paths"].index(".params['bits']")] ^= 1
    return {**meta, "fingerprints": fingerprints}


# (id, spoil(step_dir, saved state), words of the one-line ValueError)
CORRUPT = [
    ("truncated_data_file", lambda d, s: SPOILS["truncate"](_largest_data_file(d)),
     ["is corrupt: its arrays cannot be read"]),
    ("deleted_data_file", lambda d, s: _largest_data_file(d).unlink(),
     ["is corrupt: its arrays cannot be read"]),
    ("byte_changed_in_array_data", _flip_inside_the_bits_leaf,
     ["is corrupt: leaf .params['bits'] has fingerprint",
      "its data changed after it was written"]),
    ("garbage_metadata", lambda d, s: (Path(d) / "meta" / "metadata").write_text("{garbage"),
     ["is corrupt: its metadata cannot be read", "JSONDecodeError"]),
    ("deleted_metadata", lambda d, s: (Path(d) / "meta" / "metadata").unlink(),
     ["is corrupt: its metadata cannot be read"]),
    ("metadata_of_another_format", lambda d, s: _write_meta(d, lambda m: {"a": 1}),
     ["is malformed: its metadata is not a jaxfund-checkpoint header"]),
    ("metadata_of_a_future_version",
     lambda d, s: _write_meta(d, lambda m: {**m, "format_version": 3}),
     ["has format version 3, this jaxfund reads version 2"]),
    ("metadata_lists_cut_short",
     lambda d, s: _write_meta(d, lambda m: {**m, "fingerprints": m["fingerprints"][:1]}),
     ["is malformed: its metadata has no equally long lists"]),
    ("metadata_with_a_string_shape",
     lambda d, s: _write_meta(d, lambda m: {**m, "shapes": ["4096"] + m["shapes"][1:]}),
     ["is malformed: its metadata has entries of the wrong type"]),
    ("metadata_fingerprint_changed", lambda d, s: _write_meta(d, _bump_bits_fingerprint),
     ["is corrupt: leaf .params['bits'] has fingerprint"]),
]


@pytest.mark.parametrize("spoil, words", [row[1:] for row in CORRUPT],
                         ids=[row[0] for row in CORRUPT])
@pytest.mark.parametrize("reader", ["restore", "restore_params"])
def test_a_corrupt_checkpoint_is_one_line_naming_it(saved, tmp_path, capfd, spoil, words,
                                                    reader):
    path, step_dir = _copy(saved, tmp_path)
    spoil(step_dir, saved[1])
    with pytest.raises(ValueError) as excinfo:
        if reader == "restore":
            checkpoint.restore(path, saved[1])
        else:
            checkpoint.restore_params(path, saved[1].params)
    one_line(excinfo, f"checkpoint {step_dir} ", *words)
    assert "Traceback" not in capfd.readouterr().err  # orbax's leftover reads are not shown


@pytest.mark.parametrize("make, exception, words", [
    (lambda p: None, FileNotFoundError, ["no checkpoint at {p}: it does not exist"]),
    (lambda p: p.mkdir(), FileNotFoundError, ["no checkpoint in {p}", "no committed step"]),
    (lambda p: (p / f"3{TMP}").mkdir(parents=True), FileNotFoundError,
     ["no checkpoint in {p}"]),
    (lambda p: p.write_bytes(b"not a checkpoint"), ValueError,
     ["{p} is not a jaxfund checkpoint"]),
])
def test_no_checkpoint_at_the_path(tmp_path, make, exception, words):
    path = tmp_path / "ckpt"
    make(path)
    for read in (lambda: checkpoint.restore(path, worker.filled(0)),
                 lambda: checkpoint.restore_params(path, _params())):
        with pytest.raises(exception) as excinfo:
            read()
        one_line(excinfo, *[w.format(p=path) for w in words])


# ------------------------------------------------------------------ structure, shape, dtype

@pytest.mark.parametrize("template", ["arrays", "shapes"])
def test_restore_into_a_different_structure_shape_or_dtype(tmp_path, template):
    path = tmp_path / "ckpt"
    state = _mlp_state(optimizers.adam(lr=1e-3))
    checkpoint.save(path, state)
    (step_dir,) = [path / name for name in os.listdir(path)]
    like = (lambda tree: tree) if template == "arrays" else (
        lambda tree: jax.eval_shape(lambda: tree))

    wider = like(_mlp_state(optimizers.adam(lr=1e-3)).replace(params=_params((60,))))
    with pytest.raises(ValueError) as excinfo:
        checkpoint.restore(path, wider)
    one_line(excinfo, f"checkpoint {step_dir}: leaf .params[0]['b'] has shape (50,) and dtype "
                      "float32, but `like` expects shape (60,) and dtype float32")

    sgd_state = like(train.TrainState.create(state.params, optax.sgd(0.1, momentum=0.9)))
    with pytest.raises(ValueError) as excinfo:
        checkpoint.restore(path, sgd_state)
    one_line(excinfo, f"checkpoint {step_dir} does not match the structure of `like`: it has "
                      "15 leaves, `like` has 9; differing leaves: .opt_state[0].count, "
                      ".opt_state[0].exp_avg[0]['b']")

    with jax.enable_x64(True):
        f64 = like(jax.tree.map(
            lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, state))
        with pytest.raises(ValueError) as excinfo:
            checkpoint.restore(path, f64)
    one_line(excinfo, "has shape (50,) and dtype float32, but `like` expects shape (50,) and "
                      "dtype float64")


def test_restore_of_an_export_is_a_structure_error(tmp_path):
    path = tmp_path / "weights"
    state = _mlp_state(optimizers.adam(lr=1e-3))
    checkpoint.export(path, state.params)
    with pytest.raises(ValueError) as excinfo:
        checkpoint.restore(path, state)
    one_line(excinfo, f"checkpoint {path}", "does not match the structure of `like`: it has 4 "
             "leaves, `like` has 15; differing leaves: .opt_state[0].count",
             "(params alone, written by export: read it with restore_params)")


# ------------------------------------------------------------------------------ fingerprints

def _reference_fingerprint(x: np.ndarray) -> int:
    """``Σ_i w_i (2i + 1) mod 2³²`` over the uint32 words ``w`` of ``x`` (little-endian; 64-bit
    values as two words, low first; narrower ones and bools widened; complex as real, imag)."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        words = x.astype(np.uint64)
    elif np.iscomplexobj(x):
        return _reference_fingerprint(np.stack([x.real, x.imag], axis=-1))
    else:
        unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint32}[x.dtype.itemsize]
        words = x.view(unsigned).astype(np.uint64)
    words = words.ravel()
    weights = (2 * np.arange(words.size, dtype=np.uint64) + 1) % 2**32
    return int(np.sum(words * weights, dtype=np.uint64) % 2**32)


FINGERPRINT_DTYPES = [("float32", False), ("bfloat16", False), ("float16", False),
                      ("int8", False), ("uint8", False), ("int32", False), ("uint32", False),
                      ("bool", False), ("complex64", False), ("float8_e4m3fn", False),
                      ("float64", True), ("int64", True), ("uint64", True), ("complex128", True)]


@pytest.mark.parametrize("dtype, x64", FINGERPRINT_DTYPES, ids=[r[0] for r in FINGERPRINT_DTYPES])
def test_fingerprint_is_the_weighted_word_sum_and_sees_one_changed_element(dtype, x64):
    with jax.enable_x64(x64):
        x = random_bits({"x": jnp.zeros((3, 5, 7), jnp.dtype(dtype))})["x"]
        changed = x.at[1, 2, 3].set(x[1, 2, 4])  # one element changed (to its neighbour)
        swapped = changed.at[1, 2, 4].set(x[1, 2, 3])  # two elements swapped
        got = checkpoint._fingerprints([x, changed, swapped])
        assert got[0] == _reference_fingerprint(np.asarray(x))
        if not np.array_equal(np.asarray(x[1, 2, 3]), np.asarray(x[1, 2, 4])):
            assert got[1] != got[0] and got[2] != got[0]


def test_import_train_loads_neither_checkpoint_nor_orbax():
    code = ("import sys, jaxfund.train\n"
            "loaded = [m for m in ('jaxfund.checkpoint', 'orbax.checkpoint') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True)


# ------------------------------------------------------------------ the previous file format

def _write_file(path, state, extra=None):
    """A checkpoint file as jaxfund's previous `save` wrote it (magic | sha256 | msgpack)."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(state)
    arrays = [np.asarray(leaf) for _, leaf in with_paths]
    header = {"format": "jaxfund-checkpoint", "format_version": 1,
              "paths": [jax.tree_util.keystr(p) for p, _ in with_paths],
              "shapes": [list(a.shape) for a in arrays], "dtypes": [str(a.dtype) for a in arrays]}
    payload = flax.serialization.msgpack_serialize({
        "header": json.dumps(header), "extra": json.dumps({} if extra is None else extra),
        "leaves": {str(i): a for i, a in enumerate(arrays)}})
    Path(path).write_bytes(checkpoint._MAGIC + hashlib.sha256(payload).digest() + payload)


@pytest.mark.parametrize("make", [row[1] for row in STATES[:5]], ids=[r[0] for r in STATES[:5]])
def test_a_file_of_the_previous_format_still_restores(tmp_path, make):
    like = make()
    state = random_bits(like)
    _write_file(tmp_path / "ckpt", state, {"epoch": 4})
    restored, extra = checkpoint.restore(tmp_path / "ckpt", like)
    assert_bitwise_equal(restored, state)
    assert extra == {"epoch": 4}


def test_save_over_a_file_of_the_previous_format_replaces_it(tmp_path):
    path = tmp_path / "ckpt"
    _write_file(path, worker.filled(1), {"step": 1})
    assert worker.equal(checkpoint.restore(path, worker.filled(0))[0], 1)
    checkpoint.save(path, worker.filled(2), {"step": 2})
    assert path.is_dir() and os.listdir(tmp_path) == ["ckpt"]
    state, extra = checkpoint.restore(path, worker.filled(0))
    assert worker.equal(state, 2) and extra == {"step": 2}


def _flip_last_bytes(path):
    blob = path.read_bytes()
    path.write_bytes(blob[:-3] + bytes([blob[-3] ^ 0xFF]) + blob[-2:])


# (id, how to spoil a file of the previous format, message)
BAD_FILES = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
     "checkpoint {path} is corrupt or truncated (checksum mismatch"),
    ("flipped_byte", _flip_last_bytes, "checkpoint {path} is corrupt or truncated"),
    ("not_a_checkpoint", lambda p: p.write_bytes(b"not a checkpoint"),
     "{path} is not a jaxfund checkpoint (bad magic bytes)"),
]


@pytest.mark.parametrize("spoil, message", [row[1:] for row in BAD_FILES],
                         ids=[row[0] for row in BAD_FILES])
@pytest.mark.parametrize("reader", ["restore", "restore_params"])
def test_a_corrupt_file_of_the_previous_format_is_one_line(tmp_path, spoil, message, reader):
    path = tmp_path / "ckpt"
    params = _params()
    _write_file(path, checkpoint._Weights(params, {}))
    spoil(path)
    with pytest.raises(ValueError) as excinfo:
        if reader == "restore":
            checkpoint.restore(path, checkpoint._Weights(params, {}))
        else:
            checkpoint.restore_params(path, params)
    one_line(excinfo, message.format(path=path))


# ------------------------------------------------------------ params-only restore and export

def _batch_stats(width=50, keys=("mean", "var")):
    values = {"mean": jnp.linspace(-1.0, 1.0, width), "var": jnp.linspace(0.5, 2.0, width)}
    return {"batch_stats": {k: values[k] for k in keys}}


def _full_state(params, model_state):
    return train.TrainState.create(params, optimizers.adam(lr=1e-3), model_state=model_state)


def _write(writer, path, params, model_state=None):
    """Writes ``params`` (and ``model_state``) with ``writer``; returns the path to read."""
    if writer == "save":
        checkpoint.save(path, _full_state(params, model_state), {"epoch": 2})
    elif writer == "export":
        checkpoint.export(path, params, model_state, {"hidden": [50]})
    elif writer in ("checkpoints_step", "checkpoints_latest"):
        other = jax.tree.map(lambda a: a + 1, params)  # another step, with other values
        first, second = (params, other) if writer == "checkpoints_step" else (other, params)
        with checkpoint.Checkpoints(path) as checkpoints:
            checkpoints.save(3, _full_state(first, model_state))
            checkpoints.save(4, _full_state(second, model_state))
        return checkpoints.path_of(3) if writer == "checkpoints_step" else path
    elif writer == "file_save":
        _write_file(path, _full_state(params, model_state), {"epoch": 2})
    else:
        _write_file(path, checkpoint._Weights(params, {} if model_state is None else model_state))
    return path


WRITERS = ["save", "export", "checkpoints_step", "checkpoints_latest", "file_save",
           "file_export"]


@pytest.mark.parametrize("template", ["arrays", "shapes"])
@pytest.mark.parametrize("with_model_state", [False, True], ids=["no_model_state", "batch_stats"])
@pytest.mark.parametrize("writer", WRITERS)
def test_restore_params_reads_every_kind_of_checkpoint(tmp_path, writer, with_model_state,
                                                       template):
    params = random_bits(_params())
    model_state = _batch_stats() if with_model_state else None
    path = _write(writer, tmp_path / "weights", params, model_state)
    like_params = _params()
    like_state = None if model_state is None else jax.tree.map(jnp.zeros_like, model_state)
    if template == "shapes":
        like_params, like_state = jax.eval_shape(lambda: (like_params, like_state))
    got_params, got_state = checkpoint.restore_params(path, like_params, like_state)
    assert_bitwise_equal(got_params, params)
    assert_bitwise_equal(got_state, {} if model_state is None else model_state)


def test_fine_tune_an_adam_checkpoint_with_sgd(tmp_path):
    adam = optimizers.adam(lr=1e-3)
    state = train.TrainState.create(random_bits(_params()), adam)
    grads = jax.tree.map(jnp.ones_like, state.params)
    updates, opt_state = adam.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, opt_state=opt_state)  # Adam's moments not zero
    checkpoint.save(tmp_path / "ckpt", state)
    params, model_state = checkpoint.restore_params(tmp_path / "ckpt", _params())
    assert_bitwise_equal(params, state.params)
    assert model_state == {}
    sgd = optimizers.sgd(lr=0.5)
    tuned = train.TrainState.create(params, sgd)
    assert jax.tree.structure(tuned.opt_state) == jax.tree.structure(sgd.init(state.params))
    updates, _ = sgd.update(grads, tuned.opt_state, params)
    for got, before in zip(jax.tree.leaves(optax.apply_updates(params, updates)),
                           jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(got, before - 0.5)


# (id, model state in the checkpoint, template params, template model state, error); the
# entries are functions, so the arrays are made by the test, not at import
MISMATCHES = [
    ("params_shape", None, lambda: _params((60,)), None,
     "leaf .params[0]['b'] has shape (50,) and dtype float32, but `params` expects "
     "shape (60,)"),
    ("params_dtype", None, lambda: _params(dtype=jnp.bfloat16), None,
     "leaf .params[0]['b'] has shape (50,) and dtype float32, but `params` expects "
     "shape (50,) and dtype bfloat16"),
    ("params_structure", None, lambda: _params((50, 50)), None,
     "does not match the structure of `params`: it has 4 params leaves, `params` has 6; "
     "differing leaves: .params[2]['b'], .params[2]['w']"),
    ("model_state_missing_in_template", _batch_stats, _params, None,
     "has model state (2 leaves, e.g. .model_state['batch_stats']['mean']) "
     "but `model_state` has none: pass `model_state=` like the model's state"),
    ("model_state_missing_in_checkpoint", None, _params, _batch_stats,
     "has no model state, but `model_state` has 2 leaves"),
    ("model_state_shape", _batch_stats, _params, lambda: _batch_stats(60),
     "leaf .model_state['batch_stats']['mean'] has shape (50,) and dtype float32, "
     "but `model_state` expects shape (60,)"),
    ("model_state_structure", _batch_stats, _params, lambda: _batch_stats(keys=("mean",)),
     "does not match the structure of `model_state`: it has 2 model_state leaves, "
     "`model_state` has 1; differing leaves: .model_state['batch_stats']['var']"),
]


@pytest.mark.parametrize("writer", ["save", "export", "checkpoints_step", "file_export"])
@pytest.mark.parametrize("stored_state, like_params, like_state, error",
                         [row[1:] for row in MISMATCHES], ids=[row[0] for row in MISMATCHES])
def test_restore_params_mismatch_names_path_and_leaf(tmp_path, writer, stored_state, like_params,
                                                     like_state, error):
    path = _write(writer, tmp_path / "weights", _params(), stored_state and stored_state())
    with pytest.raises(ValueError) as excinfo:
        checkpoint.restore_params(path, like_params(), like_state and like_state())
    one_line(excinfo, f"checkpoint {path}", error)


# ------------------------------------------------------------------------- other topologies

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def topologies(tmp_path_factory):
    """Checkpoints saved on 1 device (DIR/one), by 2 processes of 2 devices (DIR/processes) and
    on 4 devices (DIR/four, by the `devices` subprocess, which restores the other two onto its
    4-device mesh), and an export of 1 device (DIR/export); the subprocesses' reports."""
    directory = tmp_path_factory.mktemp("topologies")
    with checkpoint.Checkpoints(directory / "one") as checkpoints:
        checkpoints.save(3, worker.filled(3), {"step": 3})
    nine = worker.filled(9)
    checkpoint.export(directory / "export", {"w": nine["w"], "b": nine["b"]},
                      {"count": nine["count"]})
    port, four = _free_port(), {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    commands = [([WORKER, "process", str(directory), str(port), str(i)], ENV) for i in range(2)]
    commands.append(([WORKER, "devices", str(directory)], four))  # all three at once
    running = [subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for args, env in commands]
    try:
        outputs = [p.communicate(timeout=180) for p in running]
    finally:
        for p in running:
            p.kill()
            p.wait()
    for p, (_, err) in zip(running, outputs):
        assert p.returncode == 0, err
    reports = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    return directory, reports[:2], reports[2]


def test_two_processes_save_one_checkpoint_together(topologies):
    directory, reports, _ = topologies
    for report in reports:  # each process restored it onto the 4 devices of both
        assert report == {"processes": 2, "devices": 4, "extra": {"step": 5}, "equal": True}
    state_dir = directory / "processes" / "5" / "state"
    assert (state_dir / "ocdbt.process_0").is_dir() and (state_dir / "ocdbt.process_1").is_dir()


@pytest.mark.parametrize("saved_by, step", [("one", 3), ("processes", 5)])
def test_restore_onto_four_devices(topologies, saved_by, step):
    report = topologies[2]
    assert report["devices"] == 4
    assert report[saved_by] == {"equal": True, "extra": {"step": step}, "shardings": True,
                                "w_shard_shapes": [[16, 256]]}


@pytest.mark.parametrize("saved_by, step", [("four", 7), ("processes", 5)])
def test_restore_onto_one_device(topologies, saved_by, step):
    state, extra = checkpoint.Checkpoints(topologies[0] / saved_by).restore(worker.filled(0))
    assert worker.equal(state, step) and extra == {"step": step}
    assert state["w"].sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0])


def test_restore_params_places_leaves_with_the_template_sharding(topologies):
    assert topologies[2]["export"] == {"equal": True, "shardings": True}
