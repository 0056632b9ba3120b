"""Activations: forward + backward (``value_and_grad`` of the sum) under jit.

jaxfund vs the ``jax.nn`` counterpart (where one exists) and vs torch forward + backward
(``f(x).sum().backward()``). Minimal traffic is read x + write dx = 8 bytes per f32 element.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness


def _cases(fn_table: Any, torch_f: Any, torch: Any, width: int) -> list[dict[str, Any]]:
    """(name, jaxfund call, jax.nn call or None, torch call) for every benchmarked activation."""
    weight = np.full((width,), 0.25, np.float32)
    jweight = jnp.asarray(weight)
    tweight = torch.tensor(weight, device=_harness.torch_device())
    nn = jax.nn
    rows = [
        ("sigmoid", {}, nn.sigmoid, torch.sigmoid),
        ("tanh", {}, jnp.tanh, torch.tanh),
        ("relu", {}, nn.relu, torch_f.relu),
        ("relu6", {}, nn.relu6, torch_f.relu6),
        ("leaky_relu", {}, lambda x: nn.leaky_relu(x, 0.01), torch_f.leaky_relu),
        ("elu", {}, nn.elu, torch_f.elu),
        ("selu", {}, nn.selu, torch_f.selu),
        ("celu", {}, nn.celu, torch_f.celu),
        ("gelu", {}, lambda x: nn.gelu(x, approximate=False), torch_f.gelu),
        ("gelu[tanh]", {"approximate": "tanh"}, lambda x: nn.gelu(x, approximate=True),
         lambda x: torch_f.gelu(x, approximate="tanh")),
        ("silu", {}, nn.silu, torch_f.silu),
        ("mish", {}, nn.mish, torch_f.mish),
        ("softplus", {}, nn.softplus, torch_f.softplus),
        ("softsign", {}, nn.soft_sign, torch_f.softsign),
        ("hardtanh", {}, nn.hard_tanh, torch_f.hardtanh),
        ("hardsigmoid", {}, nn.hard_sigmoid, torch_f.hardsigmoid),
        ("hardswish", {}, nn.hard_swish, torch_f.hardswish),
        ("logsigmoid", {}, nn.log_sigmoid, torch_f.logsigmoid),
        ("tanhshrink", {}, None, torch_f.tanhshrink),
        ("softshrink", {}, None, torch_f.softshrink),
        ("hardshrink", {}, None, torch_f.hardshrink),
        ("threshold", {"threshold": 0.1, "value": 20.0}, None,
         lambda x: torch_f.threshold(x, 0.1, 20.0)),
        ("softmax", {}, lambda x: nn.softmax(x, axis=-1), lambda x: torch_f.softmax(x, dim=-1)),
        ("log_softmax", {}, lambda x: nn.log_softmax(x, axis=-1),
         lambda x: torch_f.log_softmax(x, dim=-1)),
        ("softmin", {}, lambda x: nn.softmax(-x, axis=-1), lambda x: torch_f.softmin(x, dim=-1)),
        ("glu", {}, lambda x: nn.glu(x, axis=-1), lambda x: torch_f.glu(x, dim=-1)),
        ("prelu", {"weight": jweight}, None, lambda x: torch_f.prelu(x, tweight)),
        ("rrelu", {}, None, lambda x: torch_f.rrelu(x, training=False)),
    ]
    cases = []
    for label, kwargs, jax_ref, torch_ref in rows:
        name = label.split("[")[0]
        fn = getattr(fn_table, name, None)
        if fn is None:
            continue
        cases.append({"case": label, "jaxfund": _bind(fn, kwargs), "jax.nn": jax_ref,
                      "torch": torch_ref})
    return cases


def _bind(fn: Callable, kwargs: dict[str, Any]) -> Callable[[jax.Array], jax.Array]:
    return lambda x: fn(x, **kwargs)


def _jax_fwd_bwd(f: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], Any]:
    return jax.jit(jax.value_and_grad(lambda x: jnp.sum(f(x))))


def _torch_fwd_bwd(f: Callable, x: Any) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        f(x).sum().backward()

    return _harness.torch_waiting(run)


def run(config: _harness.Config, bandwidth: float) -> dict[str, Any]:
    """Benchmark every jaxfund activation that has a reference; return the suite's results."""
    import torch
    import torch.nn.functional as torch_f

    module, reason = _harness.available("activations")
    # 16 MiB per array on a CPU; 16x that on an accelerator, where a 16 MiB array takes a few
    # microseconds and the ~0.1 ms of dispatch per call would be all that is measured.
    rows = 4096 if jax.default_backend() == "cpu" else 65536
    shape = (64, 128) if config.quick else (rows, 1024)
    suite: dict[str, Any] = {"shape": list(shape), "dtype": "float32",
                             "bytes_per_call": 8 * int(np.prod(shape)), "cases": []}
    if module is None:
        suite["skipped"] = reason
        return suite
    data = _harness.seeded(shape, seed=1) * 3.0
    x = jnp.asarray(data)
    tx = torch.tensor(data, device=_harness.torch_device(), requires_grad=True)
    for case in _cases(module, torch_f, torch, shape[-1]):
        fns = {"jaxfund": _harness.jax_blocking(_jax_fwd_bwd(case["jaxfund"]), x)}
        if case["jax.nn"] is not None:
            fns["jax.nn"] = _harness.jax_blocking(_jax_fwd_bwd(case["jax.nn"]), x)
        fns["torch"] = _torch_fwd_bwd(case["torch"], tx)
        times = _harness.interleaved(fns, config)
        suite["cases"].append(_harness.summarise(case["case"], times, suite["bytes_per_call"], bandwidth))
    return suite

