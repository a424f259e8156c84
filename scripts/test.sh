#!/usr/bin/env bash
# Every check: lint, formatting, strict types, the Python test pyramid, then the VS Code client.
# PARAMLENS_SKIP_CLIENT=1 skips the client (its install needs apt and npm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
set -x
ruff check server tests bench
ruff format --check server tests bench
mypy
python -m pytest tests
if [ "${PARAMLENS_SKIP_CLIENT:-0}" != "1" ] && [ -x client/scripts/test.sh ]; then
  client/scripts/install.sh
  client/scripts/test.sh
fi
