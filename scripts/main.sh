#!/usr/bin/env bash
# The main job on the embedded default: the MNIST ViT on its 1,000 test digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/mixprec evaluate "$@"
