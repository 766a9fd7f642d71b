#!/usr/bin/env bash
# The main job on the embedded default: search the MNIST ViT's plan for this CPU (at least
# 1.25x faster than float32 by its measured latency tables), deploy it with real kernels
# beside the uniform baselines, measure them, and write the run folder with its report.
# Extra arguments go to `mixprec search` (e.g. --budget-ms 5, --out runs/other).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/mixprec search --model mnist-vit --device cpu --budget-ms 80% \
    --out runs/mnist-vit-cpu "$@"
