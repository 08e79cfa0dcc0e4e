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

/* The columns of clients as "name type notnull,...", to compare schemas. */
#define CLIENT_TABLE_INFO                                                      \
    "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\", ',') "     \
    "FROM pragma_table_info('clients')"
#define CLIENT_TABLE_V2                                                        \
    "id TEXT 1,user_name TEXT 1,name TEXT 0,platform TEXT 0,"                  \
    "created INTEGER 1,source TEXT 0,push_url TEXT 0"

static void test_schema(apr_dbd_t *h, apr_pool_t *p)
{
    int n;

    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
    CHECK(strstr(logbuf, "DME10402") != NULL);
    CHECK(strstr(logbuf, "version 3") != NULL);
    CHECK(strstr(logbuf, "DME10405") == NULL);
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", p), "3");
    CHECK_STR(peek(h, CLIENT_TABLE_INFO, p), CLIENT_TABLE_V2);
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_SUCCESS);
    CHECK_STR(logbuf, "");
    /* Each step recorded once: 1, 2 and 3. */
    CHECK_STR(peek(h, "SELECT group_concat(version, ',') FROM dme_schema", p),
              "1,2,3");

    /* A schema from a newer module is left alone. */
    CHECK_INT(apr_dbd_query(drv, h, &n,
                            "INSERT INTO dme_schema (version) VALUES (4)"),
              0);
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, p), APR_EGENERAL);
    CHECK(strstr(logbuf, "DME10400") != NULL);
    CHECK(strstr(logbuf, "schema version 4") != NULL);
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", p), "4");
    CHECK_INT(
        apr_dbd_query(drv, h, &n, "DELETE FROM dme_schema WHERE version = 4"),
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
                      "ios", "enrol", apr_time_from_sec(1700000000),
                      NULL};
    dme_client_t bare = {"c2", "alice", NULL, NULL, NULL, 0, NULL};
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
        CHECK(got->push_url == NULL);
    }
    c.name = "another";
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_EEXIST);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c1", p), APR_SUCCESS);
    CHECK_STR(got ? got->name : NULL, "Alice's phone");

    CHECK_INT(dme_store_client_create(drv, h, &bare, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "c2", p), APR_SUCCESS);
    if (got) {
        CHECK(got->name == NULL && got->platform == NULL);
        CHECK(got->source == NULL && got->push_url == NULL);
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

/* A long https URL whose query string carries what SQL and printf mind. */
static const char *long_push_url(apr_pool_t *p)
{
    char *path = apr_palloc(p, 3001);
    int i;

    for (i = 0; i < 3000; i++) {
        path[i] = "abcdefghij/"[i % 11];
    }
    path[3000] = '\0';
    return apr_pstrcat(p, "https://push.example.net:8443/v1/", path,
                       "?device=a%2Fb%3D&token=O'Hara\"x\";--&n=%s%d"
                       "&lang=gr\xc3\xbc\xc3\x9f#frag",
                       NULL);
}

static void test_push_url(apr_dbd_t *h, apr_pool_t *p)
{
    const char *url = long_push_url(p);
    dme_client_t c = {"push-1", "pusher", "tablet", "android", NULL, 0, url};
    dme_client_t *got;

    CHECK(strlen(url) > 3000);
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "push-1", p), APR_SUCCESS);
    CHECK_STR(got ? got->push_url : NULL, url);
    CHECK_STR(got ? got->name : NULL, "tablet");
    CHECK_STR(peek(h,
                   "SELECT length(push_url) FROM clients "
                   "WHERE id = 'push-1'",
                   p),
              apr_itoa(p, (int)strlen(url) - 2)); /* two 2-byte characters */

    /* A second client of the same user without one reads back NULL, not
     * "" (the SQL NULL must survive). */
    c.id = "push-2";
    c.push_url = NULL;
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "push-2", p), APR_SUCCESS);
    CHECK(got && got->push_url == NULL);
    CHECK_STR(peek(h,
                   "SELECT COUNT(*) FROM clients "
                   "WHERE push_url IS NULL AND user_name = 'pusher'",
                   p),
              "1");
    c.push_url = "";
    c.id = "push-3";
    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&got, drv, h, "push-3", p), APR_SUCCESS);
    CHECK_STR(got ? got->push_url : NULL, "");
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

/* ---- lists ---- */

static const char *joined(const apr_array_header_t *a, apr_pool_t *p)
{
    return a ? apr_array_pstrcat(p, a, '|') : "(null)";
}

static const char *client_ids(const apr_array_header_t *a, apr_pool_t *p)
{
    apr_array_header_t *ids;
    int i;

    if (!a) {
        return "(null)";
    }
    ids = apr_array_make(p, a->nelts, sizeof(const char *));
    for (i = 0; i < a->nelts; i++) {
        APR_ARRAY_PUSH(ids, const char *) =
            APR_ARRAY_IDX(a, i, dme_client_t *)->id;
    }
    return joined(ids, p);
}

static void add_client(apr_dbd_t *h, const char *id, const char *user,
                       apr_int64_t created, const char *url, apr_pool_t *p)
{
    dme_client_t c = {id, user, NULL, NULL, NULL, apr_time_from_sec(created),
                      url};

    CHECK_INT(dme_store_client_create(drv, h, &c, p), APR_SUCCESS);
}

static void test_user_list(apr_dbd_t *h, apr_pool_t *p)
{
    /* Created in this order; listed in byte order, ASCII before the
     * UTF-8 names, "Alice" apart from "alice". */
    static const char *const names[] = {"zo\xc3\xab", "\xc3\x89mile", "a b",
                                        "O'Brien",    "\"quoted\"",   "alice",
                                        "Alice",      "x;%s%d\\"};
    apr_array_header_t *users = NULL;
    int i, yes = -1;

    CHECK_INT(dme_store_user_list(&users, drv, h, p), APR_SUCCESS);
    CHECK(users != NULL && users->nelts == 0);
    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, "alice", p),
              APR_SUCCESS);
    CHECK_INT(yes, 0);

    /* A user row alone does not make a user of the system. */
    CHECK_INT(dme_store_user_password_set(drv, h, "lonely", "v1:l", p),
              APR_SUCCESS);
    for (i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
        add_client(h, apr_psprintf(p, "c%d", i), names[i], 1000 + i, NULL, p);
    }
    add_client(h, "alice-new", "alice", 2000, NULL, p);
    add_client(h, "alice-old", "alice", 500, "https://push.example.net/?a=1",
               p);
    CHECK_INT(dme_store_user_list(&users, drv, h, p), APR_SUCCESS);
    CHECK_STR(joined(users, p), "\"quoted\"|Alice|O'Brien|a b|alice|"
                                "x;%s%d\\|zo\xc3\xab|\xc3\x89mile");

    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, "alice", p),
              APR_SUCCESS);
    CHECK_INT(yes, 1);
    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, "\xc3\x89mile", p),
              APR_SUCCESS);
    CHECK_INT(yes, 1);
    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, "lonely", p),
              APR_SUCCESS);
    CHECK_INT(yes, 0);
    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, "ALICE", p),
              APR_SUCCESS);
    CHECK_INT(yes, 0);
    yes = -1;
    CHECK_INT(dme_store_user_has_clients(&yes, drv, h, NULL, p), APR_EINVAL);
    CHECK_INT(yes, 0);
    CHECK_INT(dme_store_user_list(&users, drv, NULL, p), APR_EINVAL);
    CHECK(users == NULL);
}

static void test_client_list(apr_dbd_t *h, apr_pool_t *p)
{
    apr_array_header_t *cl = NULL;
    dme_client_t *c;

    /* Oldest first, whatever the order of creation. */
    CHECK_INT(dme_store_client_list(&cl, drv, h, "alice", p), APR_SUCCESS);
    CHECK_STR(client_ids(cl, p), "alice-old|c5|alice-new");
    if (cl && cl->nelts == 3) {
        c = APR_ARRAY_IDX(cl, 0, dme_client_t *);
        CHECK_STR(c->user, "alice");
        CHECK_STR(c->push_url, "https://push.example.net/?a=1");
        CHECK_INT(c->created, apr_time_from_sec(500));
        CHECK(c->name == NULL && c->platform == NULL && c->source == NULL);
        CHECK(APR_ARRAY_IDX(cl, 1, dme_client_t *)->push_url == NULL);
    }
    CHECK_INT(dme_store_client_list(&cl, drv, h, "O'Brien", p), APR_SUCCESS);
    CHECK_STR(client_ids(cl, p), "c3");
    CHECK_STR(cl && cl->nelts ? APR_ARRAY_IDX(cl, 0, dme_client_t *)->user
                              : NULL,
              "O'Brien");
    CHECK_INT(dme_store_client_list(&cl, drv, h, "\xc3\x89mile", p),
              APR_SUCCESS);
    CHECK_STR(client_ids(cl, p), "c1");

    /* No prefix match, no user row taken for a client. */
    CHECK_INT(dme_store_client_list(&cl, drv, h, "alic", p), APR_SUCCESS);
    CHECK(cl != NULL && cl->nelts == 0);
    CHECK_INT(dme_store_client_list(&cl, drv, h, "lonely", p), APR_SUCCESS);
    CHECK(cl != NULL && cl->nelts == 0);
    CHECK_INT(dme_store_client_list(&cl, drv, h, NULL, p), APR_EINVAL);
    CHECK(cl == NULL);
}

static void test_lists(const char *dir, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h = open_db(&cp, apr_pstrcat(p, dir, "/lists.db", NULL), p);

    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    test_user_list(h, cp);
    test_client_list(h, cp);
    apr_pool_destroy(cp);
}

/* ---- upgrading a version 1 database ---- */

/* The schema as version 1 of the store created it, with rows in it. */
static const char *const v1_database[] = {
    "CREATE TABLE dme_schema (version INTEGER NOT NULL PRIMARY KEY)",
    "CREATE TABLE users (name TEXT NOT NULL PRIMARY KEY, "
    "password_sealed TEXT NULL, created INTEGER NOT NULL, "
    "updated INTEGER NOT NULL)",
    "CREATE TABLE clients (id TEXT NOT NULL PRIMARY KEY, "
    "user_name TEXT NOT NULL, name TEXT, platform TEXT, "
    "created INTEGER NOT NULL, source TEXT)",
    "CREATE INDEX clients_by_user ON clients (user_name)",
    "CREATE TABLE sync_state (client_id TEXT NOT NULL, folder TEXT NOT NULL, "
    "sync_key INTEGER NOT NULL, notes TEXT, "
    "prev_key INTEGER NOT NULL DEFAULT 0, prev_response TEXT, "
    "updated INTEGER NOT NULL, PRIMARY KEY (client_id, folder))",
    "INSERT INTO dme_schema (version) VALUES (1)",
    "INSERT INTO users VALUES ('alice', 'v1:sealed', 1600000000, 1600000001)",
    "INSERT INTO clients VALUES "
    "('old-1', 'alice', 'Alice''s phone', 'ios', 1600000100, '192.0.2.7')",
    "INSERT INTO clients VALUES "
    "('old-2', 'alice', NULL, NULL, 1600000200, NULL)",
    "INSERT INTO clients VALUES "
    "('old-3', 'bob', 'desk', 'win', 1600000300, NULL)",
    "INSERT INTO sync_state VALUES "
    "('old-1', 'INBOX', 42, 'v1 notes', 41, '<r/>', 1600000400)",
    NULL,
};

static int make_v1_db(const char *path, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h = open_db(&cp, path, p);
    int i, n, rc = h ? 0 : -1;

    for (i = 0; rc == 0 && v1_database[i]; i++) {
        rc = apr_dbd_query(drv, h, &n, v1_database[i]);
    }
    apr_pool_destroy(cp);
    return rc == 0;
}

/* The rows v1_database put in, as the upgraded store reads them. */
static void check_v1_rows(apr_dbd_t *h, apr_pool_t *p)
{
    apr_array_header_t *list = NULL;
    dme_sync_state_t *st = NULL;
    dme_client_t *c = NULL;

    CHECK_INT(dme_store_client_get(&c, drv, h, "old-1", p), APR_SUCCESS);
    if (c) {
        CHECK_STR(c->user, "alice");
        CHECK_STR(c->name, "Alice's phone");
        CHECK_STR(c->platform, "ios");
        CHECK_STR(c->source, "192.0.2.7");
        CHECK_INT(c->created, apr_time_from_sec(1600000100));
        CHECK(c->push_url == NULL);
    }
    CHECK_INT(dme_store_client_list(&list, drv, h, "alice", p), APR_SUCCESS);
    CHECK_STR(client_ids(list, p), "old-1|old-2");
    CHECK_INT(dme_store_user_list(&list, drv, h, p), APR_SUCCESS);
    CHECK_STR(joined(list, p), "alice|bob");
    CHECK_INT(dme_store_sync_get(&st, drv, h, "old-1", "INBOX", p),
              APR_SUCCESS);
    if (st) {
        CHECK_INT(st->key, 42);
        CHECK_STR(st->notes, "v1 notes");
        CHECK_INT(st->prev_key, 41);
        CHECK_STR(st->prev_response, "<r/>");
    }
}

static void test_upgrade(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/v1.db", NULL);
    const char *sealed = NULL;
    dme_client_t *c = NULL;
    dme_client_t nc = {"new-1",
                       "alice",
                       NULL,
                       NULL,
                       NULL,
                       0,
                       "https://push.example.net/n?id=1&k=%2F"};
    apr_pool_t *cp;
    apr_dbd_t *h;

    CHECK(make_v1_db(path, p));
    h = open_db(&cp, path, p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    /* Not upgraded yet: what needs push_url fails, the rest works, and a
     * statement prepared now must still work after the upgrade. */
    CHECK_INT(dme_store_client_get(&c, drv, h, "old-1", cp), APR_EGENERAL);
    CHECK(strstr(apr_dbd_error(drv, h, 0), "push_url") != NULL);
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", cp),
              APR_SUCCESS);

    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    CHECK(strstr(logbuf, "DME10405") != NULL);
    CHECK(strstr(logbuf, "from version 1 to 3") != NULL);
    CHECK(strstr(logbuf, "DME10402") == NULL);
    CHECK_STR(peek(h, "SELECT group_concat(version, ',') FROM dme_schema", cp),
              "1,2,3");
    CHECK_STR(peek(h, CLIENT_TABLE_INFO, cp), CLIENT_TABLE_V2);
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM clients", cp), "3");

    sealed = NULL;
    CHECK_INT(dme_store_user_password_get(&sealed, drv, h, "alice", cp),
              APR_SUCCESS);
    CHECK_STR(sealed, "v1:sealed");
    check_v1_rows(h, cp);
    CHECK_INT(dme_store_client_create(drv, h, &nc, cp), APR_SUCCESS);
    CHECK_INT(dme_store_client_get(&c, drv, h, "new-1", cp), APR_SUCCESS);
    CHECK_STR(c ? c->push_url : NULL, "https://push.example.net/n?id=1&k=%2F");

    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    CHECK_STR(logbuf, "");
    apr_pool_destroy(cp);
}

/* A version 1 database that someone already gave the column by hand:
 * the upgrade fails as a whole, every time, and says why. */
static void test_upgrade_fails(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/v1-altered.db", NULL);
    apr_pool_t *cp;
    apr_dbd_t *h;
    int n;

    CHECK(make_v1_db(path, p));
    h = open_db(&cp, path, p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(apr_dbd_query(drv, h, &n,
                            "ALTER TABLE clients ADD COLUMN push_url TEXT"),
              0);
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_EGENERAL);
    CHECK(strstr(logbuf, "DME10404") != NULL);
    CHECK(strstr(logbuf, "from version 1 to 3") != NULL);
    CHECK(strstr(logbuf, "duplicate column name: push_url") != NULL);
    CHECK(strstr(logbuf, "DME10405") == NULL);
    CHECK_STR(peek(h, "SELECT group_concat(version, ',') FROM dme_schema", cp),
              "1");
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM clients", cp), "3");
    apr_pool_destroy(cp);
}

/* ---- upgrading a version 2 database ---- */

/* What version 2 added to version 1, with a row that uses it. */
static const char *const v2_additions[] = {
    "ALTER TABLE clients ADD COLUMN push_url TEXT",
    "INSERT INTO dme_schema (version) VALUES (2)",
    "INSERT INTO clients VALUES ('old-4', 'bob', 'pad', 'android', "
    "1600000500, NULL, 'https://push.example.net/c?x=1')",
    NULL,
};

static int make_v2_db(const char *path, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h;
    int i, n, rc = make_v1_db(path, p) ? 0 : -1;

    h = open_db(&cp, path, p);
    for (i = 0; rc == 0 && h && v2_additions[i]; i++) {
        rc = apr_dbd_query(drv, h, &n, v2_additions[i]);
    }
    apr_pool_destroy(cp);
    return rc == 0 && h;
}

/* ---- certificates ---- */

#define CERT_NOW 1750000000 /* "now" of these tests, in seconds */

static dme_stored_cert_t *new_cert(int id, const char *serial,
                                   apr_int64_t not_after, const char *addrs,
                                   apr_pool_t *p)
{
    dme_stored_cert_t *c = apr_pcalloc(p, sizeof(*c));
    char *list = apr_pstrdup(p, addrs), *a, *last;

    c->fingerprint = apr_psprintf(p, "%064x", id);
    c->der = (const unsigned char *)apr_psprintf(p, "DER of %d", id);
    c->der_len = strlen((const char *)c->der);
    c->issuer = "CN=Example Mail CA,O=Example\\, Inc.,C=DE";
    c->serial = serial;
    c->not_before = apr_time_from_sec(1600000000);
    c->not_after = apr_time_from_sec(not_after);
    c->addresses = apr_array_make(p, 2, sizeof(const char *));
    for (a = apr_strtok(list, ",", &last); a;
         a = apr_strtok(NULL, ",", &last)) {
        APR_ARRAY_PUSH(c->addresses, const char *) = a;
    }
    c->key_usage = "digitalSignature,keyEncipherment";
    c->can_encrypt = 1;
    c->source_message_id = "<m1@example.org>";
    c->source_user = "alice";
    c->harvested = apr_time_from_sec(1700000000);
    return c;
}

static int put(dme_stored_cert_t *c, apr_dbd_t *h, apr_pool_t *p)
{
    int created = -1;

    CHECK_INT(dme_store_cert_put(&created, drv, h, c, p), APR_SUCCESS);
    return created;
}

/* The certificates' ids (their fingerprints' last hex digits), "|"
 * separated, to compare lists in one check. */
static const char *cert_ids(const apr_array_header_t *a, apr_pool_t *p)
{
    apr_array_header_t *ids;
    const char *fp;
    int i;

    if (!a) {
        return "(null)";
    }
    ids = apr_array_make(p, a->nelts, sizeof(const char *));
    for (i = 0; i < a->nelts; i++) {
        fp = APR_ARRAY_IDX(a, i, dme_stored_cert_t *)->fingerprint;
        APR_ARRAY_PUSH(ids, const char *) =
            apr_psprintf(p, "%d", (int)apr_strtoi64(fp + 56, NULL, 16));
    }
    return joined(ids, p);
}

static const char *cert_count(apr_dbd_t *h, apr_pool_t *p)
{
    return peek(h, "SELECT COUNT(*) FROM certificates", p);
}

static void test_cert_put(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c = new_cert(1, "0a1b", 2000000000,
                                    "Bob@Example.ORG,b.o.b@example.org,"
                                    "bob@example.org",
                                    p);
    dme_stored_cert_t *got = NULL;

    CHECK_INT(put(c, h, p), 1);
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p), APR_SUCCESS);
    if (got) {
        CHECK_STR(got->fingerprint, c->fingerprint);
        CHECK_INT(got->der_len, strlen("DER of 1"));
        CHECK(got->der && memcmp(got->der, "DER of 1", got->der_len) == 0);
        CHECK_STR(got->issuer, "CN=Example Mail CA,O=Example\\, Inc.,C=DE");
        CHECK_STR(got->serial, "0a1b");
        CHECK_INT(got->not_before, apr_time_from_sec(1600000000));
        CHECK_INT(got->not_after, apr_time_from_sec(2000000000));
        /* Lowercased, each once, in the order given. */
        CHECK_STR(joined(got->addresses, p),
                  "bob@example.org|b.o.b@example.org");
        CHECK_STR(got->key_usage, "digitalSignature,keyEncipherment");
        CHECK_INT(got->can_encrypt, 1);
        CHECK_STR(got->status, "unchecked");
        CHECK_STR(got->source_message_id, "<m1@example.org>");
        CHECK_STR(got->source_user, "alice");
        CHECK_INT(got->harvested, apr_time_from_sec(1700000000));
    }
    CHECK_STR(peek(h,
                   "SELECT group_concat(address, ' ') FROM "
                   "certificate_addresses",
                   p),
              "b.o.b@example.org bob@example.org");

    /* The same certificate again is already stored. */
    CHECK_INT(put(c, h, p), 0);

    /* Another fingerprint with the same issuer and serial (a re-encoding)
     * is the same certificate: not stored, and no address row left. */
    c = new_cert(2, "0a1b", 2100000000, "mallory@example.org", p);
    c->status = "good";
    CHECK_INT(put(c, h, p), 0);
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p),
              APR_NOTFOUND);
    CHECK(got == NULL);
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM certificate_addresses", p), "2");

    /* The fingerprint taken by another serial: also already stored. */
    c = new_cert(1, "ffff", 2100000000, "mallory@example.org", p);
    CHECK_INT(put(c, h, p), 0);
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p), APR_SUCCESS);
    CHECK_STR(got ? got->serial : NULL, "0a1b");
    CHECK_STR(got ? got->status : NULL, "unchecked");

    /* The same serial from another issuer is another certificate; an
     * upper-case fingerprint is stored in lower case. */
    c = new_cert(3, "0a1b", 2000000000, "bob@example.org", p);
    c->issuer = "CN=Other CA";
    c->fingerprint = apr_psprintf(p, "%064X", 0xabc);
    c->status = NULL;
    c->key_usage = NULL;
    c->source_message_id = NULL;
    c->source_user = NULL;
    CHECK_INT(put(c, h, p), 1);
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p), APR_SUCCESS);
    if (got) {
        CHECK_STR(got->fingerprint, apr_psprintf(p, "%064x", 0xabc));
        CHECK_STR(got->key_usage, "");
        CHECK_STR(got->source_message_id, "");
        CHECK(got->source_user == NULL);
    }
    CHECK_STR(cert_count(h, p), "2");
}

/* Certificate i of those test_cert_put_invalid tries, each with one
 * fault; NULL after the last. */
static dme_stored_cert_t *spoiled(int i, apr_pool_t *p)
{
    dme_stored_cert_t *c =
        new_cert(100 + i, apr_psprintf(p, "bad%d", i), 2000000000,
                 "x@example.org,y@example.org", p);

    switch (i) {
        case 0:
            c->fingerprint = apr_psprintf(p, "%063x", 1);
            break;
        case 1:
            c->fingerprint = apr_psprintf(p, "g%063x", 1);
            break;
        case 2:
            c->der_len = 0;
            break;
        case 3:
            c->der_len = DME_STORE_CERT_DER_MAX + 1;
            break;
        case 4:
            c->serial = NULL;
            break;
        case 5:
            c->status = "valid";
            break;
        case 6:
            apr_array_clear(c->addresses);
            break;
        case 7:
            APR_ARRAY_PUSH(c->addresses, const char *) = "a b@x";
            break;
        case 8:
            APR_ARRAY_PUSH(c->addresses, const char *) = "a\n@x";
            break;
        default:
            return NULL;
    }
    return c;
}

/* Malformed certificates are refused whole. */
static void test_cert_put_invalid(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c;
    int created, i;

    for (i = 0; (c = spoiled(i, p)) != NULL; i++) {
        created = -1;
        CHECK_INT(dme_store_cert_put(&created, drv, h, c, p), APR_EINVAL);
        CHECK_INT(created, 0);
    }
    CHECK_INT(i, 9);
    CHECK_INT(dme_store_cert_put(&created, drv, h, NULL, p), APR_EINVAL);
    CHECK_STR(cert_count(h, p), "2");
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM certificate_addresses", p), "3");
}

/* If its addresses cannot be written, the certificate is not stored
 * either: an address row left behind by hand blocks the trigger. */
static void test_cert_put_atomic(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c =
        new_cert(4, "04", 2000000000, "first@example.org,stray@example.org", p);
    const char *ins = apr_psprintf(p,
                                   "INSERT INTO certificate_addresses "
                                   "VALUES ('stray@example.org', '%s')",
                                   c->fingerprint);
    int created = -1, n;

    CHECK_INT(apr_dbd_query(drv, h, &n, ins), 0);
    CHECK_INT(dme_store_cert_put(&created, drv, h, c, p), APR_EGENERAL);
    CHECK_INT(created, 0);
    CHECK_STR(cert_count(h, p), "2");
    CHECK_STR(peek(h,
                   "SELECT COUNT(*) FROM certificate_addresses "
                   "WHERE address = 'first@example.org'",
                   p),
              "0");
    CHECK_INT(apr_dbd_query(drv, h, &n,
                            "DELETE FROM certificate_addresses "
                            "WHERE address = 'stray@example.org'"),
              0);
    CHECK_INT(put(c, h, p), 1);
}

static void test_cert_find(apr_dbd_t *h, apr_pool_t *p)
{
    apr_array_header_t *all = NULL;

    CHECK_INT(put(new_cert(10, "10", 1500000000, "carol@example.com", p), h, p),
              1);
    CHECK_INT(put(new_cert(11, "11", 2000000000,
                           "carol@example.com,c@example.com", p),
                  h, p),
              1);
    CHECK_INT(put(new_cert(12, "12", 1800000000, "Carol@Example.COM", p), h, p),
              1);
    CHECK_INT(put(new_cert(13, "13", 2000000000, "dan@example.com", p), h, p),
              1);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "CAROL@example.Com", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "11|12|10");
    if (all && all->nelts == 3) {
        CHECK_STR(
            joined(APR_ARRAY_IDX(all, 0, dme_stored_cert_t *)->addresses, p),
            "carol@example.com|c@example.com");
    }
    CHECK_INT(dme_store_cert_find(&all, drv, h, "c@example.com", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "11");
    /* Exact addresses only. */
    CHECK_INT(dme_store_cert_find(&all, drv, h, "carol@example", p),
              APR_SUCCESS);
    CHECK(all != NULL && all->nelts == 0);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "nobody@example.com", p),
              APR_SUCCESS);
    CHECK(all != NULL && all->nelts == 0);
    CHECK_INT(dme_store_cert_find(&all, drv, h, NULL, p), APR_EINVAL);
    CHECK(all == NULL);
}

static void test_cert_search(apr_dbd_t *h, apr_pool_t *p)
{
    apr_array_header_t *all = NULL;

    CHECK_INT(put(new_cert(20, "20", 2000000000, "a_b@wild.test", p), h, p), 1);
    CHECK_INT(put(new_cert(21, "21", 2000000000, "axb@wild.test", p), h, p), 1);
    CHECK_INT(put(new_cert(22, "22", 2000000000, "100%@wild.test", p), h, p),
              1);
    CHECK_INT(put(new_cert(23, "23", 2000000000, "1000@wild.test", p), h, p),
              1);
    CHECK_INT(put(new_cert(24, "24", 2000000000, "b\\c@wild.test", p), h, p),
              1);
    CHECK_INT(put(new_cert(25, "25", 2000000000, "bxc@wild.test", p), h, p), 1);

    CHECK_INT(dme_store_cert_search(&all, drv, h, "A_B", 50, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "20");
    CHECK_INT(dme_store_cert_search(&all, drv, h, "0%", 50, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "22");
    CHECK_INT(dme_store_cert_search(&all, drv, h, "%", 50, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "22");
    CHECK_INT(dme_store_cert_search(&all, drv, h, "_", 50, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "20");
    CHECK_INT(dme_store_cert_search(&all, drv, h, "b\\c", 50, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "24");
    /* By least address, in byte order. */
    CHECK_INT(dme_store_cert_search(&all, drv, h, "@WILD.", 50, p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "22|23|20|21|24|25");
    if (all && all->nelts == 6) {
        CHECK_STR(
            joined(APR_ARRAY_IDX(all, 0, dme_stored_cert_t *)->addresses, p),
            "100%@wild.test");
    }
    CHECK_INT(dme_store_cert_search(&all, drv, h, "wild", 2, p), APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "22|23");
    CHECK_INT(dme_store_cert_search(&all, drv, h, "none.test", 50, p),
              APR_SUCCESS);
    CHECK(all != NULL && all->nelts == 0);

    /* "" lists every certificate, up to the limit. */
    CHECK_INT(dme_store_cert_search(&all, drv, h, "", 100, p), APR_SUCCESS);
    CHECK_INT(all ? all->nelts : -1, atoi(cert_count(h, p)));
    CHECK_INT(dme_store_cert_search(&all, drv, h, "", 3, p), APR_SUCCESS);
    CHECK_INT(all ? all->nelts : -1, 3);
    CHECK_INT(dme_store_cert_search(&all, drv, h, "", 0, p), APR_EINVAL);
    CHECK(all == NULL);
    CHECK_INT(dme_store_cert_search(&all, drv, h, NULL, 5, p), APR_EINVAL);
}

static void test_cert_get_delete(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c =
        new_cert(30, "30", 2000000000, "erin@example.net,e@example.net", p);
    dme_stored_cert_t *got = NULL;
    apr_array_header_t *all = NULL;
    const char *fp = c->fingerprint;

    CHECK_INT(dme_store_cert_get(&got, drv, h, fp, p), APR_NOTFOUND);
    CHECK(got == NULL);
    CHECK_INT(dme_store_cert_delete(drv, h, fp, p), APR_NOTFOUND);
    CHECK_INT(dme_store_cert_set_status(drv, h, fp, "good", p), APR_NOTFOUND);
    CHECK_INT(put(c, h, p), 1);

    CHECK_INT(dme_store_cert_set_status(drv, h, fp, "revoked", p), APR_SUCCESS);
    CHECK_INT(dme_store_cert_set_status(drv, h, fp, "Revoked", p), APR_EINVAL);
    CHECK_INT(dme_store_cert_set_status(drv, h, fp, NULL, p), APR_EINVAL);
    CHECK_INT(dme_store_cert_get(&got, drv, h, fp, p), APR_SUCCESS);
    CHECK_STR(got ? got->status : NULL, "revoked");

    CHECK_INT(dme_store_cert_delete(drv, h, fp, p), APR_SUCCESS);
    CHECK_INT(dme_store_cert_get(&got, drv, h, fp, p), APR_NOTFOUND);
    CHECK_INT(dme_store_cert_delete(drv, h, fp, p), APR_NOTFOUND);
    CHECK_STR(peek(h,
                   apr_psprintf(p,
                                "SELECT COUNT(*) FROM certificate_addresses "
                                "WHERE fingerprint = '%s'",
                                fp),
                   p),
              "0");
    CHECK_INT(dme_store_cert_find(&all, drv, h, "erin@example.net", p),
              APR_SUCCESS);
    CHECK(all != NULL && all->nelts == 0);
    CHECK_INT(dme_store_cert_get(&got, drv, h, NULL, p), APR_EINVAL);
    CHECK_INT(dme_store_cert_delete(drv, NULL, fp, p), APR_EINVAL);
}

static void test_cert_counts(apr_dbd_t *h, apr_pool_t *p)
{
    static const struct {
        const char *status;
        apr_int64_t not_after;
    } certs[] = {
        {NULL, CERT_NOW + 1},      {"unchecked", CERT_NOW + 9},
        {"good", CERT_NOW},        {"revoked", CERT_NOW + 9},
        {"revoked", CERT_NOW - 1}, {"unknown", CERT_NOW - 9},
        {"good", CERT_NOW - 1},
    };
    apr_table_t *counts = NULL;
    dme_stored_cert_t *c;
    int i;

    CHECK_INT(
        dme_store_cert_counts(&counts, drv, h, apr_time_from_sec(CERT_NOW), p),
        APR_SUCCESS);
    CHECK_STR(counts ? apr_table_get(counts, "unchecked") : NULL, "0");
    CHECK_STR(counts ? apr_table_get(counts, "expired") : NULL, "0");
    for (i = 0; i < (int)(sizeof(certs) / sizeof(certs[0])); i++) {
        c = new_cert(40 + i, apr_psprintf(p, "4%d", i), certs[i].not_after,
                     "frank@example.org", p);
        c->status = certs[i].status;
        CHECK_INT(put(c, h, p), 1);
    }
    CHECK_INT(
        dme_store_cert_counts(&counts, drv, h, apr_time_from_sec(CERT_NOW), p),
        APR_SUCCESS);
    if (counts) {
        CHECK_STR(apr_table_get(counts, "unchecked"), "2");
        CHECK_STR(apr_table_get(counts, "good"), "1");
        CHECK_STR(apr_table_get(counts, "revoked"), "1");
        CHECK_STR(apr_table_get(counts, "unknown"), "0");
        CHECK_STR(apr_table_get(counts, "expired"), "3");
        CHECK_INT(apr_table_elts(counts)->nelts, 5);
    }
    CHECK_INT(dme_store_cert_counts(&counts, drv, NULL, 0, p), APR_EINVAL);
    CHECK(counts == NULL);
}

static int purge(apr_dbd_t *h, const char *address, apr_pool_t *p)
{
    int n = -1;

    CHECK_INT(dme_store_cert_purge_expired(&n, drv, h, address,
                                           apr_time_from_sec(CERT_NOW), p),
              APR_SUCCESS);
    return n;
}

static void test_cert_purge(apr_dbd_t *h, apr_pool_t *p)
{
    apr_array_header_t *all = NULL;

    /* Alone and expired: kept, so that lookups can say why. */
    CHECK_INT(
        put(new_cert(50, "50", CERT_NOW - 10, "gina@example.org", p), h, p), 1);
    CHECK_INT(purge(h, "gina@example.org", p), 0);
    /* Beside a newer one while it is valid. */
    CHECK_INT(
        put(new_cert(51, "51", CERT_NOW + 10, "hal@example.org", p), h, p), 1);
    CHECK_INT(
        put(new_cert(52, "52", CERT_NOW + 99, "hal@example.org", p), h, p), 1);
    CHECK_INT(purge(h, "hal@example.org", p), 0);

    /* Expired with a valid successor: gone. */
    CHECK_INT(
        put(new_cert(53, "53", CERT_NOW + 99, "gina@example.org", p), h, p), 1);
    CHECK_INT(purge(h, "GINA@example.org", p), 1);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "gina@example.org", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "53");

    /* Expired, naming two addresses, replaced for one of them only. */
    CHECK_INT(put(new_cert(54, "54", CERT_NOW - 5,
                           "ida@example.org,ivy@example.org", p),
                  h, p),
              1);
    CHECK_INT(put(new_cert(55, "55", CERT_NOW + 5, "ida@example.org", p), h, p),
              1);
    CHECK_INT(purge(h, "ida@example.org", p), 0);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "ivy@example.org", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "54");
    CHECK_INT(put(new_cert(56, "56", CERT_NOW + 5, "ivy@example.org", p), h, p),
              1);
    CHECK_INT(purge(h, "ida@example.org", p), 1);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "ivy@example.org", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "56");
    CHECK_INT(purge(h, "nobody@example.org", p), 0);
    CHECK_STR(peek(h,
                   "SELECT COUNT(*) FROM certificate_addresses "
                   "WHERE fingerprint NOT IN "
                   "(SELECT fingerprint FROM certificates)",
                   p),
              "0");
}

static void test_cert_many_addresses(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c = new_cert(60, "60", 2000000000, "", p);
    dme_stored_cert_t *got = NULL;
    apr_array_header_t *all = NULL;
    int i;

    for (i = 0; i < 100; i++) {
        APR_ARRAY_PUSH(c->addresses, const char *) =
            apr_psprintf(p, "User%03d@Many.Example", 99 - i);
    }
    CHECK_INT(put(c, h, p), 1);
    CHECK_STR(peek(h,
                   "SELECT COUNT(*) FROM certificate_addresses "
                   "WHERE address LIKE '%@many.example'",
                   p),
              "100");
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p), APR_SUCCESS);
    CHECK_INT(got ? got->addresses->nelts : -1, 100);
    if (got && got->addresses->nelts == 100) {
        CHECK_STR(APR_ARRAY_IDX(got->addresses, 0, const char *),
                  "user099@many.example");
        CHECK_STR(APR_ARRAY_IDX(got->addresses, 99, const char *),
                  "user000@many.example");
    }
    CHECK_INT(dme_store_cert_find(&all, drv, h, "user057@many.example", p),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, p), "60");
    CHECK_INT(dme_store_cert_delete(drv, h, c->fingerprint, p), APR_SUCCESS);
    CHECK_STR(peek(h,
                   "SELECT COUNT(*) FROM certificate_addresses "
                   "WHERE address LIKE '%@many.example'",
                   p),
              "0");
}

static void test_cert_der_bytes(apr_dbd_t *h, apr_pool_t *p)
{
    dme_stored_cert_t *c = new_cert(70, "70", 2000000000, "der@example.org", p);
    dme_stored_cert_t *got = NULL;
    unsigned char *der = apr_palloc(p, 3 * 256 + 1);
    int i;

    /* Every byte value, NULs included, and a length that needs padding. */
    for (i = 0; i < 3 * 256 + 1; i++) {
        der[i] = (unsigned char)(i * 7 % 256);
    }
    c->der = der;
    c->der_len = 3 * 256 + 1;
    CHECK_INT(put(c, h, p), 1);
    CHECK_INT(dme_store_cert_get(&got, drv, h, c->fingerprint, p), APR_SUCCESS);
    CHECK_INT(got ? got->der_len : 0, 3 * 256 + 1);
    CHECK(got && got->der && memcmp(got->der, der, 3 * 256 + 1) == 0);
    /* Text in the database: 00 07 0e 15 24 ... is "AAcOFRwj". */
    CHECK_STR(peek(h,
                   apr_psprintf(p,
                                "SELECT substr(der, 1, 8) || ' ' || "
                                "typeof(der) FROM certificates "
                                "WHERE fingerprint = '%s'",
                                c->fingerprint),
                   p),
              "AAcOFRwj text");
}

static void test_certs(const char *dir, apr_pool_t *p)
{
    apr_pool_t *cp;
    apr_dbd_t *h = open_db(&cp, apr_pstrcat(p, dir, "/certs.db", NULL), p);

    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    test_cert_put(h, cp);
    test_cert_put_invalid(h, cp);
    test_cert_put_atomic(h, cp);
    test_cert_find(h, cp);
    test_cert_search(h, cp);
    test_cert_get_delete(h, cp);
    test_cert_many_addresses(h, cp);
    test_cert_der_bytes(h, cp);
    apr_pool_destroy(cp);

    /* Counts and purges on a database of their own. */
    h = open_db(&cp, apr_pstrcat(p, dir, "/certs2.db", NULL), p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    test_cert_counts(h, cp);
    test_cert_purge(h, cp);
    apr_pool_destroy(cp);
}

/* A version 2 database gains the certificate tables and keeps its rows. */
static void test_upgrade_v2(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/v2.db", NULL);
    apr_array_header_t *all = NULL;
    dme_client_t *c = NULL;
    apr_pool_t *cp;
    apr_dbd_t *h;

    CHECK(make_v2_db(path, p));
    h = open_db(&cp, path, p);
    CHECK_INT(dme_store_conn_init(drv, h, cp), APR_SUCCESS);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "x@example.org", cp),
              APR_EGENERAL);
    logbuf[0] = '\0';
    CHECK_INT(dme_store_schema_ensure(drv, h, &logger, cp), APR_SUCCESS);
    CHECK(strstr(logbuf, "DME10405") != NULL);
    CHECK(strstr(logbuf, "from version 2 to 3") != NULL);
    CHECK_STR(peek(h, "SELECT group_concat(version, ',') FROM dme_schema", cp),
              "1,2,3");
    check_v1_rows(h, cp);
    CHECK_INT(dme_store_client_get(&c, drv, h, "old-4", cp), APR_SUCCESS);
    CHECK_STR(c ? c->push_url : NULL, "https://push.example.net/c?x=1");
    CHECK_STR(peek(h, "SELECT COUNT(*) FROM clients", cp), "4");

    CHECK_INT(dme_store_cert_find(&all, drv, h, "x@example.org", cp),
              APR_SUCCESS);
    CHECK(all != NULL && all->nelts == 0);
    CHECK_INT(put(new_cert(80, "80", 2000000000, "X@example.org", cp), h, cp),
              1);
    CHECK_INT(dme_store_cert_find(&all, drv, h, "x@example.org", cp),
              APR_SUCCESS);
    CHECK_STR(cert_ids(all, cp), "80");
    apr_pool_destroy(cp);
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
            apr_psprintf(cp, "%s-%d", who, i), who, NULL, NULL, NULL, 0, NULL};

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
    CHECK_STR(peek(h, "SELECT MAX(version) FROM dme_schema", cp), "3");
    /* No step was lost: each process's 50 successful steps count. */
    CHECK_INT(dme_store_sync_get(&st, drv, h, "shared", "INBOX", cp),
              APR_SUCCESS);
    CHECK_INT(st ? st->key : -1, 2 * SHARED_STEPS);
    apr_pool_destroy(cp);
}

#define UPGRADE_ROUNDS 8

/* What racer() tells its parent, as exit code bits. */
#define RACE_FAILED   1
#define RACE_UPGRADED 2
#define RACE_LOST     4

/* Ensures the schema on a connection opened before the start signal;
 * the outcome as RACE_* bits, read from the return value and the log. */
static int race_ensure(apr_dbd_t *h, apr_pool_t *p)
{
    int out = 0;

    logbuf[0] = '\0';
    if (dme_store_schema_ensure(drv, h, &logger, p) != APR_SUCCESS) {
        out |= RACE_FAILED;
    }
    if (strstr(logbuf, "DME10405")) {
        out |= RACE_UPGRADED;
    }
    if (strstr(logbuf, "DME10403")) {
        out |= RACE_LOST;
    }
    return out;
}

static int racer(const char *path, int ready, int go)
{
    apr_pool_t *p, *cp;
    apr_dbd_t *h;
    char b = 0;
    int out = RACE_FAILED;

    apr_pool_create(&p, NULL);
    h = open_db(&cp, path, p);
    if (h && dme_store_conn_init(drv, h, cp) == APR_SUCCESS &&
        write(ready, "r", 1) == 1 && read(go, &b, 1) == 1) {
        out = race_ensure(h, cp);
    }
    apr_pool_destroy(p);
    return out;
}

/* Two processes, each holding an open connection, upgrade the same
 * version 1 database at the same moment: both must succeed, exactly one
 * must have upgraded, and the rows must survive. */
static int race_round(const char *path, apr_pool_t *p)
{
    apr_proc_t proc;
    apr_exit_why_e why;
    apr_pool_t *cp;
    apr_dbd_t *h;
    int ready[2], go[2], mine = RACE_FAILED, theirs = -1;
    char b = 0;
    apr_status_t rv;

    if (!make_v1_db(path, p) || pipe(ready) != 0 || pipe(go) != 0) {
        return -1;
    }
    rv = apr_proc_fork(&proc, p);
    /* Each side closes the ends it does not use, so that a side that dies
     * early ends the other's read instead of blocking it. */
    if (rv == APR_INCHILD) {
        close(ready[0]);
        close(go[1]);
        _exit(racer(path, ready[1], go[0]));
    }
    close(ready[1]);
    close(go[0]);
    h = open_db(&cp, path, p);
    if (rv == APR_INPARENT && h &&
        dme_store_conn_init(drv, h, cp) == APR_SUCCESS &&
        read(ready[0], &b, 1) == 1 && write(go[1], "g", 1) == 1) {
        mine = race_ensure(h, cp);
    }
    close(go[1]);
    if (rv == APR_INPARENT) {
        apr_proc_wait(&proc, &theirs, &why, APR_WAIT);
    }
    close(ready[0]);
    if (!h) {
        apr_pool_destroy(cp);
        return -1;
    }
    CHECK_INT(mine & RACE_FAILED, 0);
    CHECK_INT(theirs & RACE_FAILED, 0);
    CHECK_INT((mine & RACE_UPGRADED) + (theirs & RACE_UPGRADED), RACE_UPGRADED);
    CHECK_STR(peek(h, "SELECT group_concat(version, ',') FROM dme_schema", cp),
              "1,2,3");
    CHECK_STR(peek(h, CLIENT_TABLE_INFO, cp), CLIENT_TABLE_V2);
    check_v1_rows(h, cp);
    apr_pool_destroy(cp);
    return ((mine | theirs) & RACE_LOST) != 0;
}

static void test_racing_upgrade(const char *dir, apr_pool_t *p)
{
    int i, lost = 0;

    for (i = 0; i < UPGRADE_ROUNDS; i++) {
        apr_pool_t *rp;
        int r;

        apr_pool_create(&rp, p);
        r = race_round(apr_psprintf(rp, "%s/race-%d.db", dir, i), rp);
        CHECK(r >= 0);
        lost += r > 0;
        apr_pool_destroy(rp);
    }
    /* Both read version 1 before either upgraded in some round at least,
     * or this test raced nothing. */
    CHECK(lost > 0);
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
    test_push_url(h, cp);
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
        test_lists(dir, p);
        test_upgrade(dir, p);
        test_upgrade_fails(dir, p);
        test_upgrade_v2(dir, p);
        test_certs(dir, p);
        test_two_processes(dir, p);
        test_racing_upgrade(dir, p);
        remove_dir(dir, p);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return unit_done("test_store");
}
