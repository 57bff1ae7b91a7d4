#!/usr/bin/env bash
# Side-by-side parse throughput: Rampart's Domino parser vs Debian's
# fail2ban-regex with its shipped domino-smtp filter, on the same generated
# console.log, in one run on this machine.
#
# Usage: bench/parse_vs_fail2ban.sh [BUILD_DIR] [LINES]   (defaults: build 1000000)
# Needs: a built tree (cmake --build BUILD_DIR), fail2ban (Debian package).
set -euo pipefail

build="${1:-build}"
lines="${2:-1000000}"
filter=/etc/fail2ban/filter.d/domino-smtp.conf
for f in "$build/bin/rampart-loggen" "$build/bin/rampart-agent" \
         "$build/bench/parse_benchmark" "$filter"; do
  [ -e "$f" ] || { echo "missing $f (build first; apt-get install fail2ban)" >&2; exit 2; }
done
command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log="$tmp/console.log"
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"

now() { date +%s.%N; }

# DMY with dashes and a 24h clock: the notes.ini settings fail2ban's filter
# documents as required; thread-id prefixes as DEBUG_THREADID writes them.
"$build/bin/rampart-loggen" --lines "$lines" --seed 1 --rate 50 \
  --date-format dmy-dash --prefix linux --attack-ratio 0.2 --attackers 500 -o "$log"
bytes=$(stat -c %s "$log")
echo "input: $lines lines, $bytes bytes ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"

# 1. Parser alone on one core (Google Benchmark, lines already in memory).
RAMPART_BENCH_LOG="$log" $pin "$build/bench/parse_benchmark" \
  --benchmark_format=json --benchmark_out="$tmp/bench.json" >/dev/null 2>&1
core_lps=$(grep -m1 '"items_per_second"' "$tmp/bench.json" | sed -E 's/.*: *([0-9.eE+-]+).*/\1/')

# 2. The whole `rampart-agent parse` command: read file, parse, JSON to a file.
best=""
for _ in 1 2 3; do
  t0=$(now)
  $pin "$build/bin/rampart-agent" parse --date-order=dmy "$log" > "$tmp/rampart.jsonl"
  t1=$(now)
  t=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  best=$(awk -v a="$best" -v b="$t" 'BEGIN{print (a=="" || b<a) ? b : a}')
done
cli_s=$best
recognised=$(wc -l < "$tmp/rampart.jsonl")
smtp_like=$(grep -c -E '"kind":"(auth_failure|policy_reject)","protocol":"smtp"' "$tmp/rampart.jsonl" || true)

# 3. fail2ban-regex on the same file (single-threaded Python).
t0=$(now)
$pin fail2ban-regex "$log" "$filter" > "$tmp/f2b.txt" 2>&1
t1=$(now)
f2b_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
f2b_matched=$(grep -m1 -E '^Lines: ' "$tmp/f2b.txt" | sed -E 's/.* ([0-9]+) matched.*/\1/')

awk -v n="$lines" -v bytes="$bytes" -v core="$core_lps" -v cli="$cli_s" -v f2b="$f2b_s" \
    -v rec="$recognised" -v smtp="$smtp_like" -v fm="$f2b_matched" 'BEGIN {
  mb = bytes / 1e6
  printf "\n%-44s %14s %10s %10s %12s\n", "tool", "lines/s", "MB/s", "seconds", "vs fail2ban"
  f2b_lps = n / f2b
  printf "%-44s %14.0f %10.1f %10.3f %11.1fx\n", "rampart parser, one core (parse_benchmark)", core, mb * core / n, n / core, core / f2b_lps
  printf "%-44s %14.0f %10.1f %10.3f %11.1fx\n", "rampart-agent parse (read+parse+JSON)", n / cli, mb / cli, cli, (n / cli) / f2b_lps
  printf "%-44s %14.0f %10.1f %10.3f %11.1fx\n", "fail2ban-regex domino-smtp", f2b_lps, mb / f2b, f2b, 1
  printf "\nrecognised lines: rampart %d (all families and protocols; %d are SMTP auth failures or policy rejects), fail2ban %d (SMTP only)\n", rec, smtp, fm
}'
