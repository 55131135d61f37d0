#!/usr/bin/env bash
# The main job on its embedded default: builds or reuses the environment, then runs tools/demo.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
exec .venv/bin/python tools/demo.py "$@"
