#!/usr/bin/env bash
# Every check: lint, formatting, strict types, the Python test pyramid, then the VS Code client.
# PARAMLENS_SKIP_CLIENT=1 skips the client (its install needs apt and npm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! command -v nvim >/dev/null; then  # the editor the LSP end-to-end test drives
  apt-get update -qq && apt-get install -y -qq neovim >/dev/null
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
if [ "${PARAMLENS_SKIP_CLIENT:-0}" != "1" ]; then
  # the .vsix bundles the server with this interpreter; the e2e's worker runs it (it has torch)
  export PARAMLENS_BUNDLE_PYTHON="$PWD/.venv/bin/python" PARAMLENS_E2E_PYTHON="$PWD/.venv/bin/python"
  client/scripts/install.sh
  client/scripts/test.sh
fi
