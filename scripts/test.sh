#!/usr/bin/env bash
# The test suite: builds or reuses the environment, then runs pytest on CPU. Extra args go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
bash scripts/setup_env.sh
echo "[test] environment ready in $(( $(date +%s) - start )) s"
exec .venv/bin/python -m pytest tests -ra --durations=15 "$@"
