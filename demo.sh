#!/usr/bin/env bash
# Rampart demo: installs what is missing (Debian 12), builds, generates a
# Domino console.log with a password-guessing attack in it, and shows what
# Rampart reads from it. Safe to re-run; touches nothing outside ./build and
# a temporary directory.
set -euo pipefail
cd "$(dirname "$0")"

echo "== Installing build dependencies (Debian packages) if missing"
scripts/install-deps.sh build
echo "== Building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
log="$work/console.log"

echo
echo "== Generating a Domino console.log: 200,000 lines, 5 % attack traffic from 40 addresses"
build/bin/rampart-loggen --lines 200000 --seed 7 --rate 20 --date-format dmy-dot \
  --prefix linux --attack-ratio 0.05 --attackers 40 -o "$log"
echo "   sample of what Domino writes:"
grep -m3 -E 'authentication failure|Authentication failed' "$log" | sed 's/^/     /'

echo
echo "== What rampart-agent reads from it"
build/bin/rampart-agent parse --date-order=dmy --stats "$log" > "$work/events.jsonl"
echo "   first recognised events:"
grep -m3 '"auth_failure"' "$work/events.jsonl" | sed 's/^/     /'
echo
echo "   counted attempts by kind and protocol (A+B pairs counted once):"
grep '"dedup":false' "$work/events.jsonl" |
  sed -E 's/.*"kind":"([a-z_]+)","protocol":"([a-z0-9]*)".*/\1 \2/' |
  sort | uniq -c | sort -rn | sed 's/^/     /'
echo
echo "   top 10 guessing addresses (failed attempts):"
grep '"dedup":false' "$work/events.jsonl" | grep -E '"kind":"(auth_failure|lockout)"' |
  sed -E 's/.*"ip":"([^"]*)".*/\1/' | grep -v '^$' |
  sort | uniq -c | sort -rn | head -10 | sed 's/^/     /'
echo
echo "Next steps in Rampart's roadmap turn these events into estate-wide bans:"
echo "the correlator and server (rampart-server), the agent daemon with firewall"
echo "enforcement, and a demo estate. See README.md (Status)."
