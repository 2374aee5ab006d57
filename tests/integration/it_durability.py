#!/usr/bin/env python3
"""it_durability: acknowledged messages survive kill -9 and a restart on the
same data dir (docs/protocol.md "Delivery guarantees", docs/operations.md "Running a node")."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUS_BENCH, Cluster, Node, check,  # noqa: E402
                            eq, publish_many, read_replay, run_tests,
                            timeout)

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


@timeout(120)
def test_store_full_makes_the_node_unhealthy_not_corrupt():
    """The store's size limit reached (LMDB map full, as a full disk would
    be): the node keeps running, reports unhealthy with the reason, refuses
    publishes with an error; restarted with room, it has every message that
    was acknowledged and applies the rest from the raft log."""
    n = Node(name="store-full", extra_args=["--store-max-bytes", "1048576",
                                            "--publish-timeout", "2000"])
    n.start()
    acked = {}
    failed_at = None
    with n.ws("filler", timeout=30) as w:
        for i in range(1, 400):
            f = w.publish("/full", "x" * 4000 + str(i), msgid="f%d" % i)
            if f.is_status("send"):
                acked[i] = f.json["sequenceId"]
                continue
            check(f.is_error("error-send"), "publish %d: %r" % (i, f))
            failed_at = i
            break
    check(failed_at is not None, "the 1 MiB store never filled up")
    check(n.alive(), "node died when its store filled up")
    r = n.http("GET", "/admin/healthcheck")
    eq(r.status, 503, "healthcheck with a full store")
    check("space" in r.json().get("reason", "") or
          "full" in r.json().get("reason", "").lower(),
          "healthcheck reason: %r" % r.json())
    with n.ws("after", timeout=30) as w:
        f = w.publish("/full", "more", msgid="after-full")
        check(f.is_error("error-send"), "publish on a full store: %r" % f)
    eq(n.stop(), 0, "exit code on SIGTERM with a full store")
    n2 = Node(name="store-full-2", data_dir=n.data_dir)
    n2.start()
    o = n2.get_json("/admin/topics/full")
    check(o["count"] >= len(acked), "after restart: %r < %d acked"
          % (o, len(acked)))
    with n2.ws("check", timeout=30) as w:
        w.send("+ /full 1")
        cnt, msgs = read_replay(w, "/full", timeout=60)
    by_msgid = {m.msgid: m.seq for m in msgs}
    lost = [i for i, seq in acked.items() if by_msgid.get("f%d" % i) != seq]
    eq(lost, [], "acknowledged messages lost or moved")
    eq([m.seq for m in msgs], list(range(1, cnt + 1)), "sequenceIds")
    eq(n2.http("GET", "/admin/healthcheck").status, 200, "healthy again")
    eq(n2.stop(), 0, "exit code on SIGTERM")


@timeout(120)
def test_message_larger_than_a_raft_segment_survives_restart():
    """A publish of the largest allowed body is one raft entry on its own;
    here it is larger than a raft log segment (12 MiB body, 8 MiB
    segments): it commits, replays whole and survives a kill -9 restart."""
    big = 12 * 1024 * 1024
    args = ["--max-message-bytes", str(big),
            "--raft-segment-bytes", str(8 * 1024 * 1024)]
    n = Node(name="big-message", extra_args=args)
    n.start()
    body = bytes(97 + (i * 7 + i // 4096) % 26 for i in range(big))
    r = n.http("POST", "/api/message/big/one?userId=u", body=body,
               timeout=60)
    eq(r.status, 200, "publish of %d bytes: %r" % (big, r.body[:200]))
    seq = r.json()["sequenceId"]
    n.kill9()
    n2 = Node(name="big-message-2", data_dir=n.data_dir, extra_args=args)
    n2.start()
    with n2.ws("reader", timeout=60) as w:
        w.send("+ /big/one 1")
        cnt, msgs = read_replay(w, "/big/one", timeout=60)
    eq((cnt, [m.seq for m in msgs]), (1, [seq]), "replay after restart")
    check(msgs[0].body == body, "body differs after restart (%d bytes read)"
          % len(msgs[0].body))
    eq(n2.stop(), 0, "exit code on SIGTERM")

def segment_bytes(node):
    """Bytes of the closed raft segments in a node's data dir."""
    d = os.path.join(node.data_dir, "raft")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if f[:1].isdigit())


def wait_log(node, text, secs):
    deadline = time.monotonic() + secs
    while text not in node.run_log():
        check(time.monotonic() < deadline, "%s never logged %r:\n%s"
              % (node.name, text, node.log_tail(30)))
        time.sleep(0.2)


@timeout(300)
def test_restarted_follower_releases_the_log_it_loaded():
    """libraft reads the raft log at start into segment-sized buffers that
    stay pinned as long as one loaded entry is kept (docs/operations.md
    "Data directory"). A follower restarted on an idle cluster asks the
    leader for one entry, snapshots past it and drops the loaded log: its
    segments are deleted and its anonymous memory falls by more than the
    log it loaded. No snapshot is due by count or bytes during the fill,
    so without the release the log would stay (and be held in memory)."""
    flags = ["--snapshot-threshold", "1000000", "--raft-log-max-bytes",
             str(1 << 30), "--raft-segment-bytes", str(8 << 20)]
    c = Cluster(3, extra_args=flags, name="release")
    c.start()
    leader = c.wait_leader()
    p = subprocess.run([CHORUS_BENCH, "pub", "-s", leader.http_addr,
                        "--count", "40000", "--size", "1024", "--window",
                        "1000", "--topic", "/release/fill", "--timeout",
                        "200", "--json"], capture_output=True, timeout=230)
    eq(p.returncode, 0, "chorus-bench fill: %s" % p.stderr[-500:])
    f = next(n for n in c.nodes if n is not leader)
    f.kill9()
    loaded = segment_bytes(f)
    check(loaded >= 32 * 1024 * 1024, "only %d bytes of segments" % loaded)
    f.restart()
    deadline = time.monotonic() + 30
    while segment_bytes(f) >= loaded // 8:
        check(time.monotonic() < deadline, "the loaded segments are still "
              "there after 30 s (%d bytes):\n%s" % (segment_bytes(f),
                                                    f.log_tail(30)))
        time.sleep(0.2)
    left = segment_bytes(f)
    wait_log(f, "heap trimmed after releasing the loaded log", 30)
    check("entry asked for by a follower id=%d" % f.node_id
          in leader.run_log(), "the follower did not ask the leader")
    anon = f.rss_kb("RssAnon") * 1024
    peer = min(n.rss_kb("RssAnon") for n in c.nodes if n is not f) * 1024
    print("loaded=%d left=%d anon=%d peer_anon=%d" % (loaded, left, anon,
                                                      peer))
    check(anon + loaded // 4 < peer, "restarted follower holds %d bytes "
          "anonymous, a peer with the same log in memory %d" % (anon, peer))
    # Still a working member: a publish through it commits.
    with f.ws("after", timeout=30) as w:
        w.publish_ok("/release/after", b"x")
    for n in c.nodes:
        eq(n.stop(), 0, "%s exit code on SIGTERM" % n.name)


if __name__ == "__main__":
    run_tests(globals())
