#!/usr/bin/env python3
"""it_damage: a node whose files were damaged on disk never serves what
the damage changed (docs/architecture.md "Damaged files").

- Bits flipped in message records of a follower's LMDB file: the records'
  checksums fail (a read or the scrub after start), the node marks its store
  and stops (exit 75, one line); until then its REST history answers 503 or
  the true messages, never a changed one. The next start moves the damaged
  file aside and rebuilds the store from the raft log and its peers; its
  history then equals the leader's.
- A damaged raft segment: the node refuses to start with one line naming
  the file (libraft checksums every entry).
- A raft log that ends before what the store applied (a truncated log that
  still loads): refused too, instead of voting with a shorter log."""

import hashlib
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (Cluster, Node, check, eq, publish_many,  # noqa: E402
                            run_tests, timeout)

N = 1500
TOPICS = ["/dmg/a", "/dmg/b", "/dmg/c/d"]


def body(path, i):
    return ("%s message %06d %s" % (path, i,
            hashlib.sha1(("%s%d" % (path, i)).encode()).hexdigest() * 4)
            ).encode()


def rest_history(nd, path, allow_503=False):
    """[(seq, body)] of a topic over REST, or None on a 503 if allowed."""
    out = []
    while True:
        try:
            r = nd.http("GET", "/api/message%s?from=%d&limit=1000"
                        % (path, len(out) + 1), timeout=30)
        except OSError:
            if allow_503:
                return None  # still starting
            raise
        if r.status == 503 and allow_503:
            return None
        eq(r.status, 200, "history of %s on %s (%r)" % (path, nd.name, r))
        part = r.json()
        if not part:
            return out
        out.extend((m["sequenceId"], m["body"]) for m in part)


def fill(nd):
    with nd.ws("filler", timeout=60) as w:
        for path in TOPICS:
            publish_many(w, path, [body(path, i) for i in range(1, N + 1)])


def data_mdb(nd):
    return os.path.join(nd.data_dir, "store", "data.mdb")


def flip_in_records(path, needles):
    """Flips one bit in every copy of each needle in the file; returns how
    many bits were flipped."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    flipped = 0
    for nd in needles:
        at = b.find(nd)
        while at >= 0:
            b[at + len(nd) // 2] ^= 0x04
            flipped += 1
            at = b.find(nd, at + 1)
    with open(path, "wb") as f:
        f.write(bytes(b))
    return flipped


@timeout(300)
def test_flipped_bits_in_records_never_served_store_rebuilt():
    c = Cluster(3, name="dmg")
    c.start()
    leader = c.wait_leader()
    fill(leader)
    f = next(n for n in c.nodes if n is not leader)
    # The follower applied everything before it stops (same history).
    deadline = time.monotonic() + 60
    while rest_history(f, TOPICS[-1], allow_503=True) is None or \
            len(rest_history(f, TOPICS[-1])) < N:
        check(time.monotonic() < deadline, "follower never caught up")
        time.sleep(0.2)
    truth = {p: rest_history(leader, p) for p in TOPICS}
    eq(f.stop(), 0, "follower exit code")
    rng = random.Random(7)
    victims = [(p, rng.randrange(1, N + 1)) for p in TOPICS for _ in range(3)]
    n = flip_in_records(data_mdb(f), [body(p, i)[-40:] for p, i in victims])
    check(n >= len(victims), "flipped %d bits for %d records" %
          (n, len(victims)))
    f.start(wait=False)
    # Until it stops: 503 or the true history, never a changed message.
    deadline = time.monotonic() + 60
    while f.alive():
        for p in TOPICS:
            h = rest_history(f, p, allow_503=True)
            check(h is None or h == truth[p], "%s served a history of %s "
                  "that differs from the leader's" % (f.name, p))
        check(time.monotonic() < deadline, "%s did not find the damage in "
              "60 s:\n%s" % (f.name, f.log_tail(30)))
        time.sleep(0.2)
    rc = f.wait_for_exit(10)
    eq(rc, 75, "exit code of a node stopping to rebuild its store")
    lines = [l for l in f.run_log().splitlines() if l.startswith("chorusd:")]
    eq(len(lines), 1, "one line on stderr (%r)" % lines)
    check("data.mdb is damaged" in lines[0] and "rebuilds" in lines[0],
          lines[0])
    # The next start rebuilds the store from the raft log and the peers.
    f.start(wait=False)
    f.wait_healthy(120)
    check("store rebuilt" in f.run_log(), "no rebuild in the log")
    check(os.path.exists(data_mdb(f) + ".damaged"), "damaged file not kept")
    for p in TOPICS:
        eq(rest_history(f, p), truth[p], "%s history on %s" % (p, f.name))


@timeout(200)
def test_damaged_raft_segment_is_refused_naming_the_file():
    n = Node(name="dmg-seg", extra_args=["--snapshot-threshold", "100000"])
    n.start()
    with n.ws("w", timeout=30) as w:
        publish_many(w, "/dmg/seg", [b"x" * 200 for _ in range(500)])
    eq(n.stop(), 0, "exit code")
    raft = os.path.join(n.data_dir, "raft")
    segs = sorted(x for x in os.listdir(raft) if x[:1].isdigit())
    check(segs, "no closed segment in %s" % os.listdir(raft))
    seg = segs[-1]
    p = os.path.join(raft, seg)
    with open(p, "r+b") as fh:
        fh.seek(os.path.getsize(p) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x20]))
    n2 = Node(name="dmg-seg-2", data_dir=n.data_dir,
              extra_args=["--snapshot-threshold", "100000"])
    n2.start(wait=False)
    rc = n2.wait_for_exit(30)
    check(rc not in (0, None), "started on a damaged segment (rc %r)" % rc)
    lines = [l for l in n2.full_log().splitlines() if l.startswith("chorusd:")]
    eq(len(lines), 1, "one error line (%r)" % lines)
    check(seg in lines[0] and "cannot be loaded" in lines[0],
          "the line does not name %s: %s" % (seg, lines[0]))


@timeout(200)
def test_damaged_raft_metadata_is_refused_cleanly():
    """A metadata file that no longer parses: one line naming it, and no
    sanitizer report (raft_init frees what it allocated when it fails;
    closing raft after it freed the same memory twice)."""
    n = Node(name="dmg-meta")
    n.start()
    eq(n.stop(), 0, "exit code")
    p = os.path.join(n.data_dir, "raft", "metadata1")
    with open(p, "r+b") as fh:
        fh.write(b"\x7f")
    n2 = Node(name="dmg-meta-2", data_dir=n.data_dir)
    n2.start(wait=False)
    rc = n2.wait_for_exit(30)  # checks the log for sanitizer reports
    check(rc not in (0, None), "started on damaged metadata (rc %r)" % rc)
    lines = [l for l in n2.full_log().splitlines() if l.startswith("chorusd:")]
    eq(len(lines), 1, "one error line (%r)" % lines)
    check("metadata1" in lines[0], lines[0])


@timeout(200)
def test_raft_log_shorter_than_the_store_is_refused():
    """The tail of the log gone (the newest segments deleted, as a
    truncation that still loads would leave it): the store applied more
    than the log holds, so the node refuses to start."""
    n = Node(name="dmg-short", extra_args=["--snapshot-threshold", "100000"])
    n.start()
    with n.ws("w", timeout=30) as w:
        publish_many(w, "/dmg/short", [b"y" * 100 for _ in range(300)])
    eq(n.stop(), 0, "exit code")
    raft = os.path.join(n.data_dir, "raft")
    segs = sorted(x for x in os.listdir(raft) if x[:1].isdigit())
    check(len(segs) >= 2, "want two closed segments: %s" % segs)
    os.remove(os.path.join(raft, segs[-1]))
    for x in os.listdir(raft):
        if x.startswith("open-"):
            os.remove(os.path.join(raft, x))
    n2 = Node(name="dmg-short-2", data_dir=n.data_dir,
              extra_args=["--snapshot-threshold", "100000"])
    n2.start(wait=False)
    rc = n2.wait_for_exit(30)
    check(rc not in (0, None), "started with a shorter log (rc %r)" % rc)
    lines = [l for l in n2.full_log().splitlines() if l.startswith("chorusd:")]
    eq(len(lines), 1, "one error line (%r)" % lines)
    check("log entries were lost" in lines[0], lines[0])


if __name__ == "__main__":
    run_tests(globals())
