/* sha_ni.c: see sha_ni.h. Built everywhere; outside x86-64 with gcc or clang
 * sha_ni_available() is 0 and tls.c uses mbedTLS's portable block function.
 * The instruction sequence follows Intel's description of the extensions:
 * SHA1RNDS4 does four rounds, SHA1NEXTE derives the next E from the A of
 * four rounds earlier, SHA1MSG1/SHA1MSG2 (with an XOR) extend the schedule
 * W[t] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]) four words at a time. */
#include "sha_ni.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

int sha_ni_available(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19))) {
        return 0; /* SSSE3, SSE4.1 */
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        return 0;
    }
    return (b & (1u << 29)) != 0; /* SHA */
}

/* Message words for the group of rounds 4g..4g+3, each group in slot g % 4.
 * The round function (the last argument of SHA1RNDS4) changes every 20
 * rounds and must be a constant, hence one macro use per group. Each group
 * is done for every lane: independent blocks whose instructions interleave,
 * since one block alone waits on the latency of each SHA1RNDS4 in turn. */
#define NEXT_W(l, g)                                                                               \
    m[l][(g)&3] = _mm_sha1msg2_epu32(                                                              \
        _mm_xor_si128(_mm_sha1msg1_epu32(m[l][(g)&3], m[l][((g) + 1) & 3]), m[l][((g) + 2) & 3]),  \
        m[l][((g) + 3) & 3])
#define GROUP(g, f)                                                                                \
    for (int l = 0; l < lanes; l++)                                                                \
        do {                                                                                       \
            if ((g) >= 4) {                                                                        \
                NEXT_W(l, g);                                                                      \
            }                                                                                      \
            __m128i w = (g) == 0 ? _mm_add_epi32(e[l], m[l][0])                                    \
                                 : _mm_sha1nexte_epu32(prev[l], m[l][(g)&3]);                      \
            prev[l] = abcd[l];                                                                     \
            abcd[l] = _mm_sha1rnds4_epu32(abcd[l], w, f);                                          \
    } while (0)

#define TARGET __attribute__((target("sha,ssse3,sse4.1")))

/* lanes is a constant (1 or 2) wherever this is inlined: the lane loops
 * unroll and every array below lives in registers. */
TARGET __attribute__((always_inline)) static inline void
blocks(uint32_t *const state[], const unsigned char *const block[], const int lanes)
{
    /* Byte-reverse each 16-byte load: big-endian words, W[0] in the top lane. */
    const __m128i swap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd[2], e[2], abcd0[2], e0[2], prev[2], m[2][4];
    for (int l = 0; l < lanes; l++) {
        abcd[l] = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)state[l]), 0x1B);
        e[l] = _mm_set_epi32((int)state[l][4], 0, 0, 0);
        abcd0[l] = prev[l] = abcd[l];
        e0[l] = e[l];
        for (int i = 0; i < 4; i++) {
            m[l][i] = _mm_shuffle_epi8(
                _mm_loadu_si128((const __m128i *)(const void *)(block[l] + 16 * i)), swap);
        }
    }
    /* One line per round function (20 rounds each). */
    /* clang-format off */
    GROUP(0, 0); GROUP(1, 0); GROUP(2, 0); GROUP(3, 0); GROUP(4, 0);
    GROUP(5, 1); GROUP(6, 1); GROUP(7, 1); GROUP(8, 1); GROUP(9, 1);
    GROUP(10, 2); GROUP(11, 2); GROUP(12, 2); GROUP(13, 2); GROUP(14, 2);
    GROUP(15, 3); GROUP(16, 3); GROUP(17, 3); GROUP(18, 3); GROUP(19, 3);
    /* clang-format on */
    for (int l = 0; l < lanes; l++) {
        e[l] = _mm_sha1nexte_epu32(prev[l], e0[l]);
        abcd[l] = _mm_shuffle_epi32(_mm_add_epi32(abcd[l], abcd0[l]), 0x1B);
        _mm_storeu_si128((__m128i *)(void *)state[l], abcd[l]);
        state[l][4] = (uint32_t)_mm_extract_epi32(e[l], 3);
    }
}

TARGET void sha_ni_sha1_block(uint32_t state[5], const unsigned char block[64])
{
    uint32_t *const s[1] = {state};
    const unsigned char *const b[1] = {block};
    blocks(s, b, 1);
}

TARGET void sha_ni_sha1_block2(uint32_t sa[5], const unsigned char ba[64], uint32_t sb[5],
                               const unsigned char bb[64])
{
    uint32_t *const s[2] = {sa, sb};
    const unsigned char *const b[2] = {ba, bb};
    blocks(s, b, 2);
}

#else

int sha_ni_available(void)
{
    return 0;
}

void sha_ni_sha1_block(uint32_t state[5], const unsigned char block[64])
{
    (void)state;
    (void)block;
}

void sha_ni_sha1_block2(uint32_t sa[5], const unsigned char ba[64], uint32_t sb[5],
                        const unsigned char bb[64])
{
    (void)sa;
    (void)ba;
    (void)sb;
    (void)bb;
}

#endif
