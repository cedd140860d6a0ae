#!/usr/bin/env bash
# Set up (idempotent) and start the app on http://localhost:8501 (localhost only unless told otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
