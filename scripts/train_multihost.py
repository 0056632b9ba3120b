"""Train on every device of every process (host), with sharded state and resumable checkpoints.

    python scripts/train_multihost.py --out runs/multihost           # this process's devices
    python scripts/train_multihost.py --out runs/multihost --epochs 20   # again: resumes

    # 2 processes on this machine, 2 CPU devices each (on GPU hosts: one process per host)
    export XLA_FLAGS=--xla_force_host_platform_device_count=2
    python scripts/train_multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 &
    python scripts/train_multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1

Under SLURM (``srun``) or on a TPU slice, pass no process flags: JAX detects the cluster. Every
process runs this same script with the same ``--out`` (a filesystem they share); process 0
prints, all of them write the checkpoints.
"""

import argparse

import jax

from jaxfund import checkpoint, data, distributed, models, optimizers, tasks, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", default="256,256", help="comma-separated hidden widths")
    parser.add_argument("--replicate-state", action="store_true",
                        help="keep the params and optimizer state whole on every device")
    parser.add_argument("--out", default="runs/multihost", help="checkpoint directory")
    args = parser.parse_args()

    # First, before any other JAX call: join the other processes (no-op for a single one).
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    lead = jax.process_index() == 0

    ds = data.load("digits")  # every process loads it; each puts only its rows on its devices
    model = models.MLP(ds.num_features, tuple(int(w) for w in args.hidden.split(",")),
                       tasks.output_features(ds.task, ds.num_classes))
    tx = optimizers.adam(lr=1e-3)
    mesh = train.data_mesh()  # every device of every process, on one "data" axis
    state = train.TrainState.create(model.init(jax.random.key(0)), tx)
    shard_state = not args.replicate_state
    state = train.place_state(state, mesh, shard_state=shard_state)  # as fit will train it

    checkpoints = checkpoint.Checkpoints(args.out, keep=2)
    start_epoch = 0
    if checkpoints.latest_step() is not None:  # resume, onto this run's devices and sharding
        state, extra = checkpoints.restore(state)
        start_epoch = extra["epoch"]

    def on_epoch(entry: dict, state: train.TrainState) -> None:
        checkpoints.save(entry["epoch"], state, {"epoch": entry["epoch"]})  # every process
        if lead:
            print(f"epoch {entry['epoch']:3d}  train loss {entry['train_loss']:.4f}  "
                  f"test accuracy {entry['test_accuracy']:.4f}")

    result = train.fit(state, (ds.x_train, ds.y_train), apply_fn=model, tx=tx, task=ds.task,
                       epochs=args.epochs, batch_size=args.batch_size,
                       eval_data=(ds.x_test, ds.y_test), start_epoch=start_epoch, mesh=mesh,
                       shard_state=shard_state, callback=on_epoch)
    checkpoints.close()  # waits for the last save
    held = distributed.bytes_per_device((result.state.params, result.state.opt_state))
    if lead:
        accuracy = result.history[-1]["test_accuracy"] if result.history else float("nan")
        print(f"test accuracy: {accuracy:.4f} after epoch {args.epochs} on {jax.device_count()} "
              f"devices in {jax.process_count()} processes; params + optimizer state: "
              f"{max(held.values()):,} bytes per device")


if __name__ == "__main__":
    main()
