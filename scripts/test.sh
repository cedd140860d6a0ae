#!/usr/bin/env bash
# Set up (idempotent) and run every test: unit, SAM2 integration (random weights), AppTest, browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
