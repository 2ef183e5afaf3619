#!/usr/bin/env bash
# Set up and run the bot on a fresh machine: a virtualenv in .venv with the pinned runtime
# dependencies (hash-checked), then `python -m bot`. Configuration comes from the environment
# or a .env file in this directory (see README.md, "Configuration").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
  -r requirements-prod.txt
exec .venv/bin/python -m bot "$@"
