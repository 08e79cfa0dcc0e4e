/* mod_dme request handling: enrolment, sync and message download. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_atomic.h>
#include <apr_uri.h>
#include <apr_lib.h>
#include <errno.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "mod_dme.h"
#include "dme_store.h"
#include "dme_xml.h"
#include "dme_proto.h"
#include "dme_engine.h"
#include "dme_precache.h"
#include "dme_mc.h"
#include "dme_curl.h"
#include <arpa/inet.h>
#include <netinet/in.h>

APLOG_USE_MODULE(dme);

#define HEAD_BYTES     16384 /* read of each new mail for its summary */
#define PREVIEW_CHARS  200
#define MAX_NAME_FIELD 128
#define HARVEST_MAX    (32 * 1024 * 1024) /* a message handed over */

/* One request's context. */
typedef struct req_t {
    request_rec *r;
    dme_dir_conf *dc;
    dme_srv_conf *sc;
    ap_dbd_t *db;
    dme_logger_t log;
    dme_imap_login_t login;
} req_t;

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) * dbd_acquire;
static apr_uint32_t schema_ready; /* this process checked the schema */

static void log_request(void *baton, int level, apr_status_t rv,
                        const char *fmt, va_list ap)
{
    request_rec *r = baton;
    char msg[1024];

    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    /* lint: forwards a numbered core message */
    ap_log_rerror(APLOG_MARK, level, rv, r, "%s", msg);
}

/* A short XML error body with the given status. */
int dme_send_error(request_rec *r, int status, const char *code,
                   const char *text)
{
    const char *body = dme_xml_error(code, text, r->pool);

    r->status = status;
    ap_set_content_type(r, "application/xml; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    ap_rputs(body, r);
    return OK;
}

static int fail(req_t *q, int status, const char *code, const char *text)
{
    return dme_send_error(q->r, status, code, text);
}

static int send_xml(req_t *q, int status, const char *body, apr_size_t len)
{
    request_rec *r = q->r;

    r->status = status;
    ap_set_content_type(r, "application/xml; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(body, (int)len, r);
    return OK;
}

/* The mail system failed: map the cause to what the client should do. */
static int mail_fail(req_t *q, apr_status_t rv, const char *why)
{
    request_rec *r = q->r;
    const char *who = dme_user_tag(r->user, r->pool);

    if (rv == DME_EAUTH && dme_conf_access(q->dc) == DME_ACCESS_PASSWORD) {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, dme_log_rv(rv), r,
            DMELOGNO(10010) "mail system refused the stored password of %s",
            who);
        return fail(q, HTTP_UNAUTHORIZED, "mail-login-refused",
                    "The mail system refused your password");
    }
    if (rv == DME_EAUTH) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, dme_log_rv(rv), r,
            DMELOGNO(10011) "mail system refused the technical user for %s; "
                            "check DMETechnicalUser and its password",
            who);
    } else if (apr_atomic_cas32(&dme_glue_counters()->mail_down, 1, 0) == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, dme_log_rv(rv), r,
            DMELOGNO(10012) "mail system %s unreachable (%s); answering 503 "
                            "until it is back",
            q->login.url, why ? why : "no answer");
    }
    apr_table_setn(r->headers_out, "Retry-After",
                   apr_itoa(r->pool, dme_conf_retry_after(q->dc)));
    return fail(q, HTTP_SERVICE_UNAVAILABLE, "mail-system-unavailable",
                "The mail system is not available; try again later");
}

static void mail_ok(req_t *q)
{
    if (apr_atomic_cas32(&dme_glue_counters()->mail_down, 0, 1) == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, q->r,
                      DMELOGNO(10013) "mail system %s reachable again",
                      q->login.url);
    }
}

/* The mailbox login for this request's user, per DMEMailAccess. */
int dme_login_for(dme_imap_login_t *l, int *needs_password,
                  const dme_dir_conf *dc, const char *user, apr_pool_t *p)
{
    memset(l, 0, sizeof(*l));
    *needs_password = 0;
    l->url = dc->mail_url;
    l->ca_file = dc->ca_file;
    l->timeout = dme_conf_timeout(dc);
    if (dme_conf_access(dc) == DME_ACCESS_PASSWORD) {
        l->user = user;
        *needs_password = 1;
        return DECLINED;
    }
    if (!dc->tech_user || !dc->tech_password) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    l->password = dc->tech_password;
    if (dc->use_authzid == 1) {
        l->user = dc->tech_user;
        l->authzid = user;
    } else {
        const char *sep = dc->separator ? dc->separator : "*";

        if (strstr(user, sep)) {
            return HTTP_FORBIDDEN; /* would name another login */
        }
        l->user = apr_pstrcat(p, user, sep, dc->tech_user, NULL);
    }
    return DECLINED;
}

/* The mailbox login for this request's user, per DMEMailAccess. */
static int make_login(req_t *q)
{
    int needs_password;
    int rc = dme_login_for(&q->login, &needs_password, q->dc, q->r->user,
                           q->r->pool);

    if (rc == HTTP_INTERNAL_SERVER_ERROR) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, q->r,
            DMELOGNO(
                10014) "DMEMailAccess technical needs DMETechnicalUser and "
                       "DMETechnicalPasswordFile");
    }
    return rc; /* the password, if needed, comes from keep_password */
}

/* Password mode: the Basic password Apache accepted is the one the mail
 * system gets; it is stored sealed (for background work) when new. */
static int keep_password(req_t *q)
{
    request_rec *r = q->r;
    const char *pw = NULL, *sealed = NULL, *old = NULL;
    apr_status_t rv;

    if (dme_conf_access(q->dc) != DME_ACCESS_PASSWORD) {
        return DECLINED;
    }
    if (ap_get_basic_auth_pw(r, &pw) != OK || !pw || !*pw || !q->sc->key) {
        return fail(q, HTTP_UNAUTHORIZED, "password-required",
                    "DMEMailAccess password needs Basic authentication");
    }
    q->login.password = pw;
    rv = dme_store_user_password_get(&sealed, q->db->driver, q->db->handle,
                                     r->user, r->pool);
    if (rv == APR_SUCCESS && sealed) {
        dme_crypto_open(&old, q->sc->key, sealed, r->user, r->pool);
    }
    if (old && strcmp(old, pw) == 0) {
        return DECLINED;
    }
    rv = dme_crypto_seal(&sealed, q->sc->key, pw, r->user, r->pool);
    if (rv == APR_SUCCESS) {
        rv = dme_store_user_password_set(q->db->driver, q->db->handle, r->user,
                                         sealed, r->pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      DMELOGNO(10015) "cannot store the password of %s",
                      dme_user_tag(r->user, r->pool));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return DECLINED;
}

static int open_db(req_t *q)
{
    request_rec *r = q->r;
    apr_status_t rv;

    q->db = dbd_acquire ? dbd_acquire(r) : NULL;
    if (!q->db) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            DMELOGNO(10016) "no database connection: load mod_dbd and set "
                            "DBDriver and DBDParams");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    rv = dme_store_conn_init(q->db->driver, q->db->handle, q->db->pool);
    if (rv == APR_SUCCESS && !apr_atomic_read32(&schema_ready)) {
        rv = dme_store_schema_ensure(q->db->driver, q->db->handle, &q->log,
                                     r->pool);
        if (rv == APR_SUCCESS) {
            apr_atomic_set32(&schema_ready, 1);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      DMELOGNO(10017) "database not usable");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return DECLINED;
}

/* Read the whole body, refusing more than max bytes. */
int dme_read_body(char **buf, apr_size_t *len, request_rec *r, apr_off_t max)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_size_t off = 0;
    long n;
    int rc;

    if (cl && apr_atoi64(cl) > max) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rc;
    }
    *buf = apr_palloc(r->pool, (apr_size_t)max + 2);
    while ((n = ap_get_client_block(r, *buf + off, (apr_size_t)max + 1 - off)) >
           0) {
        off += (apr_size_t)n;
        if (off > (apr_size_t)max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    if (n < 0) {
        return HTTP_BAD_REQUEST;
    }
    (*buf)[off] = '\0';
    *len = off;
    return OK;
}

/* application/xml or text/xml, with parameters (charset) allowed. */
static int is_xml_type(const char *ct)
{
    apr_size_t n;

    if (!ct) {
        return 0;
    }
    n = strcspn(ct, "; \t");
    return (n == 15 && !strncasecmp(ct, "application/xml", 15)) ||
           (n == 8 && !strncasecmp(ct, "text/xml", 8));
}

/* Every child of a request must be one the protocol defines for it. */
static int known_fields(const dme_xml_req_t *xr, const char *root)
{
    static const char *const enrol[] = {"name", "platform", "pushUrl", NULL};
    static const char *const sync[] = {"client", "folder", "type", "key", NULL};
    static const char *const wait[] = {"client", "folder", NULL};
    static const char *const certs[] = {"addresses", NULL};
    const char *const *ok = !strcmp(root, "enrol")          ? enrol
                            : !strcmp(root, "sync")         ? sync
                            : !strcmp(root, "certificates") ? certs
                                                            : wait;
    const apr_array_header_t *f = apr_table_elts(xr->fields);
    int i, j;

    for (i = 0; i < f->nelts; i++) {
        const char *name = APR_ARRAY_IDX(f, i, apr_table_entry_t).key;

        for (j = 0; ok[j] && strcmp(ok[j], name); j++) {
        }
        if (!ok[j]) {
            return 0;
        }
    }
    return 1;
}

/* Parse the body as the request document named root. */
static int read_request(dme_xml_req_t **xr, req_t *q, const char *root)
{
    request_rec *r = q->r;
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t len = 0;
    apr_status_t rv;
    char *buf;
    int rc;

    if (!is_xml_type(ct) || apr_table_get(r->headers_in, "Content-Encoding")) {
        return fail(q, HTTP_UNSUPPORTED_MEDIA_TYPE, "wrong-type",
                    "Send the request as application/xml");
    }
    rc = dme_read_body(&buf, &len, q->r, dme_conf_max_body(q->dc));
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return fail(q, rc, "too-large", "The request body is too large");
    }
    if (rc != OK) {
        return fail(q, HTTP_BAD_REQUEST, "bad-body", "Unreadable body");
    }
    rv = dme_xml_parse_request(xr, buf, len,
                               (apr_size_t)dme_conf_max_body(q->dc), r->pool);
    if (rv == DME_ETOOBIG) {
        return fail(q, HTTP_REQUEST_ENTITY_TOO_LARGE, "too-large",
                    "The request body is too large");
    }
    if (rv != APR_SUCCESS || strcmp((*xr)->root, root) != 0 ||
        !known_fields(*xr, root)) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    apr_psprintf(r->pool,
                                 "Expected a well-formed <%s> "
                                 "document",
                                 root));
    }
    return DECLINED; /* meaning: go on */
}

/* A text field: absent gives def; control characters or over-long
 * values make the request invalid (returns NULL). */
static const char *field(const dme_xml_req_t *xr, const char *name,
                         const char *def, apr_size_t max)
{
    const char *v = apr_table_get(xr->fields, name), *c;

    if (!v) {
        return def;
    }
    if (strlen(v) > max) {
        return NULL;
    }
    for (c = v; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return NULL;
        }
    }
    return v;
}

static int with_mailbox(dme_imap_t **s, req_t *q)
{
    const char *why = NULL;
    apr_status_t rv;

    rv = dme_imap_acquire(s, &why, dme_glue_imap_pool(), &q->login, q->r->pool);
    if (rv != APR_SUCCESS) {
        return mail_fail(q, rv, why);
    }
    mail_ok(q);
    return DECLINED;
}

/* Where a client wants to be told of new mail: an http(s) URL with a
 * host, no user info (credentials would end up in logs), nothing a URL
 * may not hold; and unless DMEPushAllowPrivate, no private IP address
 * (a host name is checked again on the address connected to). */
static int is_push_url(const char *url, int allow_private, apr_pool_t *p)
{
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    const char *c;
    apr_uri_t u;

    for (c = url; c && *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return 0;
        }
    }
    if (!url || apr_uri_parse(p, url, &u) != APR_SUCCESS || !u.scheme ||
        (strcasecmp(u.scheme, "https") && strcasecmp(u.scheme, "http")) ||
        !u.hostname || !*u.hostname || u.user || u.password) {
        return 0;
    }
    if (allow_private) {
        return 1;
    }
    memset(&v4, 0, sizeof(v4));
    memset(&v6, 0, sizeof(v6));
    v4.sin_family = AF_INET;
    v6.sin6_family = AF_INET6;
    if (inet_pton(AF_INET, u.hostname, &v4.sin_addr) == 1) {
        return !dme_curl_is_private_addr(&v4);
    }
    if (inet_pton(AF_INET6, u.hostname, &v6.sin6_addr) == 1) {
        return !dme_curl_is_private_addr(&v6);
    }
    return strcasecmp(u.hostname, "localhost") != 0;
}

static int do_enrol(req_t *q)
{
    request_rec *r = q->r;
    const char *name, *platform, *id, *push_url;
    dme_xml_req_t *xr;
    dme_client_t c;
    dme_imap_t *s;
    apr_size_t len;
    const char *body;
    apr_status_t rv;
    int rc;

    if ((rc = read_request(&xr, q, "enrol")) != DECLINED) {
        return rc;
    }
    name = field(xr, "name", "", MAX_NAME_FIELD);
    platform = field(xr, "platform", "", 64);
    push_url = field(xr, "pushUrl", NULL, 2048);
    if (!name || !platform || apr_table_elts(xr->fields)->nelts > 3 ||
        (apr_table_get(xr->fields, "pushUrl") &&
         !is_push_url(push_url, q->sc->push_private == 1, r->pool))) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    "enrol takes a name, a platform (short text) and an "
                    "optional http(s) pushUrl");
    }
    /* Refuse a client that could never sync. */
    if ((rc = with_mailbox(&s, q)) != DECLINED) {
        return rc;
    }
    dme_imap_release(dme_glue_imap_pool(), s);
    rv = dme_crypto_random_id(&id, 16, r->pool);
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.user = r->user;
    c.name = name;
    c.platform = platform;
    c.push_url = push_url;
    c.source = r->useragent_ip;
    c.created = apr_time_now();
    if (rv == APR_SUCCESS && dme_conf_access(q->dc) == DME_ACCESS_TECHNICAL) {
        /* the users row; password mode wrote it with the password */
        rv = dme_store_user_password_set(q->db->driver, q->db->handle, r->user,
                                         NULL, r->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = dme_store_client_create(q->db->driver, q->db->handle, &c, r->pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      DMELOGNO(10018) "cannot store a new client for %s",
                      dme_user_tag(r->user, r->pool));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  DMELOGNO(10019) "enrolled client %s for %s", id,
                  dme_user_tag(r->user, r->pool));
    body = dme_proto_enrolled(&len, id, r->pool);
    return send_xml(q, HTTP_CREATED, body, len);
}

/* The client named by the request, which must be this user's. */
static int own_client(dme_client_t **c, req_t *q, const char *id)
{
    apr_status_t rv;

    if (!id || !*id) {
        return fail(q, HTTP_BAD_REQUEST, "malformed", "No client id");
    }
    rv = dme_store_client_get(c, q->db->driver, q->db->handle, id, q->r->pool);
    if (rv == APR_NOTFOUND) {
        return fail(q, HTTP_NOT_FOUND, "unknown-client", "No such client");
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (strcmp((*c)->user, q->r->user) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, q->r,
                      DMELOGNO(10020) "%s asked for client %s of another user",
                      dme_user_tag(q->r->user, q->r->pool), id);
        return fail(q, HTTP_FORBIDDEN, "not-your-client",
                    "This client belongs to another user");
    }
    return DECLINED;
}

typedef struct sync_args_t {
    const char *client, *folder, *type;
    int has_key;
    apr_int64_t key;
} sync_args_t;

/* IMAP's INBOX is case-insensitive; one spelling keeps one sync state. */
static const char *folder_name(const char *f)
{
    return f && !strcasecmp(f, "INBOX") ? "INBOX" : f;
}

static int sync_args(sync_args_t *a, req_t *q, const dme_xml_req_t *xr)
{
    const char *key = field(xr, "key", NULL, 20);
    char *end = NULL;

    a->client = field(xr, "client", NULL, 64);
    a->folder = field(xr, "folder", "INBOX", 512);
    a->type = field(xr, "type", NULL, 16);
    if (!a->client || !a->folder || !*a->folder || !a->type ||
        (strcmp(a->type, "import") && strcmp(a->type, "push") &&
         strcmp(a->type, "scheduled") && strcmp(a->type, "manual"))) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    "sync needs client, type (import, push, scheduled, "
                    "manual) and an optional folder");
    }
    a->folder = folder_name(a->folder);
    a->has_key = key != NULL;
    if (key) {
        errno = 0;
        a->key = apr_strtoi64(key, &end, 10);
        if (!apr_isdigit(*key) || *end || a->key < 1 || errno == ERANGE) {
            return fail(q, HTTP_BAD_REQUEST, "malformed", "Bad sync key");
        }
    }
    if (!a->has_key && strcmp(a->type, "import") != 0) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    "Only an import may come without a sync key");
    }
    return DECLINED;
}

static int unknown_key(req_t *q)
{
    return fail(q, HTTP_CONFLICT, "import-required",
                "Unknown sync key; import the folder again");
}

/* memcached failed this request: log once per outage, go on without. */
static void mc_failed(req_t *q, apr_status_t rv)
{
    dme_counters_t *c = dme_glue_counters();

    apr_atomic_inc32(&c->fallbacks);
    if (apr_atomic_cas32(&c->mc_down, 1, 0) == 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, dme_log_rv(rv), q->r,
            DMELOGNO(10024) "memcached unreachable; syncs are served from the "
                            "mail system until it is back");
    }
}

static void mc_ok(req_t *q)
{
    if (apr_atomic_cas32(&dme_glue_counters()->mc_down, 0, 1) == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, q->r,
                      DMELOGNO(10025) "memcached reachable again");
    }
}

/* The STATUS tuple of a folder as of a client's sync key, so a sync with
 * nothing new needs one STATUS call. Without mod-sequences flag changes
 * would go unseen, so such servers never take this shortcut. */
static const char *status_text(const dme_imap_status_t *st, apr_int64_t key,
                               apr_pool_t *p)
{
    return apr_psprintf(
        p,
        "%u %u %u %" APR_UINT64_T_FMT " %" APR_TIME_T_FMT " %" APR_INT64_T_FMT,
        st->uidvalidity, st->uidnext, st->messages, st->highestmodseq,
        apr_time_sec(apr_time_now()) / 86400, key);
}

static const char *status_name(apr_size_t *len, const sync_args_t *a,
                               apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, "st\n", a->client, "\n", a->folder, NULL);

    *len = strlen(k);
    return k;
}

/* Pre-cache path: the cache brought up to date, then the diff. */
static apr_status_t from_precache(dme_sync_result_t **res, req_t *q,
                                  dme_imap_t *s, const sync_args_t *a,
                                  const dme_sync_req_t *rq, int *mc_dead)
{
    dme_counters_t *c = dme_glue_counters();
    apr_pool_t *p = q->r->pool;
    dme_precache_t *old, *pc;
    const char *key, *data;
    apr_size_t klen, len;
    dme_pc_how_e how;
    apr_status_t rv;

    key = dme_pc_key(&klen, q->r->user, a->folder, p);
    rv = dme_mc_blob_get(&data, &len, dme_glue_mc(), "pc", key, klen, p);
    if (rv == DME_EDOWN) {
        *mc_dead = 1;
        mc_failed(q, rv);
        return APR_NOTFOUND;
    }
    mc_ok(q);
    if (rv != APR_SUCCESS || dme_precache_parse(&old, data, len, p)) {
        apr_atomic_inc32(&c->misses);
        return APR_NOTFOUND;
    }
    rv = dme_precache_update(&pc, &how, s, a->folder, old, rq->since,
                             dme_conf_max_age(q->sc), apr_time_now(), p);
    if (rv == APR_SUCCESS) {
        rv = dme_sync_run_with(res, s, rq, pc->notes, "pre-cache", p);
    }
    if (rv == APR_SUCCESS) {
        /* a pre-cache serves one sync; the next change builds anew */
        dme_mc_blob_delete(dme_glue_mc(), "pc", key, klen);
        apr_atomic_inc32(&c->hits);
        if (how == DME_PC_MERGE) {
            apr_atomic_inc32(&c->merges);
        }
    }
    return rv;
}

/* The key an answer carries: an answer that changes nothing for the
 * client keeps the client's key, so nothing needs storing; any other
 * moves it on. */
static apr_int64_t answer_key(const dme_sync_result_t *res,
                              const sync_args_t *a, apr_int64_t next)
{
    return a->has_key && dme_delta_is_empty(res->delta) && !res->delta->more
               ? a->key
               : next;
}

/* The cheapest source that gives the right answer: one STATUS call when
 * nothing changed, the pre-cache when one was built, else the mail
 * system. Import always reads the mail system. */
static apr_status_t sync_best(dme_sync_result_t **res, req_t *q, dme_imap_t *s,
                              const sync_args_t *a, const dme_sync_req_t *rq,
                              apr_int64_t next)
{
    apr_pool_t *p = q->r->pool;
    const char *now_text = NULL, *then = NULL, *name;
    dme_imap_status_t st;
    apr_size_t nlen, len;
    int mc_dead = 0;
    apr_status_t rv;

    if (!dme_glue_mc() || !dme_conf_precache(q->sc) || !a->has_key) {
        return dme_sync_run(res, s, rq, p);
    }
    rv = dme_imap_status(&st, s, a->folder, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    name = status_name(&nlen, a, p);
    if (st.highestmodseq) {
        rv = dme_mc_blob_get(&then, &len, dme_glue_mc(), "st", name, nlen, p);
        mc_dead = rv == DME_EDOWN;
        if (mc_dead) {
            mc_failed(q, rv);
        }
        if (rv == APR_SUCCESS && len > 0 && then[len - 1] == '\0' &&
            strcmp(then, status_text(&st, a->key, p)) == 0) {
            apr_atomic_inc32(&dme_glue_counters()->status_hits);
            *res = dme_sync_unchanged(rq->held, p);
            return APR_SUCCESS; /* the tuple stored for this key holds */
        }
    }
    rv = mc_dead ? APR_NOTFOUND : from_precache(res, q, s, a, rq, &mc_dead);
    if (rv == APR_NOTFOUND) {
        rv = dme_sync_run(res, s, rq, p);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* a paged answer is not complete: the next page must really run */
    if (!mc_dead && st.highestmodseq && !(*res)->delta->more) {
        now_text = status_text(&st, answer_key(*res, a, next), p);
        dme_mc_blob_set(dme_glue_mc(), "st", name, nlen, now_text,
                        strlen(now_text) + 1, 86400);
    }
    return APR_SUCCESS;
}

/* New mail that may be signed is read whole once, for the certificates
 * of its signers. A failure here never fails the sync. */
static void harvest_adds(req_t *q, dme_imap_t *s, const dme_sync_result_t *res)
{
    apr_array_header_t *out;
    int i;

    if (!dme_conf_harvest_here(q->dc, q->sc)) {
        return;
    }
    for (i = 0; i < res->adds->nelts; i++) {
        const dme_sync_add_t *a = &APR_ARRAY_IDX(res->adds, i, dme_sync_add_t);
        const char *msg;
        apr_size_t len;

        if (a->maybe_signed &&
            dme_imap_fetch_message(&msg, &len, s, a->note->uid, q->r->pool) ==
                APR_SUCCESS) {
            dme_harvest(&out, q->r->server, q->db, q->r->user, msg, len,
                        q->r->pool);
        }
    }
}

/* Run the sync against the mail system and store the new state. */
static int run_sync(req_t *q, const sync_args_t *a, dme_sync_state_t *st,
                    const dme_notes_t *held)
{
    request_rec *r = q->r;
    apr_int64_t expect = st ? st->key : 0, next;
    dme_sync_result_t *res;
    dme_sync_state_t nst;
    dme_sync_req_t rq;
    const char *body;
    unsigned int cmds;
    dme_imap_t *s;
    apr_size_t len;
    apr_status_t rv;
    int rc;

    next = st ? (st->key > st->prev_key ? st->key : st->prev_key) + 1 : 1;
    memset(&rq, 0, sizeof(rq));
    rq.folder = a->folder;
    rq.held = held;
    rq.since =
        apr_time_now() -
        apr_time_from_sec(86400 * (apr_time_t)dme_conf_window_days(q->dc));
    rq.page_size = dme_conf_page_size(q->dc);
    rq.head_bytes = HEAD_BYTES;
    rq.preview_chars = PREVIEW_CHARS;
    if ((rc = with_mailbox(&s, q)) != DECLINED) {
        return rc;
    }
    cmds = dme_imap_commands(s);
    rv = sync_best(&res, q, s, a, &rq, next);
    if (rv == APR_SUCCESS) {
        harvest_adds(q, s, res);
    }
    apr_atomic_add32(&dme_glue_counters()->imap_commands,
                     dme_imap_commands(s) - cmds);
    dme_imap_release(dme_glue_imap_pool(), s);
    if (rv == DME_ENOMBOX || rv == APR_EINVAL) {
        return fail(q, HTTP_NOT_FOUND, "no-such-folder", "No such folder");
    }
    if (rv != APR_SUCCESS) {
        return mail_fail(q, rv, NULL);
    }
    if (answer_key(res, a, next) == a->key && a->has_key) {
        /* Nothing changed for the client: same key, nothing to store. */
        body = dme_proto_sync(&len, a->folder, a->key, res, r->pool);
        return send_xml(q, HTTP_OK, body, len);
    }
    body = dme_proto_sync(&len, a->folder, next, res, r->pool);
    memset(&nst, 0, sizeof(nst));
    nst.client_id = a->client;
    nst.folder = a->folder;
    nst.key = next;
    nst.notes = dme_notes_serialize(res->delta->next, r->pool);
    nst.prev_key = a->has_key ? a->key : 0;
    nst.prev_response = body;
    nst.prev_response_len = len;
    rv =
        dme_store_sync_put(q->db->driver, q->db->handle, &nst, expect, r->pool);
    if (rv == DME_ECONFLICT) {
        return fail(q, HTTP_CONFLICT, "concurrent-sync",
                    "Another sync of this folder ran at the same time");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      DMELOGNO(10021) "cannot store sync state of client %s",
                      a->client);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return send_xml(q, HTTP_OK, body, len);
}

static int do_sync(req_t *q)
{
    request_rec *r = q->r;
    dme_sync_state_t *st = NULL;
    const dme_notes_t *held;
    dme_notes_t *parsed;
    dme_xml_req_t *xr;
    dme_client_t *c;
    sync_args_t a;
    apr_status_t rv;
    int rc;

    if ((rc = read_request(&xr, q, "sync")) != DECLINED ||
        (rc = sync_args(&a, q, xr)) != DECLINED ||
        (rc = own_client(&c, q, a.client)) != DECLINED) {
        return rc;
    }
    rv = dme_store_sync_get(&st, q->db->driver, q->db->handle, a.client,
                            a.folder, r->pool);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (rv == APR_NOTFOUND) {
        st = NULL;
    }
    if (!a.has_key) {
        return run_sync(q, &a, st, dme_notes_make(0, 1, r->pool));
    }
    if (!st) {
        return unknown_key(q);
    }
    if (a.key == st->prev_key && st->prev_response) {
        /* The client lost our answer: the same bytes again. */
        return send_xml(q, HTTP_OK, st->prev_response, st->prev_response_len);
    }
    if (a.key != st->key) {
        return unknown_key(q);
    }
    if (dme_notes_parse(&parsed, st->notes, r->pool) != APR_SUCCESS) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            DMELOGNO(10022) "stored sync state of client %s is damaged; the "
                            "client is asked to import",
            a.client);
        return unknown_key(q);
    }
    held = parsed;
    return run_sync(q, &a, st, held);
}

/* The query string as a table: form encoding ('+' is a space), each
 * parameter at most once. */
static apr_status_t query_args(apr_table_t **out, request_rec *r)
{
    char *args = apr_pstrdup(r->pool, r->args ? r->args : ""), *pair, *last;

    *out = apr_table_make(r->pool, 4);
    for (pair = apr_strtok(args, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '=');

        if (!eq) {
            return APR_EINVAL;
        }
        *eq++ = '\0';
        if (ap_unescape_urlencoded(pair) != OK ||
            ap_unescape_urlencoded(eq) != OK || apr_table_get(*out, pair)) {
            return APR_EINVAL;
        }
        apr_table_setn(*out, pair, eq);
    }
    return APR_SUCCESS;
}

static int do_message(req_t *q)
{
    request_rec *r = q->r;
    apr_uint32_t uidvalidity, uid, cur, exists;
    const char *data, *folder, *ref;
    apr_table_t *args;
    dme_client_t *c;
    dme_imap_t *s;
    apr_size_t len;
    apr_status_t rv;
    int rc;

    if (query_args(&args, r) != APR_SUCCESS) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    "Bad or repeated query parameter");
    }
    folder = folder_name(apr_table_get(args, "folder"));
    ref = apr_table_get(args, "ref");
    if (!folder || !*folder ||
        dme_note_ref_parse(&uidvalidity, &uid, ref) != APR_SUCCESS) {
        return fail(q, HTTP_BAD_REQUEST, "malformed",
                    "message needs client, folder and ref");
    }
    if ((rc = own_client(&c, q, apr_table_get(args, "client"))) != DECLINED ||
        (rc = with_mailbox(&s, q)) != DECLINED) {
        return rc;
    }
    rv = dme_imap_examine(&cur, &exists, s, folder, r->pool);
    if (rv == APR_SUCCESS && cur != uidvalidity) {
        rv = APR_NOTFOUND;
    }
    if (rv == APR_SUCCESS) {
        rv = dme_imap_fetch_message(&data, &len, s, uid, r->pool);
    }
    dme_imap_release(dme_glue_imap_pool(), s);
    if (rv == DME_ENOMBOX || rv == APR_EINVAL) {
        return fail(q, HTTP_NOT_FOUND, "no-such-folder", "No such folder");
    }
    if (rv == APR_NOTFOUND) {
        return fail(q, HTTP_NOT_FOUND, "no-such-message", "No such message");
    }
    if (rv != APR_SUCCESS) {
        return mail_fail(q, rv, NULL);
    }
    ap_set_content_type(r, "message/rfc822");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(data, (int)len, r);
    return OK;
}

/* The <Location> path, without a trailing slash, for links. */
static const char *base_path(const req_t *q)
{
    const char *b = q->dc->base ? q->dc->base : "";
    apr_size_t n = strlen(b);

    while (n > 0 && b[n - 1] == '/') {
        n--;
    }
    return apr_pstrmemdup(q->r->pool, b, n);
}

/* The request's path below the <Location> of the handler. */
/* The resources below the handler's <Location>, longest first. */
static const char *const resources[] = {"/admin/certificates",
                                        "/admin/counters",
                                        "/smime/harvest",
                                        "/certificates",
                                        "/clients",
                                        "/message",
                                        "/sync",
                                        "/wait",
                                        "/push",
                                        NULL};

static const char *sub_path(const req_t *q)
{
    const char *uri = q->r->uri;
    apr_size_t n, u = strlen(uri);
    int i;

    if (q->dc->base) {
        const char *base = q->dc->base;

        for (n = strlen(base); n > 0 && base[n - 1] == '/'; n--) {
        }
        return strncmp(uri, base, n) == 0 ? uri + n : uri;
    }
    /* A <Location> holding only SetHandler leaves no section config of
     * ours to say where it starts: recognise the resource by its end. */
    for (i = 0; resources[i]; i++) {
        n = strlen(resources[i]);
        if (u >= n && !strcmp(uri + u - n, resources[i])) {
            return resources[i];
        }
    }
    return uri;
}

static int do_certificates(req_t *q)
{
    const char *list;
    dme_xml_req_t *xr;
    int rc;

    if ((rc = read_request(&xr, q, "certificates")) != DECLINED) {
        return rc;
    }
    list = apr_table_get(xr->fields, "addresses");
    rc = list ? dme_certs_lookup(q->r, q->db, list) : HTTP_BAD_REQUEST;
    if (rc == HTTP_BAD_REQUEST) {
        return fail(q, rc, "malformed",
                    "certificates takes 1 to 50 distinct e-mail addresses "
                    "(each with an @) in <addresses>");
    }
    return rc;
}

/* A client hands over a whole message for its certificates. */
static int do_harvest(req_t *q)
{
    const char *ct = apr_table_get(q->r->headers_in, "Content-Type");
    apr_size_t len = 0;
    char *msg;
    int rc;

    if (!dme_conf_harvest_here(q->dc, q->sc)) {
        return fail(q, HTTP_NOT_FOUND, "no-harvest",
                    "Certificate harvesting is off on this server");
    }
    if (!ct || apr_table_get(q->r->headers_in, "Content-Encoding") ||
        strncasecmp(ct, "message/rfc822", 14) ||
        (ct[14] && ct[14] != ';' && ct[14] != ' ')) {
        return fail(q, HTTP_UNSUPPORTED_MEDIA_TYPE, "wrong-type",
                    "Send the message as message/rfc822");
    }
    rc = dme_read_body(&msg, &len, q->r, HARVEST_MAX);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return fail(q, rc, "too-large", "The message is too large");
    }
    if (rc != OK || len == 0) {
        return fail(q, HTTP_BAD_REQUEST, "bad-body",
                    len ? "Unreadable body" : "Empty message");
    }
    return dme_harvest_run(q->r, q->db, msg, len);
}

/* A long-poll on a folder that does not exist would never end well. */
static int folder_exists(req_t *q, const char *folder)
{
    dme_imap_status_t st;
    apr_status_t rv;
    dme_imap_t *s;
    int rc;

    if ((rc = with_mailbox(&s, q)) != DECLINED) {
        return rc;
    }
    rv = dme_imap_status(&st, s, folder, q->r->pool);
    dme_imap_release(dme_glue_imap_pool(), s);
    if (rv == DME_ENOMBOX || rv == APR_EINVAL) {
        return fail(q, HTTP_NOT_FOUND, "no-such-folder", "No such folder");
    }
    return rv == APR_SUCCESS ? DECLINED : mail_fail(q, rv, NULL);
}

static int do_wait(req_t *q)
{
    const char *folder;
    dme_xml_req_t *xr;
    dme_client_t *c;
    int rc;

    if ((rc = read_request(&xr, q, "wait")) != DECLINED) {
        return rc;
    }
    folder = field(xr, "folder", "INBOX", 512);
    if (!folder || !*folder) {
        return fail(q, HTTP_BAD_REQUEST, "malformed", "Bad folder");
    }
    if ((rc = own_client(&c, q, field(xr, "client", NULL, 64))) != DECLINED) {
        return rc;
    }
    if (!dme_glue_mc()) {
        return fail(q, HTTP_NOT_FOUND, "no-push",
                    "Pre-caching and push are off on this server");
    }
    folder = folder_name(folder);
    if ((rc = folder_exists(q, folder)) != DECLINED) {
        return rc;
    }
    return dme_wait_run(q->r, c->id, folder);
}

static int print_count(void *r, const char *status, const char *n)
{
    ap_rprintf(r, "certificates_%s: %s\n", status, n);
    return 1;
}

/* Machine-readable counters, "name: value" lines. */
static int counters_page(req_t *q)
{
    const dme_counters_t *c = dme_glue_counters();
    request_rec *r = q->r;
    apr_table_t *certs = NULL;

    dme_store_cert_counts(&certs, q->db->driver, q->db->handle, apr_time_now(),
                          r->pool);
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rprintf(r,
               "builds: %u\nappends: %u\nmerges: %u\nhits: %u\n"
               "misses: %u\nfallbacks: %u\nstatus_hits: %u\npushes: %u\n"
               "push_failures: %u\nwakeups: %u\nmail_down: %u\n"
               "memcached_down: %u\nsync_imap_commands: %u\n",
               c->builds, c->appends, c->merges, c->hits, c->misses,
               c->fallbacks, c->status_hits, c->pushes, c->push_failures,
               c->wakeups, c->mail_down, c->mc_down, c->imap_commands);
    if (certs) {
        apr_table_do(print_count, r, certs, NULL);
    }
    return OK;
}

static int dispatch(req_t *q, const char *sub)
{
    request_rec *r = q->r;
    int post = r->method_number == M_POST;

    static const struct {
        const char *path;
        int (*run)(req_t *q);
    } posts[] = {{"/clients", do_enrol},
                 {"/sync", do_sync},
                 {"/wait", do_wait},
                 {"/certificates", do_certificates},
                 {"/smime/harvest", do_harvest},
                 {NULL, NULL}};
    int i;

    for (i = 0; posts[i].path; i++) {
        if (strcmp(sub, posts[i].path) != 0) {
            continue;
        }
        if (!post) {
            apr_table_setn(r->headers_out, "Allow", "POST");
            return fail(q, HTTP_METHOD_NOT_ALLOWED, "method", "Use POST");
        }
        return posts[i].run(q);
    }
    if (!strcmp(sub, "/message")) {
        if (r->method_number != M_GET) {
            apr_table_setn(r->headers_out, "Allow", "GET");
            return fail(q, HTTP_METHOD_NOT_ALLOWED, "method", "Use GET");
        }
        return do_message(q);
    }
    return fail(q, HTTP_NOT_FOUND, "not-found", "No such resource");
}

int dme_handler(request_rec *r)
{
    const char *sub;
    req_t q;
    int rc;

    if (!r->handler || strcmp(r->handler, "dme") != 0) {
        return DECLINED;
    }
    if (!dbd_acquire) {
        dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    }
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.dc = ap_get_module_config(r->per_dir_config, &dme_module);
    q.sc = ap_get_module_config(r->server->module_config, &dme_module);
    q.log.fn = log_request;
    q.log.baton = r;
    if (!r->user) {
        return fail(&q, HTTP_UNAUTHORIZED, "no-user",
                    "Apache authentication is required here");
    }
    if (!q.dc->mail_url || !dme_glue_imap_pool()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      DMELOGNO(10023) "DMEMailServer is not set for %s",
                      r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Each step answers DECLINED to go on, anything else ends here. */
    sub = sub_path(&q);
    if ((rc = open_db(&q)) != DECLINED) {
        return rc;
    }
    /* Resources of the server itself, not of a mailbox. */
    if (!strcmp(sub, "/push")) {
        return dme_push_handle(r, q.dc, q.db);
    }
    if (!strcmp(sub, "/admin/counters")) {
        return counters_page(&q);
    }
    if (!strcmp(sub, "/admin/certificates")) {
        return dme_admin_certs(r, q.db, base_path(&q));
    }
    if ((rc = make_login(&q)) != DECLINED ||
        (rc = keep_password(&q)) != DECLINED) {
        return rc;
    }
    return dispatch(&q, sub);
}
