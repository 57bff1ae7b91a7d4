#!/usr/bin/env bash
# Rampart quickstart: a demo estate on this machine.
#
#   ./demo.sh              install what is missing (Debian 12), build, run the
#                          demo, keep the estate running until Ctrl-C
#   ./demo.sh --once       the same, but stop and clean up after printing
#   ./demo.sh --no-build   use the binaries already in build/bin
#   ./demo.sh --build-dir DIR   binaries in DIR/bin (default: build)
#   ./demo.sh --dry-run    dry-run firewalls even as root (the default
#                          otherwise); --netns: namespaces (root only)
#
# One rampart-server (SQLite in a temporary directory) and three
# rampart-agent processes, "domino1".."domino3", each tailing its own
# console.log. Not root: everything on 127.0.0.1, the agents with the
# dry-run firewall (it logs what it would block). Root (with ip and nft):
# each agent in a network namespace of its own with the nftables firewall,
# the server in a fourth, linked by a bridge (192.0.2.0/24). Either way the
# host's own firewall is never touched. rampart-loggen writes 20
# minutes of Domino console.log per server (a different date format on each)
# with the same attackers: domino1 is hammered, domino2 and domino3 see a
# trickle. The logs are replayed into the agents' console.log files over a
# few seconds; then rampartctl shows the bans, which servers enforce them,
# the report and the alerts. Everything lives in one temporary directory and
# is removed, with every process, on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$PWD"

once=0
build=1
mode=""
build_dir="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --no-build) build=0 ;;
    --build-dir) build_dir="${2:?--build-dir needs a directory}"; shift ;;
    --dry-run) mode=dry-run ;;
    --netns) mode=netns ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
BIN="$(cd "$build_dir" 2>/dev/null && pwd || echo "$ROOT/$build_dir")/bin"
if [ -z "$mode" ]; then
  mode=dry-run
  if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v nft >/dev/null; then
    mode=netns
  fi
fi
if [ "$mode" = netns ] && [ "$(id -u)" != 0 ]; then
  echo "demo.sh: --netns needs root (the default without root is --dry-run)" >&2
  exit 2
fi

section() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/   /'; }
fail() { echo "demo.sh: $*" >&2; exit 1; }

# --- Every command line that starts a Rampart program is here. -------------
# (Flags that later releases need, e.g. TLS or admin credentials, go here.)
# In netns mode each runs inside its namespace ("ip netns exec" execs it, so
# the PID is the program's own).
ns_exec() {  # NAMESPACE -> the prefix that runs a command in it ("" = here)
  ns_prefix=()
  if [ -n "$1" ]; then ns_prefix=(ip netns exec "$1"); fi
}
start_server() {  # CONFIG LOG
  ns_exec "$hub_ns"
  "${ns_prefix[@]}" "$BIN/rampart-server" --config "$1" \
    --bootstrap-token-file "$work/admin.token" 2>"$2" &
  server_pid=$!
}
start_agent() {  # CONFIG LOG NAMESPACE
  ns_exec "$3"
  "${ns_prefix[@]}" "$BIN/rampart-agent" run --config "$1" 2>"$2" &
  agent_pids+=($!)
}
ctl() {  # rampartctl against the demo server
  ns_exec "$hub_ns"
  "${ns_prefix[@]}" "$BIN/rampartctl" --insecure --server "$grpc_at" \
    --token-file "$work/admin.token" "$@"
}
loggen() {
  "$BIN/rampart-loggen" "$@"
}
# -----------------------------------------------------------------------------

server_pid=""
agent_pids=()
hub_ns=""
namespaces=()
sleeper=""
work=""
hosts=(domino1 domino2 domino3)

# Stops every process this script started (agents first, then the server:
# SIGTERM, then SIGKILL after 10 s) and removes the temporary directory.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null || true; fi
  local p
  for p in "${agent_pids[@]}" $server_pid; do
    kill -TERM "$p" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 10))
  for p in "${agent_pids[@]}" $server_pid; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$work" ]; then
    if [ $rc != 0 ] && [ $rc != 130 ] && [ $rc != 143 ]; then
      local f
      for f in "$work"/server.log "$work"/domino*/agent.log; do
        [ -s "$f" ] && { echo "---- last lines of ${f#"$work"/}"; tail -n 5 "$f"; } >&2
      done
    fi
    for p in "${namespaces[@]}"; do
      ip netns del "$p" 2>/dev/null || true
    done
    rm -rf "$work"
    if [ $once = 0 ] || [ $rc != 0 ]; then
      local gone="$work"
      [ ${#namespaces[@]} -eq 0 ] || gone="$work and ${#namespaces[@]} network namespaces"
      echo "demo.sh: stopped the server and ${#agent_pids[@]} agents, removed $gone"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls COMMAND every 0.2 s until it succeeds or SECONDS_ pass.
wait_for() {  # SECONDS_ WHAT COMMAND...
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

if [ $build = 1 ]; then
  section "Installing what is missing (Debian 12 packages) and building"
  scripts/install-deps.sh build
  if [ ! -f "$build_dir/build.ninja" ]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build_dir" --target rampart-server rampart-agent rampartctl rampart-loggen
fi
for b in rampart-server rampart-agent rampartctl rampart-loggen; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing (run without --no-build)"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/rampart-demo.XXXXXX")"

# --- netns mode: a hub namespace with a bridge (the server on 192.0.2.1) and
# one namespace per Domino server (192.0.2.11..13) on a veth into the bridge.
server_host=127.0.0.1
if [ "$mode" = netns ]; then
  ns_id="${work##*.}"
  hub_ns="rampart-demo-$ns_id-hub"
  namespaces+=("$hub_ns")
  ip netns add "$hub_ns"
  ip -n "$hub_ns" link set lo up
  ip -n "$hub_ns" link add br0 type bridge
  ip -n "$hub_ns" addr add 192.0.2.1/24 dev br0
  ip -n "$hub_ns" link set br0 up
  for i in 1 2 3; do
    ns="rampart-demo-$ns_id-domino$i"
    namespaces+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name domino$i netns "$hub_ns"
    ip -n "$ns" addr add "192.0.2.1$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$hub_ns" link set "domino$i" master br0 up
  done
  server_host=192.0.2.1
fi

# --- The server: SQLite, loopback, free ports, a demo allowlist. -------------
cat >"$work/server.yaml" <<EOF
server:
  listen: "$server_host:0"         # any free port (printed below)
  http_listen: "$server_host:0"
  db: "sqlite:$work/rampart.db"
  # Plaintext gRPC: a demo on one machine (loopback, or the demo's own
  # namespaces). A real estate uses mutual TLS and agent enrollment
  # (docs/security.md).
  insecure: true
  allow_insecure_non_loopback: $([ "$mode" = netns ] && echo true || echo false)
policy:
  ban_threshold: 10              # points; a failed login is 1 point
  server_factor: 1               # x2 once a 2nd server saw the address, x3 a 3rd
  v4_ladder: []                  # no /24 aggregation: one verdict per address
  v6_ladder: []
allowlist:
  - cidr: 192.0.2.0/24
    comment: "office network (never banned)"
EOF
# The admin token rampartctl presents; the server makes it its "bootstrap"
# admin token (docs/security.md). Mode 0600 or the server refuses it.
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin.token")
start_server "$work/server.yaml" "$work/server.log"
server_ready() {
  kill -0 "$server_pid" 2>/dev/null || fail "rampart-server exited"
  grep -q 'serving agents and admin on' "$work/server.log"
}
wait_for 30 "rampart-server to start" server_ready
ready_line="$(grep -m1 'serving agents and admin on' "$work/server.log")"
grpc_at="$(sed -E 's/.*admin on ([^,]+),.*/\1/' <<<"$ready_line")"
http_at="$(sed -E 's/.*HTTP on ([^,]+),.*/\1/' <<<"$ready_line")"

# --- Three Domino servers: log shape, replay data, agent config. -------------
# Each server's console.log shape (rampart-loggen options, the agent's
# date_order) and its share of attack lines: domino1 is hammered.
host_setup() {  # HOST -> shape[], order, ratio, looks
  case "$1" in
    domino1) shape=(--date-format dmy-dot --prefix linux) order=dmy ratio=0.25
      looks="dd.mm.yyyy, Linux thread ids" ;;
    domino2) shape=(--date-format mdy-slash --clock 12h) order=mdy ratio=0.02
      looks="mm/dd/yyyy, 12-hour clock" ;;
    domino3) shape=(--date-format ymd-dash --prefix windows) order=ymd ratio=0.02
      looks="yyyy-mm-dd, Windows thread ids" ;;
  esac
}
minutes=20
rate=4
start="$(date -d "-$((minutes + 1)) min" +%Y-%m-%dT%H:%M:%S)"
lines=0
expected_events=0
backend=dry-run                   # logs what it would block; no root needed
[ "$mode" = netns ] && backend=nftables
where="dry-run firewall"
[ "$mode" = netns ] && where="nftables in its own network namespace"
for h in "${hosts[@]}"; do
  d="$work/$h"
  mkdir -p "$d/state" "$d/replay"
  : >"$d/console.log"
  host_setup "$h"
  lines=$((minutes * 60 * rate + ${h#domino} * 50))
  # Same seed and attackers everywhere: the same addresses attack every
  # server, at different intensities.
  loggen --lines "$lines" --seed 7 --rate "$rate" --start "$start" \
    --attackers 12 --attack-ratio "$ratio" --successes \
    --servers "Mail0${h#domino}/Acme" --servers "Hub/Acme" "${shape[@]}" \
    --summary "$d/summary.jsonl" --truth "$d/truth.jsonl" \
    -o "$d/generated.log" 2>"$d/loggen.log"
  # Events the agent must send: every recognised line except the second
  # line of an A+B pair (one attempt, counted once) and the lines whose
  # hostile user field makes the address untrustworthy ("suspect": the agent
  # counts and drops them, docs/agent.md "Hostile lines").
  expected_events=$((expected_events + $(grep '"dedup":false' "$d/truth.jsonl" | grep -vc '"suspect"')))
  (cd "$d/replay" && split -n l/8 -d -a 1 ../generated.log chunk.)
  cat >"$d/agent.yaml" <<EOF
servers: ["$grpc_at"]
insecure: true                   # the demo server is plaintext
agent_id: $h
site: demo
logs:
  - path: $d/console.log
    date_order: $order
parser:
  successes: true
state_dir: $d/state
firewall:
  backend: $backend
batch:
  flush_interval: 200ms
local_fallback:
  enabled: false
EOF
  agent_ns=""
  [ "$mode" = netns ] && agent_ns="rampart-demo-$ns_id-$h"
  start_agent "$d/agent.yaml" "$d/agent.log" "$agent_ns"
done

section "A demo estate on this machine"
echo "   rampart-server  $grpc_at (agents, rampartctl)   http://$http_at/metrics"
echo "                   SQLite $work/rampart.db"
for h in "${hosts[@]}"; do
  host_setup "$h"
  printf '   %-8s        rampart-agent, %s; console.log dates %s\n' "$h" "$where" "$looks"
done
agents_connected() {
  [ "$(ctl agents list --connected --json 2>/dev/null | grep -c '"connected": true')" = 3 ]
}
wait_for 30 "the three agents to connect" agents_connected
echo "   all 3 agents connected"

# --- Replay: the generated logs are appended over a few seconds. ------------
section "Replaying $minutes minutes of Domino console.log into each server's log (4 s)"
for k in 0 1 2 3 4 5 6 7; do
  for h in "${hosts[@]}"; do
    cat "$work/$h/replay/chunk.$k" >>"$work/$h/console.log"
  done
  sleep 0.5
done
for h in "${hosts[@]}"; do
  d="$work/$h"
  total=$(wc -l <"$d/console.log")
  failed=$(grep -c -E 'authentication failure using internet password|Authentication failed for user' "$d/console.log" || true)
  printf '   %-8s %5d lines, %4d failed-login lines, e.g.\n' "$h" "$total" "$failed"
  grep -m1 -E 'authentication failure using internet password|Authentication failed for user' \
    "$d/console.log" | cut -c1-110 | sed 's/^/              /'
done

# Settled: the server has stored every event the agents had to send (per
# rampart-loggen's ground truth) and every agent enforces the current
# ban-list revision.
events_now() { ctl status --json 2>/dev/null | sed -n 's/.*"events_last_hour": *\([0-9]*\).*/\1/p'; }
settled() {
  local e
  e="$(events_now)"
  [ -n "$e" ] && [ "$e" -ge "$expected_events" ] &&
    ! ctl agents list --json 2>/dev/null | grep -q '"revision_lag": [1-9]'
}
wait_for 60 "the server to store all $expected_events events" settled
echo "   The agents had $expected_events events to send (failed and good logins, lockouts,"
echo "   sessions); the server stored $(events_now)."

# --- What happened. ----------------------------------------------------------
section "Bans (rampartctl bans list)"
ctl bans list | indent

section "Which Domino servers enforce them (rampartctl agents list)"
ctl agents list | indent
revision="$(ctl status --json | sed -n 's/.*"current_revision": *\([0-9]*\).*/\1/p')"
echo "   Ban-list revision $revision; REVISION = the revision each server's firewall enforces."

# Per attacking address: failed logins per server (from rampart-loggen's
# ground truth) and what Rampart decided.
section "Every attacking address: failed logins per server, and the verdict"
printf '   %-24s %8s %8s %8s   %s\n' ADDRESS domino1 domino2 domino3 VERDICT
attempts() {  # HOST -> "ip attempts" lines for attackers
  sed -n -E 's/.*"ip":"([^"]+)","role":"attacker".*"attempts":([0-9]+).*/\1 \2/p' \
    "$work/$1/summary.jsonl"
}
hard="" hard_n=0 spread="" spread_n=""
for ip in $(sed -n -E 's/.*"ip":"([^"]+)","role":"attacker".*/\1/p' "$work"/domino*/summary.jsonl | sort -u); do
  n1=$(attempts domino1 | awk -v ip="$ip" '$1 == ip { print $2 }'); n1=${n1:-0}
  n2=$(attempts domino2 | awk -v ip="$ip" '$1 == ip { print $2 }'); n2=${n2:-0}
  n3=$(attempts domino3 | awk -v ip="$ip" '$1 == ip { print $2 }'); n3=${n3:-0}
  [ $((n1 + n2 + n3)) -gt 0 ] || continue
  ban="$(ctl ip "$ip" --events 0 --json | tr -d '\n' |
    sed -n -E 's/.*"active_ban": *\{ *"id": *([0-9]+), *"prefix": *"([^"]+)".*/\2 (ban \1)/p')"
  if [ -n "$ban" ]; then
    verdict="banned: $ban"
    if [ "$n2" = 0 ] && [ "$n3" = 0 ] && [ "$n1" -gt "$hard_n" ]; then
      hard="$ip" hard_n=$n1
    fi
    # The banned address that tried every server least (below the
    # threshold of 10 on each).
    if [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ "$n3" -gt 0 ] &&
      [ "$n1" -lt 10 ] && [ "$n2" -lt 10 ] && [ "$n3" -lt 10 ] &&
      { [ -z "$spread_n" ] || [ $((n1 + n2 + n3)) -lt "$spread_n" ]; }; then
      spread="$ip" spread_n=$((n1 + n2 + n3)) spread_per="$n1 on domino1, $n2 on domino2, $n3 on domino3"
    fi
  else
    verdict="not banned (score below 10)"
  fi
  printf '   %-24s %8d %8d %8d   %s\n' "$ip" "$n1" "$n2" "$n3" "$verdict"
done

live_on() {  # BAN-ID -> "N of M"
  ctl bans show "$1" --json | tr -d '\n' |
    sed -n -E 's/.*"agents_enforcing": *([0-9]+), *"agents_total": *([0-9]+).*/\1 of \2/p'
}
ban_id_of() {
  ctl ip "$1" --events 0 --json | tr -d '\n' |
    sed -n -E 's/.*"active_ban": *\{ *"id": *([0-9]+).*/\1/p'
}
show_ban() {  # BAN-ID: its reason and where it is enforced
  ctl bans show "$1" >"$work/ban.txt"
  grep -E '^(Ban |Reason:|Enforced:)' "$work/ban.txt" | indent
  sed -n '/^Enforcement/,/^$/p' "$work/ban.txt" | indent
}
if [ -n "$hard" ]; then
  id="$(ban_id_of "$hard")"
  section "The attack on domino1: $hard"
  echo "   $hard_n failed logins on domino1, none on domino2 or domino3; banned and"
  echo "   enforced on $(live_on "$id") servers, also on the two it never touched:"
  show_ban "$id"
fi
if [ -n "$spread" ]; then
  id="$(ban_id_of "$spread")"
  section "The slow spread: $spread"
  echo "   Only $spread_n failed logins in 20 minutes: $spread_per."
  echo "   No single server would ever act on that; Rampart scores the estate:"
  echo "   each further server that sees the address multiplies its points. Banned,"
  echo "   enforced on $(live_on "$id") servers:"
  show_ban "$id"
fi

section "Report of the last hour (rampartctl report --since 1h --top 5)"
ctl report --since 1h --top 5 >"$work/report.txt"
sed '/^Compromise alerts/,$d' "$work/report.txt" | indent

section "Compromise alerts: a login that succeeded after failures (rampartctl alerts)"
ctl alerts --limit 1000 >"$work/alerts.txt"
alerts_total=$(($(wc -l <"$work/alerts.txt") - 1))
alerts_office=$(grep -c -E '  192\.0\.2\.[0-9]+ ' "$work/alerts.txt" || true)
echo "   $alerts_total alerts; $alerts_office of them are office users (192.0.2.0/24) who"
echo "   mistyped a password before logging in. The others:"
{ head -1 "$work/alerts.txt"; tail -n +2 "$work/alerts.txt" | grep -v -E '  192\.0\.2\.[0-9]+ ' || true; } |
  cut -c1-170 | indent

if [ "$mode" = netns ]; then
  section "What each server's kernel firewall blocks (nft list table inet rampart)"
  for h in "${hosts[@]}"; do
    ip netns exec "rampart-demo-$ns_id-$h" nft -j list table inet rampart >"$work/$h/nft.json"
    grep -o -E '\{"elem": \{"val": "[^"]+"' "$work/$h/nft.json" | sed -E 's/.*"val": "//; s/"$//' >"$work/$h/nft.txt" || true
    printf '   %-8s %d addresses in the drop sets: %s\n' "$h" "$(wc -l <"$work/$h/nft.txt")" \
      "$(head -4 "$work/$h/nft.txt" | tr '\n' ' ')..."
  done
else
  section "What each server's firewall would have blocked (dry-run, from agent.log)"
  for h in "${hosts[@]}"; do
    blocked=$(grep -c 'dry-run: would block' "$work/$h/agent.log" || true)
    printf '   %-8s %d addresses, e.g. %s\n' "$h" "$blocked" \
      "$(grep -m1 'dry-run: would block' "$work/$h/agent.log" | sed 's/.*dry-run: //' | cut -c1-90)"
  done
fi

if [ $once = 1 ]; then
  section "Done (--once): stopping"
  exit 0
fi

section "The estate keeps running; try"
in_hub=""
[ "$mode" = netns ] && in_hub="ip netns exec $hub_ns "
echo "   export RAMPART_SERVER=$grpc_at RAMPART_TOKEN=\$(cat $work/admin.token)"
echo "   $in_hub$BIN/rampartctl --insecure bans list"
echo "   $in_hub$BIN/rampartctl --insecure ip ${hard:-198.51.100.7}"
echo "   $in_hub$BIN/rampartctl --insecure bans add 203.0.113.0/24 --for 2h --reason test"
echo "   ${in_hub}curl -s http://$http_at/metrics | grep rampart_active_bans"
[ "$mode" = netns ] && echo "   ip netns exec rampart-demo-$ns_id-domino2 nft list table inet rampart"
echo "   logs: $work/*/agent.log, $work/server.log"
echo
echo "Ctrl-C to stop (stops the server and the agents, removes $work)."
sleep infinity &
sleeper=$!
wait "$sleeper" || true
