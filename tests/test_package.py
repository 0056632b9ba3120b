import subprocess
import sys

import pytest

import jaxfund
from jaxfund import _checks


def test_import_is_light():
    code = (
        "import sys, jaxfund, jaxfund.activations, jaxfund.losses, jaxfund.optimizers\n"
        "heavy = [m for m in ('sklearn', 'matplotlib', 'rich', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
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
