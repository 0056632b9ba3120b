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
