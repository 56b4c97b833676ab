"""Real browsers (issue 14): Converse.js in headless Chromium over XMPP over
WebSocket (RFC 7395, /xmpp-websocket) and over BOSH (XEP-0124/0206,
/http-bind), each chatting with a slixmpp TCP client; then the admin console
(/admin/, the HTML contract in the issue) page by page as an admin would use
it. See browser_helpers.py for the fixtures (one Chromium per module, Converse
from npm once per session, artifacts on failure)."""
import asyncio
import urllib.parse

import pytest

from browser_helpers import (converse_login, converse_page, converse_send, snapshot, wait,
                             wait_chat_text)
from conftest import built_without
from http_helpers import with_http
from xmpp_helpers import Clients, run, unique


def web_server(server, webroot, **extra):
    """xmppd with its web listeners, answering WebSocket upgrades and BOSH
    requests from the test page's origin. Plain ws:// and http:// on
    loopback: SCRAM works without TLS (PLAIN is refused there, as it must be)."""
    if "HTTP" in built_without(server.binary):
        pytest.skip("built without HTTP")
    with_http(server, require_tls="no", http_allowed_origins=webroot.origin, **extra)
    return server


def chat_both_ways(server, browser, webroot, settings):
    """Converse (logged in as alice with settings) and bob on slixmpp: bob's
    message shows in Converse's chat box; Converse's answer, typed and sent
    with Enter, reaches bob from alice."""
    webroot.pages["/"] = converse_page(dict(settings, allow_non_roster_messaging=True))
    to_web, from_web = unique("to-converse"), unique("from-converse")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await asyncio.to_thread(browser.get, webroot.url("/"))
            await asyncio.to_thread(converse_login, browser, server.jid("alice"),
                                    server.password("alice"))
            bob.xmpp.send_message(mto=server.jid("alice"), mbody=to_web, mtype="chat")
            await asyncio.to_thread(wait_chat_text, browser, server.jid("bob"), to_web)
            await asyncio.to_thread(converse_send, browser, server.jid("bob"), from_web)
            m = await bob.next_message(pred=lambda m: m["body"] == from_web)
            assert m["from"].bare == server.jid("alice"), m
            assert m["type"] == "chat", m
    run(scenario(), timeout=100)


def test_converse_over_websocket(server, browser, webroot):
    web_server(server, webroot)
    url = "ws://%s:%d/xmpp-websocket" % (server.host, server.http_port)
    chat_both_ways(server, browser, webroot, {"websocket_url": url})
    assert "HTTP GET /xmpp-websocket" in server.log_text()


def test_converse_over_bosh(server, browser, webroot):
    if "BOSH" in built_without(server.binary):
        pytest.skip("built without BOSH")
    web_server(server, webroot)
    url = "http://%s:%d/http-bind" % (server.host, server.http_port)
    chat_both_ways(server, browser, webroot, {"bosh_service_url": url})
    # BOSH it was (Converse was given no WebSocket URL; the log says so too)
    log = server.log_text()
    assert "HTTP POST /http-bind" in log
    assert "/xmpp-websocket" not in log


# -- the admin console (/admin/, the HTML contract of issue 14) ---------------

ADMIN_PAGES = ("", "users", "sessions", "announce", "config", "log")


def admin_server(server):
    if "WEBADMIN" in built_without(server.binary):
        pytest.skip("built without WEBADMIN")
    # over https, as an admin would use it: the Secure cookie, a self-signed
    # certificate that the test's Chromium accepts
    with_http(server, admins=server.jid("alice"))
    return server


def admin_url(server, path=""):
    return "https://%s:%d/admin/%s" % (server.host, server.https_port, path)


def flash(driver):
    from selenium.webdriver.common.by import By
    els = driver.find_elements(By.ID, "flash")
    return els[0].text if els else None


def admin_login(driver, server, user, password=None):
    """Open /admin/ (which sends us to the login page), log in as user."""
    from selenium.webdriver.common.by import By
    driver.get(admin_url(server))
    wait(driver).until(lambda d: d.current_url == admin_url(server, "login"),
                       "/admin/ without a session did not lead to /admin/login")
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/admin/login']")
    form.find_element(By.NAME, "jid").send_keys(server.jid(user))
    pw = form.find_element(By.NAME, "password")
    assert pw.get_attribute("type") == "password"
    pw.send_keys(password if password is not None else server.password(user))
    driver.find_element(By.ID, "login").click()


def go(driver, server, page):
    """Follow the nav link to page (one of ADMIN_PAGES), as a person would."""
    from selenium.webdriver.common.by import By
    want = admin_url(server, page)
    links = [a for a in driver.find_elements(By.CSS_SELECTOR, "nav a")
             if a.get_attribute("href") == want]
    assert links, "no nav link to %s on %s" % (want, driver.current_url)
    links[0].click()
    wait(driver).until(lambda d: d.current_url.split("?")[0] == want)


def submit(driver, form_action, button, fields=None):
    """Fill the form posting to form_action and press its button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    form = driver.find_element(By.CSS_SELECTOR, "form[action='%s']" % form_action)
    for name, value in (fields or {}).items():
        el = form.find_element(By.NAME, name)
        el.clear()
        el.send_keys(value)
    old = driver.find_element(By.TAG_NAME, "html")
    form.find_element(By.CSS_SELECTOR, button).click()
    wait(driver).until(EC.staleness_of(old), "no new page after %s" % button)


def first_cells(driver, table_id):
    from selenium.webdriver.common.by import By
    return [td.text.strip() for td in driver.find_elements(
        By.CSS_SELECTOR, "table#%s tr td:first-child" % table_id)]


def row_of(driver, table_id, first_cell):
    from selenium.webdriver.common.by import By
    for tr in driver.find_elements(By.CSS_SELECTOR, "table#%s tr" % table_id):
        tds = tr.find_elements(By.TAG_NAME, "td")
        if tds and tds[0].text.strip() == first_cell:
            return tr
    return None


def snap(driver, name):
    """Every admin page is kept as a screenshot, pass or fail (artifacts)."""
    snapshot(driver, __name__, name)


def test_admin_console_page_by_page(server, browser):
    """An admin's round: log in, dashboard, add a user, see it log in from
    slixmpp on the sessions page, kick it, announce to who is online, the
    config and log pages, log out."""
    from selenium.webdriver.common.by import By
    admin_server(server)
    new_user, new_pw = unique("dave").lower(), unique("Pw-")
    new_jid = server.jid(new_user)
    subject, body = unique("subject"), unique("announced")
    b = browser

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await asyncio.to_thread(admin_login, b, server, "alice")
            await asyncio.to_thread(wait(b).until, lambda d: d.current_url == admin_url(server),
                                    "the admin login did not lead to /admin/")
            cookie = b.get_cookie("xmppd_admin")
            assert cookie is not None, b.get_cookies()
            assert cookie["httpOnly"] and cookie["secure"], cookie
            assert cookie.get("sameSite") == "Strict" and cookie["path"] == "/admin/", cookie
            stats = [dt.text.strip().lower() for dt in b.find_elements(By.CSS_SELECTOR,
                                                                        "dl#stats dt")]
            for what in ("version", "uptime", "accounts"):
                assert any(what in s for s in stats), stats
            snap(b, "admin-dashboard")

            # users: add one, find it in the list
            go(b, server, "users")
            await asyncio.to_thread(submit, b, "/admin/users/add", "#add-user",
                                    {"jid": new_jid, "password": new_pw})
            assert flash(b), "no flash after adding a user"
            go(b, server, "users")
            await asyncio.to_thread(submit_search, b, new_user)
            assert new_jid in first_cells(b, "users"), first_cells(b, "users")
            snap(b, "admin-users")

            # the new account logs in (slixmpp); the sessions page lists it
            dave = await cl.login(new_user, new_pw)
            go(b, server, "sessions")
            await asyncio.to_thread(wait_row, b, server, "sessions", dave.jid)
            snap(b, "admin-sessions")

            # its user page (the link in the users table) names the online resource
            go(b, server, "users")
            submit_search(b, new_user)
            link = row_of(b, "users", new_jid).find_element(By.CSS_SELECTOR, "td a")
            href = urllib.parse.unquote(link.get_attribute("href"))
            assert href == admin_url(server, "user?jid=" + new_jid), href
            link.click()
            wait(b).until(lambda d: "/admin/user?" in d.current_url)
            assert dave.jid.split("/", 1)[1] in b.find_element(By.TAG_NAME, "body").text
            snap(b, "admin-user")

            # kick it: its stream ends
            go(b, server, "sessions")
            row = row_of(b, "sessions", dave.jid)
            old = b.find_element(By.TAG_NAME, "html")
            row.find_element(By.CSS_SELECTOR, "button.kick").click()
            await asyncio.to_thread(wait(b).until, EC_stale(old))
            assert await dave.wait_disconnected(), "the kicked session is still there"
            snap(b, "admin-kicked")

            # announce: a headline to every online resource (bob's)
            go(b, server, "announce")
            await asyncio.to_thread(submit, b, "/admin/announce", "#announce",
                                    {"subject": subject, "body": body})
            m = await bob.next_message(pred=lambda m: m["body"] == body)
            assert m["type"] == "headline" and m["subject"] == subject, m
            snap(b, "admin-announce")

            for page, what in (("config", "table#config"), ("log", "pre#log")):
                go(b, server, page)
                assert b.find_elements(By.CSS_SELECTOR, what), "no %s on %s" % (what, page)
                snap(b, "admin-" + page)

            # log out: back to the login page, and /admin/ wants a login again
            old = b.find_element(By.TAG_NAME, "html")
            b.find_element(By.ID, "logout").click()
            await asyncio.to_thread(wait(b).until, EC_stale(old))
            assert b.current_url == admin_url(server, "login")
            snap(b, "admin-logged-out")
            b.get(admin_url(server))
            assert b.current_url == admin_url(server, "login")
    run(scenario(), timeout=100)


def EC_stale(el):
    from selenium.webdriver.support import expected_conditions as EC
    return EC.staleness_of(el)


def submit_search(driver, text):
    """The users page's search form (GET, q)."""
    from selenium.webdriver.common.by import By
    q = driver.find_element(By.CSS_SELECTOR, "form input[name='q']")
    q.clear()
    q.send_keys(text)
    old = driver.find_element(By.TAG_NAME, "html")
    q.submit()
    wait(driver).until(EC_stale(old))


def wait_row(driver, server, page, first_cell):
    """Reload page until its table has a row starting with first_cell."""
    def there(d):
        if row_of(d, page, first_cell) is not None:
            return True
        d.get(admin_url(server, page))
        return False
    wait(driver).until(there, "no row %s on %s" % (first_cell, page))


def test_admin_form_without_csrf_refused(server, browser):
    """A form posted with its csrf input taken out (by script in the page)
    is refused with "Invalid form token", and nothing is done."""
    from selenium.webdriver.common.by import By
    admin_server(server)
    b = browser
    admin_login(b, server, "alice")
    wait(b).until(lambda d: d.current_url == admin_url(server))
    go(b, server, "users")
    user = unique("eve").lower()
    n = b.execute_script(
        "var f = document.querySelector(\"form[action='/admin/users/add']\");"
        "var c = f.querySelectorAll(\"input[name='csrf']\");"
        "c.forEach(function (e) { e.remove(); }); return c.length;")
    assert n == 1, "the add-user form should carry one csrf input, not %r" % n
    submit(b, "/admin/users/add", "#add-user", {"jid": server.jid(user), "password": "Pw-1-x"})
    assert flash(b) == "Invalid form token", flash(b)
    snap(b, "admin-csrf-refused")
    assert b.find_elements(By.ID, "logout"), "still logged in"

    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt(user, "Pw-1-x")
            assert out.kind == "failed_auth", out
    run(scenario())


def test_admin_non_admin_cannot_log_in(server, browser):
    """bob has an account but is not in admins: "Login failed", as for a
    wrong password, and no session cookie."""
    admin_server(server)
    b = browser
    for user, pw in (("bob", None), ("alice", "not-her-password")):
        admin_login(b, server, user, pw)
        wait(b).until(lambda d: flash(d) is not None, "no flash after a failed login")
        assert flash(b) == "Login failed", flash(b)
        assert b.current_url == admin_url(server, "login"), b.current_url
        assert b.get_cookie("xmppd_admin") is None, b.get_cookies()
    snap(b, "admin-login-failed")
    b.get(admin_url(server, "users"))
    assert b.current_url == admin_url(server, "login")
