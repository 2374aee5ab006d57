#!/usr/bin/env python3
"""it_failover: kill -9 under load (issue #3; docs/protocol.md "Delivery guarantees").

(a) kill -9 of the leader while publishers on every node keep a window of
    publishes in flight (retrying unanswered/failed ones with the same
    publisher message id): a new leader within 2 s, publishes resume, the
    killed node restarts, and every acknowledged message is on all three
    nodes under its acknowledged sequenceId, each topic gapless, nothing
    stored twice, all histories identical.
(b) two of three nodes killed: a publish on the survivor fails within
    --publish-timeout, REST gives 503, replay still works, healthcheck 503;
    after the restart of the two, publishing resumes and histories agree.

Timings are asserted only where the issue states them as guarantees (new
leader within 2 s, failure within the publish timeout), with slack; the
measured values are printed."""

import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (WS, Cluster, TestFailure, check, eq,  # noqa: E402
                            healthcheck_status, history, msg_key,
                            publish_frame, publish_many, read_replay,
                            run_tests, timeout,
                            unique_topic, wait_until)

ELECTION_BOUND = 2.0      # issue #3: "a new leader within 2 s"
ELECTION_SLACK = 1.0      # polling every 50 ms, HTTP round trips, ASan
PUBLISH_TIMEOUT_MS = 2000
PUBLISH_SLACK = 1.5


class Publisher(threading.Thread):
    """One WebSocket publisher (its own user id) that keeps up to `window`
    publishes in flight, alternating between `topics`. Failed publishes
    (!error-send) and the ones unanswered when the connection breaks are
    sent again with the same publisher message id; after a broken
    connection it reconnects, trying the nodes in turn starting with the
    next one. Generates new messages until stop_generating(), then keeps
    retrying until every generated message is acknowledged."""

    def __init__(self, c, k, home, topics, window=50):
        super().__init__(name="publisher-%d" % k, daemon=True)
        self.c = c
        self.user = "fp%d" % k
        self.node_ids = [nd.node_id for nd in c.nodes]
        self.cur = self.node_ids.index(home.node_id)
        self.topics = topics
        self.window = window
        self.generated = 0
        self.generating = True
        self.retry = collections.deque()   # (msgid, path, body)
        self.inflight = collections.deque()
        self.acked = {}                    # msgid -> (path, seq, time)
        self.errors = 0
        self.error_texts = collections.Counter()
        self.reconnects = 0
        self.fatal = None
        self.abort = False
        self.lock = threading.Lock()

    # -- control (other thread)
    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def summary(self):
        return ("%s: %d generated, %d acknowledged, %d waiting for a retry, "
                "%d in flight, %d !error-send %r, %d reconnects"
                % (self.user, self.generated, len(self.acked), len(self.retry),
                   len(self.inflight), self.errors,
                   dict(self.error_texts.most_common(4)), self.reconnects))

    def stop_generating(self):
        self.generating = False

    def done(self):
        return (not self.generating and not self.retry and not self.inflight
                and len(self.acked) == self.generated)

    # -- thread
    def _next(self):
        if self.retry:
            return self.retry.popleft()
        if not self.generating:
            return None
        i = self.generated
        self.generated += 1
        path = self.topics[i % len(self.topics)]
        return ("%s-%d" % (self.user, i), path,
                "%s message %d" % (self.user, i))

    def _connect(self):
        while not self.abort:
            nid = self.node_ids[self.cur % len(self.node_ids)]
            nd = self.c[nid]
            try:
                if nd.alive():
                    return WS(nd.http_port, user=self.user, timeout=5)
            except Exception:
                pass
            self.cur += 1
            time.sleep(0.1)
        return None

    def _requeue_inflight(self):
        while self.inflight:
            self.retry.appendleft(self.inflight.pop())

    def run(self):
        try:
            self._run()
        except BaseException as e:  # noqa - reported by the test
            import traceback
            self.fatal = "%s: %s" % (e, traceback.format_exc())

    def _run(self):
        w = None
        silent_since = time.monotonic()
        while not self.abort and not self.done():
            if w is None:
                w = self._connect()
                if w is None:
                    return
                silent_since = time.monotonic()
            try:
                while len(self.inflight) < self.window:
                    item = self._next()
                    if item is None:
                        break
                    w.send(publish_frame(item[1], item[2], item[0]))
                    self.inflight.append(item)
                if not self.inflight:
                    time.sleep(0.01)
                    continue
                f = w.try_recv(0.5)
            except Exception:
                f = "broken"
            if f is None:
                if time.monotonic() - silent_since > 20:
                    f = "broken"  # a node that stopped answering
                else:
                    continue
            if f == "broken" or f.kind == "close":
                try:
                    w.close()
                except Exception:
                    pass
                w = None
                self._requeue_inflight()
                self.reconnects += 1
                self.cur += 1
                time.sleep(0.05)
                continue
            silent_since = time.monotonic()
            item = self.inflight.popleft()
            msgid, path, _ = item
            if f.is_status("send"):
                if f.text != msgid:
                    self.fatal = "answer for %r arrived for %r: %r" % (
                        f.text, msgid, f)
                    return
                got = (f.json.get("path"), f.json.get("sequenceId"),
                       f.json.get("messagePublishingTime"))
                with self.lock:
                    prev = self.acked.get(msgid)
                    if prev is not None and prev != got:
                        self.fatal = "%s acknowledged twice differently: %r %r" % (
                            msgid, prev, got)
                        return
                    self.acked[msgid] = got
                if got[0] != path:
                    self.fatal = "#send path %r for a publish to %r" % (got[0], path)
                    return
            elif f.is_error("error-send"):
                if f.text.split(" ", 1)[0] != msgid:
                    self.fatal = "!error-send for %r arrived for %r: %r" % (
                        f.text, msgid, f)
                    return
                self.errors += 1
                self.error_texts[f.text.split(" ", 1)[1][:60]
                                 if " " in f.text else ""] += 1
                self.retry.append(item)
                time.sleep(0.02)
            else:
                self.fatal = "unexpected answer to a publish: %r" % f
                return
        if w is not None:
            w.close()


class Subscriber(threading.Thread):
    """`+ path 0` on one node, read in a thread for the whole test: the
    sequenceIds it receives (docs/protocol.md: in order, no gap, no duplicate within
    one subscription, also across a leader change). A connection that
    breaks (its node was killed) just ends the thread."""

    def __init__(self, nd, path):
        super().__init__(name="subscriber-node%d" % nd.node_id, daemon=True)
        self.nd = nd
        self.path = path
        self.seqs = []
        self.broken = None
        self.bad = None
        self.abort = False
        self.ws = WS(nd.http_port, user="fsub", timeout=10)
        self.ws.send("+ %s 0" % path)

    def last(self):
        return self.seqs[-1] if self.seqs else 0

    def run(self):
        try:
            while not self.abort:
                f = self.ws.try_recv(0.5)
                if f is None:
                    continue
                if f.kind == "close":
                    self.broken = "closed (%s)" % f.close_code
                    return
                if f.kind == "message":
                    if f.path != self.path:
                        self.bad = "message of another topic: %r" % f
                        return
                    if f.seq != self.last() + 1:
                        self.bad = ("sequenceId %d after %d (gap, duplicate or "
                                    "out of order)" % (f.seq, self.last()))
                        return
                    self.seqs.append(f.seq)
                elif f.kind == "error":
                    self.bad = "error frame: %r" % f
                    return
        except Exception as e:  # noqa - a killed node breaks the socket
            self.broken = repr(e)
        finally:
            self.ws.close()


def verify_histories(c, acked_by_user, topics):
    """Every acknowledged (user, msgid) is on every node under its acked
    sequenceId; topics are 1..N; nothing stored twice; histories identical."""
    per_topic = collections.defaultdict(dict)  # path -> seq -> (user, msgid)
    for user, acked in acked_by_user.items():
        for msgid, (path, seq, _) in acked.items():
            prev = per_topic[path].get(seq)
            check(prev is None, "sequenceId %s of %s acknowledged to both %r and %r"
                  % (seq, path, prev, (user, msgid)))
            per_topic[path][seq] = (user, msgid)
    for path in topics:
        acked = per_topic[path]
        n = max(acked) if acked else 0
        check(n > 0, "nothing acknowledged on %s" % path)
        # every node has applied at least the acknowledged ones and all
        # agree on the last sequenceId

        def agreed():
            lasts = set()
            for nd in c.nodes:
                r = nd.http("GET", "/admin/topics" + path, timeout=5)
                if r.status != 200:
                    return False
                lasts.add(r.json().get("lastSequenceId"))
            return len(lasts) == 1 and lasts.pop() >= n
        wait_until(agreed, 90, "all nodes applied %s up to at least %d" % (path, n),
                   interval=0.2)
        hists = {nd.node_id: history(nd, path, timeout=120) for nd in c.nodes}
        ref_id = c.nodes[0].node_id
        ref = hists[ref_id]
        eq([m.seq for m in ref], list(range(1, len(ref) + 1)),
           "sequenceIds of %s on node %d (gapless from 1)" % (path, ref_id))
        pairs = [(m.user, m.msgid) for m in ref]
        dup = [p for p, k in collections.Counter(pairs).items() if k > 1]
        check(not dup, "%s: (user, msgid) stored more than once: %r"
              % (path, dup[:5]))
        stored = {m.seq: (m.user, m.msgid) for m in ref}
        missing = [(s, um) for s, um in sorted(acked.items())
                   if stored.get(s) != um]
        check(not missing, "%s: %d acknowledged messages missing or under "
              "another sequenceId, e.g. (seq, (user, msgid)) %r, stored there: %r"
              % (path, len(missing), missing[:3],
                 [stored.get(s) for s, _ in missing[:3]]))
        # publishers retried until acknowledged, so nothing unacknowledged
        # may be stored
        eq(len(ref), len(acked), "%s: stored messages vs acknowledged ones" % path)
        for nid, h in hists.items():
            eq([msg_key(m) for m in h], [msg_key(m) for m in ref],
               "history of %s on node %d vs node %d" % (path, nid, ref_id))
        print("%s: %d messages, identical on nodes %r"
              % (path, len(ref), sorted(hists)))


def measure_new_leader(c, survivors, old_id, t_kill, limit=30):
    """Poll /admin/cluster on the survivors every 50 ms until they agree on
    a leader other than old_id. Returns (node, seconds since t_kill)."""
    deadline = t_kill + limit
    while time.monotonic() < deadline:
        lid = c.agreed_leader(nodes=survivors, exclude=(old_id,), timeout=1)
        if lid is not None:
            return c[lid], time.monotonic() - t_kill
        time.sleep(0.05)
    raise AssertionError("no new leader agreed by nodes %r within %ds of the "
                         "kill -9 of node %d; /admin/cluster: %r"
                         % ([n.node_id for n in survivors], limit, old_id,
                            c.infos(survivors)))


def wait_progress(pubs, base, more, timeout_s, what):
    """Wait until the publishers together acknowledged `more` beyond base."""
    def ok():
        for p in pubs:
            if p.fatal is not None:  # not a TestFailure: wait_until retries those
                raise AssertionError("%s: %s" % (p.name, p.fatal))
        return sum(p.n_acked() for p in pubs) >= base + more
    try:
        wait_until(ok, timeout_s, what, interval=0.1)
    except TestFailure as e:
        raise TestFailure("%s; publishers: %s" % (e, "; ".join(
            p.summary() for p in pubs)))


# ---------------------------------------------------------------- tests

@timeout(200)
def test_kill9_leader_under_publish_load():
    c = Cluster(3, name="fo")
    c.start()
    leader = c.wait_leader(timeout=30)
    topics = [unique_topic("/fa"), unique_topic("/fb")]
    subs = [Subscriber(nd, topics[0]) for nd in c.nodes]
    for s in subs:
        s.start()
    pubs = [Publisher(c, k, nd, topics, window=50)
            for k, nd in enumerate(c.nodes, 1)]
    for p in pubs:
        p.start()
    try:
        wait_progress(pubs, 0, 1500, 90, "1500 acknowledged publishes before the kill")
        leader = c.wait_leader(timeout=30)
        survivors = [nd for nd in c.nodes if nd is not leader]
        before = sum(p.n_acked() for p in pubs)
        t_kill = time.monotonic()
        leader.kill9()
        new_leader, dt = measure_new_leader(c, survivors, leader.node_id, t_kill)
        print("kill -9 of leader node %d: node %d leader after %.3fs "
              "(%d acknowledged before)" % (leader.node_id, new_leader.node_id,
                                             dt, before))
        check(dt <= ELECTION_BOUND + ELECTION_SLACK,
              "new leader after %.2fs, more than %.1fs (+%.1fs polling slack)"
              % (dt, ELECTION_BOUND, ELECTION_SLACK))
        t0 = time.monotonic()
        at_kill = sum(p.n_acked() for p in pubs)
        wait_progress(pubs, at_kill, 1000, 60,
                      "1000 more acknowledged publishes after the new leader")
        print("publishes resumed: 1000 more acknowledged %.2fs after the new "
              "leader" % (time.monotonic() - t0))
        c.restart(leader.node_id, timeout=60)
        after_restart = sum(p.n_acked() for p in pubs)
        wait_progress(pubs, after_restart, 1000, 60,
                      "1000 more acknowledged publishes after the restart")
        for p in pubs:
            p.stop_generating()
        try:
            wait_until(lambda: all(p.done() or p.fatal for p in pubs), 120,
                       "every generated publish acknowledged")
        except AssertionError as e:
            raise AssertionError("%s; publishers: %s" % (e, "; ".join(
                p.summary() for p in pubs)))
    finally:
        for p in pubs:
            p.stop_generating()
            p.abort = True
        for p in pubs:
            p.join(15)
    # live subscribers on the surviving nodes got every message of topics[0]
    # in order, without gap or duplicate, across the leader change
    n0 = len([1 for p in pubs for (path, _, _) in p.acked.values()
              if path == topics[0]])
    try:
        for s in subs:
            if s.nd is leader:
                continue
            wait_until(lambda: s.bad or s.broken or s.last() >= n0, 60,
                       "subscriber on node %d reaching sequenceId %d"
                       % (s.nd.node_id, n0))
            check(s.bad is None, "subscriber on node %d: %s" % (s.nd.node_id, s.bad))
            check(s.broken is None, "subscriber on surviving node %d lost its "
                  "connection: %s" % (s.nd.node_id, s.broken))
            eq(s.last(), n0, "last sequenceId received by the subscriber on "
               "node %d" % s.nd.node_id)
            print("subscriber on node %d: %d messages of %s in order"
                  % (s.nd.node_id, len(s.seqs), topics[0]))
    finally:
        for s in subs:
            s.abort = True
            s.join(5)
    for p in pubs:
        check(p.fatal is None, "%s: %s" % (p.name, p.fatal))
        check(not p.is_alive(), "%s still running" % p.name)
        print(p.summary())
    c.wait_leader(timeout=30)
    verify_histories(c, {p.user: dict(p.acked) for p in pubs}, topics)


def two_of_three_killed(survivor_role):
    c = Cluster(3, extra_args=["--publish-timeout", str(PUBLISH_TIMEOUT_MS)],
                name="q" + survivor_role[0])
    c.start()
    leader = c.wait_leader(timeout=30)
    path = unique_topic("/q")
    with leader.ws("hist", timeout=60) as w:
        publish_many(w, path, ["before %d" % i for i in range(50)],
                     msgids=["h%d" % i for i in range(50)], window=25)
    c.wait_topic(path, 50)
    before = [msg_key(m) for m in history(leader, path)]
    survivor = leader if survivor_role == "leader" else \
        [nd for nd in c.nodes if nd is not leader][0]
    victims = [nd for nd in c.nodes if nd is not survivor]
    for v in victims:
        v.kill9()
    print("killed nodes %r, survivor node %d (was %s)"
          % ([v.node_id for v in victims], survivor.node_id, survivor_role))

    # a publish on the survivor fails within the publish timeout
    bound = PUBLISH_TIMEOUT_MS / 1000.0 + PUBLISH_SLACK
    with survivor.ws("q", timeout=30) as w:
        t0 = time.monotonic()
        f = w.publish(path, "no quorum", msgid="nq-1", timeout=30)
        dt = time.monotonic() - t0
        print("WS publish without quorum answered after %.2fs: %r" % (dt, f))
        check(f.is_error("error-send"), "publish without quorum answered %r" % f)
        eq(f.text.split(" ", 1)[0], "nq-1", "!error-send id")
        check(dt <= bound, "publish without quorum failed after %.2fs, more than "
              "--publish-timeout %dms + %.1fs" % (dt, PUBLISH_TIMEOUT_MS,
                                                  PUBLISH_SLACK))
        # replay on the same connection still works
        w.send("+ %s 0 1000" % path)
        _, msgs = read_replay(w, path, timeout=30)
        eq([msg_key(m) for m in msgs], before, "replay on the survivor "
           "(same connection) without quorum")
    t0 = time.monotonic()
    r = survivor.http("POST", "/api/message%s?userId=restq&messageId=nq-2" % path,
                      body=b"rest no quorum", timeout=30)
    dt = time.monotonic() - t0
    print("REST publish without quorum answered after %.2fs: %r" % (dt, r))
    eq(r.status, 503, "REST publish without quorum")
    check(dt <= bound, "REST publish without quorum failed after %.2fs" % dt)
    # replay on a new connection, REST replay, healthcheck 503
    eq([msg_key(m) for m in history(survivor, path)], before,
       "`+ %s 0` on the survivor without quorum" % path)
    r = survivor.http("GET", "/api/message%s?from=1&limit=1000" % path)
    eq(r.status, 200, "REST replay on the survivor without quorum")
    eq([o.get("sequenceId") for o in r.json()], list(range(1, 51)),
       "REST replay sequenceIds without quorum")
    wait_until(lambda: healthcheck_status(survivor) == 503, 15,
               "healthcheck 503 on the survivor without quorum")
    info = survivor.get_json("/admin/cluster")
    eq(info.get("leader"), None, "/admin/cluster leader on the survivor (%r)" % info)

    # restart the two: publishing resumes
    for v in victims:
        v.start(wait=False)
    for v in victims:
        v.wait_healthy(60)
    c.wait_leader(timeout=30)
    t0 = time.monotonic()
    with survivor.ws("q", timeout=30) as w:
        def retry():
            f = w.publish(path, "no quorum", msgid="nq-1", timeout=30)
            return f if f.is_status("send") else None
        f = wait_until(retry, 60, "the publish on the survivor after the restart",
                       interval=0.5)
    print("publishing resumed %.2fs after the restart: %r"
          % (time.monotonic() - t0, f))
    r = survivor.http("POST", "/api/message%s?userId=restq&messageId=nq-2" % path,
                      body=b"rest no quorum", timeout=30)
    eq(r.status, 200, "REST publish (retry of nq-2) after the restart (%r)" % r)
    for k, nd in enumerate(c.nodes):
        with nd.ws("q2") as w:
            w.publish_ok(path, "after %d" % k, msgid="after-%d" % k)
    total = 50 + 2 + len(c.nodes)
    c.wait_topic(path, total, timeout=60)
    ref = [msg_key(m) for m in history(c.nodes[0], path)]
    eq([k[1] for k in ref], list(range(1, total + 1)), "sequenceIds after restart")
    eq(ref[:50], before, "the first 50 messages after the restart")
    pairs = [(k[2], k[4]) for k in ref]
    eq(len(set(pairs)), len(pairs), "(user, msgid) stored once: %r" % pairs[50:])
    for nd in c.nodes[1:]:
        eq([msg_key(m) for m in history(nd, path)], ref,
           "history on node %d vs node %d" % (nd.node_id, c.nodes[0].node_id))


@timeout(95)
def test_two_of_three_killed_survivor_was_leader():
    two_of_three_killed("leader")


@timeout(95)
def test_two_of_three_killed_survivor_was_follower():
    two_of_three_killed("follower")


if __name__ == "__main__":
    run_tests(globals())
