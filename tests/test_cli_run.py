"""``jaxfund.cli._run`` (the run directory, its lock, the checkpoint it resumes from, its logs)
and the strict option types of ``jaxfund.cli._common``.

Every user error must be a ``UsageError`` of one line that names the option and the problem.
TensorBoard event files are read back without TensorFlow: TFRecord framing (length, masked
CRC-32C, data, masked CRC-32C) and tensorboardX's own ``Event`` protobuf.
"""

import argparse
import hashlib
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import flax.serialization
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest

from jaxfund import checkpoint
from jaxfund.cli import _common, _run
from jaxfund.cli._common import UsageError
from test_checkpoint import TMP  # the suffix of a save orbax has not committed
from test_checkpoint import _write_file as write_file  # a file of the previous format

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(excinfo, *words: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, (word, message)
    return message


# ------------------------------------------------------------------------------ option types


ACCEPTED = [
    (_common.finite_float, "1e-3", 1e-3),
    (_common.finite_float, "-2.5", -2.5),
    (_common.finite_float, "0", 0.0),
    (_common.finite_float, ".5", 0.5),
    (_common.finite_float, "3.", 3.0),
    (_common.finite_float, "+1E+2", 100.0),
    (_common.finite_float, " 0.1 ", 0.1),
    (_common.finite_float, "1e-400", 0.0),  # underflow to 0 is finite
    (_common.positive_float, "0.001", 1e-3),
    (_common.positive_float, "1e300", 1e300),
    (_common.non_negative_float, "0", 0.0),
    (_common.non_negative_float, "0.01", 0.01),
    (_common.seed, "0", 0),
    (_common.seed, "42", 42),
    (_common.seed, "007", 7),
    (_common.seed, "4294967295", 2**32 - 1),
    (_common.positive_int, "30", 30),
    (_common.positive_int, " 5", 5),
    (_common.int_tuple, "64,64", (64, 64)),
    (_common.int_tuple, "16", (16,)),
    (_common.int_tuple, "64, 32 ,8", (64, 32, 8)),
    (_common.int_tuple, "65536", (65536,)),
    (_common.int_tuple, "0064", (64,)),
]

REFUSED = [
    (_common.finite_float, "inf", "finite"),
    (_common.finite_float, "-inf", "finite"),
    (_common.finite_float, "nan", "finite"),
    (_common.finite_float, "Infinity", "finite"),
    (_common.finite_float, "1e400", "overflows to inf"),
    (_common.finite_float, "-1e400", "overflows to -inf"),
    (_common.finite_float, "abc", "'abc'"),
    (_common.finite_float, "", "''"),
    (_common.finite_float, "1_000", "'1_000'"),
    (_common.finite_float, "１.５", "'１.５'"),  # fullwidth digits: float() takes them
    (_common.finite_float, "0x10", "'0x10'"),
    (_common.positive_float, "inf", "finite"),
    (_common.positive_float, "1e400", "finite"),
    (_common.positive_float, "nan", "finite"),
    (_common.positive_float, "0", "> 0"),
    (_common.positive_float, "-0", "> 0"),
    (_common.positive_float, "-1", "> 0"),
    (_common.non_negative_float, "inf", "finite"),
    (_common.non_negative_float, "nan", "finite"),
    (_common.non_negative_float, "-1e-9", ">= 0"),
    (_common.seed, "-1", "0..4294967295"),
    (_common.seed, "4294967296", "0..4294967295"),
    (_common.seed, "18446744073709551616", "0..4294967295"),
    (_common.seed, "9" * 5000, "0..4294967295"),  # int() refuses > 4300 digits
    (_common.seed, "1.5", "'1.5'"),
    (_common.seed, "１２", "'１２'"),
    (_common.seed, "", "''"),
    (_common.positive_int, "0", "positive"),
    (_common.positive_int, "zero", "'zero'"),
    (_common.positive_int, "٦٤", "'٦٤'"),
    (_common.int_tuple, "", "at least one width"),
    (_common.int_tuple, "  ", "at least one width"),
    (_common.int_tuple, "64,,64", "empty width"),
    (_common.int_tuple, "64,", "empty width"),
    (_common.int_tuple, ",64", "empty width"),
    (_common.int_tuple, "64,x", "'64,x'"),
    (_common.int_tuple, "１２", "'１２'"),  # fullwidth: int() takes them
    (_common.int_tuple, "٦٤", "'٦٤'"),  # Arabic-Indic: int() takes them
    (_common.int_tuple, "64,-1", "'64,-1'"),
    (_common.int_tuple, "+64", "'+64'"),
    (_common.int_tuple, "1_000", "'1_000'"),
    (_common.int_tuple, "0", "positive"),
    (_common.int_tuple, "64,0", "positive"),
    (_common.int_tuple, "65537", "larger than 65536"),
    (_common.int_tuple, "1000000000", "larger than 65536"),
    (_common.int_tuple, "1" * 5000, "larger than 65536"),
]


@pytest.mark.parametrize("parse, text, expected", ACCEPTED,
                         ids=[f"{p.__name__}-{t!r}" for p, t, _ in ACCEPTED])
def test_option_type_accepts(parse, text, expected):
    value = parse(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("parse, text, words", REFUSED,
                         ids=[f"{p.__name__}-{t[:20]!r}" for p, t, _ in REFUSED])
def test_option_type_refuses(parse, text, words):
    with pytest.raises(argparse.ArgumentTypeError) as excinfo:
        parse(text)
    one_line_error(excinfo, words)


@pytest.mark.parametrize("parse, text, words", REFUSED[::4],
                         ids=[f"{p.__name__}-{t[:20]!r}" for p, t, _ in REFUSED[::4]])
def test_the_parser_reports_a_refused_value_as_one_line_naming_the_option(parse, text, words):
    parser = _common.Parser(prog="jaxfund train")
    parser.add_argument("--value", type=parse)
    with pytest.raises(UsageError) as excinfo:
        parser.parse_args([f"--value={text}"])
    one_line_error(excinfo, "train: argument --value:", words)


# ---------------------------------------------------------------------------------- RunDir


def lock_record(path: Path) -> dict:
    return json.loads((path / _run.LOCK).read_text())


def make_run_file(directory: Path, name: str) -> None:
    if name == _run.TENSORBOARD:
        (directory / name).mkdir()
        (directory / name / "events.out.tfevents.1.host").write_bytes(b"x")
    else:
        (directory / name).write_text("old run")


def test_rundir_creates_the_directory_and_holds_the_lock_while_entered(tmp_path):
    out = tmp_path / "a" / "b"
    with _run.RunDir(out, resume=False, overwrite=False) as run:
        record = lock_record(out)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert os.path.join(run, "metrics.json") == str(out / "metrics.json")  # path-like
        assert f"{run}" == str(out) and run.checkpoints == str(out / "checkpoints")
        assert run.checkpoint == str(out / "checkpoint")  # an older run's file
        assert run.log == str(out / "log.jsonl") and run.tensorboard == str(out / "tensorboard")
    assert out.is_dir() and not (out / _run.LOCK).exists()


def test_rundir_removes_the_lock_on_an_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with _run.RunDir(tmp_path, resume=False, overwrite=False):
            raise RuntimeError("boom")
    assert not (tmp_path / _run.LOCK).exists()


def test_rundir_leaves_a_lock_that_is_no_longer_its_own(tmp_path):
    with _run.RunDir(tmp_path, resume=False, overwrite=False):
        (tmp_path / _run.LOCK).write_text(json.dumps({"pid": 1, "token": "someone else"}))
    assert lock_record(tmp_path)["token"] == "someone else"


def test_resume_into_a_missing_directory_does_not_create_it(tmp_path):
    out = tmp_path / "missing"
    with pytest.raises(UsageError) as excinfo:
        with _run.RunDir(out, resume=True, overwrite=False):
            pass
    one_line_error(excinfo, "--resume", "checkpoint", "does not exist")
    assert not out.exists()


@pytest.mark.parametrize("setup, resume, overwrite, words", [
    ("empty", True, False, ["--resume", "no checkpoint in", "checkpoints"]),
    ("checkpoint", True, True, ["--resume and --overwrite"]),
    ("a file", False, False, ["--out", "cannot write to"]),
    ("under a file", False, False, ["--out", "cannot write to", "a_file"]),
])
def test_rundir_user_errors(tmp_path, setup, resume, overwrite, words):
    out = tmp_path / "run"
    if setup == "empty":
        out.mkdir()
    elif setup == "checkpoint":
        out.mkdir()
        (out / "checkpoint").write_bytes(b"x")
    elif setup == "a file":
        out.write_text("not a directory")
    else:
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "sub"
    with pytest.raises(UsageError) as excinfo:
        with _run.RunDir(out, resume=resume, overwrite=overwrite):
            pass
    one_line_error(excinfo, *words)
    assert not (out / _run.LOCK).exists()


@pytest.mark.parametrize("name", _run.RUN_FILES)
def test_a_directory_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, name):
    make_run_file(tmp_path, name)
    with pytest.raises(UsageError) as excinfo:
        with _run.RunDir(tmp_path, resume=False, overwrite=False):
            pass
    one_line_error(excinfo, f"--out {tmp_path} already holds a run", name,
                   "pass --resume to continue it or --overwrite to replace it")
    assert (tmp_path / name).exists() and not (tmp_path / _run.LOCK).exists()


USER_FILES = ["notes.txt", "data.csv", "checkpoint.bak", "mine/metrics.json", ".hidden"]


def test_overwrite_removes_the_run_files_and_nothing_else(tmp_path):
    for name in _run.RUN_FILES:
        make_run_file(tmp_path, name)
    for name in USER_FILES:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("mine")
    with _run.RunDir(tmp_path, resume=False, overwrite=True):
        for name in _run.RUN_FILES:
            assert not (tmp_path / name).exists(), name
    for name in USER_FILES:
        assert (tmp_path / name).read_text() == "mine", name


def test_resume_keeps_the_run_files(tmp_path):
    for name in _run.RUN_FILES:
        make_run_file(tmp_path, name)
    with _run.RunDir(tmp_path, resume=True, overwrite=False):
        pass
    for name in _run.RUN_FILES:
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize("name, removed", [
    (".checkpoint.k3j4l5.tmp", True),  # checkpoint.save's temporary file
    (".best.abc.tmp", True),  # checkpoint.export to OUT/best
    (".best.abc.tmp/", True),  # checkpoint.export's temporary checkpoint, a directory
    (".log.jsonl.x1y2.tmp", True),  # JsonlLog's rewrite
    (".notes.tmp", False),
    ("checkpoint.tmp", False),
    (".checkpoint.tmp.keep", False),
])
def test_temporary_files_of_a_killed_run_are_removed_on_entry(tmp_path, name, removed):
    if name.endswith("/"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta").write_bytes(b"partial")
    else:
        (tmp_path / name).write_bytes(b"partial")
    make_run_file(tmp_path, "checkpoint")
    with _run.RunDir(tmp_path, resume=True, overwrite=False):
        assert (tmp_path / name).exists() is not removed


# A process that holds a RunDir on the directory argv[1] for argv[2] seconds.
HOLDER = textwrap.dedent("""
    import sys, time
    from jaxfund.cli import _run
    with _run.RunDir(sys.argv[1], resume=False, overwrite=False):
        print("ready", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def start_holder(out: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_concurrent_run_fails_at_once_and_succeeds_after_the_first(tmp_path):
    proc = start_holder(tmp_path, 30)
    try:
        start = time.perf_counter()
        with pytest.raises(UsageError) as excinfo:
            with _run.RunDir(tmp_path, resume=False, overwrite=False):
                pass
        assert time.perf_counter() - start < 1.0
        one_line_error(excinfo, f"--out: another jaxfund run (pid {proc.pid}) is using",
                       str(tmp_path))
        assert lock_record(tmp_path)["pid"] == proc.pid  # the holder's lock is untouched
    finally:
        proc.terminate()
        proc.wait()
        proc.stdout.close()
    # SIGTERM kills without running __exit__: the lock stays, stale, and is taken over.
    assert lock_record(tmp_path)["pid"] == proc.pid
    with _run.RunDir(tmp_path, resume=False, overwrite=False):
        assert lock_record(tmp_path)["pid"] == os.getpid()


def test_the_lock_of_a_run_killed_with_sigkill_is_taken_over(tmp_path):
    proc = start_holder(tmp_path, 30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert lock_record(tmp_path)["pid"] == proc.pid
    with _run.RunDir(tmp_path, resume=False, overwrite=False):
        assert lock_record(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / _run.LOCK).exists()


def test_the_lock_of_a_zombie_is_taken_over(tmp_path):
    proc = start_holder(tmp_path, 30)
    proc.send_signal(signal.SIGKILL)
    time.sleep(0.2)  # killed but not yet waited for: a zombie, which os.kill(pid, 0) finds
    try:
        with _run.RunDir(tmp_path, resume=False, overwrite=False):
            assert lock_record(tmp_path)["pid"] == os.getpid()
    finally:
        proc.wait()
        proc.stdout.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# (how the lock file was left, taken over?)
LOCKS = [
    ("dead pid", True),
    ("pid reused by a newer process", True),
    ("written before a reboot", True),
    ("garbage, old", True),
    ("binary garbage, old", True),
    ("live, this process", False),
    ("live, another host", False),
    ("garbage, fresh", False),
]


@pytest.mark.parametrize("left, taken_over", LOCKS, ids=[left for left, _ in LOCKS])
def test_a_lock_is_taken_over_exactly_when_its_owner_is_dead(tmp_path, left, taken_over):
    record = _run._owner_record()
    lock = tmp_path / _run.LOCK
    if left == "dead pid":
        record["pid"] = dead_pid()
    elif left == "pid reused by a newer process":
        record["start"] -= 1  # this live pid, but a process started earlier had it
    elif left == "written before a reboot":
        record["boot_id"] = "another-boot"
    elif left == "live, another host":
        record["host"] = "elsewhere.example"
    if "garbage" in left:
        lock.write_bytes(b"\xff\xfe\x00" if left.startswith("binary") else b"")
        if left.endswith("old"):
            os.utime(lock, (time.time() - 3600,) * 2)
    else:
        lock.write_text(json.dumps(record))
    if taken_over:
        with _run.RunDir(tmp_path, resume=False, overwrite=False):
            assert lock_record(tmp_path)["pid"] == os.getpid()
        assert not lock.exists()
    else:
        with pytest.raises(UsageError) as excinfo:
            with _run.RunDir(tmp_path, resume=False, overwrite=False):
                pass
        message = one_line_error(excinfo, "--out: another jaxfund run", str(tmp_path))
        if left == "live, another host":
            assert "on host elsewhere.example" in message and str(lock) in message
        assert lock.exists()


def test_nested_rundirs_on_one_directory_are_refused(tmp_path):
    with _run.RunDir(tmp_path, resume=False, overwrite=False):
        with pytest.raises(UsageError) as excinfo:
            with _run.RunDir(tmp_path, resume=False, overwrite=False):
                pass
        one_line_error(excinfo, f"(pid {os.getpid()})")
        assert lock_record(tmp_path)["pid"] == os.getpid()


# ----------------------------------------------------------------------------- checkpoints


LIKE = {"step": jnp.zeros((), jnp.int32), "w": jnp.zeros((2, 3), jnp.float32)}
STATE = {"step": jnp.array(7, jnp.int32), "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3)}
CONFIG = {"dataset": "digits", "lr": 0.001, "hidden": [16]}
HISTORY = [{"epoch": 1, "train_loss": 0.5, "skipped": 0},
           {"epoch": 2, "train_loss": "nan", "test_loss": "inf", "x": "-inf", "skipped": 3}]
GOOD = {"epoch": 2, "seed": 0, "config": CONFIG, "history": HISTORY}


def save_steps(out: Path, *steps: tuple[int, dict, object]) -> None:
    """Saves each ``(step, state, extra)`` in OUT/checkpoints, as `jaxfund train` does (all
    committed when this returns)."""
    with checkpoint.Checkpoints(out / _run.CHECKPOINTS) as checkpoints:
        for step, state, extra in steps:
            checkpoints.save(step, state, extra)


def save_step(out: Path, state=STATE, extra=GOOD) -> None:
    save_steps(out, (2, state, extra))


def read(out: Path, config: dict = CONFIG, epochs: int = 5):
    """The checkpoint of OUT as `jaxfund train --resume --out OUT` reads it."""
    with _run.RunDir(out, resume=True, overwrite=False) as run:
        with _run.open_checkpoints(run, keep=3) as checkpoints:
            return _run.read_checkpoint(checkpoints, run.checkpoint, LIKE, config, epochs)


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` (names and bytes): what a refused run must not touch."""
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
            for p in sorted(directory.rglob("*"))}


def an_older_step_then(out: Path) -> None:
    save_steps(out, (1, {"step": jnp.array(1, jnp.int32), "w": jnp.ones((2, 3))},
                     {**GOOD, "epoch": 1, "history": HISTORY[:1]}), (2, STATE, GOOD))


# (id, how to make OUT) for a checkpoint of STATE and GOOD
READABLE = [
    ("a step of OUT/checkpoints", save_step),
    ("the latest of several steps", an_older_step_then),
    ("an older run's file OUT/checkpoint",
     lambda out: write_file(out / "checkpoint", STATE, GOOD)),
    ("OUT/checkpoints before an older run's file",
     lambda out: (save_step(out), (out / "checkpoint").write_bytes(b"not read"))),
    ("an older run's file beside a save that never committed",
     lambda out: (write_file(out / "checkpoint", STATE, GOOD),
                  (out / "checkpoints" / f"3{TMP}").mkdir(parents=True))),
]


@pytest.mark.parametrize("make", [row[1] for row in READABLE], ids=[row[0] for row in READABLE])
def test_read_checkpoint_returns_state_epoch_and_history(tmp_path, make):
    make(tmp_path)
    state, epoch, history = read(tmp_path)
    assert epoch == 2 and int(state["step"]) == 7
    np.testing.assert_array_equal(state["w"], STATE["w"])
    assert history[0] == HISTORY[0] and type(history[1]["skipped"]) is int
    assert math.isnan(history[1]["train_loss"]) and history[1]["test_loss"] == math.inf
    assert history[1]["x"] == -math.inf


def with_(**changes):
    return {**GOOD, **changes}


# (id, extra, words the one-line message must contain)
BAD_METADATA = [
    ("extra a list", [1, 2], ["metadata is a list"]),
    ("extra a string", "epoch 2", ["metadata is a str"]),
    ("no epoch", {"config": CONFIG, "history": HISTORY}, ["lacks 'epoch'"]),
    ("no keys", {}, ["lacks 'epoch', 'history', 'config'"]),
    ("no history", {"epoch": 2, "config": CONFIG}, ["lacks 'history'"]),
    ("no config", {"epoch": 2, "history": HISTORY}, ["lacks 'config'"]),
    ("epoch a word", with_(epoch="two"), ["epoch is 'two'"]),
    ("epoch negative", with_(epoch=-5), ["epoch is -5"]),
    ("epoch a bool", with_(epoch=True), ["epoch is True"]),
    ("epoch a float", with_(epoch=2.0), ["epoch is 2.0"]),
    ("epoch null", with_(epoch=None), ["epoch is None"]),
    ("config a list", with_(config=[1]), ["config is a list"]),
    ("history an object", with_(history={"1": {}}), ["history is a dict"]),
    ("history too short", with_(epoch=3), ["history has 2 entries for epoch 3"]),
    ("history too long", with_(epoch=1), ["history has 2 entries for epoch 1"]),
    ("entry a list", with_(history=[HISTORY[0], [2]]), ["history[1] is a list"]),
    ("entry epochs swapped", with_(history=[HISTORY[1], HISTORY[0]]),
     ["history[0] has epoch 2, expected 1"]),
    ("entry epoch a string", with_(history=[{**HISTORY[0], "epoch": "1"}, HISTORY[1]]),
     ["history[0] has epoch '1', expected 1"]),
    ("entry without epoch", with_(history=[{"train_loss": 1.0}, HISTORY[1]]),
     ["history[0] has epoch None"]),
    ("value a word", with_(history=[HISTORY[0], {**HISTORY[1], "train_loss": "abc"}]),
     ["history[1]['train_loss'] is 'abc', not a number"]),
    ("value NaN spelled otherwise", with_(history=[{**HISTORY[0], "test_loss": "NaN"},
                                                   HISTORY[1]]),
     ["history[0]['test_loss'] is 'NaN'"]),
    ("value null", with_(history=[{**HISTORY[0], "skipped": None}, HISTORY[1]]),
     ["history[0]['skipped'] is None"]),
    ("value a bool", with_(history=[{**HISTORY[0], "skipped": False}, HISTORY[1]]),
     ["history[0]['skipped'] is False"]),
    ("value a list", with_(history=[{**HISTORY[0], "train_loss": [0.5]}, HISTORY[1]]),
     ["history[0]['train_loss'] is [0.5]"]),
]


@pytest.mark.parametrize("extra, words", [row[1:] for row in BAD_METADATA],
                         ids=[row[0] for row in BAD_METADATA])
def test_a_fingerprint_valid_checkpoint_with_bad_metadata_is_one_line(tmp_path, extra, words):
    save_step(tmp_path, STATE, extra)
    with pytest.raises(UsageError) as excinfo:
        read(tmp_path)
    one_line_error(excinfo, f"--resume: checkpoint {tmp_path / 'checkpoints'} is malformed",
                   *words)


def payload_file(path: Path, *, header=None, extra=None, leaves=None, content=None) -> None:
    """A file of the previous format with a valid checksum of a hand-made payload (see
    jaxfund.checkpoint)."""
    if content is None:
        header = header if header is not None else {
            "format": "jaxfund-checkpoint", "format_version": 1, "paths": ["['step']", "['w']"],
            "shapes": [[], [2, 3]], "dtypes": ["int32", "float32"]}
        leaves = leaves if leaves is not None else {
            "0": np.array(7, np.int32), "1": np.zeros((2, 3), np.float32)}
        content = {"header": header if isinstance(header, str) else json.dumps(header),
                   "extra": json.dumps(GOOD if extra is None else extra), "leaves": leaves}
    payload = (flax.serialization.msgpack_serialize(content) if isinstance(content, dict)
               else content)
    path.write_bytes(checkpoint._MAGIC + hashlib.sha256(payload).digest() + payload)


def write_valid(path: Path) -> None:
    write_file(path, STATE, GOOD)


def truncate(path: Path) -> None:
    write_valid(path)
    path.write_bytes(path.read_bytes()[:-10])


def flip_a_byte(path: Path) -> None:
    write_valid(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def older(make):
    """``make`` applied to OUT/checkpoint, the file of an older run (OUT/checkpoints absent)."""
    return lambda out: make(out / "checkpoint")


def spoiled(spoil):
    """OUT/checkpoints with steps 1 and 2 (the latest: STATE, GOOD), then ``spoil(step 2's
    directory)``: the latest step is refused, never replaced by the older one."""
    def make(out):
        an_older_step_then(out)
        spoil(out / "checkpoints" / "2")
    return make


def data_files(step_dir: Path) -> list[Path]:
    files = [p for p in step_dir.glob("state/**/d/*") if p.is_file()]
    assert files, f"orbax wrote no data files in {step_dir}"
    return files


def cut_data_files(step_dir: Path) -> None:
    for file in data_files(step_dir):
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def change_meta(change):
    def spoil(step_dir: Path) -> None:
        file = step_dir / "meta" / "metadata"
        file.write_text(json.dumps(change(json.loads(file.read_text()))))
    return spoil


def bump_fingerprint(meta: dict) -> dict:
    fingerprints = list(meta["fingerprints"])
    fingerprints[meta["paths"].index("['w']")] ^= 1
    return {**meta, "fingerprints": fingerprints}


def uncommitted(out: Path) -> None:
    """OUT/checkpoints as a kill during the first save leaves it: no committed step."""
    save_step(out)
    (out / "checkpoints" / "2").rename(out / "checkpoints" / f"2{TMP}")


# (id, how to make OUT, words the one-line message must contain); {out} is OUT
BAD_CHECKPOINTS = [
    ("missing", lambda out: None,
     ["no checkpoint in '{out}/checkpoints'", "train without --resume first"]),
    ("an empty directory", lambda out: (out / "checkpoints").mkdir(),
     ["no checkpoint in '{out}/checkpoints'", "train without --resume first"]),
    ("only a save that never committed", uncommitted,
     ["no checkpoint in '{out}/checkpoints'", "train without --resume first"]),
    ("a file, not a directory", lambda out: (out / "checkpoints").write_text("x"),
     ["{out}/checkpoints", "is a file, not a directory"]),
    ("a step directory empty", lambda out: (out / "checkpoints" / "2").mkdir(parents=True),
     ["checkpoint {out}/checkpoints/2 is corrupt: its metadata cannot be read"]),
    ("the latest step's metadata garbage",
     spoiled(lambda d: (d / "meta" / "metadata").write_text("{garbage")),
     ["checkpoint {out}/checkpoints/2 is corrupt: its metadata cannot be read"]),
    ("the latest step's metadata deleted", spoiled(lambda d: (d / "meta" / "metadata").unlink()),
     ["checkpoint {out}/checkpoints/2 is corrupt: its metadata cannot be read"]),
    ("the latest step's data truncated", spoiled(cut_data_files),
     ["checkpoint {out}/checkpoints/2 is corrupt: its arrays cannot be read"]),
    ("the latest step's data deleted", spoiled(lambda d: [f.unlink() for f in data_files(d)]),
     ["checkpoint {out}/checkpoints/2 is corrupt: its arrays cannot be read"]),
    ("the latest step's fingerprint changed", spoiled(change_meta(bump_fingerprint)),
     ["checkpoint {out}/checkpoints/2 is corrupt: leaf ['w'] has fingerprint"]),
    ("the latest step of a future version",
     spoiled(change_meta(lambda meta: {**meta, "format_version": 3})),
     ["checkpoint {out}/checkpoints/2 has format version 3"]),
    ("the latest step of another format", spoiled(change_meta(lambda meta: {"a": 1})),
     ["checkpoint {out}/checkpoints/2 is malformed"]),
    ("another structure", lambda out: save_step(out, {"w": STATE["w"]}),
     ["does not match the structure"]),
    ("another shape", lambda out: save_step(out, {"step": STATE["step"], "w": jnp.zeros((3, 2))}),
     ["shape (3, 2)"]),
    ("another dtype", lambda out: save_step(
        out, {"step": STATE["step"], "w": jnp.zeros((2, 3), jnp.int32)}), ["dtype int32"]),
    # an older run's single file OUT/checkpoint (read where OUT/checkpoints holds no step)
    ("older: a directory", older(lambda p: p.mkdir()), ["no checkpoint in '{out}/checkpoint'"]),
    ("older: empty", older(lambda p: p.write_bytes(b"")), ["not a jaxfund checkpoint"]),
    ("older: not a checkpoint", older(lambda p: p.write_text("hello")),
     ["not a jaxfund checkpoint"]),
    ("older: truncated", older(truncate), ["{out}/checkpoint is corrupt or truncated"]),
    ("older: a byte flipped", older(flip_a_byte), ["{out}/checkpoint is corrupt or truncated"]),
    ("older: truncated, beside a save that never committed",
     lambda out: (uncommitted(out), truncate(out / "checkpoint")),
     ["{out}/checkpoint is corrupt or truncated"]),
    ("older: another structure", older(lambda p: write_file(p, {"w": STATE["w"]}, GOOD)),
     ["does not match the structure"]),
    ("older: another shape", older(lambda p: write_file(
        p, {"step": STATE["step"], "w": jnp.zeros((3, 2))}, GOOD)), ["shape (3, 2)"]),
    ("older: another dtype", older(lambda p: write_file(
        p, {"step": STATE["step"], "w": jnp.zeros((2, 3), jnp.int32)}, GOOD)), ["dtype int32"]),
    ("older: a leaf a string",
     older(lambda p: payload_file(p, leaves={"0": "abc", "1": np.zeros((2, 3))})),
     ["leaf 0 (['step']) is a str, not an array"]),
    ("older: a leaf an int",
     older(lambda p: payload_file(p, leaves={"0": 7, "1": np.zeros((2, 3))})),
     ["leaf 0 (['step']) is a int, not an array"]),
    ("older: a leaf missing",
     older(lambda p: payload_file(p, leaves={"0": np.array(7, np.int32)})),
     ["leaf 1 (['w']) is missing"]),
    ("older: a leaf of an unknown ext type", older(lambda p: payload_file(
        p, leaves={"0": msgpack.ExtType(42, b"?"), "1": np.zeros((2, 3))})),
     ["leaf 0 (['step']) is of an unknown msgpack extension type 42"]),
    ("older: leaves a list",
     older(lambda p: payload_file(p, leaves=[np.array(7), np.zeros((2, 3))])),
     ["its leaves are a list"]),
    ("older: header a list", older(lambda p: payload_file(p, header=[1])),
     ["header is not a JSON object"]),
    ("older: header without paths", older(lambda p: payload_file(p, header={"format_version": 1})),
     ["header has no list 'paths'"]),
    ("older: header not JSON", older(lambda p: payload_file(p, header="{")),
     ["cannot be decoded"]),
    ("older: another format version",
     older(lambda p: payload_file(p, header={"format_version": 99})),
     ["format version 99"]),
    ("older: payload of an unknown ext type", older(lambda p: payload_file(
        p, content=msgpack.packb(msgpack.ExtType(42, b"?")))), ["cannot be decoded"]),
    ("older: payload not msgpack", older(lambda p: payload_file(p, content=b"\xc1\xc1\xc1")),
     ["cannot be decoded"]),
]


@pytest.mark.parametrize("make, words", [row[1:] for row in BAD_CHECKPOINTS],
                         ids=[row[0] for row in BAD_CHECKPOINTS])
def test_a_bad_checkpoint_is_one_line_naming_resume_and_changes_nothing(tmp_path, make, words):
    make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError) as excinfo:
        read(tmp_path)
    one_line_error(excinfo, "--resume: ", *(w.format(out=tmp_path) for w in words))
    assert snapshot(tmp_path) == before


def denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied", "the file")


def deny_listing(directory: Path, monkeypatch) -> None:
    listdir = os.listdir

    def refuse(path="."):
        if os.fspath(path) == str(directory):
            denied()
        return listdir(path)

    monkeypatch.setattr(os, "listdir", refuse)


# (id, how to make OUT, how to refuse reading it, words); chmod 000 does not stop root, so the
# refusal is simulated where the checkpoint is read: listing OUT/checkpoints, orbax reading a
# step, opening an older run's file.
UNREADABLE = [
    ("OUT/checkpoints", save_step, lambda out, mp: deny_listing(out / "checkpoints", mp),
     ["--resume: cannot read '{out}/checkpoints': Permission denied"]),
    ("a step", save_step,
     lambda out, mp: mp.setattr(checkpoint.ocp.Checkpointer, "restore", denied),
     ["--resume: checkpoint {out}/checkpoints/2 is corrupt", "Permission denied"]),
    ("an older run's file", lambda out: write_valid(out / "checkpoint"),
     lambda out, mp: mp.setattr(checkpoint, "open", denied, raising=False),
     ["--resume: checkpoint {out}/checkpoint cannot be read", "Permission denied"]),
]


@pytest.mark.parametrize("make, refuse, words", [row[1:] for row in UNREADABLE],
                         ids=[row[0] for row in UNREADABLE])
def test_an_unreadable_checkpoint_is_one_line(tmp_path, monkeypatch, make, refuse, words):
    make(tmp_path)
    refuse(tmp_path, monkeypatch)
    with pytest.raises(UsageError) as excinfo:
        read(tmp_path)
    one_line_error(excinfo, *(w.format(out=tmp_path) for w in words))


@pytest.mark.parametrize("config, epochs, words", [
    ({**CONFIG, "lr": 0.01}, 5, ["--resume: the checkpoint was trained with",
                                 "lr=0.001 (now 0.01)"]),
    ({**CONFIG, "hidden": [8], "dataset": "iris"}, 5, ["dataset='digits' (now 'iris')",
                                                       "hidden=[16] (now [8])"]),
    ({**CONFIG, "dropout": 0.1}, 5, ["dropout=None (now 0.1)"]),
    (CONFIG, 1, ["--epochs 1: the checkpoint is already at epoch 2; pass --epochs >= 2"]),
])
def test_another_config_or_too_few_epochs_keep_their_messages(tmp_path, config, epochs, words):
    save_step(tmp_path)
    with pytest.raises(UsageError) as excinfo:
        read(tmp_path, config, epochs)
    one_line_error(excinfo, *words)


# -------------------------------------------------------------------------------- JsonlLog


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def entry(epoch: int, loss: float = 0.5) -> dict:
    return {"epoch": epoch, "train_loss": loss, "skipped": 0}


def test_jsonl_log_writes_one_flushed_line_per_epoch(tmp_path):
    path = tmp_path / "log.jsonl"
    with _run.JsonlLog(path, 0) as log:
        assert not path.exists()  # created at the first write
        log.write({"epoch": 1, "train_loss": np.float32(0.25), "test_loss": float("nan"),
                   "grad": float("inf"), "skipped": np.int64(2)})
        # flushed: another reader (tail -f) sees the line while the log is open
        assert read_lines(path) == [{"epoch": 1, "train_loss": 0.25, "test_loss": "nan",
                                     "grad": "inf", "skipped": 2}]
        log.write(entry(2))
        assert [e["epoch"] for e in read_lines(path)] == [1, 2]
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2


def test_jsonl_log_from_scratch_replaces_an_old_file(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(entry(e)) + "\n" for e in (1, 2, 3)))
    with _run.JsonlLog(path, 0) as log:
        log.write(entry(1, 9.0))
    assert read_lines(path) == [entry(1, 9.0)]


KILLED_LOG = "".join(json.dumps(entry(e)) + "\n" for e in (1, 2, 3, 4, 5)) + '{"epoch": 6, "tr'


@pytest.mark.parametrize("start_epoch, history, kept", [
    (3, None, [1, 2, 3]),  # epochs 4, 5 and the cut line 6 were written after the checkpoint
    (5, None, [1, 2, 3, 4, 5]),
    (7, None, [1, 2, 3, 4, 5]),
    (3, [entry(e, 7.0) for e in (1, 2, 3)], [1, 2, 3]),
    (7, [entry(e, 7.0) for e in range(1, 8)], [1, 2, 3, 4, 5, 6, 7]),  # 6, 7 from history
])
def test_jsonl_log_on_resume_keeps_epochs_up_to_the_checkpoint(tmp_path, start_epoch, history,
                                                               kept):
    path = tmp_path / "log.jsonl"
    path.write_text(KILLED_LOG)
    log = _run.JsonlLog(path, start_epoch, history)
    lines = read_lines(path)  # rewritten before the first write
    assert [e["epoch"] for e in lines] == kept
    assert all(e["train_loss"] == (0.5 if e["epoch"] <= 5 else 7.0) for e in lines)
    log.write(entry(start_epoch + 1, 1.0))
    log.close()
    assert [e["epoch"] for e in read_lines(path)] == kept + [start_epoch + 1]
    assert sorted(os.listdir(tmp_path)) == ["log.jsonl"]  # no temporary file left


def test_jsonl_log_on_resume_without_a_file_writes_the_history(tmp_path):
    path = tmp_path / "log.jsonl"
    with _run.JsonlLog(path, 2, [entry(1), {**entry(2), "test_loss": float("nan")}]) as log:
        log.write(entry(3))
    assert read_lines(path) == [entry(1), {**entry(2), "test_loss": "nan"}, entry(3)]


# -------------------------------------------------------------------------- TensorBoardLog


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: Path) -> list[bytes]:
    """The records of a TFRecord file: uint64 length, masked CRC-32C of the length, the data,
    masked CRC-32C of the data (all little-endian)."""
    content, records, at = path.read_bytes(), [], 0
    while at < len(content):
        (length,) = struct.unpack_from("<Q", content, at)
        (length_crc,) = struct.unpack_from("<I", content, at + 8)
        assert length_crc == masked_crc(content[at: at + 8])
        data = content[at + 12: at + 12 + length]
        (data_crc,) = struct.unpack_from("<I", content, at + 12 + length)
        assert data_crc == masked_crc(data)
        records.append(data)
        at += 12 + length + 4
    return records


def read_events(logdir: Path) -> list:
    from tensorboardX.proto.event_pb2 import Event

    return [Event.FromString(record)
            for path in sorted(logdir.glob("events.out.tfevents.*"))
            for record in read_records(path)]


def scalars(logdir: Path) -> list[tuple[str, int, float]]:
    return [(value.tag, event.step, value.simple_value)
            for event in read_events(logdir) for value in event.summary.value]


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_tensorboard_log_writes_every_numeric_value_as_a_scalar(tmp_path):
    logdir = tmp_path / "tensorboard"
    with _run.TensorBoardLog(logdir, 0) as board:
        board.write({"epoch": 1, "train_loss": 0.5, "test_accuracy": np.float32(0.75),
                     "skipped": 2, "note": "text", "flag": True})
        assert scalars(logdir) == [("train_loss", 1, 0.5), ("test_accuracy", 1, 0.75),
                                   ("skipped", 1, 2.0)]  # flushed while open
        board.write({"epoch": 2, "train_loss": 0.25, "test_accuracy": "nan",
                     "skipped": float("inf")})
    rows = scalars(logdir)
    assert rows[:4] == [("train_loss", 1, 0.5), ("test_accuracy", 1, 0.75),
                        ("skipped", 1, 2.0), ("train_loss", 2, 0.25)]
    assert rows[4][:2] == ("test_accuracy", 2) and math.isnan(rows[4][2])
    assert rows[5] == ("skipped", 2, math.inf) and len(rows) == 6
    assert not any(event.HasField("session_log") for event in read_events(logdir))


def test_tensorboard_log_on_resume_purges_the_steps_after_the_checkpoint(tmp_path):
    logdir = tmp_path / "tensorboard"
    with _run.TensorBoardLog(logdir, 3) as board:
        board.write({"epoch": 4, "train_loss": 0.1})
    events = read_events(logdir)
    starts = [e.step for e in events if e.HasField("session_log")]
    assert starts == [4] and events[[e.HasField("session_log") for e in events].index(True)
                                    ].session_log.status == 1  # SessionLog.START
    assert scalars(logdir) == [("train_loss", 4, pytest.approx(0.1))]


def test_a_run_resumed_within_the_same_second_gets_an_event_file_of_its_own(tmp_path):
    logdir = tmp_path / "tensorboard"
    with _run.TensorBoardLog(logdir, 0) as board:  # killed after epoch 2, checkpoint at 1
        board.write({"epoch": 1, "train_loss": 1.0})
        board.write({"epoch": 2, "train_loss": 2.0})
    with _run.TensorBoardLog(logdir, 1) as board:
        board.write({"epoch": 2, "train_loss": 3.0})
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2
    assert sorted(scalars(logdir)) == [("train_loss", 1, 1.0), ("train_loss", 2, 2.0),
                                       ("train_loss", 2, 3.0)]


def test_tensorboard_log_under_a_file_is_one_line_naming_out(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UsageError) as excinfo:
        _run.TensorBoardLog(tmp_path / "a_file" / "tensorboard", 0)
    one_line_error(excinfo, "--out: cannot write to")
