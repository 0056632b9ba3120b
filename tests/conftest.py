"""Shared test setup.

With ``JAXFUND_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test fails the run: parity tests
against torch must never be skipped silently in CI.
"""

import os

# The suite checks float32 arithmetic: its tolerances count float32 roundings. JAX's default
# float32 matmul precision is lower on accelerators (TF32 inputs on NVIDIA GPUs: 10-bit
# mantissas; bf16 passes on TPUs), while torch's CUDA matmuls default to full float32. Pin full
# float32 here, and in the environment for the subprocesses the tests start; on a CPU it changes
# nothing.
os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("JAXFUND_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"JAXFUND_NO_SKIPS=1: {len(skipped)} test(s) were skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
