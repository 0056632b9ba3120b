"""Small bundled datasets, split and standardised the way the course does it.

Every dataset ships with scikit-learn (no network access): the course's synthetic
``make_classification`` problem and sklearn's ``load_digits``, ``load_breast_cancer``,
``load_iris``, ``load_wine`` and ``load_diabetes``. :func:`load` splits deterministically
(``train_test_split(test_size, random_state=seed)``), fits the standardisation
(``StandardScaler``: mean and population standard deviation per feature) on the train split only
and applies those train statistics to the test split, as the course's exercise does.

scikit-learn is imported inside :func:`load`, so ``import jaxfund.data`` stays light.

Example::

    ds = jaxfund.data.load("digits")
    ds.x_train.shape, ds.num_classes      # ((1437, 64), 10)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxfund import _checks, tasks

__all__ = ["NAMES", "Dataset", "load"]

NAMES: tuple[str, ...] = ("classification", "digits", "breast_cancer", "iris", "wine", "diabetes")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split ready for training.

    Attributes:
      name: one of :data:`NAMES`.
      task: ``"binary"``, ``"multiclass"`` or ``"regression"``, from
        :func:`jaxfund.tasks.infer` on the targets.
      num_classes: 2 for binary, C for multiclass, 0 for regression.
      x_train, x_test: float32 ``(n, num_features)``, standardised with train-split statistics.
      y_train, y_test: int32 class labels ``(n,)`` for classification; float32 ``(n,)``
        standardised targets for regression (see ``target_mean``/``target_std``).
      target_mean, target_std: the train-split statistics used to standardise a regression
        target (``y = (raw - target_mean) / target_std``); 0 and 1 for classification.
        Multiply an MSE by ``target_std**2`` to get it in the original units.
    """

    name: str
    task: str
    num_classes: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def num_features(self) -> int:
        """Number of input features (columns of ``x_train``)."""
        return int(self.x_train.shape[1])


def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of a bundled dataset, as NumPy arrays (imports scikit-learn)."""
    from sklearn import datasets

    if name == "classification":
        return datasets.make_classification(
            n_samples=1000, n_features=20, n_classes=2, random_state=42
        )
    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "diabetes": datasets.load_diabetes,
    }
    return loaders[name](return_X_y=True)


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """``(train - mean) / std`` and ``(test - mean) / std`` with train statistics (float64).

    A constant column (std 0, e.g. the blank border pixels of digits) is divided by 1, as
    sklearn's ``StandardScaler`` does.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std == 0.0, 1.0, std)
    return (train - mean) / std, (test - mean) / std, mean, std


def load(name: str, *, test_size: float = 0.2, seed: int = 42) -> Dataset:
    """Loads a bundled dataset, split into train/test and standardised with train statistics.

    ``"classification"`` is the course exercise: ``make_classification(n_samples=1000,
    n_features=20, n_classes=2, random_state=42)`` split with ``train_test_split(test_size=0.2,
    random_state=42)`` exactly as the course does (not stratified), so its arrays equal the
    course's. The other classification sets (digits, breast_cancer, iris, wine) use a stratified
    split, so every class keeps its share in both splits. ``"diabetes"`` is regression: its
    target is standardised with the train split's mean and standard deviation too (stored in
    ``target_mean``/``target_std``), so an MSE of 1 means "as good as predicting the mean".

    Args:
      name: one of :data:`NAMES`.
      test_size: fraction of the samples held out for testing, in (0, 1).
      seed: ``random_state`` of the split (the synthetic problem itself is always generated with
        ``random_state=42``, as in the course).

    Returns:
      A :class:`Dataset` with float32 features and int32 labels (float32 regression targets).

    Raises:
      ValueError: unknown ``name`` (the message lists :data:`NAMES`) or ``test_size`` outside
        (0, 1).
      TypeError: ``test_size`` is not a real number.
    """
    _checks.check_choice(name, "name", NAMES)
    _checks.check_real(test_size, "test_size", low=0.0, high=1.0, low_open=True, high_open=True)
    from sklearn.model_selection import train_test_split

    x, y = _raw(name)
    x = np.asarray(x, dtype=np.float64)
    task, num_classes = tasks.infer(y)
    stratify = None if task == "regression" or name == "classification" else y
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    x_train, x_test, _, _ = _standardise(x_train, x_test)
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        y_train, y_test, mean, std = _standardise(np.asarray(y_train, np.float64)[:, None],
                                                  np.asarray(y_test, np.float64)[:, None])
        y_train, y_test = y_train[:, 0].astype(np.float32), y_test[:, 0].astype(np.float32)
        target_mean, target_std = float(mean[0]), float(std[0])
    else:
        y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    return Dataset(
        name=name,
        task=task,
        num_classes=num_classes,
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
        target_mean=target_mean,
        target_std=target_std,
    )
