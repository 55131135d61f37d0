#!/usr/bin/env bash
# The main job on its embedded default: builds or reuses the environment, then trains the tiny ViTDet
# Mask R-CNN on the generated toy shapes on CPU (a few minutes) and prints COCO's AP table.
# Extra args go to tools/train_det.py (e.g. --backbone convmae_tiny, or key=value overrides).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
echo "[demo] training a tiny ViTDet Mask R-CNN on generated toy shapes (CPU), then evaluating it with COCO AP"
exec .venv/bin/python tools/train_det.py --backbone mae_vit_tiny --dataset toy --output output/demo --overwrite "$@"
