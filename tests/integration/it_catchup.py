#!/usr/bin/env python3
"""it_catchup: a node far behind comes back through a snapshot of the
store's state and streams the messages it lacks from another member
(docs/architecture.md "Snapshots and catch-up", docs/protocol.md "Delivery
guarantees" and "Node links (internal)").

Every test starts three nodes with a tiny snapshot threshold, publishes a
few messages to every topic while all three are up (so node 3 holds a
prefix of each), stops node 3, publishes a bulk of pipelined messages and
then single ones (each its own raft entry) so the others' raft logs are
compacted far past node 3, and restarts it:

- it becomes healthy only after `catchup started` ... `catchup finished`
  (healthcheck 503 `catching up` meanwhile), and every topic's history is
  the same on the three nodes, gapless from 1, holding what was published;
- the catch-up survives kill -9 of the receiving node mid-way;
- it survives kill -9 of the leader (normally the member serving it): the
  other two elect a leader and the node finishes from another member;
- while it catches up, a WebSocket replay on it waits at a missing message
  and never skips one, and a REST history read answers 503 or a gapless
  list, never one with a hole or cut short at one."""

import collections
import http.client
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (WS, Cluster, check, eq,  # noqa: E402
                            history, http_request, msg_key, publish_frame,
                            run_tests, timeout)

# Compact the raft log quickly: a node down for a few hundred entries is
# behind the others' first log entry and gets a snapshot.
FLAGS = ["--snapshot-threshold", "64", "--snapshot-trailing", "16"]
VICTIM = 3        # the node that falls behind
PRE = 5           # messages per topic node 3 applies before it stops
SINGLES = 300     # one at a time after the bulk: > threshold + trailing
USER = "catchup"  # publisherUserId of everything published here


def topic(k):
    return "/catchup/t%d" % k


def body_of(msgid, size):
    """The body published under msgid: the id, then filler, `size` bytes
    (ASCII, so frames are text and REST gives `body`)."""
    head = ("%s|" % msgid).encode()
    fill = b"0123456789abcdef" * (size // 16 + 1)
    return head + fill[:max(0, size - len(head))]


class Published:
    """What a test published: per topic, the (sequenceId, msgid) of every
    acknowledged message; bodies are body_of(msgid, size)."""

    def __init__(self, topics, size):
        self.topics = topics
        self.size = size
        self.acked = {t: {} for t in topics}   # path -> seq -> msgid

    def add(self, path, seq, msgid):
        prev = self.acked[path].get(seq)
        check(prev is None, "%s: sequenceId %d acknowledged to both %s and %s"
              % (path, seq, prev, msgid))
        self.acked[path][seq] = msgid

    def count(self, path):
        return len(self.acked[path])

    def total(self):
        return sum(len(a) for a in self.acked.values())

    def expected(self, path):
        """[(sequenceId, body, msgid)] of path in sequenceId order; the
        acknowledged sequenceIds must be 1..n."""
        a = self.acked[path]
        check(sorted(a) == list(range(1, len(a) + 1)),
              "acknowledged sequenceIds of %s are not 1..%d" % (path, len(a)))
        return [(s, body_of(a[s], self.size), a[s]) for s in sorted(a)]


def publish_pipelined(ws, items, pub, window=1000, timeout_s=300):
    """items: [(path, msgid)]. Keeps up to `window` publishes unanswered on
    ws; answers come in publish order (docs/protocol.md "Commands"), each
    must be the #send of its msgid for its path. Records them in pub."""
    sent = answered = 0
    deadline = time.monotonic() + timeout_s
    while answered < len(items):
        while sent < len(items) and sent - answered < window:
            path, msgid = items[sent]
            ws.send(publish_frame(path, body_of(msgid, pub.size), msgid))
            sent += 1
        left = deadline - time.monotonic()
        check(left > 0, "only %d of %d publishes answered within %ds"
              % (answered, len(items), timeout_s))
        f = ws.recv(min(left, 60))
        path, msgid = items[answered]
        check(f.is_status("send") and f.text == msgid,
              "publish %d (%s to %s) answered %r" % (answered, msgid, path, f))
        eq(f.json.get("path"), path, "path in the #send of %s" % msgid)
        pub.add(path, f.json["sequenceId"], msgid)
        answered += 1


def prepare(name, n_topics, bulk, size):
    """Three nodes with FLAGS; PRE messages on every topic applied by all
    three; node 3 stopped (SIGTERM); then, through the leader of the other
    two, `bulk` messages of `size` bytes round-robin over the topics,
    pipelined, and SINGLES one at a time. Node 3 is not restarted.
    Returns (cluster, node 3, Published)."""
    c = Cluster(3, extra_args=FLAGS, name=name)
    c.start()
    leader = c.wait_leader(timeout=30)
    topics = [topic(k) for k in range(n_topics)]
    pub = Published(topics, size)
    # Topics are created in reverse order: /catchup/t0 gets the highest
    # topic id, and holes are fetched in topic-id order, so t0 is filled
    # last (test_catching_up_node_never_serves_a_hole reads it).
    pre = [(t, "pre-%s-%d" % (t.rsplit("/", 1)[1], i))
           for t in reversed(topics) for i in range(PRE)]
    with leader.ws(USER, timeout=60) as w:
        publish_pipelined(w, pre, pub, window=200)
    for t in topics:
        c.wait_topic(t, PRE, timeout=60)
    victim = c[VICTIM]
    eq(victim.stop(), 0, "exit code of node %d on SIGTERM" % VICTIM)
    others = [nd for nd in c.nodes if nd is not victim]
    leader = c.wait_leader(timeout=30, nodes=others)
    t0 = time.monotonic()
    items = [(topics[i % n_topics], "m%d" % i) for i in range(bulk)]
    with leader.ws(USER, timeout=60) as w:
        publish_pipelined(w, items, pub, window=1000)
        t1 = time.monotonic()
        for i in range(SINGLES):
            path, msgid = topics[i % n_topics], "s%d" % i
            f = w.publish_ok(path, body_of(msgid, size), msgid=msgid)
            pub.add(path, f.json["sequenceId"], msgid)
    t2 = time.monotonic()
    eq(pub.total(), n_topics * PRE + bulk + SINGLES, "messages acknowledged")
    print("node %d down; via leader node %d: %d messages of %d bytes over %d "
          "topics in %.1fs, %d single publishes in %.1fs"
          % (VICTIM, leader.node_id, bulk, size, n_topics, t1 - t0, SINGLES,
             t2 - t1), flush=True)
    return c, victim, pub


def wait_log(nd, text, timeout_s):
    """Wait until the current run's log of nd contains text (bounded)."""
    deadline = time.monotonic() + timeout_s
    while text not in nd.run_log():
        check(nd.alive(), "%s exited waiting for %r in its log:\n%s"
              % (nd.name, text, nd.log_tail(20)))
        check(time.monotonic() < deadline, "%s: no %r in its log within %ds"
              % (nd.name, text, timeout_s))
        time.sleep(0.01)


def rest_when_up(nd, path, frm, limit, timeout_s=30):
    """GET /api/message<path>?from=&limit= on nd, retried (bounded) until
    its gateway answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return nd.http("GET", "/api/message%s?from=%d&limit=%d"
                           % (path, frm, limit), timeout=10)
        except (OSError, http.client.HTTPException) as e:
            check(nd.alive(), "%s exited:\n%s" % (nd.name, nd.log_tail(20)))
            check(time.monotonic() < deadline, "%s: no answer to a REST read "
                  "within %ds: %r" % (nd.name, timeout_s, e))
            time.sleep(0.01)


def wait_partly_fetched(nd, pub, timeout_s=60):
    """After `catchup started`: wait until a quarter of the topics answer a
    REST read of the message in their middle (a hole after the snapshot:
    published while the node was down) with 200 — the catch-up is under
    way — or until it finished. Returns ({path: seq read}, finished)."""
    need = max(1, len(pub.topics) // 4)
    filled = {}
    deadline = time.monotonic() + timeout_s
    while True:
        if "catchup finished" in nd.run_log():
            return filled, True
        for path in pub.topics:
            if path in filled:
                continue
            seq = pub.count(path) // 2
            r = rest_when_up(nd, path, seq, 1)
            if r.status == 200:
                eq([m.get("sequenceId") for m in r.json()], [seq],
                   "GET %s from=%d limit=1 on %s" % (path, seq, nd.name))
                filled[path] = seq
            else:
                eq(r.status, 503, "GET %s from=%d limit=1 on %s while "
                   "catching up (%r)" % (path, seq, nd.name, r))
        if len(filled) >= need:
            return filled, False
        check(time.monotonic() < deadline, "%s: %d of %d topics fetched "
              "within %ds of `catchup started`:\n%s"
              % (nd.name, len(filled), need, timeout_s, nd.log_tail(20)))
        time.sleep(0.01)


def health(nd):
    """(status, reason) of GET /admin/healthcheck, (None, error) when it
    does not answer."""
    try:
        r = http_request(nd.http_port, "GET", "/admin/healthcheck", timeout=2)
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)
    if r.status == 200:
        return 200, None
    try:
        return r.status, str(r.json().get("reason"))
    except Exception:  # noqa - reported as the raw body
        return r.status, repr(r.body[:200])


def wait_caught_up(nd, timeout_s, expect_catchup=True, on_poll=None):
    """Poll nd's healthcheck every 10 ms until it answers 200 and (when
    expect_catchup) its current run logged `catchup finished`. Returns the
    distinct 503 reasons seen (numbers blanked), in order. on_poll() is
    called between polls."""
    deadline = time.monotonic() + timeout_s
    reasons = []
    last = None
    healthy_unfinished_since = None
    while True:
        check(nd.alive(), "%s exited while catching up:\n%s"
              % (nd.name, nd.log_tail(30)))
        status, reason = health(nd)
        last = (status, reason)
        if status == 503 and reason is not None:
            r = re.sub(r"\d+", "N", reason)
            if r not in reasons:
                reasons.append(r)
        if status == 200:
            log = nd.run_log()
            if not expect_catchup or "catchup finished" in log:
                return reasons
            # Healthy before the snapshot arrived is fine (it only knows
            # the leader); healthy after `catchup started` without
            # `catchup finished` is not.
            if "catchup started" in log:
                if healthy_unfinished_since is None:
                    healthy_unfinished_since = time.monotonic()
                check(time.monotonic() - healthy_unfinished_since < 5,
                      "%s healthy for 5 s after `catchup started` without "
                      "`catchup finished` in its log:\n%s"
                      % (nd.name, nd.log_tail(30)))
        check(time.monotonic() < deadline,
              "%s: not healthy with a finished catch-up within %ds (last "
              "healthcheck %r; 503 reasons seen %r); log:\n%s"
              % (nd.name, timeout_s, last, reasons, nd.log_tail(30)))
        if on_poll is not None:
            on_poll()
        time.sleep(0.01)


def catchup_lines(nd):
    return [l.strip() for l in nd.run_log().splitlines() if "catchup" in l]


def first_difference(got, want):
    """None if equal, else a short description of the first difference of
    two [(seq, body, msgid)] lists."""
    if got == want:
        return None
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return ("%d messages, expected %d; first difference at index %d: "
                    "got (%r, %r, %r), expected (%r, %r, %r)"
                    % (len(got), len(want), i, g[0], g[1][:40], g[2],
                       w[0], w[1][:40], w[2]))
    return ("%d messages, expected %d; last got %r, next expected %r"
            % (len(got), len(want), got[-1][0] if got else None,
               want[len(got)][0] if len(got) < len(want) else None))


def check_histories(c, pub):
    """For every topic: `+ path 1` on each node gives exactly the published
    (sequenceId, body, publisherMessageId) list, gapless from 1, and every
    field of every message is the same on all nodes."""
    t0 = time.monotonic()
    for path in pub.topics:
        want = pub.expected(path)
        ref = None
        for nd in c.nodes:
            msgs = history(nd, path, timeout=120, start=1)
            got = [(m.seq, m.body, m.msgid) for m in msgs]
            diff = first_difference(got, want)
            check(diff is None, "history of %s on %s: %s"
                  % (path, nd.name, diff))
            bad_user = [m for m in msgs if m.user != USER][:1]
            check(not bad_user, "%s on %s: publisherUserId %r"
                  % (path, nd.name, bad_user))
            keys = [msg_key(m) for m in msgs]
            if ref is None:
                ref = (nd, keys)
            elif keys != ref[1]:
                i = next(i for i, (a, b) in enumerate(zip(keys, ref[1]))
                         if a != b)
                raise AssertionError(
                    "%s: message %d differs between %s and %s: %r vs %r"
                    % (path, i, nd.name, ref[0].name, keys[i][:6],
                       ref[1][i][:6]))
    print("histories of %d topics (%d messages) identical on nodes %r, "
          "checked in %.1fs" % (len(pub.topics), pub.total(), c.ids(),
                               time.monotonic() - t0), flush=True)


class Replay(threading.Thread):
    """`+ path 1` on nd, read in a thread: every message must be the next
    sequenceId (gapless from 1, no duplicate) and the published one. Ends
    when `n` messages arrived, on a bad frame or when aborted."""

    def __init__(self, nd, path, want, tag):
        super().__init__(name="replay-%s" % tag, daemon=True)
        self.tag = tag
        self.path = path
        self.want = want           # [(seq, body, msgid)]
        self.n = len(want)
        self.got = 0
        self.statuses = []
        self.bad = None
        self.abort = False
        self.ws = WS(nd.http_port, user="catchup-reader", timeout=10)
        self.ws.send("+ %s 1" % path)

    def run(self):
        try:
            while not self.abort and self.got < self.n:
                f = self.ws.try_recv(0.5)
                if f is None:
                    continue
                if f.kind == "message":
                    w = self.want[self.got]
                    if f.path != self.path or f.seq != self.got + 1:
                        self.bad = ("%s #%d after #%d (gap, duplicate or "
                                    "another topic)"
                                    % (f.path, f.seq, self.got))
                        return
                    if (f.body, f.msgid) != (w[1], w[2]):
                        self.bad = ("#%d is %r %r, published %r %r"
                                    % (f.seq, f.msgid, f.body[:40], w[2],
                                       w[1][:40]))
                        return
                    self.got += 1
                elif f.kind == "status":
                    self.statuses.append("#%s %s" % (f.type, f.text))
                else:
                    self.bad = "unexpected frame %r" % f
                    return
        except Exception as e:  # noqa - reported by the test
            self.bad = "reader failed: %r" % e
        finally:
            self.ws.close()


def check_rest_answer(r, path, frm, limit, want, local_last):
    """A REST history read on a catching-up node: 503, or a gapless list
    from `frm` that ends at the limit, at the node's local last message
    before the snapshot arrived (local_last) or at the topic's end —
    never with a gap, never cut short at a hole. Returns the status."""
    what = "GET /api/message%s?from=%d&limit=%d" % (path, frm, limit)
    if r.status == 503:
        return 503
    eq(r.status, 200, "%s status (%r)" % (what, r))
    arr = r.json()
    seqs = [m.get("sequenceId") for m in arr]
    if not seqs:
        check(frm > local_last, "%s: [] though the node holds 1..%d"
              % (what, local_last))
        return 200
    check(seqs == list(range(frm, frm + len(seqs))),
          "%s: not gapless from %d: %r..%r (%d items)"
          % (what, frm, seqs[:3], seqs[-3:], len(seqs)))
    ends = {frm + limit - 1, local_last, len(want)}
    check(seqs[-1] in ends, "%s: list of %d ends at #%d, not at the limit, "
          "the local prefix (#%d) or the end (#%d): cut short at a hole?"
          % (what, len(seqs), seqs[-1], local_last, len(want)))
    for m in arr:
        s, b, mid = want[m["sequenceId"] - 1]
        check((m.get("messageId"), m.get("body", "").encode()) == (mid, b),
              "%s: #%d is %r, published %r"
              % (what, s, m.get("messageId"), mid))
    return 200


# ---------------------------------------------------------------- tests

@timeout(180)
def test_far_behind_node_catches_up_by_streaming():
    c, victim, pub = prepare("cu1", 40, 20000, 200)
    t0 = time.monotonic()
    victim.start(wait=False)
    reasons = wait_caught_up(victim, 120)
    print("node %d healthy with its catch-up finished %.1fs after its start; "
          "503 reasons seen: %r" % (VICTIM, time.monotonic() - t0, reasons))
    print("\n".join(catchup_lines(victim)))
    log = victim.run_log()
    check("catchup started" in log, "no `catchup started` in the log of "
          "node %d:\n%s" % (VICTIM, victim.log_tail(30)))
    check("catchup finished" in log, "no `catchup finished` in the log of "
          "node %d:\n%s" % (VICTIM, victim.log_tail(30)))
    if not any("catching up" in r for r in reasons):
        print("note: no healthcheck 503 `catching up` observed (the catch-up "
              "was faster than the 10 ms polling)")
    check_histories(c, pub)


@timeout(240)
def test_catchup_survives_kill_of_receiver():
    c, victim, pub = prepare("cu2", 20, 60000, 1024)
    victim.start(wait=False)
    wait_log(victim, "catchup started", 120)
    filled, finished_before = wait_partly_fetched(victim, pub)
    first = catchup_lines(victim)
    victim.kill9()
    print("kill -9 of node %d with %d topics partly fetched%s:\n%s"
          % (VICTIM, len(filled),
             " (the catch-up had already finished)" if finished_before else "",
             "\n".join(first)))
    t0 = time.monotonic()
    victim.start(wait=False)
    # What it fetched before the kill is kept (the holes are in LMDB: the
    # restart resumes, docs/architecture.md "Snapshots and catch-up").
    for path, seq in sorted(filled.items()):
        r = rest_when_up(victim, path, seq, 1)
        what = ("after the restart, GET /api/message%s?from=%d&limit=1 "
                "(fetched before the kill -9) on node %d"
                % (path, seq, VICTIM))
        eq(r.status, 200, "%s: status (%r)" % (what, r))
        eq([m.get("sequenceId") for m in r.json()], [seq], what)
    reasons = wait_caught_up(victim, 180, expect_catchup=not finished_before)
    print("restarted node %d healthy after %.1fs; 503 reasons seen: %r\n%s"
          % (VICTIM, time.monotonic() - t0, reasons,
             "\n".join(catchup_lines(victim))))
    check_histories(c, pub)


@timeout(240)
def test_catchup_survives_kill_of_sender():
    c, victim, pub = prepare("cu3", 20, 60000, 1024)
    others = [nd for nd in c.nodes if nd is not victim]
    victim.start(wait=False)
    wait_log(victim, "catchup started", 120)
    leader = c.wait_leader(timeout=30, nodes=others)
    filled, finished_before = wait_partly_fetched(victim, pub)
    serving = re.findall(r"fetching from peer=(\d+)", victim.run_log())
    leader.kill9()
    print("kill -9 of the leader, node %d, with %d topics partly fetched by "
          "node %d (members asked so far: %r)%s"
          % (leader.node_id, len(filled), VICTIM, serving,
             " (the catch-up had already finished)" if finished_before
             else ""))
    survivors = [nd for nd in c.nodes if nd is not leader]
    new_leader = c.wait_leader(timeout=30, nodes=survivors,
                               exclude=(leader.node_id,))
    print("new leader: node %d" % new_leader.node_id)
    reasons = wait_caught_up(victim, 180)
    print("node %d healthy; 503 reasons seen: %r\n%s"
          % (VICTIM, reasons, "\n".join(catchup_lines(victim))))
    leader.start(wait=False)
    for nd in c.nodes:
        nd.wait_healthy(120)
    c.wait_leader(timeout=30)
    check_histories(c, pub)


@timeout(240)
def test_catching_up_node_never_serves_a_hole():
    c, victim, pub = prepare("cu4", 20, 60000, 1024)
    path = topic(0)
    want = pub.expected(path)
    t_start = time.monotonic()
    victim.start(wait=False)
    # A replay asked as early as the node accepts connections (before the
    # snapshot arrives, most likely: it replays its local prefix, then must
    # go on as the rest is fetched), and one asked once the holes exist.
    early = None
    deadline = time.monotonic() + 30
    while early is None:
        try:
            early = Replay(victim, path, want, "early")
        except Exception as e:  # noqa - not listening yet
            check(victim.alive(), "node %d exited:\n%s"
                  % (VICTIM, victim.log_tail(20)))
            check(time.monotonic() < deadline, "no WebSocket connection to "
                  "node %d within 30 s: %r" % (VICTIM, e))
            time.sleep(0.01)
    early.start()
    readers = [early]

    def open_second():
        if len(readers) == 1 and "catchup started" in victim.run_log():
            r = Replay(victim, path, want, "during")
            r.start()
            readers.append(r)
    rest = collections.Counter()
    probes = [(1, PRE), (1, 1000), (len(want) // 2, 500),
              (len(want) - 99, 100)]
    k = [0]

    def probe():
        open_second()
        frm, limit = probes[k[0] % len(probes)]
        k[0] += 1
        try:
            r = victim.http("GET", "/api/message%s?from=%d&limit=%d"
                            % (path, frm, limit), timeout=30)
        except (OSError, http.client.HTTPException):
            return
        st = check_rest_answer(r, path, frm, limit, want, PRE)
        rest[(frm, limit, st)] += 1
    try:
        reasons = wait_caught_up(victim, 120, on_poll=probe)
        open_second()
        print("node %d healthy; 503 reasons seen: %r\n%s"
              % (VICTIM, reasons, "\n".join(catchup_lines(victim))))
        print("REST reads while catching up, (from, limit, status): count: %r"
              % dict(sorted(rest.items())))
        # Everything of the topic within 120 s of the restart (and at least
        # 20 s after the node said it holds everything).
        deadline = max(t_start + 120, time.monotonic() + 20)
        for r in readers:
            r.join(max(0.1, deadline - time.monotonic()))
            check(r.bad is None, "replay `+ %s 1` (%s) on node %d: %s"
                  % (path, r.tag, VICTIM, r.bad))
            eq(r.got, len(want), "messages of %s delivered by the %s replay "
               "on node %d (statuses %r)" % (path, r.tag, VICTIM,
                                             r.statuses[:6]))
            print("%s replay: %d messages gapless, statuses %r"
                  % (r.tag, r.got, r.statuses[:6]))
    finally:
        for r in readers:
            r.abort = True
        for r in readers:
            r.join(5)
    for frm, limit in probes:
        r = victim.http("GET", "/api/message%s?from=%d&limit=%d"
                        % (path, frm, limit), timeout=30)
        eq(check_rest_answer(r, path, frm, limit, want, PRE), 200,
           "REST read from=%d limit=%d after the catch-up" % (frm, limit))
    check_histories(c, pub)


if __name__ == "__main__":
    run_tests(globals())
