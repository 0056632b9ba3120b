"""Tests for jaxfund.losses: PyTorch parity (values and gradients, f32 and f64), optax
equivalences and documented differences, stability, validation, and properties."""

from __future__ import annotations

import dataclasses
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxfund import losses as L
from tests._losses_ref import CASES, EDGE_CASES, numpy_dice, torch_sigmoid_focal_loss

TOL = {"float32": 1e-5, "float64": 1e-12}


def _to_jax(arrays, dtype):
    return {
        k: jnp.asarray(v, dtype) if np.issubdtype(v.dtype, np.floating) else jnp.asarray(v)
        for k, v in arrays.items()
    }


def _to_torch(arrays, dtype, diff):
    tdtype = getattr(torch, dtype)
    out = {}
    for k, v in arrays.items():
        if np.issubdtype(v.dtype, np.floating):
            out[k] = torch.tensor(v, dtype=tdtype, requires_grad=k in diff)
        else:
            out[k] = torch.tensor(v)
    return out


def _close(ours, ref, dtype, what):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    tol = TOL[dtype]
    finite = np.isfinite(ref)
    scale = max(1.0, float(np.max(np.abs(ref[finite]), initial=0.0)))
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * scale, err_msg=what)


def run_case(case, dtype, transform=jax.jit):
    """Per reduction: loss and gradients of ``Σ loss·ct`` in jaxfund (all reductions under one
    ``transform``, ``jax.jit`` by default) and in torch."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    arrays = case.make(rng)
    cts = {
        r: rng.normal(size=tuple(case.ref(r, **_to_torch(arrays, "float64", ())).shape))
        for r in case.reductions
    }
    with jax.enable_x64(dtype == "float64"):
        ja = _to_jax(arrays, dtype)

        def all_reductions(d):
            out = {}
            for r in case.reductions:
                loss, vjp = jax.vjp(lambda d: case.ours(r, **{**ja, **d}), d)
                out[r] = (loss, vjp(jnp.asarray(cts[r], loss.dtype))[0])
            return out

        ours = transform(all_reductions)({k: ja[k] for k in case.diff})
        for loss, _ in ours.values():
            assert loss.dtype == jnp.dtype(dtype)
        ours = jax.tree.map(np.asarray, ours)
    refs = {}
    for r in case.reductions:
        ta = _to_torch(arrays, dtype, case.diff)
        ref = case.ref(r, **ta)
        if case.diff:
            (ref * torch.tensor(cts[r], dtype=ref.dtype)).sum().backward()
        # torch leaves no gradient where the loss does not depend on an input (norm p=0).
        grads = {k: np.zeros(ta[k].shape) if ta[k].grad is None else ta[k].grad.numpy()
                 for k in case.diff}
        refs[r] = (ref.detach().numpy(), grads)
    return ours, refs


PARITY = [
    pytest.param(c, d, id=f"{c.id}-{d}") for c in CASES for d in ("float32", "float64")
]


def _assert_matches_torch(case, dtype, transform=jax.jit):
    """Every reduction of ``case``: the value's shape and value, and each gradient, as torch's."""
    ours, refs = run_case(case, dtype, transform)
    for r, (ref, ref_grads) in refs.items():
        loss, grads = ours[r]
        assert loss.shape == ref.shape, r
        _close(loss, ref, dtype, f"{r}: value")
        for k in case.diff:
            _close(grads[k], ref_grads[k], dtype, f"{r}: d/d{k}")


@pytest.mark.parametrize("case,dtype", PARITY)
def test_torch_parity(case, dtype):
    _assert_matches_torch(case, dtype)


class VariantsTest(parameterized.TestCase):
    """The float32 parity rows again, jitted and eager (``chex.variants``): validation and the
    math must not depend on being traced."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters((c.id, c.id) for c in CASES)
    def test_torch_parity(self, case_id):
        case = next(c for c in CASES if c.id == case_id)
        ours, refs = run_case(case, "float32", self.variant)
        for r, (ref, ref_grads) in refs.items():
            loss, grads = ours[r]
            _close(loss, ref, "float32", f"{r}: value")
            for k in case.diff:
                _close(grads[k], ref_grads[k], "float32", f"{r}: d/d{k}")


EDGE = [
    pytest.param(c, d, t, id=f"{c.id}-{d}-{name}")
    for c in EDGE_CASES for d in ("float32", "float64")
    for name, t in (("jit", jax.jit), ("eager", lambda f: f))
]


# torch before 2.13 computes mse_loss with an integer or bool target but its backward fails
# ("Found dtype Long but expected Float"); the pinned 2.13 differentiates it. Under an older
# torch (the GPU image has 2.11) these rows compare values only.
GRADIENT_SINCE_TORCH_2_13 = {"int-mse_loss-int64", "int-mse_loss-bool"}
assert GRADIENT_SINCE_TORCH_2_13 <= {c.id for c in EDGE_CASES}
TORCH_BEFORE_2_13 = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < (2, 13)


@pytest.mark.parametrize("case,dtype,transform", EDGE)
def test_torch_parity_beyond_the_table(case, dtype, transform):
    """What torch accepts (issue 16): NaN/inf land where torch's do, in values and gradients;
    zero-size and 0-d inputs, broadcasting, margins and p values, integer targets."""
    if TORCH_BEFORE_2_13 and case.id in GRADIENT_SINCE_TORCH_2_13:
        case = dataclasses.replace(case, diff=())
    _assert_matches_torch(case, dtype, transform)


def test_every_loss_has_a_parity_row_or_a_reference_test():
    covered = {c.ours.__code__.co_names for c in CASES}
    names = set().union(*covered)
    assert set(L.NAMES) - names == {"dice_loss"}  # dice: no torch; see test_dice_*


# ---- optax: equal where the loss is the same, documented differences shown --------------------

_RNG = np.random.default_rng(0)
X = jnp.asarray(_RNG.normal(size=(6, 5)), jnp.float32)
Y = jnp.asarray(_RNG.normal(size=(6, 5)), jnp.float32)
P01 = jnp.asarray(_RNG.uniform(size=(6, 5)), jnp.float32)
LABELS = jnp.asarray([0, 4, 2, 1, 3, 2])
PROBS = jax.nn.softmax(Y)
LOGP = jax.nn.log_softmax(X)
TRIP = [jnp.asarray(_RNG.normal(size=(6, 4)), jnp.float32) for _ in range(3)]

OPTAX_EQUAL = {
    "mse=squared_error": (lambda: L.mse_loss(X, Y), lambda: optax.losses.squared_error(X, Y).mean()),
    "mse=2*l2_loss": (lambda: L.mse_loss(X, Y), lambda: 2 * optax.losses.l2_loss(X, Y).mean()),
    "huber": (lambda: L.huber_loss(X, Y, delta=0.7, reduction="none"),
              lambda: optax.losses.huber_loss(X, Y, delta=0.7)),
    "smooth_l1=huber/beta": (lambda: L.smooth_l1_loss(X, Y, beta=0.7, reduction="none"),
                             lambda: optax.losses.huber_loss(X, Y, delta=0.7) / 0.7),
    "bce_logits": (lambda: L.binary_cross_entropy_with_logits(X, P01, reduction="none"),
                   lambda: optax.losses.sigmoid_binary_cross_entropy(X, P01)),
    "ce_int": (lambda: L.cross_entropy(X, LABELS, reduction="none"),
               lambda: optax.losses.softmax_cross_entropy_with_integer_labels(X, LABELS)),
    "ce_probs": (lambda: L.cross_entropy(X, PROBS, reduction="none"),
                 lambda: optax.losses.softmax_cross_entropy(X, PROBS)),
    "ce_smoothing": (lambda: L.cross_entropy(X, LABELS, label_smoothing=0.2, reduction="none"),
                     lambda: optax.losses.softmax_cross_entropy(
                         X, optax.losses.smooth_labels(jax.nn.one_hot(LABELS, 5), 0.2))),
    "kl_div_batchmean": (lambda: L.kl_div(LOGP, PROBS, reduction="batchmean"),
                         lambda: optax.losses.kl_divergence(LOGP, PROBS).mean()),
    "kl_div_mean=sum/numel": (lambda: L.kl_div(LOGP, PROBS),
                              lambda: optax.losses.kl_divergence(LOGP, PROBS).sum() / PROBS.size),
    "kl_div_log_target": (lambda: L.kl_div(LOGP, jnp.log(PROBS), "none", True).sum(-1),
                          lambda: optax.losses.kl_divergence_with_log_targets(LOGP, jnp.log(PROBS))),
    "cosine_embedding_y=1": (
        lambda: L.cosine_embedding_loss(X, Y, jnp.ones(6), reduction="none"),
        lambda: 1 - optax.losses.cosine_similarity(X, Y)),
    "triplet_p2": (lambda: L.triplet_margin_loss(*TRIP, reduction="none"),
                   lambda: optax.losses.triplet_margin_loss(*TRIP)),
    "focal_alpha": (lambda: L.sigmoid_focal_loss(X, P01),
                    lambda: optax.losses.sigmoid_focal_loss(X, P01, alpha=0.25, gamma=2.0)),
    "focal_no_alpha": (lambda: L.sigmoid_focal_loss(X, P01, alpha=-1, gamma=1.5),
                       lambda: optax.losses.sigmoid_focal_loss(X, P01, gamma=1.5)),
    "hinge_loss=margin_ranking(x,0,y,1)": (
        lambda: L.margin_ranking_loss(X, jnp.zeros_like(X), jnp.sign(Y), 1.0, "none"),
        lambda: optax.losses.hinge_loss(X, jnp.sign(Y))),
    "dice_per_class(smooth)=optax(smooth/2)": (
        lambda: L.dice_loss(PROBS.reshape(2, 3, 5), P01.reshape(2, 3, 5), smooth=1.0,
                            per_class=True, reduction="none"),
        lambda: optax.losses.dice_loss(PROBS.reshape(2, 3, 5), P01.reshape(2, 3, 5), smooth=0.5,
                                apply_softmax=False)),
    "dice_whole_sample": (
        lambda: L.dice_loss(PROBS.reshape(2, 15), P01.reshape(2, 15), reduction="none"),
        # optax applies a sigmoid when C == 1: feed it logit(p).
        lambda: optax.losses.dice_loss(jax.scipy.special.logit(PROBS).reshape(2, 15, 1),
                                       P01.reshape(2, 15, 1), smooth=0.5)),
}


@pytest.mark.parametrize("name", list(OPTAX_EQUAL))
def test_equals_optax(name):
    ours, theirs = OPTAX_EQUAL[name]
    # triplet: optax puts eps=1e-6 inside the sum instead of on the difference (~1e-7 effect).
    atol = 3e-6 if name == "triplet_p2" else 1e-6
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-5, atol=atol)


def test_optax_differences_are_real():
    # l2_loss is half the squared error.
    np.testing.assert_allclose(optax.losses.l2_loss(X, Y), 0.5 * L.mse_loss(X, Y, reduction="none"))
    # Integer-label CE: -100 gives NaN in optax, is ignored here; -1 wraps to the last class.
    y = LABELS.at[0].set(-100)
    assert np.isnan(optax.losses.softmax_cross_entropy_with_integer_labels(X, y)[0])
    ours = L.cross_entropy(X, y, reduction="none")
    assert ours[0] == 0 and np.isfinite(L.cross_entropy(X, y))
    wrapped = optax.losses.softmax_cross_entropy_with_integer_labels(X, LABELS.at[0].set(-1))[0]
    np.testing.assert_allclose(wrapped, -LOGP[0, -1], rtol=1e-6)
    with pytest.raises(ValueError, match="outside the valid range"):
        L.cross_entropy(X, LABELS.at[0].set(-1))
    # Triplet: optax is wrong for p != 2 (no |.|, eps inside the sum); it has no swap.
    ours_p1 = L.triplet_margin_loss(*TRIP, p=1, reduction="none")
    theirs_p1 = optax.losses.triplet_margin_loss(*TRIP, norm_degree=1)
    assert np.max(np.abs(ours_p1 - theirs_p1)) > 0.1
    ref_p1 = F.triplet_margin_loss(*(torch.tensor(np.asarray(t)) for t in TRIP), p=1,
                                   reduction="none")
    np.testing.assert_allclose(ours_p1, ref_p1.numpy(), rtol=1e-5, atol=1e-6)
    # Focal: optax's default alpha=None is no alpha weighting; torchvision's default is 0.25.
    assert not np.allclose(optax.losses.sigmoid_focal_loss(X, P01), L.sigmoid_focal_loss(X, P01))
    # Dice: optax's smooth is half the usual one.
    p3, t3 = PROBS.reshape(2, 3, 5), P01.reshape(2, 3, 5)
    assert not np.allclose(optax.losses.dice_loss(p3, t3, smooth=1.0, apply_softmax=False),
                           L.dice_loss(p3, t3, smooth=1.0, per_class=True, reduction="none"))
    # optax's CTC returns a large finite number where the alignment is impossible.
    logits = jnp.zeros((1, 2, 3))
    labels = jnp.asarray([[1, 1]])
    optax_value = optax.losses.ctc_loss(logits, jnp.zeros((1, 2)), labels, jnp.zeros((1, 2)))
    assert np.isfinite(optax_value).all() and optax_value[0] > 1e4
    assert np.isinf(L.ctc_loss(jax.nn.log_softmax(logits), labels, jnp.asarray([2]),
                               jnp.asarray([2]), reduction="none"))[0]
    ref = F.ctc_loss(torch.zeros(2, 1, 3).log_softmax(-1), torch.tensor([[1, 1]]),
                     torch.tensor([2]), torch.tensor([2]), reduction="none")
    assert torch.isinf(ref).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ctc_matches_optax_value_and_gradient(dtype):
    rng = np.random.default_rng(1)
    n, t, c, s = 3, 10, 5, 4
    logits = rng.normal(size=(n, t, c))
    labels = rng.integers(1, c, size=(n, s))
    il, tl = np.array([10, 7, 9]), np.array([4, 2, 3])
    lpad = (np.arange(t) >= il[:, None]).astype(dtype)
    ypad = (np.arange(s) >= tl[:, None]).astype(dtype)
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(logits, dtype)

        @jax.jit
        def both(x):
            ours = lambda x: L.ctc_loss(jax.nn.log_softmax(x), labels, il, tl, reduction="sum")
            theirs = lambda x: optax.losses.ctc_loss(x, lpad, labels, ypad).sum()
            return jax.value_and_grad(ours)(x), jax.value_and_grad(theirs)(x)

        (v, g), (v_ref, g_ref) = both(x)
        tol = TOL[dtype] * 10
        np.testing.assert_allclose(v, v_ref, rtol=tol)
        np.testing.assert_allclose(g, g_ref, rtol=tol, atol=tol)


def test_ctc_zero_infinity_and_impossible_alignment():
    lp = jax.nn.log_softmax(jnp.zeros((2, 3, 4)))
    targets = jnp.asarray([[1, 1, 2], [1, 2, 3]])
    il, tl = jnp.asarray([3, 3]), jnp.asarray([3, 3])  # "1 1 2" needs 4 frames
    loss = L.ctc_loss(lp, targets, il, tl, reduction="none")
    ref = F.ctc_loss(torch.tensor(np.asarray(lp)).transpose(0, 1), torch.tensor(np.asarray(
        targets)), torch.tensor([3, 3]), torch.tensor([3, 3]), reduction="none")
    np.testing.assert_allclose(loss, ref.numpy(), rtol=1e-6)
    assert np.isinf(loss[0])
    f = lambda x: L.ctc_loss(x, targets, il, tl, reduction="sum", zero_infinity=True)
    value, g = jax.jit(jax.value_and_grad(f))(lp)
    assert value == pytest.approx(float(loss[1]), rel=1e-6)
    assert np.all(g[0] == 0) and np.all(np.isfinite(g))


# ---- dice: closed form ---------------------------------------------------------------------


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dice_closed_form(per_class, reduction):
    rng = np.random.default_rng(2)
    p = rng.uniform(size=(3, 4, 4, 2))
    t = (rng.uniform(size=(3, 4, 4, 2)) > 0.5).astype(float)
    ref = numpy_dice(p, t, 1.0, per_class)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    with jax.enable_x64(True):
        ours = L.dice_loss(jnp.asarray(p), jnp.asarray(t), per_class=per_class,
                           reduction=reduction)
        np.testing.assert_allclose(ours, ref, rtol=1e-13)
        grad = jax.grad(lambda q: L.dice_loss(q, jnp.asarray(t), per_class=per_class))(
            jnp.asarray(p))
    assert np.all(np.isfinite(grad))


# ---- stability -----------------------------------------------------------------------------

BIG = jnp.asarray([[1e4, -1e4, 0.0, 3.0], [-1e4, 1e4, 2.0, -1e4]], jnp.float32)
BIG_T = jnp.asarray([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]], jnp.float32)
STABLE = {
    "cross_entropy": (lambda x: L.cross_entropy(x, jnp.asarray([1, 0])),
                      lambda x: F.cross_entropy(x, torch.tensor([1, 0]))),
    "cross_entropy_probs": (lambda x: L.cross_entropy(x, BIG_T / 2, label_smoothing=0.1),
                            lambda x: F.cross_entropy(x, torch.tensor(np.asarray(BIG_T)) / 2,
                                                      label_smoothing=0.1)),
    "bce_with_logits": (
        lambda x: L.binary_cross_entropy_with_logits(x, BIG_T, pos_weight=jnp.full(4, 2.0)),
        lambda x: F.binary_cross_entropy_with_logits(x, torch.tensor(np.asarray(BIG_T)),
                                                     pos_weight=torch.full((4,), 2.0))),
    "multilabel_soft_margin": (
        lambda x: L.multilabel_soft_margin_loss(x, BIG_T),
        lambda x: F.multilabel_soft_margin_loss(x, torch.tensor(np.asarray(BIG_T)))),
    "sigmoid_focal": (lambda x: L.sigmoid_focal_loss(x, BIG_T, reduction="sum"),
                      lambda x: torch_sigmoid_focal_loss(x, torch.tensor(np.asarray(BIG_T)),
                                                         reduction="sum")),
    # torch's soft_margin_loss overflows to inf here; only finiteness is required.
    "soft_margin": (lambda x: L.soft_margin_loss(x, 2 * BIG_T - 1), None),
}


@pytest.mark.parametrize("name", list(STABLE))
def test_large_logits_are_finite(name):
    ours, ref = STABLE[name]
    value, grad = jax.value_and_grad(ours)(BIG)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    if ref is not None:
        x = torch.tensor(np.asarray(BIG), requires_grad=True)
        r = ref(x)
        r.backward()
        np.testing.assert_allclose(value, r.item(), rtol=1e-5)
        np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_soft_margin_is_finite_where_torch_overflows():
    x = jnp.asarray([-1e4, 1e4, -100.0])
    y = jnp.asarray([1.0, -1.0, 1.0])
    ours = L.soft_margin_loss(x, y, reduction="none")
    np.testing.assert_allclose(ours, [1e4, 1e4, 100.0], rtol=1e-6)
    assert torch.isinf(F.soft_margin_loss(torch.tensor(np.asarray(x)), torch.tensor(
        np.asarray(y)), reduction="none")).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_at_zero_and_one_matches_torch(dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30])
    t = np.array([0.0, 0.0, 1.0, 1.0, 0.3, 1.0])
    w = np.array([1.0, 2.0, 3.0, 0.5, 1.0, 1.0])
    with jax.enable_x64(dtype == "float64"):
        f = lambda p, t: L.binary_cross_entropy(p, t, jnp.asarray(w, dtype), reduction="sum")
        value, (gp, gt) = jax.value_and_grad(f, (0, 1))(jnp.asarray(p, dtype),
                                                       jnp.asarray(t, dtype))
        none = L.binary_cross_entropy(jnp.asarray(p, dtype), jnp.asarray(t, dtype),
                                      jnp.asarray(w, dtype), reduction="none")
    tp = torch.tensor(p, dtype=getattr(torch, dtype), requires_grad=True)
    tt = torch.tensor(t, dtype=getattr(torch, dtype), requires_grad=True)
    tw = torch.tensor(w, dtype=getattr(torch, dtype))
    ref = F.binary_cross_entropy(tp, tt, tw, reduction="sum")
    ref.backward()
    np.testing.assert_allclose(none[:4], [0.0, 200.0, 300.0, 0.0])
    _close(value, ref.item(), dtype, "value")
    _close(gp, tp.grad.numpy(), dtype, "d/dinput")
    np.testing.assert_array_equal(np.isinf(gt), np.isinf(tt.grad.numpy()))
    _close(np.where(np.isinf(gt), 0, gt), np.where(np.isinf(gt), 0, tt.grad.numpy()), dtype,
           "d/dtarget")


def test_kink_gradients_follow_torch():
    # margin_ranking/hinge_embedding use clamp_min (derivative 1 at 0); multi_margin uses z > 0;
    # l1 uses sign(0) = 0.
    cases = [
        (lambda a: L.margin_ranking_loss(a, jnp.zeros(2), jnp.asarray([1.0, -1.0]), 0.0, "sum"),
         lambda a: F.margin_ranking_loss(a, torch.zeros(2), torch.tensor([1.0, -1.0]), 0.0,
                                         reduction="sum"), [0.0, 0.0]),
        (lambda a: L.hinge_embedding_loss(a, jnp.asarray([-1.0, -1.0]), reduction="sum"),
         lambda a: F.hinge_embedding_loss(a, torch.tensor([-1.0, -1.0]), reduction="sum"),
         [1.0, 1.0]),
        (lambda a: L.multi_margin_loss(a[None], jnp.asarray([1]), reduction="sum"),
         lambda a: F.multi_margin_loss(a[None], torch.tensor([1]), reduction="sum"),
         [0.0, 1.0, 0.0]),
        (lambda a: L.l1_loss(a, jnp.zeros(2), reduction="sum"),
         lambda a: F.l1_loss(a, torch.zeros(2), reduction="sum"), [0.0, 0.0]),
        (lambda a: L.smooth_l1_loss(a, jnp.zeros(2), reduction="sum", beta=0.0),
         lambda a: F.smooth_l1_loss(a, torch.zeros(2), reduction="sum", beta=0.0), [0.0, 0.0]),
    ]
    for ours, ref, x in cases:
        t = torch.tensor(x, requires_grad=True)
        ref(t).backward()
        np.testing.assert_array_equal(jax.grad(ours)(jnp.asarray(x)), t.grad.numpy())


# ---- ignore_index, label ranges ------------------------------------------------------------


@pytest.mark.parametrize("fn,tfn", [(L.cross_entropy, F.cross_entropy),
                                    (L.nll_loss, F.nll_loss)])
def test_all_ignored_is_nan_under_mean(fn, tfn):
    y = jnp.full((6,), -100)
    ref = tfn(torch.tensor(np.asarray(X)), torch.tensor(np.asarray(y), dtype=torch.long))
    assert np.isnan(fn(X, y)) and torch.isnan(ref)
    assert fn(X, y, reduction="sum") == 0


BAD_LABEL = {
    "cross_entropy": lambda y: L.cross_entropy(X, y, reduction="none"),
    "cross_entropy_smoothing_weight": lambda y: L.cross_entropy(
        X, y, weight=jnp.ones(5), label_smoothing=0.1, reduction="none"),
    "nll_loss": lambda y: L.nll_loss(LOGP, y, reduction="none"),
    "multi_margin_loss": lambda y: L.multi_margin_loss(X, y, reduction="none"),
    "multilabel_margin_loss": lambda y: L.multilabel_margin_loss(
        X, jnp.stack([y] + [jnp.full(6, -1)] * 4, axis=1), reduction="none"),
}


@pytest.mark.parametrize("name", list(BAD_LABEL))
@pytest.mark.parametrize("bad", [5, 7, -3])
def test_out_of_range_labels(name, bad):
    y = LABELS.at[2].set(bad)
    with pytest.raises(ValueError, match=r"target.*\[0, 5\)"):
        BAD_LABEL[name](y)
    out = np.asarray(jax.jit(BAD_LABEL[name])(y))
    assert np.isnan(out[2]) and np.all(np.isfinite(np.delete(out, 2)))
    mean = jax.jit(lambda y: jnp.mean(BAD_LABEL[name](y)))(y)
    assert np.isnan(mean)


def test_out_of_range_labels_mean_reduction_under_jit_is_nan():
    y = LABELS.at[2].set(9)
    assert np.isnan(jax.jit(L.cross_entropy)(X, y))
    assert np.isnan(jax.jit(lambda x, y: L.cross_entropy(x, y, weight=jnp.ones(5)))(X, y))
    assert np.isnan(jax.jit(L.nll_loss)(LOGP, y))


def test_ctc_bad_labels_and_lengths():
    lp = jax.nn.log_softmax(jnp.zeros((2, 4, 3)))
    good = dict(targets=jnp.asarray([[1, 2], [2, 1]]), input_lengths=jnp.asarray([4, 4]),
                target_lengths=jnp.asarray([2, 2]))
    for key, value, msg in [("targets", jnp.asarray([[1, 0], [2, 1]]), "blank"),
                            ("targets", jnp.asarray([[1, 3], [2, 1]]), r"\[0, 3\)"),
                            ("input_lengths", jnp.asarray([5, 4]), "input_lengths"),
                            ("target_lengths", jnp.asarray([3, 2]), "target_lengths")]:
        args = {**good, key: value}
        with pytest.raises(ValueError, match=msg):
            L.ctc_loss(lp, **args)
        out = jax.jit(lambda lp, a: L.ctc_loss(lp, **a, reduction="none"))(lp, args)
        assert np.isnan(out[0]) and np.isfinite(out[1])


# ---- validation ----------------------------------------------------------------------------

I4 = jnp.zeros(4, jnp.int32)
VALIDATION = [
    (lambda: L.mse_loss(X, Y[:3]), ValueError, r"target.*\(6, 5\).*\(3, 5\)"),
    (lambda: L.mse_loss(X, Y, weight=jnp.ones(5)), ValueError, "weight"),
    (lambda: L.l1_loss(LABELS, LABELS), TypeError, "input"),
    (lambda: L.mse_loss(X, Y, reduction="avg"), ValueError, "reduction"),
    (lambda: L.kl_div(X, Y, reduction="batch"), ValueError, "reduction"),
    (lambda: L.mse_loss(X, Y, reduction="batchmean"), ValueError, "reduction"),
    (lambda: L.huber_loss(X, Y, delta=0.0), ValueError, "delta"),
    (lambda: L.smooth_l1_loss(X, Y, beta=-1.0), ValueError, "beta"),
    (lambda: L.gaussian_nll_loss(X, Y, jnp.ones((6, 2))), ValueError, "var"),
    (lambda: L.gaussian_nll_loss(X, Y, -1.0), ValueError, "var"),
    (lambda: L.gaussian_nll_loss(X, Y, -jnp.ones((6, 5))), ValueError, "var"),
    (lambda: L.binary_cross_entropy(P01, P01, weight=jnp.ones(3)), ValueError, "weight"),
    (lambda: L.binary_cross_entropy_with_logits(X, P01, pos_weight=jnp.ones(4)), ValueError,
     "pos_weight"),
    (lambda: L.cross_entropy(X, LABELS.astype(jnp.float32)), TypeError, "integer"),
    (lambda: L.cross_entropy(X, LABELS[:4]), ValueError, r"target.*\(6,\).*\(4,\)"),
    (lambda: L.cross_entropy(X, LABELS, weight=jnp.ones(4)), ValueError, r"weight.*\(5,\)"),
    (lambda: L.cross_entropy(X, jnp.zeros((6, 5), jnp.int32)), TypeError, "probabilities"),
    (lambda: L.cross_entropy(X, PROBS, ignore_index=0), ValueError, "ignore_index"),
    (lambda: L.cross_entropy(X, LABELS, label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: L.cross_entropy(X, LABELS, axis=2), ValueError, "axis"),
    (lambda: L.nll_loss(LABELS, LABELS), TypeError, "input"),
    (lambda: L.multi_margin_loss(X, LABELS, p=3), ValueError, r"p must be in \[1, 2\], got 3"),
    (lambda: L.multi_margin_loss(X[:, :0], LABELS), ValueError, "input"),
    (lambda: L.multi_margin_loss(X, LABELS[:, None]), ValueError, "target"),
    (lambda: L.multi_margin_loss(X[0], LABELS[:2]), ValueError, "target"),
    (lambda: L.multi_margin_loss(X[None], LABELS), ValueError, "input"),
    (lambda: L.multilabel_margin_loss(X, LABELS), ValueError, "target"),
    (lambda: L.multilabel_margin_loss(X[0], LABELS), ValueError, "target"),
    (lambda: L.triplet_margin_loss(*TRIP[:2], TRIP[2][:3]), ValueError, "negative"),
    (lambda: L.triplet_margin_loss(*TRIP, margin=-1.0), ValueError, "margin"),
    (lambda: L.triplet_margin_loss(*TRIP[:2], TRIP[2][0]), ValueError, "dimensions"),
    (lambda: L.triplet_margin_with_distance_loss(TRIP[0][0], *TRIP[1:]), ValueError,
     "dimensions"),
    (lambda: L.triplet_margin_with_distance_loss(*TRIP, margin=0.0), ValueError, "margin"),
    (lambda: L.cosine_embedding_loss(X, Y, jnp.ones(5)), ValueError, "target"),
    (lambda: L.cosine_embedding_loss(X, Y, jnp.ones(())), ValueError, "target"),
    (lambda: L.hinge_embedding_loss(X, Y[:, :2]), ValueError, "target"),
    (lambda: L.margin_ranking_loss(X, Y, jnp.ones(6)), ValueError, "target"),
    (lambda: L.margin_ranking_loss(X, Y[:, :2], jnp.ones((6, 5))), ValueError, "input2"),
    (lambda: L.soft_margin_loss(X[:1], Y), ValueError, "target"),
    (lambda: L.gaussian_nll_loss(X, Y[:, :2], 1.0), ValueError, "target"),
    (lambda: L.poisson_nll_loss(X, Y[:2]), ValueError, "target"),
    (lambda: L.binary_cross_entropy(P01, LABELS[:, None] * jnp.ones(5, jnp.int32)), TypeError,
     "target"),
    (lambda: L.multilabel_soft_margin_loss(X, Y > 0), TypeError, "target"),
    (lambda: L.mse_loss(X, Y[:1]), ValueError, "target"),
    (lambda: L.cross_entropy(X[:, :0], LABELS), ValueError, "no classes"),
    (lambda: L.dice_loss(X[0], Y[0]), ValueError, "input"),
    (lambda: L.ctc_loss(X, I4, I4, I4), ValueError, "log_probs"),
    (lambda: L.ctc_loss(X[None], I4[None], I4[:1], I4[:1], blank=5), ValueError, "blank"),
    (lambda: L.ctc_loss(X[None], I4[None].astype(float), I4[:1], I4[:1]), TypeError, "targets"),
    (lambda: L.huber_loss(X, Y, delta=jnp.array(-1.0)), ValueError, "delta must be > 0"),
    (lambda: L.pairwise_distance(X, Y[:, :2]), ValueError, "x2"),
    (lambda: L.sigmoid_focal_loss(X, P01, gamma=-1.0), ValueError, "gamma must be >= 0"),
    # A wrong type is a TypeError, naming the argument.
    (lambda: L.mse_loss(X, Y, reduction=None), TypeError, "reduction must be a string"),
    (lambda: L.huber_loss(X, Y, delta="1"), TypeError, "delta must be a real"),
    (lambda: L.smooth_l1_loss(X, Y, beta=None), TypeError, "beta must be a real"),
    (lambda: L.smooth_l1_loss(X, Y, beta=jnp.array(1.0)), TypeError, "beta must be a real"),
    (lambda: L.gaussian_nll_loss(X, Y, True), TypeError, "var"),
    (lambda: L.poisson_nll_loss(X, Y, eps="1e-8"), TypeError, "eps must be a real"),
    (lambda: L.cross_entropy(X, LABELS, label_smoothing="0.1"), TypeError, "label_smoothing"),
    (lambda: L.cross_entropy(X, LABELS, ignore_index=-100.0), TypeError, "ignore_index"),
    (lambda: L.nll_loss(LOGP, LABELS, ignore_index=None), TypeError, "ignore_index"),
    (lambda: L.multi_margin_loss(X, LABELS, p=2.0), TypeError, "p must be an int"),
    (lambda: L.multi_margin_loss(X, LABELS, margin=None), TypeError, "margin must be a real"),
    (lambda: L.triplet_margin_loss(*TRIP, margin="1"), TypeError, "margin must be a real"),
    (lambda: L.triplet_margin_loss(*TRIP, p=True), TypeError, "p must be a real"),
    (lambda: L.cosine_embedding_loss(X, Y, jnp.ones(6), margin=None), TypeError, "margin"),
    (lambda: L.sigmoid_focal_loss(X, Y, alpha=None), TypeError, "alpha must be a real"),
    (lambda: L.dice_loss(X, Y, smooth="1"), TypeError, "smooth must be a real"),
    (lambda: L.ctc_loss(X[None], I4[None], I4[:1], I4[:1], blank=0.0), TypeError, "blank"),
]


@pytest.mark.parametrize("i", range(len(VALIDATION)))
def test_validation(i):
    call, exc, msg = VALIDATION[i]
    with pytest.raises(exc, match=msg):
        call()


def test_validation_happens_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="weight"):
        jax.jit(lambda x: L.cross_entropy(x, LABELS, weight=jnp.ones(3)))(X)


# ---- properties ----------------------------------------------------------------------------

NONNEG = {
    "mse_loss": lambda x, y, lab: L.mse_loss(x, y, reduction="none"),
    "l1_loss": lambda x, y, lab: L.l1_loss(x, y, reduction="none"),
    "huber_loss": lambda x, y, lab: L.huber_loss(x, y, reduction="none"),
    "smooth_l1_loss": lambda x, y, lab: L.smooth_l1_loss(x, y, reduction="none"),
    "bce": lambda x, y, lab: L.binary_cross_entropy(jax.nn.sigmoid(x), jax.nn.sigmoid(y),
                                                    reduction="none"),
    "bce_with_logits": lambda x, y, lab: L.binary_cross_entropy_with_logits(
        x, jax.nn.sigmoid(y), reduction="none"),
    "soft_margin": lambda x, y, lab: L.soft_margin_loss(x, jnp.sign(y), reduction="none"),
    "cross_entropy": lambda x, y, lab: L.cross_entropy(x, lab, reduction="none"),
    "cross_entropy_probs": lambda x, y, lab: L.cross_entropy(x, jax.nn.softmax(y), reduction="none"),
    "kl_div": lambda x, y, lab: L.kl_div(jax.nn.log_softmax(x), jax.nn.softmax(y), "none").sum(-1),
    "multi_margin": lambda x, y, lab: L.multi_margin_loss(x, lab, reduction="none"),
    "cosine_embedding": lambda x, y, lab: L.cosine_embedding_loss(x, y, 2 * (lab % 2) - 1, 0.0,
                                                                  "none"),
    "triplet": lambda x, y, lab: L.triplet_margin_loss(x, y, x[::-1], reduction="none"),
    "hinge_embedding": lambda x, y, lab: L.hinge_embedding_loss(jnp.abs(x), jnp.sign(y),
                                                                reduction="none"),
    "focal": lambda x, y, lab: L.sigmoid_focal_loss(x, jax.nn.sigmoid(y)),
    "dice": lambda x, y, lab: L.dice_loss(jax.nn.softmax(x), jax.nn.softmax(y), reduction="none"),
}

_floats = st.floats(-30, 30, allow_nan=False, width=32)
_batch = st.tuples(
    st.lists(_floats, min_size=12, max_size=12),
    st.lists(_floats, min_size=12, max_size=12),
    st.lists(st.integers(0, 2), min_size=4, max_size=4),
)


def _arrays(data):
    x, y, lab = data
    return (jnp.asarray(x, jnp.float32).reshape(4, 3), jnp.asarray(y, jnp.float32).reshape(4, 3),
            jnp.asarray(lab))


@jax.jit
def _all_nonneg(x, y, lab):
    return {name: f(x, y, lab) for name, f in NONNEG.items()}


@settings(max_examples=25, deadline=None)
@given(_batch)
def test_losses_are_nonnegative(data):
    for name, out in _all_nonneg(*_arrays(data)).items():
        assert np.all(np.asarray(out) >= -1e-6), name


REDUCED = {
    "mse": (lambda x, y, lab, r: L.mse_loss(x, y, reduction=r), 12),
    "huber": (lambda x, y, lab, r: L.huber_loss(x, y, reduction=r), 12),
    "bce_logits": (lambda x, y, lab, r: L.binary_cross_entropy_with_logits(
        x, jax.nn.sigmoid(y), reduction=r), 12),
    "ce": (lambda x, y, lab, r: L.cross_entropy(x, lab, reduction=r), 4),
    "nll": (lambda x, y, lab, r: L.nll_loss(jax.nn.log_softmax(x), lab, reduction=r), 4),
    "multi_margin": (lambda x, y, lab, r: L.multi_margin_loss(x, lab, reduction=r), 4),
    "kl_div": (lambda x, y, lab, r: L.kl_div(jax.nn.log_softmax(x), jax.nn.softmax(y),
                                             reduction=r), 12),
}


@jax.jit
def _all_reduced(x, y, lab):
    return {k: {r: jnp.sum(f(x, y, lab, r)) for r in ("mean", "sum", "none")}
            for k, (f, _) in REDUCED.items()}


@settings(max_examples=25, deadline=None)
@given(_batch)
def test_sum_is_mean_times_count(data):
    for name, out in _all_reduced(*_arrays(data)).items():
        count = REDUCED[name][1]
        np.testing.assert_allclose(out["sum"], out["mean"] * count, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out["sum"], out["none"], rtol=1e-5, atol=1e-4)


@jax.jit
def _shifted_ce(x, lab, shift):
    a = L.cross_entropy(x, lab, label_smoothing=0.1, reduction="none")
    return a, L.cross_entropy(x + shift, lab, label_smoothing=0.1, reduction="none")


@settings(max_examples=25, deadline=None)
@given(_batch, st.floats(-50, 50, allow_nan=False))
def test_cross_entropy_shift_invariance(data, shift):
    x, y, lab = _arrays(data)
    a, b = _shifted_ce(x, lab, shift)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ---- name lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize("alias,name", [
    ("cross_entropy", "cross_entropy"), ("CrossEntropyLoss", "cross_entropy"),
    ("mse_loss", "mse_loss"), ("MSELoss", "mse_loss"), ("BCELoss", "binary_cross_entropy"),
    ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"), ("KLDivLoss", "kl_div"),
    ("NLLLoss", "nll_loss"), ("SmoothL1Loss", "smooth_l1_loss"), ("HuberLoss", "huber_loss"),
    ("PoissonNLLLoss", "poisson_nll_loss"), ("GaussianNLLLoss", "gaussian_nll_loss"),
    ("MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss"), ("CTCLoss", "ctc_loss"),
    ("TripletMarginWithDistanceLoss", "triplet_margin_with_distance_loss"),
    ("MultiMarginLoss", "multi_margin_loss"), ("DiceLoss", "dice_loss"),
    ("focal", "sigmoid_focal_loss"), ("HingeEmbeddingLoss", "hinge_embedding_loss"),
])
def test_get(alias, name):
    assert L.get(alias) is getattr(L, name)


def test_get_unknown_and_names():
    with pytest.raises(ValueError, match="cross_entropy"):
        L.get("crossentropyy")
    assert set(L.NAMES) <= set(L.__all__)
    assert all(L.get(n) is getattr(L, n) for n in L.NAMES)
    assert all(getattr(L, n).__doc__ for n in L.__all__ if n != "NAMES")
