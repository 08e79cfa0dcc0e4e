/* Core logging through the injected sink. */
#include <string.h>
#include <apr_strings.h>

#include "dme.h"

void dme_log(const dme_logger_t *lg, int level, apr_status_t rv,
             const char *fmt, ...)
{
    va_list ap;

    if (!lg || !lg->fn) {
        return;
    }
    va_start(ap, fmt);
    lg->fn(lg->baton, level, rv, fmt, ap);
    va_end(ap);
}

/* FNV-1a: enough to tell users apart in a log, not meant to be secret-proof
 * against a dictionary; user names are not secrets, passwords never pass
 * through here. */
const char *dme_user_tag(const char *user, apr_pool_t *p)
{
    apr_uint32_t h = 2166136261u;
    const unsigned char *s = (const unsigned char *)(user ? user : "");

    for (; *s; s++) {
        h ^= *s;
        h *= 16777619u;
    }
    return apr_psprintf(p, "u:%08x", h);
}
