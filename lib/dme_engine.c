/* One folder sync straight from the mail system. */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "dme_engine.h"

/* Find the fetched head for a uid; fetches is small (one page). */
static const dme_imap_fetch_t *find_fetch(const apr_array_header_t *fetches,
                                          apr_uint32_t uid)
{
    int i;

    for (i = 0; i < fetches->nelts; i++) {
        const dme_imap_fetch_t *f =
            APR_ARRAY_IDX(fetches, i, const dme_imap_fetch_t *);

        if (f->uid == uid) {
            return f;
        }
    }
    return NULL;
}

/* Signed parts nested in other parts show only as "pkcs7" somewhere in
 * the head (a content type or a file name), in any case. */
static int mentions_pkcs7(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i + 5 <= len; i++) {
        if (apr_tolower(s[i]) == 'p' && !strncasecmp(s + i, "pkcs7", 5)) {
            return 1;
        }
    }
    return 0;
}

/* Drop one uid from the set the client will hold. */
static void forget(dme_notes_t *ns, apr_uint32_t uid)
{
    dme_note_t *v = (dme_note_t *)ns->notes->elts;
    int i;

    for (i = 0; i < ns->notes->nelts; i++) {
        if (v[i].uid == uid) {
            memmove(&v[i], &v[i + 1],
                    sizeof(*v) * (size_t)(ns->notes->nelts - i - 1));
            ns->notes->nelts--;
            return;
        }
    }
}

static apr_status_t summarize_adds(dme_sync_result_t *res, dme_imap_t *s,
                                   const dme_sync_req_t *rq, apr_pool_t *p)
{
    const apr_array_header_t *adds = res->delta->adds;
    apr_uint32_t *uids = apr_pcalloc(p, sizeof(*uids) * (adds->nelts + 1));
    apr_array_header_t *fetches;
    apr_status_t rv;
    int i;

    for (i = 0; i < adds->nelts; i++) {
        uids[i] = APR_ARRAY_IDX(adds, i, dme_note_t).uid;
    }
    rv =
        dme_imap_fetch_heads(&fetches, s, uids, adds->nelts, rq->head_bytes, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    res->adds = apr_array_make(p, adds->nelts + 1, sizeof(dme_sync_add_t));
    for (i = 0; i < adds->nelts; i++) {
        const dme_note_t *n = &APR_ARRAY_IDX(adds, i, dme_note_t);
        const dme_imap_fetch_t *f = find_fetch(fetches, n->uid);
        dme_mime_summary_t *sum = NULL;
        dme_sync_add_t *a;

        if (!f || !f->has_body) {
            forget(res->delta->next, n->uid); /* expunged meanwhile */
            continue;
        }
        if (dme_mime_summarize(&sum, f->body, f->body_len, rq->preview_chars,
                               p) != APR_SUCCESS) {
            sum = apr_pcalloc(p, sizeof(*sum));
            sum->from = sum->to = sum->subject = sum->preview = "";
            sum->message_id = "";
            sum->smime = "none";
        }
        a = apr_array_push(res->adds);
        a->note = n;
        a->maybe_signed = strcmp(sum->smime, "signed") == 0 ||
                          mentions_pkcs7(f->body, f->body_len);
        if (!n->flags || !n->size) {
            /* a pre-cache note: take flags and size from this fetch */
            dme_note_t *full = apr_pmemdup(p, n, sizeof(*n));

            full->flags = dme_note_flags_join(f->flags, p);
            full->size = f->has_size ? f->size : n->size;
            full->date = f->has_date ? f->internaldate : n->date;
            a->note = full;
        }
        a->summary = sum;
    }
    return APR_SUCCESS;
}

/* Notes from a pre-cache carry no flags: fetch them for the changes. */
static apr_status_t flag_changes(dme_delta_t *d, dme_imap_t *s, apr_pool_t *p)
{
    apr_uint32_t *uids =
        apr_pcalloc(p, sizeof(*uids) * (d->changes->nelts + 1));
    apr_hash_t *flags;
    apr_status_t rv;
    int i, n = 0;

    for (i = 0; i < d->changes->nelts; i++) {
        dme_note_t *c = &APR_ARRAY_IDX(d->changes, i, dme_note_t);

        if (!c->flags) {
            uids[n++] = c->uid;
        }
    }
    if (n == 0) {
        return APR_SUCCESS;
    }
    rv = dme_imap_fetch_flags(&flags, s, uids, n, p);
    for (i = 0; rv == APR_SUCCESS && i < d->changes->nelts; i++) {
        dme_note_t *c = &APR_ARRAY_IDX(d->changes, i, dme_note_t);
        const char *f = apr_hash_get(flags, &c->uid, sizeof(c->uid));

        if (!c->flags) {
            c->flags = f ? f : "";
        }
    }
    return rv;
}

apr_status_t dme_sync_run_with(dme_sync_result_t **res, dme_imap_t *s,
                               const dme_sync_req_t *rq, dme_notes_t *cur,
                               const char *source, apr_pool_t *p)
{
    dme_sync_result_t *out = apr_pcalloc(p, sizeof(*out));
    apr_status_t rv;

    *res = NULL;
    out->uidvalidity = cur->uidvalidity;
    out->source = source;
    rv = dme_sync_delta(&out->delta, rq->held, cur, rq->page_size, p);
    if (rv == APR_SUCCESS) {
        rv = flag_changes(out->delta, s, p);
    }
    if (rv == APR_SUCCESS) {
        rv = summarize_adds(out, s, rq, p);
    }
    if (rv == APR_SUCCESS) {
        *res = out;
    }
    return rv;
}

apr_status_t dme_sync_run(dme_sync_result_t **res, dme_imap_t *s,
                          const dme_sync_req_t *rq, apr_pool_t *p)
{
    dme_notes_t *cur;
    apr_status_t rv;

    *res = NULL;
    rv = dme_imap_list_notes(&cur, s, rq->folder, rq->since, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return dme_sync_run_with(res, s, rq, cur, "mail-system", p);
}

dme_sync_result_t *dme_sync_unchanged(const dme_notes_t *held, apr_pool_t *p)
{
    dme_sync_result_t *out = apr_pcalloc(p, sizeof(*out));

    out->uidvalidity = held->uidvalidity;
    out->source = "status";
    dme_sync_delta(&out->delta, held, held, 0, p);
    out->adds = apr_array_make(p, 1, sizeof(dme_sync_add_t));
    return out;
}
