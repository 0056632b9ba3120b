"""A training run's output directory: the lock, the resume/overwrite rules, the checkpoints it
resumes from and its per-epoch logs.

- :class:`RunDir`: ``--out`` as a context manager. It refuses ``--resume`` into a missing
  directory (without creating it), locks the directory against a second concurrent run
  (``OUT/.jaxfund.lock``; the lock of a killed run is taken over), refuses to mix a new run into
  a directory that holds one unless ``--resume`` or ``--overwrite``, and removes the temporary
  files a killed run left behind.
- :func:`open_checkpoints` / :func:`read_checkpoint`: ``OUT/checkpoints`` (an Orbax checkpoint
  manager, :class:`jaxfund.checkpoint.Checkpoints`) and the latest checkpoint's state and
  metadata, every problem as one line; a run of an older jaxfund that saved the single file
  ``OUT/checkpoint`` resumes from it.
- :class:`JsonlLog` (``OUT/log.jsonl``) and :class:`TensorBoardLog` (``OUT/tensorboard/``):
  one entry per epoch, written as training goes; on resume the entries a killed run wrote after
  its last checkpoint are dropped.

Every user error is a :class:`jaxfund.cli._common.UsageError` (one line, exit status 2).
"""

from __future__ import annotations

import contextlib
import glob
import json
import numbers
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from jaxfund.cli import _common
from jaxfund.cli._common import UsageError

CHECKPOINTS = "checkpoints"
CHECKPOINT = "checkpoint"  # the single-file checkpoint of jaxfund before Orbax (read on resume)
LOG = "log.jsonl"
TENSORBOARD = "tensorboard"
LOCK = ".jaxfund.lock"
# What a run writes into --out: a directory holding any of them holds a run, and --overwrite
# removes exactly these (never other files of the user's).
RUN_FILES = ("metrics.json", CHECKPOINTS, CHECKPOINT, "best", LOG, "curves.png", "curves.html",
             TENSORBOARD)
# Temporary files of an interrupted atomic write: checkpoint.save's (also for OUT/best) and
# JsonlLog's.
TEMP_FILES = (f".{CHECKPOINT}.*.tmp", ".best.*.tmp", f".{LOG}.*.tmp")
_TAKEOVER = LOCK + ".takeover"  # guards the removal of a stale lock (held for microseconds)
_TAKEOVER_STALE_SECONDS = 10.0
_NON_FINITE = ("nan", "inf", "-inf")  # how _common.plain writes non-finite floats


# ---------------------------------------------------------------------------------- the lock


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks after boot)`` of ``pid`` from ``/proc`` (Linux), or
    ``None`` where there is no ``/proc`` or no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _owner_record() -> dict:
    """What the lock file holds: who owns it, and a token that tells this lock from any other."""
    pid = os.getpid()
    start = _process_start(pid)
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(),
            "start": start[1] if start else None, "token": secrets.token_hex(8)}


def _alive(owner: dict) -> bool:
    """Whether the process that wrote lock record ``owner`` may still run. Dead: on this host,
    after a reboot, no process with its pid, a zombie, or its pid reused by a process started
    later. A lock of another host (a shared filesystem) counts as alive: we cannot tell."""
    if owner.get("host") != socket.gethostname() or os.name == "nt":
        return True  # (on Windows, os.kill(pid, 0) would terminate the process)
    boot = _boot_id()
    if owner.get("boot_id") and boot and owner["boot_id"] != boot:
        return False
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except (OverflowError, ValueError):
        return False
    now = _process_start(pid)
    if now is not None and (now[0] == "Z" or (owner.get("start") is not None
                                              and now[1] != owner["start"])):
        return False
    return True


def _read_owner(path: str) -> tuple[str, dict | None]:
    """The lock file's text and its record (``None`` where it is not a valid record)."""
    with open(path, errors="replace") as f:
        text = f.read()
    try:
        owner = json.loads(text)
    except ValueError:
        return text, None
    if not (isinstance(owner, dict) and type(owner.get("pid")) is int and owner["pid"] > 0):
        return text, None
    return text, owner


def _age(path: str) -> float | None:
    """Seconds since ``path`` was last written; ``None`` if it is gone."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _break_stale(lock: str, seen: str) -> None:
    """Removes ``lock`` if it still holds ``seen`` (a dead run's record), under a guard file so
    that two runs taking over the same stale lock cannot remove each other's new one."""
    guard = lock[: -len(LOCK)] + _TAKEOVER
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        if (_age(guard) or 0.0) > _TAKEOVER_STALE_SECONDS:  # its taker was killed holding it
            try:
                os.unlink(guard)
            except FileNotFoundError:
                pass
        time.sleep(0.01)
        return
    try:
        with open(lock, errors="replace") as f:
            if f.read() == seen:
                os.unlink(lock)
    except FileNotFoundError:
        pass
    finally:
        os.unlink(guard)


def _acquire(directory: str) -> dict:
    """Creates ``directory/.jaxfund.lock`` atomically (``O_CREAT | O_EXCL``) holding this
    process's record, taking over the lock of a dead run; raises a user error while another run
    holds it."""
    lock = os.path.join(directory, LOCK)
    record = _owner_record()
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                text, owner = _read_owner(lock)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if owner is None:  # empty or foreign: a run between creating and filling it?
                age = _age(lock)
                if age is None:
                    continue
                if age < _TAKEOVER_STALE_SECONDS:
                    raise UsageError(f"--out: another jaxfund run is starting in {directory!r}")
            elif _alive(owner):
                where = ("" if owner.get("host") == socket.gethostname()
                         else f" on host {owner.get('host')}")
                raise UsageError(
                    f"--out: another jaxfund run (pid {owner['pid']}{where}) is using "
                    f"{directory!r}" + (f"; if it no longer runs, delete {lock!r}" if where
                                        else ""))
            _break_stale(lock, text)
            continue
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
        except BaseException:
            os.unlink(lock)
            raise
        return record
    raise UsageError(f"--out: cannot take the lock {lock!r} (it keeps changing)")


def _release(directory: str, record: dict) -> None:
    """Removes the lock if it is still ``record`` (this run's)."""
    lock = os.path.join(directory, LOCK)
    try:
        _, owner = _read_owner(lock)
        if owner is not None and owner.get("token") == record["token"]:
            os.unlink(lock)
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------- the run dir


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _remove_or_fail(path: str) -> None:
    """Removes the file or directory ``path`` (gone already: fine), or raises a user error."""
    try:
        _remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise UsageError(f"--out: cannot remove {path!r}: {err.strerror or err}") from None


class RunDir:
    """``--out DIR`` of a training run, as a context manager that holds the directory's lock.

    On entry, in this order:

    1. ``--resume`` into a directory that does not exist is a user error (nothing is created);
       so are ``resume`` and ``overwrite`` together.
    2. The directory is created (a failure is a user error naming ``--out``).
    3. ``DIR/.jaxfund.lock`` is created atomically (``O_CREAT | O_EXCL``) holding this process's
       pid, host, boot id, start time and a random token. While another live run holds it this
       is a user error ("another jaxfund run (pid N) is using DIR"). The lock of a dead run (a
       kill -9: its pid no longer runs on this host, is a zombie, or was reused by a newer
       process) is taken over. A lock written on another host counts as live.
    4. Temporary files of an interrupted write (:data:`TEMP_FILES`) are removed.
    5. With ``resume``: ``DIR/checkpoints`` (or an older run's ``DIR/checkpoint``) must exist.
       Otherwise a directory holding any of :data:`RUN_FILES` is refused unless ``overwrite``,
       which removes those (and only those).

    On exit (also on an exception) the lock is removed.

    The entered object is path-like (``os.path.join(run, "metrics.json")``, ``f"{run}"``).
    Attributes: ``path`` (the directory), ``checkpoints``, ``checkpoint``, ``log`` and
    ``tensorboard`` (the paths of ``DIR/checkpoints``, an older run's ``DIR/checkpoint``,
    ``DIR/log.jsonl`` and ``DIR/tensorboard``).

    Example::

        with RunDir(args.out, resume=args.resume, overwrite=args.overwrite) as run:
            ...
            with open_checkpoints(run, keep=3) as checkpoints:
                state, start_epoch, history = read_checkpoint(checkpoints, run.checkpoint,
                                                              state, config, epochs)
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool, overwrite: bool):
        self.path = os.fspath(path)
        self.resume = resume
        self.overwrite = overwrite
        self.checkpoints = os.path.join(self.path, CHECKPOINTS)
        self.checkpoint = os.path.join(self.path, CHECKPOINT)
        self.log = os.path.join(self.path, LOG)
        self.tensorboard = os.path.join(self.path, TENSORBOARD)
        self._record: dict | None = None

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return (f"RunDir({self.path!r}, resume={self.resume}, overwrite={self.overwrite})")

    def __enter__(self) -> RunDir:
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite exclude each other: --resume continues "
                             "the run in --out, --overwrite replaces it")
        if self.resume and not os.path.isdir(self.path):
            raise UsageError(f"--resume: no checkpoint in {self.checkpoints!r} ({self.path!r} "
                             f"does not exist); train without --resume first")
        try:
            os.makedirs(self.path, exist_ok=True)
            self._record = _acquire(self.path)
        except OSError as err:
            raise UsageError(f"--out: cannot write to {self.path!r}: "
                             f"{err.strerror or err}") from None
        try:
            self._prepare()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._unlock()

    def _unlock(self) -> None:
        if self._record is not None:
            _release(self.path, self._record)
            self._record = None

    def _prepare(self) -> None:
        """Steps 4 and 5 of the class docstring, under the lock."""
        for pattern in TEMP_FILES:
            for tmp in glob.glob(os.path.join(glob.escape(self.path), pattern)):
                _remove_or_fail(tmp)
        if self.resume:
            if not (os.path.lexists(self.checkpoints) or os.path.lexists(self.checkpoint)):
                raise UsageError(f"--resume: no checkpoint in {self.checkpoints!r}; "
                                 "train without --resume first")
            return
        existing = [name for name in RUN_FILES
                    if os.path.lexists(os.path.join(self.path, name))]
        if existing and not self.overwrite:
            raise UsageError(f"--out {self.path} already holds a run ({', '.join(existing)}); "
                             "pass --resume to continue it or --overwrite to replace it")
        for name in existing:
            _remove_or_fail(os.path.join(self.path, name))


# ------------------------------------------------------------------------------ the checkpoint


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _number(value: Any) -> float | int | None:
    """``value`` as a number if it is one (not a bool) or one of the strings ``"nan"``,
    ``"inf"``, ``"-inf"`` that :func:`jaxfund.cli._common.plain` writes; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return value
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    return None


def _metadata_problem(extra: Any) -> str | None:
    """What is wrong with a checkpoint's ``extra`` (``{"epoch": k, "history": [k entries],
    "config": {...}}``), or ``None``."""
    if not isinstance(extra, dict):
        return f"its metadata is a {type(extra).__name__}, not an object"
    missing = [key for key in ("epoch", "history", "config") if key not in extra]
    if missing:
        return f"its metadata lacks {', '.join(map(repr, missing))}"
    epoch, history = extra["epoch"], extra["history"]
    if type(epoch) is not int or epoch < 0:
        return f"its epoch is {epoch!r}, not an int >= 0"
    if not isinstance(extra["config"], dict):
        return f"its config is a {type(extra['config']).__name__}, not an object"
    if not isinstance(history, list):
        return f"its history is a {type(history).__name__}, not a list"
    if len(history) != epoch:
        return f"its history has {len(history)} entries for epoch {epoch} (one per epoch)"
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            return f"its history[{i}] is a {type(entry).__name__}, not an object"
        if type(entry.get("epoch")) is not int or entry["epoch"] != i + 1:
            return f"its history[{i}] has epoch {entry.get('epoch')!r}, expected {i + 1}"
        for key, value in entry.items():
            if _number(value) is None:
                return f"its history[{i}][{key!r}] is {value!r}, not a number"
    return None


@contextlib.contextmanager
def open_checkpoints(run: RunDir | str | os.PathLike, keep: int) -> Iterator[Any]:
    """:class:`jaxfund.checkpoint.Checkpoints` of ``RUN/checkpoints`` keeping the last ``keep``,
    saving asynchronously (a context manager that waits for the last save when it closes). If
    the block fails (e.g. a refused ``--resume``), the directory is removed again if it was
    created here and is still empty, so the run leaves ``--out`` as it was."""
    from jaxfund import checkpoint as ckpt

    directory = os.path.join(os.fspath(run), CHECKPOINTS)
    created = not os.path.lexists(directory)
    try:
        checkpoints = ckpt.Checkpoints(directory, keep=keep)
    except OSError as err:
        raise UsageError(f"--out: cannot write checkpoints to {directory!r}: "
                         f"{err.strerror or err}") from None
    except ValueError as err:  # a file where the directory should be
        option = "--resume" if getattr(run, "resume", False) else "--out"
        raise UsageError(f"{option}: {_one_line(err)}") from None
    try:
        with checkpoints:
            yield checkpoints
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)  # only while empty: never a committed checkpoint
        raise


def read_checkpoint(checkpoints: Any, legacy: str | os.PathLike, like: Any, config: dict,
                    epochs: int) -> tuple[Any, int, list[dict]]:
    """The training state, epoch and history of the latest checkpoint, to resume a run.

    The checkpoint is what ``jaxfund train`` saves after every epoch ``k``:
    ``checkpoints.save(k, state, {"epoch": k, "config": config, "history": plain(history),
    ...})``; where ``checkpoints`` holds none and the single file ``legacy`` (``OUT/checkpoint``,
    written by jaxfund before its checkpoints moved to Orbax) exists, that file is read instead.
    After the state is restored (structure, shapes, dtypes and fingerprints checked, each leaf
    placed with ``like``'s sharding), the metadata is checked: an object with an int
    ``epoch >= 0``, a ``config`` object equal to ``config`` and a ``history`` of exactly
    ``epoch`` entries with epochs ``1..epoch`` in order and numeric values.

    Args:
      checkpoints: the run's :class:`jaxfund.checkpoint.Checkpoints` (:func:`open_checkpoints`).
      legacy: the path of an older run's single-file checkpoint.
      like: a freshly created state of the run's structure (``TrainState.create(...)``), placed
        as the run trains it.
      config: the run's configuration; the checkpoint's must be equal on every key.
      epochs: ``--epochs``; the checkpoint's epoch may not exceed it.

    Returns:
      ``(state, start_epoch, history)``, with ``"nan"``/``"inf"``/``"-inf"`` history values back
      as floats.

    Raises:
      UsageError: one line naming ``--resume`` (or ``--epochs``) and the problem: no checkpoint,
        unreadable, corrupt or truncated, of another structure, malformed metadata, another
        configuration, or an epoch beyond ``epochs``.
    """
    from jaxfund import checkpoint as ckpt

    legacy = os.fspath(legacy)
    path = checkpoints.directory
    try:
        if checkpoints.latest_step() is None and os.path.lexists(legacy):
            path = legacy
            state, extra = ckpt.restore(legacy, like)
        else:
            state, extra = checkpoints.restore(like)
    except FileNotFoundError:
        raise UsageError(f"--resume: no checkpoint in {path!r}; "
                         "train without --resume first") from None
    except OSError as err:
        raise UsageError(f"--resume: cannot read {path!r}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"--resume: {_one_line(err)}") from None
    problem = _metadata_problem(extra)
    if problem:
        raise UsageError(f"--resume: checkpoint {path} is malformed: {_one_line(problem)}")
    saved = extra["config"]
    differ = sorted(k for k in config if saved.get(k) != config[k])
    if differ:
        shown = ", ".join(f"{k}={saved.get(k)!r} (now {config[k]!r})" for k in differ)
        raise UsageError(f"--resume: the checkpoint was trained with {shown}")
    start_epoch = extra["epoch"]
    if start_epoch > epochs:
        raise UsageError(f"--epochs {epochs}: the checkpoint is already at epoch "
                         f"{start_epoch}; pass --epochs >= {start_epoch}")
    history = [{k: _number(v) for k, v in entry.items()} for entry in extra["history"]]
    return state, start_epoch, history


# ---------------------------------------------------------------------------------------- logs


def _epoch_of(line: str) -> int | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    epoch = entry.get("epoch") if isinstance(entry, dict) else None
    return epoch if type(epoch) is int else None


def _line(entry: dict) -> str:
    return json.dumps(_common.plain(entry), allow_nan=False)


class JsonlLog:
    """``OUT/log.jsonl``: one JSON object per epoch, written and flushed as training goes (so
    ``tail -f`` follows it and a killed run leaves its history).

    A run from scratch (``start_epoch == 0``) replaces the file at its first :meth:`write` (a
    run that ends before its first epoch leaves none). A resumed run first rewrites the file
    atomically with the lines of epochs ``1..start_epoch`` only (those a killed run wrote after
    its last checkpoint are dropped, as is a line cut short by the kill), then appends. Given
    the checkpoint's ``history``, an epoch whose line is missing (a kill between saving the
    checkpoint and writing the line, or a deleted file) is written back from it.

    Non-finite floats are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``
    (:func:`jaxfund.cli._common.plain`): JSON has no non-finite numbers.

    Example::

        with JsonlLog(run.log, start_epoch, history) as log:
            log.write({"epoch": 1, "train_loss": 0.5})
    """

    def __init__(self, path: str | os.PathLike, start_epoch: int = 0,
                 history: list[dict] | None = None):
        self.path = os.fspath(path)
        self._file = None
        self._mode = "w"
        if start_epoch > 0:
            self._rewrite(self._kept(start_epoch, history))
            self._mode = "a"

    def _kept(self, start_epoch: int, history: list[dict] | None) -> list[str]:
        """The lines of epochs ``1..start_epoch``, in order (filled from ``history``)."""
        lines: dict[int, str] = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    epoch = _epoch_of(line)
                    if epoch is not None and 1 <= epoch <= start_epoch:
                        lines[epoch] = line.rstrip("\n")
        for entry in history or ():
            if entry["epoch"] <= start_epoch:
                lines.setdefault(entry["epoch"], _line(entry))
        return [lines[epoch] for epoch in sorted(lines)]

    def _rewrite(self, lines: list[str]) -> None:
        directory, name = os.path.split(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(line + "\n" for line in lines)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def write(self, entry: dict) -> None:
        """Appends ``entry`` (one epoch's values, with its ``"epoch"``) as one line, flushed."""
        if self._file is None:
            self._file = open(self.path, self._mode)
        self._file.write(_line(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class TensorBoardLog:
    """TensorBoard event files in ``logdir`` (``OUT/tensorboard``), written with tensorboardX
    (no TensorFlow): every numeric value of an epoch's entry is a scalar whose tag is its key
    and whose step is the entry's ``"epoch"``, on disk when :meth:`write` returns.

    tensorboardX's ``SummaryWriter`` is not used: its ``flush()`` does not wait for the events
    queued for its writer thread (they reach the file up to ``flush_secs`` later, or never after
    a kill -9), and it names its file by the second, so a run resumed within the same second
    replaces the first file. This writes the same file format synchronously with the
    ``EventsWriter`` that ``SummaryWriter`` uses underneath, in a file of its own per run.

    A resumed run (``start_epoch > 0``) starts its file with a ``SessionLog.START`` at step
    ``start_epoch + 1`` (what ``SummaryWriter(purge_step=...)`` writes), so TensorBoard drops
    what a killed run logged after its last checkpoint. tensorboardX is in the ``cli`` extra;
    without it the constructor raises a user error.

    Example::

        with TensorBoardLog(run.tensorboard, start_epoch) as board:
            board.write({"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.9})
    """

    def __init__(self, logdir: str | os.PathLike, start_epoch: int = 0):
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event, SessionLog
            from tensorboardX.summary import scalar
        except ImportError:
            raise UsageError("TensorBoard logs need tensorboardX: "
                             "pip install 'jaxfund[cli]'") from None
        self.logdir = os.fspath(logdir)
        self._event, self._scalar = Event, scalar
        try:
            os.makedirs(self.logdir, exist_ok=True)
            self._writer = EventsWriter(os.path.join(self.logdir, "events"),
                                        filename_suffix=f".{secrets.token_hex(4)}")
        except OSError as err:
            raise UsageError(f"--out: cannot write to {self.logdir!r}: "
                             f"{err.strerror or err}") from None
        if start_epoch > 0:
            self._writer.write_event(Event(wall_time=time.time(), step=start_epoch + 1,
                                           session_log=SessionLog(status=SessionLog.START)))
        self._writer.flush()

    def write(self, entry: dict) -> None:
        """Adds each numeric value of ``entry`` but ``"epoch"`` as a scalar at step epoch."""
        step = entry["epoch"]
        for key, value in entry.items():
            number = _number(value) if key != "epoch" else None
            if number is not None:
                self._writer.write_event(self._event(
                    wall_time=time.time(), step=step, summary=self._scalar(key, float(number))))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
