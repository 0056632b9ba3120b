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
