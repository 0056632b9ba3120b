"""Tests for jaxfund.activations: parity with torch.nn.functional and jax.nn, kinks, dtypes.

Every function is one row of ``CASES``; the parametrized tests below run over the whole table,
so a new activation is tested by adding a row. References come from PyTorch (values and
gradients), jax.nn, or closed-form math.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from absl.testing import parameterized
from jax.test_util import check_grads

from jaxfund import activations as A


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    id: str
    fn: Callable[..., jax.Array]
    kwargs: dict[str, Any]
    torch_fn: Callable[[torch.Tensor], torch.Tensor]
    kinks: tuple[float, ...] = ()  # where the derivative (or the 2nd one) jumps; tested exactly
    jax_nn: Callable[[jax.Array], jax.Array] | None = None  # the same function in jax.nn
    jax_grad_differs_at: tuple[float, ...] = ()  # kinks where jax.nn's derivative is not torch's
    f64_grad_rtol: float = 1e-12

    @property
    def smooth(self) -> bool:
        return not self.kinks

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x, **self.kwargs)


def _softplus_as_torch(x, beta=1.0, threshold=20.0):
    """jax.nn.softplus with torch's beta and linear switch added (closed form)."""
    return jnp.where(beta * x > threshold, x, jax.nn.softplus(beta * x) / beta)


_PRELU_W = np.array([0.25], np.float32)

CASES = [
    Case("identity", A.identity, {}, torch.nn.Identity(), jax_nn=jax.nn.identity),
    Case("sigmoid", A.sigmoid, {}, torch.sigmoid, jax_nn=jax.nn.sigmoid),
    Case("tanh", A.tanh, {}, torch.tanh, jax_nn=jax.nn.tanh),
    Case("relu", A.relu, {}, F.relu, (0.0,), jax.nn.relu),
    Case("relu6", A.relu6, {}, F.relu6, (0.0, 6.0), jax.nn.relu6),
    Case("leaky_relu", A.leaky_relu, {}, F.leaky_relu, (0.0,), jax.nn.leaky_relu, (0.0,)),
    Case("leaky_relu_0.2", A.leaky_relu, dict(negative_slope=0.2),
         lambda t: F.leaky_relu(t, 0.2), (0.0,), lambda x: jax.nn.leaky_relu(x, 0.2), (0.0,)),
    Case("elu", A.elu, {}, F.elu, (0.0,), jax.nn.elu),
    Case("elu_2", A.elu, dict(alpha=2.0), lambda t: F.elu(t, 2.0), (0.0,),
         lambda x: jax.nn.elu(x, 2.0)),
    Case("selu", A.selu, {}, F.selu, (0.0,), jax.nn.selu),
    Case("celu", A.celu, {}, F.celu, (0.0,), jax.nn.celu),
    Case("celu_0.5", A.celu, dict(alpha=0.5), lambda t: F.celu(t, 0.5), (0.0,),
         lambda x: jax.nn.celu(x, 0.5)),
    Case("gelu", A.gelu, {}, F.gelu, jax_nn=lambda x: jax.nn.gelu(x, approximate=False)),
    Case("gelu_tanh", A.gelu, dict(approximate="tanh"), lambda t: F.gelu(t, approximate="tanh"),
         jax_nn=lambda x: jax.nn.gelu(x, approximate=True)),
    Case("silu", A.silu, {}, F.silu, jax_nn=jax.nn.silu),
    Case("mish", A.mish, {}, F.mish, jax_nn=jax.nn.mish),
    Case("softplus", A.softplus, {}, F.softplus, (20.0, 20.0001, 19.9999), _softplus_as_torch),
    Case("softplus_2_10", A.softplus, dict(beta=2.0, threshold=10.0),
         lambda t: F.softplus(t, 2.0, 10.0), (5.0, 5.0001, 4.9999),
         lambda x: _softplus_as_torch(x, 2.0, 10.0)),
    Case("softplus_-1", A.softplus, dict(beta=-1.0), lambda t: F.softplus(t, -1.0), (-20.0,)),
    Case("softsign", A.softsign, {}, F.softsign, (0.0,), jax.nn.soft_sign),
    Case("hardtanh", A.hardtanh, {}, F.hardtanh, (-1.0, 1.0), jax.nn.hard_tanh, (-1.0, 1.0)),
    Case("hardtanh_-2_3", A.hardtanh, dict(min_val=-2.0, max_val=3.0),
         lambda t: F.hardtanh(t, -2.0, 3.0), (-2.0, 3.0)),
    # torch's hardsigmoid backward multiplies by a float32 1/6 even for float64 tensors
    # (|1/6 - f32(1/6)| / (1/6) = 3.0e-8); we use the exact 1/6. See test_documented_differences.
    Case("hardsigmoid", A.hardsigmoid, {}, F.hardsigmoid, (-3.0, 3.0), jax.nn.hard_sigmoid,
         f64_grad_rtol=5e-8),
    Case("hardswish", A.hardswish, {}, F.hardswish, (-3.0, 3.0), jax.nn.hard_swish),
    Case("logsigmoid", A.logsigmoid, {}, F.logsigmoid, jax_nn=jax.nn.log_sigmoid),
    Case("tanhshrink", A.tanhshrink, {}, F.tanhshrink),
    Case("softshrink", A.softshrink, {}, F.softshrink, (-0.5, 0.5)),
    Case("softshrink_1", A.softshrink, dict(lambd=1.0), lambda t: F.softshrink(t, 1.0),
         (-1.0, 1.0)),
    Case("hardshrink", A.hardshrink, {}, F.hardshrink, (-0.5, 0.5)),
    Case("hardshrink_1", A.hardshrink, dict(lambd=1.0), lambda t: F.hardshrink(t, 1.0),
         (-1.0, 1.0)),
    Case("threshold", A.threshold, dict(threshold=1.0, value=2.0),
         lambda t: F.threshold(t, 1.0, 2.0), (1.0,)),
    Case("threshold_neg", A.threshold, dict(threshold=-0.5, value=-3.0),
         lambda t: F.threshold(t, -0.5, -3.0), (-0.5,)),
    Case("softmax", A.softmax, {}, lambda t: F.softmax(t, dim=-1), jax_nn=jax.nn.softmax),
    Case("softmax_axis0", A.softmax, dict(axis=0), lambda t: F.softmax(t, dim=0),
         jax_nn=lambda x: jax.nn.softmax(x, axis=0)),
    Case("log_softmax", A.log_softmax, {}, lambda t: F.log_softmax(t, dim=-1),
         jax_nn=jax.nn.log_softmax),
    Case("log_softmax_axis0", A.log_softmax, dict(axis=0), lambda t: F.log_softmax(t, dim=0),
         jax_nn=lambda x: jax.nn.log_softmax(x, axis=0)),
    Case("softmin", A.softmin, {}, lambda t: F.softmin(t, dim=-1)),
    Case("glu", A.glu, {}, lambda t: F.glu(t, dim=-1), jax_nn=jax.nn.glu),
    Case("glu_axis0", A.glu, dict(axis=0), lambda t: F.glu(t, dim=0),
         jax_nn=lambda x: jax.nn.glu(x, axis=0)),
    Case("prelu", A.prelu, dict(weight=_PRELU_W),
         lambda t: F.prelu(t, torch.tensor(_PRELU_W, dtype=t.dtype)), (0.0,)),
    Case("rrelu_eval", A.rrelu, {}, lambda t: F.rrelu(t, training=False), (0.0,)),
    Case("rrelu_eval_0.1_0.3", A.rrelu, dict(lower=0.1, upper=0.3),
         lambda t: F.rrelu(t, 0.1, 0.3, training=False), (0.0,)),
]
CASE_BY_ID = {case.id: case for case in CASES}
ELEMENTWISE = [c for c in CASES if c.fn not in (A.softmax, A.log_softmax, A.softmin, A.glu)]


def _params(cases, *dtypes):
    return [dict(testcase_name=f"{c.id}_{d}", case_id=c.id, dtype=d)
            for c in cases for d in dtypes]


def grid(case: Case, dtype=np.float32) -> np.ndarray:
    """Kinks (exactly), random normals x3, +-20, +-1e2, +-1e4; shape (rows, 4), rows even."""
    rng = np.random.default_rng(0)
    values = [*case.kinks, *(rng.standard_normal(20) * 3), 20, -20, 1e2, -1e2, 1e4, -1e4]
    values += list(rng.standard_normal(-len(values) % 8))
    return np.asarray(values, dtype).reshape(-1, 4)


def torch_value_and_grad(case: Case, x: np.ndarray, ct: np.ndarray, dtype=torch.float32):
    t = torch.tensor(x, dtype=dtype, requires_grad=True)
    y = case.torch_fn(t)
    y.backward(torch.tensor(ct, dtype=dtype))
    return y.detach().double().numpy(), t.grad.double().numpy()


def value_and_grad(fn: Callable, x: jax.Array, ct: jax.Array):
    y, vjp = jax.vjp(fn, x)
    return y, vjp(ct)[0]


def torch_reference(case: Case, x: np.ndarray, ct: np.ndarray, dtype=torch.float32):
    """torch's value and gradient; an element-wise function is applied to each element alone.

    For NaN input torch's SIMD loop (all but the tail of a tensor of 8+ float64 or 16+ float32)
    and its scalar loop disagree in some gradients (relu6, hardtanh, elu, ...); jaxfund gives the
    scalar loop's answer at every position, which is torch's answer for a 0-d tensor. The softmax
    family and glu give the same answer at every position, so they see the whole array.
    """
    if case not in ELEMENTWISE:
        return torch_value_and_grad(case, x, ct, dtype)
    pairs = [torch_value_and_grad(case, xi, ci, dtype) for xi, ci in zip(x.flat, ct.flat)]
    return tuple(np.reshape([p[i] for p in pairs], x.shape) for i in (0, 1))


# Rows for the softmax family along axis -1: NaN with +inf; -inf among finite values (a finite
# result); only specials; +inf twice; -inf twice; only -inf. Columns (axis 0) mix them too.
SPECIAL = np.array([
    [np.nan, 1.5, np.inf, -2.0],
    [-np.inf, 0.5, 0.0, 3.0],
    [np.nan, np.inf, -np.inf, 0.0],
    [np.inf, np.inf, 1.0, 2.0],
    [-np.inf, -np.inf, 1.0, 2.0],
    [-np.inf, -np.inf, -np.inf, -np.inf],
])

# An empty 1-d array, an empty batch, empty trailing axes (the last one normalized or halved).
EMPTY_SHAPES = {"empty": (0,), "empty_batch": (0, 4), "empty_axes": (5, 0, 0)}


def cotangent(case: Case, x: np.ndarray) -> np.ndarray:
    shape = jax.eval_shape(case, jnp.asarray(x, jnp.float32)).shape
    return np.random.default_rng(1).standard_normal(shape).astype(x.dtype)


TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}


def _all_cases(fn_of: Callable[[Case], Callable], inputs: dict[str, tuple]) -> dict:
    """``fn_of(case)(*args)`` for every case in ``inputs`` (``{case id: args}``), side by side:
    no case's values meet another's."""
    return {k: fn_of(CASE_BY_ID[k])(*args) for k, args in inputs.items()}


def _value_and_grad_of(case: Case):
    return functools.partial(value_and_grad, case)


def _value_grad_vmap(case: Case):
    return lambda x, ct: (*value_and_grad(case, x, ct), jax.vmap(case)(jnp.stack([x, x])))


def _value_grad_zeros(case: Case):
    """The value and the gradient of a zero cotangent (the test of empty inputs)."""
    def fn(x):
        y, vjp = jax.vjp(case, x)
        return y, vjp(jnp.zeros_like(y))[0]
    return fn


SCALARS = [-0.7, 2.5, np.nan, np.inf, -np.inf]

# What each grouped test computes for a case, and the inputs its torch-parity test builds.
GROUPED = {
    "grid": _value_grad_vmap,
    "special": _value_and_grad_of,
    "scalar": _value_and_grad_of,
    "empty": _value_grad_zeros,
    "jax_nn": lambda case: _value_and_grad_of(case.jax_nn),  # on test_matches_torch's grid
    "low_precision": _value_and_grad_of,
    "extreme": _value_and_grad_of,
}


def low_precision_inputs(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The grid and a cotangent rounded to ``dtype`` (bfloat16, float16), held in float32."""
    x = grid(case)
    ct = cotangent(case, x)
    return tuple(torch.tensor(a).to(getattr(torch, dtype)).float().numpy() for a in (x, ct))


def extreme_inputs(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """+-max of ``dtype`` and a cotangent of ones, in float32."""
    big = float(jnp.finfo(dtype).max)
    x = np.array([[big, -big], [-big, big]], np.float32)
    return x, np.ones(jax.eval_shape(case, x).shape, np.float32)


def _input_sets(test: str, dtype: str, shape: tuple[int, ...]) -> list[dict[str, tuple]]:
    if test in ("grid", "jax_nn"):
        cases = CASES if test == "grid" else [c for c in CASES if c.jax_nn is not None]
        grids = {c.id: grid(c, np.dtype(dtype)) for c in cases}
        return [{k: (x, cotangent(CASE_BY_ID[k], x)) for k, x in grids.items()}]
    if test == "special":
        x = SPECIAL.astype(dtype)
        return [{c.id: (x, cotangent(c, x)) for c in CASES}]
    if test == "scalar":
        return [{c.id: (np.asarray(x, dtype), np.ones((), dtype)) for c in CASES}
                for x in SCALARS]
    if test in ("low_precision", "extreme"):
        make = low_precision_inputs if test == "low_precision" else extreme_inputs
        return [{c.id: tuple(jnp.asarray(a, dtype) for a in make(c, dtype)) for c in CASES}]
    return [{c.id: (np.zeros(shape, dtype),) for c in CASES}]  # empty


_JITTED: dict[tuple, dict] = {}


def outputs(test: str, case: Case, dtype: str, shape: tuple[int, ...] = (),
            jit: Callable = jax.jit) -> list:
    """``case``'s jitted outputs in ``test``, one per input set, every case of the test under
    one ``jit`` (``jax.jit``, or chex's jit variant): one compiled program holds all the cases,
    called once per input set, by the first test that asks; the others read the results.
    Compiling one program instead of one per case is most of what the jitted parity tests cost.
    A case whose tracing raises gets its exception raised instead."""
    program = jit(functools.partial(_all_cases, GROUPED[test]))  # not traced unless called
    key = (test, dtype, shape)
    if key not in _JITTED:
        with jax.enable_x64(dtype == "float64"):
            input_sets = _input_sets(test, dtype, shape)
            traced, errors = {}, {}
            for case_id, args in input_sets[0].items():
                try:
                    jax.eval_shape(GROUPED[test](CASE_BY_ID[case_id]), *args)
                    traced[case_id] = args
                except Exception as err:  # noqa: BLE001 - raised again by the case's test
                    errors[case_id] = err
            outs = [jax.tree.map(np.asarray, program({k: inputs[k] for k in traced}))
                    for inputs in input_sets]
            _JITTED[key] = {k: errors.get(k) or [out[k] for out in outs]
                            for k in input_sets[0]}
    result = _JITTED[key][case.id]
    if isinstance(result, Exception):
        raise result
    return result


def jit_variant(variant) -> bool:
    return variant.type is chex.ChexVariantType.WITH_JIT


class TorchParityTest(parameterized.TestCase):
    """Values, gradients (a random cotangent) and vmap against torch, jitted and not."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(_params(CASES, "float32", "float64"))
    def test_matches_torch(self, case_id, dtype):
        case = CASE_BY_ID[case_id]
        x = grid(case, np.dtype(dtype))
        ct = cotangent(case, x)
        y_ref, g_ref = torch_value_and_grad(case, x, ct, getattr(torch, dtype))
        with jax.enable_x64(dtype == "float64"):
            if jit_variant(self.variant):
                ((y, g, y_vmap),) = outputs("grid", case, dtype, jit=self.variant)
            else:
                y, g = self.variant(functools.partial(value_and_grad, case))(x, ct)
                y_vmap = self.variant(jax.vmap(case))(np.stack([x, x]))  # a new batch axis
            self.assertEqual(y.dtype, dtype)
            self.assertEqual(g.dtype, dtype)
            y, g, y_vmap = (np.asarray(a, np.float64) for a in (y, g, y_vmap))
        tol = TOL[dtype]
        np.testing.assert_allclose(y, y_ref, **tol)
        np.testing.assert_allclose(y_vmap, np.stack([y_ref, y_ref]), **tol)
        if dtype == "float64":
            tol = dict(tol, rtol=case.f64_grad_rtol)
        np.testing.assert_allclose(g, g_ref, **tol)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(_params(CASES, "float32", "float64"))
    def test_nan_and_inf_match_torch(self, case_id, dtype):
        """NaN, +-inf and ordinary values mixed: the NaN/inf pattern of the value and gradient and
        their finite values are torch's (assert_allclose matches NaN and inf positions exactly)."""
        case = CASE_BY_ID[case_id]
        x = SPECIAL.astype(dtype)
        ct = cotangent(case, x)
        y_ref, g_ref = torch_reference(case, x, ct, getattr(torch, dtype))
        with jax.enable_x64(dtype == "float64"):
            if jit_variant(self.variant):
                ((y, g),) = outputs("special", case, dtype, jit=self.variant)
            else:
                y, g = self.variant(functools.partial(value_and_grad, case))(x, ct)
            y, g = np.asarray(y, np.float64), np.asarray(g, np.float64)
        tol = TOL[dtype]
        np.testing.assert_allclose(y, y_ref, **tol)
        if dtype == "float64":
            tol = dict(tol, rtol=case.f64_grad_rtol)
        np.testing.assert_allclose(g, g_ref, **tol)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(_params(CASES, "float32", "float64"))
    def test_scalar_input_matches_torch(self, case_id, dtype):
        """A 0-d x (the softmax family counts it as 1-d, as torch), ordinary and special values;
        glu refuses it, as torch does."""
        case = CASE_BY_ID[case_id]
        xs = np.array(SCALARS, dtype)
        fn = self.variant(functools.partial(value_and_grad, case))
        try:
            refs = [torch_value_and_grad(case, x, np.ones((), dtype), getattr(torch, dtype))
                    for x in xs]
        except RuntimeError:  # torch refuses it: so do we, at trace time
            with pytest.raises(ValueError, match="axis"):
                fn(xs[0], np.ones((), dtype))
            return
        with jax.enable_x64(dtype == "float64"):
            if jit_variant(self.variant):
                ours = outputs("scalar", case, dtype, jit=self.variant)
            else:
                ours = [fn(x, np.ones((), dtype)) for x in xs]
            self.assertEqual({(y.shape, y.dtype, g.shape, g.dtype) for y, g in ours},
                             {((), np.dtype(dtype), (), np.dtype(dtype))})
        tol = dict(TOL[dtype], rtol=case.f64_grad_rtol) if dtype == "float64" else TOL[dtype]
        np.testing.assert_allclose(np.array(ours, np.float64), np.array(refs), **tol)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        dict(testcase_name=f"{c.id}_{shape_id}_{d}", case_id=c.id, shape=shape, dtype=d)
        for c in CASES for shape_id, shape in EMPTY_SHAPES.items() for d in ("float32", "float64"))
    def test_zero_size_input_matches_torch(self, case_id, shape, dtype):
        """An empty batch or an empty axis gives torch's (empty) shapes, or the same refusal."""
        case = CASE_BY_ID[case_id]
        x = np.zeros(shape, dtype)
        fn = self.variant(functools.partial(value_and_grad, case))
        t = torch.zeros(shape, dtype=getattr(torch, dtype), requires_grad=True)
        try:
            y_ref = case.torch_fn(t)
        except RuntimeError:  # torch refuses it (glu halving an odd axis): so do we
            with pytest.raises(ValueError, match="odd"):
                fn(x, x)
            return
        y_ref.backward(torch.zeros_like(y_ref))
        with jax.enable_x64(dtype == "float64"):
            if jit_variant(self.variant):
                ((y, g),) = outputs("empty", case, dtype, shape, self.variant)
            else:
                y, g = fn(x, np.zeros(tuple(y_ref.shape), dtype))
        self.assertEqual((y.shape, y.dtype), (tuple(y_ref.shape), dtype))
        self.assertEqual((g.shape, g.dtype), (shape, dtype))


@pytest.mark.parametrize("case", [c for c in CASES if c.smooth], ids=lambda c: c.id)
def test_check_grads_float64(case):
    """Forward and reverse derivatives to order 2 agree with finite differences."""
    x = np.array([[-2.3, -0.7, 0.3, 1.1], [2.6, 4.2, 0.0, -5.0]])
    with jax.enable_x64(True):
        check_grads(jax.jit(case), (jnp.asarray(x),), order=2, modes=["fwd", "rev"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [c for c in CASES if c.jax_nn is not None], ids=lambda c: c.id)
def test_matches_jax_nn(case, dtype):
    """Equal to jax.nn's counterpart; gradients too, except at documented kinks."""
    x = grid(case, np.dtype(dtype))
    ct = cotangent(case, x)
    with jax.enable_x64(dtype == "float64"):
        ((y, g, _),) = outputs("grid", case, dtype)
        ((y_ref, g_ref),) = outputs("jax_nn", case, dtype)
        np.testing.assert_allclose(y, y_ref, **TOL[dtype])
        differs = np.isin(x, case.jax_grad_differs_at)
        np.testing.assert_allclose(np.where(differs, 0, g), np.where(differs, 0, g_ref),
                                   **TOL[dtype])
        assert np.all(g[differs] != g_ref[differs])


def test_documented_differences():
    """What the docstrings say about jax.nn and torch, checked."""
    x0 = jnp.array(0.0)
    # gelu: jax.nn's default is the tanh approximation, torch's (and ours) the exact erf form.
    x = jnp.linspace(-4, 4, 33)
    np.testing.assert_allclose(A.gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(A.gelu(x) - jax.nn.gelu(x))) > 1e-4
    # leaky_relu'(0): torch negative_slope, jax.nn 1.
    assert jax.grad(A.leaky_relu)(x0) == np.float32(0.01)
    assert jax.grad(jax.nn.leaky_relu)(x0) == 1.0
    # hardtanh'(+-1): torch 0, jax.nn 1.
    for kink in (-1.0, 1.0):
        assert jax.grad(A.hardtanh)(jnp.array(kink)) == 0.0
        assert jax.grad(jax.nn.hard_tanh)(jnp.array(kink)) == 1.0
    # softplus: jax.nn has no linear switch above the threshold; visible in float64 only.
    with jax.enable_x64(True):
        x = jnp.array([20.5, 30.0])
        diff = np.abs(A.softplus(x) - jax.nn.softplus(x))
        assert np.all((diff > 0) & (diff < 2.1e-9))
        np.testing.assert_array_equal(A.softplus(x), x)
    # hardsigmoid: torch's float64 backward uses a float32 1/6; ours and jax.nn's are exact.
    t = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    F.hardsigmoid(t).backward()
    assert t.grad.item() == float(np.float32(1 / 6)) != 1 / 6
    with jax.enable_x64(True):
        assert jax.grad(A.hardsigmoid)(jnp.array(0.5)) == 1 / 6
        assert jax.grad(jax.nn.hard_sigmoid)(jnp.array(0.5)) == 1 / 6
    # softplus(beta=0): torch returns inf everywhere; we raise.
    assert torch.isinf(F.softplus(torch.zeros(1), beta=0.0)).all()
    # softmax(dim=None): torch warns and picks the axis from the rank (1 for 2-d); we refuse None.
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        F.softmax(torch.ones(2, 3), dim=None)
    with pytest.raises(TypeError, match="axis must be an int"):
        A.softmax(jnp.ones((2, 3)), axis=None)
    # softmax of a complex x with a dtype: torch drops the imaginary part (with a warning); we
    # refuse, as JAX's cast would drop it silently.
    with pytest.warns(UserWarning, match="discards the imaginary part"):
        F.softmax(torch.ones(2, dtype=torch.complex64), 0, dtype=torch.float32)
    with pytest.raises(TypeError, match="x must be a bool, integer or floating-point array"):
        A.softmax(jnp.ones(2, jnp.complex64), dtype=jnp.float32)
    # NaN input: torch's SIMD loop (all 64 float32 elements here) and its scalar loop (a 0-d
    # tensor, or the tail of a long one) disagree; ours is the scalar loop's at every position.
    for fn, torch_fn, simd in ((A.hardtanh, F.hardtanh, 0.0), (A.elu, F.elu, np.nan)):
        long, scalar = (torch.full(shape, np.nan, requires_grad=True) for shape in ((64,), ()))
        torch_fn(long).sum().backward()
        torch_fn(scalar).backward()
        np.testing.assert_array_equal(long.grad.numpy(), simd)
        assert scalar.grad.item() == 1.0
        np.testing.assert_array_equal(jax.grad(lambda x: fn(x).sum())(jnp.full(64, np.nan)), 1.0)
    # gelu(+inf) in float32: torch's SIMD loop gives NaN, its scalar loop (and float64) inf, as we.
    assert torch.isnan(F.gelu(torch.full((64,), np.inf))).all()
    assert F.gelu(torch.tensor(np.inf)).item() == np.inf
    np.testing.assert_array_equal(A.gelu(jnp.full(64, np.inf)), np.inf)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_low_precision_matches_torch(case, dtype):
    """bf16/f16 in, same dtype out; values and gradients within 2 ulps of torch's same dtype."""
    x, ct = low_precision_inputs(case, dtype)
    y_ref, g_ref = torch_value_and_grad(case, x, ct, getattr(torch, dtype))
    ((y, g),) = outputs("low_precision", case, dtype)
    assert y.dtype == g.dtype == jnp.dtype(dtype)
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(np.asarray(y, np.float64), y_ref, rtol=2 * eps, atol=eps)
    np.testing.assert_allclose(np.asarray(g, np.float64), g_ref, rtol=2 * eps, atol=eps)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_extreme_inputs(case, dtype):
    """+-max in bf16/f16: finite value and gradient wherever torch (in f32 at the same points,
    rounded to the dtype) is finite, and close to it. (+-1e4 in f32 is in test_matches_torch.)"""
    x, ct = extreme_inputs(case, dtype)
    y_ref, g_ref = torch_value_and_grad(case, x, ct, torch.float32)
    with np.errstate(over="ignore"):  # torch's f32 result may not fit the dtype (selu(max))
        y_ref, g_ref = (r.astype(dtype).astype(np.float32) for r in (y_ref, g_ref))
    ((y, g),) = outputs("extreme", case, dtype)
    y, g = y.astype(np.float32), g.astype(np.float32)
    rtol = 2 * float(jnp.finfo(dtype).eps)
    for ours, ref in ((y, y_ref), (g, g_ref)):
        finite = np.isfinite(ref)
        assert np.all(np.isfinite(ours[finite])), (ours, ref)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=rtol, atol=1e-6)


SOFTMAX_FAMILY = {"softmax": (A.softmax, F.softmax), "log_softmax": (A.log_softmax, F.log_softmax),
                  "softmin": (A.softmin, F.softmin)}
# (x's dtype, dtype=): wider, narrower, low precision both ways, integer and bool input.
DTYPE_ROWS = [("float32", "float64"), ("float64", "float32"), ("float32", "bfloat16"),
              ("float32", "float16"), ("bfloat16", "float32"), ("float16", "float64"),
              ("float64", "float64"), ("int32", "float32"), ("int64", "float64"),
              ("bool", "float32")]


def _tolerance(*dtypes):
    """TOL for float32/float64, 2 ulps of the least precise of ``dtypes`` below float32."""
    eps = max(float(jnp.finfo(d).eps) for d in dtypes if jnp.issubdtype(d, jnp.floating))
    return TOL["float64"] if eps < 1e-15 else TOL["float32"] if eps < 1e-6 else dict(
        rtol=2 * eps, atol=eps)


class SoftmaxDtypeTest(parameterized.TestCase):
    """torch's ``dtype=``: x cast to dtype before the operation; the result has dtype, the
    gradient x's dtype."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        dict(testcase_name=f"{name}_{x_dtype}_to_{dtype}", name=name, x_dtype=x_dtype, dtype=dtype)
        for name in SOFTMAX_FAMILY for x_dtype, dtype in DTYPE_ROWS)
    def test_dtype_matches_torch(self, name, x_dtype, dtype):
        fn, torch_fn = SOFTMAX_FAMILY[name]
        rng = np.random.default_rng(3)
        base, ct = rng.standard_normal((3, 5)) * 4, torch.tensor(rng.standard_normal((3, 5)))
        differentiable = jnp.issubdtype(x_dtype, jnp.floating)
        t = torch.tensor(base > 0 if x_dtype == "bool" else base).to(getattr(torch, x_dtype))
        ct = ct.to(getattr(torch, dtype))
        ours = self.variant(lambda x: fn(x, axis=-1, dtype=jnp.dtype(dtype)))
        try:
            y_ref = torch_fn(t.requires_grad_(differentiable), -1, dtype=getattr(torch, dtype))
        except RuntimeError:  # torch refuses it (softmin negates a bool x): so do we
            with pytest.raises(TypeError, match="x must not be boolean"):
                ours(t.numpy())
            return
        with jax.enable_x64("64" in x_dtype + dtype):
            # exact copies of torch's input and cotangent (via float64, which holds every value)
            x = jnp.asarray(t.detach().double().numpy()).astype(x_dtype)
            if differentiable:
                y_ref.backward(ct)
                y, vjp = jax.vjp(ours, x)
                g = vjp(jnp.asarray(ct.double().numpy()).astype(dtype))[0]
                self.assertEqual(g.dtype, x_dtype)
                np.testing.assert_allclose(np.asarray(g, np.float64), t.grad.double().numpy(),
                                           **_tolerance(x_dtype, dtype))
            else:
                y = ours(x)
            self.assertEqual(y.dtype, dtype)
        np.testing.assert_allclose(np.asarray(y, np.float64), y_ref.detach().double().numpy(),
                                   **_tolerance(dtype))


@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nonfinite"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_prelu_per_channel_matches_torch(axis, nonfinite):
    """Channels on ``axis`` (default last); torch's channel axis 1 is moved accordingly. NaN and
    +-inf in x: the weight's gradient is NaN for a channel holding NaN or -inf, as in torch."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, 0, 0] = 0.0
    if nonfinite:
        x[1, 1, 1], x[2, 2, 2], x[0, 3, 4] = np.nan, np.inf, -np.inf
    w = rng.uniform(-0.5, 0.5, x.shape[axis]).astype(np.float32)
    ct = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(np.moveaxis(x, axis, 1), requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = F.prelu(xt, wt)
    yt.backward(torch.tensor(np.moveaxis(ct, axis, 1)))
    kwargs = {} if axis == -1 else dict(axis=axis)
    y, vjp = jax.vjp(lambda x, w: A.prelu(x, w, **kwargs), x, w)
    gx, gw = vjp(ct)
    np.testing.assert_allclose(y, np.moveaxis(yt.detach().numpy(), 1, axis), rtol=1e-6)
    np.testing.assert_allclose(gx, np.moveaxis(xt.grad.numpy(), 1, axis), rtol=1e-6)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_rrelu_training_mode():
    """With a key: per-element slopes in [lower, upper], ~U(lower, upper), exact given the slope."""
    lower, upper = 0.1, 0.3
    x = -jnp.linspace(0.5, 2.0, 20_000).reshape(100, 200)
    y = A.rrelu(x, lower, upper, key=jax.random.key(0))
    g = jax.grad(lambda x: A.rrelu(x, lower, upper, key=jax.random.key(0)).sum())(x)
    slope = np.asarray(y / x)
    assert slope.min() >= lower and slope.max() <= upper
    np.testing.assert_allclose(g, slope, rtol=1e-6)  # the gradient is the sampled slope
    # U(0.1, 0.3): mean 0.2, std 0.2/sqrt(12); deciles evenly spaced (KS distance small).
    assert abs(slope.mean() - 0.2) < 6 * (0.2 / math.sqrt(12)) / math.sqrt(slope.size)
    hist = np.histogram(slope, bins=10, range=(lower, upper))[0] / slope.size
    np.testing.assert_allclose(hist, 0.1, atol=0.01)
    # positive inputs pass through, keys are reproducible and different keys differ
    pos = jnp.linspace(0.1, 2.0, 64)
    np.testing.assert_array_equal(A.rrelu(pos, key=jax.random.key(1)), pos)
    k1, k2 = jax.random.key(1), jax.random.key(2)
    np.testing.assert_array_equal(A.rrelu(-pos, key=k1), A.rrelu(-pos, key=k1))
    assert np.any(A.rrelu(-pos, key=k1) != A.rrelu(-pos, key=k2))
    # torch's training mode gives its sampled slope as the gradient at 0 too
    t = torch.zeros(1, requires_grad=True)
    F.rrelu(t, lower, upper, training=True).backward()
    assert lower <= t.grad.item() <= upper
    assert lower <= jax.grad(lambda x: A.rrelu(x, lower, upper, key=k1))(0.0) <= upper
    assert A.rrelu(-pos.astype(jnp.bfloat16), key=k1).dtype == jnp.bfloat16
    # at NaN torch's training kernel takes the x > 0 branch (gradient 1; eval mode: the slope)
    t = torch.tensor([np.nan], requires_grad=True)
    F.rrelu(t, lower, upper, training=True).sum().backward()
    assert t.grad.item() == 1.0 == jax.grad(lambda x: A.rrelu(x, lower, upper, key=k1))(jnp.nan)


# --- properties -----------------------------------------------------------------------------

_rows = hnp.arrays(np.float32, (3, 5), elements=dict(min_value=-60, max_value=60))
_softmax, _log_softmax = jax.jit(A.softmax), jax.jit(A.log_softmax)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(x=_rows, shift=hypothesis.strategies.floats(-30, 30, width=32))
def test_softmax_properties(x, shift):
    p = np.asarray(_softmax(x), np.float64)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(_softmax(x + np.float32(shift)), p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.exp(_log_softmax(x)), p, rtol=1e-5, atol=1e-7)
    safe = p > 1e-30  # log(softmax) itself underflows below that; log_softmax does not
    np.testing.assert_allclose(np.asarray(_log_softmax(x))[safe], np.log(p[safe]), rtol=1e-5,
                               atol=1e-6)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(x=hnp.arrays(np.float32, (16,), elements=dict(
    allow_nan=False, allow_infinity=False)))
def test_bounded_outputs(x):
    s = np.asarray(A.sigmoid(x))
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.asarray(A.logsigmoid(x)) <= 0)
    assert np.all(np.abs(A.softsign(x)) <= 1) and np.all(np.abs(A.tanh(x)) <= 1)
    h = np.asarray(A.hardsigmoid(x))
    assert np.all((h >= 0) & (h <= 1))


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("bad", [[1.0, 2.0], None, np.arange(4), jnp.arange(4)],
                         ids=["list", "None", "np_int", "jnp_int"])
def test_non_float_x_raises(case, bad):
    with pytest.raises(TypeError, match="x must be"):
        case(bad)


@pytest.mark.parametrize("fn", [A.softmax, A.log_softmax, A.softmin, A.glu])
def test_bad_axis_raises(fn):
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        fn(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        fn(x, axis=1.0)
    with pytest.raises(ValueError, match="axis=-3 is out of range"):
        jax.jit(functools.partial(fn, axis=-3))(x)


@pytest.mark.parametrize("call, error, match", [
    (lambda: A.glu(jnp.ones((2, 5))), ValueError, "axis=1, whose length 5 is odd"),
    (lambda: jax.jit(A.glu)(jnp.ones((3, 4)).T), ValueError, "axis=1, whose length 3 is odd"),
    (lambda: A.prelu(jnp.ones((2, 4)), jnp.ones(3)), ValueError,
     r"weight of shape \(3,\) for x of shape \(2, 4\) with 4 channel"),
    (lambda: A.prelu(jnp.ones((2, 4)), jnp.ones((2, 2))), ValueError, r"weight of shape \(2, 2\)"),
    (lambda: A.prelu(jnp.ones((2, 4)), [0.25]), TypeError, "weight must be"),
    (lambda: A.gelu(jnp.ones(2), approximate="exact"), ValueError, "approximate must be one of"),
    (lambda: A.gelu(jnp.ones(2), approximate=True), TypeError, "approximate must be a string"),
    (lambda: A.softplus(jnp.ones(2), beta=0.0), ValueError, "beta must be nonzero"),
    (lambda: A.celu(jnp.ones(2), alpha=0.0), ValueError, "alpha must be nonzero"),
    (lambda: A.hardtanh(jnp.ones(2), 2.0, 1.0), ValueError, "min_val cannot be greater"),
    (lambda: A.rrelu(jnp.ones(2), 0.5, 0.1), ValueError, "lower must be <= upper"),
    (lambda: A.softshrink(jnp.ones(2), -0.1), ValueError, "lambd must be >= 0"),
    (lambda: jax.jit(A.softshrink, static_argnums=1)(jnp.ones(2), -0.1), ValueError, "lambd"),
    (lambda: A.softshrink(jnp.ones(2), jnp.array(-0.1)), ValueError, "lambd must be >= 0"),
    (lambda: A.leaky_relu(jnp.ones(2), "0.1"), TypeError, "negative_slope must be a real"),
    (lambda: A.elu(jnp.ones(2), alpha=None), TypeError, "alpha must be a real"),
    (lambda: A.celu(jnp.ones(2), alpha=True), TypeError, "alpha must be a real"),
    (lambda: A.softplus(jnp.ones(2), beta=None), TypeError, "beta must be a real"),
    (lambda: A.softplus(jnp.ones(2), threshold="20"), TypeError, "threshold must be a real"),
    (lambda: A.hardtanh(jnp.ones(2), min_val="-1"), TypeError, "min_val must be a real"),
    (lambda: A.softshrink(jnp.ones(2), None), TypeError, "lambd must be a real"),
    (lambda: A.hardshrink(jnp.ones(2), "0.5"), TypeError, "lambd must be a real"),
    (lambda: A.threshold(jnp.ones(2), 1.0, None), TypeError, "value must be a real"),
    (lambda: A.rrelu(jnp.ones(2), upper=[0.3]), TypeError, "upper must be a real"),
    (lambda: A.leaky_relu(jnp.ones(2), jnp.array([True])), TypeError, "negative_slope"),
    (lambda: A.softmax(jnp.ones(2), dtype=jnp.int32), TypeError, "dtype must be a floating"),
    (lambda: A.log_softmax(jnp.ones(2), dtype=jnp.complex64), TypeError, "dtype must be a float"),
    (lambda: A.softmin(jnp.ones(2), dtype="float3"), TypeError, "dtype must be a floating"),
    (lambda: A.softmin(jnp.array([True]), dtype=jnp.float32), TypeError, "x must not be boolean"),
    (lambda: A.softmax(jnp.ones(2, jnp.complex64), dtype=jnp.float32), TypeError,
     "x must be a bool, integer or floating-point array"),
    (lambda: A.softmax(jnp.ones(2), axis=None), TypeError, "axis must be an int"),
    (lambda: A.softmax(jnp.array(1.0), axis=1), ValueError,
     "axis=1 is out of range for a 0-dimensional x"),
    (lambda: jax.jit(A.log_softmax, static_argnums=1)(jnp.array(1.0), -2), ValueError,
     "axis=-2 is out of range for a 0-dimensional x"),
    (lambda: A.glu(jnp.array(1.0)), ValueError, "axis=-1 is invalid for a 0-dimensional array"),
])
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_traced_arguments_are_accepted():
    """Arguments that only enter the arithmetic may be arrays, traced under jit or vmap."""
    x = jnp.array([-2.0, 0.0, 2.0])
    slopes = jnp.array([0.25, 0.5])
    out = jax.vmap(lambda s: A.leaky_relu(x, s))(slopes)
    np.testing.assert_array_equal(out, [[-0.5, 0.0, 2.0], [-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(jax.jit(A.softshrink)(x, jnp.array(1.0)), [-1.0, 0.0, 1.0])


def test_torch_rejects_what_we_reject():
    with pytest.raises(ValueError, match="min_val cannot be greater"):
        F.hardtanh(torch.ones(2), 2.0, 1.0)
    for call in (lambda: F.softshrink(torch.ones(2), -0.1),
                 lambda: F.rrelu(torch.ones(2), 0.5, 0.1),
                 lambda: F.gelu(torch.ones(2), approximate="exact"),
                 lambda: F.celu(torch.ones(2), 0.0),
                 lambda: F.softmax(torch.ones(2), 0, dtype=torch.int32),
                 lambda: F.log_softmax(torch.ones(2), 0, dtype=torch.complex64),
                 lambda: F.softmin(torch.tensor([True]), 0, dtype=torch.float32),
                 lambda: F.glu(torch.tensor(1.0))):
        with pytest.raises(RuntimeError):
            call()
    for call in (lambda: F.softmax(torch.tensor(1.0), 1),
                 lambda: F.log_softmax(torch.tensor(1.0), -2)):
        with pytest.raises(IndexError, match="Dimension out of range"):
            call()
    # a negative lambd is fine for hardshrink (identity), in torch and here
    x = np.array([-1.0, 0.0, 1.0], np.float32)
    np.testing.assert_array_equal(A.hardshrink(jnp.asarray(x), -1.0), x)
    np.testing.assert_array_equal(F.hardshrink(torch.tensor(x), -1.0).numpy(), x)


# --- get / NAMES ----------------------------------------------------------------------------

TORCH_CLASSES = [
    "Identity", "ReLU", "LeakyReLU", "GELU", "SiLU", "Mish", "Softplus", "Hardtanh",
    "Hardsigmoid", "Hardswish", "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink",
    "Threshold", "Softmax", "LogSoftmax", "Softmin", "GLU", "PReLU", "RReLU", "ELU", "SELU",
    "CELU", "ReLU6", "Softsign", "Sigmoid", "Tanh",
]


def test_get_resolves_function_and_torch_class_names():
    for name in A.NAMES:
        assert A.get(name) is getattr(A, name)
    resolved = {A.get(name).__name__ for name in TORCH_CLASSES}
    assert resolved == set(A.NAMES)
    for cls in TORCH_CLASSES:
        assert hasattr(torch.nn, cls)
    assert A.get("hard_silu") is A.hardswish and A.get("swish") is A.silu
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*celu, elu, gelu"):
        A.get("relu7")


def test_names_and_docstrings():
    assert set(A.NAMES) == set(A.__all__) - {"NAMES", "ELEMENTWISE", "get"}
    assert {c.fn.__name__ for c in CASES} == set(A.NAMES)
    for name in A.NAMES:
        doc = getattr(A, name).__doc__
        assert doc and "Args:" in doc and ("F." in doc or "torch" in doc), name
