import subprocess
import sys

import pytest

import jaxfund
from jaxfund import _checks


HEAVY = ("sklearn", "matplotlib", "rich", "torch")


@pytest.mark.parametrize("modules,heavy", [
    ("jaxfund, jaxfund.activations, jaxfund.losses, jaxfund.optimizers", HEAVY),
    ("jaxfund.cli", HEAVY),
    ("jaxfund.data", ("sklearn",)),
    # Not 'rich': flax itself imports it (flax.linen.summary), and TrainState is a flax dataclass.
    ("jaxfund.models, jaxfund.train", ("sklearn", "matplotlib", "torch")),
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
