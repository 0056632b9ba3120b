"""``jaxfund train``: an MLP on a bundled dataset or the user's file (``--data``), with a progress
bar, a checkpoint per epoch, ``--resume``, metrics.json, a JSON-lines log, curves.png (and
curves.html, TensorBoard events). Training itself is :func:`jaxfund.train.fit`.

Exit status: 0 done, 2 a user error (one line on stderr, nothing in ``--out`` changed), 3 the run
diverged (one line; the checkpoints of the finite epochs are kept)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from typing import Any

from jaxfund.cli import _common, _run
from jaxfund.cli._common import UsageError

# --lr-schedule: name -> (torch scheduler, how it is stepped)
SCHEDULES = {
    "constant": ("no scheduler", "-"),
    "step": ("StepLR(step_size=--step-size, gamma=--gamma)", "per epoch"),
    "exponential": ("ExponentialLR(gamma=--gamma)", "per epoch"),
    "cosine": ("CosineAnnealingLR(T_max=all steps)", "per step"),
    "linear": ("LinearLR(start_factor=1, end_factor=0, total_iters=all steps)", "per step"),
    "onecycle": ("OneCycleLR(max_lr=--lr, total_steps=all steps)", "per step"),
}
TORCH_SCHEDULE_NAMES = {"StepLR": "step", "ExponentialLR": "exponential",
                        "CosineAnnealingLR": "cosine", "LinearLR": "linear",
                        "OneCycleLR": "onecycle"}
DIVERGED = 3


def add_parser(sub: Any) -> None:
    from jaxfund._names import DATASETS, TASKS

    p = sub.add_parser(
        "train", formatter_class=_common.Formatter,
        help="train an MLP on a bundled dataset or your own file (progress bar, metrics.json, "
             "log.jsonl, curves.png)",
        description="Train an MLP on a bundled dataset or on your own file (--data). Writes "
                    "OUT/metrics.json, OUT/log.jsonl (one JSON line per epoch, written as "
                    "training goes), OUT/curves.png and OUT/checkpoints/ (a checkpoint after "
                    "every epoch, written in the background: skipped while the previous one is "
                    "still being written, always after the last; the last --keep kept; --resume "
                    "continues from the latest). Exit status 3: the run diverged.")
    p.add_argument("--dataset", default="digits",
                   help=f"bundled dataset: {', '.join(DATASETS)} (unless training on a file)")
    p.add_argument("--data", metavar="PATH", default=None,
                   help="train on your file instead: .csv with a header row (the target column "
                        "is --target, default the last), .npz with arrays x and y, or .npy (its "
                        "last column the target)")
    p.add_argument("--target", default=None, help="the CSV's target column (default: the last)")
    p.add_argument("--task", default=None, choices=TASKS,
                   help="the task (default: inferred from the targets)")
    p.add_argument("--test-size", type=_common.fraction, default=0.2,
                   help="fraction of the examples held out for testing (seeded split)")
    p.add_argument("--drop-nonfinite", action="store_true",
                   help="drop rows with NaN/inf (default: refuse the file, naming the first)")
    p.add_argument("--activation", default="relu",
                   help="hidden-layer activation (jaxfund.activations.ELEMENTWISE)")
    p.add_argument("--optimizer", default="adam",
                   help="optimizer (jaxfund.optimizers.get name, torch defaults)")
    _common.add_training_options(p)
    p.add_argument("--weight-decay", type=_common.non_negative_float, default=None,
                   help="weight decay passed to the optimizer; None keeps its torch default")
    p.add_argument("--lr-schedule", default="constant",
                   help="learning-rate schedule: " + "; ".join(
                       f"{name}: {torch} {how}" for name, (torch, how) in SCHEDULES.items())
                   + " (torch class names work too)")
    p.add_argument("--step-size", type=_common.positive_int, default=10,
                   help="epochs between lr decays of the step schedule")
    p.add_argument("--gamma", type=_common.positive_float, default=0.1,
                   help="lr decay factor (step: every step size of epochs; exponential: every "
                        "epoch)")
    p.add_argument("--warmup-epochs", type=_common.non_negative_int, default=0,
                   help="linear warmup of the lr from ~0 over this many epochs, then the "
                        "schedule")
    p.add_argument("--clip-norm", type=_common.positive_float, default=None,
                   help="clip the gradients' global norm to this (optax.clip_by_global_norm)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="compute dtype of the forward and backward passes (bfloat16: float32 "
                        "master weights, optimizer state and loss)")
    p.add_argument("--dropout", type=_common.dropout_rate, default=0.0,
                   help="dropout after every hidden layer in training, in [0, 1)")
    p.add_argument("--patience", type=_common.positive_int, default=None,
                   help="stop when the test metric has not improved for this many epochs and "
                        "keep the best epoch's params (OUT/best)")
    p.add_argument("--seed", type=_common.seed, default=0,
                   help="seed of the init, the shuffles and dropout")
    p.add_argument("--data-parallel", action="store_true",
                   help="shard each batch over all visible devices (train.data_mesh()); on by "
                        "default with several processes or --shard-state")
    p.add_argument("--shard-state", action="store_true",
                   help="shard the params and optimizer state over the devices too (ZeRO/FSDP: "
                        "each device stores ~1/N of them) instead of replicating them")
    g = p.add_argument_group(
        "several processes (one per host; JAX's distributed runtime)",
        "Pass all three, or none when JAX detects the cluster (SLURM, Open MPI, Cloud TPU, "
        "Kubernetes). Every process runs the same command with the same --out (a shared "
        "filesystem across hosts); process 0 writes the logs, metrics and figures, all write "
        "the checkpoints together.")
    g.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                   help="address of process 0, which serves the coordinator")
    g.add_argument("--num-processes", type=_common.positive_int, default=None,
                   help="number of processes")
    g.add_argument("--process-id", type=_common.non_negative_int, default=None,
                   help="this process's index, 0 .. N-1")
    g.add_argument("--peer-timeout", type=_common.positive_float, default=30.0,
                   help="seconds without a heartbeat after which another process counts as "
                        "dead and this one stops (exit status 4)")
    p.add_argument("--keep", type=_common.positive_int, default=3, metavar="K",
                   help="keep the last K checkpoints in OUT/checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in OUT/checkpoints (its config "
                        "must match)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in the output directory (default: refuse)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files to OUT/tensorboard")
    p.add_argument("--html", action="store_true",
                   help="also write OUT/curves.html (interactive, self-contained)")
    p.add_argument("--out", default="runs/train", help="output directory")
    p.set_defaults(func=run, several_processes=_several_processes)


def _schedule_name(name: str) -> str:
    key = TORCH_SCHEDULE_NAMES.get(name, name.lower())
    if key not in SCHEDULES:
        raise UsageError(f"--lr-schedule: unknown schedule {name!r}; valid names: "
                         f"{', '.join(SCHEDULES)} (or {', '.join(TORCH_SCHEDULE_NAMES)})")
    return key


def learning_rate(args: argparse.Namespace, steps_per_epoch: int) -> Any:
    """The lr of ``args`` (a float, or a schedule of the update count): ``--lr-schedule`` after
    ``--warmup-epochs`` of linear warmup."""
    from jaxfund import schedules

    name = _schedule_name(args.lr_schedule)
    warmup = args.warmup_epochs * steps_per_epoch
    total = max(args.epochs * steps_per_epoch - warmup, 1)
    lr = args.lr
    main = {
        "constant": lambda: schedules.constant_lr(lr, factor=1.0, total_iters=0),
        "step": lambda: schedules.per_epoch(
            schedules.step_lr(lr, args.step_size, args.gamma), steps_per_epoch),
        "exponential": lambda: schedules.per_epoch(schedules.exponential_lr(lr, args.gamma),
                                                   steps_per_epoch),
        "cosine": lambda: schedules.cosine_annealing_lr(lr, T_max=total),
        "linear": lambda: schedules.linear_lr(lr, start_factor=1.0, end_factor=0.0,
                                              total_iters=total),
        "onecycle": lambda: schedules.one_cycle_lr(lr, total_steps=total),
    }
    if name == "constant" and not warmup:
        return lr
    schedule = _common.checked("--lr-schedule", main[name])
    if not warmup:
        return schedule
    ramp = schedules.linear_lr(lr, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)

    def warmed(count):
        import jax.numpy as jnp

        return jnp.where(count < warmup, ramp(count), schedule(jnp.maximum(count - warmup, 0)))

    return warmed


def make_optimizer(name: str, lr: Any, weight_decay: float | None, option: str, *,
                   clip_norm: float | None = None):
    """``optimizers.first_order(name)(lr=lr[, weight_decay=...])``, after
    ``optax.clip_by_global_norm(clip_norm)`` if given; errors as one line naming ``option``."""
    import optax

    from jaxfund import optimizers

    factory = _common.checked(option, optimizers.first_order, name)
    kwargs: dict[str, Any] = {"lr": lr}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    tx = _common.checked(f"{option} {name}", factory, **kwargs)
    return tx if clip_norm is None else optax.chain(optax.clip_by_global_norm(clip_norm), tx)


def _load_data(args: argparse.Namespace):
    from jaxfund import data

    if args.data is None:
        _common.check_dataset(args.dataset, "--dataset")
        for option in ("target", "drop_nonfinite"):
            if getattr(args, option):
                raise UsageError(f"--{option.replace('_', '-')} needs --data")
        ds = _common.checked("--dataset", _common.load_dataset, args.dataset, args.cache_dir,
                             test_size=args.test_size)
        if args.task is not None and args.task != ds.task:
            raise UsageError(f"--task {args.task}: {args.dataset} is a {ds.task} dataset")
        return ds
    try:  # the split's seed is the bundled datasets' (data.load's default)
        return data.load_file(args.data, target=args.target, task=args.task,
                              test_size=args.test_size, seed=42,
                              drop_nonfinite=args.drop_nonfinite)
    except (TypeError, ValueError, OSError) as err:
        message = str(err).replace("drop_nonfinite=True", "--drop-nonfinite")
        raise UsageError(f"--data: {message}") from None


def _config(args: argparse.Namespace, ds: Any) -> dict:
    """What must match on ``--resume`` (``--patience``, ``--tensorboard``, ``--html`` and
    ``--epochs`` of a per-epoch schedule may change)."""
    name = _schedule_name(args.lr_schedule)
    return {
        "dataset": ds.name, "data": None if args.data is None else os.path.abspath(args.data),
        "target": args.target, "task": ds.task, "test_size": args.test_size,
        "drop_nonfinite": args.drop_nonfinite, "activation": args.activation,
        "optimizer": args.optimizer, "lr": args.lr, "weight_decay": args.weight_decay,
        "hidden": list(args.hidden), "batch_size": args.batch_size, "seed": args.seed,
        "lr_schedule": name, "step_size": args.step_size, "gamma": args.gamma,
        "warmup_epochs": args.warmup_epochs, "clip_norm": args.clip_norm, "dtype": args.dtype,
        "dropout": args.dropout,
        # these schedules span the whole run: another --epochs is another schedule
        "schedule_epochs": args.epochs if name in ("cosine", "linear", "onecycle") else None,
    }


def _diverged(entry: dict, steps_per_epoch: int, metric: str) -> str | None:
    """Why the epoch of ``entry`` diverged, or None."""
    if entry["skipped"] >= steps_per_epoch:
        return f"every one of its {steps_per_epoch} steps had a non-finite loss or update"
    for key in ("train_loss", "test_loss", metric):
        if not math.isfinite(entry[key]):
            return f"its {key.replace('_', ' ')} is {entry[key]}"
    return None


def _busy(checkpoints: Any) -> bool:
    """Whether the previous epoch's checkpoint is still being written (on process 0, whose
    answer every process follows): then this epoch's is skipped rather than waited for, so
    training never waits on the disk. The last epoch's is always saved."""
    import jax

    busy = checkpoints.saving()
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        busy = bool(multihost_utils.broadcast_one_to_all(np.bool_(busy)))
    return busy


def _improved(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value > best if metric.endswith("accuracy") else value < best


def _several_processes(args: argparse.Namespace) -> bool:
    """Whether the run is one of several processes: the flags, or a cluster JAX detects."""
    if any(getattr(args, name) is not None
           for name in ("coordinator", "num_processes", "process_id")):
        return True
    from jaxfund import distributed

    return distributed.cluster_detected()


def _join_cluster(args: argparse.Namespace) -> bool:
    """Joins the processes of a multi-process run (:func:`jaxfund.distributed.initialize`), before
    any JAX computation; False for a single process."""
    from jaxfund import distributed

    flags = {"coordinator": "--coordinator", "num_processes": "--num-processes",
             "process_id": "--process-id", "peer_timeout": "--peer-timeout"}
    try:
        return distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                      peer_timeout=args.peer_timeout)
    except ValueError as err:
        message = str(err)
        for name, flag in flags.items():
            message = message.replace(name, flag)
        raise UsageError(message) from None
    except Exception as err:  # JAX could not reach the coordinator or the other processes
        if args.coordinator is None:
            raise
        raise UsageError(f"--coordinator {args.coordinator}: cannot join the "
                         f"{args.num_processes} processes: "
                         f"{' '.join(str(err).split())[:200]}") from None


def run(args: argparse.Namespace) -> int:
    from jaxfund import models

    multiprocess = _join_cluster(args)
    _common.checked("--activation", models.hidden_activation, args.activation)
    _schedule_name(args.lr_schedule)
    _common.checked("--optimizer", make_optimizer, args.optimizer, args.lr, args.weight_decay,
                    "--optimizer")
    if args.html:
        from jaxfund.cli import plots

        _common.checked("--html", plots.check_plotly)
    ds = _load_data(args)
    _common.check_batch_size(args.batch_size, ds)

    import jax

    from jaxfund import tasks, train

    split_by = ("several processes" if multiprocess else "--shard-state" if args.shard_state
                else "--data-parallel" if args.data_parallel else None)
    mesh = train.data_mesh() if split_by else None
    num_devices = mesh.devices.size if mesh is not None else 1
    if args.batch_size % num_devices:
        raise UsageError(f"--batch-size {args.batch_size} is not divisible by the "
                         f"{num_devices} devices it is split over ({split_by})")
    steps_per_epoch = len(ds.x_train) // args.batch_size
    tx = make_optimizer(args.optimizer, learning_rate(args, steps_per_epoch), args.weight_decay,
                        "--optimizer", clip_norm=args.clip_norm)
    config = _config(args, ds)
    out_features = tasks.output_features(ds.task, ds.num_classes)
    model = models.MLP(ds.num_features, args.hidden, out_features, args.activation,
                       dropout=args.dropout)
    lead = jax.process_index() == 0  # writes the logs, metrics and figures
    run_dir = _run.RunDir(args.out, resume=args.resume, overwrite=args.overwrite)
    with run_dir if lead else contextlib.nullcontext(run_dir) as out:
        if multiprocess:  # the others wait until process 0 has prepared (or refused) --out
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jaxfund train: --out ready")
        # one program (not op by op: ~0.1 s less before the first epoch)
        state = jax.jit(lambda key: train.TrainState.create(model.init(key), tx))(
            jax.random.key(args.seed))
        if mesh is not None:  # placed as fit trains it: a checkpoint is restored so
            state = train.place_state(state, mesh, shard_state=args.shard_state)
        with _run.open_checkpoints(out, keep=args.keep) as checkpoints:
            history: list[dict] = []
            start_epoch = 0
            if args.resume:
                state, start_epoch, history = _run.read_checkpoint(
                    checkpoints, out.checkpoint, state, config, args.epochs)
            return _train(args, ds, model, tx, mesh, state, start_epoch, history, config, out,
                          checkpoints, steps_per_epoch, lead)


def _train(args, ds, model, tx, mesh, state, start_epoch, history, config, out, checkpoints,
           steps_per_epoch, lead) -> int:
    import jax
    from rich.table import Table

    from jaxfund import checkpoint as ckpt
    from jaxfund import distributed, tasks, train

    metric = f"test_{tasks.metric(ds.task)}"
    device, _ = _common.device()
    num_devices = mesh.devices.size if mesh is not None else 1
    best_path = os.path.join(out, "best")
    best_epoch, best = None, None
    for entry in history if os.path.exists(best_path) else ():  # resumed: the best so far
        if _improved(entry[metric], best, metric):
            best_epoch, best = entry["epoch"], entry[metric]
    stopped_early = diverged = None
    saved = {"epoch": start_epoch}  # the latest epoch whose checkpoint was saved
    stack = contextlib.ExitStack()
    logs = []
    if lead:
        logs.append(stack.enter_context(_run.JsonlLog(out.log, start_epoch, history)))
        if args.tensorboard:
            logs.append(stack.enter_context(_run.TensorBoardLog(out.tensorboard, start_epoch)))
    stdout, stderr = _common.consoles()
    progress = _common.progress_bar(
        stderr, "loss {task.fields[loss]}  {task.fields[metric]}  {task.fields[speed]}",
        disable=not lead)
    bar = progress.add_task("epoch", total=args.epochs, completed=min(start_epoch, args.epochs),
                            loss="-", metric="", speed="")
    timing = {"steps": 0, "seconds": 0.0}

    def on_epoch(entry: dict, epoch_state: Any) -> bool:
        nonlocal best_epoch, best, stopped_early, diverged
        why = _diverged(entry, steps_per_epoch, metric)
        if why is not None:
            diverged = (entry["epoch"], why, entry["skipped"])
            return True
        history.append(dict(entry))
        for log in logs:  # before the checkpoint: a resume rewrites what is past it
            log.write(entry)
        stop = False
        if args.patience is not None:
            if _improved(entry[metric], best, metric):
                best_epoch, best = entry["epoch"], entry[metric]
                ckpt.export(best_path, epoch_state.params, extra={"epoch": entry["epoch"]})
            elif entry["epoch"] - best_epoch >= args.patience:
                stopped_early = entry["epoch"]
                stop = True
        if stop or entry["epoch"] == args.epochs or not _busy(checkpoints):
            checkpoints.save(entry["epoch"], epoch_state, extra={
                "epoch": entry["epoch"], "seed": args.seed, "config": config,
                "history": _common.plain(history)})
            saved["epoch"] = entry["epoch"]
        timing["steps"] += steps_per_epoch
        timing["seconds"] += entry["seconds"]
        progress.update(bar, advance=1, loss=f"{entry['train_loss']:.4f}",
                        metric=f"{metric.replace('_', ' ')} {entry[metric]:.4f}",
                        speed=f"{timing['steps'] / timing['seconds']:,.0f} steps/s")
        return stop

    try:
        with stack, progress:
            result = train.fit(
                state, (ds.x_train, ds.y_train), apply_fn=model, tx=tx, task=ds.task,
                epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                eval_data=(ds.x_test, ds.y_test), start_epoch=start_epoch, mesh=mesh,
                skip_nonfinite=True, compute_dtype=None if args.dtype == "float32" else args.dtype,
                shard_state=args.shard_state, callback=on_epoch)
        checkpoints.wait()  # the last asynchronous save is committed before the run ends
    except jax.errors.JaxRuntimeError as err:
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        raise UsageError(f"--hidden/--batch-size: the model does not fit in memory "
                         f"({str(err).splitlines()[0][:160]})") from None
    if not lead:  # process 0 reports and writes the outputs
        return DIVERGED if diverged is not None else 0
    if not history:
        print(f"jaxfund: error: training diverged at epoch {diverged[0]}: {diverged[1]}; "
              "nothing was saved: lower --lr or pass --clip-norm", file=sys.stderr)
        return DIVERGED
    last = history[-1]
    final = last  # with --patience: the best epoch, whose params are OUT/best
    if args.patience is not None:
        final = next(h for h in history if h["epoch"] == best_epoch)
    steps = timing["steps"]
    seconds = timing["seconds"]
    metrics = {
        **config, "epochs": args.epochs, "resumed_from_epoch": start_epoch,
        "labels": list(ds.labels), "dropped_rows": ds.dropped_rows,
        "num_train": len(ds.x_train), "num_test": len(ds.x_test),
        "history": history, "final_train_loss": last["train_loss"],
        "test_loss": final["test_loss"], metric: final[metric],
        "skipped_steps": sum(h["skipped"] for h in history),
        "best_epoch": best_epoch if args.patience is not None else None,
        "stopped_early_at_epoch": stopped_early,
        "diverged_at_epoch": None if diverged is None else diverged[0],
        "compile_seconds": result.compile_seconds, "train_seconds": seconds, "steps": steps,
        "steps_per_second": steps / seconds if seconds else 0.0,
        "device": device, "num_devices": num_devices, "num_processes": jax.process_count(),
        "shard_state": args.shard_state,
        # params + optimizer state on the busiest device (of process 0): ~1/N with --shard-state
        "state_bytes_per_device": max(distributed.bytes_per_device(
            (result.state.params, result.state.opt_state)).values()),
        "jax_version": jax.__version__,
    }
    _common.write_json(os.path.join(out, "metrics.json"), metrics)
    from jaxfund.cli import plots  # matplotlib: a run killed while training never needs it

    title = (f"{ds.name}: MLP {'-'.join(map(str, args.hidden))} {args.activation}, "
             f"{args.optimizer} lr={args.lr:g}")
    plots.training_curves_figure(history, os.path.join(out, "curves.png"), title=title)
    if args.html:
        plots.training_curves_html(history, os.path.join(out, "curves.html"), title=title)

    table = Table(title=f"jaxfund train — {ds.name}")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    epochs_text = f"{last['epoch']}" + (f" (resumed at {start_epoch})" if start_epoch else "")
    if stopped_early:
        epochs_text += f", stopped early (best epoch {best_epoch})"
    rows = [
        ("model", f"MLP {ds.num_features}-{'-'.join(map(str, args.hidden))}-"
                  f"{tasks.output_features(ds.task, ds.num_classes)} {args.activation}"),
        ("optimizer", f"{args.optimizer} lr={args.lr:g} {config['lr_schedule']}"),
        ("epochs", epochs_text),
        ("final train loss", f"{metrics['final_train_loss']:.4f}"),
        (metric.replace("_", " "), f"{metrics[metric]:.4f}"),
        ("skipped steps", f"{metrics['skipped_steps']}"),
        ("compile s", f"{result.compile_seconds:.2f}"),
        ("train s", f"{seconds:.2f}"),
        ("steps/s", f"{metrics['steps_per_second']:,.0f}"),
        ("state bytes/device", f"{metrics['state_bytes_per_device']:,}"
                               + (" (sharded)" if args.shard_state else "")),
        ("device", f"{device} × {num_devices}" + (f" in {jax.process_count()} processes"
                                                  if jax.process_count() > 1 else "")),
        ("outputs", f"{out}/metrics.json, log.jsonl, curves.png, checkpoints"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)
    if diverged is not None:
        print(f"jaxfund: error: training diverged at epoch {diverged[0]}: {diverged[1]}; the "
              f"latest checkpoint is of epoch {saved['epoch']}: lower --lr or pass --clip-norm",
              file=sys.stderr)
        return DIVERGED
    return 0
