#!/usr/bin/env python3
"""it_snapshot_catchup: a node far behind (the others' logs compacted past
it) or new comes back through a snapshot of the state and fetches the
messages it lacks from its peers (docs/architecture.md "Snapshots and
catch-up"): histories end identical on every node, the catch-up survives
kill -9 of the receiving and of the serving node, a catching-up node never
serves a history with a hole, and a fourth node joins a store of 200k
messages and becomes a voter only once it holds them all."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUS_BENCH, Cluster, check, eq,  # noqa: E402
                            healthcheck_status, http_request, publish_many,
                            run_tests, timeout)

# Compact the log quickly: a node down for a few hundred entries is past it.
FLAGS = ["--snapshot-threshold", "64", "--snapshot-trailing", "16"]
TOPICS = ["/catchup/t%d" % k for k in range(6)]
PER_TOPIC = 3000
BODY = b"x" * 900


def start_cluster(name):
    c = Cluster(3, extra_args=FLAGS, name=name)
    c.start()
    return c, c.wait_leader()


def fill_while_down(c, leader, victim):
    """Stops victim, then publishes enough through the leader that the log
    is compacted far past it: TOPICS x PER_TOPIC pipelined messages, then
    200 one at a time (each its own raft entry)."""
    victim.stop()
    ws = leader.ws()
    try:
        for t in TOPICS:
            publish_many(ws, t, [BODY + b"%d" % i for i in range(PER_TOPIC)],
                         window=500)
        for i in range(200):
            ws.publish_ok("/catchup/single", b"s%d" % i)
    finally:
        ws.close()


def rest_history(nd, path):
    out = []
    while True:
        r = nd.http("GET", "/api/message%s?from=%d&limit=10000"
                    % (path, len(out) + 1), timeout=30)
        eq(r.status, 200, "REST history of %s on %s (%r)" % (path, nd.name, r))
        part = r.json()
        if not part:
            return out
        out.extend((m["sequenceId"], m["body"], m["messageId"]) for m in part)


def check_identical(c, expect):
    """Every node holds expect[path] messages of every path, gapless from
    1, and the same ones."""
    for path, n in expect.items():
        ref = None
        for nd in c.nodes:
            h = rest_history(nd, path)
            eq([s for s, _, _ in h], list(range(1, n + 1)),
               "sequenceIds of %s on %s" % (path, nd.name))
            if ref is None:
                ref = h
            else:
                check(h == ref, "%s differs on %s" % (path, nd.name))


def expected():
    e = {t: PER_TOPIC for t in TOPICS}
    e["/catchup/single"] = 200
    return e


def wait_log(nd, text, timeout_s):
    deadline = time.monotonic() + timeout_s
    while text not in nd.run_log():
        check(nd.alive(), "%s exited waiting for %r" % (nd.name, text))
        check(time.monotonic() < deadline,
              "%s: no %r in its log within %ds" % (nd.name, text, timeout_s))
        time.sleep(0.005)


def wait_all_healthy(c, timeout_s=180):
    for nd in c.nodes:
        nd.wait_healthy(timeout_s)


@timeout(300)
def test_far_behind_node_catches_up_by_streaming():
    c, leader = start_cluster("cu1")
    victim = [nd for nd in c.nodes if nd is not leader][0]
    fill_while_down(c, leader, victim)
    victim.start(wait=False)
    # Until the leader sends it the snapshot, it is an ordinary follower
    # that has not caught up with the log yet (healthy once it knows the
    # leader); from the restore on it lacks messages and says so.
    wait_log(victim, "snapshot restored", 120)
    saw_503 = False
    deadline = time.monotonic() + 180
    while healthcheck_status(victim) != 200:
        r = None
        try:
            r = http_request(victim.http_port, "GET", "/admin/healthcheck")
        except OSError:
            pass
        if r is not None and r.status == 503 and b"catching up" in r.body:
            saw_503 = True
        check(time.monotonic() < deadline, "not healthy within 180 s")
        time.sleep(0.02)
    log = victim.run_log()
    check("snapshot restored" in log, "no snapshot was installed:\n%s"
          % log[-2000:])
    check("catchup started" in log and "catchup finished" in log,
          "no catch-up in the log:\n%s" % log[-2000:])
    print("healthcheck said 'catching up' while it fetched: %s" % saw_503)
    check_identical(c, expected())


@timeout(300)
def test_catchup_survives_kill_of_receiver():
    c, leader = start_cluster("cu2")
    victim = [nd for nd in c.nodes if nd is not leader][0]
    fill_while_down(c, leader, victim)
    victim.start(wait=False)
    wait_log(victim, "catchup started", 120)
    finished_before = "catchup finished" in victim.run_log()
    victim.kill9()
    victim.start(wait=False)
    victim.wait_healthy(180)
    if finished_before:
        print("note: the catch-up finished before the kill")
    else:
        # It resumed from its holes (kept in LMDB), not from scratch.
        check("catchup started" in victim.run_log(),
              "the restarted node did not resume its catch-up:\n%s"
              % victim.run_log()[-2000:])
    check_identical(c, expected())


@timeout(300)
def test_catchup_survives_kill_of_sender():
    c, leader = start_cluster("cu3")
    victim = [nd for nd in c.nodes if nd is not leader][0]
    fill_while_down(c, leader, victim)
    victim.start(wait=False)
    wait_log(victim, "fetching from peer=%d" % leader.node_id, 120)
    leader.kill9()
    # The other two elect a leader; the victim asks another member.
    victim.wait_healthy(180)
    check("catchup finished" in victim.run_log(),
          "no finished catch-up:\n%s" % victim.run_log()[-2000:])
    leader.start(wait=False)
    wait_all_healthy(c)
    check_identical(c, expected())


@timeout(300)
def test_catching_up_node_never_serves_a_hole():
    c, leader = start_cluster("cu4")
    victim = [nd for nd in c.nodes if nd is not leader][0]
    fill_while_down(c, leader, victim)
    victim.start(wait=False)
    wait_log(victim, "restarting from state", 60)
    # A replay asked as early as possible: it may wait, never skip.
    deadline = time.monotonic() + 60
    while True:
        try:
            ws = victim.ws()
            break
        except Exception:
            check(time.monotonic() < deadline, "no WebSocket on the victim")
            time.sleep(0.02)
    rest_seen = []
    try:
        ws.send("+ %s 1" % TOPICS[0])
        try:
            r = victim.http("GET", "/api/message%s?from=1&limit=10000"
                            % TOPICS[-1], timeout=30)
            rest_seen.append(r.status)
            if r.status == 200:
                seqs = [m["sequenceId"] for m in r.json()]
                eq(seqs, list(range(1, len(seqs) + 1)),
                   "REST answer while catching up")
            else:
                eq(r.status, 503, "REST while catching up")
        except OSError:
            pass
        seqs = []
        deadline = time.monotonic() + 120
        while len(seqs) < PER_TOPIC:
            left = deadline - time.monotonic()
            check(left > 0, "replay delivered %d of %d within 120 s"
                  % (len(seqs), PER_TOPIC))
            f = ws.recv(left)
            if f.is_msg(TOPICS[0]):
                seqs.append(f.seq)
                eq(f.seq, len(seqs), "sequenceId %d of the replay" % len(seqs))
    finally:
        ws.close()
    print("REST while catching up answered: %s" % rest_seen)
    victim.wait_healthy(120)
    check_identical(c, expected())


@timeout(400)
def test_fourth_node_joins_a_store_of_200k_messages():
    c, leader = start_cluster("cu5")
    # 200k messages through chorus-bench (many per raft entry).
    p = subprocess.run([CHORUS_BENCH, "pub", "-s", leader.http_addr,
                        "--count", "200000", "--size", "64", "--window",
                        "1000", "--topic", "/catchup/big", "--timeout", "300",
                        "--json"], capture_output=True, timeout=330)
    eq(p.returncode, 0, "chorus-bench fill: %s" % p.stderr[-500:])
    eq(json.loads(p.stdout)["acked"], 200000, "messages acknowledged")
    n4 = c.join_node(4, join_addr=leader.http_addr)
    n4.wait_healthy(300)
    log = n4.run_log()
    check("catchup finished" in log, "node 4 did not catch up by fetching:\n%s"
          % log[-2000:])
    info = json.loads(leader.http("GET", "/admin/cluster").body)
    roles = {m["id"]: m["role"] for m in info["members"]}
    eq(roles.get(4), "voter", "node 4's role")
    # The leader promoted it after it caught up (its log says when).
    check("new member caught up id=4" in leader.run_log(),
          "the leader did not wait for node 4 to catch up")
    check_identical(c, {"/catchup/big": 200000})


if __name__ == "__main__":
    run_tests(globals())
