/* libcurl's one home in the core: raw IMAP connections.
 *
 * libcurl logs in (greeting, CAPABILITY, STARTTLS where asked, LOGIN or
 * SASL) and then hands over the connection; the IMAP client in
 * dme_imap.c sends its own commands over it, because libcurl 7.88's
 * custom-command mode fails on large responses.
 */
#ifndef DME_CURL_H
#define DME_CURL_H

#include "dme.h"

typedef struct dme_curl_conn_t dme_curl_conn_t;

typedef struct dme_curl_imap_opts_t {
    const char *url;             /* imap://host:port or imaps://host:port */
    const char *user;            /* login name (may be "user*master") */
    const char *password;        /* never logged */
    const char *authzid;         /* SASL PLAIN authorisation id, or NULL */
    const char *ca_file;         /* for imaps/STARTTLS, NULL: system bundle */
    apr_interval_time_t timeout; /* connect + login, total */
} dme_curl_imap_opts_t;

/* Once per process, before threads. */
apr_status_t dme_curl_global_init(void);

/* Connect and log in. DME_EAUTH: the server refused the credentials;
 * DME_EDOWN: unreachable, timed out or TLS failed; APR_EINVAL: bad URL.
 * On failure *errmsg (may be NULL) holds curl's short reason. The
 * connection is malloc'd, not pool-bound, so it can outlive requests. */
apr_status_t dme_curl_imap_open(dme_curl_conn_t **c, const char **errmsg,
                                const dme_curl_imap_opts_t *o, apr_pool_t *p);

/* Send all of data within timeout. DME_EDOWN when the peer is gone. */
apr_status_t dme_curl_send(dme_curl_conn_t *c, const char *data, apr_size_t len,
                           apr_interval_time_t timeout);

/* Receive what is available (at least one byte) within timeout into buf.
 * DME_EDOWN on timeout, close or error. */
apr_status_t dme_curl_recv(apr_size_t *got, dme_curl_conn_t *c, char *buf,
                           apr_size_t cap, apr_interval_time_t timeout);

/* Whether an idle connection looks usable: nothing unread and not
 * closed by the peer (an idle IMAP server sends nothing unasked). */
int dme_curl_is_idle_ok(dme_curl_conn_t *c);

void dme_curl_close(dme_curl_conn_t *c);

/* POST a small document to an http(s) URL (a client's push endpoint):
 * no redirects, protocols http and https only, the answer body read and
 * dropped (at most 64 KiB). Unless allow_private, a connection to a
 * private address (checked on the address actually connected to, so
 * DNS tricks do not get around it) is refused: APR_EACCES. *status gets
 * the HTTP status. DME_EDOWN when nothing answered within timeout. */
apr_status_t dme_curl_post(long *status, const char *url,
                           const char *content_type, const char *body,
                           apr_size_t len, apr_interval_time_t timeout,
                           int allow_private);

/* Whether an address is one a URL taken from a client must not reach
 * unless the administrator allows it: loopback, link-local, private
 * (RFC 1918, ULA), unspecified, multicast. sa is a struct sockaddr. */
int dme_curl_is_private_addr(const void *sa);
#endif
