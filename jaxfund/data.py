"""Datasets ready for training: the small bundled ones and the user's own files.

Bundled (:func:`load`): every dataset ships with scikit-learn (no network access): the course's
synthetic ``make_classification`` problem and sklearn's ``load_digits``, ``load_breast_cancer``,
``load_iris``, ``load_wine`` and ``load_diabetes``.

Files (:func:`load_file`, behind ``jaxfund train --data PATH``): a ``.csv`` with a header row
(read with the standard :mod:`csv` module; the target is a named column, by default the last), a
``.npz`` with arrays ``x`` ``(n, features)`` and ``y`` ``(n,)``, or a ``.npy`` 2-D numeric array
whose last column is the target. Class labels that are not ``0 .. K-1`` (strings such as
``"cat"``/``"dog"``, or integers such as ``{3, 7, 9}``) become ``0 .. K-1`` in sorted order, and
:attr:`Dataset.labels` keeps the original label of each class. NaN, infinity or an empty CSV cell
is an error naming the first bad row and column, or with ``drop_nonfinite=True`` drops the row.

Both go through one pipeline, so a file is treated exactly as a bundled dataset is: the task comes
from :func:`jaxfund.tasks.infer` on the targets; the split is
``train_test_split(test_size, random_state=seed)`` (stratified for classification); the
standardisation (``StandardScaler``: mean and population standard deviation per feature) is fitted
on the train split only and applied to both splits, as the course's exercise does; a regression
target is standardised the same way (``target_mean``/``target_std``).

scikit-learn is imported inside the functions that split, so ``import jaxfund.data`` stays light.

Example::

    ds = jaxfund.data.load("digits")
    ds.x_train.shape, ds.num_classes      # ((1437, 64), 10)
    ds = jaxfund.data.load_file("pets.csv", target="species")
    ds.task, ds.labels                    # ('binary', ('cat', 'dog'))
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Any, NamedTuple

import numpy as np

from jaxfund import _checks, tasks
from jaxfund._names import DATASETS as NAMES

__all__ = ["NAMES", "SUFFIXES", "Dataset", "load", "load_file"]

SUFFIXES: tuple[str, ...] = (".csv", ".npy", ".npz")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split ready for training.

    Attributes:
      name: one of :data:`NAMES`, or the file's basename for :func:`load_file`.
      task: ``"binary"``, ``"multiclass"`` or ``"regression"``, from
        :func:`jaxfund.tasks.infer` on the targets (or forced with ``load_file(task=...)``).
      num_classes: 2 for binary, C for multiclass, 0 for regression.
      x_train, x_test: float32 ``(n, num_features)``, standardised with train-split statistics.
      y_train, y_test: int32 class labels ``(n,)`` for classification; float32 ``(n,)``
        standardised targets for regression (see ``target_mean``/``target_std``).
      target_mean, target_std: the train-split statistics used to standardise a regression
        target (``y = (raw - target_mean) / target_std``); 0 and 1 for classification.
        Multiply an MSE by ``target_std**2`` to get it in the original units.
      labels: for classification, the original label of each class: class ``i`` was
        ``labels[i]`` in the data (``tuple(range(K))`` when the labels already were
        ``0 .. K-1``, e.g. ``("cat", "dog")`` for a CSV's string labels); ``()`` for regression.
      dropped_rows: rows :func:`load_file` dropped for a non-finite value
        (``drop_nonfinite=True``); 0 otherwise.
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
    labels: tuple = ()
    dropped_rows: int = 0

    @property
    def num_features(self) -> int:
        """Number of input features (columns of ``x_train``)."""
        return int(self.x_train.shape[1])


# --- The pipeline shared by bundled datasets and files -------------------------------------------


def _check_split_args(test_size: Any, seed: Any) -> tuple[float, int]:
    """``test_size`` as a float in (0, 1) and ``seed`` as an int in [0, 2**32 - 1] (numpy's
    ``random_state`` range), or ``TypeError``/``ValueError`` naming the argument."""
    test_size = _checks.check_real(test_size, "test_size", low=0.0, high=1.0, low_open=True,
                                   high_open=True)
    seed = _checks.check_int(seed, "seed", low=0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32, got {seed}")
    return test_size, seed


def _targets(y: np.ndarray, task: str | None, what: str) -> tuple[np.ndarray, str, int, tuple]:
    """The targets ready to split: ``(y, task, num_classes, labels)``.

    With ``task=None`` the task is :func:`jaxfund.tasks.infer`'s: floating targets are regression,
    integer (or string) labels classification. Class labels become their index in the sorted
    labels (``0 .. K-1``); ``labels`` keeps the originals. A forced classification task accepts
    whole-numbered floats (e.g. a ``.npy`` file's float label column) but no fractional value.
    ``what`` names the targets in error messages.
    """
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if task == "regression" or (task is None and y.dtype.kind == "f"):
        return y.astype(np.float64), "regression", 0, ()
    if y.dtype.kind == "f":
        whole = (y == np.round(y)) & (np.abs(y) < 2.0**53)
        if not whole.all():
            i = int(np.argmin(whole))
            raise ValueError(
                f"{what} holds non-integer values (e.g. {float(y[i])!r}); task={task!r} "
                "needs class labels (integers or strings); for a numeric target use "
                "task='regression' or leave task unset"
            )
        y = y.astype(np.int64)
    values, codes = np.unique(y, return_inverse=True)
    labels = tuple(values.tolist())
    if len(labels) < 2:
        raise ValueError(f"{what} has a single class, {labels[0]!r}; classification needs at "
                         "least 2 classes")
    inferred, num_classes = tasks.infer(codes.reshape(-1))
    if task == "binary" and num_classes != 2:
        shown = ", ".join(map(repr, labels[:10])) + (", ..." if num_classes > 10 else "")
        raise ValueError(f"task='binary' needs exactly 2 classes, but {what} has {num_classes}: "
                         f"{shown}; use task='multiclass' or leave task unset")
    return codes.reshape(-1), task or inferred, num_classes, labels


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _check_split_sizes(n: int, test_size: float, y: np.ndarray | None, labels: tuple,
                       context: str) -> None:
    """``ValueError`` unless ``train_test_split`` leaves both splits non-empty and, when
    stratifying on ``y`` (class indices), each class can be in both splits."""
    n_test = math.ceil(test_size * n)  # train_test_split's own rounding
    n_train = n - n_test
    if n_train < 1:
        raise ValueError(f"test_size={test_size:g} of {n} rows{context} leaves no training rows; "
                         "lower test_size or add rows")
    if y is None:
        return
    counts = np.bincount(y, minlength=len(labels))
    if counts.min() < 2:
        label = labels[int(np.argmin(counts))]
        raise ValueError(f"class {label!r} has only {_rows(counts.min())}{context}; a stratified "
                         "split needs at least 2 rows of each class")
    if min(n_train, n_test) < len(labels):
        raise ValueError(
            f"test_size={test_size:g} of {n} rows{context} gives {n_train} train and {n_test} test "
            f"rows, but a stratified split needs a row of each of the {len(labels)} classes in "
            "both; change test_size or add rows"
        )


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


def _prepare(name: str, x: np.ndarray, y: np.ndarray, *, task: str | None, what: str,
             stratify: bool, test_size: float, seed: int, dropped_rows: int = 0) -> Dataset:
    """Targets (:func:`_targets`), split, standardisation and dtypes: the one pipeline of
    :func:`load` and :func:`load_file`. ``stratify``: stratify a classification split."""
    from sklearn.model_selection import train_test_split

    y, task, num_classes, labels = _targets(y, task, what)
    stratify_on = y if stratify and task != "regression" else None
    context = ""
    if dropped_rows:
        context = f" (after dropping {_rows(dropped_rows)} with non-finite values)"
    _check_split_sizes(len(y), test_size, stratify_on, labels, context)
    x_train, x_test, y_train, y_test = train_test_split(
        np.asarray(x, dtype=np.float64), y, test_size=test_size, random_state=seed,
        stratify=stratify_on,
    )
    x_train, x_test, _, _ = _standardise(x_train, x_test)
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        y_train, y_test, mean, std = _standardise(y_train[:, None], y_test[:, None])
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
        labels=labels,
        dropped_rows=dropped_rows,
    )


# --- Bundled datasets ----------------------------------------------------------------------------


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
      seed: ``random_state`` of the split, an int in ``[0, 2**32 - 1]`` (the synthetic problem
        itself is always generated with ``random_state=42``, as in the course).

    Returns:
      A :class:`Dataset` with float32 features and int32 labels (float32 regression targets);
      ``labels`` is ``tuple(range(num_classes))`` (``()`` for diabetes).

    Raises:
      ValueError: unknown ``name`` (the message lists :data:`NAMES`), ``test_size`` outside
        (0, 1) or a negative ``seed``.
      TypeError: ``test_size`` is not a real number or ``seed`` not an int.
    """
    _checks.check_choice(name, "name", NAMES)
    test_size, seed = _check_split_args(test_size, seed)
    x, y = _raw(name)
    return _prepare(name, x, np.asarray(y), task=None, what="the targets",
                    stratify=name != "classification", test_size=test_size, seed=seed)


# --- Files ---------------------------------------------------------------------------------------


class _Table(NamedTuple):
    """A file's rows before the pipeline, with what error messages need to name a cell."""

    x: np.ndarray  # (n, features) float64; NaN where a CSV cell is empty
    y: np.ndarray  # (n,) int, float, bool or str targets
    y_missing: np.ndarray  # (n,) bool: empty target cells (CSV)
    columns: list[str]  # each column of the file as messages name it, in file order
    target_column: int  # position of the target among ``columns``
    what: str  # the targets as messages name them
    lines: list[int] | None = None  # file line of each row (CSV)
    empty: np.ndarray | None = None  # (n, len(columns)) bool: empty CSV cells, in file order


def _too_few_rows(path: str, n: int, where: str = "") -> None:
    if n < 2:
        raise ValueError(f"{path} has only {n} data row{'' if n == 1 else 's'}{where}; at least 2 "
                         "are needed to split into train and test")


def _parse(cells: tuple[str, ...], convert: type) -> tuple[list, int | None]:
    """``convert`` (int or float) of each cell, 0 for an empty one; and the index of the first
    non-empty cell ``convert`` refuses (then the list is incomplete), else None."""
    out: list = []
    for i, cell in enumerate(cells):
        text = cell.strip()
        if not text:
            out.append(0)
            continue
        try:
            out.append(convert(text))
        except ValueError:
            return out, i
    return out, None


def _csv_target(cells: tuple[str, ...], empty: np.ndarray) -> np.ndarray:
    """A target column as int64 if every non-empty cell is an integer, else float64 (NaN where
    empty) if every one is a number, else the stripped strings."""
    ints, bad = _parse(cells, int)
    if bad is None:
        try:
            return np.array(ints, dtype=np.int64)
        except OverflowError:
            pass
    floats, bad = _parse(cells, float)
    if bad is None:
        return np.where(empty, np.nan, np.array(floats, dtype=np.float64))
    return np.array([cell.strip() for cell in cells])


def _short(text: str, limit: int = 30) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _read_csv_rows(path: str) -> tuple[list[str], int, list[list[str]], list[int]]:
    """Header, its line, the data rows and their lines; blank lines skipped, ragged rows
    refused."""
    header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                if not row:
                    continue
                if header is None:
                    header, header_line = row, line
                elif len(row) != len(header):
                    raise ValueError(f"{path}: line {line} has {len(row)} fields, but the header "
                                     f"(line {header_line}) has {len(header)}")
                else:
                    rows.append(row)
                    lines.append(line)
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num}: {e}") from e
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text: {e}") from e
    if header is None:
        raise ValueError(f"{path} is empty: a CSV file needs a header row and data rows")
    if not rows:
        raise ValueError(f"{path}: line {header_line} is a header with no data rows after it")
    _too_few_rows(path, len(rows), f" (line {lines[0]})")
    return header, header_line, rows, lines


def _read_csv(path: str, target: str | None) -> _Table:
    header, header_line, rows, lines = _read_csv_rows(path)
    names = [name.strip() for name in header]
    columns = [tuple(col) for col in zip(*rows)]
    if len(names) > 1 and not names[0]:  # DataFrame.to_csv's index column
        names, columns = names[1:], columns[1:]
    if len(names) < 2:
        raise ValueError(f"{path} has a single column ({header[-1]!r} on line {header_line}); it "
                         "needs feature columns and a target column, separated by commas")
    if target is None:
        t = len(names) - 1
    else:
        matches = [i for i, name in enumerate(names) if name == target]
        if len(matches) != 1:
            problem = "no column" if not matches else f"{len(matches)} columns named"
            raise ValueError(f"{path} has {problem} {target!r}; its columns: "
                             f"{', '.join(map(repr, names))}")
        t = matches[0]
    empty = np.array([[not cell.strip() for cell in col] for col in columns]).T
    features, non_numeric = [], []
    for j, cells in enumerate(columns):
        if j == t:
            continue
        values, bad = _parse(cells, float)
        if bad is not None:
            non_numeric.append((names[j], lines[bad], cells[bad]))
        else:
            features.append(np.where(empty[:, j], np.nan, np.array(values, dtype=np.float64)))
    if non_numeric:
        cells = ", ".join(f"{name!r} on line {line}: {_short(cell)}"
                          for name, line, cell in non_numeric)
        raise ValueError(
            f"{path}: non-numeric feature columns: {', '.join(repr(c[0]) for c in non_numeric)} "
            f"(encode them as numbers first); first non-numeric cells: {cells}"
        )
    return _Table(x=np.stack(features, axis=1), y=_csv_target(columns[t], empty[:, t]),
                  y_missing=empty[:, t], columns=[f"column {name!r}" for name in names],
                  target_column=t, what=f"target column {names[t]!r}", lines=lines, empty=empty)


_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK"


def _np_load(path: str, suffix: str) -> Any:
    """``np.load(path)`` of a ``.npy`` array or ``.npz`` archive (no pickles), or ``ValueError``
    saying what the file is instead."""
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    expected = {".npy": (_NPY_MAGIC, "a NumPy .npy array (np.save)"),
                ".npz": (_ZIP_MAGIC, "a NumPy .npz archive (np.savez)")}[suffix]
    if not magic.startswith(expected[0]):
        other = {_NPY_MAGIC: "a .npy array", _ZIP_MAGIC: "a zip/.npz archive"}
        seen = next((f" (it is {name})" for m, name in other.items() if magic.startswith(m)), "")
        raise ValueError(f"{path} is not {expected[1]}{seen}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: cannot read it as {expected[1]}: {e}") from e


def _check_numeric(path: str, name: str, array: np.ndarray) -> None:
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {name} has dtype {array.dtype}; it must be numeric (bool, int "
                         "or float)")


def _read_npy(path: str, target: str | None) -> _Table:
    a = _np_load(path, ".npy")
    _check_numeric(path, "the array", a)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"{path}: expected a 2-D array (rows, features + 1) whose last column is "
                         f"the target, got shape {a.shape}")
    _too_few_rows(path, a.shape[0])
    f = a.shape[1] - 1
    return _Table(x=a[:, :f].astype(np.float64), y=a[:, f], y_missing=np.zeros(len(a), bool),
                  columns=[f"column {j}" for j in range(f + 1)], target_column=f,
                  what=f"the target (last column, {f})")


def _read_npz(path: str, target: str | None) -> _Table:
    archive = _np_load(path, ".npz")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            found = ", ".join(map(repr, archive.files)) or "no arrays"
            raise ValueError(f"{path} has no array {missing[0]!r}; it holds {found} (expected "
                             "'x' of shape (n, features) and 'y' of shape (n,))")
        try:
            x, y = archive["x"], archive["y"]
        except (ValueError, EOFError, OSError) as e:
            raise ValueError(f"{path}: cannot read its arrays: {e}") from e
    _check_numeric(path, "x", x)
    if y.dtype.kind not in "biufU":
        raise ValueError(f"{path}: y has dtype {y.dtype}; it must hold numbers or strings")
    if x.ndim != 2 or x.shape[1] < 1 or y.shape != x.shape[:1]:
        raise ValueError(f"{path}: expected x of shape (n, features) and y of shape (n,), got "
                         f"x {x.shape} and y {y.shape}")
    _too_few_rows(path, len(x))
    f = x.shape[1]
    return _Table(x=x.astype(np.float64), y=y, y_missing=np.zeros(len(y), bool),
                  columns=[f"x column {j}" for j in range(f)] + ["y"], target_column=f, what="y")


_READERS = {".csv": _read_csv, ".npy": _read_npy, ".npz": _read_npz}


def _check_target_kind(path: str, table: _Table, task: str | None) -> None:
    """``ValueError`` for a non-numeric target with ``task='regression'``."""
    y = table.y
    if task == "regression" and y.dtype.kind not in "biuf":
        i = next((i for i, value in enumerate(y) if _parse((value,), float)[1] is not None), 0)
        raise ValueError(f"{path}: {table.what} is not numeric (row {i + 1}: {_short(str(y[i]))}); "
                         "task='regression' needs numbers; leave task unset to classify by its "
                         "labels")


def _finite_rows(path: str, table: _Table, drop: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Features and targets without the rows holding NaN, infinity or an empty cell (when
    ``drop``; else ``ValueError`` naming the first such row and column) and how many were
    dropped."""
    bad_y = table.y_missing.copy()
    if table.y.dtype.kind == "f":
        bad_y |= ~np.isfinite(table.y)
    bad = np.insert(~np.isfinite(table.x), table.target_column, bad_y, axis=1)
    bad_rows = bad.any(axis=1)
    if not bad_rows.any():
        return table.x, table.y, 0
    if not drop:
        r = int(np.argmax(bad_rows))
        c = int(np.argmax(bad[r]))
        t = table.target_column
        if table.empty is not None and table.empty[r, c]:
            value = "empty cell"
        else:
            value = repr(float(table.y[r] if c == t else table.x[r, c - (c > t)]))
        line = f" (line {table.lines[r]})" if table.lines else ""
        raise ValueError(f"{path}: row {r + 1}{line}, {table.columns[c]}: {value}; pass "
                         "drop_nonfinite=True to drop such rows")
    keep = ~bad_rows
    dropped = int(bad_rows.sum())
    if keep.sum() < 2:
        raise ValueError(f"{path}: only {_rows(int(keep.sum()))} left after dropping {dropped} "
                         "with non-finite values or empty cells; at least 2 are needed")
    return table.x[keep], table.y[keep], dropped


def load_file(path: str | os.PathLike, *, target: str | None = None, task: str | None = None,
              test_size: float = 0.2, seed: int = 0, drop_nonfinite: bool = False) -> Dataset:
    """Loads the user's data file, split and standardised exactly as :func:`load` does.

    Formats, by extension (case-insensitive):

    - ``.csv``: a header row, then one row per sample (standard :mod:`csv` dialect: commas,
      ``"``-quoted fields, UTF-8 with or without a byte-order mark; blank lines are skipped).
      ``target`` names the target column (default: the last column); every other column is a
      feature and must be numeric. A first column with an empty header cell is a
      ``DataFrame.to_csv`` index and is dropped. An empty cell counts as NaN.
    - ``.npz``: arrays ``x`` ``(n, features)`` (numeric) and ``y`` ``(n,)`` (numbers or strings).
    - ``.npy``: a 2-D numeric array; its last column is the target.

    The task is :func:`jaxfund.tasks.infer`'s on the targets (floats: regression; integer or
    string labels: binary or multiclass by the number of distinct labels) unless ``task``
    forces it. Class labels are mapped to ``0 .. K-1`` in sorted order, the originals kept in
    :attr:`Dataset.labels`. The split is ``train_test_split(test_size, random_state=seed)``,
    stratified for classification; features (and a regression target) are standardised with
    train-split statistics.

    Args:
      path: the file.
      target: ``.csv`` only: the target column's name (default the last column).
      task: ``"regression"``, ``"binary"`` or ``"multiclass"`` (:data:`jaxfund.tasks.TASKS`), or
        None to infer it. Regression needs numeric targets; a classification task needs integer
        or string labels (whole-numbered floats are accepted as integers).
      test_size: fraction of the rows held out for testing, in (0, 1); both splits must be
        non-empty (and hold every class, for classification).
      seed: ``random_state`` of the split, an int in ``[0, 2**32 - 1]``.
      drop_nonfinite: drop the rows holding NaN, infinity or an empty cell (counted in
        :attr:`Dataset.dropped_rows`) instead of raising.

    Returns:
      A :class:`Dataset` named after the file's basename.

    Raises:
      FileNotFoundError: no file at ``path`` (the message names it); other ``OSError`` as
        reading raises it (e.g. ``PermissionError``).
      ValueError: an unsupported extension (listing :data:`SUFFIXES`); a file that is empty, has
        only a header, fewer than 2 rows, a ragged CSV row (naming the line), non-numeric feature
        columns (naming them), a missing ``.npz`` array (listing those found), a wrong shape or
        dtype; a non-finite value without ``drop_nonfinite`` (naming the first bad row, its CSV
        line and the column); ``target`` not a column, or given for ``.npy``/``.npz``; a bad
        ``task``, ``test_size`` or ``seed``; targets that do not fit the forced task; a split
        that would leave a split (or a class of a stratified split) empty.
      TypeError: an argument of the wrong type.

    Example::

        ds = load_file("houses.csv", target="price")   # regression on the other columns
        ds.target_std                                  # price's train-split std
    """
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or os.PathLike of str, got {path!r}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _READERS:
        raise ValueError(f"{path}: unsupported file extension {suffix or '(none)'!r}; supported: "
                         f"{', '.join(SUFFIXES)}")
    if target is not None:
        if not isinstance(target, str):
            raise TypeError(f"target must be a column name (str) or None, got {target!r}")
        if suffix != ".csv":
            raise ValueError(f"target={target!r} applies to .csv files only: the target of a .npy "
                             "file is its last column, that of a .npz file its array 'y'")
    if task is not None:
        _checks.check_choice(task, "task", tasks.TASKS)
    if not isinstance(drop_nonfinite, (bool, np.bool_)):
        raise TypeError(f"drop_nonfinite must be a bool, got {drop_nonfinite!r}")
    test_size, seed = _check_split_args(test_size, seed)
    if os.path.getsize(path) == 0:  # FileNotFoundError naming the path if there is none
        raise ValueError(f"{path} is empty")
    table = _READERS[suffix](path, target)
    _check_target_kind(path, table, task)
    x, y, dropped = _finite_rows(path, table, bool(drop_nonfinite))
    try:
        return _prepare(os.path.basename(path), x, y, task=task, what=table.what,
                        stratify=True, test_size=test_size, seed=seed, dropped_rows=dropped)
    except ValueError as e:  # the targets or the split: name the file, as every error above
        raise ValueError(f"{path}: {e}") from e
