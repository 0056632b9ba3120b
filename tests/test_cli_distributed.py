"""`jaxfund train` as several processes on one machine (gloo collectives between CPU processes):
one run reported by process 0, a dead process stopping the others with one line, a user error of
process 0 reaching the others, a cluster detected from SLURM's environment."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxfund import distributed
from test_distributed import free_port, launch

TRAIN = [sys.executable, "-m", "jaxfund", "train", "--dataset", "digits", "--hidden", "32"]


def cluster_argv(out, *options: str):
    return lambda port, i: [*TRAIN, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                            "--process-id", str(i), "--out", str(out), *options]


def two_device_env() -> dict:
    return {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.slow
def test_two_processes_train_one_run_that_process_0_reports(tmp_path):
    lead, other = launch(cluster_argv(tmp_path / "run", "--epochs", "3", "--shard-state"), 2,
                         env=two_device_env())
    assert lead.returncode == other.returncode == 0, (lead.stderr[-2000:], other.stderr[-2000:])
    assert "cpu:cpu × 4 in 2 processes" in lead.stdout
    assert other.stdout == "" and "jaxfund" not in other.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["num_processes"], metrics["num_devices"], metrics["shard_state"]) == (2, 4, True)
    assert [entry["epoch"] for entry in metrics["history"]] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoints", "curves.png", "log.jsonl",
                                                    "metrics.json"]
    # the first and the last epoch's checkpoints are always saved, the second's unless the
    # first was still being written
    saved = set(os.listdir(tmp_path / "run" / "checkpoints"))
    assert {"1", "3"} <= saved <= {"1", "2", "3"}, saved


PEER_TIMEOUT = 5


def _digits_state():
    from jaxfund import models, optimizers, train

    tx = optimizers.adam(lr=1e-3)
    return train.TrainState.create(models.MLP(64, (32,), 10).init(jax.random.key(0)), tx)


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1])
def test_when_a_process_dies_the_other_stops_with_one_line_and_the_checkpoint_is_intact(
        tmp_path, victim):
    import time

    from jaxfund import checkpoint

    out = tmp_path / "run"
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **two_device_env()}
    # 5 s: a loaded 2-core machine may starve a live process for a moment, not for 5 s
    argv = cluster_argv(out, "--epochs", "1000", "--peer-timeout", str(PEER_TIMEOUT))
    procs = [subprocess.Popen(argv(port, i), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    log = out / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    procs[victim].kill()
    procs[victim].wait()
    procs[victim].stderr.close()
    killed_at = time.monotonic()
    survivor = procs[1 - victim]
    _, err = survivor.communicate(timeout=60)
    seconds = time.monotonic() - killed_at
    lines = [line for line in err.splitlines() if line.startswith("jaxfund: error:")]
    assert survivor.returncode == distributed.PEER_LOST, err[-3000:]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err[-3000:]
    assert "Traceback" not in err and "Check failure" not in err
    assert seconds < PEER_TIMEOUT + 10, seconds  # the timeout, a heartbeat and the exit
    print(f"victim {victim}: the survivor stopped after {seconds:.1f} s: {lines[0]}")
    checkpoints = checkpoint.Checkpoints(out / "checkpoints")
    state, extra = checkpoints.restore(_digits_state())
    assert extra["epoch"] == checkpoints.latest_step() >= 1
    assert int(state.step) == 22 * extra["epoch"]  # 1437 training examples // 64 per step


# The runtime's fatal log on descriptor 2 as it aborts a process whose coordinator died
# (jaxlib 0.10.2, abridged), cut short as an abort in progress leaves it.
RUNTIME_ABORT = (b"F0000 00:00:1.0 1 client.cc:1] Terminating process because the JAX distributed "
                 b"service detected fatal errors. This most likely indicates that another task "
                 b"died; absl::Status: UNAVAILABLE: Failed to send RPC to coordination service. "
                 b"Either the leader task died\n*** Check failure stack trace: ***\n    @ 0x7f")


def test_the_supervisor_prints_one_line_whatever_the_order_of_the_two_stops(capfd):
    """A child stopping itself (another process died) passes its line to the parent; the
    runtime, which noticed the same death, may abort it a moment later (status -6, its fatal
    log after the line, even in the middle of one of its lines) or not at all (status 4): the
    parent prints the child's line alone either way. Without the child's line, one line of the
    runtime's reason."""
    from jaxfund.cli import _supervisor

    line = "jaxfund: error: process 0 of 2 stopped responding; stopping process 1 too"
    _supervisor._tell_parent(line)
    said = capfd.readouterr().err.encode()
    assert said.count(b"\n") == 1
    for status, log in [(distributed.PEER_LOST, said), (-6, said + RUNTIME_ABORT),
                        (-6, RUNTIME_ABORT[:40] + said + RUNTIME_ABORT[40:])]:
        assert _supervisor._outcome(status, log) == (line + "\n", distributed.PEER_LOST)
    text, status = _supervisor._outcome(-6, RUNTIME_ABORT)
    assert status == distributed.PEER_LOST and text.count("\n") == 1
    assert "(UNAVAILABLE: Failed to send RPC to coordination service)" in text
    assert _supervisor._outcome(0, b"gloo: connected\n") == ("", 0)
    assert _supervisor._outcome(1, b"a log\n") == ("a log\n", 1)
    assert _supervisor._outcome(-9, b"") == ("", 137)


@pytest.mark.slow
def test_a_user_error_of_process_0_stops_the_others_with_its_message(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")  # a run is there: refused
    lead, other = launch(cluster_argv(tmp_path / "run", "--epochs", "1"), 2,
                         env=two_device_env())
    assert lead.returncode == 2 and other.returncode == distributed.PEER_LOST
    refusal = [line for line in lead.stderr.splitlines() if line.startswith("jaxfund: error:")]
    assert len(refusal) == 1 and "already holds a run" in refusal[0]
    told = [line for line in other.stderr.splitlines() if line.startswith("jaxfund: error:")]
    assert len(told) == 1 and "process 0 of 2 stopped" in told[0] \
        and "already holds a run" in told[0], other.stderr[-2000:]


def slurm_env(port: int, i: int) -> dict:
    """What ``srun --ntasks=2`` on this one node would set for task ``i``: JAX derives the
    coordinator's port from the job id (61440 + id mod 4096)."""
    return {"SLURM_JOB_ID": str(port - 61440), "SLURM_STEP_NODELIST": "127.0.0.1",
            "SLURM_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2", "SLURM_PROCID": str(i),
            "SLURM_LOCALID": str(i), "SLURM_STEP_NUM_NODES": "1"}


def free_slurm_port() -> int:
    for port in np.random.default_rng().permutation(np.arange(61440, 65536)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no free port in 61440..65535")


@pytest.mark.slow
def test_in_a_detected_cluster_the_command_needs_no_flags(tmp_path):
    """Under SLURM's environment (simulated: 2 tasks on this node), `jaxfund train` joins the
    cluster by itself."""
    port = free_slurm_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **two_device_env()}
    procs = [subprocess.Popen([*TRAIN, "--epochs", "1", "--out", str(tmp_path / "run")],
                              env={**env, **slurm_env(port, i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][1][-2000:]
    assert "cpu:cpu × 4 in 2 processes" in outputs[0][0] and outputs[1][0] == ""
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["num_processes"], metrics["num_devices"]) == (2, 4)


@pytest.mark.parametrize("option", ["--shard-state", "--data-parallel"])
def test_a_batch_the_devices_cannot_split_is_one_line_naming_the_option(tmp_path, option):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **two_device_env()}
    done = subprocess.run([*TRAIN, "--epochs", "1", "--batch-size", "63", option, "--out",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"jaxfund: error: --batch-size 63 is not divisible by the 2 "
                                   f"devices it is split over ({option})")
    assert not (tmp_path / "run").exists()
