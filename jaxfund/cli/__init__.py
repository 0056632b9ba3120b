"""The ``jaxfund`` command: train, compare activations, plot them, measure gradient flow.

Usage (``jaxfund <command> --help`` documents every option and its default)::

    jaxfund train     [--dataset digits] [--activation relu] [--optimizer adam] ... --out DIR
    jaxfund compare   [--datasets classification,digits] [--activations ...] --out DIR
    jaxfund plot      --out DIR
    jaxfund gradients --out DIR
    jaxfund bench     [args forwarded to ``python -m benchmarks``]

Each command is a thin caller of the Python API (:func:`jaxfund.train.fit`,
:func:`jaxfund.experiments.compare`, :func:`jaxfund.experiments.activation_curves`,
:func:`jaxfund.experiments.gradient_flow`) that adds progress bars, tables and files. User errors
(an unknown dataset, activation or optimizer name, an ``--out`` that cannot be written, a missing
checkpoint for ``--resume``) exit with status 2 and one line on stderr that names the problem and
the valid choices. ``import jaxfund.cli`` is light: scikit-learn, matplotlib, rich and torch are
imported inside the commands that need them.

Modules: ``_common`` (parser, option types, one-line errors, output files), ``train``,
``compare``, ``figures`` (plot and gradients), ``bench``, ``plots`` (matplotlib figures).
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from jaxfund.cli import _common, _supervisor, bench, compare, figures, train

__all__ = ["main", "console", "build_parser"]

# What a collective reports when another process of the run died (gloo, NCCL, the coordinator).
_PEER_ERROR = re.compile(r"Gloo|NCCL|[Cc]onnection (reset|refused|closed)|UNAVAILABLE")


def build_parser() -> argparse.ArgumentParser:
    """Returns the ``jaxfund`` argument parser (one subcommand per command)."""
    parser = _common.Parser(prog="jaxfund", description=__doc__.split("\n\n")[0],
                            formatter_class=_common.Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_common.Parser)
    train.add_parser(sub)
    compare.add_parser(sub)
    figures.add_parsers(sub)
    for command in sub.choices.values():
        _common.add_compile_cache_option(command)
    sub.add_parser("bench", add_help=False,
                   help="run the benchmarks (arguments are forwarded to python -m benchmarks)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``jaxfund`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Returns 0 on success and 2 on a user error (after printing one line to stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if _supervisor.ENV in os.environ:
        _supervisor.use_parent_output()
    try:
        if argv[:1] == ["bench"]:
            return bench.run(argv[1:])
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        several = getattr(args, "several_processes", None)
        if several is not None and not _supervisor.supervised() and several(args):
            return _supervisor.run(argv)  # one process of several: its end is one line
        args.cache_dir = _common.use_compile_cache(not args.no_compile_cache)
        return int(args.func(args) or 0)
    except _common.UsageError as err:
        print(f"jaxfund: error: {err}", file=sys.stderr)
        distributed = sys.modules.get("jaxfund.distributed")
        if distributed is not None:  # the other processes of a multi-process run stop too
            distributed.fail(str(err), 2)
        return 2
    except Exception as err:
        distributed = sys.modules.get("jaxfund.distributed")
        if (distributed is not None and type(err).__name__ == "JaxRuntimeError"
                and _PEER_ERROR.search(str(err))):
            distributed.peer_lost(err)  # a collective failed: another process died
        raise


def console() -> NoReturn:
    """The ``jaxfund`` console script and ``python -m jaxfund``: :func:`main`, then the end of
    the process.

    After a command returns, the process ends without the interpreter's teardown of every
    module, which took 0.3-0.4 s of each run once JAX, Flax, Optax and Orbax are imported (a
    warm ``jaxfund compare``, medians of 5 interleaved runs on 2 cores: 5.51 → 4.87 s): once
    its output is flushed and the exit handlers have run (JAX's distributed shutdown, logging's
    flush), it exits with the command's status. If a thread that is not a daemon is still
    running (a write in progress), or this Python has no way to run the exit handlers, it exits
    the usual way, which waits for them. An exception ends the process the usual way too, with
    its traceback."""
    status = main()
    _flush()
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if others or run_exit_handlers is None:
        raise SystemExit(status)
    run_exit_handlers()
    _flush()
    os._exit(status)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written
            pass
