#!/usr/bin/env bash
# The one command for the benchmarks: creates/uses bench/.venv (Python 3.11), installs the
# library (non-editable) and bench/requirements.txt, starts what each benchmark needs, runs
# them all, prints the summary table and writes bench/results.md. Options: see run_all.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${BENCH_PYTHON:-python3.11}" bench/run_all.py "$@"
