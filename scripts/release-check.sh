#!/usr/bin/env bash
# The release users install, built and tried as they would: the wheel and sdist into dist/
# (python -m build), `twine check`, their contents, then the wheel installed into a fresh
# environment twice (pip in a new venv; pipx) and run from there: `paramlens --version` and an
# annotate of the recipe's models, whose worker runs in .venv's Python (it has torch).
# Prints sizes and timings. Run by scripts/test.sh; alone: scripts/release-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
scripts/setup.sh
PY="$REPO/.venv/bin/python" # has build and twine (the dev extra) and torch
PIPX_VERSION=1.18.4
BASE=${PYTHON:-python3} # a fresh environment starts from the base interpreter, as a user's does
export PIP_DISABLE_PIP_VERSION_CHECK=1 PARAMLENS_CACHE_DIR=off

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(now)"; }
fail() {
  echo "release-check: $*" >&2
  exit 1
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -- build -------------------------------------------------------------------------
rm -rf dist build
t0=$(now)
"$PY" -m build --outdir dist . >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log" >&2
  fail "python -m build failed"
}
build_time=$(since "$t0")
rm -rf build # setuptools' scratch folder
wheel=dist/paramlens-$version-py3-none-any.whl
sdist=dist/paramlens-$version.tar.gz
[ -f "$wheel" ] && [ -f "$sdist" ] || fail "expected $wheel and $sdist, got: $(ls dist)"
"$PY" -m twine check --strict dist/*

# -- contents ----------------------------------------------------------------------
"$PY" - "$wheel" "$sdist" <<'EOF'
import sys, tarfile, zipfile

wheel, sdist = sys.argv[1:]
names = set(zipfile.ZipFile(wheel).namelist())
need = ["paramlens/py.typed", "paramlens/worker/__init__.py", "paramlens/worker/protocol.py",
        "paramlens/worker/processes/serve.py", "paramlens/worker/build/builder.py",
        "paramlens/worker/forward/run.py", "paramlens/worker/sandbox.py", "paramlens/lsp/server.py"]
missing = [n for n in need if n not in names]
assert not missing, f"the wheel lacks {missing}"
entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
assert "paramlens = paramlens.cli:main" in zipfile.ZipFile(wheel).read(entry).decode(), entry
stray = [n for n in names if not n.startswith("paramlens/") and ".dist-info/" not in n]
assert not stray, f"the wheel holds more than the package: {stray[:5]}"
assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], "bytecode in the wheel"

members = tarfile.open(sdist).getnames()
root = members[0].split("/")[0]
files = {m.split("/", 1)[1] for m in members if "/" in m}
for n in ("pyproject.toml", "LICENSE", "README.md", "server/paramlens/py.typed",
          "server/paramlens/worker/__init__.py", "docs/how-it-works.md"):
    assert n in files, f"the sdist lacks {n}"
bad = [f for f in files if f.split("/")[0] in {".venv", "client", "fixtures", "tests", "bench",
       "dist", "build", ".git"} or "node_modules" in f or "__pycache__" in f or f.endswith(".pyc")]
assert not bad, f"the sdist holds what it should not: {sorted(bad)[:10]}"
print(f"release-check: wheel {len(names)} files, sdist {len(files)} files ({root})")
EOF

# -- install and run, as a user would ---------------------------------------------
try_installed() { # $1: the installed paramlens command
  local out
  out=$("$1" --version)
  [ "$out" = "paramlens $version" ] || fail "$1 --version printed '$out'"
  # from outside the checkout, so that nothing of it is imported but the installed package
  out=$(cd "$tmp" && "$1" annotate "$REPO/fixtures/recipe/models.py" --python "$PY")
  for expected in \
    "# NeuralNetwork: 669,706 params · 669,706 trainable · 0 non-trainable" \
    "# CNN: 1,199,882 params" \
    "nn.Linear(28 * 28, 512),                                          # Linear(784 -> 512) 401,920 → [1, 512]" \
    "x = self.flatten(x)                                                   # x: [1, 784]"; do
    grep -qF -- "$expected" <<<"$out" || fail "$1 annotate: no line with '$expected' in:
$out"
  done
}

t0=$(now)
"$BASE" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet "$wheel" 2> >(grep -v 'is ignored' >&2)
pip_time=$(since "$t0")
where=$("$tmp/venv/bin/python" -c "import paramlens; print(paramlens.__file__)")
case "$where" in "$tmp/venv/"*) ;; *) fail "the fresh venv imports paramlens from $where" ;; esac
try_installed "$tmp/venv/bin/paramlens"

t0=$(now)
"$BASE" -m venv "$tmp/tools"
"$tmp/tools/bin/python" -m pip install --quiet "pipx==$PIPX_VERSION" 2> >(grep -v 'is ignored' >&2)
pipx_setup_time=$(since "$t0")
t0=$(now)
PIPX_HOME="$tmp/pipx" PIPX_BIN_DIR="$tmp/bin" PIPX_MAN_DIR="$tmp/man" \
  "$tmp/tools/bin/pipx" install "$REPO/$wheel" >"$tmp/pipx.log" 2>&1 || {
  cat "$tmp/pipx.log" >&2
  fail "pipx install failed"
}
pipx_time=$(since "$t0")
try_installed "$tmp/bin/paramlens"

size() { echo "$(($(stat -c %s "$1") / 1024))"; }
echo "release-check: ok: $wheel ($(size "$wheel") KB), $sdist ($(size "$sdist") KB)"
echo "release-check: build $build_time; pip install into a new venv $pip_time;" \
  "pipx $PIPX_VERSION set-up $pipx_setup_time, pipx install $pipx_time"
