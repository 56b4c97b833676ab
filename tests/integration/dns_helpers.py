"""A small test DNS responder (UDP on loopback, stdlib only) for the
federation tests: xmppd's s2s_resolver points at it. It answers SRV and A/AAAA
questions from a table, NXDOMAIN for names it does not know, and can be told
to stay silent or to send forged replies first (wrong id, wrong source port)
to check that xmppd ignores them (RFC 5452 basics)."""

import socket
import struct
import threading

T_A, T_AAAA, T_SRV = 1, 28, 33


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_question(pkt):
    """(id, name, qtype, bytes of the question section) of a query."""
    qid = struct.unpack("!H", pkt[:2])[0]
    pos, labels = 12, []
    while pkt[pos]:
        n = pkt[pos]
        labels.append(pkt[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    qtype = struct.unpack("!H", pkt[pos + 1:pos + 3])[0]
    return qid, ".".join(labels).lower(), qtype, pkt[12:pos + 5]


class DNSResponder:
    """records: {(name, type): [rdata, ...]} where an SRV rdata is
    (priority, weight, port, target) and an A/AAAA rdata an address string.
    A name that appears under some type answers NOERROR (maybe empty) for the
    others; any other name NXDOMAIN. silent: never answer (True) or not for
    these names (a set). forge: a function
    (name, qtype) -> records to send first in forged replies (one with a wrong
    id, one from another port), or None."""

    def __init__(self, records=None, silent=False, forge=None, ttl=30):
        self.records = {(n.lower(), t): v for (n, t), v in (records or {}).items()}
        self.silent = silent
        self.forge = forge
        self.ttl = ttl
        self.queries = []  # (name, qtype) as they came
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _rdata(self, qtype, rd):
        if qtype == T_SRV:
            prio, weight, port, target = rd
            return struct.pack("!HHH", prio, weight, port) + encode_name(target)
        if qtype == T_A:
            return socket.inet_pton(socket.AF_INET, rd)
        return socket.inet_pton(socket.AF_INET6, rd)

    def reply(self, qid, name, qtype, question, rrs, rcode=0):
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(rrs), 0, 0)
        body = b""
        for rd in rrs:
            data = self._rdata(qtype, rd)
            body += struct.pack("!HHHIH", 0xC00C, qtype, 1, self.ttl, len(data)) + data
        return head + question + body

    def _answer(self, name, qtype):
        known = any(n == name for n, _ in self.records)
        if not known:
            return [], 3
        return self.records.get((name, qtype), []), 0

    def _serve(self):
        while not self.stopped:
            try:
                pkt, peer = self.sock.recvfrom(2048)
                qid, name, qtype, question = read_question(pkt)
            except (OSError, IndexError, struct.error):
                if self.stopped:
                    return
                continue
            self.queries.append((name, qtype))
            if self.silent is True or (self.silent and name in self.silent):
                continue
            if self.forge:
                bad = self.forge(name, qtype)
                if bad is not None:
                    self.sock.sendto(self.reply(qid ^ 0x5555, name, qtype, question, bad), peer)
                    self.other.sendto(self.reply(qid, name, qtype, question, bad), peer)
            rrs, rcode = self._answer(name, qtype)
            self.sock.sendto(self.reply(qid, name, qtype, question, rrs, rcode), peer)

    def close(self):
        self.stopped = True
        self.sock.close()
        self.other.close()
