"""``jaxfund compare``: the course's exercise, a table per dataset, compare.png (and, with
``--html``, the interactive compare.html). The numbers come from
:func:`jaxfund.experiments.compare` (every seed of a row in one compiled program)."""

from __future__ import annotations

import argparse
import importlib
import os
import threading
from typing import Any

from jaxfund.cli import _common


def optimizer_list(text: str) -> list[tuple[str, float | None]]:
    """``"adam=1e-3,sgd"`` -> ``[("adam", 0.001), ("sgd", None)]``: optimizer names, each with
    an optional learning rate (:func:`jaxfund.cli._common.positive_float`); None means ``--lr``.
    """
    items = []
    for item in _common.name_list(text):
        name, sep, lr_text = (part.strip() for part in item.partition("="))
        if not name:
            raise argparse.ArgumentTypeError(
                f"expected NAME or NAME=LR (e.g. adam=1e-3,sgd=0.1), got {item!r}")
        lr = None
        if sep:
            try:
                lr = _common.positive_float(lr_text)
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentTypeError(
                    f"the learning rate in {item!r}: {err}") from None
        items.append((name, lr))
    names = [name for name, _ in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given more than once in {text!r}")
    return items


def add_parser(sub: Any) -> None:
    from jaxfund._names import COMPARE_ACTIVATIONS

    p = sub.add_parser(
        "compare", formatter_class=_common.Formatter,
        help="the course's exercise: the same network trained with each activation",
        description="Train the same MLP with each activation (and each optimizer) on each "
                    "dataset, for several seeds. Prints a table per dataset, writes "
                    "OUT/compare.json and OUT/compare.png (loss curves, one panel per dataset), "
                    "and with --html OUT/compare.html (the same curves, interactive). SGD needs "
                    "a larger learning rate than Adam: give each optimizer its own, e.g. "
                    "--optimizers adam=1e-3,sgd=0.1.")
    p.add_argument("--datasets", type=_common.name_list, default="classification,digits",
                   help="comma-separated dataset names")
    p.add_argument("--activations", type=_common.name_list,
                   default=",".join(COMPARE_ACTIVATIONS),
                   help="comma-separated activation names (jaxfund.activations.ELEMENTWISE)")
    p.add_argument("--optimizers", type=optimizer_list, default="adam",
                   help="comma-separated optimizer names, each optionally with its own learning "
                        "rate, e.g. adam=1e-3,sgd=0.1 (a bare name uses the shared learning rate, "
                        "below)")
    _common.add_training_options(p)
    p.add_argument("--seeds", type=_common.positive_int, default=3,
                   help="number of seeds per run (trained together with jax.vmap)")
    p.add_argument("--seed", type=_common.seed, default=0, help="first seed")
    p.add_argument("--target-loss", type=_common.non_negative_float, default=0.2,
                   help="report the first epoch whose mean train loss is <= this")
    p.add_argument("--html", action="store_true",
                   help="also write OUT/compare.html: the loss curves as an interactive Plotly "
                        "figure, self-contained (plotly.js embedded, opens offline)")
    p.add_argument("--out", default="runs/compare", help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Every check comes before the first output (progress, files): a user error leaves --out
    # as it was and prints one line.
    from jaxfund import models
    from jaxfund.cli.train import make_optimizer

    for name in args.datasets:
        _common.check_dataset(name, "--datasets")
    for name in args.activations:
        _common.checked("--activations", models.hidden_activation, name)
    lrs = {name: args.lr if lr is None else lr for name, lr in args.optimizers}
    for name, lr in lrs.items():
        make_optimizer(name, lr, None, "--optimizers")
    if args.html:
        from jaxfund.cli import plots

        _common.checked("--html", plots.check_plotly)
    datasets = [_common.load_dataset(name, args.cache_dir) for name in args.datasets]
    for ds in datasets:
        _common.check_batch_size(args.batch_size, ds)
    out = _common.output_dir(args.out)

    import jax

    from jaxfund import experiments

    device, num_devices = _common.device()
    stdout, stderr = _common.consoles()
    progress = _common.progress_bar(stderr)
    runs = len(args.datasets) * len(args.activations) * len(args.optimizers)
    # matplotlib (0.4 s) is imported while the last program trains, which leaves Python idle.
    plotting = threading.Thread(target=importlib.import_module, args=("jaxfund.cli.plots",))
    with progress:
        bar = progress.add_task("compare", total=runs)
        started: list[str] = []

        def on_run(dataset: str, activation: str, optimizer: str) -> None:
            progress.update(bar, completed=len(started),
                            description=f"{dataset}: {activation} / {optimizer}")
            started.append(dataset)
            if len(started) == runs - len(args.activations) + 1:
                plotting.start()

        results = experiments.compare(
            datasets, args.activations, list(lrs), lr=args.lr, lrs=lrs, epochs=args.epochs,
            batch_size=args.batch_size, hidden=args.hidden, seeds=args.seeds, seed=args.seed,
            target_loss=args.target_loss, on_run=on_run)
        progress.update(bar, completed=runs, description="compare")
    plotting.join()
    from jaxfund.cli import plots

    config = {"datasets": args.datasets, "activations": args.activations,
              "optimizers": list(lrs), "lrs": lrs,
              **{k: getattr(args, k) for k in ("lr", "epochs", "batch_size", "hidden", "seeds",
                                               "seed", "target_loss")}}
    _common.write_json(os.path.join(out, "compare.json"), {
        "config": config, "device": device, "num_devices": num_devices,
        "jax_version": jax.__version__,
        "results": {dataset: [_json_row(row) for row in rows]
                    for dataset, rows in results.items()}})
    curves = {dataset: {_label(r, several=len(lrs) > 1):
                        (r.train_loss_curves.mean(axis=0), r.train_loss_curves.std(axis=0))
                        for r in rows}
              for dataset, rows in results.items()}
    plots.compare_figure(curves, os.path.join(out, "compare.png"), target_loss=args.target_loss)
    written = ["compare.json", "compare.png"]
    if args.html:
        plots.compare_html(curves, os.path.join(out, "compare.html"),
                           target_loss=args.target_loss,
                           title=f"Training loss: {_title(args, lrs)}")
        written.append("compare.html")
    for dataset, rows in results.items():
        stdout.print(_table(dataset, rows, args, lrs))
    stdout.print(f"wrote {', '.join(os.path.join(out, w) for w in written)}")
    return 0


def _label(row: Any, *, several: bool) -> str:
    """A curve's name: the activation, with the optimizer and its lr when there are several."""
    return f"{row.activation} / {row.optimizer} lr={row.lr:g}" if several else row.activation


def _title(args: argparse.Namespace, lrs: dict[str, float]) -> str:
    """The set-up shared by every row of a table: the network, epochs, batch and lr."""
    shared_lr = f", lr {next(iter(lrs.values())):g}" if len(set(lrs.values())) == 1 else ""
    return (f"MLP {'-'.join(map(str, args.hidden))}, {args.epochs} epochs, "
            f"batch {args.batch_size}{shared_lr}, {args.seeds} seed(s), mean ± std")


def _json_row(row: Any) -> dict:
    metric = f"test_{row.metric}"
    return {
        "activation": row.activation, "optimizer": row.optimizer, "lr": row.lr,
        "seeds": row.seeds,
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


def _table(dataset: str, rows: list, args: argparse.Namespace, lrs: dict[str, float]):
    from rich.table import Table

    task, metric = rows[0].task, f"test {rows[0].metric}"
    table = Table(title=f"{dataset} ({task}): {_title(args, lrs)}")
    for name, justify in (("activation", "left"), ("optimizer", "left"), ("lr", "right"),
                          (metric, "right"),
                          ("final train loss", "right"),
                          (f"epochs to loss ≤ {args.target_loss:g}", "right"),
                          ("compile s", "right"), ("train s", "right")):
        table.add_column(name, justify=justify)
    for row in rows:
        loss = row.final_train_loss
        reached = row.epochs_to_target
        table.add_row(row.activation, row.optimizer, f"{row.lr:g}",
                      f"{row.test_metric_mean:.4f} ± {row.test_metric_std:.4f}",
                      f"{loss.mean():.4f} ± {loss.std():.4f}",
                      "—" if reached is None else str(reached),
                      # One program trains every activation: its compile time is on its first row.
                      f"{row.compile_seconds:.2f}" if row.compile_seconds else "shared",
                      f"{row.train_seconds:.2f}")
    return table
