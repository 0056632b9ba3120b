"""Figures for the ``jaxfund`` command (matplotlib, Agg backend).

This module is imported lazily by :mod:`jaxfund.cli`; ``import jaxfund`` never loads it. Every
function takes plain NumPy data (already computed by JAX), draws one figure with the
object-oriented API (``matplotlib.figure.Figure``, no pyplot global state, so it is safe in a
headless process) and writes it to ``path`` as a PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "activations_figure",
    "training_curves_figure",
    "compare_figure",
    "gradients_figure",
]

_DPI = 120


def _save(fig: Figure, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=_DPI, format="png")


def activations_figure(
    x: np.ndarray,
    families: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
) -> None:
    """Draws each activation and its derivative, one row per family, and writes a PNG.

    Args:
      x: the 1-D grid of inputs, shape ``(n,)``.
      families: ``{family: {name: (f(x), f'(x))}}``; row ``i`` holds family ``i``: the
        functions on the left, their derivatives on the right.
      path: where the PNG is written.
    """
    rows = len(families)
    fig = Figure(figsize=(11, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    for (family, curves), (ax_f, ax_d) in zip(families.items(), axes):
        for name, (y, dy) in curves.items():
            (line,) = ax_f.plot(x, y, label=name, lw=1.6)
            ax_d.plot(x, dy, label=name, lw=1.6, color=line.get_color())
        ax_f.set_title(f"{family}: f(x)")
        ax_d.set_title(f"{family}: f'(x)  (jax.grad)")
        for ax in (ax_f, ax_d):
            ax.axhline(0.0, color="0.6", lw=0.6)
            ax.axvline(0.0, color="0.6", lw=0.6)
            ax.grid(alpha=0.3)
            ax.set_xlim(float(x[0]), float(x[-1]))
        ax_f.legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("x")
    axes[-1, 1].set_xlabel("x")
    _save(fig, path)


def training_curves_figure(
    history: Sequence[Mapping[str, float]], path: str | os.PathLike, *, title: str
) -> None:
    """Draws the train/test loss and the test metric per epoch and writes a PNG.

    Args:
      history: one mapping per epoch with ``epoch``, ``train_loss`` and optionally
        ``test_loss``, ``train_accuracy``, ``test_accuracy`` or ``test_mse``.
      path: where the PNG is written.
      title: the figure title.
    """
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker=".", label="train")
    if history and "test_loss" in history[0]:
        ax_loss.plot(epochs, [h["test_loss"] for h in history], marker=".", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_title("loss")
    for key, label in (("train_accuracy", "train accuracy"), ("test_accuracy", "test accuracy"),
                       ("test_mse", "test MSE")):
        if history and key in history[0]:
            ax_metric.plot(epochs, [h[key] for h in history], marker=".", label=label)
    ax_metric.set_title("metric")
    for ax in (ax_loss, ax_metric):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def compare_figure(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
    *,
    target_loss: float,
) -> None:
    """Draws mean ± std training-loss curves, one panel per dataset, and writes a PNG.

    Args:
      curves: ``{dataset: {label: (mean_loss, std_loss)}}``, each array of shape ``(epochs,)``.
      path: where the PNG is written.
      target_loss: drawn as a dashed horizontal line.
    """
    panels = len(curves)
    fig = Figure(figsize=(6.5 * panels, 4.6), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, (dataset, runs) in zip(axes, curves.items()):
        for label, (mean, std) in runs.items():
            epochs = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(epochs, mean, label=label, lw=1.6)
            ax.fill_between(epochs, np.maximum(mean - std, 1e-12), mean + std,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(target_loss, color="0.3", ls="--", lw=1, label=f"target {target_loss:g}")
        ax.set_yscale("log")
        ax.set_title(f"{dataset}: training loss (mean ± std over seeds)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _save(fig, path)


def gradients_figure(
    norms: Mapping[str, np.ndarray],
    iterations: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    loss_name: str,
) -> None:
    """Draws per-layer gradient norms and the repeated-multiplication illustration; writes a PNG.

    Args:
      norms: ``{activation: norms}``, ``norms[l]`` the Frobenius norm of the gradient of the
        loss with respect to the weight of layer ``l + 1`` (input side first).
      iterations: ``{rule: values}``, ``values`` of shape ``(iterations + 1, n)``: row ``i`` is
        ``x`` after ``i`` applications of the rule (row 0 the start), float32 with 0/inf.
      path: where the PNG is written.
      loss_name: names the differentiated quantity in the axis label.
    """
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    ax_norm, ax_mul = fig.subplots(1, 2)
    for name, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        ax_norm.plot(layers, np.maximum(values, 1e-45), marker="o", ms=3, label=name)
    ax_norm.set_yscale("log")
    ax_norm.set_xlabel("layer (1 = input side)")
    ax_norm.set_ylabel(f"‖∂ {loss_name} / ∂W‖ (Frobenius)")
    ax_norm.set_title("Per-layer gradient norm at initialisation")
    ax_norm.grid(alpha=0.3, which="both")
    ax_norm.legend(fontsize=8)

    tiny = float(np.finfo(np.float32).smallest_subnormal)
    huge = float(np.finfo(np.float32).max)
    for (rule, values), style in zip(iterations.items(), ("-", "--")):
        steps = np.arange(values.shape[0])
        shown = np.clip(np.abs(values), tiny, huge)
        for j in range(values.shape[1]):
            ax_mul.plot(steps, shown[:, j], style, marker=".", color=f"C{j}",
                        label=rule if j == 0 else None)
    ax_mul.axhline(huge, color="red", lw=0.8)
    ax_mul.axhline(tiny, color="blue", lw=0.8)
    ax_mul.text(0, huge * 1e-4, "overflow → inf (float32)", color="red", fontsize=8)
    ax_mul.text(0, tiny * 1e4, "underflow → 0 (float32)", color="blue", fontsize=8)
    ax_mul.set_yscale("log")
    ax_mul.set_xlabel("iteration")
    ax_mul.set_ylabel("|x| (one colour per element)")
    ax_mul.set_title("Repeated multiplication from randn(5)")
    ax_mul.grid(alpha=0.3, which="both")
    ax_mul.legend(fontsize=8)
    _save(fig, path)
