"""torch.optim.lr_scheduler as optax schedules.

Every torch learning-rate scheduler is a function here, named as the snake_case of the class, with
torch's argument names and defaults and the optimizer's initial learning rate ``lr`` first. It
returns an optax schedule ``count -> lr`` whose value at ``count = t`` is torch's
``scheduler.get_last_lr()[0]`` after ``t`` calls of ``scheduler.step()`` (``t = 0`` is the lr
right after construction)::

    sched = schedules.cosine_annealing_lr(0.1, T_max=100)
    opt = optimizers.sgd(lr=sched, momentum=0.9)   # opt.update at count t uses sched(t)

equals torch's ``opt = SGD(params, lr=0.1, momentum=0.9)``,
``sched = CosineAnnealingLR(opt, T_max=100)`` with ``opt.step(); sched.step()`` per iteration.
A scheduler torch steps once per epoch becomes an update-count schedule with :func:`per_epoch`.
Every schedule is a closed form in ``count`` (no per-step Python, no loop over ``count``) except
:func:`multiplicative_lr`, whose arbitrary ``lr_lambda`` has no closed-form product: it runs a
``lax.fori_loop`` of ``count`` iterations. All work under ``jit`` with an int32 ``count``.

Recursive forms. torch steps most schedulers recursively (the new lr is computed from the
optimizer's current lr); in exact arithmetic that equals the closed form, so each schedule here is
the closed form computed accurately: powers ``gamma**t`` as a product of three ``exp`` of exactly
split exponents, ``(1 + cos x) / 2`` as ``sin(...)**2`` of an exact integer remainder, ``1 - t/T``
as ``(T - t) / T``. Values are within a few ulps of the exact ones in float32 and float64. Where
torch's float64 recursion itself rounds (notably ``CosineAnnealingLR`` with ``eta_min > 0``: the
``+ eta_min`` rounding near the minimum is amplified by up to ``~T_max**2`` in the following
steps), our value differs from torch's by torch's own rounding error, bounded by
``eps64 * (4 lr + eta_min * T_max**2)``. Where torch's recursion differs from its closed form for
real, we follow the recursion (what torch returns): ``constant_lr``/``linear_lr`` with
``total_iters=0`` keep ``factor``/``start_factor`` forever, ``polynomial_lr`` with
``total_iters=0`` keeps ``lr``.

Composition. :func:`sequential_lr` and :func:`chained_scheduler` take schedules built by this
module, built with the same ``lr`` (in torch they share one optimizer). Each such schedule is a
:class:`Schedule`, which records how torch's ``step()`` acts on the optimizer's current lr:
``factor``/``step_factor`` for schedulers whose step multiplies the current lr (``value = lr *
factor(t)``, step ``t`` multiplies by ``step_factor(t) = factor(t) / factor(t - 1)``),
``overwrites`` for those that set the lr from the base lr regardless of the current one, and
``restarts`` for those that SequentialLR restarts from ``lr`` at their milestone.

Momentum. ``CyclicLR`` and ``OneCycleLR`` also cycle the optimizer's momentum (beta1) when
``cycle_momentum=True``; these schedules are the learning rate only.

Negative learning rates are refused where the arguments would produce one (``eta_min < 0``,
``gamma < 0``, ...); a callable (``lr_lambda``, ``scale_fn``) is the caller's responsibility.

Nearest optax schedules, measured in ``tests/test_schedules.py`` (1200 steps, float64):
``optax.exponential_decay(lr, 1, gamma)`` equals :func:`exponential_lr` in float64 (in float32
its ``gamma**t`` loses ``|t log gamma|`` ulps: 1.2e-5 relative by ``t = 1200``, ``gamma = 0.99``,
where ours stays within 2e-7);
``optax.exponential_decay(lr, step_size, gamma, staircase=True)`` equals :func:`step_lr`;
``optax.piecewise_constant_schedule(lr, {m: gamma})`` equals :func:`multi_step_lr`;
``optax.linear_schedule(start_factor * lr, end_factor * lr, total_iters)`` equals
:func:`linear_lr`; ``optax.polynomial_schedule(lr, 0, power, total_iters)`` equals
:func:`polynomial_lr`; ``optax.cosine_decay_schedule(lr, T_max, eta_min / lr)`` equals
:func:`cosine_annealing_lr` up to ``T_max`` and then stays at ``eta_min`` where torch rises again
(a difference of ``lr - eta_min`` at ``2 * T_max``); ``optax.cosine_onecycle_schedule`` puts the
peak at ``pct_start * total`` where torch puts it at ``pct_start * total - 1`` and anneals to
``lr / (div_factor * final_div_factor)`` at ``total`` where torch reaches it at ``total - 1``
(with 1200 steps: 4.3e-3 relative up to the peak, 2e-2 up to step 1100, 1.4 at the end).

Examples assume ``import jax.numpy as jnp`` and ``from jaxfund import schedules``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxfund import _checks

__all__ = [
    "ReduceLROnPlateauState",
    "Schedule",
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "exponential_lr",
    "get",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "per_epoch",
    "polynomial_lr",
    "reduce_lr_on_plateau",
    "sequential_lr",
    "step_lr",
    "swa_lr",
]

Fn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """An optax schedule ``count -> lr`` built by this module, with what composition needs.

    Attributes:
        name: torch's class name.
        lr: the base learning rate it was built with.
        value: ``count -> lr``; calling the schedule calls it.
        factor: for schedulers whose torch ``step()`` multiplies the current lr,
            ``count -> value / lr``; ``None`` otherwise.
        step_factor: with ``factor``, what step ``count`` multiplies the current lr by
            (``factor(t) / factor(t - 1)``, ``factor(0)`` at ``t = 0``).
        overwrites: torch's ``step()`` sets the lr from ``lr`` whatever the current lr is.
        restarts: at a SequentialLR milestone torch restarts it from ``lr``; otherwise it
            continues from the previous scheduler's last lr.
    """

    name: str
    lr: float
    value: Fn
    factor: Fn | None = None
    step_factor: Fn | None = None
    overwrites: bool = False
    restarts: bool = True

    def __call__(self, count: jax.Array) -> jax.Array:
        return self.value(count)


# ---------------------------------------------------------------------------------------------
# Accurate step scalars.


def _dtype() -> jnp.dtype:
    """float64 under ``jax.enable_x64``, float32 otherwise."""
    return jnp.result_type(float)


def _count(count: Any) -> jax.Array:
    count = jnp.asarray(count)
    if not jnp.issubdtype(count.dtype, jnp.integer):
        raise TypeError(f"count must be an integer, got dtype {count.dtype}")
    return count


def _float(x: Any) -> jax.Array:
    return jnp.asarray(x).astype(_dtype())


def _round_bits(x: float, bits: int) -> float:
    mantissa, exponent = math.frexp(x)
    return math.ldexp(round(math.ldexp(mantissa, bits)), exponent - bits)


def _pow(gamma: float, n: jax.Array) -> jax.Array:
    """``gamma ** n`` for a Python float ``gamma >= 0`` and an integer array ``n >= 0``.

    ``log(gamma)`` is split into ``c1`` (12 significant bits) and ``c2``, and ``n`` into
    ``n_hi + n_lo`` (multiples of 4096 and the rest), so ``n_hi * c1`` and ``n_lo * c1`` are exact
    and ``gamma**n = exp(n_hi c1) exp(n_lo c1) exp(n c2)`` is accurate to a few ulps for any
    ``n < 2**24`` (float32), where ``exp(n * log(gamma))`` loses ``|n log gamma|`` ulps.
    """
    if gamma == 0.0:
        return (n == 0).astype(_dtype())
    c = math.log(gamma)
    c1 = _round_bits(c, 12) if c else 0.0
    n_lo = n % 4096
    # The barrier keeps XLA from rewriting exp(a) * exp(b) as exp(a + b), which rounds a + b.
    parts = jax.lax.optimization_barrier(
        (jnp.exp(_float(n - n_lo) * c1), jnp.exp(_float(n_lo) * c1), jnp.exp(_float(n) * (c - c1))))
    return parts[0] * parts[1] * parts[2]


def _sin2(num: jax.Array, den: Any) -> jax.Array:
    """``sin(pi/2 * num/den) ** 2`` = ``(1 - cos(pi num/den)) / 2`` without cancellation."""
    return jnp.sin(_float(num) * (math.pi / 2) / _float(den)) ** 2


def _affine(start: float, end: float, w_start: jax.Array, w_end: jax.Array) -> jax.Array:
    """``start * w_start + end * w_end`` with ``w_start + w_end = 1``: no cancellation."""
    return start * w_start + end * w_end


# ---------------------------------------------------------------------------------------------
# Argument checks.


def _lr(lr: Any, name: str = "lr") -> float:
    return _checks.check_real(lr, name, low=0.0)


def _gamma(gamma: Any) -> float:
    return _checks.check_real(gamma, "gamma", low=0.0)


def _callable(fn: Any, name: str) -> Callable:
    if not callable(fn):
        raise TypeError(f"{name} must be a function, got {fn!r} of type {type(fn).__name__}")
    return fn


def _ints(values: Any, name: str, low: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of ints, got {values!r} of type "
                        f"{type(values).__name__}")
    return tuple(_checks.check_int(v, f"{name}[{i}]", low=low) for i, v in enumerate(values))


def _ratio_schedule(name: str, lr: float, factor: Fn, step_factor: Fn, restarts: bool = True):
    return Schedule(name, lr, lambda count: lr * factor(_count(count)), factor=factor,
                    step_factor=step_factor, restarts=restarts)


def _at_zero(first: Any, t: jax.Array, later: jax.Array) -> jax.Array:
    return jnp.where(t == 0, jnp.asarray(first, _dtype()), later)


# ---------------------------------------------------------------------------------------------
# Schedulers whose torch step multiplies the current lr.


def lambda_lr(lr: float, lr_lambda: Callable[[jax.Array], Any]) -> Schedule:
    """``lr * lr_lambda(t)`` (``torch.optim.lr_scheduler.LambdaLR``).

    Args:
        lr: initial learning rate ``>= 0``.
        lr_lambda: ``count -> factor``, traceable by JAX (it receives an integer array).

    >>> round(float(schedules.lambda_lr(0.1, lambda t: 0.5 ** t)(2)), 6)
    0.025
    """
    lr = _lr(lr)
    lr_lambda = _callable(lr_lambda, "lr_lambda")

    def value(count):
        return lr * jnp.asarray(lr_lambda(_count(count)), _dtype())

    return Schedule("LambdaLR", lr, value, overwrites=True)


def multiplicative_lr(lr: float, lr_lambda: Callable[[jax.Array], Any]) -> Schedule:
    """``lr * prod_{s=1..t} lr_lambda(s)`` (``torch.optim.lr_scheduler.MultiplicativeLR``).

    The product of an arbitrary ``lr_lambda`` has no closed form, so this is the one schedule
    that costs ``O(count)``: a ``lax.fori_loop`` over ``s = 1..count`` (use :func:`exponential_lr`
    for a constant factor). In a :func:`sequential_lr` it can only come first: torch continues
    it from the previous scheduler's lr.

    >>> round(float(schedules.multiplicative_lr(0.1, lambda s: 0.5)(2)), 6)
    0.025
    """
    lr = _lr(lr)
    lr_lambda = _callable(lr_lambda, "lr_lambda")

    def step_factor(t):
        return jnp.asarray(lr_lambda(t), _dtype())

    def factor(t):
        return jax.lax.fori_loop(1, t + 1, lambda s, f: f * step_factor(s),
                                 jnp.ones((), _dtype()))

    return _ratio_schedule("MultiplicativeLR", lr, factor,
                           lambda t: _at_zero(1.0, t, step_factor(t)), restarts=False)


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``lr * gamma ** (t // step_size)`` (``torch.optim.lr_scheduler.StepLR``).

    >>> [round(float(schedules.step_lr(1.0, 2, 0.5)(t)), 3) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    lr = _lr(lr)
    step_size = _checks.check_int(step_size, "step_size", low=1)
    gamma = _gamma(gamma)

    def step_factor(t):
        return jnp.where((t > 0) & (t % step_size == 0), gamma, 1.0).astype(_dtype())

    return _ratio_schedule("StepLR", lr, lambda t: _pow(gamma, t // step_size), step_factor)


def multi_step_lr(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """``lr * gamma ** (number of milestones <= t)`` (``torch.optim.lr_scheduler.MultiStepLR``).

    A milestone listed twice counts twice, as in torch.

    >>> [round(float(schedules.multi_step_lr(1.0, [1, 3], 0.5)(t)), 3) for t in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """
    lr = _lr(lr)
    marks = jnp.asarray(_ints(milestones, "milestones", low=0) or (-1,))
    gamma = _gamma(gamma)

    def passed(t, op):
        return jnp.sum(op(t[..., None], marks), axis=-1)

    return _ratio_schedule("MultiStepLR", lr,
                           lambda t: _pow(gamma, passed(t, jnp.greater_equal)),
                           lambda t: _pow(gamma, passed(t, jnp.equal)))


def constant_lr(lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> Schedule:
    """``lr * factor`` for ``t < total_iters``, then ``lr`` (``torch...ConstantLR``).

    ``factor`` in ``(0, 1]`` (torch divides by it at ``total_iters``). With ``total_iters=0``
    torch's recursion keeps ``lr * factor`` forever (its closed form says ``lr``); so do we.

    >>> [round(float(schedules.constant_lr(1.0, 0.5, 2)(t)), 3) for t in range(3)]
    [0.5, 0.5, 1.0]
    """
    lr = _lr(lr)
    factor = _checks.check_real(factor, "factor", low=0.0, high=1.0, low_open=True)
    total_iters = _checks.check_int(total_iters, "total_iters", low=0)
    end = 1.0 if total_iters else factor

    def step_factor(t):
        return _at_zero(factor, t, jnp.where(t == total_iters, 1.0 / factor, 1.0))

    return _ratio_schedule("ConstantLR", lr,
                           lambda t: jnp.where(t < total_iters, factor, end).astype(_dtype()),
                           step_factor)


def linear_lr(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Schedule:
    """``lr`` times a factor linear from ``start_factor`` at 0 to ``end_factor`` at ``total_iters``.

    ``torch.optim.lr_scheduler.LinearLR``; ``start_factor`` in ``(0, 1]``, ``end_factor`` in
    ``[0, 1]``. Computed as ``(start (T - m) + end m) / T`` with ``m = min(t, T)``, exact near a
    zero ``end_factor``. With ``total_iters=0`` torch keeps ``start_factor`` forever; so do we.

    >>> [round(float(schedules.linear_lr(1.0, 0.5, 1.0, 2)(t)), 3) for t in range(3)]
    [0.5, 0.75, 1.0]
    """
    lr = _lr(lr)
    start = _checks.check_real(start_factor, "start_factor", low=0.0, high=1.0, low_open=True)
    end = _checks.check_real(end_factor, "end_factor", low=0.0, high=1.0)
    total = _checks.check_int(total_iters, "total_iters", low=0)

    def factor(t):
        if not total:
            return jnp.full(jnp.shape(t), start, _dtype())
        m = jnp.minimum(t, total)
        return _affine(start, end, _float(total - m), _float(m)) / total

    def step_factor(t):
        delta = end - start
        inner = 1.0 + delta / (total * start + _float(t - 1) * delta)
        return _at_zero(start, t, jnp.where(t <= total, inner, 1.0))

    return _ratio_schedule("LinearLR", lr, factor, step_factor)


def exponential_lr(lr: float, gamma: float) -> Schedule:
    """``lr * gamma ** t`` (``torch.optim.lr_scheduler.ExponentialLR``), accurate for any ``t``.

    >>> round(float(schedules.exponential_lr(1.0, 0.5)(3)), 3)
    0.125
    """
    lr = _lr(lr)
    gamma = _gamma(gamma)
    return _ratio_schedule("ExponentialLR", lr, lambda t: _pow(gamma, t),
                           lambda t: _at_zero(1.0, t, jnp.asarray(gamma, _dtype())))


def polynomial_lr(lr: float, total_iters: int = 5, power: float = 1.0) -> Schedule:
    """``lr * ((T - min(t, T)) / T) ** power`` (``torch.optim.lr_scheduler.PolynomialLR``).

    ``power >= 0``. With ``total_iters=0`` torch keeps ``lr``; so do we.

    >>> [round(float(schedules.polynomial_lr(1.0, 2, 2.0)(t)), 3) for t in range(3)]
    [1.0, 0.25, 0.0]
    """
    lr = _lr(lr)
    total = _checks.check_int(total_iters, "total_iters", low=0)
    power = _checks.check_real(power, "power", low=0.0)

    def factor(t):
        if not total:
            return jnp.ones(jnp.shape(t), _dtype())
        return (_float(total - jnp.minimum(t, total)) / total) ** power

    def step_factor(t):
        ratio = (_float(total - t) / _float(total - t + 1)) ** power
        return jnp.where((t > 0) & (t <= total), ratio, 1.0)

    return _ratio_schedule("PolynomialLR", lr, factor, step_factor)


# ---------------------------------------------------------------------------------------------
# Schedulers whose torch step is not a multiplication of the current lr.


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:
    """Cosine from ``lr`` to ``eta_min`` over ``T_max`` steps, continued periodically.

    ``torch.optim.lr_scheduler.CosineAnnealingLR``: ``eta_min + (lr - eta_min) (1 + cos(pi t /
    T_max)) / 2`` for every ``t`` (after ``T_max`` it rises back to ``lr`` at ``2 T_max``, as
    torch's recursion does; ``optax.cosine_decay_schedule`` stays at ``eta_min`` instead).
    Computed as ``sin(pi (T_max - r) / (2 T_max))**2`` with the exact remainder ``r`` of ``t``,
    so the values near ``eta_min`` are accurate. torch's float64 recursion rounds ``+ eta_min``
    near the minimum and the following steps amplify that by up to ``~T_max**2``: our values
    differ from torch's by at most ``eps64 * (4 lr + eta_min * T_max**2)`` (``eps64 = 2.2e-16``).
    Not usable in :func:`chained_scheduler` (its torch step is an affine map of the current lr).

    >>> [round(float(schedules.cosine_annealing_lr(1.0, 2)(t)), 3) for t in range(5)]
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """
    lr = _lr(lr)
    T_max = _checks.check_int(T_max, "T_max", low=1)
    eta_min = _checks.check_real(eta_min, "eta_min", low=0.0)

    def value(count):
        r = _count(count) % (2 * T_max)
        dist = T_max - jnp.minimum(r, 2 * T_max - r)  # distance from the minimum, in [0, T_max]
        up = _sin2(dist, T_max)
        return _affine(lr, eta_min, up, _sin2(T_max - dist, T_max))

    return Schedule("CosineAnnealingLR", lr, value)


def _cycle_table(T_0: int, T_mult: int) -> tuple[list[int], list[int]]:
    """Starts and lengths of the warm-restart cycles that begin before ``2**31``."""
    starts, lengths = [0], [T_0]
    while starts[-1] + lengths[-1] < 2**31:
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * T_mult)
    return starts, lengths


def cosine_annealing_warm_restarts(
    lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> Schedule:
    """Cosine from ``lr`` to ``eta_min`` restarted every cycle, cycles ``T_0, T_0 T_mult, ...``.

    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``: ``eta_min + (lr - eta_min) (1 +
    cos(pi T_cur / T_i)) / 2`` with ``T_cur`` the steps since the last restart and ``T_i`` the
    current cycle's length, found exactly from a table of cycle starts.

    >>> [round(float(schedules.cosine_annealing_warm_restarts(1.0, 2)(t)), 3) for t in range(4)]
    [1.0, 0.5, 1.0, 0.5]
    """
    lr = _lr(lr)
    T_0 = _checks.check_int(T_0, "T_0", low=1)
    T_mult = _checks.check_int(T_mult, "T_mult", low=1)
    eta_min = _checks.check_real(eta_min, "eta_min", low=0.0)

    if T_mult == 1:
        def cycle(t):
            return t % T_0, jnp.asarray(T_0)
    else:
        starts, lengths = _cycle_table(T_0, T_mult)

        def cycle(t):
            n = jnp.sum(t[..., None] >= jnp.asarray(starts[1:]), axis=-1)
            return t - jnp.asarray(starts)[n], jnp.asarray(lengths, _dtype())[n]

    def value(count):
        t_cur, t_i = cycle(_count(count))
        return _affine(lr, eta_min, _sin2(_float(t_i) - _float(t_cur), t_i), _sin2(t_cur, t_i))

    return Schedule("CosineAnnealingWarmRestarts", lr, value, overwrites=True)


def cyclic_lr(
    lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[jax.Array], Any] | None = None,
    scale_mode: str = "cycle",
) -> Schedule:
    """Cyclical learning rate between ``lr`` (torch's ``base_lr``) and ``max_lr``.

    ``torch.optim.lr_scheduler.CyclicLR``: ``lr + (max_lr - lr) * h(t) * scale`` with ``h`` the
    triangle rising over ``step_size_up`` steps and falling over ``step_size_down`` (default
    ``step_size_up``), and ``scale`` 1 (``"triangular"``), ``2**-(cycle-1)`` (``"triangular2"``),
    ``gamma**t`` (``"exp_range"``), or ``scale_fn(cycle)`` / ``scale_fn(t)`` (per
    ``scale_mode``) for a custom ``scale_fn`` (then ``mode`` is ignored, as in torch); ``cycle``
    counts from 1 and ``scale_fn`` receives it as a float array. The triangle is computed from
    the exact remainder of ``t``. torch's ``cycle_momentum`` also cycles the momentum; this is
    the learning rate only.

    >>> [round(float(schedules.cyclic_lr(0.1, 1.0, 2)(t)), 3) for t in range(5)]
    [0.1, 0.55, 1.0, 0.55, 0.1]
    """
    lr = _lr(lr)
    max_lr = _lr(max_lr, "max_lr")
    up = _checks.check_int(step_size_up, "step_size_up", low=1)
    down = up if step_size_down is None else _checks.check_int(
        step_size_down, "step_size_down", low=1)
    mode = _checks.check_choice(mode, "mode", ("triangular", "triangular2", "exp_range"))
    gamma = _gamma(gamma)
    scale_mode = _checks.check_choice(scale_mode, "scale_mode", ("cycle", "iterations"))
    total = up + down

    if scale_fn is not None:
        scale_fn = _callable(scale_fn, "scale_fn")

        def scale(t, cycle):
            return jnp.asarray(scale_fn(_float(cycle if scale_mode == "cycle" else t)), _dtype())
    elif mode == "triangular":
        def scale(t, cycle):
            return jnp.ones(jnp.shape(t), _dtype())
    elif mode == "triangular2":
        def scale(t, cycle):
            return jnp.ldexp(jnp.ones(jnp.shape(t), _dtype()), 1 - cycle)
    else:
        def scale(t, cycle):
            return _pow(gamma, t)

    def value(count):
        t = _count(count)
        r = t % total
        height = jnp.where(r <= up, _float(r) / up, _float(total - r) / down)
        return lr + (max_lr - lr) * height * scale(t, t // total + 1)

    return Schedule("CyclicLR", lr, value, overwrites=True)


def one_cycle_lr(
    lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle policy peaking at ``lr`` (torch's ``max_lr``).

    ``torch.optim.lr_scheduler.OneCycleLR``: from ``lr / div_factor`` up to ``lr`` at step
    ``pct_start * total_steps - 1``, then down to ``lr / (div_factor * final_div_factor)`` at
    ``total_steps - 1`` (with ``three_phase``, back to ``lr / div_factor`` at ``2 pct_start
    total_steps - 2`` first), each phase a cosine (``"cos"``) or linear ``anneal_strategy``, the
    last phase continued to ``total_steps``. torch raises when stepped past ``total_steps``; the
    value there is NaN. ``total_steps`` or ``epochs * steps_per_epoch`` gives the length.
    torch's ``cycle_momentum`` also cycles the momentum; this is the learning rate only. Not
    usable in :func:`sequential_lr` or :func:`chained_scheduler` (in torch it rewrites the
    optimizer's ``initial_lr``, which the other schedulers read).

    >>> [round(float(schedules.one_cycle_lr(1.0, 4, pct_start=0.5, anneal_strategy="linear",
    ...     div_factor=2.0, final_div_factor=5.0)(t)), 3) for t in range(5)]
    [0.5, 1.0, 0.55, 0.1, -0.35]
    """
    lr = _lr(lr)
    if total_steps is not None:
        total = _checks.check_int(total_steps, "total_steps", low=1)
    elif epochs is not None and steps_per_epoch is not None:
        total = (_checks.check_int(epochs, "epochs", low=1)
                 * _checks.check_int(steps_per_epoch, "steps_per_epoch", low=1))
    else:
        raise ValueError("one_cycle_lr needs total_steps, or epochs and steps_per_epoch")
    pct_start = _checks.check_real(pct_start, "pct_start", low=0.0, high=1.0)
    cos = _checks.check_choice(anneal_strategy, "anneal_strategy", ("cos", "linear")) == "cos"
    div_factor = _checks.check_real(div_factor, "div_factor", low=0.0, low_open=True)
    final_div = _checks.check_real(final_div_factor, "final_div_factor", low=0.0, low_open=True)
    if not isinstance(three_phase, bool):
        raise TypeError(f"three_phase must be a bool, got {three_phase!r}")
    initial = lr / div_factor
    low = initial / final_div
    if three_phase:
        phases = [(float(pct_start * total) - 1, initial, lr),
                  (float(2 * pct_start * total) - 2, lr, initial),
                  (total - 1.0, initial, low)]
    else:
        phases = [(float(pct_start * total) - 1, initial, lr), (total - 1.0, lr, low)]
    begins = [0.0] + [end for end, _, _ in phases[:-1]]
    for i, (begin, (end, _, _)) in enumerate(zip(begins, phases)):
        if end == begin:
            raise ValueError(
                f"phase {i + 1} of one_cycle_lr has no steps (it ends where it begins, at "
                f"{begin:g}; torch divides by its length): change pct_start={pct_start} or "
                f"total_steps={total}")

    def phase_value(t, begin, end, start_lr, end_lr):
        left, done = _float(end) - t, t - _float(begin)  # 1 - pct and pct, times the length
        if cos:
            return _affine(start_lr, end_lr, _sin2(left, end - begin), _sin2(done, end - begin))
        return _affine(start_lr, end_lr, left, done) / (end - begin)

    def value(count):
        t = _count(count)
        tf = _float(t)
        out = phase_value(tf, begins[-1], *phases[-1])
        for begin, (end, start_lr, end_lr) in reversed(list(zip(begins, phases))[:-1]):
            out = jnp.where(tf <= end, phase_value(tf, begin, end, start_lr, end_lr), out)
        return jnp.where(t > total, jnp.nan, out)

    return Schedule("OneCycleLR", lr, value, overwrites=True)


def swa_lr(lr: float, swa_lr: float, anneal_epochs: int = 10,
           anneal_strategy: str = "cos") -> Schedule:
    """Anneals from ``lr`` to ``swa_lr`` in ``anneal_epochs`` steps, then stays there.

    ``torch.optim.swa_utils.SWALR`` (``lr`` is the optimizer's lr when SWALR is built):
    ``swa_lr * a + lr * (1 - a)`` with ``a = (1 - cos(pi u)) / 2`` (``"cos"``) or ``u``
    (``"linear"``), ``u = min(t, anneal_epochs) / anneal_epochs``; ``anneal_epochs=0`` gives
    ``swa_lr`` from the start. torch steps SWALR once per epoch: see :func:`per_epoch`. In a
    :func:`sequential_lr` it can only come first (torch anneals from the previous scheduler's
    lr).

    >>> [round(float(schedules.swa_lr(1.0, 0.5, 2, "linear")(t)), 3) for t in range(4)]
    [1.0, 0.75, 0.5, 0.5]
    """
    lr = _lr(lr)
    target = _lr(swa_lr, "swa_lr")
    epochs = _checks.check_int(anneal_epochs, "anneal_epochs", low=0)
    cos = _checks.check_choice(anneal_strategy, "anneal_strategy", ("cos", "linear")) == "cos"
    span = max(epochs, 1)

    def value(count):
        done = jnp.minimum(_count(count), span) if epochs else jnp.full(jnp.shape(count), span)
        if cos:
            return _affine(target, lr, _sin2(done, span), _sin2(span - done, span))
        return _affine(target, lr, _float(done), _float(span - done)) / span

    return Schedule("SWALR", lr, value, restarts=False)


# ---------------------------------------------------------------------------------------------
# Composition.


def _members(lr: float, schedulers: Any, who: str) -> tuple[Schedule, ...]:
    if isinstance(schedulers, (str, bytes)) or not isinstance(schedulers, Sequence):
        raise TypeError(f"schedulers must be a list of schedules, got {type(schedulers).__name__}")
    if not schedulers:
        raise ValueError(f"{who} needs at least one schedule in schedulers")
    for i, s in enumerate(schedulers):
        if not isinstance(s, Schedule):
            raise TypeError(f"schedulers[{i}] must be a schedule built by jaxfund.schedules, "
                            f"got {s!r} of type {type(s).__name__}")
        if s.name in ("OneCycleLR", "SequentialLR", "ChainedScheduler"):
            raise ValueError(f"schedulers[{i}] is a {s.name}, which {who} does not take")
        if s.lr != lr:
            raise ValueError(f"schedulers[{i}] was built with lr={s.lr}, not {who}'s lr={lr}; "
                             "build every schedule with the same lr (torch: one optimizer)")
    return tuple(schedulers)


def sequential_lr(lr: float, schedulers: Sequence[Schedule], milestones: Sequence[int]) -> Schedule:
    """``schedulers[i]`` from ``milestones[i - 1]`` on, counted from there.

    ``torch.optim.lr_scheduler.SequentialLR``. ``schedulers`` are schedules of this module built
    with ``lr``; ``milestones`` are increasing positive ints, one fewer than ``schedulers``. At
    its milestone torch restarts a scheduler from ``lr``, except ``multiplicative_lr`` and
    ``swa_lr``, which continue from the current lr: those can only come first.

    >>> warm = schedules.linear_lr(1.0, 0.5, 1.0, 2)
    >>> s = schedules.sequential_lr(1.0, [warm, schedules.exponential_lr(1.0, 0.5)], [2])
    >>> [round(float(s(t)), 3) for t in range(5)]
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """
    lr = _lr(lr)
    members = _members(lr, schedulers, "sequential_lr")
    marks = _ints(milestones, "milestones", low=1)
    if len(marks) != len(members) - 1:
        raise ValueError(f"milestones must have len(schedulers) - 1 = {len(members) - 1} "
                         f"entries, got {len(marks)}")
    if any(b <= a for a, b in zip(marks, marks[1:])):
        raise ValueError(f"milestones must be increasing, got {list(marks)}")
    for i, s in enumerate(members[1:], 1):
        if not s.restarts:
            raise ValueError(f"schedulers[{i}] is a {s.name}, which torch continues from the "
                             "previous lr at its milestone: it can only be schedulers[0]")

    def value(count):
        t = _count(count)
        out = members[0](t)
        for mark, s in zip(marks, members[1:]):
            out = jnp.where(t >= mark, s(jnp.maximum(t - mark, 0)), out)
        return out

    return Schedule("SequentialLR", lr, value)


def chained_scheduler(lr: float, schedulers: Sequence[Schedule]) -> Schedule:
    """All ``schedulers`` stepped together, in order (``torch...ChainedScheduler``).

    Each torch step of a member either multiplies the current lr (``step_lr``, ``multi_step_lr``,
    ``constant_lr``, ``linear_lr``, ``exponential_lr``, ``polynomial_lr``, ``multiplicative_lr``:
    :attr:`Schedule.step_factor`) or overwrites it from ``lr`` (``lambda_lr``, ``cyclic_lr``,
    ``cosine_annealing_warm_restarts``). So the chain is ``lr * prod factor_i(t)`` with no
    overwriting member, else the last overwriting member's value times the ``step_factor(t)`` of
    the members after it (the earlier ones are overwritten every step, as in torch).
    ``cosine_annealing_lr`` and ``swa_lr`` step by an affine map of the current lr, which has no
    closed form in a chain: use :func:`sequential_lr`.

    >>> c = schedules.chained_scheduler(1.0, [schedules.constant_lr(1.0, 0.5, 2),
    ...                                       schedules.exponential_lr(1.0, 0.5)])
    >>> [round(float(c(t)), 4) for t in range(4)]
    [0.5, 0.25, 0.25, 0.125]
    """
    lr = _lr(lr)
    members = _members(lr, schedulers, "chained_scheduler")
    for i, s in enumerate(members):
        if s.factor is None and not s.overwrites:
            raise ValueError(f"schedulers[{i}] is a {s.name}, whose torch step is an affine map "
                             "of the current lr: chained_scheduler cannot take it")
    last = max((i for i, s in enumerate(members) if s.overwrites), default=None)

    def value(count):
        t = _count(count)
        if last is None:
            return math.prod((s.factor(t) for s in members), start=lr)
        return math.prod((s.step_factor(t) for s in members[last + 1:]), start=members[last](t))

    return Schedule("ChainedScheduler", lr, value)


def per_epoch(schedule: Callable[[jax.Array], jax.Array], steps_per_epoch: int) -> Callable:
    """``count -> schedule(count // steps_per_epoch)``: an epoch-stepped schedule per update.

    For a torch scheduler stepped once per epoch of ``steps_per_epoch`` optimizer steps.

    >>> s = schedules.per_epoch(schedules.step_lr(1.0, 1, 0.5), 10)
    >>> [float(s(t)) for t in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    """
    schedule = _callable(schedule, "schedule")
    steps = _checks.check_int(steps_per_epoch, "steps_per_epoch", low=1)

    def per_update(count):
        return schedule(_count(count) // steps)

    return per_update


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau.


class ReduceLROnPlateauState(NamedTuple):
    """State of :func:`reduce_lr_on_plateau`: torch's ``ReduceLROnPlateau`` attributes."""

    lr: jax.Array  # the current learning rate (torch's ``get_last_lr()[0]``)
    best: jax.Array
    num_bad_epochs: jax.Array
    cooldown_counter: jax.Array
    count: jax.Array  # number of ``step(metric)`` calls so far


def reduce_lr_on_plateau(
    lr: float,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """torch's ``ReduceLROnPlateau`` as a transformation that scales updates by ``lr_t / lr``.

    Chain it after an optimizer built with the same ``lr``, e.g.
    ``optax.chain(optimizers.sgd(lr), schedules.reduce_lr_on_plateau(lr, patience=5))``, and
    pass the metric to every update: ``opt.update(grads, state, params, value=metric)``.
    Every update call is one torch ``scheduler.step(metric)`` *after* the step: the updates of
    the call are scaled with the lr before ``metric`` is seen, as in torch's loop
    ``opt.step(); sched.step(metric)``. torch code that calls ``step(metric)`` once per epoch
    with several optimizer steps per epoch has no exact equivalent here: every update counts,
    so ``patience`` and ``cooldown`` are in updates. ``lr`` (needed because ``min_lr`` and ``eps`` are absolute) must be
    ``> 0``; ``state.lr`` is the current learning rate. The rule, in the state's float dtype:
    a metric is better than ``best`` by ``threshold`` (``rel``: a factor ``1 -/+ threshold``;
    ``abs``: a difference); more than ``patience`` bad steps in a row reduce the lr to
    ``max(lr * factor, min_lr)`` if that lowers it by more than ``eps``, then ``cooldown`` steps
    ignore bad metrics. A NaN metric is a bad step. Unlike ``optax.contrib.reduce_on_plateau``
    (which scales after averaging ``accumulation_size`` values and has no ``eps``/``threshold_mode``
    /``mode="max"``), every argument has torch's meaning.

    >>> opt = schedules.reduce_lr_on_plateau(1.0, factor=0.5, patience=0)
    >>> state = opt.init(jnp.zeros(2))
    >>> for metric in (3.0, 2.0, 2.0):
    ...     _, state = opt.update(jnp.ones(2), state, value=metric)
    >>> float(state.lr)
    0.5
    """
    lr = _checks.check_real(lr, "lr", low=0.0, low_open=True)
    larger = _checks.check_choice(mode, "mode", ("min", "max")) == "max"
    factor = _checks.check_real(factor, "factor", low=0.0, high=1.0, high_open=True)
    patience = _checks.check_int(patience, "patience", low=0)
    threshold = _checks.check_real(threshold, "threshold", low=0.0)
    relative = _checks.check_choice(threshold_mode, "threshold_mode", ("rel", "abs")) == "rel"
    cooldown = _checks.check_int(cooldown, "cooldown", low=0)
    min_lr = _checks.check_real(min_lr, "min_lr", low=0.0)
    eps = _checks.check_real(eps, "eps", low=0.0)

    def init_fn(params):
        del params
        zero = jnp.zeros((), jnp.int32)
        return ReduceLROnPlateauState(jnp.asarray(lr, _dtype()),
                                      jnp.asarray(-jnp.inf if larger else jnp.inf, _dtype()),
                                      zero, zero, zero)

    def is_better(current, best):
        if larger:
            return current > (best * (1.0 + threshold) if relative else best + threshold)
        return current < (best * (1.0 - threshold) if relative else best - threshold)

    def update_fn(updates, state, params=None, *, value, **extra_args):
        del params, extra_args
        scale = state.lr / lr
        updates = jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates)
        current = jnp.asarray(value, _dtype())
        better = is_better(current, state.best)
        best = jnp.where(better, current, state.best)
        bad = jnp.where(better, 0, state.num_bad_epochs + 1)
        in_cooldown = state.cooldown_counter > 0
        counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(in_cooldown, 0, bad)
        reduce = bad > patience
        new_lr = jnp.maximum(state.lr * factor, min_lr)
        new_lr = jnp.where(reduce & (state.lr - new_lr > eps), new_lr, state.lr)
        counter = jnp.where(reduce, cooldown, counter)
        bad = jnp.where(reduce, 0, bad)
        return updates, ReduceLROnPlateauState(new_lr, best, bad, counter, state.count + 1)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


_TABLE: dict[str, Callable] = {
    f.__name__: f
    for f in (
        lambda_lr, multiplicative_lr, step_lr, multi_step_lr, constant_lr, linear_lr,
        exponential_lr, polynomial_lr, cosine_annealing_lr, cosine_annealing_warm_restarts,
        cyclic_lr, one_cycle_lr, sequential_lr, chained_scheduler, reduce_lr_on_plateau, swa_lr,
    )
}

get = _checks.make_get("schedule", _TABLE, {"CosineAnnealingLR": "cosine_annealing_lr"})
