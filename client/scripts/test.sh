#!/usr/bin/env bash
# The client's whole test suite: typecheck, unit tests, .vsix packaging and
# its contents, and the end-to-end tests in code-server and JupyterLab + chromium.
# Run client/scripts/install.sh first (CI does).
#
# Usage: client/scripts/test.sh [--no-e2e]
set -euo pipefail

CLIENT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$CLIENT_DIR"
if [ ! -d node_modules ]; then
  echo "client/node_modules missing: run client/scripts/install.sh first" >&2
  exit 1
fi

stage() {
  local name="$1"
  shift
  local t0
  t0=$(date +%s)
  echo "=== client: $name"
  "$@"
  echo "=== client: $name ok ($(($(date +%s) - t0))s)"
}

stage typecheck npm run --silent typecheck
stage "unit tests" npm run --silent test:unit
stage package npm run --silent package
stage "packaging test" npm run --silent test:package
if [ "${1:-}" != "--no-e2e" ]; then
  stage "end-to-end test (code-server)" node out/test/e2e/run.js --no-package
  stage "end-to-end test (code-server, Restricted Mode)" node out/test/e2e/run.js --no-package --restricted
  stage "end-to-end test (JupyterLab, jupyterlab-lsp)" node out/test/e2e/jupyterlab.js
fi
