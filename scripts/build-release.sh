#!/usr/bin/env bash
# Builds the release binaries and stages them under PREFIX/bin:
# rampart-server, rampart-agent, rampartctl. The ONE build script of
# deploy/Dockerfile's build stage; .ci/run runs it too (into a temporary
# prefix) so the image build is exercised without a Docker engine.
#
#   scripts/build-release.sh PREFIX
#
# Steps: install the Debian build packages (scripts/install-deps.sh build),
# configure an optimised build (-O2, with debug info; the staged copies are
# stripped) in $BUILD_DIR (default build-release), build the three binaries,
# install them stripped into PREFIX/bin, check each starts (--version), and
# check that deploy/runtime-packages.txt (what the slim runtime image
# installs) still matches the libraries the binaries link
# (scripts/check-runtime-deps.sh).
# Environment: BUILD_DIR, JOBS (default nproc), CMAKE_EXTRA_ARGS,
# DEBUG_INFO=0 (no -g), and WITH_TESTS=1 to configure the tests and
# benchmarks too: .ci/run uses this script as its main build (BUILD_DIR=build
# WITH_TESTS=1), so the binaries the image ships are compiled exactly as the
# ones the test suite runs.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: scripts/build-release.sh PREFIX" >&2
  exit 2
fi
prefix="$1"
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build-release}"
jobs="${JOBS:-$(nproc)}"
binaries=(rampart-server rampart-agent rampartctl)

scripts/install-deps.sh build

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# shellcheck disable=SC2086  # CMAKE_EXTRA_ARGS is a list of words
# RelWithDebInfo is -O2 -g (as Debian builds its packages); not -O3: GCC 12
# at -O3 reports false -Wrestrict positives inside std::string (GCC bug
# 105329), and warnings are errors for our code.
with_tests=OFF
if [ "${WITH_TESTS:-0}" = 1 ]; then
  with_tests=ON
fi
# DEBUG_INFO=0 drops -g (same -O2 code; the staged copies are stripped
# anyway): .ci/run uses it to save compile and link time.
flags=()
if [ "${DEBUG_INFO:-1}" = 0 ]; then
  flags=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG"
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG")
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRAMPART_BUILD_TESTS="$with_tests" -DRAMPART_BUILD_BENCH="$with_tests" \
  "${launcher[@]}" "${flags[@]}" ${CMAKE_EXTRA_ARGS:-}
cmake --build "$build_dir" -j "$jobs" --target "${binaries[@]}"

install -d "$prefix/bin"
for b in "${binaries[@]}"; do
  install -s -m 0755 "$build_dir/bin/$b" "$prefix/bin/$b"
  echo "build-release: $prefix/bin/$b: $("$prefix/bin/$b" --version)"
done
scripts/check-runtime-deps.sh "$prefix/bin"
