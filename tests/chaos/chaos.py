#!/usr/bin/env python3
"""Chaos run for Chorus (issue #4): kill nodes under load and prove nothing
acknowledged is lost, duplicated or told differently by the replicas.

    python3 tests/chaos/chaos.py --duration 60      # make test (chaos_short)
    make chaos DURATION=600                         # long run

A three-node cluster of real chorusd processes (fresh temp dirs, free ports,
small snapshot thresholds so snapshots and InstallSnapshot happen) serves:
- publishers, one per node, each owning topics /chaos/p<k>/t<j>, pipelining
  publishes (in-flight window) with unique publisher message ids; on
  `!error-send`, a dropped connection or a stalled one they reconnect to
  another node and re-send every unacknowledged publish with the SAME id;
- subscribers on different nodes, `+ <topic> <next>` for every topic,
  resuming with `+ <topic> <last+1>` after reconnecting;
- a nemesis that every 2-5 s does one of: kill -9 a random node, kill -9 the
  leader, SIGSTOP a node for 1-4 s, restart the dead node, leadership
  transfer, keep a follower down 8-14 s so the log is compacted past it
  (it returns through a snapshot and fetches what it lacks), and (where
  `ip netns` works) cut one node off the network for a few seconds. At most
  one node is dead at a time.
At the end the nemesis stops, everything is healed, publishers finish their
retries, the replicas converge, and tests/chaos/checker.py checks acks,
replica histories (read over REST from every node) and what subscribers saw.
One summary line is printed last; the exit status is non-zero on any problem,
on no progress, or on a node that exited without being killed (or with a
sanitizer report in its log).

Environment: CHORUSD, CHORUSCTL (default: build/ binaries, as the
integration harness), CHORUS_SOURCE_DIR; CHORUS_IT_KEEP_TMP=1 keeps the node
directories (they are always kept when the run fails).
"""

import argparse
import collections
import ctypes
import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import chorus_harness as H  # noqa: E402
import checker  # noqa: E402

websocket = H.websocket

ACTION_KINDS = ("kill", "kill_leader", "stop", "restart", "transfer",
                "far_behind", "partition", "power_loss", "power_loss_all",
                "corrupt")
# --nemesis: which faults besides the default ones (README.md).
NEMESES = ("default", "powerloss", "corrupt", "all")
# chorusd's exit status when it stops to rebuild a damaged store.
REBUILD_EXIT = 75
LMDB_PAGE = 4096
LMDB_P_LEAF = 0x02
LMDB_P_OVERFLOW = 0x04


def log(msg):
    print("[%7.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()


def body_hash(b):
    return hashlib.sha1(b).hexdigest()[:16]


class Interrupted(Exception):
    pass


# ------------------------------------------------------------ network ns

CLONE_NEWNET = 0x40000000


class NetNS:
    """Optional partition support: a hub namespace (this process and the
    clients live there) with a bridge, and one namespace per node joined
    to it by a veth pair. Only addresses inside these namespaces are used
    (10.77.0.0/24). Partitioning node K = its veth on the hub side down."""

    SUBNET = "10.77.0"

    def __init__(self, n):
        self.tag = "chorus-chaos-%d" % os.getpid()
        self.hub = self.tag + "-hub"
        self.node_ns = {k: "%s-n%d" % (self.tag, k) for k in range(1, n + 1)}
        self.created = []
        self.entered = False

    @staticmethod
    def ip(*args, check=True):
        p = subprocess.run(["ip"] + list(args), capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args),
                                              (p.stderr or p.stdout).decode(
                                                  "utf-8", "replace").strip()))
        return p

    def host(self, k):
        return "%s.%d" % (self.SUBNET, k)

    def setup(self):
        self.ip("netns", "add", self.hub)
        self.created.append(self.hub)
        self.ip("-n", self.hub, "link", "set", "lo", "up")
        self.ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        self.ip("-n", self.hub, "addr", "add", self.SUBNET + ".254/24",
                "dev", "br0")
        self.ip("-n", self.hub, "link", "set", "br0", "up")
        for k, ns in self.node_ns.items():
            self.ip("netns", "add", ns)
            self.created.append(ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip("-n", self.hub, "link", "add", "h%d" % k, "type", "veth",
                    "peer", "name", "e%d" % k, "netns", ns)
            self.ip("-n", self.hub, "link", "set", "h%d" % k, "master", "br0")
            self.ip("-n", self.hub, "link", "set", "h%d" % k, "up")
            self.ip("-n", ns, "addr", "add", self.host(k) + "/24", "dev",
                    "e%d" % k)
            self.ip("-n", ns, "link", "set", "e%d" % k, "up")
        # this process (and every thread/child started from now on) moves
        # into the hub namespace
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/var/run/netns/" + self.hub, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise RuntimeError("setns: %s" % os.strerror(e))
        finally:
            os.close(fd)
        self.entered = True
        # the hub reaches every node address
        for k in self.node_ns:
            p = subprocess.run(["ip", "-n", self.node_ns[k], "addr", "show",
                                "dev", "e%d" % k], capture_output=True,
                               timeout=10)
            if self.host(k).encode() not in p.stdout:
                raise RuntimeError("address %s not set" % self.host(k))

    def prefix(self, k):
        return ["ip", "netns", "exec", self.node_ns[k]]

    def cut(self, k):
        self.ip("-n", self.hub, "link", "set", "h%d" % k, "down")

    def heal(self, k):
        self.ip("-n", self.hub, "link", "set", "h%d" % k, "up", check=False)

    def teardown(self):
        for ns in reversed(self.created):
            self.ip("netns", "del", ns, check=False)
        self.created = []

    @classmethod
    def probe(cls):
        """None if network namespaces work here, else the reason."""
        name = "chorus-chaos-probe-%d" % os.getpid()
        try:
            p = subprocess.run(["ip", "netns", "add", name],
                               capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as e:
            return "cannot run ip: %s" % e
        if p.returncode != 0:
            return "`ip netns add` failed: %s" % p.stderr.decode(
                "utf-8", "replace").strip()
        try:
            p = subprocess.run(["ip", "-n", name, "link", "add", "cp0",
                                "type", "veth", "peer", "name", "cp1"],
                               capture_output=True, timeout=20)
            if p.returncode != 0:
                return "veth not available: %s" % p.stderr.decode(
                    "utf-8", "replace").strip()
            p = subprocess.run(["ip", "-n", name, "link", "add", "cb0",
                                "type", "bridge"],
                               capture_output=True, timeout=20)
            if p.returncode != 0:
                return "bridge not available: %s" % p.stderr.decode(
                    "utf-8", "replace").strip()
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True,
                           timeout=20)
        return None


# ------------------------------------------------------------------ nodes

class ChaosNode(H.Node):
    """A harness Node with its own host address and, with partitions, its
    own network namespace (`ip netns exec` execs chorusd in place, so the
    PID is chorusd's)."""

    def __init__(self, host="127.0.0.1", prefix=(), **kw):
        self.host = host
        self.prefix = list(prefix)
        super().__init__(**kw)
        self.dead = False        # killed by the nemesis, not restarted yet
        self.stopped = False     # SIGSTOPped
        self.crashes = []        # unexpected exits (text)
        self.ns_index = kw.get("node_id")  # its network namespace (k)
        self.lusw = None         # its lose-unsynced-writes mount, if any

    def argv(self):
        return self.prefix + [H.CHORUSD, "--id", str(self.node_id),
                              "--raft", self.raft_addr,
                              "--http", self.http_addr,
                              "--data", self.data_dir] + self.extra_args

    @property
    def http_addr(self):
        return "%s:%d" % (self.host, self.http_port)

    @property
    def raft_addr(self):
        return "%s:%d" % (self.host, self.raft_port)

    def http(self, method, path, body=None, headers=None, timeout=15):
        c = http.client.HTTPConnection(self.host, self.http_port,
                                       timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return H.Resp(r.status, {k.lower(): v for k, v in
                                     r.getheaders()}, data)
        finally:
            c.close()

    def info(self, timeout=2):
        if not self.alive() or self.stopped:
            return None
        try:
            r = self.http("GET", "/admin/cluster", timeout=timeout)
            if r.status != 200:
                return None
            return json.loads(r.body.decode("utf-8"))
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def healthy(self, timeout=2):
        try:
            return self.http("GET", "/admin/healthcheck",
                             timeout=timeout).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise H.TestFailure("%s exited with %s before becoming "
                                    "healthy" % (self.name,
                                                 self.proc.returncode))
            if self.healthy():
                return
            time.sleep(0.1)
        raise H.TestFailure("%s not healthy within %ds" % (self.name, timeout))

    def ws_url(self, user):
        return "ws://%s:%d/stream/user/%s" % (self.host, self.http_port, user)


def ws_connect(node, user, timeout=3):
    ws = websocket.create_connection(node.ws_url(user), timeout=timeout,
                                     skip_utf8_validation=True)
    ws.settimeout(timeout)
    op, data = ws.recv_data()
    f = H.Frame(data, op == websocket.ABNF.OPCODE_BINARY)
    if not f.is_status("connected"):
        ws.close()
        raise H.TestFailure("first frame is not #connected: %r" % f)
    return ws


def ws_recv(ws, timeout):
    """A Frame, None on timeout; raises OSError-ish on a dead connection
    (a Frame of kind 'close' for a close frame)."""
    ws.settimeout(max(0.001, timeout))
    try:
        op, data = ws.recv_data()
    except (websocket.WebSocketTimeoutException, TimeoutError):
        return None
    if op == websocket.ABNF.OPCODE_CLOSE:
        return H.Frame(None, False, close_code=-1)
    return H.Frame(data, op == websocket.ABNF.OPCODE_BINARY)


def ws_close(ws):
    try:
        ws.close(timeout=1)
    except Exception:
        try:
            ws.shutdown()
        except Exception:
            pass


CONN_ERRORS = (OSError, websocket.WebSocketException, H.TestFailure,
               http.client.HTTPException, ValueError)


# -------------------------------------------------------------- publishers

class Publisher(threading.Thread):
    def __init__(self, run, k):
        super().__init__(name="pub%d" % k, daemon=True)
        self.run_ = run
        self.k = k
        self.user = "chaos-pub%d" % k
        self.topics = ["/chaos/p%d/t%d" % (k, j)
                       for j in range(run.args.topics)]
        self.node_idx = k
        self.pending = collections.OrderedDict()  # msgid -> (topic, frame)
        self.acks = {}          # (topic, msgid) -> seq
        self.sent = {}          # (topic, msgid) -> (user, body hash)
        self.conflicts = []     # (topic, msgid, first seq, other seq)
        self.problems = []      # protocol violations (fail the run)
        self.counter = 0
        self.generate = True
        self.stats = collections.Counter()
        self.lock = threading.Lock()
        self.tokens = 0.0
        self.last_fill = time.monotonic()

    def new_message(self):
        self.counter += 1
        msgid = "p%d-%d" % (self.k, self.counter)
        topic = self.topics[self.counter % len(self.topics)]
        body = ("%s %s %s" % (msgid, topic, "x" * random.randint(0, 120))
                ).encode()
        frame = H.publish_frame(topic, body, msgid)
        self.sent[(topic, msgid)] = (self.user, body_hash(body))
        self.pending[msgid] = (topic, frame)
        return msgid, frame

    def may_send(self):
        rate = self.run_.args.rate
        if rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(float(self.run_.args.window),
                          self.tokens + (now - self.last_fill) * rate)
        self.last_fill = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def run(self):
        stop = self.run_.clients_stop
        while not stop.is_set():
            node = self.run_.nodes[self.node_idx % len(self.run_.nodes)]
            self.node_idx += 1
            try:
                ws = ws_connect(node, self.user)
            except CONN_ERRORS:
                self.stats["connect_failed"] += 1
                stop.wait(0.3)
                continue
            self.stats["connections"] += 1
            try:
                why = self.session(ws, node)
            except CONN_ERRORS as e:
                why = "connection error: %s" % type(e).__name__
            finally:
                ws_close(ws)
            self.stats["reconnect: " + why.split(":")[0]] += 1
            if why.startswith("error-send"):
                stop.wait(0.2)

    def session(self, ws, node):
        stop = self.run_.clients_stop
        stall = self.run_.args.stall
        inflight = collections.deque()
        for msgid, (_topic, frame) in list(self.pending.items()):
            ws.send(frame)
            inflight.append(msgid)
            self.stats["resent"] += 1
        last_rx = time.monotonic()
        while not stop.is_set():
            while (self.generate and len(self.pending) < self.run_.args.window
                   and self.may_send()):
                msgid, frame = self.new_message()
                ws.send(frame)
                inflight.append(msgid)
                self.stats["published"] += 1
            f = ws_recv(ws, 0.2)
            now = time.monotonic()
            if f is None:
                if inflight and now - last_rx > stall:
                    return "stall"
                if not inflight and not self.pending and not self.generate:
                    stop.wait(0.1)
                continue
            last_rx = now
            if f.kind == "close":
                return "closed"
            if f.is_status("send"):
                msgid = f.text.strip()
                j = f.json or {}
                seq = j.get("sequenceId")
                topic = j.get("path")
                if not inflight:
                    self.problems.append("%s on %s: answer #send %s with "
                                         "nothing in flight"
                                         % (self.user, node.name, msgid))
                    continue
                want = inflight.popleft()
                if msgid != want:
                    self.problems.append(
                        "%s on %s: answer for %s arrived where the answer "
                        "for %s was due (publish order)"
                        % (self.user, node.name, msgid, want))
                entry = self.pending.pop(msgid, None)
                if entry is not None and topic != entry[0]:
                    self.problems.append("%s: #send %s for path %s, sent to "
                                         "%s" % (self.user, msgid, topic,
                                                 entry[0]))
                if not isinstance(seq, int):
                    self.problems.append("%s: #send %s without sequenceId: "
                                         "%r" % (self.user, msgid, f))
                    continue
                key = (topic, msgid)
                with self.lock:
                    old = self.acks.get(key)
                    if old is None:
                        self.acks[key] = seq
                    elif old != seq:
                        self.conflicts.append((topic, msgid, old, seq))
                self.stats["acked"] += 1
            elif f.is_error("error-send"):
                self.stats["error_send"] += 1
                if "unknown" in f.text:
                    self.stats["error_send_unknown"] += 1
                return "error-send: " + f.text[:80]
            else:
                self.stats["unexpected_frame"] += 1
                if self.stats["unexpected_frame"] <= 5:
                    log("%s: unexpected frame from %s: %r"
                        % (self.user, node.name, f))
        return "stopped"

    def acked_count(self):
        with self.lock:
            return len(self.acks)


# ------------------------------------------------------------- subscribers

class Subscriber(threading.Thread):
    def __init__(self, run, k, topics):
        super().__init__(name="sub%d" % k, daemon=True)
        self.run_ = run
        self.k = k
        self.user = "chaos-sub%d" % k
        self.topics = list(topics)
        self.node_idx = k + 1
        self.seen = {t: [] for t in self.topics}   # records in arrival order
        self.last = {t: 0 for t in self.topics}
        self.targets = None      # {topic: last seq} set in the final phase
        self.stats = collections.Counter()
        self.problems = []
        self.lock = threading.Lock()

    def behind(self):
        tg = self.targets
        if tg is None:
            return True
        return any(self.last.get(t, 0) < n for t, n in tg.items())

    def run(self):
        stop = self.run_.clients_stop
        while not stop.is_set():
            node = self.run_.nodes[self.node_idx % len(self.run_.nodes)]
            self.node_idx += 1
            try:
                ws = ws_connect(node, self.user)
            except CONN_ERRORS:
                self.stats["connect_failed"] += 1
                stop.wait(0.3)
                continue
            self.stats["connections"] += 1
            try:
                why = self.session(ws, node)
            except CONN_ERRORS as e:
                why = "connection error: %s" % type(e).__name__
            finally:
                ws_close(ws)
            self.stats["reconnect: " + why.split(":")[0]] += 1

    def session(self, ws, node):
        stop = self.run_.clients_stop
        for t in self.topics:
            ws.send("+ %s %d" % (t, self.last[t] + 1))
        last_rx = time.monotonic()
        while not stop.is_set():
            f = ws_recv(ws, 0.3)
            now = time.monotonic()
            if f is None:
                # a node that is stopped or cut off answers nothing: move on
                # when nothing came for a while although there is (or, at the
                # end, must be) something to see
                if (now - last_rx > self.run_.args.sub_stall
                        and self.run_.progressing() and self.behind()):
                    return "stall"
                continue
            last_rx = now
            if f.kind == "close":
                return "closed"
            if f.kind == "message":
                if f.path not in self.seen:
                    self.problems.append("%s: message of unexpected path %s"
                                         % (self.user, f.path))
                    continue
                r = (f.seq, f.user, f.msgid, body_hash(f.body), f.time,
                     f.app)
                with self.lock:
                    self.seen[f.path].append(r)
                    self.last[f.path] = max(self.last[f.path], f.seq)
                self.stats["messages"] += 1
            elif f.kind == "status":
                self.stats["#" + f.type] += 1
            else:
                self.stats["!" + (f.type or "?")] += 1
                if self.stats["!" + (f.type or "?")] <= 5:
                    log("%s: error frame from %s: %r" % (self.user,
                                                         node.name, f))
        return "stopped"


# ------------------------------------------------------------------ nemesis

class Nemesis(threading.Thread):
    """One action every 2-5 s. Node processes it (re)starts are children of
    this thread (PR_SET_PDEATHSIG is per thread), so the thread stays alive,
    idle, until the run has stopped the nodes (`exit_event`)."""

    def __init__(self, run):
        super().__init__(name="nemesis", daemon=True)
        self.run_ = run
        self.rng = random.Random(run.seed)
        self.counts = collections.Counter({k: 0 for k in ACTION_KINDS})
        self.failed = collections.Counter()
        self.t0 = time.monotonic()
        self.stop_event = threading.Event()
        self.done_event = threading.Event()
        self.exit_event = threading.Event()
        self.error = None

    def run(self):
        try:
            self.loop()
        except Exception:
            self.error = traceback.format_exc()
            log("nemesis error:\n" + self.error)
        finally:
            self.run_.heal_all(restart=False)
            self.done_event.set()
            self.exit_event.wait()

    def sleep(self, s):
        return self.stop_event.wait(s)

    def loop(self):
        a = self.run_.args
        while not self.stop_event.is_set():
            if self.sleep(self.rng.uniform(a.interval_min, a.interval_max)):
                return
            self.run_.check_crashes()
            self.act()

    def due(self):
        """A fault family whose guaranteed minimum is behind schedule."""
        a = self.run_.args
        frac = min(1.0, (time.monotonic() - self.t0 + 8) / max(a.duration, 1))
        for kind, want in (("power_loss_all", a.min_power_loss_all),
                           ("power_loss", a.min_power_losses),
                           ("corrupt", a.min_corruptions)):
            if want and self.counts[kind] < want and \
                    self.counts[kind] < want * frac:
                return kind
        return None

    def pick_action(self):
        nodes = self.run_.nodes
        dead = [n for n in nodes if n.dead or not n.alive()]
        if dead:
            r = self.rng.random()
            if r < 0.85:
                return "restart"
            return self.rng.choice(["stop", "transfer"])
        forced = self.due()
        if forced:
            return forced
        choices = [("kill", 0.4), ("kill_leader", 0.2), ("stop", 0.1),
                   ("transfer", 0.1), ("far_behind", 0.1)]
        if self.run_.netns is not None:
            choices.append(("partition", 0.1))
        if self.run_.powerloss:
            choices += [("power_loss", 0.3), ("power_loss_all", 0.05)]
        if self.run_.corrupt_on:
            choices.append(("corrupt", 0.2))
        total = sum(w for _, w in choices)
        r = self.rng.random() * total
        for kind, w in choices:
            r -= w
            if r < 0:
                return kind
        return choices[-1][0]

    def leader(self):
        for n in self.run_.nodes:
            i = n.info(timeout=1)
            if i and i.get("leader") is not None:
                for m in self.run_.nodes:
                    if m.node_id == i["leader"]:
                        return m
        return None

    def act(self):
        kind = self.pick_action()
        nodes = self.run_.nodes
        live = [n for n in nodes if n.alive() and not n.dead]
        if kind == "restart":
            for n in nodes:
                if n.dead or not n.alive():
                    self.run_.restart(n)
                    self.counts["restart"] += 1
                    log("nemesis: restart %s" % n.name)
            return
        if kind in ("kill", "kill_leader"):
            target = self.leader() if kind == "kill_leader" else \
                self.rng.choice(live)
            if target is None:
                kind, target = "kill", self.rng.choice(live)
            self.run_.kill(target)
            self.counts[kind] += 1
            log("nemesis: %s %s" % (kind, target.name))
            return
        if kind == "power_loss":
            target = self.rng.choice(live)
            self.run_.power_loss([target])
            self.counts[kind] += 1
            log("nemesis: power_loss %s (unsynced writes dropped)"
                % target.name)
            self.run_.restart(target)
            return
        if kind == "power_loss_all":
            self.run_.power_loss(list(nodes))
            self.counts[kind] += 1
            log("nemesis: power_loss_all (every node; unsynced writes "
                "dropped)")
            for n in nodes:
                self.run_.restart(n)
            return
        if kind == "corrupt":
            lead = self.leader()
            followers = [n for n in live if n is not lead] or live
            self.run_.corrupt(self.rng.choice(followers), self.rng)
            self.counts[kind] += 1
            return
        if kind == "far_behind":
            # A follower down long enough for the others' logs to be
            # compacted past it: it comes back through a snapshot of the
            # state and fetches the messages from its peers (catch-up).
            lead = self.leader()
            followers = [n for n in live if n is not lead] or live
            target = self.rng.choice(followers)
            secs = self.rng.uniform(8, 14)
            self.run_.kill(target)
            self.counts["far_behind"] += 1
            log("nemesis: far_behind %s (down %.1fs)" % (target.name, secs))
            if not self.sleep(secs):
                self.run_.restart(target)
                log("nemesis: restart %s" % target.name)
            return
        if kind == "stop":
            target = self.rng.choice(live)
            if self.rng.random() < 0.3:
                target = self.leader() or target
            secs = self.rng.uniform(1, 4)
            log("nemesis: SIGSTOP %s for %.1fs" % (target.name, secs))
            self.counts["stop"] += 1
            target.stopped = True
            try:
                target.send_signal(signal.SIGSTOP)
                self.sleep(secs)
            finally:
                target.send_signal(signal.SIGCONT)
                target.stopped = False
            return
        if kind == "transfer":
            via = self.rng.choice(live)
            lead = self.leader()
            others = [n for n in live if n is not lead]
            args = ["transfer"]
            if others and self.rng.random() < 0.7:
                args.append(str(self.rng.choice(others).node_id))
            self.counts["transfer"] += 1
            try:
                c = H.chorusctl(via.http_addr, *args, timeout=15)
                ok = c.rc == 0
                detail = c.err.strip()[:120]
            except (subprocess.SubprocessError, OSError, H.TestFailure) as e:
                ok, detail = False, str(e)[:120]
            if not ok:
                self.failed["transfer"] += 1
            log("nemesis: %s via %s -> %s%s" % (
                " ".join(args), via.name, "ok" if ok else "failed",
                "" if ok else " (%s)" % detail))
            return
        if kind == "partition":
            target = self.rng.choice(live)
            if self.rng.random() < 0.3:
                target = self.leader() or target
            secs = self.rng.uniform(2, 6)
            log("nemesis: partition %s for %.1fs" % (target.name, secs))
            self.counts["partition"] += 1
            self.run_.partitioned = target
            try:
                self.run_.netns.cut(target.ns_index)
                if not self.sleep(1.0):
                    if target.info(timeout=0.5) is not None:
                        log("nemesis: %s still reachable while cut off"
                            % target.name)
                        self.failed["partition_ineffective"] += 1
                    self.sleep(secs - 1.0)
            finally:
                self.run_.netns.heal(target.ns_index)
                self.run_.partitioned = None
            return


# ------------------------------------------------------ power loss, damage

def lusw_binary():
    b = os.environ.get("CHORUS_LUSW")
    if b:
        return b
    src = os.environ.get("CHORUS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
    return os.path.join(src, "build", "tests", "powerloss", "chorus-lusw")


class LuswMount:
    """A node's data dir on tests/powerloss's file system: `drop` is a
    power cut (every write not yet fsync'ed is undone)."""

    def __init__(self, top):
        self.back = os.path.join(top, "lusw-back")
        self.mnt = os.path.join(top, "lusw-mnt")
        os.makedirs(self.back, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.err = open(os.path.join(top, "lusw.stderr"), "ab")
        self.proc = subprocess.Popen([lusw_binary(), self.back, self.mnt],
                                     stdout=self.err, stderr=self.err)
        deadline = time.monotonic() + 15
        while not self.mounted():
            if self.proc.poll() is not None:
                raise H.TestFailure("chorus-lusw exited rc %s (%s)"
                                    % (self.proc.returncode, self.back))
            if time.monotonic() > deadline:
                raise H.TestFailure("chorus-lusw not mounted in 15 s")
            time.sleep(0.05)

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(line.split()[1] == self.mnt for line in f)

    def drop(self):
        with open(os.path.join(self.mnt, ".lusw"), "w") as f:
            f.write("drop\n")

    def close(self):
        if self.mounted():
            subprocess.run(["fusermount3", "-u", self.mnt], timeout=30,
                           stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.mounted():
            subprocess.run(["fusermount3", "-uz", self.mnt], timeout=30)
        self.err.close()


def damage(rng, data_dir):
    """Damages one file of a stopped node's data dir; returns (file, what).
    Targets: LMDB's file (bits flipped in leaf/overflow page contents,
    where message records live — LMDB's own structure has no checksums:
    docs/architecture.md "Damaged files"), a closed or the open raft
    segment, a snapshot, raft metadata (bits flipped or cut short)."""
    raft = os.path.join(data_dir, "raft")
    names = sorted(os.listdir(raft)) if os.path.isdir(raft) else []
    closed = [x for x in names if x[:1].isdigit()]
    opened = [x for x in names if x.startswith("open-")
              and os.path.getsize(os.path.join(raft, x)) > 0]
    snaps = [x for x in names if x.startswith("snapshot-")]
    meta = [x for x in names if x.startswith("metadata")]
    kinds = ["store", "store", "store"]
    kinds += ["segment"] * bool(closed) + ["open_segment"] * bool(opened)
    kinds += ["snapshot"] * bool(snaps) + ["metadata"] * bool(meta)
    kind = rng.choice(kinds)
    if kind == "store":
        path = os.path.join(data_dir, "store", "data.mdb")
        with open(path, "r+b") as f:
            b = bytearray(f.read())
            pages = [i for i in range(2, len(b) // LMDB_PAGE)
                     if b[i * LMDB_PAGE + 10] in (LMDB_P_LEAF,
                                                  LMDB_P_OVERFLOW)]
            if not pages:
                return path, "no leaf page to damage"
            offs = []
            for _ in range(16):
                pg = rng.choice(pages)
                off = pg * LMDB_PAGE + rng.randrange(LMDB_PAGE // 4,
                                                     LMDB_PAGE)
                b[off] ^= 1 << rng.randrange(8)
                offs.append(off)
            f.seek(0)
            f.write(bytes(b))
        return path, "16 bits flipped at %s" % offs
    pick = {"segment": closed, "open_segment": opened, "snapshot": snaps,
            "metadata": meta}[kind]
    path = os.path.join(raft, rng.choice(pick))
    size = os.path.getsize(path)
    if size == 0:
        return path, "empty: left alone"
    if rng.random() < 0.3:
        cut = rng.randrange(0, size)
        os.truncate(path, cut)
        return path, "truncated from %d to %d bytes" % (size, cut)
    with open(path, "r+b") as f:
        b = bytearray(f.read())
        offs = sorted(rng.randrange(size) for _ in range(16))
        for off in offs:
            b[off] ^= 1 << rng.randrange(8)
        f.seek(0)
        f.write(bytes(b))
    return path, "16 bits flipped at %s" % offs


# --------------------------------------------------------------------- run

class Run:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed if args.seed is not None else \
            random.randrange(1 << 30)
        random.seed(self.seed + 1)
        self.nodes = []
        self.netns = None
        self.partition_skip = None
        self.partitioned = None
        self.clients_stop = threading.Event()
        self.failures = []      # (reason) lines that fail the run
        self.crashes = []
        self.phase = "load"
        self.lock = threading.RLock()
        self.powerloss = args.nemesis in ("powerloss", "all")
        self.corrupt_on = args.nemesis in ("corrupt", "all")
        self.flags = []
        self.refused = 0        # damaged nodes that refused to start
        self.rebuilds = 0       # nodes that stopped to rebuild their store
        self.retired = []       # nodes replaced after refusing
        self.next_id = 4

    def progressing(self):
        return self.phase in ("load", "final")

    # -- node control (nemesis thread and main thread)
    def kill(self, n):
        with self.lock:
            n.dead = True
            try:
                n.kill9()
            except H.TestFailure as e:
                self.crash(n, str(e))

    def restart(self, n):
        with self.lock:
            if n.alive():
                return
            n.dead = False
            try:
                n.start(wait=False)
            except H.TestFailure as e:
                self.crash(n, "restart failed: %s" % e)

    def power_loss(self, nodes):
        """kill -9, then the node's file system drops every write not yet
        synced: what a power cut leaves on its disk."""
        with self.lock:
            for n in nodes:
                if n.alive():
                    self.kill(n)
                n.dead = True
            for n in nodes:
                n.lusw.drop()

    def corrupt(self, n, rng):
        """Stops n, damages one of its files, starts it again: it must come
        back healthy (and later tell the true history) or refuse to start
        with one line naming the file; a refused node is replaced as
        docs/operations.md "Replacing a dead node" says."""
        self.kill(n)
        path, what = damage(rng, n.data_dir)
        log("nemesis: corrupt %s: %s: %s" % (
            n.name, os.path.relpath(path, n.data_dir), what))
        with self.lock:
            n.dead = False
            n.start(wait=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if n.proc.poll() is not None:
                break
            if n.healthy():
                log("nemesis: %s healthy after the damage" % n.name)
                return
            time.sleep(0.3)
        if n.proc.poll() is None:
            log("nemesis: %s running, not yet healthy after the damage"
                % n.name)
            return
        with self.lock:
            n.dead = True
            n._reaped_run = n.run_no
            rc = n.proc.returncode
            if self.stopped_to_rebuild(n, rc):
                self.restart(n)
                return
            try:
                n._reaped(rc)
            except H.TestFailure as e:
                self.crash(n, str(e))
        lines = [l for l in n.run_log().splitlines()
                 if l.startswith("chorusd:")]
        name = os.path.basename(path)
        if rc in (0, None) or len(lines) != 1 or not (
                name in lines[0] or "log entries were lost" in lines[0]):
            self.failures.append("%s refused to start (rc %s) without one "
                                 "line naming %s: %r" % (n.name, rc, name,
                                                         lines[-3:]))
        self.refused += 1
        log("nemesis: %s refused to start: %s" % (
            n.name, lines[-1] if lines else "(no line)"))
        self.replace(n)

    def stopped_to_rebuild(self, n, rc):
        """A node that found its store damaged stops with exit 75 and one
        line; started again (as systemd would) it rebuilds the store from
        the raft log and its peers. Not a crash."""
        if rc != REBUILD_EXIT or "rebuilds the store" not in n.run_log():
            return False
        try:
            n._reaped(rc)
        except H.TestFailure as e:
            self.crash(n, str(e))
        n.dead = True
        self.rebuilds += 1
        log("%s stopped to rebuild its damaged store; it will be restarted"
            % n.name)
        return True

    def replace(self, n):
        """The operator's answer to a node whose data is damaged: remove it,
        start a new member (new id, empty data dir) that joins."""
        live = [m for m in self.nodes if m is not n and m.alive()
                and not m.dead]
        deadline = time.monotonic() + 60
        done = False
        while not done and time.monotonic() < deadline and live:
            for via in live:
                try:
                    c = H.chorusctl(via.http_addr, "leave", str(n.node_id),
                                    timeout=30)
                    done = c.rc == 0 or "not a member" in c.err
                except (subprocess.SubprocessError, OSError,
                        H.TestFailure):
                    done = False
                if done:
                    break
            if not done:
                time.sleep(1)
        if not done:
            self.failures.append("could not remove the refused %s" % n.name)
            return
        k = self.next_id
        self.next_id += 1
        nn = ChaosNode(host=n.host, prefix=n.prefix, node_id=k,
                       name="chaos-node%d" % k,
                       http_port=H.unique_free_port(),
                       raft_port=H.unique_free_port())
        nn.ns_index = n.ns_index
        if self.powerloss:
            nn.lusw = LuswMount(nn.tmp)
            nn.data_dir = os.path.join(nn.lusw.mnt, "data")
        nn.extra_args = ["--join", live[0].http_addr] + self.flags
        with self.lock:
            self.nodes[self.nodes.index(n)] = nn
            self.retired.append(n)
            nn.start(wait=False)
        log("nemesis: %s removed; %s joins in its place (%s)"
            % (n.name, nn.name, nn.http_addr))

    def crash(self, n, text):
        line = "node %s crashed/exited unexpectedly: %s (log %s)" % (
            n.name, text.strip()[:3000], n.log_path)
        self.crashes.append(line)
        log(line)

    def check_crashes(self):
        """A node whose process ended without the nemesis killing it."""
        with self.lock:
            for n in self.nodes:
                if n.proc is None or n.dead or n._reaped_run == n.run_no:
                    continue
                rc = n.proc.poll()
                if rc is None:
                    continue
                n._reaped_run = n.run_no
                if self.stopped_to_rebuild(n, rc):
                    continue
                text = "exit code %s" % rc
                try:
                    n._reaped(rc)
                    text += "; last log lines:\n" + n.log_tail(15)
                except H.TestFailure as e:
                    text += "; " + str(e)
                self.crash(n, text)
                n.dead = True

    def heal_all(self, restart=True):
        for n in self.nodes:
            if n.stopped and n.alive():
                n.send_signal(signal.SIGCONT)
                n.stopped = False
        if self.netns is not None:
            for n in self.nodes:
                self.netns.heal(n.ns_index)
        self.partitioned = None
        if restart:
            self.check_crashes()
            for n in self.nodes:
                if n.dead or not n.alive():
                    self.restart(n)

    # -- set-up
    def setup(self):
        a = self.args
        if a.no_partition:
            self.partition_skip = "disabled by --no-partition"
        else:
            self.partition_skip = NetNS.probe()
        if self.partition_skip is None:
            ns = NetNS(3)
            try:
                ns.setup()
                self.netns = ns
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                ns.teardown()
                if ns.entered:
                    raise
                self.partition_skip = "network namespace set-up failed: %s" % e
        if self.netns is None:
            print("partition nemesis skipped: %s" % self.partition_skip,
                  flush=True)
        else:
            log("partition nemesis on: nodes in network namespaces %s-n1..3 "
                "(%s.1-3)" % (self.netns.tag, NetNS.SUBNET))
        flags = ["--publish-timeout", str(a.publish_timeout),
                 "--snapshot-threshold", str(a.snapshot_threshold),
                 "--snapshot-trailing", str(a.snapshot_trailing),
                 "--dedup-window", "120", "--log", "info"]
        self.flags = flags
        for k in (1, 2, 3):
            if self.netns:
                host, prefix = self.netns.host(k), self.netns.prefix(k)
            else:
                host, prefix = H.HOST, ()
            self.nodes.append(ChaosNode(
                host=host, prefix=prefix, node_id=k, name="chaos-node%d" % k,
                http_port=H.unique_free_port(),
                raft_port=H.unique_free_port()))
        if self.powerloss:
            for n in self.nodes:
                n.lusw = LuswMount(n.tmp)
                n.data_dir = os.path.join(n.lusw.mnt, "data")
            log("power-loss nemesis on: data dirs on chorus-lusw (%s)"
                % lusw_binary())
        spec = H.cluster_spec(self.nodes)
        for n in self.nodes:
            n.extra_args = ["--cluster", spec] + flags

    def start_cluster(self):
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_healthy(60)
        log("cluster up: %s" % ", ".join("%s=%s (pid %d, %s)" % (
            n.name, n.http_addr, n.pid, n.tmp) for n in self.nodes))

    # -- reading the replicas
    def read_history(self, node, topic):
        out = []
        frm = 1
        while True:
            r = node.http("GET", "/api/message%s?from=%d&limit=10000"
                          % (topic, frm), timeout=60)
            if r.status != 200:
                raise H.TestFailure("%s: GET %s from=%d: HTTP %d %r"
                                    % (node.name, topic, frm, r.status,
                                       r.body[:200]))
            page = json.loads(r.body.decode("utf-8"))
            for m in page:
                if "bodyBase64" in m:
                    import base64
                    body = base64.b64decode(m["bodyBase64"])
                else:
                    body = (m.get("body") or "").encode("utf-8")
                out.append((m["sequenceId"], m.get("userId"),
                            m.get("messageId") or "", body_hash(body),
                            m.get("time"), m.get("applicationId"),
                            json.dumps(m.get("headers"), sort_keys=True)))
            if len(page) < 10000:
                return out
            frm = page[-1]["sequenceId"] + 1

    def topic_table(self, node):
        r = node.http("GET", "/admin/topics?prefix=/chaos", timeout=10)
        if r.status != 200:
            return None
        return sorted((t["path"], t.get("lastSequenceId"), t.get("count"))
                      for t in json.loads(r.body.decode())["topics"])

    def converged(self):
        infos = [n.info(timeout=3) for n in self.nodes]
        if any(i is None for i in infos):
            return None
        ci = {(i.get("commitIndex"), i.get("appliedIndex")) for i in infos}
        if len(ci) != 1:
            return None
        c, a = ci.pop()
        if a != c:
            return None
        tables = [self.topic_table(n) for n in self.nodes]
        if any(t is None for t in tables) or any(t != tables[0]
                                                  for t in tables):
            return None
        return tables[0] or True


def fmt_actions(counts):
    return "{%s}" % ",".join("%s:%d" % (k, counts[k]) for k in ACTION_KINDS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60,
                    help="seconds of load + nemesis (default 60)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument("--subscribers", type=int, default=3)
    ap.add_argument("--topics", type=int, default=4,
                    help="topics per publisher")
    ap.add_argument("--window", type=int, default=50,
                    help="unacknowledged publishes per publisher")
    ap.add_argument("--rate", type=float, default=60,
                    help="publishes/s per publisher (0: as fast as acks come)")
    ap.add_argument("--interval-min", type=float, default=2.0)
    ap.add_argument("--interval-max", type=float, default=5.0)
    ap.add_argument("--publish-timeout", type=int, default=3000)
    ap.add_argument("--snapshot-threshold", type=int, default=512)
    ap.add_argument("--snapshot-trailing", type=int, default=256)
    ap.add_argument("--stall", type=float, default=8.0,
                    help="a publisher connection with publishes in flight "
                         "and no answer for this long is abandoned")
    ap.add_argument("--sub-stall", type=float, default=10.0)
    ap.add_argument("--final-timeout", type=float, default=120.0,
                    help="bound of each end-phase wait")
    ap.add_argument("--no-partition", action="store_true")
    ap.add_argument("--nemesis", choices=NEMESES, default="default",
                    help="faults: default (kills, pauses, partitions...), "
                         "powerloss (+ power cuts on chorus-lusw), corrupt "
                         "(+ damaged files), all")
    ap.add_argument("--min-power-losses", type=int, default=0,
                    help="single-node power losses guaranteed in the run")
    ap.add_argument("--min-power-loss-all", type=int, default=0,
                    help="power losses of every node at once guaranteed")
    ap.add_argument("--min-corruptions", type=int, default=0,
                    help="damaged files guaranteed in the run")
    args = ap.parse_args()
    if (args.min_power_losses or args.min_power_loss_all) and \
            args.nemesis not in ("powerloss", "all"):
        ap.error("--min-power-loss* needs --nemesis powerloss or all")
    if args.min_corruptions and args.nemesis not in ("corrupt", "all"):
        ap.error("--min-corruptions needs --nemesis corrupt or all")
    # Unless given, the minimums scale with the run: one power loss a
    # minute, one of the whole cluster per five, one damaged file per two.
    if args.nemesis in ("powerloss", "all"):
        args.min_power_losses = args.min_power_losses or \
            int(args.duration // 60)
        args.min_power_loss_all = args.min_power_loss_all or \
            max(1, int(args.duration // 300))
    if args.nemesis in ("corrupt", "all"):
        args.min_corruptions = args.min_corruptions or \
            int(args.duration // 120)
    if args.nemesis in ("powerloss", "all") and \
            not os.access(lusw_binary(), os.X_OK):
        print("chaos: chorus-lusw not found: %s (CHORUS_LUSW); result=FAIL"
              % lusw_binary())
        return 2

    if websocket is None:
        print("chaos: python3-websocket is not installed; result=FAIL")
        return 2
    for b in (H.CHORUSD, H.CHORUSCTL):
        if not os.path.exists(b):
            print("chaos: binary not found: %s; result=FAIL" % b)
            return 2

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:   # nohup
        signal.signal(signal.SIGHUP, on_signal)

    run = Run(args)
    log("chaos: duration=%gs seed=%d chorusd=%s" % (args.duration, run.seed,
                                                     H.CHORUSD))
    nemesis = None
    pubs, subs = [], []
    failed = True
    summary = None
    try:
        run.setup()
        run.start_cluster()
        for k in range(args.publishers):
            pubs.append(Publisher(run, k))
        all_topics = [t for p in pubs for t in p.topics]
        for k in range(args.subscribers):
            subs.append(Subscriber(run, k, all_topics))
        for s in subs:
            s.start()
        time.sleep(0.5)
        for p in pubs:
            p.start()
        nemesis = Nemesis(run)
        nemesis.start()

        t_start = time.monotonic()
        next_report = t_start + 10
        while time.monotonic() - t_start < args.duration:
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += 10
                log("progress: acks=%d pending=%d actions=%s live=%s" % (
                    sum(p.acked_count() for p in pubs),
                    sum(len(p.pending) for p in pubs),
                    fmt_actions(nemesis.counts),
                    ",".join(str(n.node_id) for n in run.nodes
                             if n.alive() and not n.dead)))
            if nemesis.done_event.is_set():
                break
        elapsed = time.monotonic() - t_start

        # ---- end phase
        run.phase = "final"
        log("stopping the nemesis")
        nemesis.stop_event.set()
        nemesis.done_event.wait(30)
        if nemesis.error:
            run.failures.append("nemesis failed: %s" % nemesis.error.strip()
                                .splitlines()[-1])
        run.heal_all(restart=True)
        for n in run.nodes:
            try:
                n.wait_healthy(args.final_timeout)
            except H.TestFailure as e:
                run.failures.append("after healing: %s" % e)
        for p in pubs:
            p.generate = False
        log("healed; waiting for publishers to finish their retries")
        deadline = time.monotonic() + args.final_timeout
        while time.monotonic() < deadline and any(p.pending for p in pubs):
            time.sleep(0.5)
            run.check_crashes()
        unacked = sum(len(p.pending) for p in pubs)
        if unacked:
            run.failures.append("%d publishes still unacknowledged %ds after "
                                "the nemesis stopped (cluster unavailable?)"
                                % (unacked, args.final_timeout))
        log("waiting for the replicas to converge")
        table = None
        deadline = time.monotonic() + args.final_timeout
        while time.monotonic() < deadline:
            table = run.converged()
            if table:
                break
            time.sleep(0.5)
        if not table:
            run.failures.append("replicas did not converge (same commit/"
                                "applied index and topic table on every "
                                "node) within %ds: %r" % (
                                    args.final_timeout,
                                    [(n.name, (n.info() or {}).get(
                                        "appliedIndex")) for n in run.nodes]))
        # subscribers: must catch up to what the replicas hold
        targets = {}
        if isinstance(table, list):
            targets = {path: last for path, last, _c in table}
        for s in subs:
            s.targets = {t: targets.get(t, 0) for t in s.topics}
        deadline = time.monotonic() + args.final_timeout
        while time.monotonic() < deadline and any(s.behind() for s in subs):
            time.sleep(0.5)
        run.phase = "done"
        run.clients_stop.set()
        for t in pubs + subs:
            t.join(15)

        # ---- collect and check
        log("reading the histories of %d topics from %d nodes"
            % (len(all_topics), len(run.nodes)))
        histories = {}
        for n in run.nodes:
            histories[n.name] = {}
            for t in all_topics:
                try:
                    histories[n.name][t] = run.read_history(n, t)
                except CONN_ERRORS as e:
                    run.failures.append("cannot read %s from %s: %s"
                                        % (t, n.name, e))
                    histories[n.name][t] = []
        acks, sent, conflicts = {}, {}, []
        for p in pubs:
            acks.update(p.acks)
            sent.update(p.sent)
            conflicts += p.conflicts
            run.failures += p.problems
        observations = {s.user: s.seen for s in subs}
        for s in subs:
            run.failures += s.problems
        res = checker.check(acks, histories, observations, sent=sent,
                            ack_conflicts=conflicts, require_complete=True)

        # ---- stop the nodes: SIGTERM must give exit 0 and a clean log
        run.check_crashes()
        for n in run.nodes:
            try:
                rc = n.stop(timeout=30)
                if rc != 0:
                    run.failures.append("%s exited %s on SIGTERM (log %s)"
                                        % (n.name, rc, n.log_path))
            except H.TestFailure as e:
                run.crash(n, str(e))
        nemesis.exit_event.set()

        # ---- report
        for p in pubs:
            log("%s: %s" % (p.user, dict(p.stats)))
        for s in subs:
            log("%s: %s" % (s.user, dict(s.stats)))
        if nemesis.failed:
            log("nemesis actions that failed (not an error): %s"
                % dict(nemesis.failed))
        log("checker: %s" % dict(res.info))
        n_acks = len(acks)
        if n_acks == 0:
            run.failures.append("no progress: not a single publish was "
                                "acknowledged")
        for kind, want in (("power_loss", args.min_power_losses),
                           ("power_loss_all", args.min_power_loss_all),
                           ("corrupt", args.min_corruptions)):
            if nemesis.counts[kind] < want:
                run.failures.append("only %d %s in the run (wanted %d)"
                                    % (nemesis.counts[kind], kind, want))
        total_kills = nemesis.counts["kill"] + nemesis.counts["kill_leader"]
        if args.duration >= 30 and total_kills == 0:
            run.failures.append("the nemesis killed no node")
        for line in res.problems:
            print("PROBLEM " + line)
        for line in run.crashes:
            print("CRASH " + line)
        for line in run.failures:
            print("FAILURE " + line)
        failed = bool(not res.ok or run.crashes or run.failures)
        if failed:
            H.KEEP_TMP = True
            print("node logs and data dirs kept: %s" % ", ".join(
                n.tmp for n in run.nodes))
        reasons = []
        if not res.ok:
            reasons.append("checker")
        if run.crashes:
            reasons.append("crash")
        if run.failures:
            reasons.append("no-progress" if n_acks == 0 else "run")
        # Catch-ups the far_behind nemesis caused (and kills that happened
        # to leave a node past the compacted log).
        n_catchups = sum(n.full_log().count("catchup finished")
                         for n in run.nodes)
        n_damaged = sum(n.full_log().count("store damage found")
                        for n in run.nodes + run.retired)
        summary = ("chaos: duration=%ds nemesis=%s actions=%s acks=%d %s "
                   "crashes=%d catchups=%d power_losses=%d "
                   "power_losses_all=%d corruptions=%d refused=%d "
                   "rebuilds=%d damaged_ranges=%d result=%s" % (
                       round(elapsed), args.nemesis,
                       fmt_actions(nemesis.counts),
                       n_acks, res.summary_fields(),
                       len(run.crashes), n_catchups,
                       nemesis.counts["power_loss"],
                       nemesis.counts["power_loss_all"],
                       nemesis.counts["corrupt"], run.refused, run.rebuilds,
                       n_damaged,
                                  "FAIL(%s)" % ",".join(reasons) if failed
                                  else "PASS"))
    except Interrupted as e:
        print("chaos: interrupted (%s); cleaning up" % e, flush=True)
        summary = "chaos: interrupted result=FAIL"
        failed = True
    except Exception:
        traceback.print_exc()
        summary = "chaos: harness error result=FAIL"
        failed = True
        H.KEEP_TMP = True
        print("node logs and data dirs kept: %s" % ", ".join(
            n.tmp for n in run.nodes))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.clients_stop.set()
        if nemesis is not None:
            nemesis.stop_event.set()
            nemesis.done_event.wait(15)
        run.heal_all(restart=False)
        for n in run.nodes:
            if n.alive():
                try:
                    os.kill(n.pid, signal.SIGKILL)
                    n.proc.wait(10)
                except (OSError, subprocess.SubprocessError):
                    pass
        if nemesis is not None:
            nemesis.exit_event.set()
        for n in run.nodes + run.retired:
            if n.alive():
                try:
                    os.kill(n.pid, signal.SIGKILL)
                    n.proc.wait(10)
                except (OSError, subprocess.SubprocessError):
                    pass
            if n.lusw is not None:
                try:
                    n.lusw.close()
                except (OSError, subprocess.SubprocessError) as e:
                    print("chaos: unmounting %s: %s" % (n.lusw.mnt, e))
        if run.netns is not None:
            run.netns.teardown()
        if summary:
            print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
