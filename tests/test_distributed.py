"""Several processes on one machine (gloo collectives between CPU processes), sharded state.

The multi-process runs are subprocesses (tests/_mp_worker.py): 2 processes x 2 host devices
against 1 process x 4 devices and against 1 device, trained in float64. In float32 the runs
differ by the order of the floating-point sums of the gradient mean (per device, then the
all-reduce), ~1e-8 relative in one step, which Adam amplifies where a gradient is near zero
(lr / eps = 1e5): measured 2e-6 to 6e-6 relative after 3 epochs. In float64 the same reordering
is ~1e-16 and stays far below the 1e-6 these tests assert.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import AbstractMesh, Mesh, PartitionSpec

from jaxfund import data, distributed

WORKER = os.path.join(os.path.dirname(__file__), "_mp_worker.py")
# The runs, by the processes that train them (each process trains its runs one after the other):
# name: (devices, shard_state, options). Every run of one process count shares its processes.
RUNS = {
    1: {"1x1": (1, False, {}), "1x4": (4, False, {}), "1x2-sharded": (2, True, {}),
        "1x4-sharded": (4, True, {}),
        # epoch 3 from the checkpoint that 2x2 saved after epoch 2, on other topologies
        "1x1-resumed": (1, False, {"resume": "{root}/checkpoints-2x2:2"}),
        "1x4-resumed": (4, False, {"resume": "{root}/checkpoints-2x2:2"}),
        "1x4-sharded-resumed": (4, True, {"resume": "{root}/checkpoints-2x2:2"})},
    2: {"2x2": (4, False, {"save": "{root}/checkpoints-2x2"}), "2x2-sharded": (4, True, {}),
        "2x2-resumed": (4, False, {"resume": "{root}/checkpoints-2x2:2"}),
        # only process 0's callback asks to stop, after epoch 2
        "2x2-stop": (4, False, {"stop_at": 2})},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv_of, processes: int, timeout: float = 300,
           env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Runs ``argv_of(port, i)`` for each of ``processes`` processes concurrently."""
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    procs = [subprocess.Popen(argv_of(port, i), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(processes)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run's final params, history, state, per-device bytes and epochs per process: the
    2-process runs first (the others resume 2x2's checkpoint), 2 processes x 2 devices, then
    the 1-process runs, 1 process x 4 devices."""
    root = tmp_path_factory.mktemp("mp")
    digits = data.load("digits")
    data_file = str(root / "digits.npz")
    np.savez(data_file, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test,
             y_test=digits.y_test)
    results = {}
    for processes in (2, 1):
        specs = [{"out": str(root / name), "devices": devices, "shard": shard,
                  **{k: v.format(root=root) if isinstance(v, str) else v
                     for k, v in options.items()}}
                 for name, (devices, shard, options) in RUNS[processes].items()]
        for proc in launch(lambda port, i: [sys.executable, WORKER, str(port), str(i),
                                            str(processes), str(4 // processes), data_file,
                                            json.dumps(specs)], processes):
            assert proc.returncode == 0, proc.stderr[-3000:]
        for name, (devices, _, _) in RUNS[processes].items():
            out = str(root / name)
            params = np.load(out + ".npz")
            held = [json.loads(Path(f"{out}.bytes{i}.json").read_text()) for i in range(processes)]
            results[name] = {
                "params": [params[f"arr_{i}"] for i in range(len(params.files))],
                "history": json.loads(Path(out + ".json").read_text()),
                "state": json.loads(Path(out + ".state.json").read_text()),
                "bytes": [b for per_process in held for b in per_process],
                "epochs": [json.loads(Path(f"{out}.epochs{i}.json").read_text())
                           for i in range(processes)]}
    return results


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("name, reference", [
    ("2x2", "1x4"), ("2x2", "1x1"), ("1x4", "1x1"),
    ("2x2-sharded", "2x2"), ("1x4-sharded", "1x4"), ("1x2-sharded", "1x1"),
    ("1x1-resumed", "1x1"), ("1x4-resumed", "1x4"), ("1x4-sharded-resumed", "1x4-sharded"),
])
def test_params_and_metrics_do_not_depend_on_processes_devices_or_sharding(runs, name,
                                                                            reference):
    got, want = runs[name], runs[reference]
    assert relative_difference(got["params"], want["params"]) < 1e-6
    epochs = len(got["history"])  # a resumed run: epoch 3 only
    assert epochs == (1 if name.endswith("resumed") else 3) and len(want["history"]) == 3
    for entry, expected in zip(got["history"], want["history"][-epochs:]):
        assert entry.keys() == expected.keys()
        for key in entry:
            assert entry[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-12), key


@pytest.mark.slow
def test_a_checkpoint_resumed_on_the_topology_that_saved_it_continues_bitwise(runs):
    assert runs["2x2-resumed"]["state"] == runs["2x2"]["state"]
    assert runs["2x2-resumed"]["history"] == runs["2x2"]["history"][-1:]


@pytest.mark.slow
def test_every_process_stops_after_the_epoch_process_0_decides(runs):
    assert runs["2x2-stop"]["epochs"] == [[1, 2], [1, 2]]


# The MLP 64-256-256-10 with Adam: params + mu + nu of each leaf, two int32 counts.
# Sharded (>= 2**14 elements): the kernels 64x256 and 256x256; replicated: the rest.
SHARDED_ELEMENTS = 3 * (64 * 256 + 256 * 256)
REPLICATED_ELEMENTS = 3 * (256 + 256 + 256 * 10 + 10)


@pytest.mark.slow
@pytest.mark.parametrize("name, devices", [("1x1", 1), ("1x2-sharded", 2),
                                           ("1x4-sharded", 4), ("2x2-sharded", 4)])
def test_sharded_state_holds_about_one_nth_per_device(runs, name, devices):
    expected = 8 * (SHARDED_ELEMENTS // devices + REPLICATED_ELEMENTS) + 2 * 4  # float64
    assert runs[name]["bytes"] == [expected] * devices


@pytest.mark.slow
def test_replicated_state_holds_everything_on_every_device(runs):
    assert runs["2x2"]["bytes"] == [8 * (SHARDED_ELEMENTS + REPLICATED_ELEMENTS) + 8] * 4


# ------------------------------------------------------------------------------ unit tests


@pytest.mark.parametrize("kwargs, words", [
    ({"coordinator": "127.0.0.1:1234"}, ["num_processes, process_id missing"]),
    ({"num_processes": 2, "process_id": 0}, ["coordinator missing"]),
    ({"coordinator": "localhost", "num_processes": 2, "process_id": 0}, ["HOST:PORT"]),
    ({"coordinator": "h:70000", "num_processes": 2, "process_id": 0}, ["HOST:PORT"]),
    ({"coordinator": "h:1234", "num_processes": 0, "process_id": 0}, ["num_processes"]),
    ({"coordinator": "h:1234", "num_processes": 2, "process_id": 2}, ["process_id", "< "]),
    ({"coordinator": "h:1234", "num_processes": 2, "process_id": -1}, ["process_id"]),
    ({"peer_timeout": 0}, ["peer_timeout"]),
    ({"initialization_timeout": 0}, ["initialization_timeout"]),
])
def test_initialize_refuses_bad_arguments_naming_them(kwargs, words):
    with pytest.raises(ValueError) as err:
        distributed.initialize(**kwargs)
    assert all(word in str(err.value) for word in words), str(err.value)


def test_initialize_without_a_cluster_is_a_single_process_run(monkeypatch):
    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.cluster_detected()
    assert distributed.initialize() is False
    distributed.fail("nothing to tell")  # a single process: returns


@pytest.mark.parametrize("shape, size, spec", [
    ((64, 256), 4, PartitionSpec(None, "data")),
    ((256, 64), 4, PartitionSpec("data")),
    ((256, 256), 4, PartitionSpec("data")),  # equal dimensions: the first
    ((3, 5462), 2, PartitionSpec(None, "data")),
    ((3, 5461), 2, PartitionSpec()),  # no divisible dimension
    ((256,), 4, PartitionSpec()),  # below min_size
    ((), 4, PartitionSpec()),
    ((64, 256), 1, PartitionSpec()),
])
def test_state_shardings_shard_the_largest_divisible_dimension_of_large_leaves(shape, size,
                                                                              spec):
    mesh = AbstractMesh((size,), ("data",))
    leaf = jax.ShapeDtypeStruct(shape, np.float32)
    assert distributed.state_shardings({"w": leaf}, mesh)["w"].spec == spec


def test_state_shardings_need_a_data_axis():
    mesh = Mesh(np.array(jax.devices()[:1]), ("model",))
    with pytest.raises(ValueError, match="'data'"):
        distributed.state_shardings({"w": np.zeros(4)}, mesh)


def test_place_state_puts_the_state_as_fit_trains_it():
    from jaxfund import models, optimizers, train

    tx = optimizers.adam(lr=1e-3)
    state = train.TrainState.create(models.MLP(3, (4,), 2).init(jax.random.key(0)), tx)
    mesh = train.data_mesh(jax.devices()[:1])
    placed = train.place_state(state, mesh, shard_state=True)
    for leaf, original in zip(jax.tree.leaves(placed), jax.tree.leaves(state)):
        assert leaf.sharding.mesh == mesh and leaf.sharding.spec == PartitionSpec()
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(original))
    with pytest.raises(ValueError, match="'data'"):
        train.place_state(state, Mesh(np.array(jax.devices()[:1]), ("model",)))


def test_bytes_per_device_counts_every_leaf_once_on_one_device():
    tree = {"a": jax.numpy.zeros((3, 5), np.float32), "b": jax.numpy.zeros(7, np.int32)}
    assert distributed.bytes_per_device(tree) == {jax.devices()[0]: 3 * 5 * 4 + 7 * 4}
