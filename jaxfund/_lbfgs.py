"""L-BFGS with torch's semantics: one ``update`` is one ``torch.optim.LBFGS.step(closure)``.

Re-exported as :func:`jaxfund.optimizers.lbfgs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxfund import _checks

__all__ = ["LBFGSState", "lbfgs"]

# torch's fixed constants: the curvature pair is kept only if y.s > _CURVATURE_EPS; the strong
# Wolfe search uses c1, c2 and its own default tolerance_change (LBFGS.step does not pass its
# ``tolerance_change`` on to ``_strong_wolfe``).
_CURVATURE_EPS = 1e-10
_C1 = 1e-4
_C2 = 0.9
_LINE_SEARCH_TOLERANCE_CHANGE = 1e-9


class LBFGSState(NamedTuple):
    """What ``torch.optim.LBFGS`` keeps between steps, in fixed-size arrays.

    Attributes:
      count: int32, the number of updates (``step`` calls) so far.
      d: the last search direction, flat ``(n,)``.
      t: the last step size.
      old_dirs: ring buffer ``(history_size, n)`` of gradient differences ``y``.
      old_stps: ring buffer ``(history_size, n)`` of steps ``s``.
      ro: ring buffer ``(history_size,)`` of ``1 / (y . s)``.
      history_len: int32, how many pairs the buffers hold (at most ``history_size``).
      history_head: int32, the slot the next pair goes to; the oldest pair sits at
        ``(history_head - history_len) % history_size``.
      H_diag: the scale ``y.s / y.y`` of the initial inverse Hessian.
      prev_flat_grad: the flat gradient at the start of the last iteration.
      prev_loss: the loss at the start of the last iteration.
      n_iter: int32, inner iterations over all steps (torch's ``state["n_iter"]``).
      func_evals: int32, objective evaluations over all steps, the one passed in included.
    """

    count: jax.Array
    d: jax.Array
    t: jax.Array
    old_dirs: jax.Array
    old_stps: jax.Array
    ro: jax.Array
    history_len: jax.Array
    history_head: jax.Array
    H_diag: jax.Array
    prev_flat_grad: jax.Array
    prev_loss: jax.Array
    n_iter: jax.Array
    func_evals: jax.Array


class _History(NamedTuple):
    old_dirs: jax.Array
    old_stps: jax.Array
    ro: jax.Array
    length: jax.Array
    head: jax.Array
    H_diag: jax.Array


class _Iterate(NamedTuple):
    """The inner loop's carry: the point, its loss and gradient, and torch's step locals."""

    x: jax.Array
    loss: jax.Array
    flat_grad: jax.Array
    d: jax.Array
    t: jax.Array
    history: _History
    prev_flat_grad: jax.Array
    prev_loss: jax.Array
    n_iter: jax.Array
    func_evals: jax.Array
    step_iter: jax.Array
    step_evals: jax.Array
    stop: jax.Array


def _first_of(a, b, take_b):
    """``b`` where ``take_b`` else ``a``: Python's ``min``/``max`` of two, NaN handling included."""
    return jnp.where(take_b, b, a)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through ``(x1, f1, g1)`` and ``(x2, f2, g2)``, clipped to
    ``bounds`` (default: the interval between the points); the middle of the bounds when the
    cubic has no real minimiser. torch's ``_cubic_interpolate``, operation for operation."""
    if bounds is None:
        ordered = x1 <= x2
        lo, hi = jnp.where(ordered, x1, x2), jnp.where(ordered, x2, x1)
    else:
        lo, hi = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    real = d2_square >= 0
    d2 = jnp.sqrt(jnp.where(real, d2_square, 0))
    min_pos = jnp.where(
        x1 <= x2,
        x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)),
    )
    clipped = _first_of(min_pos, lo, lo > min_pos)
    clipped = _first_of(clipped, hi, hi < clipped)
    return jnp.where(real, clipped, (lo + hi) / 2.0)


def _strong_wolfe(evaluate, x, t, d, f, g, gtd, max_ls,
                  tolerance_change=_LINE_SEARCH_TOLERANCE_CHANGE):
    """torch's ``_strong_wolfe`` (bracketing, then zoom by cubic interpolation) as two
    ``lax.while_loop``s: a step ``t`` along ``d`` from ``x`` (where the loss is ``f``, the
    gradient ``g`` and the slope ``gtd``), at most ``max_ls`` evaluations after the first, the
    zoom stopping when the bracket is narrower than ``tolerance_change / max|d|``. Returns
    ``(f_new, g_new, t, evaluations)``."""
    d_norm = jnp.max(jnp.abs(d))

    def armijo_fails(t_, f_new, f_prev, ls_iter):
        return (f_new > f + _C1 * t_ * gtd) | ((ls_iter > 1) & (f_new >= f_prev))

    def curvature_holds(gtd_new):
        return jnp.abs(gtd_new) <= -_C2 * gtd

    # Bracketing: carry (t, t_prev, f_prev, g_prev, gtd_prev, f_new, g_new, gtd_new, ls_iter).
    def searching(c):
        t_, _, f_prev, _, _, f_new, _, gtd_new, ls_iter = c
        found = (armijo_fails(t_, f_new, f_prev, ls_iter) | curvature_holds(gtd_new)
                 | (gtd_new >= 0))
        return (ls_iter < max_ls) & ~found

    def extrapolate(c):
        t_, t_prev, f_prev, _, gtd_prev, f_new, g_new, gtd_new, ls_iter = c
        min_step = t_ + 0.01 * (t_ - t_prev)
        max_step = t_ * 10
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t_, f_new, gtd_new,
                                    bounds=(min_step, max_step))
        f_next, g_next = evaluate(x + t_next * d)
        return (t_next, t_, f_new, g_new, gtd_new, f_next, g_next, jnp.dot(g_next, d),
                ls_iter + 1)

    f_new, g_new = evaluate(x + t * d)
    zero = jnp.zeros_like(t)
    start = (t, zero, f, g, gtd, f_new, g_new, jnp.dot(g_new, d), jnp.int32(0))
    t, t_prev, f_prev, g_prev, gtd_prev, f_new, g_new, gtd_new, ls_iter = lax.while_loop(
        searching, extrapolate, start)

    found = ls_iter < max_ls
    done = found & ~armijo_fails(t, f_new, f_prev, ls_iter) & curvature_holds(gtd_new)
    # The bracket: [t] when done (stored twice), [t_prev, t] when found, [0, t] when the
    # search ran out of evaluations.
    lo_t = jnp.where(done, t, jnp.where(found, t_prev, zero))
    lo_f = jnp.where(done, f_new, jnp.where(found, f_prev, f))
    lo_g = jnp.where(done, g_new, jnp.where(found, g_prev, g))
    lo_gtd = jnp.where(done, gtd_new, jnp.where(found, gtd_prev, gtd))
    bracket = (jnp.stack([lo_t, t]), jnp.stack([lo_f, f_new]), jnp.stack([lo_g, g_new]),
               jnp.stack([lo_gtd, gtd_new]))

    def low_of(bf):
        return jnp.where(bf[0] <= bf[1], 0, 1)

    # Zoom: carry (bracket, low, done, insufficient_progress, ls_iter).
    def zooming(c):
        (bt, _, _, _), _, done_, _, ls_iter_ = c
        tiny = jnp.abs(bt[1] - bt[0]) * d_norm < tolerance_change
        return ~done_ & (ls_iter_ < max_ls) & ~tiny

    def zoom(c):
        (bt, bf, bg, bgtd), low, _, insuf, ls_iter_ = c
        high = 1 - low
        t_ = _cubic_interpolate(bt[0], bf[0], bgtd[0], bt[1], bf[1], bgtd[1])
        b_max = _first_of(bt[0], bt[1], bt[1] > bt[0])
        b_min = _first_of(bt[0], bt[1], bt[1] < bt[0])
        eps = 0.1 * (b_max - b_min)
        near_edge = _first_of(b_max - t_, t_ - b_min, t_ - b_min < b_max - t_) < eps
        move = near_edge & (insuf | (t_ >= b_max) | (t_ <= b_min))
        away = jnp.where(jnp.abs(t_ - b_max) < jnp.abs(t_ - b_min), b_max - eps, b_min + eps)
        t_ = jnp.where(move, away, t_)
        insuf = near_edge & ~move

        f_n, g_n = evaluate(x + t_ * d)
        gtd_n = jnp.dot(g_n, d)
        worse = (f_n > f + _C1 * t_ * gtd) | (f_n >= bf[low])
        wolfe = ~worse & curvature_holds(gtd_n)
        high_takes_low = ~worse & ~wolfe & (gtd_n * (bt[high] - bt[low]) >= 0)

        def set_slot(arr, slot, value, when=True):
            return arr.at[slot].set(jnp.where(when, value, arr[slot]))

        bt, bf, bg, bgtd = (set_slot(a, high, a[low], high_takes_low) for a in (bt, bf, bg, bgtd))
        slot = jnp.where(worse, high, low)
        bt, bf, bg, bgtd = (set_slot(a, slot, v)
                            for a, v in zip((bt, bf, bg, bgtd), (t_, f_n, g_n, gtd_n)))
        low = jnp.where(worse, low_of(bf), low)
        return (bt, bf, bg, bgtd), low, wolfe, insuf, ls_iter_ + 1

    start = (bracket, low_of(bracket[1]), done, jnp.asarray(False), ls_iter)
    (bt, bf, bg, _), low, _, _, ls_iter = lax.while_loop(zooming, zoom, start)
    return bf[low], bg[low], bt[low], 1 + ls_iter


def _push(history: _History, y, s, ys) -> _History:
    """Appends the pair ``(y, s)`` (dropping the oldest when full) and rescales ``H_diag``."""
    size = history.ro.shape[0]
    i = history.head
    return _History(
        old_dirs=history.old_dirs.at[i].set(y),
        old_stps=history.old_stps.at[i].set(s),
        ro=history.ro.at[i].set(1.0 / ys),
        length=jnp.minimum(history.length + 1, size),
        head=(i + 1) % size,
        H_diag=ys / jnp.dot(y, y),
    )


def _two_loop(history: _History, flat_grad):
    """The L-BFGS direction ``-H g`` by the two-loop recursion over the stored pairs."""
    size = history.ro.shape[0]

    def newest_first(j, carry):
        q, al = carry
        i = (history.head - 1 - j) % size
        a = jnp.dot(history.old_stps[i], q) * history.ro[i]
        return q + (-a) * history.old_dirs[i], al.at[i].set(a)

    q, al = lax.fori_loop(0, history.length, newest_first,
                          (-flat_grad, jnp.zeros_like(history.ro)))

    def oldest_first(j, r):
        i = (history.head - history.length + j) % size
        be = jnp.dot(history.old_dirs[i], r) * history.ro[i]
        return r + (al[i] - be) * history.old_stps[i]

    return lax.fori_loop(0, history.length, oldest_first, q * history.H_diag)


def lbfgs(
    lr: float | Callable[[jax.Array], Any] = 1,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """L-BFGS, ``torch.optim.LBFGS``: each ``update`` performs one ``step(closure)``.

    One update runs up to ``max_iter`` L-BFGS iterations from ``params`` in one
    ``lax.while_loop`` (no Python per iteration) and returns ``updates = new_params - params``.
    Each iteration takes the direction ``d = -H g`` from the two-loop recursion over the last
    ``history_size`` pairs ``(s, y)`` (a pair is stored only if ``y.s > 1e-10``; the initial
    inverse Hessian is ``H_diag = y.s / y.y`` of the newest pair), and a step ``t``: the very
    first iteration (over all updates) uses ``min(1, 1/|g|_1) * lr``, later ones ``lr``; with
    ``line_search_fn="strong_wolfe"`` that ``t`` is the initial guess of torch's strong Wolfe
    search (``c1=1e-4``, ``c2=0.9``, cubic interpolation, its own tolerance ``1e-9``, at most
    ``max_eval`` minus the evaluations already made). The update stops early, as torch's does,
    when ``g.d > -tolerance_change``, when ``max|g| <= tolerance_grad`` (checked at the start
    too, where nothing moves), when ``max|t d| <= tolerance_change`` or the loss changed by less
    than ``tolerance_change``, or after ``max_eval`` evaluations (default ``max_iter * 5 // 4``;
    the value passed in counts as one). Without a line search the point is re-evaluated after
    every iteration but the last. The history, ``d``, ``t``, ``n_iter`` and the counters carry
    over to the next update exactly as torch's ``state`` does.

    The objective is passed the way :func:`optax.lbfgs` takes it::

        opt = lbfgs(line_search_fn="strong_wolfe")
        state = opt.init(params)
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        params = optax.apply_updates(params, updates)

    ``value_fn(params) -> scalar`` is differentiated with :func:`jax.value_and_grad` inside the
    loop; ``value`` and the gradient (``grad``, else the first argument) are those at
    ``params``, torch's first closure call. Params may be any pytree; the work is done on the
    flat vector (:func:`jax.flatten_util.ravel_pytree`) in its dtype.

    Differences from :func:`optax.lbfgs`: optax performs one L-BFGS iteration per update and
    by default a zoom line search (``max_linesearch_steps=20``, initial step 1) on every
    iteration, scales the first direction by ``min(1, 1/|g|_2)`` (torch: ``1/|g|_1``), keeps
    ``memory_size=10`` pairs (torch: ``history_size=100``) without the ``y.s > 1e-10`` test,
    and has no tolerances or evaluation budget: the caller's loop decides when to stop. On the
    2-D Rosenbrock function from ``(-1.5, 2)`` in float64, one update here with
    ``line_search_fn="strong_wolfe"`` (19 iterations, then torch's 25 evaluations are spent)
    ends at ``(-0.0851, -0.0288)``, loss 1.31, exactly where torch's ``step`` ends; twenty
    ``optax.lbfgs()`` updates end at ``(0.346, 0.0988)``, loss 0.47: 0.43 apart in max-norm
    (``tests/test_lbfgs.py`` asserts both).

    Args:
      lr: step size (torch's ``lr``): a float ``>= 0`` or a schedule ``count -> lr`` evaluated
        at the number of updates so far.
      max_iter: maximal number of iterations per update, ``>= 1``.
      max_eval: maximal number of objective evaluations per update, ``>= 1``; ``None`` means
        ``max_iter * 5 // 4``.
      tolerance_grad: stop when ``max|g| <= tolerance_grad``, ``>= 0``.
      tolerance_change: stop on a step, loss change or slope below this, ``>= 0``.
      history_size: number of ``(s, y)`` pairs kept, ``>= 1``.
      line_search_fn: ``None`` (fixed step ``t``) or ``"strong_wolfe"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`LBFGSState`; its
      ``update(grads, state, params, *, value, value_fn, grad=None)`` requires ``params``,
      ``value`` and ``value_fn``.

    Raises:
      TypeError: an argument of the wrong type; ValueError: a value out of range. Both name
        the argument.

    Example:
        >>> f = lambda p: jnp.sum((p - 3.0) ** 2)
        >>> opt = lbfgs()
        >>> params = jnp.zeros(2)
        >>> state = opt.init(params)
        >>> value, grad = jax.value_and_grad(f)(params)
        >>> updates, state = opt.update(grad, state, params, value=value, value_fn=f)
        >>> optax.apply_updates(params, updates)
        Array([3., 3.], dtype=float32)
    """
    lr = _checks.check_lr(lr)
    max_iter = _checks.check_int(max_iter, "max_iter", low=1)
    max_eval = (max_iter * 5 // 4 if max_eval is None
                else _checks.check_int(max_eval, "max_eval", low=1))
    tolerance_grad = _checks.check_real(tolerance_grad, "tolerance_grad", low=0.0)
    tolerance_change = _checks.check_real(tolerance_change, "tolerance_change", low=0.0)
    history_size = _checks.check_int(history_size, "history_size", low=1)
    if line_search_fn is not None:
        _checks.check_choice(line_search_fn, "line_search_fn", ("strong_wolfe",))

    def init_fn(params) -> LBFGSState:
        x, _ = ravel_pytree(params)
        n, dtype = x.shape[0], x.dtype
        zero = jnp.zeros((), dtype)
        return LBFGSState(
            count=jnp.int32(0), d=jnp.zeros(n, dtype), t=zero,
            old_dirs=jnp.zeros((history_size, n), dtype),
            old_stps=jnp.zeros((history_size, n), dtype), ro=jnp.zeros(history_size, dtype),
            history_len=jnp.int32(0), history_head=jnp.int32(0), H_diag=jnp.ones((), dtype),
            prev_flat_grad=jnp.zeros(n, dtype), prev_loss=zero, n_iter=jnp.int32(0),
            func_evals=jnp.int32(0),
        )

    def update_fn(grads, state: LBFGSState, params=None, *, value=None, value_fn=None,
                  grad=None, **extra_args):
        del extra_args  # other transformations' extra arguments (optax.chain passes all)
        if params is None or value is None or value_fn is None:
            raise ValueError("lbfgs().update needs params, value= (the loss at params) and "
                             "value_fn= (params -> loss), as optax.lbfgs does")
        x0, unravel = ravel_pytree(params)
        dtype = x0.dtype
        flat_grad0 = ravel_pytree(grads if grad is None else grad)[0].astype(dtype)
        value_and_grad = jax.value_and_grad(lambda x: value_fn(unravel(x)))
        step_lr = jnp.asarray(lr(state.count) if callable(lr) else lr, dtype)

        def evaluate(x):
            loss, g = value_and_grad(x)
            return jnp.asarray(loss, dtype), g

        def optimal(g):
            return jnp.max(jnp.abs(g)) <= tolerance_grad

        def iteration(c: _Iterate) -> _Iterate:
            step_iter, n_iter = c.step_iter + 1, c.n_iter + 1
            first = n_iter == 1

            def steepest_descent(_):
                empty = _History(jnp.zeros_like(c.history.old_dirs),
                                 jnp.zeros_like(c.history.old_stps), jnp.zeros_like(c.history.ro),
                                 jnp.int32(0), jnp.int32(0), jnp.ones((), dtype))
                return -c.flat_grad, empty

            def quasi_newton(_):
                y = c.flat_grad - c.prev_flat_grad
                s = c.d * c.t
                ys = jnp.dot(y, s)
                history = lax.cond(ys > _CURVATURE_EPS, lambda h: _push(h, y, s, ys),
                                   lambda h: h, c.history)
                return _two_loop(history, c.flat_grad), history

            d, history = lax.cond(first, steepest_descent, quasi_newton, None)
            inv_l1 = 1.0 / jnp.sum(jnp.abs(c.flat_grad))
            t = jnp.where(first, _first_of(jnp.ones((), dtype), inv_l1, inv_l1 < 1.0) * step_lr,
                          step_lr)
            gtd = jnp.dot(c.flat_grad, d)

            def no_progress(_):
                return c.x, c.loss, c.flat_grad, t, jnp.int32(0), jnp.asarray(True)

            def move(_):
                if line_search_fn is None:
                    x = c.x + t * d
                    last = step_iter == max_iter
                    loss, g = lax.cond(last, lambda: (c.loss, c.flat_grad), lambda: evaluate(x))
                    evals, t_ = jnp.where(last, 0, 1).astype(jnp.int32), t
                else:
                    loss, g, t_, evals = _strong_wolfe(
                        evaluate, c.x, t, d, c.loss, c.flat_grad, gtd, max_eval - c.step_evals)
                    x = c.x + t_ * d
                step_evals = c.step_evals + evals
                stop = ((step_iter == max_iter) | (step_evals >= max_eval) | optimal(g)
                        | (jnp.max(jnp.abs(d * t_)) <= tolerance_change)
                        | (jnp.abs(loss - c.loss) < tolerance_change))
                return x, loss, g, t_, evals, stop

            x, loss, g, t, evals, stop = lax.cond(gtd > -tolerance_change, no_progress, move,
                                                  None)
            return _Iterate(
                x=x, loss=loss, flat_grad=g, d=d, t=t, history=history,
                prev_flat_grad=c.flat_grad, prev_loss=c.loss, n_iter=n_iter,
                func_evals=c.func_evals + evals, step_iter=step_iter,
                step_evals=c.step_evals + evals, stop=stop,
            )

        start = _Iterate(
            x=x0, loss=jnp.asarray(value, dtype), flat_grad=flat_grad0, d=state.d, t=state.t,
            history=_History(state.old_dirs, state.old_stps, state.ro, state.history_len,
                             state.history_head, state.H_diag),
            prev_flat_grad=state.prev_flat_grad, prev_loss=state.prev_loss,
            n_iter=state.n_iter, func_evals=state.func_evals + 1, step_iter=jnp.int32(0),
            step_evals=jnp.int32(1), stop=optimal(flat_grad0),
        )
        end = lax.while_loop(lambda c: ~c.stop & (c.step_iter < max_iter), iteration, start)
        h = end.history
        new_state = LBFGSState(
            count=state.count + 1, d=end.d, t=end.t, old_dirs=h.old_dirs, old_stps=h.old_stps,
            ro=h.ro, history_len=h.length, history_head=h.head, H_diag=h.H_diag,
            prev_flat_grad=end.prev_flat_grad, prev_loss=end.prev_loss, n_iter=end.n_iter,
            func_evals=end.func_evals,
        )
        return unravel(end.x - x0), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
