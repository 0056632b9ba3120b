"""Train steps: samples/s of one epoch and compile seconds, per implementation.

Two networks, both trained with Adam(lr=1e-3) on cross-entropy over logits:

* ``course``: the course exercise, MLP 20-50-2 (ReLU) on ``make_classification`` (800 train
  samples), batch 32, 25 steps per epoch.
* ``wide``: MLP 784-1024-1024-10 (ReLU) on random data, batch 256.

Implementations (each epoch runs over the same pre-batched, device-resident data):

* ``jaxfund step``: ``train.make_train_step`` called once per batch from Python.
* ``jaxfund scan``: the same step inside one jitted ``lax.scan`` over the epoch's batches.
* ``jaxfund fit``: ``train.fit`` itself (its own shuffle and scan); timed from its history,
  after the others, so its row is not interleaved.
* ``nnx.jit``: a Flax NNX model + ``nnx.Optimizer(optax.adam)`` under ``nnx.jit``.
* ``nnx split/merge``: the same NNX step as a pure function of ``nnx.split`` state under
  ``jax.jit`` with donation (the pattern the Flax performance guide recommends).
* ``torch``: PyTorch eager (``zero_grad``, forward, ``cross_entropy``, ``backward``,
  ``Adam.step``).
* ``torch.compile``: the torch step with the forward+loss and ``Adam.step`` compiled, where
  ``torch.compile`` works on the machine (otherwise the reason is recorded).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _harness


def _networks(quick: bool) -> list[dict[str, Any]]:
    wide_hidden = (64, 64) if quick else (1024, 1024)
    return [
        {"name": "course 20-50-2", "features": 20, "hidden": (50,), "classes": 2,
         "batch": 32, "steps": 25, "data": "classification"},
        {"name": f"wide 784-{'-'.join(map(str, wide_hidden))}-10", "features": 784,
         "hidden": wide_hidden, "classes": 10, "batch": 256, "steps": 2 if quick else 20,
         "data": "random"},
    ]


def _data(net: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with ``steps * batch`` rows: the course data set, or random data."""
    rows = net["steps"] * net["batch"]
    if net["data"] == "classification":
        from jaxfund import data

        dataset = data.load("classification")
        return dataset.x_train[:rows], dataset.y_train[:rows].astype(np.int32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, net["features"]), dtype=np.float32)
    return x, rng.integers(0, net["classes"], size=rows).astype(np.int32)


def _jaxfund_impls(net: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    from jaxfund import models, optimizers, tasks, train

    model = models.MLP(net["features"], net["hidden"], net["classes"], "relu")
    tx = optimizers.adam(lr=1e-3)
    loss_fn = tasks.loss("multiclass")
    step = train.make_train_step(model.apply, loss_fn, tx, task="multiclass")
    shape = (net["steps"], net["batch"])
    xs = jnp.asarray(x.reshape(*shape, -1))
    ys = jnp.asarray(y.reshape(shape))
    x_list = [xs[i] for i in range(net["steps"])]
    y_list = [ys[i] for i in range(net["steps"])]

    def fresh() -> Any:
        return train.TrainState.create(model.init(jax.random.key(0)), tx)

    live_step = {"state": fresh()}

    def per_step() -> None:
        state = live_step["state"]
        for xb, yb in zip(x_list, y_list):
            state, _ = step(state, (xb, yb))
        live_step["state"] = jax.block_until_ready(state)

    scan_epoch = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)),
                         donate_argnums=0)
    live_scan = {"state": fresh()}

    def scanned() -> None:
        live_scan["state"], _ = jax.block_until_ready(scan_epoch(live_scan["state"], xs, ys))

    def fit(epochs: int) -> Any:
        return train.fit(fresh(), (x, y), apply_fn=model.apply, loss_fn=loss_fn, tx=tx,
                         task="multiclass", epochs=epochs, batch_size=net["batch"])

    return {"jaxfund step": per_step, "jaxfund scan": scanned, "_fit": fit}


def _nnx_impls(net: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    from flax import nnx

    sizes = (net["features"], *net["hidden"], net["classes"])

    def build() -> tuple[Any, Any]:
        rngs = nnx.Rngs(0)
        layers: list[Any] = []
        for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if index:
                layers.append(nnx.relu)
            layers.append(nnx.Linear(a, b, rngs=rngs))
        model = nnx.Sequential(*layers)
        return model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    def loss_of(model: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return optax.losses.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()

    @nnx.jit
    def nnx_step(model: Any, optimizer: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(loss_of)(model, xb, yb)
        optimizer.update(model, grads)
        return loss

    shape = (net["steps"], net["batch"])
    xs = jnp.asarray(x.reshape(*shape, -1))
    ys = jnp.asarray(y.reshape(shape))
    x_list = [xs[i] for i in range(net["steps"])]
    y_list = [ys[i] for i in range(net["steps"])]
    model, optimizer = build()

    def with_nnx_jit() -> None:
        for xb, yb in zip(x_list, y_list):
            loss = nnx_step(model, optimizer, xb, yb)
        jax.block_until_ready((loss, nnx.state(model)))

    graphdef, state = nnx.split(build())

    def pure_step(state: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, jax.Array]:
        model_, optimizer_ = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_of)(model_, xb, yb)
        optimizer_.update(model_, grads)
        return nnx.state((model_, optimizer_)), loss

    split_step = jax.jit(pure_step, donate_argnums=0)
    live = {"state": state}

    def with_split_merge() -> None:
        state_ = live["state"]
        for xb, yb in zip(x_list, y_list):
            state_, _ = split_step(state_, xb, yb)
        live["state"] = jax.block_until_ready(state_)

    return {"nnx.jit": with_nnx_jit, "nnx split/merge": with_split_merge}


def _torch_impls(net: dict[str, Any], x: np.ndarray, y: np.ndarray,
                 compile_: bool) -> dict[str, Callable]:
    import torch
    import torch.nn.functional as torch_f

    device = _harness.torch_device()
    sizes = (net["features"], *net["hidden"], net["classes"])

    def build() -> tuple[Any, Any]:
        torch.manual_seed(0)
        layers: list[Any] = []
        for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if index:
                layers.append(torch.nn.ReLU())
            layers.append(torch.nn.Linear(a, b))
        model = torch.nn.Sequential(*layers).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    shape = (net["steps"], net["batch"])
    xs = torch.tensor(x.reshape(*shape, -1), device=device)
    ys = torch.tensor(y.reshape(shape), device=device).long()
    batches = [(xs[i], ys[i]) for i in range(net["steps"])]

    def epoch_fn(forward_loss: Callable, step: Callable, optimizer: Any) -> Callable[[], None]:
        def epoch() -> None:
            for xb, yb in batches:
                optimizer.zero_grad()
                forward_loss(xb, yb).backward()
                step()
            _harness.torch_sync()

        return epoch

    model, optimizer = build()
    impls = {"torch": epoch_fn(lambda xb, yb: torch_f.cross_entropy(model(xb), yb),
                               optimizer.step, optimizer)}
    if compile_:
        model_c, optimizer_c = build()
        forward_loss = torch.compile(lambda xb, yb: torch_f.cross_entropy(model_c(xb), yb))
        impls["torch.compile"] = epoch_fn(forward_loss, torch.compile(optimizer_c.step),
                                          optimizer_c)
    return impls


def _first_call(fn: Callable[[], None]) -> tuple[float | None, str | None]:
    """Seconds of the first call (compilation included), or the reason it failed."""
    start = time.perf_counter()
    try:
        fn()
    except Exception as error:  # e.g. torch.compile without a working C++ toolchain
        return None, f"{type(error).__name__}: {error}"[:300]
    return time.perf_counter() - start, None


def run(config: _harness.Config, torch_compile: bool = True) -> dict[str, Any]:
    """Benchmark the train steps of both networks; return the suite's results."""
    suite: dict[str, Any] = {"optimizer": "Adam(lr=1e-3)", "cases": []}
    for module in ("models", "optimizers", "train", "data"):
        _, reason = _harness.available(module)
        if reason is not None:
            suite["skipped"] = reason
            return suite
    for net in _networks(config.quick):
        x, y = _data(net)
        samples = net["steps"] * net["batch"]
        jaxfund_impls = _jaxfund_impls(net, x, y)
        fit = jaxfund_impls.pop("_fit")
        candidates = {**jaxfund_impls, **_nnx_impls(net, x, y),
                      **_torch_impls(net, x, y, torch_compile)}
        first, failed = {}, {}
        for name, fn in candidates.items():
            seconds, reason = _first_call(fn)
            if reason is None:
                first[name] = seconds
            else:
                failed[name] = reason
        fns = {name: fn for name, fn in candidates.items() if name in first}
        times = _harness.interleaved(fns, config)
        fit_epochs = 2 if config.quick else 2 + config.repeats
        fit_result = fit(fit_epochs)
        fit_epoch = float(np.median([entry["seconds"] for entry in fit_result.history[1:]]))
        times["jaxfund fit"] = {"median_s": fit_epoch, "min_s": fit_epoch,
                                "samples": fit_epochs - 1, "calls_per_sample": 1,
                                "interleaved": False}
        first["jaxfund fit"] = fit_result.compile_seconds + fit_result.history[0]["seconds"]
        _harness.progress(f"  {net['name']}: " + ", ".join(
            f"{name} {samples / t['median_s']:,.0f}/s" for name, t in times.items()))
        suite["cases"].append({
            "case": net["name"],
            "batch": net["batch"],
            "steps_per_epoch": net["steps"],
            "samples_per_epoch": samples,
            "times": times,
            "samples_per_s": {name: samples / t["median_s"] for name, t in times.items()},
            "compile_s": {name: max(first[name] - times[name]["median_s"], 0.0)
                          for name in times},
            "ratios": {f"{name}/torch": _harness.paired_ratio(t, times["torch"])
                       for name, t in times.items() if name != "torch"},
            "speedup_vs_torch": {name: 1.0 / _harness.paired_ratio(t, times["torch"])
                                 for name, t in times.items() if name != "torch"},
            "failed": failed,
        })
    return suite
