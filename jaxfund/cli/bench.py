"""``jaxfund bench``: forwards its arguments to the repository's ``benchmarks`` package
(``python -m benchmarks``), which is not installed with jaxfund. A bad argument is one line
(``jaxfund: error: bench: ...``, exit status 2), checked before any benchmark runs."""

from __future__ import annotations

from jaxfund.cli._common import UsageError


def run(argv: list[str]) -> int:
    try:
        import benchmarks
    except ImportError as err:
        raise UsageError(f"bench: the benchmarks package cannot be imported ({err}); run from "
                         "a jaxfund repository checkout (pip install -e .)") from None
    if not all(callable(getattr(benchmarks, f, None)) for f in ("main", "parse_args")):
        raise UsageError(f"bench: the benchmarks package at {benchmarks.__path__} has no "
                         "main(argv) and parse_args(argv); run from a jaxfund repository "
                         "checkout")
    try:
        benchmarks.parse_args(argv)  # a bad argument: one line, before any work
        return int(benchmarks.main(argv) or 0)
    except benchmarks.UsageError as err:
        raise UsageError(f"bench: {err}") from None
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
