#!/usr/bin/env bash
# Quick start: set up (first time only) and run the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -m "not integration"
#
# The tests run in parallel pytest-xdist workers: most of the suite's time is integration
# tests waiting on snakemake and simulator subprocesses and on HTTP, so even 2 cores keep
# several busy. REWARDFLOW_TEST_WORKERS sets how many (0: one process, no workers).
# --dist loadfile keeps each test module on one worker, so a module-scoped fixture (the plain
# install's venv, chromium, a demo run) is built once, not once per worker. (--dist loadgroup
# would not do: with pytest 9.2, xdist 3.8's xdist_group marks are silently ignored.)
set -euo pipefail
cd "$(dirname "$0")"
source dev/setup-venv.sh

python -m pytest -n "${REWARDFLOW_TEST_WORKERS:-3}" --dist loadfile "$@"
