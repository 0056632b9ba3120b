"""What every command shares: one-line user errors, the parser, option types, output files."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from typing import Any


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str):
        command = self.prog.removeprefix("jaxfund").strip()
        raise UsageError(f"{command}: {message}" if command else message)


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() also takes '１２' and '٦٤' and 1_000
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

MAX_WIDTH = 2**16
"""The widest hidden layer :func:`int_tuple` accepts. One 65536 x 65536 float32 weight matrix is
16 GiB (48 GiB with Adam's two moments): about the memory of one accelerator, so no width that
could train is refused, while a typo such as ``--hidden 1000000000`` (a 4 EB matrix) is refused
when the options are parsed instead of failing, or swapping for minutes, in the allocator."""


def _digits(text: str) -> int | None:
    """``text`` (ASCII digits, surrounding blanks allowed) as an int, else ``None``. At most 30
    digits are converted: more is out of every range here, and int() refuses > 4300 digits."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    text = text.lstrip("0") or "0"
    return int(text) if len(text) <= 30 else 10**30


def int_tuple(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> ``(64, 64)``: one or more widths, each ASCII digits in
    ``1..MAX_WIDTH`` (:data:`MAX_WIDTH`), blanks around them allowed, no empty item."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected at least one width, got {text!r}")
    widths = []
    for item in text.split(","):
        if not item.strip():
            raise argparse.ArgumentTypeError(
                f"empty width in {text!r}: expected comma-separated ints like 64,64")
        width = _digits(item)
        if width is None:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated ints like 64,64, got {text!r}")
        if width < 1:
            raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
        if width > MAX_WIDTH:
            raise argparse.ArgumentTypeError(
                f"width {item.strip()} in {text!r} is larger than {MAX_WIDTH}")
        widths.append(width)
    return tuple(widths)


def name_list(text: str) -> list[str]:
    """``"relu, gelu"`` -> ``["relu", "gelu"]`` (at least one name)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def positive_int(text: str) -> int:
    """``"30"`` -> ``30``: ASCII digits, at least 1."""
    value = _digits(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """``"0"`` -> ``0``: ASCII digits (e.g. ``--warmup-epochs``)."""
    value = _digits(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


SEED_MAX = 2**32 - 1


def seed(text: str) -> int:
    """``"0"`` -> ``0``: a seed, ASCII digits in ``0..2**32-1``. Without x64,
    ``jax.random.key`` keeps only the low 32 bits of a seed (``key(2**32)`` is ``key(0)``, a
    silent repeat of another run) and fails from ``2**63`` on."""
    value = _digits(text)
    if value is None or value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..{SEED_MAX}, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """``"1e-3"`` -> ``0.001``: a decimal number (ASCII, no ``_``) that is finite, so ``inf``,
    ``nan`` and ``1e400`` (which overflows to inf) are refused."""
    stripped = text.strip()
    if not _FLOAT.fullmatch(stripped):
        kind = "finite " if stripped.lower().lstrip("+-") in ("inf", "infinity", "nan") else ""
        raise argparse.ArgumentTypeError(f"expected a {kind}number like 0.001, got {text!r}")
    value = float(stripped)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r} "
                                         f"(it overflows to {value})")
    return value


def positive_float(text: str) -> float:
    """A :func:`finite_float` > 0 (e.g. ``--lr``): ``0``, ``-1``, ``inf``, ``nan`` refused."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A :func:`finite_float` >= 0 (e.g. ``--weight-decay``): ``-1``, ``inf``, ``nan``
    refused."""
    value = finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A :func:`finite_float` in (0, 1) (e.g. ``--test-size``)."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def dropout_rate(text: str) -> float:
    """A :func:`finite_float` in [0, 1) (``--dropout``)."""
    value = finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options every training command shares, with the same defaults."""
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    parser.add_argument("--epochs", type=positive_int, default=30, help="epochs per run")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="minibatch size")
    parser.add_argument("--hidden", type=int_tuple, default="64,64",
                        help="hidden widths, comma-separated (e.g. 64,64)")


COMPILE_CACHE_ENV = "JAXFUND_COMPILE_CACHE"
COMPILE_CACHE_OFF = ("", "0", "off", "false", "no")
COMPILE_CACHE_MAX_BYTES = 1 << 30
"""The cache's bound: beyond it JAX deletes the least recently used programs. Setting a bound
also makes JAX take a file lock (the ``filelock`` package) around every cache read and write,
which keeps concurrent runs that share the directory from reading a half-written entry (JAX
writes entries in place). Without ``filelock`` installed the cache is unbounded and unlocked."""
COMPILE_CACHE_MIN_SECONDS = 0.0
"""Programs that compile faster than this are not cached: none. Reading a small program back
(~3 ms) beats compiling it (~30 ms), and the commands compile dozens: ``plot``'s 48 curves, the
state and metric programs around a training. Caching every one took the second run on 2 idle
cores from 4.5 to 3.3 s for ``plot``, from 1.8 to 1.4 s to ``train``'s first epoch and from
4.1 to 3.9 s for ``compare`` (against a 0.05 s minimum); the four commands' defaults fill
106 entries, 2.2 MB."""


def add_compile_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-compile-cache", action="store_true",
        help=f"compile every program afresh instead of reusing those compiled by earlier runs "
             f"(kept in ${COMPILE_CACHE_ENV}, else $JAX_COMPILATION_CACHE_DIR, else "
             f"$XDG_CACHE_HOME/jaxfund/jax or ~/.cache/jaxfund/jax; "
             f"{COMPILE_CACHE_ENV}=off also turns it off)")


def compile_cache_dir(env: Mapping[str, str] = os.environ) -> str | None:
    """The directory of the command's compiled programs, or None (no cache):
    ``$JAXFUND_COMPILE_CACHE`` (``off``, ``0``, ``false``, ``no`` or empty: none), else
    ``$JAX_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxfund/jax``, else
    ``~/.cache/jaxfund/jax``."""
    path = env.get(COMPILE_CACHE_ENV)
    if path is not None:
        return None if path.strip().lower() in COMPILE_CACHE_OFF else path
    if env.get("JAX_COMPILATION_CACHE_DIR"):
        return env["JAX_COMPILATION_CACHE_DIR"]
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxfund", "jax")


def use_compile_cache(enabled: bool) -> str | None:
    """Turns JAX's persistent compilation cache on in :func:`compile_cache_dir` (or off), for
    this process; returns the directory used. A cached program is the same executable, so
    results are bitwise those of a fresh compilation. In JAX's own ``$JAX_COMPILATION_CACHE_DIR``,
    JAX's own cache settings apply unchanged. Only the command calls this: ``import jaxfund``
    leaves JAX's settings alone."""
    import jax

    path = compile_cache_dir() if enabled else None
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
    elif path != os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          COMPILE_CACHE_MIN_SECONDS)
        if importlib.util.find_spec("filelock") is not None:  # JAX needs it for a bound
            jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_MAX_BYTES)
    return path


DATASET_CACHE = "datasets"
"""The folder, inside the command's compile cache directory, of the prepared datasets."""


def _dataset_key(name: str, kwargs: Mapping[str, Any]) -> str:
    """What :func:`jaxfund.data.load` returns depends on: its arguments (defaults filled in, so
    ``test_size=0.2`` and no ``test_size`` share an entry), the versions of NumPy and
    scikit-learn, and jaxfund's version and pipeline sources (a default changed in ``data.py``
    changes the key too)."""
    import inspect
    from importlib import metadata

    import numpy as np

    import jaxfund
    from jaxfund import _checks, data, tasks

    arguments = inspect.signature(data.load).bind(name, **kwargs)
    arguments.apply_defaults()
    key = hashlib.sha256(json.dumps([sorted(arguments.arguments.items()), np.__version__,
                                     metadata.version("scikit-learn"),
                                     jaxfund.__version__]).encode())
    for module in (data, tasks, _checks):
        with open(module.__file__, "rb") as f:
            key.update(f.read())
    return key.hexdigest()[:32]


def load_dataset(name: str, cache_dir: str | None, **kwargs: Any) -> Any:
    """``jaxfund.data.load(name, **kwargs)``, bitwise, read from ``cache_dir``'s
    :data:`DATASET_CACHE` folder when an earlier run prepared it with the same arguments and
    versions (:func:`_dataset_key`), which spares importing scikit-learn; else prepared, and
    written there for the next run. ``cache_dir=None`` (the cache is off): neither read nor
    written. An unreadable entry is prepared again; one that cannot be written is not cached."""
    import numpy as np

    from jaxfund import data

    if cache_dir is None:
        return data.load(name, **kwargs)
    folder = os.path.join(cache_dir, DATASET_CACHE)
    path = os.path.join(folder, f"{name}-{_dataset_key(name, kwargs)}.npz")
    try:
        with np.load(path, allow_pickle=False) as entry:
            fields = {k: entry[k] for k in entry.files if k != "meta"}
            meta = json.loads(str(entry["meta"]))
        return data.Dataset(**fields, **{**meta, "labels": tuple(meta["labels"])})
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        pass
    ds = data.load(name, **kwargs)
    fields = dataclasses.asdict(ds)
    arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in fields.items() if k not in arrays}
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
            try:
                np.savez(f, **arrays, meta=np.array(json.dumps(meta)))
            except OSError:
                os.unlink(f.name)
                raise
        os.replace(f.name, path)  # whole, or not at all, for a concurrent reader
    except OSError:
        pass
    return ds


def checked(option: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, its ``ValueError``/``TypeError``/``OSError`` (a missing or
    corrupt file) as a one-line user error naming ``option``."""
    try:
        return check(*args, **kwargs)
    except (TypeError, ValueError, OSError) as err:
        raise UsageError(f"{option}: {err}") from None


def check_dataset(name: str, option: str) -> str:
    from jaxfund import data

    if name not in data.NAMES:
        raise UsageError(f"{option}: unknown dataset {name!r}; valid names: "
                         f"{', '.join(data.NAMES)}")
    return name


def check_batch_size(batch_size: int, ds: Any) -> None:
    if batch_size > len(ds.x_train):
        raise UsageError(f"--batch-size {batch_size} is larger than the {len(ds.x_train)} "
                         f"training examples of {ds.name}")


def output_dir(path: str) -> str:
    """Creates ``path`` and checks it is writable, or raises a user error naming ``--out``."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UsageError(f"--out: cannot write to {path!r}: {err.strerror or err}") from None
    return path


def plain(value: Any) -> Any:
    """``value`` with NumPy/JAX scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no non-finite numbers
    return value


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(plain(payload), f, indent=2, allow_nan=False)
        f.write("\n")


def device() -> tuple[str, int]:
    """``("platform:kind", device count)`` of the default backend."""
    import jax

    first = jax.devices()[0]
    return f"{first.platform}:{first.device_kind}", jax.device_count()


def consoles():
    """Rich consoles for stdout (tables) and stderr (progress); 120 columns when piped."""
    from rich.console import Console

    return (Console(width=None if sys.stdout.isatty() else 120),
            Console(stderr=True, width=None if sys.stderr.isatty() else 120))


def progress_bar(console, *text_columns, disable: bool = False):
    """A rich progress bar on ``console``: description, bar, ``n/N``, extra text, elapsed
    (``disable``: shows nothing, e.g. on the processes other than 0 of a multi-process run)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *(TextColumn(t) for t in text_columns), TimeElapsedColumn(), console=console,
                    disable=disable)
