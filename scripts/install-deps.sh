#!/usr/bin/env bash
# Installs the Debian 12 packages Rampart builds, tests and benchmarks with.
# Used by .ci/run, the quickstart (demo.sh) and deploy/Dockerfile's build stage.
# Usage: scripts/install-deps.sh [build|test]   (default: test = everything)
set -euo pipefail

profile="${1:-test}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libnftables-dev libpqxx-dev libcli11-dev
  nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev libssl-dev openssl
)
test_pkgs=(
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev clang-format
  postgresql-15 fail2ban python3 python3-yaml iproute2 nftables procps ipset
  iptables hydra curl
  systemd podman runc debootstrap podman-compose netavark aardvark-dns
)

pkgs=("${build_pkgs[@]}")
if [ "$profile" = test ]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
