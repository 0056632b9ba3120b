"""The ``jaxfund`` command: exit codes, files, JSON keys, figures, help text and user errors.

Commands run in-process through ``jaxfund.cli.main`` (shared jit caches, fast); the console
script and ``python -m jaxfund`` run once each in a subprocess. Settings are tiny except for
one default ``train`` run, which must reach the advertised >= 95% test accuracy on digits.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest
import torch

from jaxfund import activations, checkpoint, cli, data, experiments, models, train
from test_checkpoint import TMP  # the suffix of a save orbax has not committed
from test_checkpoint import _write_file as write_file  # a file of the previous format
from test_cli_run import cut_data_files, save_steps, snapshot

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
              "--resume": "False", "--out": "runs/train", "--data": "None", "--target": "None",
              "--task": "None", "--test-size": "0.2", "--drop-nonfinite": "False",
              "--lr-schedule": "constant", "--step-size": "10", "--gamma": "0.1",
              "--warmup-epochs": "0", "--clip-norm": "None", "--dtype": "float32",
              "--dropout": "0.0", "--patience": "None", "--overwrite": "False",
              "--tensorboard": "False", "--html": "False", "--no-compile-cache": "False",
              "--shard-state": "False", "--coordinator": "None", "--num-processes": "None",
              "--process-id": "None", "--peer-timeout": "30.0", "--keep": "3"},
    "compare": {"--datasets": "classification,digits",
                "--activations": "identity,sigmoid,tanh,relu,leaky_relu,gelu",
                "--optimizers": "adam", "--lr": "0.001", "--epochs": "30", "--batch-size": "64",
                "--hidden": "64,64", "--seeds": "3", "--seed": "0", "--target-loss": "0.2",
                "--out": "runs/compare", "--html": "False", "--no-compile-cache": "False"},
    "plot": {"--points": "1001", "--out": "runs/plot", "--html": "False",
             "--no-compile-cache": "False"},
    "gradients": {"--depth": "20", "--width": "64",
                  "--activations": "sigmoid,tanh,relu,gelu,identity", "--seed": "0",
                  "--out": "runs/gradients", "--no-compile-cache": "False"},
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_documents_every_option_and_default(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and not err
    # argparse starts an option's entry with "  --name" and indents the lines that continue it;
    # each entry on one line (a help text may name another option: the entry is still its own)
    entries = [" ".join(entry.split()) for entry in re.split(r"\n(?! {3})", out)]
    for option, default in HELP[command].items():  # "--data" is not "--dataset"
        (entry,) = [e for e in entries if re.match(rf"(-\w, )?{re.escape(option)}( |,|$)", e)]
        assert f"(default: {default})" in entry, (option, entry)
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
    (["train", "--lr", "-1"], ["--lr", "-1"]),
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
    assert not (tmp_path / "empty").exists()


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
    # the last 3 saved (--keep); an epoch's is skipped while the previous one is being written
    steps = checkpoint.Checkpoints(tmp_path / "checkpoints").steps()
    assert 1 <= len(steps) <= 3 and steps[-1] == 30 and steps == sorted(set(steps)), steps
    assert not (tmp_path / "checkpoint").exists()
    assert "test accuracy" in out and "final train loss" in out


def test_train_regression_writes_test_mse(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--dataset", "diabetes", "--epochs", "2",
                       *TINY_TRAIN, "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "test_mse" in metrics and "test_accuracy" not in metrics
    assert metrics["test_mse"] > 0


def _restore_latest(out: Path, hidden: int):
    """The latest checkpoint in OUT/checkpoints of a digits run of TINY_TRAIN."""
    ds = data.load("digits")
    model = models.MLP(ds.num_features, (hidden,), ds.num_classes)
    from jaxfund import optimizers

    like = train.TrainState.create(model.init(jax.random.key(0)), optimizers.adam(lr=1e-3))
    return checkpoint.Checkpoints(out / "checkpoints").restore(like)


@pytest.mark.parametrize("older_file", [False, True],
                         ids=["from OUT/checkpoints", "from an older run's OUT/checkpoint file"])
def test_resume_ends_where_the_uninterrupted_run_does(capsys, tmp_path, older_file):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(capsys, "train", "--epochs", "4", *TINY_TRAIN, "--out", straight)[0] == 0
    assert run(capsys, "train", "--epochs", "2", *TINY_TRAIN, "--out", split)[0] == 0
    state, extra = _restore_latest(split, 16)
    assert extra["epoch"] == 2 and extra["seed"] == 0 and extra["config"]["hidden"] == [16]
    if older_file:  # the run as jaxfund saved it before its checkpoints moved to orbax
        write_file(split / "checkpoint", state, extra)
        shutil.rmtree(split / "checkpoints")
    code, out, err = run(capsys, "train", "--epochs", "4", *TINY_TRAIN, "--resume", "--out", split)
    assert code == 0, err
    assert "resumed at 2" in out
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((split / "metrics.json").read_text())
    assert b["resumed_from_epoch"] == 2
    assert without_timings(a["history"]) == without_timings(b["history"])
    for key in ("final_train_loss", "test_accuracy", "test_loss"):
        assert a[key] == b[key], key
    state_a, extra_a = _restore_latest(straight, 16)
    state_b, extra_b = _restore_latest(split, 16)
    assert extra_a["epoch"] == extra_b["epoch"] == 4
    # the resumed run's checkpoints go on in OUT/checkpoints, the last --keep 3 of them
    assert checkpoint.Checkpoints(split / "checkpoints").steps() == ([3, 4] if older_file
                                                                     else [2, 3, 4])
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


def test_gradient_flow_names_a_dataset_that_is_not_one():
    with pytest.raises(TypeError, match="dataset: expected a jaxfund.data.Dataset or None, "
                                        "got str"):
        experiments.gradient_flow(["relu"], depth=2, width=4, dataset="classification")


# ------------------------------------------------------------------------------ subprocesses


# A process that runs jaxfund.cli.console() as the command would, with an exit handler, an
# object whose finaliser reports the interpreter's teardown and, with "thread", a writer thread
# still running when the command returns.
CONSOLE = """
import atexit, sys, threading, time
class Torn:
    def __del__(self):
        print("teardown", flush=True)
torn = Torn()
atexit.register(print, "exit handler", flush=True)
if sys.argv[1] == "thread":
    def write():
        time.sleep(0.3)
        print("thread wrote", flush=True)
    threading.Thread(target=write).start()
sys.argv = ["jaxfund", *sys.argv[2:]]
from jaxfund.cli import console
console()
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_command_ends_without_the_interpreter_teardown_unless_a_thread_still_works(thread):
    """``console`` (the console script, ``python -m jaxfund``) ends with the command's status
    once the output is flushed and the exit handlers have run, skipping the teardown of every
    module; a non-daemon thread still running makes it exit the usual way, which waits."""
    mode = "thread" if thread else "plain"
    for argv, status in ((["--help"], 0), (["train", "--epochs", "0"], 2)):
        done = subprocess.run([sys.executable, "-c", CONSOLE, mode, *argv], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == status, done.stderr
        lines = done.stdout.splitlines()
        assert "exit handler" in lines
        assert ("teardown" in lines) == thread and ("thread wrote" in lines) == thread
        assert ("usage: jaxfund" in done.stdout) == (status == 0)
        assert ("argument --epochs: expected a positive int" in done.stderr) == (status == 2)


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


# ------------------------------------------------------------- train for real work (issue 12)

IRIS = ["--dataset", "iris", "--hidden", "16", "--batch-size", "16"]


def _iris_state():
    """The state `jaxfund train` builds for IRIS (adam, constant lr): a template to write
    checkpoints with bad metadata into."""
    from jaxfund import optimizers

    tx = optimizers.adam(lr=1e-3)
    return train.TrainState.create(models.MLP(4, (16,), 3).init(jax.random.key(0)), tx)


def _bad_checkpoint(extra):
    return lambda out: save_steps(out, (1, _iris_state(), extra))


def _corrupt_latest(out):
    """OUT/checkpoints with steps 1 and 2, step 2's array data cut short."""
    save_steps(out, (1, _iris_state(), {}), (2, _iris_state(), {}))
    cut_data_files(out / "checkpoints" / "2")


def _older_file_truncated(out):
    write_file(out / "checkpoint", _iris_state(), {"epoch": 1, "history": []})
    (out / "checkpoint").write_bytes((out / "checkpoint").read_bytes()[:-10])


def _string_leaf(out):
    write_file(out / "checkpoint", _iris_state(), {"epoch": 1, "history": []})
    path = out / "checkpoint"
    content = path.read_bytes()
    body = flax.serialization.msgpack_restore(content[len(checkpoint._MAGIC) + 32:])
    body["leaves"]["0"] = "abc"
    payload = flax.serialization.msgpack_serialize(body)
    path.write_bytes(checkpoint._MAGIC + hashlib.sha256(payload).digest() + payload)


def _live_lock(out):
    (out / ".jaxfund.lock").write_text(json.dumps({"pid": os.getpid(),
                                                    "host": socket.gethostname()}))


# (argv, setup of OUT, words of the one-line message; {tmp} is the test's temporary directory).
# OUT holds a marker file and, for the rows that need one, a previous run; nothing in it may
# change.
REAL_WORK_ERRORS = [
    (["--activation", "softmax"], None, ["--activation", "'softmax' is not an element-wise"]),
    (["--seed", "-1"], None, ["--seed", "-1"]),
    (["--seed", "18446744073709551616"], None, ["--seed", "18446744073709551616"]),
    (["--hidden", "1000000000"], None, ["--hidden", "1000000000"]),
    (["--hidden", ""], None, ["--hidden"]),
    (["--hidden", "64,,64"], None, ["--hidden", "64,,64"]),
    (["--hidden", "１２"], None, ["--hidden", "１２"]),
    (["--hidden", "٦٤"], None, ["--hidden", "٦٤"]),
    (["--lr", "inf"], None, ["--lr", "inf"]),
    (["--lr", "1e400"], None, ["--lr", "1e400"]),
    (["--lr", "0"], None, ["--lr", "0"]),
    (["--lr", "nan"], None, ["--lr", "nan"]),
    (["--weight-decay", "inf"], None, ["--weight-decay", "inf"]),
    (["--dropout", "1"], None, ["--dropout", "1"]),
    (["--test-size", "0"], None, ["--test-size", "0"]),
    (["--lr-schedule", "sometimes"], None, ["--lr-schedule", "sometimes", "cosine", "onecycle"]),
    (["--warmup-epochs", "-1"], None, ["--warmup-epochs", "-1"]),
    (["--clip-norm", "0"], None, ["--clip-norm", "0"]),
    (["--dtype", "float8"], None, ["--dtype", "float8", "bfloat16"]),
    (["--task", "binary"], None, ["--task binary", "multiclass"]),
    (["--target", "y"], None, ["--target", "needs --data"]),
    (["--data", "{tmp}/missing.csv"], None, ["--data", "missing.csv"]),
    (["--data", "{tmp}/nan.csv"], None, ["--data", "row 2", "column 'b'", "--drop-nonfinite"]),
    (["--data", "{tmp}/words.csv"], None, ["--data", "non-numeric feature columns", "'city'"]),
    ([], lambda out: (out / "metrics.json").write_text("{}"),
     ["already holds a run", "--resume", "--overwrite"]),
    (["--resume", "--overwrite"], lambda out: (out / "metrics.json").write_text("{}"),
     ["--resume", "--overwrite"]),
    ([], _live_lock, ["--out", "another jaxfund run"]),
    (["--keep", "0"], None, ["--keep", "0"]),
    (["--resume"], None, ["--resume", "no checkpoint in", "out/checkpoints"]),
    (["--resume"], lambda out: (out / "checkpoints").mkdir(),
     ["--resume", "no checkpoint in", "out/checkpoints"]),
    (["--resume"], lambda out: (out / "checkpoints" / f"1{TMP}").mkdir(parents=True),
     ["--resume", "no checkpoint in", "out/checkpoints"]),
    (["--resume"], lambda out: (out / "checkpoints").write_text("x"),
     ["--resume", "out/checkpoints is a file, not a directory"]),
    (["--resume"], _corrupt_latest,
     ["--resume", "checkpoint {tmp}/out/checkpoints/2 is corrupt", "arrays cannot be read"]),
    (["--resume"], _bad_checkpoint({"history": []}), ["--resume", "epoch"]),
    (["--resume"], _bad_checkpoint({"epoch": 1}), ["--resume", "history"]),
    (["--resume"], _bad_checkpoint([1, 2]), ["--resume", "list"]),
    (["--resume"], _bad_checkpoint({"epoch": "two", "history": [], "config": {}}),
     ["--resume", "two"]),
    (["--resume"], _bad_checkpoint({"epoch": -5, "history": [], "config": {}}),
     ["--resume", "-5"]),
    (["--resume"], _bad_checkpoint({"epoch": 1, "config": {},
                                    "history": [{"epoch": 1, "train_loss": "abc"}]}),
     ["--resume", "abc"]),
    (["--resume"], lambda out: (out / "checkpoint").mkdir(),
     ["--resume", "no checkpoint in", "out/checkpoint'"]),
    (["--resume"], _older_file_truncated, ["--resume", "out/checkpoint is corrupt or truncated"]),
    (["--resume"], _string_leaf, ["--resume", "leaf 0", "not an array"]),
]


@pytest.mark.parametrize("argv,setup,words", REAL_WORK_ERRORS,
                         ids=[" ".join(c[0]) or f"row {i}" for i, c in
                              enumerate(REAL_WORK_ERRORS)])
def test_bad_train_input_is_one_line_and_changes_nothing(capsys, tmp_path, argv, setup, words):
    (tmp_path / "nan.csv").write_text("a,b,y\n1,2,0\n3,nan,1\n5,6,0\n7,8,1\n")
    (tmp_path / "words.csv").write_text("a,city,y\n1,Paris,0\n3,Rome,1\n5,Oslo,0\n7,Rome,1\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    if setup is not None:
        setup(out)
    before = snapshot(out)
    code, stdout, err = run(capsys, "train", *IRIS, "--epochs", "2",
                            *(a.format(tmp=tmp_path) for a in argv), "--out", out)
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxfund: error:"), (argv, err)
    assert "Traceback" not in err and not stdout
    for word in words:
        assert word.format(tmp=tmp_path) in lines[0], (argv, word, lines[0])
    assert snapshot(out) == before


def test_resume_into_a_missing_directory_does_not_create_it(capsys, tmp_path):
    code, _, err = run(capsys, "train", *IRIS, "--resume", "--out", tmp_path / "nowhere")
    assert code == 2 and "--resume" in err and not (tmp_path / "nowhere").exists()


def _write_csv(path: Path, x: np.ndarray, labels: list[str]) -> None:
    rows = [",".join(["sepal_l", "sepal_w", "petal_l", "petal_w", "species"])]
    rows += [",".join([*(f"{v:.6g}" for v in row), label]) for row, label in zip(x, labels)]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_train_on_the_users_file(capsys, tmp_path, kind):
    """Iris written to a file by the test (CSV with string labels, npz with labels 3, 5, 7)
    trains like the bundled data and records the label mapping."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    if kind == "csv":
        names = np.array(["setosa", "versicolor", "virginica"])
        path, expected = tmp_path / "iris.csv", ["setosa", "versicolor", "virginica"]
        _write_csv(path, x, list(names[y]))
    else:
        path, expected = tmp_path / "iris.npz", [3, 5, 7]
        np.savez(path, x=x, y=np.array([3, 5, 7])[y])
    code, out, err = run(capsys, "train", "--data", path, "--hidden", "16", "--batch-size",
                         "16", "--epochs", "30", "--lr", "0.01", "--out", tmp_path / "run")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["labels"] == expected and metrics["task"] == "multiclass"
    assert metrics["num_train"] == 120 and metrics["num_test"] == 30
    assert metrics["test_accuracy"] >= 0.9
    assert metrics["data"] == str(path)


def test_json_lines_and_tensorboard_logs_hold_every_epoch(capsys, tmp_path):
    from test_cli_run import scalars

    code, out, err = run(capsys, "train", *IRIS, "--epochs", "3", "--tensorboard", "--html",
                         "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines == metrics["history"]
    # The progress bar's last steps/s and the summary's are the same number.
    bar_speed = re.findall(r"([\d,]+) steps/s", err)[-1]
    assert "│ steps/s" in out and re.search(rf"steps/s +│ +{bar_speed} │", out), (bar_speed, out)
    logged = {(tag, step): value for tag, step, value in scalars(tmp_path / "tensorboard")}
    for entry in metrics["history"]:
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert logged[(key, entry["epoch"])] == pytest.approx(entry[key], rel=1e-6)
    assert (tmp_path / "curves.html").read_text().count("Plotly.newPlot") >= 1


@pytest.mark.parametrize("argv", [
    ["--lr-schedule", "cosine", "--warmup-epochs", "1"], ["--lr-schedule", "step",
                                                          "--step-size", "1", "--gamma", "0.5"],
    ["--lr-schedule", "OneCycleLR"], ["--lr-schedule", "exponential", "--gamma", "0.9"],
    ["--lr-schedule", "linear"], ["--clip-norm", "0.5"], ["--dtype", "bfloat16"],
    ["--dropout", "0.2"], ["--weight-decay", "0.01"]])
def test_every_training_flag_trains_and_is_recorded(capsys, tmp_path, argv):
    code, _, err = run(capsys, "train", *IRIS, "--epochs", "3", "--lr", "0.01", *argv,
                       "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    flags = dict(zip(argv[::2], argv[1::2]))
    for flag, value in flags.items():
        recorded = metrics[flag.removeprefix("--").replace("-", "_")]
        expected = {"OneCycleLR": "onecycle"}.get(value, value)
        assert str(recorded) == expected or recorded == pytest.approx(float(expected)), flag


def test_learning_rate_schedules_follow_torch():
    """The lr of --lr-schedule after --warmup-epochs, step by step, against torch's schedulers
    stepped as the help says (5 epochs of 4 steps, 1 warmup epoch)."""
    from jaxfund.cli.train import learning_rate

    steps, epochs, warm = 4, 5, 1
    ours = {}
    for name in ("cosine", "step", "linear", "exponential", "onecycle"):
        args = argparse.Namespace(lr_schedule=name, lr=0.1, epochs=epochs, warmup_epochs=warm,
                                  step_size=2, gamma=0.5)
        schedule = learning_rate(args, steps)
        ours[name] = [float(schedule(t)) for t in range(epochs * steps)]
    total = (epochs - warm) * steps

    def torch_lrs(make, per_epoch):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched, lrs = make(opt), []
        for t in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if not per_epoch or (t + 1) % steps == 0:
                sched.step()
        return lrs

    lrs = torch.optim.lr_scheduler
    reference = {
        "cosine": torch_lrs(lambda o: lrs.CosineAnnealingLR(o, T_max=total), False),
        "step": torch_lrs(lambda o: lrs.StepLR(o, step_size=2, gamma=0.5), True),
        "linear": torch_lrs(lambda o: lrs.LinearLR(o, 1.0, 0.0, total_iters=total), False),
        "exponential": torch_lrs(lambda o: lrs.ExponentialLR(o, gamma=0.5), True),
        "onecycle": torch_lrs(lambda o: lrs.OneCycleLR(o, max_lr=0.1, total_steps=total), False),
    }
    ramp = [0.1 * (1 / steps + (1 - 1 / steps) * t / steps) for t in range(steps)]
    for name, values in ours.items():
        np.testing.assert_allclose(values[:steps], ramp, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(values[steps:], reference[name], rtol=1e-5, atol=1e-9,
                                   err_msg=name)


def test_patience_stops_and_keeps_the_best_epoch(capsys, tmp_path):
    code, out, err = run(capsys, "train", *IRIS, "--epochs", "60", "--lr", "0.05",
                         "--patience", "3", "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    history = metrics["history"]
    best = max(history, key=lambda h: h["test_accuracy"])  # the first maximum
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["stopped_early_at_epoch"] == history[-1]["epoch"] == best["epoch"] + 3 < 60
    assert metrics["test_accuracy"] == best["test_accuracy"]
    params, _ = checkpoint.restore_params(tmp_path / "best", _iris_state().params)
    evaluate = train.make_eval_step(models.MLP(4, (16,), 3))
    ds = data.load("iris")
    assert float(evaluate(params, (ds.x_test, ds.y_test))["accuracy"]) == best["test_accuracy"]


def test_a_diverging_run_exits_3_and_keeps_the_last_finite_checkpoint(capsys, tmp_path):
    """The lr grows 1e8-fold per epoch (exponential, gamma 1e8): epoch 1 trains, epoch 2
    cannot; the guard skips its non-finite updates and the command stops with exit 3."""
    code, out, err = run(capsys, "train", *IRIS, "--epochs", "5", "--optimizer", "sgd",
                         "--lr", "0.01", "--lr-schedule", "exponential", "--gamma", "1e8",
                         "--out", tmp_path)
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("jaxfund: error: training diverged at epoch 2")
    assert "Traceback" not in err
    assert checkpoint.Checkpoints(tmp_path / "checkpoints").steps() == [1]
    state, extra = checkpoint.Checkpoints(tmp_path / "checkpoints").restore(_iris_state_sgd())
    assert extra["epoch"] == 1
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["diverged_at_epoch"] == 2 and len(metrics["history"]) == 1


def _iris_state_sgd():
    from jaxfund import optimizers

    tx = optimizers.sgd(lr=0.01)
    return train.TrainState.create(models.MLP(4, (16,), 3).init(jax.random.key(0)), tx)


@pytest.mark.parametrize("keep", [1, 2])
def test_keep_leaves_the_checkpoints_of_the_last_epochs(capsys, tmp_path, keep):
    """The first epoch's checkpoint and the last's are always saved (those between are skipped
    while the previous one is being written), so 4 epochs leave exactly ``keep`` of them, the
    last epoch's among them."""
    code, _, err = run(capsys, "train", *IRIS, "--epochs", "4", "--keep", str(keep), "--out",
                       tmp_path)
    assert code == 0, err
    steps = checkpoint.Checkpoints(tmp_path / "checkpoints").steps()
    assert len(steps) == keep and steps[-1] == 4 and steps == sorted(set(steps)), steps
    # nothing else: no save left uncommitted, no older step left behind
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()
                  if not p.name.startswith(".")) == [str(step) for step in steps]
    _, extra = checkpoint.Checkpoints(tmp_path / "checkpoints").restore(_iris_state())
    assert extra["epoch"] == 4


# Each epoch takes a few ms to train and ~60 ms to save (orbax, asynchronously, but a save
# waits for the previous one). Each of the 10 killed lives trains until it has committed a
# checkpoint of its own and is killed up to 0.1 s later: 1 to 3 epochs, ~20 in all, and no life
# may reach the end before its kill. 60 epochs leave a life ~2.5 s of a stalled test process
# (under a loaded CI machine's xdist workers) before it could finish unkilled, and keep the
# uninterrupted run and the final resume short (~4 s of training each).
KILL_EPOCHS = 60
KILL_ARGS = ["train", "--dataset", "digits", "--hidden", "32", "--batch-size", "64",
             "--epochs", str(KILL_EPOCHS), "--dropout", "0.1", "--seed", "3"]


def _digits_state():
    from jaxfund import optimizers

    tx = optimizers.adam(lr=1e-3)
    return train.TrainState.create(models.MLP(64, (32,), 10).init(jax.random.key(3)), tx)


def _latest_step(out: Path) -> int | None:
    """The latest committed step of OUT/checkpoints, None if none (or no directory yet)."""
    directory = out / "checkpoints"
    return checkpoint.Checkpoints(directory).latest_step() if directory.is_dir() else None


def _saving(out: Path) -> bool:
    """Whether a save is in progress in OUT/checkpoints: orbax writes it into a temporary
    directory and renames that when it commits."""
    return any((out / "checkpoints").glob(f"*{TMP}*"))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    """10 `kill -9`s, at random moments of training and (every other one) while a checkpoint is
    being written, each followed by `--resume`: the latest committed checkpoint left behind
    restores each time, and the finished run is bitwise the uninterrupted one (params,
    optimizer state, history)."""
    command = [sys.executable, "-m", "jaxfund", *KILL_ARGS]
    # the lives share the suite's compilation cache (the command's own without one): each life
    # reads its programs and the dataset back instead of preparing them again
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*command, "--out", straight], env=env, check=True, capture_output=True)
    rng = np.random.default_rng(0)
    kills = mid_write = 0
    epochs = []  # the latest committed epoch after each kill
    while kills < 10:
        latest = _latest_step(killed)
        resume = ["--resume"] if latest is not None else ["--overwrite"]
        process = subprocess.Popen([*command, *resume, "--out", killed], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and _latest_step(killed) == latest:
            time.sleep(0.005)  # until this life has committed a checkpoint
        assert process.poll() is None, "the run finished before it could be killed"
        if kills % 2:  # every other kill: while a checkpoint is being written
            deadline = time.monotonic() + 5
            while not _saving(killed) and time.monotonic() < deadline:
                time.sleep(0.001)  # not a busy loop: the life needs the core
        else:
            time.sleep(rng.uniform(0.0, 0.1))
        mid_write += _saving(killed)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        _, extra = checkpoint.Checkpoints(killed / "checkpoints").restore(_digits_state())
        assert extra["epoch"] == _latest_step(killed) and 1 <= extra["epoch"] < KILL_EPOCHS
        unfinished = [int(p.name.split(".")[0]) for p in (killed / "checkpoints").glob(f"*{TMP}*")]
        assert all(step > extra["epoch"] for step in unfinished), (unfinished, extra)
        epochs.append(extra["epoch"])
    done = subprocess.run([*command, "--resume", "--out", killed], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    a, extra_a = checkpoint.Checkpoints(straight / "checkpoints").restore(_digits_state())
    b, extra_b = checkpoint.Checkpoints(killed / "checkpoints").restore(_digits_state())
    assert extra_a["epoch"] == extra_b["epoch"] == KILL_EPOCHS
    for leaf_a, leaf_b in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))
    history_a = json.loads((straight / "metrics.json").read_text())["history"]
    history_b = json.loads((killed / "metrics.json").read_text())["history"]
    assert without_timings(history_a) == without_timings(history_b)
    lines = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    assert without_timings(lines) == without_timings(history_a)
    assert mid_write >= 3, mid_write  # some kills did land inside a checkpoint write
    print(f"{kills} kills, {mid_write} with a checkpoint being written, after epochs {epochs}")
