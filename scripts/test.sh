#!/usr/bin/env bash
# The test suite: builds or reuses the environment, then runs pytest on CPU. Extra args go to pytest.
#   bash scripts/test.sh           the whole suite (CI: .ci/run)
#   bash scripts/test.sh --fast    the edit-loop tier: no test marked `slow` (end-to-end runs) or `heavy`
#                                  (framework training/evaluation, tools in subprocesses; tests/conftest.py)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
tier=()
if [[ "${1:-}" == "--fast" ]]; then
    shift
    tier=(-m "not slow and not heavy")
fi
start=$(date +%s)
bash scripts/setup_env.sh
echo "[test] environment ready in $(( $(date +%s) - start )) s"
exec .venv/bin/python -m pytest tests -ra --durations=15 ${tier[@]+"${tier[@]}"} "$@"
