#!/usr/bin/env python3
"""it_cli: chorusctl against a single node (docs/operations.md "chorusctl")."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUSCTL, HOST, Ctl, check, eq,  # noqa: E402
                            free_port, run_cmd, run_tests, shared_node,
                            unique_topic)


def node():
    return shared_node("cli")


def ctl(*args, server=None, as_json=False, input=None, timeout=60):
    argv = [CHORUSCTL, "-s", server or node().http_addr]
    if as_json:
        argv.append("--json")
    argv += list(args)
    return Ctl(run_cmd(argv, timeout=timeout, input=input), argv)


def ok(*args, **kw):
    o = ctl(*args, **kw)
    eq(o.rc, 0, "chorusctl %s exit code (%r)" % (" ".join(args), o))
    return o


def rest_publish(path, body, user="u"):
    r = node().http("POST", "/api/message%s?userId=%s" % (path, user), body=body)
    eq(r.status, 200, "POST %s" % path)


def test_status():
    nd = node()
    o = ok("status")
    check(nd.raft_addr in o.out or nd.http_addr in o.out,
          "status does not show the member's addresses: %r" % o.out)
    check("leader" in o.out.lower(), "status does not show the leader: %r" % o.out)
    j = ok("status", as_json=True).json()
    c = nd.get_json("/admin/cluster")
    check(isinstance(j, dict), "status --json must be an object: %r" % j)
    for k in ("id", "state", "leader", "members"):
        eq(j.get(k), c.get(k), "status --json field %r vs GET /admin/cluster" % k)


def test_members():
    nd = node()
    o = ok("members")
    for s in (nd.raft_addr, nd.http_addr, "voter"):
        check(s in o.out, "members output lacks %r: %r" % (s, o.out))
    j = ok("members", as_json=True).json()
    members = nd.get_json("/admin/cluster")["members"]
    if isinstance(j, dict):
        j = j.get("members")
    eq(j, members, "members --json vs /admin/cluster members")


def test_topics_and_topic():
    nd = node()
    base = unique_topic("/cli")
    rest_publish(base, b"a1")
    rest_publish(base, b"a2")
    rest_publish(base + "/b", b"b1")
    rest_publish(base + "x", b"x1")
    o = ok("topics")
    for p in (base, base + "/b", base + "x"):
        check(p in o.out, "topics output lacks %s: %r" % (p, o.out))
    eq(ok("topics", as_json=True).json(), nd.get_json("/admin/topics"),
       "topics --json vs GET /admin/topics")
    j = ok("topics", base, as_json=True).json()
    eq(j, nd.get_json("/admin/topics?prefix=" + base),
       "topics PREFIX --json vs GET /admin/topics?prefix=")
    eq(sorted(t["path"] for t in j["topics"]), sorted([base, base + "/b"]),
       "topics %s (whole segments)" % base)
    o = ok("topic", base)
    check(base in o.out and "2" in o.out, "topic output: %r" % o.out)
    eq(ok("topic", base, as_json=True).json(), nd.get_json("/admin/topics" + base),
       "topic --json vs GET /admin/topics/<path>")


def test_topic_never_written():
    o = ctl("topic", "/never/written/cli")
    eq(o.rc, 1, "topic /never exit code (%r)" % o)
    eq(len(o.err_lines()), 1, "stderr lines of topic /never (%r)" % o)


def test_publish_with_id_and_headers():
    nd = node()
    t = unique_topic("/clipub")
    ok("publish", t, "hello cli", "--id", "m1", "--header", "K=V",
       "--header", "K2=v=2")
    ok("publish", t, "-", input=b"from stdin")
    arr = nd.get_json("/api/message" + t)
    eq(len(arr), 2, "messages after two publishes")
    m = arr[0]
    eq((m["sequenceId"], m["userId"], m["messageId"], m.get("body")),
       (1, "chorusctl", "m1", "hello cli"), "published message")
    eq(m["headers"], {"K": "V", "K2": "v=2"}, "headers from --header")
    eq((arr[1]["userId"], arr[1].get("body")), ("chorusctl", "from stdin"),
       "message from stdin")


def test_tail_from_with_max():
    nd = node()
    t = unique_topic("/clitail")
    for i in range(1, 6):
        rest_publish(t, b"tail-body-%d" % i)
    o = ok("tail", t, "-n", "3", "--from", "1")
    for i in (1, 2, 3):
        check("tail-body-%d" % i in o.out, "tail output lacks message %d: %r" % (i, o.out))
    for i in (4, 5):
        check("tail-body-%d" % i not in o.out,
              "tail -n 3 printed message %d: %r" % (i, o.out))
    o = ok("tail", t, "--last", "2", "-n", "2")
    for i in (4, 5):
        check("tail-body-%d" % i in o.out, "tail --last 2 lacks message %d: %r" % (i, o.out))
    check("tail-body-3" not in o.out, "tail --last 2 printed message 3: %r" % o.out)
    # a tail that follows the live stream ends after MAX messages
    o = ok("tail", t, "--from", "5", "-n", "1")
    check("tail-body-5" in o.out, "tail --from 5 -n 1: %r" % o.out)
    del nd


def test_unknown_command_exit_2():
    o = ctl("frobnicate")
    eq(o.rc, 2, "unknown command exit code (%r)" % o)
    check(o.err_lines(), "unknown command: nothing on stderr")


def test_usage_errors_exit_2():
    for args in (["topic"], ["publish"], ["leave"], ["tail"]):
        o = ctl(*args)
        eq(o.rc, 2, "chorusctl %s exit code (%r)" % (" ".join(args), o))
    o = Ctl(run_cmd([CHORUSCTL], timeout=30), [CHORUSCTL])
    eq(o.rc, 2, "chorusctl without a command (%r)" % o)


def test_unreachable_server():
    port = free_port()
    for args in (["status"], ["topics"], ["publish", "/x", "y"]):
        o = ctl(*args, server="%s:%d" % (HOST, port), timeout=60)
        eq(o.rc, 1, "chorusctl -s <closed port> %s exit code (%r)" % (args[0], o))
        eq(len(o.err_lines()), 1, "stderr lines (%r)" % o)


def test_server_from_environment():
    nd = node()
    p = run_cmd([CHORUSCTL, "--json", "members"], timeout=60,
                env={"CHORUS_SERVER": nd.http_addr})
    o = Ctl(p, [CHORUSCTL, "--json", "members"])
    eq(o.rc, 0, "CHORUS_SERVER=%s chorusctl members (%r)" % (nd.http_addr, o))


if __name__ == "__main__":
    run_tests(globals())
