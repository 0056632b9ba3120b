"""``jaxfund train``: an MLP on a bundled dataset, with a progress bar, a checkpoint per epoch,
``--resume``, metrics.json and curves.png. Training itself is :func:`jaxfund.train.fit`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from jaxfund.cli import _common
from jaxfund.cli._common import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", formatter_class=_common.Formatter,
        help="train an MLP on a bundled dataset (progress bar, metrics.json, curves.png)",
        description="Train an MLP on a bundled dataset. Writes OUT/metrics.json, OUT/curves.png "
                    "and OUT/checkpoint (saved after every epoch; --resume continues from it).")
    p.add_argument("--dataset", default="digits", help="dataset name (jaxfund.data.NAMES)")
    p.add_argument("--activation", default="relu",
                   help="hidden-layer activation (jaxfund.activations.ELEMENTWISE)")
    p.add_argument("--optimizer", default="adam",
                   help="optimizer (jaxfund.optimizers.get name, torch defaults)")
    _common.add_training_options(p)
    p.add_argument("--weight-decay", type=float, default=None,
                   help="weight decay passed to the optimizer; None keeps its torch default")
    p.add_argument("--seed", type=int, default=0, help="seed of the init and the shuffles")
    p.add_argument("--data-parallel", action="store_true",
                   help="shard each batch over all visible devices (train.data_mesh())")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint (its config must match)")
    p.add_argument("--out", default="runs/train", help="output directory")
    p.set_defaults(func=run)


def make_optimizer(name: str, lr: float, weight_decay: float | None, option: str):
    """``optimizers.get(name)(lr=lr[, weight_decay=...])``, errors as one line naming
    ``option``."""
    from jaxfund import optimizers

    factory = _common.checked(option, optimizers.first_order, name)
    kwargs: dict[str, float] = {"lr": lr}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    return _common.checked(f"{option} {name}", factory, **kwargs)


def _resume(checkpoint: str, state: Any, config: dict, epochs: int) -> tuple[Any, int, list]:
    from jaxfund import checkpoint as ckpt

    state, extra = _common.checked("--resume", ckpt.restore, checkpoint, state)
    saved = extra.get("config", {})
    differ = sorted(k for k in config if saved.get(k) != config[k])
    if differ:
        shown = ", ".join(f"{k}={saved.get(k)!r} (now {config[k]!r})" for k in differ)
        raise UsageError(f"--resume: the checkpoint was trained with {shown}")
    start_epoch = int(extra["epoch"])
    if start_epoch > epochs:
        raise UsageError(f"--epochs {epochs}: the checkpoint is already at epoch "
                         f"{start_epoch}; pass --epochs >= {start_epoch}")
    history = [{k: float(v) if isinstance(v, str) else v for k, v in entry.items()}
               for entry in extra["history"]]  # "nan"/"inf" strings back to floats
    return state, start_epoch, history


def run(args: argparse.Namespace) -> int:
    from jaxfund import models

    _common.check_dataset(args.dataset, "--dataset")
    _common.checked("--activation", models.hidden_activation, args.activation)
    tx = make_optimizer(args.optimizer, args.lr, args.weight_decay, "--optimizer")
    out = _common.output_dir(args.out)
    checkpoint = os.path.join(out, "checkpoint")
    if args.resume and not os.path.exists(checkpoint):
        raise UsageError(f"--resume: no checkpoint at {checkpoint!r}; "
                         "train without --resume first")

    import jax
    from rich.table import Table

    from jaxfund import checkpoint as ckpt
    from jaxfund import data, tasks, train
    from jaxfund.cli import plots

    config = {"dataset": args.dataset, "activation": args.activation,
              "optimizer": args.optimizer, "lr": args.lr, "weight_decay": args.weight_decay,
              "hidden": list(args.hidden), "batch_size": args.batch_size, "seed": args.seed}
    ds = data.load(args.dataset)
    _common.check_batch_size(args.batch_size, ds)
    out_features = tasks.output_features(ds.task, ds.num_classes)
    model = models.MLP(ds.num_features, args.hidden, out_features, args.activation)
    state = train.TrainState.create(model.init(jax.random.key(args.seed)), tx)
    history: list[dict] = []
    start_epoch = 0
    if args.resume:
        state, start_epoch, history = _resume(checkpoint, state, config, args.epochs)

    mesh = train.data_mesh() if args.data_parallel else None
    device, _ = _common.device()
    num_devices = mesh.devices.size if mesh is not None else 1
    if args.batch_size % num_devices:
        raise UsageError(f"--batch-size {args.batch_size} is not divisible by the "
                         f"{num_devices} devices of --data-parallel")
    metric = f"test_{tasks.metric(ds.task)}"
    steps_per_epoch = len(ds.x_train) // args.batch_size
    stdout, stderr = _common.consoles()
    progress = _common.progress_bar(
        stderr, "loss {task.fields[loss]}  {task.fields[metric]}  {task.fields[speed]}")
    bar = progress.add_task("epoch", total=args.epochs, completed=min(start_epoch, args.epochs),
                            loss="-", metric="", speed="")

    def on_epoch(entry: dict, epoch_state: Any) -> None:
        history.append(dict(entry))
        ckpt.save(checkpoint, epoch_state, extra={"epoch": entry["epoch"], "seed": args.seed,
                                                  "config": config,
                                                  "history": _common.plain(history)})
        speed = steps_per_epoch / entry["seconds"] if entry.get("seconds") else float("nan")
        progress.update(bar, advance=1, loss=f"{entry['train_loss']:.4f}",
                        metric=f"{metric.replace('_', ' ')} {entry[metric]:.4f}",
                        speed=f"{speed:,.0f} steps/s")

    with progress:
        result = train.fit(state, (ds.x_train, ds.y_train), apply_fn=model.apply, tx=tx,
                           task=ds.task, epochs=args.epochs, batch_size=args.batch_size,
                           seed=args.seed, eval_data=(ds.x_test, ds.y_test),
                           start_epoch=start_epoch, mesh=mesh, callback=on_epoch)
    last = history[-1]
    metrics = {
        **config, "task": ds.task, "epochs": args.epochs, "resumed_from_epoch": start_epoch,
        "history": history, "final_train_loss": last["train_loss"],
        "test_loss": last["test_loss"], metric: last[metric],
        "compile_seconds": result.compile_seconds, "train_seconds": result.train_seconds,
        "steps": result.steps,
        "steps_per_second": result.steps / result.train_seconds if result.train_seconds else 0.0,
        "device": device, "num_devices": num_devices, "jax_version": jax.__version__,
    }
    _common.write_json(os.path.join(out, "metrics.json"), metrics)
    plots.training_curves_figure(
        history, os.path.join(out, "curves.png"),
        title=f"{args.dataset}: MLP {'-'.join(map(str, args.hidden))} {args.activation}, "
              f"{args.optimizer} lr={args.lr:g}")

    table = Table(title=f"jaxfund train — {args.dataset}")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("model", f"MLP {ds.num_features}-{'-'.join(map(str, args.hidden))}-{out_features} "
                  f"{args.activation}"),
        ("optimizer", f"{args.optimizer} lr={args.lr:g}"),
        ("epochs", f"{args.epochs}" + (f" (resumed at {start_epoch})" if start_epoch else "")),
        ("final train loss", f"{metrics['final_train_loss']:.4f}"),
        (metric.replace("_", " "), f"{metrics[metric]:.4f}"),
        ("compile s", f"{result.compile_seconds:.2f}"),
        ("train s", f"{result.train_seconds:.2f}"),
        ("steps/s", f"{metrics['steps_per_second']:,.0f}"),
        ("device", f"{device} × {num_devices}"),
        ("outputs", f"{out}/metrics.json, curves.png, checkpoint"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)
    return 0
