/* mod_dme: S/MIME certificates of external senders - harvest from mail
 * the server reads, lookup for clients, and the admin's certificate
 * page. The cryptography is in lib/dme_smime.c; this file decides with
 * the database (who is a user of the system, what is stored already). */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_hash.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "mod_dme.h"
#include "dme_smime.h"
#include "dme_store.h"
#include "dme_mime.h"
#include "dme_xml.h"
#include "dme_proto.h"

APLOG_USE_MODULE(dme);

/* A sender is a user of the system when the address names a user with a
 * client: "<user>@<DMEMailDomain>", or the address itself as the login. */
static int is_internal(ap_dbd_t *db, const dme_srv_conf *sc, const char *sender,
                       apr_pool_t *p)
{
    const char *at = strrchr(sender, '@');
    int yes = 0;

    if (dme_store_user_has_clients(&yes, db->driver, db->handle, sender, p) ==
            APR_SUCCESS &&
        yes) {
        return 1;
    }
    if (at && sc->mail_domain && !strcasecmp(at + 1, sc->mail_domain)) {
        const char *user = apr_pstrmemdup(p, sender, (apr_size_t)(at - sender));

        return dme_store_user_has_clients(&yes, db->driver, db->handle, user,
                                          p) == APR_SUCCESS &&
               yes;
    }
    return 0;
}

static dme_stored_cert_t *to_stored(const dme_cert_t *c, const char *msgid,
                                    const char *user, apr_pool_t *p)
{
    dme_stored_cert_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->fingerprint = c->fingerprint;
    sc->der = c->der;
    sc->der_len = c->der_len;
    sc->issuer = c->issuer;
    sc->serial = c->serial;
    sc->not_before = c->not_before;
    sc->not_after = c->not_after;
    sc->addresses = c->addresses;
    sc->key_usage = c->key_usage;
    sc->can_encrypt = c->can_encrypt;
    /* Revocation is not checked yet: a later check sets good/revoked. */
    sc->status = "unchecked";
    sc->source_message_id = msgid ? msgid : "";
    sc->source_user = user;
    sc->harvested = apr_time_now();
    return sc;
}

/* The final word on one signer: the core's reason, or internal sender,
 * stored, already stored. */
static const char *decide(const dme_smime_verdict_t *v, server_rec *s,
                          ap_dbd_t *db, const char *user, const char *sender,
                          const char *msgid, apr_pool_t *p)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    int created = 0, purged = 0, i;

    if (v->reason != DME_SMIME_ACCEPTABLE) {
        return dme_smime_reason_name(v->reason);
    }
    if (is_internal(db, sc, sender, p)) {
        return "internal-sender";
    }
    if (dme_store_cert_put(&created, db->driver, db->handle,
                           to_stored(v->cert, msgid, user, p),
                           p) != APR_SUCCESS) {
        return "store-failed";
    }
    for (i = 0; created && i < v->cert->addresses->nelts; i++) {
        dme_store_cert_purge_expired(
            &purged, db->driver, db->handle,
            APR_ARRAY_IDX(v->cert->addresses, i, const char *), apr_time_now(),
            p);
    }
    return created ? "stored" : "already-stored";
}

apr_status_t dme_harvest(apr_array_header_t **out, server_rec *s, void *dbv,
                         const char *user, const char *msg, apr_size_t len,
                         apr_pool_t *p)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    apr_array_header_t *verdicts, *res;
    const char *sender, *msgid = "";
    dme_mime_summary_t *sum = NULL;
    ap_dbd_t *db = dbv;
    apr_status_t rv;
    int i;

    *out = res = apr_array_make(p, 2, sizeof(dme_harvest_result_t));
    if (!sc->smime_trust) {
        return APR_SUCCESS; /* harvesting was never configured */
    }
    sender = dme_mime_sender_address(msg, len, p);
    if (dme_mime_summarize(&sum, msg, len, 0, p) == APR_SUCCESS) {
        msgid = sum->message_id;
    }
    rv = dme_smime_inspect(&verdicts, msg, len, sender ? sender : "",
                           sc->smime_trust, apr_time_now(), NULL, p);
    for (i = 0; rv == APR_SUCCESS && i < verdicts->nelts; i++) {
        const dme_smime_verdict_t *v =
            &APR_ARRAY_IDX(verdicts, i, dme_smime_verdict_t);
        dme_harvest_result_t *h = apr_array_push(res);

        h->reason = decide(v, s, db, user, sender ? sender : "", msgid, p);
        h->fingerprint = v->cert ? v->cert->fingerprint : NULL;
        if (v->reason != DME_SMIME_NO_SIGNATURE) {
            ap_log_error(
                APLOG_MARK, APLOG_INFO, 0, s,
                DMELOGNO(10050) "S/MIME signer in mail of %s from %s: %s (%s)",
                dme_user_tag(user, p), sender ? sender : "?", h->reason,
                v->detail);
        }
    }
    return rv;
}

/* ---- the harvest endpoint: a client hands over a message ---- */

int dme_harvest_run(request_rec *r, void *db, const char *msg, apr_size_t len)
{
    dme_xml_w_t *w = dme_xml_writer_create("harvest", r->pool);
    apr_array_header_t *res;
    const char *body;
    apr_size_t blen;
    int i;

    if (dme_harvest(&res, r->server, db, r->user, msg, len, r->pool) !=
        APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; i < res->nelts; i++) {
        const dme_harvest_result_t *h =
            &APR_ARRAY_IDX(res, i, dme_harvest_result_t);

        dme_xml_start(w, "signer");
        dme_xml_attr(w, "reason", h->reason);
        if (h->fingerprint) {
            dme_xml_attr(w, "fingerprint", h->fingerprint);
        }
        dme_xml_end(w);
    }
    body = dme_xml_finish(w, &blen);
    ap_set_content_type(r, "application/xml; charset=utf-8");
    ap_set_content_length(r, (apr_off_t)blen);
    ap_rwrite(body, (int)blen, r);
    return OK;
}

/* ---- lookup for clients ---- */

/* Why an address has no certificate to encrypt to. */
static const char *none_reason(const apr_array_header_t *all, apr_time_t now)
{
    int i, expired = 0, revoked = 0, unknown = 0;

    for (i = 0; i < all->nelts; i++) {
        const dme_stored_cert_t *c = APR_ARRAY_IDX(all, i, dme_stored_cert_t *);

        expired += c->not_after < now;
        revoked += !strcmp(c->status, "revoked");
        unknown += !strcmp(c->status, "unknown");
    }
    return !all->nelts ? "none"
           : revoked   ? "revoked"
           : expired   ? "expired"
           : unknown   ? "unknown-status"
                       : "none";
}

static int usable(const dme_stored_cert_t *c, apr_time_t now)
{
    return c->not_after >= now && c->not_before <= now && c->can_encrypt &&
           (!strcmp(c->status, "unchecked") || !strcmp(c->status, "good"));
}

static void write_address(dme_xml_w_t *w, const char *addr,
                          const apr_array_header_t *all, int *budget,
                          apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    int i, n = 0;

    dme_xml_start(w, "address");
    dme_xml_attr(w, "value", addr);
    for (i = 0; i < all->nelts; i++) {
        n += usable(APR_ARRAY_IDX(all, i, dme_stored_cert_t *), now);
    }
    dme_xml_attr(w, "status",
                 n == 0         ? none_reason(all, now)
                 : *budget == 0 ? "limit"
                                : "found");
    for (i = 0; i<all->nelts && * budget> 0; i++) {
        const dme_stored_cert_t *c = APR_ARRAY_IDX(all, i, dme_stored_cert_t *);
        char *b64;

        if (!usable(c, now)) {
            continue;
        }
        b64 = apr_palloc(p, apr_base64_encode_len((int)c->der_len));
        apr_base64_encode(b64, (const char *)c->der, (int)c->der_len);
        dme_xml_start(w, "certificate");
        dme_xml_attr(w, "fingerprint", c->fingerprint);
        dme_xml_attr(w, "notAfter", dme_proto_time(c->not_after, p));
        dme_xml_elem(w, "der", b64);
        dme_xml_end(w);
        (*budget)--;
    }
    dme_xml_end(w);
}

int dme_certs_lookup(request_rec *r, void *dbv, const char *addresses)
{
    dme_srv_conf *sc =
        ap_get_module_config(r->server->module_config, &dme_module);
    dme_xml_w_t *w = dme_xml_writer_create("certificates", r->pool);
    char *list = apr_pstrdup(r->pool, addresses), *addr, *last;
    int budget = dme_conf_smime_max(sc), count = 0;
    apr_hash_t *seen = apr_hash_make(r->pool);
    ap_dbd_t *db = dbv;
    const char *body;
    apr_size_t len;

    dme_xml_attr(w, "limit", apr_itoa(r->pool, budget));
    for (addr = apr_strtok(list, " ,\t\r\n", &last); addr;
         addr = apr_strtok(NULL, " ,\t\r\n", &last)) {
        char *lower = apr_pstrdup(r->pool, addr);
        apr_array_header_t *all;

        ap_str_tolower(lower);
        if (apr_hash_get(seen, lower, APR_HASH_KEY_STRING)) {
            continue; /* asked twice: answered once */
        }
        apr_hash_set(seen, lower, APR_HASH_KEY_STRING, lower);
        if (++count > 50 || !strchr(addr, '@') || strlen(addr) > 320) {
            return HTTP_BAD_REQUEST;
        }
        if (dme_store_cert_find(&all, db->driver, db->handle, lower, r->pool) !=
            APR_SUCCESS) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        /* the address as the client sent it, so it can match its own */
        write_address(w, addr, all, &budget, r->pool);
    }
    if (count == 0) {
        return HTTP_BAD_REQUEST;
    }
    body = dme_xml_finish(w, &len);
    ap_set_content_type(r, "application/xml; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(body, (int)len, r);
    return OK;
}
