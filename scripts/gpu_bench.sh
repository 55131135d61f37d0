#!/usr/bin/env bash
# The prepared GPU benchmark of issue 13 (tools/benchmark.py gpu): MAE-B pretraining images/s and MFU
# (bf16, eager and torch.compile), ConvMAE-B and SIM-B images/s, and the ViTDet-B / ConvMAE-B detection
# backbone training step (1024 px) against detectron2's ViT and the official ConvViTDet, as ratios
# measured in the same run. Sized to finish in about 7 minutes on one H100 (--budget-s 420: rows not
# started by then are reported as skipped). Never part of CI.
#
# Two steps, because the GPU machine has torch/timm but no package registry:
#   here, with the registry:    bash scripts/gpu_bench.sh prepare
#       downloads into .whl/ (ignored by git) the wheels that machine lacks, for its Python (3.12):
#       detectron2's pure-Python package (the registry's sal-detectron2 wheel, as scripts/setup_env.sh
#       uses it; its compiled _C is dropped), fvcore, iopath, yacs, termcolor, omegaconf, antlr4,
#       hydra-core, pycocotools. For the official ConvViTDet row, put a copy of Alpha-VL/ConvMAE
#       DET/models/convmae.py at .bench/official_convmae.py (also ignored; never committed).
#   there (carry .whl and .bench):  bash scripts/gpu_bench.sh [--tiny] [more tools/benchmark.py gpu options]
#       installs .whl offline into a scratch folder (PYTHONPATH), then runs the benchmark; writes
#       $OUT/gpu_bench.json when $OUT is set. Without a CUDA device it says so and exits 0 (--tiny runs
#       the same code paths at tiny sizes on the CPU).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="${GPU_BENCH_WHEELS:-$ROOT/.whl}"
SITE="${GPU_BENCH_SITE:-/tmp/gpu_bench_site}"
PY="${PYTHON:-python3}"
TARGET_PY="${GPU_BENCH_PYTHON_VERSION:-3.12}"
SAL_D2_VERSION=0.7.2  # as scripts/setup_env.sh
PURE=(fvcore iopath==0.1.10 yacs termcolor omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 hydra-core)

log() { printf '[gpu_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

prepare() {
    mkdir -p "$WHEELS" "$ROOT/.git/info"
    for path in /.whl/ /.bench/; do
        grep -qxF "$path" "$ROOT/.git/info/exclude" 2>/dev/null || echo "$path" >> "$ROOT/.git/info/exclude"
    done
    log "downloading wheels for Python $TARGET_PY into $WHEELS"
    "$PY" -m pip download -q --no-deps --python-version 3.10 --only-binary=:all: \
        "sal-detectron2==$SAL_D2_VERSION" -d "$WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PY" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        pycocotools -d "$WHEELS"
    local tmp
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps "${PURE[@]}" -d "$tmp"
    # some of these are source archives: build pure-Python wheels of them here
    "$PY" -m pip wheel -q --no-deps "$tmp"/* -w "$WHEELS"
    rm -rf "$tmp"
    ls "$WHEELS"
    [[ -f "$ROOT/.bench/official_convmae.py" ]] \
        || log "no .bench/official_convmae.py: the official ConvViTDet row will be left out"
}

install_offline() {
    if "$PY" -c 'import detectron2.modeling, fvcore, iopath, pycocotools' 2>/dev/null; then
        return  # already importable (e.g. the project's own environment)
    fi
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        log "no wheels in $WHEELS: run 'bash scripts/gpu_bench.sh prepare' where the registry is reachable, and carry .whl"
        exit 1
    fi
    log "installing the carried wheels offline into $SITE"
    mkdir -p "$SITE"
    find "$WHEELS" -name '*.whl' ! -name 'sal_detectron2-*' -print0 \
        | xargs -0 "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE"
    "$PY" -m zipfile -e "$(ls "$WHEELS"/sal_detectron2-*.whl | head -1)" "$SITE/.d2"
    rm -rf "$SITE/detectron2" && mv "$SITE/.d2/detectron2" "$SITE/detectron2" && rm -rf "$SITE/.d2"
    find "$SITE/detectron2" -name '_C*.so' -delete
}

if [[ "${1:-}" == prepare ]]; then
    prepare
    exit 0
fi

TINY=0
for arg in "$@"; do [[ "$arg" == --tiny ]] && TINY=1; done
if [[ "$TINY" == 0 ]] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device: skipping the GPU benchmark (--tiny checks its code paths on the CPU)"
    exit 0
fi
install_offline
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
JSON=()
[[ -n "${OUT:-}" ]] && JSON=(--json "$OUT/gpu_bench.json")
cd "$ROOT"
"$PY" tools/benchmark.py gpu "${JSON[@]}" "$@"
