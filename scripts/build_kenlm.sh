#!/usr/bin/env bash
# Build KenLM's estimation programs (lmplz, build_binary, query) into a virtualenv's bin/.
#
#   bash scripts/build_kenlm.sh .venv          # what scripts/setup_env.sh runs when .venv/bin/lmplz is missing
#   JOBS=4 bash scripts/build_kenlm.sh /path/to/venv
#
# Why this script: the PyPI `kenlm` package (installed from requirements/base.txt) only builds the Python query
# module, and Debian has no kenlm package. The same PyPI sdist ships the full lm/builder sources, so we compile
# lmplz/build_binary/query from it with cmake against Debian's Boost, as kpu/kenlm's README builds them (about 35 s
# on 2 cores). Idempotent: does nothing when the three programs are already installed and run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${1:?usage: bash scripts/build_kenlm.sh VENV_DIR}
KENLM_VERSION=${KENLM_VERSION:-0.3.0}
JOBS=${JOBS:-2}
CACHE=${KENLM_CACHE:-third_party/kenlm}   # gitignored
BIN=$VENV/bin
# A python whose pip/setuptools can read the sdist's metadata (the venv's; system pythons may lack bdist_wheel).
PY=${KENLM_PYTHON:-$VENV/bin/python}
[[ -x $PY ]] || PY=$(command -v python3)

log() { echo "[build_kenlm] $*"; }
die() { echo "[build_kenlm] ERROR: $*" >&2; exit 1; }

installed() {
  local p
  for p in lmplz build_binary query; do [[ -x $BIN/$p ]] || return 1; done
  # `lmplz --help` exits 1 but prints usage; a broken binary (missing shared lib) prints nothing useful.
  local usage
  usage=$("$BIN/lmplz" --help 2>&1 || true)   # (captured first: with pipefail, lmplz's exit 1 would fail a pipe)
  grep -q -- "--order" <<<"$usage" || return 1
}
if installed; then
  log "lmplz, build_binary and query already in $BIN; nothing to do"
  exit 0
fi
t0=$SECONDS
mkdir -p "$BIN" "$(dirname "$CACHE")"
# setup_env.sh and a test run may both get here; serialise them and re-check once we hold the lock.
exec 9>"$CACHE.lock"
flock 9
if installed; then
  log "lmplz, build_binary and query were installed in $BIN meanwhile; nothing to do"
  exit 0
fi

# 1. Toolchain and Debian dev packages (Boost program_options/system/thread + compression libs).
# (KenLM's CMakeLists requires Boost unit_test_framework even when its tests are not built.)
need_pkgs=()
for pkg in libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
if (( ${#need_pkgs[@]} )); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages ${need_pkgs[*]} and not root (no sudo); install them with apt-get and rerun"
    SUDO="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${need_pkgs[*]}: install Boost (program_options, system, thread), zlib, bz2, lzma dev files and cmake with your package manager, then rerun"
  log "apt-get install ${need_pkgs[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" \
    || { log "apt-get install failed; refreshing package lists and retrying";
         $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"; } \
    || die "could not install ${need_pkgs[*]}"
fi

# 2. The kenlm sdist (same version as the Python module, so query and estimation agree on formats).
mkdir -p "$CACHE"
SRC=$CACHE/kenlm-$KENLM_VERSION
if [[ ! -f $SRC/CMakeLists.txt ]]; then
  tarball=$(ls "$CACHE"/kenlm-"$KENLM_VERSION".tar.gz 2>/dev/null || true)
  if [[ -z $tarball ]]; then
    log "downloading the kenlm==$KENLM_VERSION sdist into $CACHE"
    # --no-binary kenlm (not :all:) and no build isolation: otherwise pip compiles cmake itself from source
    # just to read the sdist metadata (many minutes).
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-build-isolation --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$CACHE" \
      || die "pip download kenlm==$KENLM_VERSION failed (offline? set KENLM_CACHE to a folder holding kenlm-$KENLM_VERSION.tar.gz)"
    tarball=$CACHE/kenlm-$KENLM_VERSION.tar.gz
  fi
  [[ -f $tarball ]] || die "expected $tarball after pip download"
  log "unpacking $tarball"
  tar -xzf "$tarball" -C "$CACHE"
fi
[[ -f $SRC/CMakeLists.txt ]] || die "$SRC/CMakeLists.txt not found after unpacking"

# 3. Configure and build only the three programs we use (-j$JOBS).
BUILD=$SRC/build
log "cmake -DCMAKE_BUILD_TYPE=Release in $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCOMPILE_TESTS=OFF >"$CACHE/cmake.log" 2>&1 \
  || { tail -30 "$CACHE/cmake.log" >&2; die "cmake configure failed (full log: $CACHE/cmake.log)"; }
log "make -j$JOBS lmplz build_binary query (about 35 s on 2 cores)"
make -C "$BUILD" -j"$JOBS" lmplz build_binary query >"$CACHE/make.log" 2>&1 \
  || { tail -30 "$CACHE/make.log" >&2; die "build failed (full log: $CACHE/make.log)"; }

# 4. Install into the venv.
for p in lmplz build_binary query; do
  install -m 0755 "$BUILD/bin/$p" "$BIN/$p"
done
installed || die "installed programs in $BIN do not run"
log "installed lmplz, build_binary, query into $BIN in $((SECONDS - t0)) s"
