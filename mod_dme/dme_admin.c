/* mod_dme admin pages: the stored certificates (search, details,
 * delete) and the counters. Apache's authentication and authorisation
 * guard the admin path; every form carries a CSRF token. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_script.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "mod_dme.h"
#include "dme_store.h"
#include "dme_crypto.h"
#include "dme_proto.h"

APLOG_USE_MODULE(dme);

#define ADMIN_CERTS_MAX 200

static unsigned char csrf_secret[32]; /* made in post_config, per server */

apr_status_t dme_admin_init(void)
{
    return dme_crypto_random(csrf_secret, sizeof(csrf_secret));
}

/* The form token of this admin: bound to the user, so one admin's page
 * cannot be replayed by another session of someone else. */
static const char *csrf_token(request_rec *r)
{
    char *hex = apr_palloc(r->pool, 65);
    const char *who = r->user ? r->user : "";

    dme_crypto_hmac_sha256_hex(hex, csrf_secret, sizeof(csrf_secret), who,
                               strlen(who));
    return hex;
}

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s ? s : "", 1);
}

static void page_start(request_rec *r, const char *title)
{
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'self'; frame-ancestors 'none'");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_rprintf(r,
               "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
               "charset=\"utf-8\"><title>%s</title></head><body>\n"
               "<h1>%s</h1>\n",
               esc(r, title), esc(r, title));
}

static void cert_row(request_rec *r, const char *base,
                     const dme_stored_cert_t *c)
{
    int i;

    ap_rprintf(r,
               "<tr><td><a href=\"%s/admin/certificates?fp=%s\">%.16s"
               "</a></td><td>",
               esc(r, base), esc(r, c->fingerprint), esc(r, c->fingerprint));
    for (i = 0; i < c->addresses->nelts; i++) {
        ap_rprintf(r, "%s%s", i ? "<br>" : "",
                   esc(r, APR_ARRAY_IDX(c->addresses, i, const char *)));
    }
    ap_rprintf(r, "</td><td>%s</td><td>%s</td></tr>\n", esc(r, c->status),
               esc(r, dme_proto_time(c->not_after, r->pool)));
}

static int list_page(request_rec *r, ap_dbd_t *db, const char *base,
                     const char *q)
{
    apr_array_header_t *certs;
    int i;

    if (dme_store_cert_search(&certs, db->driver, db->handle, q ? q : "",
                              ADMIN_CERTS_MAX, r->pool) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    page_start(r, "Certificates of external people");
    ap_rprintf(r,
               "<form method=\"get\" action=\"%s/admin/certificates\">"
               "<label>Address <input name=\"q\" value=\"%s\"></label> "
               "<button>Search</button></form>\n",
               esc(r, base), esc(r, q));
    ap_rputs("<table><tr><th>Fingerprint</th><th>Addresses</th><th>Status"
             "</th><th>Valid until</th></tr>\n",
             r);
    for (i = 0; i < certs->nelts; i++) {
        cert_row(r, base, APR_ARRAY_IDX(certs, i, dme_stored_cert_t *));
    }
    ap_rprintf(r, "</table><p>%d shown (at most %d).</p></body></html>\n",
               certs->nelts, ADMIN_CERTS_MAX);
    return OK;
}

static int detail_page(request_rec *r, ap_dbd_t *db, const char *base,
                       const char *fp)
{
    dme_stored_cert_t *c;
    apr_status_t rv;
    int i;

    rv = dme_store_cert_get(&c, db->driver, db->handle, fp, r->pool);
    if (rv == APR_NOTFOUND) {
        return HTTP_NOT_FOUND;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    page_start(r, "Certificate");
    ap_rprintf(r,
               "<dl><dt>Fingerprint (SHA-256)</dt><dd>%s</dd>"
               "<dt>Issuer</dt><dd>%s</dd><dt>Serial</dt><dd>%s</dd>"
               "<dt>Valid</dt><dd>%s to %s</dd><dt>Key usage</dt><dd>%s"
               "</dd><dt>Can encrypt to</dt><dd>%s</dd><dt>Status</dt>"
               "<dd>%s</dd><dt>Harvested</dt><dd>%s from the mail of "
               "%s, message %s</dd><dt>Addresses</dt><dd>",
               esc(r, c->fingerprint), esc(r, c->issuer), esc(r, c->serial),
               esc(r, dme_proto_time(c->not_before, r->pool)),
               esc(r, dme_proto_time(c->not_after, r->pool)),
               esc(r, c->key_usage), c->can_encrypt ? "yes" : "no",
               esc(r, c->status), esc(r, dme_proto_time(c->harvested, r->pool)),
               esc(r, c->source_user),
               esc(r, c->source_message_id && *c->source_message_id
                          ? c->source_message_id
                          : "(none)"));
    for (i = 0; i < c->addresses->nelts; i++) {
        ap_rprintf(r, "%s%s", i ? "<br>" : "",
                   esc(r, APR_ARRAY_IDX(c->addresses, i, const char *)));
    }
    ap_rprintf(r,
               "</dd></dl>\n<form method=\"post\" action=\"%s/admin/"
               "certificates\"><input type=\"hidden\" name=\"fp\" "
               "value=\"%s\"><input type=\"hidden\" name=\"csrf\" "
               "value=\"%s\"><button name=\"action\" value=\"delete\">"
               "Delete this certificate</button></form></body></html>\n",
               esc(r, base), esc(r, c->fingerprint), csrf_token(r));
    return OK;
}

/* POST: delete one, if the token is this admin's. */
static int delete_cert(request_rec *r, ap_dbd_t *db, const char *base)
{
    apr_array_header_t *pairs = NULL;
    const char *fp = NULL, *token = NULL, *action = NULL;
    apr_status_t rv;
    int i;

    if (ap_parse_form_data(r, NULL, &pairs, 8, 4096) != OK) {
        return HTTP_BAD_REQUEST;
    }
    for (i = 0; pairs && i < pairs->nelts; i++) {
        ap_form_pair_t *f = &APR_ARRAY_IDX(pairs, i, ap_form_pair_t);
        const char **slot = !strcmp(f->name, "fp")       ? &fp
                            : !strcmp(f->name, "csrf")   ? &token
                            : !strcmp(f->name, "action") ? &action
                                                         : NULL;
        apr_off_t len;
        apr_size_t size;
        char *v;

        if (!slot) {
            continue;
        }
        if (*slot) {
            return HTTP_BAD_REQUEST; /* each field once */
        }
        apr_brigade_length(f->value, 1, &len);
        size = (apr_size_t)len;
        v = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(f->value, v, &size);
        v[size] = '\0';
        *slot = v;
    }
    if (!action || strcmp(action, "delete") != 0) {
        return HTTP_BAD_REQUEST;
    }
    if (!token || strcmp(token, csrf_token(r)) != 0) {
        ap_log_rerror(
            APLOG_MARK, APLOG_WARNING, 0, r,
            DMELOGNO(10060) "certificate delete refused: bad form token");
        return HTTP_FORBIDDEN;
    }
    rv = fp ? dme_store_cert_delete(db->driver, db->handle, fp, r->pool)
            : APR_NOTFOUND;
    if (rv == APR_NOTFOUND) {
        return HTTP_NOT_FOUND;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  DMELOGNO(10061) "certificate %s deleted by an administrator",
                  fp);
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, base, "/admin/certificates", NULL));
    return HTTP_SEE_OTHER;
}

/* One query parameter, form-decoded ('+' is a space), as a browser's
 * GET form sends it; NULL when absent or undecodable. */
static const char *form_arg(request_rec *r, const char *name)
{
    char *args = apr_pstrdup(r->pool, r->args ? r->args : ""), *pair, *last;
    apr_size_t n = strlen(name);

    for (pair = apr_strtok(args, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        if (!strncmp(pair, name, n) && pair[n] == '=') {
            char *v = pair + n + 1;

            return ap_unescape_urlencoded(v) == OK ? v : NULL;
        }
    }
    return NULL;
}

int dme_admin_certs(request_rec *r, void *dbv, const char *base)
{
    ap_dbd_t *db = dbv;
    apr_table_t *args;
    const char *q;

    if (r->method_number == M_POST) {
        return delete_cert(r, db, base);
    }
    if (r->method_number != M_GET) {
        apr_table_setn(r->headers_out, "Allow", "GET, POST");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_args_to_table(r, &args);
    q = form_arg(r, "q");
    if (apr_table_get(args, "fp")) {
        return detail_page(r, db, base, apr_table_get(args, "fp"));
    }
    return list_page(r, db, base, q);
}
