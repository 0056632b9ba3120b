"""``jaxfund compare``: the course's exercise, a table per dataset and compare.png. The numbers
come from :func:`jaxfund.experiments.compare` (every seed of a row in one compiled program)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from jaxfund.cli import _common


def add_parser(sub: Any) -> None:
    from jaxfund.experiments import COMPARE_ACTIVATIONS

    p = sub.add_parser(
        "compare", formatter_class=_common.Formatter,
        help="the course's exercise: the same network trained with each activation",
        description="Train the same MLP with each activation (and each optimizer) on each "
                    "dataset, for several seeds. Prints a table per dataset, writes "
                    "OUT/compare.json and OUT/compare.png (loss curves, one panel per dataset).")
    p.add_argument("--datasets", type=_common.name_list, default="classification,digits",
                   help="comma-separated dataset names")
    p.add_argument("--activations", type=_common.name_list,
                   default=",".join(COMPARE_ACTIVATIONS),
                   help="comma-separated activation names (jaxfund.activations.ELEMENTWISE)")
    p.add_argument("--optimizers", type=_common.name_list, default="adam",
                   help="comma-separated optimizer names")
    _common.add_training_options(p)
    p.add_argument("--seeds", type=_common.positive_int, default=3,
                   help="number of seeds per run (trained together with jax.vmap)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--target-loss", type=float, default=0.2,
                   help="report the first epoch whose mean train loss is <= this")
    p.add_argument("--out", default="runs/compare", help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxfund import models
    from jaxfund.cli.train import make_optimizer

    for name in args.datasets:
        _common.check_dataset(name, "--datasets")
    for name in args.activations:
        _common.checked("--activations", models.hidden_activation, name)
    for name in args.optimizers:
        make_optimizer(name, args.lr, None, "--optimizers")
    out = _common.output_dir(args.out)

    import jax

    from jaxfund import data, experiments
    from jaxfund.cli import plots

    for name in args.datasets:
        _common.check_batch_size(args.batch_size, data.load(name))
    device, num_devices = _common.device()
    stdout, stderr = _common.consoles()
    progress = _common.progress_bar(stderr)
    runs = len(args.datasets) * len(args.activations) * len(args.optimizers)
    with progress:
        bar = progress.add_task("compare", total=runs)
        started: list[str] = []

        def on_run(dataset: str, activation: str, optimizer: str) -> None:
            progress.update(bar, completed=len(started),
                            description=f"{dataset}: {activation} / {optimizer}")
            started.append(dataset)

        results = experiments.compare(
            args.datasets, args.activations, args.optimizers, lr=args.lr, epochs=args.epochs,
            batch_size=args.batch_size, hidden=args.hidden, seeds=args.seeds, seed=args.seed,
            target_loss=args.target_loss, on_run=on_run)
        progress.update(bar, completed=runs, description="compare")

    config = {k: getattr(args, k) for k in ("datasets", "activations", "optimizers", "lr",
                                            "epochs", "batch_size", "hidden", "seeds",
                                            "seed", "target_loss")}
    _common.write_json(os.path.join(out, "compare.json"), {
        "config": config, "device": device, "num_devices": num_devices,
        "jax_version": jax.__version__,
        "results": {dataset: [_json_row(row) for row in rows]
                    for dataset, rows in results.items()}})
    several = len(args.optimizers) > 1
    curves = {dataset: {(f"{r.activation} / {r.optimizer}" if several else r.activation):
                        (r.train_loss_curves.mean(axis=0), r.train_loss_curves.std(axis=0))
                        for r in rows}
              for dataset, rows in results.items()}
    plots.compare_figure(curves, os.path.join(out, "compare.png"), target_loss=args.target_loss)
    for dataset, rows in results.items():
        stdout.print(_table(dataset, rows, args))
    stdout.print(f"wrote {out}/compare.json and {out}/compare.png")
    return 0


def _json_row(row: Any) -> dict:
    metric = f"test_{row.metric}"
    return {
        "activation": row.activation, "optimizer": row.optimizer, "seeds": row.seeds,
        metric: row.test_metric, f"{metric}_mean_std": (row.test_metric_mean, row.test_metric_std),
        "final_train_loss": row.final_train_loss,
        "final_train_loss_mean_std": (float(row.final_train_loss.mean()),
                                      float(row.final_train_loss.std())),
        "epochs_to_target": row.epochs_to_target,
        "train_loss_curve_mean": row.train_loss_curves.mean(axis=0),
        "test_loss_curve_mean": row.test_loss_curves.mean(axis=0),
        f"{metric}_curve_mean": row.test_metric_curves.mean(axis=0),
        "compile_seconds": row.compile_seconds, "train_seconds": row.train_seconds,
    }


def _table(dataset: str, rows: list, args: argparse.Namespace):
    from rich.table import Table

    task, metric = rows[0].task, f"test {rows[0].metric}"
    title = (f"{dataset} ({task}): MLP {'-'.join(map(str, args.hidden))}, {args.epochs} epochs, "
             f"batch {args.batch_size}, lr {args.lr:g}, {args.seeds} seed(s), mean ± std")
    table = Table(title=title)
    for name, justify in (("activation", "left"), ("optimizer", "left"), (metric, "right"),
                          ("final train loss", "right"),
                          (f"epochs to loss ≤ {args.target_loss:g}", "right"),
                          ("compile s", "right"), ("train s", "right")):
        table.add_column(name, justify=justify)
    for row in rows:
        loss = row.final_train_loss
        reached = row.epochs_to_target
        table.add_row(row.activation, row.optimizer,
                      f"{row.test_metric_mean:.4f} ± {row.test_metric_std:.4f}",
                      f"{loss.mean():.4f} ± {loss.std():.4f}",
                      "—" if reached is None else str(reached),
                      f"{row.compile_seconds:.2f}", f"{row.train_seconds:.2f}")
    return table
