"""Proves the chaos checker (tests/chaos/checker.py) catches what it must:
crafted histories with one acknowledged message missing on one node, one
duplicate, one divergent replica and one subscriber gap are each reported
with count 1; a clean history reports all zeros. Prints "N passed, M failed".
"""

import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

NODES = (1, 2, 3)
TOPICS = ("/chaos/p0/t0", "/chaos/p0/t1")
USER = "chaos-pub0"


def rec(seq, msgid, body=None, user=USER):
    return (seq, user, msgid, "h-" + (body or msgid), 1700000000 + seq)


def clean_world(n=10):
    """Three identical replicas, every message acked, one subscriber that
    saw everything."""
    acks, sent, hist = {}, {}, {}
    per_topic = {}
    for t in TOPICS:
        recs = []
        for s in range(1, n + 1):
            mid = "m%s-%d" % (t[-2:], s)
            recs.append(rec(s, mid))
            acks[(t, mid)] = s
            sent[(t, mid)] = (USER, "h-" + mid)
        per_topic[t] = recs
    for nd in NODES:
        hist[nd] = {t: list(r) for t, r in per_topic.items()}
    subs = {"sub0": {t: [r[:4] for r in per_topic[t]] for t in TOPICS}}
    return acks, sent, hist, subs


def run(acks, sent, hist, subs, **kw):
    return checker.check(acks, hist, subs, sent=sent, **kw)


def expect(res, **want):
    got = dict(res.counts)
    full = {c: 0 for c in checker.CATEGORIES}
    full.update(want)
    if got != full:
        raise AssertionError("counts %r, expected %r; problems:\n  %s"
                             % (got, full, "\n  ".join(res.problems)))
    for cat, n in want.items():
        lines = [p for p in res.problems if p.startswith(cat + ":")]
        if len(lines) != n:
            raise AssertionError("%s: %d detail lines for count %d: %r"
                                 % (cat, len(lines), n, res.problems))


def test_clean_history_all_zero():
    acks, sent, hist, subs = clean_world()
    res = run(acks, sent, hist, subs, require_complete=True)
    expect(res)
    assert res.ok
    assert res.info["stored"] == 20, res.info


def test_acked_message_missing_on_one_node():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    # node 2 lacks seq 5 (an acknowledged message) entirely
    hist[2][t] = [r for r in hist[2][t] if r[0] != 5]
    res = run(acks, sent, hist, subs)
    expect(res, lost=1)
    assert not res.ok
    assert "node 2" in [p for p in res.problems if p.startswith("lost")][0]


def test_acked_message_missing_at_the_tail():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[1]
    hist[3][t] = hist[3][t][:-1]
    expect(run(acks, sent, hist, subs), lost=1)


def test_acked_message_at_other_seq():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    acks[(t, "m" + t[-2:] + "-4")] = 5   # the ack said 5, stored as 4
    res = run(acks, sent, hist, subs)
    expect(res, moved=1)
    assert "1 at seq [4], 2 at seq [4], 3 at seq [4]" in res.problems[0], \
        res.problems


def test_duplicate_stored():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    dup = rec(11, "m%s-3" % t[-2:])  # msgid of seq 3 stored again as 11
    for nd in NODES:
        hist[nd][t].append(dup)
    subs["sub0"][t].append(dup[:4])
    res = run(acks, sent, hist, subs)
    expect(res, duplicated=1)   # one key, the details name all 3 nodes
    assert res.problems[0].count("node ") == 3, res.problems


def test_one_duplicate_one_node():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[1]
    # all replicas agree on the data, one node stores a retried id twice
    # (only possible if the node's history also has an extra seq; the other
    # nodes then miss it: report the duplicate and the gaps)
    hist[1][t].append(rec(11, "m%s-7" % t[-2:]))
    res = run(acks, sent, hist, subs)
    assert res.counts["duplicated"] == 1, res.problems
    assert res.counts["gaps"] == 2, res.problems  # seq 11 missing on 2 and 3


def test_ack_conflict_counts_as_duplicate():
    acks, sent, hist, subs = clean_world()
    res = run(acks, sent, hist, subs,
              ack_conflicts=[(TOPICS[0], "mx", 3, 12)])
    expect(res, duplicated=1)


def test_divergent_replica():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[1]
    # node 3 holds an unacknowledged, different message at seq 10
    hist[3][t][9] = rec(10, "other-msg")
    del acks[(t, "m%s-10" % t[-2:])]
    res = run(acks, sent, hist, subs)
    expect(res, divergent=1)
    assert "node" in res.problems[0] or "3=" in res.problems[0]


def test_divergent_metadata_only():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    r = hist[1][t][2]
    hist[1][t][2] = r[:4] + (r[4] + 1,)   # other publishing time on node 1
    expect(run(acks, sent, hist, subs), divergent=1)


def test_subscriber_gap():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    subs["sub0"][t] = [r for r in subs["sub0"][t] if r[0] != 4]
    expect(run(acks, sent, hist, subs), subscriber_errors=1)


def test_subscriber_repeat_and_order():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    s = subs["sub0"][t]
    subs["sub0"][t] = s[:5] + [s[4]] + s[5:]      # seq 5 twice
    expect(run(acks, sent, hist, subs), subscriber_errors=1)


def test_subscriber_wrong_content():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[1]
    subs["sub0"][t][1] = (2, USER, "bogus", "h-bogus")
    expect(run(acks, sent, hist, subs), subscriber_errors=1)


def test_subscriber_incomplete():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[1]
    subs["sub0"][t] = subs["sub0"][t][:7]
    expect(run(acks, sent, hist, subs))               # not required
    expect(run(acks, sent, hist, subs, require_complete=True),
           subscriber_errors=1)


def test_gap_in_all_replicas():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    del acks[(t, "m%s-6" % t[-2:])]   # not acked, so not "lost"
    for nd in NODES:
        hist[nd][t] = [r for r in hist[nd][t] if r[0] != 6]
    subs["sub0"][t] = [r for r in subs["sub0"][t] if r[0] != 6]
    res = run(acks, sent, hist, subs)
    assert res.counts["gaps"] == 3, res.problems         # on every node
    assert res.counts["subscriber_errors"] == 1, res.problems


def test_corrupt_body():
    acks, sent, hist, subs = clean_world()
    t = TOPICS[0]
    mid = "m%s-2" % t[-2:]
    sent[(t, mid)] = (USER, "h-something-else")
    expect(run(acks, sent, hist, subs), corrupt=1)


def test_combined_one_of_each():
    """One history with all four defects at once: each reported once."""
    acks, sent, hist, subs = clean_world()
    t0, t1 = TOPICS
    # 1. the acked message at seq 5 of t0 is missing on node 2
    hist[2][t0] = [r for r in hist[2][t0] if r[0] != 5]
    # 2. t1's msgid of seq 3 is stored again as seq 11 (on every replica)
    dup = rec(11, "m%s-3" % t1[-2:])
    for nd in NODES:
        hist[nd][t1].append(dup)
    subs["sub0"][t1].append(dup[:4])
    # 3. node 3 holds another (unacknowledged) message at t1 seq 9
    hist[3][t1][8] = rec(9, "divergent-msg")
    del acks[(t1, "m%s-9" % t1[-2:])]
    # 4. the subscriber skipped t0 seq 8
    subs["sub0"][t0] = [r for r in subs["sub0"][t0] if r[0] != 8]
    res = run(acks, sent, hist, subs, require_complete=True)
    expect(res, lost=1, duplicated=1, divergent=1, subscriber_errors=1)


def main():
    tests = [(k, v) for k, v in sorted(globals().items(),
                                       key=lambda kv: getattr(
                                           kv[1], "__code__", None)
                                       and kv[1].__code__.co_firstlineno or 0)
             if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("PASS %s" % name)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
