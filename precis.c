/* precis.c: PRECIS enforcement for JID parts (RFC 8264 §7, RFC 8265, RFC 7622).
 * Pure functions over caller buffers (see precis.h): strings are decoded into
 * a fixed code point array on the stack, mapped, normalised (NFC, UAX #15),
 * checked, and encoded back. The Unicode data comes from precis_table.c. */
#include "precis.h"

#include <stdint.h>
#include <string.h>

#include "limits.h"
#include "precis_table.h"
#include "utf8.h"

/* prop_combo bit fields (tools/gen-unicode.py). */
#define P_CLASS(p) ((p)&7)
#define P_IDNA(p) (((p) >> 3) & 7)
#define P_BIDI(p) (((p) >> 6) & 15)
#define P_CCC(p) (((p) >> 10) & 255)
#define P_QC(p) (((p) >> 18) & 1)
#define P_SCRIPT(p) (((p) >> 19) & 255)
#define P_JOINING(p) (((p) >> 27) & 7)

/* Derived property values (RFC 8264 §8, RFC 5892 §2). ID_DIS is FREE_PVAL. */
enum { CL_PVALID, CL_FREE, CL_CONTEXTJ, CL_CONTEXTO, CL_DISALLOWED };
/* Bidi classes as the bidi rule (RFC 5893 §2) tells them apart: R stands for
 * R and AL, N for ES, CS, ET, ON and BN, OTHER for every other class. */
enum { BD_L, BD_R, BD_AN, BD_EN, BD_N, BD_NSM, BD_OTHER };
/* Joining types (ArabicShaping.txt) that RFC 5892 A.1 names. */
enum { JT_U, JT_L, JT_R, JT_D, JT_T, JT_C };
/* Script ids fixed by the generator. */
enum {
    SC_NONE,
    SC_LATIN,
    SC_GREEK,
    SC_CYRILLIC,
    SC_HEBREW,
    SC_HAN,
    SC_HIRAGANA,
    SC_KATAKANA,
    SC_HANGUL,
    SC_BOPOMOFO
};

/* Hangul syllables are composed and decomposed by arithmetic (Unicode §3.12). */
#define H_SBASE 0xAC00
#define H_LBASE 0x1100
#define H_VBASE 0x1161
#define H_TBASE 0x11A7
#define H_LCOUNT 19
#define H_VCOUNT 21
#define H_TCOUNT 28
#define H_NCOUNT (H_VCOUNT * H_TCOUNT)
#define H_SCOUNT (H_LCOUNT * H_NCOUNT)

struct cps {
    uint32_t c[PRECIS_CP_MAX];
    size_t n;
};

static uint32_t props(uint32_t c)
{
    if (c > 0x10FFFF) {
        c = 0x10FFFF; /* the last run goes on (decode() never gives more) */
    }
    uint32_t off = c & ((1u << PRECIS_PROP_BLOCK_BITS) - 1);
    size_t lo = precis_prop_block[c >> PRECIS_PROP_BLOCK_BITS];
    size_t hi = precis_prop_block[(c >> PRECIS_PROP_BLOCK_BITS) + 1];

    /* The first run of the block that starts after c; c is in the run before
     * it, which came in from an earlier block when none of this block's runs
     * starts at or before c. Run 0 starts at 0, so lo >= 1 here. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)(precis_prop_run[mid] >> 3) <= off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return precis_prop_combo[(precis_prop_run[lo - 1] & 7) << 8 | precis_prop_id[lo - 1]];
}

/* Delta ranges: word 0 = start | (count-1) << 21 | (stride-1) << 31, word 1 = delta. */
static uint32_t range_map(const uint32_t *t, unsigned n, uint32_t c)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((t[2 * mid] & 0x1FFFFF) <= c) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return c;
    }
    uint32_t w = t[2 * (lo - 1)], start = w & 0x1FFFFF, count = ((w >> 21) & 0x3FF) + 1;
    uint32_t stride = (w >> 31) + 1;
    if ((c - start) % stride != 0 || (c - start) / stride >= count) {
        return c;
    }
    return c + t[2 * (lo - 1) + 1];
}

static int push(struct cps *s, uint32_t c)
{
    if (s->n >= PRECIS_CP_MAX) {
        return -1;
    }
    s->c[s->n++] = c;
    return 0;
}

static int decode(const char *in, size_t len, struct cps *s)
{
    const unsigned char *p = (const unsigned char *)in;

    s->n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t k = utf8_next(p + i, len - i, &c);
        if (k == 0 || push(s, c) < 0) {
            return -1;
        }
        i += k;
    }
    return 0;
}

static int encode(const struct cps *s, char *out, size_t outsz)
{
    size_t o = 0;

    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->c[i];
        size_t k = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (o + k + 1 > outsz) {
            return -1;
        }
        if (k == 1) {
            out[o] = (char)c;
        } else {
            static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
            for (size_t j = k - 1; j > 0; j--) {
                out[o + j] = (char)(0x80 | (c & 0x3F));
                c >>= 6;
            }
            out[o] = (char)(lead[k] | c);
        }
        o += k;
    }
    out[o] = '\0';
    return (int)o;
}

/* RFC 8265 §3.3.2 rule 3: toLowerCase. The one unconditional multi-code-point
 * lower mapping (SpecialCasing.txt) is U+0130; the conditional ones (final
 * sigma, Lithuanian, Turkish) are language-sensitive and not applied, as in
 * other PRECIS implementations, so U+03A3 always maps to U+03C3. */
static int map_lower(struct cps *dst, const struct cps *src)
{
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++) {
        uint32_t c = src->c[i];
        if (c == 0x130) {
            if (push(dst, 'i') < 0 || push(dst, 0x307) < 0) {
                return -1;
            }
        } else if (push(dst, range_map(precis_lower_map, precis_lower_map_len, c)) < 0) {
            return -1;
        }
    }
    return 0;
}

/* NFC of a CJK compatibility ideograph: its unified ideograph, or 0. */
static uint32_t cjk_unified(uint32_t c)
{
    uint32_t idx = 0;

    for (unsigned r = 0; r < precis_cjk_runs_len; r++) {
        uint32_t start = precis_cjk_runs[r] & 0x1FFFFF, n = (precis_cjk_runs[r] >> 21) + 1;
        if (c >= start && c < start + n) {
            idx += c - start;
            return precis_cjk_lo[idx] | (uint32_t)((precis_cjk_hi[idx / 8] >> (idx % 8)) & 1) << 17;
        }
        idx += n;
    }
    return 0;
}

static int decompose_one(struct cps *dst, uint32_t c, int depth)
{
    uint32_t u;

    if (c >= 0xF900 && (u = cjk_unified(c)) != 0) {
        return push(dst, u);
    }
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        uint32_t s = c - H_SBASE;
        if (push(dst, H_LBASE + s / H_NCOUNT) < 0 ||
            push(dst, H_VBASE + (s % H_NCOUNT) / H_TCOUNT) < 0) {
            return -1;
        }
        return s % H_TCOUNT ? push(dst, H_TBASE + s % H_TCOUNT) : 0;
    }
    /* Plane 0's entries, then plane 1's (gen-unicode.py: no others). */
    size_t lo = c >> 16 ? precis_dc_plane1 : 0, hi = c >> 16 ? precis_dc_len : precis_dc_plane1;
    uint32_t low = c >> 16 > 1 ? 0x10000 : c & 0xFFFF; /* beyond plane 1: not found */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t k = precis_dc_cp[mid];
        if (k == low) {
            uint32_t info = precis_dc_info[mid];
            uint32_t first = precis_dc_first[mid] | (info >> 7) << 16;
            /* Decompositions nest at most a few levels (UAX #15). */
            if (depth > 4 || decompose_one(dst, first, depth + 1) < 0) {
                return -1;
            }
            info &= 0x7F;
            return info ? decompose_one(dst, precis_dc_second[info], depth + 1) : 0;
        }
        if (k < low) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return push(dst, c);
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT) {
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    }
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT) {
        return a + (b - H_TBASE);
    }
    size_t lo = 0, hi = precis_comp_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t i = precis_comp_idx[mid];
        uint32_t f = precis_dc_first[i] | (uint32_t)(precis_dc_info[i] >> 7) << 16;
        uint32_t s = precis_dc_second[precis_dc_info[i] & 0x7F];
        if (f == a && s == b) {
            return precis_dc_cp[i] | (uint32_t)(i >= precis_dc_plane1) << 16;
        }
        if (f < a || (f == a && s < b)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0;
}

/* Canonical ordering (Unicode §3.11): stable sort of each run of non-starters
 * by combining class. Runs are at most PRECIS_MARKS_MAX long (checked by the
 * caller), so the insertion sort is bounded. */
static void reorder(struct cps *s)
{
    for (size_t i = 1; i < s->n; i++) {
        uint32_t c = s->c[i], cc = P_CCC(props(c));
        size_t j = i;
        if (cc == 0) {
            continue;
        }
        while (j > 0 && P_CCC(props(s->c[j - 1])) > cc) {
            s->c[j] = s->c[j - 1];
            j--;
        }
        s->c[j] = c;
    }
}

static void compose(struct cps *s)
{
    size_t out = 0, starter = 0;
    int have_starter = 0;
    uint32_t last_cc = 0;

    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->c[i], cc = P_CCC(props(c));
        if (have_starter) {
            int adjacent = out == starter + 1;
            if (adjacent || (last_cc != 0 && last_cc < cc)) {
                uint32_t comp = compose_pair(s->c[starter], c);
                if (comp) {
                    s->c[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) {
            starter = out;
            have_starter = 1;
        }
        last_cc = cc;
        s->c[out++] = c;
    }
    s->n = out;
}

/* UAX #15 NFC into dst. Strings made only of starters that are NFC_QC=Yes
 * are already normal (UAX #15 §9 quick check) and copied as they are. */
static int nfc(struct cps *dst, const struct cps *src)
{
    int quick = 1;
    size_t marks = 0;

    for (size_t i = 0; i < src->n; i++) {
        uint32_t p = props(src->c[i]);
        if (P_QC(p) || P_CCC(p)) {
            quick = 0;
        }
        /* UAX #15 §13 stream-safe text: a longer run of combining marks is
         * no name anyone types, and it would make the reordering quadratic. */
        marks = P_CCC(p) ? marks + 1 : 0;
        if (marks > PRECIS_MARKS_MAX) {
            return -1;
        }
    }
    dst->n = 0;
    if (quick) {
        memcpy(dst->c, src->c, src->n * sizeof(src->c[0]));
        dst->n = src->n;
        return 0;
    }
    for (size_t i = 0; i < src->n; i++) {
        if (decompose_one(dst, src->c[i], 0) < 0) {
            return -1;
        }
    }
    reorder(dst);
    compose(dst);
    return 0;
}

/* RFC 8264 §9.11 width mapping and RFC 7622 §3.2 (full stops for domains). */
static void map_width(struct cps *s, int domain)
{
    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->c[i];
        if (domain && (c == 0x3002 || c == 0xFF0E || c == 0xFF61)) {
            s->c[i] = '.';
        } else {
            s->c[i] = range_map(precis_width_map, precis_width_map_len, c);
        }
    }
}

/* RFC 8265 §4.2.2 rule 2: non-ASCII spaces (Zs) become U+0020. */
static void map_spaces(struct cps *s)
{
    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->c[i];
        if (c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F ||
            c == 0x205F || c == 0x3000) {
            s->c[i] = ' ';
        }
    }
}

static uint32_t script_at(const struct cps *s, size_t i)
{
    return i < s->n ? P_SCRIPT(props(s->c[i])) : SC_NONE;
}

/* RFC 5892 A.1: a ZERO WIDTH NON-JOINER at i sits between a letter that
 * joins to the left (L, D) and one that joins to the right (R, D), with only
 * transparent marks (T) in between: (L|D) T* ZWNJ T* (R|D). */
static int zwnj_joins(const struct cps *s, size_t from, size_t to, size_t i)
{
    size_t k = i;
    uint32_t jt = JT_T;

    while (k > from && (jt = P_JOINING(props(s->c[k - 1]))) == JT_T) {
        k--;
    }
    if (k == from || (jt != JT_L && jt != JT_D)) {
        return 0;
    }
    for (k = i + 1; k < to && (jt = P_JOINING(props(s->c[k]))) == JT_T; k++) {
    }
    return k < to && (jt == JT_R || jt == JT_D);
}

/* RFC 5892 Appendix A contextual rules for the code point at i of the label
 * s[from..to). */
static int context_ok(const struct cps *s, size_t from, size_t to, size_t i)
{
    uint32_t c = s->c[i];
    int virama = i > from && P_CCC(props(s->c[i - 1])) == 9;

    switch (c) {
    case 0x200C: /* A.1: Virama before, or between joining letters */
        return virama || zwnj_joins(s, from, to, i);
    case 0x200D: /* A.2: Virama before */
        return virama;
    case 0x00B7: /* A.3: between two 'l' (Catalan) */
        return i > from && i + 1 < to && s->c[i - 1] == 'l' && s->c[i + 1] == 'l';
    case 0x0375: /* A.4: followed by Greek */
        return i + 1 < to && script_at(s, i + 1) == SC_GREEK;
    case 0x05F3:
    case 0x05F4: /* A.5, A.6: preceded by Hebrew */
        return i > from && script_at(s, i - 1) == SC_HEBREW;
    case 0x30FB: /* A.7: with Hiragana, Katakana or Han in the label */
        for (size_t k = from; k < to; k++) {
            uint32_t sc = script_at(s, k);
            if (sc == SC_HIRAGANA || sc == SC_KATAKANA || sc == SC_HAN) {
                return 1;
            }
        }
        return 0;
    default: /* A.8, A.9: the two sets of Arabic-Indic digits do not mix */
        for (size_t k = from; k < to; k++) {
            uint32_t o = s->c[k];
            if ((c <= 0x669 && o >= 0x6F0 && o <= 0x6F9) ||
                (c >= 0x6F0 && o >= 0x660 && o <= 0x669)) {
                return 0;
            }
        }
        return 1;
    }
}

/* RFC 5893 §2, for s[from..to) that holds an R, AL or AN code point. */
static int bidi_ok(const struct cps *s, size_t from, size_t to)
{
    static const unsigned rtl_ok =
        1u << BD_R | 1u << BD_AN | 1u << BD_EN | 1u << BD_N | 1u << BD_NSM;
    static const unsigned ltr_ok = 1u << BD_L | 1u << BD_EN | 1u << BD_N | 1u << BD_NSM;
    uint32_t first = P_BIDI(props(s->c[from])), last = BD_NSM;
    int rtl = first == BD_R, en = 0, an = 0;

    if (!rtl && first != BD_L) {
        return 0; /* rule 1 */
    }
    for (size_t i = from; i < to; i++) {
        uint32_t b = P_BIDI(props(s->c[i]));
        if (!((rtl ? rtl_ok : ltr_ok) >> b & 1)) {
            return 0; /* rules 2 and 5 */
        }
        en |= b == BD_EN;
        an |= b == BD_AN;
        if (b != BD_NSM) {
            last = b;
        }
    }
    if (rtl) {
        return (last == BD_R || last == BD_EN || last == BD_AN) && !(en && an); /* rules 3 and 4 */
    }
    return last == BD_L || last == BD_EN; /* rule 6 */
}

static int has_rtl(const struct cps *s, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        uint32_t b = P_BIDI(props(s->c[i]));
        if (b == BD_R || b == BD_AN) {
            return 1;
        }
    }
    return 0;
}

/* The behavioural rules of RFC 8264 §7 for one label s[from..to): every code
 * point in the class, contextual ones in their context, the bidi rule. */
static int check_label(const struct cps *s, size_t from, size_t to, enum precis_profile prof,
                       int rtl)
{
    if (from == to) {
        return prof == PRECIS_DOMAIN ? 0 : -1; /* empty labels: jid.c says */
    }
    for (size_t i = from; i < to; i++) {
        uint32_t p = props(s->c[i]);
        uint32_t cl = prof == PRECIS_DOMAIN ? P_IDNA(p) : P_CLASS(p);
        if (cl == CL_PVALID || (cl == CL_FREE && prof == PRECIS_OPAQUE)) {
            continue;
        }
        if ((cl == CL_CONTEXTJ || cl == CL_CONTEXTO) && context_ok(s, from, to, i)) {
            continue;
        }
        return -1;
    }
    if (prof == PRECIS_DOMAIN) {
        /* RFC 5891 §5.4: a U-label does not start with a combining mark, and
         * an uppercase letter that NFC brought back is not a U-label. */
        if (P_CCC(props(s->c[from])) != 0) {
            return -1;
        }
        for (size_t i = from; i < to; i++) {
            if (range_map(precis_lower_map, precis_lower_map_len, s->c[i]) != s->c[i]) {
                return -1;
            }
        }
    }
    /* RFC 8265 §3.3.2 rule 5 (usernames) and RFC 5893 via RFC 5891 §5.4
     * (domains, label by label when any label is right-to-left). */
    if (prof != PRECIS_OPAQUE && rtl && !bidi_ok(s, from, to)) {
        return -1;
    }
    return 0;
}

static int check(const struct cps *s, enum precis_profile prof)
{
    int rtl = prof != PRECIS_OPAQUE && has_rtl(s, 0, s->n);
    size_t from = 0;

    if (s->n == 0) {
        return -1; /* RFC 8265 §3.3.3 and §4.2.3: the empty string is invalid */
    }
    if (prof != PRECIS_DOMAIN) {
        return check_label(s, 0, s->n, prof, rtl);
    }
    for (size_t i = 0; i <= s->n; i++) {
        if (i == s->n || s->c[i] == '.') {
            if (check_label(s, from, i, prof, rtl) < 0) {
                return -1;
            }
            from = i + 1;
        }
    }
    return 0;
}

/* ASCII-only input needs no table: ASCII is stable under NFC and width
 * mapping, and the bidi rule has nothing to say. Printable ASCII is PVALID in
 * IdentifierClass (RFC 8264 §9.11 ASCII7), space is valid in OpaqueString. */
static int ascii_fast(enum precis_profile prof, const char *in, size_t len, char *out, size_t outsz)
{
    if (len == 0 || len + 1 > outsz) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c > 0x7E || (c == 0x20 && prof != PRECIS_OPAQUE)) {
            return -1;
        }
        out[i] = (char)(prof != PRECIS_OPAQUE && c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[len] = '\0';
    return (int)len;
}

static int is_ascii(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)in[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static int enforce_once(enum precis_profile prof, const char *in, size_t len, char *out,
                        size_t outsz)
{
    struct cps a, b;

    if (is_ascii(in, len)) {
        return ascii_fast(prof, in, len, out, outsz);
    }
    if (decode(in, len, &a) < 0) {
        return -1;
    }
    /* RFC 8264 §7 order: width, additional mapping, case, normalisation,
     * directionality; then the class of every code point. */
    if (prof == PRECIS_OPAQUE) {
        map_spaces(&a);
    } else {
        map_width(&a, prof == PRECIS_DOMAIN);
        if (map_lower(&b, &a) < 0) {
            return -1;
        }
        a = b;
    }
    if (nfc(&b, &a) < 0 || check(&b, prof) < 0) {
        return -1;
    }
    return encode(&b, out, outsz);
}

int precis_enforce(enum precis_profile prof, const char *in, size_t len, char *out, size_t outsz)
{
    char again[4 * PRECIS_CP_MAX + 1];
    int n, m;

    if (in == NULL || out == NULL) {
        return -1;
    }
    n = enforce_once(prof, in, len, out, outsz);
    if (n <= 0 || is_ascii(out, (size_t)n)) {
        return n <= 0 ? -1 : n;
    }
    /* RFC 8264 §7: enforcement must be idempotent; a string whose result
     * changes when enforced again (mapping and NFC interacting) is refused
     * rather than given two spellings. */
    m = enforce_once(prof, out, (size_t)n, again, sizeof(again));
    if (m != n || memcmp(again, out, (size_t)n) != 0) {
        return -1;
    }
    return n;
}

enum {
    SB_LATIN = 1,
    SB_HAN = 2,
    SB_HIRAGANA = 4,
    SB_KATAKANA = 8,
    SB_HANGUL = 16,
    SB_BOPOMOFO = 32,
    SB_OTHER = 64
};

static uint32_t script_bit(uint32_t sc)
{
    switch (sc) {
    case SC_LATIN:
        return SB_LATIN;
    case SC_HAN:
        return SB_HAN;
    case SC_HIRAGANA:
        return SB_HIRAGANA;
    case SC_KATAKANA:
        return SB_KATAKANA;
    case SC_HANGUL:
        return SB_HANGUL;
    case SC_BOPOMOFO:
        return SB_BOPOMOFO;
    default:
        return SB_OTHER;
    }
}

/* mask is a subset of set */
static int within(uint32_t mask, uint32_t set)
{
    return (mask & ~set) == 0;
}

int precis_single_script(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t other = SC_NONE, mask = 0;

    for (size_t i = 0; i < len;) {
        uint32_t c, sc;
        size_t k = utf8_next(p + i, len - i, &c);
        if (k == 0) {
            return 0;
        }
        i += k;
        sc = P_SCRIPT(props(c));
        if (sc == SC_NONE) {
            continue; /* Common and Inherited go with any script */
        }
        if (script_bit(sc) == SB_OTHER) {
            if (other != SC_NONE && other != sc) {
                return 0;
            }
            other = sc;
        }
        mask |= script_bit(sc);
    }
    /* UTS #39 §5.2 "Highly Restrictive": one script, or a subset of Latin +
     * Han + Hiragana + Katakana, of Latin + Han + Bopomofo, or of Latin + Han
     * + Hangul. */
    return mask == SB_OTHER || within(mask, SB_LATIN | SB_HAN | SB_HIRAGANA | SB_KATAKANA) ||
           within(mask, SB_LATIN | SB_HAN | SB_BOPOMOFO) ||
           within(mask, SB_LATIN | SB_HAN | SB_HANGUL);
}
