#!/usr/bin/env python3
"""it_protocol: the WebSocket protocol of docs/protocol.md against one node.

Connect greeting, publish answers, every form of `+` (live, replay from
0/1/middle/beyond the end/negative, maxCount, comma form), live delivery,
subtopics, overlapping subscriptions, cancel, binary bodies, pipelining,
every kind of bad input (and the connection keeps working), the size limit,
publisher message id de-duplication, and publisher identity."""

import base64
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (TestFailure, check, eq, publish_frame,  # noqa: E402
                            publish_many, read_replay, run_tests, shared_node,
                            unique_topic)


def node():
    return shared_node("default")


def small_node():
    """--max-message-bytes 1000 for the size-limit tests."""
    return shared_node("small", ["--max-message-bytes", "1000"])


def fill(path, n, nd=None, user="filler"):
    """Publish bodies m1..mn to path; check the acks are 1..n."""
    nd = nd or node()
    with nd.ws(user) as w:
        acks = publish_many(w, path, ["m%d" % i for i in range(1, n + 1)],
                            window=100)
    eq([a.json["sequenceId"] for a in acks], list(range(1, n + 1)),
       "sequenceIds of the first %d publishes to %s" % (n, path))
    return acks


def subscribe_sentinel(sub):
    s = unique_topic("/sentinel")
    sub.send("+ " + s)
    sub.expect_status("subscribed-to", s)
    return s


def check_nothing_before_sentinel(sub, pub, sentinel, bad, what):
    """Publish to `sentinel` (sub is live-subscribed to it) and check that
    no frame matching `bad` reaches sub before the sentinel message or in a
    short quiet period after it."""
    pub.publish_ok(sentinel, "sentinel")
    frames = sub.recv_until(lambda f: f.is_msg(sentinel), 30,
                            "sentinel message on " + sentinel)
    frames += sub.drain(quiet=0.3)
    offending = [f for f in frames if bad(f)]
    check(not offending, "%s: got %r" % (what, offending))


def msg_seqs(frames, path):
    return [f.seq for f in frames if f.is_msg(path)]


# ------------------------------------------------------------------ connect

def test_connect_greeting():
    nd = node()
    with nd.ws("alice") as a, nd.ws() as b:
        for w, user in ((a, "alice"), (b, "anonymous")):
            c = w.connected
            check(c.text.startswith("You are connected"),
                  "#connected text: %r" % c.text)
            check(isinstance(c.json, dict), "#connected JSON: %r" % c.json)
            check(re.fullmatch(r"[A-Za-z0-9]{16}", str(c.json.get("ApplicationId"))),
                  "ApplicationId must be 16 alphanumerics: %r" % c.json)
            eq(c.json.get("UserId"), user, "UserId")
            t = c.json.get("Time")
            check(isinstance(t, str) and t.isdigit(),
                  "Time must be unix seconds as a string: %r" % t)
            check(abs(int(t) - time.time()) < 600, "Time %s is not now" % t)
        check(a.app_id != b.app_id, "two connections got the same ApplicationId")


# ------------------------------------------------------------------ publish

def test_publish_answer():
    nd = node()
    t = unique_topic("/pub")
    with nd.ws("alice") as w:
        before = int(time.time())
        f = w.publish(t, "hello", msgid="m1",
                      header='{"Content-Type":"text/plain"}')
        check(f.is_status("send"), "expected #send, got %r" % f)
        eq(f.text, "m1", "#send text (publisherMessageId)")
        j = f.json
        check(isinstance(j, dict), "#send JSON missing: %r" % f)
        eq(j.get("sequenceId"), 1, "sequenceId of the first message")
        eq(j.get("path"), t, "path")
        eq(j.get("publisherMessageId"), "m1", "publisherMessageId")
        ts = j.get("messagePublishingTime")
        check(isinstance(ts, int) and abs(ts - before) < 600,
              "messagePublishingTime must be unix seconds (int): %r" % ts)
        # no message id
        f = w.publish(t, "second")
        check(f.is_status("send"), "publish without id: %r" % f)
        eq(f.json.get("sequenceId"), 2, "second sequenceId")
        eq(f.json.get("publisherMessageId", ""), "", "empty publisherMessageId")
        # a frame with no \n at all: empty header, empty body
        w.send("> " + t)
        f = w.recv()
        check(f.is_status("send"), "publish frame without newline: %r" % f)
        eq(f.json.get("sequenceId"), 3, "third sequenceId")
        w.send("+ %s 1" % t)
        n, msgs = read_replay(w, t)
        eq(n, 3, "replay count")
        eq([m.body for m in msgs], [b"hello", b"second", b""], "bodies")
        eq(msgs[0].header_json, {"Content-Type": "text/plain"}, "header of #1")
        eq(msgs[2].header_json, {}, "empty header of #3")
        eq([m.msgid for m in msgs], ["m1", "", ""], "msgids")


# ------------------------------------------------------------------ receive

def test_subscribe_without_start_is_live_only():
    nd = node()
    t = unique_topic("/live")
    fill(t, 3, nd)
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sub.send("+ " + t)
        f = sub.recv()
        check(f.is_status("subscribed-to", t),
              "`+ %s` must answer only #subscribed-to, got %r" % (t, f))
        ack = pub.publish_ok(t, "live4", msgid="x4")
        m = sub.expect(lambda f: f.is_msg(t), "live message")
        eq((m.seq, m.body, m.msgid, m.user, m.app),
           (4, b"live4", "x4", "pub", pub.app_id), "live message fields")
        eq(m.seq, ack.json["sequenceId"], "live seq = acked seq")
        eq(m.time, ack.json["messagePublishingTime"], "time = acked time")


def replay_then_live(start, n_stored, expect_seqs, live_expect):
    nd = node()
    t = unique_topic("/rp")
    fill(t, n_stored, nd)
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sub.send("+ %s %s" % (t, start))
        n, msgs = read_replay(sub, t)
        eq([m.seq for m in msgs], expect_seqs,
           "`+ %s %s` on %d messages: replayed sequenceIds" % (t, start, n_stored))
        eq([m.body for m in msgs], [b"m%d" % s for s in expect_seqs], "bodies")
        sub.expect_status("subscribed-to", t)
        n_live = 6
        for i in range(n_live):
            pub.publish_ok(t, "m%d" % (n_stored + i + 1))
        last = n_stored + n_live
        frames = sub.recv_until(lambda f: f.is_msg(t) and f.seq == last, 30,
                                "live message %d" % last)
        frames += sub.drain(quiet=0.3)
        eq(msg_seqs(frames, t), live_expect,
           "live sequenceIds after `+ %s %s`" % (t, start))


def test_replay_from_0():
    replay_then_live(0, 5, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])


def test_replay_from_1():
    replay_then_live(1, 5, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])


def test_replay_from_middle():
    replay_then_live(3, 5, [3, 4, 5], [6, 7, 8, 9, 10, 11])


def test_replay_beyond_end():
    # count 0, then live messages only from startId on
    replay_then_live(8, 5, [], [8, 9, 10, 11])


def test_replay_negative_last_n():
    replay_then_live(-2, 5, [4, 5], [6, 7, 8, 9, 10, 11])


def test_replay_negative_more_than_stored():
    replay_then_live(-10, 5, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])


def test_replay_empty_topic_from_0():
    nd = node()
    t = unique_topic("/empty")
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sub.send("+ %s 0" % t)
        n, msgs = read_replay(sub, t)
        eq(n, 0, "count of a never-written topic")
        sub.expect_status("subscribed-to", t)
        pub.publish_ok(t, "first")
        m = sub.expect(lambda f: f.is_msg(t), "live message")
        eq((m.seq, m.body), (1, b"first"), "first live message")


def maxcount_case(cmd_args, n_stored, expect_seqs):
    nd = node()
    t = unique_topic("/mc")
    fill(t, n_stored, nd)
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sentinel = subscribe_sentinel(sub)
        sub.send("+ %s %s" % (t, cmd_args))
        n, msgs = read_replay(sub, t)
        eq([m.seq for m in msgs], expect_seqs,
           "`+ %s %s` on %d messages" % (t, cmd_args, n_stored))
        # no #subscribed-to, no live part
        pub.publish_ok(t, "after")
        check_nothing_before_sentinel(
            sub, pub, sentinel,
            lambda f: f.is_msg(t) or f.is_status("subscribed-to", t),
            "with maxCount there must be no #subscribed-to and no live message")


def test_replay_maxcount():
    maxcount_case("1 3", 5, [1, 2, 3])


def test_replay_maxcount_comma_form():
    maxcount_case("3,2", 5, [3, 4])


def test_replay_maxcount_larger_than_rest():
    maxcount_case("4 10", 5, [4, 5])


def test_replay_maxcount_equal_to_stored():
    maxcount_case("0 5", 5, [1, 2, 3, 4, 5])


def test_subtopics_live():
    nd = node()
    base = unique_topic("/sub")
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sentinel = subscribe_sentinel(sub)
        sub.send("+ " + base)
        sub.expect_status("subscribed-to", base)
        for p in (base + "/bar", base + "/bar/baz", base, base + "x",
                  base + "x/bar"):
            pub.publish_ok(p, "to " + p)
        pub.publish_ok(sentinel, "s")
        frames = sub.recv_until(lambda f: f.is_msg(sentinel), 30, "sentinel")
        frames += sub.drain(0.3)
        got = [(f.path, f.body) for f in frames
               if f.kind == "message" and f.path != sentinel]
        eq(sorted(got), sorted([(base + "/bar", ("to %s/bar" % base).encode()),
                                (base + "/bar/baz", ("to %s/bar/baz" % base).encode()),
                                (base, ("to %s" % base).encode())]),
           "`+ %s` delivers the topic and its subtopics only (not %sx)" % (base, base))


def test_overlapping_subscriptions_deliver_once():
    nd = node()
    a = unique_topic("/ov")
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sentinel = subscribe_sentinel(sub)
        sub.send("+ " + a)
        sub.expect_status("subscribed-to", a)
        sub.send("+ %s/b" % a)
        sub.expect_status("subscribed-to", a + "/b")
        pub.publish_ok(a + "/b", "once")
        pub.publish_ok(sentinel, "s")
        frames = sub.recv_until(lambda f: f.is_msg(sentinel), 30, "sentinel")
        frames += sub.drain(0.3)
        eq(len([f for f in frames if f.is_msg(a + "/b")]), 1,
           "copies of a message matched by `+ %s` and `+ %s/b`" % (a, a))


def test_cancel():
    nd = node()
    t = unique_topic("/cancel")
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sentinel = subscribe_sentinel(sub)
        sub.send("+ " + t)
        sub.expect_status("subscribed-to", t)
        pub.publish_ok(t, "before")
        m = sub.expect(lambda f: f.is_msg(t), "message before cancel")
        eq(m.body, b"before", "body")
        sub.send("- " + t)
        sub.expect_status("canceled", t)
        pub.publish_ok(t, "after")
        check_nothing_before_sentinel(sub, pub, sentinel,
                                      lambda f: f.is_msg(t),
                                      "message delivered after `- %s`" % t)
        # subscribing again works
        sub.send("+ " + t)
        sub.expect_status("subscribed-to", t)
        pub.publish_ok(t, "again")
        m = sub.expect(lambda f: f.is_msg(t), "message after re-subscribe")
        eq((m.seq, m.body), (3, b"again"), "re-subscribed message")


# ------------------------------------------------------------------- bodies

def test_binary_body_roundtrip():
    nd = node()
    t = unique_topic("/bin")
    body = bytes(range(256))
    with nd.ws("sub") as sub, nd.ws("pub") as pub:
        sub.send("+ " + t)
        sub.expect_status("subscribed-to", t)
        pub.send(publish_frame(t, body, "b1", binary=True))
        f = pub.recv()
        check(f.is_status("send"), "binary publish answered %r" % f)
        m = sub.expect(lambda f: f.is_msg(t), "live binary message")
        check(m.binary, "a non-UTF-8 message must come as a binary frame")
        eq(m.body, body, "live binary body")
        sub.send("+ %s 1" % t)
        n, msgs = read_replay(sub, t)
        eq(n, 1, "replay count")
        check(msgs[0].binary, "replayed non-UTF-8 message must be binary")
        eq(msgs[0].body, body, "replayed binary body")


def test_text_body_with_newlines_and_commas():
    nd = node()
    t = unique_topic("/txt")
    body = "a,b,c\nline 2,\n\n,,é\n"
    header = {"k": "v,w", "n": 1}
    with nd.ws("pub") as pub:
        pub.publish_ok(t, body, msgid="c1", header=header)
        pub.send("+ %s 0 1" % t)
        n, msgs = read_replay(pub, t)
        m = msgs[0]
        check(not m.binary, "UTF-8 message must come as a text frame")
        eq(m.body.decode("utf-8"), body, "body")
        eq(m.header_json, header, "header JSON")
        eq((m.path, m.seq, m.msgid), (t, 1, "c1"), "first line fields")


def test_pipelining_100_publishes():
    nd = node()
    t = unique_topic("/pipe")
    with nd.ws("pub") as pub:
        for i in range(100):
            pub.send(publish_frame(t, "body %d" % i, "p%d" % i))
        for i in range(100):
            f = pub.recv(30)
            check(f.is_status("send"), "answer %d: %r" % (i, f))
            eq(f.text, "p%d" % i, "answer order")
            eq(f.json.get("sequenceId"), i + 1, "sequenceId of p%d" % i)


# ---------------------------------------------------------------- bad input

BAD_INPUTS = [
    # (frame, expected error type)
    ("hello", "error-bad-request"),
    ("* /t", "error-bad-request"),
    ("> foo id1\n\nx", "error-send"),
    ("> /a//b id2\n\nx", "error-send"),
    ("> / id3\n\nx", "error-send"),
    ("> /a/../b id4\n\nx", "error-send"),
    ("> /a/./b id5\n\nx", "error-send"),
    ("> /a/b/ id6\n\nx", "error-send"),
    ("> /a$b id7\n\nx", "error-send"),
    ("> /" + "a" * 255 + " id8\n\nx", "error-send"),
    ("> /bad-hdr\n{not json\nbody", "error-bad-request"),
    ("> /bad-hdr\n[1,2]\nbody", "error-bad-request"),
    ('> /bad-hdr\n"str"\nbody', "error-bad-request"),
    ("> /bad-hdr\n42\nbody", "error-bad-request"),
    ("> /bad-id bad$id\n\nx", "error-bad-request"),
    ("> /bad-id " + "i" * 129 + "\n\nx", "error-bad-request"),
    ("+ /t x", "error-bad-request"),
    ("+ /t 1,x", "error-bad-request"),
    ("+ /t 1 x", "error-bad-request"),
    ("+ /t 1.5", "error-bad-request"),
    ("+ foo", "error-bad-request"),
    ("+ /a//b", "error-bad-request"),
    ("+", "error-bad-request"),
    ("+ ", "error-bad-request"),
    ("-", "error-bad-request"),
    ("- ", "error-bad-request"),
    ("- foo", "error-bad-request"),
    ("", "error-bad-request"),  # an empty frame (last: it crashed a node once)
]


def test_bad_inputs_get_errors_and_connection_keeps_working():
    nd = node()
    ok = unique_topic("/ok")
    problems = []
    with nd.ws("bad") as w:
        for i, (frame, etype) in enumerate(BAD_INPUTS):
            w.send(frame)
            f = w.recv(15)
            if f.kind == "close":
                problems.append("%r: connection closed (code %s)" % (frame[:60], f.close_code))
                try:  # closed because the node is dying?
                    nd.proc.wait(timeout=3)
                except Exception:
                    pass
                if not nd.alive():
                    raise TestFailure("the node died on the frame %r (exit %s); "
                                      "earlier problems: %s" % (frame[:60],
                                      nd.proc.returncode, problems[:-1]))
                w = nd.ws("bad")
                continue
            if not f.is_error(etype):
                problems.append("%r: expected !%s, got %r" % (frame[:60], etype, f))
            elif etype == "error-send":
                mid = frame.split("\n")[0].split(" ")[2]
                if not (f.text == mid or f.text.startswith(mid + " ")):
                    problems.append("%r: !error-send must name the id %s: %r"
                                    % (frame[:60], mid, f))
            # the connection keeps working
            a = w.publish(ok, "still ok %d" % i, msgid="ok%d" % i)
            if not (a.is_status("send") and a.text == "ok%d" % i):
                problems.append("after %r the next publish got %r" % (frame[:60], a))
        w.close()
    check(not problems, "bad-input problems:\n  " + "\n  ".join(problems))


def test_message_too_large():
    nd = small_node()
    t = unique_topic("/big")
    with nd.ws("big") as w:
        f = w.publish(t, "x" * 1001, msgid="big1")
        check(f.is_error("error-send"), "1001-byte body with limit 1000: %r" % f)
        check(f.text.startswith("big1") and "too large" in f.text,
              "expected `!error-send big1 ... message too large`, got %r" % f)
        f = w.publish(t, "y" * 1000, msgid="fits")
        check(f.is_status("send"), "1000-byte body with limit 1000: %r" % f)
        eq(f.json.get("sequenceId"), 1, "the refused message took no sequenceId")
        # a much larger frame: `!error-send … message too large` or close 1009
        w.send(publish_frame(t, "z" * 300000, "huge"))
        f = w.recv(30)
        if f.kind == "close":
            eq(f.close_code, 1009, "close code for an oversized frame")
            w = nd.ws("big")
        else:
            check(f.is_error("error-send") and "too large" in f.text,
                  "300000-byte body: %r" % f)
        f = w.publish(t, "small again", msgid="after")
        check(f.is_status("send"), "publish after the oversized one: %r" % f)
        eq(f.json.get("sequenceId"), 2, "sequenceId after refused messages")
        w.close()


# ------------------------------------------------------------------- dedup

def test_publisher_message_id_dedup():
    nd = node()
    t = unique_topic("/dd")
    with nd.ws("alice") as a, nd.ws("bob") as b:
        f1 = a.publish_ok(t, "A", msgid="same")
        f2 = a.publish_ok(t, "B", msgid="same")
        eq(f1.text, "same", "#send id")
        eq(f2.json.get("sequenceId"), f1.json.get("sequenceId"),
           "duplicate publish must carry the original sequenceId")
        eq(f2.json.get("messagePublishingTime"), f1.json.get("messagePublishingTime"),
           "duplicate publish must carry the original publishing time")
        f3 = a.publish_ok(t, "C", msgid="other")
        eq(f3.json.get("sequenceId"), 2, "a different id is stored")
        f4 = b.publish_ok(t, "D", msgid="same")
        eq(f4.json.get("sequenceId"), 3,
           "the same id from another user is a different message")
        a.send("+ %s 0" % t)
        n, msgs = read_replay(a, t)
        eq([(m.seq, m.body, m.user) for m in msgs],
           [(1, b"A", "alice"), (2, b"C", "alice"), (3, b"D", "bob")],
           "topic holds the duplicated message once")
    # anonymous connections share one id space
    t2 = unique_topic("/dd")
    with nd.ws() as x, nd.ws() as y:
        g1 = x.publish_ok(t2, "X", msgid="x1")
        g2 = y.publish_ok(t2, "Y", msgid="x1")
        eq(g2.json.get("sequenceId"), g1.json.get("sequenceId"),
           "two anonymous connections share the publisher id space")
    r = nd.get_json("/admin/topics" + t)
    eq(r.get("count"), 3, "/admin/topics%s count" % t)


def test_publisher_identity():
    nd = node()
    t = unique_topic("/who")
    with nd.ws("carol") as pub, nd.ws() as anon, nd.ws("watcher") as sub:
        sub.send("+ " + t)
        sub.expect_status("subscribed-to", t)
        a1 = pub.publish_ok(t, "from carol", msgid="c-1")
        a2 = anon.publish_ok(t, "from anon", msgid="n.1")
        m1 = sub.expect(lambda f: f.is_msg(t), "message 1")
        m2 = sub.expect(lambda f: f.is_msg(t), "message 2")
        eq((m1.seq, m1.user, m1.app, m1.msgid, m1.time),
           (a1.json["sequenceId"], "carol", pub.app_id, "c-1",
            a1.json["messagePublishingTime"]), "first message's identity")
        eq((m2.seq, m2.user, m2.app, m2.msgid),
           (a2.json["sequenceId"], "anonymous", anon.app_id, "n.1"),
           "anonymous message's identity")


def test_read_your_writes():
    nd = node()
    t = unique_topic("/ryw")
    with nd.ws("me") as w:
        acks = publish_many(w, t, ["v%d" % i for i in range(50)], window=50)
        last = acks[-1].json["sequenceId"]
        w.send("+ %s %d" % (t, last))
        n, msgs = read_replay(w, t)
        eq([m.seq for m in msgs], [last], "replay from the acked id")



# ------------------------------------------- frames (RFC 6455 §5, raw socket)

class RawWS:
    """A WebSocket client on a plain socket, to send what libraries will
    not: pings, fragments, unmasked frames, bad UTF-8, close codes."""

    def __init__(self, port, user="raw"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /stream/user/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"
                        % (user, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        check(head.startswith(b"HTTP/1.1 101"), "handshake: %r" % head[:100])
        op, data = self.recv()
        check(op == 1 and data.startswith(b"#connected"),
              "greeting: %r %r" % (op, data[:60]))

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def send(self, opcode, payload=b"", fin=True, masked=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
        mbit = 0x80 if masked else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if masked:
            mask = os.urandom(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            head += mask
        self.s.sendall(head + payload)

    def recv(self):
        """(opcode, payload) of the next frame; (None, None) at EOF."""
        try:
            while len(self.buf) < 2:
                self._fill()
            n = self.buf[1] & 0x7F
            hn = 2
            if n == 126:
                while len(self.buf) < 4:
                    self._fill()
                n, hn = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                while len(self.buf) < 10:
                    self._fill()
                n, hn = struct.unpack(">Q", self.buf[2:10])[0], 10
            check(self.buf[1] & 0x80 == 0, "server frames are not masked")
            while len(self.buf) < hn + n:
                self._fill()
        except EOFError:
            return None, None
        op = self.buf[0] & 0x0F
        data = self.buf[hn:hn + n]
        self.buf = self.buf[hn + n:]
        return op, data

    def expect_close(self, code, what):
        op, data = self.recv()
        eq(op, 8, "%s: close frame expected, got %r %r" % (what, op, data))
        eq(struct.unpack(">H", data[:2])[0], code, "%s: close code" % what)
        op, _ = self.recv()
        eq(op, None, "%s: the connection ends after the close" % what)

    def close(self):
        self.s.close()


def test_ping_gets_pong_with_its_payload():
    w = RawWS(node().http_port)
    w.send(9, b"are you there?")
    eq(w.recv(), (10, b"are you there?"), "pong")
    w.close()


def test_fragmented_publish_with_ping_between():
    """A publish in three fragments with a ping in between (§5.4): the
    pong comes first, then #send, and the stored body is whole."""
    nd = node()
    t = unique_topic("/frag")
    w = RawWS(nd.http_port)
    frame = publish_frame(t, "h\u00e9llo fragmented world", msgid="f1")
    data = frame.encode()
    # split inside the two-byte é: fragments need not be valid UTF-8 alone
    cut = data.index("\u00e9".encode()) + 1
    w.send(1, data[:cut], fin=False)
    w.send(9, b"p")
    w.send(0, data[cut:cut + 5], fin=False)
    w.send(0, data[cut + 5:], fin=True)
    eq(w.recv(), (10, b"p"), "pong between fragments")
    op, ans = w.recv()
    check(op == 1 and ans.startswith(b"#send f1"), "answer: %r %r" % (op, ans))
    w.close()
    r = nd.http("GET", "/api/message" + t)
    eq([m["body"] for m in r.json()], ["h\u00e9llo fragmented world"],
       "stored body")


def test_close_handshake_echoes_the_code():
    w = RawWS(node().http_port)
    w.send(8, struct.pack(">H", 1000) + b"bye")
    w.expect_close(1000, "client close 1000")
    w.close()


def test_protocol_violations_close_with_their_codes():
    """Each violation gets the close code of RFC 6455 §7.4.1, and the node
    keeps serving others."""
    nd = node()
    cases = [
        ("unmasked frame", dict(opcode=1, payload="+ /x", masked=False), 1002),
        ("reserved bit", dict(opcode=1, payload="+ /x", rsv=4), 1002),
        ("unknown opcode", dict(opcode=3, payload="x"), 1002),
        ("continuation first", dict(opcode=0, payload="x"), 1002),
        ("text not UTF-8", dict(opcode=1, payload=b"> /x\n\n\xff"), 1007),
        ("close code 999", dict(opcode=8, payload=struct.pack(">H", 999)), 1002),
    ]
    for what, kw, code in cases:
        w = RawWS(nd.http_port)
        w.send(**kw)
        w.expect_close(code, what)
        w.close()
    r = nd.http("GET", "/admin/healthcheck")
    eq(r.status, 200, "node healthy after the violations")

if __name__ == "__main__":
    run_tests(globals())
