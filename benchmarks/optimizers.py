"""Optimizers: one update + apply of a ~10M-parameter, ~200-leaf model, buffers donated.

Implementations per optimizer (the closest configuration of each library):

* ``jaxfund`` / ``optax``: ``jax.jit(step, donate_argnums=(0, 1))`` with
  ``step(params, state, grads) = apply_updates(params, tx.update(grads, state, params))``.
* ``jaxfund[flat]``: the same jaxfund step on the flat-parameter layout (every leaf
  concatenated into one 1-D buffer; identical numerics for elementwise optimizers).
* ``torch``, ``torch[foreach]``, ``torch[fused]``: ``torch.optim.X(...).step()`` with the
  single-tensor loop (``foreach=False``), the multi-tensor path and the fused kernel (where torch
  has one on this device; otherwise the row records why not).

Minimal traffic: ``words`` f32 per parameter (read p, g and each state buffer, write p and each
state buffer), compared with the device copy bandwidth measured in the same run.
"""

from __future__ import annotations

import math
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


def shapes(quick: bool) -> list[tuple[int, ...]]:
    """200 leaves (weights and biases, mixed ranks), 11.1M parameters (quick: 20 small leaves)."""
    scale, layers = (8, 10) if quick else (1, 100)
    out: list[tuple[int, ...]] = []
    for index in range(layers):
        weight = _WEIGHTS[index % len(_WEIGHTS)]
        weight = (max(1, weight[0] // scale),) + weight[1:]
        out.extend([weight, (weight[0],)])
    return out


def _jax_step(tx: optax.GradientTransformation) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def _jax_runner(tx: optax.GradientTransformation, params: Any, grads: Any) -> Callable[[], None]:
    """A callable doing one donated step; the live params/state are rebound every call."""
    step = _jax_step(tx)
    live = {"params": params, "state": tx.init(params)}

    def call() -> None:
        live["params"], live["state"] = step(live["params"], live["state"], grads)
        jax.block_until_ready(live["params"])

    return call


def _torch_runner(name: str, kwargs: dict, mode: str, tensors: list) -> Callable[[], None]:
    import torch

    extra = {"single": {"foreach": False}, "foreach": {"foreach": True},
             "fused": {"fused": True}}[mode]
    opt = getattr(torch.optim, name)(tensors, **kwargs, **extra)

    def call() -> None:
        opt.step()
        _harness.torch_sync()

    call()
    return call


def run(config: _harness.Config, bandwidth: float) -> dict[str, Any]:
    """Benchmark every optimizer of the table that jaxfund has; return the suite's results."""
    import torch

    module, reason = _harness.available("optimizers")
    leaf_shapes = shapes(config.quick)
    size = sum(math.prod(s) for s in leaf_shapes)
    suite: dict[str, Any] = {"leaves": len(leaf_shapes), "parameters": size,
                             "dtype": "float32", "cases": []}
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
        if elementwise:
            flat = jnp.concatenate([jnp.asarray(p).ravel() for p in params_np])
            fns["jaxfund[flat]"] = _jax_runner(factory(**kwargs), flat, flat_grads)
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
        if unsupported:
            row["unsupported"] = unsupported
        suite["cases"].append(row)
        del fns
    return suite
