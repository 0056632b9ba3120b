"""Optimizers: one update + apply of a ~10M-parameter, ~200-leaf model, buffers donated.

Implementations per optimizer (the closest configuration of each library):

* ``jaxfund`` / ``optax``: ``jax.jit(step, donate_argnums=(0, 1))`` with
  ``step(params, state, grads) = apply_updates(params, tx.update(grads, state, params))``.
* ``jaxfund[flat]``: the same jaxfund step on the flat-parameter layout (every leaf
  concatenated into one 1-D buffer; identical numerics for elementwise optimizers).
* ``torch``, ``torch[foreach]``, ``torch[fused]``: ``torch.optim.X(...).step()`` with the
  single-tensor loop (``foreach=False``), the multi-tensor path and the fused kernel (where torch
  has one on this device; otherwise the row records why not).
* ``jaxfund[loop]``: ``loop_steps`` jaxfund steps in one compiled ``fori_loop``, per step; and
  ``kernels``, the passes over a leaf in the compiled step. ``--quick`` skips both (two more
  compilations per optimizer); ``tests/test_benchmarks.py`` runs them for one optimizer.
* ``jaxfund[flat loop]`` (accelerators only): the flat layout's steps in one ``fori_loop``, per
  step: one kernel over all parameters, so its gap to ``jaxfund[loop]`` is the cost of running
  one kernel per leaf (launches and under-filled small kernels).

Minimal traffic: ``words`` f32 per parameter (read p, g and each state buffer, write p and each
state buffer), compared with the device copy bandwidth measured in the same run.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from benchmarks import _harness

# name: (jaxfund kwargs, optax factory, torch class and kwargs, f32 words moved per parameter,
#        elementwise: the flat layout gives identical numerics)
TABLE: dict[str, tuple[dict, Callable | None, tuple[str, dict] | None, int, bool]] = {
    "sgd": ({"lr": 0.01, "momentum": 0.9}, lambda: optax.sgd(0.01, momentum=0.9),
            ("SGD", {"lr": 0.01, "momentum": 0.9}), 5, True),
    "adam": ({"lr": 1e-3}, lambda: optax.adam(1e-3), ("Adam", {"lr": 1e-3}), 7, True),
    "adamw": ({"lr": 1e-3, "weight_decay": 1e-2}, lambda: optax.adamw(1e-3, weight_decay=1e-2),
              ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}), 7, True),
    "rmsprop": ({"lr": 0.01}, lambda: optax.rmsprop(0.01, decay=0.99, eps=1e-8),
                ("RMSprop", {"lr": 0.01}), 5, True),
    "adagrad": ({"lr": 0.01},
                lambda: optax.adagrad(0.01, initial_accumulator_value=0.0, eps=1e-10),
                ("Adagrad", {"lr": 0.01}), 5, True),
    "adamax": ({"lr": 2e-3}, lambda: optax.adamax(2e-3), ("Adamax", {"lr": 2e-3}), 7, True),
    "nadam": ({"lr": 2e-3}, lambda: optax.nadam(2e-3), ("NAdam", {"lr": 2e-3}), 7, True),
    "radam": ({"lr": 1e-3}, lambda: optax.radam(1e-3), ("RAdam", {"lr": 1e-3}), 7, True),
    "adadelta": ({"lr": 1.0}, lambda: optax.adadelta(1.0, rho=0.9, eps=1e-6),
                 ("Adadelta", {"lr": 1.0}), 7, True),
    "rprop": ({"lr": 0.01}, lambda: optax.rprop(0.01), ("Rprop", {"lr": 0.01}), 7, True),
    "asgd": ({"lr": 0.01}, None, ("ASGD", {"lr": 0.01}), 5, True),
    "lion": ({"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 1e-3},
             lambda: optax.lion(1e-4, b1=0.9, b2=0.99, weight_decay=1e-3), None, 5, True),
    "lamb": ({"lr": 1e-3}, lambda: optax.lamb(1e-3, eps=1e-6), None, 7, False),
}

# Weight shapes cycled to build the model; each weight is followed by its bias.
_WEIGHTS = [(512, 256), (256, 256), (1024, 256), (64, 64, 3, 3), (768, 128), (128, 512)]


def shapes(quick: bool, grow: int = 1) -> list[tuple[int, ...]]:
    """200 leaves (weights and biases, mixed ranks), 11.1M parameters (quick: 8 small leaves of
    ranks 1, 2 and 4: the first 4-D weight is the fourth);
    ``grow`` multiplies every leading dimension (8 on an accelerator: 88.7M parameters, so a
    step moves ~2.5 GB and the kernels, not the launches, set its time)."""
    scale, layers = (8, 4) if quick else (1, 100)
    out: list[tuple[int, ...]] = []
    for index in range(layers):
        weight = _WEIGHTS[index % len(_WEIGHTS)]
        weight = (max(1, weight[0] * grow // scale),) + weight[1:]
        out.extend([weight, (weight[0],)])
    return out


def _jax_step(tx: optax.GradientTransformation, steps: int = 1) -> Callable:
    """The donated ``step(params, state, grads) -> (params, state)``, jitted; ``steps > 1``:
    that many steps in one compiled ``fori_loop``."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if steps == 1:
        return jax.jit(step, donate_argnums=(0, 1))

    def loop(params, state, grads):
        return jax.lax.fori_loop(0, steps, lambda _, carry: step(*carry, grads),
                                 (params, state))

    return jax.jit(loop, donate_argnums=(0, 1))


# Entry-computation instructions that launch no work of their own.
_FREE_OPCODES = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%(\S+)\s*=\s*(.*?)\s+([a-z][a-z0-9-]*)\((.*)$")


def _largest(shape_text: str) -> int:
    """The element count of the largest array in an HLO result type (``f32[1024,1024]{1,0}``
    or a tuple of them); 1 for scalars."""
    sizes = [math.prod(int(d) for d in dims.split(",") if d) if dims else 1
             for dims in re.findall(r"[a-z0-9]+\[([0-9,]*)\]", shape_text)]
    return max(sizes, default=1)


def entry_passes(compiled_text: str, elements: int) -> list[str]:
    """The work-launching instructions of an optimised HLO module's ENTRY computation that read
    or write an array of at least ``elements`` elements: each is one kernel on a GPU, one loop
    over the leaf on XLA:CPU. Returns their opcodes."""
    entry = compiled_text[compiled_text.index("\nENTRY "):]
    body = entry[entry.index("{") + 1:entry.index("\n}")]
    sizes: dict[str, int] = {}
    passes = []
    for line in body.splitlines():
        match = _INSTRUCTION.match(line)
        if match is None:
            continue
        name, result, opcode, rest = match.groups()
        sizes[name] = _largest(result)
        if opcode in _FREE_OPCODES:
            continue
        operands = re.findall(r"%([^\s,()]+)", rest.split("), ")[0])
        if max([sizes[name]] + [sizes.get(o, 1) for o in operands]) >= elements:
            passes.append(opcode)
    return passes


def kernels_per_leaf(tx: optax.GradientTransformation, shape: tuple[int, ...] = (1024, 1024),
                     ) -> dict[str, Any]:
    """Kernels (GPU) or loops (CPU) the compiled donated step of a one-leaf model runs over its
    leaf (what the step spends on scalars, e.g. the bias corrections, does not count; counting
    one leaf keeps XLA from merging the same-shaped updates of several leaves)."""
    params = [jnp.zeros(shape, jnp.float32)]
    text = _jax_step(tx).lower(params, tx.init(params), params).compile().as_text()
    passes = entry_passes(text, math.prod(shape))
    return {"per_leaf": len(passes), "opcodes": passes}


def _jax_runner(tx: optax.GradientTransformation, params: Any, grads: Any,
                steps: int = 1) -> Callable[[], None]:
    """A callable doing ``steps`` donated steps (:func:`_jax_step`); the live params/state are
    rebound every call."""
    step = _jax_step(tx, steps)
    live = {"params": params, "state": tx.init(params)}

    def run() -> Any:
        live["params"], live["state"] = step(live["params"], live["state"], grads)
        return live["params"]

    return _harness.pipelined(run, jax.block_until_ready)


def _jax_loop_runner(tx: optax.GradientTransformation, params: Any, grads: Any,
                     steps: int) -> Callable[[], float]:
    """``steps`` donated steps in one compiled ``fori_loop``, timed per step: the update's
    device time without the per-call dispatch of its hundreds of buffers (what a step inside a
    compiled train step or epoch costs)."""
    call = _jax_runner(tx, params, grads, steps)
    call()  # compilation and first-touch allocation, untimed
    call()

    @_harness.self_timed
    def timed() -> float:
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) / steps

    return timed


def _torch_runner(name: str, kwargs: dict, mode: str, tensors: list) -> Callable[[], None]:
    import torch

    extra = {"single": {"foreach": False}, "foreach": {"foreach": True},
             "fused": {"fused": True}}[mode]
    opt = getattr(torch.optim, name)(tensors, **kwargs, **extra)

    call = _harness.torch_waiting(opt.step)
    call()
    return call


def run(config: _harness.Config, bandwidth: float) -> dict[str, Any]:
    """Benchmark every optimizer of the table that jaxfund has; return the suite's results."""
    import torch

    module, reason = _harness.available("optimizers")
    accelerator = jax.default_backend() != "cpu"
    leaf_shapes = shapes(config.quick, grow=8 if accelerator and not config.quick else 1)
    size = sum(math.prod(s) for s in leaf_shapes)
    loop_steps = 50 if accelerator else 10
    suite: dict[str, Any] = {"leaves": len(leaf_shapes), "parameters": size,
                             "dtype": "float32", "loop_steps": loop_steps, "cases": []}
    if module is None:
        suite["skipped"] = reason
        return suite
    params_np = [_harness.seeded(s, seed=10 + i) for i, s in enumerate(leaf_shapes)]
    grads_np = [_harness.seeded(s, seed=1000 + i) * 1e-2 for i, s in enumerate(leaf_shapes)]
    device = _harness.torch_device()
    grads = [jnp.asarray(g) for g in grads_np]
    flat_grads = jnp.concatenate([g.ravel() for g in grads])
    for name, (kwargs, optax_factory, torch_spec, words, elementwise) in TABLE.items():
        factory = getattr(module, name, None)
        if factory is None:
            continue
        fns = {"jaxfund": _jax_runner(factory(**kwargs), [jnp.asarray(p) for p in params_np],
                                      grads)}
        if not config.quick:
            fns["jaxfund[loop]"] = _jax_loop_runner(factory(**kwargs),
                                                    [jnp.asarray(p) for p in params_np], grads,
                                                    loop_steps)
        if elementwise:
            flat = jnp.concatenate([jnp.asarray(p).ravel() for p in params_np])
            fns["jaxfund[flat]"] = _jax_runner(factory(**kwargs), flat, flat_grads)
            if accelerator and not config.quick:
                fns["jaxfund[flat loop]"] = _jax_loop_runner(
                    factory(**kwargs), jnp.concatenate([jnp.asarray(p).ravel()
                                                        for p in params_np]),
                    flat_grads, loop_steps)
        if optax_factory is not None:
            fns["optax"] = _jax_runner(optax_factory(), [jnp.asarray(p) for p in params_np],
                                       grads)
        unsupported = {}
        if torch_spec is not None:
            tensors = [torch.tensor(p, device=device, requires_grad=True) for p in params_np]
            for tensor, grad in zip(tensors, grads_np):
                tensor.grad = torch.tensor(grad, device=device)
            for mode in ("single", "foreach", "fused"):
                label = "torch" if mode == "single" else f"torch[{mode}]"
                try:
                    fns[label] = _torch_runner(torch_spec[0], torch_spec[1], mode, tensors)
                except Exception as error:  # torch has no such kernel here: record why
                    unsupported[label] = f"{type(error).__name__}: {error}"[:200]
        times = _harness.interleaved(fns, config)
        row = _harness.summarise(name, times, 4 * words * size, bandwidth)
        row["words_per_parameter"] = words
        if not config.quick:
            row["kernels"] = kernels_per_leaf(factory(**kwargs))
        if unsupported:
            row["unsupported"] = unsupported
        suite["cases"].append(row)
        del fns
    return suite
