/* A minimal test harness for the core's unit tests: each test binary
 * returns non-zero when any check failed and prints each failure. */
#ifndef DME_UNIT_H
#define DME_UNIT_H

#include <stdio.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        unit_checks++;                                                         \
        if (!(cond)) {                                                         \
            unit_failures++;                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_STR(got, want)                                                   \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        unit_checks++;                                                         \
        if (!g_ || !w_ || strcmp(g_, w_) != 0) {                               \
            unit_failures++;                                                   \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__,      \
                    __LINE__, g_ ? g_ : "(null)", w_ ? w_ : "(null)");         \
        }                                                                      \
    } while (0)

#define CHECK_INT(got, want)                                                   \
    do {                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);               \
        unit_checks++;                                                         \
        if (g_ != w_) {                                                        \
            unit_failures++;                                                   \
            fprintf(stderr, "%s:%d: got %lld, want %lld (%s)\n", __FILE__,     \
                    __LINE__, g_, w_, #got);                                   \
        }                                                                      \
    } while (0)

static int unit_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

#endif
