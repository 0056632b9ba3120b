"""The ``jaxfund`` command: train, compare activations, plot them, measure gradient flow.

Usage (``jaxfund <command> --help`` documents every option and its default)::

    jaxfund train     [--dataset digits] [--activation relu] [--optimizer adam] ... --out DIR
    jaxfund compare   [--datasets classification,digits] [--activations ...] --out DIR
    jaxfund plot      --out DIR
    jaxfund gradients --out DIR
    jaxfund bench     [args forwarded to ``python -m benchmarks``]

User errors (an unknown dataset, activation or optimizer name, an ``--out`` that cannot be
written, a missing checkpoint for ``--resume``) exit with status 2 and one line on stderr that
names the problem and the valid choices. ``import jaxfund.cli`` is light: scikit-learn,
matplotlib, rich and torch are imported inside the commands that need them.

How ``compare`` shares compiled code: for one (dataset, activation, optimizer) it compiles ONE
XLA program that trains every seed at once (``jax.vmap`` over the seeds' init and shuffle keys)
for every epoch (``lax.scan`` over epochs of a ``lax.scan`` over minibatches, evaluating the test
split after each epoch). So ``--seeds N`` costs no extra compilation, there is one dispatch per
run, and the compile and run times are measured separately (``lower().compile()`` first).
Different activations and optimizers are different programs (the activation and the optimizer's
update are traced into the code), so each costs one compilation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main", "build_parser"]

_COMPARE_ACTIVATIONS = "identity,sigmoid,tanh,relu,leaky_relu,gelu"
_GRADIENT_ACTIVATIONS = "sigmoid,tanh,relu,gelu,identity"

# Families of the activation figure. Non-elementwise functions (softmax, log_softmax, softmin,
# glu) and prelu (leaky_relu with a learned slope) are not plotted; rrelu is its evaluation
# mode (no key: slope (lower + upper) / 2); threshold gets the arguments in _PLOT_KWARGS.
_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Sigmoid-like (bounded)", "sigmoid_like",
     ("sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign")),
    ("ReLU-like (piecewise linear)", "relu_like",
     ("identity", "relu", "relu6", "leaky_relu", "rrelu")),
    ("Smooth ReLU-like", "smooth_relu_like",
     ("elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "hardswish", "logsigmoid")),
    ("Shrink / threshold", "shrink_threshold",
     ("hardshrink", "softshrink", "tanhshrink", "threshold")),
)
_PLOT_KWARGS: dict[str, dict[str, float]] = {"threshold": {"threshold": 1.0, "value": 0.0}}


class _UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str):
        command = self.prog.removeprefix("jaxfund").strip()
        raise _UsageError(f"{command}: {message}" if command else message)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints like 64,64, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Returns the ``jaxfund`` argument parser (one subcommand per command)."""
    parser = _Parser(prog="jaxfund", description=__doc__.split("\n\n")[0],
                     formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    train = sub.add_parser(
        "train", formatter_class=_Formatter,
        help="train an MLP on a bundled dataset (progress bar, metrics.json, curves.png)",
        description="Train an MLP on a bundled dataset. Writes OUT/metrics.json, OUT/curves.png "
                    "and OUT/checkpoint (saved after every epoch; --resume continues from it).")
    train.add_argument("--dataset", default="digits",
                       help="dataset name (jaxfund.data.NAMES)")
    train.add_argument("--activation", default="relu",
                       help="hidden-layer activation (jaxfund.activations.get name)")
    train.add_argument("--optimizer", default="adam",
                       help="optimizer (jaxfund.optimizers.get name, torch defaults)")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--epochs", type=_positive_int, default=30, help="total epochs")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="minibatch size")
    train.add_argument("--hidden", type=_int_tuple, default="64,64",
                       help="hidden widths, comma-separated (e.g. 64,64)")
    train.add_argument("--weight-decay", type=float, default=None,
                       help="weight decay passed to the optimizer; None keeps its torch default")
    train.add_argument("--seed", type=int, default=0, help="seed of the init and the shuffles")
    train.add_argument("--data-parallel", action="store_true",
                       help="shard each batch over all visible devices (train.data_mesh())")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint (its config must match)")
    train.add_argument("--out", default="runs/train", help="output directory")
    train.set_defaults(func=_cmd_train)

    compare = sub.add_parser(
        "compare", formatter_class=_Formatter,
        help="the course's exercise: the same network trained with each activation",
        description="Train the same MLP with each activation (and each optimizer) on each "
                    "dataset, for several seeds. Prints a table per dataset, writes "
                    "OUT/compare.json and OUT/compare.png (loss curves, one panel per dataset).")
    compare.add_argument("--datasets", type=_name_list, default="classification,digits",
                         help="comma-separated dataset names")
    compare.add_argument("--activations", type=_name_list, default=_COMPARE_ACTIVATIONS,
                         help="comma-separated activation names")
    compare.add_argument("--optimizers", type=_name_list, default="adam",
                         help="comma-separated optimizer names")
    compare.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    compare.add_argument("--epochs", type=_positive_int, default=30, help="epochs per run")
    compare.add_argument("--batch-size", type=_positive_int, default=64, help="minibatch size")
    compare.add_argument("--hidden", type=_int_tuple, default="64,64",
                         help="hidden widths, comma-separated")
    compare.add_argument("--seeds", type=_positive_int, default=3,
                         help="number of seeds per run (trained together with jax.vmap)")
    compare.add_argument("--seed", type=int, default=0, help="first seed")
    compare.add_argument("--target-loss", type=float, default=0.2,
                         help="report the first epoch whose mean train loss is <= this")
    compare.add_argument("--out", default="runs/compare", help="output directory")
    compare.set_defaults(func=_cmd_compare)

    plot = sub.add_parser(
        "plot", formatter_class=_Formatter,
        help="plot every activation and its derivative (OUT/activations.png)",
        description="Plot each activation and its derivative (jax.vmap(jax.grad(f))) over "
                    "[-5, 5], one row per family. Writes OUT/activations.png and one "
                    "OUT/activations_<family>.png per family.")
    plot.add_argument("--points", type=_positive_int, default=1001,
                      help="grid points on [-5, 5] (odd includes x = 0, the kink)")
    plot.add_argument("--out", default="runs/plot", help="output directory")
    plot.set_defaults(func=_cmd_plot)

    gradients = sub.add_parser(
        "gradients", formatter_class=_Formatter,
        help="vanishing/exploding gradients: per-layer gradient norms of a deep MLP",
        description="Per-layer gradient norms of a deep MLP at torch's default init: the "
                    "gradient of the binary cross-entropy (with logits) on the course's "
                    "classification train split with respect to each layer's weight, for each "
                    "activation; and the course's repeated multiplication (x <- x*x vs "
                    "x <- x*tanh(x), 19 iterations from randn(5)). Writes OUT/gradients.png "
                    "and OUT/gradients.json.")
    gradients.add_argument("--depth", type=_positive_int, default=20,
                           help="number of Linear layers (depth - 1 hidden layers + output)")
    gradients.add_argument("--width", type=_positive_int, default=64, help="hidden width")
    gradients.add_argument("--activations", type=_name_list, default=_GRADIENT_ACTIVATIONS,
                           help="comma-separated activation names")
    gradients.add_argument("--seed", type=int, default=0,
                           help="seed of the init and of randn(5)")
    gradients.add_argument("--out", default="runs/gradients", help="output directory")
    gradients.set_defaults(func=_cmd_gradients)

    sub.add_parser("bench", add_help=False,
                   help="run the benchmarks (arguments are forwarded to python -m benchmarks)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``jaxfund`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Returns 0 on success and 2 on a user error (after printing one line to stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["bench"]:
            return _cmd_bench(argv[1:])
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        return int(args.func(args) or 0)
    except _UsageError as err:
        print(f"jaxfund: error: {err}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------------- helpers


def _lookup(get: Callable[[str], Any], name: str, option: str) -> Any:
    try:
        return get(name)
    except ValueError as err:
        raise _UsageError(f"{option}: {err}") from None


def _check_dataset(name: str, option: str) -> str:
    from jaxfund import data

    if name not in data.NAMES:
        raise _UsageError(f"{option}: unknown dataset {name!r}; "
                          f"valid names: {', '.join(data.NAMES)}")
    return name


def _check_batch_size(batch_size: int, ds: Any) -> None:
    if batch_size > len(ds.x_train):
        raise _UsageError(f"--batch-size {batch_size} is larger than the {len(ds.x_train)} "
                          f"training examples of {ds.name}")


def _make_optimizer(name: str, lr: float, weight_decay: float | None, option: str):
    from jaxfund import optimizers

    factory = _lookup(optimizers.get, name, option)
    kwargs: dict[str, float] = {"lr": lr}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as err:
        raise _UsageError(f"{option} {name}: {err}") from None


def _output_dir(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise _UsageError(f"--out: cannot write to {path!r}: {err.strerror or err}") from None
    return path


def _plain(value: Any) -> Any:
    """``value`` with NumPy/JAX scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no non-finite numbers
    return value


def _write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(_plain(payload), f, indent=2, allow_nan=False)
        f.write("\n")


def _device() -> tuple[str, int]:
    import jax

    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}", jax.device_count()


def _consoles():
    """Rich consoles for stdout (tables) and stderr (progress); 120 columns when piped."""
    from rich.console import Console

    return (Console(width=None if sys.stdout.isatty() else 120),
            Console(stderr=True, width=None if sys.stderr.isatty() else 120))


# ------------------------------------------------------------------------------------- train


def _cmd_train(args: argparse.Namespace) -> int:
    from jaxfund import activations

    _check_dataset(args.dataset, "--dataset")
    _lookup(activations.get, args.activation, "--activation")
    tx = _make_optimizer(args.optimizer, args.lr, args.weight_decay, "--optimizer")
    out = _output_dir(args.out)
    checkpoint = os.path.join(out, "checkpoint")
    if args.resume and not os.path.exists(checkpoint):
        raise _UsageError(f"--resume: no checkpoint at {checkpoint!r}; "
                          "train without --resume first")

    import jax
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from jaxfund import data, models, plots, train

    config = {"dataset": args.dataset, "activation": args.activation,
              "optimizer": args.optimizer, "lr": args.lr, "weight_decay": args.weight_decay,
              "hidden": list(args.hidden), "batch_size": args.batch_size, "seed": args.seed}
    ds = data.load(args.dataset)
    _check_batch_size(args.batch_size, ds)
    out_features = models.output_features(ds.task, ds.num_classes)
    model = models.MLP(ds.num_features, args.hidden, out_features, args.activation)
    state = train.TrainState.create(model.init(jax.random.key(args.seed)), tx)
    history: list[dict] = []
    start_epoch = 0
    if args.resume:
        try:
            state, extra = train.restore(checkpoint, state)
        except (FileNotFoundError, ValueError) as err:
            raise _UsageError(f"--resume: {err}") from None
        saved = extra.get("config", {})
        differ = sorted(k for k in config if saved.get(k) != config[k])
        if differ:
            shown = ", ".join(f"{k}={saved.get(k)!r} (now {config[k]!r})" for k in differ)
            raise _UsageError(f"--resume: the checkpoint was trained with {shown}")
        start_epoch = int(extra["epoch"])
        history = [{k: float(v) if isinstance(v, str) else v for k, v in entry.items()}
                   for entry in extra["history"]]  # "nan"/"inf" strings back to floats
        if start_epoch > args.epochs:
            raise _UsageError(f"--epochs {args.epochs}: the checkpoint is already at epoch "
                              f"{start_epoch}; pass --epochs >= {start_epoch}")

    mesh = train.data_mesh() if args.data_parallel else None
    device, _ = _device()
    num_devices = mesh.devices.size if mesh is not None else 1
    if args.batch_size % num_devices:
        raise _UsageError(f"--batch-size {args.batch_size} is not divisible by the "
                          f"{num_devices} devices of --data-parallel")
    metric = "test_mse" if ds.task == "regression" else "test_accuracy"
    steps_per_epoch = len(ds.x_train) // args.batch_size
    stdout, stderr = _consoles()
    progress = Progress(
        TextColumn("[bold]epoch"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[metric]}  {task.fields[speed]}"),
        TimeElapsedColumn(), console=stderr)
    bar = progress.add_task("train", total=args.epochs, completed=min(start_epoch, args.epochs),
                            loss="-", metric="", speed="")

    def on_epoch(entry: dict, epoch_state: Any) -> None:
        history.append(dict(entry))
        train.save(checkpoint, epoch_state, extra={"epoch": entry["epoch"], "seed": args.seed,
                                                   "config": config, "history": _plain(history)})
        speed = steps_per_epoch / entry["seconds"] if entry.get("seconds") else float("nan")
        progress.update(bar, advance=1, loss=f"{history[-1]['train_loss']:.4f}",
                        metric=f"{metric.replace('_', ' ')} {history[-1][metric]:.4f}",
                        speed=f"{speed:,.0f} steps/s")

    with progress:
        result = train.fit(state, (ds.x_train, ds.y_train), apply_fn=model.apply,
                           loss_fn=train.loss_for_task(ds.task), tx=tx, task=ds.task,
                           epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                           eval_data=(ds.x_test, ds.y_test), start_epoch=start_epoch,
                           mesh=mesh, callback=on_epoch)
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
    _write_json(os.path.join(out, "metrics.json"), metrics)
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


# ----------------------------------------------------------------------------------- compare


def _seed_trainer(model, tx, loss_fn: Callable, task: str, n_train: int, batch_size: int,
                  epochs: int) -> Callable:
    """A jitted ``run(keys, x, y, x_test, y_test)`` that trains one model per key (vmap).

    Seed ``s`` (key ``key(s)``) trains exactly as ``jaxfund train --seed s``: parameters from
    ``model.init(key(s))``, epoch ``e`` (1-based) visits the minibatches of
    ``permutation(fold_in(key(s), e))`` as :func:`jaxfund.train.fit` does (ragged last batch
    dropped). Returns per-seed
    arrays of shape ``(seeds, epochs)``: mean train loss over the epoch's steps, test loss and
    test metric (accuracy, or MSE for regression) after the epoch.
    """
    import jax
    import jax.numpy as jnp
    import optax

    steps = n_train // batch_size

    def test_metric(outputs, y):
        if task == "multiclass":
            return jnp.mean(jnp.argmax(outputs, axis=-1) == y)
        if task == "binary":
            return jnp.mean((outputs[..., 0] > 0) == (y == 1))
        return jnp.mean((outputs[..., 0] - y) ** 2)

    def one_seed(key, x, y, x_test, y_test):
        params = model.init(key)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(
                lambda p: loss_fn(model.apply(p, x[idx]), y[idx]))(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry, e):
            order = jax.random.permutation(jax.random.fold_in(key, e), n_train)
            batches = order[: steps * batch_size].reshape(steps, batch_size)
            carry, losses = jax.lax.scan(step, carry, batches)
            outputs = model.apply(carry[0], x_test)
            return carry, (jnp.mean(losses), loss_fn(outputs, y_test), test_metric(outputs, y_test))

        _, curves = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(1, epochs + 1))
        return curves

    return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None)))


def _epochs_to(curve: Sequence[float], target: float) -> int | None:
    return next((i + 1 for i, loss in enumerate(curve) if loss <= target), None)


def _mean_std(values) -> tuple[float, float]:
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def _cmd_compare(args: argparse.Namespace) -> int:
    from jaxfund import activations

    for name in args.datasets:
        _check_dataset(name, "--datasets")
    for name in args.activations:
        _lookup(activations.get, name, "--activations")
    optimizers = {name: _make_optimizer(name, args.lr, None, "--optimizers")
                  for name in args.optimizers}
    out = _output_dir(args.out)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from jaxfund import data, models, plots, train

    seeds = list(range(args.seed, args.seed + args.seeds))
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    device, num_devices = _device()
    stdout, stderr = _consoles()
    results: dict[str, list[dict]] = {}
    tables = []
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    runs = len(args.datasets) * len(args.activations) * len(optimizers)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=stderr)
    with progress:
        bar = progress.add_task("compare", total=runs)
        for dataset in args.datasets:
            ds = data.load(dataset)
            _check_batch_size(args.batch_size, ds)
            metric = "test_mse" if ds.task == "regression" else "test_accuracy"
            arrays = [jnp.asarray(a) for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test)]
            rows, curves[dataset] = [], {}
            for opt_name, tx in optimizers.items():
                for act in args.activations:
                    progress.update(bar, description=f"{dataset}: {act} / {opt_name}")
                    model = models.MLP(ds.num_features, args.hidden,
                                       models.output_features(ds.task, ds.num_classes), act)
                    run = _seed_trainer(model, tx, train.loss_for_task(ds.task), ds.task,
                                        len(ds.x_train), args.batch_size, args.epochs)
                    start = time.perf_counter()
                    compiled = run.lower(keys, *arrays).compile()
                    compile_seconds = time.perf_counter() - start
                    start = time.perf_counter()
                    train_loss, test_loss, test_metric = jax.block_until_ready(
                        compiled(keys, *arrays))
                    train_seconds = time.perf_counter() - start
                    train_loss, test_loss, test_metric = (
                        np.asarray(a, np.float64) for a in (train_loss, test_loss, test_metric))
                    mean_curve = train_loss.mean(axis=0)
                    label = act if len(optimizers) == 1 else f"{act} / {opt_name}"
                    curves[dataset][label] = (mean_curve, train_loss.std(axis=0))
                    rows.append({
                        "activation": act, "optimizer": opt_name, "seeds": seeds,
                        metric: test_metric[:, -1],
                        f"{metric}_mean_std": _mean_std(test_metric[:, -1]),
                        "final_train_loss": train_loss[:, -1],
                        "final_train_loss_mean_std": _mean_std(train_loss[:, -1]),
                        "epochs_to_target": _epochs_to(mean_curve, args.target_loss),
                        "train_loss_curve_mean": mean_curve,
                        "test_loss_curve_mean": test_loss.mean(axis=0),
                        f"{metric}_curve_mean": test_metric.mean(axis=0),
                        "compile_seconds": compile_seconds, "train_seconds": train_seconds,
                    })
                    progress.advance(bar)
            results[dataset] = rows
            tables.append(_compare_table(Table, dataset, ds.task, metric, rows, args))

    config = {k: getattr(args, k) for k in ("datasets", "activations", "optimizers", "lr",
                                            "epochs", "batch_size", "hidden", "seeds",
                                            "seed", "target_loss")}
    _write_json(os.path.join(out, "compare.json"),
                {"config": config, "device": device, "num_devices": num_devices,
                 "jax_version": jax.__version__, "results": results})
    plots.compare_figure(curves, os.path.join(out, "compare.png"), target_loss=args.target_loss)
    for table in tables:
        stdout.print(table)
    stdout.print(f"wrote {out}/compare.json and {out}/compare.png")
    return 0


def _compare_table(table_cls, dataset: str, task: str, metric: str, rows: list[dict],
                   args: argparse.Namespace):
    title = (f"{dataset} ({task}): MLP {'-'.join(map(str, args.hidden))}, {args.epochs} epochs, "
             f"batch {args.batch_size}, lr {args.lr:g}, {args.seeds} seed(s), mean ± std")
    table = table_cls(title=title)
    for name, justify in (("activation", "left"), ("optimizer", "left"),
                          (metric.replace("_", " "), "right"), ("final train loss", "right"),
                          (f"epochs to loss ≤ {args.target_loss:g}", "right"),
                          ("compile s", "right"), ("train s", "right")):
        table.add_column(name, justify=justify)
    for row in rows:
        m, s = row[f"{metric}_mean_std"]
        lm, ls = row["final_train_loss_mean_std"]
        reached = row["epochs_to_target"]
        table.add_row(row["activation"], row["optimizer"], f"{m:.4f} ± {s:.4f}",
                      f"{lm:.4f} ± {ls:.4f}", "—" if reached is None else str(reached),
                      f"{row['compile_seconds']:.2f}", f"{row['train_seconds']:.2f}")
    return table


# -------------------------------------------------------------------------------------- plot


def _value_and_derivative(f: Callable, x):
    import jax

    return jax.jit(jax.vmap(jax.value_and_grad(f)))(x)


def _cmd_plot(args: argparse.Namespace) -> int:
    from jaxfund import activations

    out = _output_dir(args.out)

    import jax.numpy as jnp
    import numpy as np
    from rich.table import Table

    from jaxfund import plots

    x = jnp.linspace(-5.0, 5.0, args.points, dtype=jnp.float32)
    grid = jnp.concatenate([x, jnp.asarray([-5.0, 0.0, 5.0], dtype=jnp.float32)])  # + table
    families: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    table = Table(title="Activations: derivatives by jax.grad (torch's values at the kinks)")
    for column in ("family", "activation", "f(0)", "f'(-5)", "f'(0)", "f'(5)"):
        table.add_column(column, justify="left" if column in ("family", "activation") else "right")
    slugs = {}
    for family, slug, names in _FAMILIES:
        curves = {}
        for name in names:
            if name not in activations.NAMES:
                continue
            fn = activations.get(name)
            kwargs = _PLOT_KWARGS.get(name, {})

            def f(t, fn=fn, kwargs=kwargs):
                return fn(t, **kwargs)

            y, dy = (np.asarray(a) for a in _value_and_derivative(f, grid))
            curves[name] = (y[: len(x)], dy[: len(x)])
            table.add_row(slug, name, f"{y[len(x) + 1]:.4g}",
                          *(f"{d:.4g}" for d in dy[len(x):]))
        if curves:
            families[family], slugs[family] = curves, slug
    plots.activations_figure(np.asarray(x), families, os.path.join(out, "activations.png"))
    written = ["activations.png"]
    for family, curves in families.items():
        name = f"activations_{slugs[family]}.png"
        plots.activations_figure(np.asarray(x), {family: curves}, os.path.join(out, name))
        written.append(name)
    stdout, _ = _consoles()
    stdout.print(table)
    stdout.print(f"wrote {', '.join(os.path.join(out, w) for w in written)}")
    return 0


# --------------------------------------------------------------------------------- gradients


def _gradient_norms(model, params, x, y, loss_fn: Callable):
    """Per-layer Frobenius norms ``‖∂ loss_fn(model.apply(params, x), y) / ∂ w_l‖``."""
    import jax
    import jax.numpy as jnp

    grads = jax.grad(lambda p: loss_fn(model.apply(p, x), y))(params)
    return jnp.stack([jnp.linalg.norm(layer["w"]) for layer in grads])


def _repeated_multiplication(x0, rule: Callable, iterations: int = 19):
    """Rows ``x_0, x_1, ..., x_iterations`` with ``x_{i+1} = rule(x_i)`` (float32, as torch)."""
    import jax.numpy as jnp

    rows = [x0]
    for _ in range(iterations):
        rows.append(rule(rows[-1]))
    return jnp.stack(rows)


def _cmd_gradients(args: argparse.Namespace) -> int:
    from jaxfund import activations

    for name in args.activations:
        _lookup(activations.get, name, "--activations")
    out = _output_dir(args.out)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from rich.table import Table

    from jaxfund import data, models, plots, train

    ds = data.load("classification")
    x, y = ds.x_train, ds.y_train
    loss_fn = train.loss_for_task(ds.task)
    hidden = (args.width,) * (args.depth - 1)
    params = models.MLP(ds.num_features, hidden, 1).init(jax.random.key(args.seed))
    norms = {}
    for name in args.activations:
        model = models.MLP(ds.num_features, hidden, 1, name)
        norms[name] = np.asarray(jax.jit(_gradient_norms, static_argnums=(0, 4))(
            model, params, x, y, loss_fn))

    tanh = activations.get("tanh")
    x0 = jax.random.normal(jax.random.key(args.seed), (5,), dtype=jnp.float32)
    iterations = {
        "x*x": np.asarray(_repeated_multiplication(x0, lambda v: v * v)),
        "x*tanh(x)": np.asarray(_repeated_multiplication(x0, lambda v: v * tanh(v))),
    }
    loss_name = "BCE-with-logits loss"
    plots.gradients_figure(norms, iterations, os.path.join(out, "gradients.png"),
                           loss_name=loss_name)
    _write_json(os.path.join(out, "gradients.json"), {
        "quantity": "Frobenius norm of d(loss)/dW per Linear layer (1 = input side), loss = "
                    "binary_cross_entropy_with_logits (mean) on the classification train split",
        "init": "torch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same weights "
                "for every activation",
        "depth": args.depth, "width": args.width, "seed": args.seed,
        "batch": int(len(x)),
        "norms": norms,
        "first_over_last": {k: float(v[0] / v[-1]) for k, v in norms.items()},
        "repeated_multiplication": {"iterations": 19, "x0": np.asarray(x0),
                                    "rules": iterations},
    })

    layers = sorted({1, (args.depth + 1) // 2, args.depth})
    table = Table(title=f"‖∂loss/∂W‖ per layer, MLP depth {args.depth} width {args.width}, "
                        "torch default init")
    table.add_column("activation")
    for layer in layers:
        table.add_column(f"layer {layer}", justify="right")
    table.add_column("layer 1 / last", justify="right")
    for name, values in norms.items():
        table.add_row(name, *(f"{values[layer - 1]:.3e}" for layer in layers),
                      f"{values[0] / values[-1]:.3e}")
    mult = Table(title="Repeated multiplication from randn(5), float32: entries after 19 steps")
    for column in ("rule", "→ 0", "→ inf", "finite, non-zero"):
        mult.add_column(column, justify="left" if column == "rule" else "right")
    for rule, values in iterations.items():
        last = values[-1]
        zeros, infs = int(np.sum(last == 0)), int(np.sum(np.isinf(last)))
        mult.add_row(rule, str(zeros), str(infs), str(last.size - zeros - infs))
    stdout, _ = _consoles()
    stdout.print(table)
    stdout.print(mult)
    stdout.print(f"wrote {out}/gradients.png and {out}/gradients.json")
    return 0


# ------------------------------------------------------------------------------------- bench


def _cmd_bench(argv: list[str]) -> int:
    try:
        import benchmarks
    except ImportError as err:
        raise _UsageError(f"bench: the benchmarks package cannot be imported ({err}); run from "
                          "the repository root or install jaxfund with its benchmarks") from None
    if not callable(getattr(benchmarks, "main", None)):
        raise _UsageError(f"bench: the benchmarks package at {benchmarks.__path__} has no "
                          "main(argv); run from the repository root")
    try:
        return int(benchmarks.main(argv) or 0)
    except SystemExit as exit_:  # its argparse: --help, or a malformed option
        return int(exit_.code or 0)
