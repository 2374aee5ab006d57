#!/usr/bin/env python3
"""it_slow_reader: per-connection output is bounded and slow readers catch up
from the store without loss (docs/protocol.md "Slow readers", docs/operations.md
--max-connection-buffer).

16 subscribers subscribe to /s and then stop reading (sockets stay open,
with a small receive buffer so the kernel cannot absorb the backlog). A
publisher sends 20,000 messages of 1 KiB (pipelined, all acknowledged).
The node's memory must stay bounded; afterwards every subscriber reads
everything: 1..20000 in order, no gap or duplicate, bodies intact.

RSS bound (why these numbers): VmRSS may grow by at most 250 MiB over the
value measured after start-up and subscription.
- Every subscriber is owed 20,000 x ~1.1 KiB (body + first line + header +
  frame) = ~22 MiB. An implementation that queues output without limit must
  hold that in user space for each of the 16 connections, minus what the
  kernel buffers: well over 16 x 15 MiB = 240 MiB of payload alone, plus
  allocator/ASan redzone overhead per queued frame (measured with the buffer
  set to 1 GiB, i.e. unbounded: 254 MiB of growth with only 8 subscribers).
- A correct one holds at most 16 x --max-connection-buffer = 16 MiB of
  queued output. The rest of the growth is the same with or without slow
  readers (measured 95-140 MiB in the Debug/ASan build, depending on how
  fast the publisher runs): LMDB pages of the 20 MiB topic (file-backed,
  counted in VmRSS), the raft log's in-memory entries (~20 MiB until a
  snapshot), ASan's quarantine (capped at 16 MiB via
  ASAN_OPTIONS=quarantine_size_mb=16) and shadow memory.
- So 250 MiB leaves ~100 MiB of headroom for a correct node, and an
  unbounded one needs > 400 MiB.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (Node, check, eq, publish_many,  # noqa: E402
                            run_tests, timeout, WS, websocket)

N = 20000
BODY_BYTES = 1024
N_SUBS = 16
CONN_BUF = 1048576
RSS_MARGIN_KB = 250 * 1024
TOPIC = "/s"


def body(i):
    head = "%06d:" % i
    return head + "x" * (BODY_BYTES - len(head))


class SlowSub(WS):
    """A subscriber socket with a small receive buffer (set before connect,
    so the TCP window is small) that we simply do not read for a while."""

    def __init__(self, port, user):
        self.url = "ws://127.0.0.1:%d/stream/user/%s" % (port, user)
        self.ws = websocket.create_connection(
            self.url, timeout=30, skip_utf8_validation=True,
            sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),))
        self.default_timeout = 30
        self.connected = self.recv(30)
        check(self.connected.is_status("connected"),
              "first frame: %r" % self.connected)


def rss(n):
    st = n.proc_status()
    return {k: int(st.get(k, "0 kB").split()[0])
            for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


@timeout(290)
def test_slow_readers_bounded_memory_and_complete_catch_up():
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    n = Node(name="slow-reader",
             extra_args=["--max-connection-buffer", str(CONN_BUF)],
             env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=16"})
    n.start()
    subs = []
    try:
        for k in range(N_SUBS):
            s = SlowSub(n.http_port, "slow%d" % k)
            subs.append(s)
            if k % 2 == 0:
                s.send("+ " + TOPIC)  # live only (subscribed before publishing)
            else:
                s.send("+ %s 0" % TOPIC)  # replay (empty) then live
                s.expect_status("fetch-start", "%s 0" % TOPIC)
                s.expect_status("fetch-done", TOPIC)
            s.expect_status("subscribed-to", TOPIC)
        # From here on the subscribers are not read.
        time.sleep(0.5)
        base = rss(n)
        peak = dict(base)
        samples = []

        def sample(i=None, a=None):
            if i is not None and (i + 1) % 500:
                return
            r = rss(n)
            samples.append(r["VmRSS"])
            for k in r:
                peak[k] = max(peak[k], r[k])

        with n.ws("publisher", timeout=60) as pub:
            acks = publish_many(pub, TOPIC, [body(i) for i in range(1, N + 1)],
                                window=500, timeout=240, on_ack=sample)
        eq([a.json["sequenceId"] for a in acks[:3]] + [acks[-1].json["sequenceId"]],
           [1, 2, 3, N], "acked sequenceIds")
        # keep observing for a moment: fan-out may lag behind the acks
        for _ in range(30):
            sample()
            time.sleep(0.1)
        check(n.alive(), "node died while subscribers were not reading")
        try:  # informational only: the spec names no metrics
            mj = n.get_json("/admin/metrics")
            print("metrics: %s" % {k: v for k, v in mj.items() if "slow" in k})
        except Exception as e:  # noqa
            print("metrics unavailable: %s" % e)
        grow_kb = peak["VmRSS"] - base["VmRSS"]
        print("RSS kB: base %s peak %s (VmRSS growth %d kB = %.1f MiB, bound "
              "%d MiB)" % (base, peak, grow_kb, grow_kb / 1024.0,
                          RSS_MARGIN_KB // 1024))
        check(grow_kb <= RSS_MARGIN_KB,
              "VmRSS grew by %.1f MiB (base %d kB, peak %d kB) with %d "
              "non-reading subscribers and --max-connection-buffer %d: output "
              "per connection is not bounded (allowed growth %d MiB)"
              % (grow_kb / 1024.0, base["VmRSS"], peak["VmRSS"], N_SUBS,
                 CONN_BUF, RSS_MARGIN_KB // 1024))
        # Now every subscriber reads everything.
        for k, s in enumerate(subs):
            last = 0
            rounds = []
            deadline = time.monotonic() + 150
            while last < N:
                check(time.monotonic() < deadline,
                      "subscriber %d: only %d of %d messages" % (k, last, N))
                f = s.recv(60)
                if f.kind == "close":
                    raise AssertionError(
                        "subscriber %d was closed (code %s) after %d messages: "
                        "slow readers must be switched to store reads, not "
                        "dropped" % (k, f.close_code, last))
                if f.kind == "message":
                    check(f.path == TOPIC, "subscriber %d: message of %s" % (k, f.path))
                    check(f.seq == last + 1,
                          "subscriber %d: after %d got sequenceId %d (gap, "
                          "duplicate or reorder)" % (k, last, f.seq))
                    if f.body != body(f.seq).encode():
                        raise AssertionError("subscriber %d: body of %d differs: %r"
                                             % (k, f.seq, f.body[:40]))
                    last = f.seq
                elif f.kind == "status" and f.type in (
                        "fetch-start", "fetch-done", "subscribed-to"):
                    check(f.text.split(" ")[0] == TOPIC,
                          "subscriber %d: status for another path: %r" % (k, f))
                    rounds.append(f.type)
                else:
                    raise AssertionError("subscriber %d: unexpected frame %r" % (k, f))
            print("subscriber %d: %d messages, extra status frames %d" %
                  (k, last, len(rounds)))
    finally:
        for s in subs:
            s.close()


if __name__ == "__main__":
    run_tests(globals())
