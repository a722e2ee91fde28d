#!/usr/bin/env bash
# Installs imagegate with its test tools into .venv, then runs the linters, the type checker
# and the whole test suite. The one command the README gives for testing; CI calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: an open range would pull the newest CUDA build (gigabytes); 2.13.0 is the
# CPU build these machines provide. The local-model tests then run on the CPU.
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e '.[test,local]'

# The suite runs its accounts tests on PostgreSQL and its rate-limit tests on Redis too. Where
# the services are installed but stopped (a fresh CI machine), start them; where they are
# absent, those tests skip on a developer's machine and fail under CI=true.
bash scripts/services.sh

# s3rver (npm), the S3 test server that checks presigned links' signatures and expiry.
if command -v npm >/dev/null 2>&1; then
  npm install --silent --no-audit --no-fund --prefix tests/storage/s3rver
else
  echo "test.sh: npm not found; the presigned-expiry test will skip"
fi

# The console's browser tests drive Debian's chromium through Playwright (never `playwright
# install`); a CJK font lets it draw the Chinese pages in their screenshots.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
  apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi

.venv/bin/ruff check imagegate tests bench
.venv/bin/ruff format --check imagegate tests bench
.venv/bin/mypy imagegate
.venv/bin/lint-imports
.venv/bin/pytest "$@"
