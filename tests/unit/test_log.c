/* test_log.c: unit tests for log.c's repeat limiter (log_limited): the first
 * LIMIT_LOG_REPEAT_BURST lines of a window per (kind, key) are logged, the
 * rest counted, and one summary comes out when the window closes (log_tick),
 * also when the flood has stopped; keys and kinds are counted apart; a full
 * table sums up its oldest entry early instead of losing its count; the
 * level filter applies. stderr goes to a temporary file that is read back. */
#include <stdlib.h>
#include <unistd.h>

#include "../../limits.h"
#include "../../log.h"
#include "test.h"

/* log.c writes to stderr, which main() points at a temporary file; the
 * checks of this file report to the real one (CHECK expands stderr here). */
static FILE *real_stderr;
#undef stderr
#define stderr real_stderr

static char path[] = "/tmp/xmppd-log-XXXXXX";
static FILE *out;
static long seen; /* bytes of the file already returned by take() */

/* What was logged since the last call. */
static char *take(void)
{
    static char text[1 << 22];
    fseek(out, seen, SEEK_SET);
    size_t n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = '\0';
    seen += (long)n;
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

static void flood(const char *kind, const char *key, int n)
{
    for (int i = 0; i < n; i++) {
        log_limited(kind, key, L_INFO, "%s event %d for %s", kind, i, key);
    }
}

static void test_burst_then_summary(void)
{
    char *t;
    log_tick(1000);
    flood("quota", "bob@example.org", 500);
    t = take();
    CHECK(count(t, "quota event") == LIMIT_LOG_REPEAT_BURST);
    CHECK(count(t, "event 0 for bob@example.org") == 1);
    CHECK(count(t, "more lines") == 0);
    /* Window not over yet: nothing. */
    log_tick(1000 + 59);
    CHECK(take()[0] == '\0');
    /* The flood stopped; the summary still comes when the window closes. */
    log_tick(1000 + 60);
    t = take();
    CHECK(count(t, "info: quota for bob@example.org: 495 more lines in the last 60 s\n") == 1);
    CHECK(count(t, "\n") == 1);
    log_tick(1000 + 200);
    CHECK(take()[0] == '\0');
    /* A new window starts over with the first lines. */
    flood("quota", "bob@example.org", 2);
    t = take();
    CHECK(count(t, "quota event") == 2);
    log_tick(1000 + 300);
    CHECK(take()[0] == '\0'); /* nothing suppressed: no summary */
}

static void test_keys_and_kinds_apart(void)
{
    char *t;
    log_tick(2000);
    flood("quota", "a@x", 10);
    flood("quota", "b@x", 10);
    flood("login", "a@x", 10);
    flood("quota", NULL, 10);
    t = take();
    CHECK(count(t, "event") == 4 * LIMIT_LOG_REPEAT_BURST);
    log_tick(2000 + 60);
    t = take();
    CHECK(count(t, "quota for a@x: 5 more lines") == 1);
    CHECK(count(t, "quota for b@x: 5 more lines") == 1);
    CHECK(count(t, "login for a@x: 5 more lines") == 1);
    CHECK(count(t, "quota for all: 5 more lines") == 1);
}

static void test_window_setting(void)
{
    char *t;
    log_set_repeat_window(2);
    log_tick(3000);
    flood("bad xml", "192.0.2.1", 8);
    take();
    log_tick(3001);
    CHECK(take()[0] == '\0');
    log_tick(3002);
    t = take();
    CHECK(count(t, "bad xml for 192.0.2.1: 3 more lines in the last 2 s") == 1);
    log_set_repeat_window(LIMIT_LOG_REPEAT_WINDOW);
}

/* More keys than the table holds: every line either logged or counted in a
 * summary, and output stays bounded by keys, not by events. */
static void test_table_full(void)
{
    char key[32], *t;
    int keys = 3 * LIMIT_LOG_REPEAT_SLOTS, per = 20;
    long logged = 0, summed = 0;
    log_tick(4000);
    for (int round = 0; round < per; round++) {
        for (int k = 0; k < keys; k++) {
            snprintf(key, sizeof(key), "10.0.%d.%d", k / 256, k % 256);
            log_limited("flood", key, L_NOTICE, "flood from %s", key);
        }
    }
    log_tick(4000 + 60);
    log_repeat_flush();
    t = take();
    for (char *p = t; (p = strstr(p, "flood")); p++) {
        char *nl = strchr(p, '\n');
        const char *more = strstr(p, ": ");
        if (strncmp(p, "flood from", 10) == 0) {
            logged++;
        } else if (more && (!nl || more < nl)) {
            summed += strtol(more + 2, NULL, 10);
        }
        p = nl ? nl : p;
    }
    CHECK(logged + summed == (long)keys * per);
    CHECK(logged < (long)keys * per);
}

static void test_level_filter(void)
{
    log_set_level(L_NOTICE);
    log_tick(5000);
    flood("quiet", "k", 50); /* info: below the level, neither logged nor counted */
    log_tick(5000 + 60);
    CHECK(take()[0] == '\0');
    log_limited("loud", "k", L_WARNING, "warning %d", 1);
    CHECK(count(take(), "warning: warning 1") == 1);
    log_set_level(L_DEBUG);
}

int main(void)
{
    real_stderr = fdopen(dup(2), "w");
    int fd = mkstemp(path);
    if (!real_stderr || fd < 0 || dup2(fd, 2) < 0 || !(out = fopen(path, "r"))) {
        perror("temporary log file");
        return 1;
    }
    close(fd);
    unlink(path);
#undef stderr
    setvbuf(stderr, NULL, _IONBF, 0); /* log.c's lines reach the file at once */
#undef stderr
#define stderr real_stderr
    log_init(0, L_DEBUG);

    test_burst_then_summary();
    test_keys_and_kinds_apart();
    test_window_setting();
    test_table_full();
    test_level_filter();

    TEST_REPORT();
}
