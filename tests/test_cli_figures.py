"""Interactive figures (``plot --html``, ``compare --html``, ``plots.training_curves_html``),
``compare --optimizers NAME=LR`` and one-line user errors that leave ``--out`` untouched.

The HTML is checked by reading back what the page hands to ``Plotly.newPlot`` (trace names, x, y)
and by the absence of any ``<script src=...>`` (plotly.js is embedded: the page opens offline).
Whether a browser draws it was checked once by hand in headless Chromium (not here: CI has no
browser).
"""

import base64
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfund import activations, cli, experiments
from jaxfund.cli import plots

TINY_COMPARE = ["--datasets", "iris", "--activations", "relu", "--epochs", "2", "--seeds", "2",
                "--hidden", "8"]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------ reading the HTML


def newplot(path: Path) -> tuple[str, list[dict], dict]:
    """``(div id, traces, layout)``: the arguments of the page's one ``Plotly.newPlot`` call."""
    html = path.read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot(") == 1
    decoder = json.JSONDecoder()
    pos = html.index("Plotly.newPlot(") + len("Plotly.newPlot(")
    values = []
    for _ in range(3):
        while html[pos] in " \t\r\n,":
            pos += 1
        value, pos = decoder.raw_decode(html, pos)
        values.append(value)
    return values[0], values[1], values[2]


def array(value) -> np.ndarray:
    """A trace's x or y: a JSON list, or Plotly's typed array ``{"dtype", "bdata"[, "shape"]}``."""
    if isinstance(value, dict):
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            out = out.reshape([int(n) for n in str(value["shape"]).split(",")])
        return out
    return np.asarray([math.nan if v is None else v for v in value], dtype=np.float64)


def assert_self_contained(path: Path) -> None:
    html = path.read_text(encoding="utf-8")
    assert '<script src="http' not in html
    assert re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE) is None
    assert re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", html, re.IGNORECASE) is None
    assert "plotly.js v" in html and len(html) > 1_000_000  # the library itself is inline


def by_name(traces: list[dict]) -> dict[str, dict]:
    names = [t["name"] for t in traces]
    assert len(names) == len(set(names)), names
    return dict(zip(names, traces))


# ------------------------------------------------------------------------------ plot --html


def _reference(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) from jaxfund.activations directly (not through experiments)."""
    fn, kwargs = activations.get(name), experiments.FAMILY_KWARGS.get(name, {})
    y = fn(x, **kwargs)
    dy = jax.vmap(jax.grad(lambda t: fn(t, **kwargs)))(x)
    return np.asarray(y), np.asarray(dy)


def test_plot_html_has_every_activation_and_its_derivative(capsys, tmp_path):
    code, out, err = run(capsys, "plot", "--points", "101", "--html", "--out", tmp_path)
    assert code == 0, err
    assert "activations.html" in out
    path = tmp_path / "activations.html"
    assert_self_contained(path)
    div, traces, layout = newplot(path)
    assert div == "activations"
    traces = by_name(traces)
    names = [name for _, family in experiments.FAMILIES for name in family]
    assert set(traces) == set(names) | {f"{name}'" for name in names}
    x = np.asarray(jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float32))  # the command's grid
    for row, (_, family) in enumerate(experiments.FAMILIES):
        # Row `row` of the grid: f on the left axis 2*row+1, f' on the right one.
        left, right = (f"x{2 * row + 1}" if row else "x"), f"x{2 * row + 2}"
        legend = "legend" if row == 0 else f"legend{row + 1}"
        for name in family:
            y, dy = _reference(name, x)
            f, df = traces[name], traces[f"{name}'"]
            assert (f.get("xaxis", "x"), df["xaxis"]) == (left, right), name
            assert f.get("legend", "legend") == df.get("legend", "legend") == legend
            assert f["legendgroup"] == df["legendgroup"] and df["showlegend"] is False
            assert f["line"]["color"] == df["line"]["color"]
            np.testing.assert_allclose(array(f["x"]), x, rtol=0, atol=0)
            np.testing.assert_allclose(array(df["x"]), x, rtol=0, atol=0)
            np.testing.assert_allclose(array(f["y"]), y, rtol=1e-6, atol=1e-7, err_msg=name)
            np.testing.assert_allclose(array(df["y"]), dy, rtol=1e-6, atol=1e-7, err_msg=name)
    # torch's derivative at the kink, as the PNG's table shows: relu'(0) = 0.
    assert array(traces["relu'"]["y"])[50] == 0 and array(traces["leaky_relu'"]["y"])[50] == \
        np.float32(0.01)
    titles = [a["text"] for a in layout["annotations"]]
    assert "Sigmoid-like (bounded): f(x)" in titles


def test_plot_writes_no_html_by_default(capsys, tmp_path):
    code, _, err = run(capsys, "plot", "--points", "11", "--out", tmp_path)
    assert code == 0, err
    assert not list(tmp_path.glob("*.html"))


# --------------------------------------------------------------------------- compare --html


def test_compare_html_and_per_optimizer_learning_rates(capsys, tmp_path):
    code, out, err = run(capsys, "compare", *TINY_COMPARE, "--optimizers", "adam=1e-3,sgd=0.1",
                         "--lr", "0.5", "--target-loss", "0.9", "--html", "--out", tmp_path)
    assert code == 0, err
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["config"]["optimizers"] == ["adam", "sgd"]
    assert result["config"]["lrs"] == {"adam": 0.001, "sgd": 0.1}
    rows = result["results"]["iris"]
    assert [(r["optimizer"], r["lr"]) for r in rows] == [("adam", 0.001), ("sgd", 0.1)]
    table = [line for line in out.splitlines() if "│ sgd" in line]
    assert len(table) == 1 and "│   0.1 │" in table[0], out

    # The sgd row trained with lr 0.1: the same run as the API with one lr for all.
    api = experiments.compare(["iris"], ["relu"], ["sgd"], lr=0.1, epochs=2, hidden=(8,),
                              seeds=2)["iris"][0]
    assert api.lr == 0.1
    np.testing.assert_array_equal(rows[1]["final_train_loss"], api.final_train_loss)

    path = tmp_path / "compare.html"
    assert_self_contained(path)
    div, traces, layout = newplot(path)
    assert div == "compare"
    traces = by_name(traces)
    for row in rows:
        label = f"relu / {row['optimizer']} lr={row['lr']:g}"
        mean = array(traces[label]["y"])
        np.testing.assert_allclose(mean, row["train_loss_curve_mean"], rtol=1e-7)
        np.testing.assert_array_equal(array(traces[label]["x"]), [1, 2])
        upper, lower = array(traces[f"{label} + std"]["y"]), array(traces[f"{label} - std"]["y"])
        std = np.std(row["final_train_loss"])  # the band's half-width at the last epoch
        np.testing.assert_allclose(upper[-1] - mean[-1], std, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(lower, np.maximum(2 * mean - upper, 1e-12), rtol=1e-5)
        assert traces[f"{label} - std"]["fill"] == "tonexty"
    target = traces["target 0.9"]
    np.testing.assert_array_equal(array(target["y"]), [0.9, 0.9])
    assert layout["yaxis"]["type"] == "log"


def test_compare_lrs_must_name_a_compared_optimizer():
    with pytest.raises(ValueError, match="lrs: 'sgd' not in optimizers"):
        experiments.compare(["iris"], ["relu"], ["adam"], lrs={"sgd": 0.1})


@pytest.mark.parametrize("target_loss", [math.nan, math.inf, -0.1])
def test_compare_refuses_a_bad_target_loss(target_loss):
    with pytest.raises(ValueError, match="target_loss"):
        experiments.compare(["iris"], ["relu"], target_loss=target_loss)


# -------------------------------------------------------------------- training_curves_html


HISTORIES = {
    "classification": [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.2 / e,
                        "train_accuracy": 0.5 + 0.1 * e, "test_accuracy": 0.45 + 0.1 * e,
                        "seconds": 0.1} for e in (1, 2, 3)],
    "regression": [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.5 / e,
                    "test_mse": 2.5 / e} for e in (1, 2)],
}
LABELS = {"train_loss": "train loss", "test_loss": "test loss",
          "train_accuracy": "train accuracy", "test_accuracy": "test accuracy",
          "test_mse": "test MSE"}


@pytest.mark.parametrize("kind", sorted(HISTORIES))
def test_training_curves_html(tmp_path, kind):
    history = HISTORIES[kind]
    path = tmp_path / "curves.html"
    plots.training_curves_html(history, path, f"{kind} run")
    assert_self_contained(path)
    _, traces, layout = newplot(path)
    traces = by_name(traces)
    expected = {LABELS[k] for k in history[0] if k in LABELS}
    assert set(traces) == expected
    for key, label in LABELS.items():
        if label in traces:
            np.testing.assert_array_equal(array(traces[label]["x"]), [h["epoch"] for h in history])
            np.testing.assert_allclose(array(traces[label]["y"]), [h[key] for h in history])
            assert traces[label].get("xaxis", "x") == ("x" if "loss" in key else "x2")
    assert layout["yaxis"]["type"] == "log"
    assert layout["title"]["text"] == f"{kind} run"


def test_plotly_is_imported_only_to_draw():
    code = ("import sys, jaxfund.cli, jaxfund.cli.plots, jaxfund.cli.compare, "
            "jaxfund.cli.figures\nassert 'plotly' not in sys.modules, 'plotly imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ user errors


# (argv, the option the one-line message must name). Compare runs get tiny settings first, so a
# case that stops being refused fails quickly instead of training for minutes.
ERRORS = [
    (["compare", "--target-loss", "nan"], "--target-loss"),
    (["compare", "--target-loss", "inf"], "--target-loss"),
    (["compare", "--target-loss", "-0.5"], "--target-loss"),
    (["compare", "--lr", "inf"], "--lr"),
    (["compare", "--lr", "0"], "--lr"),
    (["compare", "--lr", "1e400"], "--lr"),
    (["compare", "--lr", "nan"], "--lr"),
    (["compare", "--lr", "-1"], "--lr"),
    (["compare", "--seed", "-1"], "--seed"),
    (["compare", "--datasets", ""], "--datasets"),
    (["compare", "--activations", ","], "--activations"),
    (["compare", "--optimizers", "adam="], "--optimizers"),
    (["compare", "--optimizers", "adam=abc"], "--optimizers"),
    (["compare", "--optimizers", "adam=-1"], "--optimizers"),
    (["compare", "--optimizers", "adam=inf"], "--optimizers"),
    (["compare", "--optimizers", "adam=nan"], "--optimizers"),
    (["compare", "--optimizers", "adam=0"], "--optimizers"),
    (["compare", "--optimizers", "adam=1e400"], "--optimizers"),
    (["compare", "--optimizers", "adam=1e-3,nope=0.1"], "--optimizers"),
    (["compare", "--optimizers", "sgd=0.1,=0.1"], "--optimizers"),
    (["compare", "--optimizers", "adam,adam=0.1"], "--optimizers"),
    (["compare", "--optimizers", "lbfgs=0.1"], "--optimizers"),
    # The default datasets: classification has 800 training examples, digits 1437.
    (["compare", "--datasets", "classification,digits", "--batch-size", "900"],
     "--batch-size"),
    (["bench", "--nonsense"], "--nonsense"),
    (["bench", "--only", "nope"], "--only"),
    (["bench", "--repeats", "0"], "--repeats"),
]
TINY = {"compare": ["--activations", "relu", "--epochs", "2", "--seeds", "1", "--hidden", "8",
                    "--html"],
        "bench": ["--quick"]}


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def assert_one_line_error(err: str, option: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("jaxfund: error:"), err
    assert option in err and "Traceback" not in err, err


@pytest.mark.parametrize("argv,option", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_user_error_is_one_line_and_leaves_out_untouched(capsys, tmp_path, argv, option):
    out = tmp_path / "out"
    out.mkdir()
    (out / "marker.txt").write_bytes(b"an earlier run\n")
    before = snapshot(tmp_path)
    command, *options = argv
    code, stdout, err = run(capsys, command, *TINY[command], *options, "--out", out)
    assert code == 2, (argv, err)
    assert_one_line_error(err, option)
    assert not stdout  # no table, no progress
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["plot", "compare"])
def test_html_without_plotly_is_a_one_line_error(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly now fails
    out = tmp_path / "out"
    out.mkdir()
    (out / "marker.txt").write_bytes(b"an earlier run\n")
    before = snapshot(tmp_path)
    extra = TINY["compare"] if command == "compare" else []
    code, stdout, err = run(capsys, command, *extra, "--html", "--out", out)
    assert code == 2
    assert_one_line_error(err, "--html")
    assert "pip install" in err and not stdout
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["plot", "compare"])
def test_help_documents_html(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    text = " ".join(out.split())
    assert code == 0 and "--html" in text and "self-contained" in text
    assert "(default: False)" in text[text.index("--html", text.index("options:")):]
