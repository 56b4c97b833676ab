/* test_precis_table.c: precis.c's Unicode lookups against the plain tables
 * they were made from. The property runs are stored by blocks, 3 bytes a run,
 * the canonical decompositions 5 bytes each (tools/gen-unicode.py);
 * precis_table_ref.h (gen-unicode.py --flat, checked by
 * check-unicode-table.sh) holds both as precis_table.c stored them before.
 * Every code point 0..0x10FFFF, and a few beyond, must give the same property
 * word and the same decomposition both ways, and every composition the same
 * result. precis.c is included, not linked, to reach its static lookups.
 * Prints "N passed, N failed". */
#include "../../precis.c"

#include "precis_table_ref.h"
#include "test.h"

#define NREF (sizeof(ref_prop_runs) / sizeof(ref_prop_runs[0]))

/* The old lookup: the last run whose start is <= c. */
static uint32_t ref_props(uint32_t c)
{
    size_t lo = 0, hi = NREF;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((ref_prop_runs[mid] >> 11) <= c) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return precis_prop_combo[ref_prop_runs[lo] & 0x7FF];
}

static void test_every_code_point(void)
{
    uint32_t bad = 0, first_bad = 0;

    for (uint32_t c = 0; c <= 0x10FFFF + 16; c++) {
        if (props(c) != ref_props(c) && bad++ == 0) {
            first_bad = c;
        }
    }
    if (bad) {
        fprintf(stderr, "%u code points differ, the first U+%04X: %07x, want %07x\n", bad,
                first_bad, props(first_bad), ref_props(first_bad));
    }
    CHECK(bad == 0);
    CHECK(props(0xFFFFFFFF) == ref_props(0xFFFFFFFF));
}

/* Run boundaries, one by one: the last code point of each run and the first
 * of the next, and the first code point of every block. */
static void test_boundaries(void)
{
    for (size_t i = 1; i < NREF; i++) {
        uint32_t start = ref_prop_runs[i] >> 11;
        CHECK(props(start) == ref_props(start));
        CHECK(props(start - 1) == ref_props(start - 1));
    }
    for (uint32_t c = 0; c < 0x110000; c += 1u << PRECIS_PROP_BLOCK_BITS) {
        CHECK(props(c) == ref_props(c));
    }
}

#define NREF_DC (sizeof(ref_dc_key) / sizeof(ref_dc_key[0]))

/* The old decompose_one(), table part: the code points that decompose by
 * arithmetic (Hangul) or by the CJK table are left out by the caller, and
 * no decomposition leads to one of them. */
static int ref_decompose(struct cps *dst, uint32_t c, int depth)
{
    size_t lo = 0, hi = NREF_DC;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t k = ref_dc_key[mid] & 0x1FFFFF;
        if (k == c) {
            uint32_t key = ref_dc_key[mid];
            uint32_t first = precis_dc_first[mid] | ((key >> 21) & 3) << 16;
            if (depth > 4 || ref_decompose(dst, first, depth + 1) < 0) {
                return -1;
            }
            return (key >> 23) ? ref_decompose(dst, precis_dc_second[key >> 23], depth + 1) : 0;
        }
        if (k < c) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return push(dst, c);
}

static void test_decompositions(void)
{
    static struct cps got, want;
    uint32_t bad = 0, first_bad = 0;

    for (uint32_t c = 0; c <= 0x10FFFF + 16; c++) {
        if ((c >= H_SBASE && c < H_SBASE + H_SCOUNT) || (c >= 0xF900 && cjk_unified(c))) {
            continue;
        }
        got.n = want.n = 0;
        int rg = decompose_one(&got, c, 0), rw = ref_decompose(&want, c, 0);
        if ((rg != rw || got.n != want.n || memcmp(got.c, want.c, got.n * sizeof(got.c[0]))) &&
            bad++ == 0) {
            first_bad = c;
        }
    }
    if (bad) {
        fprintf(stderr, "%u decompositions differ, the first U+%04X\n", bad, first_bad);
    }
    CHECK(bad == 0);
}

/* Every pair a decomposition has composes back to its code point unless it
 * is excluded (comp_idx, unchanged), and nothing else composes: each pair with
 * the second code point off by one, and Hangul by arithmetic. */
static void test_compositions(void)
{
    size_t composing = 0;
    uint32_t bad = 0;

    for (size_t i = 0; i < NREF_DC; i++) {
        uint32_t key = ref_dc_key[i], c = key & 0x1FFFFF;
        uint32_t first = precis_dc_first[i] | ((key >> 21) & 3) << 16;
        if ((key >> 23) == 0) {
            continue;
        }
        uint32_t second = precis_dc_second[key >> 23];
        int excluded = 1;
        for (size_t j = 0; j < precis_comp_len; j++) {
            excluded &= precis_comp_idx[j] != i;
        }
        uint32_t got = compose_pair(first, second);
        bad += excluded ? got == c : got != c;
        composing += !excluded;
        for (int d = -1; d <= 1; d += 2) {
            uint32_t other = 0;
            for (size_t j = 0; j < precis_comp_len; j++) {
                uint32_t k = ref_dc_key[precis_comp_idx[j]];
                if ((precis_dc_first[precis_comp_idx[j]] | ((k >> 21) & 3) << 16) == first &&
                    precis_dc_second[k >> 23] == second + d) {
                    other = k & 0x1FFFFF;
                }
            }
            bad += compose_pair(first, second + d) != other;
        }
    }
    CHECK(bad == 0);
    CHECK(composing == precis_comp_len);
    CHECK(compose_pair(0x1100, 0x1161) == 0xAC00); /* Hangul L + V */
    CHECK(compose_pair(0xAC00, 0x11A8) == 0xAC01); /* LV + T */
}

int main(void)
{
    test_every_code_point();
    test_boundaries();
    test_decompositions();
    test_compositions();
    TEST_REPORT();
}
