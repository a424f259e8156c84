#!/usr/bin/env bash
# Puts the paramlens server and its pure-Python dependencies into
# client/bundled/libs, with their .dist-info metadata, for the .vsix.
# At run time the extension puts this dir first on PYTHONPATH.
set -euo pipefail

CLIENT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$CLIENT_DIR/.." && pwd)"
LIBS="$CLIENT_DIR/bundled/libs"
PYTHON="${PARAMLENS_BUNDLE_PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore

rm -rf "$CLIENT_DIR/bundled"
mkdir -p "$LIBS"
pip_target() {
  "$PYTHON" -m pip install --quiet --no-warn-script-location --disable-pip-version-check --no-compile --no-deps \
    --target "$LIBS" "$@"
}
# pygls 2.1.1 needs attrs, cattrs, lsprotocol; cattrs needs typing_extensions.
pip_target pygls==2.1.1 lsprotocol==2025.0.0 cattrs==26.2.1 attrs==26.1.0 typing_extensions==4.15.0
# paramlens reads pyproject.toml with tomllib, which Python 3.10 lacks.
pip_target tomli==2.2.1
# Hydra/LightningCLI YAML (PyYAML: without its C extension for another platform or Python,
# it falls back to its pure-Python parser) and README code blocks (markdown-it-py, mdurl).
pip_target PyYAML==6.0.4 markdown-it-py==4.3.0 mdurl==0.1.2
# Our own package, built from the repo root (a non-editable install).
if [ ! -f "$REPO_DIR/pyproject.toml" ]; then
  echo "bundle-server: $REPO_DIR/pyproject.toml not found" >&2
  exit 1
fi
build_dir="$(mktemp -d)"
trap 'rm -rf "$build_dir"' EXIT
# Build from a copy of just what the build reads, so setuptools leaves no
# build/ or *.egg-info in the repo (and never walks a .venv).
parts=(pyproject.toml server)
for f in README.md LICENSE setup.cfg MANIFEST.in; do
  [ -e "$REPO_DIR/$f" ] && parts+=("$f")
done
tar -C "$REPO_DIR" --exclude='__pycache__' --exclude='*.egg-info' -cf - "${parts[@]}" | tar -C "$build_dir" -xf -
pip_target "$build_dir"
# Console scripts would point at the packaging machine's interpreter.
rm -rf "$LIBS/bin"
find "$LIBS" -name __pycache__ -type d -prune -exec rm -rf {} +
[ -d "$LIBS/paramlens" ] || { echo "bundle-server: paramlens missing" >&2; exit 1; }
echo "bundle-server: $(find "$LIBS" -type f | wc -l) files in $LIBS"
ls "$LIBS"
