"""``jaxfund bench``: forwards its arguments to the repository's ``benchmarks`` package
(``python -m benchmarks``), which is not installed with jaxfund."""

from __future__ import annotations

from jaxfund.cli._common import UsageError


def run(argv: list[str]) -> int:
    try:
        import benchmarks
    except ImportError as err:
        raise UsageError(f"bench: the benchmarks package cannot be imported ({err}); run from "
                         "a jaxfund repository checkout (pip install -e .)") from None
    if not callable(getattr(benchmarks, "main", None)):
        raise UsageError(f"bench: the benchmarks package at {benchmarks.__path__} has no "
                         "main(argv); run from a jaxfund repository checkout")
    try:
        return int(benchmarks.main(argv) or 0)
    except SystemExit as exit_:  # its argparse: --help, or a malformed option
        return int(exit_.code or 0)
