"""Parity cases for ``tests/test_losses.py``: one row per (loss, configuration).

A case makes NumPy inputs (float64 floats, int64 labels), names the float inputs to
differentiate, and gives the jaxfund call and the PyTorch reference call on the same inputs.
PyTorch puts classes on axis 1, jaxfund on the last axis: the torch calls move the axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np
import torch
import torch.nn.functional as F

from jaxfund import losses as L

R3 = ("mean", "sum", "none")


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[np.random.Generator], dict]
    diff: tuple[str, ...]
    ours: Callable[..., jax.Array]
    ref: Callable[..., torch.Tensor]
    reductions: tuple[str, ...] = R3


def _cl(t: torch.Tensor) -> torch.Tensor:
    """Class-last (ours) to class-second (torch)."""
    return t.movedim(-1, 1) if t.ndim > 1 else t


def torch_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, from its documented definition (torch ops only)."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def numpy_dice(p: np.ndarray, t: np.ndarray, smooth: float, per_class: bool) -> np.ndarray:
    """Closed-form soft Dice per sample: 1 - (2Σpt + s)/(Σp + Σt + s)."""
    axes = tuple(range(1, p.ndim - 1 if per_class else p.ndim))
    d = 1 - (2 * (p * t).sum(axes) + smooth) / (p.sum(axes) + t.sum(axes) + smooth)
    return d.mean(-1) if per_class else d


# ---- input makers -------------------------------------------------------------------------


def _pair(shape=(4, 5), **extra):
    def make(rng):
        out = {"input": rng.normal(size=shape), "target": rng.normal(size=shape)}
        out.update({k: f(rng) for k, f in extra.items()})
        return out

    return make


def _u(lo, hi, shape):
    return lambda rng: rng.uniform(lo, hi, size=shape)


def _sign(shape):
    return lambda rng: rng.choice([-1.0, 1.0], size=shape)


def _labels(shape, num_classes, ignore=None, ignore_index=-100):
    def f(rng):
        y = rng.integers(0, num_classes, size=shape)
        if ignore is not None:
            y.flat[list(ignore)] = ignore_index
        return y

    return f


def _make(**fields):
    return lambda rng: {k: f(rng) for k, f in fields.items()}


def _normal(shape):
    return lambda rng: rng.normal(size=shape)


def _probs(shape):
    return lambda rng: rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def _multilabel_targets(rng):
    y = np.full((4, 5), -1)
    for n, k in enumerate([2, 0, 5, 3]):
        y[n, :k] = rng.permutation(5)[:k]
    return y


def _ctc(blank):
    """Four sequences: repeats, padding, a full-length input and an empty target."""
    labels = np.array([c for c in range(6) if c != blank])
    idx = np.array([[0, 1, 1, 2], [3, 3, 0, 0], [4, 0, 2, 1], [0, 0, 0, 0]])

    def make(rng):
        return {
            "logits": rng.normal(size=(4, 12, 6)),
            "targets": labels[idx],
            "input_lengths": np.array([12, 9, 10, 5]),
            "target_lengths": np.array([4, 2, 3, 0]),
        }

    return make


def _cos_dist(a, b, lib):
    num = (a * b).sum(-1)
    if lib is torch:
        return 1 - num / (a.norm(dim=-1) * b.norm(dim=-1))
    import jax.numpy as jnp

    return 1 - num / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1))


# ---- the table ----------------------------------------------------------------------------

IO = ("input", "target")
IOW = ("input", "target", "weight")
W45 = _u(0.5, 2.0, (4, 5))

CASES: list[Case] = [
    Case("mse", _pair(), IO, lambda r, **a: L.mse_loss(**a, reduction=r),
         lambda r, **a: F.mse_loss(**a, reduction=r)),
    Case("mse-weight", _pair(weight=W45), IOW, lambda r, **a: L.mse_loss(**a, reduction=r),
         lambda r, **a: F.mse_loss(**a, reduction=r)),
    Case("l1", _pair(), IO, lambda r, **a: L.l1_loss(**a, reduction=r),
         lambda r, **a: F.l1_loss(**a, reduction=r)),
    Case("l1-weight", _pair(weight=W45), IOW, lambda r, **a: L.l1_loss(**a, reduction=r),
         lambda r, **a: F.l1_loss(**a, reduction=r)),
    Case("huber", _pair(), IO, lambda r, **a: L.huber_loss(**a, reduction=r),
         lambda r, **a: F.huber_loss(**a, reduction=r)),
    Case("huber-d0.5-weight", _pair(weight=W45), IOW,
         lambda r, **a: L.huber_loss(**a, reduction=r, delta=0.5),
         lambda r, **a: F.huber_loss(**a, reduction=r, delta=0.5)),
    *[
        Case(f"smooth_l1-b{b}", _pair(), IO,
             lambda r, b=b, **a: L.smooth_l1_loss(**a, reduction=r, beta=b),
             lambda r, b=b, **a: F.smooth_l1_loss(**a, reduction=r, beta=b))
        for b in (1.0, 0.3, 0.0)
    ],
    *[
        Case(f"poisson-log{li}-full{fu}",
             _make(input=_normal((4, 5)) if li else _u(0.1, 3, (4, 5)),
                   target=_u(0.05, 4, (4, 5))), IO,
             lambda r, li=li, fu=fu, **a: L.poisson_nll_loss(**a, log_input=li, full=fu,
                                                           reduction=r),
             lambda r, li=li, fu=fu, **a: F.poisson_nll_loss(**a, log_input=li, full=fu,
                                                           reduction=r))
        for li in (True, False) for fu in (False, True)
    ],
    *[
        Case(f"gaussian-var{vs}-full{fu}", _pair((4, 5), var=_u(0.2, 2, vs)),
             ("input", "target", "var"),
             lambda r, fu=fu, **a: L.gaussian_nll_loss(**a, full=fu, reduction=r),
             lambda r, fu=fu, **a: F.gaussian_nll_loss(**a, full=fu, reduction=r))
        for vs, fu in (((4, 5), False), ((4,), True), ((4, 1), False), ((1, 5), False))
    ],
    Case("gaussian-var-below-eps",
         _pair((4, 5), var=lambda rng: np.where(rng.uniform(size=(4, 5)) < 0.3, 1e-8,
                                                rng.uniform(0.2, 2, (4, 5)))),
         ("input", "target", "var"),
         lambda r, **a: L.gaussian_nll_loss(**a, reduction=r),
         lambda r, **a: F.gaussian_nll_loss(**a, reduction=r)),
    Case("gaussian-var-float", _pair((4, 5)), IO,
         lambda r, **a: L.gaussian_nll_loss(**a, var=0.7, reduction=r),
         lambda r, **a: F.gaussian_nll_loss(**a, var=0.7, reduction=r)),
    Case("bce", _make(input=_u(0.01, 0.99, (4, 5)), target=_u(0, 1, (4, 5))), IO,
         lambda r, **a: L.binary_cross_entropy(**a, reduction=r),
         lambda r, **a: F.binary_cross_entropy(**a, reduction=r)),
    Case("bce-weight",
         _make(input=_u(0.01, 0.99, (4, 5)), target=_u(0, 1, (4, 5)), weight=_u(0.5, 2, (5,))),
         IO, lambda r, **a: L.binary_cross_entropy(**a, reduction=r),
         lambda r, **a: F.binary_cross_entropy(**a, reduction=r)),
    Case("bce_logits", _pair(target=_u(0, 1, (4, 5))), IO,
         lambda r, **a: L.binary_cross_entropy_with_logits(**a, reduction=r),
         lambda r, **a: F.binary_cross_entropy_with_logits(**a, reduction=r)),
    Case("bce_logits-weight-pos_weight",
         _pair((2, 3, 5), target=_u(0, 1, (2, 3, 5)), weight=_u(0.5, 2, (3, 1)),
               pos_weight=_u(0.5, 3, (5,))),
         IO,
         lambda r, **a: L.binary_cross_entropy_with_logits(**a, reduction=r),
         lambda r, **a: F.binary_cross_entropy_with_logits(**a, reduction=r)),
    Case("soft_margin", _pair(target=_sign((4, 5))), ("input",),
         lambda r, **a: L.soft_margin_loss(**a, reduction=r),
         lambda r, **a: F.soft_margin_loss(**a, reduction=r)),
    Case("multilabel_soft_margin", _pair(target=_u(0, 1, (4, 5))), IO,
         lambda r, **a: L.multilabel_soft_margin_loss(**a, reduction=r),
         lambda r, **a: F.multilabel_soft_margin_loss(**a, reduction=r)),
    Case("multilabel_soft_margin-weight-3d",
         _pair((2, 3, 5), target=lambda rng: rng.integers(0, 2, (2, 3, 5)).astype(float),
               weight=_u(0.5, 2, (5,))),
         ("input",),
         lambda r, **a: L.multilabel_soft_margin_loss(**a, reduction=r),
         lambda r, **a: F.multilabel_soft_margin_loss(**a, reduction=r)),
    *[
        Case(f"focal-a{al}-g{ga}", _pair(target=_u(0, 1, (4, 5))), IO,
             lambda r, al=al, ga=ga, **a: L.sigmoid_focal_loss(a["input"], a["target"], al, ga, r),
             lambda r, al=al, ga=ga, **a: torch_sigmoid_focal_loss(a["input"], a["target"], al,
                                                                    ga, r))
        for al, ga in ((0.25, 2.0), (-1.0, 1.5), (0.6, 0.0))
    ],
    Case("ce", _make(input=_normal((6, 5)), target=_labels((6,), 5)), ("input",),
         lambda r, **a: L.cross_entropy(**a, reduction=r),
         lambda r, **a: F.cross_entropy(**a, reduction=r)),
    Case("ce-weight-ignore",
         _make(input=_normal((6, 5)), target=_labels((6,), 5, ignore=(1, 4)),
               weight=_u(0.5, 2, (5,))), ("input",),
         lambda r, **a: L.cross_entropy(**a, reduction=r),
         lambda r, **a: F.cross_entropy(**a, reduction=r)),
    Case("ce-smoothing-weight-ignore3",
         _make(input=_normal((6, 5)), target=_labels((6,), 5, ignore=(2,), ignore_index=3),
               weight=_u(0.5, 2, (5,))), ("input",),
         lambda r, **a: L.cross_entropy(**a, ignore_index=3, label_smoothing=0.2, reduction=r),
         lambda r, **a: F.cross_entropy(**a, ignore_index=3, label_smoothing=0.2, reduction=r)),
    Case("ce-spatial-smoothing",
         _make(input=_normal((2, 3, 4, 5)), target=_labels((2, 3, 4), 5, ignore=(0, 7))),
         ("input",),
         lambda r, **a: L.cross_entropy(**a, label_smoothing=0.1, reduction=r),
         lambda r, input, target: F.cross_entropy(_cl(input), target, label_smoothing=0.1,
                                                  reduction=r)),
    Case("ce-axis1",
         _make(input=_normal((3, 5, 4)), target=_labels((3, 4), 5), weight=_u(0.5, 2, (5,))),
         ("input",),
         lambda r, **a: L.cross_entropy(**a, axis=1, reduction=r),
         lambda r, **a: F.cross_entropy(**a, reduction=r)),
    Case("ce-unbatched", _make(input=_normal((5,)), target=lambda rng: np.array(3)), ("input",),
         lambda r, **a: L.cross_entropy(**a, reduction=r),
         lambda r, **a: F.cross_entropy(**a, reduction=r)),
    Case("ce-probs", _make(input=_normal((6, 5)), target=_probs((6, 5))), IO,
         lambda r, **a: L.cross_entropy(**a, reduction=r),
         lambda r, **a: F.cross_entropy(**a, reduction=r)),
    Case("ce-probs-spatial-weight-smoothing",
         _make(input=_normal((2, 3, 5)), target=_probs((2, 3, 5)), weight=_u(0.5, 2, (5,))),
         IO,
         lambda r, **a: L.cross_entropy(**a, label_smoothing=0.3, reduction=r),
         lambda r, input, target, weight: F.cross_entropy(
             _cl(input), _cl(target), weight, label_smoothing=0.3, reduction=r)),
    Case("nll", _make(input=_normal((6, 5)), target=_labels((6,), 5)), ("input",),
         lambda r, **a: L.nll_loss(**a, reduction=r),
         lambda r, **a: F.nll_loss(**a, reduction=r)),
    Case("nll-spatial-weight-ignore",
         _make(input=_normal((2, 3, 4, 5)), target=_labels((2, 3, 4), 5, ignore=(1, 5, 9)),
               weight=_u(0.5, 2, (5,))), ("input",),
         lambda r, **a: L.nll_loss(**a, reduction=r),
         lambda r, input, target, weight: F.nll_loss(_cl(input).contiguous(), target, weight, reduction=r)),
    Case("multi_margin-p1", _make(input=_normal((6, 5)), target=_labels((6,), 5)), ("input",),
         lambda r, **a: L.multi_margin_loss(**a, reduction=r),
         lambda r, **a: F.multi_margin_loss(**a, reduction=r)),
    Case("multi_margin-p2-weight",
         _make(input=_normal((6, 5)), target=_labels((6,), 5), weight=_u(0.5, 2, (5,))),
         ("input",),
         lambda r, **a: L.multi_margin_loss(**a, p=2, margin=0.7, reduction=r),
         lambda r, **a: F.multi_margin_loss(**a, p=2, margin=0.7, reduction=r)),
    Case("multi_margin-unbatched", _make(input=_normal((5,)), target=lambda rng: np.array(2)),
         ("input",),
         lambda r, **a: L.multi_margin_loss(**a, reduction=r),
         lambda r, **a: F.multi_margin_loss(**a, reduction=r)),
    Case("multilabel_margin", _make(input=_normal((4, 5)), target=_multilabel_targets),
         ("input",),
         lambda r, **a: L.multilabel_margin_loss(**a, reduction=r),
         lambda r, **a: F.multilabel_margin_loss(**a, reduction=r)),
    *[
        Case(f"kl_div-log_target{lt}",
             _make(input=lambda rng: np.log(rng.dirichlet(np.ones(5), size=(2, 3))),
                   target=(lambda rng: np.log(rng.dirichlet(np.ones(5), size=(2, 3))))
                   if lt else _probs((2, 3, 5))), IO,
             lambda r, lt=lt, **a: L.kl_div(**a, log_target=lt, reduction=r),
             lambda r, lt=lt, **a: F.kl_div(**a, log_target=lt, reduction=r),
             (*R3, "batchmean"))
        for lt in (False, True)
    ],
    *[
        Case(f"cosine_embedding-m{m}",
             _make(input1=_normal((6, 4)), input2=_normal((6, 4)), target=_sign((6,))),
             ("input1", "input2"),
             lambda r, m=m, **a: L.cosine_embedding_loss(**a, margin=m, reduction=r),
             lambda r, m=m, **a: F.cosine_embedding_loss(**a, margin=m, reduction=r))
        for m in (0.0, 0.3)
    ],
    *[
        Case(f"triplet-p{p}-swap{sw}-m{m}",
             _make(anchor=_normal((6, 4)), positive=_normal((6, 4)), negative=_normal((6, 4))),
             ("anchor", "positive", "negative"),
             lambda r, p=p, sw=sw, m=m, **a: L.triplet_margin_loss(**a, margin=m, p=p, swap=sw,
                                                                   reduction=r),
             lambda r, p=p, sw=sw, m=m, **a: F.triplet_margin_loss(**a, margin=m, p=p, swap=sw,
                                                                   reduction=r))
        for p, sw, m in ((2, False, 1.0), (1, True, 1.0), (3, False, 0.5), (2, True, 2.0))
    ],
    Case("triplet_distance-default",
         _make(anchor=_normal((6, 4)), positive=_normal((6, 4)), negative=_normal((6, 4))),
         ("anchor", "positive", "negative"),
         lambda r, **a: L.triplet_margin_with_distance_loss(**a, reduction=r),
         lambda r, **a: F.triplet_margin_with_distance_loss(**a, reduction=r)),
    Case("triplet_distance-cosine-swap",
         _make(anchor=_normal((6, 4)), positive=_normal((6, 4)), negative=_normal((6, 4))),
         ("anchor", "positive", "negative"),
         lambda r, **a: L.triplet_margin_with_distance_loss(
             **a, distance_function=lambda x, y: _cos_dist(x, y, jax), margin=0.5, swap=True,
             reduction=r),
         lambda r, **a: F.triplet_margin_with_distance_loss(
             **a, distance_function=lambda x, y: _cos_dist(x, y, torch), margin=0.5, swap=True,
             reduction=r)),
    *[
        Case(f"margin_ranking-m{m}",
             _make(input1=_normal((6,)), input2=_normal((6,)), target=_sign((6,))),
             ("input1", "input2"),
             lambda r, m=m, **a: L.margin_ranking_loss(**a, margin=m, reduction=r),
             lambda r, m=m, **a: F.margin_ranking_loss(**a, margin=m, reduction=r))
        for m in (0.0, 0.5)
    ],
    *[
        Case(f"hinge_embedding-m{m}",
             _make(input=_u(0, 3, (4, 5)), target=_sign((4, 5))), ("input",),
             lambda r, m=m, **a: L.hinge_embedding_loss(**a, margin=m, reduction=r),
             lambda r, m=m, **a: F.hinge_embedding_loss(**a, margin=m, reduction=r))
        for m in (1.0, 2.0)
    ],
    Case("ctc", _ctc(0), ("logits",),
         lambda r, logits, **a: L.ctc_loss(jax.nn.log_softmax(logits), **a, reduction=r),
         lambda r, logits, **a: F.ctc_loss(
             F.log_softmax(logits, -1).transpose(0, 1), **a, reduction=r)),
    Case("ctc-blank3", _ctc(3), ("logits",),
         lambda r, logits, **a: L.ctc_loss(jax.nn.log_softmax(logits), **a, blank=3,
                                           reduction=r),
         lambda r, logits, **a: F.ctc_loss(
             F.log_softmax(logits, -1).transpose(0, 1), **a, blank=3, reduction=r)),
]


# ---- what torch accepts beyond the parity table (issue 16) ----------------------------------
# Non-finite values, zero-size and 0-d inputs, broadcasting, margins and p values torch allows,
# integer and bool targets. One row per (loss, situation); compared like CASES, NaN and inf
# positions included.

NONFINITE = np.array([np.nan, np.inf, -np.inf, 0.0, 1.5, -0.7])


def _nf(shape, row=0):
    """Normal values with ``NONFINITE`` (cycled) in ``row`` of the first axis (a 1-D array is
    all ``NONFINITE``)."""

    def make(rng):
        x = rng.normal(size=shape)
        if x.ndim == 1:
            return np.resize(NONFINITE, shape)
        x[row] = np.resize(NONFINITE, x[row].shape)
        return x

    return make


def _const(value):
    return lambda rng: np.asarray(value)


def _const_make(**values):
    return _make(**{k: _const(v) for k, v in values.items()})


def _row(id, make, diff, fn, reductions=R3, **kw):
    """A row whose jaxfund and torch calls have the same name and arguments."""
    return Case(id, make, diff, lambda r, **a: getattr(L, fn)(**a, **kw, reduction=r),
                lambda r, **a: getattr(F, fn)(**a, **kw, reduction=r), reductions)


def _distance(id, make, diff=("x1", "x2"), **kw):
    return Case(id, make, diff, lambda r, **a: L.pairwise_distance(**a, **kw),
                lambda r, **a: F.pairwise_distance(**a, **kw), ("none",))


I = ("input",)
I12 = ("input1", "input2")
APN = ("anchor", "positive", "negative")
PM6 = [1, 1, -1, 1, -1, 1]  # soft_margin: -y·x is never +inf against NONFINITE
NF_IO = _make(input=_nf((3, 6)), target=_nf((3, 6), 2))
EMPTY = _make(input=_normal((0, 3)), target=_normal((0, 3)))
SCALAR = _make(input=_normal(()), target=_normal(()))
LABELS6 = _const([0, 1, 2, 3, 4, 5])

EDGE_CASES: list[Case] = [
    # -- NaN and ±inf in every argument --------------------------------------------------------
    *[_row(f"nonfinite-{fn}{''.join(f'-{k}{v}' for k, v in kw.items())}", NF_IO, IO, fn, **kw)
      for fn, kw in (
        ("mse_loss", {}), ("l1_loss", {}), ("huber_loss", {}), ("smooth_l1_loss", {}),
        ("smooth_l1_loss", {"beta": 0.0}), ("kl_div", {}), ("kl_div", {"log_target": True}),
        ("poisson_nll_loss", {}), ("binary_cross_entropy_with_logits", {}))],
    _row("nonfinite-poisson-full", _make(input=_u(0.1, 2, (3, 6)), target=_nf((3, 6), 1)),
         ("input",), "poisson_nll_loss", log_input=False, full=True),
    _row("nonfinite-gaussian", _make(input=_nf((3, 6)), target=_nf((3, 6), 1),
                                     var=lambda rng: np.abs(_nf((3, 6), 2)(rng))),
         ("input", "target", "var"), "gaussian_nll_loss"),
    _row("nonfinite-bce_logits-pos_weight",
         _make(input=_nf((3, 6)), target=_u(0, 1, (3, 6)), pos_weight=_u(0.5, 2, (6,))),
         IO, "binary_cross_entropy_with_logits"),
    _row("nonfinite-soft_margin", _make(input=_nf((6,)), target=_const(PM6)), I,
         "soft_margin_loss"),
    _row("nonfinite-multilabel_soft_margin", NF_IO, IO, "multilabel_soft_margin_loss"),
    Case("nonfinite-focal", NF_IO, IO,
         lambda r, **a: L.sigmoid_focal_loss(a["input"], a["target"], reduction=r),
         lambda r, **a: torch_sigmoid_focal_loss(a["input"], a["target"], reduction=r)),
    _row("nonfinite-cross_entropy", _make(input=_nf((3, 6)), target=_const([0, 5, 2])), I,
         "cross_entropy"),
    _row("nonfinite-cross_entropy-probs", _make(input=_nf((3, 6)), target=_probs((3, 6))), I,
         "cross_entropy", label_smoothing=0.1),
    _row("nonfinite-nll", _make(input=_nf((3, 6)), target=_const([0, 5, 2])), I, "nll_loss"),
    *[_row(f"nonfinite-multi_margin-p{p}",
           _make(input=_nf((6, 6), 1), target=LABELS6, weight=_u(0.5, 2, (6,))), I,
           "multi_margin_loss", p=p) for p in (1, 2)],
    _row("nonfinite-multilabel_margin",
         _make(input=_nf((3, 6), 1), target=_const([[0, 3, -1, 0, 0, 0], [1, -1, 0, 0, 0, 0],
                                                    [4, 5, 2, -1, 0, 0]])), I,
         "multilabel_margin_loss"),
    *[_row(f"nonfinite-cosine_embedding-m{m}",
           _make(input1=_nf((6, 3), 1), input2=_normal((6, 3)), target=_const(PM6)), I12,
           "cosine_embedding_loss", margin=m) for m in (0.0, 0.5)],
    _row("nonfinite-cosine_embedding-rows", _make(
        input1=_const([[np.nan, 1], [np.inf, 1], [-np.inf, 0], [np.nan, 0], [np.inf, 0]]),
        input2=_const(np.ones((5, 2))), target=_const([1, -1, -1, -1, 1])), I12,
        "cosine_embedding_loss"),
    *[_row(f"nonfinite-margin_ranking-y{y}",
           _make(input1=_nf((6,)), input2=_normal((6,)), target=_const([y] * 6)), I12,
           "margin_ranking_loss") for y in (1, -1)],
    *[_row(f"nonfinite-hinge_embedding-y{y}", _make(input=_nf((6,)), target=_const([y] * 6)), I,
           "hinge_embedding_loss") for y in (1, -1)],
    *[_row(f"nonfinite-triplet-p{p}-swap{sw}",
           _make(anchor=_nf((4, 6), 0), positive=_nf((4, 6), 1), negative=_nf((4, 6), 2)), APN,
           "triplet_margin_loss", p=p, swap=sw)
      for p, sw in ((2, False), (1, True), (3, False), (np.inf, False))],
    Case("nonfinite-triplet_distance",
         _make(anchor=_nf((4, 6), 0), positive=_nf((4, 6), 1), negative=_nf((4, 6), 2)), APN,
         lambda r, **a: L.triplet_margin_with_distance_loss(**a, reduction=r),
         lambda r, **a: F.triplet_margin_with_distance_loss(**a, reduction=r)),
    *[_distance(f"nonfinite-pairwise-p{p}", _make(x1=_nf((3, 6)), x2=_nf((3, 6), 1)), p=p)
      for p in (2, 1, 3, 0.5, -1, 0, np.inf, -np.inf)],
    # -- zero-size inputs: an empty batch, an empty class axis --------------------------------
    *[_row(f"empty-{fn}", EMPTY, IO, fn) for fn in (
        "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss", "kl_div",
        "binary_cross_entropy_with_logits", "multilabel_soft_margin_loss")],
    _row("empty-soft_margin", EMPTY, I, "soft_margin_loss"),
    _row("empty-bce", _make(input=_u(0, 1, (0, 3)), target=_u(0, 1, (0, 3))), IO,
         "binary_cross_entropy"),
    _row("empty-gaussian", _make(input=_normal((0, 3)), target=_normal((0, 3)),
                                 var=_u(0.5, 2, (0,))), ("input", "target", "var"),
         "gaussian_nll_loss"),
    *[_row(f"empty-{fn}", _make(input=_normal((0, c)), target=_const(np.zeros(0, np.int64))),
           I, fn) for fn in ("cross_entropy", "nll_loss") for c in (3, 0)],
    *[_row(f"empty-cross_entropy-probs-{s}", _make(input=_normal(s), target=_normal(s)), IO,
           "cross_entropy") for s in ((0, 3), (2, 0), (0,))],
    _row("empty-multi_margin", _make(input=_normal((0, 3)), target=_const(np.zeros(0, np.int64))),
         I, "multi_margin_loss", ("none",)),
    _row("empty-multilabel_margin", _make(input=_normal((0, 3)),
                                          target=_const(np.zeros((0, 3), np.int64))),
         I, "multilabel_margin_loss", ("none",)),
    _row("empty-cosine_embedding", _make(input1=_normal((0, 3)), input2=_normal((0, 3)),
                                         target=_const(np.zeros(0))), I12,
         "cosine_embedding_loss"),
    _row("empty-cosine_embedding-features",
         _make(input1=_normal((3, 0)), input2=_normal((3, 0)), target=_const([1, -1, 1])), I12,
         "cosine_embedding_loss"),
    _row("empty-margin_ranking", _make(input1=_normal((0,)), input2=_normal((0,)),
                                       target=_const(np.zeros(0))), I12, "margin_ranking_loss"),
    _row("empty-hinge_embedding", EMPTY, I, "hinge_embedding_loss"),
    _row("empty-triplet", _make(anchor=_normal((0, 3)), positive=_normal((0, 3)),
                                negative=_normal((0, 3))), APN, "triplet_margin_loss"),
    _distance("empty-pairwise-features", _make(x1=_normal((3, 0)), x2=_normal((3, 0)))),
    # -- 0-d (scalar) inputs -------------------------------------------------------------------
    *[_row(f"scalar-{fn}", SCALAR, IO, fn) for fn in (
        "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss", "kl_div",
        "binary_cross_entropy_with_logits")],
    _row("scalar-soft_margin", _make(input=_normal(()), target=_const(-1.0)), I,
         "soft_margin_loss"),
    _row("scalar-gaussian", _make(input=_normal(()), target=_normal(()), var=_u(0.5, 2, ())),
         ("input", "target", "var"), "gaussian_nll_loss"),
    *[_row(f"scalar-multi_margin-target{np.shape(t)}", _make(input=_normal(()), target=_const(t)),
           I, "multi_margin_loss") for t in (0, [0])],
    _row("scalar-multi_margin-vector-target(1,)", _make(input=_normal((4,)), target=_const([2])),
         I, "multi_margin_loss"),
    _row("scalar-multi_margin-row-target()", _make(input=_normal((1, 4)), target=_const(2)), I,
         "multi_margin_loss", p=2, margin=0.5),
    *[_row(f"scalar-multilabel_margin-target{t}", _make(input=_normal(()), target=_const(t)), I,
           "multilabel_margin_loss") for t in (0, [-1])],
    _row("scalar-margin_ranking", _make(input1=_normal(()), input2=_normal(()),
                                        target=_const(-1.0)), I12, "margin_ranking_loss"),
    _row("scalar-hinge_embedding", _make(input=_normal(()), target=_const(-1.0)), I,
         "hinge_embedding_loss"),
    _row("scalar-triplet", _make(anchor=_normal(()), positive=_normal(()), negative=_normal(())),
         APN, "triplet_margin_loss", margin=3.0),
    _distance("scalar-pairwise", _make(x1=_normal(()), x2=_normal(())), p=3),
    # -- broadcasting torch allows ------------------------------------------------------------
    *[_row(f"broadcast-margin_ranking-{s1}-{s2}-{st}",
           _make(input1=_normal(s1), input2=_normal(s2), target=_sign(st)), I12,
           "margin_ranking_loss", margin=0.3)
      for s1, s2, st in (((5, 2), (5, 1), (5, 2)), ((5, 2), (1, 2), (5, 2)),
                         ((5, 2), (5, 2), (5, 1)), ((5,), (5,), (1,)))],
    *[_row(f"broadcast-hinge_embedding-{si}-{st}", _make(input=_u(0, 2, si), target=_sign(st)),
           I, "hinge_embedding_loss") for si, st in (((5, 5), (1, 5)), ((5,), (5, 5)))],
    *[_row(f"broadcast-gaussian-{si}-{st}-{sv}",
           _make(input=_normal(si), target=_normal(st), var=_u(0.5, 2, sv)),
           ("input", "target", "var"), "gaussian_nll_loss")
      for si, st, sv in (((4, 5), (4, 1), (4, 5)), ((4, 5), (5,), (4,)), ((4, 5), (1, 5), (4, 1)),
                         ((4, 1), (4, 5), (4,)), ((2, 3, 4), (3, 4), (1, 3, 4)))],
    *[_row(f"broadcast-{fn}-{si}-{st}", _make(input=_normal(si), target=_u(0, 1, st)), IO, fn)
      for fn in ("poisson_nll_loss", "kl_div", "multilabel_soft_margin_loss")
      for si, st in (((2, 3), (1, 3)), ((1, 3), (2, 3)))],
    _row("broadcast-multilabel_soft_margin-weight",
         _make(input=_normal((2, 3)), target=_u(0, 1, (2, 3)), weight=_u(0.5, 2, (2, 1))), IO,
         "multilabel_soft_margin_loss"),
    _row("broadcast-soft_margin-(2, 3)-(1, 3)", _make(input=_normal((2, 3)), target=_sign((1, 3))),
         I, "soft_margin_loss"),
    *[_row(f"broadcast-cosine_embedding-{s1}-{s2}-{st}",
           _make(input1=_normal(s1), input2=_normal(s2), target=_sign(st)), I12,
           "cosine_embedding_loss", margin=0.2)
      for s1, s2, st in (((3, 4), (1, 4), (3,)), ((3, 4), (3, 4), (1,)), ((1, 4), (1, 4), (3,)))],
    *[_row(f"broadcast-triplet-{s}", _make(**{k: _normal(v) for k, v in zip(APN, s)}), APN,
           "triplet_margin_loss") for s in (((3, 4), (1, 4), (3, 4)), ((1, 4), (3, 4), (3, 1)))],
    Case("broadcast-triplet_distance", _make(anchor=_normal((3, 4)), positive=_normal((1, 4)),
                                             negative=_normal((3, 4))), APN,
         lambda r, **a: L.triplet_margin_with_distance_loss(**a, reduction=r),
         lambda r, **a: F.triplet_margin_with_distance_loss(**a, reduction=r)),
    _distance("broadcast-pairwise", _make(x1=_normal((3, 4)), x2=_normal((1, 4)))),
    # -- margins and p values torch allows ------------------------------------------------------
    *[_row(f"margin-multi_margin-p{p}-m-0.5", _make(input=_normal((6, 6)), target=LABELS6), I,
           "multi_margin_loss", p=p, margin=-0.5) for p in (1, 2)],
    _row("margin-margin_ranking-m-0.5", _make(input1=_normal((6,)), input2=_normal((6,)),
                                              target=_sign((6,))), I12,
         "margin_ranking_loss", margin=-0.5),
    _row("margin-hinge_embedding-m-0.5", _make(input=_normal((6,)), target=_sign((6,))), I,
         "hinge_embedding_loss", margin=-0.5),
    *[_row(f"margin-cosine_embedding-m{m}", _make(input1=_normal((6, 3)),
                                                  input2=_normal((6, 3)), target=_sign((6,))),
           I12, "cosine_embedding_loss", margin=m) for m in (-2.0, 1.5)],
    *[_distance(f"p-pairwise-p{p}", _make(x1=_normal((3, 4)), x2=_normal((3, 4))), p=p)
      for p in (-1, -2.5, 0, 0.5, 1.5, np.inf, -np.inf)],
    *[_distance(f"p-pairwise-p{p}-zero-distance",
                _const_make(x1=[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [2.0, 2.0, 5.0]],
                            x2=[[1.0, 0.0, 3.0], [1.0, 1.0, 1.0], [0.0, -2.0, 1.0]]),
                p=p, eps=0.0) for p in (2, -1, 0.5, 1.5, 3, 0, np.inf)],
    *[_row(f"p-triplet-p{p}", _make(anchor=_normal((3, 4)), positive=_normal((3, 4)),
                                    negative=_normal((3, 4))), APN, "triplet_margin_loss", p=p)
      for p in (-1, 0, np.inf)],
    # -- integer and bool targets, second inputs and weights (promoted as torch) ---------------
    # torch computes these values but its backward fails (huber: "Found dtype Long";
    # soft_margin: negation of a bool): values only.
    *[_row(f"int-{fn}-{dt}-value", _make(input=_normal((2, 3)), target=_const(t)), (), fn)
      for fn, dt, t in (("huber_loss", "int64", [[1, 0, 1], [0, 1, 1]]),
                        ("huber_loss", "bool", [[True, False, True], [False, True, True]]),
                        ("soft_margin_loss", "bool", [[True, False, True], [False, True, True]]))],
    *[_row(f"int-{fn}-{dt}", _make(input=_normal((2, 3)),
                                   target=_const(np.array([[1, 0, 1], [0, 1, 1]], dt))), I, fn)
      for fn, dts in (("mse_loss", ("int64", "bool")), ("l1_loss", ("int64",)),
                      ("smooth_l1_loss", ("int64", "bool")),
                      ("poisson_nll_loss", ("int64", "bool")),
                      ("multilabel_soft_margin_loss", ("int64",)),
                      ("hinge_embedding_loss", ("int64", "bool")))
      for dt in dts],
    _row("int-soft_margin-int64", _make(input=_normal((2, 3)),
                                        target=_const([[1, -1, 1], [-1, 1, 1]])), I,
         "soft_margin_loss"),
    _row("int-gaussian", _make(input=_normal((2, 3)), target=_const([[1, 0, 2], [0, 1, 1]]),
                               var=_u(0.5, 2, (2, 3))), ("input", "var"), "gaussian_nll_loss"),
    _row("int-margin_ranking", _make(input1=_normal((4,)), input2=_const([1, 0, 2, -1]),
                                     target=_const([1, -1, -1, 1])), ("input1",),
         "margin_ranking_loss"),
    _row("int-cosine_embedding",
         _make(input1=_normal((2, 3)), input2=_const([[1, 0, 2], [0, 1, 1]]),
               target=_const([1, -1])), ("input1",), "cosine_embedding_loss"),
    _row("int-triplet", _make(anchor=_normal((2, 3)), positive=_normal((2, 3)),
                              negative=_const([[1, 0, 2], [0, 1, 1]])), ("anchor", "positive"),
         "triplet_margin_loss"),
    _distance("int-pairwise", _make(x1=_normal((2, 3)), x2=_const([[1, 0, 2], [0, 1, 1]])),
              ("x1",)),
    *[_row(f"int-weight-{fn}", _make(input=_u(0.05, 0.95, (2, 3)), target=_u(0, 1, (2, 3)),
                                     weight=_const([1, 2, 3])), IO, fn)
      for fn in ("binary_cross_entropy", "binary_cross_entropy_with_logits",
                 "multilabel_soft_margin_loss")],
    _row("int-pos_weight-bce_logits", _make(input=_normal((2, 3)), target=_u(0, 1, (2, 3)),
                                            pos_weight=_const([1, 2, 3])), IO,
         "binary_cross_entropy_with_logits"),
    _row("int-weight-mse", _make(input=_normal((2, 3)), target=_normal((2, 3)),
                                 weight=_const([[1, 2, 3], [0, 1, 2]])), IO, "mse_loss"),
]
