#!/usr/bin/env bash
# Build mixprec's wheel, install it alone in a fresh venv (torch first, no source tree on the
# path) and run a search and an evaluation from it: the wheel must carry the embedded model,
# its data access, the shipped tables and the report's assets.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/mixprec-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { echo "wheel check: $*" >&2; }
quiet() {  # quiet "what" command...: run, show its output only if it fails
  local what=$1; shift
  say "$what"
  if ! "$@" >"$work/step.log" 2>&1; then
    say "FAILED: $what"; tail -40 "$work/step.log" >&2; exit 1
  fi
}
quiet "building the wheel" .venv/bin/python -m build --wheel --no-isolation --outdir "$work/dist" .
wheel=$(ls "$work"/dist/mixprec-*.whl)
quiet "creating a fresh venv" "$PY" -m venv "$work/venv"
quiet "installing torch 2.14.1 and torchvision 0.29.1 into it" \
  "$work/venv/bin/python" -m pip install "torch==2.14.1" "torchvision==0.29.1"
quiet "installing $(basename "$wheel") into it" "$work/venv/bin/python" -m pip install "$wheel"
cd "$work"  # nothing of the source tree on the path
"$work/venv/bin/python" - <<'PY'
import mixprec, pathlib
where = pathlib.Path(mixprec.__file__).resolve()
assert "site-packages" in where.parts, f"mixprec imported from {where}, not the wheel"
print(f"wheel check: mixprec {mixprec.__version__} from {where.parent}")
PY
say "mixprec search --model mnist-vit --device a15 --budget-ms 80%"
MIXPREC_CACHE_DIR="$work/cache" "$work/venv/bin/mixprec" search --model mnist-vit \
  --device a15 --budget-ms 80% --out "$work/run" --quiet
test -s "$work/run/report.html" && test -s "$work/run/plan.json"
say "mixprec evaluate"
MIXPREC_CACHE_DIR="$work/cache" "$work/venv/bin/mixprec" evaluate --plans fp32 w8a8
say "passed"
