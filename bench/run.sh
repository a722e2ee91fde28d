#!/usr/bin/env bash
# Runs the load benchmark with the repo's virtualenv; installs hey first when it is missing.
# Usage: bench/run.sh [--duration S] [--scenarios small,4mb,slow] [--keep-going] [--workers N] ...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${VENV:-$repo/.venv}"

if ! command -v hey >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq hey
fi

# The slow scenario holds 1000 client sockets in hey and ~2000 in the gateway (clients plus
# upstream connections); the usual soft limit of 1024 would turn that into EMFILE errors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

exec "$venv/bin/python" "$here/run.py" "$@"
