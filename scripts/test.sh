#!/usr/bin/env bash
# Every check: lint, formatting, strict types, the Python test pyramid (docs' examples included),
# the release (wheel, sdist, a fresh install), then the VS Code client.
# PARAMLENS_SKIP_CLIENT=1 skips the client (its install needs apt and npm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
missing=()
command -v nvim >/dev/null || missing+=(neovim)  # the editor the LSP end-to-end test drives
command -v jq >/dev/null || missing+=(jq)        # the docs' JSON examples use it (tests/docs)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if "${PYTHON:-python3}" -c "import torch" 2>/dev/null; then
  echo "note: the base interpreter has torch; a fresh machine does not (tests must not rely on it)" >&2
fi
export PATH="$PWD/.venv/bin:$PATH" PARAMLENS_REQUIRE_EDITORS=1
set -x
ruff check server tests bench
ruff format --check server tests bench
mypy
python -m pytest tests
scripts/release-check.sh  # the wheel and sdist, installed into fresh environments and run
if [ "${PARAMLENS_SKIP_CLIENT:-0}" != "1" ]; then
  # the .vsix bundles the server with this interpreter; the e2e's worker runs it (it has torch)
  export PARAMLENS_BUNDLE_PYTHON="$PWD/.venv/bin/python" PARAMLENS_E2E_PYTHON="$PWD/.venv/bin/python"
  client/scripts/install.sh
  client/scripts/test.sh
fi
