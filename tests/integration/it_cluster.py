#!/usr/bin/env python3
"""it_cluster: a three-node cluster serving clients on every node (issue #3;
docs/operations.md, docs/protocol.md).

One cluster (ids 1..3, bootstrapped with --cluster) is shared by the tests;
the transfer test runs last because it moves the leadership."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (check, chorusctl, eq, healthcheck_status,  # noqa: E402
                            history, member_view, msg_key, publish_frame,
                            read_replay, run_tests,
                            shared_cluster, timeout, unique_topic, wait_until)


def cluster():
    return shared_cluster("cl", 3)


def expected_members(c):
    return sorted((nd.node_id, nd.raft_addr, nd.http_addr, "voter")
                  for nd in c.nodes)


def rest_history(nd, path, limit=10000):
    r = nd.http("GET", "/api/message%s?from=1&limit=%d" % (path, limit))
    eq(r.status, 200, "GET /api/message%s on node %d (%r)" % (path, nd.node_id, r))
    arr = r.json()
    check(isinstance(arr, list), "GET /api/message%s: not an array: %r"
          % (path, arr))
    return arr


def check_same_histories(c, path, expect_n):
    """WS replay `+ path 0` and REST replay are identical on every node and
    hold sequenceIds 1..expect_n. Returns node 1's WS history."""
    c.wait_topic(path, expect_n, timeout=60)
    ws_hist = {nd.node_id: history(nd, path) for nd in c.nodes}
    ref = ws_hist[c.nodes[0].node_id]
    eq([m.seq for m in ref], list(range(1, expect_n + 1)),
       "sequenceIds of `+ %s 0` on node %d" % (path, c.nodes[0].node_id))
    for nid, h in ws_hist.items():
        eq([msg_key(m) for m in h], [msg_key(m) for m in ref],
           "`+ %s 0` on node %d vs node %d" % (path, nid, c.nodes[0].node_id))
    rest = {nd.node_id: rest_history(nd, path) for nd in c.nodes}
    rref = rest[c.nodes[0].node_id]
    eq([o.get("sequenceId") for o in rref], list(range(1, expect_n + 1)),
       "sequenceIds of GET /api/message%s" % path)
    for nid, arr in rest.items():
        eq(arr, rref, "GET /api/message%s on node %d vs node %d"
           % (path, nid, c.nodes[0].node_id))
    return ref


# ---------------------------------------------------------------- tests

@timeout(40)
def test_admin_cluster_agrees_on_every_node():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    want = expected_members(c)
    for nd in c.nodes:
        info = nd.get_json("/admin/cluster")
        eq(info.get("id"), nd.node_id, "/admin/cluster id on node %d" % nd.node_id)
        eq(member_view(info), want, "members on node %d" % nd.node_id)
        eq(info.get("leader"), leader.node_id, "leader on node %d" % nd.node_id)
        eq(info.get("state"), "leader" if nd is leader else "follower",
           "state on node %d" % nd.node_id)
        for k in ("term", "commitIndex", "appliedIndex"):
            check(isinstance(info.get(k), int),
                  "node %d: /admin/cluster %s is not an integer: %r"
                  % (nd.node_id, k, info))
    terms = {nd.get_json("/admin/cluster").get("term") for nd in c.nodes}
    eq(len(terms), 1, "terms reported by the three nodes (%r)" % terms)
    for nd in c.nodes:
        eq(healthcheck_status(nd), 200, "healthcheck on node %d" % nd.node_id)
        h = nd.get_json("/admin/healthcheck")
        eq(h.get("status"), "ok", "healthcheck status on node %d" % nd.node_id)


@timeout(30)
def test_chorusctl_status_and_members_on_every_node():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    want = expected_members(c)
    for nd in c.nodes:
        o = chorusctl(nd.http_addr, "members", as_json=True)
        eq(o.rc, 0, "chorusctl -s node%d members --json (%r)" % (nd.node_id, o))
        j = o.json()
        members = j.get("members") if isinstance(j, dict) else j
        eq(member_view({"members": members}), want,
           "chorusctl members --json via node %d" % nd.node_id)
        o = chorusctl(nd.http_addr, "status", as_json=True)
        eq(o.rc, 0, "chorusctl -s node%d status --json (%r)" % (nd.node_id, o))
        eq(o.json().get("leader"), leader.node_id,
           "chorusctl status --json leader via node %d" % nd.node_id)
        o = chorusctl(nd.http_addr, "members")
        eq(o.rc, 0, "chorusctl members (%r)" % o)
        for m in c.nodes:
            for s in (m.raft_addr, m.http_addr):
                check(s in o.out, "chorusctl members via node %d lacks %s: %r"
                      % (nd.node_id, s, o.out))


@timeout(50)
def test_publish_on_every_node_subscribers_everywhere():
    c = cluster()
    c.wait_leader(timeout=30)
    path = unique_topic("/c")
    per_node = 100
    # live subscribers on every node, subscribed before anything is
    # published: one without startId, one with startId 0
    subs = []
    for nd in c.nodes:
        live = nd.ws("sub", timeout=30)
        live.send("+ %s" % path)
        live.expect_status("subscribed-to", path)
        subs.append(("node%d live" % nd.node_id, live))
        rep = nd.ws("sub", timeout=30)
        rep.send("+ %s 0" % path)
        eq(read_replay(rep, path)[0], 0, "replay of a new topic on node %d"
           % nd.node_id)
        rep.expect_status("subscribed-to", path)
        subs.append(("node%d from-0" % nd.node_id, rep))
    pubs = [(nd, nd.ws("pub%d" % nd.node_id, timeout=60)) for nd in c.nodes]
    try:
        # interleave the three publishers' pipelines
        for i in range(per_node):
            for nd, w in pubs:
                w.send(publish_frame(path, "body %d from node %d" % (i, nd.node_id),
                                     "m%d-%d" % (nd.node_id, i)))
        acked = {}  # seq -> (user, msgid)
        for nd, w in pubs:
            for i in range(per_node):
                f = w.recv(60)
                check(f.is_status("send"), "publish %d on node %d answered %r"
                      % (i, nd.node_id, f))
                eq(f.text, "m%d-%d" % (nd.node_id, i),
                   "answer order on node %d" % nd.node_id)
                seq = f.json.get("sequenceId")
                eq(f.json.get("path"), path, "#send path")
                check(seq not in acked, "sequenceId %s acknowledged twice (%r, %r)"
                      % (seq, acked.get(seq), f))
                acked[seq] = ("pub%d" % nd.node_id, f.text)
        total = per_node * len(pubs)
        eq(sorted(acked), list(range(1, total + 1)), "acknowledged sequenceIds")
        # every subscriber gets every message, in order, same ids
        received = {}
        for name, s in subs:
            got = []
            deadline = time.monotonic() + 60
            while len(got) < total:
                f = s.recv(max(0.1, deadline - time.monotonic()))
                check(f.is_msg(path), "%s: expected a message, got %r" % (name, f))
                got.append(f)
            extra = [f for f in s.drain(quiet=0.5) if f.kind == "message"]
            check(not extra, "%s: messages beyond the %d published: %r"
                  % (name, total, extra[:3]))
            eq([m.seq for m in got], list(range(1, total + 1)),
               "%s: sequenceIds received" % name)
            for m in got:
                eq((m.user, m.msgid), acked[m.seq],
                   "%s: (user, msgid) of sequenceId %d" % (name, m.seq))
            received[name] = [msg_key(m) for m in got]
        ref_name = subs[0][0]
        for name, keys in received.items():
            eq(keys, received[ref_name], "messages received by %s vs %s"
               % (name, ref_name))
        hist = check_same_histories(c, path, total)
        eq([msg_key(m) for m in hist], received[ref_name],
           "`+ %s 0` vs what the live subscribers received" % path)
    finally:
        for _, s in subs:
            s.close()
        for _, w in pubs:
            w.close()


@timeout(30)
def test_rest_publish_on_followers():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    path = unique_topic("/rest")
    seqs = []
    for k, nd in enumerate(c.followers(leader) + [leader]):
        r = nd.http("POST", "/api/message%s?userId=restu&messageId=r%d" % (path, k),
                    body=("rest body %d" % k).encode(),
                    headers={"X-Guble-Kind": "rest"})
        eq(r.status, 200, "REST publish on node %d (%s) (%r)"
           % (nd.node_id, "leader" if nd is leader else "follower", r))
        j = r.json()
        eq(j.get("publisherMessageId"), "r%d" % k, "REST answer id")
        seqs.append(j.get("sequenceId"))
    eq(seqs, [1, 2, 3], "sequenceIds of the REST publishes")
    hist = check_same_histories(c, path, 3)
    eq([(m.user, m.app, m.msgid, m.body) for m in hist],
       [("restu", "rest", "r%d" % k, ("rest body %d" % k).encode())
        for k in range(3)], "stored REST messages")
    check(all(m.header_json.get("Kind") == "rest" for m in hist),
          "X-Guble-Kind header not stored: %r" % hist)


@timeout(70)
def test_read_your_writes_on_followers():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    # 200 rounds on one follower, a few on the other
    for nd, rounds in zip(c.followers(leader), (200, 50)):
        path = unique_topic("/ryw")
        with nd.ws("ryw", timeout=30) as w:
            for i in range(rounds):
                f = w.publish(path, "ryw %d" % i, msgid="y%d" % i)
                check(f.is_status("send"), "node %d: publish %d answered %r"
                      % (nd.node_id, i, f))
                n = f.json.get("sequenceId")
                eq(n, i + 1, "node %d: sequenceId of publish %d" % (nd.node_id, i))
                w.send("+ %s %d 1" % (path, n))
                cnt, msgs = read_replay(w, path, timeout=30)
                eq(cnt, 1, "node %d round %d: `+ %s %d 1` right after #send %d "
                   "(read-your-writes)" % (nd.node_id, i, path, n, n))
                eq((msgs[0].seq, msgs[0].msgid, msgs[0].body),
                   (n, "y%d" % i, ("ryw %d" % i).encode()),
                   "node %d round %d: replayed message" % (nd.node_id, i))
            extra = w.drain(quiet=0.3)
            check(not extra, "node %d: unexpected frames after the last replay "
                  "(maxCount given, so no live part): %r" % (nd.node_id, extra[:3]))


@timeout(30)
def test_same_publisher_message_id_on_two_nodes_is_stored_once():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    f1, f2 = c.followers(leader)[:2]
    path = unique_topic("/dup")
    # sequential: follower A, then follower B, then the leader
    with f1.ws("dupuser") as a, f2.ws("dupuser") as b, leader.ws("dupuser") as l:
        x = a.publish_ok(path, "first", msgid="same-1")
        y = b.publish_ok(path, "second", msgid="same-1")
        z = l.publish_ok(path, "third", msgid="same-1")
        for g, where in ((y, "node %d" % f2.node_id), (z, "leader")):
            eq((g.json.get("sequenceId"), g.json.get("messagePublishingTime")),
               (x.json.get("sequenceId"), x.json.get("messagePublishingTime")),
               "re-publish of (path, user, id) on %s: sequenceId and time" % where)
        eq(x.json.get("sequenceId"), 1, "first sequenceId")
        # a different user with the same id is another message
        with f2.ws("otheruser") as o:
            g = o.publish_ok(path, "other user", msgid="same-1")
            eq(g.json.get("sequenceId"), 2, "same id, other user")
        # concurrent: the same ids pipelined on all three nodes at once
        ids = ["cc-%d" % i for i in range(50)]
        conns = [(f1, a), (f2, b), (leader, l)]
        for i in ids:
            for nd, w in conns:
                w.send(publish_frame(path, "%s via node %d" % (i, nd.node_id), i))
        seq_of = {}
        for nd, w in conns:
            for i in ids:
                f = w.recv(60)
                check(f.is_status("send"), "node %d: concurrent publish %s "
                      "answered %r" % (nd.node_id, i, f))
                eq(f.text, i, "node %d: answer order" % nd.node_id)
                s = (f.json.get("sequenceId"), f.json.get("messagePublishingTime"))
                if i in seq_of:
                    eq(s, seq_of[i], "node %d: (sequenceId, time) of %s vs "
                       "another node's answer" % (nd.node_id, i))
                seq_of[i] = s
        eq(sorted(s for s, _ in seq_of.values()), list(range(3, 3 + len(ids))),
           "sequenceIds of the concurrently published ids")
    total = 2 + len(ids)
    hist = check_same_histories(c, path, total)
    eq([m.body for m in hist[:2]], [b"first", b"other user"],
       "stored bodies of the sequential publishes")
    pairs = [(m.user, m.msgid) for m in hist]
    eq(len(set(pairs)), len(pairs), "(user, msgid) stored twice: %r" % pairs)
    for m in hist[2:]:
        eq(m.seq, seq_of[m.msgid][0], "stored sequenceId of %s" % m.msgid)


@timeout(45)
def test_transfer_makes_node3_leader():
    c = cluster()
    leader = c.wait_leader(timeout=30)
    if leader.node_id == 3:
        # make the test meaningful: move it away first
        o = chorusctl(c[1].http_addr, "transfer", 1)
        eq(o.rc, 0, "chorusctl transfer 1 (%r)" % o)
        wait_until(lambda: c.agreed_leader() == 1, 15,
                   "leader 1 on all nodes after transfer 1")
        leader = c[1]
    # ask a node that is neither the leader nor the target
    via = [nd for nd in c.nodes if nd.node_id not in (3, leader.node_id)][0]
    o = chorusctl(via.http_addr, "transfer", 3)
    eq(o.rc, 0, "chorusctl -s node%d transfer 3 (%r)" % (via.node_id, o))
    check(o.err.strip() == "", "chorusctl transfer wrote to stderr: %r" % o.err)
    wait_until(lambda: c.agreed_leader() == 3, 15,
               "leader 3 on all nodes after chorusctl transfer 3")
    for nd in c.nodes:
        info = nd.get_json("/admin/cluster")
        eq(info.get("leader"), 3, "leader on node %d" % nd.node_id)
        eq(info.get("state"), "leader" if nd.node_id == 3 else "follower",
           "state of node %d" % nd.node_id)
    o = chorusctl(c[1].http_addr, "status", as_json=True)
    eq((o.rc, o.json().get("leader")), (0, 3), "chorusctl status after transfer")
    # the cluster keeps working: publish on every node
    path = unique_topic("/after-transfer")
    for k, nd in enumerate(c.nodes):
        wait_until(lambda: healthcheck_status(nd) == 200, 15,
                   "healthcheck 200 on node %d" % nd.node_id)
        with nd.ws("tr") as w:
            f = w.publish_ok(path, "after transfer %d" % k, msgid="t%d" % k)
            eq(f.json.get("sequenceId"), k + 1, "sequenceId after transfer")
    check_same_histories(c, path, 3)


if __name__ == "__main__":
    run_tests(globals())
