#!/usr/bin/env bash
# The runs of docs/benchmarks.md: starts fresh nodes from a release build
# on 127.0.0.1, runs chorus-bench against them, stops them (by PID).
#
#   tools/bench.sh single|three [BUILD_DIR] -- [chorus-bench ARGS...]
#
# Without ARGS it runs the standard set (one fresh cluster per run, so
# that no run inherits another's store or snapshots). With ARGS it runs
# that one command against the leader (CHORUS_BENCH_FOLLOWER=1: against a
# follower). CHORUS_BENCH_REPEAT=N runs each command N times, each on fresh
# nodes (this VM varies by +-20 % from run to run). Ports:
# CHORUS_BENCH_HTTP_BASE (28600), CHORUS_BENCH_RAFT_BASE (27600). Extra
# chorusd flags: CHORUS_BENCH_NODE_ARGS.
set -euo pipefail

mode=${1:-}
build=${2:-build-release}
[ "${3:-}" = "--" ] && shift 3 || shift $(($# < 2 ? $# : 2))
http_base=${CHORUS_BENCH_HTTP_BASE:-28600}
raft_base=${CHORUS_BENCH_RAFT_BASE:-27600}
case "$mode" in
single) nodes=1 ;;
three) nodes=3 ;;
*) echo "usage: $0 single|three [BUILD_DIR] -- [chorus-bench ARGS...]" >&2; exit 2 ;;
esac
[ -x "$build/chorusd" ] && [ -x "$build/chorus-bench" ] ||
    { echo "no $build/chorusd: make release" >&2; exit 1; }

data=$(mktemp -d "${TMPDIR:-/tmp}/chorus-bench.XXXXXX")
pids=()
stop_nodes() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
    rm -rf "${data:?}"/*
}
trap 'stop_nodes; rm -rf "$data"' EXIT INT TERM

# Starts the nodes; sets LEADER and FOLLOWER (gateway addresses).
start_nodes() {
    local spec="" i
    if [ "$nodes" -gt 1 ]; then
        for i in $(seq 1 "$nodes"); do
            spec="${spec:+$spec,}$i=127.0.0.1:$((raft_base + i))/127.0.0.1:$((http_base + i))"
        done
    fi
    for i in $(seq 1 "$nodes"); do
        # shellcheck disable=SC2086
        "$build/chorusd" --id "$i" --raft "127.0.0.1:$((raft_base + i))" \
            --http "127.0.0.1:$((http_base + i))" --data "$data/n$i" \
            ${spec:+--cluster "$spec"} ${CHORUS_BENCH_NODE_ARGS:-} \
            >"$data/n$i.log" 2>&1 &
        pids+=($!)
    done
    LEADER="" FOLLOWER=""
    for _ in $(seq 1 300); do
        local id
        id=$(curl -fsS --max-time 1 "http://127.0.0.1:$((http_base + 1))/admin/cluster" 2>/dev/null |
             sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p') || true
        if [ -n "$id" ] && curl -fsS --max-time 1 \
            "http://127.0.0.1:$((http_base + id))/admin/healthcheck" >/dev/null 2>&1; then
            LEADER=127.0.0.1:$((http_base + id))
            FOLLOWER=127.0.0.1:$((http_base + id % nodes + 1))
            sleep 1 # let libraft finish preparing its first segments
            return 0
        fi
        sleep 0.1
    done
    echo "no healthy leader after 30 s" >&2
    exit 1
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
