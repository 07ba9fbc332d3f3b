#!/usr/bin/env bash
# Quick start: set up (first time only) and run the offline demo with the default config.
# Extra arguments go to snakemake, e.g. ./demo.sh --cores 4
set -euo pipefail
cd "$(dirname "$0")"
source dev/setup-venv.sh

snakemake --cores 2 "$@"
echo
cat results/demo/summary.md
echo "Summary: $(pwd)/results/demo/summary.md (and summary.json beside it)"
