"""The examples in the docstrings run and print what they say, one test per docstring: every
public function of activations, losses and optimizers has one; tasks, models and train have
them where they help."""

from __future__ import annotations

import doctest
import inspect

import jax
import jax.numpy as jnp
import optax
import pytest

from jaxfund import _checks, _lbfgs, activations, averaging, losses, models, optimizers, tasks, train

MODULES = (activations, losses, optimizers)
# What the examples assume, as the module docstrings say.
GLOBS = {"jnp": jnp, "optax": optax, "activations": activations, "losses": losses,
         "optimizers": optimizers}
TESTS = [t for m in (*MODULES, _checks, _lbfgs, averaging, tasks, models, train)
         for t in doctest.DocTestFinder().find(m, extraglobs=GLOBS) if t.examples]


@pytest.mark.parametrize("test", TESTS, ids=[t.name for t in TESTS])
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with jax.enable_x64(False):  # the printed dtypes are float32
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed, f"{failed} of {attempted} examples in {test.name} failed"


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_every_public_function_has_an_example(module):
    with_examples = {t.name for t in TESTS}
    functions = [getattr(module, n) for n in module.__all__
                 if inspect.isfunction(getattr(module, n))]
    # A function re-exported from a private module (optimizers.lbfgs) is found there.
    missing = [f.__name__ for f in functions
               if f"{f.__module__}.{f.__qualname__}" not in with_examples]
    assert functions and not missing, f"{module.__name__}: no example in {missing}"
