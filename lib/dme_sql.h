/* The SQL text of the durable store, per database dialect.
 *
 * Every statement the store runs is written here and nowhere else, once
 * per dialect, so that what differs between SQLite and PostgreSQL (column
 * types, "insert unless present", connection settings) stays in one file.
 * Parameters use apr_dbd's portable placeholders (%s text, %lld 64-bit
 * integer); values are always bound, never formatted into the text.
 *
 * Each write is one statement, atomic on its own: apr_dbd's SQLite driver
 * serialises all SQLite calls of a process through one mutex, so a
 * transaction spread over several calls would make the process's other
 * threads wait on its locks. SQLite 3.24 or newer is needed for upserts.
 *
 * A certificate and its rows in certificate_addresses are one write too:
 * the row keeps its addresses as a JSON array, which a trigger copies into
 * the address table when the row comes; when it goes, a trigger (SQLite)
 * or the foreign key (PostgreSQL) removes them. SQLite needs its JSON
 * functions for that (built in since 3.38, an option before).
 */
#ifndef DME_SQL_H
#define DME_SQL_H

/* The schema version the statements below are written for. */
#define DME_SQL_SCHEMA_VERSION 3

/* The parameterised statements, by purpose. */
typedef enum {
    DME_SQL_USER_PASSWORD_GET, /* (name) -> password_sealed */
    DME_SQL_USER_PASSWORD_SET, /* (name, sealed, now, now): upsert */
    DME_SQL_CLIENT_CREATE,     /* (id, user, name, platform, created, source,
                                  push_url); no-op if the id is taken */
    DME_SQL_CLIENT_GET,        /* (id) -> id, user, name, platform, created,
                                  source, push_url */
    DME_SQL_CLIENT_COUNT,      /* (user) -> count */
    DME_SQL_CLIENT_LIST,       /* (user) -> rows as CLIENT_GET, oldest first */
    DME_SQL_USER_LIST,         /* () -> rows of user_name having a client,
                                  each once, in byte order */
    DME_SQL_SYNC_GET,          /* (client, folder) -> key, notes, prev_key,
                                  prev_response */
    DME_SQL_SYNC_UPDATE,       /* (key, notes, prev_key, prev_response, now,
                                  client, folder, expected key) */
    DME_SQL_SYNC_CREATE,       /* (client, folder, key, notes, prev_key,
                                  prev_response, now): inserts, or updates a
                                  row whose key is 0; else no-op */
    DME_SQL_SYNC_DELETE,       /* (client, folder) */
    DME_SQL_CERT_PUT,          /* (fingerprint, der, issuer, serial,
                                  not_before, not_after, addresses, key_usage,
                                  can_encrypt, status, source_message_id,
                                  source_user, harvested); no-op if the
                                  fingerprint or issuer and serial is taken */
    DME_SQL_CERT_GET,          /* (fingerprint) -> fingerprint, der, issuer,
                                  serial, not_before, not_after, addresses
                                  (one a line, in their stored order),
                                  key_usage, can_encrypt, status,
                                  source_message_id, source_user, harvested */
    DME_SQL_CERT_FIND,         /* (address) -> rows as CERT_GET, latest
                                  not_after first */
    DME_SQL_CERT_SEARCH,       /* (LIKE pattern, limit) -> rows as CERT_GET
                                  of certificates with a matching address,
                                  by their least address */
    DME_SQL_CERT_DELETE,       /* (fingerprint); its addresses go with it */
    DME_SQL_CERT_SET_STATUS,   /* (status, fingerprint) */
    DME_SQL_CERT_COUNTS,       /* (now) -> rows of status or "expired",
                                  count */
    DME_SQL_CERT_PURGE,        /* (now, address, now): deletes the expired
                                  certificates of address each of whose
                                  addresses has an unexpired certificate */
    DME_SQL_COUNT
} dme_sql_id_t;

typedef struct dme_sql_dialect_t {
    /* apr_dbd's driver name: "sqlite3" or "pgsql" */
    const char *name;
    /* Settings for each new connection, NULL-terminated; each may answer
     * rows, which the caller reads and drops. */
    const char *const *conn_init;
    /* One row, one column: 1 if the dme_schema table exists, else 0. */
    const char *schema_exists;
    /* One row, one column: the highest schema version applied. */
    const char *schema_version;
    /* schema[v] brings the schema from version v to v + 1, each a
     * NULL-terminated list whose last statement records the new version.
     * The store runs the steps from the version it finds up to the latest
     * in one transaction, so a process that loses a race to another fails
     * as a whole and then reads the winner's version. schema[0] creates
     * version 1; each of its statements is also safe to run again ("IF NOT
     * EXISTS", "insert unless present"). Later steps need not be. */
    const char *const *schema[DME_SQL_SCHEMA_VERSION];
    const char *stmt[DME_SQL_COUNT];
} dme_sql_dialect_t;

/* The dialect for an apr_dbd driver name (apr_dbd_name()), or NULL when
 * the store has no SQL for that database. */
const dme_sql_dialect_t *dme_sql_dialect(const char *driver_name);

#endif /* DME_SQL_H */
