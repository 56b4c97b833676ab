/* fuzz_common.h: helpers shared by the libFuzzer harnesses in tests/fuzz/.
 * A scratch directory on tmpfs (fsync there is cheap), recursive removal,
 * whole-file writes, and FUZZ_CHECK: an oracle failure prints what went wrong
 * and aborts, which libFuzzer reports as a crash like any sanitizer error. */
#ifndef XMPPD_FUZZ_COMMON_H
#define XMPPD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fuzz_fail(__FILE__, __LINE__, #cond);                                        \
        }                                                                                \
    } while (0)

void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* A fresh directory "<tmpfs>/xmppd-fuzz-<tag>-<pid>-XXXXXX", removed at exit.
 * Returns its path (static storage) or aborts. */
const char *fuzz_scratch_dir(const char *tag);
/* rm -rf path (the path itself too when self is non-zero). Returns 0 or -1. */
int fuzz_rm_tree(const char *path, int self);
/* Create or truncate path and write len bytes. Returns 0 or -1. */
int fuzz_write_file(const char *path, const void *data, size_t len);

#endif
