"""Losses: forward + backward (``value_and_grad`` with respect to the first input) under jit.

jaxfund vs the closest ``optax.losses`` expression (where one exists, reduced the way torch
reduces) and vs torch forward + backward. Minimal traffic: read every input once, write the
gradient once (``nll_loss`` reads only the target class's element of each row).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _harness


# Losses whose value reads one element of the first input per row (the target's class): their
# minimal traffic is the targets, those elements and the gradient written once.
_GATHERS = {"nll_loss"}


@functools.lru_cache(maxsize=2)
def _normal(rows: int, cols: int, seed: int) -> np.ndarray:
    """``_harness.seeded``, drawn once per run: on an accelerator each array is 0.5 GB, and
    drawing it again for every case took longer than timing the case."""
    return _harness.seeded((rows, cols), seed=seed)


def _inputs(kind: str, rows: int, cols: int) -> list[np.ndarray]:
    """NumPy inputs for one input kind; the first one is differentiated."""
    x, other = _normal(rows, cols, 2), _normal(rows, cols, 3)
    rng = np.random.default_rng(4)
    if kind == "logits_labels":
        return [x, rng.integers(0, cols, size=(rows,)).astype(np.int32)]
    if kind == "logprobs_labels":
        logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
        return [logp.astype(np.float32), rng.integers(0, cols, size=(rows,)).astype(np.int32)]
    if kind == "regression":
        return [x, other]
    if kind == "logits_probs":
        return [x, rng.random((rows, cols), dtype=np.float32)]
    if kind == "probs_probs":
        probs = 1.0 / (1.0 + np.exp(-x))
        return [probs.astype(np.float32), rng.random((rows, cols), dtype=np.float32)]
    if kind == "signs":
        return [x, np.sign(other).astype(np.float32)]
    if kind == "binary":
        return [x, (other > 0).astype(np.float32)]
    if kind == "counts":
        return [x, rng.poisson(2.0, size=(rows, cols)).astype(np.float32)]
    if kind == "gaussian":
        return [x, other, (rng.random((rows, cols), dtype=np.float32) + 0.5)]
    if kind == "distributions":
        logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
        target = np.exp(other) / np.exp(other).sum(-1, keepdims=True)
        return [logp.astype(np.float32), target.astype(np.float32)]
    if kind == "triplets":
        return [x, other, _harness.seeded((rows, cols), seed=5)]
    if kind == "pairs_signs":
        return [x, other, np.sign(rng.standard_normal(rows)).astype(np.float32)]
    raise ValueError(kind)


def _table(torch_f: Any) -> list[tuple[str, str, dict[str, Any], Callable | None, Callable]]:
    """(name, input kind, jaxfund kwargs, optax expression or None, torch expression)."""
    L = optax.losses
    return [
        ("cross_entropy", "logits_labels", {},
         lambda x, y: L.softmax_cross_entropy_with_integer_labels(x, y).mean(),
         lambda x, y: torch_f.cross_entropy(x, y)),
        ("nll_loss", "logprobs_labels", {}, None, lambda x, y: torch_f.nll_loss(x, y)),
        ("multi_margin_loss", "logits_labels", {}, None,
         lambda x, y: torch_f.multi_margin_loss(x, y)),
        ("mse_loss", "regression", {}, lambda x, y: L.squared_error(x, y).mean(),
         torch_f.mse_loss),
        ("l1_loss", "regression", {}, None, torch_f.l1_loss),
        ("huber_loss", "regression", {}, lambda x, y: L.huber_loss(x, y, delta=1.0).mean(),
         torch_f.huber_loss),
        ("smooth_l1_loss", "regression", {},
         lambda x, y: L.huber_loss(x, y, delta=1.0).mean(), torch_f.smooth_l1_loss),
        ("binary_cross_entropy_with_logits", "logits_probs", {},
         lambda x, y: L.sigmoid_binary_cross_entropy(x, y).mean(),
         torch_f.binary_cross_entropy_with_logits),
        ("binary_cross_entropy", "probs_probs", {}, None, torch_f.binary_cross_entropy),
        ("kl_div", "distributions", {"reduction": "batchmean"},
         lambda x, y: L.kl_divergence(x, y).mean(),
         lambda x, y: torch_f.kl_div(x, y, reduction="batchmean")),
        ("soft_margin_loss", "signs", {}, None, torch_f.soft_margin_loss),
        ("hinge_embedding_loss", "signs", {}, None, torch_f.hinge_embedding_loss),
        ("multilabel_soft_margin_loss", "binary", {}, None,
         torch_f.multilabel_soft_margin_loss),
        ("poisson_nll_loss", "counts", {}, None, torch_f.poisson_nll_loss),
        ("gaussian_nll_loss", "gaussian", {}, None, torch_f.gaussian_nll_loss),
        ("sigmoid_focal_loss", "binary", {"reduction": "mean"},
         lambda x, y: L.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0).mean(), None),
        ("triplet_margin_loss", "triplets", {},
         lambda a, p, n: L.triplet_margin_loss(a, p, n, margin=1.0, norm_degree=2,
                                               eps=1e-6).mean(),
         torch_f.triplet_margin_loss),
        ("cosine_embedding_loss", "pairs_signs", {}, None, torch_f.cosine_embedding_loss),
    ]


def _jax_fwd_bwd(f: Callable[..., jax.Array]) -> Callable[..., Any]:
    return jax.jit(jax.value_and_grad(f))


def _torch_fwd_bwd(f: Callable, args: list[Any]) -> Callable[[], None]:
    def run() -> None:
        args[0].grad = None
        f(*args).backward()

    return _harness.torch_waiting(run)


def run(config: _harness.Config, bandwidth: float) -> dict[str, Any]:
    """Benchmark every jaxfund loss in the table; return the suite's results."""
    import torch
    import torch.nn.functional as torch_f

    module, reason = _harness.available("losses")
    # As the activations: 16x the rows on an accelerator, so kernels rather than dispatch count.
    rows, cols = (64, 10) if config.quick else (
        8192 if jax.default_backend() == "cpu" else 131072, 1000)
    suite: dict[str, Any] = {"shape": [rows, cols], "dtype": "float32", "cases": []}
    if module is None:
        suite["skipped"] = reason
        return suite
    device = _harness.torch_device()
    for name, kind, kwargs, optax_ref, torch_ref in _table(torch_f):
        fn = getattr(module, name, None)
        if fn is None:
            continue
        arrays = _inputs(kind, rows, cols)
        jargs = [jnp.asarray(a) for a in arrays]
        targs = [torch.tensor(a, device=device) for a in arrays]
        if arrays[1].dtype == np.int32:
            targs[1] = targs[1].long()
        targs[0].requires_grad_(True)
        fns = {"jaxfund": _harness.jax_blocking(
            _jax_fwd_bwd(lambda *a, fn=fn, kw=kwargs: fn(*a, **kw)), *jargs)}
        if optax_ref is not None:
            fns["optax"] = _harness.jax_blocking(_jax_fwd_bwd(optax_ref), *jargs)
        if torch_ref is not None:
            fns["torch"] = _torch_fwd_bwd(torch_ref, targs)
        moved = sum(a.nbytes for a in arrays) + arrays[0].nbytes
        if name in _GATHERS:  # reads one input per row, not the whole first input
            moved -= arrays[0].nbytes - arrays[0].nbytes // arrays[0].shape[-1]
        times = _harness.interleaved(fns, config)
        row = _harness.summarise(name, times, moved, bandwidth)
        row["input_kind"] = kind
        suite["cases"].append(row)
    return suite
