"""Train steps: samples/s of one epoch and compile seconds, per implementation.

Three networks, all trained with Adam(lr=1e-3) on cross-entropy over logits:

* ``course``: the course exercise, MLP 20-50-2 (ReLU) on ``make_classification`` (800 train
  samples), batch 32, 25 steps per epoch.
* ``wide``: MLP 784-1024-1024-10 (ReLU) on random data, batch 256.
* ``cnn``: the CNN of ``scripts/train_cnn_linen.py`` (conv3x3 32 - BatchNorm - ReLU, conv3x3
  64 - BatchNorm - ReLU, 2x2 avg pool, dense 128 - ReLU - Dropout(0.3), dense 10) as a Flax
  linen module through ``models.from_linen``, on the 8x8x1 digits images, batch 64, 22 steps
  per epoch (the whole training split). ``--quick``: widths 8, 16 and 32, 2 steps.

Full runs take samples of at least ``MIN_SAMPLE_SECONDS`` (0.5 s): one CNN epoch (0.16 s) as a
sample gave fit / step ratios between 0.97 and 1.34 on a shared 2-core machine.

Implementations (each epoch runs over the same pre-batched, device-resident data):

* ``jaxfund step``: ``train.make_train_step(..., donate=True)`` called once per batch from
  Python (the plain per-step loop).
* ``jaxfund scan``: the same step (without donation) inside one jitted ``lax.scan`` over the
  epoch's batches, the state donated.
* ``jaxfund fit``: ``train.fit(..., loop="auto")`` itself (its own shuffle, its own choice of
  loop): each round is one ``fit`` call of enough epochs to last ``min_sample_seconds``, timed
  by the mean of its epochs' ``seconds`` after the first (its compilation excluded), so it runs
  interleaved with the others. ``fit_loop`` records the loop it chose.
* ``jaxfund scan+shuffle`` (MLPs, a diagnostic): the scan over the batches of a fresh
  permutation every epoch (NumPy, on the host), each batch gathered in the step, as ``fit``
  documents its epoch. ``fit_over_shuffled_scan`` (fit ÷ this) is fit's overhead beyond its shuffle.
* ``nnx.jit`` (MLPs): a Flax NNX model + ``nnx.Optimizer(optax.adam)`` under ``nnx.jit``.
* ``nnx split/merge`` (MLPs): the same NNX step as a pure function of ``nnx.split`` state under
  ``jax.jit`` with donation (the pattern the Flax performance guide recommends).
* ``torch``: PyTorch eager (``zero_grad``, forward, ``cross_entropy``, ``backward``,
  ``Adam.step``); for the CNN the same layers from ``torch.nn`` in NCHW, in training mode.
* ``torch.compile`` (MLPs): the torch step with the forward+loss and ``Adam.step`` compiled,
  where ``torch.compile`` works on the machine (otherwise the reason is recorded).

The loop rule. ``fit`` must cost at most 1.1x the faster of ``jaxfund step`` and ``jaxfund
scan``: each case records ``fit_over_best`` (median over rounds of fit / min(step, scan)).
``fit(loop="auto")`` runs one ``lax.scan`` per epoch, except for a train step with a convolution
on CPU, which it runs as one compiled call per step: XLA:CPU runs the convolution's kernel
gradient inside a while loop tens of times slower. A full run on a 2-core AMD EPYC VM (jax
0.10.2, CPU), ms per step:

    network                  step    scan    fit     fit's loop  fit / min(step, scan)
    course 20-50-2           0.0474  0.0185  0.0213  scan        1.16  (fit / scan+shuffle 0.99)
    wide 784-1024-1024-10    14.9    14.6    15.1    scan        1.00
    cnn conv32-conv64-128    6.69    202     6.76    step        0.98

The loop choice is right for all three (the CNN's scan is 30x slower than its step loop; the
course MLP's scan 2.6x faster than its step loop). On the course MLP, whose epoch of 25 tiny
steps lasts ~0.45 ms, ``jaxfund scan`` is a lower bound rather than the same work: it scans one
fixed, pre-batched order and fetches nothing, while ``fit`` draws a new shuffle every epoch and
returns the epoch's metrics. ``fit`` equals the scan that shuffles (``fit ÷ scan+shuffle``
0.99); the rest is ~50 us of per-epoch work, within this machine's run-to-run noise at this
scale (medians of 300 epochs of the bare scan ranged 350-470 us). The shuffle is drawn with
NumPy on the host while the previous epoch trains: ``jax.random.permutation`` of 800 indices
took ~90 us on XLA:CPU (a sort), and put fit at 1.97x. No GPU run yet (on a GPU ``auto``
always takes the scan).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _harness

FIT_TARGET = 1.1  # fit / min(step, scan) must not exceed this
MIN_SAMPLE_SECONDS = 0.5  # full runs: a CNN epoch lasts 0.16 s, too noisy as one sample


def _networks(quick: bool) -> list[dict[str, Any]]:
    wide_hidden = (64, 64) if quick else (1024, 1024)
    conv, dense = ((8, 16), 32) if quick else ((32, 64), 128)
    return [
        {"name": "course 20-50-2", "kind": "mlp", "features": 20, "hidden": (50,),
         "classes": 2, "batch": 32, "steps": 25, "data": "classification"},
        {"name": f"wide 784-{'-'.join(map(str, wide_hidden))}-10", "kind": "mlp",
         "features": 784, "hidden": wide_hidden, "classes": 10, "batch": 256,
         "steps": 2 if quick else 20, "data": "random"},
        {"name": f"cnn 8x8x1 conv{conv[0]}-conv{conv[1]}-{dense}-10 (BN, dropout)",
         "kind": "cnn", "conv": conv, "dense": dense, "classes": 10, "batch": 64,
         "steps": 2 if quick else 22, "data": "digits"},
    ]


def _data(net: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with ``steps * batch`` rows: the course data set, the digits images (NHWC) or
    random data."""
    rows = net["steps"] * net["batch"]
    if net["data"] in ("classification", "digits"):
        from jaxfund import data

        dataset = data.load(net["data"])
        x = dataset.x_train[:rows]
        if net["data"] == "digits":
            x = x.reshape(-1, 8, 8, 1)
        return x, dataset.y_train[:rows].astype(np.int32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, net["features"]), dtype=np.float32)
    return x, rng.integers(0, net["classes"], size=rows).astype(np.int32)


def _linen_cnn(net: dict[str, Any]) -> Any:
    """The CNN of ``scripts/train_cnn_linen.py`` (a linen module with BatchNorm and Dropout),
    with ``net``'s widths."""
    import flax.linen as nn

    class CNN(nn.Module):
        dropout: float = 0.3

        @nn.compact
        def __call__(self, x: jax.Array, train: bool) -> jax.Array:
            for features in net["conv"]:
                x = nn.Conv(features, (3, 3))(x)
                x = nn.BatchNorm(use_running_average=not train)(x)
                x = nn.relu(x)
            x = nn.avg_pool(x, (2, 2), strides=(2, 2)).reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(net["dense"])(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            return nn.Dense(net["classes"])(x)

    return CNN()


def _jaxfund_model(net: dict[str, Any], x: np.ndarray, tx: Any) -> tuple[Any, Callable]:
    """(apply_fn, fresh) where ``fresh()`` is a new initial TrainState in its own buffers."""
    from jaxfund import models, train

    if net["kind"] == "cnn":
        model = models.from_linen(_linen_cnn(net))
        # Run once: compiled unoptimised in 0.3 s (2 s optimised, 3 s eagerly on 2 cores).
        init = jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})
        params, model_state = init(jax.random.key(0), x[:1])
        initial = train.TrainState.create(params, tx, model_state)
        apply_fn = model
    else:
        mlp = models.MLP(net["features"], net["hidden"], net["classes"], "relu")
        initial = train.TrainState.create(mlp.init(jax.random.key(0)), tx)
        apply_fn = mlp.apply

    def fresh() -> Any:
        return jax.tree.map(lambda a: jnp.array(a, copy=True), initial)

    return apply_fn, fresh


def _jaxfund_impls(net: dict[str, Any], x: np.ndarray, y: np.ndarray,
                   config: _harness.Config) -> dict[str, Callable]:
    from jaxfund import optimizers, tasks, train

    tx = optimizers.adam(lr=1e-3)
    loss_fn = tasks.loss("multiclass")
    apply_fn, fresh = _jaxfund_model(net, x, tx)
    donated_step = train.make_train_step(apply_fn, loss_fn, tx, task="multiclass", donate=True)
    step = train.make_train_step(apply_fn, loss_fn, tx, task="multiclass")
    shape = (net["steps"], net["batch"])
    xs = jnp.asarray(x.reshape(*shape, *x.shape[1:]))
    ys = jnp.asarray(y.reshape(shape))
    x_list = [xs[i] for i in range(net["steps"])]
    y_list = [ys[i] for i in range(net["steps"])]

    live_step = {"state": fresh()}

    def per_step() -> None:
        state = live_step["state"]
        for xb, yb in zip(x_list, y_list):
            state, _ = donated_step(state, (xb, yb))
        live_step["state"] = jax.block_until_ready(state)

    scan_epoch = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)),
                         donate_argnums=0)
    live_scan = {"state": fresh()}

    def scanned() -> None:
        live_scan["state"], _ = jax.block_until_ready(scan_epoch(live_scan["state"], xs, ys))

    impls = {"jaxfund step": per_step, "jaxfund scan": scanned}
    if net["kind"] == "mlp":
        impls["jaxfund scan+shuffle"] = _shuffled_scan(step, fresh, x, y, net)

    last: dict[str, Any] = {}

    @_harness.self_timed
    def run_fit(epochs: int) -> float:
        result = train.fit(fresh(), (x, y), apply_fn=apply_fn, loss_fn=loss_fn, tx=tx,
                           task="multiclass", epochs=epochs, batch_size=net["batch"],
                           loop="auto")
        jax.block_until_ready(result.state)
        last["result"] = result
        return float(np.mean([entry["seconds"] for entry in result.history[1:]]))

    @_harness.self_timed
    def fit() -> float:
        """One ``fit`` call (it compiles its loop) of enough epochs for a sample; its mean epoch
        seconds after the first. The first call of a full run first sizes the sample."""
        if "epoch_s" not in last:
            last["epoch_s"] = run_fit(2) if config.min_sample_seconds > 0 else 1.0
        epochs = 1 + max(1, math.ceil(config.min_sample_seconds / max(last["epoch_s"], 1e-7)))
        last["epoch_s"] = run_fit(epochs)
        return last["epoch_s"]

    return {**impls, "jaxfund fit": fit, "_last_fit": lambda: last["result"]}


def _shuffled_scan(step: Callable, fresh: Callable, x: np.ndarray, y: np.ndarray,
                   net: dict[str, Any]) -> Callable[[], None]:
    """A diagnostic reference: the scan over the batches of a fresh permutation every epoch,
    written by hand as ``fit`` documents its epoch (``default_rng([seed, e]).permutation(n)``
    on the host, one gather per step). ``fit`` ÷ this is fit's own overhead; this ÷ ``jaxfund
    scan`` is the shuffle's cost."""
    shape = (net["steps"], net["batch"])
    data = (jnp.asarray(x), jnp.asarray(y))

    def epoch(state: Any, data: Any, order: jax.Array) -> Any:
        return jax.lax.scan(lambda s, index: step(s, jax.tree.map(lambda a: a[index], data)),
                            state, order)

    compiled = jax.jit(epoch, donate_argnums=0)
    live = {"state": fresh(), "epoch": 0}

    def shuffled() -> None:
        live["epoch"] += 1
        order = np.random.default_rng([0, live["epoch"]]).permutation(shape[0] * shape[1])
        live["state"], _ = jax.block_until_ready(
            compiled(live["state"], data, order.reshape(shape).astype(np.int32)))

    return shuffled


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


def _torch_model(net: dict[str, Any]) -> Any:
    """The torch network of ``net`` (in training mode), on the CPU."""
    import torch

    layers: list[Any] = []
    if net["kind"] == "cnn":
        channels = (1, *net["conv"])
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.BatchNorm2d(b),
                       torch.nn.ReLU()]
        layers += [torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                   torch.nn.Linear(channels[-1] * 4 * 4, net["dense"]), torch.nn.ReLU(),
                   torch.nn.Dropout(0.3), torch.nn.Linear(net["dense"], net["classes"])]
    else:
        sizes = (net["features"], *net["hidden"], net["classes"])
        for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if index:
                layers.append(torch.nn.ReLU())
            layers.append(torch.nn.Linear(a, b))
    return torch.nn.Sequential(*layers)


def _torch_impls(net: dict[str, Any], x: np.ndarray, y: np.ndarray,
                 compile_: bool) -> dict[str, Callable]:
    import torch
    import torch.nn.functional as torch_f

    device = _harness.torch_device()

    def build() -> tuple[Any, Any]:
        torch.manual_seed(0)
        model = _torch_model(net).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    shape = (net["steps"], net["batch"])
    xs = torch.tensor(x.reshape(*shape, *x.shape[1:]), device=device)
    if net["kind"] == "cnn":  # NHWC -> NCHW
        xs = xs.permute(0, 1, 4, 2, 3).contiguous()
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
    if compile_ and net["kind"] == "mlp":
        model_c, optimizer_c = build()
        forward_loss = torch.compile(lambda xb, yb: torch_f.cross_entropy(model_c(xb), yb))
        impls["torch.compile"] = epoch_fn(forward_loss, torch.compile(optimizer_c.step),
                                          optimizer_c)
    return impls


def _first_call(fn: Callable[[], Any]) -> tuple[float | None, str | None]:
    """Seconds of the first call (compilation included), or the reason it failed."""
    start = time.perf_counter()
    try:
        fn()
    except Exception as error:  # e.g. torch.compile without a working C++ toolchain
        return None, f"{type(error).__name__}: {error}"[:300]
    return time.perf_counter() - start, None


def _fit_over_best(times: dict[str, dict[str, Any]]) -> float:
    """Median over rounds of fit / min(step, scan) in the same round."""
    step, scan = times["jaxfund step"], times["jaxfund scan"]
    best = {"median_s": min(step["median_s"], scan["median_s"]),
            "rounds": [min(a, b) for a, b in zip(step["rounds"], scan["rounds"])]}
    return _harness.paired_ratio(times["jaxfund fit"], best)


def run(config: _harness.Config, torch_compile: bool = True) -> dict[str, Any]:
    """Benchmark the train steps of every network; return the suite's results."""
    suite: dict[str, Any] = {
        "optimizer": "Adam(lr=1e-3)",
        "fit_target": FIT_TARGET,
        "fit_rule": "fit(loop='auto') time / min(jaxfund step, jaxfund scan) <= fit_target",
        "cases": [],
    }
    for module in ("models", "optimizers", "train", "data"):
        _, reason = _harness.available(module)
        if reason is not None:
            suite["skipped"] = reason
            return suite
    if not config.quick:
        config = dataclasses.replace(config, min_sample_seconds=max(config.min_sample_seconds,
                                                                    MIN_SAMPLE_SECONDS))
    suite["min_sample_seconds"] = config.min_sample_seconds
    for net in _networks(config.quick):
        x, y = _data(net)
        samples = net["steps"] * net["batch"]
        jaxfund_impls = _jaxfund_impls(net, x, y, config)
        last_fit = jaxfund_impls.pop("_last_fit")
        candidates = {**jaxfund_impls,
                      **(_nnx_impls(net, x, y) if net["kind"] == "mlp" else {}),
                      **_torch_impls(net, x, y, torch_compile)}
        first, failed = {}, {}
        for name, fn in candidates.items():
            if getattr(fn, "self_timed", False):  # fit: compiles on every call, times itself
                continue
            seconds, reason = _first_call(fn)
            if reason is None:
                first[name] = seconds
            else:
                failed[name] = reason
        fns = {name: fn for name, fn in candidates.items() if name not in failed}
        times = _harness.interleaved(fns, config)
        compile_s = {name: max(first[name] - times[name]["median_s"], 0.0) for name in first}
        fit_result = last_fit()
        compile_s["jaxfund fit"] = fit_result.compile_seconds
        steps = net["steps"]
        ms_per_step = {name: t["median_s"] / steps * 1e3 for name, t in times.items()}
        fit_over_best = _fit_over_best(times)
        shuffled = times.get("jaxfund scan+shuffle")
        fit_over_shuffled = (_harness.paired_ratio(times["jaxfund fit"], shuffled)
                             if shuffled else None)
        _harness.progress(
            f"  {net['name']}: ms/step step {ms_per_step['jaxfund step']:.3g}, scan "
            f"{ms_per_step['jaxfund scan']:.3g}, fit {ms_per_step['jaxfund fit']:.3g} "
            f"({fit_result.loop} loop), fit/min(step, scan) {fit_over_best:.2f}; torch "
            f"{ms_per_step['torch']:.3g}")
        suite["cases"].append({
            "case": net["name"],
            "batch": net["batch"],
            "steps_per_epoch": steps,
            "samples_per_epoch": samples,
            "times": times,
            "ms_per_step": ms_per_step,
            "samples_per_s": {name: samples / t["median_s"] for name, t in times.items()},
            "compile_s": compile_s,
            "fit_loop": fit_result.loop,
            "fit_over_best": fit_over_best,
            "fit_over_shuffled_scan": fit_over_shuffled,
            "ratios": {f"{name}/torch": _harness.paired_ratio(t, times["torch"])
                       for name, t in times.items() if name != "torch"},
            "speedup_vs_torch": {name: 1.0 / _harness.paired_ratio(t, times["torch"])
                                 for name, t in times.items() if name != "torch"},
            "failed": failed,
        })
    return suite
