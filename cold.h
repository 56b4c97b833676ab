/* cold.h: COLD marks a function that runs rarely (start-up, administration,
 * maintenance, the command line) in a file that is otherwise compiled for
 * speed (HOT_SRCS in the Makefile). gcc and clang optimise such a function for
 * size, place it apart from the hot code and treat a call to it as unlikely.
 * Which ones: a coverage run of tools/bench-builds.sh (BENCHMARKS.md, "cold
 * functions in hot files"): none runs per message, per login or per query. */
#ifndef XMPPD_COLD_H
#define XMPPD_COLD_H

#define COLD __attribute__((cold))

#endif
