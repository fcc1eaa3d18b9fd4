#!/usr/bin/env bash
# Set up vlascore on Debian 12 as root (idempotent: a second run changes nothing and is quick).
#   1. system packages: python3-venv if missing; Mesa >= 24.3's Vulkan driver (lavapipe, CPU) from
#      bookworm-backports when no usable Vulkan device exists (SAPIEN rejects Debian 12's own Mesa 22.3);
#      Debian's Chromium for the browser tests (Playwright drives it; no browser download) when the dev extra
#      is installed and no chromium is on PATH;
#      with the libero extra, Mesa's EGL (MuJoCo renders LIBERO's scenes offscreen with it) when it is missing;
#   2. a virtual environment in .venv with the CPU build of torch, then vlascore with the extras named in
#      $VLASCORE_EXTRAS (default: sim,models,serve,qa,data,track,ray,dev,libero; ray runs --executor ray and
#      its tests); with qa, lmms-eval $LMMS_EVAL_VERSION without its own dependencies (they include torchvision, which
#      has no CPU build on PyPI; the qa extra lists what it needs); with libero, hf-libero $HF_LIBERO_VERSION and bddl
#      without theirs (hf-libero's pull robomimic and that same torchvision; the libero extra lists what LIBERO's
#      scenes import, and its asset packages).
#   3. every package pinned by constraints.txt (the versions the tests last passed with; scripts/lock.sh refreshes
#      it): VLASCORE_CONSTRAINTS=none resolves the newest versions instead, VLASCORE_CONSTRAINTS=FILE uses another.
# torch: VLASCORE_TORCH picks the version; VLASCORE_TORCH_INDEX the index to take it from, e.g. a CUDA build:
#   VLASCORE_TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh
# (or the CPU build where pip's defaults would bring CUDA wheels: https://download.pytorch.org/whl/cpu).
# Usage: bash scripts/setup.sh        then use .venv/bin/vlascore
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS="${VLASCORE_EXTRAS:-sim,models,serve,qa,data,track,ray,dev,libero}"
LMMS_EVAL_VERSION=0.7.3  # keep equal to vlascore/qa/__init__.py
HF_LIBERO_VERSION=0.1.4  # keep equal to vlascore/backends/libero_setup.py
BDDL_VERSION=1.0.1
VENV="${VLASCORE_VENV:-.venv}"
TORCH_VERSION="${VLASCORE_TORCH:-2.13.0}"
TORCH_INDEX="${VLASCORE_TORCH_INDEX:-}"
CONSTRAINTS="${VLASCORE_CONSTRAINTS:-constraints.txt}"

log() { printf '[setup] %s\n' "$*"; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -q; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

vulkan_ok() {
  # A usable device: any non-CPU device, or lavapipe (llvmpipe) from Mesa >= 24.3.
  command -v vulkaninfo >/dev/null 2>&1 || return 1
  local out; out=$(vulkaninfo --summary 2>/dev/null) || return 1
  grep -q "deviceName" <<<"$out" || return 1
  if grep -q "llvmpipe" <<<"$out"; then
    local ver; ver=$(grep -oP 'Mesa \K[0-9]+\.[0-9]+' <<<"$out" | head -n1)
    [ -n "$ver" ] || return 1
    awk -v v="$ver" 'BEGIN { split(v, a, "."); exit !((a[1] > 24) || (a[1] == 24 && a[2] >= 3)) }'
  fi
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    log "installing python3-venv"; apt_install python3-venv python3-pip
  fi
  if vulkan_ok; then
    log "Vulkan device present: $(vulkaninfo --summary 2>/dev/null | grep -m1 deviceName | sed 's/.*= //')"
  elif grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    log "no usable Vulkan device: installing Mesa's lavapipe from bookworm-backports"
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri="${uri:-http://deb.debian.org/debian}"
    echo "deb $uri bookworm-backports main" > /etc/apt/sources.list.d/backports.list
    apt_updated=0
    apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1 vulkan-tools
    vulkan_ok || { log "Vulkan still unusable after installing Mesa; run 'vlascore doctor'"; exit 1; }
  else
    log "no usable Vulkan device and not Debian 12: install a Vulkan driver (Mesa >= 24.3 lavapipe or a GPU driver)"
  fi
  if [[ ",$EXTRAS," == *",libero,"* ]] && ! ldconfig -p 2>/dev/null | grep -q "libEGL_mesa.so"; then
    log "installing Mesa's EGL (MuJoCo renders LIBERO's scenes offscreen with it)"
    if [ -f /etc/apt/sources.list.d/backports.list ]; then  # match the Mesa that lavapipe came from
      apt_install -t bookworm-backports libegl1 libegl-mesa0
    else
      apt_install libegl1 libegl-mesa0
    fi
  fi
  if [[ ",$EXTRAS," == *",dev,"* ]] && ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium (browser tests of the report and the leaderboard)"; apt_install chromium
  fi
else
  log "not root or no apt-get: skipping system packages (need python3-venv, a Vulkan driver, Mesa's EGL for LIBERO, and chromium for the browser tests; see 'vlascore doctor')"
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
pip_install() {
  # This workplace's pip config names extra local indexes that may be absent; drop only that noise.
  "$VENV/bin/python" -m pip --disable-pip-version-check install -q "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if [[ ",$EXTRAS," =~ ,(sim|models|qa|libero), ]]; then
  # torch first, pinned: a CPU build; an unpinned torch (pulled in by mani-skill) would bring CUDA wheels.
  torch_from=(); [ -n "$TORCH_INDEX" ] && torch_from=(--index-url "$TORCH_INDEX")
  "$VENV/bin/python" -c "import torch" >/dev/null 2>&1 || {
    log "installing torch==$TORCH_VERSION${TORCH_INDEX:+ from $TORCH_INDEX}"; pip_install "${torch_from[@]}" "torch==$TORCH_VERSION"; }
fi
pinned=()
if [ "$CONSTRAINTS" != none ]; then
  [ -f "$CONSTRAINTS" ] || { log "no constraints file $CONSTRAINTS (VLASCORE_CONSTRAINTS=none to resolve freshly)"; exit 1; }
  pinned=(-c "$CONSTRAINTS")
fi
log "installing vlascore[$EXTRAS]${pinned:+ with the versions pinned in $CONSTRAINTS}"
pip_install "${pinned[@]}" -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",qa,"* ]] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("lmms-eval"))' 2>/dev/null)" != "$LMMS_EVAL_VERSION" ]; then
  log "installing lmms-eval==$LMMS_EVAL_VERSION (without its dependencies: see the qa extra)"
  pip_install --no-deps "lmms-eval==$LMMS_EVAL_VERSION"
fi
installed() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
if [[ ",$EXTRAS," == *",libero,"* ]] && { [ "$(installed hf-libero)" != "$HF_LIBERO_VERSION" ] || [ "$(installed bddl)" != "$BDDL_VERSION" ]; }; then
  log "installing hf-libero==$HF_LIBERO_VERSION and bddl==$BDDL_VERSION (without their dependencies: see the libero extra)"
  pip_install --no-deps "hf-libero==$HF_LIBERO_VERSION" "bddl==$BDDL_VERSION"
fi
mkdir -p "/tmp/runtime-$(id -u)" && chmod 700 "/tmp/runtime-$(id -u)"
log "done: $("$VENV/bin/vlascore" --help >/dev/null && echo "$VENV/bin/vlascore is ready")"
