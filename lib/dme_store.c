/* Durable state through apr_dbd. The SQL itself lives in dme_sql.c. */
#include <string.h>

#include <apr_base64.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "dme_json.h"
#include "dme_sql.h"
#include "dme_store.h"

#if DME_SQL_SCHEMA_VERSION != DME_STORE_SCHEMA_VERSION
#error "dme_sql.c and dme_store.h disagree on the schema version"
#endif

/* What the store keeps for each initialised connection. */
typedef struct {
    apr_dbd_t *h;
    apr_pool_t *pool; /* the connection's: statements live here */
    const dme_sql_dialect_t *dl;
    apr_dbd_prepared_t *st[DME_SQL_COUNT];
} conn_t;

/* Initialised connections by handle address. An entry leaves when its
 * connection pool is cleaned up, before the handle closes, so a later
 * handle at the same address never meets stale statements. */
static apr_hash_t *conns;
#if APR_HAS_THREADS
static apr_thread_mutex_t *conns_lock;
#endif

static void lock(void)
{
#if APR_HAS_THREADS
    if (conns_lock) {
        apr_thread_mutex_lock(conns_lock);
    }
#endif
}

static void unlock(void)
{
#if APR_HAS_THREADS
    if (conns_lock) {
        apr_thread_mutex_unlock(conns_lock);
    }
#endif
}

static apr_status_t registry_gone(void *unused)
{
    conns = NULL;
#if APR_HAS_THREADS
    conns_lock = NULL;
#endif
    return APR_SUCCESS;
}

apr_status_t dme_store_init(apr_pool_t *p)
{
#if APR_HAS_THREADS
    apr_status_t rv;
#endif

    if (conns) {
        return APR_SUCCESS;
    }
#if APR_HAS_THREADS
    rv = apr_thread_mutex_create(&conns_lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
#endif
    conns = apr_hash_make(p);
    apr_pool_cleanup_register(p, NULL, registry_gone, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static conn_t *conn_find(apr_dbd_t *h)
{
    conn_t *c = NULL;

    lock();
    if (conns) {
        c = apr_hash_get(conns, &h, sizeof(h));
    }
    unlock();
    return c;
}

static apr_status_t conn_forget(void *data)
{
    conn_t *c = data;

    lock();
    if (conns && apr_hash_get(conns, &c->h, sizeof(c->h)) == c) {
        apr_hash_set(conns, &c->h, sizeof(c->h), NULL);
    }
    unlock();
    return APR_SUCCESS;
}

/* Copies column i of row into p; NULL for SQL NULL (the pgsql driver's
 * apr_dbd_get_entry gives "" there, so ask for the datum). */
static const char *column(const apr_dbd_driver_t *d, apr_dbd_row_t *row, int i,
                          apr_pool_t *p)
{
    const char *v = NULL;

    if (apr_dbd_datum_get(d, row, i, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS ||
        !v) {
        return NULL;
    }
    return apr_pstrdup(p, v);
}

/* Keeps the first row's ncols columns (cols may be NULL to drop them).
 * Every row is read: the pgsql driver streams rows, and the connection
 * takes no other statement until the last one is fetched. */
static int drain(const char **cols, int ncols, const apr_dbd_driver_t *d,
                 apr_dbd_results_t *res, apr_pool_t *p)
{
    apr_dbd_row_t *row = NULL;
    int i, found = 0;

    while (apr_dbd_get_row(d, p, res, &row, -1) == 0) {
        for (i = 0; cols && !found && i < ncols; i++) {
            cols[i] = column(d, row, i, p);
        }
        found = 1;
        row = NULL;
    }
    return found;
}

/* First column of the first row of a statement without parameters. */
static apr_status_t query_value(const char **v, const apr_dbd_driver_t *d,
                                apr_dbd_t *h, const char *sql, apr_pool_t *p)
{
    apr_dbd_results_t *res = NULL;

    *v = NULL;
    if (apr_dbd_select(d, p, h, &res, sql, 0) != 0) {
        return APR_EGENERAL;
    }
    drain(v, 1, d, res, p);
    return APR_SUCCESS;
}

/* Runs the dialect's connection settings, trying the whole list up to
 * eight times. Two processes switching one database to WAL at once both
 * fail at once - SQLite waits for no lock there - and would meet again if
 * they retried at once; a growing, jittered pause (1.3 s in all) lets one
 * switch, and the other then finds WAL set. A file that is no database
 * fails every try, which costs only that pause. */
static apr_status_t conn_settings(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                  const dme_sql_dialect_t *dl, apr_pool_t *p)
{
    const char *v;
    int i, attempt;

    for (attempt = 0; attempt < 8; attempt++) {
        if (attempt > 0) {
            apr_sleep(apr_time_from_msec(5 << attempt) +
                      apr_time_now() % apr_time_from_msec(5));
        }
        for (i = 0; dl->conn_init[i]; i++) {
            if (query_value(&v, d, h, dl->conn_init[i], p) != APR_SUCCESS) {
                break;
            }
        }
        if (!dl->conn_init[i]) {
            return APR_SUCCESS;
        }
    }
    return APR_EGENERAL;
}

apr_status_t dme_store_conn_init(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 apr_pool_t *p)
{
    const dme_sql_dialect_t *dl;
    conn_t *c;

    if (!d || !h || !p) {
        return APR_EINVAL;
    }
    if (!(dl = dme_sql_dialect(apr_dbd_name(d)))) {
        return APR_ENOTIMPL;
    }
    if (!conns) {
        return APR_EINIT;
    }
    if (conn_find(h)) {
        return APR_SUCCESS;
    }
    if (conn_settings(d, h, dl, p) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->h = h;
    c->pool = p;
    c->dl = dl;
    lock();
    apr_hash_set(conns, &c->h, sizeof(c->h), c);
    unlock();
    apr_pool_cleanup_register(p, c, conn_forget, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

/* ---- running statements ---- */

static apr_status_t prepared(apr_dbd_prepared_t **st, conn_t **cp,
                             const apr_dbd_driver_t *d, apr_dbd_t *h,
                             dme_sql_id_t id)
{
    conn_t *c = conn_find(h);

    if (!c) {
        return APR_EINIT;
    }
    if (!c->st[id] &&
        apr_dbd_prepare(d, c->pool, h, c->dl->stmt[id], NULL, &c->st[id])) {
        c->st[id] = NULL;
        return APR_EGENERAL;
    }
    *st = c->st[id];
    *cp = c;
    return APR_SUCCESS;
}

/* A statement that failed is prepared afresh next time: the SQLite
 * driver prepares with the legacy interface, whose statements stay broken
 * once the schema changes under them. */
static apr_status_t exec(int *nrows, const apr_dbd_driver_t *d, apr_dbd_t *h,
                         dme_sql_id_t id, int nargs, const char **args,
                         apr_pool_t *p)
{
    apr_dbd_prepared_t *st;
    conn_t *c;
    int n = 0;
    apr_status_t rv = prepared(&st, &c, d, h, id);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (apr_dbd_pquery(d, p, h, &n, st, nargs, args) != 0) {
        c->st[id] = NULL;
        return APR_EGENERAL;
    }
    if (nrows) {
        *nrows = n;
    }
    return APR_SUCCESS;
}

/* Runs a prepared select, dropping a failed statement as exec does. */
static apr_status_t query(apr_dbd_results_t **res, const apr_dbd_driver_t *d,
                          apr_dbd_t *h, dme_sql_id_t id, int nargs,
                          const char **args, apr_pool_t *p)
{
    apr_dbd_prepared_t *st;
    conn_t *c;
    apr_status_t rv = prepared(&st, &c, d, h, id);

    *res = NULL;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (apr_dbd_pselect(d, p, h, res, st, 0, nargs, args) != 0) {
        c->st[id] = NULL;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Runs a select and keeps its first row in cols.
 * APR_NOTFOUND when it answers no row. */
static apr_status_t select_row(const char **cols, int ncols,
                               const apr_dbd_driver_t *d, apr_dbd_t *h,
                               dme_sql_id_t id, int nargs, const char **args,
                               apr_pool_t *p)
{
    apr_dbd_results_t *res;
    apr_status_t rv = query(&res, d, h, id, nargs, args, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return drain(cols, ncols, d, res, p) ? APR_SUCCESS : APR_NOTFOUND;
}

/* Runs a select and keeps every row, each a const char *[ncols], in
 * *rows (empty when it answers none; NULL on failure). */
static apr_status_t select_rows(apr_array_header_t **rows, int ncols,
                                const apr_dbd_driver_t *d, apr_dbd_t *h,
                                dme_sql_id_t id, int nargs, const char **args,
                                apr_pool_t *p)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    const char **cols;
    int i;
    apr_status_t rv = query(&res, d, h, id, nargs, args, p);

    *rows = NULL;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *rows = apr_array_make(p, 4, sizeof(cols));
    while (apr_dbd_get_row(d, p, res, &row, -1) == 0) {
        cols = apr_palloc(p, ncols * sizeof(*cols));
        for (i = 0; i < ncols; i++) {
            cols[i] = column(d, row, i, p);
        }
        APR_ARRAY_PUSH(*rows, const char **) = cols;
        row = NULL;
    }
    return APR_SUCCESS;
}

static const char *num(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static apr_int64_t to_num(const char *s)
{
    return s ? apr_atoi64(s) : 0;
}

static const char *now_sec(apr_pool_t *p)
{
    return num(apr_time_sec(apr_time_now()), p);
}

/* ---- schema ---- */

/* The schema version in the database; 0 when there is none yet. */
static apr_status_t schema_read(int *version, const apr_dbd_driver_t *d,
                                apr_dbd_t *h, const dme_sql_dialect_t *dl,
                                apr_pool_t *p)
{
    const char *v;
    apr_status_t rv = query_value(&v, d, h, dl->schema_exists, p);

    *version = 0;
    if (rv != APR_SUCCESS || to_num(v) == 0) {
        return rv;
    }
    rv = query_value(&v, d, h, dl->schema_version, p);
    *version = (int)to_num(v);
    return rv;
}

/* Brings the schema from version `from` (0: none) to the latest in one
 * transaction, so a fresh database never shows an older version; *why
 * gets the database's words on failure. The only multi-call transaction
 * of the store: it runs at start-up, not beside request threads. */
static apr_status_t schema_upgrade(const char **why, int from,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const dme_sql_dialect_t *dl, apr_pool_t *p)
{
    apr_dbd_transaction_t *t = NULL;
    int v, i, n, rc = apr_dbd_transaction_start(d, p, h, &t);

    for (v = from; rc == 0 && v < DME_STORE_SCHEMA_VERSION; v++) {
        for (i = 0; rc == 0 && dl->schema[v][i]; i++) {
            rc = apr_dbd_query(d, h, &n, dl->schema[v][i]);
        }
    }
    if (rc != 0) {
        *why = apr_pstrdup(p, apr_dbd_error(d, h, rc));
    }
    /* Also after a failed start: the driver may have tied t to h. */
    if (t) {
        if (rc != 0) {
            apr_dbd_transaction_mode_set(d, t, APR_DBD_TRANSACTION_ROLLBACK);
        }
        if (apr_dbd_transaction_end(d, p, t) != 0 && rc == 0) {
            rc = -1;
            *why = apr_pstrdup(p, apr_dbd_error(d, h, rc));
        }
    }
    return rc == 0 ? APR_SUCCESS : APR_EGENERAL;
}

static apr_status_t schema_too_new(int version, const dme_logger_t *lg)
{
    dme_log(lg, DME_LOG_ERR, APR_EGENERAL,
            DMELOGNO(10400) "the database holds schema version %d, newer "
                            "than the %d this module knows; a newer mod_dme "
                            "wrote it, so the store stays unused rather "
                            "than damage it",
            version, DME_STORE_SCHEMA_VERSION);
    return APR_EGENERAL;
}

/* SQLite's legacy statements, as the driver prepares them, fail once
 * after any schema change; dropping them here spares the first request
 * after an upgrade that failure. apr_dbd cannot free a statement, so the
 * old ones stay in the connection's pool until it closes - once. */
static void statements_forget(apr_dbd_t *h)
{
    conn_t *c = conn_find(h);

    if (c) {
        memset(c->st, 0, sizeof(c->st));
    }
}

static void schema_changed(int from, const dme_logger_t *lg)
{
    if (from == 0) {
        dme_log(lg, DME_LOG_NOTICE, APR_SUCCESS,
                DMELOGNO(10402) "created database schema version %d",
                DME_STORE_SCHEMA_VERSION);
        return;
    }
    dme_log(lg, DME_LOG_NOTICE, APR_SUCCESS,
            DMELOGNO(10405) "upgraded the database schema in place from "
                            "version %d to %d, keeping its rows",
            from, DME_STORE_SCHEMA_VERSION);
}

apr_status_t dme_store_schema_ensure(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                     const dme_logger_t *lg, apr_pool_t *p)
{
    const dme_sql_dialect_t *dl;
    const char *why = "unknown";
    int attempt, version, found = 0, changed = 0;

    if (!d || !h) {
        return APR_EINVAL;
    }
    if (!(dl = dme_sql_dialect(apr_dbd_name(d)))) {
        return APR_ENOTIMPL;
    }
    /* A losing racer fails to create or upgrade and then finds the
     * winner's version; the read after the last try tells if one won. */
    for (attempt = 0;; attempt++) {
        if (schema_read(&version, d, h, dl, p) != APR_SUCCESS) {
            if (attempt < 3) {
                /* SQLite fails a legacy statement whose schema another
                 * process changed between its prepare and its step. */
                dme_log(lg, DME_LOG_DEBUG, APR_EGENERAL,
                        DMELOGNO(10406) "reading the schema version failed "
                                        "(%s); trying again",
                        apr_dbd_error(d, h, 0));
                continue;
            }
            dme_log(lg, DME_LOG_ERR, APR_EGENERAL,
                    DMELOGNO(10401) "cannot read the schema version: %s",
                    apr_dbd_error(d, h, 0));
            return APR_EGENERAL;
        }
        if (version > DME_STORE_SCHEMA_VERSION) {
            return schema_too_new(version, lg);
        }
        if (version == DME_STORE_SCHEMA_VERSION) {
            if (changed) {
                schema_changed(found, lg);
            }
            return APR_SUCCESS;
        }
        if (attempt == 3) {
            break;
        }
        found = version;
        statements_forget(h);
        changed = schema_upgrade(&why, version, d, h, dl, p) == APR_SUCCESS;
        if (!changed) {
            dme_log(lg, DME_LOG_DEBUG, APR_EGENERAL,
                    DMELOGNO(10403) "bringing the schema from version %d to "
                                    "%d failed (%s); reading the version "
                                    "again",
                    version, DME_STORE_SCHEMA_VERSION, why);
        }
    }
    dme_log(lg, DME_LOG_ERR, APR_EGENERAL,
            DMELOGNO(10404) "cannot bring the database schema from version "
                            "%d to %d: %s",
            found, DME_STORE_SCHEMA_VERSION, why);
    return APR_EGENERAL;
}

/* ---- users ---- */

apr_status_t dme_store_user_password_get(const char **sealed,
                                         const apr_dbd_driver_t *d,
                                         apr_dbd_t *h, const char *user,
                                         apr_pool_t *p)
{
    const char *args[] = {user};

    *sealed = NULL;
    if (!d || !h || !user) {
        return APR_EINVAL;
    }
    return select_row(sealed, 1, d, h, DME_SQL_USER_PASSWORD_GET, 1, args, p);
}

apr_status_t dme_store_user_password_set(const apr_dbd_driver_t *d,
                                         apr_dbd_t *h, const char *user,
                                         const char *sealed, apr_pool_t *p)
{
    const char *now = now_sec(p);
    const char *args[] = {user, sealed, now, now};

    if (!d || !h || !user) {
        return APR_EINVAL;
    }
    return exec(NULL, d, h, DME_SQL_USER_PASSWORD_SET, 4, args, p);
}

/* ---- clients ---- */

apr_status_t dme_store_client_create(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                     const dme_client_t *c, apr_pool_t *p)
{
    const char *args[7];
    apr_status_t rv;
    int n = 0;

    if (!d || !h || !c || !c->id || !c->user) {
        return APR_EINVAL;
    }
    args[0] = c->id;
    args[1] = c->user;
    args[2] = c->name;
    args[3] = c->platform;
    args[4] = num(apr_time_sec(c->created ? c->created : apr_time_now()), p);
    args[5] = c->source;
    args[6] = c->push_url;
    rv = exec(&n, d, h, DME_SQL_CLIENT_CREATE, 7, args, p);
    return rv == APR_SUCCESS && n == 0 ? APR_EEXIST : rv;
}

#define CLIENT_NCOLS 7

/* A client from the columns of DME_SQL_CLIENT_GET. */
static dme_client_t *client_from(const char **col, apr_pool_t *p)
{
    dme_client_t *cl = apr_pcalloc(p, sizeof(*cl));

    cl->id = col[0];
    cl->user = col[1];
    cl->name = col[2];
    cl->platform = col[3];
    cl->created = apr_time_from_sec(to_num(col[4]));
    cl->source = col[5];
    cl->push_url = col[6];
    return cl;
}

apr_status_t dme_store_client_get(dme_client_t **c, const apr_dbd_driver_t *d,
                                  apr_dbd_t *h, const char *id, apr_pool_t *p)
{
    const char *args[] = {id}, *col[CLIENT_NCOLS];
    apr_status_t rv;

    *c = NULL;
    if (!d || !h || !id) {
        return APR_EINVAL;
    }
    rv = select_row(col, CLIENT_NCOLS, d, h, DME_SQL_CLIENT_GET, 1, args, p);
    if (rv == APR_SUCCESS) {
        *c = client_from(col, p);
    }
    return rv;
}

apr_status_t dme_store_client_count(int *n, const apr_dbd_driver_t *d,
                                    apr_dbd_t *h, const char *user,
                                    apr_pool_t *p)
{
    const char *args[] = {user}, *count = NULL;
    apr_status_t rv;

    *n = 0;
    if (!d || !h || !user) {
        return APR_EINVAL;
    }
    rv = select_row(&count, 1, d, h, DME_SQL_CLIENT_COUNT, 1, args, p);
    if (rv == APR_SUCCESS) {
        *n = (int)to_num(count);
    }
    return APR_STATUS_IS_NOTFOUND(rv) ? APR_EGENERAL : rv;
}

apr_status_t dme_store_client_list(apr_array_header_t **clients,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *user, apr_pool_t *p)
{
    const char *args[] = {user};
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *clients = NULL;
    if (!d || !h || !user) {
        return APR_EINVAL;
    }
    rv =
        select_rows(&rows, CLIENT_NCOLS, d, h, DME_SQL_CLIENT_LIST, 1, args, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *clients = apr_array_make(p, rows->nelts, sizeof(dme_client_t *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*clients, dme_client_t *) =
            client_from(APR_ARRAY_IDX(rows, i, const char **), p);
    }
    return APR_SUCCESS;
}

apr_status_t dme_store_user_list(apr_array_header_t **users,
                                 const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 apr_pool_t *p)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *users = NULL;
    if (!d || !h) {
        return APR_EINVAL;
    }
    rv = select_rows(&rows, 1, d, h, DME_SQL_USER_LIST, 0, NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *users = apr_array_make(p, rows->nelts, sizeof(const char *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*users, const char *) =
            APR_ARRAY_IDX(rows, i, const char **)[0];
    }
    return APR_SUCCESS;
}

apr_status_t dme_store_user_has_clients(int *yes, const apr_dbd_driver_t *d,
                                        apr_dbd_t *h, const char *user,
                                        apr_pool_t *p)
{
    int n = 0;
    apr_status_t rv = dme_store_client_count(&n, d, h, user, p);

    *yes = rv == APR_SUCCESS && n > 0;
    return rv;
}

/* ---- sync state ---- */

apr_status_t dme_store_sync_get(dme_sync_state_t **st,
                                const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const char *client_id, const char *folder,
                                apr_pool_t *p)
{
    const char *args[] = {client_id, folder}, *col[4];
    dme_sync_state_t *s;
    apr_status_t rv;

    *st = NULL;
    if (!d || !h || !client_id || !folder) {
        return APR_EINVAL;
    }
    rv = select_row(col, 4, d, h, DME_SQL_SYNC_GET, 2, args, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->client_id = apr_pstrdup(p, client_id);
    s->folder = apr_pstrdup(p, folder);
    s->key = to_num(col[0]);
    s->notes = col[1];
    s->prev_key = to_num(col[2]);
    s->prev_response = col[3];
    s->prev_response_len = col[3] ? strlen(col[3]) : 0;
    *st = s;
    return APR_SUCCESS;
}

/* The drivers bind text by strlen, so the length must be that. */
static int text_ok(const char *s, apr_size_t len)
{
    return !s || (s[len] == '\0' && !memchr(s, '\0', len));
}

apr_status_t dme_store_sync_put(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const dme_sync_state_t *st,
                                apr_int64_t expect_key, apr_pool_t *p)
{
    const char *key, *prev, *now = now_sec(p);
    apr_status_t rv;
    int n = 0;

    if (!d || !h || !st || !st->client_id || !st->folder ||
        !text_ok(st->prev_response, st->prev_response_len)) {
        return APR_EINVAL;
    }
    key = num(st->key, p);
    prev = num(st->prev_key, p);
    if (expect_key == 0) {
        const char *args[] = {st->client_id, st->folder,        key, st->notes,
                              prev,          st->prev_response, now};

        rv = exec(&n, d, h, DME_SQL_SYNC_CREATE, 7, args, p);
    } else {
        const char *args[] = {
            key, st->notes,     prev,       st->prev_response,
            now, st->client_id, st->folder, num(expect_key, p)};

        rv = exec(&n, d, h, DME_SQL_SYNC_UPDATE, 8, args, p);
    }
    return rv == APR_SUCCESS && n == 0 ? DME_ECONFLICT : rv;
}

apr_status_t dme_store_sync_delete(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *client_id, const char *folder,
                                   apr_pool_t *p)
{
    const char *args[] = {client_id, folder};

    if (!d || !h || !client_id || !folder) {
        return APR_EINVAL;
    }
    return exec(NULL, d, h, DME_SQL_SYNC_DELETE, 2, args, p);
}

/* ---- certificates ---- */

static const char *const cert_statuses[] = {"unchecked", "good", "revoked",
                                            "unknown", NULL};

static int status_ok(const char *s)
{
    int i;

    for (i = 0; s && cert_statuses[i]; i++) {
        if (strcmp(s, cert_statuses[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An ASCII-lowercased copy: addresses and fingerprints are compared so. */
static char *lower(const char *s, apr_pool_t *p)
{
    char *l = apr_pstrdup(p, s), *c;

    for (c = l; *c; c++) {
        *c = apr_tolower(*c);
    }
    return l;
}

static int fingerprint_ok(const char *fp)
{
    int i;

    for (i = 0; fp[i]; i++) {
        if (!apr_isxdigit(fp[i])) {
            return 0;
        }
    }
    return i == 64;
}

/* Printable ASCII without spaces: also keeps the newline that separates
 * addresses in a result row out of them. */
static int address_ok(const char *a)
{
    const char *c;

    for (c = a; *c; c++) {
        if (*c < '!' || *c > '~') {
            return 0;
        }
    }
    return c != a;
}

/* The addresses as the JSON array the certificate row keeps, lowercased,
 * each once; NULL if there is none or one is malformed. */
static const char *addresses_json(const apr_array_header_t *addrs,
                                  apr_pool_t *p)
{
    apr_array_header_t *parts;
    apr_hash_t *seen = apr_hash_make(p);
    const char *a;
    int i;

    if (!addrs || addrs->nelts == 0) {
        return NULL;
    }
    parts = apr_array_make(p, addrs->nelts, sizeof(const char *));
    for (i = 0; i < addrs->nelts; i++) {
        a = APR_ARRAY_IDX(addrs, i, const char *);
        if (!a || !address_ok(a)) {
            return NULL;
        }
        a = lower(a, p);
        if (!apr_hash_get(seen, a, APR_HASH_KEY_STRING)) {
            apr_hash_set(seen, a, APR_HASH_KEY_STRING, a);
            APR_ARRAY_PUSH(parts, const char *) = dme_json_string(a, p);
        }
    }
    return apr_pstrcat(p, "[", apr_array_pstrcat(p, parts, ','), "]", NULL);
}

static const char *der_encode(const unsigned char *der, apr_size_t len,
                              apr_pool_t *p)
{
    char *b64 = apr_palloc(p, apr_base64_encode_len((int)len));

    apr_base64_encode_binary(b64, der, (int)len);
    return b64;
}

/* The statement's arguments for c, in the order of DME_SQL_CERT_PUT;
 * APR_EINVAL for what the header refuses. */
static apr_status_t cert_args(const char **args, const dme_stored_cert_t *c,
                              apr_pool_t *p)
{
    const char *status = c->status ? c->status : cert_statuses[0];
    apr_time_t harvested = c->harvested ? c->harvested : apr_time_now();

    if (!c->fingerprint || !fingerprint_ok(c->fingerprint) || !c->der ||
        c->der_len == 0 || c->der_len > DME_STORE_CERT_DER_MAX || !c->issuer ||
        !c->serial || !status_ok(status) ||
        !(args[6] = addresses_json(c->addresses, p))) {
        return APR_EINVAL;
    }
    args[0] = lower(c->fingerprint, p);
    args[1] = der_encode(c->der, c->der_len, p);
    args[2] = c->issuer;
    args[3] = c->serial;
    args[4] = num(apr_time_sec(c->not_before), p);
    args[5] = num(apr_time_sec(c->not_after), p);
    args[7] = c->key_usage ? c->key_usage : "";
    args[8] = c->can_encrypt ? "1" : "0";
    args[9] = status;
    args[10] = c->source_message_id ? c->source_message_id : "";
    args[11] = c->source_user;
    args[12] = num(apr_time_sec(harvested), p);
    return APR_SUCCESS;
}

apr_status_t dme_store_cert_put(int *created, const apr_dbd_driver_t *d,
                                apr_dbd_t *h, const dme_stored_cert_t *c,
                                apr_pool_t *p)
{
    const char *args[13];
    apr_status_t rv;
    int n = 0;

    *created = 0;
    if (!d || !h || !c) {
        return APR_EINVAL;
    }
    if ((rv = cert_args(args, c, p)) != APR_SUCCESS) {
        return rv;
    }
    rv = exec(&n, d, h, DME_SQL_CERT_PUT, 13, args, p);
    *created = rv == APR_SUCCESS && n > 0;
    return rv;
}

#define CERT_NCOLS 13

/* Splits the newline-separated addresses of a result row. */
static apr_array_header_t *addresses_split(const char *s, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(const char *));
    char *copy, *tok, *last;

    if (s) {
        copy = apr_pstrdup(p, s);
        for (tok = apr_strtok(copy, "\n", &last); tok;
             tok = apr_strtok(NULL, "\n", &last)) {
            APR_ARRAY_PUSH(a, const char *) = tok;
        }
    }
    return a;
}

/* A certificate from the columns of DME_SQL_CERT_GET. */
static dme_stored_cert_t *cert_from(const char **col, apr_pool_t *p)
{
    dme_stored_cert_t *c = apr_pcalloc(p, sizeof(*c));
    unsigned char *der;

    if (col[1]) {
        der = apr_palloc(p, apr_base64_decode_len(col[1]));
        c->der_len = (apr_size_t)apr_base64_decode_binary(der, col[1]);
        c->der = der;
    }
    c->fingerprint = col[0] ? col[0] : "";
    c->issuer = col[2] ? col[2] : "";
    c->serial = col[3] ? col[3] : "";
    c->not_before = apr_time_from_sec(to_num(col[4]));
    c->not_after = apr_time_from_sec(to_num(col[5]));
    c->addresses = addresses_split(col[6], p);
    c->key_usage = col[7] ? col[7] : "";
    c->can_encrypt = to_num(col[8]) != 0;
    c->status = col[9] ? col[9] : "";
    c->source_message_id = col[10] ? col[10] : "";
    c->source_user = col[11];
    c->harvested = apr_time_from_sec(to_num(col[12]));
    return c;
}

/* Runs a select of certificates into *certs, as dme_stored_cert_t *. */
static apr_status_t cert_rows(apr_array_header_t **certs,
                              const apr_dbd_driver_t *d, apr_dbd_t *h,
                              dme_sql_id_t id, int nargs, const char **args,
                              apr_pool_t *p)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *certs = NULL;
    rv = select_rows(&rows, CERT_NCOLS, d, h, id, nargs, args, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *certs = apr_array_make(p, rows->nelts, sizeof(dme_stored_cert_t *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*certs, dme_stored_cert_t *) =
            cert_from(APR_ARRAY_IDX(rows, i, const char **), p);
    }
    return APR_SUCCESS;
}

apr_status_t dme_store_cert_find(apr_array_header_t **certs,
                                 const apr_dbd_driver_t *d, apr_dbd_t *h,
                                 const char *address, apr_pool_t *p)
{
    const char *args[1];

    *certs = NULL;
    if (!d || !h || !address) {
        return APR_EINVAL;
    }
    args[0] = lower(address, p);
    return cert_rows(certs, d, h, DME_SQL_CERT_FIND, 1, args, p);
}

/* "%part%" for LIKE with part lowercased and its own wildcards, and the
 * escape character, escaped by a backslash. */
static const char *like_pattern(const char *part, apr_pool_t *p)
{
    char *pat = apr_palloc(p, 2 * strlen(part) + 3), *o = pat;

    *o++ = '%';
    for (; *part; part++) {
        if (*part == '%' || *part == '_' || *part == '\\') {
            *o++ = '\\';
        }
        *o++ = apr_tolower(*part);
    }
    *o++ = '%';
    *o = '\0';
    return pat;
}

apr_status_t dme_store_cert_search(apr_array_header_t **certs,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *address_part, int limit,
                                   apr_pool_t *p)
{
    const char *args[2];

    *certs = NULL;
    if (!d || !h || !address_part || limit < 1) {
        return APR_EINVAL;
    }
    args[0] = like_pattern(address_part, p);
    args[1] = num(limit, p);
    return cert_rows(certs, d, h, DME_SQL_CERT_SEARCH, 2, args, p);
}

apr_status_t dme_store_cert_get(dme_stored_cert_t **c,
                                const apr_dbd_driver_t *d, apr_dbd_t *h,
                                const char *fingerprint, apr_pool_t *p)
{
    const char *args[1], *col[CERT_NCOLS];
    apr_status_t rv;

    *c = NULL;
    if (!d || !h || !fingerprint) {
        return APR_EINVAL;
    }
    args[0] = lower(fingerprint, p);
    rv = select_row(col, CERT_NCOLS, d, h, DME_SQL_CERT_GET, 1, args, p);
    if (rv == APR_SUCCESS) {
        *c = cert_from(col, p);
    }
    return rv;
}

apr_status_t dme_store_cert_delete(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   const char *fingerprint, apr_pool_t *p)
{
    const char *args[1];
    apr_status_t rv;
    int n = 0;

    if (!d || !h || !fingerprint) {
        return APR_EINVAL;
    }
    args[0] = lower(fingerprint, p);
    rv = exec(&n, d, h, DME_SQL_CERT_DELETE, 1, args, p);
    return rv == APR_SUCCESS && n == 0 ? APR_NOTFOUND : rv;
}

apr_status_t dme_store_cert_set_status(const apr_dbd_driver_t *d, apr_dbd_t *h,
                                       const char *fingerprint,
                                       const char *status, apr_pool_t *p)
{
    const char *args[2];
    apr_status_t rv;
    int n = 0;

    if (!d || !h || !fingerprint || !status_ok(status)) {
        return APR_EINVAL;
    }
    args[0] = status;
    args[1] = lower(fingerprint, p);
    rv = exec(&n, d, h, DME_SQL_CERT_SET_STATUS, 2, args, p);
    return rv == APR_SUCCESS && n == 0 ? APR_NOTFOUND : rv;
}

apr_status_t dme_store_cert_counts(apr_table_t **counts,
                                   const apr_dbd_driver_t *d, apr_dbd_t *h,
                                   apr_time_t now, apr_pool_t *p)
{
    const char *args[1];
    const char **col;
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *counts = NULL;
    if (!d || !h) {
        return APR_EINVAL;
    }
    args[0] = num(apr_time_sec(now), p);
    rv = select_rows(&rows, 2, d, h, DME_SQL_CERT_COUNTS, 1, args, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *counts = apr_table_make(p, 5);
    for (i = 0; cert_statuses[i]; i++) {
        apr_table_setn(*counts, cert_statuses[i], "0");
    }
    apr_table_setn(*counts, "expired", "0");
    for (i = 0; i < rows->nelts; i++) {
        col = APR_ARRAY_IDX(rows, i, const char **);
        if (col[0]) {
            apr_table_setn(*counts, col[0], num(to_num(col[1]), p));
        }
    }
    return APR_SUCCESS;
}

apr_status_t dme_store_cert_purge_expired(int *n, const apr_dbd_driver_t *d,
                                          apr_dbd_t *h, const char *address,
                                          apr_time_t now, apr_pool_t *p)
{
    const char *args[3];

    *n = 0;
    if (!d || !h || !address) {
        return APR_EINVAL;
    }
    args[0] = num(apr_time_sec(now), p);
    args[1] = lower(address, p);
    args[2] = args[0];
    return exec(n, d, h, DME_SQL_CERT_PURGE, 3, args, p);
}
