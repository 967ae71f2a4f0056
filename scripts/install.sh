#!/usr/bin/env bash
# Create .venv (if missing) and install latent_cot with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The pinned CPU build of torch first: on a CPU machine a bare `torch` requirement would pull a
# multi-GB CUDA build. On a GPU machine, install the torch you want before running this script.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
