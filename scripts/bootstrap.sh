#!/usr/bin/env bash
# Create or reuse .venv inside the repo and install mixprec with what it needs.
# Reinstalls only when pyproject.toml changed since the last successful install. Says what it
# does; pip's own output goes to .venv/pip.log and is shown only if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
log=.venv/pip.log

step() {  # step "what" command...: run quietly, show pip's log if it fails
  local what=$1; shift
  echo "mixprec set-up: $what" >&2
  if ! "$@" >>"$log" 2>&1; then
    echo "mixprec set-up: FAILED: $what; pip said:" >&2
    tail -40 "$log" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  echo "mixprec set-up: creating .venv with $("$PY" --version 2>&1)" >&2
  "$PY" -m venv .venv
  step "upgrading pip" .venv/bin/python -m pip install --upgrade pip
fi
stamp=.venv/.mixprec-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch first, pinned to the release the project is tested with (it brings triton)
  step "installing torch 2.14.1 and torchvision 0.29.1 (about 2 min the first time)" \
    .venv/bin/python -m pip install "torch==2.14.1" "torchvision==0.29.1"
  step "installing mixprec and its dependencies (editable, with the test tools)" \
    .venv/bin/python -m pip install -e ".[dev]"
  echo "$want" > "$stamp"
  echo "mixprec set-up: done (pip's log: $log)" >&2
fi
