/* mod_dme: change notifications from the mail system, and long-polls
 * that tell clients a pre-cache is ready. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <apr_atomic.h>
#include <apr_dbd.h>
#include <mod_dbd.h>

#include "mod_dme.h"
#include "dme_json.h"
#include "dme_mc.h"
#include "dme_store.h"
#include "dme_xml.h"
#include "dme_crypto.h"
#include <stdio.h>

APLOG_USE_MODULE(dme);

#define PUSH_MAX_BODY 65536
#define WAIT_STEP     apr_time_from_msec(200)

int dme_push_handle(request_rec *r, const dme_dir_conf *dc, void *dbv)
{
    ap_dbd_t *db = dbv;
    dme_push_event_t *ev;
    const char *why = NULL;
    apr_size_t len = 0;
    int rc, yes = 0;
    char *body;

    if (r->method_number != M_PUT && r->method_number != M_POST) {
        apr_table_setn(r->headers_out, "Allow", "PUT, POST");
        return dme_send_error(r, HTTP_METHOD_NOT_ALLOWED, "method",
                              "Use PUT or POST");
    }
    if (!dme_glue_mc()) {
        return dme_send_error(r, HTTP_NOT_FOUND, "no-precache",
                              "Pre-caching is off on this server");
    }
    rc = dme_read_body(&body, &len, r, PUSH_MAX_BODY);
    if (rc == OK && dme_json_push_parse(&ev, &why, body, len, r->pool)) {
        rc = HTTP_BAD_REQUEST;
    }
    if (rc != OK) {
        int big = rc == HTTP_REQUEST_ENTITY_TOO_LARGE;

        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      DMELOGNO(10030) "refused a change notification: %s",
                      why   ? why
                      : big ? "over 64 KiB"
                            : "unreadable body");
        return dme_send_error(r, big ? rc : HTTP_BAD_REQUEST,
                              big ? "too-large" : "malformed",
                              big ? "The notification is over 64 KiB"
                                  : "Expected a push notification");
    }
    if (dme_store_user_has_clients(&yes, db->driver, db->handle, ev->user,
                                   r->pool) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (!yes) {
        ap_log_rerror(
            APLOG_MARK, APLOG_DEBUG, 0, r,
            DMELOGNO(10031) "change for %s, who has no client: ignored",
            dme_user_tag(ev->user, r->pool));
        return HTTP_NO_CONTENT;
    }
    dme_bg_queue_build(r->server, dc, ev->user, ev->folder);
    return HTTP_NO_CONTENT;
}

/* ---- long-poll ---- */

typedef struct wait_t {
    request_rec *r;
    dme_mc_t *mc;
    const char *lp_name, *hb_name, *gen;
    const char *token;
    apr_time_t start;
    apr_interval_time_t hb;
} wait_t;

static apr_interval_time_t clamp(apr_interval_time_t v, const dme_srv_conf *sc)
{
    if (v < dme_conf_hb_min(sc)) {
        return dme_conf_hb_min(sc);
    }
    return v > dme_conf_hb_max(sc) ? dme_conf_hb_max(sc) : v;
}

static void put_text(dme_mc_t *mc, const char *name, const char *text)
{
    dme_mc_blob_set(mc, "lp", name, strlen(name), text, strlen(text) + 1,
                    86400);
}

static const char *get_text(dme_mc_t *mc, const char *name, apr_pool_t *p)
{
    const char *v = NULL;
    apr_size_t len = 0;

    if (dme_mc_blob_get(&v, &len, mc, "lp", name, strlen(name), p) !=
            APR_SUCCESS ||
        len == 0 || v[len - 1] != '\0') {
        return NULL;
    }
    return v;
}

/* The heartbeat for this long-poll: shorter when the client came back
 * before its previous long-poll was due to end (its connection was cut
 * somewhere on the way), else what the last one ended with. */
static void choose_heartbeat(wait_t *w, const dme_srv_conf *sc)
{
    const char *prev = get_text(w->mc, w->lp_name, w->r->pool);
    const char *hb = get_text(w->mc, w->hb_name, w->r->pool);
    apr_int64_t start = 0, secs = 0;
    char tok[64];

    w->hb =
        hb ? clamp(apr_time_from_sec(apr_atoi64(hb)), sc) : dme_conf_hb_min(sc);
    if (prev &&
        sscanf(prev, "%63s %" APR_INT64_T_FMT " %" APR_INT64_T_FMT, tok, &start,
               &secs) == 3 &&
        apr_time_sec(w->start) < start + secs) {
        w->hb = clamp(w->hb / 2, sc);
        put_text(
            w->mc, w->hb_name,
            apr_psprintf(w->r->pool, "%" APR_TIME_T_FMT, apr_time_sec(w->hb)));
    }
}

static int send_wait(wait_t *w, int changed, int superseded,
                     apr_interval_time_t next)
{
    request_rec *r = w->r;
    dme_xml_w_t *x = dme_xml_writer_create("wait", r->pool);
    const char *body;
    apr_size_t len;

    dme_xml_attr(x, "changed", changed ? "true" : "false");
    dme_xml_attr(x, "heartbeat",
                 apr_psprintf(r->pool, "%" APR_TIME_T_FMT, apr_time_sec(next)));
    if (superseded) {
        dme_xml_attr(x, "superseded", "true");
    }
    body = dme_xml_finish(x, &len);
    ap_set_content_type(r, "application/xml; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(body, (int)len, r);
    return OK;
}

static int pc_exists(wait_t *w, const char *folder)
{
    apr_size_t klen, len;
    const char *key = dme_pc_key(&klen, w->r->user, folder, w->r->pool);
    const char *data;

    return dme_mc_blob_get(&data, &len, w->mc, "pc", key, klen, w->r->pool) ==
           APR_SUCCESS;
}

/* A build finished: the client syncs now and comes back; that is not an
 * early reconnect, so this long-poll leaves no record. */
static int woken(wait_t *w)
{
    apr_atomic_inc32(&dme_glue_counters()->wakeups);
    dme_mc_blob_delete(w->mc, "lp", w->lp_name, strlen(w->lp_name));
    return send_wait(w, 1, 0, w->hb);
}

int dme_wait_run(request_rec *r, const char *client, const char *folder)
{
    dme_srv_conf *sc =
        ap_get_module_config(r->server->module_config, &dme_module);
    apr_uint64_t gen0 = 0, gen = 0;
    const char *mine;
    wait_t w;

    memset(&w, 0, sizeof(w));
    w.r = r;
    w.mc = dme_glue_mc();
    w.start = apr_time_now();
    w.lp_name = apr_pstrcat(r->pool, "lp\n", client, "\n", folder, NULL);
    w.hb_name = apr_pstrcat(r->pool, "hb\n", client, NULL);
    w.gen = dme_gen_name(r->user, folder, r->pool);
    choose_heartbeat(&w, sc);
    dme_crypto_random_id(&w.token, 8, r->pool);
    mine = apr_psprintf(r->pool, "%s %" APR_TIME_T_FMT " %" APR_TIME_T_FMT,
                        w.token, apr_time_sec(w.start), apr_time_sec(w.hb));
    put_text(w.mc, w.lp_name, mine);
    dme_mc_get_u64(&gen0, w.mc, w.gen);
    if (pc_exists(&w, folder)) {
        return woken(&w);
    }
    while (apr_time_now() - w.start < w.hb && !r->connection->aborted) {
        const char *now;

        apr_sleep(WAIT_STEP);
        now = get_text(w.mc, w.lp_name, r->pool);
        if (now && strcmp(now, mine) != 0) {
            return send_wait(&w, 0, 1, w.hb); /* a newer one took over */
        }
        if (dme_mc_get_u64(&gen, w.mc, w.gen) == APR_SUCCESS && gen != gen0) {
            return woken(&w);
        }
    }
    /* Ended normally: the connection held for a whole heartbeat, so the
     * next may be longer. */
    w.hb = clamp(w.hb + w.hb / 2, sc);
    put_text(w.mc, w.hb_name,
             apr_psprintf(r->pool, "%" APR_TIME_T_FMT, apr_time_sec(w.hb)));
    dme_mc_blob_delete(w.mc, "lp", w.lp_name, strlen(w.lp_name));
    return send_wait(&w, 0, 0, w.hb);
}
