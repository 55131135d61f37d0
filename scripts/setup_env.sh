#!/usr/bin/env bash
# Build (or reuse) the project's dependencies and give the clone its own .venv on top of them.
#
# The dependencies live outside the clone, under $MIM_CACHE (default ~/.cache/mimtoolkit), in a folder
# keyed by a hash of the dependency pins (constraints.txt, pyproject.toml's dependency lists and this
# script), so every clone with the same pins reuses it. A folder without the `.complete` marker is a
# half-built environment (an interrupted setup) and is deleted and rebuilt, never reused.
# The shared folder never holds the project itself: each clone's .venv is a small venv of its own that
# sees the shared packages and this clone's code, so two clones never run each other's code.
# MIM_REUSE_ONLY=1: exit 3 instead of building when no complete environment exists for these pins.
#
# Steps on a fresh machine (only Python 3.11, gcc and pip needed):
#   1. venv + torch/torchvision as pinned (numpy<2, setuptools<70 for mmcv's setup.py)
#   2. mmcv 2.1.0 wheel built from its sdist with -std=c++20 (torch>=2.6 headers need C++20); CPU ops
#      always, CUDA ops when nvcc and a GPU are present; the wheel is cached under $MIM_CACHE/wheels
#   3. the project in editable mode with its pinned dependencies (mmsegmentation, mmengine, timm, ...)
#   4. detectron2 from GitHub when reachable, otherwise the pure-Python package of the registry's
#      `sal-detectron2` wheel (a build of upstream detectron2 for CPython 3.10) without its compiled _C
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MIM_CACHE:-$HOME/.cache/mimtoolkit}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
CONSTRAINTS="$ROOT/constraints.txt"  # the exact, tested versions of everything installed
pinned() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }
MMCV_VERSION=$(pinned mmcv)
SAL_D2_VERSION=0.7.2
D2_COMMIT=a59f05630a8f205756064244bf5beb8661f96180  # upstream commit of sal-detectron2 0.7.2

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

pins_hash() {
    "$PY" - "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" "$CONSTRAINTS" <<'PYEOF'
import hashlib, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
h = hashlib.sha256()
h.update(repr((project["dependencies"], project.get("optional-dependencies", {}))).encode())
h.update(open(sys.argv[2], "rb").read())
h.update(open(sys.argv[3], "rb").read())
h.update(sys.version.split()[0].encode())
print(h.hexdigest()[:16])
PYEOF
}

ENV_DIR="$CACHE/envs/$(pins_hash)"

# $ROOT/.venv: a venv of this clone on the environment's own base Python whose site-packages hold two
# .pth files: this clone's root first (its code), then the shared environment's site-packages (added as
# a site dir, so that its own .pth files are processed too). Replaces a link left by older setups.
make_clone_venv() {
    local base site shared
    base=$("$ENV_DIR/bin/python" -c 'import sys; print(sys._base_executable)')
    rm -rf "$ROOT/.venv"
    "$base" -m venv --without-pip "$ROOT/.venv"
    site=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    shared=$("$ENV_DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\n' "$ROOT" > "$site/00-mimtoolkit-clone.pth"
    "$base" -c 'import sys; print(f"import site; site.addsitedir({sys.argv[1]!r})")' "$shared" \
        > "$site/01-mimtoolkit-environment.pth"
}

if [[ -f "$ENV_DIR/.complete" ]]; then
    make_clone_venv
    log "reusing environment $ENV_DIR ($(cat "$ENV_DIR/.complete")) through $ROOT/.venv"
    exit 0
fi
if [[ "${MIM_REUSE_ONLY:-0}" == 1 ]]; then
    log "no complete environment for these pins at $ENV_DIR (MIM_REUSE_ONLY=1: not building)"
    exit 3
fi

if [[ -d "$ENV_DIR" ]]; then
    log "found a half-built environment at $ENV_DIR (no .complete marker): deleting and rebuilding"
    rm -rf "$ENV_DIR"
fi
mkdir -p "$CACHE/envs" "$CACHE/wheels"
log "creating environment $ENV_DIR"
"$PY" -m venv "$ENV_DIR"
VPY="$ENV_DIR/bin/python"
pip_install() { "$VPY" -m pip install --disable-pip-version-check --no-input -c "$CONSTRAINTS" "$@"; }
# mmcv's setup.py and detectron2's model_zoo import pkg_resources, removed in setuptools 70. torch's
# metadata asks for setuptools >= 77 (only to build C++ extensions), so pip reports a conflict.
install_old_setuptools() {
    log "installing setuptools<70 (torch's metadata asks for >= 77 only to build C++ extensions: expected)"
    pip_install -q --no-warn-conflicts "setuptools<70"  # pip would print that known conflict as an ERROR
}

log "step 1/4: torch, torchvision, build tools"
pip_install -q --upgrade "pip<26"
pip_install -q torch torchvision numpy wheel ninja
install_old_setuptools  # mmcv 2.1.0's setup.py imports pkg_resources

log "step 2/4: mmcv $MMCV_VERSION with compiled ops"
HAS_GPU=$("$VPY" -c 'import torch; print(int(torch.cuda.is_available()))')
if [[ "$HAS_GPU" == 1 ]] && command -v nvcc >/dev/null; then FLAVOUR=cuda; else FLAVOUR=cpu; fi
TORCH_VERSION=$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])')
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-py$("$VPY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')-$FLAVOUR"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    BUILD=$(mktemp -d "$CACHE/wheels/build.XXXXXX")
    trap 'rm -rf "$BUILD"' EXIT
    log "building mmcv from its sdist ($FLAVOUR ops; about 20 minutes on 2 cores, once per machine)"
    "$VPY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.6 headers need C++20; mmcv 2.1.0 forces c++14/c++17.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$SRC/setup.py"
    grep -q 'c++20' "$SRC/setup.py" || { log "C++20 patch did not apply to mmcv's setup.py"; exit 1; }
    if [[ "$FLAVOUR" == cuda ]]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
    (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "$VPY" -m pip wheel -q --no-build-isolation --no-deps . -w "$BUILD/out")
    mkdir -p "$WHEEL_DIR.tmp" && mv "$BUILD"/out/mmcv-*.whl "$WHEEL_DIR.tmp"/ && mv -T "$WHEEL_DIR.tmp" "$WHEEL_DIR"
    log "cached mmcv wheel in $WHEEL_DIR"
else
    log "reusing cached mmcv wheel from $WHEEL_DIR"
fi
pip_install -q --no-deps "$WHEEL_DIR"/mmcv-*.whl

log "step 3/4: the project's dependencies with its det, seg and test extras, as pinned in constraints.txt"
pip_install -q -e "$ROOT[det,seg,test]"
"$VPY" -m pip uninstall -q -y mimtoolkit  # keep its dependencies only: each clone's .venv adds its own code
install_old_setuptools  # the resolver above upgraded it for torch

log "step 4/4: detectron2"
D2_SOURCE=""
if timeout 90 git ls-remote --exit-code https://github.com/facebookresearch/detectron2.git HEAD >/dev/null 2>&1; then
    # pinned: the commit the registry's sal-detectron2==0.7.2 was built from (our code overrides some of
    # its private methods; the suite passed against that code)
    if pip_install -q --no-build-isolation --no-deps "git+https://github.com/facebookresearch/detectron2.git@$D2_COMMIT"; then
        D2_SOURCE="GitHub (facebookresearch/detectron2 @ $D2_COMMIT, 2024-04-17; compiled)"
    fi
fi
if [[ -z "$D2_SOURCE" ]]; then
    log "GitHub not reachable: using the pure-Python package of the registry's sal-detectron2==$SAL_D2_VERSION wheel"
    D2_TMP=$(mktemp -d)
    "$VPY" -m pip download -q --no-deps --python-version 3.10 --only-binary=:all: "sal-detectron2==$SAL_D2_VERSION" -d "$D2_TMP"
    "$VPY" -m zipfile -e "$D2_TMP"/sal_detectron2-*.whl "$D2_TMP/unpacked"
    SITE=$("$VPY" -c 'import site; print(site.getsitepackages()[0])')
    rm -rf "$SITE/detectron2"
    cp -r "$D2_TMP/unpacked/detectron2" "$SITE/detectron2"
    find "$SITE/detectron2" -name '_C*.so' -delete
    rm -rf "$D2_TMP"
    D2_SOURCE="registry sal-detectron2==$SAL_D2_VERSION (pure Python, no _C ops)"
fi
log "detectron2 source: $D2_SOURCE"

"$VPY" -c 'import torch, torchvision, mmcv, mmcv.ops, mmseg.models, mmengine, detectron2.modeling, timm, fvcore, pycocotools' \
    || { log "import check failed: the environment is incomplete"; exit 1; }
echo "built $(date -u +%FT%TZ); mmcv ops: $FLAVOUR; detectron2: $D2_SOURCE" > "$ENV_DIR/.complete"
make_clone_venv
log "environment ready: $ENV_DIR, used through $ROOT/.venv"
