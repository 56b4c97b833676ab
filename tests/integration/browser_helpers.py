"""Real-browser tests (issue 14): headless Chromium driven by python3-selenium
(Debian's chromium and chromium-driver), Converse.js from npm served with a
page of ours by a small HTTP server on a free loopback port, and artifacts
(screenshots, page source, the browser's console log) for the record.

Fixtures (this module is a pytest plugin: conftest.py names it in
pytest_plugins, so its report hook sees every test):
  converse_dist   session: `npm install converse.js@CONVERSE_VERSION` into a
                  temp dir, once per test session (per xdist worker); the
                  path of its dist/ directory
  chrome          module: one headless Chromium (a temp profile) per test module
  browser         function: that Chromium; when the test fails, its
                  screenshot, page source and console log are saved into the
                  artifacts directory

Artifacts go to XMPPD_TEST_ARTIFACTS (default tests/integration/artifacts/,
gitignored), one sub-directory per test module.

A missing Chromium, chromedriver, selenium or npm FAILS the tests that need
them, with the package names to install: CI must never pass on a test that
did not run.
"""
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from xmpp_helpers import free_ports, patience

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.abspath(os.environ.get("XMPPD_TEST_ARTIFACTS")
                            or os.path.join(HERE, "artifacts"))

# Pinned: the selectors below (the login form, the chat box) are Converse's
# markup of this version. A new version is a deliberate change here.
CONVERSE_VERSION = "12.0.0"

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = ("apt-get install chromium chromium-driver python3-selenium npm "
                "(tools/install-deps.sh test does it)")


def require_tools():
    """pytest.fail (never skip) when a tool of the browser tests is missing."""
    missing = []
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            missing.append(path)
    if shutil.which("npm") is None:
        missing.append("npm")
    if importlib.util.find_spec("selenium") is None:
        missing.append("python3 module selenium")
    if missing:
        pytest.fail("browser tests need %s: %s" % (", ".join(missing), INSTALL_HINT),
                    pytrace=False)


# -- reports: which phase of the current test failed -------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "_browser_rep_" + rep.when, rep)


def _failed(node):
    return any(getattr(getattr(node, "_browser_rep_" + w, None), "failed", False)
               for w in ("setup", "call"))


# -- artifacts ------------------------------------------------------------------

def artifact_path(module, name):
    """ARTIFACTS/<test module>/<name>, its directory created."""
    d = os.path.join(ARTIFACTS, module)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, re.sub(r"[^A-Za-z0-9_.-]+", "_", name))


def console_log(driver):
    """The browser console entries of the current test so far, as text lines
    (chromedriver hands each entry out once: they are kept on the driver)."""
    kept = driver.__dict__.setdefault("xmppd_console", [])
    try:
        entries = driver.get_log("browser")
    except Exception as e:  # the browser may be gone: say so in the file
        entries = [{"level": "-", "message": "(no more console log: %s)" % e}]
    kept.extend("%s %s %s" % (e.get("timestamp"), e.get("level"), e.get("message"))
                for e in entries)
    return kept


def save_failure(driver, module, test, log_lines):
    """Screenshot, page source and console log of a failed test."""
    base = artifact_path(module, test)
    try:
        driver.save_screenshot(base + ".png")
        with open(base + ".html", "w", encoding="utf-8") as f:
            f.write(driver.page_source)
    except Exception as e:
        log_lines.append("(no screenshot/page source: %s)" % e)
    with open(base + ".console.log", "w", encoding="utf-8") as f:
        f.write("\n".join(log_lines) + "\n")
    return base


def snapshot(driver, module, name):
    """A screenshot for the record (the admin pages), whatever the outcome."""
    path = artifact_path(module, name + ".png")
    driver.save_screenshot(path)
    return path


# -- Chromium -------------------------------------------------------------------

def start_chromium(profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1024,768", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-domain-reliability", "--no-pings",
              # Loopback only: every other name fails at once, without a DNS
              # query (Converse's page links images on its own web site).
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
              "--user-data-dir=" + profile_dir):
        opts.add_argument(a)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # xmppd's https port has a self-signed certificate (the admin console)
    opts.set_capability("acceptInsecureCerts", True)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(patience(30))
    driver.set_script_timeout(patience(30))
    return driver


@pytest.fixture(scope="module")
def chrome(request, tmp_path_factory):
    """One headless Chromium for the whole test module."""
    require_tools()
    profile = str(tmp_path_factory.mktemp("chromium-profile"))
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)  # pytest would keep it for 3 runs


@pytest.fixture
def browser(request, chrome):
    """The module's Chromium; artifacts saved when the test fails."""
    module = request.module.__name__
    console_log(chrome).clear()  # what earlier tests left
    # Cookies ignore ports: none from an earlier test's server may be sent
    # to this one (each test has its own origin for what Converse stores).
    chrome.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield chrome
    lines = console_log(chrome)
    if _failed(request.node):
        base = save_failure(chrome, module, request.node.name, lines)
        print("browser artifacts: %s.{png,html,console.log}" % base)
    else:  # what an earlier failed run of this test left is no longer true
        base = artifact_path(module, request.node.name)
        for ext in (".png", ".html", ".console.log"):
            if os.path.exists(base + ext):
                os.remove(base + ext)
    # The next test starts from a blank page, whatever this one left.
    try:
        chrome.get("about:blank")
    except Exception:
        pass


def page_replaced(old):
    """A wait condition: the page old (its html element) belonged to is gone.
    selenium's staleness_of, except that chromedriver may report a node of a
    document being replaced as "does not belong to the document" (a
    WebDriverException, not a StaleElementReferenceException) when the new
    page commits during the check, as on a busy machine."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def gone(_driver):
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return gone


def wait(driver, timeout=30.0):
    """A WebDriverWait of patience(timeout); an element that went stale under
    a condition (Converse re-renders as stanzas come) means: look again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, patience(timeout), poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException))


# -- Converse.js from npm ---------------------------------------------------------

@pytest.fixture(scope="session")
def converse_dist(tmp_path_factory):
    """npm install converse.js@CONVERSE_VERSION once per session; its dist/."""
    require_tools()
    prefix = str(tmp_path_factory.mktemp("converse-npm"))
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--no-update-notifier",
           "--ignore-scripts", "--prefer-offline", "--no-save", "--prefix", prefix,
           "converse.js@" + CONVERSE_VERSION]
    env = dict(os.environ)
    if not env.get("HOME"):  # npm keeps its download cache under $HOME
        env["npm_config_cache"] = os.path.join(prefix, ".npm-cache")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(300), env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("%s did not finish within %.0f s" % (" ".join(cmd), patience(300)),
                    pytrace=False)
    dist = os.path.join(prefix, "node_modules", "converse.js", "dist")
    if r.returncode != 0 or not os.path.isfile(os.path.join(dist, "converse.min.js")):
        pytest.fail("%s failed (exit %d): %s%s" % (" ".join(cmd), r.returncode,
                                                    r.stdout[-3000:], r.stderr[-3000:]),
                    pytrace=False)
    yield dist
    shutil.rmtree(prefix, ignore_errors=True)  # 100+ MB that pytest would keep for 3 runs


class WebRoot:
    """A small HTTP server on a free loopback port: our pages from a dict,
    /dist/... from Converse's dist directory. Its origin (self.origin) is
    what xmppd's http_allowed_origins must list."""

    def __init__(self, dist=None, host="127.0.0.1"):
        self.pages = {}
        self.dist = dist
        root = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root.dist or HERE, **kw)

            def do_GET(self):
                page = root.pages.get(self.path.split("?", 1)[0])
                if page is not None:
                    body = page.encode("utf-8")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path == "/favicon.ico":
                    self.send_response(204)  # none: keeps the console log to the point
                    self.end_headers()
                    return
                if root.dist is None or not self.path.startswith("/dist/"):
                    self.send_error(404)
                    return
                self.path = self.path[len("/dist"):]
                super().do_GET()

            def log_message(self, *args):
                pass  # quiet: the browser's console log tells what failed

        self.port = free_ports(1, host)[0]
        self.httpd = http.server.ThreadingHTTPServer((host, self.port), Handler)
        self.httpd.daemon_threads = True
        self.origin = "http://%s:%d" % (host, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/"):
        return self.origin + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webroot(converse_dist):
    """A fresh origin per test (a new port), so that nothing Converse stored in
    the browser (IndexedDB, localStorage) carries over from one test to the next."""
    w = WebRoot(converse_dist)
    try:
        yield w
    finally:
        w.close()


def converse_page(settings):
    """Our page: Converse from /dist/, initialized with settings (a dict,
    given as JSON: the test's own values, nothing taken from a request)."""
    base = {
        "assets_path": "/dist/",
        "view_mode": "fullscreen",
        "discover_connection_methods": False,
        "auto_reconnect": False,
        "play_sounds": False,
        "show_client_info": False,
        "loglevel": "debug",
        "i18n": "en",
    }
    base.update(settings)
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xmppd browser test</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script src="/dist/converse.min.js" charset="utf-8"></script>
</head><body class="converse-fullscreen">
<script>converse.initialize(%s);</script>
</body></html>
""" % json.dumps(base).replace("</", "<\\/")


# -- Converse, as a person uses it --------------------------------------------

def converse_fill_login(driver, jid, password):
    """Fill Converse's login form and press its button."""
    from selenium.webdriver.common.by import By
    wait(driver).until(lambda d: d.find_elements(By.ID, "converse-login-jid"),
                       "no Converse login form")
    driver.find_element(By.ID, "converse-login-jid").send_keys(jid)
    driver.find_element(By.ID, "converse-login-password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#converse-login button[type=submit]").click()


def converse_login(driver, jid, password):
    """Log in with Converse's form; wait until its roster shows (logged in)."""
    from selenium.webdriver.common.by import By
    converse_fill_login(driver, jid, password)
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "converse-user-profile")
                       and not d.find_elements(By.ID, "converse-login"),
                       "Converse did not log in as %s" % jid)


def wait_console(driver, text, why):
    """Wait until the browser's console log has a line with text (Chromium's
    own messages: a refused WebSocket handshake, a CORS refusal)."""
    wait(driver).until(lambda d: any(text in line for line in console_log(d)), why)


def chat_texts(driver, peer):
    """The texts of the messages in Converse's chat box with peer (a bare JID)."""
    from selenium.webdriver.common.by import By
    box = "converse-chat[jid='%s'] " % peer
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, box + ".chat-msg__text")]


def open_chat(driver, peer):
    """Click peer in Converse's contact list (a message from peer puts it
    there, under "New messages"); wait for the chat box."""
    from selenium.webdriver.common.by import By
    link = "a.open-chat[data-jid='%s']" % peer

    def click(d):
        shown = [e for e in d.find_elements(By.CSS_SELECTOR, link) if e.is_displayed()]
        if shown:
            shown[0].click()  # stale by now: the wait tries again
        return bool(shown)
    w = wait(driver)
    w.until(click, "%s not in Converse's contact list" % peer)
    w.until(lambda d: d.find_elements(By.CSS_SELECTOR, "converse-chat[jid='%s']" % peer),
            "no chat box with %s" % peer)


def wait_chat_text(driver, peer, text):
    """Open the chat with peer; wait until a message with text shows in it."""
    open_chat(driver, peer)
    wait(driver).until(lambda d: text in chat_texts(d, peer),
                       "no message %r in Converse's chat with %s" % (text, peer))


def converse_send(driver, peer, text):
    """Type text into the chat box with peer and press Enter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    sel = "converse-chat[jid='%s'] textarea.chat-textarea" % peer
    area = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, sel))
    area.click()
    area.send_keys(text)
    area.send_keys(Keys.ENTER)
