"""The main job starts fast: one compiled program per dataset in ``compare``
(``train.fit_seeds_each``) and the command's persistent compilation cache.

The command's tests run ``python -m jaxfund`` in subprocesses (the cache is per process) with a
temporary ``XDG_CACHE_HOME`` and tiny settings."""

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from jaxfund import data, experiments, models, optimizers, tasks, train
from jaxfund.cli import _common

TINY_COMPARE = ["compare", "--datasets", "iris", "--activations", "relu,gelu", "--epochs", "2",
                "--hidden", "8", "--batch-size", "32", "--seeds", "2"]

# JAX's own cache settings, which the test runner may export to its subprocesses.
JAX_CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
                       "JAX_COMPILATION_CACHE_MAX_SIZE", "JAX_ENABLE_COMPILATION_CACHE")


def command_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in JAX_CACHE_VARIABLES and k != _common.COMPILE_CACHE_ENV}
    return {**env, "JAX_PLATFORMS": "cpu", "XDG_CACHE_HOME": str(home), **extra}


def start(args: list, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxfund", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "persistent compilation cache" not in err, err  # JAX's read/write warnings
    return err


def jaxfund(args: list, env: dict[str, str]) -> str:
    return finish(start(args, env))


def results(out: Path) -> dict:
    """compare.json's numbers: every float exactly as written (repr round-trips)."""
    return json.loads((out / "compare.json").read_text())["results"]


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def entries(cache: Path) -> dict[str, bytes]:
    """The cache's programs and their last-read stamps (JAX writes ``KEY-atime`` on a read)."""
    return {p.name: p.read_bytes() for p in cache.glob("*-*")} if cache.exists() else {}


def dataset_fields(ds: data.Dataset) -> dict:
    """Every field, arrays as (dtype, shape, bytes): equal only if bitwise equal."""
    return {k: (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v
            for k, v in vars(ds).items()}


def dataset_entries(cache: Path) -> list[str]:
    return sorted(dataset_stamps(cache))


def dataset_stamps(cache: Path) -> dict[str, int]:
    """The prepared datasets in the cache and when each was last written."""
    folder = cache / _common.DATASET_CACHE
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.exists() else {}


# ----------------------------------------------------------------------------- the cache


@pytest.mark.parametrize("env,expected", [
    ({}, "{home}/.cache/jaxfund/jax"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/jaxfund/jax"),
    ({"XDG_CACHE_HOME": "/x", "JAX_COMPILATION_CACHE_DIR": "/j"}, "/j"),
    ({"JAX_COMPILATION_CACHE_DIR": "/j", "JAXFUND_COMPILE_CACHE": "/mine"}, "/mine"),
    ({"XDG_CACHE_HOME": "/x", "JAXFUND_COMPILE_CACHE": "off"}, None),
    ({"JAXFUND_COMPILE_CACHE": "0"}, None),
    ({"JAXFUND_COMPILE_CACHE": ""}, None),
])
def test_compile_cache_dir(env, expected):
    home = os.path.expanduser("~")
    assert _common.compile_cache_dir(env) == (expected and expected.format(home=home))


def test_import_jaxfund_turns_no_cache_on(tmp_path):
    """Only the command turns the cache on: importing the library leaves JAX's settings as
    ``import jax`` alone has them (no cache directory)."""
    settings = ("print(jax.config.jax_compilation_cache_dir, "
                "jax.config.jax_persistent_cache_min_compile_time_secs, "
                "jax.config.jax_compilation_cache_max_size)")
    outs = [subprocess.run([sys.executable, "-c", f"{imports}; {settings}"],
                           env=command_env(tmp_path), check=True, capture_output=True,
                           text=True).stdout
            for imports in ("import jax", "import jax, jaxfund, jaxfund.train, "
                                          "jaxfund.experiments, jaxfund.cli")]
    assert outs[0].split()[0] == "None" and outs[1] == outs[0]


def test_the_command_caches_by_default_and_a_cached_rerun_is_bitwise_the_first(tmp_path):
    """The second run reads every program and the dataset back (so imports no scikit-learn:
    ``python -X importtime`` lists every import on stderr); with the cache off nothing is read
    or written."""
    env = command_env(tmp_path / "home")
    # every import (python -X importtime) and every program JAX compiles or reads, on stderr
    imports = {**env, "PYTHONPROFILEIMPORTTIME": "1", "JAX_LOG_COMPILES": "1"}
    cache = tmp_path / "home" / "jaxfund" / "jax"
    jaxfund([*TINY_COMPARE, "--out", tmp_path / "a"], env)
    first = entries(cache)
    programs = [name for name in first if name.endswith("-cache")]
    assert programs, "the first run cached no program"
    datasets = dataset_stamps(cache)
    assert len(datasets) == 1
    err = jaxfund([*TINY_COMPARE, "--out", tmp_path / "b"], imports)
    # -X importtime lists import statements, not importlib.import_module (jaxfund's lazy
    # submodules): matplotlib.figure is imported by a statement, after training.
    assert "matplotlib.figure" in err and "sklearn" not in err
    programs_read = err.count("Persistent compilation cache hit for ")
    assert programs_read == len(re.findall(r"^Compiling ", err, re.M)) > 0, \
        "the second run compiled a program afresh (however quick its compile, it is cached)"
    second = entries(cache)
    assert [name for name in second if name.endswith("-cache")] == programs  # nothing new
    assert all(second[n] != first[n] for n in second if n.endswith("-atime")), \
        "the second run did not read every program back"
    assert dataset_stamps(cache) == datasets
    assert without_timings(results(tmp_path / "b")) == without_timings(results(tmp_path / "a"))
    err = jaxfund([*TINY_COMPARE, "--no-compile-cache", "--out", tmp_path / "fresh"], imports)
    assert "sklearn" in err  # the dataset prepared afresh
    assert entries(cache) == second  # neither read nor written
    assert dataset_stamps(cache) == datasets
    assert without_timings(results(tmp_path / "fresh")) == without_timings(
        results(tmp_path / "a"))


@pytest.mark.parametrize("how", ["--no-compile-cache", "JAXFUND_COMPILE_CACHE=off",
                                 "JAXFUND_COMPILE_CACHE=DIR"])
def test_the_cache_can_be_turned_off_or_moved(tmp_path, how):
    home, mine = tmp_path / "home", tmp_path / "mine"
    flags = [how] if how.startswith("--") else []
    name, _, value = how.partition("=")
    extra = {} if flags else {name: str(mine) if value == "DIR" else value}
    jaxfund(["gradients", "--depth", "3", "--width", "8", *flags, "--out", tmp_path / "out"],
            command_env(home, **extra))
    assert not (home / "jaxfund").exists()
    assert bool(entries(mine)) == (value == "DIR")


def test_concurrent_runs_share_one_cache(tmp_path):
    """Two runs start together on an empty cache and write the same programs: JAX's entries
    are written in place, under its file lock (the command sets a cache size, which turns the
    lock on where ``filelock`` is installed, as it is for the tests). Every run succeeds without
    a cache warning, a later run reads every entry back intact, and all give the same
    numbers."""
    env = command_env(tmp_path / "home")
    cache = tmp_path / "home" / "jaxfund" / "jax"
    runs = [start([*TINY_COMPARE, "--out", tmp_path / f"run{i}"], env) for i in range(2)]
    for process in runs:
        finish(process)
    written = entries(cache)
    assert any(name.endswith("-cache") for name in written)
    assert (cache / ".lockfile").exists()
    jaxfund([*TINY_COMPARE, "--out", tmp_path / "after"], env)
    assert entries(cache).keys() == written.keys()  # every entry read, none recompiled
    expected = without_timings(results(tmp_path / "after"))
    for i in range(2):
        assert without_timings(results(tmp_path / f"run{i}")) == expected


# ------------------------------------------------------------ one program per dataset


def assert_same(ours, reference, bitwise):
    if bitwise:
        chex.assert_trees_all_equal(ours, reference)
    else:  # other backends may sum a vmapped program in another order
        chex.assert_trees_all_close(ours, reference, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def iris_runs():
    """compare's one program on iris (every activation) and its model and optimizer."""
    ds = data.load("iris")
    mlps = [models.MLP(ds.num_features, (8,), tasks.output_features(ds.task, ds.num_classes),
                       act) for act in experiments.COMPARE_ACTIVATIONS]
    tx = optimizers.adam(lr=1e-2)
    kwargs = dict(seeds=[0, 1], tx=tx, task=ds.task, epochs=3, batch_size=32,
                  eval_data=(ds.x_test, ds.y_test))
    each = list(train.fit_seeds_each(mlps[0].init, (ds.x_train, ds.y_train),
                                     apply_fns=[m.apply for m in mlps], **kwargs))
    return ds, mlps, tx, kwargs, each


def assert_same_histories(ours, reference, bitwise, test_size):
    """Every entry equal, but the test loss (a mean over the test set, which XLA may sum in
    another order in another program): within n * U relative, as tests/test_train.py allows
    between fit_seeds and fit."""
    rtol = test_size * float(np.finfo(np.float32).eps) / 2
    for ours_h, ref_h in zip(ours, reference, strict=True):
        for ours_e, ref_e in zip(ours_h, ref_h, strict=True):
            assert set(ours_e) == set(ref_e) - {"seconds"}
            for key in ours_e:
                if key == "test_loss":
                    np.testing.assert_allclose(ours_e[key], ref_e[key], rtol=rtol, atol=0)
                else:
                    assert_same(ours_e[key], ref_e[key], bitwise)


@pytest.mark.parametrize("i", range(len(experiments.COMPARE_ACTIVATIONS)),
                         ids=experiments.COMPARE_ACTIVATIONS)
def test_fit_seeds_each_is_fit_seeds_per_model(iris_runs, i):
    """Model i of the one program trains exactly as its own fit_seeds program and seed s as
    fit(seed=s): the same states (bitwise on XLA:CPU) and history (the test loss within its
    summation bound), as tests/test_train.py demands of fit_seeds."""
    ds, mlps, tx, kwargs, each = iris_runs
    bitwise = jax.default_backend() == "cpu"
    alone = train.fit_seeds(mlps[i].init, (ds.x_train, ds.y_train), apply_fn=mlps[i].apply,
                            **kwargs)
    assert_same(each[i].states, alone.states, bitwise)
    assert_same_histories(each[i].histories, alone.histories, bitwise, len(ds.x_test))
    for j, seed in enumerate(kwargs["seeds"]):
        one = train.fit(train.TrainState.create(mlps[i].init(jax.random.key(seed)), tx),
                        (ds.x_train, ds.y_train), apply_fn=mlps[i].apply, seed=seed,
                        **{k: v for k, v in kwargs.items() if k != "seeds"})
        assert_same(jax.tree.map(lambda a: a[j], each[i].states), one.state, bitwise)
        assert_same_histories([each[i].histories[j]], [one.history], bitwise, len(ds.x_test))
    assert (each[i].compile_seconds > 0) == (i == 0)


@pytest.mark.parametrize("given", ["name", "dataset"])
def test_compare_rows_are_the_one_programs_runs(iris_runs, given):
    """experiments.compare gives each activation its own run of the one program, in order (the
    fixture's seeds are compare's: 0, 1), whether given the dataset's name or the dataset."""
    ds, mlps, tx, kwargs, each = iris_runs
    rows = experiments.compare((ds if given == "dataset" else "iris",),
                               experiments.COMPARE_ACTIVATIONS, lr=1e-2, epochs=3,
                               batch_size=32, hidden=(8,), seeds=2, seed=0)["iris"]
    assert [r.activation for r in rows] == list(experiments.COMPARE_ACTIVATIONS)
    for row, run in zip(rows, each, strict=True):
        np.testing.assert_array_equal(
            row.train_loss_curves, [[e["train_loss"] for e in h] for h in run.histories])
        np.testing.assert_array_equal(
            row.test_metric, [h[-1]["test_accuracy"] for h in run.histories])
    assert rows[0].compile_seconds > 0 and all(r.compile_seconds == 0 for r in rows[1:])



PAIR = dict(activations=["relu", "tanh"], epochs=2, batch_size=32, hidden=(8,), seeds=2)


def test_compare_compiles_the_next_program_while_one_trains_with_the_same_numbers():
    """Several programs (datasets, optimizers) in one call, the next compiled in a worker
    thread while one trains, give each program's rows as a call of its own, in the order of
    the arguments; the programs train largest training set first (wine's 142 x 13 features,
    then iris's 120 x 4), so the shortest training is the one no compilation overlaps."""
    runs = []
    together = experiments.compare(("iris", "wine"), optimizers=("adam", "sgd"), **PAIR,
                                   on_run=lambda *run: runs.append(run))
    assert runs == [(name, act, opt) for name in ("wine", "iris") for opt in ("adam", "sgd")
                    for act in PAIR["activations"]]
    assert list(together) == ["iris", "wine"]
    for name, rows in together.items():
        for optimizer in ("adam", "sgd"):
            alone = experiments.compare((name,), optimizers=(optimizer,), **PAIR)[name]
            ours = [r for r in rows if r.optimizer == optimizer]
            assert [r.activation for r in ours] == PAIR["activations"]
            for row, ref in zip(ours, alone, strict=True):
                np.testing.assert_array_equal(row.train_loss_curves, ref.train_loss_curves)
                np.testing.assert_array_equal(row.test_metric, ref.test_metric)


def test_an_error_compiling_a_later_program_reaches_the_caller():
    iris = data.load("iris")  # 120 training examples; batch_size 100 fits iris, not the cut
    cut = dataclasses.replace(iris, name="cut", x_train=iris.x_train[:50],
                              y_train=iris.y_train[:50])
    with pytest.raises(ValueError, match="batch_size"):
        experiments.compare((iris, cut), ["relu"], epochs=1, batch_size=100, hidden=(8,),
                            seeds=1)

# ------------------------------------------------------------ the command's prepared datasets


@pytest.fixture
def loads(monkeypatch):
    """The names data.load prepares (each call counted)."""
    calls = []
    load = data.load

    @functools.wraps(load)  # the same signature: the cache key binds data.load's arguments
    def counted(name, **kwargs):
        calls.append(name)
        return load(name, **kwargs)

    monkeypatch.setattr(data, "load", counted)
    return calls


@pytest.mark.parametrize("name", ["iris", "diabetes"])  # classification and regression
def test_a_cached_dataset_is_bitwise_data_load(tmp_path, loads, name):
    expected = dataset_fields(data.load(name, seed=3))
    first = _common.load_dataset(name, str(tmp_path), seed=3)
    second = _common.load_dataset(name, str(tmp_path), seed=3)
    assert loads == [name, name]  # the reference, the first run; the second read the cache
    assert dataset_fields(first) == expected
    assert dataset_fields(second) == expected
    assert len(dataset_entries(tmp_path)) == 1


@pytest.mark.parametrize("change", ["argument", "numpy", "scikit-learn", "jaxfund", "source"])
def test_a_cached_dataset_is_prepared_again_when_what_made_it_changes(tmp_path, loads,
                                                                      monkeypatch, change):
    _common.load_dataset("iris", str(tmp_path))
    kwargs = {"seed": 7} if change == "argument" else {}
    if change == "numpy":
        monkeypatch.setattr(np, "__version__", np.__version__ + ".changed")
    elif change == "scikit-learn":
        from importlib import metadata

        version = metadata.version
        monkeypatch.setattr(metadata, "version", lambda dist: version(dist) + ".changed")
    elif change == "jaxfund":
        import jaxfund

        monkeypatch.setattr(jaxfund, "__version__", jaxfund.__version__ + ".changed")
    elif change == "source":
        copy = tmp_path / "tasks.py"
        copy.write_text(Path(tasks.__file__).read_text() + "\n# changed\n")
        monkeypatch.setattr(tasks, "__file__", str(copy))
    ds = _common.load_dataset("iris", str(tmp_path), **kwargs)
    assert loads == ["iris", "iris"]
    assert dataset_fields(ds) == dataset_fields(data.load("iris", **kwargs))
    assert len(dataset_entries(tmp_path)) == 2


def test_an_unreadable_cached_dataset_is_prepared_again(tmp_path, loads):
    _common.load_dataset("iris", str(tmp_path))
    (entry,) = dataset_entries(tmp_path)
    (tmp_path / _common.DATASET_CACHE / entry).write_bytes(b"not a zip")
    ds = _common.load_dataset("iris", str(tmp_path))
    assert loads == ["iris", "iris"]
    assert dataset_fields(ds) == dataset_fields(data.load("iris"))
    assert dataset_fields(_common.load_dataset("iris", str(tmp_path))) == dataset_fields(ds)
    assert loads == ["iris", "iris", "iris"]  # rewritten: the last read the cache


def test_no_cache_dir_reads_and_writes_no_dataset(tmp_path, loads):
    for _ in range(2):
        _common.load_dataset("iris", None)
    assert loads == ["iris", "iris"]



def test_train_reads_the_dataset_compare_prepared(tmp_path, loads, monkeypatch, capsys):
    """`jaxfund train` shares compare's prepared datasets: train's ``--test-size 0.2`` is
    data.load's default, so a dataset compare prepared is read back, not prepared again."""
    from jaxfund import cli

    monkeypatch.setattr(_common, "use_compile_cache",
                        lambda enabled: str(tmp_path) if enabled else None)
    _common.load_dataset("iris", str(tmp_path))  # as compare loads it
    args = ["train", "--dataset", "iris", "--epochs", "1", "--hidden", "8", "--test-size", "0.2"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert loads == ["iris"] and len(dataset_entries(tmp_path)) == 1
    assert cli.main([*args, "--no-compile-cache", "--out", str(tmp_path / "b")]) == 0
    assert loads == ["iris", "iris"]  # the cache off: prepared afresh
    history = [json.loads((tmp_path / run / "metrics.json").read_text())["history"]
               for run in ("a", "b")]
    assert without_timings(history[0]) == without_timings(history[1])
    capsys.readouterr()


def test_gradients_reads_the_prepared_dataset(tmp_path, loads, monkeypatch, capsys):
    """`jaxfund gradients` reads the classification split from the command's prepared datasets
    (a second run prepares nothing), with the norms of ``gradient_flow``'s own data.load."""
    from jaxfund import cli

    monkeypatch.setattr(_common, "use_compile_cache",
                        lambda enabled: str(tmp_path) if enabled else None)
    args = ["gradients", "--depth", "3", "--width", "4", "--activations", "relu,tanh"]
    for run in ("a", "b"):
        assert cli.main([*args, "--out", str(tmp_path / run)]) == 0
    assert loads == ["classification"] and len(dataset_entries(tmp_path)) == 1
    expected = experiments.gradient_flow(["relu", "tanh"], depth=3, width=4).norms
    for run in ("a", "b"):
        norms = json.loads((tmp_path / run / "gradients.json").read_text())["norms"]
        assert norms.keys() == expected.keys()
        for name, values in expected.items():
            np.testing.assert_array_equal(np.asarray(norms[name], np.float32), values)
    capsys.readouterr()
