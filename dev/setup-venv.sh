#!/usr/bin/env bash
# Create .venv and install rewardflow (editable) with its dev extras; a no-op when
# pyproject.toml has not changed since the last install. Sourced by demo.sh and test.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "rewardflow needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "Creating $venv ..." >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.rewardflow-installed"
wanted="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing rewardflow and its dependencies into $venv ..." >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$repo[dev]"
    echo "$wanted" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
