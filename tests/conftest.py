"""Shared test setup.

With ``JAXFUND_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test fails the run: parity tests
against torch must never be skipped silently in CI.
"""

import os

import pytest


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("JAXFUND_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"JAXFUND_NO_SKIPS=1: {len(skipped)} test(s) were skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
