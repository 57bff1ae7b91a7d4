#!/usr/bin/env bash
# Builds deploy/Dockerfile with Podman and runs the image for real: the
# container test CI runs (.ci/run, after the gcc test suite). As root, on
# Debian 12 with podman, runc, debootstrap, podman-compose, netavark and
# aardvark-dns (scripts/install-deps.sh test). docs/operations.md "How this
# is verified" lists the commands and what is not exercised.
#
#   scripts/container-test.sh [--prebuilt DIR] [--bin DIR] [--no-compose]
#
#   --prebuilt DIR  build the image from the release binaries in DIR
#                   (scripts/build-release.sh PREFIX stages them in
#                   PREFIX/bin; .ci/run passes its own) with
#                   --build-arg RAMPART_BINARIES=prebuilt, instead of
#                   compiling the tree again in the Dockerfile's build stage
#                   (the default, what a user's `docker build` does)
#   --bin DIR       host binaries for the agent and rampartctl (build/bin)
#   --no-compose    skip the deploy/compose.yaml part
#
# What it does, each step printed as a `container-test:` line with its time:
#  1. A Debian 12 base image from Debian's packages (no registry is reachable
#     here): debootstrap --variant=minbase from the host's apt mirror, cached
#     as a tarball in $RAMPART_IMAGE_CACHE (default /var/cache/rampart; the
#     key covers the recipe and the host's Debian sources), imported as
#     docker.io/library/debian:12 and, trimmed like Docker's official slim
#     image, as :12-slim, so the Dockerfile's FROM lines resolve.
#  2. podman build --format docker (keeps HEALTHCHECK) --pull=never
#     --network host -f deploy/Dockerfile; reports the image size, checks the
#     labels, the fixed non-root user, that no compiler or header is in it.
#  3. Runs it (host network, read-only root, make-certs.sh material mounted
#     read-only, SQLite in a named volume): starts as uid 10001, applies the
#     migrations, HEALTHCHECK turns healthy, rampartctl from the host talks
#     mutual TLS to it, an agent on the host (dry-run firewall) enrolls,
#     streams events and receives a ban; `podman stop` (SIGTERM) drains and
#     exits 0; a second container on the same volume has every ban.
#  4. deploy/compose.yaml: see compose_test below.
# Podman's settings come from deploy/containers.conf (CONTAINERS_CONF; runc,
# no default ulimits, netavark); images, containers and volumes live in a
# private storage root under a temporary directory, all removed on exit,
# success or failure (trap), with compose's network and the iptables chains
# netavark added. Only the base tarballs stay, in the cache directory.
# Environment: RAMPART_IMAGE_CACHE, CONTAINER_TEST_MAX_MB (the limit on the
# bytes of the image's files, in MB; default 120).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
prebuilt=""
bin_dir="$ROOT/build/bin"
compose=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prebuilt) prebuilt="$(cd "$2" && pwd)"; shift 2 ;;
    --bin) bin_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --no-compose) compose=0; shift ;;
    *) echo "usage: scripts/container-test.sh [--prebuilt DIR] [--bin DIR] [--no-compose]" >&2
       exit 2 ;;
  esac
done

T0=$(date +%s)
say() { echo "container-test: [$(($(date +%s) - T0))s] $*"; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (podman with its own storage root, debootstrap)"
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps.sh test)"
done
for b in rampart-agent rampartctl; do
  [ -x "$bin_dir/$b" ] || fail "$bin_dir/$b missing (build it, or pass --bin DIR)"
done

export CONTAINERS_CONF="$ROOT/deploy/containers.conf"
work="$(mktemp -d /tmp/rampart-container-test.XXXXXX)"
chmod 0755 "$work"
# A private storage root: nothing this run makes outlives it, and other
# Podman users on the machine are not touched.
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
podman_args=(--runtime runc --tmpdir "$work/libpod")
pm() { podman "${podman_args[@]}" "$@"; }

agent_pid=""
long_pid=""
# in_background LOG COMMAND...: runs a long command (a build, debootstrap;
# an executable, not a function, so that $! is its pid) as a child, output
# to LOG, and waits for it, so that SIGINT/SIGTERM run the trap at once
# (which stops it) rather than after it.
in_background() {
  local log="$1"
  shift
  "$@" >"$log" 2>&1 &
  long_pid=$!
  local rc=0
  wait "$long_pid" || rc=$?
  long_pid=""
  return "$rc"
}
netavark_was_clean=""
ip_forward_before=""
# netavark's iptables chains (NETAVARK*) and the rules jumping to them.
netavark_rules() { iptables-save 2>/dev/null | grep -c NETAVARK || true; }
remove_netavark_rules() {
  local table
  for table in nat filter; do
    iptables -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j NETAVARK' |
      grep -v '^-A NETAVARK' | sed 's/^-A/-D/' | while read -r rule; do
      # shellcheck disable=SC2086  # a rule is a list of words
      eval iptables -t "$table" $rule
    done
    iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(NETAVARK[^ ]*\)$/\1/p' |
      while read -r chain; do iptables -t "$table" -F "$chain"; done
    iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(NETAVARK[^ ]*\)$/\1/p' |
      while read -r chain; do iptables -t "$table" -X "$chain"; done
  done
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$long_pid" ]; then
    kill "$long_pid" 2>/dev/null
    wait "$long_pid" 2>/dev/null
  fi
  if [ -n "$agent_pid" ]; then
    kill "$agent_pid" 2>/dev/null
    wait "$agent_pid" 2>/dev/null
  fi
  if [ "$rc" != 0 ]; then
    for c in $(pm ps -a --format '{{.Names}}' 2>/dev/null); do
      say "logs of $c (last 40 lines):"
      pm logs --tail 40 "$c" 2>&1 | sed 's/^/    /'
    done
    [ -f "$work/podman.log" ] && { say "podman.log (last 20 lines):"; tail -n 20 "$work/podman.log" | sed 's/^/    /'; }
    [ -f "$work/agent.log" ] && { say "agent log (last 40 lines):"; tail -n 40 "$work/agent.log" | sed 's/^/    /'; }
  fi
  pm rm -af -t 5 >/dev/null 2>&1
  pm volume rm -af >/dev/null 2>&1
  # compose's network (its definition is global: /etc/containers/networks),
  # then what netavark leaves on the host after its last network is gone.
  pm network rm -f rampartct_default >/dev/null 2>&1
  if [ -n "$netavark_was_clean" ]; then
    remove_netavark_rules
    sysctl -qw "net.ipv4.ip_forward=$ip_forward_before" 2>/dev/null
  fi
  pm rmi -af >/dev/null 2>&1
  # Anything still mounted under the private root (overlay layers, shm, the
  # overlay driver's own bind mount; an interrupted build may still be
  # letting go of them): unmounted, then the directory removed, a few tries.
  local _
  for _ in 1 2 3 4 5; do
    findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null
    done
    rm -rf "$work" 2>/dev/null
    [ -e "$work" ] || break
    sleep 1
  done
  [ ! -e "$work" ] || say "could not remove $work"
  if [ "$rc" = 0 ]; then
    say "cleaned up (containers, volumes, images, $work)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {  # SECONDS WHAT COMMAND...
  local limit="$1" what="$2" deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}

# --- 1. The Debian 12 base images ----------------------------------------
# The host's Debian sources (this script runs on Debian 12): the mirror for
# debootstrap and the sources the images' apt uses.
host_sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; do
  if [ -f "$f" ] && grep -qv '^[[:space:]]*\(#\|$\)' "$f"; then
    host_sources+=("$f")
  fi
done
mirror="$(cat "${host_sources[@]}" /dev/null 2>/dev/null | sed -n -E \
  -e 's|^URIs:[[:space:]]*([^[:space:]]*/debian)/?$|\1|p' \
  -e 's|^deb[[:space:]]+([^[:space:]]*/debian)/?[[:space:]]+bookworm[[:space:]].*|\1|p' | head -n1)"
mirror="${mirror:-http://deb.debian.org/debian}"
# The recipe's version: change it when make_base changes.
recipe="minbase-slim-v2"
cache="${RAMPART_IMAGE_CACHE:-/var/cache/rampart}"
key="$( { echo "$recipe $mirror"; cat "${host_sources[@]}" /dev/null; } | sha256sum | cut -c1-12)"
base_tar="$cache/debian-bookworm-$key.tar"
slim_tar="$cache/debian-bookworm-slim-$key.tar"

make_base() {
  local rootfs="$work/rootfs"
  say "debootstrap --variant=minbase bookworm from $mirror (cold cache)"
  in_background "$work/debootstrap.log" \
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" ||
    { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
  # apt inside the image uses the host's Debian sources (updates, security).
  if [ ${#host_sources[@]} -gt 0 ]; then
    rm -f "$rootfs/etc/apt/sources.list"
    for f in "${host_sources[@]}"; do cp "$f" "$rootfs$f"; done
  fi
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/* "$rootfs"/debootstrap \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/var/cache/ldconfig/aux-cache
  mkdir -p "$cache"
  tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  # :12-slim as Docker's official image makes it: dpkg leaves out
  # documentation, manuals and translations, apt keeps no package cache.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
  find "$rootfs/usr/share/doc" -depth -type d -empty -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -cf "$slim_tar.tmp" . && mv "$slim_tar.tmp" "$slim_tar"
  rm -rf "$rootfs"
  # Older bases (another key) are not needed any more.
  find "$cache" -maxdepth 1 -name 'debian-bookworm-*.tar' ! -name "$(basename "$base_tar")" \
    ! -name "$(basename "$slim_tar")" -delete
}

if [ -s "$base_tar" ] && [ -s "$slim_tar" ]; then
  say "base: cached $base_tar (warm)"
else
  make_base
  say "base: made $base_tar and $(basename "$slim_tar")"
fi
pm import -q "$base_tar" docker.io/library/debian:12 >/dev/null
pm import -q "$slim_tar" docker.io/library/debian:12-slim >/dev/null
say "base: imported docker.io/library/debian:12 ($(du -m "$base_tar" | cut -f1) MB)" \
  "and :12-slim ($(du -m "$slim_tar" | cut -f1) MB)"

# --- 2. Build the image ---------------------------------------------------
image=localhost/rampart-server:container-test
build_args=()
context="$ROOT"
if [ -n "$prebuilt" ]; then
  # A context with only what the prebuilt path and the runtime stage read.
  context="$work/context"
  mkdir -p "$context/deploy" "$context/prebuilt/bin"
  cp deploy/runtime-packages.txt deploy/rampart-server.container.yaml "$context/deploy/"
  for b in rampart-server rampart-agent rampartctl; do
    cp "$prebuilt/$b" "$context/prebuilt/bin/"
  done
  build_args=(--build-arg RAMPART_BINARIES=prebuilt)
  say "build: deploy/Dockerfile with the prebuilt binaries of $prebuilt (RAMPART_BINARIES=prebuilt)"
else
  say "build: deploy/Dockerfile from source (the build stage compiles the tree)"
fi
t=$(date +%s)
in_background "$work/build.log" podman "${podman_args[@]}" build --format docker \
  --pull=never --network host -f "$ROOT/deploy/Dockerfile" "${build_args[@]}" \
  -t "$image" "$context" ||
  { tail -n 40 "$work/build.log"; fail "podman build failed"; }
# Two sizes: podman's (the uncompressed layer archives, tar headers
# included: what `podman images` shows) and the bytes of the files in the
# image (each hard-linked file once).
size=$(pm image inspect --format '{{.Size}}' "$image")
mnt="$(pm image mount "$image")"
files=$(find "$mnt" -xdev \( -type f -o -type l \) -printf '%i %s\n' | sort -u |
  awk '{ s += $2 } END { print s }')
pm image unmount "$image" >/dev/null
size_mb=$(((size + 500000) / 1000000))
files_mb=$(((files + 500000) / 1000000))
say "build: $image built in $(($(date +%s) - t))s; image size ${size_mb} MB" \
  "(podman images, $size bytes), files ${files_mb} MB ($files bytes)"
max_mb="${CONTAINER_TEST_MAX_MB:-120}"
[ "$files" -le $((max_mb * 1000000)) ] || fail "the image's files add up to ${files_mb} MB, over ${max_mb} MB"

version="$("$bin_dir/rampartctl" --version 2>/dev/null | awk '{print $NF}')"
label() { pm image inspect --format "{{index .Labels \"$1\"}}" "$image"; }
[ "$(label org.opencontainers.image.version)" = "$version" ] ||
  fail "label org.opencontainers.image.version is '$(label org.opencontainers.image.version)', binaries say '$version'"
[ -n "$(label org.opencontainers.image.source)" ] || fail "no org.opencontainers.image.source label"
user="$(pm image inspect --format '{{.Config.User}}' "$image")"
[ "$user" = "10001:10001" ] || fail "image user is '$user', not 10001:10001"
pm image inspect --format '{{json .Config.Healthcheck}}' "$image" | grep -q healthcheck ||
  fail "the image has no HEALTHCHECK (built without --format docker?)"
dev="$(pm run --rm --network none --entrypoint /bin/sh "$image" -c \
  "dpkg-query -W -f '\${Package}\n' | grep -E -- '-dev\$|^(gcc|g\+\+|cpp|clang|binutils)(-[0-9]+)?\$';
   ls /usr/include 2>/dev/null | head -n 3; command -v cc gcc c++ ld" 2>>"$work/podman.log" || true)"
[ -z "$dev" ] || fail "compilers or headers in the runtime image: $dev"
say "image: labels version=$version source=$(label org.opencontainers.image.source)," \
  "user $user, HEALTHCHECK present, no compiler or header"

# --- 3. Run it ------------------------------------------------------------
for port in 7443 9443; do
  ! ss -Hltn "sport = :$port" | grep -q . || fail "port $port is in use on this host"
done
pki="$work/pki"
deploy/make-certs.sh "$pki" --admin ops 2>/dev/null
chown -R 10001:10001 "$pki"
pm volume create rampart-data >/dev/null
server_log() { pm logs "$1" 2>&1; }
run_server() {  # NAME [podman run flags...]
  local name="$1"
  shift
  # Without systemd (CI) podman cannot time the HEALTHCHECK and says so on
  # stderr (kept in podman.log); it runs when asked: podman healthcheck run.
  pm run -d --name "$name" --network host "$@" \
    -v "$pki:/etc/rampart/pki:ro" -v rampart-data:/var/lib/rampart "$image" \
    >/dev/null 2>>"$work/podman.log"
  serving() {
    [ "$(pm inspect --format '{{.State.Running}}' "$name")" = true ] ||
      fail "$name exited: $(server_log "$name" | tail -n 5)"
    server_log "$name" | grep -q 'serving agents and admin on'
  }
  wait_for 60 "$name to serve" serving
}
healthy() {
  pm healthcheck run "$1" >/dev/null 2>&1 &&
    [ "$(pm inspect --format '{{.State.Health.Status}}' "$1")" = healthy ]
}

t=$(date +%s)
# --read-only-tmpfs=false: no tmpfs on /tmp, /run (as docker run --read-only).
run_server rampart-1 --read-only --read-only-tmpfs=false
say "run: rampart-1 (read-only root) serving in $(($(date +%s) - t))s:" \
  "$(server_log rampart-1 | grep -m1 'serving agents and admin on' | sed 's/.*: serving/serving/')"
pid="$(pm inspect --format '{{.State.Pid}}' rampart-1)"
uid="$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")"
[ "$uid" = 10001 ] || fail "the server runs as uid $uid, not 10001"
migrations="$(server_log rampart-1 | grep -c 'applied migration' || true)"
[ "$migrations" -ge 1 ] || fail "no 'applied migration' line in the log"
say "run: server pid $pid runs as uid $uid; $migrations migrations applied"
t=$(date +%s)
wait_for 60 "rampart-1 to turn healthy" healthy rampart-1
say "run: HEALTHCHECK healthy in $(($(date +%s) - t))s (podman healthcheck run)"

# rampartctl from the host, mutual TLS with the make-certs.sh CA.
(umask 077 && pm exec rampart-1 rampart-server token create container-test --role admin \
  --config /etc/rampart/rampart-server.yaml >"$work/admin.token" 2>>"$work/podman.log")
ctl() {
  "$bin_dir/rampartctl" --server localhost:7443 --ca-file "$pki/ca.pem" \
    --token-file "$work/admin.token" "$@"
}
ctl status >/dev/null || fail "rampartctl status failed"
say "ctl: rampartctl status over TLS from the host works"

# An agent on the host: enroll, stream events, enforce a ban.
agent_dir="$work/agent"
mkdir -p "$agent_dir/state"
: >"$agent_dir/console.log"
enroll_token="$(ctl agents enroll ct-agent --site container-test --ttl 10m | tail -n1 | awk '{print $NF}')"
"$bin_dir/rampart-agent" enroll --server localhost:7443 --ca-file "$pki/ca.pem" \
  --token "$enroll_token" --agent-id ct-agent --state-dir "$agent_dir/state" \
  >"$work/enroll.log" 2>&1 || { cat "$work/enroll.log"; fail "agent enrollment failed"; }
cat >"$agent_dir/agent.yaml" <<EOF
servers: ["localhost:7443"]
agent_id: ct-agent
site: container-test
logs:
  - path: $agent_dir/console.log
    date_order: dmy
# The log is empty when the agent starts: every line appended is new, even
# one written before the tailer first opens the file.
read_existing_logs: true
state_dir: $agent_dir/state
firewall:
  backend: dry-run
batch:
  flush_interval: 200ms
local_fallback:
  enabled: false
EOF
start_agent() {
  "$bin_dir/rampart-agent" run --config "$agent_dir/agent.yaml" >>"$work/agent.log" 2>&1 &
  agent_pid=$!
}
start_agent
agent_connected() { ctl agents list --connected --json 2>/dev/null | grep -q '"ct-agent"'; }
wait_for 30 "the agent to connect" agent_connected
say "agent: enrolled (certificate signed by the server) and connected"
events_now() { ctl status --json 2>/dev/null | sed -n 's/.*"events_last_hour": *\([0-9]*\).*/\1/p'; }
for i in 1 2 3; do
  echo "$(date '+%d.%m.%Y %H:%M:%S')   smtp: ct$i [198.51.100.$i] authentication failure using internet password" \
    >>"$agent_dir/console.log"
done
three_events() { local e; e="$(events_now)"; [ -n "$e" ] && [ "$e" -ge 3 ]; }
wait_for 30 "the server to store the agent's 3 events" three_events
say "agent: streamed 3 events, the server stored them"
ctl bans add 203.0.113.7 --for 2h --reason "container-test" >/dev/null
ctl bans add 2001:db8::7 --for 2h --reason "container-test" >/dev/null
ban_enforced() {
  grep -q 'would block.*203\.0\.113\.7' "$work/agent.log" &&
    grep -q 'would block.*2001:db8::7' "$work/agent.log" &&
    ! ctl agents list --json 2>/dev/null | grep -q '"revision_lag": [1-9]'
}
wait_for 30 "the bans to reach the agent" ban_enforced
say "agent: the bans made with rampartctl reached it: $(grep -m1 'would block.*203\.0\.113\.7' "$work/agent.log" | sed 's/.*dry-run: //')"
bans_before="$(ctl bans list --json | grep -oE '"(prefix|cidr|address)": *"[^"]*"' | sort)"
[ -n "$bans_before" ] || fail "rampartctl bans list --json shows no ban"

# SIGTERM: podman stop drains and exits 0.
t=$(date +%s)
pm stop -t 30 rampart-1 >/dev/null 2>>"$work/podman.log"
code="$(pm inspect --format '{{.State.ExitCode}}' rampart-1)"
[ "$code" = 0 ] || fail "rampart-1 exited $code after SIGTERM"
# conmon may still be writing the last lines when podman stop returns.
drained() {
  server_log rampart-1 | grep -q 'signal 15: draining' &&
    server_log rampart-1 | grep -q 'draining agent streams' &&
    server_log rampart-1 | grep -q 'stopped at revision'
}
wait_for 10 "the drain lines (signal 15: draining, draining agent streams, stopped at revision) in the log" drained
say "stop: SIGTERM drained and exited 0 in $(($(date +%s) - t))s:" \
  "$(server_log rampart-1 | grep -m1 'stopped at revision' | sed 's/.*\] *//')"

# A new container on the same volume (writable root this time) keeps the bans.
t=$(date +%s)
run_server rampart-2
wait_for 60 "rampart-2 to turn healthy" healthy rampart-2
bans_after="$(ctl bans list --json | grep -oE '"(prefix|cidr|address)": *"[^"]*"' | sort)"
[ "$bans_before" = "$bans_after" ] || fail "bans differ after the restart: before [$bans_before] after [$bans_after]"
wait_for 60 "the agent to reconnect" agent_connected
say "restart: rampart-2 on the same volume healthy in $(($(date +%s) - t))s, keeps all" \
  "$(echo "$bans_after" | wc -l) bans, the agent reconnected"
pm stop -t 30 rampart-2 >/dev/null 2>>"$work/podman.log"
[ "$(pm inspect --format '{{.State.ExitCode}}' rampart-2)" = 0 ] || fail "rampart-2 did not exit 0"
kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=""
pm rm -a >/dev/null 2>>"$work/podman.log"

# --- 4. deploy/compose.yaml -----------------------------------------------
# podman-compose (Debian's 1.0.3) runs the repository's compose.yaml as it
# is, from a copy of deploy/ with a .env and make-certs.sh material (the tree
# stays clean). postgres:15 cannot be pulled: tests/deploy/postgres15 builds
# a stand-in from Debian's postgresql-15 on the same base, tagged
# docker.io/library/postgres:15; rampart-server:0.1.0 is the image built
# above (compose's `build:` is not run again). What podman-compose 1.0.3 does
# not do: wait for `condition: service_healthy` (it starts postgres first,
# then the server, which exits 1 while PostgreSQL is not up yet and is
# restarted by `restart: unless-stopped`); shm_size and healthchecks are
# passed to podman as given.
compose_test() {
  command -v podman-compose >/dev/null || fail "podman-compose missing (scripts/install-deps.sh test)"
  local t dir="$work/compose" project=rampartct srv pg
  t=$(date +%s)
  in_background "$work/postgres-build.log" podman "${podman_args[@]}" build --format docker \
    --pull=never --network host -t docker.io/library/postgres:15 tests/deploy/postgres15 ||
    { tail -n 20 "$work/postgres-build.log"; fail "building the postgres:15 stand-in failed"; }
  say "compose: postgres:15 stand-in (Debian postgresql-15) built in $(($(date +%s) - t))s"
  pm tag "$image" localhost/rampart-server:0.1.0
  # The compose network (netavark) adds iptables rules and may turn on IPv4
  # forwarding: undone on exit when the host had none of it before.
  if [ "$(netavark_rules)" = 0 ] && ! ls /etc/containers/networks/*.json >/dev/null 2>&1; then
    ip_forward_before="$(sysctl -n net.ipv4.ip_forward)"
    netavark_was_clean=1
  fi
  mkdir -p "$dir"
  cp deploy/compose.yaml deploy/rampart-server.compose.yaml "$dir/"
  cp -a "$pki" "$dir/pki"
  (umask 077 && echo "RAMPART_DB_PASSWORD=$(openssl rand -hex 24)" >"$dir/.env")
  pc() {
    (cd "$dir" && podman-compose -p "$project" -f compose.yaml \
      --podman-args="--runtime runc --tmpdir $work/libpod" "$@")
  }
  srv="${project}_rampart-server_1"
  pg="${project}_postgres_1"
  t=$(date +%s)
  pc up -d >"$work/compose-up.log" 2>&1 || { tail -n 30 "$work/compose-up.log"; fail "podman-compose up failed"; }
  wait_for 90 "postgres to turn healthy" healthy "$pg"
  wait_for 120 "rampart-server (compose) to turn healthy" healthy "$srv"
  server_log "$srv" | grep -q 'database postgresql' || fail "the compose server does not use PostgreSQL"
  say "compose: podman-compose up -d: postgres and rampart-server healthy in $(($(date +%s) - t))s" \
    "(server restarts while PostgreSQL started: $(pm inspect --format '{{.RestartCount}}' "$srv"));" \
    "$(server_log "$srv" | grep 'serving agents and admin on' | tail -n1 | sed 's/.*: serving/serving/')"
  (umask 077 && pm exec "$srv" rampart-server token create container-test --role admin \
    --config /etc/rampart/rampart-server.yaml >"$work/admin.token" 2>>"$work/podman.log")
  ctl bans add 203.0.113.9 --for 2h --reason "container-test compose" >/dev/null ||
    fail "rampartctl from the host to the published port 7443 failed"
  pc stop >"$work/compose-stop.log" 2>&1 || { tail -n 20 "$work/compose-stop.log"; fail "podman-compose stop failed"; }
  [ "$(pm inspect --format '{{.State.ExitCode}}' "$srv")" = 0 ] || fail "$srv did not exit 0 on stop"
  pc start >"$work/compose-start.log" 2>&1 || { tail -n 20 "$work/compose-start.log"; fail "podman-compose start failed"; }
  wait_for 120 "rampart-server (compose) to turn healthy again" healthy "$srv"
  ctl bans list --json | grep -q '"203\.0\.113\.9' || fail "the ban is gone after a compose stop/start"
  say "compose: rampartctl from the host over the published port; stop (exit 0) and start keep the ban in PostgreSQL"
  pc down >"$work/compose-down.log" 2>&1 || { tail -n 20 "$work/compose-down.log"; fail "podman-compose down failed"; }
}
if [ "$compose" = 1 ]; then
  compose_test
fi

say "PASS: image ${size_mb} MB, built, started, healthy, served an agent, drained, restarted with its data"
