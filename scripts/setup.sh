#!/usr/bin/env bash
# All set-up for a fresh clone: a virtual environment in .venv holding Distillery (editable) and its
# dependencies, with PyTorch kept on the CPU build (constraints/cpu.txt). Safe to rerun: it reinstalls
# only when pyproject.toml or the constraints change.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "error: Distillery needs Python >= 3.11 ($python is $("$python" --version 2>&1))" >&2; exit 2; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.distillery-installed
wanted=$(cat pyproject.toml constraints/cpu.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setting up .venv (first time: about 2-3 minutes) ..."
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -c constraints/cpu.txt -e '.[dev]'
  # PyPI's torchvision/torchaudio/torchcodec break `import vllm` beside the CPU torch (ENVIRONMENT.md).
  .venv/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  echo "$wanted" > "$stamp"
fi
