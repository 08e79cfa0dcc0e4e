/* libFuzzer target for the IMAP response parser. The input stands for what
 * a hostile server sends. Beyond crashes and sanitizer reports it aborts
 * when framing depends on how the bytes were split, when framing and
 * parsing disagree on where the tagged line is, or when a UID set does not
 * stand for the UIDs it was made from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "dme_imap_parse.h"

static apr_pool_t *root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&root, NULL);
    return 0;
}

/* Framing on growing exact-size copies, so a read past len is caught. */
static apr_status_t find_split(apr_size_t *end, const uint8_t *d, size_t n,
                               size_t step)
{
    apr_status_t rv = APR_INCOMPLETE;
    dme_imap_scan_t sc;
    size_t fed = 0;
    char *copy;

    dme_imap_scan_init(&sc);
    while (rv == APR_INCOMPLETE && fed < n) {
        fed = fed + step < n ? fed + step : n;
        copy = malloc(fed);
        memcpy(copy, d, fed);
        rv = dme_imap_find_tagged(end, &sc, copy, fed, "A1");
        free(copy);
    }
    return rv;
}

static void check_framing(const uint8_t *d, size_t n, apr_pool_t *p)
{
    apr_size_t end = 0, end2 = 0;
    apr_status_t rv, rv2;
    apr_array_header_t *a;
    int i;

    rv = dme_imap_find_tagged(&end, NULL, (const char *)d, n, "A1");
    rv2 = find_split(&end2, d, n, n ? 1 + d[0] % 37 : 1);
    if (n && (rv != rv2 || (rv == APR_SUCCESS && end != end2))) {
        abort();
    }
    if (rv != APR_SUCCESS ||
        dme_imap_parse_responses(&a, (const char *)d, end, p) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < a->nelts; i++) {
        const char *tag = APR_ARRAY_IDX(a, i, dme_imap_resp_t *)->tag;

        if ((strcmp(tag, "A1") == 0) != (i == a->nelts - 1)) {
            abort();
        }
    }
}

/* Every string the parser hands out goes through the string helpers. */
static void walk(const dme_imap_val_t *v, apr_pool_t *p)
{
    apr_time_t t;
    int i;

    if (v->kind == DME_IMAP_LIST) {
        for (i = 0; i < v->items->nelts; i++) {
            walk(APR_ARRAY_IDX(v->items, i, dme_imap_val_t *), p);
        }
        return;
    }
    if (v->str[v->len] != '\0') {
        abort();
    }
    dme_imap_date_parse(&t, v->str);
    dme_imap_quote(v->str, p);
}

static void check_parse(const uint8_t *d, size_t n, apr_pool_t *p)
{
    apr_uint32_t m, un, uv;
    apr_uint64_t hm;
    apr_array_header_t *a, *u;
    dme_imap_fetch_t *f;
    dme_imap_resp_t *r;
    int i, j;

    if (dme_imap_parse_responses(&a, (const char *)d, n, p) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < a->nelts; i++) {
        r = APR_ARRAY_IDX(a, i, dme_imap_resp_t *);
        if (!r->tag || !r->text != !!r->name || !r->items) {
            abort();
        }
        dme_imap_fetch_get(&f, r, p);
        dme_imap_search_get(&u, r, p);
        dme_imap_status_get(&m, &un, &uv, &hm, r);
        for (j = 0; j < r->items->nelts; j++) {
            walk(APR_ARRAY_IDX(r->items, j, dme_imap_val_t *), p);
        }
    }
}

/* Does set ("1:3,7") hold exactly the distinct values of uids[0..n)? */
static int set_matches(const char *set, const apr_uint32_t *uids, int n)
{
    apr_uint64_t lo, hi, want;
    char *e;
    int i = 0;

    for (;;) {
        lo = hi = strtoull(set, &e, 10);
        if (*e == ':') {
            hi = strtoull(e + 1, &e, 10);
        }
        for (want = lo; want <= hi; want++) {
            while (i + 1 < n && uids[i + 1] == uids[i]) {
                i++;
            }
            if (i >= n || uids[i++] != want) {
                return 0;
            }
        }
        if (*e != ',') {
            return *e == '\0' && i == n;
        }
        set = e + 1;
    }
}

static void check_uid_set(const uint8_t *d, size_t n, apr_pool_t *p)
{
    apr_uint32_t uids[64];
    const char *set;
    int k = 0;

    /* the bytes are gaps; a high start reaches the 32-bit end */
    for (; k < 64 && (size_t)k < n; k++) {
        uids[k] = (k ? uids[k - 1] : 4294967195u * (d[0] & 1)) + d[k] % 4;
    }
    if (dme_imap_uid_set(&set, uids, k, p) == APR_SUCCESS &&
        !set_matches(set, uids, k)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    apr_pool_t *p;
    char date[32];
    apr_time_t t;

    apr_pool_create(&p, root);
    check_framing(d, n, p);
    check_parse(d, n, p);
    check_uid_set(d, n, p);
    memcpy(date, d, n < 31 ? n : 31);
    date[n < 31 ? n : 31] = '\0';
    dme_imap_date_parse(&t, date);
    apr_pool_destroy(p);
    return 0;
}
