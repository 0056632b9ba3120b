"""Timing, environment and bandwidth helpers shared by every benchmark suite.

Every figure the suites report is a ratio of medians measured in one process: the callables of a
case run interleaved (A, B, C, A, B, C, ... with the order rotated every round), after a warm-up
that pays for compilation, and each callable blocks on its own result (``block_until_ready`` for
JAX, a device synchronisation for torch on CUDA). A callable that pays untimed setup on every
call (``train.fit`` compiles its loop) times itself instead (:func:`self_timed`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import math
import os
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Config:
    """How long and how big: ``quick`` is the CI smoke run (tiny sizes, one sample each, no
    warm-up beyond the call that sizes the sample, which pays for compilation)."""

    quick: bool = False
    repeats: int = 5
    min_sample_seconds: float = 0.15
    warmup: int = 2

    @classmethod
    def make(cls, quick: bool, repeats: int | None = None) -> "Config":
        if quick:
            return cls(quick=True, repeats=repeats or 1, min_sample_seconds=0.0, warmup=0)
        return cls(quick=False, repeats=repeats or 5)


def torch_device() -> str:
    """The device torch runs on: CUDA when JAX runs on a GPU and torch can see one, else CPU."""
    import torch

    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def torch_sync() -> None:
    """Wait for queued torch work (a no-op on CPU, where torch is synchronous)."""
    import torch

    if torch.cuda.is_available() and torch_device() == "cuda":
        torch.cuda.synchronize()


def self_timed(fn: Callable[[], float]) -> Callable[[], float]:
    """Mark ``fn`` as timing itself: each call returns its own seconds instead of being timed
    from outside, and :func:`interleaved` calls it once per round, without a warm-up.

    For work that pays untimed setup on every call, e.g. ``train.fit``: it compiles its loop on
    each call, sizes its own sample (its number of epochs) and returns the mean seconds of its
    epochs after the first (from its history).
    """
    fn.self_timed = True  # type: ignore[attr-defined]
    return fn


def pipelined(run: Callable[[], Any], wait: Callable[[Any], Any]) -> Callable[[], Any]:
    """A callable that does ``run()`` and then ``wait(result)``, for :func:`interleaved` to time
    as throughput on an accelerator: there a sample dispatches ``number`` runs back to back and
    waits once, on the last result (work queued on one device runs in order, so the last result
    is ready only when every run is done).

    Timed call by call, every sample would also count one host-device synchronisation per call,
    a cost that differs between frameworks (``sync_latency`` in the results measures it) and
    that a training loop, which does not wait for every step, does not pay. On a CPU (where
    torch runs synchronously) the callable is timed call by call, as every other callable.
    """

    def call() -> Any:
        return wait(run())

    call.run, call.wait = run, wait  # type: ignore[attr-defined]
    return call


def pipelines() -> bool:
    """Whether :func:`interleaved` times :func:`pipelined` callables as throughput (on an
    accelerator)."""
    return jax.default_backend() != "cpu"


def interleaved(fns: dict[str, Callable[[], Any]], config: Config) -> dict[str, dict[str, float]]:
    """Time callables interleaved; return per-name median/min seconds per call and samples.

    Each callable must block until its work is done. The warm-up calls (compilation, first-touch
    allocation) are excluded. Each sample repeats a callable ``number`` times, chosen so a sample
    lasts at least ``config.min_sample_seconds``; the reported time is the sample time divided by
    ``number``. On an accelerator a :func:`pipelined` callable's ``number`` runs are dispatched
    back to back, with one wait at the end of the sample. A :func:`self_timed` callable has no
    warm-up and is called once per round.
    ``median_s`` is the median over ``config.repeats`` rounds; ``rounds`` keeps every round's
    time so ratios can be paired (see :func:`paired_ratio`).
    """
    names = list(fns)
    numbers = {}
    for name in names:
        if getattr(fns[name], "self_timed", False):
            numbers[name] = 0
            continue
        for _ in range(config.warmup):
            fns[name]()
        start = time.perf_counter()
        fns[name]()
        once = time.perf_counter() - start
        numbers[name] = max(1, math.ceil(config.min_sample_seconds / max(once, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    pipeline = pipelines()
    for round_index in range(config.repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            fn, number = fns[name], numbers[name]
            if not number:
                samples[name].append(float(fn()))
                continue
            run = getattr(fn, "run", None) if pipeline else None
            start = time.perf_counter()
            if run is None:
                for _ in range(number):
                    fn()
            else:
                for _ in range(number):
                    result = run()
                fn.wait(result)  # type: ignore[attr-defined]
            samples[name].append((time.perf_counter() - start) / number)
    return {
        name: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "samples": len(values),
            "calls_per_sample": max(numbers[name], 1),
            "rounds": values,
        }
        for name, values in samples.items()
    }


LOG: list[Callable[[str], None]] = []


def progress(message: str) -> None:
    """Report progress (one line per case) to the logger main() installed, if any."""
    for log in LOG:
        log(message)


def paired_ratio(mine: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Median over rounds of ``mine / theirs`` measured in the same round.

    Pairing the two timings of a round cancels load that drifts slower than one round (a shared
    machine); without per-round samples (a non-interleaved row) it is the ratio of the medians.
    """
    a, b = mine.get("rounds"), theirs.get("rounds")
    if a and b and len(a) == len(b):
        return float(statistics.median(x / y for x, y in zip(a, b)))
    return float(mine["median_s"]) / float(theirs["median_s"])


def jax_blocking(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """A zero-argument :func:`pipelined` callable that runs ``fn(*args)`` and blocks on the
    result."""
    return pipelined(lambda: fn(*args), jax.block_until_ready)


def torch_waiting(run: Callable[[], Any]) -> Callable[[], Any]:
    """A zero-argument :func:`pipelined` callable that does ``run()`` and then waits for torch's
    queued work (:func:`torch_sync`)."""
    return pipelined(run, lambda _: torch_sync())


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Device description and library versions recorded with every result file."""
    import torch

    device = jax.devices()[0]
    info: dict[str, Any] = {
        "backend": jax.default_backend(),
        "jax_device": str(device),
        "jax_device_kind": device.device_kind,
        "jax_device_count": jax.device_count(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_device": torch_device(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {
            name: _version(name)
            for name in ("jax", "jaxlib", "optax", "flax", "chex", "torch", "numpy", "jaxfund")
        },
    }
    if torch_device() == "cuda":
        info["torch_cuda_device"] = torch.cuda.get_device_name(0)
    return info


def device_label() -> str:
    """The results file stem: ``cpu``, ``gpu`` or ``tpu``."""
    return jax.default_backend()


def copy_bandwidth(config: Config, elements: int, loop_steps: int = 10) -> dict[str, Any]:
    """Measured copy bandwidth (bytes read + written per second) of JAX and torch.

    JAX: a jitted, donated ``x + 1`` (read and write ``elements`` f32 in place, one XLA kernel),
    once per call (:func:`pipelined`), and ``loop_steps`` of them in one compiled ``fori_loop``
    timed per step (the kernel's device time without the per-call dispatch and synchronisation,
    as the optimizers' ``jaxfund[loop]`` rows are timed). torch: ``dst.copy_(src)``. All run
    interleaved; ``device_bytes_per_s`` is the largest rate and is the denominator of every
    "fraction of copy bandwidth" in the suites.
    """
    import torch

    dev = torch_device()
    add_one = jax.jit(lambda x: x + 1, donate_argnums=0)
    add_in_loop = jax.jit(lambda x: jax.lax.fori_loop(0, loop_steps, lambda _, y: y + 1, x),
                          donate_argnums=0)
    holder = {"x": jnp.zeros((elements,), jnp.float32)}

    def jax_copy_run() -> jax.Array:
        holder["x"] = add_one(holder["x"])
        return holder["x"]

    def jax_loop() -> None:
        holder["x"] = add_in_loop(holder["x"])
        holder["x"].block_until_ready()

    jax_loop()  # compilation, untimed

    @self_timed
    def jax_copy_loop() -> float:
        start = time.perf_counter()
        jax_loop()
        return (time.perf_counter() - start) / loop_steps

    src = torch.zeros(elements, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)

    times = interleaved({"jax x+1 (donated)": pipelined(jax_copy_run, jax.block_until_ready),
                         "jax x+1 [loop]": jax_copy_loop,
                         "torch copy_": torch_waiting(lambda: dst.copy_(src))},
                        config)
    moved = 2 * 4 * elements
    rates = {name: moved / t["median_s"] for name, t in times.items()}
    return {
        "elements": elements,
        "bytes_per_call": moved,
        "bytes_per_s": rates,
        "device_bytes_per_s": max(rates.values()),
    }


def sync_latency(config: Config) -> dict[str, float]:
    """Seconds per call of a one-element ``x + 1`` that waits for its result, for JAX (jitted,
    ``block_until_ready``) and torch (``add_``, then a device synchronisation): the dispatch and
    host-device synchronisation that a call-by-call timing adds to every call, and that
    :func:`pipelined` timing leaves out on an accelerator."""
    import torch

    add_one = jax.jit(lambda x: x + 1)
    x = jnp.zeros((1,), jnp.float32)
    t = torch.zeros(1, dtype=torch.float32, device=torch_device())

    def torch_call() -> None:
        t.add_(1)
        torch_sync()

    times = interleaved({"jax": lambda: add_one(x).block_until_ready(), "torch": torch_call},
                        config)
    return {name: value["median_s"] for name, value in times.items()}


def available(module: str) -> tuple[Any | None, str | None]:
    """Import ``jaxfund.<module>``; return (module, None) or (None, reason)."""
    try:
        return importlib.import_module(f"jaxfund.{module}"), None
    except Exception as error:  # a module still being written must not stop the other suites
        return None, f"jaxfund.{module} not importable: {type(error).__name__}: {error}"


def seeded(shape: tuple[int, ...], seed: int, dtype: Any = np.float32) -> np.ndarray:
    """Deterministic standard-normal data (NumPy, so JAX and torch see the same values)."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype)


def summarise(case: str, times: dict[str, dict[str, float]], moved: int, bandwidth: float,
              ours: str = "jaxfund") -> dict[str, Any]:
    """One result row: the timings, ``ours/reference`` time ratios and achieved bandwidth.

    A ratio below 1 means ``ours`` is faster than that reference; ratios are paired per round.
    """
    progress(f"  {case}: " + ", ".join(f"{name} {t['median_s'] * 1e3:.3g} ms"
                                       for name, t in times.items()))
    return {
        "case": case,
        "times": times,
        "ratios": {f"{ours}/{ref}": paired_ratio(times[ours], t)
                   for ref, t in times.items() if ref != ours},
        "bytes_per_call": moved,
        "bytes_per_s": {name: moved / t["median_s"] for name, t in times.items()},
        "fraction_of_copy_bandwidth": {name: moved / t["median_s"] / bandwidth
                                       for name, t in times.items()},
    }
