#!/usr/bin/env python3
"""Tests of chorus-lusw, the lose-unsynced-writes file system
(tests/powerloss/README.md): each case mounts a fresh one on a temporary
directory, and always unmounts it. The last case runs a real chorusd on it
(CHORUSD): acknowledged publishes survive kill -9 plus a drop."""

import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

LUSW = os.environ.get("CHORUS_LUSW", "")
CHORUSD = os.environ.get("CHORUSD", "")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Mount:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="lusw-test-")
        self.back = os.path.join(self.top, "back")
        self.mnt = os.path.join(self.top, "mnt")
        os.mkdir(self.back)
        os.mkdir(self.mnt)
        self.err = open(os.path.join(self.top, "stderr"), "w+")
        self.proc = subprocess.Popen([LUSW, self.back, self.mnt],
                                     stderr=self.err)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mnt):
            check(self.proc.poll() is None, "chorus-lusw exited: rc %r"
                  % self.proc.returncode)
            check(time.monotonic() < deadline, "not mounted in 10 s")
            time.sleep(0.05)

    def p(self, name):
        return os.path.join(self.mnt, name)

    def ctl(self, cmd):
        with open(self.p(".lusw"), "w") as f:
            f.write(cmd + "\n")

    def status(self):
        with open(self.p(".lusw")) as f:
            return dict(kv.split("=") for kv in f.read().split())

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(line.split()[1] == self.mnt for line in f)

    def close(self):
        # A crashed file system leaves a mount that is not "ismount": look
        # in /proc/mounts, and detach lazily if a clean unmount fails.
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
        shutil.rmtree(self.top, ignore_errors=True)


def write(path, data, off=None, sync=False, flags=0):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
    try:
        if off is None:
            os.write(fd, data)
        else:
            os.pwrite(fd, data, off)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def case_sync_kept_unsynced_dropped(m):
    write(m.p("a"), b"synced", sync=True)
    write(m.p("a"), b" and not", off=6)
    check(read(m.p("a")) == b"synced and not", "read back before drop")
    m.ctl("drop")
    check(read(m.p("a")) == b"synced", "after drop: %r" % read(m.p("a")))


def case_overwrite_restored(m):
    data = bytes(range(256)) * 64  # 16 KiB, synced
    write(m.p("o"), data, sync=True)
    for off in (1, 4095, 4096, 9999):
        write(m.p("o"), b"\xff" * 7, off=off)
    fd = os.open(m.p("o"), os.O_RDWR)
    os.pwrite(fd, b"\x00" * 3, 100)
    os.fdatasync(fd)  # this one is synced: kept
    os.close(fd)
    write(m.p("o"), b"\xee" * 5, off=200)
    m.ctl("drop")
    want = bytearray(data)
    want[100:103] = b"\x00" * 3
    for off in (1, 4095, 4096, 9999):  # before the fdatasync: kept too
        want[off:off + 7] = b"\xff" * 7
    check(read(m.p("o")) == bytes(want), "overwrite after drop")


def case_truncate(m):
    write(m.p("t"), b"0123456789", sync=True)
    os.truncate(m.p("t"), 3)
    m.ctl("drop")
    check(read(m.p("t")) == b"0123456789", "shrink undone: %r"
          % read(m.p("t")))
    os.truncate(m.p("t"), 20)
    m.ctl("drop")
    check(read(m.p("t")) == b"0123456789", "grow undone")
    fd = os.open(m.p("t"), os.O_RDWR)
    os.ftruncate(fd, 4)
    os.fsync(fd)
    os.close(fd)
    m.ctl("drop")
    check(read(m.p("t")) == b"0123", "synced truncate kept")
    write(m.p("t"), b"new", flags=os.O_TRUNC)
    m.ctl("drop")
    check(read(m.p("t")) == b"0123", "O_TRUNC undone: %r" % read(m.p("t")))


def case_fallocate(m):
    write(m.p("f"), b"abc", sync=True)
    fd = os.open(m.p("f"), os.O_RDWR)
    os.posix_fallocate(fd, 0, 1 << 20)
    os.close(fd)
    check(os.path.getsize(m.p("f")) == 1 << 20, "fallocate grew the file")
    m.ctl("drop")
    check(read(m.p("f")) == b"abc", "fallocate undone")


def case_rename(m):
    write(m.p("r1"), b"synced", sync=True)
    os.rename(m.p("r1"), m.p("r2"))
    write(m.p("r2"), b"XXXXXX", off=0)
    m.ctl("drop")
    check(not os.path.exists(m.p("r1")), "old name back")
    check(read(m.p("r2")) == b"synced", "content follows the file")
    write(m.p("r3"), b"other", sync=True)
    write(m.p("r3"), b"OTHER", off=0)
    os.rename(m.p("r2"), m.p("r3"))  # replaces r3 (and its undo state)
    m.ctl("drop")
    check(read(m.p("r3")) == b"synced", "rename over a file: %r"
          % read(m.p("r3")))


def case_names_and_dir_fsync(m):
    os.mkdir(m.p("d"))
    write(m.p("d/new"), b"never synced")
    fd = os.open(m.p("d"), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)  # accepted
    os.close(fd)
    m.ctl("drop")
    check(os.path.exists(m.p("d/new")), "names survive")
    check(read(m.p("d/new")) == b"", "unsynced data of a new file lost")
    check(".lusw" not in os.listdir(m.mnt), "control file listed")


def case_o_dsync(m):
    write(m.p("ds"), b"dsync data", flags=os.O_DSYNC)
    m.ctl("drop")
    check(read(m.p("ds")) == b"dsync data", "O_DSYNC write lost")


def case_mmap(m):
    write(m.p("mm"), b"A" * 8192, sync=True)
    write(m.p("mm"), b"B" * 10, off=4096)
    m.ctl("drop")
    fd = os.open(m.p("mm"), os.O_RDONLY)
    mp = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ)
    got = mp[4090:4110]
    mp.close()
    os.close(fd)
    check(got == b"A" * 20, "mmap after drop sees %r" % got)


def case_sync_command_and_status(m):
    write(m.p("s"), b"one", sync=True)
    write(m.p("s"), b"two", off=3)
    st = m.status()
    check(int(st["files"]) >= 1 and int(st["drops"]) == 0, "status %r" % st)
    m.ctl("sync")
    check(int(m.status()["unsynced_bytes"]) == 0, "sync forgets undo")
    m.ctl("drop")
    check(read(m.p("s")) == b"onetwo", "sync command kept the writes")
    check(int(m.status()["drops"]) == 1, "drops counted")
    try:
        m.ctl("nonsense")
        raise Fail("a bad command was accepted")
    except OSError:
        pass


def case_open_fd_sees_drop(m):
    write(m.p("od"), b"durable", sync=True)
    fd = os.open(m.p("od"), os.O_RDWR)
    os.pwrite(fd, b"LOST", 0)
    m.ctl("drop")
    got = os.pread(fd, 7, 0)
    os.close(fd)
    check(got == b"durable", "an open descriptor reads %r" % got)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, method, path, body=None, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def case_chorusd_survives_power_loss(m):
    if not CHORUSD or not os.access(CHORUSD, os.X_OK):
        print("  (no CHORUSD: skipped)")
        return
    raft, port = free_port(), free_port()
    argv = [CHORUSD, "--id", "1", "--raft", "127.0.0.1:%d" % raft,
            "--http", "127.0.0.1:%d" % port, "--data", m.p("node"),
            "--snapshot-threshold", "64"]
    log = open(os.path.join(m.top, "node.log"), "ab")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")

    def start():
        p = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                if http(port, "GET", "/admin/healthcheck", timeout=2)[0] \
                        == 200:
                    return p
            except OSError:
                pass
            check(p.poll() is None, "chorusd exited rc %r" % p.returncode)
            check(time.monotonic() < deadline, "chorusd not healthy in 30 s")
            time.sleep(0.1)

    p = start()
    try:
        t0 = time.monotonic()
        for i in range(200):
            st, body = http(port, "POST", "/api/message/lusw/t?userId=u",
                            body=b"m%d" % i)
            check(st == 200, "publish %d: %d %r" % (i, st, body))
            check(json.loads(body)["sequenceId"] == i + 1, "seq of %d" % i)
        print("  200 publishes in %.2f s" % (time.monotonic() - t0))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        m.ctl("drop")
        p = start()
        st, body = http(port, "GET", "/api/message/lusw/t?from=1&limit=1000")
        check(st == 200, "history: %d" % st)
        got = [(x["sequenceId"], x["body"]) for x in json.loads(body)]
        check(got == [(i + 1, "m%d" % i) for i in range(200)],
              "history after power loss: %d messages, first %r"
              % (len(got), got[:3]))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        log.close()


CASES = [case_sync_kept_unsynced_dropped, case_overwrite_restored,
         case_truncate, case_fallocate, case_rename, case_names_and_dir_fsync,
         case_o_dsync, case_mmap, case_sync_command_and_status,
         case_open_fd_sees_drop, case_chorusd_survives_power_loss]


def main():
    if not LUSW or not os.access(LUSW, os.X_OK):
        print("CHORUS_LUSW is not an executable: %r" % LUSW)
        return 1
    failed = 0
    for case in CASES:
        m = Mount()
        try:
            case(m)
            print("PASS %s" % case.__name__)
        except Exception as e:  # noqa: BLE001 - report every case
            failed += 1
            m.err.seek(0)
            print("FAIL %s: %s\n%s" % (case.__name__, e, m.err.read()[-2000:]))
        finally:
            m.close()
    print("%d passed, %d failed" % (len(CASES) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
