"""Beyond one process: JAX's distributed runtime, process-local data, sharded training state.

A run on several hosts (GPU machines, a TPU slice) is one process per host, all running the same
program. :func:`initialize` joins them into one JAX cluster (``jax.distributed.initialize``;
on CPU the collectives use gloo), after which ``jax.devices()`` lists every process's devices and
:func:`jaxfund.train.data_mesh` spans them all; :func:`jaxfund.train.fit` then feeds each process
only its own rows of every batch (:func:`local_rows`, assembled into the global batch with
``jax.make_array_from_process_local_data``), so the global batch, the shuffle and the results do
not depend on the number of processes.

- :func:`initialize`: joins the cluster from explicit ``coordinator``/``num_processes``/
  ``process_id`` (JAX's names) or from the environment JAX detects (SLURM, Open MPI, Cloud TPU,
  Kubernetes); without either it is a single-process run and does nothing. It starts a watchdog:
  if a process dies (kill -9, a crash, a lost host) the others stop within ``peer_timeout``
  seconds with one line on stderr, instead of waiting forever inside a collective.
- :func:`fail`: tells the other processes that this one stops on an error (they exit with one
  line naming it) and exits. :func:`peer_lost`: stops this process with one line when a
  collective failed because another process died.
- :func:`state_shardings`: ZeRO/FSDP-style placement of params and optimizer state: every leaf
  sharded over the mesh's ``"data"`` axis on its largest divisible dimension, small leaves
  replicated; XLA inserts the all-gathers.
- :func:`bytes_per_device`: the bytes a pytree of arrays holds on each device, from the arrays'
  addressable shards.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxfund import _checks

__all__ = [
    "initialize",
    "cluster_detected",
    "fail",
    "peer_lost",
    "PEER_LOST",
    "local_rows",
    "state_shardings",
    "bytes_per_device",
]

PEER_LOST = 4  # exit status of a process stopped because another one died or failed
_KEY = "jaxfund/process/"  # the watchdog's key-value entries, one per process
_INTERVAL = 0.5  # seconds between two heartbeats of the watchdog
_ACKNOWLEDGE_SECONDS = 10.0  # how long fail() waits for the others to read the failure
_ADDRESS = re.compile(r"^\[?[^\s\[\]]+\]?:(\d{1,5})$")
_stop_line_writer: Callable[[str], None] | None = None
"""Where a process stopped by the watchdog writes its one line (None: ``sys.stderr``).
``jaxfund train``'s supervised child hands it to its parent instead, which prints it
(:mod:`jaxfund.cli._supervisor`)."""


def cluster_detected() -> bool:
    """Whether JAX detects a cluster in the environment (SLURM, Open MPI, Cloud TPU, Kubernetes):
    ``jax.distributed.initialize()`` without arguments would then find its processes."""
    try:
        from jax._src import clusters
    except ImportError:
        return False
    for env in getattr(clusters.ClusterEnv, "_cluster_types", ()):
        try:
            if not getattr(env, "opt_in_only_method", False) and env.is_env_present():
                return True
        except Exception:  # a detector probing the network or a package may fail: no cluster
            continue
    return False


def _check_address(coordinator: str) -> str:
    if not isinstance(coordinator, str) or not _ADDRESS.match(coordinator) \
            or not 0 < int(_ADDRESS.match(coordinator).group(1)) < 65536:
        raise ValueError(f"coordinator must be 'HOST:PORT' (e.g. '10.0.0.1:1234', port "
                         f"1..65535), got {coordinator!r}")
    return coordinator


class _Watchdog:
    """One daemon thread per process: every :data:`_INTERVAL` seconds it bumps this process's
    counter in the distributed key-value store and reads every other process's. A process
    whose counter has not moved for ``timeout`` seconds (this host's clock: no clock is compared
    across hosts), that reported a failure (:func:`fail`), or a coordinator that no longer
    answers, stops this process with one line on stderr and exit status :data:`PEER_LOST`. A
    process that exits normally marks itself done first (at exit), and is not waited for."""

    def __init__(self, client: Any, process_id: int, num_processes: int, timeout: float):
        self.client, self.me, self.n, self.timeout = client, process_id, num_processes, timeout
        self.beats = 0
        self.stopped = threading.Event()
        self.exiting = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="jaxfund-watchdog", daemon=True)

    def start(self) -> None:
        self._publish("alive 0")
        self.thread.start()

    def _publish(self, value: str) -> None:
        self.client.key_value_set(f"{_KEY}{self.me}", value, allow_overwrite=True)

    def stop(self, value: str) -> None:
        """Stops beating and publishes ``value`` (``"done"`` or ``"failed <reason>"``)."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        try:
            self._publish(value)
        except Exception:
            pass

    def wait_for_peers(self, seconds: float) -> None:
        """Waits (at most ``seconds``) until every other process has stopped or failed: they
        must read this one's failure before its exit can take the coordinator away."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                entries = dict(self.client.key_value_dir_get(_KEY))
            except Exception:
                return
            if all(entries.get(f"{_KEY}{peer}", "").startswith(("failed", "done"))
                   for peer in range(self.n) if peer != self.me):
                return
            time.sleep(_INTERVAL / 5)

    def _run(self) -> None:
        seen: dict[int, tuple[str, float]] = {}
        started = time.monotonic()
        while not self.stopped.wait(_INTERVAL):
            self.beats += 1
            now = time.monotonic()
            try:
                self._publish(f"alive {self.beats}")
                entries = dict(self.client.key_value_dir_get(_KEY))
            except Exception as err:
                if self.stopped.is_set():
                    return
                self._exit(f"lost the coordinator of the {self.n} processes "
                           f"({type(err).__name__}: {' '.join(str(err).split())[:160]})")
                return
            for peer in range(self.n):
                if peer == self.me:
                    continue
                value = entries.get(f"{_KEY}{peer}", "")
                if value == "done":
                    continue
                if value.startswith("failed"):
                    self._exit(f"process {peer} of {self.n} stopped: {value[7:]}")
                last_value, since = seen.get(peer, (None, started))
                if value != last_value:
                    seen[peer] = (value, now)
                elif now - since > self.timeout:
                    self._exit(f"process {peer} of {self.n} stopped responding (no heartbeat "
                               f"for {now - since:.0f} s): it died or its host is unreachable")

    def _exit(self, reason: str, *, unless_stopped: bool = True) -> None:
        """Stops the process with one line naming ``reason`` (the first thread to call it; a
        second one waits for the exit). From the watchdog (``unless_stopped``): not once this
        process has stopped beating (it is ending normally or reporting its own failure)."""
        if unless_stopped and self.stopped.is_set():
            return
        if not self.exiting.acquire(blocking=False):
            while True:
                time.sleep(1)
        self.stop(f"failed {reason}")  # also tells a process waiting in fail() that we stop
        line = (f"jaxfund: error: {reason}; stopping process {self.me} too (the last complete "
                f"checkpoint is kept)")
        if _stop_line_writer is None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        else:
            _stop_line_writer(line)
        os._exit(PEER_LOST)


_watchdog: _Watchdog | None = None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, peer_timeout: float = 30.0,
               initialization_timeout: int = 300) -> bool:
    """Joins this process to a JAX cluster of processes running the same program.

    Call it first, before any other JAX computation, in every process. With ``coordinator``,
    ``num_processes`` and ``process_id`` (all three; process 0 serves the coordinator at
    ``coordinator``), or with none of them when JAX detects the cluster from the environment
    (:func:`cluster_detected`: SLURM, Open MPI, Cloud TPU, Kubernetes), it calls
    ``jax.distributed.initialize``; on CPU the cross-process collectives use gloo
    (``jax_cpu_collectives_implementation``), on GPU NCCL and on TPU the interconnect, as JAX
    chooses. Without arguments and without a detected cluster it does nothing (one process).

    Afterwards ``jax.devices()`` holds every process's devices and ``jax.process_index()`` is
    this process's. A watchdog thread exchanges a heartbeat with the other processes through the
    coordinator's key-value store: if a process dies, reports a failure (:func:`fail`) or the
    coordinator goes away, this process exits within about ``peer_timeout`` seconds with one
    line on stderr and status :data:`PEER_LOST` (JAX's own heartbeat would abort it much later
    with a C++ stack trace; its timeout is set beyond ours).

    Args:
      coordinator: ``"HOST:PORT"`` of process 0 (e.g. ``"10.0.0.1:1234"``).
      num_processes: the number of processes (>= 1).
      process_id: this process's index, ``0 <= process_id < num_processes``.
      peer_timeout: seconds without a heartbeat after which another process counts as dead.
      initialization_timeout: seconds to wait for every process to connect.

    Returns:
      True if this process joined a cluster, False for a single-process run.

    Raises:
      ValueError: only some of the three arguments, or invalid ones (the message names them).
    """
    global _watchdog
    given = {"coordinator": coordinator, "num_processes": num_processes,
             "process_id": process_id}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) not in (0, 3):
        raise ValueError(f"{', '.join(missing)} missing: pass coordinator, num_processes and "
                         "process_id together (or none, to let JAX detect the cluster)")
    if not isinstance(peer_timeout, (int, float)) or not peer_timeout > 0:
        raise ValueError(f"peer_timeout must be a number of seconds > 0, got {peer_timeout!r}")
    _checks.check_int(initialization_timeout, "initialization_timeout", low=1)
    if not missing:
        _check_address(coordinator)
        _checks.check_int(num_processes, "num_processes", low=1)
        _checks.check_int(process_id, "process_id", low=0)
        if process_id >= num_processes:
            raise ValueError(f"process_id must be < num_processes={num_processes}, "
                             f"got {process_id}")
    elif not cluster_detected():
        return False
    if _watchdog is not None:
        raise RuntimeError("jaxfund.distributed.initialize was already called in this process")
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id,
                               initialization_timeout=initialization_timeout,
                               heartbeat_timeout_seconds=int(peer_timeout) * 3 + 30)
    from jax._src import distributed as state

    _watchdog = _Watchdog(state.global_state.client, jax.process_index(), jax.process_count(),
                          float(peer_timeout))
    if _watchdog.n > 1:
        _watchdog.start()
        atexit.register(_watchdog.stop, "done")  # runs before JAX's own shutdown (LIFO)
        sys.excepthook = _excepthook(sys.excepthook)
    return True


def fail(message: str, status: int = 1) -> None:
    """In a run of several processes: reports ``message`` (one line) to the others, which stop
    with it, and exits this process with ``status`` at once (without JAX's shutdown barrier,
    which would wait for the others). In a single-process run: does nothing."""
    if _watchdog is None or _watchdog.n == 1:
        return
    _watchdog.stop("failed " + " ".join(str(message).split()))
    sys.stdout.flush()
    sys.stderr.flush()
    _watchdog.wait_for_peers(_ACKNOWLEDGE_SECONDS)
    os._exit(status)


def peer_lost(error: BaseException) -> None:
    """In a run of several processes: stops this process at once with one line and status
    :data:`PEER_LOST`, for ``error`` raised by a collective whose peer died (gloo reports a
    reset connection where the watchdog would have waited for the heartbeat timeout). In a
    single-process run: does nothing."""
    if _watchdog is None or _watchdog.n == 1:
        return
    text = " ".join(str(error).split())
    _watchdog._exit(f"a collective operation with the other processes failed "
                    f"({text[:160]}): another process died or is unreachable",
                    unless_stopped=False)


def _excepthook(hook: Any) -> Any:
    """``sys.excepthook`` that, after ``hook`` prints the traceback, reports the exception to the
    other processes and exits (a process that merely exits would count as done)."""

    def report(kind: type, value: BaseException, traceback: Any) -> None:
        hook(kind, value, traceback)
        fail(f"{kind.__name__}: {value}", 1)

    return report


def local_rows(sharding: NamedSharding, global_shape: Sequence[int], axis: int) -> slice:
    """The contiguous range of indices along ``axis`` of an array of ``global_shape`` that this
    process's devices hold under ``sharding``: the rows this process loads.

    Raises ValueError if they are not contiguous (a mesh whose devices are not grouped by
    process)."""
    ranges = sorted({index[axis].indices(global_shape[axis])[:2]
                     for index in sharding.addressable_devices_indices_map(
                         tuple(global_shape)).values()})
    for (_, stop), (start, _) in zip(ranges, ranges[1:]):
        if start > stop:
            raise ValueError("this process's devices do not hold one contiguous block of the "
                             "batch: build the mesh with the devices in process order "
                             "(jaxfund.train.data_mesh() does)")
    return slice(ranges[0][0], max(stop for _, stop in ranges))


def _sharded_dim(shape: Sequence[int], size: int) -> int | None:
    """The largest dimension of ``shape`` divisible by ``size`` (the first of equal ones)."""
    best = None
    for dim, extent in enumerate(shape):
        if extent % size == 0 and (best is None or extent > shape[best]):
            best = dim
    return best


def state_shardings(tree: Any, mesh: Mesh, *, min_size: int = 2**14) -> Any:
    """ZeRO/FSDP placement of a pytree (params, optimizer state, a whole TrainState) over the
    mesh's ``"data"`` axis: a ``NamedSharding`` per leaf.

    A leaf of at least ``min_size`` elements is sharded on its largest dimension divisible by
    the axis size (``PartitionSpec(None, "data")`` for a ``(64, 4096)`` kernel on 4 devices);
    smaller leaves (biases, scalars such as the step or Adam's count) and leaves without a
    divisible dimension are replicated. Used as the state's in/out shardings of a jitted train
    step, each device stores about 1/N of the state and XLA gathers the params where the forward
    pass needs them (an all-gather per layer) and reduce-scatters the gradients.

    Args:
      tree: a pytree of arrays or ``jax.ShapeDtypeStruct`` leaves.
      mesh: a mesh with a ``"data"`` axis (:func:`jaxfund.train.data_mesh`).
      min_size: leaves with fewer elements are replicated.
    """
    if "data" not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named 'data', got axes {mesh.axis_names}")
    _checks.check_int(min_size, "min_size", low=1)
    size = mesh.shape["data"]

    def placement(leaf: Any) -> NamedSharding:
        shape = tuple(np.shape(leaf))
        dim = _sharded_dim(shape, size) if int(np.prod(shape)) >= min_size else None
        if dim is None or size == 1:
            return NamedSharding(mesh, P())
        return NamedSharding(mesh, P(*([None] * dim), "data"))

    return jax.tree.map(placement, tree)


def bytes_per_device(tree: Any) -> dict[Any, int]:
    """``{device: bytes}``: what the arrays of ``tree`` occupy on each of this process's devices,
    summed over the arrays' addressable shards (a replicated leaf counts in full on every
    device, a sharded one by its shard)."""
    totals: dict[Any, int] = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            totals[shard.device] = totals.get(shard.device, 0) + shard.data.nbytes
    return totals
