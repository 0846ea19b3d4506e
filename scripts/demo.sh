#!/usr/bin/env bash
# The demo: set up (if needed), then run the flagship on an embedded local Ray over the bundled sample
# corpus: curate, synthesize with SmolLM2 on vLLM, train and evaluate students, write out/flagship/report.html.
#   bash scripts/demo.sh            # small size
#   bash scripts/demo.sh --full     # full size (hours on two CPU cores)
# Other arguments go to `distillery run` (e.g. --resume, --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
for arg in "$@"; do
  if [[ "$arg" == "--full" ]]; then args+=(--set size=full); else args+=("$arg"); fi
done
.venv/bin/distillery run pipelines/flagship.py "${args[@]}"
