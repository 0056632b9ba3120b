"""Shared test setup.

With ``JAXFUND_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test fails the run: parity tests
against torch must never be skipped silently in CI. With ``JAXFUND_COUNT_REFERENCES=1`` the run
ends with the number of torch and optax reference computations the tests made
(``tests/_references.py``).
"""

import gc
import os

# Tracing and lowering thousands of JAX programs makes millions of short-lived objects: with
# Python's default threshold (a young-generation collection every 700 allocations) the collector
# took ~10% of a parity file's time; every 10,000 it takes ~3%, with the same peak memory.
gc.set_threshold(10_000, 10, 10)

# The suite checks float32 arithmetic: its tolerances count float32 roundings. JAX's default
# float32 matmul precision is lower on accelerators (TF32 inputs on NVIDIA GPUs: 10-bit
# mantissas; bf16 passes on TPUs), while torch's CUDA matmuls default to full float32. Pin full
# float32 here, and in the environment for the subprocesses the tests start; on a CPU it changes
# nothing.
os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def reuse_mlir_contexts(programs_per_context=200):
    """Lower up to ``programs_per_context`` programs in one MLIR context per thread.

    JAX lowers every program in a fresh MLIR context, loading all its dialects into it first,
    and creating and dropping a context costs more than lowering most of the suite's small
    programs. Measured on 2 cores, the same hour, the whole suite: 5:04 and 575 CPU-s with a
    fresh context per program, 4:03 and 455 CPU-s reusing them (peak memory 4.2 → 1.7 GB); the
    eager loss-parity tests alone 38.1 → 18.8 s. One context holds any number of modules and
    the lowered programs are the same (``test_package`` checks it). A context keeps what it
    uniqued (types, constants) until it is dropped, hence the bound. Test processes only: the
    subprocesses the tests start (the command, the scripts) lower as a user's do.
    ``JAXFUND_FRESH_MLIR_CONTEXTS=1`` turns it off, for debugging; a JAX without
    ``mlir.make_ir_context`` is left as it is."""
    import threading

    from jax._src.interpreters import mlir

    fresh = getattr(mlir, "make_ir_context", None)
    if fresh is None or os.environ.get("JAXFUND_FRESH_MLIR_CONTEXTS") == "1":
        return
    local = threading.local()

    def make_ir_context():
        if getattr(local, "uses", programs_per_context) >= programs_per_context:
            local.context, local.uses = fresh(), 0
        local.uses += 1
        return local.context

    make_ir_context.fresh = fresh
    mlir.make_ir_context = make_ir_context


reuse_mlir_contexts()

# JAX's persistent compilation cache, in pytest's cache directory: the pytest-xdist workers, the
# subprocesses the tests start and later runs reuse each other's compiled programs (the key is
# the program, the backend, the flags and the versions, so a stale entry is never used). Every
# program is cached, however quick its compile: most of the suite's time is compilation. No size
# limit: JAX's eviction reads every entry's size and access time at each write, quadratic in the
# suite's thousands of programs; `python -m pytest --cache-clear` empties the directory.


def share_compiled_programs(config):
    if getattr(config, "cache", None) is None:  # -p no:cacheprovider
        return
    settings = {
        "jax_compilation_cache_dir": str(config.cache.mkdir("jax-compilation-cache")),
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        "jax_compilation_cache_max_size": -1,
    }
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """pytest-xdist workers, one per core, unless ``-n`` says otherwise (``-n 0`` or
    ``-p no:xdist``: one process, for debugging). A test file runs whole on one worker, so its
    module fixtures and cached references are computed once."""
    in_a_worker = "PYTEST_XDIST_WORKER" in os.environ  # a worker, or a pytest a worker started
    if (not config.pluginmanager.hasplugin("xdist") or in_a_worker
            or config.option.numprocesses is not None):
        return
    config.option.numprocesses = "auto"
    if config.option.dist == "no":
        config.option.dist = "loadfile"
        config.option.loadscopereorder = False  # files in LONGEST_FIRST's order, not by count


# The files that take longest (over ~10 s of a 2-core run each), longest first. pytest-xdist's
# --dist loadfile hands whole files to the workers in collection order (its reordering by test
# count turned off above), so these go first and the run ends with short files on every worker,
# not with one long file on one worker while the others wait. Files not listed follow them.
LONGEST_FIRST = ["test_losses.py", "test_cli.py", "test_fast_start.py", "test_cli_distributed.py",
                 "test_activations.py", "test_scripts.py", "test_checkpoint.py",
                 "test_distributed.py", "test_optimizers.py", "test_train.py",
                 "test_optax_idioms.py", "test_benchmarks.py", "test_schedules.py",
                 "test_models.py", "test_cli_figures.py", "test_train_options.py",
                 "test_lbfgs.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's order kept


def pytest_configure(config):
    share_compiled_programs(config)
    counting = os.environ.get("JAXFUND_COUNT_REFERENCES")
    if counting:
        import _references

        if config.getoption("dist", "no") not in ("no", "loadfile"):
            raise pytest.UsageError(f"{_references.ENV} counts with -n 0 or --dist loadfile: "
                                    "other distributions repeat module fixtures and caches")
        config.pluginmanager.register(
            _references.Plugin(None if counting == "1" else counting), "jaxfund_references")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("JAXFUND_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"JAXFUND_NO_SKIPS=1: {len(skipped)} test(s) were skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_finish(session):
    """The modules, test items and reference tables made so far live as long as the run: moved
    out of the collector's reach, they are not traversed again at every full collection (each
    took ~0.4 s in a parity file; measured 3-5% of test_losses.py's CPU time)."""
    gc.freeze()
