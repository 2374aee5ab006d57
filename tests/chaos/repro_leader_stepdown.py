#!/usr/bin/env python3
"""Reproducer for the crash the chaos run found (see tests/chaos/README.md):
a leader under publish load that loses contact with its quorum (one
follower killed, the other SIGSTOPped) steps down; libraft 0.15 fails the
pending applies from inside its step-down (apply_cb with
RAFT_LEADERSHIPLOST), apply_cb calls cluster__propose_flush -> raft_apply
while raft's leader state is half torn down -> SEGV (NULL read) in libraft.

    python3 tests/chaos/repro_leader_stepdown.py [rounds]

Exit 0 if the leader survived every round, 1 if it crashed.
"""

import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import chorus_harness as H  # noqa: E402


def load(node, stop, user):
    """Pipelined publishes to `node` until stop is set (errors ignored)."""
    n = 0
    while not stop.is_set():
        try:
            ws = H.websocket.create_connection(
                "ws://%s:%d/stream/user/%s" % (H.HOST, node.http_port, user),
                timeout=2, skip_utf8_validation=True)
        except Exception:
            stop.wait(0.2)
            continue
        try:
            ws.recv_data()
            inflight = 0
            while not stop.is_set():
                while inflight < 200:
                    n += 1
                    ws.send(H.publish_frame("/repro/t%d" % (n % 4), "x" * 64,
                                            "%s-%d" % (user, n)))
                    inflight += 1
                ws.settimeout(0.5)
                try:
                    ws.recv_data()
                    inflight -= 1
                except H.websocket.WebSocketTimeoutException:
                    pass
        except Exception:
            pass
        finally:
            try:
                ws.close(timeout=1)
            except Exception:
                pass


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    crashed = False
    for rnd in range(1, rounds + 1):
        c = H.Cluster(3, extra_args=["--publish-timeout", "3000"],
                      name="repro%d" % rnd)
        c.start()
        leader = c.wait_leader()
        f1, f2 = [n for n in c.nodes if n is not leader]
        stop = threading.Event()
        ts = [threading.Thread(target=load, args=(leader, stop, "u%d" % i),
                               daemon=True) for i in range(3)]
        for t in ts:
            t.start()
        time.sleep(2)
        f1.kill9()
        f2.send_signal(signal.SIGSTOP)
        time.sleep(3)     # > election timeout: the leader steps down
        alive = leader.alive()
        f2.send_signal(signal.SIGCONT)
        stop.set()
        for t in ts:
            t.join(5)
        tail = "" if alive else leader.log_tail(30)
        print("round %d: leader %s %s" % (rnd, leader.name,
                                          "survived" if alive else
                                          "CRASHED rc=%s" % leader.proc.poll()))
        if not alive:
            print(tail)
            H.KEEP_TMP = True
            print("logs kept: %s" % leader.tmp)
            crashed = True
        for n in c.nodes:
            if n.alive():
                n.send_signal(signal.SIGKILL)
                n.proc.wait(10)
        if crashed:
            break
    print("result=%s" % ("CRASH" if crashed else "OK"))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
