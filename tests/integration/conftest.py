"""pytest fixtures: start the real xmppd binary on free loopback ports.

Managed mode (default): each test gets a fresh xmppd with its own temp data
dir and config, accounts created through the `adduser` CLI, stderr captured
to a file (attached to the report of a failing test), SIGTERM at teardown
(SIGKILL after patience(), which fails the test), and a check that the process was
still alive and did not report sanitizer errors.

External mode (to validate the scenarios against a reference server):
  XMPPD_EXTERNAL=host:starttls_port:direct_tls_port
  XMPPD_EXTERNAL_DOMAIN=localhost          (default: localhost)
  XMPPD_EXTERNAL_USERS=alice:pw,bob:pw,carol:pw   (default: the DEFAULT_USERS below)
The accounts must exist already. Tests that need the CLI or xmppd internals
call server.require_managed() and are skipped in this mode.

Environment:
  XMPPD_BIN             binary to test (default: <repo>/xmppd)
  XMPPD_START_TIMEOUT   seconds to wait for the listening socket (default:
                        patience(), 30 s times XMPPD_TEST_SLOWDOWN)
  XMPPD_TEST_SLOWDOWN   factor for every deadline and the per-phase backstop
                        (default 1; make SANITIZE=1 check sets 3)
  XMPPD_KEEP_LOGS       set to keep temp dirs (pytest keeps the last 3 anyway)
"""

import os
import re
import signal
import subprocess
import sys

import pytest

# Keep the source tree clean: no __pycache__ for the test modules.
sys.dont_write_bytecode = True

from xmpp_helpers import SLOWDOWN, free_ports, patience, wait_port


_without = {}


def built_without(binary):
    """The feature switches (Makefile FEATURES) the binary was built without,
    from the first line of `xmppd -V`: "xmppd 0.1.0 (without MAM S2S)"."""
    if binary not in _without:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True,
                             timeout=patience(10)).stdout
        # First line: the version and what is left out; second: the TLS library.
        m = re.match(r"xmppd \S+(?: \(without ([A-Z0-9_ ]+)\))?\n", out)
        assert m, "unexpected xmppd -V output: %r" % out
        _without[binary] = set((m.group(1) or "").split())
    return _without[binary]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

DEFAULT_USERS = {
    "alice": "alice-Secret-1",
    "bob": "bob-Secret-2",
    "carol": "carol-Secret-3",
}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:")


def pytest_addoption(parser):
    parser.addini("xmppd_test_timeout",
                  "hard limit in seconds for each test phase (SIGALRM backstop)",
                  default="120")


class PhaseTimeout(BaseException):
    """Raised by the SIGALRM backstop during a test's call phase
    (BaseException so that asyncio and `except Exception` do not swallow it)."""


class FixtureTimeout(Exception):
    """Raised by the backstop during setup/teardown: a plain Exception there,
    because pytest's fixture bookkeeping does not survive a BaseException."""


def _with_alarm(item, exc):
    seconds = int(float(item.config.getini("xmppd_test_timeout") or 0) * SLOWDOWN)
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        return None

    def on_alarm(signum, frame):
        raise exc("test phase exceeded %d s (xmppd_test_timeout)" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    return old


def _clear_alarm(old):
    if old is not None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    old = _with_alarm(item, FixtureTimeout)
    try:
        yield
    finally:
        _clear_alarm(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = _with_alarm(item, PhaseTimeout)
    try:
        yield
    finally:
        _clear_alarm(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    old = _with_alarm(item, FixtureTimeout)
    try:
        yield
    finally:
        _clear_alarm(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's stderr to the report of a failing test. Under
    XMPPD_STRICT=1 (make check, CI) a skipped test counts as failed, so CI can
    never pass on a test that did not run (a missing client binary, say)."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("XMPPD_STRICT") == "1" and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = "skipped under XMPPD_STRICT=1: %s" % (rep.longrepr,)
    if rep.failed:
        srv = getattr(item, "_xmppd_server", None)
        if srv is not None and not srv.external:
            text = srv.log_text()
            if len(text) > 20000:
                text = "...(%d bytes cut)...\n" % (len(text) - 20000) + text[-20000:]
            rep.sections.append(("xmppd stderr (%s)" % srv.log_path, text))


class Server:
    """The server under test. Attributes: domain, host, c2s_port, c2s_tls_port,
    data_dir, conf_path, log_path, users ({local: password}), external,
    nofile (None, or an RLIMIT_NOFILE soft and hard limit for the next start()),
    env (None, or the environment of the next start())."""

    def __init__(self, tmp, binary=None, external=None):
        self.external = external is not None
        self.users = {}
        self.proc = None
        self._log = None
        self.tmp = tmp
        self.nofile = None
        self.env = None  # environment of the next start() (None: ours)
        if self.external:
            host, p1, p2 = external.rsplit(":", 2)
            self.host = host
            self.c2s_port = int(p1)
            self.c2s_tls_port = int(p2)
            self.domain = os.environ.get("XMPPD_EXTERNAL_DOMAIN", "localhost")
            spec = os.environ.get("XMPPD_EXTERNAL_USERS")
            if spec:
                for pair in spec.split(","):
                    u, pw = pair.split(":", 1)
                    self.users[u] = pw
            else:
                self.users.update(DEFAULT_USERS)
            self.binary = self.conf_path = self.log_path = self.data_dir = None
            return
        self.binary = binary
        self.host = "127.0.0.1"
        self.domain = "localhost"
        self.c2s_port, self.c2s_tls_port = free_ports(2, self.host)
        self.data_dir = os.path.join(tmp, "data")
        self.conf_path = os.path.join(tmp, "xmppd.conf")
        self.log_path = os.path.join(tmp, "xmppd.stderr")
        os.makedirs(self.data_dir, exist_ok=True)
        self.write_config()

    # -- configuration --------------------------------------------------------

    def write_config(self, extra=None):
        self.require_managed()  # tests that reconfigure skip in external mode
        lines = [
            "# written by tests/integration/conftest.py",
            "domain %s" % self.domain,
            "data_dir %s" % self.data_dir,
            "listen_address %s" % self.host,
            "c2s_port %d" % self.c2s_port,
            "c2s_tls_port %d" % self.c2s_tls_port,
            "log_level debug",
        ]
        if "require_tls" not in (extra or {}):
            lines.append("require_tls yes")
        # Federation: no s2s listener unless a test asks (5269 would clash
        # between servers started side by side).
        if "s2s_port" not in (extra or {}) and "S2S" not in built_without(self.binary):
            lines.append("s2s_port 0")
        # Federation DNS (dns.c): tests never ask the machine's resolver
        # (loopback only); test_83_s2s_dns.py points s2s_resolver at its own.
        if "s2s_resolver" not in (extra or {}) and "S2S" not in built_without(self.binary):
            lines.append("s2s_resolver none")
        # HTTP (issue 14): no web listeners unless a test asks (5280 and 5281
        # would clash between servers started side by side).
        if "HTTP" not in built_without(self.binary):
            for k in ("http_port", "https_port"):
                if k not in (extra or {}):
                    lines.append("%s 0" % k)
        # As root, allow_root yes unless the test sets allow_root itself; a
        # value of None leaves that key out altogether.
        if os.geteuid() == 0 and "allow_root" not in (extra or {}):
            lines.append("allow_root yes")
        for k, v in (extra or {}).items():
            if v is not None:
                lines.append("%s %s" % (k, v))
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def require_managed(self):
        if self.external:
            pytest.skip("needs an xmppd started by the fixture (XMPPD_EXTERNAL is set)")

    def jid(self, user, resource=None):
        j = "%s@%s" % (user, self.domain)
        return j + "/" + resource if resource else j

    def password(self, user):
        return self.users[user]

    # -- CLI ------------------------------------------------------------------

    def cli(self, *args, input=None, timeout=30):
        """Run `xmppd -c CONF args...`; returns CompletedProcess (text mode).
        stdin is a pipe (never a terminal), so passwords are read from it."""
        self.require_managed()
        return subprocess.run([self.binary, "-c", self.conf_path] + list(args),
                              input=input if input is not None else "",
                              capture_output=True, text=True, timeout=patience(timeout))

    def adduser(self, user, password):
        r = self.cli("adduser", self.jid(user), input=password + "\n")
        assert r.returncode == 0, "adduser %s failed (exit %d): %s%s" % (
            user, r.returncode, r.stdout, r.stderr)
        self.users[user] = password
        return self.jid(user)

    # -- process --------------------------------------------------------------

    def start(self, timeout=None):
        self.require_managed()
        if timeout is None:
            timeout = float(os.environ.get("XMPPD_START_TIMEOUT") or patience())
        self._log = open(self.log_path, "ab")
        self._log.write(b"==== start ====\n")
        self._log.flush()
        preexec = None
        if self.nofile is not None:
            import resource
            lim = (self.nofile, self.nofile)  # hard too: xmppd raises soft to hard

            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, lim)
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True,
                                     preexec_fn=preexec, env=self.env)
        ok = wait_port(self.host, self.c2s_port, timeout, self.proc) and \
            wait_port(self.host, self.c2s_tls_port, timeout, self.proc, tls_hostname=self.domain)
        if not ok:
            rc = self.proc.poll()
            self._kill()
            pytest.fail("xmppd did not start listening on %d/%d within %.0f s (exit code %s)\n"
                        "---- stderr ----\n%s" % (self.c2s_port, self.c2s_tls_port, timeout,
                                                  rc, self.log_text()), pytrace=False)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        """SIGTERM, wait up to patience(), SIGKILL. Returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        try:
            rc = self.proc.poll()
            if rc is not None:
                problems.append("xmppd was no longer running before teardown (exit code %d)" % rc)
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(patience())
                    if rc not in (0, -signal.SIGTERM):
                        problems.append("xmppd exited with code %d after SIGTERM" % rc)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                    problems.append("xmppd did not exit within %.0f s of SIGTERM (SIGKILLed)"
                                    % patience())
        finally:
            # Whatever interrupted us, never leave a server behind.
            self._kill()
            self.proc = None
            if self._log is not None:
                self._log.close()
                self._log = None
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append("sanitizer report in xmppd stderr (%s)" % m)
                break
        return problems

    def kill9(self):
        """Crash the server: SIGKILL (unless it is already dead, e.g. killed by
        the test from another thread) and reap it; start() brings it back.
        Returns the exit status (-9 when our SIGKILL ended it)."""
        self.require_managed()
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            rc = self.proc.wait(5)
        finally:
            self.proc = None
            if self._log is not None:
                self._log.write(b"==== SIGKILL ====\n")
                self._log.close()
                self._log = None
        return rc

    def restart(self):
        problems = self.stop()
        assert not problems, "; ".join(problems)
        self.start()

    @property
    def alive(self):
        return self.external or (self.proc is not None and self.proc.poll() is None)

    def log_text(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        if self._log is not None:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def _binary():
    b = os.environ.get("XMPPD_BIN") or os.path.join(REPO, "xmppd")
    return os.path.abspath(b)


@pytest.fixture
def server(request, tmp_path):
    ext = os.environ.get("XMPPD_EXTERNAL")
    if ext:
        srv = Server(str(tmp_path), external=ext)
        request.node._xmppd_server = srv
        yield srv
        return
    binary = _binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail("xmppd binary not found or not executable: %s (build it, or set XMPPD_BIN, "
                    "or XMPPD_EXTERNAL to test another server)" % binary, pytrace=False)
    srv = Server(str(tmp_path), binary=binary)
    request.node._xmppd_server = srv
    for u, pw in DEFAULT_USERS.items():
        srv.adduser(u, pw)
    srv.start()
    try:
        yield srv
    finally:
        problems = srv.stop()
        if problems:
            pytest.fail("server teardown: " + "; ".join(problems) +
                        "\n---- stderr ----\n" + srv.log_text()[-20000:], pytrace=False)


# Real-browser tests (issue 14, browser_helpers.py): its report hook records
# which phase of a test failed, so that the browser fixture saves artifacts.
pytest_plugins = ("browser_helpers",)
