#!/usr/bin/env python3
"""it_run: what `make run` does — deploy/local-cluster.sh run in the
foreground (node healthy, publish and read back, Ctrl-C stops it cleanly),
and start|status|stop.

Ports come from free_port() (CHORUS_HTTP_BASE/CHORUS_RAFT_BASE are the port
before the first node's), data goes to a fresh temp dir."""

import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import (CHORUSD, SOURCE_DIR, base_env, check, eq,  # noqa
                            free_port, http_request, make_tmp, run_tests,
                            sanitizer_check, timeout)

SCRIPT = os.path.join(SOURCE_DIR, "deploy", "local-cluster.sh")
BUILD_DIR = os.path.dirname(CHORUSD)


def free_run(n):
    """Base port B with B+1..B+n free a moment ago."""
    for _ in range(50):
        base = free_port() - 1
        if all(port_free(base + i) for i in range(1, n + 1)):
            return base
    raise AssertionError("no %d consecutive free ports" % n)


def port_free(port):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def script_env(data, nodes=1):
    http_base = free_run(nodes)
    raft_base = free_run(nodes)
    env = base_env({
        "CHORUS_LOCAL_DATA": data,
        "CHORUS_HTTP_BASE": str(http_base),
        "CHORUS_RAFT_BASE": str(raft_base),
        "CHORUS_NODES": str(nodes),
    })
    return env, http_base + 1


def node_pid(data, i=1):
    with open(os.path.join(data, "node%d.pid" % i)) as f:
        return int(f.read().strip())


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_dead(pid, secs=15):
    deadline = time.time() + secs
    while time.time() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def wait_healthy(port, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if http_request(port, "GET", "/admin/healthcheck",
                            timeout=2).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Output:
    """Collects a process's stdout on a thread, so the test can wait for a
    line without blocking and show what was printed when something hangs."""

    def __init__(self, proc):
        self.proc = proc
        self.data = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
            with self.lock:
                self.data += chunk

    def text(self):
        with self.lock:
            return self.data

    def wait_for(self, needle, secs=30):
        deadline = time.time() + secs
        while time.time() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.1)
        return False

    def finish(self, secs):
        """Waits for exit and EOF; on a hang says what was printed and
        which processes are left."""
        try:
            self.proc.wait(secs)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(["ps", "-o", "pid,ppid,stat,args", "-e"],
                                  capture_output=True, text=True).stdout
            raise AssertionError("`run` did not exit in %ds; it printed:\n%s"
                                 "\nprocesses:\n%s"
                                 % (secs, self.text()[-2000:].decode(
                                     errors="replace"), tree))
        self.thread.join(secs)
        check(not self.thread.is_alive(),
              "`run` exited but its output stays open (a child holds it): %r"
              % self.text()[-500:])
        return self.text()


def log_of(data, i=1):
    with open(os.path.join(data, "node%d.log" % i), errors="replace") as f:
        return f.read()


@timeout(120)
def test_run_foreground_then_ctrl_c():
    data = make_tmp("chorus-run-")
    env, port = script_env(data)
    proc = subprocess.Popen([SCRIPT, "run", BUILD_DIR], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Output(proc)
    try:
        check(wait_healthy(port), "node of `run` never became healthy")
        pid = node_pid(data)
        r = http_request(port, "POST", "/api/message/run/demo?userId=u",
                         body=b"hello")
        eq(r.status, 200, "publish status")
        r = http_request(port, "GET", "/api/message/run/demo")
        eq([m["body"] for m in r.json()], ["hello"], "replayed bodies")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        printed = out.finish(30)
        eq(proc.returncode, 0, "run exit code after Ctrl-C")
        check(wait_dead(pid), "node still alive after Ctrl-C")
        check(b"node 1 stopped" in printed, "run did not report the stop: %r"
              % printed[-500:])
        check("stopped id=1" in log_of(data), "node did not shut down cleanly")
        sanitizer_check(log_of(data), "node of local-cluster.sh run")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        subprocess.run([SCRIPT, "stop", BUILD_DIR], env=env, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@timeout(180)
def test_run_three_nodes_by_default():
    """`make run` starts three nodes: one leader, all agree, a publish on
    one node is read on the others; Ctrl-C stops all three."""
    data = make_tmp("chorus-run3-")
    env, port = script_env(data, 3)
    del env["CHORUS_NODES"]  # the default
    proc = subprocess.Popen([SCRIPT, "run", BUILD_DIR], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Output(proc)
    try:
        for i in range(3):
            check(wait_healthy(port + i), "node %d never became healthy" % (i + 1))
        pids = [node_pid(data, i) for i in (1, 2, 3)]
        views = [http_request(port + i, "GET", "/admin/cluster").json()
                 for i in range(3)]
        eq(len({v["leader"] for v in views}), 1, "one leader on every node")
        eq(sorted(m["id"] for m in views[0]["members"]), [1, 2, 3], "members")
        r = http_request(port + 1, "POST", "/api/message/run/three?userId=u",
                         body=b"from node 2")
        eq(r.status, 200, "publish on node 2")
        seq = r.json()["sequenceId"]
        deadline = time.time() + 20
        for i in (0, 2):
            while True:
                got = http_request(port + i, "GET", "/api/message/run/three").json()
                if got or time.time() > deadline:
                    break
                time.sleep(0.1)
            eq([(m["sequenceId"], m["body"]) for m in got],
               [(seq, "from node 2")], "history on node %d" % (i + 1))
        check(out.wait_for(b"following logs"),
              "`run` never said it follows the logs: %r" % out.text()[-500:])
        proc.send_signal(signal.SIGINT)
        printed = out.finish(60)
        eq(proc.returncode, 0, "run exit code after Ctrl-C")
        for i in (1, 2, 3):
            check(b"node %d stopped" % i in printed,
                  "`run` did not report node %d stopped: %r"
                  % (i, printed[-500:]))
        for pid in pids:
            check(wait_dead(pid), "node %d alive after Ctrl-C" % pid)
        for i in (1, 2, 3):
            sanitizer_check(log_of(data, i), "node %d of run" % i)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        subprocess.run([SCRIPT, "stop", BUILD_DIR], env=env, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@timeout(120)
def test_start_status_stop():
    data = make_tmp("chorus-run-")
    env, port = script_env(data)
    try:
        r = subprocess.run([SCRIPT, "start", BUILD_DIR], env=env, timeout=60,
                           capture_output=True, text=True)
        eq(r.returncode, 0, "start exit code (%s)" % r.stderr)
        pid = node_pid(data)
        r = subprocess.run([SCRIPT, "status", BUILD_DIR], env=env,
                           timeout=30, capture_output=True, text=True)
        eq(r.returncode, 0, "status exit code")
        check("healthy" in r.stdout, "status output: %r" % r.stdout)
        r = subprocess.run([SCRIPT, "stop", BUILD_DIR], env=env, timeout=60,
                           capture_output=True, text=True)
        eq(r.returncode, 0, "stop exit code")
        check(wait_dead(pid), "node alive after stop")
        r = subprocess.run([SCRIPT, "status", BUILD_DIR], env=env,
                           timeout=30, capture_output=True, text=True)
        check(r.returncode != 0 and "stopped" in r.stdout,
              "status after stop: rc=%d %r" % (r.returncode, r.stdout))
        sanitizer_check(log_of(data), "node of local-cluster.sh start")
    finally:
        subprocess.run([SCRIPT, "stop", BUILD_DIR], env=env, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    run_tests(globals())
