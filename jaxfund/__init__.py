"""jaxfund: deep-learning fundamentals as pure, jit-compiled JAX functions.

Submodules are imported on first use, so ``import jaxfund`` stays light::

    import jaxfund
    jaxfund.activations.gelu(x)

``import jaxfund`` never imports scikit-learn, matplotlib, rich or torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("activations", "losses", "optimizers", "schedules", "averaging", "tasks", "models",
               "train", "distributed", "checkpoint", "data", "experiments")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'jaxfund' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
