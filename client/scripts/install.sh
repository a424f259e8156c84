#!/usr/bin/env bash
# Installs everything the client's tests need, skipping work already done:
# Debian packages (chromium, code-server's native build deps, ripgrep), the
# client's npm dependencies (npm ci), code-server 4.100.3 in a cache dir, and
# JupyterLab with jupyterlab-lsp (pinned) in a venv beside it.
#
# Usage: client/scripts/install.sh     (from anywhere; idempotent)
# Env:   PARAMLENS_E2E_HOME  cache dir for code-server and JupyterLab (default /opt/paramlens-e2e)
set -euo pipefail

CLIENT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CODE_SERVER_VERSION="4.100.3"
E2E_HOME="${PARAMLENS_E2E_HOME:-/opt/paramlens-e2e}"
CS_PREFIX="$E2E_HOME/code-server-$CODE_SERVER_VERSION"
CS_DIR="$CS_PREFIX/node_modules/code-server"
STAMP="$CS_PREFIX/.installed"

log() { printf '[install] %s\n' "$*"; }
now() { date +%s; }

# --- Debian packages ---------------------------------------------------------
APT_PACKAGES=(chromium build-essential pkg-config libkrb5-dev libx11-dev libxkbfile-dev
  libsecret-1-dev ripgrep python3-pip)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
# python3-pip from Debian is only needed when the python3 on PATH has no pip.
if python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip/}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  t0=$(now)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  log "apt-get took $(( $(now) - t0 ))s"
else
  log "Debian packages already installed"
fi

# --- the client's npm dependencies ------------------------------------------
lock_sum="$(sha256sum "$CLIENT_DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$CLIENT_DIR/node_modules/.paramlens-lock" ] &&
  [ "$(cat "$CLIENT_DIR/node_modules/.paramlens-lock")" = "$lock_sum" ]; then
  log "client node_modules up to date"
else
  log "npm ci in client/"
  t0=$(now)
  (cd "$CLIENT_DIR" && npm ci --no-audit --no-fund)
  echo "$lock_sum" >"$CLIENT_DIR/node_modules/.paramlens-lock"
  log "npm ci took $(( $(now) - t0 ))s"
fi

# --- code-server -------------------------------------------------------------
if [ -f "$STAMP" ] && [ -f "$CS_DIR/out/node/entry.js" ]; then
  log "code-server $CODE_SERVER_VERSION already installed in $CS_PREFIX"
else
  log "installing code-server $CODE_SERVER_VERSION into $CS_PREFIX"
  t0=$(now)
  rm -rf "$CS_PREFIX"
  mkdir -p "$CS_PREFIX"
  export npm_config_yes=true
  # Its postinstall would download ripgrep (not reachable here) and checks the
  # npm user agent; install without scripts and replay the postinstall by hand.
  (cd "$CS_PREFIX" && echo '{"name":"paramlens-e2e","private":true}' >package.json &&
    npm install --no-audit --no-fund --ignore-scripts "code-server@$CODE_SERVER_VERSION" &&
    npm rebuild --no-audit --no-fund argon2)
  rg_bin="$CS_DIR/lib/vscode/node_modules/@vscode/ripgrep/bin"
  (
    cd "$CS_DIR/lib/vscode"
    # Native modules are built by `npm rebuild` below, after ripgrep's binary
    # is in place: its postinstall skips the download when bin/ exists.
    npm install --no-audit --no-fund --ignore-scripts --omit=dev
    mkdir -p "$rg_bin"
    cp "$(command -v rg)" "$rg_bin/rg"
    npm rebuild --no-audit --no-fund
    rm -rf node_modules.asar && ln -s node_modules node_modules.asar
    (cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
    (cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)
    cd extensions
    npm install --no-audit --no-fund --omit=dev
  )
  [ -x "$rg_bin/rg" ] || { echo "ripgrep binary missing in $rg_bin" >&2; exit 1; }
  node "$CS_DIR/out/node/entry.js" --config "$CS_PREFIX/config.yaml" --version
  touch "$STAMP"
  log "code-server install took $(( $(now) - t0 ))s"
fi
echo "$CS_DIR/out/node/entry.js" >"$E2E_HOME/code-server-entry"

# --- JupyterLab with jupyterlab-lsp (test/e2e/jupyterlab.ts), in a venv of its own ---
JUPYTERLAB_PINS=(jupyterlab==4.6.6 jupyter-lsp==2.3.1 jupyterlab-lsp==5.3.0)
JL_PREFIX="$E2E_HOME/jupyterlab-4.6.6"
if [ -f "$JL_PREFIX/.installed" ] && [ "$(cat "$JL_PREFIX/.installed")" = "${JUPYTERLAB_PINS[*]}" ]; then
  log "JupyterLab already installed in $JL_PREFIX"
else
  log "installing ${JUPYTERLAB_PINS[*]} into $JL_PREFIX"
  t0=$(now)
  rm -rf "$JL_PREFIX"
  python3 -m venv "$JL_PREFIX"
  "$JL_PREFIX/bin/python" -m pip install --quiet --disable-pip-version-check "${JUPYTERLAB_PINS[@]}"
  echo "${JUPYTERLAB_PINS[*]}" >"$JL_PREFIX/.installed"
  log "JupyterLab install took $(( $(now) - t0 ))s"
fi
echo "$JL_PREFIX/bin" >"$E2E_HOME/jupyterlab-bin"
log "done"
