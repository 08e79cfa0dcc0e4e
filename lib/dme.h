/* mod_dme core: shared types, error codes and logging.
 *
 * Everything under lib/ is plain C on APR and the third-party libraries;
 * no httpd header may be included here. The httpd glue in mod_dme/ injects
 * a log function so the core can report to the error log.
 */
#ifndef DME_H
#define DME_H

#include <stdarg.h>
#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <apr_time.h>

/* Project error codes, in APR's user error space. */
#define DME_EPROTO    (APR_OS_START_USERERR + 1) /* peer broke its protocol */
#define DME_EAUTH     (APR_OS_START_USERERR + 2) /* peer refused our login */
#define DME_EDOWN     (APR_OS_START_USERERR + 3) /* peer unreachable/timed out */
#define DME_ETOOBIG   (APR_OS_START_USERERR + 4) /* input over a size limit */
#define DME_ENOMBOX   (APR_OS_START_USERERR + 5) /* no such mailbox/folder */
#define DME_ECONFLICT (APR_OS_START_USERERR + 6) /* state changed under us */

/* Log levels, numerically equal to syslog's and httpd's APLOG_*. */
#define DME_LOG_ERR    3
#define DME_LOG_WARN   4
#define DME_LOG_NOTICE 5
#define DME_LOG_INFO   6
#define DME_LOG_DEBUG  7

/* Every message at debug or above starts with a unique number, written
 * DMELOGNO(nnnnn); scripts/lint.sh checks that each is used once. */
#define DMELOGNO(n) "DME" #n ": "

/* The core's log sink. The glue sets it; NULL discards messages. */
typedef void dme_log_fn(void *baton, int level, apr_status_t rv,
                        const char *fmt, va_list ap);

typedef struct dme_logger_t {
    dme_log_fn *fn;
    void *baton;
} dme_logger_t;

void dme_log(const dme_logger_t *lg, int level, apr_status_t rv,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A short, stable, non-reversible tag for a user name, for log lines:
 * "u:" and 8 hex digits. Never log the name or any secret itself. */
const char *dme_user_tag(const char *user, apr_pool_t *p);

#endif /* DME_H */
