#!/usr/bin/env python3
"""it_handover: replay→live hand-over while messages are being committed
(docs/protocol.md "Delivery guarantees"). 5,000 messages are published pipelined by
one connection (500 in flight) while a subscriber sends `+ /h 0` shortly
after publishing began: it must get sequenceIds 1..5000 exactly once, in
order, with the right bodies."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (Node, check, eq, publish_many,  # noqa: E402
                            run_tests, timeout, unique_topic)

N = 5000
WINDOW = 500


def handover_case(start_after, start_cmd_arg="0"):
    n = Node(name="handover")
    n.start()
    t = unique_topic("/h")
    result = {}
    progress = {"acked": 0}

    def publisher():
        try:
            def on_ack(i, a):
                if a.json.get("sequenceId") != i + 1:
                    raise AssertionError("ack %d has sequenceId %r" % (i + 1, a.json))
                progress["acked"] = i + 1

            with n.ws("pub", timeout=60) as w:
                publish_many(w, t, [str(i) for i in range(1, N + 1)],
                             window=WINDOW, timeout=600, on_ack=on_ack)
            result["ok"] = True
        except BaseException as e:  # reported by the main thread
            result["error"] = repr(e)

    th = threading.Thread(target=publisher, daemon=True)
    th.start()
    deadline = time.monotonic() + 60
    while progress["acked"] < start_after and th.is_alive() and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    check("error" not in result, "publisher failed: %s" % result.get("error"))
    acked_at_subscribe = progress["acked"]
    seqs = []
    bad = []
    extra = []
    with n.ws("sub", timeout=60) as sub:
        sub.send("+ %s %s" % (t, start_cmd_arg))
        deadline = time.monotonic() + 600
        while (not seqs or seqs[-1] < N) and time.monotonic() < deadline:
            f = sub.recv(120)
            if f.kind == "close":
                raise AssertionError("subscriber closed (code %s) after %d "
                                     "messages" % (f.close_code, len(seqs)))
            if f.kind == "message":
                check(f.path == t, "message of another topic: %r" % f)
                if f.body != str(f.seq).encode():
                    bad.append((f.seq, f.body[:20]))
                exp = (seqs[-1] + 1) if seqs else 1
                check(f.seq == exp, "after %d messages expected sequenceId %d,"
                      " got %d (out of order, gap or duplicate)"
                      % (len(seqs), exp, f.seq))
                seqs.append(f.seq)
            elif f.kind == "status" and f.type in ("fetch-start", "fetch-done",
                                                     "subscribed-to"):
                extra.append(f)
            else:
                raise AssertionError("unexpected frame %r" % f)
    th.join(timeout=120)
    check(not th.is_alive(), "publisher thread did not finish")
    check(result.get("ok"), "publisher failed: %s" % result.get("error"))
    eq(len(seqs), N, "messages received")
    check(not bad, "bodies differ from str(sequenceId): %r" % bad[:5])
    kinds = [f.type for f in extra]
    check(kinds[:1] == ["fetch-start"], "first answer must be #fetch-start: %r"
          % extra[:3])
    check("subscribed-to" in kinds, "no #subscribed-to: %r" % extra)
    print("subscribed after %d acks; status frames: %s" %
          (acked_at_subscribe, [repr(f) for f in extra]))


@timeout(170)
def test_handover_5000_from_0():
    handover_case(start_after=250, start_cmd_arg="0")


if __name__ == "__main__":
    run_tests(globals())
