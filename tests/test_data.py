import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jaxfund import data

# name -> (task, num_classes, num_features, num_samples), from sklearn's documentation.
EXPECTED = {
    "classification": ("binary", 2, 20, 1000),
    "digits": ("multiclass", 10, 64, 1797),
    "breast_cancer": ("binary", 2, 30, 569),
    "iris": ("multiclass", 3, 4, 150),
    "wine": ("multiclass", 3, 13, 178),
    "diabetes": ("regression", 0, 10, 442),
}


def test_names_cover_expected():
    assert set(data.NAMES) == set(EXPECTED)


@pytest.fixture(scope="module", params=data.NAMES)
def loaded(request):
    return data.load(request.param)


def test_shapes_dtypes_and_task(loaded):
    task, num_classes, num_features, num_samples = EXPECTED[loaded.name]
    assert (loaded.task, loaded.num_classes, loaded.num_features) == (task, num_classes,
                                                                      num_features)
    n_train, n_test = len(loaded.x_train), len(loaded.x_test)
    assert n_train + n_test == num_samples
    assert n_test == int(np.ceil(0.2 * num_samples))
    assert loaded.x_train.dtype == loaded.x_test.dtype == np.float32
    assert loaded.x_train.shape == (n_train, num_features)
    assert loaded.y_train.shape == (n_train,) and loaded.y_test.shape == (n_test,)
    label_dtype = np.float32 if task == "regression" else np.int32
    assert loaded.y_train.dtype == loaded.y_test.dtype == label_dtype
    if task != "regression":
        assert set(np.unique(loaded.y_train)) == set(range(num_classes))


def test_train_split_is_standardised(loaded):
    mean = loaded.x_train.astype(np.float64).mean(axis=0)
    std = loaded.x_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-6)
    constant = std < 1e-6  # e.g. digits' blank border pixels: left at 0, as StandardScaler does
    assert constant.sum() < loaded.num_features
    np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-5)
    # The test split is standardised with train statistics, so it is not exactly standardised.
    assert np.abs(loaded.x_test.mean(axis=0)).max() > 1e-3


def _sklearn_reference(name, seed=42):
    if name == "classification":
        x, y = datasets.make_classification(n_samples=1000, n_features=20, n_classes=2,
                                            random_state=42)
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    stratify = None if name in ("classification", "diabetes") else y
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=stratify)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def test_matches_course_pipeline(loaded):
    """Same split as train_test_split and the test split scaled with the train split's
    StandardScaler (fitted on train only), as in the course's exercise."""
    x_train, x_test, y_train, y_test = _sklearn_reference(loaded.name)
    np.testing.assert_allclose(loaded.x_train, x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loaded.x_test, x_test, rtol=1e-6, atol=1e-6)
    if loaded.task == "regression":
        mean, std = y_train.mean(), y_train.std()
        np.testing.assert_allclose(loaded.y_train, (y_train - mean) / std, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(loaded.y_test, (y_test - mean) / std, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose((loaded.target_mean, loaded.target_std), (mean, std))
    else:
        np.testing.assert_array_equal(loaded.y_train, y_train)
        np.testing.assert_array_equal(loaded.y_test, y_test)
        assert (loaded.target_mean, loaded.target_std) == (0.0, 1.0)


def test_split_is_deterministic_and_seeded():
    a, b = data.load("iris"), data.load("iris")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = data.load("iris", seed=0, test_size=0.5)
    assert len(c.x_test) == 75
    assert not np.array_equal(np.sort(a.x_train[:, 0]), np.sort(c.x_train[:, 0]))
    # Stratified: every class keeps its third of the 75 test samples.
    np.testing.assert_array_equal(np.bincount(c.y_test), [25, 25, 25])


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="name must be one of .*'digits'.*'diabetes'.*'nope'"):
        data.load("nope")


@pytest.mark.parametrize("test_size", [0.0, 1.0, 1, -0.1])
def test_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        data.load("iris", test_size=test_size)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be"):
        data.load("iris", seed=seed)


def test_labels_of_bundled(loaded):
    expected = () if loaded.task == "regression" else tuple(range(loaded.num_classes))
    assert loaded.labels == expected and loaded.dropped_rows == 0


# --- load_file -----------------------------------------------------------------------------------

_RNG = np.random.default_rng(0)
N = 40
# Three features on different scales, so the standardisation is visible.
X = _RNG.normal(size=(N, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -3.0]
Y_FLOAT = X @ [1.0, -0.2, 0.03] + _RNG.normal(size=N)
Y_BINARY = np.arange(N) % 2
Y_THREE = np.arange(N) % 3


def _text(path, text):
    path.write_text(text, encoding="utf-8")


def _csv_text(names, columns):
    """A CSV written cell by cell (floats with repr, so they read back exactly)."""
    cells = [[repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in col]
             for col in columns]
    return "\n".join([",".join(names)] + [",".join(row) for row in zip(*cells)]) + "\n"


def _pandas_layout(labels):
    """What ``DataFrame.to_csv`` writes: an index column under an empty header cell, and quotes
    only around fields holding a comma (QUOTE_MINIMAL)."""
    lines = [',a,"b, scaled",c,label']
    for i, (row, label) in enumerate(zip(X, labels)):
        lines.append(f'{i},{float(row[0])!r},{float(row[1])!r},{float(row[2])!r},"{label}"')
    return "\n".join(lines) + "\n"


STRINGS = np.array(["dog", "cat", "bird"])[Y_THREE]
INTS_379 = np.array([9, 3, 7])[Y_THREE]
PANDAS_LABELS = np.array(["small, red", "big, blue"])[Y_BINARY]

# id -> (file name, how to write it, load_file kwargs, raw targets, task, labels).
# The raw targets and X are what the file holds; the expected arrays come from sklearn on them.
FILES = {
    "csv_last_column_binary": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "y"], [*X.T, Y_BINARY])),
        {}, Y_BINARY, "binary", (0, 1)),
    "csv_target_named_middle_column": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "kind", "b", "c"],
                                              [X[:, 0], Y_THREE, X[:, 1], X[:, 2]])),
        {"target": "kind", "seed": 3}, Y_THREE, "multiclass", (0, 1, 2)),
    "csv_string_labels": (
        "pets.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "species"], [*X.T, STRINGS])),
        {"test_size": 0.3}, STRINGS, "multiclass", ("bird", "cat", "dog")),
    "csv_int_labels_3_7_9": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "y"], [*X.T, INTS_379])),
        {}, INTS_379, "multiclass", (3, 7, 9)),
    "csv_negative_int_labels_binary": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "y"], [*X.T, 2 * Y_BINARY - 1])),
        {}, 2 * Y_BINARY - 1, "binary", (-1, 1)),
    "csv_regression": (
        "houses.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "price"], [*X.T, Y_FLOAT])),
        {"seed": 7}, Y_FLOAT, "regression", ()),
    "csv_int_target_forced_regression": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "y"], [*X.T, Y_THREE])),
        {"task": "regression"}, Y_THREE.astype(float), "regression", ()),
    "csv_binary_forced_multiclass": (
        "d.csv", lambda p: _text(p, _csv_text(["a", "b", "c", "y"], [*X.T, Y_BINARY])),
        {"task": "multiclass"}, Y_BINARY, "multiclass", (0, 1)),
    "csv_pandas_to_csv_layout": (
        "df.csv", lambda p: _text(p, _pandas_layout(PANDAS_LABELS)),
        {"target": "label"}, PANDAS_LABELS, "binary", ("big, blue", "small, red")),
    "csv_bom_crlf_blank_lines": (
        "d.csv", lambda p: p.write_bytes(b"\xef\xbb\xbf" + _csv_text(
            ["a", "b", "c", "y"], [*X.T, Y_BINARY]).replace("\n", "\r\n\r\n").encode()),
        {}, Y_BINARY, "binary", (0, 1)),
    "npz_int_labels": (
        "d.npz", lambda p: np.savez(p, x=X, y=Y_THREE), {}, Y_THREE, "multiclass", (0, 1, 2)),
    "npz_string_labels": (
        "d.npz", lambda p: np.savez(p, x=X.astype(np.float32), y=STRINGS), {"seed": 11},
        STRINGS, "multiclass", ("bird", "cat", "dog")),
    "npz_regression": (
        "d.npz", lambda p: np.savez(p, x=X, y=Y_FLOAT), {}, Y_FLOAT, "regression", ()),
    "npy_regression": (
        "d.npy", lambda p: np.save(p, np.column_stack([X, Y_FLOAT])), {"test_size": 0.25},
        Y_FLOAT, "regression", ()),
    "npy_int_array_labels_3_7_9": (
        "d.npy", lambda p: np.save(p, np.column_stack([np.round(X), INTS_379]).astype(np.int64)),
        {}, INTS_379, "multiclass", (3, 7, 9)),
    "npy_float_labels_forced_binary": (
        "d.npy", lambda p: np.save(p, np.column_stack([X, 5.0 * Y_BINARY])),
        {"task": "binary"}, (5 * Y_BINARY), "binary", (0, 5)),
}


def _expected(x, raw_y, task, labels, test_size=0.2, seed=0):
    """sklearn's split of the raw arrays (stratified for classification), StandardScaler fitted
    on the train split, labels replaced by their position in ``labels``, regression targets
    standardised with the train split's mean and population std."""
    stratify = None if task == "regression" else raw_y
    x_train, x_test, y_train, y_test = train_test_split(
        x, raw_y, test_size=test_size, random_state=seed, stratify=stratify)
    scaler = StandardScaler().fit(x_train)
    if task == "regression":
        mean, std = y_train.mean(), y_train.std()
        ys = (y_train - mean) / std, (y_test - mean) / std
    else:
        index = {label: i for i, label in enumerate(labels)}
        ys = tuple(np.array([index[v.item()] for v in split]) for split in (y_train, y_test))
        mean, std = 0.0, 1.0
    return scaler.transform(x_train), scaler.transform(x_test), *ys, mean, std


@pytest.mark.parametrize("case", FILES)
def test_load_file(case, tmp_path):
    filename, write, kwargs, raw_y, task, labels = FILES[case]
    path = tmp_path / filename
    write(path)
    ds = data.load_file(str(path), **kwargs)
    assert (ds.name, ds.task, ds.labels, ds.dropped_rows) == (filename, task, labels, 0)
    assert ds.num_classes == (0 if task == "regression" else len(labels))
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == (np.float32 if task == "regression" else np.int32)
    x = np.round(X) if case == "npy_int_array_labels_3_7_9" else X
    x = x.astype(np.float32) if case == "npz_string_labels" else x
    x_train, x_test, y_train, y_test, mean, std = _expected(
        x, raw_y, task, labels, kwargs.get("test_size", 0.2), kwargs.get("seed", 0))
    np.testing.assert_allclose(ds.x_train, x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.x_test, x_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.y_train, y_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.y_test, y_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose((ds.target_mean, ds.target_std), (mean, std), rtol=1e-12)


def test_load_file_takes_a_pathlike(tmp_path):
    np.save(tmp_path / "d.npy", np.column_stack([X, Y_FLOAT]))
    assert data.load_file(tmp_path / "d.npy").name == "d.npy"


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_file_of_a_bundled_dataset_loads_as_the_bundled_one(name, tmp_path):
    """One pipeline: the bundled arrays saved to a file give the bundled Dataset."""
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    np.save(tmp_path / f"{name}.npy", np.column_stack([x, y]).astype(y.dtype if name == "diabetes"
                                                                     else np.float64))
    bundled = data.load(name, seed=5, test_size=0.3)
    kwargs = {"seed": 5, "test_size": 0.3}
    task = None if name == "diabetes" else "multiclass"  # the .npy holds float labels
    for ds in (data.load_file(tmp_path / f"{name}.npz", **kwargs),
               data.load_file(tmp_path / f"{name}.npy", task=task, **kwargs)):
        for field in ("task", "num_classes", "labels", "target_mean", "target_std"):
            assert getattr(ds, field) == getattr(bundled, field), field
        for field in ("x_train", "x_test", "y_train", "y_test"):
            np.testing.assert_array_equal(getattr(ds, field), getattr(bundled, field))


def _bad_rows_csv(bad_rows):
    """A regression CSV whose rows ``bad_rows`` (0-based) hold nan, inf, -inf or an empty cell."""
    columns = [X[:, 0].astype(object), X[:, 1].astype(object), Y_FLOAT.astype(object)]
    for k, r in enumerate(bad_rows):
        columns[k % 3][r] = ["nan", "inf", "", "-inf"][k % 4]
    return _csv_text(["a", "b", "y"], columns)


# id -> (file contents, rows that must be dropped (0-based)).
DROPS = {
    "csv_none": (("d.csv", _bad_rows_csv([])), []),
    "csv_nan_inf_empty": (("d.csv", _bad_rows_csv([3, 10, 11, 30])), [3, 10, 11, 30]),
    "csv_empty_string_label": (
        ("d.csv", _csv_text(["a", "b", "y"], [X[:, 0], X[:, 1],
                                              np.where(np.arange(N) == 5, "", STRINGS)])), [5]),
    "npy_nan_rows": (("d.npy", np.where(np.isin(np.arange(N), [0, 39])[:, None], np.nan,
                                        np.column_stack([X[:, :2], Y_FLOAT]))), [0, 39]),
    "npz_inf_target": (("d.npz", {"x": X[:, :2], "y": np.where(np.arange(N) == 7, np.inf,
                                                               Y_FLOAT)}), [7]),
}


def _write(path, contents):
    if contents is None:
        return
    if isinstance(contents, str):
        path.write_text(contents, encoding="utf-8")
    elif isinstance(contents, bytes):
        path.write_bytes(contents)
    else:  # through a file object, so numpy adds no extension of its own
        with open(path, "wb") as f:
            if isinstance(contents, dict):
                np.savez(f, **contents)
            else:
                np.save(f, contents)


@pytest.mark.parametrize("case", DROPS)
def test_drop_nonfinite_counts_and_drops_those_rows(case, tmp_path):
    (filename, contents), bad = DROPS[case]
    _write(tmp_path / filename, contents)
    ds = data.load_file(tmp_path / filename, drop_nonfinite=True)
    assert ds.dropped_rows == len(bad)
    keep = np.setdiff1d(np.arange(N), bad)
    raw_y = STRINGS[keep] if case == "csv_empty_string_label" else Y_FLOAT[keep]
    task = "multiclass" if case == "csv_empty_string_label" else "regression"
    labels = ("bird", "cat", "dog") if task == "multiclass" else ()
    x_train, x_test, y_train, y_test, _, _ = _expected(X[keep, :2], raw_y, task, labels)
    np.testing.assert_allclose(ds.x_train, x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.x_test, x_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.y_train, y_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.y_test, y_test, rtol=1e-6, atol=1e-6)
    if bad:
        with pytest.raises(ValueError, match=f"row {bad[0] + 1}\\b"):
            data.load_file(tmp_path / filename)


_GOOD = _csv_text(["a", "b", "y"], [X[:, 0], X[:, 1], Y_BINARY])
_NPZ = {"x": X, "y": Y_BINARY}

# id -> (file name, contents (None: no file), load_file kwargs, exception, message fragment).
INVALID = {
    "non_numeric_features": (
        "d.csv", "a,city,name,y\n1,Paris,Ann,0\n2,Rome,Bob,1\n3,Oslo,Cy,0\n", {}, ValueError,
        "d.csv: non-numeric feature columns: 'city', 'name' (encode them as numbers first); "
        "first non-numeric cells: 'city' on line 2: 'Paris'"),
    "na_text_is_non_numeric": (
        "d.csv", "a,y\n1,0\nNA,1\n3,0\n", {}, ValueError,
        "non-numeric feature columns: 'a' (encode them as numbers first); first non-numeric "
        "cells: 'a' on line 3: 'NA'"),
    "first_nan_row_and_column": (
        "d.csv", "a,b,c,y\n1,2,3,0\n4,5,6,1\n7,nan,inf,0\n8,9,10,1\n1,2,nan,0\n", {},
        ValueError, "d.csv: row 3 (line 4), column 'b': nan; pass drop_nonfinite=True to drop "
        "such rows"),
    "nan_line_counts_blank_lines": (
        "d.csv", "a,b,y\n\n1,2,0\n\n3,NaN,1\n", {}, ValueError, "row 2 (line 5), column 'b': nan"),
    "inf_in_target": (
        "d.csv", "a,b,y\n1,2,0.5\n3,4,-inf\n", {}, ValueError,
        "row 2 (line 3), column 'y': -inf; pass drop_nonfinite=True"),
    "empty_feature_cell": (
        "d.csv", "a,b,y\n,2,0\n3,4,1\n", {}, ValueError, "row 1 (line 2), column 'a': empty cell"),
    "empty_label_cell": (
        "d.csv", "a,y\n1,cat\n2,\n3,dog\n", {}, ValueError,
        "row 2 (line 3), column 'y': empty cell"),
    "npy_nan": (
        "d.npy", np.array([[1.0, 2.0, 0.0], [3.0, np.nan, 1.0], [5.0, 6.0, 0.0]]), {}, ValueError,
        "d.npy: row 2, column 1: nan; pass drop_nonfinite=True"),
    "npz_nan_x": (
        "d.npz", {"x": np.array([[np.nan], [1.0], [2.0]]), "y": np.array([0, 1, 0])}, {},
        ValueError, "d.npz: row 1, x column 0: nan"),
    "npz_inf_y": (
        "d.npz", {"x": np.ones((3, 2)), "y": np.array([0.5, 1.0, np.inf])}, {}, ValueError,
        "d.npz: row 3, y: inf"),
    "stratified_split_after_drop": (
        "d.csv", "a,y\n1,0\n2,1\n3,0\nnan,1\n", {"drop_nonfinite": True}, ValueError,
        "d.csv: class 1 has only 1 row (after dropping 1 row with non-finite values); a "
        "stratified split needs"),
    "all_but_one_row_dropped": (
        "d.csv", "a,y\n1,0\nnan,1\n,0\n", {"drop_nonfinite": True}, ValueError,
        "d.csv: only 1 row left after dropping 2"),
    "unknown_extension": (
        "d.txt", _GOOD, {}, ValueError,
        "d.txt: unsupported file extension '.txt'; supported: .csv, .npy, .npz"),
    "no_extension": ("data", _GOOD, {}, ValueError, "unsupported file extension '(none)'"),
    "npz_missing_key": (
        "d.npz", {"x": X, "target": Y_BINARY}, {}, ValueError,
        "d.npz has no array 'y'; it holds 'x', 'target'"),
    "npz_y_wrong_length": (
        "d.npz", {"x": X, "y": Y_BINARY[:-1]}, {}, ValueError,
        "expected x of shape (n, features) and y of shape (n,), got x (40, 3) and y (39,)"),
    "npz_file_is_npy": ("d.npz", X, {}, ValueError, "is not a NumPy .npz archive (np.savez) "
                                                    "(it is a .npy array)"),
    "npy_file_is_text": ("d.npy", _GOOD, {}, ValueError, "d.npy is not a NumPy .npy array"),
    "npy_1d": ("d.npy", Y_FLOAT, {}, ValueError,
               "expected a 2-D array (rows, features + 1) whose last column is the target, got "
               "shape (40,)"),
    "npy_strings": ("d.npy", np.array([["a", "b"], ["c", "d"]]), {}, ValueError,
                    "the array has dtype <U1; it must be numeric"),
    "ragged_row": (
        "d.csv", "a,b,y\n1,2,0\n3,0\n4,5,1\n", {}, ValueError,
        "d.csv: line 3 has 2 fields, but the header (line 1) has 3"),
    "header_only": ("d.csv", "a,b,y\n", {}, ValueError,
                    "d.csv: line 1 is a header with no data rows after it"),
    "blank_lines_only": ("d.csv", "\n\n", {}, ValueError, "d.csv is empty"),
    "empty_file": ("d.npz", "", {}, ValueError, "d.npz is empty"),
    "one_data_row": ("d.csv", "a,y\n1,0\n", {}, ValueError,
                     "d.csv has only 1 data row (line 2); at least 2 are needed"),
    "npy_one_row": ("d.npy", np.ones((1, 3)), {}, ValueError, "d.npy has only 1 data row"),
    "single_column": ("d.csv", "a;b;y\n1;2;0\n3;4;1\n", {}, ValueError,
                      "has a single column ('a;b;y' on line 1)"),
    "missing_file": ("absent.csv", None, {}, FileNotFoundError, "absent.csv"),
    "directory": ("dir.csv", "mkdir", {}, IsADirectoryError, "dir.csv"),
    "test_size_0": ("d.csv", _GOOD, {"test_size": 0}, ValueError,
                    "test_size must be in (0, 1), got 0"),
    "test_size_1.5": ("d.csv", _GOOD, {"test_size": 1.5}, ValueError,
                      "test_size must be in (0, 1), got 1.5"),
    "test_size_str": ("d.csv", _GOOD, {"test_size": "0.2"}, TypeError, "test_size must be"),
    "seed_negative": ("d.csv", _GOOD, {"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    "seed_float": ("d.csv", _GOOD, {"seed": 1.0}, TypeError, "seed must be an int"),
    "no_training_rows": ("d.npz", {"x": X[:2], "y": Y_FLOAT[:2]}, {"test_size": 0.6},
                         ValueError, "d.npz: test_size=0.6 of 2 rows leaves no training rows"),
    "class_with_one_row": ("d.npz", {"x": X[:5], "y": np.array([0, 1, 0, 1, 2])}, {},
                           ValueError, "d.npz: class 2 has only 1 row; a stratified split needs"),
    "too_few_test_rows_for_classes": (
        "d.npz", {"x": X[:12], "y": Y_THREE[:12]}, {"test_size": 0.1}, ValueError,
        "d.npz: test_size=0.1 of 12 rows gives 10 train and 2 test rows, but a stratified split "
        "needs a row of each of the 3 classes"),
    "bad_task": ("d.csv", _GOOD, {"task": "clustering"}, ValueError,
                 "task must be one of 'regression', 'binary', 'multiclass'; got 'clustering'"),
    "regression_string_target": (
        "d.csv", "a,y\n1,2.5\n2,cat\n3,dog\n", {"task": "regression"}, ValueError,
        "d.csv: target column 'y' is not numeric (row 2: 'cat'); task='regression' needs numbers"),
    "float_target_forced_binary": (
        "d.csv", "a,y\n1,0\n2,0.5\n3,1\n", {"task": "binary"}, ValueError,
        "d.csv: target column 'y' holds non-integer values (e.g. 0.5); task='binary' needs class "
        "labels"),
    "three_classes_forced_binary": (
        "d.npz", _NPZ | {"y": Y_THREE}, {"task": "binary"}, ValueError,
        "d.npz: task='binary' needs exactly 2 classes, but y has 3: 0, 1, 2"),
    "single_class": ("d.csv", "a,y\n1,cat\n2,cat\n", {}, ValueError,
                     "d.csv: target column 'y' has a single class, 'cat'"),
    "target_not_a_column": ("d.csv", _GOOD, {"target": "price"}, ValueError,
                            "d.csv has no column 'price'; its columns: 'a', 'b', 'y'"),
    "target_ambiguous": ("d.csv", "a,y,y\n1,2,3\n4,5,6\n", {"target": "y"}, ValueError,
                         "d.csv has 2 columns named 'y'"),
    "target_with_npz": ("d.npz", _NPZ, {"target": "y"}, ValueError,
                        "target='y' applies to .csv files only"),
    "target_with_npy": ("d.npy", np.ones((3, 3)), {"target": "y"}, ValueError,
                        "target='y' applies to .csv files only"),
    "not_utf8": ("d.csv", b"a,y\n\xff,1\n2,0\n", {}, ValueError, "d.csv is not UTF-8 text"),
}


@pytest.mark.parametrize("case", INVALID)
def test_load_file_errors(case, tmp_path):
    filename, contents, kwargs, error, fragment = INVALID[case]
    path = tmp_path / filename
    if isinstance(contents, str) and contents == "mkdir":
        path.mkdir()
    else:
        _write(path, contents)
    with pytest.raises(error) as info:
        data.load_file(str(path), **kwargs)
    assert fragment in str(info.value)
