/* Durable state - users, clients, per-folder sync state, harvested S/MIME
 * certificates - through apr_dbd.
 *
 * The store never opens a connection: the caller (mod_dbd in the module,
 * apr_dbd_open in tests) hands in a driver and a handle, used by one thread
 * at a time. SQLite ("sqlite3") and PostgreSQL ("pgsql") are supported;
 * their SQL lives in dme_sql.c. Times are seconds since the epoch in the
 * database and apr_time_t here.
 *
 * Unless stated otherwise each function returns APR_EINVAL for a missing
 * argument, APR_ENOTIMPL for a driver without SQL here, APR_EINIT when the
 * handle did not pass through dme_store_conn_init, and APR_EGENERAL when
 * the database fails; the database's own words are then available from
 * apr_dbd_error(driver, handle, 0).
 */
#ifndef DME_STORE_H
#define DME_STORE_H

#include <apr_dbd.h>

#include "dme.h"

/* Version 2 added clients.push_url, version 3 the certificate tables. */
#define DME_STORE_SCHEMA_VERSION 3

/* Prepares the process-wide table of initialised connections. Call once
 * per process before any thread uses the store, with a pool that outlives
 * every connection (the process pool). Calling it again does nothing. */
apr_status_t dme_store_init(apr_pool_t *p);

/* Readies a connection for the store; call it each time a handle is
 * acquired (it returns at once for a handle it already knows) and before
 * dme_store_schema_ensure. For SQLite it sets a 5 s busy timeout and WAL
 * journaling (an in-memory database keeps its own journal mode), trying
 * for about a second when other processes switch to WAL at the same time.
 *
 * p must be the connection's own pool - destroyed when the handle is
 * closed, as ap_dbd_t's pool is. Statements are prepared once per
 * connection and kept in p: apr_dbd's SQLite driver keeps every prepared
 * statement until the connection closes, so preparing per call would grow
 * a long-lived connection without bound.
 * @return APR_EINIT if dme_store_init was not called. */
apr_status_t dme_store_conn_init(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 apr_pool_t *p);

/* Creates the schema when absent, upgrades an older one in place keeping
 * its rows, and checks its version. Safe to call again and from several
 * processes at once: creating or upgrading runs in one transaction, and
 * when a racing process wins, the version is read again. Statements this
 * connection prepared before an upgrade are prepared afresh after it.
 * @return APR_EGENERAL, after logging why, if the database holds a schema
 *         newer than DME_STORE_SCHEMA_VERSION (a newer module wrote it) or
 *         the schema cannot be read, created or upgraded. */
apr_status_t dme_store_schema_ensure(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                     const dme_logger_t *lg, apr_pool_t *p);

/* The user's sealed password (see dme_crypto_seal), or *sealed = NULL if
 * the user row holds none.
 * @return APR_NOTFOUND if there is no row for user. */
apr_status_t dme_store_user_password_get(const char **sealed,
                                         const apr_dbd_driver_t *d,
                                         apr_dbd_t *h, const char *user,
                                         apr_pool_t *p);

/* Creates the user row if needed and sets its sealed password; a NULL
 * sealed (technical-user mode) leaves a row with no password, clearing any
 * stored one. One upsert statement, atomic on its own. */
apr_status_t dme_store_user_password_set(const apr_dbd_driver_t *d,
                                         apr_dbd_t *h, const char *user,
                                         const char *sealed, apr_pool_t *p);

typedef struct {
    const char *id, *user, *name, *platform, *source;
    apr_time_t created;
    /* Where the client takes an HTTP POST when its mail changed; NULL
     * for a client that only polls. */
    const char *push_url;
} dme_client_t;

/* Stores a new client. id and user are required, the other strings may be
 * NULL and are stored as given; created 0 means now.
 * @return APR_EEXIST if a client with this id exists (it is unchanged). */
apr_status_t dme_store_client_create(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                     const dme_client_t *c, apr_pool_t *p);

/* @return APR_NOTFOUND if there is no client with this id. */
apr_status_t dme_store_client_get(dme_client_t **c, const apr_dbd_driver_t *d,
                                  apr_dbd_t *h, const char *id, apr_pool_t *p);

/* How many clients user has registered (0 for an unknown user). */
apr_status_t dme_store_client_count(int *n, const apr_dbd_driver_t *d,
                                    apr_dbd_t *h, const char *user,
                                    apr_pool_t *p);

/* Every client of user as dme_client_t *, oldest first; an empty array
 * for a user without clients. On failure *clients is NULL. */
apr_status_t dme_store_client_list(apr_array_header_t **clients,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *user, apr_pool_t *p);

/* The users of the system - each name with at least one client, once -
 * as const char *, sorted by bytes (code point order for UTF-8) in either
 * database; an empty array when there are none. A user row without a
 * client (a password stored, enrolment never finished) does not count.
 * On failure *users is NULL. */
apr_status_t dme_store_user_list(apr_array_header_t **users,
                                 const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 apr_pool_t *p);

/* *yes = 1 if user has at least one client, else 0 (also on failure). */
apr_status_t dme_store_user_has_clients(int *yes, const apr_dbd_driver_t *d,
                                        apr_dbd_t *h, const char *user,
                                        apr_pool_t *p);

/* One folder's sync state of one client. notes and prev_response are
 * NUL-terminated text or NULL; prev_response_len is strlen(prev_response)
 * (0 for NULL). */
typedef struct {
    const char *client_id, *folder;
    apr_int64_t key;
    const char *notes;
    apr_int64_t prev_key;
    const char *prev_response;
    apr_size_t prev_response_len;
} dme_sync_state_t;

/* @return APR_NOTFOUND if the client has no state for this folder. */
apr_status_t dme_store_sync_get(dme_sync_state_t **st,
                                const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const char *client_id, const char *folder,
                                apr_pool_t *p);

/* Compare and set: writes st only if the stored sync_key equals
 * expect_key, or if no row exists (or its key is 0) and expect_key is 0.
 * The check and the write are one statement (an upsert for expect_key 0),
 * so they are atomic without a multi-statement transaction, which would
 * stall other threads behind apr_dbd's process-wide SQLite mutex.
 * st->prev_response must be NUL-terminated at prev_response_len with no
 * NUL before it.
 * @return DME_ECONFLICT, writing nothing, when the stored state is not the
 *         expected one (another request advanced it first);
 *         APR_EINVAL for a missing client_id/folder or a prev_response
 *         whose length does not match. */
apr_status_t dme_store_sync_put(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const dme_sync_state_t *st,
                                apr_int64_t expect_key, apr_pool_t *p);

/* Forgets one folder's state; succeeds also when there was none. */
apr_status_t dme_store_sync_delete(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *client_id, const char *folder,
                                   apr_pool_t *p);

/* ---- S/MIME certificates of external people ----
 *
 * Shared by all users. The store holds what the harvest found; whether a
 * certificate may be served (expiry, status, key usage) is the caller's
 * decision. Times are kept to the second. */

/* DER longer than this is refused: no real certificate comes near. */
#define DME_STORE_CERT_DER_MAX (1024 * 1024)

/* A stored certificate. Returned records have every string set (""
 * where nothing was stored) except source_user, which may be NULL, and
 * addresses is never NULL. */
typedef struct dme_stored_cert_t {
    /* SHA-256 of der as 64 lowercase hex digits (not recomputed here) */
    const char *fingerprint;
    const unsigned char *der;
    apr_size_t der_len;
    const char *issuer, *serial; /* together unique among stored ones */
    apr_time_t not_before, not_after;
    apr_array_header_t *addresses; /* const char *, lowercase */
    const char *key_usage;
    int can_encrypt;
    /* "unchecked", "good", "revoked" or "unknown": what the last
     * revocation check said; "unchecked" before the first. */
    const char *status;
    const char *source_message_id; /* Message-ID of the mail, may be "" */
    const char *source_user;       /* whose mail it came from */
    apr_time_t harvested;
} dme_stored_cert_t;

/* Stores c unless a certificate with its fingerprint, or with its issuer
 * and serial, is stored already, which then stays as it is (the first
 * harvest wins): *created is 1 for a new one, else 0. The certificate and
 * its addresses are one statement: no reader ever sees one without the
 * other. Addresses are stored ASCII-lowercased, each once, in the given
 * order; der is stored as base64 text.
 * Required: fingerprint (64 hex digits, either case, stored lowercase),
 * der (1 to DME_STORE_CERT_DER_MAX bytes), issuer, serial, and at least
 * one address, each printable ASCII without spaces. status NULL means
 * "unchecked"; key_usage and source_message_id NULL mean ""; source_user
 * may be NULL; harvested 0 means now.
 * @return APR_EINVAL, storing nothing, for a missing or malformed field
 *         or an unknown status. */
apr_status_t dme_store_cert_put(int *created, const apr_dbd_driver_t *d,
                                apr_dbd_t *h, const dme_stored_cert_t *c,
                                apr_pool_t *p);

/* Every stored certificate naming address (compared ASCII-lowercased),
 * as dme_stored_cert_t *, the latest not_after first; expired and revoked
 * ones too. An empty array when there is none; NULL on failure. */
apr_status_t dme_store_cert_find(apr_array_header_t **certs,
                                 const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 const char *address, apr_pool_t *p);

/* At most limit certificates, as dme_stored_cert_t *, with an address
 * that contains address_part (ASCII case ignored; "%", "_" and "\" match
 * only themselves), ordered by their least address; "" matches every
 * certificate. An empty array when none matches; NULL on failure.
 * @return APR_EINVAL if limit is below 1. */
apr_status_t dme_store_cert_search(apr_array_header_t **certs,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *address_part, int limit,
                                   apr_pool_t *p);

/* The certificate with this fingerprint (either case); *c NULL if none.
 * @return APR_NOTFOUND if there is none. */
apr_status_t dme_store_cert_get(dme_stored_cert_t **c,
                                const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const char *fingerprint, apr_pool_t *p);

/* Deletes a certificate and its addresses, in one statement.
 * @return APR_NOTFOUND if there is none with this fingerprint. */
apr_status_t dme_store_cert_delete(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *fingerprint, apr_pool_t *p);

/* Records the outcome of a revocation check.
 * @return APR_EINVAL for a status other than the four above;
 *         APR_NOTFOUND if there is no certificate with this fingerprint. */
apr_status_t dme_store_cert_set_status(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                       const char *fingerprint,
                                       const char *status, apr_pool_t *p);

/* How many certificates are stored, by status, as decimal strings: the
 * keys "unchecked", "good", "revoked", "unknown" and "expired" are always
 * there ("0" when none). A certificate with not_after before now counts
 * as "expired" only, whatever its status. On failure *counts is NULL. */
apr_status_t dme_store_cert_counts(apr_table_t **counts,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   apr_time_t now, apr_pool_t *p);

/* Deletes the certificates of address (compared ASCII-lowercased) that
 * expired before now once a newer one took over: a certificate goes when
 * each of its addresses has one that has not expired. Until then the old
 * one stays beside the new, and an address whose only certificate expired
 * keeps it (its lookups then say "expired", not "none"). One statement.
 * *n is the number deleted (0 on failure). */
apr_status_t dme_store_cert_purge_expired(int *n, const apr_dbd_driver_t *d,
                                          apr_dbd_t *h, const char *address,
                                          apr_time_t now, apr_pool_t *p);

#endif /* DME_STORE_H */
