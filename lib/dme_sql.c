/* SQL text of the durable store for SQLite and PostgreSQL. */
#include <string.h>

#include "dme_sql.h"

/* Statements both dialects read the same way (SQLite since 3.24). */
#define USER_PASSWORD_GET "SELECT password_sealed FROM users WHERE name = %s"
#define USER_PASSWORD_SET                                                      \
    "INSERT INTO users (name, password_sealed, created, updated) "             \
    "VALUES (%s, %s, %lld, %lld) ON CONFLICT (name) DO UPDATE SET "            \
    "password_sealed = excluded.password_sealed, updated = excluded.updated"
#define CLIENT_COLUMNS                                                         \
    "id, user_name, name, platform, created, source, push_url"
/* Not SQLite's "INSERT OR IGNORE": it would hide NOT NULL violations. */
#define CLIENT_CREATE                                                          \
    "INSERT INTO clients (" CLIENT_COLUMNS ") "                                \
    "VALUES (%s, %s, %s, %s, %lld, %s, %s) ON CONFLICT (id) DO NOTHING"
#define CLIENT_GET   "SELECT " CLIENT_COLUMNS " FROM clients WHERE id = %s"
#define CLIENT_COUNT "SELECT COUNT(*) FROM clients WHERE user_name = %s"
#define CLIENT_LIST                                                            \
    "SELECT " CLIENT_COLUMNS " FROM clients WHERE user_name = %s "             \
    "ORDER BY created, id"
/* Byte order in both databases (SQLite's BINARY, PostgreSQL's "C"), which
 * for UTF-8 is code point order, whatever the server's locale. GROUP BY,
 * not DISTINCT: PostgreSQL's DISTINCT refuses an ORDER BY expression, such
 * as a collated column, that the select list lacks. */
#define USER_LIST_BY(collation)                                                \
    "SELECT user_name FROM clients GROUP BY user_name "                        \
    "ORDER BY user_name COLLATE " collation
#define SYNC_COLUMNS                                                           \
    "client_id, folder, sync_key, notes, prev_key, prev_response, updated"
#define SYNC_GET                                                               \
    "SELECT sync_key, notes, prev_key, prev_response FROM sync_state "         \
    "WHERE client_id = %s AND folder = %s"
#define SYNC_UPDATE                                                            \
    "UPDATE sync_state SET sync_key = %lld, notes = %s, prev_key = %lld, "     \
    "prev_response = %s, updated = %lld "                                      \
    "WHERE client_id = %s AND folder = %s AND sync_key = %lld"
#define SYNC_CREATE                                                            \
    "INSERT INTO sync_state (" SYNC_COLUMNS ") "                               \
    "VALUES (%s, %s, %lld, %s, %lld, %s, %lld) "                               \
    "ON CONFLICT (client_id, folder) DO UPDATE SET "                           \
    "sync_key = excluded.sync_key, notes = excluded.notes, "                   \
    "prev_key = excluded.prev_key, prev_response = excluded.prev_response, "   \
    "updated = excluded.updated WHERE sync_state.sync_key = 0"
#define SYNC_DELETE                                                            \
    "DELETE FROM sync_state WHERE client_id = %s AND folder = %s"
#define SCHEMA_VERSION "SELECT MAX(version) FROM dme_schema"
/* Version 2: where to notify a client of new mail. SQLite's ALTER TABLE
 * has no "unless present": a second run fails, and its whole step with
 * it, which is what a process that lost the race should see. */
#define SCHEMA_V2_PUSH_URL "ALTER TABLE clients ADD COLUMN push_url TEXT"
#define SCHEMA_V2_RECORD   "INSERT INTO dme_schema (version) VALUES (2)"

/* Version 3: S/MIME certificates of external people. `addresses` is the
 * certificate's list as a JSON array; certificate_addresses indexes it for
 * lookups by address (its primary key leads with the address) and is kept
 * by the database, so one statement stores or deletes both. Like version
 * 1 the step may run again over its own tables (a database whose version
 * rows were lost); the version row it adds stops a racer as before. */
#define CERT_TABLE(int64)                                                      \
    "CREATE TABLE IF NOT EXISTS certificates ("                                \
    "fingerprint TEXT NOT NULL PRIMARY KEY, der TEXT NOT NULL, "               \
    "issuer TEXT NOT NULL, serial TEXT NOT NULL, "                             \
    "not_before " int64 " NOT NULL, not_after " int64 " NOT NULL, "            \
    "addresses TEXT NOT NULL, key_usage TEXT NOT NULL, "                       \
    "can_encrypt INTEGER NOT NULL, status TEXT NOT NULL, "                     \
    "source_message_id TEXT NOT NULL, source_user TEXT, "                      \
    "harvested " int64 " NOT NULL, UNIQUE (issuer, serial))"
#define CERT_ADDRESS_TABLE                                                     \
    "CREATE TABLE IF NOT EXISTS certificate_addresses ("                       \
    "address TEXT NOT NULL, fingerprint TEXT NOT NULL "                        \
    "REFERENCES certificates (fingerprint) ON DELETE CASCADE, "                \
    "PRIMARY KEY (address, fingerprint))"
#define CERT_ADDRESS_INDEX                                                     \
    "CREATE INDEX IF NOT EXISTS certificate_addresses_by_fingerprint "         \
    "ON certificate_addresses (fingerprint)"
#define SCHEMA_V3_RECORD "INSERT INTO dme_schema (version) VALUES (3)"

/* Taken or not, the row is left as it is: the first harvest stays. */
#define CERT_PUT                                                               \
    "INSERT INTO certificates (fingerprint, der, issuer, serial, "             \
    "not_before, not_after, addresses, key_usage, can_encrypt, status, "       \
    "source_message_id, source_user, harvested) VALUES (%s, %s, %s, %s, "      \
    "%lld, %lld, %s, %s, %lld, %s, %s, %s, %lld) ON CONFLICT DO NOTHING"
#define CERT_SELECT(addresses)                                                 \
    "SELECT c.fingerprint, c.der, c.issuer, c.serial, c.not_before, "          \
    "c.not_after, " addresses ", c.key_usage, c.can_encrypt, c.status, "       \
    "c.source_message_id, c.source_user, c.harvested FROM certificates c "
#define CERT_GET_BY(addresses) CERT_SELECT(addresses) "WHERE c.fingerprint = %s"
#define CERT_FIND_BY(addresses)                                                \
    CERT_SELECT(addresses)                                                     \
    "JOIN certificate_addresses a ON a.fingerprint = c.fingerprint "           \
    "WHERE a.address = %s ORDER BY c.not_after DESC, c.fingerprint"
/* The pattern comes escaped with a backslash; no index helps a pattern
 * that starts with a wildcard, and the admin page is the only user. */
#define CERT_SEARCH_BY(addresses)                                              \
    CERT_SELECT(addresses)                                                     \
    "WHERE c.fingerprint IN (SELECT fingerprint FROM certificate_addresses "   \
    "WHERE address LIKE %s ESCAPE '\\') ORDER BY (SELECT MIN(address) "        \
    "FROM certificate_addresses m WHERE m.fingerprint = c.fingerprint), "      \
    "c.not_after DESC, c.fingerprint LIMIT %lld"
#define CERT_DELETE "DELETE FROM certificates WHERE fingerprint = %s"
#define CERT_SET_STATUS                                                        \
    "UPDATE certificates SET status = %s WHERE fingerprint = %s"
#define CERT_COUNTS                                                            \
    "SELECT s, COUNT(*) FROM (SELECT CASE WHEN not_after < %lld "              \
    "THEN 'expired' ELSE status END AS s FROM certificates) t GROUP BY s"
/* An expired certificate goes once every address it names has an
 * unexpired one: one whose other address has no successor keeps serving
 * that address its reason ("expired"). */
#define CERT_PURGE                                                             \
    "DELETE FROM certificates WHERE not_after < %lld AND fingerprint IN "      \
    "(SELECT fingerprint FROM certificate_addresses WHERE address = %s) "      \
    "AND NOT EXISTS (SELECT 1 FROM certificate_addresses o "                   \
    "WHERE o.fingerprint = certificates.fingerprint AND NOT EXISTS "           \
    "(SELECT 1 FROM certificate_addresses r JOIN certificates n "              \
    "ON n.fingerprint = r.fingerprint "                                        \
    "WHERE r.address = o.address AND n.not_after >= %lld))"

/* ---- SQLite ---- */

/* The busy timeout comes first: switching to WAL needs a lock that
 * another process may hold for a moment. WAL lets readers run beside the
 * one writer, and the timeout makes a second writer wait, not fail. */
static const char *const sqlite_conn_init[] = {
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    /* In WAL mode NORMAL still never corrupts and survives a crash of the
     * server process; only an OS crash or power loss may undo the last
     * commits, after which a client is asked to import again. FULL
     * would add an fsync to every sync. */
    "PRAGMA synchronous = NORMAL",
    NULL,
};

/* SQLite accepts a NULL primary key unless told otherwise. */
static const char *const sqlite_schema_v1[] = {
    "CREATE TABLE IF NOT EXISTS dme_schema ("
    "version INTEGER NOT NULL PRIMARY KEY)",

    "CREATE TABLE IF NOT EXISTS users ("
    "name TEXT NOT NULL PRIMARY KEY, password_sealed TEXT NULL, "
    "created INTEGER NOT NULL, updated INTEGER NOT NULL)",

    "CREATE TABLE IF NOT EXISTS clients ("
    "id TEXT NOT NULL PRIMARY KEY, user_name TEXT NOT NULL, name TEXT, "
    "platform TEXT, created INTEGER NOT NULL, source TEXT)",

    "CREATE INDEX IF NOT EXISTS clients_by_user ON clients (user_name)",

    "CREATE TABLE IF NOT EXISTS sync_state ("
    "client_id TEXT NOT NULL, folder TEXT NOT NULL, "
    "sync_key INTEGER NOT NULL, notes TEXT, "
    "prev_key INTEGER NOT NULL DEFAULT 0, prev_response TEXT, "
    "updated INTEGER NOT NULL, PRIMARY KEY (client_id, folder))",

    "INSERT OR IGNORE INTO dme_schema (version) VALUES (1)",
    NULL,
};

static const char *const sqlite_schema_v2[] = {
    SCHEMA_V2_PUSH_URL,
    SCHEMA_V2_RECORD,
    NULL,
};

/* SQLite enforces foreign keys only when a connection asks, so a trigger
 * deletes the addresses; WITH is not allowed in a trigger, json_each is. */
static const char *const sqlite_schema_v3[] = {
    CERT_TABLE("INTEGER"),
    CERT_ADDRESS_TABLE " WITHOUT ROWID",
    CERT_ADDRESS_INDEX,

    "CREATE TRIGGER IF NOT EXISTS certificates_index "
    "AFTER INSERT ON certificates BEGIN "
    "INSERT INTO certificate_addresses (address, fingerprint) "
    "SELECT DISTINCT value, NEW.fingerprint FROM json_each(NEW.addresses); "
    "END",

    "CREATE TRIGGER IF NOT EXISTS certificates_unindex "
    "AFTER DELETE ON certificates BEGIN "
    "DELETE FROM certificate_addresses WHERE fingerprint = OLD.fingerprint; "
    "END",

    SCHEMA_V3_RECORD,
    NULL,
};

/* group_concat keeps the order json_each gives, the array's. */
#define SQLITE_CERT_ADDRESSES                                                  \
    "(SELECT group_concat(value, char(10)) FROM json_each(c.addresses))"

static const dme_sql_dialect_t sqlite = {
    "sqlite3",
    sqlite_conn_init,
    "SELECT COUNT(*) FROM sqlite_master "
    "WHERE type = 'table' AND name = 'dme_schema'",
    SCHEMA_VERSION,
    {sqlite_schema_v1, sqlite_schema_v2, sqlite_schema_v3},
    {
        [DME_SQL_USER_PASSWORD_GET] = USER_PASSWORD_GET,
        [DME_SQL_USER_PASSWORD_SET] = USER_PASSWORD_SET,
        [DME_SQL_CLIENT_CREATE] = CLIENT_CREATE,
        [DME_SQL_CLIENT_GET] = CLIENT_GET,
        [DME_SQL_CLIENT_COUNT] = CLIENT_COUNT,
        [DME_SQL_CLIENT_LIST] = CLIENT_LIST,
        [DME_SQL_USER_LIST] = USER_LIST_BY("BINARY"),
        [DME_SQL_SYNC_GET] = SYNC_GET,
        [DME_SQL_SYNC_UPDATE] = SYNC_UPDATE,
        [DME_SQL_SYNC_CREATE] = SYNC_CREATE,
        [DME_SQL_SYNC_DELETE] = SYNC_DELETE,
        [DME_SQL_CERT_PUT] = CERT_PUT,
        [DME_SQL_CERT_GET] = CERT_GET_BY(SQLITE_CERT_ADDRESSES),
        [DME_SQL_CERT_FIND] = CERT_FIND_BY(SQLITE_CERT_ADDRESSES),
        [DME_SQL_CERT_SEARCH] = CERT_SEARCH_BY(SQLITE_CERT_ADDRESSES),
        [DME_SQL_CERT_DELETE] = CERT_DELETE,
        [DME_SQL_CERT_SET_STATUS] = CERT_SET_STATUS,
        [DME_SQL_CERT_COUNTS] = CERT_COUNTS,
        [DME_SQL_CERT_PURGE] = CERT_PURGE,
    },
};

/* ---- PostgreSQL ---- */

static const char *const pgsql_conn_init[] = {NULL};

/* Two servers creating the schema at once can still collide inside the
 * catalog despite IF NOT EXISTS; the store re-reads the version then. */
static const char *const pgsql_schema_v1[] = {
    "CREATE TABLE IF NOT EXISTS dme_schema ("
    "version INTEGER NOT NULL PRIMARY KEY)",

    "CREATE TABLE IF NOT EXISTS users ("
    "name TEXT NOT NULL PRIMARY KEY, password_sealed TEXT NULL, "
    "created BIGINT NOT NULL, updated BIGINT NOT NULL)",

    "CREATE TABLE IF NOT EXISTS clients ("
    "id TEXT NOT NULL PRIMARY KEY, user_name TEXT NOT NULL, name TEXT, "
    "platform TEXT, created BIGINT NOT NULL, source TEXT)",

    "CREATE INDEX IF NOT EXISTS clients_by_user ON clients (user_name)",

    "CREATE TABLE IF NOT EXISTS sync_state ("
    "client_id TEXT NOT NULL, folder TEXT NOT NULL, "
    "sync_key BIGINT NOT NULL, notes TEXT, "
    "prev_key BIGINT NOT NULL DEFAULT 0, prev_response TEXT, "
    "updated BIGINT NOT NULL, PRIMARY KEY (client_id, folder))",

    "INSERT INTO dme_schema (version) VALUES (1) ON CONFLICT DO NOTHING",
    NULL,
};

static const char *const pgsql_schema_v2[] = {
    SCHEMA_V2_PUSH_URL,
    SCHEMA_V2_RECORD,
    NULL,
};

/* The foreign key deletes the addresses. EXECUTE PROCEDURE, not
 * FUNCTION: servers before 11 know only the older spelling. */
static const char *const pgsql_schema_v3[] = {
    CERT_TABLE("BIGINT"),
    CERT_ADDRESS_TABLE,
    CERT_ADDRESS_INDEX,

    "CREATE OR REPLACE FUNCTION dme_certificates_index() RETURNS trigger "
    "LANGUAGE plpgsql AS $$BEGIN "
    "INSERT INTO certificate_addresses (address, fingerprint) "
    "SELECT DISTINCT a, NEW.fingerprint "
    "FROM json_array_elements_text(NEW.addresses::json) AS a; "
    "RETURN NULL; END$$",

    "DROP TRIGGER IF EXISTS certificates_index ON certificates",

    "CREATE TRIGGER certificates_index AFTER INSERT ON certificates "
    "FOR EACH ROW EXECUTE PROCEDURE dme_certificates_index()",

    SCHEMA_V3_RECORD,
    NULL,
};

#define PGSQL_CERT_ADDRESSES                                                   \
    "(SELECT string_agg(a, chr(10) ORDER BY n) "                               \
    "FROM json_array_elements_text(c.addresses::json) "                        \
    "WITH ORDINALITY AS t(a, n))"

static const dme_sql_dialect_t pgsql = {
    "pgsql",
    pgsql_conn_init,
    "SELECT CASE WHEN to_regclass('dme_schema') IS NULL THEN 0 ELSE 1 END",
    SCHEMA_VERSION,
    {pgsql_schema_v1, pgsql_schema_v2, pgsql_schema_v3},
    {
        [DME_SQL_USER_PASSWORD_GET] = USER_PASSWORD_GET,
        [DME_SQL_USER_PASSWORD_SET] = USER_PASSWORD_SET,
        [DME_SQL_CLIENT_CREATE] = CLIENT_CREATE,
        [DME_SQL_CLIENT_GET] = CLIENT_GET,
        [DME_SQL_CLIENT_COUNT] = CLIENT_COUNT,
        [DME_SQL_CLIENT_LIST] = CLIENT_LIST,
        [DME_SQL_USER_LIST] = USER_LIST_BY("\"C\""),
        [DME_SQL_SYNC_GET] = SYNC_GET,
        [DME_SQL_SYNC_UPDATE] = SYNC_UPDATE,
        [DME_SQL_SYNC_CREATE] = SYNC_CREATE,
        [DME_SQL_SYNC_DELETE] = SYNC_DELETE,
        [DME_SQL_CERT_PUT] = CERT_PUT,
        [DME_SQL_CERT_GET] = CERT_GET_BY(PGSQL_CERT_ADDRESSES),
        [DME_SQL_CERT_FIND] = CERT_FIND_BY(PGSQL_CERT_ADDRESSES),
        [DME_SQL_CERT_SEARCH] = CERT_SEARCH_BY(PGSQL_CERT_ADDRESSES),
        [DME_SQL_CERT_DELETE] = CERT_DELETE,
        [DME_SQL_CERT_SET_STATUS] = CERT_SET_STATUS,
        [DME_SQL_CERT_COUNTS] = CERT_COUNTS,
        [DME_SQL_CERT_PURGE] = CERT_PURGE,
    },
};

const dme_sql_dialect_t *dme_sql_dialect(const char *driver_name)
{
    if (!driver_name) {
        return NULL;
    }
    if (strcmp(driver_name, sqlite.name) == 0) {
        return &sqlite;
    }
    if (strcmp(driver_name, pgsql.name) == 0) {
        return &pgsql;
    }
    return NULL;
}
