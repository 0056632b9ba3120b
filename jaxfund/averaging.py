"""Weight averaging, as ``torch.optim.swa_utils``: an averaged copy of the parameters, updated
as training goes, kept in the optimizer state.

- :func:`swa`: the equal average of the visited parameters (torch ``AveragedModel(model)``,
  whose default is ``get_swa_multi_avg_fn()``): ``avg <- lerp(avg, p, 1 / (n + 1))``.
- :func:`ema`: the exponential moving average (torch ``AveragedModel(model,
  multi_avg_fn=get_ema_multi_avg_fn(decay))``): ``avg <- lerp(avg, p, 1 - decay)``.

Each is an ``optax.GradientTransformation`` that goes LAST in a chain: it passes the updates
through unchanged, computes the new parameters ``p = params + updates`` and, on the updates it
averages at, folds them into its ``averaged`` copy exactly as ``swa_model.update_parameters(model)``
after ``optimizer.step()`` does (the first averaged update copies, as torch's ``n_averaged == 0``).
``start`` and ``every`` say when: at update ``k`` (1-based) with ``k > start`` and
``(k - start) % every == 0``. Per step after a warm-up: ``start=warmup_steps, every=1``; torch's
per-epoch recipe (``if epoch >= swa_start: swa_model.update_parameters(model)`` after each epoch
of ``S`` steps): ``start=S * swa_start, every=S``. The learning rate of the SWA phase is
:func:`jaxfund.schedules.swa_lr` (torch ``SWALR``).

:func:`averaged_params` reads the average out of any optimizer state; pass it as ``eval_params``
to :func:`jaxfund.train.fit` to evaluate the averaged model::

    tx = optax.chain(optimizers.sgd(lr=0.05, momentum=0.9), averaging.swa(start=500))
    result = train.fit(state, data, ..., tx=tx, eval_params=averaging.averaged_params)

Batch-norm statistics (torch ``update_bn``) are not part of this: jaxfund's models have none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxfund import _checks

__all__ = ["AveragedState", "swa", "ema", "averaged_params"]

PyTree = Any


class AveragedState(NamedTuple):
    """State of :func:`swa` / :func:`ema`.

    Attributes:
      count: int32, the updates seen.
      n_averaged: int32, the updates folded into the average (torch's ``n_averaged``).
      averaged: the averaged parameters (a copy of the initial params until the first average).
    """

    count: jax.Array
    n_averaged: jax.Array
    averaged: PyTree


def _lerp(start: jax.Array, end: jax.Array, weight: jax.Array) -> jax.Array:
    """torch's ``lerp``: ``start + w (end - start)`` for ``w < 0.5``, else
    ``end - (end - start)(1 - w)`` (exact at ``w = 1``)."""
    return jnp.where(weight < 0.5, start + weight * (end - start),
                     end - (end - start) * (1 - weight))


def _averaging(weight: Callable[[jax.Array, Any], jax.Array], start: int,
               every: int) -> optax.GradientTransformation:
    _checks.check_int(start, "start", low=0)
    _checks.check_int(every, "every", low=1)

    def init_fn(params: PyTree) -> AveragedState:
        return AveragedState(count=jnp.zeros([], jnp.int32), n_averaged=jnp.zeros([], jnp.int32),
                             averaged=jax.tree.map(jnp.array, params))

    def update_fn(updates: PyTree, state: AveragedState, params: PyTree = None):
        if params is None:
            raise ValueError("weight averaging needs params: call update(grads, state, params)")
        count = optax.safe_increment(state.count)
        due = (count > start) & ((count - start) % every == 0)
        current = optax.apply_updates(params, updates)

        def fold(avg: jax.Array, p: jax.Array) -> jax.Array:
            w = jnp.where(state.n_averaged == 0, 1, weight(state.n_averaged, avg.dtype))
            return jnp.where(due, _lerp(avg, p, w.astype(avg.dtype)), avg)

        averaged = jax.tree.map(fold, state.averaged, current)
        return updates, AveragedState(count=count, n_averaged=state.n_averaged + due,
                                      averaged=averaged)

    return optax.GradientTransformation(init_fn, update_fn)


def swa(start: int = 0, every: int = 1) -> optax.GradientTransformation:
    """Stochastic weight averaging: the equal average of the parameters at the averaged updates.

    torch ``AveragedModel(model)`` with ``update_parameters`` at updates ``k > start`` with
    ``(k - start) % every == 0``: ``avg <- lerp(avg, p, 1 / (n_averaged + 1))``.

    Args:
      start: updates before the first average (``>= 0``).
      every: average every ``every`` updates (``>= 1``; steps per epoch for torch's per-epoch
        recipe).

    >>> tx = optax.chain(optax.sgd(1.0), swa())
    >>> params = {"w": jnp.array(0.0)}
    >>> state = tx.init(params)
    >>> for g in (-1.0, -1.0, -1.0):  # params 1, 2, 3
    ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> averaged_params(state)
    {'w': Array(2., dtype=float32)}
    """
    return _averaging(lambda n, dtype: 1 / (n.astype(dtype) + 1), start, every)


def ema(decay: float = 0.999, start: int = 0, every: int = 1) -> optax.GradientTransformation:
    """Exponential moving average of the parameters at the averaged updates.

    torch ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``:
    ``avg <- lerp(avg, p, 1 - decay)``, the first average a copy.

    Args:
      decay: in ``[0, 1]`` (torch's range).
      start, every: as in :func:`swa`.

    >>> tx = optax.chain(optax.sgd(1.0), ema(decay=0.5))
    >>> params = {"w": jnp.array(0.0)}
    >>> state = tx.init(params)
    >>> for g in (-2.0, -2.0):  # params 2, 4: the average 2, then 0.5 * 2 + 0.5 * 4
    ...     updates, state = tx.update({"w": jnp.array(g)}, state, params)
    ...     params = optax.apply_updates(params, updates)
    >>> averaged_params(state)
    {'w': Array(3., dtype=float32)}
    """
    decay = _checks.check_real(decay, "decay", low=0.0, high=1.0)
    return _averaging(lambda n, dtype: jnp.asarray(1 - decay, dtype), start, every)


def averaged_params(state: Any) -> PyTree:
    """The averaged parameters held by the :func:`swa`/:func:`ema` state inside ``state``: an
    optimizer state, or a :class:`jaxfund.train.TrainState` (its ``opt_state`` is searched).

    Raises:
      ValueError: ``state`` holds no :class:`AveragedState`.
    """
    found = [s for s in jax.tree.leaves(getattr(state, "opt_state", state),
                                        is_leaf=lambda x: isinstance(x, AveragedState))
             if isinstance(s, AveragedState)]
    if len(found) != 1:
        raise ValueError(f"expected one swa()/ema() state in the optimizer state, found "
                         f"{len(found)}; chain averaging.swa() or averaging.ema() last")
    return found[0].averaged
