"""One process of a multi-process `fit`, for tests/test_distributed.py.

``python tests/_mp_worker.py PORT PROCESS_ID NUM_PROCESSES DEVICES SHARD OUT [DTYPE]``: joins
``NUM_PROCESSES`` processes (none for 1) with ``DEVICES`` CPU devices each, trains the digits MLP
64-256-256-10 with Adam for 3 epochs over a mesh of all devices (no mesh for one device), with
the params and optimizer state sharded if SHARD is 1, in DTYPE (float64 by default), and writes
``OUT.npz`` (the final params, gathered; process 0), ``OUT.json`` (the history; process 0) and
``OUT.bytes<i>.json`` (the bytes of params + optimizer state on each of process i's devices).

With ``SAVE=DIR`` in the environment every epoch's state is saved to the checkpoints ``DIR``
(all processes together); with ``RESUME=DIR:STEP`` training resumes from step ``STEP`` of ``DIR``
(restored onto this run's devices and sharding); with ``STOP_AT=E`` only process 0's callback asks
to stop, after epoch E, and ``OUT.epochs<i>.json`` records the epochs process i trained.
"""

import json
import os
import sys

port, process_id, num_processes, devices, shard, out = sys.argv[1:7]
dtype = sys.argv[7] if len(sys.argv) > 7 else "float64"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["JAX_ENABLE_X64"] = "1" if dtype == "float64" else "0"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from jaxfund import distributed  # noqa: E402

process_id, num_processes = int(process_id), int(num_processes)
if num_processes > 1:
    distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id, peer_timeout=20)

from jaxfund import data, models, optimizers, train  # noqa: E402

ds = data.load("digits")
x_train, x_test = ds.x_train.astype(dtype), ds.x_test.astype(dtype)
model = models.MLP(64, (256, 256), 10)
tx = optimizers.adam(lr=1e-3)
params = jax.tree.map(lambda a: a.astype(dtype), model.init(jax.random.key(0)))
state = train.TrainState.create(params, tx)
mesh = train.data_mesh() if jax.device_count() > 1 else None
if mesh is not None:
    state = train.place_state(state, mesh, shard_state=shard == "1")
start_epoch, callback = 0, None
if os.environ.get("RESUME") or os.environ.get("SAVE"):
    from jaxfund.checkpoint import Checkpoints
if os.environ.get("RESUME"):
    directory, step = os.environ["RESUME"].rsplit(":", 1)
    with Checkpoints(directory) as checkpoints:
        state, extra = checkpoints.restore(state, step=int(step))
    start_epoch = extra["epoch"]
if os.environ.get("SAVE"):
    saving = Checkpoints(os.environ["SAVE"], keep=None)

    def save_epoch(entry, state):
        saving.save(entry["epoch"], state, {"epoch": entry["epoch"]})

    callback = save_epoch
if os.environ.get("STOP_AT"):
    def stop_on_process_0(entry, state):
        return process_id == 0 and entry["epoch"] == int(os.environ["STOP_AT"])

    callback = stop_on_process_0

result = train.fit(state, (x_train, ds.y_train), apply_fn=model, tx=tx, epochs=3, batch_size=64,
                   seed=1, eval_data=(x_test, ds.y_test), mesh=mesh, start_epoch=start_epoch,
                   shard_state=shard == "1", callback=callback)
if os.environ.get("SAVE"):
    saving.close()
with open(f"{out}.epochs{process_id}.json", "w") as f:
    json.dump([entry["epoch"] for entry in result.history], f)
held = distributed.bytes_per_device((result.state.params, result.state.opt_state))
with open(f"{out}.bytes{process_id}.json", "w") as f:
    json.dump(sorted(held.values()), f)


def whole(tree):
    """Every leaf of ``tree`` as one host array (gathered from all processes)."""
    return [np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
            if num_processes > 1 else np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


whole_state, gathered = whole(result.state), whole(result.state.params)
if process_id == 0:
    np.savez(f"{out}.npz", *gathered)
    with open(f"{out}.json", "w") as f:
        json.dump([{k: v for k, v in entry.items() if k != "seconds"}
                   for entry in result.history], f)
    with open(f"{out}.state.json", "w") as f:  # every leaf of the final state, for bitwise checks
        json.dump([leaf.tobytes().hex() for leaf in whole_state], f)
