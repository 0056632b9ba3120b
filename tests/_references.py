"""Count the torch and optax reference computations the tests make (``JAXFUND_COUNT_REFERENCES``).

The suite's coverage is its comparisons against PyTorch and optax. This plugin counts them, so a
change to how the tests run (workers, grouping cases into one compiled call) can show it kept
every one: run ``JAXFUND_COUNT_REFERENCES=1 python -m pytest -q`` before and after and compare
the totals printed at the end. With a file path instead of ``1`` the per-name totals are also
written there as JSON, for a diff.

A reference computation is a call, made from a file under ``tests/`` (the first frame outside
torch and optax), into one of:

- ``torch.nn.functional``: every public function;
- ``torch``: every public function that is also a ``torch.Tensor`` method (the operations:
  ``torch.tanh``, ``torch.sum``, ...; not constructors such as ``torch.tensor``), and
  ``torch.linalg``;
- ``torch.autograd``: ``torch.autograd.grad`` and ``Tensor.backward``;
- ``torch.nn.Module``: a module's forward (nested modules included);
- ``torch.optim``: an optimizer step;
- ``optax``: every public function of ``optax``, ``optax.losses`` and ``optax.schedules``
  (losses, optimizer aliases, schedules, combinators).

Calls made by the library or the benchmarks are not counted, and neither are calls made outside
a test (at collection), which every pytest-xdist worker repeats. Counts are per test and travel
to the controlling process in the test reports, so totals are the same with or without workers.
"""

from __future__ import annotations

import collections
import functools
import inspect
import json
import os
import sys
import types

import pytest

ENV = "JAXFUND_COUNT_REFERENCES"
_PROPERTY = "jaxfund_references"
_TESTS = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _package_dirs() -> tuple[str, ...]:
    import optax
    import torch

    return tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, optax))


class Counter:
    """Counts reference calls made from the tests while a test runs."""

    def __init__(self):
        self.active = False
        self.counts: collections.Counter[str] = collections.Counter()
        self._skip = _package_dirs() + (os.path.abspath(__file__),)

    def from_tests(self) -> bool:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(self._skip):
            frame = frame.f_back
        return frame is not None and frame.f_code.co_filename.startswith(_TESTS)

    def hit(self, name: str) -> None:
        if self.active and self.from_tests():
            self.counts[name] += 1

    def wrap(self, fn, name: str):
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            self.hit(name)
            return fn(*args, **kwargs)

        return counted

    def wrap_namespace(self, module: types.ModuleType, prefix: str, names, wrapped: dict) -> None:
        for attr in names:
            fn = getattr(module, attr)
            if id(fn) not in wrapped:
                wrapped[id(fn)] = self.wrap(fn, f"{prefix}:{attr}")
            setattr(module, attr, wrapped[id(fn)])

    def install(self) -> None:
        import optax
        import torch
        import torch.nn.functional as F
        from torch.nn.modules import module as torch_module
        from torch.optim import optimizer as torch_optimizer

        def public_functions(module):
            return [n for n in dir(module) if not n.startswith("_")
                    and isinstance(getattr(module, n), (types.FunctionType,
                                                         types.BuiltinFunctionType))]

        tensor_methods = set(dir(torch.Tensor))
        wrapped: dict = {}
        self.wrap_namespace(F, "torch.nn.functional", public_functions(F), wrapped)
        self.wrap_namespace(torch, "torch", [n for n in public_functions(torch)
                                             if n in tensor_methods], wrapped)
        self.wrap_namespace(torch.linalg, "torch.linalg", public_functions(torch.linalg), wrapped)
        self.wrap_namespace(torch.autograd, "torch.autograd", ["grad"], wrapped)
        torch.Tensor.backward = self.wrap(torch.Tensor.backward, "torch.autograd:backward")
        torch_module.register_module_forward_hook(
            lambda module, args, output: self.hit(f"torch.nn.Module:{type(module).__name__}"))
        torch_optimizer.register_optimizer_step_post_hook(
            lambda opt, args, kwargs: self.hit(f"torch.optim:{type(opt).__name__}"))
        for module, prefix in ((optax, "optax"), (optax.losses, "optax.losses"),
                               (optax.schedules, "optax.schedules")):
            names = [n for n in public_functions(module) if not inspect.isclass(getattr(module, n))]
            self.wrap_namespace(module, prefix, names, wrapped)

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), collections.Counter()
        return counts


class Plugin:
    def __init__(self, output: str | None):
        self.output = output
        self.counter = Counter()
        self.counter.install()
        self.totals: collections.Counter[str] = collections.Counter()
        self.tests = 0

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item):
        self.counter.take()
        self.counter.active = True
        yield
        self.counter.active = False

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item):
        yield
        item.user_properties.append((_PROPERTY, self.counter.take()))

    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":
            return
        for key, counts in report.user_properties:
            if key == _PROPERTY and counts:
                self.tests += 1
                self.totals.update(counts)

    def pytest_terminal_summary(self, terminalreporter):
        if hasattr(terminalreporter.config, "workerinput"):
            return
        groups: collections.Counter[str] = collections.Counter()
        for name, n in self.totals.items():
            groups[name.split(":")[0]] += n
        write = terminalreporter.write_line
        write(f"{ENV}: {sum(self.totals.values())} reference calls in {self.tests} tests")
        for group, n in sorted(groups.items()):
            write(f"  {group}: {n}")
        if self.output:
            with open(self.output, "w") as f:
                json.dump({"tests": self.tests, "calls": dict(sorted(self.totals.items()))}, f,
                          indent=1)
