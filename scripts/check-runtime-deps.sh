#!/usr/bin/env bash
# Checks that deploy/runtime-packages.txt (the Debian packages the slim
# runtime image of deploy/Dockerfile installs) is exactly the set of packages
# that own the shared libraries the staged binaries link directly (ELF
# NEEDED entries, resolved with ldd, owners from dpkg -S). Run by
# scripts/build-release.sh, so by the Docker build and by CI: the list cannot
# rot. Libraries needed only indirectly come with their packages'
# dependencies.
#
#   scripts/check-runtime-deps.sh DIR    (DIR/rampart-server, DIR/rampartctl)
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/check-runtime-deps.sh DIR" >&2
  exit 2
fi
dir="$1"
list="$(dirname "$0")/../deploy/runtime-packages.txt"

needed_pkgs() {
  local bin="$1" lib path
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path="$(ldd "$bin" | awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }')"
    if [ -z "$path" ] || [ "$path" = "not" ]; then
      echo "check-runtime-deps: $bin: $lib not found" >&2
      return 1
    fi
    # dpkg knows the path it installed; /lib is a symlink to /usr/lib on
    # Debian 12 (merged /usr), so try both spellings.
    dpkg -S "$path" 2>/dev/null || dpkg -S "${path#/usr}" 2>/dev/null ||
      dpkg -S "/usr$path" 2>/dev/null || {
      echo "check-runtime-deps: $bin: no package owns $path" >&2
      return 1
    }
  done | sed -E 's/^([^:,]+)[:,].*/\1/'
}

# The image's binaries (deploy/Dockerfile copies these two; rampart-agent
# runs on the Domino hosts and is not in the image).
image_binaries=(rampart-server rampartctl)
actual="$(for name in "${image_binaries[@]}"; do
  b="$dir/$name"
  [ -x "$b" ] && [ -f "$b" ] || { echo "check-runtime-deps: $b missing" >&2; exit 1; }
  needed_pkgs "$b"
done | sort -u)"
expected="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' | sort -u)"
if [ "$actual" != "$expected" ]; then
  echo "check-runtime-deps: deploy/runtime-packages.txt does not match what the binaries in $dir link:" >&2
  diff <(echo "$expected") <(echo "$actual") | sed -n 's/^</  listed, not linked:/p; s/^>/  linked, not listed:/p' >&2
  exit 1
fi
echo "check-runtime-deps: deploy/runtime-packages.txt matches ldd of ${image_binaries[*]} ($(echo "$expected" | wc -l) packages)"
