#!/usr/bin/env bash
# Set up (idempotent) and run every test: unit, SAM2 integration (random weights), AppTest, browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# Lint, format and the architecture's import boundaries (pyproject.toml), then every test.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -q "$@"
