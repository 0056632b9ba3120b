"""``python -m jaxfund``: the same as the ``jaxfund`` command (see :mod:`jaxfund.cli`)."""

from jaxfund.cli import console

console()
