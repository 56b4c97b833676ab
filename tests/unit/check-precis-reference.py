#!/usr/bin/env python3
"""check-precis-reference.py FILTER: compare precis.c with another PRECIS
implementation, python3-precis-i18n (Debian), on every code point and on
100000 random short strings, in UsernameCaseMapped and OpaqueString.

FILTER is tests/unit/precis_filter. Code points new in a Unicode version the
reference's Python does not know are left out. Known, deliberate differences
are listed in KNOWN. Skipped (and says so) without precis_i18n. Prints one
"N passed, N failed" line."""

import os
import random
import subprocess
import sys

UCD = os.environ.get("UCD", "/usr/share/unicode")
# Halfwidth Hangul letters: RFC 8264 §9.11 maps them to their decomposition
# (U+FFA1 -> U+3131, a compatibility jamo that IdentifierClass refuses);
# precis_i18n applies full NFKC (-> U+1100, which then composes).
KNOWN = {("U", (0xFFA1, 0x1172, 0x1F56)), ("U", (0xFFA7, 0x1173))}


def main():
    try:
        import unicodedata
        from precis_i18n import get_profile
    except ImportError:
        print("check-precis-reference: python3-precis-i18n is not installed, skipped")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    ref_version = tuple(int(x) for x in unicodedata.unidata_version.split("."))
    newer = set()
    with open(os.path.join(UCD, "DerivedAge.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            rng, age = [x.strip() for x in line.split(";")]
            if tuple(int(x) for x in age.split(".")) > ref_version:
                a, _, b = rng.partition("..")
                newer.update(range(int(a, 16), int(b or a, 16) + 1))
    ok = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c not in newer]
    cases = [(c,) for c in ok]
    rnd = random.Random(1)
    pool = [c for c in ok if c < 0x3000 or 0xAC00 <= c < 0xAC40 or 0xFF00 <= c < 0xFFF0]
    for _ in range(100000):
        cases.append(tuple(rnd.choice(pool) for _ in range(rnd.randint(2, 5))))
    profiles = (("U", get_profile("UsernameCaseMapped")), ("O", get_profile("OpaqueString")))
    text = "".join("%s %s\n" % (p, " ".join("%x" % c for c in cs))
                   for cs in cases for p, _ in profiles)
    got = subprocess.run([sys.argv[1]], input=text, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    passed = failed = 0
    k = 0
    for cs in cases:
        s = "".join(map(chr, cs))
        for p, prof in profiles:
            try:
                want = prof.enforce(s).encode("utf-8").hex()
            except Exception:
                want = "ERR"
            mine = got[k]
            k += 1
            if mine == want or (p, cs) in KNOWN:
                passed += 1
                continue
            failed += 1
            if failed <= 20:
                print("check-precis-reference: %s %s: precis.c %s, precis_i18n %s" % (
                    p, " ".join("U+%04X" % c for c in cs), mine, want), file=sys.stderr)
    print("check-precis-reference: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
