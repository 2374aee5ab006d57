#!/usr/bin/env bash
# How a three-node cluster behaves as its store grows (docs/benchmarks.md
# "Storage at scale"): fresh nodes from a release build on 127.0.0.1,
# filled with 1 KiB messages one GB at a time; after each step (and on the
# empty store) it measures
#   - async publish of 1 KiB through the leader (100,000, window 1000),
#   - synchronous publish (window 1) through the leader and a follower,
#   - VmRSS and RssAnon of every node,
#   - the bytes of the newest snapshot file of every node,
# and at the end the time a restarted follower takes to be healthy and the
# time a fourth node (--join) takes to catch up with the whole store, with
# its peak RssAnon.
#
#   tools/bench_scale.sh [BUILD_DIR] [GB]      (defaults: build-release 5)
#
# One line of key=value per measurement on stdout. Ports: CHORUS_BENCH_HTTP_BASE
# (28700), CHORUS_BENCH_RAFT_BASE (27700). chorusd flags go through its
# CHORUS_* environment. Needs about 3.5 × GB of disk per node.
set -euo pipefail

build=${1:-build-release}
gb=${2:-5}
[ -x "$build/chorusd" ] && [ -x "$build/chorus-bench" ] ||
    { echo "no $build/chorusd: make release" >&2; exit 1; }
cluster="$(cd "$(dirname "$0")/.." && pwd)/deploy/local-cluster.sh"
http_base=${CHORUS_BENCH_HTTP_BASE:-28700}
data=$(mktemp -d "${TMPDIR:-/tmp}/chorus-scale.XXXXXX")
export CHORUS_NODES=3 CHORUS_LOCAL_DATA=$data CHORUS_HTTP_BASE=$http_base \
    CHORUS_RAFT_BASE=${CHORUS_BENCH_RAFT_BASE:-27700} CHORUS_START_TIMEOUT=600
pid4=
cleanup() {
    [ -n "$pid4" ] && kill "$pid4" 2>/dev/null
    "$cluster" stop "$build" >/dev/null 2>&1 || true
    rm -rf "$data"
}
trap cleanup EXIT INT TERM

bench() { "$build/chorus-bench" "$@" --json 2>/dev/null; }
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -1; }
p50() { sed -n 's/.*"p50": *\([0-9.]*\).*/\1/p' | head -1; }
p99() { sed -n 's/.*"p99": *\([0-9.]*\).*/\1/p' | head -1; }

leader_id() {
    curl -fsS --max-time 5 "http://127.0.0.1:$((http_base + 1))/admin/cluster" |
        sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p'
}

measure() {
    local step=$1 l f out i pid snap
    l=$(leader_id)
    f=$((l % 3 + 1))
    # A failed probe (exit 1: errors in its JSON) is reported, not fatal.
    out=$(bench pub -s "127.0.0.1:$((http_base + l))" --count 100000 \
        --size 1024 --window 1000 --topic /scale/probe --timeout 300 || true)
    echo "gb=$step what=async_1k msgs_per_s=$(field msgsPerSec <<<"$out")" \
        "p50_ms=$(p50 <<<"$out") p99_ms=$(p99 <<<"$out")"
    out=$(bench sync -s "127.0.0.1:$((http_base + l))" --count 2000 \
        --topic /scale/sync || true)
    echo "gb=$step what=sync_leader p50_ms=$(p50 <<<"$out")" \
        "p99_ms=$(p99 <<<"$out") errors=$(field errors <<<"$out")"
    out=$(bench sync -s "127.0.0.1:$((http_base + f))" --count 2000 \
        --topic /scale/syncf || true)
    echo "gb=$step what=sync_follower p50_ms=$(p50 <<<"$out")" \
        "p99_ms=$(p99 <<<"$out") errors=$(field errors <<<"$out")"
    for i in 1 2 3; do
        pid=$(cat "$data/node$i.pid")
        snap=$(ls -S "$data/node$i/raft"/snapshot-* 2>/dev/null | grep -v meta |
            head -1)
        echo "gb=$step what=node id=$i" \
            "rss_kb=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")" \
            "rss_anon_kb=$(awk '/^RssAnon/{print $2}' "/proc/$pid/status")" \
            "snapshot_bytes=$([ -n "$snap" ] && stat -c %s "$snap" || echo 0)" \
            "store_bytes=$(stat -c %s "$data/node$i/store/data.mdb")"
    done
}

"$cluster" start "$build" >/dev/null
sleep 1
measure 0
for step in $(seq 1 "$gb"); do
    l=$(leader_id)
    start=$(date +%s.%N)
    out=$(bench pub -s "127.0.0.1:$((http_base + l))" --count 1000000 \
        --size 1024 --window 1000 --publishers 2 --topic "/scale/fill$step" \
        --timeout 900)
    echo "gb=$step what=fill msgs_per_s=$(field msgsPerSec <<<"$out")" \
        "p99_ms=$(p99 <<<"$out")" \
        "seconds=$(elapsed "$start")"
    measure "$step"
done

# A follower restarted with the whole store: time until healthy.
l=$(leader_id)
f=$((l % 3 + 1))
kill "$(cat "$data/node$f.pid")"
while kill -0 "$(cat "$data/node$f.pid")" 2>/dev/null; do sleep 0.1; done
start=$(date +%s.%N)
"$cluster" start "$build" >/dev/null
echo "gb=$gb what=restart id=$f seconds_to_healthy=$(elapsed "$start")"

# A fourth node joins: time until healthy (it fetched every message), its
# peak RssAnon while catching up.
raft4=127.0.0.1:$((CHORUS_RAFT_BASE + 4))
http4=127.0.0.1:$((http_base + 4))
start=$(date +%s.%N)
"$build/chorusd" --id 4 --raft "$raft4" --http "$http4" --data "$data/node4" \
    --join "127.0.0.1:$((http_base + 1))" >"$data/node4.log" 2>&1 &
pid4=$!
peak=0
until curl -fsS --max-time 2 "http://$http4/admin/healthcheck" >/dev/null 2>&1; do
    kill -0 "$pid4" 2>/dev/null || { echo "node 4 exited" >&2; tail "$data/node4.log" >&2; exit 1; }
    anon=$(awk '/^RssAnon/{print $2}' "/proc/$pid4/status")
    [ "${anon:-0}" -gt "$peak" ] && peak=$anon
    sleep 0.2
done
secs=$(elapsed "$start")
echo "gb=$gb what=join id=4 seconds_to_healthy=$secs peak_rss_anon_kb=$peak" \
    "store_bytes=$(stat -c %s "$data/node4/store/data.mdb")" \
    "$(grep -o 'catchup finished.*' "$data/node4.log" | tail -1)"
kill "$pid4"
wait "$pid4" || true
pid4=
