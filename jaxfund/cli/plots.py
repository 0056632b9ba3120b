"""Figures for the ``jaxfund`` command: PNGs (matplotlib, Agg backend) and interactive HTML
(Plotly).

This module is imported lazily by :mod:`jaxfund.cli`; ``import jaxfund`` never loads it. Every
function takes plain NumPy data (already computed by JAX) and draws one figure. The ``*_figure``
functions use matplotlib's object-oriented API (``matplotlib.figure.Figure``, no pyplot global
state, so it is safe in a headless process) and write a PNG. Each ``*_html`` function draws the
same figure with Plotly, as the course does (zoom, hover, legend entries that hide a curve), and
writes one self-contained HTML file: plotly.js is embedded (about 5 MB), so the file opens
without network access. Plotly is imported inside those functions only.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "activations_figure",
    "training_curves_figure",
    "compare_figure",
    "gradients_figure",
    "check_plotly",
    "activations_html",
    "training_curves_html",
    "compare_html",
]

_DPI = 120


def _save(fig: Figure, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=_DPI, format="png")


class _PlainLogFormatter(ticker.LogFormatter):
    """The ticks matplotlib labels on a log axis, each written as plain text: "0.2", "1",
    "1e-05"."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_y(ax: Any) -> None:
    """A log-scale y axis labelled in plain text, not with matplotlib's default "10^{-1}"
    labels, which go through its TeX parser: a training-curves PNG took 0.36 s instead of
    0.30 s in a new process, the compare PNG after it 0.43 s instead of 0.35 s (2 cores)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


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
    # Fixed margins, not a layout engine: every curve is drawn on [-5, 5] with values in
    # [-5, 5.3], so the tick labels, and the room they need, are known. Constrained layout
    # measures every label before drawing: 30-40% of the time of writing this PNG. (Figures of
    # the user's numbers, whose log-axis labels vary in width, keep it.) In inches: room for
    # the tick and axis labels (left, bottom, between panels) and the titles (top).
    left, right, bottom, top, gap = 0.6, 0.2, 0.62, 0.35, 0.65
    width, height = 11.0, 3.4 * rows
    panel_w = (width - left - right - gap) / 2
    panel_h = (height - bottom - top - (rows - 1) * gap) / rows
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, 2, squeeze=False, gridspec_kw=dict(
        left=left / width, right=1 - right / width, bottom=bottom / height,
        top=1 - top / height, wspace=gap / panel_w, hspace=gap / panel_h))
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
    _log_y(ax_loss)
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
        _log_y(ax)
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
    _log_y(ax_norm)
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
    _log_y(ax_mul)
    ax_mul.set_xlabel("iteration")
    ax_mul.set_ylabel("|x| (one colour per element)")
    ax_mul.set_title("Repeated multiplication from randn(5)")
    ax_mul.grid(alpha=0.3, which="both")
    ax_mul.legend(fontsize=8)
    _save(fig, path)


# --------------------------------------------------------------------------- interactive (Plotly)


def check_plotly() -> None:
    """Raises ``ValueError`` (one line: what to install) unless Plotly can be imported, so a
    command checks ``--html`` before it trains."""
    try:
        found = importlib.util.find_spec("plotly") is not None
    except ValueError:  # a module without __spec__ under that name
        found = False
    if not found:
        raise ValueError("interactive HTML figures need plotly: pip install 'jaxfund[cli]'")


def _colors() -> list[str]:
    import plotly.colors

    return list(plotly.colors.qualitative.Plotly)


def _write_html(fig: Any, path: str | os.PathLike, div_id: str) -> None:
    """Writes ``fig`` as one self-contained HTML page: plotly.js inline (no ``<script src>``,
    no network), a fixed ``div_id`` so the same figure gives the same file."""
    fig.write_html(path, include_plotlyjs=True, include_mathjax=False, full_html=True,
                   div_id=div_id, config={"displaylogo": False, "responsive": True})


def activations_html(
    x: np.ndarray,
    families: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
    *,
    title: str = "Activations and their derivatives (jax.grad)",
) -> None:
    """:func:`activations_figure` as an interactive page: one row per family, ``f(x)`` on the
    left and ``f'(x)`` on the right, one legend per family.

    Trace ``name`` is the activation's for ``f`` and ``name'`` for its derivative; both share a
    colour and a legend entry (``legendgroup``), so clicking the name hides or shows the pair.

    Args:
      x: the 1-D grid of inputs, shape ``(n,)``.
      families: ``{family: {name: (f(x), f'(x))}}``, as :func:`activations_figure`.
      path: where the HTML is written.
      title: the page's title.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = len(families)
    names = list(families)
    fig = make_subplots(rows=rows, cols=2, vertical_spacing=0.25 / max(rows, 1),
                        horizontal_spacing=0.06,
                        subplot_titles=[t for family in names
                                        for t in (f"{family}: f(x)",
                                                  f"{family}: f'(x)  (jax.grad)")])
    colors = _colors()
    for row, family in enumerate(names, start=1):
        legend = "legend" if row == 1 else f"legend{row}"
        for i, (name, (y, dy)) in enumerate(families[family].items()):
            line = {"color": colors[i % len(colors)], "width": 2}
            fig.add_trace(go.Scatter(x=x, y=y, name=name, legendgroup=f"{family}/{name}",
                                     legend=legend, mode="lines", line=line), row=row, col=1)
            fig.add_trace(go.Scatter(x=x, y=dy, name=f"{name}'",
                                     legendgroup=f"{family}/{name}", legend=legend,
                                     showlegend=False, mode="lines", line=line), row=row, col=2)
        # This row's legend, to the right of its panels (the y domain of its left axis).
        axis = fig.layout["yaxis" if row == 1 else f"yaxis{2 * row - 1}"]
        fig.update_layout({legend: {"y": axis.domain[1], "yanchor": "top", "x": 1.01,
                                    "xanchor": "left", "title": {"text": family}}})
    fig.update_xaxes(range=[float(x[0]), float(x[-1])], zeroline=True)
    fig.update_yaxes(zeroline=True)
    for col in (1, 2):
        fig.update_xaxes(title_text="x", row=rows, col=col)
    fig.update_layout(title=title, height=340 * rows + 80, template="plotly_white",
                      hovermode="x unified")
    _write_html(fig, path, "activations")


def training_curves_html(
    history: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str
) -> None:
    """:func:`training_curves_figure` as an interactive page: the train/test loss per epoch
    (log scale) on the left, the metrics on the right.

    Traces are named ``train loss``, ``test loss`` and ``train accuracy``, ``test accuracy`` or
    ``test MSE`` (whichever ``history`` holds); x is the epoch.

    Args:
      history: one mapping per epoch with ``epoch``, ``train_loss`` and optionally
        ``test_loss``, ``train_accuracy``, ``test_accuracy`` or ``test_mse``.
      path: where the HTML is written.
      title: the page's title.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [h["epoch"] for h in history]
    first = history[0] if history else {}
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "metric"),
                        horizontal_spacing=0.1)
    for col, keys in ((1, (("train_loss", "train loss"), ("test_loss", "test loss"))),
                      (2, (("train_accuracy", "train accuracy"),
                           ("test_accuracy", "test accuracy"), ("test_mse", "test MSE")))):
        for key, label in keys:
            if key in first:
                fig.add_trace(go.Scatter(x=epochs, y=[float(h[key]) for h in history],
                                         name=label, mode="lines+markers"), row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=480, template="plotly_white", hovermode="x unified")
    _write_html(fig, path, "training-curves")


def compare_html(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
    *,
    target_loss: float,
    title: str = "Training loss (mean ± std over seeds)",
) -> None:
    """:func:`compare_figure` as an interactive page: mean ± std training-loss curves, one
    panel per dataset (log scale).

    For each label a trace ``label`` (the mean per epoch) and two band traces ``label + std``
    and ``label - std`` (``max(mean - std, 1e-12)``, filled to the first); a dashed
    ``target <target_loss>`` trace. One legend entry per label, shared by the panels, hides or
    shows the label's curve and band everywhere.

    Args:
      curves: ``{dataset: {label: (mean_loss, std_loss)}}``, as :func:`compare_figure`.
      path: where the HTML is written.
      target_loss: drawn as a dashed horizontal line.
      title: the page's title.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    datasets = list(curves)
    fig = make_subplots(rows=1, cols=max(len(datasets), 1), horizontal_spacing=0.06,
                        subplot_titles=[f"{d}: training loss" for d in datasets])
    colors = _colors()
    labels = list(dict.fromkeys(label for runs in curves.values() for label in runs))
    color = {label: colors[i % len(colors)] for i, label in enumerate(labels)}
    shown: set[str] = set()
    for col, dataset in enumerate(datasets, start=1):
        epochs = None
        for label, (mean, std) in curves[dataset].items():
            mean, std = np.asarray(mean), np.asarray(std)
            epochs = np.arange(1, len(mean) + 1)
            band = {"legendgroup": label, "showlegend": False, "mode": "lines",
                    "line": {"width": 0, "color": color[label]}, "hoverinfo": "skip"}
            fig.add_trace(go.Scatter(x=epochs, y=mean + std, name=f"{label} + std", **band),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=epochs, y=np.maximum(mean - std, 1e-12),
                                     name=f"{label} - std", fill="tonexty",
                                     fillcolor=_translucent(color[label]), **band),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=epochs, y=mean, name=label, legendgroup=label,
                                     showlegend=label not in shown, mode="lines",
                                     line={"color": color[label], "width": 2}),
                          row=1, col=col)
            shown.add(label)
        if epochs is not None:
            fig.add_trace(go.Scatter(x=[epochs[0], epochs[-1]], y=[target_loss, target_loss],
                                     name=f"target {target_loss:g}", legendgroup="target",
                                     showlegend=col == 1, mode="lines",
                                     line={"color": "#4d4d4d", "dash": "dash", "width": 1}),
                          row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="train loss", row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=520, template="plotly_white", hovermode="x unified")
    _write_html(fig, path, "compare")


def _translucent(color: str, alpha: float = 0.2) -> str:
    """``"#636efa"`` -> ``"rgba(99,110,250,0.2)"``."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
