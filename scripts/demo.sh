#!/usr/bin/env bash
# The main job, no editor needed: paramlens on the sample workspace in fixtures/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
set -x
paramlens annotate fixtures/recipe/models.py
paramlens summary fixtures/recipe/models.py::CNN
paramlens summary fixtures/llama/model.py::Transformer --depth 2
paramlens summary fixtures/gpt/model.py::GPT --depth 2
paramlens summary fixtures/needs_args/model.py::Configured --format json
