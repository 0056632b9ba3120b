"""Subprocesses of tests/test_checkpoint.py (each mode prints one JSON line, if any, at the end).

- ``loop DIR``: waits for a line on stdin (so the test can start it ahead of time), then resumes
  from DIR's latest checkpoint (checking its values) and saves step after step, asynchronously,
  until it is killed.
- ``devices DIR``: with 4 CPU devices, restores DIR/one (saved from 1 device) onto a 4-device
  mesh, and the params and model state of DIR/export with restore_params; saves a 4-device
  sharded state to DIR/four; then waits for DIR/processes (saved by 2 processes meanwhile) and
  restores it onto the mesh too.
- ``process DIR PORT ID``: process ID of 2, with 2 CPU devices each: saves a state sharded over
  the 4 devices of both to DIR/processes and restores it again.

The states are :func:`filled` ones: every leaf holds the step number, so a restored state shows
which step it is.
"""

import json
import os
import sys
import time

import numpy as np

SHAPES = {"step": ((), "int32"), "w": ((64, 256), "float32"), "b": ((256,), "bfloat16"),
          "count": ((8,), "int8")}
MESH_SPECS = {"step": (), "w": ("data",), "b": ("data",), "count": ()}


def filled(step: int, shardings=None):
    """The state of ``step``: each leaf of :data:`SHAPES` full of ``step``, placed with
    ``shardings[name]`` if given."""
    import jax
    import jax.numpy as jnp
    state = {}
    for name, (shape, dtype) in SHAPES.items():
        value = np.full(shape, step % 100, dtype=jnp.dtype(dtype))
        if shardings is None:
            state[name] = jnp.asarray(value)
        else:
            state[name] = jax.make_array_from_callback(shape, shardings[name],
                                                       lambda index, v=value: v[index])
    return state


def abstract(shardings):
    import jax
    import jax.numpy as jnp
    return {name: jax.ShapeDtypeStruct(shape, jnp.dtype(dtype), sharding=shardings[name])
            for name, (shape, dtype) in SHAPES.items()}


def mesh_shardings():
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    mesh = Mesh(np.array(jax.devices()), ("data",))
    return {name: NamedSharding(mesh, PartitionSpec(*spec)) for name, spec in MESH_SPECS.items()}


def equal(state, step: int) -> bool:
    return all(np.array_equal(np.asarray(state[name]), np.asarray(value))
               for name, value in filled(step).items())


def loop(directory: str) -> None:
    import jax
    from jaxfund.checkpoint import Checkpoints
    jax.devices()  # all started up: now wait for the test's word
    sys.stdin.readline()
    checkpoints = Checkpoints(directory, keep=2)
    latest = checkpoints.latest_step()
    if latest is not None:
        state, extra = checkpoints.restore(filled(0))
        assert equal(state, latest) and extra == {"step": latest}, latest
    step = 0 if latest is None else latest + 1
    while True:
        checkpoints.save(step, filled(step), {"step": step})
        step += 1


def devices(directory: str) -> None:
    import jax
    from jaxfund import checkpoint
    shardings = mesh_shardings()
    report = {"devices": jax.device_count()}

    def restore(name):
        state, extra = checkpoint.Checkpoints(os.path.join(directory, name)).restore(
            abstract(shardings))
        report[name] = {
            "equal": equal(state, extra["step"]), "extra": extra,
            "shardings": all(state[k].sharding == shardings[k] for k in SHAPES),
            "w_shard_shapes": sorted({tuple(s.data.shape) for s in state["w"].addressable_shards}),
        }

    restore("one")
    like = abstract(shardings)  # DIR/export: params {w, b} and model state {count}
    params, model_state = checkpoint.restore_params(
        os.path.join(directory, "export"), {"w": like["w"], "b": like["b"]},
        {"count": like["count"]})
    got, expected = {**params, **model_state}, filled(9)
    report["export"] = {
        "equal": all(np.array_equal(np.asarray(got[k]), np.asarray(expected[k])) for k in got),
        "shardings": all(got[k].sharding == shardings[k] for k in got),
    }
    with checkpoint.Checkpoints(os.path.join(directory, "four")) as checkpoints:
        checkpoints.save(7, filled(7, shardings), {"step": 7})
    processes = checkpoint.Checkpoints(os.path.join(directory, "processes"))
    deadline = time.monotonic() + 120  # the two processes save it meanwhile
    while processes.latest_step() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    restore("processes")
    print(json.dumps(report))


def process(directory: str, port: str, process_id: str) -> None:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(process_id))
    from jaxfund import checkpoint
    shardings = mesh_shardings()
    path = os.path.join(directory, "processes")
    with checkpoint.Checkpoints(path) as checkpoints:
        checkpoints.save(5, filled(5, shardings), {"step": 5})
    state, extra = checkpoint.Checkpoints(path).restore(abstract(shardings))
    local = {k: np.asarray(state[k].addressable_data(0)) for k in SHAPES}
    expected = filled(5)
    report = {
        "processes": jax.process_count(), "devices": jax.device_count(), "extra": extra,
        "equal": all(np.array_equal(local[k], np.asarray(expected[k])[
            state[k].addressable_shards[0].index]) for k in SHAPES),
    }
    print(json.dumps(report))
    jax.distributed.shutdown()


if __name__ == "__main__":
    {"loop": loop, "devices": devices, "process": process}[sys.argv[1]](*sys.argv[2:])
