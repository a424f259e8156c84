#!/usr/bin/env bash
# Create .venv with paramlens (editable), its test tools and torch. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.paramlens-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to the CPU build on this machine's disk; a range would pull a CUDA build.
  .venv/bin/python -m pip install --quiet -e '.[dev,bench]' torch==2.13.0 numpy==2.4.6
  touch "$stamp"
fi
