"""``jaxfund plot`` and ``jaxfund gradients``: the course's figures (``plot --html`` also as an
interactive Plotly page). The numbers come from :func:`jaxfund.experiments.activation_curves`
and :func:`jaxfund.experiments.gradient_flow`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from jaxfund.cli import _common

_GRADIENT_ACTIVATIONS = "sigmoid,tanh,relu,gelu,identity"
_TITLES = {"sigmoid_like": "Sigmoid-like (bounded)", "relu_like": "ReLU-like (piecewise linear)",
           "smooth_relu_like": "Smooth ReLU-like", "shrink_threshold": "Shrink / threshold"}


def add_parsers(sub: Any) -> None:
    plot = sub.add_parser(
        "plot", formatter_class=_common.Formatter,
        help="plot every activation and its derivative (OUT/activations.png)",
        description="Plot each activation and its derivative (jax.vmap(jax.grad(f))) over "
                    "[-5, 5], one row per family. Writes OUT/activations.png and one "
                    "OUT/activations_<family>.png per family, and with --html "
                    "OUT/activations.html (every family, interactive).")
    plot.add_argument("--points", type=_common.positive_int, default=1001,
                      help="grid points on [-5, 5] (odd includes x = 0, the kink)")
    plot.add_argument("--html", action="store_true",
                      help="also write OUT/activations.html: the figure as an interactive "
                           "Plotly page, self-contained (plotly.js embedded, opens offline)")
    plot.add_argument("--out", default="runs/plot", help="output directory")
    plot.set_defaults(func=run_plot)

    gradients = sub.add_parser(
        "gradients", formatter_class=_common.Formatter,
        help="vanishing/exploding gradients: per-layer gradient norms of a deep MLP",
        description="Per-layer gradient norms of a deep MLP at torch's default init: the "
                    "gradient of the binary cross-entropy (with logits) on the course's "
                    "classification train split with respect to each layer's weight, for each "
                    "activation; and the course's repeated multiplication (x <- x*x vs "
                    "x <- x*tanh(x), 19 iterations from randn(5)). Writes OUT/gradients.png "
                    "and OUT/gradients.json.")
    gradients.add_argument("--depth", type=_common.positive_int, default=20,
                           help="number of Linear layers (depth - 1 hidden layers + output)")
    gradients.add_argument("--width", type=_common.positive_int, default=64,
                           help="hidden width")
    gradients.add_argument("--activations", type=_common.name_list,
                           default=_GRADIENT_ACTIVATIONS, help="comma-separated activation names")
    gradients.add_argument("--seed", type=int, default=0,
                           help="seed of the init and of randn(5)")
    gradients.add_argument("--out", default="runs/gradients", help="output directory")
    gradients.set_defaults(func=run_gradients)


def run_plot(args: argparse.Namespace) -> int:
    from jaxfund.cli import plots

    if args.html:
        _common.checked("--html", plots.check_plotly)
    out = _common.output_dir(args.out)
    from rich.table import Table

    from jaxfund import experiments

    x, families = experiments.activation_curves(args.points)
    ends = experiments.activation_curves(3)[1]  # f and f' at -5, 0 and 5
    table = Table(title="Activations: derivatives by jax.grad (torch's values at the kinks)")
    for column in ("family", "activation", "f(0)", "f'(-5)", "f'(0)", "f'(5)"):
        table.add_column(column, justify="left" if column in ("family", "activation") else "right")
    for family, curves in ends.items():
        for name, (y, dy) in curves.items():
            table.add_row(family, name, f"{y[1]:.4g}", *(f"{d:.4g}" for d in dy))
    titled = {_TITLES[family]: curves for family, curves in families.items()}
    plots.activations_figure(x, titled, os.path.join(out, "activations.png"))
    written = ["activations.png"]
    for family, curves in families.items():
        name = f"activations_{family}.png"
        plots.activations_figure(x, {_TITLES[family]: curves}, os.path.join(out, name))
        written.append(name)
    if args.html:
        plots.activations_html(x, titled, os.path.join(out, "activations.html"))
        written.append("activations.html")
    stdout, _ = _common.consoles()
    stdout.print(table)
    stdout.print(f"wrote {', '.join(os.path.join(out, w) for w in written)}")
    return 0


def run_gradients(args: argparse.Namespace) -> int:
    from jaxfund import models

    for name in args.activations:
        _common.checked("--activations", models.hidden_activation, name)
    out = _common.output_dir(args.out)

    import numpy as np
    from rich.table import Table

    from jaxfund import experiments
    from jaxfund.cli import plots

    flow = experiments.gradient_flow(
        args.activations, depth=args.depth, width=args.width, seed=args.seed,
        dataset=_common.load_dataset("classification", args.cache_dir))
    plots.gradients_figure(flow.norms, flow.iterations, os.path.join(out, "gradients.png"),
                           loss_name="BCE-with-logits loss")
    _common.write_json(os.path.join(out, "gradients.json"), {
        "quantity": "Frobenius norm of d(loss)/dW per Linear layer (1 = input side), loss = "
                    "binary_cross_entropy_with_logits (mean) on the classification train split",
        "init": "torch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same weights "
                "for every activation",
        "depth": args.depth, "width": args.width, "seed": args.seed, "batch": flow.batch,
        "norms": flow.norms,
        "first_over_last": {k: float(v[0] / v[-1]) for k, v in flow.norms.items()},
        "repeated_multiplication": {"iterations": len(next(iter(flow.iterations.values()))) - 1,
                                    "x0": flow.x0, "rules": flow.iterations},
    })

    layers = sorted({1, (args.depth + 1) // 2, args.depth})
    table = Table(title=f"‖∂loss/∂W‖ per layer, MLP depth {args.depth} width {args.width}, "
                        "torch default init")
    table.add_column("activation")
    for layer in layers:
        table.add_column(f"layer {layer}", justify="right")
    table.add_column("layer 1 / last", justify="right")
    for name, values in flow.norms.items():
        table.add_row(name, *(f"{values[layer - 1]:.3e}" for layer in layers),
                      f"{values[0] / values[-1]:.3e}")
    mult = Table(title="Repeated multiplication from randn(5), float32: entries after 19 steps")
    for column in ("rule", "→ 0", "→ inf", "finite, non-zero"):
        mult.add_column(column, justify="left" if column == "rule" else "right")
    for rule, values in flow.iterations.items():
        last = values[-1]
        zeros, infs = int(np.sum(last == 0)), int(np.sum(np.isinf(last)))
        mult.add_row(rule, str(zeros), str(infs), str(last.size - zeros - infs))
    stdout, _ = _common.consoles()
    stdout.print(table)
    stdout.print(mult)
    stdout.print(f"wrote {out}/gradients.png and {out}/gradients.json")
    return 0
