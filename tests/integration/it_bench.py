#!/usr/bin/env python3
"""it_bench: the load generator chorus-bench (docs/benchmarks.md) against a real node.

Every mode (pub, sync, e2e, replay, fanout) runs with small counts and
--json; the figures it prints are checked for consistency (acked == count,
no errors, ordered latency percentiles) and against what the node really
stored (GET /admin/topics<topic>, GET /api/message<topic>). --hold is checked
through the node's chorus_websocket_connections gauge; the failure paths
(nobody listening, a refused publish, usage errors) through the exit status
(0 success, 1 failure, 2 usage error) and stderr.

No assertion is made on timings: the figures are only checked for shape."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUS_BENCH, HOST, Ctl, Node,  # noqa: E402
                            TestFailure, _pdeathsig, base_env, check, eq,
                            free_port, make_tmp, run_cmd, run_tests,
                            sanitizer_check, shared_node, timeout,
                            unique_topic, wait_until)

# Publishes larger than this are refused by the shared node with
# "!error-send message too large" (test_refused_publishes_exit_1).
MAX_MESSAGE_BYTES = 4096
# --timeout given to every bench run: generous for the ASan build; the
# subprocess timeout (below) is larger still, so a hang is reported as such.
BENCH_TIMEOUT_S = 90


def node():
    return shared_node("bench",
                       extra_args=["--max-message-bytes",
                                   str(MAX_MESSAGE_BYTES)])


def bench(mode, *args, server=None, as_json=True, timeout_s=BENCH_TIMEOUT_S):
    """Run `chorus-bench MODE -s server [--json] args...` (bounded); returns a
    Ctl (rc, out, err; stderr already checked for sanitizer reports)."""
    check(os.path.exists(CHORUS_BENCH),
          "chorus-bench binary not found: %s" % CHORUS_BENCH)
    argv = [CHORUS_BENCH, mode, "-s", server or node().http_addr,
            "--timeout", str(timeout_s)]
    if as_json:
        argv.append("--json")
    argv += [str(a) for a in args]
    return Ctl(run_cmd(argv, timeout=timeout_s + 30), argv)


def bench_ok(mode, *args, **kw):
    """A run that must succeed: exit 0, one JSON object on stdout."""
    o = bench(mode, *args, **kw)
    eq(o.rc, 0, "chorus-bench %s exit code (%r)" % (mode, o))
    j = o.json()
    check(isinstance(j, dict), "--json output is not an object: %r" % j)
    eq(j.get("mode"), mode, "mode field of %s" % mode)
    check("firstError" not in j,
          "%s: firstError present in a clean run: %r" % (mode, j))
    return j


def check_latency(lat, samples, what):
    """A latency summary: all fields numbers, min <= p50 <= p99 <= p999 <=
    max, mean within [min, max], `samples` samples."""
    check(isinstance(lat, dict), "%s: not an object: %r" % (what, lat))
    for k in ("p50", "p99", "p999", "min", "max", "mean", "samples"):
        check(isinstance(lat.get(k), (int, float)) and
              not isinstance(lat.get(k), bool),
              "%s: field %r missing or not a number: %r" % (what, k, lat))
        check(lat[k] >= 0, "%s: negative %s: %r" % (what, k, lat))
    eq(lat["samples"], samples, "%s: samples" % what)
    check(lat["min"] <= lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"],
          "%s: percentiles not ordered (min <= p50 <= p99 <= p999 <= max): %r"
          % (what, lat))
    # mean is printed rounded; allow for float noise only
    check(lat["min"] - 1e-6 <= lat["mean"] <= lat["max"] + 1e-6,
          "%s: mean outside [min, max]: %r" % (what, lat))


def check_stored(nd, topic, count, size, what):
    """The node holds exactly `count` messages on the (fresh) topic, written
    by chorus-bench, with `size`-byte bodies."""
    o = nd.get_json("/admin/topics" + topic)
    eq((o.get("count"), o.get("firstSequenceId"), o.get("lastSequenceId")),
       (count, 1, count), "%s: /admin/topics%s count/first/last" % (what, topic))
    arr = nd.get_json("/api/message%s?from=1&limit=3" % topic)
    eq([m.get("sequenceId") for m in arr], list(range(1, min(3, count) + 1)),
       "%s: first stored messages" % what)
    for m in arr:
        eq(m.get("userId"), "bench", "%s: userId of stored message" % what)
        check(isinstance(m.get("body"), str),
              "%s: stored body is not text: %r" % (what, m))
        eq(len(m["body"]), size, "%s: stored body size" % what)


def ws_gauge(nd):
    """chorus_websocket_connections from GET /metrics (Prometheus text)."""
    r = nd.http("GET", "/metrics", timeout=5)
    eq(r.status, 200, "GET /metrics")
    for line in r.text.splitlines():
        if line.startswith("chorus_websocket_connections "):
            return int(float(line.split()[1]))
    raise TestFailure("/metrics lacks chorus_websocket_connections:\n%s"
                      % r.text[:2000])


# ------------------------------------------------------------------- tests

@timeout(120)
def test_pub_json_and_stored():
    nd = node()
    t = unique_topic("/bench/pub")
    n, size = 400, 100
    j = bench_ok("pub", "--count", n, "--publishers", 2, "--window", 50,
                 "--size", size, "--topic", t)
    eq((j.get("count"), j.get("acked"), j.get("errors")), (n, n, 0),
       "pub count/acked/errors (%r)" % j)
    eq((j.get("publishers"), j.get("window"), j.get("size")), (2, 50, size),
       "pub echoes its options (%r)" % j)
    check(isinstance(j.get("elapsedSeconds"), float) and
          j["elapsedSeconds"] > 0, "pub elapsedSeconds: %r" % j)
    check(isinstance(j.get("msgsPerSec"), float) and j["msgsPerSec"] > 0,
          "pub msgsPerSec: %r" % j)
    check_latency(j.get("ackLatencyMs"), n, "pub ackLatencyMs")
    check_stored(nd, t, n, size, "pub")


@timeout(120)
def test_sync_and_e2e():
    nd = node()
    t = unique_topic("/bench/sync")
    n = 60
    j = bench_ok("sync", "--count", n, "--size", 32, "--topic", t)
    eq((j.get("count"), j.get("acked"), j.get("errors")), (n, n, 0),
       "sync count/acked/errors (%r)" % j)
    eq((j.get("publishers"), j.get("window")), (1, 1),
       "sync publishers/window (%r)" % j)
    check_latency(j.get("ackLatencyMs"), n, "sync ackLatencyMs")
    check_stored(nd, t, n, 32, "sync")

    t = unique_topic("/bench/e2e")
    n = 60
    j = bench_ok("e2e", "--count", n, "--size", 64, "--topic", t)
    eq((j.get("published"), j.get("delivered"), j.get("errors")), (n, n, 0),
       "e2e published/delivered/errors (%r)" % j)
    eq(j.get("window"), 1, "e2e default window (%r)" % j)
    check_latency(j.get("ackLatencyMs"), n, "e2e ackLatencyMs")
    check_latency(j.get("e2eLatencyMs"), n, "e2e e2eLatencyMs")
    check_stored(nd, t, n, 64, "e2e")


@timeout(120)
def test_replay_reads_whole_history():
    nd = node()
    t = unique_topic("/bench/replay")
    n, size = 300, 50
    j = bench_ok("replay", "--count", n, "--size", size, "--window", 100,
                 "--topic", t)
    eq(j.get("topic"), t, "replay topic (%r)" % j)
    eq(j.get("messages"), n, "replay: messages read (%r)" % j)
    check(isinstance(j.get("bytes"), int) and j["bytes"] >= n * size,
          "replay: bytes read %r < %d messages x %d B" % (j.get("bytes"), n,
                                                          size))
    fill = j.get("fill")
    check(isinstance(fill, dict), "replay: fill result missing: %r" % j)
    eq((fill.get("mode"), fill.get("count"), fill.get("acked"),
        fill.get("errors")), ("fill", n, n, 0), "replay fill figures (%r)"
       % fill)
    check_stored(nd, t, n, size, "replay")
    # --no-fill reads the topic as it is: the same n messages, nothing added
    j = bench_ok("replay", "--no-fill", "--topic", t)
    eq(j.get("messages"), n, "replay --no-fill: messages read (%r)" % j)
    check(j.get("fill") is None, "replay --no-fill reports a fill: %r" % j)
    check_stored(nd, t, n, size, "replay --no-fill")


@timeout(150)
def test_fanout_many_subscribers():
    # Guards a fixed bug: the run was quadratic in the number of clients.
    # Only the counts are asserted, never the time it took.
    nd = node()
    t = unique_topic("/bench/fanout")
    subs, n = 300, 20
    j = bench_ok("fanout", "--subscribers", subs, "--count", n, "--size", 20,
                 "--topic", t, timeout_s=120)
    eq((j.get("subscribers"), j.get("published"), j.get("errors")),
       (subs, n, 0), "fanout subscribers/published/errors (%r)" % j)
    eq(j.get("deliveries"), subs * n, "fanout deliveries (%r)" % j)
    check_stored(nd, t, n, 20, "fanout")


@timeout(120)
def test_hold_keeps_connections_open():
    nd = Node(name="hold")
    nd.start()
    subs = 50
    eq(ws_gauge(nd), 0, "websocket connections before the run")
    t = unique_topic("/bench/hold")
    tmp = make_tmp("chorus-bench-hold-")
    out_path = os.path.join(tmp, "stdout")
    err_path = os.path.join(tmp, "stderr")
    argv = [CHORUS_BENCH, "fanout", "-s", nd.http_addr, "--subscribers",
            str(subs), "--count", "1", "--hold", "600", "--topic", t,
            "--timeout", str(BENCH_TIMEOUT_S), "--json"]

    def read(path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, env=base_env(), preexec_fn=_pdeathsig)
    try:
        # The run is measured once it says it holds its clients; from then
        # on the node must see all of them (50 subscribers + 1 publisher).
        deadline = time.monotonic() + 60
        while True:
            held = re.search(r"holding (\d+) connections", read(err_path))
            if held:
                break
            check(p.poll() is None,
                  "chorus-bench exited (rc=%s) without holding; stderr:\n%s"
                  % (p.returncode, read(err_path)[-2000:]))
            check(time.monotonic() < deadline,
                  "chorus-bench did not announce --hold within 60 s; "
                  "stderr:\n%s" % read(err_path)[-2000:])
            time.sleep(0.05)
        eq(int(held.group(1)), subs + 1, "connections chorus-bench holds")
        def all_held():
            g = ws_gauge(nd)
            return g if g >= subs else None
        seen = wait_until(all_held, 20, "chorus_websocket_connections >= %d "
                          "while chorus-bench holds" % subs, interval=0.05)
        print("gauge while holding: %d" % seen)
        # Ctrl-C ends a hold (the run is already measured: exit 0); it
        # would otherwise last 600 s and the wait below fail.
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()  # by the PID we started
            p.wait(timeout=30)
    err_text = read(err_path)
    sanitizer_check(err_text, "chorus-bench fanout --hold")
    eq(rc, 0, "chorus-bench --hold exit code (stderr %r)" % err_text[-1000:])
    o = Ctl(subprocess.CompletedProcess(argv, rc, read(out_path).encode(),
                                        err_text.encode()), argv)
    j = o.json()
    eq((j.get("published"), j.get("deliveries"), j.get("errors")),
       (1, subs, 0), "fanout --hold figures (%r)" % j)
    # after the hold the clients are gone
    wait_until(lambda: ws_gauge(nd) < subs, 20,
               "chorus_websocket_connections < %d after chorus-bench exited"
               % subs, interval=0.1)
    check_stored(nd, t, 1, 100, "fanout --hold")


@timeout(120)
def test_nobody_listening_fails():
    server = "%s:%d" % (HOST, free_port())
    for mode, args in (("pub", ["--count", 10]),
                       ("fanout", ["--subscribers", 5, "--count", 2]),
                       ("replay", ["--count", 5])):
        o = bench(mode, *args, server=server, timeout_s=30)
        eq(o.rc, 1, "chorus-bench %s against a closed port: exit code (%r)"
           % (mode, o))
        lines = o.err_lines()
        check(lines and lines[-1].startswith("chorus-bench: "),
              "%s: no error message on stderr (%r)" % (mode, o))
        check(server in o.err and "connect" in o.err,
              "%s: the error does not name the server / connect (%r)"
              % (mode, o))
        eq(o.out.strip(), "", "%s: stdout of a failed run" % mode)


@timeout(120)
def test_refused_publishes_exit_1():
    # Bodies over the node's --max-message-bytes are answered with
    # "!error-send": the run completes, reports the errors, and exits 1.
    nd = node()
    t = unique_topic("/bench/refused")
    n = 5
    o = bench("pub", "--count", n, "--size", MAX_MESSAGE_BYTES + 1,
              "--window", 5, "--topic", t)
    eq(o.rc, 1, "pub with refused publishes: exit code (%r)" % o)
    j = o.json()
    eq((j.get("count"), j.get("acked"), j.get("errors")), (n, 0, n),
       "pub count/acked/errors with refused publishes (%r)" % j)
    check("too large" in (j.get("firstError") or ""),
          "firstError does not tell why (%r)" % j)
    check("publishes failed" in o.err, "stderr does not report the failed "
          "publishes (%r)" % o)
    r = nd.http("GET", "/admin/topics" + t)
    eq(r.status, 404, "topic of refused publishes exists (%r)" % r)


@timeout(60)
def test_usage_errors_exit_2():
    server = "%s:%d" % (HOST, free_port())
    cases = [
        ["pub", "--count", "0"],
        ["pub", "--bogus"],
        ["pub", "--count"],
        ["pub", "--count", "ten"],
        ["fanout", "--subscribers", "0"],
        ["sync", "--window", "5"],
        ["pub", "--no-fill"],
        ["pub", "--topic", "no-slash"],
        ["pub", "--publishers", "3", "--count", "2"],
        ["frobnicate"],
        [],
    ]
    for args in cases:
        argv = [CHORUS_BENCH] + args[:1] + ["-s", server] + args[1:]
        if not args:
            argv = [CHORUS_BENCH]
        o = Ctl(run_cmd(argv, timeout=30), argv)
        eq(o.rc, 2, "chorus-bench %s: exit code (%r)" % (" ".join(args), o))
        check(o.err.startswith("chorus-bench: ") and "usage" in o.err,
              "chorus-bench %s: no usage message on stderr (%r)"
              % (" ".join(args), o))
        eq(o.out, "", "chorus-bench %s: stdout" % " ".join(args))
    # --help is not an error
    o = Ctl(run_cmd([CHORUS_BENCH, "--help"], timeout=30), ["chorus-bench"])
    eq(o.rc, 0, "chorus-bench --help exit code (%r)" % o)
    for word in ("pub", "sync", "replay", "fanout", "e2e", "--hold", "--json"):
        check(word in o.out, "--help lacks %r" % word)


if __name__ == "__main__":
    run_tests(globals())
