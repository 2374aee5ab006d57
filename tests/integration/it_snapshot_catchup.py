#!/usr/bin/env python3
"""it_snapshot_catchup: a fourth node joins a store of 200k messages: it
gets a snapshot of the state, fetches the messages from its peers
(docs/architecture.md "Snapshots and catch-up"), becomes a voter only once
it holds them all, ends with the same history, and after a restart is
healthy again at once, without fetching or re-applying it. The far-behind,
kill -9 and no-hole cases are in it_catchup.py."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUS_BENCH, Cluster, check, eq,  # noqa: E402
                            run_tests, timeout)

# Compact the log quickly: a node down for a few hundred entries is past it.
FLAGS = ["--snapshot-threshold", "64", "--snapshot-trailing", "16"]


def start_cluster(name):
    c = Cluster(3, extra_args=FLAGS, name=name)
    c.start()
    return c, c.wait_leader()


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

    # A restart does not re-read or re-apply the history: the newest
    # snapshot is a few hundred bytes and the log after it is bounded.
    n4.stop()
    t0 = time.monotonic()
    n4.start(wait=False)
    n4.wait_healthy(30)
    print("node 4 healthy %.2f s after its restart" % (time.monotonic() - t0))
    check("catchup started" not in n4.run_log(),
          "the restarted node fetched again:\n%s" % n4.run_log()[-2000:])
    check_identical(c, {"/catchup/big": 200000})


if __name__ == "__main__":
    run_tests(globals())
