"""Crash safety of the store (STORAGE.md): kill -9 at random moments while
offline messages are stored and rosters change, kill -9 while stored messages
are being delivered, and a full disk.

"Acknowledged" here means: the sender got the answer to a XEP-0199 ping sent
right after the stanza on the same stream. The server handles one stream's
stanzas in order and syncs the offline logs a loop turn appended to before it
writes any of that turn's output (roster writes are whole-file atomic writes,
fsync'd before the answer), so an acknowledged message or roster change is on
disk.

Guarantees checked:
- every acknowledged offline message is delivered after any number of kill -9,
  exactly once when delivery itself was not interrupted (STORAGE.md, "Appending
  an offline message" and "Delivering offline messages"); a message that was
  sent but never acknowledged arrives at most once; nothing else arrives;
- a roster after a kill -9 holds every acknowledged change, plus possibly a
  prefix of the changes still in flight (stanzas are handled in order), never
  anything else;
- after every kill -9, every file in the data directory parses with the
  formats of STORAGE.md (checked here by an independent parser); the only
  leftovers a crash may leave are a torn tail of offline.log that is a strict
  prefix of a record, a stale *.tmp and .new.*/.del.* directories; never a
  *.bad; the CLI lists the accounts and every account can log in;
- kill -9 during delivery: every message stored offline is delivered at least
  once, and a message is delivered again only after a delivery that a kill
  interrupted (once per such kill);
- a full disk (a tiny tmpfs as data directory): a message that cannot be
  stored is bounced with service-unavailable, a roster change answers an
  error and keeps the old roster, nothing is torn or left behind, online
  traffic keeps flowing, and storage works again once space is freed.
- a failing fsync (the real server with a preloaded fsync that fails for
  offline logs): the messages it covered are bounced with service-unavailable,
  taken back from the log, never delivered; the others are.

Clients here are raw streams (direct TLS, SASL PLAIN): fast to open, and they
record exactly the bytes that arrived before a kill. The kill moments are
random; a failing run prints its seed, XMPPD_CRASH_SEED=<seed> repeats the
choices (not the timing).
"""

import base64
import contextlib
import os
import random
import re
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
import zlib

import pytest

from xmpp_helpers import NS_BIND, NS_CLIENT, NS_STANZAS, RawConn, local, patience

NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"

SEED = int(os.environ.get("XMPPD_CRASH_SEED", "0")) or random.randrange(1, 1 << 30)
MIN_KILLS = 10  # crash rounds every crash loop runs, however long they take


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


# ---------------------------------------------------------------------------
# An independent parser for the data directory (STORAGE.md formats)
# ---------------------------------------------------------------------------

B64 = r"[A-Za-z0-9+/]+={0,2}"
ACCOUNT_LINE = re.compile(r"^(scram-sha-1|scram-sha-256) ([1-9][0-9]{0,8}) (%s) (%s) (%s)$"
                          % (B64, B64, B64))
DOC_HEADER = re.compile(rb"^xmppd-doc 1 (0|[1-9][0-9]*) ([0-9a-f]{8})\n")
OFFLINE_HEADER = b"xmppd-offline 1\n"
RECORD_MAX = 1024 * 1024
ROSTER_SUBS = ("none", "to", "from", "both")


class Damaged(AssertionError):
    pass


def parse_account(data):
    text = data.decode("ascii")
    if not text.endswith("\n"):
        raise Damaged("account file without a final newline")
    lines = text[:-1].split("\n")
    if lines[0] != "xmppd-account 1":
        raise Damaged("account version line %r" % lines[0])
    seen = set()
    for ln in lines[1:]:
        m = ACCOUNT_LINE.match(ln)
        if not m or m.group(1) in seen:
            raise Damaged("account line %r" % ln)
        seen.add(m.group(1))
        klen = 20 if m.group(1) == "scram-sha-1" else 32
        salt = base64.b64decode(m.group(3), validate=True)
        if not 1 <= len(salt) <= 16 or int(m.group(2)) > 100000000:
            raise Damaged("account line %r" % ln)
        for k in (m.group(4), m.group(5)):
            if len(base64.b64decode(k, validate=True)) != klen:
                raise Damaged("key length in %r" % ln)
    if not seen:
        raise Damaged("account file without credentials")


def parse_roster(payload):
    text = payload.decode("utf-8")
    if not text.endswith("\n"):
        raise Damaged("roster without a final newline")
    lines = text[:-1].split("\n")
    if lines[0] != "xmppd-roster 1" or len(lines) < 2 or \
            not re.match(r"^ver [1-9][0-9]* [0-9]+$", lines[1]):
        raise Damaged("roster header %r" % lines[:2])
    items = {}
    for ln in lines[2:]:
        f = ln.split("\t")
        if len(f) < 5 or f[1] not in ROSTER_SUBS or not re.match(r"^(-|[aph]+)$", f[2]):
            raise Damaged("roster line %r" % ln)
        items[f[0]] = f[3]
    return int(lines[1].split()[2]), items


def parse_doc(name, data):
    m = DOC_HEADER.match(data)
    if not m:
        raise Damaged("document header %r" % data[:64])
    payload = data[m.end():]
    if int(m.group(1)) != len(payload):
        raise Damaged("document length %s, payload %d bytes" % (m.group(1), len(payload)))
    if zlib.crc32(payload) != int(m.group(2), 16):
        raise Damaged("document checksum")
    if name == "roster":
        parse_roster(payload)
    elif name == "last":
        if not re.match(rb"^last 1 [0-9]+\n", payload):
            raise Damaged("last-activity payload %r" % payload[:40])
    elif name == "blocklist":
        if not payload.startswith(b"xmppd-blocklist 1\n"):
            raise Damaged("blocklist payload %r" % payload[:40])
    return payload


def parse_offline(data, domain, allow_torn):
    """Records (payload bytes) of an offline.log. A torn tail is accepted only
    with allow_torn and only if it is a strict prefix of a header or record:
    kill -9 can cut a write() short, it cannot write garbage."""
    records = []
    if len(data) < len(OFFLINE_HEADER):
        if not OFFLINE_HEADER.startswith(data):
            raise Damaged("offline.log header %r" % data)
        if data and not allow_torn:
            raise Damaged("offline.log: a cut header without a crash")
        return records, bool(data)
    if not data.startswith(OFFLINE_HEADER):
        raise Damaged("offline.log header %r" % data[:16])
    pos = len(OFFLINE_HEADER)
    while pos < len(data):
        rest = len(data) - pos
        if rest < 12:
            if not allow_torn or data[pos:pos + 4] != b"OFFL"[:min(4, rest)]:
                raise Damaged("offline.log: %d stray bytes at %d" % (rest, pos))
            return records, True
        if data[pos:pos + 4] != b"OFFL":
            raise Damaged("offline.log: bad magic at %d" % pos)
        ln = int.from_bytes(data[pos + 4:pos + 8], "big")
        crc = int.from_bytes(data[pos + 8:pos + 12], "big")
        if ln > RECORD_MAX:
            raise Damaged("offline.log: length %d at %d" % (ln, pos))
        if 12 + ln > rest:
            if not allow_torn:
                raise Damaged("offline.log: record at %d runs past the end" % pos)
            return records, True
        payload = data[pos + 12:pos + 12 + ln]
        if zlib.crc32(payload, zlib.crc32(data[pos + 4:pos + 8])) != crc:
            raise Damaged("offline.log: checksum of the record at %d" % pos)
        el = ET.fromstring(payload)
        if local(el.tag) != "message":
            raise Damaged("offline.log: record is not a message: %r" % payload[:80])
        ds = [d for d in el if d.tag == "{%s}delay" % NS_DELAY and d.get("from") == domain]
        if len(ds) != 1:
            raise Damaged("offline.log: record without our delay stamp: %r" % payload[:200])
        records.append(payload)
        pos += 12 + ln
    return records, False


# Message archive (STORAGE.md "Message archive"): the log is checked record by
# record; the index is a cache of it, so it may lag behind (a crash or a failed
# write between the two appends) but every entry it has must name its record.
ARCHIVE_LOG_RE = re.compile(rb"^xmppd-archive 1 ([0-9A-F]{16})\n")
ARCHIVE_IDX_RE = re.compile(rb"^xmppd-arcidx 1 ([0-9A-F]{16})\n")


def parse_archive_log(data, allow_torn):
    """(generation, [(offset, length, id)]). Only a crash leaves a torn tail."""
    m = ARCHIVE_LOG_RE.match(data)
    if not m:
        if allow_torn and b"xmppd-archive 1 ".startswith(data[:16]) and len(data) < 33:
            return None, []
        raise Damaged("archive.log header %r" % data[:33])
    pos, recs, last = 33, [], 0
    while pos < len(data):
        rest = len(data) - pos
        ln = int.from_bytes(data[pos + 4:pos + 8], "big") if rest >= 8 else 0
        if rest < 12 or 12 + ln > rest:
            if not allow_torn:
                raise Damaged("archive.log: torn record at %d without a crash" % pos)
            break
        if data[pos:pos + 4] != b"MAMR":
            raise Damaged("archive.log: bad magic at %d" % pos)
        payload = data[pos + 12:pos + 12 + ln]
        crc = int.from_bytes(data[pos + 8:pos + 12], "big")
        if zlib.crc32(payload, zlib.crc32(data[pos + 4:pos + 8])) != crc:
            if allow_torn and pos + 12 + ln == len(data):
                break  # the last record, written in part
            raise Damaged("archive.log: checksum of the record at %d" % pos)
        rid = int.from_bytes(payload[:8], "big")
        klen = int.from_bytes(payload[9:11], "big")
        if rid <= last or 11 + klen > ln:
            raise Damaged("archive.log: record at %d out of order or malformed" % pos)
        el = ET.fromstring(payload[11 + klen:])
        if local(el.tag) != "message":
            raise Damaged("archive.log: record is not a message")
        recs.append((pos, 12 + ln, rid))
        last = rid
        pos += 12 + ln
    return m.group(1), recs


def parse_archive_idx(data, log, crashed):
    gen, recs = log
    m = ARCHIVE_IDX_RE.match(data)
    if not m or len(data) < 32:
        raise Damaged("archive.idx header %r" % data[:32])
    if m.group(1) != gen:
        if not crashed:
            raise Damaged("archive.idx of another generation without a crash")
        return
    n = (len(data) - 32) // 32
    if n > len(recs):
        raise Damaged("archive.idx has %d entries for %d records" % (n, len(recs)))
    for i in range(n):
        e = data[32 + 32 * i:64 + 32 * i]
        if zlib.crc32(e[:28]) != int.from_bytes(e[28:], "big"):
            if crashed and i == n - 1:
                return
            raise Damaged("archive.idx: entry %d checksum" % i)
        rid, off, ln = int.from_bytes(e[:8], "big"), int.from_bytes(e[8:16], "big"), \
            int.from_bytes(e[16:20], "big")
        if (off, ln, rid) != recs[i]:
            raise Damaged("archive.idx: entry %d does not name its record" % i)


def parse_pem(data):
    if not data.startswith(b"-----BEGIN ") or b"-----END " not in data:
        raise Damaged("not PEM")


def parse_secret(data):
    """The server's secret (STORAGE.md): a version line, 32 bytes in hex."""
    lines = data.split(b"\n")
    if (len(lines) != 3 or lines[0] != b"xmppd-secret 1" or lines[2] != b""
            or len(lines[1]) != 64 or lines[1].strip(b"0123456789ABCDEF")):
        raise Damaged("not a server secret")


class StoreScan:
    def __init__(self):
        self.accounts = []
        self.files = 0
        self.records = {}  # bare -> [payload]
        self.torn = 0
        self.tmp = []
        self.leftover_dirs = []
        self.rosters = {}  # bare -> (serial, {jid: name})
        self.torn_last = 0  # doc-last files a kill cut (allowed, see scan_store)


def valid_doc(path, name):
    with open(path, "rb") as f:
        data = f.read()
    try:
        parse_doc(name, data)
        return True
    except (Damaged, ValueError, UnicodeDecodeError):
        return False


def scan_store(data_dir, domain, crashed):
    """Parse every file under data_dir; raise Damaged (with the path) on the
    first one that does not parse. crashed: the server was SIGKILLed since the
    data directory was made, so the leftovers a crash may leave are allowed."""
    s = StoreScan()

    def check(path, fn):
        try:
            with open(path, "rb") as f:
                data = f.read()
            s.files += 1
            return fn(data)
        except Damaged as e:
            raise Damaged("%s: %s" % (path, e)) from None
        except (UnicodeDecodeError, ValueError, ET.ParseError) as e:
            raise Damaged("%s: %r" % (path, e)) from None

    for name in sorted(os.listdir(data_dir)):
        p = os.path.join(data_dir, name)
        if name == "accounts":
            continue
        if name in ("cert.pem", "key.pem"):
            check(p, parse_pem)
        elif name == "secret":
            check(p, parse_secret)
        elif name.endswith(".tmp") and crashed:
            s.tmp.append(p)
        elif name == "lost+found":
            continue
        else:
            raise Damaged("unexpected file in the data directory: %s" % p)
    adir = os.path.join(data_dir, "accounts")
    for name in sorted(os.listdir(adir)):
        p = os.path.join(adir, name)
        if name.startswith(".new.") or name.startswith(".del."):
            if not crashed:
                raise Damaged("leftover %s without a crash" % p)
            s.leftover_dirs.append(p)
            continue
        if not os.path.isdir(p):
            raise Damaged("not an account directory: %s" % p)
        bare = name  # the test accounts need no escaping
        files = sorted(os.listdir(p))
        if "account" not in files:
            raise Damaged("account directory without its account file: %s %s" % (p, files))
        s.accounts.append(bare)
        for fn in files:
            fp = os.path.join(p, fn)
            if fn == "account":
                check(fp, parse_account)
            elif fn == "offline.log":
                recs, torn = check(fp, lambda d: parse_offline(d, domain, crashed))
                s.records[bare] = recs
                s.torn += torn
            elif fn == "doc-last" and crashed and not valid_doc(fp, "last"):
                # Rewritten in place without fsync (STORAGE.md, "last"): a
                # kill during that write leaves it empty or torn, and the
                # server reads it as no record. Seen under load in make check.
                s.torn_last += 1
            elif fn.startswith("doc-") and not fn.endswith(".tmp") and not fn.endswith(".bad"):
                payload = check(fp, lambda d, name=fn[4:]: parse_doc(name, d))
                if fn == "doc-roster":
                    s.rosters[bare] = parse_roster(payload)
            elif fn == "archive.log":
                arc_log = check(fp, lambda d: parse_archive_log(d, crashed))
                ip = os.path.join(p, "archive.idx")
                if os.path.exists(ip):
                    check(ip, lambda d: parse_archive_idx(d, arc_log, crashed))
            elif fn == "archive.idx" and ("archive.log" in files or crashed):
                pass  # checked with its log (alone: a crash in a rewrite)
            elif fn.endswith(".tmp") and crashed:
                s.tmp.append(fp)
            else:
                raise Damaged("unexpected file %s (a *.bad means the server found damage)" % fp)
    return s


def cli_users(server):
    r = server.cli("users", timeout=20)
    assert r.returncode == 0, "xmppd users failed (%d): %s %s" % (r.returncode, r.stdout,
                                                                  r.stderr)
    return sorted(r.stdout.split())


# ---------------------------------------------------------------------------
# Raw client sessions
# ---------------------------------------------------------------------------


class LoginFailed(Exception):
    pass


class Session:
    """A bound stream over direct TLS with SASL PLAIN, on a RawConn."""

    def __init__(self, server, user, resource, timeout=10.0):
        self.server = server
        self.user = user
        self.jid = "%s@%s/%s" % (user, server.domain, resource)
        try:
            self.conn = RawConn(server.host, server.c2s_tls_port, timeout=timeout,
                                direct_tls=True, server_hostname=server.domain)
        except OSError as e:
            raise LoginFailed("connect: %r" % e) from None
        try:
            self.conn.open_stream(to=server.domain, timeout=timeout)
            ans = self.conn.sasl_plain(user, server.password(user), timeout=timeout)
            if ans is None or local(ans.tag) != "success":
                raise LoginFailed("SASL answer %r; %s" % (ans, self.conn.describe()))
            self.conn.restart_stream()
            self.conn.open_stream(to=server.domain, timeout=timeout)
            self.idx = 0
            self.other = []  # elements that arrived while waiting for an iq answer
            self.send("<iq type='set' id='bind'><bind xmlns='%s'><resource>%s</resource>"
                      "</bind></iq>" % (NS_BIND, esc(resource)))
            el = self.wait_iq("bind", timeout)
            if el is None or el.get("type") != "result":
                raise LoginFailed("bind answer %r; %s" % (el, self.conn.describe()))
        except LoginFailed:
            self.conn.close()
            raise
        except (AssertionError, OSError) as e:
            self.conn.close()
            raise LoginFailed(repr(e)) from None

    @property
    def dead(self):
        return self.conn.eof or self.conn.reader.error is not None

    def send(self, data):
        return self.conn.send(data)

    def poll(self, wait):
        """Read for up to `wait` seconds; return the new top-level elements."""
        self.conn._recv_some(wait)
        kids = self.conn.reader.children
        new = kids[self.idx:]
        self.idx = len(kids)
        return new

    def wait_iq(self, iq_id, timeout=10.0):
        """Wait for the answer to iq iq_id (returns it, or None on EOF/timeout).
        Other elements that arrive meanwhile are kept in self.other. Waits
        patience(timeout)."""
        deadline = time.monotonic() + patience(timeout)
        while True:
            for el in self.poll(0):
                if local(el.tag) == "iq" and el.get("id") == iq_id:
                    return el
                self.other.append(el)
            left = deadline - time.monotonic()
            if self.dead or left <= 0:
                return None
            self.conn._recv_some(min(left, 0.2))

    def ping(self, iq_id, timeout=10.0):
        self.send("<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>"
                  % (iq_id, self.server.domain, NS_PING))
        el = self.wait_iq(iq_id, timeout)
        assert el is not None and el.get("type") == "result", \
            "%s: ping %s not answered: %r" % (self.jid, iq_id, el)

    def roster(self, timeout=10.0):
        """{jid: name} of the roster."""
        self.send("<iq type='get' id='rget'><query xmlns='%s'/></iq>" % NS_ROSTER)
        el = self.wait_iq("rget", timeout)
        assert el is not None and el.get("type") == "result", "roster get: %r" % el
        q = el.find("{%s}query" % NS_ROSTER)
        return {it.get("jid"): it.get("name") or ""
                for it in (q.findall("{%s}item" % NS_ROSTER) if q is not None else [])}

    def close(self):
        try:
            if not self.dead:
                self.conn.send("</stream:stream>", timeout=2.0)
        except (AssertionError, OSError):
            pass
        self.conn.close()


def msg_xml(to, mid, body):
    return "<message to='%s' id='%s' type='chat'><body>%s</body></message>" % (to, mid, body)


def ping_xml(server, iq_id):
    return "<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>" % (iq_id, server.domain,
                                                                       NS_PING)


def body_text(el):
    b = el.find("{%s}body" % NS_CLIENT)
    return b.text if b is not None else None


def delay_from_us(el, domain):
    return [d for d in el.findall("{%s}delay" % NS_DELAY) if d.get("from") == domain]


def error_condition(el):
    err = el.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None
    conds = [local(c.tag) for c in err if c.tag.startswith("{%s}" % NS_STANZAS)
             and local(c.tag) != "text"]
    return (err.get("type"), conds[0] if conds else None)


def drain(server, user, resource, timeout=15.0):
    """Log in with initial presence and collect what arrives until the answer
    to a ping sent after the presence (offline delivery happens while the
    presence is handled, so it is all queued before the ping's answer).
    Returns the <message/> elements (errors excluded)."""
    s = Session(server, user, resource)
    try:
        s.send("<presence/>")
        s.ping("drain", timeout)
        return [el for el in s.other if local(el.tag) == "message" and el.get("type") != "error"]
    finally:
        s.close()


class Killer:
    """SIGKILL the server at a random moment, from another thread."""

    def __init__(self, server, delay):
        self.pid = server.proc.pid
        self.fired = threading.Event()
        self.timer = threading.Timer(delay, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.fired.set()

    def finish(self, server):
        """Wait for the kill and reap; assert the server died of our SIGKILL
        (not of a crash of its own before it)."""
        self.timer.join(10)
        assert self.fired.is_set(), "the kill timer did not fire"
        rc = server.kill9()
        assert rc == -signal.SIGKILL, "xmppd exited with %s before the kill" % rc


# ---------------------------------------------------------------------------
# 1. kill -9 while offline messages are stored and rosters change
# ---------------------------------------------------------------------------


def test_kill9_during_storage_and_roster_changes(server):
    server.require_managed()
    rnd = random.Random(SEED)
    print("XMPPD_CRASH_SEED=%d" % SEED)  # shown with a failure
    server.write_config({"max_offline_messages": 100000})
    server.restart()
    recipients = ["bob", "carol"]
    contacts = ["c%d@%s" % (i, server.domain) for i in range(6)]

    sent = {}        # message id -> recipient
    acked = set()    # ids whose following ping was answered
    received = {}    # id -> number of deliveries
    roster = {}      # alice's roster as last read back from the server
    stats = {"kills": 0, "roster_acked": 0, "roster_in_flight_applied": 0, "torn": 0,
             "tmp": 0, "leftover_dirs": 0, "unacked_delivered": 0}
    deadline = time.monotonic() + 70
    iterations = 0
    nmsg = 0

    # At least MIN_KILLS rounds however slow the machine; then until the
    # deadline (a time budget, not a rate: nothing asserts how many).
    while iterations < 50 and (stats["kills"] < MIN_KILLS or time.monotonic() < deadline):
        iterations += 1
        alice = Session(server, "alice", "crash%d" % iterations)
        assert alice.roster() == roster, "roster changed behind our back"
        # Pipelined: messages (each followed by a ping) and roster changes,
        # at most `window` unanswered at a time, until the kill.
        model = dict(roster)
        pending = []  # (ack id, kind, data) in the order sent
        roster_ops = []  # (ack id, state after the op), in order
        window = rnd.choice((1, 4, 16))
        killer = Killer(server, rnd.uniform(0.0, 0.4))
        t_end = time.monotonic() + 5
        while not alice.dead and time.monotonic() < t_end:
            while len(pending) < window:
                if rnd.random() < 0.25:
                    c = rnd.choice(contacts)
                    aid = "r%d" % nmsg
                    if c in model and rnd.random() < 0.5:
                        del model[c]
                        item = "<item jid='%s' subscription='remove'/>" % c
                    else:
                        model[c] = "n%d" % nmsg
                        item = "<item jid='%s' name='%s'/>" % (c, model[c])
                    roster_ops.append((aid, dict(model)))
                    pending.append((aid, "roster", None))
                    data = "<iq type='set' id='%s'><query xmlns='%s'>%s</query></iq>" % (
                        aid, NS_ROSTER, item)
                else:
                    to = rnd.choice(recipients)
                    mid = "m%d-%s" % (nmsg, to)
                    sent[mid] = to
                    aid = "a" + mid
                    pending.append((aid, "msg", mid))
                    data = msg_xml("%s@%s" % (to, server.domain), mid, mid) + \
                        ping_xml(server, aid)
                nmsg += 1
                if not alice.send(data):
                    break
            for el in alice.poll(0.02):
                if local(el.tag) == "message" and el.get("type") == "error":
                    pytest.fail("a message was bounced: %s" % ET.tostring(el))
                if local(el.tag) != "iq" or el.get("type") in ("set", "get"):
                    continue  # roster pushes (alice asked for the roster)
                aid = el.get("id")
                assert el.get("type") == "result", "answer %s" % ET.tostring(el)
                for i, (pid, kind, mid) in enumerate(pending):
                    if pid == aid:
                        break
                else:
                    pytest.fail("answer to an iq we did not send: %s" % ET.tostring(el))
                # Answers come in order: everything before it was handled too.
                assert i == 0, "answers out of order: %s before %s" % (aid, pending[0][0])
                pending.pop(0)
                if kind == "msg":
                    acked.add(mid)
                else:
                    stats["roster_acked"] += 1
                    roster = roster_ops.pop(0)[1]
        alice.close()
        killer.finish(server)
        stats["kills"] += 1

        # What the crash left: every file parses; only allowed leftovers.
        scan = scan_store(server.data_dir, server.domain, crashed=True)
        stats["torn"] += scan.torn
        stats["tmp"] = max(stats["tmp"], len(scan.tmp))
        stats["leftover_dirs"] += len(scan.leftover_dirs)
        for bare, recs in scan.records.items():
            for r in recs:
                mid = ET.fromstring(r).get("id")
                assert mid in sent and received.get(mid, 0) == 0, \
                    "%s: unexpected record %r" % (bare, r[:200])
        server.start()
        assert cli_users(server) == sorted(server.jid(u) for u in server.users)
        after = scan_store(server.data_dir, server.domain, crashed=True)
        assert not after.leftover_dirs, "store_init left %s" % after.leftover_dirs

        # The roster: the acknowledged state plus a prefix of what was in flight.
        check = Session(server, "alice", "check%d" % iterations)
        got = check.roster()
        check.close()
        candidates = [roster] + [st for _, st in roster_ops]
        assert got in candidates, "roster after kill -9: %r; acked %r; in flight %r" % (
            got, roster, roster_ops)
        stats["roster_in_flight_applied"] += candidates.index(got)
        roster = got

        # A clean delivery to one recipient: every acknowledged message not
        # delivered yet arrives now, exactly once; nothing unknown arrives.
        who = recipients[iterations % 2]
        msgs = drain(server, who, "d%d" % iterations)
        ids = []
        for el in msgs:
            mid = el.get("id")
            assert mid in sent and sent[mid] == who, "unknown message %s" % ET.tostring(el)
            assert body_text(el) == mid
            assert len(delay_from_us(el, server.domain)) == 1, "no delay stamp: %s" % (
                ET.tostring(el))
            ids.append(mid)
        dups = [m for m in ids if received.get(m) or ids.count(m) > 1]
        assert not dups, "delivered twice after a clean delivery: %s" % dups[:10]
        for m in ids:
            received[m] = 1
            stats["unacked_delivered"] += m not in acked
        missing = sorted(m for m in acked if sent[m] == who and m not in received)
        assert not missing, "acknowledged but not delivered to %s: %s" % (who, missing[:20])

    # Last round: everything left for either recipient, then nothing more.
    for who in recipients:
        for el in drain(server, who, "final"):
            mid = el.get("id")
            assert mid in sent and not received.get(mid), "dup/unknown %s" % ET.tostring(el)
            received[mid] = 1
            stats["unacked_delivered"] += mid not in acked
        assert drain(server, who, "empty") == []
    missing = sorted(m for m in acked if m not in received)
    assert not missing, "acknowledged, never delivered: %s" % missing[:20]
    final = scan_store(server.data_dir, server.domain, crashed=True)
    assert not any(final.records.values()), "logs not cleared: %r" % final.records
    assert stats["kills"] >= MIN_KILLS, "too few kills: %r" % stats
    print("\ncrash loop (seed %d): %d iterations, %d messages sent, %d acknowledged, %d "
          "delivered (%d of them unacknowledged in-flight ones), %r"
          % (SEED, iterations, len(sent), len(acked), len(received),
             stats["unacked_delivered"], stats))


# ---------------------------------------------------------------------------
# 2. kill -9 while stored messages are being delivered
# ---------------------------------------------------------------------------


class Pipeline(threading.Thread):
    """Sends messages to `to` (each followed by a ping) with at most `window`
    unanswered, until the stream dies; records when each ping was answered."""

    def __init__(self, sess, server, to, prefix, window, limit=5.0):
        super().__init__(daemon=True)
        self.sess, self.server, self.to, self.prefix = sess, server, to, prefix
        self.window, self.limit = window, limit
        self.sent = []    # ids in order
        self.acks = {}    # id -> monotonic time the ping answer was read
        self.bounced = []
        self.error = None

    def run(self):
        try:
            pending = []
            n = 0
            t_end = time.monotonic() + self.limit
            while not self.sess.dead and time.monotonic() < t_end:
                while len(pending) < self.window:
                    mid = "%s-%d" % (self.prefix, n)
                    n += 1
                    self.sent.append(mid)
                    pending.append(mid)
                    if not self.sess.send(msg_xml(self.to, mid, mid) +
                                          ping_xml(self.server, "a" + mid)):
                        break
                for el in self.sess.poll(0.02):
                    if local(el.tag) == "message" and el.get("type") == "error":
                        self.bounced.append(el.get("id"))
                    elif local(el.tag) == "iq" and el.get("id", "").startswith("a"):
                        mid = el.get("id")[1:]
                        if el.get("type") != "result" or not pending or pending[0] != mid:
                            raise AssertionError("unexpected answer %s (pending %s)"
                                                 % (ET.tostring(el), pending[:3]))
                        pending.pop(0)
                        self.acks[mid] = time.monotonic()
        except Exception as e:  # reported by the main thread
            self.error = e


def test_kill9_during_delivery(server):
    """Messages stored for bob, then bob logs in (initial presence: delivery)
    while alice keeps sending to him, and the server is killed at a random
    moment. Every message stored before bob's presence is delivered at least
    once; one delivered by a session that was then killed may come again
    (STORAGE.md: a crash between queueing and clearing re-delivers the batch
    once), one delivered by a session that ended cleanly never comes again."""
    server.require_managed()
    rnd = random.Random(SEED + 1)
    print("XMPPD_CRASH_SEED=%d" % SEED)  # shown with a failure
    server.write_config({"max_offline_messages": 100000})
    server.restart()
    bob_jid = server.jid("bob")
    sent = set()
    stored = set()     # acknowledged while bob had not sent his presence: on disk
    late_acked = set()  # acknowledged after bob's presence: stored or routed live
    sessions = []      # (killed, [(id, delayed)])
    per_iter = {}      # iteration -> (presence sent, stored messages bob received)
    stats = {"iterations": 0, "login_killed": 0, "bob_got_nothing": 0}
    deadline = time.monotonic() + 60
    it = 0
    while it < 50 and (stats["iterations"] < MIN_KILLS or time.monotonic() < deadline):
        it += 1
        alice = Session(server, "alice", "d%d" % it)
        # A backlog, acknowledged before bob shows up.
        pre = rnd.randint(1, 80)
        for k in range(pre):
            mid = "pre%d-%d" % (it, k)
            sent.add(mid)
            alice.send(msg_xml(bob_jid, mid, mid))
        alice.ping("backlog%d" % it, timeout=20)
        assert not [e for e in alice.other if e.get("type") == "error"], "bounced"
        stored.update("pre%d-%d" % (it, k) for k in range(pre))

        pipe = Pipeline(alice, server, bob_jid, "live%d" % it, rnd.choice((1, 4)))
        pipe.start()
        # Half the kills fall anywhere in bob's login, half within a few
        # milliseconds of his initial presence, where delivery happens.
        early = it % 2 == 0
        killer = Killer(server, rnd.uniform(0.0, 0.05)) if early else None
        t_presence = None
        got = []
        try:
            bob = Session(server, "bob", "b%d" % it)
        except LoginFailed as e:
            if not (killer and killer.fired.is_set()):
                raise AssertionError("bob's login failed without a kill: %s" % e) from None
            bob = None
            stats["login_killed"] += 1
        if bob is not None:
            t_presence = time.monotonic()
            bob.send("<presence/>")
        if killer is None:
            killer = Killer(server, rnd.uniform(0.0, 0.004))
        if bob is not None:
            t_end = time.monotonic() + 5
            while not bob.dead and time.monotonic() < t_end:
                for el in bob.poll(0.05):
                    if local(el.tag) == "message" and el.get("type") != "error":
                        got.append((el.get("id"), bool(delay_from_us(el, server.domain))))
            bob.close()
        killer.finish(server)
        pipe.join(10)
        alice.close()
        assert pipe.error is None, repr(pipe.error)
        assert not pipe.bounced, "bounced while bob was offline: %s" % pipe.bounced[:5]
        sent.update(pipe.sent)
        for mid, t in pipe.acks.items():
            (stored if t_presence is None or t < t_presence else late_acked).add(mid)
        per_iter[it] = [t_presence is not None, len([1 for _, d in got if d]), None]
        if bob is not None:
            sessions.append((True, got))
            stats["bob_got_nothing"] += not got
        stats["iterations"] += 1
        scan = scan_store(server.data_dir, server.domain, crashed=True)
        per_iter[it][2] = len(scan.records.get(bob_jid, []))
        server.start()

    # Clean deliveries: the rest, then nothing.
    for name in ("final", "empty"):
        msgs = drain(server, "bob", name)
        sessions.append((False, [(el.get("id"), bool(delay_from_us(el, server.domain)))
                                 for el in msgs]))
    assert sessions[-1][1] == [], "delivered again after a clean delivery: %s" % sessions[-1]
    scan = scan_store(server.data_dir, server.domain, crashed=True)
    assert not scan.records.get(bob_jid), "bob's log was not cleared"

    count = {}
    killed_with = {}  # id -> deliveries in sessions that were killed
    for killed, got in sessions:
        ids = [m for m, _ in got]
        assert len(set(ids)) == len(ids), "the same message twice in one session: %s" % ids
        for mid, delayed in got:
            assert mid in sent, "unknown message %s" % mid
            assert delayed or mid.startswith("live"), "backlog message without a delay %s" % mid
            count[mid] = count.get(mid, 0) + 1
            if killed and delayed:
                killed_with[mid] = killed_with.get(mid, 0) + 1
    lost = sorted(stored - set(count))
    dups = {m: n for m, n in count.items() if n > 1}
    too_many = {m: n for m, n in dups.items() if n > 1 + killed_with.get(m, 0)}
    print("\ndelivery crash loop (seed %d): %r; %d sent, %d stored before the presence, "
          "%d acknowledged after it, %d delivered (%d with a delay stamp), %d delivered "
          "more than once, %d stored ones lost, %d late ones never delivered"
          % (SEED, stats, len(sent), len(stored), len(late_acked), len(count),
             sum(1 for s in sessions for _, d in s[1] if d), len(dups), len(lost),
             len(late_acked - set(count))))
    if lost:
        # Say where: an iteration in which bob sent his presence and received
        # no stored message, yet his offline.log was gone after the kill, had
        # the log cleared before the batch left the process. The server logs
        # "offline: delivered N messages to JID" after the clear.
        log = server.log_text()
        where = []
        for i, (presence, received_n, left) in sorted(per_iter.items()):
            if presence and received_n == 0 and left == 0:
                m = re.search(r"offline: delivered (\d+) messages to %s/b%d\n" % (
                    re.escape(bob_jid), i), log)
                where.append("iteration %d: bob sent his presence, received nothing, and his "
                             "offline.log was gone after the kill%s" % (
                                 i, "; the server had logged 'delivered %s'" % m.group(1)
                                 if m else ""))
        pytest.fail("%d messages stored (acknowledged before bob's presence) were never "
                    "delivered, e.g. %s\n%s" % (len(lost), lost[:10], "\n".join(where)),
                    pytrace=False)
    assert not too_many, "delivered more often than the kills explain: %r" % too_many
    assert stats["iterations"] >= MIN_KILLS


# ---------------------------------------------------------------------------
# 3. a full disk
# ---------------------------------------------------------------------------


def send_acked(sess, stanza_xml, aid, timeout=10.0):
    """Send a stanza and a ping; return the elements that arrived before the
    ping's answer (an error for the stanza would be among them)."""
    sess.other = []
    sess.send(stanza_xml)
    sess.ping(aid, timeout)
    return sess.other


def bounced(elems, mid):
    for el in elems:
        if local(el.tag) == "message" and el.get("type") == "error" and el.get("id") == mid:
            return error_condition(el)
    return None


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                            path], capture_output=True, text=True, timeout=20)
    except OSError as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip() or "exit %d" % r.returncode)


@contextlib.contextmanager
def small_disk(server, size, config):
    """Run the server with its (small) data directory, accounts and certificate,
    moved onto a tmpfs of `size`, and the options `config`; stop it and unmount
    at the end. Skips the test where a tmpfs cannot be mounted."""
    server.require_managed()
    mnt = os.path.join(server.tmp, "small")
    err = mount_tmpfs(mnt, size)
    if err is not None:
        pytest.skip("cannot mount a tmpfs for the full-disk test (needs root): %s" % err)
    try:
        problems = server.stop()
        assert not problems, problems
        new_dir = os.path.join(mnt, "data")
        subprocess.run(["cp", "-a", server.data_dir, new_dir], check=True, timeout=20)
        server.data_dir = new_dir
        server.write_config(config)
        server.start()
        yield
    finally:
        problems = server.stop()
        r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=20)
    assert not problems, problems


def test_full_disk(server):
    """The data directory on a 256 KiB tmpfs, filled with offline messages."""
    server.adduser("dave", "dave-Secret-4")  # stays offline, has no log yet
    with small_disk(server, "256k", {"max_offline_messages": 100000}):
        _full_disk_scenario(server)


def archive_never(server, user):
    """Turn the XEP-0313 archive of user off (preferences default='never'),
    for tests about offline storage alone: a message the archive keeps is
    not bounced when offline storage is full."""
    s = Session(server, user, "prefs")
    try:
        ans = send_acked(s, "<iq type='set' id='mp'><prefs xmlns='urn:xmpp:mam:2' "
                            "default='never'/></iq>", "p-mp")
        assert [e.get("type") for e in ans if e.get("id") == "mp"] in (["result"], [])
    finally:
        s.close()


def _full_disk_scenario(server):
    bob = server.jid("bob")
    for user in ("alice", "bob", "dave"):
        archive_never(server, user)
    alice = Session(server, "alice", "fill")
    carol = Session(server, "carol", "online")
    carol.send("<presence/>")
    carol.ping("p0")
    roster_set = "<iq type='set' id='%s'><query xmlns='%s'><item jid='%s' name='%s'/></query></iq>"
    ans = send_acked(alice, roster_set % ("rs0", NS_ROSTER, "friend@x", "before"), "p-rs0")
    assert [e.get("type") for e in ans if e.get("id") == "rs0"] == ["result"]

    # Fill with 2 KB messages, then with small ones, until both bounce.
    stored = []
    n = 0
    for size, limit in ((2000, 300), (20, 400)):
        for _ in range(limit):
            mid = "f%d" % n
            n += 1
            got = send_acked(alice, msg_xml(bob, mid, mid + " " + "x" * size), "a" + mid)
            cond = bounced(got, mid)
            if cond is not None:
                assert cond == ("cancel", "service-unavailable"), cond
                break
            stored.append(mid)
        else:
            pytest.fail("the disk never filled up (%d messages stored)" % len(stored))
    assert len(stored) >= 20, "the disk was full early: %d stored" % len(stored)
    for k in range(3):  # stays full, stays clear
        mid = "g%d" % k
        assert bounced(send_acked(alice, msg_xml(bob, mid, mid), "a" + mid), mid) == (
            "cancel", "service-unavailable")
    # An account without a log: the log the failed append created is not left.
    dave = server.jid("dave")
    assert bounced(send_acked(alice, msg_xml(dave, "d0", "d0"), "a-d0"), "d0") == (
        "cancel", "service-unavailable")
    assert not os.path.exists(os.path.join(server.data_dir, "accounts", dave, "offline.log"))

    # Nothing torn, nothing left behind, the log holds exactly what was acknowledged.
    scan = scan_store(server.data_dir, server.domain, crashed=False)
    assert [ET.fromstring(r).get("id") for r in scan.records[bob]] == stored
    log = server.log_text()
    assert "No space left on device" in log, "the server did not log ENOSPC"

    # A roster change cannot be written: an error, and the old roster stays.
    ans = send_acked(alice, roster_set % ("rs1", NS_ROSTER, "friend@x", "after"), "p-rs1")
    res = [e for e in ans if e.get("id") == "rs1"]
    assert len(res) == 1 and res[0].get("type") == "error", [ET.tostring(e) for e in ans]
    assert alice.roster() == {"friend@x": "before"}
    scan = scan_store(server.data_dir, server.domain, crashed=False)  # no doc-roster.tmp

    # The CLI still works; adduser fails cleanly (no half-made account).
    assert cli_users(server) == sorted(server.jid(u) for u in server.users)
    r = server.cli("adduser", server.jid("erin"), input="erin-Secret-5\n")
    print("\nfull disk: %d messages stored (%d bytes of log), then bounced; adduser on the "
          "full disk: exit %d %s" % (len(stored), os.path.getsize(os.path.join(
              server.data_dir, "accounts", bob, "offline.log")), r.returncode,
              r.stderr.strip()[-200:]))
    if r.returncode == 0:
        server.users["erin"] = "erin-Secret-5"  # the account file fitted after all
    assert cli_users(server) == sorted(server.jid(u) for u in server.users)
    scan_store(server.data_dir, server.domain, crashed=False)  # no .new.* left

    # Online traffic between two connected clients keeps flowing.
    for k in range(5):
        alice.send(msg_xml(carol.jid, "live%d" % k, "live%d" % k))
        carol.send(msg_xml(alice.jid, "back%d" % k, "back%d" % k))
    for sess, prefix in ((carol, "live"), (alice, "back")):
        sess.other = []
        sess.ping("sync-" + prefix)
        deadline = time.monotonic() + patience(5)
        got = []
        while len(got) < 5 and time.monotonic() < deadline:
            got += [e.get("id") for e in sess.other + sess.poll(0.1)
                    if local(e.tag) == "message" and e.get("type") != "error"]
            sess.other = []
        assert got == ["%s%d" % (prefix, k) for k in range(5)], got

    # Delivery frees the space; storage works again.
    msgs = drain(server, "bob", "drain")
    assert [e.get("id") for e in msgs] == stored
    assert all(len(delay_from_us(e, server.domain)) == 1 for e in msgs)
    ans = send_acked(alice, roster_set % ("rs2", NS_ROSTER, "friend@x", "again"), "p-rs2")
    assert [e.get("type") for e in ans if e.get("id") == "rs2"] == ["result"], ans
    assert alice.roster() == {"friend@x": "again"}
    assert bounced(send_acked(alice, msg_xml(bob, "after", "after"), "a-after"), "after") is None
    assert [e.get("id") for e in drain(server, "bob", "drain2")] == ["after"]
    assert bounced(send_acked(alice, msg_xml(dave, "d1", "d1"), "a-d1"), "d1") is None
    assert [e.get("id") for e in drain(server, "dave", "drain")] == ["d1"]
    alice.close()
    carol.close()
    scan_store(server.data_dir, server.domain, crashed=False)


FSYNC_SHIM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* For offline logs only: fsync fails with EIO while the file $XMPPD_TEST_FSYNC_FAIL
 * exists (a disk that loses writes); while $XMPPD_TEST_FSYNC_SLOW exists it takes
 * 300 ms, and then appends a line to $XMPPD_TEST_FSYNC_DONE once it is done. */
static int exists(const char *env)
{
    const char *p = getenv(env);
    return p && access(p, F_OK) == 0;
}

static int is_offline_log(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0) {
        return 0;
    }
    path[n] = '\0';
    return strstr(path, "/offline.log") != NULL;
}

int fsync(int fd)
{
    if (!is_offline_log(fd)) {
        return (int)syscall(SYS_fsync, fd);
    }
    if (exists("XMPPD_TEST_FSYNC_FAIL")) {
        errno = EIO;
        return -1;
    }
    int slow = exists("XMPPD_TEST_FSYNC_SLOW");
    if (slow) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int rc = (int)syscall(SYS_fsync, fd);
    const char *done = getenv("XMPPD_TEST_FSYNC_DONE");
    if (slow && done) {
        int d = open(done, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (d >= 0) {
            (void)write(d, "synced\n", 7);
            close(d);
        }
    }
    return rc;
}
"""


def build_fsync_shim(tmp):
    cc = os.environ.get("CC") or "cc"
    src = os.path.join(tmp, "fsync_shim.c")
    lib = os.path.join(tmp, "fsync_shim.so")
    with open(src, "w") as f:
        f.write(FSYNC_SHIM)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "cannot build the fsync shim with %s: %s" % (cc, r.stderr)
    return lib


def start_with_fsync_shim(server):
    """Restart the server with the fsync shim preloaded. Returns the paths of
    its fail flag, slow flag and done file."""
    server.require_managed()
    problems = server.stop()
    assert not problems, problems
    paths = [os.path.join(server.tmp, n) for n in ("fsync-fail", "fsync-slow", "fsync-done")]
    env = dict(os.environ)
    env["LD_PRELOAD"] = build_fsync_shim(server.tmp)
    for key, path in zip(("FAIL", "SLOW", "DONE"), paths):
        env["XMPPD_TEST_FSYNC_" + key] = path
    # A sanitizer build wants its runtime first in the library list.
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                 "verify_asan_link_order=0"]))
    server.env = env
    server.start()
    return paths


def arrived_since(sess, start, wait):
    """Everything sess received after its first `start` elements, reading `wait`
    seconds more."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not sess.dead:
        sess.poll(0.05)
    return sess.conn.reader.children[start:]


def test_fsync_failure_bounces(server):
    """Offline appends are synced once per loop turn; when that fsync fails the
    messages it covered are taken back and bounced, and never delivered."""
    flag, _, _ = start_with_fsync_shim(server)
    bob = server.jid("bob")
    alice = Session(server, "alice", "sender")
    try:
        assert bounced(send_acked(alice, msg_xml(bob, "m1", "m1"), "a1"), "m1") is None
        open(flag, "w").close()
        # Two messages and a ping in one write: one loop turn, one failed sync.
        start = len(alice.conn.reader.children)
        alice.send(msg_xml(bob, "m2", "m2") + msg_xml(bob, "m3", "m3") +
                   ping_xml(server, "a2"))
        assert alice.wait_iq("a2") is not None
        # The bounces are queued when the sync fails, just before the turn's
        # output is written, so they may follow the ping's answer (in the same
        # write: wait_iq may have read them already).
        deadline = time.monotonic() + patience(5)
        got = alice.conn.reader.children[start:]
        while time.monotonic() < deadline and not (bounced(got, "m2") and bounced(got, "m3")):
            alice.poll(0.1)
            got = alice.conn.reader.children[start:]
        assert bounced(got, "m2") == ("cancel", "service-unavailable"), got
        assert bounced(got, "m3") == ("cancel", "service-unavailable"), got
        os.unlink(flag)
        start = len(alice.conn.reader.children)
        send_acked(alice, msg_xml(bob, "m4", "m4"), "a4")
        # A bounce would come with a4's answer or just after it: one more
        # round trip, and it would be there.
        alice.ping("after-m4")
        assert bounced(alice.conn.reader.children[start:], "m4") is None
        # A client that ends its stream right after a message still hears of
        # the failure: the sync comes before the stream's last bytes.
        open(flag, "w").close()
        start = len(alice.conn.reader.children)
        alice.send(msg_xml(bob, "m5", "m5") + "</stream:stream>")
        got = arrived_since(alice, start, patience(5))
        assert alice.dead, "the server did not end the stream"
        assert bounced(got, "m5") == ("cancel", "service-unavailable"), got
        os.unlink(flag)
    finally:
        alice.close()
    assert [e.get("id") for e in drain(server, "bob", "drain")] == ["m1", "m4"]
    log = server.log_text()
    assert "Input/output error" in log and "bouncing it" in log, log[-2000:]
    scan_store(server.data_dir, server.domain, crashed=False)


def test_sync_before_answer(server):
    """The ping answer after an offline message leaves only once the message's
    fsync has returned (the shim makes that fsync take 300 ms and notes when it
    is done)."""
    _, slow, done = start_with_fsync_shim(server)
    bob = server.jid("bob")
    alice = Session(server, "alice", "sender")
    try:
        open(slow, "w").close()
        for k in range(3):
            alice.send(msg_xml(bob, "s%d" % k, "s%d" % k) + ping_xml(server, "p%d" % k))
            assert alice.wait_iq("p%d" % k) is not None
            synced = 0
            if os.path.exists(done):
                with open(done) as f:
                    synced = f.read().count("synced")
            assert synced >= k + 1, "ping %d answered before the message's fsync returned" % k
        os.unlink(slow)
    finally:
        alice.close()
    assert [e.get("id") for e in drain(server, "bob", "drain")] == ["s0", "s1", "s2"]
