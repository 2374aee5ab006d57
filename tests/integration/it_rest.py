#!/usr/bin/env python3
"""it_rest: the HTTP API of docs/protocol.md "HTTP API" against one node (publish, replay,
errors, healthcheck, metrics, admin topics and cluster)."""

import base64
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (check, eq, publish_many, read_replay,  # noqa: E402
                            run_tests, shared_node, unique_topic)


def node():
    # a small limit so that the 413 case is cheap
    return shared_node("rest", ["--max-message-bytes", "1000"])


def post(nd, path, body, headers=None):
    return nd.http("POST", path, body=body, headers=headers or {})


def check_error_json(r, status, what):
    eq(r.status, status, "%s: status (body %r)" % (what, r.body[:300]))
    j = r.json()
    check(isinstance(j, dict) and isinstance(j.get("error"), str) and j["error"],
          "%s: body must be JSON {\"error\":\"...\"}, got %r" % (what, r.body[:300]))


def test_post_message_delivered_to_websocket():
    nd = node()
    t = unique_topic("/rest")
    with nd.ws("watcher") as sub:
        sub.send("+ " + t)
        sub.expect_status("subscribed-to", t)
        r = post(nd, "/api/message%s?userId=u1&messageId=m1" % t, b"hello rest",
                 {"X-Guble-Foo": "bar", "X-Chorus-Baz": "q",
                  "Content-Type": "text/plain"})
        eq(r.status, 200, "POST status (body %r)" % r.body[:300])
        j = r.json()
        eq(j.get("sequenceId"), 1, "sequenceId")
        eq(j.get("path"), t, "path")
        eq(j.get("publisherMessageId"), "m1", "publisherMessageId")
        check(isinstance(j.get("messagePublishingTime"), int)
              and abs(j["messagePublishingTime"] - time.time()) < 600,
              "messagePublishingTime: %r" % j)
        m = sub.expect(lambda f: f.is_msg(t), "the REST message on the WebSocket")
        eq((m.seq, m.user, m.app, m.msgid, m.body),
           (1, "u1", "rest", "m1", b"hello rest"), "message fields")
        eq(m.time, j["messagePublishingTime"], "publishing time")
        eq(m.header_json.get("Foo"), "bar", "X-Guble-Foo header field")
        eq(m.header_json.get("Baz"), "q", "X-Chorus-Baz header field")


def test_get_replay_fields():
    nd = node()
    t = unique_topic("/rget")
    bodies = [b"one", "zwei \u00e9\n,x".encode(), b"\xff\xfe\x00\x80binary"]
    acks = []
    for i, b in enumerate(bodies):
        r = post(nd, "/api/message%s?userId=u2&messageId=id%d" % (t, i), b,
                 {"X-Guble-K": "v%d" % i})
        eq(r.status, 200, "POST %d (body %r)" % (i, r.body[:200]))
        acks.append(r.json())
    r = nd.http("GET", "/api/message%s?from=1&limit=10" % t)
    eq(r.status, 200, "GET status (body %r)" % r.body[:200])
    arr = r.json()
    check(isinstance(arr, list), "GET must return a JSON array: %r" % arr)
    eq(len(arr), 3, "number of messages")
    for i, (o, b, a) in enumerate(zip(arr, bodies, acks)):
        for k in ("path", "sequenceId", "userId", "applicationId", "messageId",
                  "time", "headers"):
            check(k in o, "message %d lacks %r: %r" % (i, k, o))
        eq((o["path"], o["sequenceId"], o["userId"], o["applicationId"],
            o["messageId"], o["time"]),
           (t, i + 1, "u2", "rest", "id%d" % i, a["messagePublishingTime"]),
           "fields of message %d" % i)
        check(isinstance(o["headers"], dict) and o["headers"].get("K") == "v%d" % i,
              "headers of message %d: %r" % (i, o["headers"]))
        if i < 2:
            eq(o.get("body"), b.decode("utf-8"), "UTF-8 body %d as a string" % i)
        else:
            check(o.get("body") is None,
                  "a non-UTF-8 body must come as bodyBase64 only: %r" % o)
            check("bodyBase64" in o, "bodyBase64 missing: %r" % o)
            eq(base64.b64decode(o["bodyBase64"]), b, "bodyBase64 content")
    # from/limit
    r = nd.http("GET", "/api/message%s?from=2&limit=1" % t)
    eq(r.status, 200, "GET from=2&limit=1")
    eq([o["sequenceId"] for o in r.json()], [2], "from=2&limit=1")
    r = nd.http("GET", "/api/message%s" % t)
    eq(r.status, 200, "GET without parameters")
    eq([o["sequenceId"] for o in r.json()], [1, 2, 3], "defaults from=1")
    r = nd.http("GET", "/api/message%s?from=4" % t)
    eq((r.status, r.json()), (200, []), "from beyond the end")


def test_get_default_limit_100():
    nd = node()
    t = unique_topic("/rlim")
    with nd.ws("filler") as w:
        publish_many(w, t, ["b%d" % i for i in range(130)], window=130)
    arr = nd.get_json("/api/message%s" % t)
    eq([o["sequenceId"] for o in arr], list(range(1, 101)), "default limit 100")
    arr = nd.get_json("/api/message%s?from=101&limit=1000" % t)
    eq([o["sequenceId"] for o in arr], list(range(101, 131)), "from=101")


def test_get_never_written_topic_is_empty():
    nd = node()
    r = nd.http("GET", "/api/message/never/written/%d" % os.getpid())
    eq(r.status, 200, "status (body %r)" % r.body[:200])
    eq(r.json(), [], "never-written topic")


def test_bad_requests_400():
    nd = node()
    for method, path, body in (
            ("POST", "/api/message/a//b?userId=u", b"x"),
            ("POST", "/api/message/a/../b?userId=u", b"x"),
            ("POST", "/api/message/a%24b?userId=u", b"x"),
            ("POST", "/api/message/ok?userId=bad$user", b"x"),
            ("POST", "/api/message/ok?userId=u&messageId=bad$id", b"x"),
            ("GET", "/api/message/a//b", None),
            ("GET", "/api/message/ok?from=x", None),
            ("GET", "/api/message/ok?limit=x", None),
            ("GET", "/api/message/ok?from=1&limit=abc", None)):
        r = nd.http(method, path, body=body)
        check_error_json(r, 400, "%s %s" % (method, path))


def test_unknown_paths_404():
    nd = node()
    for method, path in (("GET", "/nope"), ("GET", "/api/nope"),
                         ("GET", "/admin/nope"), ("POST", "/nope")):
        r = nd.http(method, path, body=b"" if method == "POST" else None)
        check_error_json(r, 404, "%s %s" % (method, path))


def test_too_large_413():
    nd = node()
    t = unique_topic("/r413")
    r = post(nd, "/api/message%s?userId=u" % t, b"x" * 1001)
    check_error_json(r, 413, "POST 1001 bytes with --max-message-bytes 1000")
    r = post(nd, "/api/message%s?userId=u" % t, b"y" * 1000)
    eq(r.status, 200, "POST exactly 1000 bytes (body %r)" % r.body[:200])
    eq(r.json().get("sequenceId"), 1, "the refused message took no sequenceId")


def test_healthcheck():
    nd = node()
    r = nd.http("GET", "/admin/healthcheck")
    eq(r.status, 200, "status")
    j = r.json()
    eq(j.get("status"), "ok", "healthcheck status field")


PROM_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
    r'([-+]?[0-9.]+([eE][-+]?[0-9]+)?|[-+]?Inf|NaN)( -?[0-9]+)?$')


def test_metrics():
    nd = node()
    # make sure there is something to count
    nd.http("POST", "/api/message%s?userId=m" % unique_topic("/metric"), body=b"x")
    r = nd.http("GET", "/metrics")
    eq(r.status, 200, "/metrics status")
    text = r.text
    lines = [l for l in text.splitlines() if l.strip()]
    check(lines, "/metrics is empty")
    # (# HELP lines are optional in the Prometheus text format)
    check(any(l.startswith("# TYPE ") for l in lines), "/metrics has no # TYPE")
    bad = [l for l in lines if not l.startswith("#") and not PROM_LINE.match(l)]
    check(not bad, "/metrics lines not in Prometheus text format: %r" % bad[:5])
    samples = [l for l in lines if not l.startswith("#")]
    check(samples, "/metrics has no samples")
    r = nd.http("GET", "/admin/metrics")
    eq(r.status, 200, "/admin/metrics status")
    j = r.json()
    check(isinstance(j, dict) and j, "/admin/metrics must be a non-empty JSON "
          "object: %r" % r.body[:300])
    # the same figures: every metric name of /metrics appears in the JSON
    names = {re.split(r"[ {]", l, 1)[0] for l in samples}
    flat = r.text
    missing = sorted(n for n in names if '"%s"' % n not in flat)
    check(not missing, "/admin/metrics lacks %s (present in /metrics)" % missing)


def check_topic_obj(o, path, count, what):
    check(isinstance(o, dict), "%s: not an object: %r" % (what, o))
    for k in ("path", "count", "firstSequenceId", "lastSequenceId", "bytes"):
        check(k in o, "%s lacks %r: %r" % (what, k, o))
    eq((o["path"], o["count"], o["firstSequenceId"], o["lastSequenceId"]),
       (path, count, 1, count), "%s path/count/first/last" % what)
    check(isinstance(o["bytes"], int) and o["bytes"] >= 0,
          "%s bytes: %r" % (what, o["bytes"]))


def test_admin_topics():
    nd = node()
    base = unique_topic("/adm")
    counts = {base: 2, base + "/bar": 1, base + "/bar/baz": 1, base + "bar": 3}
    for p, n in counts.items():
        for i in range(n):
            r = post(nd, "/api/message%s?userId=a" % p, b"body%d" % i)
            eq(r.status, 200, "POST %s" % p)
    j = nd.get_json("/admin/topics")
    check(isinstance(j.get("topics"), list), "/admin/topics: %r" % j)
    by = {o.get("path"): o for o in j["topics"]}
    for p, n in counts.items():
        check(p in by, "/admin/topics lacks %s" % p)
        check_topic_obj(by[p], p, n, "/admin/topics entry %s" % p)
    j = nd.get_json("/admin/topics?prefix=" + base)
    got = sorted(o.get("path") for o in j.get("topics", []))
    eq(got, sorted([base, base + "/bar", base + "/bar/baz"]),
       "/admin/topics?prefix=%s (whole segments: %sbar excluded)" % (base, base))
    for o in j["topics"]:
        check_topic_obj(o, o["path"], counts[o["path"]], "prefix entry")
    o = nd.get_json("/admin/topics" + base)
    check_topic_obj(o, base, 2, "/admin/topics%s" % base)
    o = nd.get_json("/admin/topics%s/bar/baz" % base)
    check_topic_obj(o, base + "/bar/baz", 1, "/admin/topics%s/bar/baz" % base)
    r = nd.http("GET", "/admin/topics/never/%d" % os.getpid())
    check_error_json(r, 404, "/admin/topics of a never-written topic")


def test_admin_cluster_single_node():
    nd = node()
    j = nd.get_json("/admin/cluster")
    eq(j.get("id"), 1, "id")
    eq(j.get("state"), "leader", "state")
    eq(j.get("leader"), 1, "leader")
    for k in ("term", "commitIndex", "appliedIndex"):
        check(isinstance(j.get(k), int), "%s must be an integer: %r" % (k, j))
    m = j.get("members")
    check(isinstance(m, list) and len(m) == 1, "one member: %r" % m)
    eq((m[0].get("id"), m[0].get("raft"), m[0].get("http"), m[0].get("role")),
       (1, nd.raft_addr, nd.http_addr, "voter"), "the member")


def test_ws_and_rest_see_same_messages():
    nd = node()
    t = unique_topic("/both")
    with nd.ws("wsuser") as w:
        w.publish_ok(t, "via ws", msgid="w1")
        r = post(nd, "/api/message%s?userId=ru&messageId=r1" % t, b"via rest")
        eq(r.status, 200, "POST")
        eq(r.json()["sequenceId"], 2, "REST publish after a WS publish")
        w.send("+ %s 0" % t)
        n, msgs = read_replay(w, t)
        eq([(m.seq, m.user, m.body) for m in msgs],
           [(1, "wsuser", b"via ws"), (2, "ru", b"via rest")], "replay")
    arr = nd.get_json("/api/message" + t)
    eq([(o["sequenceId"], o["userId"], o["applicationId"] == "rest") for o in arr],
       [(1, "wsuser", False), (2, "ru", True)], "REST replay")


if __name__ == "__main__":
    run_tests(globals())
