#!/usr/bin/env bash
# Runs Chorus nodes on localhost: gateways on HTTP_BASE+1.., raft on
# RAFT_BASE+1.. (8081.., 7001.. by default), data under DATA_DIR.
#
#   deploy/local-cluster.sh start|stop|status|run [BUILD_DIR]
#
# `run` starts the nodes, follows their logs in the foreground and stops
# them all on Ctrl-C (what `make run` does).
#
# Environment: CHORUS_NODES (default 3), CHORUS_LOCAL_DATA (default
# ./run-data), CHORUS_HTTP_BASE (8080), CHORUS_RAFT_BASE (7000),
# CHORUS_START_TIMEOUT (20 s).
set -euo pipefail

cmd=${1:-}
build_dir=${2:-build}
nodes=${CHORUS_NODES:-3}
data_dir=${CHORUS_LOCAL_DATA:-./run-data}
http_base=${CHORUS_HTTP_BASE:-8080}
raft_base=${CHORUS_RAFT_BASE:-7000}
start_timeout=${CHORUS_START_TIMEOUT:-20}
chorusd="$build_dir/chorusd"

usage() {
    echo "usage: $0 start|stop|status|run [BUILD_DIR]" >&2
    exit 2
}

http_addr() { echo "127.0.0.1:$((http_base + $1))"; }
raft_addr() { echo "127.0.0.1:$((raft_base + $1))"; }
pid_file() { echo "$data_dir/node$1.pid"; }
log_file() { echo "$data_dir/node$1.log"; }

node_pid() {
    local f
    f=$(pid_file "$1")
    [ -f "$f" ] || return 1
    local pid
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# True when node $1 runs. No output, so never called with a redirection: a
# trap (Ctrl-C) that runs inside a function called as `f >/dev/null` runs
# with that redirection, and everything it prints would be lost.
node_alive() {
    local f pid
    f=$(pid_file "$1")
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null
}

healthy() {
    curl -fsS --max-time 2 "http://$(http_addr "$1")/admin/healthcheck" \
        >/dev/null 2>&1
}

start() {
    [ -x "$chorusd" ] || { echo "no $chorusd: build first (make)" >&2; exit 1; }
    mkdir -p "$data_dir"
    local spec="" i
    if [ "$nodes" -gt 1 ]; then
        for i in $(seq 1 "$nodes"); do
            spec="${spec:+$spec,}$i=$(raft_addr "$i")/$(http_addr "$i")"
        done
    fi
    for i in $(seq 1 "$nodes"); do
        if node_alive "$i"; then
            echo "node $i already running (pid $(node_pid "$i"))"
            continue
        fi
        local args=(--id "$i" --raft "$(raft_addr "$i")"
                    --http "$(http_addr "$i")" --data "$data_dir/node$i")
        [ -n "$spec" ] && args+=(--cluster "$spec")
        "$chorusd" "${args[@]}" >>"$(log_file "$i")" 2>&1 &
        echo $! >"$(pid_file "$i")"
        echo "node $i: pid $! http $(http_addr "$i") raft $(raft_addr "$i")"
    done
    local deadline=$((SECONDS + start_timeout))
    for i in $(seq 1 "$nodes"); do
        until healthy "$i"; do
            if ! node_alive "$i"; then
                echo "node $i exited; its log:" >&2
                tail -n 20 "$(log_file "$i")" >&2
                exit 1
            fi
            if [ $SECONDS -ge $deadline ]; then
                echo "node $i not healthy after ${start_timeout}s" >&2
                exit 1
            fi
            sleep 0.2
        done
    done
    echo "ready: export CHORUS_SERVER=$(http_addr 1)"
}

stop() {
    local i pid
    for i in $(seq 1 "$nodes"); do
        pid=$(node_pid "$i") || { rm -f "$(pid_file "$i")"; continue; }
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "node $i did not stop in 5 s; killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$(pid_file "$i")"
        echo "node $i stopped"
    done
}

status() {
    local i pid rc=0
    for i in $(seq 1 "$nodes"); do
        if pid=$(node_pid "$i"); then
            if healthy "$i"; then
                echo "node $i: running pid $pid http $(http_addr "$i") healthy"
            else
                echo "node $i: running pid $pid http $(http_addr "$i") unhealthy"
                rc=1
            fi
        else
            echo "node $i: stopped"
            rc=1
        fi
    done
    return $rc
}

run() {
    # One handler for Ctrl-C at any point: during start-up (no tail yet)
    # or while following the logs.
    tail_pid=""
    trap 'interrupted' INT TERM
    start
    local logs=() i
    for i in $(seq 1 "$nodes"); do logs+=("$(log_file "$i")"); done
    echo "following logs; Ctrl-C stops the node(s)"
    # --pid: tail ends by itself once this script is gone, so it can never
    # outlive `run` holding the terminal (or a caller's pipe) open.
    tail --pid=$$ -n 0 -F "${logs[@]}" &
    tail_pid=$!
    # Wait while any node lives.
    while :; do
        local alive=0
        for i in $(seq 1 "$nodes"); do
            node_alive "$i" && alive=1
        done
        [ $alive = 1 ] || break
        sleep 1
    done
    kill "$tail_pid" 2>/dev/null || true
    echo "all nodes exited" >&2
    exit 1
}

interrupted() {
    if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; fi
    echo
    stop
    exit 0
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
run) run ;;
*) usage ;;
esac
