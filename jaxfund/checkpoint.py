"""Checkpoints: a whole training state (any pytree of arrays) plus JSON metadata in one file.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["save", "restore"]

_MAGIC = b"JAXFUND-CHECKPOINT\n"
_FORMAT_VERSION = 1
_DIGEST_BYTES = hashlib.sha256().digest_size


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
    if header.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {header.get('format_version')}, "
                         f"this jaxfund reads version {_FORMAT_VERSION}")
    return header, extra, leaves


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
        )
    leaves = []
    for i, (name, like_leaf) in enumerate(zip(names, like_leaves)):
        value = stored[str(i)]
        expected = (tuple(np.shape(like_leaf)), str(np.dtype(like_leaf.dtype)))
        if (tuple(value.shape), str(value.dtype)) != expected:
            raise ValueError(
                f"checkpoint {path}: leaf {name} has shape {tuple(value.shape)} and dtype "
                f"{value.dtype}, but `like` expects shape {expected[0]} and dtype {expected[1]}"
            )
        sharding = getattr(like_leaf, "sharding", None)
        leaves.append(jax.device_put(value, sharding) if sharding is not None else
                      jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, leaves), extra
