#!/usr/bin/env bash
# The GPU check: the `gpu` tests and `mke-exp bench` of every preset's network at its real shapes on synthetic caches
# (fp32, bf16, torch.compile; the loader alone and feeding the step; waiting fraction; peak memory), at most 8 minutes
# on one H100/H200, into ONE JSON. What each stage does: benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh [--dry-run] [OUT.json]     # default: $OUT/gpu_check.json, else ./gpu_check.json
#
# --dry-run: every stage on the CPU at tiny shapes, 1 step, the same JSON (tests/test_gpu_check.py runs it).
# Exit status 0 when every stage passed, 1 otherwise; the JSON is written either way.
set -u
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
