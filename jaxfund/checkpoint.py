"""Checkpoints: a whole training state (any pytree of arrays) plus JSON metadata in one file.

- :func:`save` / :func:`restore`: the full training state (step, params, optimizer state, model
  state), to resume training exactly.
- :func:`export` / :func:`restore_params`: the params and model state alone, for inference or
  fine-tuning with another optimizer. :func:`export` stores them under the key paths they have in
  a :class:`jaxfund.train.TrainState` (``.params...``, ``.model_state...``), so
  :func:`restore_params` reads them from either kind of file.

:func:`save` writes ``magic | sha256(payload) | payload`` (a msgpack payload holding a JSON
header and the leaves) to a temporary file in the target directory, flushes it to disk and
renames it over the target with ``os.replace``, so a crash mid-write leaves the old checkpoint
or the new one, never a broken file. :func:`restore` verifies the checksum and the structure,
shapes and dtypes against a template state and raises a clear error naming the path otherwise.

Because :func:`jaxfund.train.fit` shuffles epoch ``e`` from ``(seed, e)`` only, saving
``{"epoch": e, "seed": seed}`` as ``extra`` in ``fit``'s callback and resuming with
``fit(..., start_epoch=e)`` reproduces the uninterrupted run bit for bit.

Example::

    checkpoint.save("run/checkpoint", state, {"epoch": 3, "seed": 0})
    state, extra = checkpoint.restore("run/checkpoint", like=state)

    # params alone (optimizer state dropped), from the checkpoint or an exported file
    params, model_state = checkpoint.restore_params("run/checkpoint", model.init(key))
    checkpoint.export("run/model", params)
    finetune = train.TrainState.create(checkpoint.restore_params("run/model", params)[0],
                                       optimizers.sgd(lr=1e-2))
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import flax.serialization
import msgpack
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["save", "restore", "export", "restore_params"]

_MAGIC = b"JAXFUND-CHECKPOINT\n"
_FORMAT_VERSION = 1
_DIGEST_BYTES = hashlib.sha256().digest_size


@flax.struct.dataclass
class _Weights:
    """What :func:`export` writes: the fields of a TrainState that a model needs, so their key
    paths (``.params...``, ``.model_state...``) are the same in both kinds of file."""

    params: Any
    model_state: Any


_FIELDS = ("params", "model_state")
_EXPORT_HINT = " (a params-only file written by export: read it with restore_params)"


def _field(name: str) -> str | None:
    """The TrainState field a leaf's key path starts in: ``".params[0]['w']"`` -> ``"params"``."""
    for field in _FIELDS:
        prefix = f".{field}"
        if name == prefix or name.startswith((prefix + "[", prefix + ".")):
            return field
    return None


def _is_export(names: list[str]) -> bool:
    """Whether the leaves ``names`` are those of a file written by :func:`export`."""
    return bool(names) and all(_field(name) is not None for name in names)


def _by_field(names: list[str]) -> dict[str, list[str]]:
    """The leaf names of each of :data:`_FIELDS` (other leaves, e.g. ``.opt_state...``, dropped)."""
    return {field: [name for name in names if _field(name) == field] for field in _FIELDS}


def _leaf_to_numpy(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if not leaf.is_fully_replicated:
            raise ValueError("save needs replicated (or single-process) arrays; got a leaf "
                             f"sharded across processes with sharding {leaf.sharding}")
        leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf))


def _flatten(tree: Any) -> tuple[list[str], list[Any]]:
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(path) for path, _ in with_paths], [leaf for _, leaf in with_paths]


def save(path: str | os.PathLike, state: Any, extra: dict | None = None) -> None:
    """Writes the full training state (params, optimizer state, step) and ``extra`` to ``path``.

    The file is ``magic | sha256(payload) | payload`` with a msgpack payload (flax
    serialization) holding a JSON header (format version, the key path, shape and dtype of
    every leaf, ``extra``) and the leaves as arrays. It is written to a temporary file in the
    same directory, flushed to disk and renamed over ``path`` with ``os.replace`` (atomic), so a
    crash mid-write leaves either the old checkpoint or the new one, never a broken file.

    Args:
      path: the file to write; its directory must exist.
      state: a :class:`jaxfund.train.TrainState` (or any pytree of arrays).
      extra: JSON-serialisable metadata, e.g. ``{"epoch": 5, "seed": 0, "config": {...}}``.
    """
    path = os.fspath(path)
    names, leaves = _flatten(state)
    arrays = [_leaf_to_numpy(leaf) for leaf in leaves]
    try:
        extra_json = json.dumps({} if extra is None else extra)
    except TypeError as err:
        raise TypeError(f"extra must be JSON-serialisable: {err}") from None
    header = {
        "format": "jaxfund-checkpoint",
        "format_version": _FORMAT_VERSION,
        "paths": names,
        "shapes": [list(a.shape) for a in arrays],
        "dtypes": [str(a.dtype) for a in arrays],
    }
    payload = flax.serialization.msgpack_serialize({
        "header": json.dumps(header),
        "extra": extra_json,
        "leaves": {str(i): a for i, a in enumerate(arrays)},
    })
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> tuple[dict, dict, dict]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not a jaxfund checkpoint (bad magic bytes)")
    digest = data[len(_MAGIC): len(_MAGIC) + _DIGEST_BYTES]
    payload = data[len(_MAGIC) + _DIGEST_BYTES:]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"checkpoint {path} is corrupt or truncated (checksum mismatch, "
                         f"{len(data)} bytes)")
    try:
        content = flax.serialization.msgpack_restore(payload)
        header = json.loads(content["header"])
        extra = json.loads(content["extra"])
        leaves = content["leaves"]
    except Exception as err:  # any decoding failure means an unreadable file
        raise ValueError(f"checkpoint {path} cannot be decoded: {err}") from None
    malformed = f"checkpoint {path} is malformed:"
    if not isinstance(header, dict):
        raise ValueError(f"{malformed} its header is not a JSON object")
    if header.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {header.get('format_version')}, "
                         f"this jaxfund reads version {_FORMAT_VERSION}")
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
    return header, extra, leaves


def _place(path: str, name: str, value: np.ndarray, like_leaf: Any, like: str) -> jax.Array:
    """``value`` as a jax array with ``like_leaf``'s sharding, after checking its shape and
    dtype against ``like_leaf`` (``like`` names the template in the error)."""
    expected = (tuple(np.shape(like_leaf)), str(np.dtype(like_leaf.dtype)))
    if (tuple(value.shape), str(value.dtype)) != expected:
        raise ValueError(
            f"checkpoint {path}: leaf {name} has shape {tuple(value.shape)} and dtype "
            f"{value.dtype}, but {like} expects shape {expected[0]} and dtype {expected[1]}"
        )
    sharding = getattr(like_leaf, "sharding", None)
    return jax.device_put(value, sharding) if sharding is not None else jnp.asarray(value)


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Reads a checkpoint written by :func:`save` into the structure of ``like``.

    Args:
      path: the checkpoint file.
      like: a state of the expected structure, shapes and dtypes (e.g. a freshly created
        :class:`jaxfund.train.TrainState`); its values are not used. Each restored leaf is
        placed with the sharding of the corresponding leaf of ``like``.

    Returns:
      ``(state, extra)``.

    Raises:
      FileNotFoundError: ``path`` does not exist (the message names it).
      ValueError: the file is corrupt, truncated or not a checkpoint, or its structure, shapes
        or dtypes differ from ``like``'s (the message names the path and the first difference).
    """
    path = os.fspath(path)
    header, extra, stored = _read(path)
    names, like_leaves = _flatten(like)
    treedef = jax.tree_util.tree_structure(like)
    if header["paths"] != names:
        missing = sorted(set(header["paths"]) ^ set(names))
        raise ValueError(
            f"checkpoint {path} does not match the structure of `like`: it has "
            f"{len(header['paths'])} leaves, `like` has {len(names)}; differing leaves: "
            f"{', '.join(missing[:5]) or 'same names in a different order'}"
            + (_EXPORT_HINT if _is_export(header["paths"]) and not _is_export(names) else "")
        )
    leaves = [_place(path, name, stored[str(i)], like_leaf, "`like`")
              for i, (name, like_leaf) in enumerate(zip(names, like_leaves))]
    return jax.tree_util.tree_unflatten(treedef, leaves), extra


def export(path: str | os.PathLike, params: Any, model_state: Any = None,
           extra: dict | None = None) -> None:
    """Writes the params and model state alone (no step, no optimizer state) to ``path``.

    For inference or fine-tuning with another optimizer; read it back with
    :func:`restore_params`. The file format is :func:`save`'s (atomic, checksummed), and the
    leaves are stored under the key paths they have in a :class:`jaxfund.train.TrainState`
    (``.params[0]['w']``, ``.model_state['batch_stats']...``), so :func:`restore_params` reads
    an exported file and a full checkpoint alike.

    Args:
      path: the file to write; its directory must exist.
      params: the model parameters (any pytree of arrays), e.g. ``state.params``.
      model_state: the model's mutable state (e.g. batch-norm statistics), e.g.
        ``state.model_state``; ``None``: none (``{}``).
      extra: JSON-serialisable metadata, e.g. ``{"config": {...}}``.
    """
    save(path, _Weights(params, {} if model_state is None else model_state), extra)


def restore_params(path: str | os.PathLike, params: Any,
                   model_state: Any = None) -> tuple[Any, Any]:
    """Reads the params and model state from a file of :func:`save` or :func:`export`.

    A full checkpoint's step and optimizer state are skipped, so the params can be restored
    into a model alone (inference) or a state with another optimizer
    (``TrainState.create(params, tx)``).

    Args:
      path: a checkpoint written by :func:`save` (of a :class:`jaxfund.train.TrainState`) or a
        file written by :func:`export`.
      params: params of the expected structure, shapes and dtypes (e.g. ``model.init(key)``,
        or ``jax.eval_shape`` of it); its values are not used. Each restored leaf is placed
        with the sharding of the corresponding leaf of the template.
      model_state: likewise for the model state; ``None``: the model has none (``{}``).

    Returns:
      ``(params, model_state)``.

    Raises:
      FileNotFoundError: ``path`` does not exist (the message names it).
      ValueError: the file is corrupt, truncated or not a checkpoint; its params differ from
        ``params`` in structure, shapes or dtypes; or it has model state and ``model_state``
        has none, or the other way round (the message names the path and the first difference).
    """
    path = os.fspath(path)
    header, _, stored = _read(path)
    like = _Weights(params, {} if model_state is None else model_state)
    names, like_leaves = _flatten(like)
    file_names, like_names = _by_field(header["paths"]), _by_field(names)
    if file_names["model_state"] and not like_names["model_state"]:
        raise ValueError(
            f"checkpoint {path} has model state ({len(file_names['model_state'])} leaves, e.g. "
            f"{file_names['model_state'][0]}) but `model_state` has none: pass `model_state=` "
            f"like the model's state"
        )
    if like_names["model_state"] and not file_names["model_state"]:
        raise ValueError(
            f"checkpoint {path} has no model state, but `model_state` has "
            f"{len(like_names['model_state'])} leaves (e.g. {like_names['model_state'][0]}): "
            f"the file is of a model without one; pass model_state=None"
        )
    for field in _FIELDS:
        differing = sorted(set(file_names[field]) ^ set(like_names[field]))
        if differing:
            raise ValueError(
                f"checkpoint {path} does not match the structure of `{field}`: it has "
                f"{len(file_names[field])} {field} leaves, `{field}` has "
                f"{len(like_names[field])}; differing leaves: {', '.join(differing[:5])}"
            )
    index = {name: i for i, name in enumerate(header["paths"])}
    leaves = [_place(path, name, stored[str(index[name])], like_leaf, f"`{_field(name)}`")
              for name, like_leaf in zip(names, like_leaves)]
    restored = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves)
    return restored.params, restored.model_state
