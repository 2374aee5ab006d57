#!/usr/bin/env bash
# Memory of a follower restarted with a raft log on disk (docs/benchmarks.md
# "Storage at scale"): three fresh nodes from a build on 127.0.0.1, COUNT ×
# 1 KiB published through the leader, then a follower is killed with
# kill -9 and started again on the idle cluster. Prints the RssAnon of every
# node before, the time until the restarted one is healthy, its RssAnon one
# and five seconds later and after five more publishes, and the bytes of
# its raft directory.
#
#   tools/bench_restart.sh [BUILD_DIR] [COUNT]    (defaults: build-release 200000)
#
# Ports: CHORUS_BENCH_HTTP_BASE (29700), CHORUS_BENCH_RAFT_BASE (29800).
set -euo pipefail

build=${1:-build-release}
count=${2:-200000}
[ -x "$build/chorusd" ] && [ -x "$build/chorus-bench" ] ||
    { echo "no $build/chorusd: make release" >&2; exit 1; }
cluster="$(cd "$(dirname "$0")/.." && pwd)/deploy/local-cluster.sh"
http_base=${CHORUS_BENCH_HTTP_BASE:-29700}
raft_base=${CHORUS_BENCH_RAFT_BASE:-29800}
data=$(mktemp -d "${TMPDIR:-/tmp}/chorus-restart.XXXXXX")
export CHORUS_NODES=3 CHORUS_LOCAL_DATA=$data CHORUS_HTTP_BASE=$http_base \
    CHORUS_RAFT_BASE=$raft_base CHORUS_START_TIMEOUT=60
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    "$cluster" stop "$build" >/dev/null 2>&1 || true
    rm -rf "$data"
}
trap cleanup EXIT INT TERM
anon() { sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }

"$cluster" start "$build" >/dev/null
l=$(curl -fsS --max-time 5 "http://127.0.0.1:$((http_base + 1))/admin/cluster" |
    sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p')
f=$((l % 3 + 1))
"$build/chorus-bench" pub -s "127.0.0.1:$((http_base + l))" --count "$count" \
    --size 1024 --window 1000 --topic /restart/fill --timeout 300 --json \
    >/dev/null 2>&1
sleep 2
for i in 1 2 3; do
    echo "what=before node=$i rss_anon_kb=$(anon "$(cat "$data/node$i.pid")")"
done
kill -9 "$(cat "$data/node$f.pid")"
sleep 0.5
spec=""
for i in 1 2 3; do
    spec="${spec:+$spec,}$i=127.0.0.1:$((raft_base + i))/127.0.0.1:$((http_base + i))"
done
"$build/chorusd" --id "$f" --raft "127.0.0.1:$((raft_base + f))" \
    --http "127.0.0.1:$((http_base + f))" --data "$data/node$f" \
    --cluster "$spec" >>"$data/node$f.log" 2>&1 &
pid=$!
echo "$pid" >"$data/node$f.pid"
t0=$(date +%s.%N)
until curl -fsS -o /dev/null --max-time 1 \
    "http://127.0.0.1:$((http_base + f))/admin/healthcheck" 2>/dev/null; do
    sleep 0.05
done
echo "what=healthy node=$f secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" \
    'BEGIN { printf "%.2f", e - s }')"
sleep 1
echo "what=restarted_1s node=$f rss_anon_kb=$(anon "$pid")"
sleep 4
echo "what=restarted_5s node=$f rss_anon_kb=$(anon "$pid")"
"$build/chorus-bench" sync -s "127.0.0.1:$((http_base + l))" --count 5 \
    --topic /restart/after --json >/dev/null 2>&1
sleep 2
echo "what=after_publishes node=$f rss_anon_kb=$(anon "$pid")" \
    "raft_dir_kb=$(du -sk "$data/node$f/raft" | cut -f1)"
