/* precis_table.h: the Unicode tables precis.c reads, generated into
 * precis_table.c by tools/gen-unicode.py from the Unicode Character Database
 * (Debian's unicode-data). Data only; precis.c is the one reader. Layouts are
 * described in tools/gen-unicode.py. */
#ifndef XMPPD_PRECIS_TABLE_H
#define XMPPD_PRECIS_TABLE_H

#include <stdint.h>

/* Property runs by blocks of 1 << PRECIS_PROP_BLOCK_BITS code points
 * (gen-unicode.py: 3 bytes a run). */
#define PRECIS_PROP_BLOCK_BITS 13
extern const uint16_t precis_prop_block[];
extern const uint16_t precis_prop_run[];
extern const uint8_t precis_prop_id[];
extern const uint32_t precis_prop_combo[];
extern const uint32_t precis_lower_map[];
extern const unsigned precis_lower_map_len;
extern const uint32_t precis_width_map[];
extern const unsigned precis_width_map_len;
extern const uint16_t precis_dc_cp[];
extern const uint16_t precis_dc_first[];
extern const uint8_t precis_dc_info[];
extern const unsigned precis_dc_len;
extern const unsigned precis_dc_plane1;
extern const uint32_t precis_dc_second[];
extern const uint32_t precis_cjk_runs[];
extern const unsigned precis_cjk_runs_len;
extern const uint16_t precis_cjk_lo[];
extern const uint8_t precis_cjk_hi[];
extern const uint16_t precis_comp_idx[];
extern const unsigned precis_comp_len;

#endif
