#!/usr/bin/env bash
# Headless Chromium for the report tests: installs Debian's chromium if it is missing.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
chromium --version
