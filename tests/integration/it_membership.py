#!/usr/bin/env python3
"""it_membership: join and leave with chorusctl and `--join [HTTP]`
(issue #3; docs/operations.md, docs/protocol.md "HTTP API").

- a 4th node started with `--join` on an empty data dir waits (healthcheck
  503, state "joining", leader null), is added by `chorusctl join`, catches
  up through a snapshot and serves the full history of a 100,000-message
  topic; then `chorusctl leave 2` leaves three working members and node 2
  exits on its own, saying it was removed;
- a node started with `--join <http of node 1>` is added without chorusctl;
  leaving the leader hands leadership over first;
- chorusctl error cases (unknown id, id already a member, unreachable node,
  usage)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (Cluster, HOST, check, chorusctl, eq,  # noqa: E402
                            free_port, healthcheck_status, history,
                            history_digest, member_view, msg_key, publish_many,
                            run_tests, timeout, unique_topic, wait_until)

BIG = 100000
SNAP_ARGS = ["--snapshot-threshold", "256", "--snapshot-trailing", "128"]


def expected_members(c, ids):
    return sorted((c[i].node_id, c[i].raft_addr, c[i].http_addr, "voter")
                  for i in ids)


def check_members_everywhere(c, ids, timeout_s=60):
    """Every live node reports exactly `ids` as voters with the addresses
    we started them with, and the same leader (one of them)."""
    infos = c.wait_members(ids, timeout=timeout_s)
    want = expected_members(c, ids)
    for nid, info in infos.items():
        eq(member_view(info), want, "members reported by node %d" % nid)
    leader = c.wait_leader(timeout=30)
    check(leader.node_id in ids, "leader %d is not a member %r"
          % (leader.node_id, ids))
    return leader


def check_joining_state(nd):
    """A --join node that was not added yet: gateway up, healthcheck 503,
    /admin/cluster state joining with leader null."""
    wait_until(lambda: healthcheck_status(nd) is not None, 30,
               "gateway of the joining node %d answering" % nd.node_id)
    # stays so: sample a few times over a second
    for _ in range(5):
        check(nd.alive(), "joining node %d exited: %s" % (nd.node_id, nd.log_tail(20)))
        eq(healthcheck_status(nd), 503, "healthcheck of the not-yet-added node %d"
           % nd.node_id)
        info = nd.get_json("/admin/cluster")
        eq((info.get("state"), info.get("leader")), ("joining", None),
           "/admin/cluster (state, leader) of the not-yet-added node %d: %r"
           % (nd.node_id, info))
        time.sleep(0.2)


def publish_on_every_node(c, ids, tag):
    """One WebSocket publish on each node in `ids`; all acknowledged with
    consecutive sequenceIds; histories identical on those nodes."""
    path = unique_topic("/%s" % tag)
    for k, i in enumerate(ids):
        with c[i].ws("m", timeout=30) as w:
            f = w.publish(path, "%s via node %d" % (tag, i), msgid="%s-%d" % (tag, i))
            check(f.is_status("send"), "publish on node %d (%s) answered %r"
                  % (i, tag, f))
            eq(f.json.get("sequenceId"), k + 1, "sequenceId of the publish on node %d"
               % i)
    c.wait_topic(path, len(ids), nodes=[c[i] for i in ids])
    ref = [msg_key(m) for m in history(c[ids[0]], path)]
    eq(len(ref), len(ids), "history length of %s" % path)
    for i in ids[1:]:
        eq([msg_key(m) for m in history(c[i], path)], ref,
           "history of %s on node %d vs node %d" % (path, i, ids[0]))


def check_removed_node_exits(nd, timeout_s=60):
    rc = nd.wait_for_exit(timeout_s)
    eq(rc, 0, "exit code of removed node %d (log: %s)" % (nd.node_id,
                                                         nd.log_tail(10)))
    lines = [l for l in nd.run_log().splitlines() if "removed" in l.lower()]
    check(lines, "removed node %d did not log that it was removed; log tail:\n%s"
          % (nd.node_id, nd.log_tail(15)))
    print("node %d exited: %s" % (nd.node_id, lines[-1][:200]))


def metric(nd, name):
    r = nd.http("GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    for line in r.text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# ---------------------------------------------------------------- tests

@timeout(300)
def test_join_through_snapshot_then_leave():
    c = Cluster(3, extra_args=SNAP_ARGS, name="mb")
    c.start()
    leader = c.wait_leader(timeout=30)
    path = unique_topic("/big")
    t0 = time.monotonic()
    with leader.ws("bulk", timeout=120) as w:
        bodies = ["b%d" % i for i in range(BIG)]
        acks = publish_many(w, path, bodies, window=1000, timeout=400)
    eq([f.json.get("sequenceId") for f in acks[:3]] + [acks[-1].json.get("sequenceId")],
       [1, 2, 3, BIG], "sequenceIds of the bulk publishes")
    print("published %d messages via the leader (node %d) in %.1fs"
          % (BIG, leader.node_id, time.monotonic() - t0))
    c.wait_topic(path, BIG, timeout=120)
    snaps = metric(c[1], "chorus_snapshots_total")
    check(snaps is not None and snaps > 0,
          "node 1 took no snapshot (chorus_snapshots_total=%r) with "
          "--snapshot-threshold 256 after %d entries" % (snaps, BIG))

    # node 4 waits to be added
    n4 = c.join_node(4)
    check_joining_state(n4)
    o = chorusctl(c[1].http_addr, "join", 4, n4.raft_addr, n4.http_addr,
                  timeout=300)
    eq(o.rc, 0, "chorusctl -s node1 join 4 (%r)" % o)
    n4.wait_healthy(120)
    check_members_everywhere(c, [1, 2, 3, 4])

    # node 4 serves the full history, identical to node 1's
    c.wait_topic(path, BIG, timeout=180, nodes=[n4])
    t0 = time.monotonic()
    h4 = history_digest(history(n4, path, timeout=300))
    h1 = history_digest(history(c[1], path, timeout=300))
    print("replayed %d messages twice in %.1fs" % (BIG, time.monotonic() - t0))
    eq(h4[0], BIG, "`+ %s 0` count on node 4" % path)
    check(h4[1] == list(range(1, BIG + 1)),
          "node 4: sequenceIds not 1..%d in order" % BIG)
    eq(h4, h1, "history digest node 4 vs node 1")
    info = n4.get_json("/admin/topics" + path)
    eq((info.get("count"), info.get("firstSequenceId"), info.get("lastSequenceId")),
       (BIG, 1, BIG), "/admin/topics%s on node 4" % path)
    snap_lines = [l for l in n4.run_log().splitlines() if "snapshot" in l.lower()]
    print("node 4 snapshot log lines: %r" % [l[:160] for l in snap_lines[:3]])

    # node 2 leaves
    was_leader = c.wait_leader(timeout=30).node_id
    print("leader before `leave 2`: node %d" % was_leader)
    o = chorusctl(c[1].http_addr, "leave", 2, timeout=300)
    eq(o.rc, 0, "chorusctl -s node1 leave 2 (%r)" % o)
    n2 = c[2]
    check_removed_node_exits(n2)
    c.forget(2)
    check_members_everywhere(c, [1, 3, 4])
    for i in (1, 3, 4):
        wait_until(lambda: healthcheck_status(c[i]) == 200, 30,
                   "healthcheck 200 on node %d after leave 2" % i)
    publish_on_every_node(c, [1, 3, 4], "afterleave")
    # the big topic continues on the remaining members
    with c[4].ws("bulk") as w:
        f = w.publish_ok(path, "after leave", msgid="after-leave")
        eq(f.json.get("sequenceId"), BIG + 1, "next sequenceId of the big topic")


@timeout(180)
def test_join_with_address_and_leave_the_leader():
    c = Cluster(3, extra_args=SNAP_ARGS, name="ja")
    c.start()
    leader = c.wait_leader(timeout=30)
    path = unique_topic("/small")
    with leader.ws("s", timeout=60) as w:
        publish_many(w, path, ["small %d" % i for i in range(500)], window=100)
    c.wait_topic(path, 500)
    # `--join <http of node 1>`: asks node 1 to add it, no chorusctl
    n4 = c.join_node(4, join_addr=c[1].http_addr)
    n4.wait_healthy(90)
    check_members_everywhere(c, [1, 2, 3, 4])
    c.wait_topic(path, 500, nodes=[n4], timeout=60)
    eq(history_digest(history(n4, path)), history_digest(history(c[1], path)),
       "history of %s on the joined node 4 vs node 1" % path)

    # leaving the leader: leadership is handed over first
    leader = c.wait_leader(timeout=30)
    via = [nd for nd in c.live() if nd is not leader][0]
    o = chorusctl(via.http_addr, "leave", leader.node_id, timeout=120)
    eq(o.rc, 0, "chorusctl -s node%d leave %d (the leader) (%r)"
       % (via.node_id, leader.node_id, o))
    check_removed_node_exits(leader)
    c.forget(leader.node_id)
    rest = sorted(nd.node_id for nd in c.nodes)
    new_leader = check_members_everywhere(c, rest)
    check(new_leader.node_id != leader.node_id, "the removed node is still leader")
    publish_on_every_node(c, rest, "afterleaderleft")


@timeout(100)
def test_chorusctl_membership_errors():
    c = Cluster(3, name="me")
    c.start()
    c.wait_leader(timeout=30)
    for nd in c.nodes:
        o = chorusctl(nd.http_addr, "leave", 9)
        eq(o.rc, 1, "chorusctl -s node%d leave 9 (unknown id) exit code (%r)"
           % (nd.node_id, o))
        eq(len(o.err_lines()), 1, "stderr lines of leave 9 (%r)" % o)
        check(re.search(r"\b9\b", o.err), "the error of leave 9 does not name the id: %r" % o)
    o = chorusctl(c[1].http_addr, "join", 2, "%s:%d" % (HOST, free_port()),
                  "%s:%d" % (HOST, free_port()))
    eq(o.rc, 1, "chorusctl join 2 (already a member) exit code (%r)" % o)
    eq(len(o.err_lines()), 1, "stderr lines of join of a member (%r)" % o)
    check(re.search(r"\b2\b", o.err),
          "the error of join 2 does not name the id: %r" % o)
    o = chorusctl("%s:%d" % (HOST, free_port()), "leave", 2, timeout=60)
    eq(o.rc, 1, "chorusctl leave against an unreachable node (%r)" % o)
    eq(len(o.err_lines()), 1, "stderr lines for an unreachable node (%r)" % o)
    for args in (["leave"], ["leave", "x"], ["join", "4", "nohostport", "h:1"],
                 ["transfer", "-3"]):
        o = chorusctl(c[1].http_addr, *args)
        eq(o.rc, 2, "chorusctl %s (usage error) exit code (%r)" % (" ".join(args), o))
    # nothing changed
    check_members_everywhere(c, [1, 2, 3])


if __name__ == "__main__":
    run_tests(globals())
