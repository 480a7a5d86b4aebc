#!/usr/bin/env bash
# The CIFAR-10 reproduction pack (DSH on cifar10-dsh, GreedyHash on CIFAR-10 (I)) on one CUDA GPU, with a wall-time
# limit; prints the table beside the papers' numbers and writes OUT/table.md. Run from the repository root.
#   scripts/reproduce_cifar10.sh                       # the full pack (needs CUDA), runs/reproduce-cifar10
#   scripts/reproduce_cifar10.sh --smoke               # the whole pack at toy scale on the CPU (about a minute)
#   scripts/reproduce_cifar10.sh --out results/reproduce-cifar10 --time-limit 540
# Every other option: python -m bitrieve reproduce --help. Running again resumes / skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
exec "$PY" -m bitrieve reproduce cifar10 "$@"
