"""The names the command's parser offers, in a module that imports nothing: the tasks, the
bundled datasets and the activations ``compare`` trains by default.

Their public homes re-export them (:data:`jaxfund.tasks.TASKS`, :data:`jaxfund.data.NAMES`,
:data:`jaxfund.experiments.COMPARE_ACTIVATIONS`); those modules import JAX, and the parser of
``jaxfund`` is built from these names before any command runs. Kept here, ``jaxfund --help``, a
usage error and the supervisor of a multi-process run never import JAX.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("regression", "binary", "multiclass")

DATASETS: tuple[str, ...] = ("classification", "digits", "breast_cancer", "iris", "wine",
                             "diabetes")

COMPARE_ACTIVATIONS: tuple[str, ...] = ("identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                        "gelu")
