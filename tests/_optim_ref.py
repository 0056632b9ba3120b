"""Reference runs for the optimizer tests: torch.optim and optax trajectories on shared inputs.

``ROWS`` is the table of configurations: one row per optimizer/option with the jaxfund call,
the torch.optim constructor (None where torch has no such optimizer), optax's closest
configuration and whether that optax configuration is exactly the same algorithm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxfund import optimizers as O

SHAPES = {"a": (7, 5), "b": (3,), "c": (2, 3, 4), "d": ()}
STEPS = 100
LR = 1e-2


def make_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def make_grads(seed: int = 1, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Gradients with a leading step axis: N(0,1), one all-zero step (20), one exact zero
    element, then x100 (steps 40-69) and x0.01 (70-)."""
    rng = np.random.default_rng(seed)
    scale = np.ones(steps)
    scale[40:70] = 100.0
    scale[70:] = 0.01
    scale[20] = 0.0
    grads = {}
    for k, s in SHAPES.items():
        g = rng.standard_normal((steps, *s)) * scale.reshape((steps,) + (1,) * len(s))
        grads[k] = g
    grads["a"][:, 0, 0] = 0.0
    return grads


@contextlib.contextmanager
def precision(dtype: str):
    """float64: jax x64 + torch default dtype float64 (restored afterwards)."""
    if dtype == "float32":
        yield
        return
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        torch.set_default_dtype(old)


def torch_dtype(dtype: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def run_torch(make_opt: Callable, params: dict, grads: dict, dtype: str,
              schedule: Callable[[int], float] | None = None, base_lr: float = LR,
              groups: Callable | None = None) -> tuple[np.ndarray, Any]:
    """Trajectory (steps, n_params) of torch.optim on precomputed gradients.

    ``schedule(e)`` is the lr at 0-based step ``e`` (LambdaLR stepped after every step);
    ``groups(named_tensors)`` optionally builds torch param groups.
    """
    keys = sorted(params)
    tensors = {k: torch.tensor(params[k], dtype=torch_dtype(dtype), requires_grad=True)
               for k in keys}
    opt = make_opt(groups(tensors) if groups else [tensors[k] for k in keys])
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, lambda e: schedule(e) / base_lr)
             if schedule else None)
    steps = next(iter(grads.values())).shape[0]
    traj = np.empty((steps, sum(int(np.prod(SHAPES[k])) for k in keys)))
    for t in range(steps):
        for k in keys:
            tensors[k].grad = torch.tensor(grads[k][t], dtype=torch_dtype(dtype))
        opt.step()
        if sched:
            sched.step()
        traj[t] = np.concatenate([tensors[k].detach().double().numpy().ravel() for k in keys])
    return traj, (opt, tensors)


def run_jax(opt: optax.GradientTransformation, params: dict, grads: dict, dtype: str,
            ) -> tuple[np.ndarray, Any]:
    """Trajectory (steps, n_params) of an optax transformation, 100 steps in one lax.scan."""
    p0 = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    gs = {k: jnp.asarray(v, dtype) for k, v in grads.items()}

    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), jnp.concatenate([p[k].ravel() for k in sorted(p)])

    @jax.jit
    def run(p, g):
        (_, s), traj = jax.lax.scan(body, (p, opt.init(p)), g)
        return traj, s

    traj, state = run(p0, gs)
    return np.asarray(traj, np.float64), state


def max_rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max over steps and elements of ``|a - ref| / (1 + max_t |ref|)`` (per element).

    Params start ~N(0,1); the scale is the largest magnitude an element reaches, so rounding
    made while it was large is not blown up when it later passes near zero.
    """
    scale = 1.0 + np.max(np.abs(ref), axis=0)
    return float(np.max(np.abs(a - ref) / scale))


def torch_schedule(schedule: Callable) -> Callable[[int], float]:
    """The same learning rates for torch's LambdaLR: the schedule at an int32 count."""
    return lambda e: float(schedule(jnp.int32(e)))


@dataclass
class Row:
    id: str
    name: str
    kwargs: dict
    torch: Callable | None
    optax: Callable[[], optax.GradientTransformation] | None
    optax_exact: bool = False
    schedule: bool = False
    tags: tuple = field(default_factory=tuple)

    def jaxfund(self) -> optax.GradientTransformation:
        return O.get(self.name)(**self.kwargs)


def _neg(tx):
    return optax.chain(optax.scale(-1.0), tx)


def _wd(wd, tx):
    return optax.chain(optax.add_decayed_weights(wd), tx)


def warmup_cosine(lr: float = LR) -> Callable:
    """optax's warmup-cosine schedule, evaluated at a count cast to the default float dtype.

    With an int32 count optax computes it in float32 even under x64, and jit/eager differ by
    an ulp there, which would cap the float64 comparisons at ~1e-9.
    """
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=10, decay_steps=STEPS,
                                               end_value=lr / 10)
    return lambda count: sched(jnp.asarray(count, jnp.result_type(float)))


T = torch.optim
ROWS = [
    Row("sgd", "sgd", {"lr": LR}, lambda p: T.SGD(p, lr=LR), lambda: optax.sgd(LR), True),
    Row("sgd_momentum", "sgd", {"lr": LR, "momentum": 0.9},
        lambda p: T.SGD(p, lr=LR, momentum=0.9), lambda: optax.sgd(LR, 0.9), True),
    Row("sgd_nesterov_wd", "sgd", {"lr": LR, "momentum": 0.9, "nesterov": True,
                                   "weight_decay": 1e-2},
        lambda p: T.SGD(p, lr=LR, momentum=0.9, nesterov=True, weight_decay=1e-2),
        lambda: _wd(1e-2, optax.sgd(LR, 0.9, nesterov=True)), True),
    Row("sgd_maximize", "sgd", {"lr": LR, "momentum": 0.5, "weight_decay": 1e-3,
                                "maximize": True},
        lambda p: T.SGD(p, lr=LR, momentum=0.5, weight_decay=1e-3, maximize=True),
        lambda: _neg(_wd(1e-3, optax.sgd(LR, 0.5))), True),
    Row("sgd_dampening", "sgd", {"lr": LR, "momentum": 0.9, "dampening": 0.3},
        lambda p: T.SGD(p, lr=LR, momentum=0.9, dampening=0.3),
        lambda: optax.chain(optax.scale(0.7), optax.sgd(LR, 0.9))),
    Row("sgd_schedule", "sgd", {"lr": warmup_cosine(), "momentum": 0.9},
        lambda p: T.SGD(p, lr=LR, momentum=0.9), lambda: optax.sgd(warmup_cosine(), 0.9), True,
        schedule=True),
    Row("adam", "adam", {"lr": LR}, lambda p: T.Adam(p, lr=LR), lambda: optax.adam(LR), True),
    Row("adam_wd", "adam", {"lr": LR, "weight_decay": 1e-2},
        lambda p: T.Adam(p, lr=LR, weight_decay=1e-2), lambda: _wd(1e-2, optax.adam(LR)), True),
    Row("adam_maximize", "adam", {"lr": LR, "betas": (0.8, 0.99), "eps": 1e-6,
                                  "maximize": True},
        lambda p: T.Adam(p, lr=LR, betas=(0.8, 0.99), eps=1e-6, maximize=True),
        lambda: _neg(optax.adam(LR, 0.8, 0.99, 1e-6)), True),
    Row("adam_amsgrad", "adam", {"lr": LR, "amsgrad": True},
        lambda p: T.Adam(p, lr=LR, amsgrad=True), lambda: optax.amsgrad(LR)),
    Row("adam_decoupled", "adam", {"lr": LR, "weight_decay": 0.1, "decoupled_weight_decay": True},
        lambda p: T.Adam(p, lr=LR, weight_decay=0.1, decoupled_weight_decay=True),
        lambda: optax.adamw(LR, weight_decay=0.1), True),
    Row("adam_schedule", "adam", {"lr": warmup_cosine()}, lambda p: T.Adam(p, lr=LR),
        lambda: optax.adam(warmup_cosine()), True, schedule=True),
    Row("adamw", "adamw", {"lr": LR}, lambda p: T.AdamW(p, lr=LR),
        lambda: optax.adamw(LR, weight_decay=1e-2), True),
    Row("adamw_amsgrad", "adamw", {"lr": LR, "weight_decay": 0.1, "amsgrad": True},
        lambda p: T.AdamW(p, lr=LR, weight_decay=0.1, amsgrad=True),
        lambda: optax.chain(optax.scale_by_amsgrad(), optax.add_decayed_weights(0.1),
                            optax.scale_by_learning_rate(LR))),
    Row("nadam", "nadam", {"lr": LR}, lambda p: T.NAdam(p, lr=LR), lambda: optax.nadam(LR)),
    Row("nadam_wd", "nadam", {"lr": LR, "weight_decay": 1e-2, "maximize": True},
        lambda p: T.NAdam(p, lr=LR, weight_decay=1e-2, maximize=True),
        lambda: _neg(_wd(1e-2, optax.nadam(LR)))),
    Row("nadam_flat", "nadam", {"lr": LR, "momentum_decay": 1e12},
        lambda p: T.NAdam(p, lr=LR, momentum_decay=1e12), lambda: optax.nadam(LR), True),
    Row("nadam_decoupled", "nadam", {"lr": LR, "momentum_decay": 1e12, "weight_decay": 0.1,
                                     "decoupled_weight_decay": True},
        lambda p: T.NAdam(p, lr=LR, momentum_decay=1e12, weight_decay=0.1,
                          decoupled_weight_decay=True),
        lambda: optax.nadamw(LR, weight_decay=0.1), True),
    Row("radam", "radam", {"lr": LR}, lambda p: T.RAdam(p, lr=LR), lambda: optax.radam(LR)),
    Row("radam_eps_decoupled", "radam", {"lr": LR, "eps": 1e-3, "weight_decay": 0.1,
                                         "decoupled_weight_decay": True},
        lambda p: T.RAdam(p, lr=LR, eps=1e-3, weight_decay=0.1, decoupled_weight_decay=True),
        lambda: optax.chain(optax.scale_by_radam(eps=1e-3), optax.add_decayed_weights(0.1),
                            optax.scale_by_learning_rate(LR))),
    Row("radam_wd_maximize", "radam", {"lr": LR, "weight_decay": 1e-2, "maximize": True},
        lambda p: T.RAdam(p, lr=LR, weight_decay=1e-2, maximize=True),
        lambda: _neg(_wd(1e-2, optax.radam(LR)))),
    Row("rmsprop", "rmsprop", {"lr": LR}, lambda p: T.RMSprop(p, lr=LR),
        lambda: optax.rmsprop(LR, decay=0.99, eps=1e-8, eps_in_sqrt=False), True),
    Row("rmsprop_centered_momentum_wd", "rmsprop",
        {"lr": LR, "centered": True, "momentum": 0.9, "weight_decay": 1e-2},
        lambda p: T.RMSprop(p, lr=LR, centered=True, momentum=0.9, weight_decay=1e-2),
        lambda: _wd(1e-2, optax.rmsprop(LR, decay=0.99, eps=1e-8, eps_in_sqrt=False,
                                         centered=True, momentum=0.9)), True),
    Row("rmsprop_maximize", "rmsprop", {"lr": LR, "alpha": 0.9, "eps": 1e-4, "maximize": True},
        lambda p: T.RMSprop(p, lr=LR, alpha=0.9, eps=1e-4, maximize=True),
        lambda: _neg(optax.rmsprop(LR, decay=0.9, eps=1e-4, eps_in_sqrt=False)), True),
    Row("rmsprop_schedule_momentum", "rmsprop", {"lr": warmup_cosine(), "momentum": 0.9},
        lambda p: T.RMSprop(p, lr=LR, momentum=0.9),
        lambda: optax.rmsprop(warmup_cosine(), decay=0.99, eps=1e-8, eps_in_sqrt=False,
                              momentum=0.9), schedule=True),
    Row("adagrad", "adagrad", {"lr": LR}, lambda p: T.Adagrad(p, lr=LR),
        lambda: optax.adagrad(LR, initial_accumulator_value=0.0, eps=0.0)),
    Row("adagrad_options", "adagrad", {"lr": LR, "lr_decay": 1e-2, "weight_decay": 1e-2,
                                       "initial_accumulator_value": 0.1, "eps": 1e-3},
        lambda p: T.Adagrad(p, lr=LR, lr_decay=1e-2, weight_decay=1e-2,
                            initial_accumulator_value=0.1, eps=1e-3),
        lambda: _wd(1e-2, optax.adagrad(lambda c: LR / (1 + c * 1e-2),
                                         initial_accumulator_value=0.1, eps=1e-3))),
    Row("adagrad_maximize", "adagrad", {"lr": LR, "maximize": True},
        lambda p: T.Adagrad(p, lr=LR, maximize=True),
        lambda: _neg(optax.adagrad(LR, initial_accumulator_value=0.0, eps=0.0))),
    Row("adamax", "adamax", {"lr": LR}, lambda p: T.Adamax(p, lr=LR),
        lambda: optax.adamax(LR), True),
    Row("adamax_wd_maximize", "adamax", {"lr": LR, "betas": (0.8, 0.9), "weight_decay": 1e-2,
                                         "maximize": True},
        lambda p: T.Adamax(p, lr=LR, betas=(0.8, 0.9), weight_decay=1e-2, maximize=True),
        lambda: _neg(_wd(1e-2, optax.adamax(LR, 0.8, 0.9))), True),
    Row("adadelta", "adadelta", {}, lambda p: T.Adadelta(p), lambda: optax.adadelta(1.0), True),
    Row("adadelta_options", "adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5,
                                         "weight_decay": 1e-2, "maximize": True},
        lambda p: T.Adadelta(p, lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2, maximize=True),
        lambda: _neg(optax.adadelta(0.5, 0.8, 1e-5, weight_decay=1e-2)), True),
    Row("rprop", "rprop", {"lr": LR}, lambda p: T.Rprop(p, lr=LR), None),
    Row("rprop_options", "rprop", {"lr": LR, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.05),
                                   "maximize": True},
        lambda p: T.Rprop(p, lr=LR, etas=(0.3, 1.5), step_sizes=(1e-4, 0.05), maximize=True),
        None),
    Row("asgd", "asgd", {"lr": LR}, lambda p: T.ASGD(p, lr=LR), None),
    Row("asgd_options", "asgd", {"lr": LR, "lambd": 1e-2, "alpha": 0.5, "t0": 10.0,
                                 "weight_decay": 1e-2, "maximize": True},
        lambda p: T.ASGD(p, lr=LR, lambd=1e-2, alpha=0.5, t0=10.0, weight_decay=1e-2,
                         maximize=True), None),
    Row("adafactor", "adafactor", {"lr": LR}, lambda p: T.Adafactor(p, lr=LR),
        lambda: optax.adafactor(LR, min_dim_size_to_factor=1)),
    Row("adafactor_options", "adafactor", {"lr": LR, "beta2_decay": -0.5, "eps": (1e-20, 1e-2),
                                           "d": 2.0, "weight_decay": 0.1, "maximize": True},
        lambda p: T.Adafactor(p, lr=LR, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0,
                              weight_decay=0.1, maximize=True),
        lambda: _neg(optax.adafactor(LR, min_dim_size_to_factor=1, weight_decay_rate=0.1))),
    Row("lion", "lion", {"lr": 1e-3}, None, lambda: optax.lion(1e-3), True),
    Row("lion_options", "lion", {"lr": 1e-3, "betas": (0.8, 0.9), "weight_decay": 0.1},
        None, lambda: optax.lion(1e-3, 0.8, 0.9, weight_decay=0.1), True),
    Row("lamb", "lamb", {"lr": LR}, None, lambda: optax.lamb(LR), True),
    Row("lamb_wd", "lamb", {"lr": LR, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1},
        None, lambda: optax.lamb(LR, 0.8, 0.99, 1e-8, weight_decay=0.1), True),
]
BY_ID = {r.id: r for r in ROWS}
