#!/usr/bin/env bash
# Installs imagegate with its test tools into .venv, then runs the linters, the type checker
# and the whole test suite. The one command the README gives for testing; CI calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

.venv/bin/ruff check imagegate tests bench
.venv/bin/ruff format --check imagegate tests bench
.venv/bin/mypy imagegate
.venv/bin/pytest "$@"
