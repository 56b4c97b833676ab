/* sha_ni.h: the SHA-1 block function on x86-64 CPUs with the SHA extensions.
 * PBKDF2 (tls.c) spends nearly all of a PLAIN login in 8,192 SHA-1 blocks;
 * these instructions do a block several times faster than portable C. */
#ifndef XMPPD_SHA_NI_H
#define XMPPD_SHA_NI_H

#include <stdint.h>

/* 1 when this CPU (and this build) can run sha_ni_sha1_block. */
int sha_ni_available(void);
/* One SHA-1 compression: state[0..4] = A..E, updated in place. */
void sha_ni_sha1_block(uint32_t state[5], const unsigned char block[64]);
/* Two independent compressions at once, nearly in the time of one. */
void sha_ni_sha1_block2(uint32_t sa[5], const unsigned char ba[64], uint32_t sb[5],
                        const unsigned char bb[64]);

#endif
