#!/usr/bin/env python3
"""gen-unicode.py: write precis_table.c, the Unicode tables precis.c needs.

Reads the Unicode Character Database as Debian's unicode-data package ships it
(/usr/share/unicode, or the directory given as the first argument) and writes a
compact C file to stdout. The output is committed, so building xmppd never needs
unicode-data; tests/unit/check-unicode-table.sh regenerates it and compares.

Tables (all sorted, searched by binary search in precis.c):
  runs          of code points sharing one combo of properties; code points
                whose properties no rule reads (disallowed everywhere) join the
                run before them. Stored in 3 bytes a run, by blocks of 8192
                code points (PROP_BLOCK_BITS):
  prop_block[]  the index of the first run that starts in each block (and one
                more: the number of runs);
  prop_run[]    (start & 0x1FFF) << 3 | combo >> 8, and
  prop_id[]     combo & 0xFF. A code point's run is the last run of its block
                that starts at or before it, else the run before the block's
                first (it comes in from an earlier block).
                `gen-unicode.py --flat` writes the same runs one uint32 each
                (start << 11 | combo) for tests/unit/test_precis_table.c.
  prop_combo[]  bits 0-2 PRECIS class (RFC 8264 §9), 3-5 IDNA2008 class
                (RFC 5892 §3), 6-9 bidi class (RFC 5893), 10-17 canonical
                combining class, 18 NFC_QC != Yes, 19-26 script (UTS #39
                single-script guard), 27-29 joining type (RFC 5892 A.1).
  lower_map[], width_map[]  delta ranges: toLowerCase (simple mappings, RFC 8265
                §3.3.2) and <wide>/<narrow> decompositions (RFC 8264 §9.11).
  dc_cp[], dc_first[], dc_info[]  canonical decompositions (NFC), 5 bytes
                each: code point & 0xFFFF (those from dc_plane1 on are in plane
                1), first & 0xFFFF, and second's index in dc_second[] (0: none)
                | first >> 16 << 7. Hangul done in code,
                CJK compatibility ideographs in cjk_runs[] (start | (count-1) << 21),
                cjk_lo[] (target & 0xFFFF) and cjk_hi[] (bit set: target in plane 2).
  comp_idx[]    indices of dc entries that compose, sorted by (first, second).
"""
import bisect
import os
import sys

FLAT = "--flat" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--flat"]
UCD = ARGS[0] if ARGS else "/usr/share/unicode"
MAXCP = 0x110000


def lines(name):
    with open(os.path.join(UCD, name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [x.strip() for x in line.split(";")]


def cprange(s):
    if ".." in s:
        a, b = s.split("..")
        return range(int(a, 16), int(b, 16) + 1)
    return range(int(s, 16), int(s, 16) + 1)


# --- UnicodeData.txt: general category, ccc, decompositions, simple lowercase
gc = ["Cn"] * MAXCP
ccc = [0] * MAXCP
decomp = {}  # cp -> (tag or None, [cps])
lower = {}
first = None
for f in lines("UnicodeData.txt"):
    cp = int(f[0], 16)
    if f[1].endswith(", First>"):
        first = cp
        continue
    rng = range(first, cp + 1) if f[1].endswith(", Last>") else [cp]
    for c in rng:
        gc[c] = f[2]
        ccc[c] = int(f[3])
    if f[5]:
        parts = f[5].split()
        tag = parts[0] if parts[0].startswith("<") else None
        cps = [int(x, 16) for x in (parts[1:] if tag else parts)]
        decomp[cp] = (tag, cps)
    if f[13]:
        lower[cp] = int(f[13], 16)


def props(name, wanted):
    out = {w: set() for w in wanted}
    for f in lines(name):
        if len(f) >= 2 and f[1] in out:
            out[f[1]].update(cprange(f[0]))
    return out


pl = props("PropList.txt", ["Noncharacter_Code_Point", "White_Space"])
dcp = props("DerivedCoreProperties.txt", ["Default_Ignorable_Code_Point"])
dnp = props("DerivedNormalizationProps.txt", ["Full_Composition_Exclusion", "Changes_When_NFKC_Casefolded"])
nfkc_no, nfc_nm = set(), set()
for f in lines("DerivedNormalizationProps.txt"):
    if f[1] == "NFKC_QC" and f[2] == "N":
        nfkc_no.update(cprange(f[0]))
    if f[1] == "NFC_QC":
        nfc_nm.update(cprange(f[0]))
hst = set()
for f in lines("HangulSyllableType.txt"):
    if f[1] in ("L", "V", "T"):
        hst.update(cprange(f[0]))
bidi = ["L"] * MAXCP
for f in lines("extracted/DerivedBidiClass.txt"):
    for c in cprange(f[0]):
        bidi[c] = f[1]
# Joining types (RFC 5892 A.1: ZERO WIDTH NON-JOINER between joining letters).
JT = {"U": 0, "L": 1, "R": 2, "D": 3, "T": 4, "C": 5}
joining = [0] * MAXCP
for f in lines("extracted/DerivedJoiningType.txt"):
    for c in cprange(f[0]):
        joining[c] = JT[f[1]]
script = ["Unknown"] * MAXCP
for f in lines("Scripts.txt"):
    for c in cprange(f[0]):
        script[c] = f[1]
ignorable_blocks = set()
for f in lines("Blocks.txt"):
    if f[1] in ("Combining Diacritical Marks for Symbols", "Musical Symbols",
                "Ancient Greek Musical Notation"):
        ignorable_blocks.update(cprange(f[0]))

# RFC 5892 §2.6 Exceptions (shared by RFC 8264 §9.6).
EXC = {0x00DF: "PVALID", 0x03C2: "PVALID", 0x06FD: "PVALID", 0x06FE: "PVALID",
       0x0F0B: "PVALID", 0x3007: "PVALID", 0x00B7: "CONTEXTO", 0x0375: "CONTEXTO",
       0x05F3: "CONTEXTO", 0x05F4: "CONTEXTO", 0x30FB: "CONTEXTO", 0x0640: "DISALLOWED",
       0x07FA: "DISALLOWED", 0x302E: "DISALLOWED", 0x302F: "DISALLOWED",
       0x3031: "DISALLOWED", 0x3032: "DISALLOWED", 0x3033: "DISALLOWED",
       0x3034: "DISALLOWED", 0x3035: "DISALLOWED", 0x303B: "DISALLOWED"}
for c in list(range(0x0660, 0x066A)) + list(range(0x06F0, 0x06FA)):
    EXC[c] = "CONTEXTO"

LETTER_DIGITS = {"Ll", "Lu", "Lo", "Nd", "Lm", "Mn", "Mc"}
OTHER_LETTER_DIGITS = {"Lt", "Nl", "No", "Me"}
SYMBOLS = {"Sm", "Sc", "Sk", "So"}
PUNCT = {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}
NONCHAR = pl["Noncharacter_Code_Point"]


def unassigned(c):
    return gc[c] == "Cn" and c not in NONCHAR


def cjk_compat(c):
    """CJK compatibility ideographs: NFC maps each to a unified ideograph, one
    by one. About 1000 of them, so they get a table of their own (cjk_runs,
    cjk_lo, cjk_hi) that costs 2 bytes each instead of 5 in dc_cp/dc_first/dc_info."""
    return c in decomp and decomp[c][0] is None and len(decomp[c][1]) == 1 and \
        script[decomp[c][1][0]] == "Han"


def precis_class(c):
    """RFC 8264 §8: 0 PVALID, 1 FREE_PVAL (ID_DIS), 2 CONTEXTJ, 3 CONTEXTO, 4 DISALLOWED."""
    if c in EXC:
        return {"PVALID": 0, "CONTEXTO": 3, "DISALLOWED": 4}[EXC[c]]
    if unassigned(c):
        return 4
    if 0x21 <= c <= 0x7E:
        return 0
    if c in (0x200C, 0x200D):
        return 2
    if c in hst:
        return 4
    if c in dcp["Default_Ignorable_Code_Point"] or c in NONCHAR:
        return 4
    if gc[c] == "Cc":
        return 4
    if c in nfkc_no:
        return 1
    if gc[c] in LETTER_DIGITS:
        return 0
    if gc[c] in OTHER_LETTER_DIGITS or gc[c] == "Zs" or gc[c] in SYMBOLS or gc[c] in PUNCT:
        return 1
    return 4


def idna_class(c):
    """RFC 5892 §3: 0 PVALID, 2 CONTEXTJ, 3 CONTEXTO, 4 DISALLOWED (or UNASSIGNED)."""
    if c in EXC:
        return {"PVALID": 0, "CONTEXTO": 3, "DISALLOWED": 4}[EXC[c]]
    if unassigned(c):
        return 4
    if (0x61 <= c <= 0x7A) or (0x30 <= c <= 0x39) or c == 0x2D:
        return 0
    if c in (0x200C, 0x200D):
        return 2
    if c in dnp["Changes_When_NFKC_Casefolded"]:
        return 4
    if c in dcp["Default_Ignorable_Code_Point"] or c in pl["White_Space"] or c in NONCHAR:
        return 4
    if c in ignorable_blocks or c in hst:
        return 4
    return 0 if gc[c] in LETTER_DIGITS else 4


# RFC 5893 §2 treats R and AL alike, and ES, CS, ET, ON and BN alike (allowed
# in either direction, never last), so they share a value: fewer runs.
BIDI = {"L": 0, "R": 1, "AL": 1, "AN": 2, "EN": 3, "ES": 4, "CS": 4, "ET": 4, "ON": 4, "BN": 4,
        "NSM": 5}  # every other class is 6

# Code points that appear in a canonical decomposition keep their exact ccc even
# when disallowed: NFC reorders and composes them before the class is checked.
in_decomp = set()
for c, (tag, cps) in decomp.items():
    if tag is None:
        in_decomp.update(cps)
        in_decomp.add(c)
# Conjoining jamo compose by arithmetic (Unicode §3.12), not by table.
in_decomp.update(range(0x1100, 0x1113), range(0x1161, 0x1176), range(0x11A8, 0x11C3))

# Fixed ids first: precis.c names these (enum precis_script).
scripts = ["Common", "Latin", "Greek", "Cyrillic", "Hebrew", "Han", "Hiragana", "Katakana",
           "Hangul", "Bopomofo"]
combos, combo_id = [], {}
# A code point no rule reads (disallowed in both classes, in no decomposition)
# takes one shared "disallowed" combo, so such gaps merge with each other.
DIS = 4 | 4 << 3
combo_id[DIS] = 0
combos.append(DIS)

def cp_props(c):
    """(value, mask of the bits some rule reads) for one code point."""
    pc, ic = precis_class(c), idna_class(c)
    if pc == 4 and ic == 4 and c not in in_decomp:
        return DIS, 0x3F
    b = BIDI.get(bidi[c], 6)
    s = script[c]
    sid = 0
    if s not in ("Common", "Inherited", "Unknown") and pc == 0:
        if s not in scripts:
            scripts.append(s)
        sid = scripts.index(s)
    qc = 1 if c in nfc_nm else 0
    mask = 0xFFFFFFFF
    if lower.get(c, c) != c:
        mask &= ~(7 << 3)  # domains are lowercased before their class is read
    val = pc | ic << 3 | b << 6 | ccc[c] << 10 | qc << 18 | sid << 19 | joining[c] << 27
    return val, mask


# Greedy runs: a code point joins the current run when they agree on every bit
# both of them care about.
run_start, run_val, run_mask = [], [], []
for c in range(MAXCP):
    val, mask = cp_props(c)
    if run_val and (val ^ run_val[-1]) & mask & run_mask[-1] == 0:
        run_val[-1] = (run_val[-1] & run_mask[-1]) | (val & mask & ~run_mask[-1])
        run_mask[-1] |= mask
        continue
    run_start.append(c)
    run_val.append(val & mask)
    run_mask.append(mask)
runs = []
for c, val in zip(run_start, run_val):
    if val not in combo_id:
        combo_id[val] = len(combos)
        combos.append(val)
    runs.append(c << 11 | combo_id[val])
assert len(combos) < 2048 and len(scripts) < 256 and max(combos) < 1 << 30

# Blocked runs (3 bytes a run instead of 4): the first run of each block of
# 1 << PROP_BLOCK_BITS code points (precis_table.h), then each run's start
# within its block and its combo, 13 + 11 bits.
PROP_BLOCK_BITS = 13
prop_block = [bisect.bisect_left(run_start, b << PROP_BLOCK_BITS)
              for b in range((MAXCP >> PROP_BLOCK_BITS) + 1)]
prop_run = [(c & ((1 << PROP_BLOCK_BITS) - 1)) << 3 | (r & 0x7FF) >> 8
            for c, r in zip(run_start, runs)]
prop_id = [r & 0xFF for r in runs]
assert len(runs) < 1 << 16 and MAXCP % (1 << PROP_BLOCK_BITS) == 0


def delta_ranges(m):
    """Map {cp: cp'} to (start, count, stride, delta) ranges."""
    out = []
    for c in sorted(m):
        d = m[c] - c
        if out:
            s, n, st, dd = out[-1]
            last = s + (n - 1) * st
            if dd == d and (n == 1 and c - last in (1, 2) or n > 1 and c - last == st) and n < 1024:
                out[-1] = (s, n + 1, c - last, dd)
                continue
        out.append((c, 1, 1, d))
    return out


lower_r = delta_ranges({c: t for c, t in lower.items() if t != c})
width = {c: cps[0] for c, (tag, cps) in decomp.items() if tag in ("<wide>", "<narrow>")}
assert all(len(decomp[c][1]) == 1 for c in width)
width_r = delta_ranges(width)

# Canonical decompositions (single level; precis.c recurses), Hangul excluded.
dcs = sorted((c, cps) for c, (tag, cps) in decomp.items() if tag is None and not cjk_compat(c))
seconds = sorted({cps[1] for c, cps in dcs if len(cps) == 2})
assert len(seconds) < 128, len(seconds)
dc_key, dc_first = [], []
for c, cps in dcs:
    b = seconds.index(cps[1]) + 1 if len(cps) == 2 else 0
    assert cps[0] >> 16 < 4
    dc_key.append(c | (cps[0] >> 16) << 21 | b << 23)
    dc_first.append(cps[0] & 0xFFFF)
# Packed: planes 0 and 1 only, first in plane 0 or 1, under 128 seconds.
assert all(c >> 16 < 2 and cps[0] >> 16 < 2 for c, cps in dcs)
dc_plane1 = sum(1 for c, _ in dcs if c < 0x10000)
dc_cp = [c & 0xFFFF for c, _ in dcs]
dc_info = [k >> 23 | (k >> 21 & 1) << 7 for k in dc_key]
cjk = sorted(c for c in decomp if cjk_compat(c))
cjk_runs = []
for c in cjk:
    if cjk_runs and cjk_runs[-1][0] + cjk_runs[-1][1] == c:
        cjk_runs[-1][1] += 1
    else:
        cjk_runs.append([c, 1])
cjk_target = [decomp[c][1][0] for c in cjk]
assert all(t >> 16 in (0, 2) for t in cjk_target) and all(n <= 2048 for _, n in cjk_runs)
cjk_hi = [0] * ((len(cjk) + 7) // 8)
for i, t in enumerate(cjk_target):
    if t >> 16:
        cjk_hi[i // 8] |= 1 << (i % 8)
comp = [i for i, (c, cps) in enumerate(dcs)
        if len(cps) == 2 and c not in dnp["Full_Composition_Exclusion"]]
comp.sort(key=lambda i: (dcs[i][1][0], dcs[i][1][1]))


def emit(name, ctype, vals, per_line, fmt):
    print("const %s %s[%d] = {" % (ctype, name, len(vals)))
    for i in range(0, len(vals), per_line):
        print("    " + ", ".join(fmt % v for v in vals[i:i + per_line]) + ",")
    print("};")


def emit_ranges(name, rs):
    vals = []
    for s, n, st, d in rs:
        assert n <= 1024 and -(1 << 20) < d < (1 << 20)
        vals.append(s | (n - 1) << 21 | (st - 1) << 31)
        vals.append(d & 0xFFFFFFFF)
    emit(name, "uint32_t", vals, 6, "0x%08x")


if FLAT:
    print("/* precis_table_ref.h: generated by tools/gen-unicode.py --flat. Do not edit.")
    print(" * The runs of precis_table.c one uint32_t each, start << 11 | combo (an index")
    print(" * in precis_prop_combo[], unchanged), as they")
    print(" * were stored before the blocked layout, and the decompositions as they were")
    print(" * stored before their packed layout: what tests/unit/test_precis_table.c")
    print(" * compares precis.c's lookups with, code point by code point. */")
    print("static ", end="")
    emit("ref_prop_runs", "uint32_t", runs, 6, "0x%08x")
    print("/* Decompositions as stored before: cp | first >> 16 << 21 | second << 23;")
    print(" * dc_first[], dc_second[] and comp_idx[] are unchanged. */")
    print("static ", end="")
    emit("ref_dc_key", "uint32_t", dc_key, 6, "0x%08x")
    sys.exit(0)

version = "unknown"
with open(os.path.join(UCD, "DerivedCoreProperties.txt"), encoding="utf-8") as f:
    version = f.readline().strip("# \n")
print("/* precis_table.c: generated by tools/gen-unicode.py from %s. Do not edit." % version)
print(" * Layouts are described in tools/gen-unicode.py and precis.c. */")
print('#include "precis_table.h"')
print()
print("#if PRECIS_PROP_BLOCK_BITS != %d" % PROP_BLOCK_BITS)
print("#error precis_table.h and tools/gen-unicode.py disagree on PRECIS_PROP_BLOCK_BITS")
print("#endif")
print()
print("/* Scripts with an id in prop_combo (0 = Common, Inherited or not a letter):")
for i in range(1, len(scripts), 8):
    print(" *  " + " ".join("%d=%s" % (j, scripts[j]) for j in range(i, min(i + 8, len(scripts)))))
print(" */")
emit("precis_prop_block", "uint16_t", prop_block, 10, "%d")
emit("precis_prop_run", "uint16_t", prop_run, 8, "0x%04x")
emit("precis_prop_id", "uint8_t", prop_id, 12, "0x%02x")
emit("precis_prop_combo", "uint32_t", combos, 6, "0x%07x")
emit_ranges("precis_lower_map", lower_r)
print("const unsigned precis_lower_map_len = %d;" % len(lower_r))
emit_ranges("precis_width_map", width_r)
print("const unsigned precis_width_map_len = %d;" % len(width_r))
emit("precis_dc_cp", "uint16_t", dc_cp, 8, "0x%04x")
emit("precis_dc_first", "uint16_t", dc_first, 8, "0x%04x")
emit("precis_dc_info", "uint8_t", dc_info, 12, "0x%02x")
print("const unsigned precis_dc_len = %d;" % len(dc_key))
print("const unsigned precis_dc_plane1 = %d;" % dc_plane1)
emit("precis_dc_second", "uint32_t", [0] + seconds, 8, "0x%05x")
emit("precis_cjk_runs", "uint32_t", [c | (n - 1) << 21 for c, n in cjk_runs], 6, "0x%08x")
print("const unsigned precis_cjk_runs_len = %d;" % len(cjk_runs))
emit("precis_cjk_lo", "uint16_t", [t & 0xFFFF for t in cjk_target], 8, "0x%04x")
emit("precis_cjk_hi", "uint8_t", cjk_hi, 12, "0x%02x")
emit("precis_comp_idx", "uint16_t", comp, 10, "%d")
print("const unsigned precis_comp_len = %d;" % len(comp))
print("/* sizes: runs %d, combos %d, lower %d, width %d, dc %d, cjk %d/%d, comp %d */" % (
    len(runs), len(combos), len(lower_r), len(width_r), len(dc_key), len(cjk_runs), len(cjk),
    len(comp)), file=sys.stderr)
