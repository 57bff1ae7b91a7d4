#!/usr/bin/env bash
# Builds the Windows (MinGW-w64, x86_64) dependency stack of rampart-agent from
# Debian's own source packages, at exactly the versions the Linux build uses:
# OpenSSL, Abseil, Protobuf (with libprotoc), RE2, c-ares and gRPC, static,
# Release, into a cache prefix OUTSIDE the source tree. Built once per machine.
#
# Usage:
#   scripts/build-mingw-deps.sh                 build if missing; last line of
#                                               stdout is the prefix path
#   scripts/build-mingw-deps.sh --print-prefix  print the prefix for this
#                                               machine's versions, build nothing
#   scripts/build-mingw-deps.sh --check         exit 0 if that prefix is complete
# Run it niced on a shared machine: `nice -n 19 scripts/build-mingw-deps.sh`.
# It takes ~45 minutes on 2 cores (docs/windows.md has the measured times).
#
# Environment:
#   RAMPART_MINGW_DEPS_CACHE  cache root (default /var/cache/rampart/mingw-deps)
#   RAMPART_MINGW_DEPS_JOBS   parallel jobs (default: nproc)
#   RAMPART_MINGW_DEPS_KEEP_WORK=1  keep the build directory after success
#   RAMPART_MINGW_DEPS_NO_APT=1     do not install packages or touch apt config
#
# The prefix is <cache>/<key>; the key is derived from the six source package
# versions, the MinGW toolchain versions and RECIPE below (bump RECIPE when a
# change here changes what is built). A prefix is complete when its stamp file
# (written last, before an atomic rename from the staging dir) exists; then
# the script does nothing but print the path.
#
# Safe to interrupt and re-run: sources and objects live in <cache>/.work-<key>,
# the install goes to <cache>/.staging-<key>, each finished step leaves a stamp
# in the work dir so a re-run resumes after the last finished step, and only
# the final rename makes the prefix visible. A lock serialises concurrent runs.
#
# What it needs from the host (installed unless RAMPART_MINGW_DEPS_NO_APT=1):
# g++-mingw-w64-x86-64-posix mingw-w64-tools libz-mingw-w64-dev wine64
# unicode-data dpkg-dev, and a deb-src entry (added as
# /etc/apt/sources.list.d/rampart-deb-src.{sources,list} if none is present).
set -euo pipefail

RECIPE=1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
TOOLCHAIN_FILE="$REPO_DIR/cmake/toolchains/mingw-w64-x86_64.cmake"
CACHE_ROOT="${RAMPART_MINGW_DEPS_CACHE:-/var/cache/rampart/mingw-deps}"
JOBS="${RAMPART_MINGW_DEPS_JOBS:-$(nproc)}"
TRIPLE=x86_64-w64-mingw32
STAMP_NAME=.rampart-mingw-deps-complete

mode=build
case "${1:-}" in
  "") ;;
  --print-prefix) mode=print ;;
  --check) mode=check ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "build-mingw-deps: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

log() { echo "build-mingw-deps: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- host setup
# Debian source package -> a binary package of it whose version the Linux
# build uses (installed by scripts/install-deps.sh).
declare -A BIN_OF=(
  [openssl]=libssl-dev [abseil]=libabsl-dev [protobuf]=libprotobuf-dev
  [re2]=libre2-dev [c-ares]=libc-ares-dev [grpc]=libgrpc++-dev
)
SOURCES=(openssl abseil protobuf re2 c-ares grpc)
HOST_PKGS=(g++-mingw-w64-x86-64-posix mingw-w64-tools libz-mingw-w64-dev wine64
  unicode-data dpkg-dev cmake ninja-build perl python3 make
  protobuf-compiler protobuf-compiler-grpc)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

install_host_packages() {
  local missing=() p
  for p in "${HOST_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if ! $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
  fi
}

have_deb_src() { apt-cache showsrc grpc 2>/dev/null | grep -q '^Package: grpc$'; }

# Adds deb-src twins of the host's Debian entries in a file of our own (the
# host's files are not edited). If apt-get update then fails, the file is
# removed again so the host's apt config stays as it was.
ensure_deb_src() {
  have_deb_src && return 0
  local dir=/etc/apt/sources.list.d out
  if [ -f "$dir/debian.sources" ]; then
    out="$dir/rampart-deb-src.sources"
    sed -E 's/^Types:.*/Types: deb-src/' "$dir/debian.sources" | $SUDO tee "$out" >/dev/null
  elif grep -qE '^deb .*debian' /etc/apt/sources.list 2>/dev/null; then
    out="$dir/rampart-deb-src.list"
    grep -E '^deb .*debian' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
      $SUDO tee "$out" >/dev/null
  else
    die "no Debian apt source found to derive a deb-src entry from; add one by hand"
  fi
  log "added $out; apt-get update"
  if ! $SUDO apt-get -o DPkg::Lock::Timeout=600 update || ! have_deb_src; then
    $SUDO rm -f "$out"
    die "deb-src entry did not work; removed $out again"
  fi
}

# Version of the source package: that of apt's candidate for the binary
# package the Linux build uses, i.e. what scripts/install-deps.sh installs on
# a clean machine (the source of an older installed version may no longer be
# in the archive: security updates replace it).
source_version() {
  local bin="${BIN_OF[$1]}" v have
  v="$(apt-cache policy "$bin" | sed -n 's/^ *Candidate: //p')"
  v="${v%+b[0-9]*}"
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then die "no version known for $1 ($bin)"; fi
  have="$(dpkg-query -W -f='${source:Version}' "$bin" 2>/dev/null || true)"
  if [ -n "$have" ] && [ "$have" != "$v" ]; then
    log "note: $bin $have is installed, building $1 $v (apt's candidate)"
  fi
  echo "$v"
}

# ----------------------------------------------------------------- the key
declare -A VERSION
compute_key() {
  local s manifest
  for s in "${SOURCES[@]}"; do VERSION[$s]="$(source_version "$s")"; done
  manifest="recipe=$RECIPE"$'\n'
  for s in "${SOURCES[@]}"; do manifest+="$s=${VERSION[$s]}"$'\n'; done
  manifest+="g++-mingw-w64-x86-64-posix=$(dpkg-query -W -f='${Version}' g++-mingw-w64-x86-64-posix)"$'\n'
  manifest+="mingw-w64-x86-64-dev=$(dpkg-query -W -f='${Version}' mingw-w64-x86-64-dev)"$'\n'
  manifest+="libz-mingw-w64-dev=$(dpkg-query -W -f='${Version}' libz-mingw-w64-dev)"$'\n'
  manifest+="gcc=$($TRIPLE-g++-posix -dumpfullversion)"$'\n'
  MANIFEST="$manifest"
  local grpc_upstream="${VERSION[grpc]%%-*}"
  KEY="grpc${grpc_upstream}-gcc$($TRIPLE-g++-posix -dumpversion)-$(printf '%s' "$manifest" | sha256sum | cut -c1-12)"
}

if [ "$mode" = build ] && [ "${RAMPART_MINGW_DEPS_NO_APT:-0}" != 1 ]; then
  install_host_packages
fi
command -v "$TRIPLE-g++-posix" >/dev/null ||
  die "$TRIPLE-g++-posix missing (apt-get install g++-mingw-w64-x86-64-posix)"
compute_key
PREFIX="$CACHE_ROOT/$KEY"
complete() { [ -f "$PREFIX/$STAMP_NAME" ]; }

case "$mode" in
  print) echo "$PREFIX"; exit 0 ;;
  check)
    if complete; then echo "$PREFIX"; exit 0; fi
    log "missing: $PREFIX"
    exit 1
    ;;
esac
if complete; then
  log "up to date"
  echo "$PREFIX"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock-$KEY"
if ! flock -n 9; then
  log "another run is building $KEY; waiting for it"
  flock 9
fi
if complete; then
  log "built by the other run"
  echo "$PREFIX"
  exit 0
fi
[ -e "$PREFIX" ] && { log "removing incomplete $PREFIX"; rm -rf "$PREFIX"; }

[ "${RAMPART_MINGW_DEPS_NO_APT:-0}" = 1 ] || ensure_deb_src

WORK="$CACHE_ROOT/.work-$KEY"
STAGING="$CACHE_ROOT/.staging-$KEY"
# Step stamps only count together with the staging dir they installed into.
[ -d "$STAGING" ] || rm -rf "$WORK/done" "$WORK/step-times.txt"
mkdir -p "$WORK/src" "$WORK/build" "$WORK/done" "$STAGING"
TIMES="$WORK/step-times.txt"
log "key $KEY"
printf '%s' "$MANIFEST" | sed 's/^/  /' >&2
log "work $WORK, staging $STAGING, $JOBS jobs"

# run_step NAME FUNCTION: runs FUNCTION unless an earlier run finished it,
# logs and records its wall time.
run_step() {
  local name="$1" fn="$2" t0 t1
  if [ -f "$WORK/done/$name" ]; then
    log "step $name: done in an earlier run ($(cat "$WORK/done/$name") s)"
    return 0
  fi
  log "step $name: start $(date -u +%H:%M:%S)"
  t0=$(date +%s)
  "$fn"
  t1=$(date +%s)
  echo "$((t1 - t0))" >"$WORK/done/$name"
  echo "$name $((t1 - t0))" >>"$TIMES"
  log "step $name: $((t1 - t0)) s"
}

# Common CMake arguments for every dependency. An existing build dir is
# reused, so an interrupted step resumes where ninja stopped (gRPC alone is
# 1,239 build steps).
cmake_dep() {
  local name="$1" src="$2"
  shift 2
  cmake -S "$src" -B "$WORK/build/$name" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN_FILE" \
    -DRAMPART_MINGW_PREFIX="$STAGING" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$STAGING" \
    -DCMAKE_PREFIX_PATH="$STAGING" \
    -DCMAKE_CXX_STANDARD=17 \
    -DBUILD_SHARED_LIBS=OFF \
    -DBUILD_TESTING=OFF \
    "$@"
  cmake --build "$WORK/build/$name" -j "$JOBS"
  cmake --install "$WORK/build/$name"
}

# The unpacked source tree of a package (apt-get source's <name>-<upstream>).
src_dir() {
  local d
  d="$(find "$WORK/src/$1" -mindepth 1 -maxdepth 1 -type d | head -n1)"
  [ -n "$d" ] || die "no source tree for $1"
  echo "$d"
}

# ------------------------------------------------------------------ steps
step_fetch() {
  local s
  for s in abseil protobuf re2 c-ares grpc; do
    [ -f "$WORK/src/$s/.fetched" ] && continue
    rm -rf "$WORK/src/$s"
    mkdir -p "$WORK/src/$s"
    (cd "$WORK/src/$s" && apt-get source -q "$s=${VERSION[$s]}")
    touch "$WORK/src/$s/.fetched"
  done
  # OpenSSL: only the upstream tarball is needed (Debian's patches are
  # packaging and Linux-only changes), and the security suite's mirror may
  # answer 404 for the .dsc/.debian.tar.xz, so apt-get source can fail after
  # fetching the tarball: accept it then if its SHA256 matches apt's index.
  local d="$WORK/src/openssl" v="${VERSION[openssl]}" uri orig sha
  rm -rf "$d"
  mkdir -p "$d"
  (cd "$d" && apt-get source -q --download-only "openssl=$v") ||
    log "note: apt-get source openssl=$v failed; checking the orig tarball"
  # (--print-uris omits files already present in the current directory)
  uri="$(cd "$WORK" && apt-get source -q --print-uris "openssl=$v" | grep -E "orig\.tar\.gz' " || true)"
  orig="$(echo "$uri" | awk '{print $2}')"
  sha="$(echo "$uri" | sed -n 's/.*SHA256:\([0-9a-f]*\).*/\1/p')"
  if [ -z "$orig" ] || [ ! -f "$d/$orig" ]; then die "openssl orig tarball not downloaded"; fi
  echo "$sha  $d/$orig" | sha256sum -c --quiet - || die "$orig: SHA256 mismatch"
  tar xf "$d/$orig" -C "$d"
}

step_openssl() {
  local src b="$WORK/build/openssl"
  src="$(src_dir openssl)"
  rm -rf "$b"
  cp -a "$src" "$b"
  (cd "$b" &&
    ./Configure mingw64 --cross-compile-prefix=$TRIPLE- no-shared no-tests \
      --prefix="$STAGING" --libdir=lib &&
    make -j "$JOBS" build_libs &&
    make install_dev)
}

step_abseil() {
  cmake_dep abseil "$(src_dir abseil)" -DABSL_PROPAGATE_CXX_STD=ON -DABSL_BUILD_TESTING=OFF
}

step_protobuf() {
  # libprotoc is needed too: gRPC's grpc_plugin_support links it even with
  # codegen off. Code generation itself uses the host's protoc (same version).
  cmake_dep protobuf "$(src_dir protobuf)" -Dprotobuf_BUILD_TESTS=OFF \
    -Dprotobuf_BUILD_PROTOC_BINARIES=ON -Dprotobuf_BUILD_SHARED_LIBS=OFF \
    -Dprotobuf_WITH_ZLIB=OFF -Dprotobuf_BUILD_EXAMPLES=OFF
}

step_re2() {
  local src
  src="$(src_dir re2)"
  # Debian's +dfsg tarball strips the generated tables; regenerate them
  # (unicode tables from /usr/share/unicode, package unicode-data).
  (cd "$src/re2" &&
    perl make_perl_groups.pl >perl_groups.cc &&
    python3 make_unicode_casefold.py >unicode_casefold.cc &&
    python3 make_unicode_groups.py >unicode_groups.cc)
  cmake_dep re2 "$src" -DRE2_BUILD_TESTING=OFF
}

step_c_ares() {
  # Debian's security patch uses INADDRSZ, which the Windows headers lack.
  cmake_dep c-ares "$(src_dir c-ares)" -DCARES_STATIC=ON -DCARES_SHARED=OFF \
    -DCARES_BUILD_TOOLS=OFF -DCARES_BUILD_TESTS=OFF -DCMAKE_C_FLAGS=-DINADDRSZ=4
}

step_grpc() {
  local p providers=()
  for p in ABSL CARES PROTOBUF RE2 SSL ZLIB; do providers+=("-DgRPC_${p}_PROVIDER=package"); done
  cmake_dep grpc "$(src_dir grpc)" "${providers[@]}" \
    -DgRPC_BUILD_TESTS=OFF -DgRPC_BUILD_CODEGEN=OFF -DgRPC_BUILD_CSHARP_EXT=OFF \
    -DgRPC_INSTALL=ON -DOPENSSL_ROOT_DIR="$STAGING" \
    -D_gRPC_PROTOBUF_PROTOC_EXECUTABLE=/usr/bin/protoc \
    "-DCMAKE_C_FLAGS=-D_WIN32_WINNT=0x0A00" "-DCMAKE_CXX_FLAGS=-D_WIN32_WINNT=0x0A00"
}

total0=$(date +%s)
run_step fetch step_fetch
run_step openssl step_openssl
run_step abseil step_abseil
run_step protobuf step_protobuf
run_step re2 step_re2
run_step c-ares step_c_ares
run_step grpc step_grpc

# ---------------------------------------------------------------- finish
# Text files (pkg-config, CMake) that name the staging dir get the final path.
grep -rlIF "$STAGING" "$STAGING" | while IFS= read -r f; do
  sed -i "s|$STAGING|$PREFIX|g" "$f"
done
{
  printf '%s' "$MANIFEST"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# step wall times (s)"
  cat "$TIMES" 2>/dev/null || true
} >"$STAGING/versions.txt"
date -u +%Y-%m-%dT%H:%M:%SZ >"$STAGING/$STAMP_NAME"
mv -T "$STAGING" "$PREFIX"
[ "${RAMPART_MINGW_DEPS_KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
log "done in $(($(date +%s) - total0)) s this run; $(du -sh "$PREFIX" | cut -f1) in $PREFIX"
echo "$PREFIX"
