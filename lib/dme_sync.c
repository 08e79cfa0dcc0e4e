/* Delta between held and current notes, with paging. */
#include <string.h>

#include "dme_sync.h"

typedef struct {
    apr_array_header_t *del, *chg, *add; /* candidates, all of them */
} cands_t;

/* Walk both sorted sets once and sort every difference into a bucket. */
static void collect(cands_t *c, const dme_notes_t *held, const dme_notes_t *cur,
                    apr_pool_t *p)
{
    const dme_note_t *h = (const dme_note_t *)held->notes->elts;
    const dme_note_t *n = (const dme_note_t *)cur->notes->elts;
    int nh = held->notes->nelts, nc = cur->notes->nelts, i = 0, j = 0;

    c->del = apr_array_make(p, 16, sizeof(const dme_note_t *));
    c->chg = apr_array_make(p, 16, sizeof(const dme_note_t *));
    c->add = apr_array_make(p, 16, sizeof(const dme_note_t *));
    if (held->uidvalidity != cur->uidvalidity) {
        /* every held note is gone, every current one is new */
        for (; i < nh; i++) {
            APR_ARRAY_PUSH(c->del, const dme_note_t *) = &h[i];
        }
        for (; j < nc; j++) {
            APR_ARRAY_PUSH(c->add, const dme_note_t *) = &n[j];
        }
        return;
    }
    while (i < nh || j < nc) {
        if (j >= nc || (i < nh && h[i].uid < n[j].uid)) {
            APR_ARRAY_PUSH(c->del, const dme_note_t *) = &h[i++];
        } else if (i >= nh || n[j].uid < h[i].uid) {
            APR_ARRAY_PUSH(c->add, const dme_note_t *) = &n[j++];
        } else {
            if (strcmp(h[i].sum, n[j].sum) != 0) {
                APR_ARRAY_PUSH(c->chg, const dme_note_t *) = &n[j];
            }
            i++;
            j++;
        }
    }
}

/* Take up to *budget notes of a bucket (budget < 0: all); returns
 * whether some were left behind. */
static int take_notes(apr_array_header_t *out, apr_array_header_t *from,
                      int *budget, int newest_first)
{
    int i, n = from->nelts;

    for (i = 0; i < n; i++) {
        int k = newest_first ? n - 1 - i : i;

        if (*budget == 0) {
            return 1;
        }
        APR_ARRAY_PUSH(out, dme_note_t) =
            *APR_ARRAY_IDX(from, k, const dme_note_t *);
        if (*budget > 0) {
            (*budget)--;
        }
    }
    return 0;
}

static int take_uids(apr_array_header_t *out, apr_array_header_t *from,
                     int *budget)
{
    int i;

    for (i = 0; i < from->nelts; i++) {
        if (*budget == 0) {
            return 1;
        }
        APR_ARRAY_PUSH(out, apr_uint32_t) =
            APR_ARRAY_IDX(from, i, const dme_note_t *)->uid;
        if (*budget > 0) {
            (*budget)--;
        }
    }
    return 0;
}

/* What the client holds after this page: held minus sent deletes, with
 * sent changes applied, plus sent adds. Entries not yet sent stay as the
 * client has them, so the next page finds them again. Deletes and
 * changes were taken in ascending uid order, so one cursor each does. */
static dme_notes_t *next_set(const dme_notes_t *held, const dme_delta_t *d,
                             apr_uint32_t uidvalidity, apr_pool_t *p)
{
    int nalloc = held->notes->nelts + d->adds->nelts + 1;
    dme_notes_t *nx = dme_notes_make(uidvalidity, nalloc, p);
    int i, kd = 0, kc = 0;

    for (i = 0; held->uidvalidity == uidvalidity && i < held->notes->nelts;
         i++) {
        const dme_note_t *h = &APR_ARRAY_IDX(held->notes, i, dme_note_t);

        if (kd < d->deletes->nelts &&
            APR_ARRAY_IDX(d->deletes, kd, apr_uint32_t) == h->uid) {
            kd++;
            continue;
        }
        if (kc < d->changes->nelts &&
            APR_ARRAY_IDX(d->changes, kc, dme_note_t).uid == h->uid) {
            h = &APR_ARRAY_IDX(d->changes, kc++, dme_note_t);
        }
        APR_ARRAY_PUSH(nx->notes, dme_note_t) = *h;
    }
    for (i = 0; i < d->adds->nelts; i++) {
        APR_ARRAY_PUSH(nx->notes, dme_note_t) =
            APR_ARRAY_IDX(d->adds, i, dme_note_t);
    }
    dme_notes_sort(nx);
    return nx;
}

apr_status_t dme_sync_delta(dme_delta_t **d, const dme_notes_t *held,
                            const dme_notes_t *cur, int page_size,
                            apr_pool_t *p)
{
    dme_delta_t *out = apr_pcalloc(p, sizeof(*out));
    int budget = page_size > 0 ? page_size : -1;
    int unlimited = -1;
    cands_t c;

    collect(&c, held, cur, p);
    out->deletes_uidvalidity = held->uidvalidity;
    out->deletes = apr_array_make(p, c.del->nelts + 1, sizeof(apr_uint32_t));
    out->changes = apr_array_make(p, c.chg->nelts + 1, sizeof(dme_note_t));
    out->adds = apr_array_make(p, c.add->nelts + 1, sizeof(dme_note_t));
    if (held->uidvalidity != cur->uidvalidity) {
        /* The old references cannot be carried over to a page under the
         * new UIDVALIDITY, so all of them go in the first page. */
        take_uids(out->deletes, c.del, &unlimited);
        if (budget > 0) {
            budget = budget > c.del->nelts ? budget - c.del->nelts : 0;
        }
    } else {
        out->more = take_uids(out->deletes, c.del, &budget);
    }
    out->more |= take_notes(out->changes, c.chg, &budget, 0);
    out->more |= take_notes(out->adds, c.add, &budget, 1);
    out->next = next_set(held, out, cur->uidvalidity, p);
    *d = out;
    return APR_SUCCESS;
}

int dme_delta_is_empty(const dme_delta_t *d)
{
    return d->deletes->nelts == 0 && d->changes->nelts == 0 &&
           d->adds->nelts == 0;
}
