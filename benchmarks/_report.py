"""JSON and Markdown output of a benchmark run."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from benchmarks._harness import paired_ratio


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _ms(value: float | None) -> str | None:
    """Milliseconds to three significant digits (0.0151, 14.6, 203)."""
    return None if value is None else f"{value:.3g}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines


def _ratio_suite(title: str, suite: dict[str, Any], refs: list[str], note: str) -> list[str]:
    lines = [f"### {title}", "", note, ""]
    if "skipped" in suite:
        return lines + [f"Skipped: {suite['skipped']}", ""]
    header = ["case", "jaxfund ms"] + [f"÷ {ref}" for ref in refs] + ["GB/s", "of copy BW"]
    rows = []
    for case in suite["cases"]:
        ours = case["times"]["jaxfund"]["median_s"] * 1e3
        ratios = [case["ratios"].get(f"jaxfund/{ref}") for ref in refs]
        rows.append([case["case"], ours, *ratios, case["bytes_per_s"]["jaxfund"] / 1e9,
                     case["fraction_of_copy_bandwidth"]["jaxfund"]])
    return lines + _table(header, rows) + [""]


def _optimizer_suite(suite: dict[str, Any]) -> list[str]:
    lines = ["### Optimizers (update + apply, donated)", ""]
    if "skipped" in suite:
        return lines + [f"Skipped: {suite['skipped']}", ""]
    flat_loop = any("jaxfund[flat loop]" in case["times"] for case in suite["cases"])
    impls = ["jaxfund", "jaxfund[loop]", "jaxfund[flat]"] + ["jaxfund[flat loop]"] * flat_loop + [
        "optax", "torch", "torch[foreach]", "torch[fused]"]
    lines += [f"{suite['parameters']:,} f32 parameters in {suite['leaves']} leaves. Time in ms "
              "(median); `jaxfund ÷ X` is the time ratio (< 1: jaxfund faster). `jaxfund` is "
              "one jitted, donated step per call; `jaxfund[loop]` runs "
              f"{suite.get('loop_steps', '—')} steps in one compiled `fori_loop` per call and "
              "reports the time per step (the update's device time without the per-call "
              "dispatch of every buffer, as inside a compiled train step)"
              + ("; `jaxfund[flat loop]` (accelerators) is the same for the flat layout, one "
                 "kernel over every parameter" if flat_loop else "")
              + ". The last columns are "
              "jaxfund's minimal traffic rate as a fraction of the measured copy bandwidth and "
              "the kernels (GPU) or loops (CPU) its compiled step runs per parameter leaf (from "
              "the optimised HLO: two leaves minus one).", ""]
    header = ["optimizer"] + [f"{impl} ms" for impl in impls] + [
        "jaxfund ÷ optax", "jaxfund ÷ torch[fused]", "flat ÷ torch[fused]", "jaxfund of copy BW",
        "loop of copy BW"] + ["flat loop of copy BW"] * flat_loop + ["kernels/leaf"]
    rows = []
    for case in suite["cases"]:
        times = case["times"]
        ms = [times[i]["median_s"] * 1e3 if i in times else None for i in impls]
        fused, flat = times.get("torch[fused]"), times.get("jaxfund[flat]")
        rows.append([case["case"], *ms, case["ratios"].get("jaxfund/optax"),
                     case["ratios"].get("jaxfund/torch[fused]"),
                     paired_ratio(flat, fused) if flat and fused else None,
                     case["fraction_of_copy_bandwidth"]["jaxfund"],
                     case["fraction_of_copy_bandwidth"].get("jaxfund[loop]"),
                     *[case["fraction_of_copy_bandwidth"].get("jaxfund[flat loop]")] * flat_loop,
                     case.get("kernels", {}).get("per_leaf")])
    return lines + _table(header, rows) + [""]


def _train_suite(suite: dict[str, Any]) -> list[str]:
    lines = ["### Train step (Adam, cross-entropy)", ""]
    if "skipped" in suite:
        return lines + [f"Skipped: {suite['skipped']}", ""]
    target = suite.get("fit_target", 1.1)
    lines += [f"The loop `train.fit` chooses: ms per step of the per-step Python loop of the "
              "jitted step (`jaxfund step`, donated), of one jitted `lax.scan` per epoch "
              "(`jaxfund scan`) and of `train.fit(loop=\"auto\")` (its own shuffle; the loop "
              f"it chose). Target: fit ÷ min(step, scan) ≤ {target}." + _second_run(suite), ""]
    rows = [[case["case"], *(_ms(case["ms_per_step"][f"jaxfund {name}"])
                             for name in ("step", "scan", "fit")),
             case["fit_loop"], case["fit_over_best"],
             "yes" if case["fit_over_best"] <= target else "**no**",
             case.get("fit_over_shuffled_scan")]
            for case in suite["cases"]]
    lines += _table(["network", "step ms/step", "scan ms/step", "fit ms/step", "fit loop",
                     "fit ÷ min(step, scan)", "≤ target", "fit ÷ scan+shuffle"], rows)
    lines += ["", "`jaxfund scan+shuffle` (MLPs, a diagnostic): the scan over a fresh "
              "permutation's batches each epoch, written by hand as `fit` documents its "
              "epoch; `fit ÷ scan+shuffle` is fit's own overhead beyond its shuffle.", ""]
    for case in suite["cases"]:
        lines += [f"**{case['case']}**, batch {case['batch']}, {case['steps_per_epoch']} steps "
                  "per epoch", ""]
        rows = []
        for name, rate in case["samples_per_s"].items():
            speedup = 1.0 if name == "torch" else case["speedup_vs_torch"][name]
            rows.append([name, rate, _ms(case["ms_per_step"][name]), speedup,
                         case["compile_s"][name]])
        lines += _table(["implementation", "samples/s", "ms/step", "× torch eager", "compile s"],
                        rows)
        for name, reason in case["failed"].items():
            lines.append(f"\n{name} failed: `{reason}`")
        lines.append("")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        f"## Benchmarks: {env['backend']} ({env['jax_device_kind']})", "",
        f"- Machine: {env['cpu_model']}, {env['cpu_count']} cores; torch on {env['torch_device']}"
        f" with {env['torch_threads']} threads"
        + (f"; XLA_FLAGS=`{env['xla_flags']}`" if env.get("xla_flags") else ""),
        f"- Versions: {versions}",
        f"- Mode: {'quick (tiny sizes, 1 sample: not meaningful)' if results['quick'] else 'full'}"
        f", {results['repeats']} interleaved rounds, median",
    ]
    bandwidth = results.get("copy_bandwidth")
    if bandwidth:
        rates = ", ".join(f"{k} {v / 1e9:.1f} GB/s" for k, v in bandwidth["bytes_per_s"].items())
        lines.append(f"- Copy bandwidth (read + write, {bandwidth['elements']:,} f32): {rates}")
    latency = results.get("sync_latency")
    if latency:
        waits = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in latency.items())
        timing = ("pipelined: a sample dispatches its calls back to back and waits once, so "
                  "these per-call waits are left out" if results.get("pipelined")
                  else "call by call: every call waits for its result")
        lines.append(f"- Timing: {timing}. One call and its wait, on one element: {waits}")
    lines.append("")
    suites = results["suites"]
    if "activations" in suites:
        s = suites["activations"]
        lines += _ratio_suite("Activations (forward + backward)", s, ["jax.nn", "torch"],
                              f"Shape {tuple(s['shape'])} f32, `value_and_grad(sum(f(x)))`. "
                              "`÷ X`: jaxfund time / X time (< 1: jaxfund faster).")
    if "losses" in suites:
        s = suites["losses"]
        lines += _ratio_suite("Losses (forward + backward)", s, ["optax", "torch"],
                              f"Inputs {tuple(s['shape'])} f32, gradient w.r.t. the first "
                              "input. `÷ X`: jaxfund time / X time." + _second_run(s))
    if "optimizers" in suites:
        lines += _optimizer_suite(suites["optimizers"])
    if "train" in suites:
        lines += _train_suite(suites["train"])
    return "\n".join(lines)


def _second_run(suite: dict[str, Any]) -> str:
    """A suite merged in from another run (``second_run``: its note and copy bandwidth)."""
    other = suite.get("second_run")
    if not other:
        return ""
    rates = ", ".join(f"{k} {v / 1e9:.1f} GB/s"
                      for k, v in other["copy_bandwidth"]["bytes_per_s"].items())
    return f" This suite was {other['note']} ({rates})."


def write(results: dict[str, Any], out_dir: str, label: str) -> tuple[str, str]:
    """Write ``<label>.json`` and ``<label>.md`` into ``out_dir``; return both paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{label}.json")
    md_path = os.path.join(out_dir, f"{label}.md")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=False)
        handle.write("\n")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(markdown(results) + "\n")
    return json_path, md_path
