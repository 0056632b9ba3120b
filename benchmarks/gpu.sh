#!/usr/bin/env bash
# One accelerator session in one command: the environment, `python -m benchmarks` (written to
# OUT/gpu.{json,md}), then the whole test suite (the mesh and multi-process tests included) with
# the time that is left. Usage, from the repository root on the GPU machine:
#
#     bash benchmarks/gpu.sh OUT [SECONDS]
#
# SECONDS (default 560) is the budget for the whole script; the benchmarks get at most
# BENCH_SECONDS (default 260) of it, the tests the rest less a margin, and both are stopped with
# SIGINT so that their reports (Markdown/JSON, junit XML, the pytest summary) are still written.
# TESTS (pytest arguments) runs a part of the suite instead of all of it; SUITES (default
# optimizers,activations,losses,train) the benchmark suites to run.
# Python packages the machine lacks can be put as wheels in .whl/ (see benchmarks/README.md).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT [SECONDS]}
budget=${2:-560}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # the test workers share one GPU

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The console script and the package, as `pip install -e .` makes them (no index here).
python3 -m pip install --no-index --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 \
    || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 - <<'EOF'
import importlib.metadata as md
import jax
print("jax devices:", jax.devices(), "backend:", jax.default_backend())
for name in ("jax", "jaxlib", "optax", "flax", "chex", "torch", "numpy", "pytest-xdist"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "absent")
import torch
print("torch cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
} 2>&1 | tee "$out/environment.txt"

bench_seconds=${BENCH_SECONDS:-260}
timeout -s INT -k 15 "$bench_seconds" python3 -m benchmarks --out "$out" --repeats 3 \
    --only "${SUITES:-optimizers,activations,losses,train}" \
    --no-torch-compile 2>&1 | tee "$out/benchmarks.log"
echo "benchmarks: exit ${PIPESTATUS[0]} after ${SECONDS} s" | tee -a "$out/benchmarks.log"

left=$((budget - SECONDS - 20))
workers=${WORKERS:-12}
echo "tests: ${left} s, ${workers} workers" | tee "$out/tests.log"
# TESTS: pytest arguments selecting a part of the suite (default: all of it).
# shellcheck disable=SC2086
timeout -s INT -k 20 "$left" python3 -m pytest -q -n "$workers" --durations=25 \
    --junitxml="$out/junit.xml" ${TESTS:-} 2>&1 | tee -a "$out/tests.log"
echo "tests: exit ${PIPESTATUS[0]} after ${SECONDS} s" | tee -a "$out/tests.log"
