"""Smoke run of the benchmark suite (``python -m benchmarks --quick``): no timing assertions.

Checks that every suite runs on tiny sizes, writes ``<device>.json`` and ``<device>.md`` into
``--out``, that the JSON has the expected keys, and that every ratio is a positive finite number.
"""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import benchmarks
from benchmarks import optimizers as bench_optimizers
from jaxfund import optimizers

EXPECTED_CASES = {
    "activations": {"relu", "gelu", "softmax", "log_softmax", "sigmoid"},
    "losses": {"cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "kl_div"},
    "optimizers": {"sgd", "adam", "adamw", "rmsprop", "adagrad"},
    "train": {"course 20-50-2"},
}


def _positive_finite(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    status = benchmarks.main(["--quick", "--no-torch-compile", "--out", str(out)])
    assert status == 0
    label = jax.default_backend()
    markdown = (out / f"{label}.md").read_text()
    return json.loads((out / f"{label}.json").read_text()), markdown


def test_environment_is_recorded(results):
    data, _ = results
    env = data["environment"]
    assert data["quick"] is True
    for key in ("backend", "cpu_model", "cpu_count", "torch_threads", "versions"):
        assert env[key], key
    for library in ("jax", "optax", "torch", "flax"):
        assert env["versions"][library], library
    bandwidth = data["copy_bandwidth"]
    assert set(bandwidth["bytes_per_s"]) == {"jax x+1 (donated)", "jax x+1 [loop]", "torch copy_"}
    assert all(_positive_finite(rate) for rate in bandwidth["bytes_per_s"].values())
    assert bandwidth["device_bytes_per_s"] == max(bandwidth["bytes_per_s"].values())


@pytest.mark.parametrize("suite", sorted(EXPECTED_CASES))
def test_suite_ratios_are_positive_and_finite(results, suite):
    data, markdown = results
    section = data["suites"][suite]
    assert "skipped" not in section, section.get("skipped")
    names = {case["case"] for case in section["cases"]}
    assert EXPECTED_CASES[suite] <= names, EXPECTED_CASES[suite] - names
    for case in section["cases"]:
        assert case["ratios"], case["case"]
        for key, value in case["ratios"].items():
            assert _positive_finite(value), (case["case"], key, value)
        for name, timing in case["times"].items():
            assert _positive_finite(timing["median_s"]), (case["case"], name)
        assert case["case"] in markdown


def test_reference_rows_are_present(results):
    data, _ = results
    suites = data["suites"]
    relu = next(c for c in suites["activations"]["cases"] if c["case"] == "relu")
    assert set(relu["ratios"]) == {"jaxfund/jax.nn", "jaxfund/torch"}
    adam = next(c for c in suites["optimizers"]["cases"] if c["case"] == "adam")
    assert {"jaxfund/optax", "jaxfund/torch", "jaxfund/torch[fused]"} <= set(adam["ratios"])
    course = suites["train"]["cases"][0]
    assert {"jaxfund step/torch", "jaxfund scan/torch", "jaxfund fit/torch",
            "nnx.jit/torch"} <= set(course["ratios"])
    assert all(_positive_finite(v) for v in course["samples_per_s"].values())


def test_train_has_a_cnn_row(results):
    data, _ = results
    cnn = [c for c in data["suites"]["train"]["cases"] if c["case"].startswith("cnn ")]
    assert len(cnn) == 1, [c["case"] for c in data["suites"]["train"]["cases"]]
    assert {"jaxfund step/torch", "jaxfund scan/torch", "jaxfund fit/torch"} <= set(
        cnn[0]["ratios"])


@pytest.mark.parametrize("network", ["course", "wide", "cnn"])
def test_train_records_the_loop_fit_chose(results, network):
    """Every network records step, scan and fit ms/step, fit's loop and fit / min(step, scan)
    (recorded, not asserted: no timing assertions in tests)."""
    data, markdown = results
    suite = data["suites"]["train"]
    case = next(c for c in suite["cases"] if c["case"].startswith(network + " "))
    for name in ("jaxfund step", "jaxfund scan", "jaxfund fit"):
        assert _positive_finite(case["ms_per_step"][name]), name
        assert case["times"][name]["samples"] == data["repeats"], name  # interleaved rounds
    assert case["fit_loop"] in ("scan", "step")
    assert _positive_finite(case["fit_over_best"])
    if network == "cnn":  # the shuffled scan is a diagnostic row of the MLPs only
        assert case["fit_over_shuffled_scan"] is None
    else:
        assert _positive_finite(case["fit_over_shuffled_scan"])
    assert _positive_finite(case["compile_s"]["jaxfund fit"])
    assert suite["fit_target"] == 1.1
    assert "fit ÷ min(step, scan)" in markdown


def test_loop_runner_and_kernels_per_leaf_of_one_optimizer():
    """What ``--quick`` skips in the optimizers suite, for Adam on the quick model: the
    ``jaxfund[loop]`` runner (compiled, then timed per step) and the kernels/leaf count."""
    tx = optimizers.adam(lr=1e-3)
    leaves = bench_optimizers.shapes(quick=True)
    params = [jnp.ones(shape) for shape in leaves]
    grads = [jnp.full(shape, 1e-2) for shape in leaves]
    timed = bench_optimizers._jax_loop_runner(tx, params, grads, steps=2)
    assert timed.self_timed
    assert _positive_finite(timed())
    kernels = bench_optimizers.kernels_per_leaf(tx)
    assert kernels["per_leaf"] == len(kernels["opcodes"]) >= 1, kernels


def test_the_report_shows_the_flat_loop_and_a_merged_suite_only_when_present(results):
    """The ``jaxfund[flat loop]`` columns (accelerators only) and the note of a suite merged in
    from another run appear in the Markdown only when the results hold them."""
    from benchmarks import _report

    data, markdown = results
    assert "flat loop" not in markdown and "This suite was" not in markdown
    data = json.loads(json.dumps(data))
    adam = next(c for c in data["suites"]["optimizers"]["cases"] if c["case"] == "adam")
    adam["times"]["jaxfund[flat loop]"] = {"median_s": 1e-3}
    adam["fraction_of_copy_bandwidth"]["jaxfund[flat loop]"] = 0.987
    for suite in ("losses", "train"):
        data["suites"][suite]["second_run"] = {"note": "measured elsewhere",
                                               "copy_bandwidth": data["copy_bandwidth"]}
    merged = _report.markdown(data)
    header = next(line for line in merged.splitlines() if line.startswith("| optimizer |"))
    row = next(line for line in merged.splitlines() if line.startswith("| adam |"))
    assert "jaxfund[flat loop] ms" in header and "flat loop of copy BW" in header
    assert "(accelerators) is the same for the flat layout" in merged
    assert len(header.split("|")) == len(row.split("|")) and "0.99" in row
    assert merged.count("This suite was measured elsewhere (jax x+1 (donated)") == 2


def test_the_wait_of_one_call_is_recorded_and_the_timing_named(results):
    data, markdown = results
    assert set(data["sync_latency"]) == {"jax", "torch"}
    assert all(_positive_finite(v) for v in data["sync_latency"].values())
    assert data["pipelined"] is (jax.default_backend() != "cpu")
    timing = "pipelined" if data["pipelined"] else "call by call"
    assert f"- Timing: {timing}" in markdown


@pytest.mark.parametrize("accelerator", [False, True])
def test_pipelined_callables_wait_once_per_sample_on_an_accelerator(monkeypatch, accelerator):
    """On an accelerator a sample of a ``pipelined`` callable dispatches all its runs and waits
    once, on the last run's result; elsewhere every run waits, as a plain blocking callable."""
    from benchmarks import _harness

    monkeypatch.setattr(_harness, "pipelines", lambda: accelerator)
    log = []

    def run():
        log.append("run")
        return len(log)

    def wait(result):
        assert result == len(log) and log[-1] == "run"  # the last run's result, nothing after
        log.append("wait")

    config = _harness.Config(repeats=3, min_sample_seconds=0.01, warmup=1)
    times = _harness.interleaved({"p": _harness.pipelined(run, wait)}, config)
    number = times["p"]["calls_per_sample"]
    assert number > 1
    runs, waits = log.count("run"), log.count("wait")
    assert runs == 2 + config.repeats * number  # the warm-up, the sizing call, the samples
    assert waits == (2 + config.repeats if accelerator else runs)


def test_only_and_bad_suite(tmp_path, capsys):
    assert benchmarks.main(["--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_quick_run_writes_outside_the_committed_results(tmp_path, monkeypatch):
    committed = {p: p.stat().st_mtime_ns for p in
                 Path(benchmarks.RESULTS_DIR).glob("*")}
    monkeypatch.chdir(tmp_path)
    assert benchmarks.main(["--quick", "--only", "activations"]) == 0
    label = jax.default_backend()
    assert (tmp_path / "runs" / "bench-quick" / f"{label}.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in committed} == committed
