#!/usr/bin/env bash
# The runs of docs/benchmarks.md: fresh nodes from a release build on
# 127.0.0.1 (started and stopped by deploy/local-cluster.sh), chorus-bench
# against them.
#
#   tools/bench.sh single|three [BUILD_DIR] -- [chorus-bench ARGS...]
#
# Without ARGS it runs the standard set (fresh nodes for every run, so that
# no run inherits another's store or snapshots). With ARGS it runs that one
# command against the leader (CHORUS_BENCH_FOLLOWER=1: against a
# follower). CHORUS_BENCH_REPEAT=N runs each command N times, each on fresh
# nodes (this VM varies by +-20 % from run to run). Ports:
# CHORUS_BENCH_HTTP_BASE (28600), CHORUS_BENCH_RAFT_BASE (27600). chorusd
# flags go through its CHORUS_* environment (e.g. CHORUS_RAFT_SEGMENT_BYTES).
set -euo pipefail

mode=${1:-}
build=${2:-build-release}
[ "${3:-}" = "--" ] && shift 3 || shift $(($# < 2 ? $# : 2))
case "$mode" in
single) nodes=1 ;;
three) nodes=3 ;;
*) echo "usage: $0 single|three [BUILD_DIR] -- [chorus-bench ARGS...]" >&2; exit 2 ;;
esac
[ -x "$build/chorusd" ] && [ -x "$build/chorus-bench" ] ||
    { echo "no $build/chorusd: make release" >&2; exit 1; }

cluster="$(cd "$(dirname "$0")/.." && pwd)/deploy/local-cluster.sh"
http_base=${CHORUS_BENCH_HTTP_BASE:-28600}
data=$(mktemp -d "${TMPDIR:-/tmp}/chorus-bench.XXXXXX")
export CHORUS_NODES=$nodes CHORUS_LOCAL_DATA=$data \
    CHORUS_HTTP_BASE=$http_base CHORUS_RAFT_BASE=${CHORUS_BENCH_RAFT_BASE:-27600}

stop_nodes() {
    "$cluster" stop "$build" >/dev/null
    rm -rf "${data:?}"/*
}
trap 'stop_nodes; rm -rf "$data"' EXIT INT TERM

# Starts the nodes (the script waits until all are healthy); sets LEADER
# and FOLLOWER (gateway addresses).
start_nodes() {
    local id
    "$cluster" start "$build" >/dev/null
    id=$(curl -fsS --max-time 5 "http://127.0.0.1:$((http_base + 1))/admin/cluster" |
         sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p')
    [ -n "$id" ] || { echo "no leader reported" >&2; exit 1; }
    LEADER=127.0.0.1:$((http_base + id))
    FOLLOWER=127.0.0.1:$((http_base + id % nodes + 1))
    sleep 1 # let libraft finish preparing its first segments
}

run() {
    local k target
    for k in $(seq 1 "${CHORUS_BENCH_REPEAT:-1}"); do
        start_nodes
        target=$LEADER
        [ "${CHORUS_BENCH_FOLLOWER:-}" = 1 ] && [ "$nodes" -gt 1 ] && target=$FOLLOWER
        echo "== chorus-bench $* -s <$([ "$target" = "$LEADER" ] && echo leader || echo follower)> (run $k)"
        "$build/chorus-bench" "$@" -s "$target" 2>/dev/null
        stop_nodes
    done
}

if [ $# -gt 0 ]; then
    run "$@"
    exit 0
fi
run pub --count 300000 --window 1000
run pub --count 200000 --size 1024 --window 1000 --topic /bench/p1k
run pub --publishers 4 --count 200000 --window 1000 --topic /bench/p4
run sync --count 3000
run e2e --count 5000
run fanout --subscribers 100 --count 20000
run replay --count 1000000 --timeout 300
if [ "$nodes" -gt 1 ]; then
    CHORUS_BENCH_FOLLOWER=1 run pub --count 200000 --window 1000 --topic /bench/pubf
fi
