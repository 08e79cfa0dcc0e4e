/* Unit tests for lib/dme_store on SQLite through apr_dbd. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "unit.h"
#include "dme_store.h"

static const apr_dbd_driver_t *drv;
static char logbuf[4096];

static void capture(void *baton, int level, apr_status_t rv, const char *fmt,
                    va_list ap)
{
    size_t used = strlen(logbuf);

    vsnprintf(logbuf + used, sizeof(logbuf) - used, fmt, ap);
    used = strlen(logbuf);
    if (used + 1 < sizeof(logbuf)) {
        logbuf[used] = '\n';
        logbuf[used + 1] = '\0';
    }
}

static const dme_logger_t logger = {capture, NULL};

static apr_status_t close_db(void *h)
{
    apr_dbd_close(drv, h);
    return APR_SUCCESS;
}

/* Opens path in a pool of its own that closes the handle when destroyed,
 * as mod_dbd's connection pools do. */
static apr_dbd_t *open_db(apr_pool_t **cp, const char *path, apr_pool_t *p)
{
    apr_dbd_t *h = NULL;

    apr_pool_create(cp, p);
    if (apr_dbd_open(drv, *cp, path, &h) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_cleanup_register(*cp, h, close_db, apr_pool_cleanup_null);
    return h;
}

/* First column of the first row of sql, for looking behind the store. */
static const char *peek(apr_dbd_t *h, const char *sql, apr_pool_t *p)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *v = NULL;

    if (apr_dbd_select(drv, p, h, &res, sql, 0) != 0) {
        return "(error)";
    }
    while (apr_dbd_get_row(drv, p, res, &row, -1) == 0) {
        if (!v) {
            v = apr_pstrdup(p, apr_dbd_get_entry(drv, row, 0));
        }
        row = NULL;
    }
    return v;
}

static void test_conn_init(apr_dbd_t *h, apr_pool_t *p)
{
    CHECK_STR(peek(h, "PRAGMA journal_mode", p), "wal");
    CHECK_STR(peek(h, "PRAGMA busy_timeout", p), "5000");
    CHECK_INT(dme_store_conn_init(NULL, h, p), APR_EINVAL);
    CHECK_INT(dme_store_conn_init(drv, NULL, p), APR_EINVAL);
}

static void test_schema(apr_dbd_t *h, apr_pool_t *p)
{
    int n;

    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
    CHECK(strstr(logbuf, "DME10402") != NULL);
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", p), "1");
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
    CHECK_STR(logbuf, "");
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM dme_schema", p), "1");

    /* A schema from a newer module is left alone. */
    CHECK_INT(apr_dbd_query(drv, h, &n,
                            "INSERT INTO dme_schema (version) VALUES (2)"),
              0);
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_EGENERAL);
    CHECK(strstr(logbuf, "DME10400") != NULL);
    CHECK(strstr(logbuf, "schema version 2") != NULL);
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", p), "2");
    CHECK_INT(
        apr_dbd_query(drv, h, &n, "DELETE FROM dme_schema WHERE version = 2"),
        0);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
}

static void test_users(apr_dbd_t *h, apr_pool_t *p)
{
    static const char odd[] = "o'hara\"; DROP TABLE users; --\\ %s %d";
    const char *sealed = "x";

    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", p),
              APR_NOTFOUND);
    CHECK(sealed == NULL);
    CHECK_INT(dme_store_user_password_set(drv, h, "alice", "v1:one", p),
              APR_SUCCESS);
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", p),
              APR_SUCCESS);
    CHECK_STR(sealed, "v1:one");
    CHECK_INT(dme_store_user_password_set(drv, h, "alice", "v1:two", p),
              APR_SUCCESS);
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", p),
              APR_SUCCESS);
    CHECK_STR(sealed, "v1:two");

    /* Technical-user mode: the row stays, the password goes. */
    CHECK_INT(dme_store_user_password_set(drv, h, "alice", NULL, p),
              APR_SUCCESS);
    sealed = "x";
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", p),
              APR_SUCCESS);
    CHECK(sealed == NULL);
    CHECK_INT(dme_store_user_password_set(drv, h, "tech", NULL, p),
              APR_SUCCESS);
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "tech", p),
              APR_SUCCESS);
    CHECK(sealed == NULL);

    /* Quotes, ';' and placeholders in a name travel as a parameter. */
    CHECK_INT(dme_store_user_password_set(drv, h, odd, "v1:odd", p),
              APR_SUCCESS);
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, odd, p),
              APR_SUCCESS);
    CHECK_STR(sealed, "v1:odd");
    CHECK_STR(peek(h, "SELECT name FROM users WHERE name LIKE 'o%'", p), odd);
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM users", p), "3");
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "o'hara", p),
              APR_NOTFOUND);
    CHECK_INT(dme_store_user_password_set(drv, h, NULL, "v1:x", p), APR_EINVAL);
}

static void test_clients(apr_dbd_t *h, apr_pool_t *p)
{
    dme_client_t c = {"c1",  "alice", "Alice's phone",
                      "ios", "enrol", apr_time_from_sec(1700000000)};
    dme_client_t bare = {"c2", "alice", NULL, NULL, NULL, 0};
    dme_client_t *got;
    apr_time_t before = apr_time_sec(apr_time_now());
    int n = -1;

    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_NOTFOUND);
    CHECK(got == NULL);
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_SUCCESS);
    if (got) {
        CHECK_STR(got->id, "c1");
        CHECK_STR(got->user, "alice");
        CHECK_STR(got->name, "Alice's phone");
        CHECK_STR(got->platform, "ios");
        CHECK_STR(got->source, "enrol");
        CHECK_INT(got->created, apr_time_from_sec(1700000000));
    }
    c.name = "another";
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_EEXIST);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_SUCCESS);
    CHECK_STR(got ? got->name : NULL, "Alice's phone");

    CHECK_INT(dme_store_client_create(drv, h, &bare, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c2", p), APR_SUCCESS);
    if (got) {
        CHECK(got->name == NULL && got->platform == NULL);
        CHECK(got->source == NULL);
        CHECK(apr_time_sec(got->created) >= before);
        CHECK(apr_time_sec(got->created) <= before + 5);
    }
    CHECK_INT(dme_store_client_count(&n, drv, h, "alice", p), APR_SUCCESS);
    CHECK_INT(n, 2);
    CHECK_INT(dme_store_client_count(&n, drv, h, "nobody", p), APR_SUCCESS);
    CHECK_INT(n, 0);
    bare.user = NULL;
    CHECK_INT(dme_store_client_create(drv, h, &bare, p), APR_EINVAL);
}

static char *big_response(apr_size_t len, apr_pool_t *p)
{
    static const char piece[] = "<m id=\"1\">Gr\xc3\xbc\xc3\x9f"
                                "e; it's 'quoted' &amp; %s</m>\n";
    char *s = apr_palloc(p, len + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        s[i] = piece[i % (sizeof(piece) - 1)];
    }
    s[len] = '\0';
    return s;
}

static void test_sync_cas(apr_dbd_t *h, apr_pool_t *p)
{
    dme_sync_state_t st = {"c1", "INBOX", 1, "n1", 0, NULL, 0};
    dme_sync_state_t *got;

    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_NOTFOUND);
    CHECK(got == NULL);
    /* No row and a non-zero expectation: the client is ahead of us. */
    CHECK_INT(dme_store_sync_put(drv, h, &st, 7, p), DME_ECONFLICT);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_NOTFOUND);

    CHECK_INT(dme_store_sync_put(drv, h, &st, 0, p), APR_SUCCESS);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_SUCCESS);
    if (got) {
        CHECK_STR(got->client_id, "c1");
        CHECK_STR(got->folder, "INBOX");
        CHECK_INT(got->key, 1);
        CHECK_STR(got->notes, "n1");
        CHECK_INT(got->prev_key, 0);
        CHECK(got->prev_response == NULL);
        CHECK_INT(got->prev_response_len, 0);
    }
    st.key = 2;
    st.notes = "n2";
    CHECK_INT(dme_store_sync_put(drv, h, &st, 0, p), DME_ECONFLICT);
    CHECK_INT(dme_store_sync_put(drv, h, &st, 5, p), DME_ECONFLICT);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_SUCCESS);
    CHECK_INT(got ? got->key : -1, 1);
    CHECK_STR(got ? got->notes : NULL, "n1");

    st.prev_key = 1;
    st.prev_response = "<r/>";
    st.prev_response_len = 4;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 1, p), APR_SUCCESS);
    /* The same request again loses: the key moved on. */
    CHECK_INT(dme_store_sync_put(drv, h, &st, 1, p), DME_ECONFLICT);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_SUCCESS);
    if (got) {
        CHECK_INT(got->key, 2);
        CHECK_STR(got->notes, "n2");
        CHECK_INT(got->prev_key, 1);
        CHECK_STR(got->prev_response, "<r/>");
        CHECK_INT(got->prev_response_len, 4);
    }
    /* Another folder of the same client is separate state. */
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "Sent", p), APR_NOTFOUND);

    /* A stored key 0 counts as "no state yet". */
    st.folder = "Zero";
    st.key = 0;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 0, p), APR_SUCCESS);
    st.key = 9;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 0, p), APR_SUCCESS);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "Zero", p), APR_SUCCESS);
    CHECK_INT(got ? got->key : -1, 9);

    CHECK_INT(dme_store_sync_delete(drv, h, "c1", "Zero", p), APR_SUCCESS);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "Zero", p), APR_NOTFOUND);
    CHECK_INT(dme_store_sync_delete(drv, h, "c1", "Zero", p), APR_SUCCESS);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "INBOX", p), APR_SUCCESS);
}

static void test_sync_big(apr_dbd_t *h, apr_pool_t *p)
{
    apr_size_t len = 3 * 1024 * 1024 + 17;
    dme_sync_state_t st = {"c1", "Big", 1, "notes", 0, NULL, 0};
    dme_sync_state_t *got;
    char *resp = big_response(len, p);

    st.prev_response = resp;
    st.prev_response_len = len;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 0, p), APR_SUCCESS);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "Big", p), APR_SUCCESS);
    CHECK_INT(got ? got->prev_response_len : 0, len);
    CHECK(got && got->prev_response &&
          memcmp(got->prev_response, resp, len) == 0);

    /* The drivers bind text by length-less strings: refuse what would be
     * cut short or run long. */
    resp[100] = '\0';
    st.key = 2;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 1, p), APR_EINVAL);
    st.prev_response = "abc";
    st.prev_response_len = 2;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 1, p), APR_EINVAL);
    st.client_id = NULL;
    CHECK_INT(dme_store_sync_put(drv, h, &st, 1, p), APR_EINVAL);
    CHECK_INT(dme_store_sync_get(&got, drv, h, "c1", "Big", p), APR_SUCCESS);
    CHECK_INT(got ? got->key : -1, 1);
}

/* A statement prepared before the schema changed fails once, then is
 * prepared afresh. */
static void test_schema_change(apr_dbd_t *h, apr_pool_t *p)
{
    dme_client_t *got;
    int n;

    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_SUCCESS);
    CHECK_INT(apr_dbd_query(drv, h, &n, "DROP TABLE clients"), 0);
    CHECK_INT(apr_dbd_query(drv, h, &n, "DELETE FROM dme_schema"), 0);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_EGENERAL);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_NOTFOUND);
}

static void test_errors(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/garbage.db", NULL);
    apr_pool_t *cp;
    apr_dbd_t *h;
    const char *s;
    FILE *f = fopen(path, "w");
    int i;

    for (i = 0; f && i < 400; i++) {
        fputs("this is not an SQLite database file. ", f);
    }
    if (f) {
        fclose(f);
    }
    h = open_db(&cp, path, p);
    CHECK(h != NULL);
    if (h) {
        logbuf[0] = '\0';
        CHECK_INT(dme_store_conn_init(drv, h, cp), APR_EGENERAL);
        CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_EGENERAL);
        CHECK(strstr(logbuf, "DME10401") != NULL);
        CHECK(strstr(logbuf, "not a database") != NULL);
        /* Not initialised, so not used. */
        CHECK_INT(dme_store_user_password_get(&s, drv, h, "alice", cp),
                  APR_EINIT);
    }
    apr_pool_destroy(cp);

    /* A fresh database without the schema. */
    h = open_db(&cp, apr_pstrcat(p, dir, "/empty.db", NULL), p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_user_password_get(&s, drv, h, "alice", cp),
              APR_EGENERAL);
    CHECK(strstr(apr_dbd_error(drv, h, 0), "no such table") != NULL);
    CHECK_INT(dme_store_user_password_set(drv, h, "alice", "v1:x", cp),
              APR_EGENERAL);
    CHECK_INT(dme_store_user_password_get(&s, drv, NULL, "alice", cp),
              APR_EINVAL);
    apr_pool_destroy(cp);

    /* Once its connection pool is gone the handle is unknown: an error,
     * and the store does not touch the freed handle. */
    CHECK_INT(dme_store_user_password_get(&s, drv, h, "alice", p), APR_EINIT);
    CHECK_INT(dme_store_sync_delete(drv, h, "c", "f", p), APR_EINIT);
}

/* ---- two processes ---- */

#define ROWS         200
#define SHARED_STEPS 50

/* Adds ROWS clients for `who` and advances a shared folder's key
 * SHARED_STEPS times by compare-and-set; returns the failures. */
static int writer(const char *path, const char *who, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h = open_db(&cp, path, p);
    dme_sync_state_t st = {"shared", "INBOX", 0, NULL, 0, NULL, 0};
    dme_sync_state_t *cur;
    int i, done = 0, fails = 0;

    if (!h || dme_store_conn_init(drv, h, cp) != APR_SUCCESS) {
        return 1;
    }
    for (i = 0; i < ROWS; i++) {
        dme_client_t c = {
            apr_psprintf(cp, "%s-%d", who, i), who, NULL, NULL, NULL, 0};

        fails += dme_store_client_create(drv, h, &c, cp) != APR_SUCCESS;
        if (done < SHARED_STEPS && i % 4 == 0) {
            apr_status_t rv =
                dme_store_sync_get(&cur, drv, h, "shared", "INBOX", cp);
            apr_int64_t key = rv == APR_SUCCESS ? cur->key : 0;

            st.key = key + 1;
            st.notes = who;
            rv = dme_store_sync_put(drv, h, &st, key, cp);
            done += rv == APR_SUCCESS;
            fails += rv != APR_SUCCESS && rv != DME_ECONFLICT;
        }
    }
    /* Losers of a race try again until they made their steps. */
    while (done < SHARED_STEPS && fails < 10) {
        apr_status_t rv =
            dme_store_sync_get(&cur, drv, h, "shared", "INBOX", cp);
        apr_int64_t key = rv == APR_SUCCESS ? cur->key : 0;

        st.key = key + 1;
        rv = dme_store_sync_put(drv, h, &st, key, cp);
        done += rv == APR_SUCCESS;
        fails += rv != APR_SUCCESS && rv != DME_ECONFLICT;
    }
    apr_pool_destroy(cp);
    return fails;
}

static void test_two_processes(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/shared.db", NULL);
    apr_pool_t *cp;
    apr_dbd_t *h;
    apr_proc_t proc;
    apr_exit_why_e why;
    dme_sync_state_t *st;
    int code = -1, n = 0;

    /* SQLite connections must not cross fork(): none is open here. */
    apr_proc_t *pp = &proc;
    apr_status_t rv = apr_proc_fork(pp, p);

    if (rv == APR_INCHILD) {
        apr_pool_t *cp2;

        apr_pool_create(&cp2, NULL);
        h = open_db(&cp, path, cp2);
        dme_store_conn_init(drv, h, cp);
        dme_store_schema_ensure(drv, h, NULL, cp);
        apr_pool_destroy(cp);
        code = writer(path, "child", cp2);
        apr_pool_destroy(cp2);
        _exit(code ? 1 : 0);
    }
    CHECK_INT(rv, APR_INPARENT);
    h = open_db(&cp, path, p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    apr_pool_destroy(cp);
    CHECK_INT(writer(path, "parent", p), 0);
    CHECK_INT(apr_proc_wait(pp, &code, &why, APR_WAIT), APR_CHILD_DONE);
    CHECK_INT(code, 0);

    h = open_db(&cp, path, p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_client_count(&n, drv, h, "parent", cp), APR_SUCCESS);
    CHECK_INT(n, ROWS);
    CHECK_INT(dme_store_client_count(&n, drv, h, "child", cp), APR_SUCCESS);
    CHECK_INT(n, ROWS);
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM clients", cp), "400");
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", cp), "1");
    /* No step was lost: each process's 50 successful steps count. */
    CHECK_INT(dme_store_sync_get(&st, drv, h, "shared", "INBOX", cp),
              APR_SUCCESS);
    CHECK_INT(st ? st->key : -1, 2 * SHARED_STEPS);
    apr_pool_destroy(cp);
}

static void remove_dir(const char *dir, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            apr_file_remove(apr_pstrcat(p, dir, "/", fi.name, NULL), p);
        }
    }
    apr_dir_close(d);
    apr_dir_remove(dir, p);
}

static void test_main_db(const char *dir, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h = open_db(&cp, apr_pstrcat(p, dir, "/dme.db", NULL), p);

    CHECK(h != NULL);
    if (!h) {
        return;
    }
    /* Before dme_store_init nothing is known. */
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_EINIT);
    CHECK_INT(dme_store_init(p), APR_SUCCESS);
    CHECK_INT(dme_store_init(p), APR_SUCCESS);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    test_conn_init(h, cp);
    test_schema(h, cp);
    test_users(h, cp);
    test_clients(h, cp);
    test_sync_cas(h, cp);
    test_sync_big(h, cp);
    test_schema_change(h, cp);
    apr_pool_destroy(cp);
}

int main(void)
{
    apr_pool_t *p;
    char tmpl[] = "/tmp/dme-store-XXXXXX";
    const char *dir;

    apr_initialize();
    apr_pool_create(&p, NULL);
    dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    CHECK_INT(apr_dbd_init(p), APR_SUCCESS);
    CHECK_INT(apr_dbd_get_driver(p, "sqlite3", &drv), APR_SUCCESS);
    if (dir && drv) {
        test_main_db(dir, p);
        test_errors(dir, p);
        test_two_processes(dir, p);
        remove_dir(dir, p);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return unit_done("test_store");
}
