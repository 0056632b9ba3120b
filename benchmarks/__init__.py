"""jaxfund benchmarks: every figure a ratio against a reference measured in the same process.

Run ``python -m benchmarks`` (or ``jaxfund bench``)::

    python -m benchmarks                      # full run, ~6 minutes on a 2-core CPU
    python -m benchmarks --quick              # every benchmark once, tiny sizes (smoke run)
    python -m benchmarks --only optimizers,train --out /tmp/bench

Results: ``<out>/<device>.json`` (timings, ratios, device, versions, sizes) and
``<out>/<device>.md`` (the Markdown tables, also printed). ``<device>`` is ``cpu``/``gpu``/``tpu``.
A full run writes to ``benchmarks/results`` (the committed tables); a ``--quick`` run's numbers
mean nothing, so it writes to ``runs/bench-quick`` unless ``--out`` says otherwise, and skips
``torch.compile`` (a minute of compilation).

This package lives in the repository, beside ``jaxfund``; it is not installed with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

__all__ = ["SUITES", "UsageError", "main", "parse_args", "run"]

SUITES = ("activations", "losses", "optimizers", "train")

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
QUICK_DIR = os.path.join("runs", "bench-quick")


class UsageError(ValueError):
    """A bad command-line argument: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a :class:`UsageError` (one line, no usage dump)."""

    def error(self, message: str):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m benchmarks",
        description="jaxfund vs jax.nn / optax / torch / flax: time ratios measured interleaved "
                    "in one process (median of repeats, compilation excluded).")
    parser.add_argument("--quick", action="store_true",
                        help="run every benchmark once with tiny sizes, without torch.compile "
                             "(a smoke test: about a minute on 2 CPU cores)")
    parser.add_argument("--only", default=",".join(SUITES),
                        help=f"comma-separated suites to run (default: all of {','.join(SUITES)})")
    parser.add_argument("--out", default=None,
                        help="directory for <device>.json and <device>.md (default: "
                             f"benchmarks/results, or {QUICK_DIR} with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds per case (default 5; 1 with --quick)")
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="skip the torch.compile train-step row")
    return parser


def run(suites: list[str], *, quick: bool = False, repeats: int | None = None,
        torch_compile: bool = True, log: Any = None,
        on_suite: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the selected suites, in the order given, and return the results dictionary (what the
    JSON holds). ``on_suite(results)`` is called after each suite with the results so far."""
    import jax

    from benchmarks import _harness

    config = _harness.Config.make(quick, repeats)
    _harness.LOG[:] = [log] if log else []
    results: dict[str, Any] = {
        "quick": quick,
        "repeats": config.repeats,
        "environment": _harness.environment(),
        "ratio_definition": "time(jaxfund) / time(reference): median over interleaved rounds "
                            "of the ratio within each round; < 1 means jaxfund is faster",
        "suites": {},
    }
    start = time.perf_counter()
    # 128 MiB on a CPU; 1 GiB on an accelerator, where a smaller copy is dominated by the
    # per-call dispatch and synchronisation (tens of microseconds).
    elements = 1 << 16 if quick else 1 << 25 if jax.default_backend() == "cpu" else 1 << 28
    loop_steps = 10 if jax.default_backend() == "cpu" else 50
    results["copy_bandwidth"] = _harness.copy_bandwidth(config, elements, loop_steps)
    bandwidth = results["copy_bandwidth"]["device_bytes_per_s"]
    results["sync_latency"] = _harness.sync_latency(config)
    results["pipelined"] = _harness.pipelines()
    for name in suites:
        suite_start = time.perf_counter()
        if log:
            log(f"running {name} ...")
        if name == "train":
            from benchmarks import train

            suite = train.run(config, torch_compile=torch_compile)
        else:
            module = __import__(f"benchmarks.{name}", fromlist=["run"])
            suite = module.run(config, bandwidth)
        suite["seconds"] = time.perf_counter() - suite_start
        results["suites"][name] = suite
        results["seconds"] = time.perf_counter() - start
        if on_suite is not None:
            on_suite(results)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line ``argv`` (default ``sys.argv[1:]``), checked; ``args.only`` becomes the
    list of suites. Raises :class:`UsageError` (a one-line message) for a bad argument; ``--help``
    prints the help and raises ``SystemExit(0)``."""
    args = _parser().parse_args(argv)
    suites = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise UsageError(f"--only: unknown suite(s) {unknown or args.only!r}; choose from "
                         f"{', '.join(SUITES)}")
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    args.only = suites
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a bad argument, reported as one
    line on stderr)."""
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"python -m benchmarks: error: {err}", file=sys.stderr)
        return 2
    suites = args.only
    from benchmarks import _harness, _report

    out = args.out if args.out is not None else QUICK_DIR if args.quick else RESULTS_DIR
    label = _harness.device_label()
    # The files are rewritten after every suite: a run stopped part-way keeps the finished ones,
    # and the last write holds the whole run.
    written: list[tuple[str, str]] = []
    results = run(suites, quick=args.quick, repeats=args.repeats,
                  torch_compile=not (args.no_torch_compile or args.quick),
                  log=lambda message: print(message, file=sys.stderr, flush=True),
                  on_suite=lambda partial: written.append(_report.write(partial, out, label)))
    json_path, md_path = written[-1]
    print(_report.markdown(results))
    print(f"\nwrote {json_path} and {md_path} ({results['seconds']:.0f} s)", file=sys.stderr)
    return 0
