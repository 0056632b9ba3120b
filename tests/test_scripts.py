"""The scripts in scripts/ run end to end (tiny settings, in a subprocess) and use only the
public API."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

RUNS = {
    "train_digits.py": (["--epochs", "2", "--hidden", "32"], r"test accuracy: (0\.\d+|1\.0+) "),
    "course_exercise.py": (["--epochs", "3", "--activations", "relu,tanh"],
                           r"relu +\d+\.\d+ +\d+\.\d+%\ntanh +\d+\.\d+ +\d+\.\d+%"),
    "train_flax.py": (["--epochs", "2", "--activation", "gelu"],
                      r"epoch +2 .*\nfinal test accuracy: (0\.\d+|1\.0+)"),
    # The bar for the CNNs with batch norm and dropout, at their default 15 epochs:
    # >= 0.97 test accuracy on the digits images, and the same evaluation twice in a row.
    "train_cnn_linen.py": ([], CNN_PATTERN := r"final test accuracy: (0\.9[7-9]\d*|1\.0+) "
                                              r"\([^)]*evaluated twice: identical;"),
    "train_cnn_nnx.py": ([], CNN_PATTERN),
    "train_multihost.py": (["--epochs", "2", "--hidden", "32", "--out", "{tmp}/checkpoints"],
                           r"epoch +2 .*\ntest accuracy: (0\.\d+|1\.0+) after epoch 2 on 1 "
                           r"devices in 1 processes; params \+ optimizer state: [\d,]+ bytes"),
}


def test_every_script_is_run():
    assert sorted(p.name for p in SCRIPTS.glob("*.py")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_script_runs(name, tmp_path):
    argv, pattern = RUNS[name]
    done = subprocess.run([sys.executable, str(SCRIPTS / name),
                           *(arg.format(tmp=tmp_path) for arg in argv)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(pattern, done.stdout), done.stdout


@pytest.mark.parametrize("name", sorted(RUNS))
def test_script_imports_only_public_jaxfund(name):
    tree = ast.parse((SCRIPTS / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxfund"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(alias.name.startswith("_") for alias in node.names), name
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not any(p.startswith("_") for p in alias.name.split(".")), alias.name
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), (name, node.attr)
