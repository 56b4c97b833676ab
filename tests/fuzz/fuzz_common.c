/* fuzz_common.c: scratch directories, file helpers and the oracle failure hook
 * for the harnesses (see fuzz_common.h). Used only by fuzz builds: nothing here
 * is part of xmppd. */
#include "fuzz_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[256];

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz oracle failed: %s\n", file, line, what);
    abort();
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

int fuzz_rm_tree(const char *path, int self)
{
    if (self) {
        return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    DIR *d = opendir(path);
    if (!d) {
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (nftw(sub, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

static void cleanup(void)
{
    if (scratch[0]) {
        fuzz_rm_tree(scratch, 1);
    }
}

const char *fuzz_scratch_dir(const char *tag)
{
    const char *base = "/dev/shm";
    struct stat st;
    if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode) || access(base, W_OK) != 0) {
        base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    }
    snprintf(scratch, sizeof(scratch), "%s/xmppd-fuzz-%s-%d-XXXXXX", base, tag, (int)getpid());
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        abort();
    }
    atexit(cleanup);
    return scratch;
}

int fuzz_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}
