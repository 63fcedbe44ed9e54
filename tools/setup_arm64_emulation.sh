#!/usr/bin/env bash
# Set up everything needed to run aarch64 (arm64) code on this x86 machine
# under qemu user-mode emulation, to check the deployment on ARM:
#
#   1. Debian packages (installed only if missing): qemu-user-static,
#      debootstrap, the aarch64 cross compilers, cmake, faketime and the
#      header-only libraries of the C++ example (nlohmann-json3-dev,
#      libstb-dev);
#   2. a minimal Debian bookworm arm64 root with python3.11
#      (debootstrap --foreign, then its downloaded .debs unpacked), with an
#      ARM-format /proc/cpuinfo that qemu serves to the guest;
#   3. aarch64 wheels of ncnn, MNN, numpy, onnxruntime and
#      opencv-python-headless (the versions of .venv), unpacked into one
#      site directory to put on PYTHONPATH;
#   4. the ncnn C++ library (static) cross-built for aarch64 from ncnn's PyPI
#      source distribution, for the C++ example in demo/cpp.
#
# Everything is cached outside the repository, in
# ${EDGEFORMER_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeformer_mm}/arm64,
# one directory per step keyed by its versions, each built in a temporary
# directory and renamed into place when complete: an interrupted run never
# leaves a directory that looks complete, and a second run reuses them all.
#
# Usage: tools/setup_arm64_emulation.sh [--paths]
#   --paths  only print the cache paths (KEY=VALUE lines), set up nothing.
# On success the last lines printed are the same KEY=VALUE lines.
#
# Exit status: 0 ready; 3 a Debian package is missing and cannot be installed
# (not root, no sudo, or apt failed): emulation is unavailable on this
# machine; 1 any other failure.
#
# The script is one { ... } block, which bash reads whole before running it:
# editing (or pulling) the file while it runs cannot derail it.
{
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EDGEFORMER_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeformer_mm}
ARM64=$CACHE/arm64
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYVER=3.11
APT_PACKAGES=(qemu-user-static debootstrap g++-aarch64-linux-gnu cmake make
              faketime nlohmann-json3-dev libstb-dev)
START=$(date +%s)

elapsed() { local s=$(( $(date +%s) - ${1:-$START} )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
step() { STEP=$1; echo "==> [$(elapsed)] $STEP"; }
die() { echo "!! $*" >&2; exit "${EXIT_CODE:-1}"; }
on_error() { echo "!! arm64 set-up failed in step: ${STEP:-start} (after $(elapsed))" >&2; }
trap on_error ERR

# Versions: those of the x86 environment (.venv), so both sides run the same
# code; the defaults below when it has none; NAME_VERSION=... overrides.
HOST_PY=$REPO/.venv/bin/python
[ -x "$HOST_PY" ] || HOST_PY=python3
read -r V_NCNN V_ORT V_NUMPY V_OPENCV V_MNN < <("$HOST_PY" - <<'PY' 2>/dev/null || echo "- - - - -"
import importlib.metadata as m
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return '-'
print(*(version(n) for n in ('ncnn', 'onnxruntime', 'numpy', 'opencv-python', 'mnn')))
PY
)
pick() { if [ -n "$1" ]; then echo "$1"; elif [ "$2" != - ]; then echo "$2"; else echo "$3"; fi; }
NCNN_VERSION=$(pick "${NCNN_VERSION:-}" "$V_NCNN" 1.0.20261020)
ORT_VERSION=$(pick "${ORT_VERSION:-}" "$V_ORT" 1.26.0)
NUMPY_VERSION=$(pick "${NUMPY_VERSION:-}" "$V_NUMPY" 2.4.6)
OPENCV_VERSION=$(pick "${OPENCV_VERSION:-}" "$V_OPENCV" 5.0.0.93)
MNN_VERSION=$(pick "${MNN_VERSION:-}" "$V_MNN" 3.6.1)
# Without their dependencies: importing them needs none but numpy.
PINNED="mnn==$MNN_VERSION
ncnn==$NCNN_VERSION
numpy==$NUMPY_VERSION
onnxruntime==$ORT_VERSION
opencv-python-headless==$OPENCV_VERSION"
PYTAG=cp${PYVER/./}
WHEELS_KEY=wheels-$PYTAG-$(printf '%s\n' "$PINNED" | sha256sum | cut -c1-12)

ROOT=$ARM64/$SUITE-root
SITE=$ARM64/$WHEELS_KEY/site
NCNN_PREFIX=$ARM64/ncnn-$NCNN_VERSION-aarch64
TOOLCHAIN=$REPO/demo/cpp/aarch64-linux-gnu.toolchain.cmake

print_paths() {
    echo "CACHE=$ARM64"
    echo "ROOT=$ROOT"
    echo "PYTHON=$ROOT/usr/bin/python$PYVER"
    echo "SITE=$SITE"
    echo "NCNN_PREFIX=$NCNN_PREFIX"
    echo "NCNN_DIR=$NCNN_PREFIX/lib/cmake/ncnn"
    echo "TOOLCHAIN=$TOOLCHAIN"
    echo "QEMU=$(command -v qemu-aarch64-static || echo /usr/bin/qemu-aarch64-static)"
}
if [ "${1:-}" = --paths ]; then print_paths; exit 0; fi
[ $# -eq 0 ] || die "usage: $0 [--paths]"

mkdir -p "$ARM64"
# One set-up at a time (a second one waits, then finds everything done).
exec 9>"$ARM64/.lock"
if ! flock -n 9; then
    echo "==> waiting for another arm64 set-up to finish ($ARM64/.lock)"
    flock 9
fi
# Leftovers of runs killed hard (the EXIT trap removes the others).
find "$ARM64" -maxdepth 1 -name '.tmp-*' -exec rm -rf {} +
# Each step works in a temporary directory T next to its final one (same
# file system, so the final rename is atomic), removed on exit.
TMPDIRS=()
new_tmp() { T=$(mktemp -d "$ARM64/.tmp-$1.XXXXXX"); TMPDIRS+=("$T"); }
cleanup() { local d; for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
PIP=("$HOST_PY" -m pip --disable-pip-version-check)

# 1. Debian packages -------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
        else EXIT_CODE=3 die "cannot install ${missing[*]}: not root and no password-less sudo"; fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$ARM64/apt.log" 2>&1; then
        tail -n 20 "$ARM64/apt.log" >&2
        EXIT_CODE=3 die "apt-get install ${missing[*]} failed"
    fi
else
    step "Debian packages present (${APT_PACKAGES[*]})"
fi
command -v qemu-aarch64-static >/dev/null || EXIT_CODE=3 die "qemu-aarch64-static not found after installing qemu-user-static"

# 2. Debian arm64 root with python3.11 ------------------------------------
if [ ! -x "$ROOT/usr/bin/python$PYVER" ]; then
    step "debootstrap $SUITE arm64 root (minbase + python3) into $ROOT"
    [ "$(id -u)" -eq 0 ] || EXIT_CODE=3 die "debootstrap needs root"
    new_tmp root
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 \
        "$SUITE" "$T/root" "$MIRROR" >"$T/debootstrap.log" 2>&1 \
        || { tail -n 20 "$T/debootstrap.log" >&2; die "debootstrap failed (mirror $MIRROR)"; }
    # --foreign unpacks the essential packages only: the rest (python3.11
    # and its libraries) is just downloaded. Unpack every .deb (no
    # maintainer scripts run; python needs none to start).
    step "unpack $(ls "$T"/root/var/cache/apt/archives/*.deb | wc -l) .debs"
    # (not dpkg-deb -x: it would replace the merged-/usr links lib -> usr/lib).
    for deb in "$T"/root/var/cache/apt/archives/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$T/root"
    done
    # Not needed to run python (saves ~100 MB): the .debs, apt's package
    # lists, documentation and translations.
    rm -rf "$T"/root/var/cache/apt/archives/*.deb "$T"/root/var/lib/apt/lists/* \
        "$T"/root/usr/share/{doc,man,info,locale}
    [ -L "$T/root/lib" ] || die "unpacking replaced the merged-/usr symlink $T/root/lib"
    # qemu serves a file under QEMU_LD_PREFIX instead of the host's: give
    # the guest an ARM /proc/cpuinfo (onnxruntime's cpuinfo parser crashes on
    # the host's x86 one). Neoverse-N1-like, one entry per host core.
    # (debootstrap --foreign leaves proc as a link to the host's /proc).
    rm -f "$T/root/proc"
    mkdir -p "$T/root/proc"
    for ((i = 0; i < $(nproc); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
    done >"$T/root/proc/cpuinfo"
    # Debian byte-compiles the standard library when installing the packages
    # (py3compile, not run here): do it now, on the host, for the same
    # reason as the wheels below.
    step "byte-compile the arm64 standard library"
    "$HOST_PY" -m compileall -q -j 0 -s "$T/root" -p / "$T/root/usr/lib/python$PYVER" >/dev/null || true
    step "check the arm64 python"
    got=$(env -i QEMU_LD_PREFIX="$T/root" qemu-aarch64-static "$T/root/usr/bin/python$PYVER" \
          -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])')
    echo "    $got"
    case $got in aarch64*) ;; *) die "unexpected answer from the arm64 python: $got";; esac
    rm -rf "$ROOT"  # a leftover incomplete one (no python) cannot be reused
    mv "$T/root" "$ROOT"
else
    step "reuse $ROOT"
fi

# 3. aarch64 wheels --------------------------------------------------------
if [ ! -f "$SITE/.complete" ]; then
    step "download aarch64 wheels: $(echo $PINNED)"
    new_tmp wheels
    # shellcheck disable=SC2086
    "${PIP[@]}" download -q --no-deps --only-binary=:all: \
        --python-version $PYVER --implementation cp --abi $PYTAG --abi abi3 \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64 \
        -d "$T/wheels" $PINNED >"$T/pip.log" 2>&1 \
        || { grep -v '^WARNING: Location' "$T/pip.log" | tail -n 20 >&2; die "pip download of the aarch64 wheels failed"; }
    step "unpack $(ls "$T"/wheels/*.whl | wc -l) wheels into one site directory"
    mkdir -p "$T/site"
    for whl in "$T"/wheels/*.whl; do
        "$HOST_PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$T/site"
    done
    # Byte-compile on the host (.pyc files do not depend on the machine, only
    # on the Python minor version): the emulated python then need not
    # compile numpy on every start.
    "$HOST_PY" -m compileall -q -j 0 -s "$T/site" -p "$SITE" "$T/site" >/dev/null || true
    printf '%s\n' "$PINNED" >"$T/site/.complete"
    rm -rf "$(dirname "$SITE")"
    mkdir -p "$(dirname "$SITE")"
    mv "$T/site" "$SITE"
else
    step "reuse $SITE"
fi

# 4. ncnn C++ library for aarch64 -----------------------------------------
if [ ! -f "$NCNN_PREFIX/lib/cmake/ncnn/ncnnConfig.cmake" ]; then
    step "download the ncnn $NCNN_VERSION source distribution"
    new_tmp ncnn
    # ncnn's setup.py stamps today's date into its version, so the sdist of
    # version 1.0.YYYYMMDD only builds its metadata on that day: fake it.
    day=${NCNN_VERSION##*.}
    faketime "${day:0:4}-${day:4:2}-${day:6:2} 12:00:00" \
        "${PIP[@]}" download -q --no-binary=ncnn --no-deps \
        "ncnn==$NCNN_VERSION" -d "$T" >"$T/download.log" 2>&1 \
        || { tail -n 20 "$T/download.log" >&2; die "could not download the ncnn sdist"; }
    tar -xzf "$T"/ncnn-"$NCNN_VERSION".tar.gz -C "$T"
    SRC=$T/ncnn-$NCNN_VERSION
    JOBS=${MAX_JOBS:-$(nproc)}
    step "cross-build ncnn for aarch64 (static, no Vulkan; $JOBS jobs, several minutes)"
    cmake -S "$SRC" -B "$T/build" -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$T/install" \
        -DNCNN_VULKAN=OFF -DNCNN_BUILD_EXAMPLES=OFF -DNCNN_BUILD_TESTS=OFF \
        -DNCNN_BUILD_TOOLS=OFF -DNCNN_BUILD_BENCHMARK=OFF -DNCNN_SHARED_LIB=OFF \
        -DNCNN_PYTHON=OFF -DNCNN_VERSION="$day" >"$T/cmake.log" 2>&1 \
        || { tail -n 30 "$T/cmake.log" >&2; die "cmake configure of ncnn failed (log above)"; }
    BUILD_START=$(date +%s)
    cmake --build "$T/build" -j "$JOBS" >"$T/build.log" 2>&1 &
    BUILD_PID=$!
    while kill -0 "$BUILD_PID" 2>/dev/null; do
        for _ in 1 2 3 4 5 6; do sleep 5; kill -0 "$BUILD_PID" 2>/dev/null || break 2; done
        progress=$(grep -o '^\[ *[0-9]*%\]' "$T/build.log" | tail -n 1 | tr -d ' []' || true)
        echo "    ncnn build: $(elapsed "$BUILD_START"), ${progress:-0%}"
    done
    wait "$BUILD_PID" || { tail -n 30 "$T/build.log" >&2; die "ncnn build failed (log above)"; }
    cmake --install "$T/build" >/dev/null
    rm -rf "$NCNN_PREFIX"
    mv "$T/install" "$NCNN_PREFIX"
    echo "    ncnn built in $(elapsed "$BUILD_START")"
else
    step "reuse $NCNN_PREFIX"
fi

step "done: arm64 emulation ready ($(du -sh "$ARM64" 2>/dev/null | cut -f1) in $ARM64)"
print_paths
exit
}
