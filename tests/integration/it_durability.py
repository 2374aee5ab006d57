#!/usr/bin/env python3
"""it_durability: acknowledged messages survive kill -9 and a restart on the
same data dir (SPEC §4 delivery guarantees, §2 restart rules)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (Node, check, eq, publish_many,  # noqa: E402
                            read_replay, run_tests, timeout)

N = 1000
TOPIC = "/d"


def check_all_there(n, total, acks, what):
    """Replay and /admin/topics show exactly `total` messages with the ids
    and bodies recorded from the acks."""
    with n.ws("reader", timeout=60) as w:
        w.send("+ %s 1" % TOPIC)
        cnt, msgs = read_replay(w, TOPIC, timeout=120)
    eq(cnt, total, "%s: replay count" % what)
    eq([m.seq for m in msgs], list(range(1, total + 1)), "%s: sequenceIds" % what)
    by_seq = {a["seq"]: a for a in acks}
    wrong = []
    for m in msgs:
        a = by_seq.get(m.seq)
        if a is None:
            continue
        if (m.body, m.msgid, m.time) != (a["body"], a["id"], a["time"]):
            wrong.append((m.seq, m.body[:20], m.msgid, m.time, a))
    check(not wrong, "%s: messages differ from what was acknowledged: %r"
          % (what, wrong[:3]))
    o = n.get_json("/admin/topics" + TOPIC)
    eq((o.get("count"), o.get("firstSequenceId"), o.get("lastSequenceId")),
       (total, 1, total), "%s: /admin/topics%s" % (what, TOPIC))


@timeout(230)
def test_kill9_restart_keeps_acknowledged_messages():
    n = Node(name="durable")
    n.start()
    bodies = ["durable body %d" % i for i in range(N)]
    ids = ["d%d" % i for i in range(N)]
    with n.ws("writer", timeout=60) as w:
        frames = publish_many(w, TOPIC, bodies, window=200, msgids=ids,
                              timeout=180)
    acks = [{"seq": f.json["sequenceId"], "time": f.json["messagePublishingTime"],
             "body": b.encode(), "id": i}
            for f, b, i in zip(frames, bodies, ids)]
    eq(sorted(a["seq"] for a in acks), list(range(1, N + 1)),
       "acknowledged sequenceIds")
    n.kill9()
    n.start()
    check_all_there(n, N, acks, "after kill -9 and restart")
    # new publishes continue the sequence
    with n.ws("writer2") as w:
        f = w.publish_ok(TOPIC, "after restart", msgid="post")
        eq(f.json.get("sequenceId"), N + 1, "first sequenceId after restart")
        acks.append({"seq": N + 1, "time": f.json["messagePublishingTime"],
                     "body": b"after restart", "id": "post"})
        g = w.publish_ok(TOPIC, "again", msgid="post")
        eq(g.json.get("sequenceId"), N + 1, "re-publish of a known id")
    # the de-dup state survived the crash: an id acknowledged before the
    # kill (same path and user, well within --dedup-window) is not stored
    # again and keeps its sequenceId
    with n.ws("writer") as w:
        g = w.publish_ok(TOPIC, "dup", msgid=ids[-1])
        eq(g.json.get("sequenceId"), acks[N - 1]["seq"],
           "re-publish after restart of an id acknowledged before kill -9")
    eq(n.stop(), 0, "exit code on SIGTERM")
    n.start()
    check_all_there(n, N + 1, acks, "after SIGTERM and restart")
    eq(n.stop(), 0, "exit code on SIGTERM")


@timeout(120)
def test_restart_ignores_cluster_flag_when_data_exists():
    # "Data dir holds state → restart from it; --cluster is ignored."
    n = Node(name="restart-cluster-flag")
    n.start()
    with n.ws("w") as w:
        w.publish_ok("/keep", "kept")
    eq(n.stop(), 0, "exit code on SIGTERM")
    n.extra_args = ["--cluster", "1=%s/%s" % (n.raft_addr, n.http_addr)]
    n.start()
    arr = n.get_json("/api/message/keep")
    eq([(o["sequenceId"], o.get("body")) for o in arr], [(1, "kept")],
       "state after a restart with --cluster")


if __name__ == "__main__":
    run_tests(globals())
