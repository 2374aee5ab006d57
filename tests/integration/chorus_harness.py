"""Shared helpers for the Chorus integration tests (tests/integration/).

The scripts spawn the real `chorusd` on 127.0.0.1 with ephemeral ports and a
fresh temporary data directory each, drive it over WebSocket (the
python3-websocket package) and HTTP (stdlib), and check the behaviour docs/protocol.md describes.

Rules kept here so every script follows them:
- only processes we started are signalled, always by PID; children also get
  PR_SET_PDEATHSIG so nothing outlives the test process;
- every wait is bounded (socket timeouts, deadlines, a per-test SIGALRM);
- no assertion is made on timings (except the bounds issue #3 states as
  guarantees, asserted with slack in it_failover);
- after a node stops, its stderr log is scanned for sanitizer reports;
- on failure, the logs of the nodes the test used are dumped.

Environment: CHORUSD, CHORUSCTL, CHORUS_BENCH (binaries), CHORUS_SOURCE_DIR.
"""

import atexit
import base64
import ctypes
import http.client
import json
import os
import resource
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import websocket  # Debian python3-websocket (websocket-client)
except ImportError:  # pragma: no cover - reported clearly by the runner
    websocket = None

HOST = "127.0.0.1"
SOURCE_DIR = os.environ.get(
    "CHORUS_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def _default_bin(name):
    for d in ("build", "build-it", "build-release"):
        p = os.path.join(SOURCE_DIR, d, name)
        if os.path.exists(p):
            return p
    return os.path.join(SOURCE_DIR, "build", name)


CHORUSD = os.environ.get("CHORUSD") or _default_bin("chorusd")
CHORUSCTL = os.environ.get("CHORUSCTL") or _default_bin("chorusctl")
CHORUS_BENCH = os.environ.get("CHORUS_BENCH") or _default_bin("chorus-bench")

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:",
                      "LeakSanitizer", "ERROR: ThreadSanitizer",
                      "WARNING: ThreadSanitizer")

KEEP_TMP = os.environ.get("CHORUS_IT_KEEP_TMP") == "1"


class TestFailure(AssertionError):
    pass


class TestTimeout(Exception):
    pass


def check(cond, msg):
    """assert that survives python -O and carries a message."""
    if not cond:
        raise TestFailure(msg)


def eq(got, expected, what):
    if got != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, got))


# ---------------------------------------------------------------- processes

def _pdeathsig():
    """preexec_fn: the child gets SIGKILL if the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port():
    """A port that was free a moment ago (bind 127.0.0.1:0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def base_env(extra=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "lsan.supp"))
    # Flags are passed explicitly; stray CHORUS_* settings of the caller's
    # shell must not change what a test starts.
    for k in list(env):
        if k.startswith("CHORUS_") and k not in ("CHORUS_SOURCE_DIR",):
            del env[k]
    if extra:
        env.update(extra)
    return env


def sanitizer_lines(text):
    return [l for l in text.splitlines()
            if any(p in l for p in SANITIZER_PATTERNS)]


def sanitizer_check(text, who):
    bad = sanitizer_lines(text)
    if bad:
        # include the report itself (bounded) in the failure
        idx = text.find(bad[0])
        raise TestFailure("%s: sanitizer report in stderr:\n%s" %
                          (who, text[max(0, idx - 200): idx + 6000]))


_tmp_dirs = []


def make_tmp(prefix="chorus-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmp_dirs.append(d)
    return d


_all_nodes = []


class Node:
    """One chorusd process; survives restarts with the same data dir/ports.

    extra_args: appended to the command line. flags=False leaves out the
    default --id/--raft/--http/--data flags (for env-var tests; then pass
    them yourself through extra_args/env)."""

    def __init__(self, extra_args=(), env=None, node_id=1, data_dir=None,
                 http_port=None, raft_port=None, flags=True, name=None,
                 nofile=None):
        self.node_id = node_id
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE for the process
        self.tmp = make_tmp("chorus-node%d-" % node_id)
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.http_port = http_port or free_port()
        self.raft_port = raft_port or free_port()
        self.extra_args = list(extra_args)
        self.env_extra = dict(env or {})
        self.flags = flags
        self.name = name or "node%d" % node_id
        self.log_path = os.path.join(self.tmp, "chorusd.log")
        self.proc = None
        self.run_no = 0
        self._log_offset = 0
        self.exit_codes = []
        self.shared = False
        self._reaped_run = None
        _all_nodes.append(self)

    # -- command line
    def argv(self):
        a = [CHORUSD]
        if self.flags:
            a += ["--id", str(self.node_id),
                  "--raft", "%s:%d" % (HOST, self.raft_port),
                  "--http", "%s:%d" % (HOST, self.http_port),
                  "--data", self.data_dir]
        return a + self.extra_args

    @property
    def http_addr(self):
        return "%s:%d" % (HOST, self.http_port)

    @property
    def raft_addr(self):
        return "%s:%d" % (HOST, self.raft_port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True, timeout=30):
        check(not self.alive(), "%s already running" % self.name)
        check(os.path.exists(CHORUSD), "chorusd binary not found: %s" % CHORUSD)
        self.run_no += 1
        with open(self.log_path, "ab") as f:
            f.write(("==== %s run %d: %s\n" % (self.name, self.run_no,
                                             " ".join(self.argv()))).encode())
            self._log_offset = f.tell()
        logf = open(self.log_path, "ab")
        nofile = self.nofile

        def preexec():
            _pdeathsig()
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        try:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, env=base_env(self.env_extra),
                preexec_fn=preexec, cwd=self.tmp)
        finally:
            logf.close()
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30):
        """Poll GET /admin/healthcheck until 200 (bounded)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(
                    "%s exited with %s before becoming healthy; log:\n%s" %
                    (self.name, self.proc.returncode, self.log_tail(5)))
            try:
                r = http_request(self.http_port, "GET", "/admin/healthcheck",
                                 timeout=2)
                if r.status == 200:
                    return
                last = "HTTP %d %r" % (r.status, r.body[:200])
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        raise TestFailure("%s not healthy within %ds (last: %s); log:\n%s" %
                          (self.name, timeout, last, self.log_tail(5)))

    def run_log(self):
        """stderr of the current/last run."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def full_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=80):
        lines = self.full_log().splitlines()
        return "\n".join(lines[-n:])

    def _reaped(self, rc):
        self.exit_codes.append(rc)
        sanitizer_check(self.run_log(), "%s (run %d)" % (self.name, self.run_no))
        return rc

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=30):
        """Wait for the process to exit; SIGKILL (by PID) after timeout.
        Returns (rc, timed_out)."""
        try:
            return self.proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=30), True

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """SIGTERM (by PID), wait bounded, then SIGKILL. Checks the log for
        sanitizer reports. Returns the exit code. Raises if the node had
        already died on its own or had to be killed."""
        if self.proc is None:
            return None
        if self._reaped_run == self.run_no:
            return self.proc.returncode
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self._reaped_run = self.run_no
            self._reaped(rc)
            raise TestFailure("%s had already exited (rc=%s) before stop; "
                              "log:\n%s" % (self.name, rc, self.log_tail(5)))
        os.kill(self.proc.pid, sig)
        rc, timed_out = self.wait_exit(timeout)
        self._reaped_run = self.run_no
        self._reaped(rc)
        check(not timed_out, "%s did not exit within %ds of signal %d "
              "(killed)" % (self.name, timeout, sig))
        return rc

    def wait_for_exit(self, timeout=30):
        """For a node expected to exit on its own (bad flags, port in use):
        wait bounded, check its log, return the exit code. Raises if it is
        still running after `timeout` (it is then killed)."""
        rc, timed_out = self.wait_exit(timeout)
        self._reaped_run = self.run_no
        self._reaped(rc)
        check(not timed_out, "%s still running %ds after start (killed); "
              "log:\n%s" % (self.name, timeout, self.log_tail()))
        return rc

    def kill9(self):
        """SIGKILL by PID (the crash under test). Raises if the node had
        already died on its own."""
        if self.proc is None or self._reaped_run == self.run_no:
            return
        died = self.proc.poll() is not None
        if not died:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reaped_run = self.run_no
        self._reaped(self.proc.returncode)
        check(not died, "%s had already exited (rc=%s) before kill -9"
              % (self.name, self.proc.returncode))

    def restart(self, wait=True, timeout=30):
        if self.alive():
            self.stop()
        return self.start(wait=wait, timeout=timeout)

    def cleanup(self):
        """Best-effort stop used by the runner/atexit; returns error text."""
        if self.proc is None:
            return None
        if self._reaped_run == self.run_no:
            return None
        try:
            rc = self.stop()
            if rc != 0:
                return "%s exited %s on SIGTERM" % (self.name, rc)
        except Exception as e:  # noqa
            return str(e)
        return None

    # -- conveniences
    def ws(self, user=None, timeout=10):
        return WS(self.http_port, user=user, timeout=timeout)

    def http(self, method, path, body=None, headers=None, timeout=15):
        return http_request(self.http_port, method, path, body, headers,
                            timeout)

    def get_json(self, path, expect=200):
        r = self.http("GET", path)
        eq(r.status, expect, "GET %s status (body %r)" % (path, r.body[:300]))
        return r.json()

    def proc_status(self):
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
        return out

    def rss_kb(self, field="VmRSS"):
        v = self.proc_status().get(field, "0 kB")
        return int(v.split()[0])


def _cleanup_all():
    for n in _all_nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                os.kill(n.proc.pid, signal.SIGKILL)
                n.proc.wait(timeout=10)
            except Exception:
                pass
    if not KEEP_TMP:
        for d in _tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_all)


def run_cmd(argv, timeout=60, env=None, input=None):
    """Run a short-lived command (chorusctl, chorusd --help). Bounded."""
    return subprocess.run(argv, capture_output=True, timeout=timeout,
                          env=base_env(env), input=input,
                          preexec_fn=_pdeathsig)


# --------------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as e:
            raise TestFailure("response is not JSON (%s): %r" % (e, self.body[:500]))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def http_request(port, method, path, body=None, headers=None, timeout=15):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


# ---------------------------------------------------------------- WebSocket

class Frame:
    """One server frame, parsed.

    kind: 'status' (#...), 'error' (!...), 'message' (<path>,...), 'close'.
    status/error: type ('send', 'error-send', ...), text, json (or None).
    message: path, seq, user, app, msgid, time, header (str), header_json,
             body (bytes); binary tells the frame opcode."""

    def __init__(self, data, binary, close_code=None):
        self.raw = data
        self.binary = binary
        self.json = None
        self.type = None
        self.text = ""
        if close_code is not None or data is None:
            self.kind = "close"
            self.close_code = close_code
            return
        nl = data.find(b"\n")
        first = data if nl < 0 else data[:nl]
        rest = b"" if nl < 0 else data[nl + 1:]
        if first[:1] in (b"#", b"!"):
            self.kind = "status" if first[:1] == b"#" else "error"
            line = first[1:].decode("utf-8", "replace")
            self.type, _, self.text = line.partition(" ")
            if rest.strip():
                try:
                    self.json = json.loads(rest.decode("utf-8"))
                except Exception as e:
                    raise TestFailure("bad JSON line in status frame %r: %s"
                                      % (data[:300], e))
        elif first[:1] == b"/":
            self.kind = "message"
            # Only the first line is split by commas: the body may hold any
            # bytes, the header any JSON.
            fields = first.decode("utf-8").split(",")
            if len(fields) != 6:
                raise TestFailure("message first line has %d fields, not 6: %r"
                                  % (len(fields), first))
            self.path, seq, self.user, self.app, self.msgid, t = fields
            try:
                self.seq = int(seq)
                self.time = int(t)
            except ValueError:
                raise TestFailure("bad sequenceId/time in %r" % first)
            nl2 = rest.find(b"\n")
            if nl2 < 0:
                hdr, self.body = rest, b""
            else:
                hdr, self.body = rest[:nl2], rest[nl2 + 1:]
            self.header = hdr.decode("utf-8")
            self.header_json = {}
            if self.header.strip():
                try:
                    self.header_json = json.loads(self.header)
                except Exception:
                    raise TestFailure("message header line is not JSON: %r"
                                      % self.header)
        else:
            raise TestFailure("unrecognised server frame: %r" % data[:300])

    def is_status(self, typ=None, text=None):
        return self.kind == "status" and (typ is None or self.type == typ) \
            and (text is None or self.text == text)

    def is_error(self, typ=None):
        return self.kind == "error" and (typ is None or self.type == typ)

    def is_msg(self, path=None):
        return self.kind == "message" and (path is None or self.path == path)

    @property
    def body_text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        if self.kind == "message":
            return "<msg %s #%d user=%s app=%s id=%s hdr=%s body=%r%s>" % (
                self.path, self.seq, self.user, self.app, self.msgid,
                self.header, self.body[:60], " (binary)" if self.binary else "")
        if self.kind == "close":
            return "<close %s>" % self.close_code
        return "<%s%s %s%s>" % ("#" if self.kind == "status" else "!",
                                self.type, self.text,
                                (" " + json.dumps(self.json)) if self.json is not None else "")


class WS:
    """A WebSocket client connection to /stream[/user/<user>]."""

    def __init__(self, port, user=None, timeout=10, read_connected=True):
        check(websocket is not None,
              "python3-websocket (import websocket) is not installed")
        path = "/stream" if user is None else "/stream/user/%s" % user
        self.url = "ws://%s:%d%s" % (HOST, port, path)
        self.ws = websocket.create_connection(
            self.url, timeout=timeout, skip_utf8_validation=True)
        self.default_timeout = timeout
        self.connected = None
        if read_connected:
            self.connected = self.recv(timeout)
            check(self.connected.is_status("connected"),
                  "first frame is not #connected: %r" % self.connected)

    @property
    def app_id(self):
        return self.connected.json["ApplicationId"]

    def send(self, data):
        if isinstance(data, str):
            self.ws.send(data, opcode=websocket.ABNF.OPCODE_TEXT)
        else:
            self.ws.send(bytes(data), opcode=websocket.ABNF.OPCODE_BINARY)

    def recv(self, timeout=None):
        """Next frame (bounded). Raises TestFailure on timeout/close."""
        f = self.try_recv(timeout if timeout is not None else self.default_timeout)
        if f is None:
            raise TestFailure("no frame from server within %ss" %
                              (timeout if timeout is not None else self.default_timeout))
        return f

    def try_recv(self, timeout):
        """Next frame or None if nothing arrived within timeout."""
        self.ws.settimeout(max(0.001, timeout))
        try:
            opcode, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except socket.timeout:
            return None
        except websocket.WebSocketConnectionClosedException:
            return Frame(None, False, close_code=-1)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return Frame(None, False, close_code=code)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise TestFailure("text frame is not valid UTF-8: %r" % data[:200])
        return Frame(data, opcode == websocket.ABNF.OPCODE_BINARY)

    def recv_until(self, pred, timeout=30, what="condition"):
        """Frames up to and including the first one matching pred."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = deadline - time.monotonic()
            f = self.try_recv(left) if left > 0 else None
            if f is None:
                raise TestFailure("%s not seen within %ss; got %d frames, last: %r"
                                  % (what, timeout, len(got), got[-5:]))
            if f.kind == "close":
                raise TestFailure("connection closed (code %s) waiting for %s; "
                                  "got %r" % (f.close_code, what, got[-5:]))
            got.append(f)
            if pred(f):
                return got

    def drain(self, quiet=0.3, limit=10):
        """Frames arriving until none for `quiet` seconds (bounded)."""
        out = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            f = self.try_recv(quiet)
            if f is None:
                break
            out.append(f)
        return out

    def expect(self, pred, what, timeout=None):
        f = self.recv(timeout)
        check(pred(f), "expected %s, got %r" % (what, f))
        return f

    def expect_status(self, typ, text=None, timeout=None):
        return self.expect(lambda f: f.is_status(typ, text),
                           "#%s %s" % (typ, text or ""), timeout)

    def publish(self, path, body=b"", msgid=None, header="", timeout=30,
                binary=None):
        """Publish one message and return the answer frame (#send or !...)."""
        self.send(publish_frame(path, body, msgid, header, binary))
        return self.recv(timeout)

    def publish_ok(self, path, body=b"", msgid=None, header="", timeout=30):
        f = self.publish(path, body, msgid, header, timeout)
        check(f.is_status("send"), "publish to %s not acknowledged: %r" % (path, f))
        return f

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            try:
                self.ws.shutdown()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def publish_frame(path, body=b"", msgid=None, header="", binary=None):
    first = "> %s%s" % (path, "" if msgid is None else " " + msgid)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(header, dict):
        header = json.dumps(header)
    data = first.encode() + b"\n" + header.encode() + b"\n" + body
    if binary is None:
        try:
            data.decode("utf-8")
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    return data if binary else data.decode("utf-8")


def publish_many(ws, path, bodies, window=500, msgids=None, timeout=300,
                 on_ack=None):
    """Pipelined publishes with at most `window` unanswered. Returns the
    #send frames in publish order (asserting each is #send with the id)."""
    n = len(bodies)
    acks = []
    sent = 0
    deadline = time.monotonic() + timeout
    while len(acks) < n:
        while sent < n and sent - len(acks) < window:
            ws.send(publish_frame(path, bodies[sent],
                                  msgids[sent] if msgids else None))
            sent += 1
        left = deadline - time.monotonic()
        check(left > 0, "publish_many: only %d of %d acknowledged within %ds"
              % (len(acks), n, timeout))
        f = ws.recv(min(left, 60))
        i = len(acks)
        check(f.is_status("send"), "publish #%d to %s answered %r" % (i, path, f))
        if msgids:
            eq(f.text, msgids[i], "ack order: publisherMessageId of answer %d" % i)
        acks.append(f)
        if on_ack:
            on_ack(i, f)
    return acks


def read_replay(ws, path, timeout=60):
    """After sending a `+ path start[ max]`: read #fetch-start .. #fetch-done,
    returns (count_announced, [message frames])."""
    fs = ws.expect(lambda f: f.is_status("fetch-start"), "#fetch-start", timeout)
    parts = fs.text.split(" ")
    eq(len(parts), 2, "#fetch-start text fields (%r)" % fs.text)
    eq(parts[0], path, "#fetch-start path")
    n = int(parts[1])
    msgs = []
    deadline = time.monotonic() + timeout
    while True:
        f = ws.recv(max(0.1, deadline - time.monotonic()))
        if f.is_status("fetch-done"):
            eq(f.text, path, "#fetch-done path")
            break
        check(f.is_msg(path), "during replay of %s expected a message, got %r"
              % (path, f))
        msgs.append(f)
    eq(len(msgs), n, "messages between #fetch-start %s %d and #fetch-done" % (path, n))
    return n, msgs


def b64(b):
    return base64.b64encode(b).decode()


_topic_counter = [0]


def unique_topic(prefix="/t"):
    _topic_counter[0] += 1
    return "%s%d-%d" % (prefix, os.getpid() % 1000, _topic_counter[0])


# ------------------------------------------------------------------- runner

def timeout(seconds):
    """Decorator: hard timeout for one test (default 120 s)."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


class _Shared:
    nodes = {}


def shared_node(key="default", extra_args=(), env=None):
    """A node shared by several tests of one script (started lazily,
    replaced if it died; stopped and checked at the end)."""
    n = _Shared.nodes.get(key)
    if n is not None and n.alive():
        return n
    if n is not None:
        # it died: report it now, start a fresh one for the next tests
        _Shared.nodes.pop(key)
        try:
            n.stop()
        except TestFailure as e:
            print("shared node %s had died: %s" % (key, e))
    n = Node(extra_args=extra_args, env=env, name="shared-" + key)
    n.shared = True
    n.start()
    _Shared.nodes[key] = n
    return n


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its hard timeout")


def run_tests(namespace, title=None):
    """Run every test_* function of `namespace` (a module globals dict) in
    source order; print PASS/FAIL, tracebacks, node logs on failure, and the
    final 'N passed, M failed' line; exit non-zero on failure."""
    title = title or os.path.basename(sys.argv[0])
    only = sys.argv[1:]
    tests = [v for k, v in namespace.items()
             if k.startswith("test_") and callable(v)]
    tests.sort(key=lambda f: f.__code__.co_firstlineno)
    if only:
        tests = [t for t in tests if t.__name__ in only]
    passed = failed = 0
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    print("%s: %d tests, chorusd=%s" % (title, len(tests), CHORUSD), flush=True)
    for t in tests:
        n_before = len(_all_nodes)
        shared_before = {id(n) for n in _Shared.nodes.values() if n.alive()}
        t0 = time.monotonic()
        print("---- %s" % t.__name__, flush=True)
        err = None
        signal.alarm(getattr(t, "timeout", 120))
        try:
            t()
        except BaseException as e:  # noqa - keep going after failures
            if isinstance(e, KeyboardInterrupt):
                raise
            err = traceback.format_exc()
        finally:
            signal.alarm(0)
        # Stop nodes the test started (not shared ones), checking sanitizers.
        own = [n for n in _all_nodes[n_before:] if not n.shared]
        used = own + [n for n in _Shared.nodes.values()]
        for n in own:
            signal.alarm(90)
            try:
                msg = n.cleanup()
            except TestTimeout:
                msg = "timeout while stopping %s" % n.name
            finally:
                signal.alarm(0)
            if msg and err is None:
                err = "teardown: %s" % msg
        for n in list(_Shared.nodes.values()):
            if id(n) in shared_before or n in _all_nodes[n_before:]:
                if not n.alive():
                    died = "shared node %s died during the test (rc=%s)" % (
                        n.name, n.proc.returncode)
                    err = died if err is None else err + "\n" + died
                    try:
                        sanitizer_check(n.run_log(), n.name)
                    except TestFailure as e:
                        err += "\n" + str(e)[:3000]
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, dt), flush=True)
        else:
            failed += 1
            failures.append(t.__name__)
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, dt, err), flush=True)
            for n in used:
                print("------ log of %s (%s), last lines:\n%s\n------" %
                      (n.name, n.log_path, n.log_tail()), flush=True)
    # Shared nodes: must stop with exit 0 and a clean log.
    for key, n in list(_Shared.nodes.items()):
        signal.alarm(90)
        try:
            msg = n.cleanup()
        except TestTimeout:
            msg = "timeout while stopping"
        finally:
            signal.alarm(0)
        name = "shutdown_of_shared_node_%s" % key
        if msg:
            failed += 1
            failures.append(name)
            print("FAIL %s\n%s\n------ log of %s:\n%s" % (name, msg, n.name,
                                                       n.log_tail()), flush=True)
        else:
            passed += 1
            print("PASS %s" % name, flush=True)
    if failures:
        print("failed: %s" % ", ".join(failures))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


# ------------------------------------------------------------------ cluster
#
# Helpers for the multi-node scripts (it_cluster, it_membership,
# it_failover). Nothing above this line depends on them.

_handed_out_ports = set()


def unique_free_port():
    """free_port(), but never the same port twice in this test process (a
    cluster allocates all its ports before any node binds them)."""
    for _ in range(200):
        p = free_port()
        if p not in _handed_out_ports:
            _handed_out_ports.add(p)
            return p
    raise TestFailure("could not find an unused free port")


def cluster_spec(nodes):
    """--cluster value for these nodes: ID=RAFT/HTTP,..."""
    return ",".join("%d=%s/%s" % (n.node_id, n.raft_addr, n.http_addr)
                    for n in nodes)


def cluster_info(node, timeout=2):
    """GET /admin/cluster as a dict, or None if the node does not answer
    (dead, not listening yet, non-200, not JSON)."""
    if not node.alive():
        return None
    try:
        r = http_request(node.http_port, "GET", "/admin/cluster",
                         timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    if r.status != 200:
        return None
    try:
        return json.loads(r.body.decode("utf-8"))
    except ValueError:
        return None


def member_view(info):
    """The members of a /admin/cluster answer as a sorted, comparable list
    of (id, raft, http, role)."""
    return sorted((m.get("id"), m.get("raft"), m.get("http"), m.get("role"))
                  for m in (info or {}).get("members") or [])


def healthcheck_status(node, timeout=2):
    """HTTP status of GET /admin/healthcheck, or None if no answer."""
    try:
        return http_request(node.http_port, "GET", "/admin/healthcheck",
                            timeout=timeout).status
    except (OSError, http.client.HTTPException):
        return None


def wait_until(fn, timeout, what, interval=0.1):
    """Poll fn() until it returns a truthy value (returned); bounded.
    Exceptions from fn count as 'not yet' and the last one is reported."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except (OSError, http.client.HTTPException, TestFailure) as e:
            last = e
        if time.monotonic() >= deadline:
            raise TestFailure("%s not reached within %ss (last: %r)"
                              % (what, timeout, last))
        time.sleep(interval)


class Cluster:
    """N chorusd processes bootstrapped together with --cluster on fresh
    data dirs and free ports (ids 1..N). Extra nodes can be added with
    join_node(). Nodes are plain Node objects: the runner stops the ones a
    test created, as for single-node tests.

    extra_args: flags for every node (e.g. --publish-timeout 2000)."""

    def __init__(self, n=3, extra_args=(), name="c", env=None):
        self.name = name
        self.extra_args = list(extra_args)
        self.env = env
        self.nodes = []
        for i in range(1, n + 1):
            self.nodes.append(Node(node_id=i, name="%s-node%d" % (name, i),
                                   http_port=unique_free_port(),
                                   raft_port=unique_free_port(), env=env))
        spec = cluster_spec(self.nodes)
        for nd in self.nodes:
            nd.extra_args = ["--cluster", spec] + self.extra_args

    # -- lookup
    def node(self, node_id):
        for nd in self.nodes:
            if nd.node_id == node_id:
                return nd
        raise TestFailure("%s: no node with id %s" % (self.name, node_id))

    __getitem__ = node

    def live(self):
        return [nd for nd in self.nodes if nd.alive()]

    def ids(self):
        return [nd.node_id for nd in self.nodes]

    # -- life cycle
    def start(self, timeout=60):
        """Start every node, then wait until all are healthy (a leader is
        known everywhere)."""
        for nd in self.nodes:
            nd.start(wait=False)
        for nd in self.nodes:
            nd.wait_healthy(timeout)
        return self

    def kill9(self, node_id):
        self.node(node_id).kill9()

    def restart(self, node_id, wait=True, timeout=60):
        """Start a node again on its data dir (after kill9/stop)."""
        nd = self.node(node_id)
        if nd.alive():
            nd.stop()
        return nd.start(wait=wait, timeout=timeout)

    def join_node(self, node_id, join_addr=None, extra_args=None,
                  start=True):
        """A new node started with `--join [join_addr]` on an empty data dir
        (not waited for: it is not healthy until added). extra_args default
        to the cluster's. It becomes part of self.nodes."""
        nd = Node(node_id=node_id, name="%s-node%d" % (self.name, node_id),
                  http_port=unique_free_port(), raft_port=unique_free_port(),
                  env=self.env)
        args = ["--join"] + ([join_addr] if join_addr else [])
        nd.extra_args = args + list(self.extra_args if extra_args is None
                                    else extra_args)
        self.nodes.append(nd)
        if start:
            nd.start(wait=False)
        return nd

    def forget(self, node_id):
        """Drop a node from self.nodes (e.g. after it left and exited)."""
        nd = self.node(node_id)
        self.nodes.remove(nd)
        return nd

    # -- views
    def infos(self, nodes=None, timeout=2):
        """{node_id: /admin/cluster dict or None} for the given/live nodes."""
        return {nd.node_id: cluster_info(nd, timeout)
                for nd in (nodes if nodes is not None else self.live())}

    def agreed_leader(self, nodes=None, exclude=(), timeout=2):
        """The leader id if every given (default: live) node answers
        /admin/cluster naming the same leader, that leader is among the
        answering nodes and calls itself "leader"; else None."""
        infos = self.infos(nodes, timeout)
        if not infos or any(i is None for i in infos.values()):
            return None
        leaders = {i.get("leader") for i in infos.values()}
        if len(leaders) != 1:
            return None
        lid = leaders.pop()
        if lid is None or lid in exclude:
            return None
        li = infos.get(lid)
        if li is None or li.get("state") != "leader":
            return None
        return lid

    def wait_leader(self, timeout=30, nodes=None, exclude=(), interval=0.1):
        """Wait until the given (default: live) nodes agree on a leader that
        is one of them; return its Node."""
        lid = wait_until(lambda: self.agreed_leader(nodes, exclude),
                         timeout, "%s: agreed leader" % self.name, interval)
        return self.node(lid)

    def followers(self, leader=None):
        leader = leader or self.wait_leader()
        return [nd for nd in self.live() if nd is not leader]

    def wait_members(self, expected_ids, timeout=60, nodes=None):
        """Wait until every given (default: live) node reports exactly the
        members `expected_ids`, all with identical member lists and the same
        leader. Returns {node_id: info}."""
        expected = sorted(expected_ids)
        seen = {}

        def ok():
            infos = self.infos(nodes)
            seen["last"] = {nid: (i and (member_view(i), i.get("leader")))
                            for nid, i in infos.items()}
            if not infos or any(i is None for i in infos.values()):
                return None
            views = {nid: member_view(i) for nid, i in infos.items()}
            if any([m[0] for m in v] != expected for v in views.values()):
                return None
            if len({tuple(v) for v in views.values()}) != 1:
                return None
            if len({i.get("leader") for i in infos.values()}) != 1:
                return None
            return infos
        try:
            return wait_until(ok, timeout, "%s: members %r agreed on all nodes"
                              % (self.name, expected))
        except TestFailure as e:
            raise TestFailure("%s; last (members, leader) per node: %r"
                              % (e, seen.get("last")))

    def wait_topic(self, path, last_seq, timeout=60, nodes=None):
        """Wait until every given (default: live) node has applied `path` up
        to last_seq (GET /admin/topics<path>)."""
        def ok():
            for nd in (nodes if nodes is not None else self.live()):
                r = nd.http("GET", "/admin/topics" + path, timeout=5)
                if r.status != 200:
                    return False
                if r.json().get("lastSequenceId") != last_seq:
                    return False
            return True
        wait_until(ok, timeout, "%s: %s applied up to %d on all nodes"
                   % (self.name, path, last_seq), interval=0.2)


def history(node, path, timeout=120, start=0, user="reader"):
    """`+ path start` on a fresh connection: the replayed message frames
    (the live part that follows is ignored)."""
    with node.ws(user, timeout=timeout) as w:
        w.send("+ %s %d" % (path, start))
        _, msgs = read_replay(w, path, timeout=timeout)
        w.send("- %s" % path)
    return msgs


def msg_key(m):
    """Everything a replica must agree on for one message frame."""
    return (m.path, m.seq, m.user, m.app, m.msgid, m.time, m.header, m.body)


def history_digest(msgs):
    """(count, sequenceIds, sha256 over msg_key of every message)."""
    import hashlib
    h = hashlib.sha256()
    for m in msgs:
        h.update(repr(msg_key(m)).encode())
    return len(msgs), [m.seq for m in msgs], h.hexdigest()


class Ctl:
    """Result of one chorusctl run."""

    def __init__(self, p, argv):
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")
        self.argv = argv
        sanitizer_check(self.err, " ".join(argv))

    def err_lines(self):
        return [l for l in self.err.splitlines() if l.strip()]

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise TestFailure("%s: stdout is not JSON (%s): %r"
                              % (" ".join(self.argv[1:]), e, self.out[:500]))

    def __repr__(self):
        return "rc=%s stdout=%r stderr=%r" % (self.rc, self.out[:800],
                                             self.err[:800])


def chorusctl(server, *args, as_json=False, timeout=120):
    """Run `chorusctl -s server [--json] args...` (bounded)."""
    argv = [CHORUSCTL, "-s", server]
    if as_json:
        argv.append("--json")
    argv += [str(a) for a in args]
    return Ctl(run_cmd(argv, timeout=timeout), argv)


_shared_cluster_no = [0]


def shared_cluster(key="cluster", n=3, extra_args=()):
    """A Cluster shared by the tests of one script: started lazily, its nodes
    registered as shared nodes (so the runner reports them if they die and
    stops and checks them at the end). Replaced by a fresh cluster if one of
    its nodes died."""
    c = getattr(_Shared, "clusters", {}).get(key)
    if c is not None and all(nd.alive() for nd in c.nodes):
        return c
    _shared_cluster_no[0] += 1
    c = Cluster(n, extra_args=extra_args,
                name="%s%d" % (key, _shared_cluster_no[0]))
    for nd in c.nodes:
        nd.shared = True
        _Shared.nodes[nd.name] = nd
    if not hasattr(_Shared, "clusters"):
        _Shared.clusters = {}
    _Shared.clusters[key] = c
    c.start()
    return c
