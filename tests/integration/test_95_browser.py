"""Real browsers (issue 14): Converse.js in headless Chromium over XMPP over
WebSocket (RFC 7395, /xmpp-websocket) and over BOSH (XEP-0124/0206,
/http-bind), each chatting with a slixmpp TCP client; then the admin console
(/admin/, the HTML contract in the issue) page by page as an admin would use
it. See browser_helpers.py for the fixtures (one Chromium per module, Converse
from npm once per session, artifacts on failure)."""
import asyncio
import re
import urllib.parse

import pytest

from browser_helpers import (WebRoot, console_log, converse_fill_login, converse_login,
                             converse_page, converse_send, page_replaced, snapshot, wait,
                             wait_chat_text, wait_console)
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
    # Converse logs what it sends (loglevel debug): without TLS it could only
    # use SCRAM, the server offering no PLAIN (RFC 6120 §13.8)
    # (the console log has "<" as \u003C and quotes escaped)
    mechs = set(re.findall(r'(?:<|\\u003C)auth [^>]*mechanism=\\?"([A-Z0-9-]+)', "\n".join(
        console_log(browser))))
    assert mechs and all(m.startswith("SCRAM-") for m in mechs), mechs


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


@pytest.mark.parametrize("transport", ("websocket", "bosh"))
def test_converse_from_a_foreign_origin_is_refused(server, browser, webroot, converse_dist,
                                                   transport):
    """A page from an origin not in http_allowed_origins cannot use a
    visitor's browser as its client (RFC 6455 §10.2; CORS for BOSH): the
    browser reports the refusal, and no login happens; the same page from
    the allowed origin logs in (so it was the origin that was refused)."""
    if transport == "bosh" and "BOSH" in built_without(server.binary):
        pytest.skip("built without BOSH")
    web_server(server, webroot)  # allows webroot's origin only
    base = "%s://%s:%d/" % ("ws" if transport == "websocket" else "http", server.host,
                            server.http_port)
    page = converse_page({"websocket_url": base + "xmpp-websocket"} if transport == "websocket"
                         else {"bosh_service_url": base + "http-bind"})
    foreign = WebRoot(converse_dist)
    try:
        foreign.pages["/"] = webroot.pages["/"] = page
        browser.get(foreign.url("/"))
        converse_fill_login(browser, server.jid("alice"), server.password("alice"))
        if transport == "websocket":
            wait_console(browser, "Unexpected response code: 403",
                         "the browser did not report the WebSocket handshake refused")
        else:
            wait_console(browser, "blocked by CORS policy",
                         "the browser did not report the BOSH request refused (CORS)")
    finally:
        foreign.close()
    assert "authenticated as %s" % server.jid("alice") not in server.log_text()
    browser.get(webroot.url("/"))
    converse_login(browser, server.jid("alice"), server.password("alice"))


# -- the admin console (/admin/, the HTML contract of issue 14) ---------------
# Selenium calls block: inside an asyncio scenario (slixmpp clients beside
# the browser) they run in a thread, so that the clients keep reading.

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


def by(css):
    from selenium.webdriver.common.by import By
    return By.CSS_SELECTOR, css


def flash(driver):
    els = driver.find_elements(*by("#flash"))
    return els[0].text.strip() if els else None


def click_and_load(driver, element, what):
    """Click element (a link, a form's button); wait for the next page."""
    old = driver.find_element(*by("html"))
    element.click()
    wait(driver).until(page_replaced(old), "no new page after clicking %s" % what)
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def wait_url(driver, url, why):
    wait(driver).until(lambda d: d.current_url == url, "%s (at %s)" % (why, driver.current_url))


def admin_login(driver, server, user, password=None, snap_as=None):
    """Open /admin/ (which sends us to the login page), log in as user."""
    driver.get(admin_url(server))
    wait_url(driver, admin_url(server, "login"), "/admin/ without a session: not the login page")
    if snap_as:
        snap(driver, snap_as)
    form = driver.find_element(*by("form[action='/admin/login']"))
    form.find_element(*by("input[name='jid']")).send_keys(server.jid(user))
    pw = form.find_element(*by("input[name='password']"))
    assert pw.get_attribute("type") == "password"
    pw.send_keys(password if password is not None else server.password(user))
    click_and_load(driver, driver.find_element(*by("button#login")), "#login")


def go(driver, server, page):
    """Follow the nav link to page (one of ADMIN_PAGES), as a person would;
    every page after login has a nav with all six and the logout button."""
    links = {a.get_attribute("href"): a for a in driver.find_elements(*by("nav a"))}
    for p in ADMIN_PAGES:
        assert admin_url(server, p) in links, "no nav link to /admin/%s on %s: %s" % (
            p, driver.current_url, sorted(links))
    assert driver.find_elements(*by("button#logout")), "no logout button"
    click_and_load(driver, links[admin_url(server, page)], "the nav link to " + page)
    assert driver.current_url.split("?")[0] == admin_url(server, page), driver.current_url


def submit(driver, form_action, button, fields=None):
    """Fill the form posting to form_action and press its button."""
    form = driver.find_element(*by("form[action='%s']" % form_action))
    for name, value in (fields or {}).items():
        el = form.find_element(*by("[name='%s']" % name))
        el.clear()
        el.send_keys(value)
    click_and_load(driver, form.find_element(*by(button)), button)


def search_users(driver, text):
    """The users page's search form (GET, input q)."""
    q = driver.find_element(*by("form input[name='q']"))
    q.clear()
    q.send_keys(text)
    from selenium.webdriver.common.keys import Keys
    old = driver.find_element(*by("html"))
    q.send_keys(Keys.ENTER)
    wait(driver).until(page_replaced(old), "no result page for the search")


def first_cells(driver, table_id):
    return [td.text.strip() for td in driver.find_elements(
        *by("table#%s tr td:first-child" % table_id))]


def row_of(driver, table_id, first_cell):
    for tr in driver.find_elements(*by("table#%s tr" % table_id)):
        tds = tr.find_elements(*by("td"))
        if tds and tds[0].text.strip() == first_cell:
            return tr
    return None


def wait_rows(driver, server, page, first_cell, present=True):
    """Reload page until its table has (or no longer has) a row starting
    with first_cell."""
    def done(d):
        if (row_of(d, page, first_cell) is not None) == present:
            return True
        d.get(admin_url(server, page))
        return False
    wait(driver).until(done, "row %s %s on %s" % (first_cell, "never came" if present
                                                   else "still there", page))


def snap(driver, name):
    """Every admin page is kept as a screenshot, pass or fail (artifacts)."""
    snapshot(driver, __name__, name)


def bg(fn, *args):
    return asyncio.to_thread(fn, *args)


def test_admin_console_page_by_page(server, browser):
    """An admin's round: log in, dashboard, add a user, see it log in from
    slixmpp on the sessions page and on its user page, kick it (its stream
    ends), announce (a headline to who is online), the config and log pages,
    log out."""
    admin_server(server)
    new_user, new_pw = unique("dave").lower(), unique("Pw-")
    new_jid = server.jid(new_user)
    subject, body = unique("subject"), unique("announced")
    b = browser

    def dashboard():
        admin_login(b, server, "alice", snap_as="admin-login")
        wait_url(b, admin_url(server), "the admin login did not lead to /admin/")
        cookie = b.get_cookie("xmppd_admin")
        assert cookie is not None, b.get_cookies()
        assert cookie["httpOnly"] and cookie["secure"], cookie
        assert cookie.get("sameSite") == "Strict" and cookie["path"] == "/admin/", cookie
        stats = dict(zip((dt.text.strip().lower() for dt in b.find_elements(*by("dl#stats dt"))),
                         (dd.text.strip() for dd in b.find_elements(*by("dl#stats dd")))))
        for what in ("version", "uptime", "memory", "s2s links", "components"):
            assert what in stats, stats
        # what is true now: alice, bob and carol; bob online (the admin's
        # web session is not an XMPP one)
        assert stats.get("accounts") == "3" and stats.get("online sessions") == "1", stats
        snap(b, "admin-dashboard")

    def add_user():
        go(b, server, "users")
        submit(b, "/admin/users/add", "button#add-user", {"jid": new_jid, "password": new_pw})
        assert flash(b), "no flash after adding a user"
        go(b, server, "users")
        search_users(b, new_user)
        assert new_jid in first_cells(b, "users"), first_cells(b, "users")
        snap(b, "admin-users")

    def user_page(full_jid):
        # the first cell of the users table links to the account's page
        go(b, server, "users")
        search_users(b, new_user)
        link = row_of(b, "users", new_jid).find_element(*by("td a"))
        href = urllib.parse.unquote(link.get_attribute("href"))
        assert href == admin_url(server, "user?jid=" + new_jid), href
        click_and_load(b, link, "the link to " + new_jid)
        assert full_jid.split("/", 1)[1] in b.find_element(*by("body")).text
        snap(b, "admin-user")

    def kick(full_jid):
        go(b, server, "sessions")
        wait_rows(b, server, "sessions", full_jid)
        snap(b, "admin-sessions")
        button = row_of(b, "sessions", full_jid).find_element(*by("button.kick"))
        click_and_load(b, button, "kick")
        wait_rows(b, server, "sessions", full_jid, present=False)
        snap(b, "admin-kicked")

    def announce():
        go(b, server, "announce")
        submit(b, "/admin/announce", "button#announce", {"subject": subject, "body": body})
        snap(b, "admin-announce")

    def read_only_pages():
        for page, what in (("config", "table#config"), ("log", "pre#log")):
            go(b, server, page)
            assert b.find_elements(*by(what)), "no %s on %s" % (what, page)
            snap(b, "admin-" + page)

    def logout():
        click_and_load(b, b.find_element(*by("button#logout")), "#logout")
        wait_url(b, admin_url(server, "login"), "logout did not lead to the login page")
        snap(b, "admin-logged-out")
        b.get(admin_url(server))
        wait_url(b, admin_url(server, "login"), "after logout /admin/ wants a login again")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await bg(dashboard)
            await bg(add_user)
            dave = await cl.login(new_user, new_pw)  # the new account works
            await bg(user_page, dave.jid)
            await bg(kick, dave.jid)
            assert await dave.wait_disconnected(), "the kicked session is still there"
            await bg(announce)
            m = await bob.next_message(pred=lambda m: m["body"] == body)
            assert m["type"] == "headline" and m["subject"] == subject, m
            await bg(read_only_pages)
            await bg(logout)
    run(scenario(), timeout=100)


def test_admin_user_page_reset_password_and_delete(server, browser):
    """The user page's forms: a new password works from slixmpp (the old one
    no longer does); delete ends the account, its session included."""
    admin_server(server)
    b = browser
    new_pw = unique("New-pw-")

    def open_user_page():
        admin_login(b, server, "alice")
        wait_url(b, admin_url(server), "the admin login did not lead to /admin/")
        go(b, server, "users")
        search_users(b, "carol")
        click_and_load(b, row_of(b, "users", server.jid("carol")).find_element(*by("td a")),
                       "carol's link")

    def reset_password():
        submit(b, "/admin/users/password", "button#reset-password", {"password": new_pw})
        assert flash(b), "no flash after a password reset"
        snap(b, "admin-password-reset")

    def delete():
        submit(b, "/admin/users/delete", "button#delete-user")
        assert flash(b), "no flash after deleting a user"
        snap(b, "admin-user-deleted")

    async def scenario():
        async with Clients(server) as cl:
            await bg(open_user_page)
            await bg(reset_password)
            out = await cl.attempt("carol")  # the old password
            assert out.kind == "failed_auth", out
            carol = await cl.login("carol", new_pw)
            await bg(delete)
            assert await carol.wait_disconnected(), "the deleted account's session goes on"
            out = await cl.attempt("carol", new_pw)
            assert out.kind == "failed_auth", out
    run(scenario(), timeout=100)


def test_admin_form_without_csrf_refused(server, browser):
    """A form posted with its csrf input taken out (by script in the page)
    is refused with "Invalid form token", and nothing is done."""
    admin_server(server)
    b = browser
    user = unique("eve").lower()
    admin_login(b, server, "alice")
    wait_url(b, admin_url(server), "the admin login did not lead to /admin/")
    go(b, server, "users")
    n = b.execute_script(
        "var c = document.querySelectorAll(\"form[action='/admin/users/add'] input[name='csrf']\");"
        "c.forEach(function (e) { e.remove(); }); return c.length;")
    assert n == 1, "the add-user form should carry one csrf input, not %r" % n
    submit(b, "/admin/users/add", "button#add-user", {"jid": server.jid(user),
                                                      "password": "Pw-1-x"})
    assert flash(b) == "Invalid form token", flash(b)
    snap(b, "admin-csrf-refused")
    assert b.find_elements(*by("button#logout")), "the refusal should not end the session"

    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt(user, "Pw-1-x")
            assert out.kind == "failed_auth", out  # no such account was made
    run(scenario())


def test_admin_non_admin_cannot_log_in(server, browser):
    """bob has an account but is not in admins: "Login failed", exactly as
    for alice with a wrong password, and no session cookie."""
    admin_server(server)
    b = browser
    for user, pw in (("bob", None), ("alice", "not-her-password")):
        admin_login(b, server, user, pw)
        assert flash(b) == "Login failed", flash(b)
        assert b.current_url == admin_url(server, "login"), b.current_url
        assert b.get_cookie("xmppd_admin") is None, b.get_cookies()
        snap(b, "admin-login-failed-" + user)
    b.get(admin_url(server, "users"))
    wait_url(b, admin_url(server, "login"), "a failed login opened the users page")


def attack_page(action, fields):
    """A page of another site with a form posting to the admin console, as
    an attacker would lure a logged-in admin into pressing (no csrf: the
    other site cannot read it)."""
    inputs = "".join("<input name='%s' value='%s'>" % kv for kv in fields.items())
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>win a prize</title></head>"
            "<body><form method='post' action='%s'>%s<button id='go'>Go</button></form>"
            "</body></html>" % (action, inputs))


def test_admin_forms_from_another_site_refused(server, browser, webroot):
    """Cross-site request forgery against a logged-in admin (a form on
    another origin posting to /admin/users/add) adds no account; a forged
    login (login CSRF, /admin/login from another origin) logs nobody in."""
    admin_server(server)
    b = browser
    user = unique("mallory").lower()
    admin_login(b, server, "alice")
    wait_url(b, admin_url(server), "the admin login did not lead to /admin/")

    webroot.pages["/add"] = attack_page(admin_url(server, "users/add"),
                                        {"jid": server.jid(user), "password": "Pw-1-x"})
    b.get(webroot.url("/add"))
    click_and_load(b, b.find_element(*by("button#go")), "the forged add-user form")
    snap(b, "admin-forged-add-user")
    b.get(admin_url(server))
    wait_url(b, admin_url(server), "the admin session should go on after a forged request")

    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt(user, "Pw-1-x")
            assert out.kind == "failed_auth", out  # no such account was made
    run(scenario())

    # a forged login: another site logs the browser in with its own account
    b.execute_cdp_cmd("Network.clearBrowserCookies", {})
    webroot.pages["/login"] = attack_page(admin_url(server, "login"), {
        "jid": server.jid("alice"), "password": server.password("alice")})
    b.get(webroot.url("/login"))
    click_and_load(b, b.find_element(*by("button#go")), "the forged login form")
    snap(b, "admin-forged-login")
    assert flash(b) == "Invalid form token", flash(b)  # no pre-session token
    assert b.get_cookie("xmppd_admin") is None, b.get_cookies()
    b.get(admin_url(server))
    wait_url(b, admin_url(server, "login"), "a forged login opened the console")


def test_admin_sessions_page_shows_a_hostile_resource_as_text(server, browser):
    """A resource chosen by a user (markup, a script) is text on the admin's
    sessions page: no element is made of it, nothing of it runs."""
    admin_server(server)
    b = browser
    resource = "<img src=x onerror=\"window.xmppd_xss=1\"><script>window.xmppd_xss=2</script>"

    def look(full_jid):
        admin_login(b, server, "alice")
        wait_url(b, admin_url(server), "the admin login did not lead to /admin/")
        go(b, server, "sessions")
        wait_rows(b, server, "sessions", full_jid)
        snap(b, "admin-hostile-resource")
        assert not b.find_elements(*by("table#sessions img, table#sessions script"))
        assert b.execute_script("return window.xmppd_xss === undefined")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob", resource=resource)
            assert bob.jid.endswith("/" + resource), bob.jid
            await bg(look, bob.jid)
    run(scenario())


def test_admin_message_of_the_day(server, browser):
    """The announce page's message of the day: set, it reaches who is online
    and each later login as a headline from the server; deleted, a login
    gets none."""
    admin_server(server)
    b = browser
    motd = unique("motd")

    def is_motd(m):
        return m["type"] == "headline" and m["body"] == motd

    def set_motd():
        admin_login(b, server, "alice")
        wait_url(b, admin_url(server), "the admin login did not lead to /admin/")
        go(b, server, "announce")
        submit(b, "/admin/motd", "button#set-motd", {"motd": motd})
        assert flash(b), "no flash after setting the message of the day"
        snap(b, "admin-motd-set")

    def delete_motd():
        go(b, server, "announce")
        submit(b, "/admin/motd/delete", "button#delete-motd")
        assert flash(b), "no flash after deleting the message of the day"

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await bg(set_motd)
            await bob.next_message(pred=is_motd)
            carol = await cl.login("carol")  # its initial presence brings it
            m = await carol.next_message(pred=is_motd)
            assert str(m["from"]) == server.domain, m
            await carol.close()
            await bg(delete_motd)
            carol = await cl.login("carol")
            await carol.no_message(pred=is_motd)
    run(scenario())
