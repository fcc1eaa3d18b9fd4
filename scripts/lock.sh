#!/usr/bin/env bash
# Refresh constraints.txt, the versions scripts/setup.sh installs by default: set up a fresh virtual environment
# with every extra and the newest versions pip resolves (VLASCORE_CONSTRAINTS=none), then write what it installed.
# Run the tests with the new pins before committing them.   Usage: bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=$(mktemp -d /tmp/vlascore-lock.XXXXXX)
trap 'rm -rf "$venv"' EXIT
VLASCORE_VENV="$venv" VLASCORE_CONSTRAINTS=none bash scripts/setup.sh
{
  echo "# The package versions scripts/setup.sh installs (pip constraints), written by scripts/lock.sh on $(date -u +%F)"
  echo "# with Python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'). Refresh: bash scripts/lock.sh"
  # vlascore itself is editable; torch's local build label (+cpu, +cu126) is left to the index it comes from;
  # lmms-eval is pinned by setup.sh (installed without its dependencies).
  "$venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check 2>/dev/null |
    grep -v -i -E '^(vlascore|lmms[-_]eval)==' | sed -E 's/^(torch(vision)?==[^+]*)\+.*/\1/' | sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock: wrote constraints.txt ($(grep -c '==' constraints.txt) pins)"
