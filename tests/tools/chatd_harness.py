"""Shared helpers of the chatd tests (tests/tools/chatd_*.sh): imported by
the Python each of them runs, never a test by itself.

chatd is found at $AC_BUILD_DIR/tools/chatd/chatd (CTest sets AC_BUILD_DIR;
by hand it defaults to build/).  Every server is started on port 0 and read
its port from its startup line; it is stopped by the PID we got when we
started it, and it dies with us if we are killed (PR_SET_PDEATHSIG).  Every
wait is bounded.  A check that does not hold raises Fail, which prints the
server's log and exits 1.
"""
import ctypes
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

SOURCE = os.environ.get("AC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AC_BUILD_DIR") or os.path.join(SOURCE, "build")
CHATD = os.path.join(BUILD, "tools", "chatd", "chatd")
WELCOME = "* welcome to chatd; pick a name with /nick NAME"

_servers = []


class Fail(Exception):
    pass


def ok(msg):
    print("ok -", msg, flush=True)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def asan_build():
    """True when chatd was built with AddressSanitizer (it then holds freed
    memory in a quarantine, which would read as growth)."""
    with open(CHATD, "rb") as f:
        return b"libasan" in f.read()


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Chatd:
    """One chatd process, started with -p 0 and the given options."""

    def __init__(self, *args, listen=None, env=None):
        check(os.access(CHATD, os.X_OK), f"{CHATD} was not built")
        self.log_file = tempfile.NamedTemporaryFile(prefix="chatd-", suffix=".log")
        argv = [CHATD, "-p", "0", *(["-l", listen] if listen else []), *args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log_file, env=env, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        _servers.append(self)
        line = self.wait_log(r"listening on (\S+) port (\d+)")
        self.host, self.port = line.group(1), int(line.group(2))

    def log(self):
        with open(self.log_file.name, errors="replace") as f:
            return f.read()

    def wait_log(self, regex, timeout=10):
        """The first match of regex in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.log())
            if m:
                return m
            check(self.proc.poll() is None, f"chatd exited ({self.proc.returncode}) "
                  f"before logging /{regex}/")
            check(time.monotonic() < deadline, f"no /{regex}/ in chatd's log in {timeout} s")
            time.sleep(0.02)

    def status(self, field):
        """A field of /proc/PID/status in kB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig, wait for the exit; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail(f"chatd did not exit within {timeout} s of {sig.name}")

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def check_clean(self):
        """No sanitizer report in the log (the ASan build of the tree)."""
        log = self.log()
        check(not re.search(r"Sanitizer|runtime error:", log), "sanitizer report:\n" + log)


class Client:
    """A line client.  Lines are str (UTF-8; undecodable bytes survive as
    surrogates), compared exactly, without their "\\n"."""

    def __init__(self, server, name=None, rcvbuf=None, timeout=5):
        self.sock = socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((server.host, server.port))
        self.buf = b""
        self.eof = False
        self.name = name
        if name is not None:
            self.expect(WELCOME)
            self.send(f"/nick {name}")
            self.expect(f"* {name} has joined")

    def send(self, line, end=b"\n"):
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        self.sock.sendall(data + end)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def line(self, timeout=5):
        """The next line; Fail on EOF or when none comes within timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            check(not self.eof, f"{self.name}: connection closed, no line came")
            left = deadline - time.monotonic()
            check(left > 0, f"{self.name}: no line within {timeout} s (have {self.buf[:80]!r})")
            try:
                self._fill(left)
            except socket.timeout:
                pass
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.decode("utf-8", "surrogateescape")

    def expect(self, *lines, timeout=5):
        for want in lines:
            got = self.line(timeout)
            check(got == want, f"{self.name}: expected {want!r}, got {got!r}")

    def expect_silence(self, secs=0.3):
        """Nothing more arrives within secs."""
        deadline = time.monotonic() + secs
        while b"\n" not in self.buf and not self.eof and time.monotonic() < deadline:
            try:
                self._fill(max(deadline - time.monotonic(), 0.001))
            except socket.timeout:
                pass
        check(not self.buf and not self.eof, f"{self.name}: unexpected {self.buf[:80]!r}"
              + (" and EOF" if self.eof else ""))

    def expect_closed(self, timeout=5, partial=False):
        """Read to EOF (or a reset); returns the lines that came first.  A
        last line without its end is an error unless partial (then it is
        dropped)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            check(left > 0, f"{self.name}: not closed within {timeout} s")
            try:
                self._fill(left)
            except socket.timeout:
                pass
        lines = self.buf.split(b"\n")
        check(partial or lines[-1] == b"", f"{self.name}: a partial line before EOF: {lines[-1]!r}")
        self.buf = b""
        return [x.decode("utf-8", "surrogateescape") for x in lines[:-1]]

    def close(self):
        self.sock.close()


def pump(clients, done, timeout, on_line=None):
    """Read every client at once until done() is true.  Each line goes to
    on_line(client, line) (default: client.lines.append)."""
    sel = selectors.DefaultSelector()
    for c in clients:
        c.sock.setblocking(False)
        c.lines = getattr(c, "lines", [])
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    try:
        while not done():
            left = deadline - time.monotonic()
            check(left > 0, f"not done within {timeout} s")
            for key, _ in sel.select(min(left, 0.5)):
                c = key.data
                try:
                    data = c.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    c.eof = True
                    sel.unregister(c.sock)
                    continue
                c.buf += data
                *lines, c.buf = c.buf.split(b"\n")
                for raw in lines:
                    text = raw.decode("utf-8", "surrogateescape")
                    (on_line or (lambda cl, t: cl.lines.append(t)))(c, text)
    finally:
        sel.close()
        for c in clients:
            c.sock.setblocking(True)


def run(test):
    """Run test(), then make sure no server is left; exit 0 or 1."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("killed (timeout?)"))
    status = 0
    try:
        test()
    except (Fail, OSError) as e:  # OSError: a client was dropped or reset
        print(f"FAIL: {e!r}" if isinstance(e, OSError) else f"FAIL: {e}", file=sys.stderr)
        for s in _servers:
            print(f"---- chatd (pid {s.pid}) log, last 40 lines", file=sys.stderr)
            print("\n".join(s.log().splitlines()[-40:]), file=sys.stderr)
        status = 1
    finally:
        for s in _servers:
            s.kill()
    sys.exit(status)
