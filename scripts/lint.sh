#!/usr/bin/env bash
# The linters CI runs (.ci/run), in the virtual environment scripts/setup.sh made: ruff's checks and formatting
# of everything Python in the repository, and mypy on the library.   Usage: bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VLASCORE_VENV:-.venv}"
[ -x "$VENV/bin/ruff" ] && [ -x "$VENV/bin/mypy" ] || { echo "lint: no ruff/mypy in $VENV: run scripts/setup.sh (the dev extra)" >&2; exit 2; }
"$VENV/bin/ruff" check vlascore tests benchmarks
"$VENV/bin/ruff" format --check vlascore tests benchmarks
"$VENV/bin/mypy" vlascore
