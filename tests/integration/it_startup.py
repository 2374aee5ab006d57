#!/usr/bin/env python3
"""it_startup: chorusd's command line, environment and signals (docs/operations.md "Running a node")."""

import os
import resource
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUSD, HOST, Node, check, eq,  # noqa: E402
                            free_port, http_request, make_tmp, run_cmd,
                            run_tests, sanitizer_check, timeout, unique_topic)

FLAGS = {
    # flag: default shown by --help
    "--id": "1",
    "--raft": "127.0.0.1:7001",
    "--http": "127.0.0.1:8080",
    "--data": "./chorus-data",
    "--cluster": None,
    "--join": None,
    "--log": "info",
    "--max-message-bytes": "1048576",
    "--dedup-window": "120",
    "--publish-timeout": "5000",
    "--max-connection-buffer": "4194304",
    "--max-connections": "20000",
}


def safe_args():
    """Flags that keep a stray start away from fixed ports/shared dirs."""
    return ["--raft", "%s:%d" % (HOST, free_port()),
            "--http", "%s:%d" % (HOST, free_port()),
            "--data", os.path.join(make_tmp(), "data")]


def stderr_lines(p):
    text = p.stderr.decode("utf-8", "replace")
    sanitizer_check(text, "chorusd")
    return [l for l in text.splitlines() if l.strip()]


def test_help_lists_every_flag_with_defaults():
    p = run_cmd([CHORUSD, "--help"], timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    stderr_lines(p)
    eq(p.returncode, 0, "chorusd --help exit code")
    missing = [f for f in FLAGS if f not in out]
    check(not missing, "--help does not list %s; stdout:\n%s" % (missing, out))
    missing = [d for d in FLAGS.values() if d and d not in out]
    check(not missing, "--help does not show the defaults %s; stdout:\n%s"
          % (missing, out))


def test_bad_flags_exit_nonzero_with_one_line():
    cases = [
        ["--bogus"],
        ["--id", "0"],
        ["--id", "abc"],
        ["--max-message-bytes", "-5"],
        ["--max-message-bytes", "lots"],
        ["--log", "loud"],
        ["--publish-timeout", "x"],
        ["--id"],  # missing value
        ["stray-positional"],
        # Addresses and the member list are checked before anything else
        # happens (no file-descriptor lines, no "stopped").
        ["--http", "not-an-address"],
        ["--http", "127.0.0.1:99999"],
        ["--raft", "nowhere"],
        ["--join", "no-port"],
        ["--cluster", "1=127.0.0.1:1/"],
    ]
    problems = []
    for extra in cases:
        try:
            p = run_cmd([CHORUSD] + safe_args() + extra, timeout=30)
        except Exception as e:  # TimeoutExpired: it kept running
            problems.append("%s: did not exit (%s)" % (extra, e))
            continue
        lines = stderr_lines(p)
        if p.returncode != 2:
            problems.append("%s: exit code %d, want 2" % (extra, p.returncode))
        if len(lines) != 1:
            problems.append("%s: expected one stderr line, got %r" % (extra, lines))
    check(not problems, "bad flags:\n  " + "\n  ".join(problems))


def occupied_port_case(which):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        kw = {"http_port": port} if which == "http" else {"raft_port": port}
        n = Node(name="port-in-use-" + which, **kw)
        n.start(wait=False)
        rc = n.wait_for_exit(30)
        check(rc != 0, "%s port %d in use: exit code 0" % (which, port))
        lines = [l for l in n.run_log().splitlines() if l.strip()]
        eq(len(lines), 1, "%s port in use: stderr lines (%r)" % (which, lines))
        clear = [l for l in lines if str(port) in l or "in use" in l.lower()
                 or "eaddrinuse" in l.lower()]
        check(clear, "%s port %d in use: no stderr line names the port or says "
              "'in use':\n%s" % (which, port, "\n".join(lines[-10:])))
    finally:
        s.close()


def test_http_port_in_use():
    occupied_port_case("http")


def test_raft_port_in_use():
    occupied_port_case("raft")


def test_unusable_data_dir():
    d = make_tmp()
    f = os.path.join(d, "regular-file")
    with open(f, "w") as fh:
        fh.write("not a directory\n")
    n = Node(data_dir=os.path.join(f, "sub"), name="bad-data-dir")
    n.start(wait=False)
    rc = n.wait_for_exit(30)
    check(rc != 0, "data dir under a regular file: exit code 0")
    lines = [l for l in n.run_log().splitlines() if l.strip()]
    check(lines, "unusable data dir: nothing on stderr")


def test_missing_data_dir_is_created():
    d = os.path.join(make_tmp(), "a", "b", "c")
    n = Node(data_dir=d, name="nested-data-dir")
    n.start()
    check(os.path.isdir(d), "data dir %s was not created" % d)
    eq(n.stop(), 0, "exit code on SIGTERM")


def test_env_http_used_without_flag():
    port = free_port()
    n = Node(flags=False, http_port=port, name="env-http",
             env={"CHORUS_HTTP": "%s:%d" % (HOST, port),
                  "CHORUS_BOGUS_UNKNOWN": "ignored"})
    n.extra_args = ["--id", "1", "--raft", n.raft_addr, "--data", n.data_dir]
    n.start()  # waits for /admin/healthcheck on `port`
    eq(n.stop(), 0, "exit code on SIGTERM")


def test_flag_wins_over_env():
    env_port = free_port()
    n = Node(name="flag-wins", env={"CHORUS_HTTP": "%s:%d" % (HOST, env_port),
                                    "CHORUS_MAX_MESSAGE_BYTES": "1000"})
    n.start()  # healthy on the --http port
    try:
        http_request(env_port, "GET", "/admin/healthcheck", timeout=3)
        listening = True
    except OSError:
        listening = False
    check(not listening, "CHORUS_HTTP port %d is served although --http was "
          "given" % env_port)
    # CHORUS_MAX_MESSAGE_BYTES (no flag) applies
    t = unique_topic("/env")
    with n.ws("u") as w:
        f = w.publish(t, "x" * 1001, msgid="e1")
        check(f.is_error("error-send") and "too large" in f.text,
              "CHORUS_MAX_MESSAGE_BYTES=1000 not applied: %r" % f)
    eq(n.stop(), 0, "exit code on SIGTERM")


def test_flag_wins_over_env_for_limits():
    n = Node(name="flag-wins-2", extra_args=["--max-message-bytes", "5000"],
             env={"CHORUS_MAX_MESSAGE_BYTES": "1000"})
    n.start()
    t = unique_topic("/env")
    with n.ws("u") as w:
        f = w.publish(t, "x" * 3000, msgid="e2")
        check(f.is_status("send"), "--max-message-bytes 5000 must win over "
              "CHORUS_MAX_MESSAGE_BYTES=1000: %r" % f)
    eq(n.stop(), 0, "exit code on SIGTERM")


def signal_case(sig):
    n = Node(name="sig%d" % sig)
    n.start()
    t = unique_topic("/sig")
    with n.ws("u") as w:
        w.publish_ok(t, "before signal")
        w.send("+ " + t)
        w.expect_status("subscribed-to", t)
        rc = n.stop(sig=sig, timeout=30)
    eq(rc, 0, "exit code on signal %d with a connected client" % sig)


def test_sigterm_exits_0():
    signal_case(signal.SIGTERM)


def test_sigint_exits_0():
    signal_case(signal.SIGINT)


@timeout(90)
def test_join_without_cluster_reports_joining():
    n = Node(name="joiner", extra_args=["--join"])
    n.start(wait=False)
    import time
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        check(n.alive(), "--join node exited (rc=%s)" % n.proc.poll())
        try:
            r = n.http("GET", "/admin/cluster", timeout=3)
            last = r
            if r.status == 200:
                break
        except OSError as e:
            last = e
        time.sleep(0.2)
    check(getattr(last, "status", None) == 200,
          "GET /admin/cluster on a --join node: %r" % last)
    j = last.json()
    eq(j.get("state"), "joining", "state of a node waiting to be added")
    check("leader" in j and j["leader"] is None, "leader must be null: %r" % j)
    r = n.http("GET", "/admin/healthcheck")
    eq(r.status, 503, "/admin/healthcheck of a joining node")
    eq(n.stop(), 0, "exit code on SIGTERM")


@timeout(90)
def test_chorus_join_off_means_no_join():
    """CHORUS_JOIN=off (and empty) must not turn --join on: the node
    bootstraps itself as the single-node default."""
    for value in ("off", ""):
        n = Node(name="join-off", env={"CHORUS_JOIN": value})
        n.start()  # waits until healthy: only a bootstrapped node gets there
        j = n.get_json("/admin/cluster")
        eq(j.get("state"), "leader", "state with CHORUS_JOIN=%r" % value)
        eq(n.stop(), 0, "exit code on SIGTERM")


@timeout(90)
def test_store_without_raft_log_is_refused():
    """A data dir whose store was written but whose raft log is gone (e.g.
    an LMDB copy alone) must not start: new entries would be skipped as
    already applied."""
    import shutil
    n = Node(name="store-only")
    n.start()
    ws = n.ws("u")
    ws.publish_ok(unique_topic("/so"), "x")
    ws.close()
    eq(n.stop(), 0, "exit code on SIGTERM")
    shutil.rmtree(os.path.join(n.data_dir, "raft"))
    n2 = Node(name="store-only-restart", data_dir=n.data_dir)
    n2.start(wait=False)
    rc = n2.wait_for_exit(30)
    check(rc != 0, "a store without its raft log started (exit 0)")
    lines = [l for l in n2.run_log().splitlines() if l.strip()]
    check(any("raft log" in l for l in lines),
          "no clear stderr line about the missing raft log:\n%s"
          % "\n".join(lines[-5:]))


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


@timeout(90)
def test_fd_limit_is_raised_to_fit_max_connections():
    """A soft RLIMIT_NOFILE of 64 (Debian's default is 1024) would refuse
    clients long before --max-connections: the node raises it to
    max-connections + 256 when the hard limit allows."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        print("skipped: hard RLIMIT_NOFILE below 4096 here")
        return
    n = Node(name="fd-raise", extra_args=["--max-connections", "1000"],
             nofile=(64, 4096))
    n.start()
    eq(nofile_limits(n.pid), (1256, 4096), "soft/hard NOFILE of the node")
    eq(n.stop(), 0, "exit code on SIGTERM")
    text = n.full_log()
    check("file descriptor limit raised from=64 to=1256" in text,
          "no log line about the raise:\n%s" % text[-1500:])
    warned = [l for l in text.splitlines() if " warn " in l]
    check(not warned, "warned although the limit fits:\n%s"
          % "\n".join(warned))


@timeout(120)
def test_fd_limit_below_max_connections_is_reported_when_reached():
    """A hard limit below --max-connections + 256 is not worth a warning at
    every start. Running out is: clients beyond what the descriptors leave
    (300 - 256 reserved for raft, LMDB and links = 44) are refused like
    those beyond --max-connections, with one warning per burst that names
    the file descriptor limit, and the node keeps serving."""
    n = Node(name="fd-low", extra_args=["--max-connections", "1000"],
             nofile=(64, 300))
    n.start()
    held = []
    try:
        eq(nofile_limits(n.pid), (300, 300), "soft raised to the hard limit")
        warned = [l for l in n.full_log().splitlines() if " warn " in l]
        check(not warned, "warned at start:\n%s" % "\n".join(warned))
        held = [n.ws("c%d" % i) for i in range(44)]
        refused = 0
        for i in range(5):
            try:
                n.ws("over%d" % i, timeout=5).close()
            except Exception:  # closed during the handshake
                refused += 1
        eq(refused, 5, "connections refused beyond the descriptor limit")
        check(n.alive(), "node died refusing connections")
        text = n.full_log()
        eq(text.count("file descriptor limit reached"), 1,
           "warnings for one burst:\n%s" % text[-1500:])
        check("limit=44 fd_limit=300 max_connections=1000" in text,
              "the warning does not name the limits:\n%s" % text[-1500:])
        # The held clients still work (the node's own files and raft too:
        # the publish commits).
        f = held[0].publish("/fd/low", "still here")
        check(f.is_status("send"), "publish while at the limit: %r" % f)
    finally:
        for w in held:
            w.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            n.ws("again", timeout=5).close()
            break
        except Exception as e:
            check(time.monotonic() < deadline,
                  "no connection taken after the clients left: %s" % e)
            time.sleep(0.2)
    eq(n.stop(), 0, "exit code on SIGTERM")


@timeout(120)
def test_connections_beyond_max_connections_are_refused():
    """At --max-connections 4 four clients connect, the fifth is refused
    (the node keeps running and counts it); once two leave, new ones get
    in again."""
    n = Node(name="max-conns", extra_args=["--max-connections", "4"])
    n.start()
    held = [n.ws("c%d" % i) for i in range(4)]
    try:
        try:
            extra = n.ws("fifth", timeout=5)
            extra.close()
            refused = False
        except Exception:  # closed during the handshake
            refused = True
        check(refused, "a fifth connection was accepted with "
              "--max-connections 4")
        check(n.alive(), "node died refusing a connection")
        for w in held[:2]:
            w.close()
        held = held[2:]
        deadline = time.monotonic() + 20
        while True:
            try:
                w = n.ws("again", timeout=5)
                break
            except Exception:
                check(time.monotonic() < deadline,
                      "no connection accepted after two left")
                time.sleep(0.2)
        held.append(w)
        w.publish_ok(unique_topic("/mc"), "works")
        text = http_request(n.http_port, "GET", "/metrics").body.decode()
        refused_total = [int(l.split()[1]) for l in text.splitlines()
                         if l.startswith("chorus_connections_refused_total ")]
        check(refused_total and refused_total[0] >= 1,
              "chorus_connections_refused_total: %r" % refused_total)
    finally:
        for w in held:
            w.close()
    check("connection limit reached limit=4" in n.log_tail(50),
          "no log line about the refusal")
    eq(n.stop(), 0, "exit code on SIGTERM")

if __name__ == "__main__":
    run_tests(globals())
