"""Checkpoints: a whole training state (any pytree of arrays) plus JSON metadata, on orbax.

- :class:`Checkpoints`: the checkpoints of a run in one directory, one per step
  (``DIR/<step>/``), the last ``keep`` of them kept; saved asynchronously and by every process of
  a multi-process run (each writes its own shards); restored onto any topology.
- :func:`save` / :func:`restore`: one checkpoint at a path (a directory), synchronously, to
  resume training exactly.
- :func:`export` / :func:`restore_params`: the params and model state alone, for inference or
  fine-tuning with another optimizer. :func:`export` stores them under the key paths they have in
  a :class:`jaxfund.train.TrainState` (``.params...``, ``.model_state...``), so
  :func:`restore_params` reads them from an export, a full checkpoint, or one step of a
  :class:`Checkpoints` directory alike.

A checkpoint is a directory written by orbax-checkpoint with two items: ``state`` (leaf ``i``
of the flattened state under the key ``"i"``, written with tensorstore) and ``meta`` (JSON: the
key path, shape, dtype and fingerprint of every leaf, and ``extra``). Orbax writes it into
``<step>.orbax-checkpoint-tmp`` and commits it by renaming that directory to ``<step>`` once
every item is written, so a save killed at any moment leaves the previous checkpoint the
latest one; only committed (renamed) steps are listed or restored. Old steps are renamed into
``DIR/.deleting/`` (atomic) before they are deleted, so a kill during a deletion leaves no
half-deleted step either. Orbax does not ``fsync``: this holds against killed processes, not
against a power cut of the machine.

Integrity: orbax reports missing and truncated files, but a changed byte inside an array's
data restores as another number. Every leaf therefore has a fingerprint, computed on its
device(s) at save and verified after restore::

    fingerprint(x) = Σ_i w_i · (2i + 1)  mod 2³²

over the words ``w_i`` of ``x``'s bits in row-major order (32-bit dtypes bitcast to uint32,
64-bit ones as two uint32 words, 8- and 16-bit ones and bools widened to uint32, sub-byte ones
by value, complex ones as real and imaginary parts). Modular sums are exact and independent of the order of summation, so the value is
the same on every topology (a global reduction for an array sharded across processes). The
weights are odd, so every change of a single word changes it; unlike a plain sum, so do swaps
of words (all but those whose change ``2(w_i - w_j)(j - i)`` is a multiple of 2³²).
Its cost is one pass over the state on its devices, at save and at restore: for 10M float32
params with Adam's two moments (120 MB) about 45 ms on a 2-core AMD EPYC CPU (XLA's integer
reductions there run at ~2.5 GB/s; a float32 sum of the same state takes ~6 ms), of the ~90 ms
an asynchronous save of that state blocks for and the ~240 ms it takes to commit.

:func:`restore` also reads a single file written by jaxfund's previous checkpoint format
(``magic | sha256(payload) | payload``), checksum verified, so old files keep loading.

Because :func:`jaxfund.train.fit` shuffles epoch ``e`` from ``(seed, e)`` only, saving
``{"epoch": e, "seed": seed}`` as ``extra`` in ``fit``'s callback and resuming with
``fit(..., start_epoch=e)`` reproduces the uninterrupted run bit for bit.

Example::

    with checkpoint.Checkpoints("run/checkpoints", keep=3) as checkpoints:
        for step in ...:
            checkpoints.save(step, state, {"epoch": epoch})   # returns while it writes
    state, extra = checkpoint.Checkpoints("run/checkpoints").restore(like=state)

    checkpoint.save("run/checkpoint", state, {"epoch": 3, "seed": 0})
    state, extra = checkpoint.restore("run/checkpoint", like=state)

    # params alone (optimizer state dropped), from a checkpoint or an exported one
    params, model_state = checkpoint.restore_params("run/checkpoints", model.init(key))
    checkpoint.export("run/model", params)
    finetune = train.TrainState.create(checkpoint.restore_params("run/model", params)[0],
                                       optimizers.sgd(lr=1e-2))
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import json
import operator
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["Checkpoints", "save", "restore", "export", "restore_params"]

_FORMAT = "jaxfund-checkpoint"
_FORMAT_VERSION = 2  # a directory written by orbax; version 1 was a single file
_STATE, _META = "state", "meta"  # the orbax items of a checkpoint
_DELETING = ".deleting"  # where orbax moves old steps (atomically) before we delete them
_STEP = re.compile(r"\d+")  # a committed step's directory name; uncommitted ones have a suffix
_ERROR_CHARS = 400  # the longest orbax/tensorstore message quoted in an error

# the previous format: one file, magic | sha256(payload) | payload
_MAGIC = b"JAXFUND-CHECKPOINT\n"
_FILE_FORMAT_VERSION = 1
_DIGEST_BYTES = hashlib.sha256().digest_size


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "model_state"],
                   meta_fields=[])
@dataclasses.dataclass(frozen=True)
class _Weights:
    """What :func:`export` writes: the fields of a TrainState that a model needs, so their key
    paths (``.params...``, ``.model_state...``) are the same in both kinds of checkpoint."""

    params: Any
    model_state: Any


_FIELDS = ("params", "model_state")
_EXPORT_HINT = " (params alone, written by export: read it with restore_params)"


def _field(name: str) -> str | None:
    """The TrainState field a leaf's key path starts in: ``".params[0]['w']"`` -> ``"params"``."""
    for field in _FIELDS:
        prefix = f".{field}"
        if name == prefix or name.startswith((prefix + "[", prefix + ".")):
            return field
    return None


def _is_export(names: list[str]) -> bool:
    """Whether the leaves ``names`` are those of a checkpoint written by :func:`export`."""
    return bool(names) and all(_field(name) is not None for name in names)


def _by_field(names: list[str]) -> dict[str, list[str]]:
    """The leaf names of each of :data:`_FIELDS` (other leaves, e.g. ``.opt_state...``, dropped)."""
    return {field: [name for name in names if _field(name) == field] for field in _FIELDS}


def _flatten(tree: Any) -> tuple[list[str], list[Any]]:
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(path) for path, _ in with_paths], [leaf for _, leaf in with_paths]


def _one_line(err: BaseException) -> str:
    """The message of ``err``'s root cause (tensorstore's, under orbax's) on one line, at most
    :data:`_ERROR_CHARS` characters."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."


def _is_orbax_leftover(unraisable: Any) -> bool:
    """Whether ``unraisable`` reports one of orbax's other reads after a failed restore: a read
    coroutine dropped with its error, or tensorstore calling back into the closed event loop."""
    code = getattr(unraisable.object, "cr_code", None)
    return (code is not None and os.sep + "orbax" + os.sep in code.co_filename) or (
        isinstance(unraisable.exc_value, RuntimeError)
        and str(unraisable.exc_value) == "Event loop is closed")


def _quiet_orbax_leftovers() -> None:
    """After a failed read, orbax (0.12.8) closes its event loop with the other reads still
    pending; they end later as tracebacks on stderr through ``sys.unraisablehook``. From the
    first failure on, this process's hook drops those reports (and passes on all others), so
    the error raised stays the one line there is to see."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_orbax_leftovers", False):
        return

    def hook(unraisable: Any) -> None:
        if not _is_orbax_leftover(unraisable):
            previous(unraisable)

    hook.drops_orbax_leftovers = True
    sys.unraisablehook = hook
    gc.collect()  # the dropped read coroutines report now, not at some later collection


def _json(extra: Any) -> Any:
    """``extra`` (``None``: ``{}``) after checking it is JSON-serialisable."""
    extra = {} if extra is None else extra
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`extra` must be JSON-serialisable: {err}") from None
    return extra


# --------------------------------------------------------------------------------- fingerprints

def _words(x: jax.Array) -> jax.Array:
    """The bits of ``x`` as uint32 words: 32-bit dtypes bitcast, 64-bit ones as two words (a new
    last axis, low word first), 8- and 16-bit ones and bools widened, sub-byte ones by value;
    complex ones as their real and imaginary parts (a new last axis)."""
    dtype = jnp.dtype(x.dtype)
    if dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return _words(jnp.stack([x.real, x.imag], axis=-1))
    info = jnp.iinfo(dtype) if jnp.issubdtype(dtype, jnp.integer) else jnp.finfo(dtype)
    if info.bits < 8:
        return _words(x.astype(jnp.int32 if jnp.issubdtype(dtype, jnp.integer) else jnp.float32))
    unsigned = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint32}[info.bits]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _fingerprint(x: jax.Array) -> jax.Array:
    """``Σ_i w_i (2i + 1) mod 2³²`` over the words ``w`` of ``x`` (:func:`_words`), ``i`` the
    row-major index; computed from per-axis iotas, so a sharded ``x`` is never reshaped."""
    words = _words(x)
    index = jnp.zeros(words.shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(words.ndim)):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, words.shape, axis) * np.uint32(
            stride % 2**32)
        stride *= words.shape[axis]
    return jnp.sum(words * (2 * index + 1), dtype=jnp.uint32)


@jax.jit
def _fingerprint_all(leaves: list[jax.Array]) -> jax.Array:
    return jnp.stack([_fingerprint(x) for x in leaves])


def _fingerprints(leaves: list[jax.Array]) -> list[int]:
    """The fingerprint of each leaf, one jitted call per set of devices the leaves are on (a
    collective over all processes for arrays that span them: every process calls this)."""
    groups: dict[frozenset, list[int]] = {}
    for i, leaf in enumerate(leaves):
        groups.setdefault(frozenset(leaf.sharding.device_set), []).append(i)
    result = [0] * len(leaves)
    for indices in groups.values():
        out = _fingerprint_all([leaves[i] for i in indices])
        values = np.asarray(out.addressable_data(0) if out.is_fully_replicated else out)
        for i, value in zip(indices, values):
            result[i] = int(value)
    return result


# ------------------------------------------------------------------------ what a checkpoint holds

class _Header(NamedTuple):
    """What a checkpoint says of its leaves (the key path, shape and dtype of each) and ``extra``."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    dtypes: list[str]
    extra: Any


class _Stored(NamedTuple):
    """A checkpoint found at a path: its header and ``load(indices, likes)``, which returns its
    leaves ``indices`` as jax arrays placed like ``likes`` (after the header has been checked)."""

    path: str
    header: _Header
    load: Callable[[list[int], list[Any]], list[jax.Array]]


def _sharding(like_leaf: Any) -> jax.sharding.Sharding:
    sharding = getattr(like_leaf, "sharding", None)
    return sharding if sharding is not None else jax.sharding.SingleDeviceSharding(
        jax.local_devices()[0])


def _shape_dtype(leaf: Any) -> tuple[tuple[int, ...], str]:
    return tuple(np.shape(leaf)), str(np.dtype(leaf.dtype))


def _check_leaves(path: str, header: _Header, indices: list[int], likes: list[Any],
                  like_names: list[str], template: Callable[[str], str]) -> None:
    """Raises a ValueError naming the first leaf whose shape or dtype differs from its template's
    (``template(name)`` names the template in the message)."""
    for i, name, like_leaf in zip(indices, like_names, likes):
        expected = _shape_dtype(like_leaf)
        if (header.shapes[i], header.dtypes[i]) != expected:
            raise ValueError(
                f"checkpoint {path}: leaf {name} has shape {header.shapes[i]} and dtype "
                f"{header.dtypes[i]}, but {template(name)} expects shape {expected[0]} and dtype "
                f"{expected[1]}")


# the previous format: a single file ------------------------------------------------------------

def _read_file(path: str) -> _Stored:
    """A checkpoint file of the previous format, checksum verified."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ValueError(f"checkpoint {path} cannot be read: {_one_line(err)}") from None
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not a jaxfund checkpoint (bad magic bytes)")
    digest = data[len(_MAGIC): len(_MAGIC) + _DIGEST_BYTES]
    payload = data[len(_MAGIC) + _DIGEST_BYTES:]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"checkpoint {path} is corrupt or truncated (checksum mismatch, "
                         f"{len(data)} bytes)")
    import flax.serialization  # this format's arrays are flax's msgpack extension

    try:
        content = flax.serialization.msgpack_restore(payload)
        header = json.loads(content["header"])
        extra = json.loads(content["extra"])
        leaves = content["leaves"]
    except Exception as err:  # any decoding failure means an unreadable file
        raise ValueError(f"checkpoint {path} cannot be decoded: {_one_line(err)}") from None
    malformed = f"checkpoint {path} is malformed:"
    if not isinstance(header, dict):
        raise ValueError(f"{malformed} its header is not a JSON object")
    if header.get("format_version") != _FILE_FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {header.get('format_version')}, "
                         f"this jaxfund reads files of version {_FILE_FORMAT_VERSION}")
    for key in ("paths", "shapes", "dtypes"):
        if not isinstance(header.get(key), list):
            raise ValueError(f"{malformed} its header has no list {key!r}")
    if not isinstance(leaves, dict):
        raise ValueError(f"{malformed} its leaves are a {type(leaves).__name__}, not a map of "
                         "arrays")
    for i, name in enumerate(header["paths"]):
        leaf = leaves.get(str(i))
        if str(i) not in leaves:
            raise ValueError(f"{malformed} leaf {i} ({name}) is missing")
        if isinstance(leaf, msgpack.ExtType):
            raise ValueError(f"{malformed} leaf {i} ({name}) is of an unknown msgpack "
                             f"extension type {leaf.code}")
        if not isinstance(leaf, (np.ndarray, np.generic)):
            raise ValueError(f"{malformed} leaf {i} ({name}) is a {type(leaf).__name__}, not "
                             "an array")
    arrays = [leaves[str(i)] for i in range(len(header["paths"]))]
    stored = _Header(header["paths"], [tuple(a.shape) for a in arrays],
                     [str(a.dtype) for a in arrays], extra)

    def load(indices: list[int], likes: list[Any]) -> list[jax.Array]:
        return [jax.device_put(arrays[i], _sharding(like)) for i, like in zip(indices, likes)]

    return _Stored(path, stored, load)


# a directory written by orbax -------------------------------------------------------------------

def _header_of_meta(path: str, meta: Any) -> tuple[_Header, list[int]]:
    """The header and fingerprints of a checkpoint's ``meta`` item, after checking its form."""
    malformed = f"checkpoint {path} is malformed: its metadata"
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{malformed} is not a {_FORMAT} header")
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {meta.get('format_version')}, "
                         f"this jaxfund reads version {_FORMAT_VERSION}")
    columns = [meta.get(key) for key in ("paths", "shapes", "dtypes", "fingerprints")]
    if not all(isinstance(c, list) and len(c) == len(columns[0]) for c in columns):
        raise ValueError(f"{malformed} has no equally long lists paths, shapes, dtypes and "
                         "fingerprints")
    names, shapes, dtypes, fingerprints = columns
    if not (all(isinstance(n, str) for n in names) and all(isinstance(d, str) for d in dtypes)
            and all(isinstance(s, list) and all(isinstance(k, int) for k in s) for s in shapes)
            and all(isinstance(f, int) for f in fingerprints)):
        raise ValueError(f"{malformed} has entries of the wrong type")
    return _Header(names, [tuple(s) for s in shapes], dtypes, meta.get("extra")), fingerprints


def _read_step(path: str) -> _Stored:
    """The checkpoint in the orbax directory ``path``; its leaves are read by orbax (resharded
    to the templates' shardings) and their fingerprints verified."""
    try:
        meta = ocp.Checkpointer(ocp.CompositeCheckpointHandler()).restore(
            path, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()}))[_META]
    except Exception as err:  # orbax, tensorstore or json: the metadata is unreadable
        _quiet_orbax_leftovers()
        raise ValueError(f"checkpoint {path} is corrupt: its metadata cannot be read: "
                         f"{_one_line(err)}") from None
    header, fingerprints = _header_of_meta(path, meta)

    def load(indices: list[int], likes: list[Any]) -> list[jax.Array]:
        target = {str(i): jax.ShapeDtypeStruct(np.shape(like), like.dtype, sharding=_sharding(like))
                  for i, like in zip(indices, likes)}
        try:
            restored = ocp.Checkpointer(ocp.CompositeCheckpointHandler()).restore(
                path, args=ocp.args.Composite(**{_STATE: ocp.args.PyTreeRestore(
                    item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                    partial_restore=True)}))[_STATE]
            leaves = [restored[str(i)] for i in indices]
        except Exception as err:  # orbax or tensorstore: a file is missing, truncated or garbled
            _quiet_orbax_leftovers()
            raise ValueError(f"checkpoint {path} is corrupt: its arrays cannot be read: "
                             f"{_one_line(err)}") from None
        for i, got in zip(indices, _fingerprints(leaves)):
            if got != fingerprints[i]:
                raise ValueError(
                    f"checkpoint {path} is corrupt: leaf {header.names[i]} has fingerprint "
                    f"{got:#010x}, its metadata records {fingerprints[i]:#010x} (its data "
                    "changed after it was written)")
        return leaves

    return _Stored(path, header, load)


def _is_step(path: str) -> bool:
    """Whether ``path`` is one checkpoint (a step directory), not a directory of them."""
    return any(os.path.isdir(os.path.join(path, item)) for item in (_STATE, _META))


def _committed_steps(directory: str) -> list[int]:
    """The committed steps in ``directory``, ascending (uncommitted ones have a suffix)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(name) for name in names
                  if _STEP.fullmatch(name) and os.path.isdir(os.path.join(directory, name)))


def _find(path: str | os.PathLike) -> _Stored:
    """The checkpoint at ``path``: a file of the previous format, a checkpoint directory (of
    :func:`save`, or a step of :class:`Checkpoints`), or the latest step of a directory of
    :class:`Checkpoints`."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        return _read_file(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint at {path}: it does not exist")
    if _is_step(path):
        return _read_step(path)
    steps = _committed_steps(path)
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {path}: the directory holds no committed step")
    return _read_step(os.path.join(path, str(steps[-1])))


def _restore(stored: _Stored, like: Any) -> tuple[Any, Any]:
    """``stored`` in the structure of ``like`` (checked leaf by leaf), and its ``extra``."""
    path, header = stored.path, stored.header
    names, like_leaves = _flatten(like)
    if header.names != names:
        differing = sorted(set(header.names) ^ set(names))
        raise ValueError(
            f"checkpoint {path} does not match the structure of `like`: it has "
            f"{len(header.names)} leaves, `like` has {len(names)}; differing leaves: "
            f"{', '.join(differing[:5]) or 'same names in a different order'}"
            + (_EXPORT_HINT if _is_export(header.names) and not _is_export(names) else ""))
    indices = list(range(len(names)))
    _check_leaves(path, header, indices, like_leaves, names, lambda name: "`like`")
    leaves = stored.load(indices, like_leaves)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves), header.extra


# ------------------------------------------------------------------------------------ the API

class Checkpoints:
    """Checkpoints of a training state in a directory: an orbax CheckpointManager, one
    checkpoint per step (``directory/<step>/``).

    Args:
      directory: where the checkpoints go; made absolute, created if missing.
      keep: how many of the latest steps to keep (older ones are deleted after a newer one is
        committed); ``None``: all.
      async_save: :meth:`save` returns once the arrays are copied off their devices, and orbax
        writes them while training goes on (:meth:`wait` or :meth:`close` to finish).

    The orbax manager is made by the first :meth:`save` (which first deletes what killed
    saves left behind); reading (:meth:`steps`, :meth:`restore`) needs none, so a reader never
    interferes with a process that writes to the same directory. Use it as a context manager,
    or call :meth:`close` at the end, so pending saves complete. In a multi-process run every
    process creates it and calls :meth:`save` and :meth:`restore` (orbax coordinates them; each
    process writes and reads its own shards).
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int | None = 3,
                 async_save: bool = True):
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool)
                                 or keep < 1):
            raise ValueError(f"`keep` must be a positive int or None (keep all), got {keep!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"{self.directory} is a file, not a directory of checkpoints")
        os.makedirs(self.directory, exist_ok=True)
        self._options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, todelete_subdir=_DELETING)
        self._manager: ocp.CheckpointManager | None = None  # made by the first save

    def __repr__(self) -> str:
        return f"Checkpoints({self.directory!r}, steps={self.steps()})"

    def path_of(self, step: int) -> str:
        """The directory of ``step``'s checkpoint (for :func:`restore_params`)."""
        return os.path.join(self.directory, str(step))

    def steps(self) -> list[int]:
        """The committed steps, ascending (a save in progress is not one until it commits)."""
        return _committed_steps(self.directory)

    def latest_step(self) -> int | None:
        """The latest committed step, ``None`` if there is none."""
        steps = self.steps()
        return steps[-1] if steps else None

    def _clean(self, uncommitted: bool) -> None:
        """Deletes (on process 0) the old steps orbax moved aside and, with ``uncommitted``, the
        directories of saves killed before they committed."""
        if jax.process_index() != 0:
            return
        deleting = os.path.join(self.directory, _DELETING)
        leftovers = [os.path.join(deleting, name) for name in
                     (os.listdir(deleting) if os.path.isdir(deleting) else [])]
        if uncommitted:
            leftovers += [os.path.join(self.directory, name) for name in os.listdir(self.directory)
                          if ocp.path.step.TMP_DIR_SUFFIX in name]
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)

    def save(self, step: int, state: Any, extra: dict | None = None) -> None:
        """Saves ``state`` and ``extra`` as ``step`` (atomic: both or neither are committed).

        Called by every process of a multi-process run. With ``async_save``, returns once the
        arrays are copied off their devices; the previous save is waited for first.

        Args:
          step: a step after the latest one saved, e.g. ``state.step`` or the epoch (an int or
            an integer scalar array).
          state: a :class:`jaxfund.train.TrainState` or any pytree of arrays.
          extra: JSON-serialisable metadata, e.g. ``{"epoch": 5, "seed": 0, "config": {...}}``.

        Raises:
          TypeError: ``extra`` is not JSON-serialisable, or ``step`` is not an integer.
          ValueError: ``step`` is negative or not after the latest step saved.
        """
        extra = _json(extra)
        step = operator.index(step)  # an int, a numpy or a jax integer scalar (state.step)
        if step < 0:
            raise ValueError(f"`step` must be >= 0, got {step}")
        if self._manager is None:  # only a writer has one: it reads every step's metadata
            self._clean(uncommitted=True)
            self._manager = ocp.CheckpointManager(self.directory, options=self._options)
        latest = self._manager.latest_step()  # including a save in progress
        if latest is not None and step <= latest:
            raise ValueError(f"cannot save step {step} in {self.directory}: its latest step is "
                             f"{latest}, and steps must increase")
        names, leaves = _flatten(state)
        leaves = [leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf) for leaf in leaves]
        meta = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "paths": names,
            "shapes": [list(leaf.shape) for leaf in leaves],
            "dtypes": [str(np.dtype(leaf.dtype)) for leaf in leaves],
            "fingerprints": _fingerprints(leaves), "extra": extra,
        }
        self._clean(uncommitted=False)
        self._manager.save(step, args=ocp.args.Composite(**{
            _STATE: ocp.args.StandardSave({str(i): leaf for i, leaf in enumerate(leaves)}),
            _META: ocp.args.JsonSave(meta)}))

    def saving(self) -> bool:
        """Whether a save of this process is still being written (``async_save``): a caller that
        must not wait on the disk may skip a save while this is true."""
        return self._manager is not None and self._manager.is_saving_in_progress()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, Any]:
        """The state saved as ``step`` (``None``: the latest) and its ``extra``.

        Pending saves of this object are waited for first.

        Args:
          like: a state of the expected structure, shapes and dtypes: a concrete one (e.g. a
            fresh :class:`jaxfund.train.TrainState`; its values are not used) or an abstract one
            (``jax.ShapeDtypeStruct`` leaves, e.g. from ``jax.eval_shape``). Each leaf is
            restored with the sharding of ``like``'s leaf (default: the first local device),
            whatever the topology it was saved from.
          step: the step to restore; ``None``: the latest.

        Returns:
          ``(state, extra)``.

        Raises:
          FileNotFoundError: no checkpoint (of ``step``) in the directory.
          ValueError: a file is corrupt, truncated or missing, or the structure, shapes or
            dtypes differ from ``like``'s (one line naming the checkpoint and the first
            difference).
        """
        self.wait()
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}: the directory holds no "
                                    "committed step")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise FileNotFoundError(f"no checkpoint of step {step} in {self.directory}: its "
                                    f"steps are {steps}")
        return _restore(_read_step(self.path_of(step)), like)

    def wait(self) -> None:
        """Waits until the pending saves are committed (and old steps deleted)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._clean(uncommitted=False)

    def close(self) -> None:
        """Waits for the pending saves, then closes the manager (a later save opens another)."""
        if self._manager is not None:
            self.wait()
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def save(path: str | os.PathLike, state: Any, extra: dict | None = None) -> None:
    """Writes the full training state (params, optimizer state, step) and ``extra`` to ``path``.

    ``path`` is a directory holding one checkpoint: ``Checkpoints(path, keep=1)`` saving the
    next step, synchronously, so a crash leaves the previous checkpoint or the new one. A file of
    the previous format at ``path`` is replaced by the directory once the new checkpoint is
    written (between a delete and a rename: the one moment a kill leaves nothing at ``path``).

    Args:
      path: the checkpoint directory; created (with its parents) if missing.
      state: a :class:`jaxfund.train.TrainState` (or any pytree of arrays).
      extra: JSON-serialisable metadata, e.g. ``{"epoch": 5, "seed": 0, "config": {...}}``.

    Raises:
      TypeError: ``extra`` is not JSON-serialisable.
    """
    path = os.path.abspath(os.fspath(path))
    _json(extra)
    if not os.path.isfile(path):
        with Checkpoints(path, keep=1, async_save=False) as checkpoints:
            latest = checkpoints.latest_step()
            checkpoints.save(0 if latest is None else latest + 1, state, extra)
        return
    directory, name = os.path.split(path)
    fresh = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with Checkpoints(fresh, keep=1, async_save=False) as checkpoints:
            checkpoints.save(0, state, extra)
        os.unlink(path)
        os.rename(fresh, path)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, Any]:
    """Reads the checkpoint at ``path`` into the structure of ``like``.

    Args:
      path: a checkpoint written by :func:`save`; also a step of :class:`Checkpoints`
        (``checkpoints.path_of(step)``), a :class:`Checkpoints` directory (its latest step), or
        a file of jaxfund's previous single-file format.
      like: a state of the expected structure, shapes and dtypes (e.g. a freshly created
        :class:`jaxfund.train.TrainState`, or ``jax.ShapeDtypeStruct`` leaves); its values are
        not used. Each restored leaf is placed with the sharding of ``like``'s leaf.

    Returns:
      ``(state, extra)``.

    Raises:
      FileNotFoundError: no checkpoint at ``path`` (the message names it).
      ValueError: the checkpoint is corrupt, truncated or not a checkpoint, or its structure,
        shapes or dtypes differ from ``like``'s (one line naming the path and the first
        difference).
    """
    return _restore(_find(path), like)


def export(path: str | os.PathLike, params: Any, model_state: Any = None,
           extra: dict | None = None) -> None:
    """Writes the params and model state alone (no step, no optimizer state) to ``path``.

    For inference or fine-tuning with another optimizer; read it back with
    :func:`restore_params`. The format is :func:`save`'s (a directory, atomic, fingerprinted),
    and the leaves are stored under the key paths they have in a
    :class:`jaxfund.train.TrainState` (``.params[0]['w']``,
    ``.model_state['batch_stats']...``), so :func:`restore_params` reads an export and a full
    checkpoint alike.

    Args:
      path: the checkpoint directory; created (with its parents) if missing.
      params: the model parameters (any pytree of arrays), e.g. ``state.params``.
      model_state: the model's mutable state (e.g. batch-norm statistics), e.g.
        ``state.model_state``; ``None``: none (``{}``).
      extra: JSON-serialisable metadata, e.g. ``{"config": {...}}``.
    """
    save(path, _Weights(params, {} if model_state is None else model_state), extra)


def restore_params(path: str | os.PathLike, params: Any,
                   model_state: Any = None) -> tuple[Any, Any]:
    """Reads the params and model state from a checkpoint of :func:`save` or :func:`export`.

    A full checkpoint's step and optimizer state are not read, so the params can be restored
    into a model alone (inference) or a state with another optimizer
    (``TrainState.create(params, tx)``).

    Args:
      path: a checkpoint written by :func:`save` (of a :class:`jaxfund.train.TrainState`) or by
        :func:`export`; also a step of :class:`Checkpoints` (``checkpoints.path_of(step)``), a
        :class:`Checkpoints` directory (its latest step), or a file of the previous format.
      params: params of the expected structure, shapes and dtypes (e.g. ``model.init(key)``,
        or ``jax.eval_shape`` of it); its values are not used. Each restored leaf is placed
        with the sharding of the corresponding leaf of the template.
      model_state: likewise for the model state; ``None``: the model has none (``{}``).

    Returns:
      ``(params, model_state)``.

    Raises:
      FileNotFoundError: no checkpoint at ``path`` (the message names it).
      ValueError: the checkpoint is corrupt, truncated or not a checkpoint; its params differ
        from ``params`` in structure, shapes or dtypes; or it has model state and
        ``model_state`` has none, or the other way round (one line naming the path and the first
        difference).
    """
    stored = _find(path)
    path, header = stored.path, stored.header
    like = _Weights(params, {} if model_state is None else model_state)
    names, like_leaves = _flatten(like)
    stored_names, like_names = _by_field(header.names), _by_field(names)
    if stored_names["model_state"] and not like_names["model_state"]:
        raise ValueError(
            f"checkpoint {path} has model state ({len(stored_names['model_state'])} leaves, e.g. "
            f"{stored_names['model_state'][0]}) but `model_state` has none: pass `model_state=` "
            f"like the model's state")
    if like_names["model_state"] and not stored_names["model_state"]:
        raise ValueError(
            f"checkpoint {path} has no model state, but `model_state` has "
            f"{len(like_names['model_state'])} leaves (e.g. {like_names['model_state'][0]}): "
            f"it is of a model without one; pass model_state=None")
    for field in _FIELDS:
        differing = sorted(set(stored_names[field]) ^ set(like_names[field]))
        if differing:
            raise ValueError(
                f"checkpoint {path} does not match the structure of `{field}`: it has "
                f"{len(stored_names[field])} {field} leaves, `{field}` has "
                f"{len(like_names[field])}; differing leaves: {', '.join(differing[:5])}")
    index = {name: i for i, name in enumerate(header.names)}
    indices = [index[name] for name in names]
    _check_leaves(path, header, indices, like_leaves, names, lambda name: f"`{_field(name)}`")
    leaves = stored.load(indices, like_leaves)
    restored = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves)
    return restored.params, restored.model_state
