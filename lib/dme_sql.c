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

/* ---- SQLite ---- */

/* The busy timeout comes first: switching to WAL needs a lock that
 * another process may hold for a moment. WAL lets readers run beside the
 * one writer, and the timeout makes a second writer wait, not fail. */
static const char *const sqlite_conn_init[] = {
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
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

static const dme_sql_dialect_t sqlite = {
    "sqlite3",
    sqlite_conn_init,
    "SELECT COUNT(*) FROM sqlite_master "
    "WHERE type = 'table' AND name = 'dme_schema'",
    SCHEMA_VERSION,
    {sqlite_schema_v1, sqlite_schema_v2},
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

static const dme_sql_dialect_t pgsql = {
    "pgsql",
    pgsql_conn_init,
    "SELECT CASE WHEN to_regclass('dme_schema') IS NULL THEN 0 ELSE 1 END",
    SCHEMA_VERSION,
    {pgsql_schema_v1, pgsql_schema_v2},
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
