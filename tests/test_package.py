import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import jaxfund
from jaxfund import _checks


HEAVY = ("sklearn", "matplotlib", "rich", "torch")


@pytest.mark.parametrize("modules,heavy", [
    ("jaxfund, jaxfund.activations, jaxfund.losses, jaxfund.optimizers", HEAVY),
    ("jaxfund.cli", HEAVY),
    ("jaxfund.tasks", HEAVY),
    ("jaxfund.data", ("sklearn",)),
    # Not flax either: TrainState is a dataclass registered with JAX (flax, ~0.2 s, loads for
    # the Flax adapters and the previous checkpoint format only).
    ("jaxfund.models, jaxfund.train, jaxfund.checkpoint, jaxfund.experiments", (*HEAVY, "flax")),
])
def test_import_is_light(modules, heavy):
    code = (
        f"import sys, {modules}\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="nope"):
        jaxfund.nope


def test_get_matches_function_and_class_spellings():
    def leaky_relu():
        pass

    def cross_entropy():
        pass

    get = _checks.make_get("loss", {"leaky_relu": leaky_relu, "cross_entropy": cross_entropy},
                           strip_suffix="loss")
    assert get("leaky_relu") is leaky_relu
    assert get("LeakyReLU") is leaky_relu
    assert get("CrossEntropyLoss") is cross_entropy
    with pytest.raises(ValueError, match="unknown loss 'nope'.*cross_entropy, leaky_relu"):
        get("nope")


def test_math_modules_import_nothing_of_training_or_io():
    code = (
        "import sys, jaxfund.activations, jaxfund.losses, jaxfund.optimizers\n"
        "above = ('jaxfund.tasks', 'jaxfund.models', 'jaxfund.train', 'jaxfund.checkpoint',\n"
        "         'jaxfund.data', 'jaxfund.experiments', 'jaxfund.cli', 'flax')\n"
        "loaded = [m for m in above if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_parser_and_a_supervising_parent_import_no_jax():
    """`jaxfund --help`, an option the parser refuses, and the parent of a multi-process run
    (it only watches its child, ``_supervisor.run``) are answered without importing JAX."""
    code = (
        "import contextlib, io, sys\n"
        "from jaxfund import cli\n"
        "from jaxfund.cli import _supervisor\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert cli.main(['--help']) == 0 and cli.main(['train', '--help']) == 0\n"
        "assert 'multiclass' in out.getvalue() and 'breast_cancer' in out.getvalue()\n"
        "with contextlib.redirect_stderr(io.StringIO()) as err:\n"
        "    assert cli.main(['train', '--task', 'nope']) == 2\n"
        "assert \"invalid choice: 'nope'\" in err.getvalue(), err.getvalue()\n"
        "_supervisor.run = lambda argv: 7\n"
        "assert cli.main(['train', '--coordinator', 'localhost:1234', '--num-processes', '2',\n"
        "                 '--process-id', '0']) == 7\n"
        "loaded = [m for m in ('jax', 'jaxlib', 'numpy') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wheel_installs_only_jaxfund(tmp_path):
    """The wheel's top level is the jaxfund package and its metadata: no generic `benchmarks`
    (or `tests`, `scripts`) package that could collide with another project's."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "hatchling", "build", "--target", "wheel",
                    "--directory", str(tmp_path)], cwd=root, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("jaxfund-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    assert top == {"jaxfund", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "jaxfund/cli/__init__.py" in names and "jaxfund/experiments.py" in names


@pytest.mark.parametrize("name", jaxfund.__all__[1:])
def test_submodules_load_on_attribute_access(name):
    assert getattr(jaxfund, name).__name__ == f"jaxfund.{name}"


def test_the_suite_reuses_mlir_contexts_and_lowers_the_same_programs(monkeypatch):
    """conftest's ``reuse_mlir_contexts``: consecutive lowerings share a context, and a program
    lowered in a reused context prints the same module as in a fresh one (the persistent
    compilation cache's key is that module)."""
    import os

    import jax
    import jax.numpy as jnp
    from jax._src.interpreters import mlir

    if os.environ.get("JAXFUND_FRESH_MLIR_CONTEXTS") == "1":
        assert not hasattr(mlir.make_ir_context, "fresh")
        return
    assert mlir.make_ir_context() is mlir.make_ir_context()

    def lowered_text():
        x = jnp.arange(12.0).reshape(3, 4)  # a new function each time: no lowering reused
        return jax.jit(lambda a: jnp.tanh(a) @ a.T + jnp.float32(0.5)).lower(x).as_text()

    reused = lowered_text()
    monkeypatch.setattr(mlir, "make_ir_context", mlir.make_ir_context.fresh)
    assert lowered_text() == reused
