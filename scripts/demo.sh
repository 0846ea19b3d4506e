#!/usr/bin/env bash
# The demo: set up (if needed), run the quickstart pipeline on an embedded local Ray over the bundled
# sample corpus, then summarise the output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/distillery run pipelines/quickstart.py "$@"
echo
.venv/bin/distillery inspect out/quickstart
