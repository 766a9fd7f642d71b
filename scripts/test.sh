#!/usr/bin/env bash
# The test suite. Triton kernels run in the interpreter on CPU-only machines.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  export TRITON_INTERPRET=1
fi
exec .venv/bin/python -m pytest -q "$@"
