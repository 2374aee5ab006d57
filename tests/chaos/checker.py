"""Chaos checker (issue #4): a pure function over the data a chaos run
collected, so it can be unit-tested (tests/chaos/test_checker.py).

Inputs
------
acks        {(topic, msgid): seq} -- every publish the cluster acknowledged
            (`#send`), with the sequenceId it carried.
histories   {node: {topic: [record, ...]}} -- what each replica returns for
            each topic, in the order it returned it. A record is a tuple
            (seq, user, msgid, body_hash, *more); `more` (publishing time,
            application id, header digest, ...) only takes part in the
            replica comparison.
subscribers {name: {topic: [record, ...]}} -- what each subscriber received
            per topic, in arrival order, across reconnects/resumes (same
            record shape; records may be shorter, only the common prefix of
            fields is compared against the replicas).
sent        optional {(topic, msgid): (user, body_hash)} -- what the
            publishers sent, to check the stored content of acked messages.
ack_conflicts optional [(topic, msgid, first_seq, later_seq)] -- the same
            publish acknowledged twice with different sequenceIds (a
            de-duplication failure seen by the client).
require_complete  if True, every subscriber must have seen every topic it
            subscribed to up to the replicas' last sequenceId.

Categories (each problem is counted once, in the most specific category)
----------
lost        an acked (topic, msgid) absent on one or more nodes (one per
            ack; the details name the nodes).
moved       an acked (topic, msgid) present on a node, but not at the acked
            sequenceId (one per ack).
duplicated  a (topic, user, msgid) stored more than once on one or more
            nodes (one per key), plus every ack conflict.
divergent   a (topic, seq) for which the nodes holding it return different
            records (one per position).
gaps        a (topic, seq) in 1..N (N = highest seq any node holds) that a
            node does not hold, unless that is already reported as lost; or
            a history whose seqs are not increasing (one per position/node).
corrupt     an acked message stored with a different user/body than sent
            (one per ack).
subscriber_errors  a subscriber's per-topic sequence that skips ids (gap),
            repeats or goes backwards, delivers a record that differs from
            the replicas, or (require_complete) stops short.

check() returns a Result: .counts (dict), .problems (list of text lines),
.ok (all counts zero) and a few informational figures in .info.
"""

import collections

CATEGORIES = ("lost", "moved", "duplicated", "divergent", "gaps", "corrupt",
              "subscriber_errors")

MAX_DETAILS_PER_CATEGORY = 25


class Result:
    def __init__(self):
        self.counts = collections.OrderedDict((c, 0) for c in CATEGORIES)
        self.problems = []
        self._shown = collections.Counter()
        self.info = collections.OrderedDict()

    def add(self, category, text):
        self.counts[category] += 1
        self._shown[category] += 1
        if self._shown[category] <= MAX_DETAILS_PER_CATEGORY:
            self.problems.append("%s: %s" % (category, text))
        elif self._shown[category] == MAX_DETAILS_PER_CATEGORY + 1:
            self.problems.append("%s: ... (further %s problems not shown)"
                                 % (category, category))

    @property
    def ok(self):
        return all(v == 0 for v in self.counts.values())

    def summary_fields(self):
        return " ".join("%s=%d" % (k, v) for k, v in self.counts.items())


def _rec_str(r):
    if r is None:
        return "<absent>"
    return "seq=%s user=%s msgid=%s body=%s%s" % (
        r[0], r[1], r[2], str(r[3])[:12],
        (" +%r" % (tuple(r[4:]),)) if len(r) > 4 else "")


def check(acks, histories, subscribers=None, sent=None, ack_conflicts=None,
          require_complete=False):
    res = Result()
    subscribers = subscribers or {}
    ack_conflicts = ack_conflicts or []
    nodes = sorted(histories, key=str)
    topics = sorted({t for h in histories.values() for t in h}
                    | {t for (t, _m) in acks})

    # Per node and topic: seq -> record, and (user, msgid) -> [seq...].
    by_seq = {}
    by_key = {}
    by_mid = {}
    for n in nodes:
        for t in topics:
            recs = histories[n].get(t, [])
            m = {}
            k = collections.defaultdict(list)
            mids = collections.defaultdict(list)
            prev = 0
            for r in recs:
                seq = r[0]
                if seq <= prev:
                    res.add("gaps", "node %s topic %s: seq %s after %s (not "
                            "increasing)" % (n, t, seq, prev))
                else:
                    prev = seq
                if seq in m:
                    continue
                m[seq] = tuple(r)
                if r[2]:  # messages without a publisher id cannot be dups
                    k[(r[1], r[2])].append(seq)
                    mids[r[2]].append(seq)
            by_seq[(n, t)] = m
            by_key[(n, t)] = k
            by_mid[(n, t)] = mids

    # Acknowledged messages: present exactly once, at the acked seq. Each
    # ack is counted once per category; the details name the nodes.
    lost_at = set()  # (node, topic, seq) explained by a lost ack
    for (t, msgid), seq in sorted(acks.items(), key=lambda kv: (kv[0], kv[1])):
        missing, moved, corrupt = [], [], []
        for n in nodes:
            m = by_seq[(n, t)]
            where = sorted(by_mid[(n, t)].get(msgid, ()))
            if not where:
                missing.append("%s (holds %s there)"
                               % (n, _rec_str(m.get(seq))))
                lost_at.add((n, t, seq))
            elif seq not in where:
                moved.append("%s at seq %s" % (n, where))
            if sent is not None and (t, msgid) in sent and seq in m:
                r = m[seq]
                if r[2] == msgid:
                    user, h = sent[(t, msgid)]
                    if (r[1], r[3]) != (user, h):
                        corrupt.append("%s stored user/body %s/%s"
                                       % (n, r[1], str(r[3])[:12]))
        if missing:
            res.add("lost", "topic %s msgid %s acked as seq %s is not stored "
                    "on node %s" % (t, msgid, seq, ", ".join(missing)))
        if moved:
            res.add("moved", "topic %s msgid %s acked as seq %s is stored "
                    "elsewhere: node %s" % (t, msgid, seq, ", ".join(moved)))
        if corrupt:
            user, h = sent[(t, msgid)]
            res.add("corrupt", "topic %s seq %s msgid %s sent as %s/%s: node "
                    "%s" % (t, seq, msgid, user, str(h)[:12],
                            ", ".join(corrupt)))

    # Duplicates: the same (user, msgid) stored twice (once per key).
    for t in topics:
        dups = collections.defaultdict(list)
        for n in nodes:
            for key, ss in by_key[(n, t)].items():
                if len(ss) > 1:
                    dups[key].append("node %s at seqs %s" % (n, ss))
        for (u, mid), where in sorted(dups.items()):
            res.add("duplicated", "topic %s user %s msgid %s stored more than"
                    " once: %s" % (t, u, mid, "; ".join(where)))
    for (t, mid, s1, s2) in ack_conflicts:
        res.add("duplicated", "topic %s msgid %s acknowledged as seq %s and "
                "later as seq %s" % (t, mid, s1, s2))

    # Replicas: same record at every (topic, seq); 1..N everywhere.
    reference = {}
    for t in topics:
        top = 0
        for n in nodes:
            if by_seq[(n, t)]:
                top = max(top, max(by_seq[(n, t)]))
        ref = {}
        for seq in range(1, top + 1):
            held = {n: by_seq[(n, t)].get(seq) for n in nodes}
            present = [r for r in held.values() if r is not None]
            variants = collections.Counter(present)
            if len(variants) > 1:
                res.add("divergent", "topic %s seq %s differs between "
                        "replicas: %s" % (t, seq, "; ".join(
                            "%s=%s" % (n, _rec_str(held[n])) for n in nodes)))
            if variants:
                # the majority record is the reference (ties: lowest node)
                best = max(variants.values())
                for n in nodes:
                    if held[n] is not None and variants[held[n]] == best:
                        ref[seq] = held[n]
                        break
            for n in nodes:
                if held[n] is None and (n, t, seq) not in lost_at:
                    res.add("gaps", "topic %s seq %s missing on node %s "
                            "(topic has %s on some node)" % (t, seq, n, top))
        reference[t] = ref

    # Subscribers: in order, no gap, no repeat, same records as replicas.
    for name in sorted(subscribers, key=str):
        for t in sorted(subscribers[name]):
            expect = 1
            ref = reference.get(t, {})
            for r in subscribers[name][t]:
                seq = r[0]
                if seq > expect:
                    res.add("subscriber_errors", "subscriber %s topic %s: "
                            "got seq %s after %s (gap of %d)"
                            % (name, t, seq, expect - 1, seq - expect))
                elif seq < expect:
                    res.add("subscriber_errors", "subscriber %s topic %s: "
                            "got seq %s again/out of order after %s"
                            % (name, t, seq, expect - 1))
                    continue
                expect = seq + 1
                want = ref.get(seq)
                if want is not None and tuple(r) != want[:len(r)]:
                    res.add("subscriber_errors", "subscriber %s topic %s: "
                            "seq %s is %s, replicas hold %s"
                            % (name, t, seq, _rec_str(r), _rec_str(want)))
            if require_complete and ref and expect - 1 < max(ref):
                res.add("subscriber_errors", "subscriber %s topic %s: saw "
                        "up to seq %s, replicas hold up to %s"
                        % (name, t, expect - 1, max(ref)))

    res.info["nodes"] = len(nodes)
    res.info["topics"] = len(topics)
    res.info["stored"] = sum(len(r) for r in reference.values())
    acked_keys = set(acks)
    res.info["stored_unacked"] = sum(
        1 for t, ref in reference.items() for r in ref.values()
        if r[2] and (t, r[2]) not in acked_keys)
    return res
