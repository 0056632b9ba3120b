"""The ``jaxfund`` command: exit codes, files, JSON keys, figures, help text and user errors.

Commands run in-process through ``jaxfund.cli.main`` (shared jit caches, fast); the console
script and ``python -m jaxfund`` run once each in a subprocess. Settings are tiny except for
one default ``train`` run, which must reach the advertised >= 95% test accuracy on digits.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import torch

from jaxfund import activations, checkpoint, cli, data, experiments, models, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY_TRAIN = ["--hidden", "16", "--batch-size", "32"]


def assert_png(path: Path, min_kb: int = 10) -> None:
    content = path.read_bytes()
    assert content[:8] == PNG_SIGNATURE, path
    assert len(content) > min_kb * 1024, (path, len(content))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if "seconds" not in k and k != "steps_per_second"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


# ------------------------------------------------------------------------- import and help


HELP = {
    "train": {"--dataset": "digits", "--activation": "relu", "--optimizer": "adam",
              "--lr": "0.001", "--epochs": "30", "--batch-size": "64", "--hidden": "64,64",
              "--weight-decay": "None", "--seed": "0", "--data-parallel": "False",
              "--resume": "False", "--out": "runs/train"},
    "compare": {"--datasets": "classification,digits",
                "--activations": "identity,sigmoid,tanh,relu,leaky_relu,gelu",
                "--optimizers": "adam", "--lr": "0.001", "--epochs": "30", "--batch-size": "64",
                "--hidden": "64,64", "--seeds": "3", "--seed": "0", "--target-loss": "0.2",
                "--out": "runs/compare"},
    "plot": {"--points": "1001", "--out": "runs/plot"},
    "gradients": {"--depth": "20", "--width": "64",
                  "--activations": "sigmoid,tanh,relu,gelu,identity", "--seed": "0",
                  "--out": "runs/gradients"},
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_documents_every_option_and_default(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and not err
    text = " ".join(out.split())  # undo argparse's line wrapping
    for option, default in HELP[command].items():
        start = text.index(option, text.index("options:"))
        nxt = [text.find(o, start + len(option)) for o in HELP[command] if o != option]
        end = min([i for i in nxt if i > start] + [len(text)])
        assert f"(default: {default})" in text[start:end], (option, text[start:end])
    # Every option the parser has is in the table above (so none goes undocumented).
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {s for a in sub.choices[command]._actions for s in a.option_strings
               if s.startswith("--") and s != "--help"}
    assert options == set(HELP[command])


def test_top_level_help_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("train", "compare", "plot", "gradients", "bench"):
        assert command in out


# ----------------------------------------------------------------------------------- errors


# (argv, words the one-line message must contain); {tmp} is the test's temporary directory.
ERROR_CASES = [
    (["train", "--dataset", "mnist"], ["mnist", "digits", "classification", "diabetes"]),
    (["train", "--activation", "swish2"], ["swish2", "relu", "leaky_relu", "gelu"]),
    (["train", "--optimizer", "adamx"], ["adamx", "adam", "sgd", "rmsprop"]),
    (["train", "--out", "{tmp}/a_file/sub"], ["--out", "a_file/sub"]),
    (["train", "--resume", "--out", "{tmp}/empty"], ["--resume", "checkpoint"]),
    (["train", "--epochs", "zero"], ["--epochs", "zero"]),
    (["train", "--hidden", "64,x"], ["--hidden", "64,x"]),
    (["train", "--batch-size", "100000"], ["--batch-size", "1437"]),
    (["train", "--lr", "-1"], ["--optimizer adam", "lr", "-1"]),
    (["compare", "--datasets", "classification,nope"], ["nope", "digits"]),
    (["compare", "--activations", "relu,nope"], ["nope", "sigmoid"]),
    (["compare", "--optimizers", "adam,nope"], ["nope", "adamw"]),
    (["train", "--optimizer", "LBFGS"], ["--optimizer", "needs the objective", "adamw"]),
    (["compare", "--optimizers", "lbfgs"], ["--optimizers", "needs the objective"]),
    (["compare", "--datasets", "iris", "--batch-size", "500"], ["--batch-size", "120"]),
    (["plot", "--out", "{tmp}/a_file"], ["--out"]),
    (["gradients", "--activations", "nope"], ["nope", "tanh"]),
    (["frobnicate"], ["frobnicate", "train"]),
    ([], ["COMMAND"]),
] + [
    # Every activation that is not element-wise, as named by the command's own list of names.
    ([command, option, name], [option, f"'{name}' is not an element-wise activation",
                               ", ".join(activations.ELEMENTWISE)])
    for name in sorted(set(activations.NAMES) - set(activations.ELEMENTWISE))
    for command, option in (("train", "--activation"), ("compare", "--activations"),
                            ("gradients", "--activations"))
]


def test_bench_forwards_its_arguments_to_the_benchmarks(capsys):
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0 and "--quick" in out and "--only" in out
    code, _, err = run(capsys, "bench", "--only", "nope")
    assert code == 2 and "unknown suite" in err and "nope" in err


@pytest.mark.parametrize("argv,words", ERROR_CASES, ids=[" ".join(c[0]) for c in ERROR_CASES])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, argv, words):
    (tmp_path / "a_file").write_text("not a directory")
    code, out, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2, argv
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith("jaxfund: error:"), err
    assert "Traceback" not in err and not out, (argv, out)
    for word in words:
        assert word in lines[0], (argv, word, lines[0])
    assert not (tmp_path / "empty" / "checkpoint").exists()


# ------------------------------------------------------------------------------------ train


METRIC_KEYS = {"dataset", "activation", "optimizer", "epochs", "history", "final_train_loss",
               "test_accuracy", "test_loss", "compile_seconds", "train_seconds",
               "steps_per_second", "device", "num_devices"}


def test_train_defaults_reach_95_percent_on_digits(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["dataset"] == "digits" and metrics["epochs"] == 30
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, 31))
    assert metrics["test_accuracy"] >= 0.95
    assert metrics["final_train_loss"] == metrics["history"][-1]["train_loss"]
    assert metrics["num_devices"] == 1 and metrics["steps_per_second"] > 0
    assert_png(tmp_path / "curves.png")
    assert (tmp_path / "checkpoint").is_file()
    assert "test accuracy" in out and "final train loss" in out


def test_train_regression_writes_test_mse(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--dataset", "diabetes", "--epochs", "2",
                       *TINY_TRAIN, "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "test_mse" in metrics and "test_accuracy" not in metrics
    assert metrics["test_mse"] > 0


def _restore_params(path: Path, hidden: int):
    ds = data.load("digits")
    model = models.MLP(ds.num_features, (hidden,), ds.num_classes)
    from jaxfund import optimizers

    like = train.TrainState.create(model.init(jax.random.key(0)), optimizers.adam(lr=1e-3))
    return checkpoint.restore(path, like)


def test_resume_ends_where_the_uninterrupted_run_does(capsys, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(capsys, "train", "--epochs", "4", *TINY_TRAIN, "--out", straight)[0] == 0
    assert run(capsys, "train", "--epochs", "2", *TINY_TRAIN, "--out", split)[0] == 0
    _, extra = _restore_params(split / "checkpoint", 16)
    assert extra["epoch"] == 2 and extra["seed"] == 0 and extra["config"]["hidden"] == [16]
    code, out, err = run(capsys, "train", "--epochs", "4", *TINY_TRAIN, "--resume", "--out", split)
    assert code == 0, err
    assert "resumed at 2" in out
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((split / "metrics.json").read_text())
    assert b["resumed_from_epoch"] == 2
    assert without_timings(a["history"]) == without_timings(b["history"])
    for key in ("final_train_loss", "test_accuracy", "test_loss"):
        assert a[key] == b[key], key
    state_a, extra_a = _restore_params(straight / "checkpoint", 16)
    state_b, extra_b = _restore_params(split / "checkpoint", 16)
    assert extra_a["epoch"] == extra_b["epoch"] == 4
    assert int(state_a.step) == int(state_b.step)
    for leaf_a, leaf_b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))

    # A different configuration is refused, naming what changed.
    code, _, err = run(capsys, "train", "--epochs", "6", *TINY_TRAIN, "--lr", "0.01", "--resume",
                       "--out", split)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lr=0.001" in err and "0.01" in err
    # Resuming to fewer epochs than the checkpoint holds is refused too.
    code, _, err = run(capsys, "train", "--epochs", "3", *TINY_TRAIN, "--resume", "--out", split)
    assert code == 2 and "already at epoch 4" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- compare


COMPARE = ["compare", "--datasets", "classification,iris", "--activations", "relu",
           "--epochs", "3", "--hidden", "8", "--batch-size", "32", "--seeds", "2",
           "--target-loss", "0.6"]


def test_compare_is_reproducible_and_matches_train(capsys, tmp_path):
    code, out, err = run(capsys, *COMPARE, "--out", tmp_path / "a")
    assert code == 0, err
    for word in ("classification", "iris", "relu", "test accuracy", "epochs to loss"):
        assert word in out, word
    assert run(capsys, *COMPARE, "--out", tmp_path / "b")[0] == 0
    a = json.loads((tmp_path / "a" / "compare.json").read_text())
    b = json.loads((tmp_path / "b" / "compare.json").read_text())
    assert without_timings(a) == without_timings(b)
    assert_png(tmp_path / "a" / "compare.png")

    assert set(a["results"]) == {"classification", "iris"}
    rows = a["results"]["iris"]
    assert [r["activation"] for r in rows] == ["relu"]
    for row in rows:
        assert row["seeds"] == [0, 1]
        assert len(row["test_accuracy"]) == 2 and len(row["train_loss_curve_mean"]) == 3
        assert row["compile_seconds"] > 0 and row["train_seconds"] > 0
        mean = np.mean(row["train_loss_curve_mean"][-1:])
        assert np.isclose(np.mean(row["final_train_loss"]), mean, rtol=1e-6)
        reached = row["epochs_to_target"]
        curve = row["train_loss_curve_mean"]
        expected = next((i + 1 for i, loss in enumerate(curve) if loss <= 0.6), None)
        assert reached == expected

    # Seed 1 of the vmapped relu run on iris is the same training as `jaxfund train --seed 1`
    # (both are train.fit_seeds / train.fit on the same step: bitwise, see test_train.py).
    code, _, err = run(capsys, "train", "--dataset", "iris", "--epochs", "3", "--hidden", "8",
                       "--batch-size", "32", "--seed", "1", "--out", tmp_path / "train")
    assert code == 0, err
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    relu = rows[0]
    assert relu["final_train_loss"][1] == metrics["final_train_loss"]
    assert relu["test_accuracy"][1] == metrics["test_accuracy"]


# ------------------------------------------------------------------------------------- plot


def test_plot_writes_activation_figures(capsys, tmp_path):
    code, out, err = run(capsys, "plot", "--out", tmp_path)
    assert code == 0, err
    assert_png(tmp_path / "activations.png", min_kb=100)
    families = sorted(p.name for p in tmp_path.glob("activations_*.png"))
    assert families == ["activations_relu_like.png", "activations_shrink_threshold.png",
                        "activations_sigmoid_like.png", "activations_smooth_relu_like.png"]
    for name in families:
        assert_png(tmp_path / name)
    # The table shows torch's derivative at the kink: relu'(0) = 0, leaky_relu'(0) = 0.01.
    relu_row = next(line for line in out.splitlines() if " relu " in line)
    leaky_row = next(line for line in out.splitlines() if " leaky_relu " in line)
    assert relu_row.split("│")[-2].strip() == "1" and relu_row.split("│")[-3].strip() == "0"
    assert leaky_row.split("│")[-3].strip() == "0.01"


# -------------------------------------------------------------------------------- gradients


def test_gradients_command(capsys, tmp_path):
    code, out, err = run(capsys, "gradients", "--depth", "8", "--width", "16", "--out", tmp_path)
    assert code == 0, err
    assert_png(tmp_path / "gradients.png")
    result = json.loads((tmp_path / "gradients.json").read_text())
    assert set(result["norms"]) == {"sigmoid", "tanh", "relu", "gelu", "identity"}
    assert all(len(v) == 8 for v in result["norms"].values())
    # sigmoid' <= 1/4 shrinks the gradient layer after layer: the input side gets far less.
    ratios = result["first_over_last"]
    assert ratios["sigmoid"] < 1e-3 and ratios["sigmoid"] < ratios["tanh"]
    # x <- x*x in float32 from the recorded x0, computed by NumPy (IEEE products are exact
    # roundings, so the result must be identical, including the 0s and infs).
    rules = result["repeated_multiplication"]["rules"]
    x = np.asarray(result["repeated_multiplication"]["x0"], np.float32)
    expected = [x]
    with np.errstate(over="ignore", under="ignore"):
        for _ in range(19):
            expected.append(expected[-1] * expected[-1])
    got = np.asarray([[float(v) for v in row] for row in rules["x*x"]], np.float32)
    np.testing.assert_array_equal(got, np.stack(expected))
    # torch reference for the first steps of x <- x*tanh(x).
    t = torch.tensor(x)
    for row in rules["x*tanh(x)"][1:4]:
        t = t * torch.tanh(t)
        np.testing.assert_allclose(np.asarray(row, np.float32), t.numpy(), rtol=1e-5)
    assert "layer 1 / last" in out


_TORCH_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
              "gelu": torch.nn.functional.gelu, "identity": lambda h: h}


@pytest.mark.parametrize("activation", sorted(_TORCH_ACT))
def test_gradient_norms_match_torch(activation):
    """experiments.gradient_flow against torch autograd in float64 from the same float32 init.
    Its float32 backward sums over the 800 examples for each weight gradient and over at most
    `width` units per layer on the way down: at most (800 + width * depth) roundings of U32
    relative to the sum of magnitudes, the tolerance below."""
    depth, width = 6, 16
    flow = experiments.gradient_flow([activation], depth=depth, width=width, seed=3)
    ds = data.load("classification")
    params = models.MLP(ds.num_features, (width,) * (depth - 1), 1).init(jax.random.key(3))
    weights = [torch.tensor(np.asarray(p["w"], np.float64), requires_grad=True) for p in params]
    biases = [torch.tensor(np.asarray(p["b"], np.float64)) for p in params]
    h = torch.tensor(ds.x_train, dtype=torch.float64)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w + b
        if i < len(weights) - 1:
            h = _TORCH_ACT[activation](h)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        h[:, 0], torch.tensor(ds.y_train, dtype=torch.float64))
    loss.backward()
    expected = [float(torch.linalg.norm(w.grad)) for w in weights]
    assert flow.batch == len(ds.x_train) == 800
    np.testing.assert_allclose(flow.norms[activation], expected,
                               rtol=(800 + width * depth) * 2.0**-24)


# ------------------------------------------------------------------------------ subprocesses


def test_console_script_and_python_m_with_data_parallel(tmp_path, capsys):
    script = shutil.which("jaxfund", path=str(Path(sys.executable).parent))
    assert script, "the jaxfund console script is not installed"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "compare" in done.stdout

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    argv = ["train", "--epochs", "2", *TINY_TRAIN]
    done = subprocess.run([sys.executable, "-m", "jaxfund", *argv, "--data-parallel",
                           "--out", str(tmp_path / "dp")], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    parallel = json.loads((tmp_path / "dp" / "metrics.json").read_text())
    assert parallel["num_devices"] == 4

    assert run(capsys, *argv, "--out", tmp_path / "single")[0] == 0
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert single["num_devices"] == 1
    for h_p, h_s in zip(parallel["history"], single["history"]):
        np.testing.assert_allclose(h_p["train_loss"], h_s["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(h_p["test_loss"], h_s["test_loss"], rtol=1e-5)


def test_python_m_reports_user_error_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "jaxfund", "train", "--dataset", "nope",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert re.fullmatch(r"jaxfund: error: --dataset: unknown dataset 'nope'; valid names: .*\n",
                        done.stderr)
