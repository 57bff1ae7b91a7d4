#!/usr/bin/env bash
# The quickstart (demo.sh) against the built binaries, twice:
#  1. --once in its default mode (as root, which CI is: agents in network
#     namespaces with nftables; else dry-run): exits 0, prints the attacker
#     bans and where they are enforced, leaves no process, namespace or
#     temporary directory behind.
#  2. --dry-run (the non-root path), interactive: runs until "Ctrl-C to
#     stop", then SIGINT to its process group (what Ctrl-C in a terminal
#     does) stops everything cleanly.
#
#   demo_test.sh REPO BUILD_DIR
set -euo pipefail
repo="$1"
build_dir="$2"
out="$(mktemp)"
pid=""
finish() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$out"
}
trap finish EXIT

fail() {
  echo "demo_test: FAIL: $*" >&2
  echo "---- demo output" >&2
  cat "$out" >&2
  exit 1
}

# The demo's temporary directory, from its "SQLite DIR/rampart.db" line.
work_dir() { sed -n -E 's|^ +SQLite (.*)/rampart\.db$|\1|p' "$out" | head -1; }

# No process may still have the demo directory on its command line.
check_clean() {
  local dir="$1" p left=""
  [ -n "$dir" ] || fail "no demo directory in the output"
  [ ! -e "$dir" ] || fail "$dir was not removed"
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -F "$dir/"; then
      left="$left ${p#/proc/}"
    fi
  done
  [ -z "$left" ] || fail "processes left behind:$left"
  if command -v ip >/dev/null && ip netns list | grep -q -F "rampart-demo-${dir##*.}-"; then
    fail "network namespaces left behind: $(ip netns list | grep -F "rampart-demo-${dir##*.}-")"
  fi
}

expect() { grep -q -E "$1" "$out" || fail "output lacks /$1/"; }

# 1. --once
start=$SECONDS
if ! "$repo/demo.sh" --once --no-build --build-dir "$build_dir" >"$out" 2>&1; then
  fail "demo.sh --once exited non-zero"
fi
expect '^   all 3 agents connected$'
sent=$(sed -n -E 's/^   The agents had ([0-9]+) events to send.*/\1/p' "$out")
[ -n "$sent" ] && grep -q -E "^   sessions\); the server stored $sent\.$" "$out" ||
  fail "the server did not store every event the agents sent"
expect '^== The attack on domino1: [0-9a-f.:]+$'
expect '[0-9]+ failed logins on domino1, none on domino2 or domino3; banned and'
expect 'enforced on 3 of 3 servers, also on the two it never touched'
expect '^== The slow spread: [0-9a-f.:]+$'
expect 'Enforced: +live on 3 of 3 agents'
expect '^   domino[123] +demo +0\.[0-9.]+ +connected '
expect '^   Events: [1-9][0-9]* +New bans: [1-9]'
expect '^== Compromise alerts'
expect '^   domino3 +[1-9][0-9]* addresses'
dir="$(work_dir)"
check_clean "$dir"
bans=$(grep -c -E 'banned: ' "$out")
mode="dry-run agents"
grep -q 'nftables in its own network namespace' "$out" && mode="agents in network namespaces, nftables"
echo "demo_test: --once ($mode): ${bans} attacking addresses banned, enforced on 3 of 3 agents, clean exit in $((SECONDS - start))s"

# 2. Ctrl-C: the demo in its own process group with SIGINT at its default
# disposition, as in a terminal (a background job of this non-interactive
# shell would otherwise start with SIGINT ignored).
start=$SECONDS
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])' "$repo/demo.sh" --dry-run --no-build --build-dir "$build_dir" >"$out" 2>&1 &
pid=$!
deadline=$((SECONDS + 120))
until grep -q '^Ctrl-C to stop' "$out"; do
  kill -0 "$pid" 2>/dev/null || fail "demo.sh exited before Ctrl-C"
  [ $SECONDS -lt $deadline ] || fail "no 'Ctrl-C to stop' within 120 s"
  sleep 0.2
done
dir="$(work_dir)"
kill -INT -- "-$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "demo.sh still running 30 s after SIGINT"
  sleep 0.2
done
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 130 ] || fail "demo.sh exited $rc after SIGINT, expected 130"
grep -q "^demo.sh: stopped the server and 3 agents, removed $dir$" "$out" ||
  fail "no clean-up message"
check_clean "$dir"
grep -q 'dry-run firewall; console.log' "$out" || fail "--dry-run did not use the dry-run firewall"
echo "demo_test: --dry-run, Ctrl-C: stopped the server and 3 agents, removed $dir, nothing left ($((SECONDS - start))s)"
