"""One process of a multi-process run, watched from a light parent, so that its end is one line.

When another process of the run dies, JAX's distributed runtime stops the survivors itself: a
process that loses the coordinator (process 0) is aborted by the runtime's C++ client at once,
with a fatal log line and a stack trace on file descriptor 2, and no Python code runs. So
``jaxfund train`` with several processes runs as a parent (no JAX) and a child (the run):

- the child's Python ``sys.stdout`` and ``sys.stderr`` (table, messages, progress bar,
  tracebacks) are the parent's own, passed as inherited file descriptors, so they are unchanged
  (a terminal stays a terminal);
- the child's file descriptors 1 and 2, where the C++ runtime writes (gloo's connection lines,
  the runtime's logs), are pipes that the parent reads: it keeps those lines back and prints the
  logs only if the child fails in another way; when the child was aborted by the runtime, it
  prints one line instead and exits with status :data:`jaxfund.distributed.PEER_LOST`;
- a child that stops itself because another process died (jaxfund's watchdog, or a collective
  whose peer is gone) passes its one line to the parent through that pipe, in one write, and the
  parent prints it: the runtime may abort the child a moment after the line was written (it
  noticed the same death), and the parent still prints one line, not that one and its own;
- SIGINT and SIGTERM are passed on to the child, and the child dies with the parent (Linux
  ``PR_SET_PDEATHSIG``), so a kill -9 of the process the user started stops the run.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

ENV = "JAXFUND_SUPERVISED_OUTPUT"  # in the child: "STDOUT_FD,STDERR_FD" of the parent's
PEER_LOST = 4  # = jaxfund.distributed.PEER_LOST (not imported: it would import JAX here)
_FATAL = re.compile(rb"Terminating process because the JAX distributed service detected fatal")
_STATUS = re.compile(rb"absl::Status: ([^\n]*)")
_SAID = b"jaxfund-supervised-child: "  # marks the child's one line on its descriptor 2
_SAID_LINE = re.compile(re.escape(_SAID) + rb"([^\n]*)\n")


_child = False  # set in the child by use_parent_output (which takes ENV out of the environment)


def supervised() -> bool:
    """Whether this process is the child of :func:`run` (after :func:`use_parent_output`)."""
    return _child


def use_parent_output() -> None:
    """In the child: Python's ``sys.stdout`` and ``sys.stderr`` write to the parent's (file
    descriptors 1 and 2 stay the pipes the parent reads the runtime's output from), while the
    libraries' Python log records (Orbax's, JAX's) go where the C++ runtime logs: a process
    whose coordinator died may log tracebacks from background threads before the runtime aborts
    it."""
    global _child
    _child = True
    logging.basicConfig(stream=open(2, "w", buffering=1, closefd=False, encoding="utf-8",
                                    errors="backslashreplace"))
    stdout, stderr = (int(fd) for fd in os.environ.pop(ENV).split(","))
    sys.stdout = open(stdout, "w", encoding=sys.stdout.encoding, errors=sys.stdout.errors)
    sys.stderr = open(stderr, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    from jaxfund import distributed

    distributed._stop_line_writer = _tell_parent


def _tell_parent(line: str) -> None:
    """In the child: ``line``, the one line of a process stopped because another one died, for
    the parent to print. A single write to a pipe (under ``PIPE_BUF`` bytes) lands whole, even
    amid the runtime's own output."""
    os.write(2, _SAID + line[:3000].encode("utf-8", "backslashreplace") + b"\n")


def _die_with_parent() -> None:
    """In the child, between fork and exec: SIGKILL when the parent dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reason(log: bytes) -> str:
    """The runtime's reason, one line: the first sentence of the status it aborted with."""
    found = _STATUS.search(log)
    text = (found.group(1) if found else b"the JAX distributed service reported a fatal error")
    text = " ".join(text.decode("utf-8", "replace").split())
    return text.split(". ", 1)[0].rstrip(".")[:200]


def _drain(pipe: int, into: list[bytes]) -> threading.Thread:
    """A thread reading the pipe ``pipe`` to its end into ``into``."""

    def read() -> None:
        with os.fdopen(pipe, "rb") as f:
            into.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def run(argv: Sequence[str]) -> int:
    """Runs ``python -m jaxfund *argv`` as a watched child; returns its exit status."""
    sys.stdout.flush()
    parent = (os.dup(1), os.dup(2))
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-m", "jaxfund", *argv],
                                 env={**os.environ, ENV: f"{parent[0]},{parent[1]}"},
                                 stdout=out_write, stderr=err_write, pass_fds=parent,
                                 preexec_fn=_die_with_parent)
    finally:
        for fd in (out_write, err_write, *parent):
            os.close(fd)
    previous = {sig: signal.signal(sig, lambda sig, _: child.send_signal(sig))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    runtime_output: list[bytes] = []  # gloo's connection lines: dropped
    logs: list[bytes] = []
    try:
        readers = [_drain(out_read, runtime_output), _drain(err_read, logs)]
        status = child.wait()
        for reader in readers:  # the pipes end when the child does
            reader.join()
        log = b"".join(logs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    text, status = _outcome(status, log)
    if text:
        sys.stderr.write(text)
    return status


def _outcome(status: int, log: bytes) -> tuple[str, int]:
    """What the parent writes on stderr, and its exit status, for a child that ended with
    ``status`` (``Popen.returncode``) after writing ``log`` on its descriptor 2: the child's own
    line if it stopped itself because another process died (whatever happened after it); one
    line if the runtime aborted it; the runtime's logs if it failed in another way."""
    said = _SAID_LINE.search(log)
    if said:
        return said.group(1).decode("utf-8", "replace") + "\n", PEER_LOST
    if status != 0 and _FATAL.search(log):
        return (f"jaxfund: error: JAX's distributed runtime stopped this process because another "
                f"one died or the coordinator (process 0) is unreachable ({_reason(log)}); the "
                f"last complete checkpoint is kept\n", PEER_LOST)
    text = log.decode("utf-8", "replace") if status != 0 else ""
    return text, status if status >= 0 else 128 - status
