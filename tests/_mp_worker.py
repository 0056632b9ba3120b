"""One process of multi-process `fit`s, for tests/test_distributed.py.

``python tests/_mp_worker.py PORT PROCESS_ID NUM_PROCESSES DEVICES DATA RUNS``: joins
``NUM_PROCESSES`` processes (none for 1) with ``DEVICES`` CPU devices each, and then, one after
the other, trains each run of ``RUNS`` (a JSON list) on the digits dataset read from ``DATA`` (an
``.npz`` of ``jaxfund.data.load("digits")``'s fields, prepared once by the test): the MLP
64-256-256-10 with Adam in float64 for 3 epochs. A run is a dict:

- ``out``: where it writes ``OUT.npz`` (the final params, gathered; process 0), ``OUT.json``
  (the history; process 0), ``OUT.state.json`` (every leaf of the final state, hex; process 0),
  ``OUT.bytes<i>.json`` (the bytes of params + optimizer state on each of process i's devices)
  and ``OUT.epochs<i>.json`` (the epochs process i trained);
- ``devices``: how many devices it trains on (the first ones; 1: no mesh), all of them when
  several processes run;
- ``shard``: params and optimizer state sharded (``fit(shard_state=True)``);
- ``save``: a checkpoints directory every epoch's state is saved to (all processes together);
- ``resume``: ``"DIR:STEP"``, training resumes from step STEP of DIR (restored onto this run's
  devices and sharding);
- ``stop_at``: only process 0's callback asks to stop, after that epoch (not with ``save``).
"""

import json
import os
import sys

port, process_id, num_processes, devices, data_file, runs = sys.argv[1:7]
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["JAX_ENABLE_X64"] = "1"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from jaxfund import distributed  # noqa: E402

process_id, num_processes = int(process_id), int(num_processes)
if num_processes > 1:
    distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id, peer_timeout=20)

from jaxfund import models, optimizers, train  # noqa: E402
from jaxfund.checkpoint import Checkpoints  # noqa: E402

with np.load(data_file) as digits:
    x_train, y_train, x_test, y_test = (digits[k] for k in ("x_train", "y_train", "x_test",
                                                            "y_test"))
x_train, x_test = x_train.astype(np.float64), x_test.astype(np.float64)
model = models.MLP(64, (256, 256), 10)
tx = optimizers.adam(lr=1e-3)


def whole(tree):
    """Every leaf of ``tree`` as one host array (gathered from all processes)."""
    return [np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
            if num_processes > 1 else np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def train_run(out, devices, shard=False, save=None, resume=None, stop_at=None):
    params = jax.tree.map(lambda a: a.astype(np.float64), model.init(jax.random.key(0)))
    state = train.TrainState.create(params, tx)
    mesh = train.data_mesh(jax.devices()[:devices]) if devices > 1 else None
    if mesh is not None:
        state = train.place_state(state, mesh, shard_state=shard)
    start_epoch, callback = 0, None
    if resume:
        directory, step = resume.rsplit(":", 1)
        with Checkpoints(directory) as checkpoints:
            state, extra = checkpoints.restore(state, step=int(step))
        start_epoch = extra["epoch"]
    saving = Checkpoints(save, keep=None) if save else None
    if saving is not None:
        def callback(entry, state):
            saving.save(entry["epoch"], state, {"epoch": entry["epoch"]})
    elif stop_at is not None:
        def callback(entry, state):
            return process_id == 0 and entry["epoch"] == stop_at
    result = train.fit(state, (x_train, y_train), apply_fn=model, tx=tx, epochs=3, batch_size=64,
                       seed=1, eval_data=(x_test, y_test), mesh=mesh, start_epoch=start_epoch,
                       shard_state=shard, callback=callback)
    if saving is not None:
        saving.close()
    with open(f"{out}.epochs{process_id}.json", "w") as f:
        json.dump([entry["epoch"] for entry in result.history], f)
    held = distributed.bytes_per_device((result.state.params, result.state.opt_state))
    with open(f"{out}.bytes{process_id}.json", "w") as f:
        json.dump(sorted(held.values()), f)
    whole_state, gathered = whole(result.state), whole(result.state.params)
    if process_id == 0:
        np.savez(f"{out}.npz", *gathered)
        with open(f"{out}.json", "w") as f:
            json.dump([{k: v for k, v in entry.items() if k != "seconds"}
                       for entry in result.history], f)
        with open(f"{out}.state.json", "w") as f:  # every leaf of the final state, hex
            json.dump([leaf.tobytes().hex() for leaf in whole_state], f)


for run in json.loads(runs):
    train_run(**run)
