#!/usr/bin/env bash
# Quick start: set up (first time only) and run the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -m "not integration"
#
# The tests run in parallel pytest-xdist workers: most of the suite's time is integration
# tests waiting on snakemake and simulator subprocesses and on HTTP, so even 2 cores keep
# several busy. REWARDFLOW_TEST_WORKERS sets how many (0: one process, no workers); tests that
# must not overlap share an xdist_group (--dist loadgroup keeps a group on one worker).
set -euo pipefail
cd "$(dirname "$0")"
source dev/setup-venv.sh

python -m pytest -n "${REWARDFLOW_TEST_WORKERS:-3}" --dist loadgroup "$@"
