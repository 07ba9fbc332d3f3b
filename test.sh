#!/usr/bin/env bash
# Quick start: set up (first time only) and run the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -m "not integration"
set -euo pipefail
cd "$(dirname "$0")"
source dev/setup-venv.sh

python -m pytest "$@"
