/* The core's one home of libmemcached: hashed keys, chunked blobs with a
 * verified head, locks and counters, over a pool of handles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <libmemcached/memcached.h>
#include <libmemcached/util.h>

#include "dme_crypto.h"
#include "dme_mc.h"

#define HEX_LEN       64 /* SHA-256 in hex */
#define GEN_BYTES     8
#define GEN_LEN       (2 * GEN_BYTES)
#define HEAD_KEY_MAX  (4 + DME_MC_KIND_MAX + 1 + HEX_LEN + 1)
#define CHUNK_KEY_MAX (HEAD_KEY_MAX + 1 + GEN_LEN + 1 + 11)
#define READ_TRIES    3
#define MAX_HANDLES   4096

/* The head item, fixed width so that parsing is a matter of positions:
 * "DMEB1 " length(20 digits) " " chunks(5 digits) " " generation(16 hex)
 * " " SHA-256 of the whole value(64 hex). */
#define HEAD_MAGIC  "DMEB1 "
#define HEAD_LEN    (6 + 20 + 1 + 5 + 1 + GEN_LEN + 1 + HEX_LEN)
#define HEAD_AT_N   27
#define HEAD_AT_GEN 33
#define HEAD_AT_SUM 50
#define HEAD_PRINTF HEAD_MAGIC "%020" APR_UINT64_T_FMT " %05d %s %s"

/* memcached reads an expiry beyond 30 days as a Unix time, and one in
 * the past as "already expired": the way to retire an item under CAS. */
#define EXPIRED ((time_t)DME_MC_EXPIRY_MAX + 1)

struct dme_mc_t {
    memcached_st *master;
    memcached_pool_st *pool;
    struct timespec wait; /* for a free handle */
};

/* A server key; blobs route all their items by their head key. */
typedef struct {
    char s[HEAD_KEY_MAX];
    size_t len;
} skey_t;

typedef struct {
    apr_size_t len;
    int nchunks;
    char gen[GEN_LEN + 1];
    char sum[HEX_LEN + 1];
} head_t;

static apr_status_t status(memcached_return_t rc)
{
    switch (rc) {
        case MEMCACHED_SUCCESS:
        case MEMCACHED_STORED:
        case MEMCACHED_DELETED:
        case MEMCACHED_END:
            return APR_SUCCESS;
        case MEMCACHED_NOTFOUND:
            return APR_NOTFOUND;
        case MEMCACHED_NOTSTORED:
        case MEMCACHED_DATA_EXISTS:
            return APR_EEXIST;
        case MEMCACHED_E2BIG:
            return DME_ETOOBIG;
        case MEMCACHED_MEMORY_ALLOCATION_FAILURE:
            return APR_ENOMEM;
        default:
            return DME_EDOWN;
    }
}

/* ---- keys ---- */

static int valid_kind(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;

    return n >= 1 && n <= DME_MC_KIND_MAX &&
           strspn(kind, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int blob_kind(const char *kind)
{
    return valid_kind(kind) && strcmp(kind, "lock") && strcmp(kind, "ctr");
}

static apr_status_t make_key(skey_t *k, const char *kind, const void *key,
                             apr_size_t klen)
{
    char hex[HEX_LEN + 1];
    apr_status_t rv = dme_crypto_sha256_hex(hex, key, klen);

    if (rv == APR_SUCCESS) {
        k->len = (size_t)snprintf(k->s, sizeof(k->s), "dme:%s:%s", kind, hex);
    }
    return rv;
}

static size_t chunk_key(char out[CHUNK_KEY_MAX], const skey_t *k,
                        const char *gen, int i)
{
    return (size_t)snprintf(out, CHUNK_KEY_MAX, "%s:%s:%d", k->s, gen, i);
}

/* ---- handles ---- */

/* libmemcachedutil counts the wait from the start of the current second,
 * so it can be shorter than mc->wait, never longer. */
static apr_status_t take(memcached_st **h, dme_mc_t *mc)
{
    struct timespec wait = mc->wait;
    memcached_return_t rc = MEMCACHED_SUCCESS;

    *h = memcached_pool_fetch(mc->pool, &wait, &rc);
    if (*h) {
        return APR_SUCCESS;
    }
    if (rc == MEMCACHED_TIMEOUT || rc == MEMCACHED_NOTFOUND) {
        return APR_EAGAIN;
    }
    return rc == MEMCACHED_SUCCESS ? APR_ENOMEM : APR_EGENERAL;
}

static void give(dme_mc_t *mc, memcached_st *h)
{
    memcached_pool_release(mc->pool, h);
}

/* ---- items ---- */

/* *val is malloc'ed by libmemcached (NULL for an empty value): free() it. */
static apr_status_t get_item(char **val, size_t *vlen, memcached_st *h,
                             const skey_t *group, const char *key, size_t klen)
{
    memcached_return_t rc = MEMCACHED_SUCCESS;
    uint32_t flags = 0;

    *vlen = 0;
    *val = memcached_get_by_key(h, group->s, group->len, key, klen, vlen,
                                &flags, &rc);
    if (rc != MEMCACHED_SUCCESS) {
        free(*val);
        *val = NULL;
        *vlen = 0;
    }
    return status(rc);
}

static apr_status_t del_item(memcached_st *h, const skey_t *group,
                             const char *key, size_t klen)
{
    return status(
        memcached_delete_by_key(h, group->s, group->len, key, klen, 0));
}

/* ---- the head ---- */

static int all_in(const char *s, size_t n, const char *set)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!s[i] || !strchr(set, s[i])) {
            return 0;
        }
    }
    return 1;
}

static int chunks_for(apr_size_t len)
{
    return (int)((len + DME_MC_CHUNK - 1) / DME_MC_CHUNK);
}

/* 0 when v is a head this version wrote and its numbers agree. */
static int parse_head(head_t *hd, const char *v, size_t vlen)
{
    static const char hex[] = "0123456789abcdef";
    apr_uint64_t len = 0;
    int i, n = 0;

    if (vlen != HEAD_LEN || memcmp(v, HEAD_MAGIC, 6) != 0 ||
        !all_in(v + 6, 20, "0123456789") || v[26] != ' ' ||
        !all_in(v + HEAD_AT_N, 5, "0123456789") || v[32] != ' ' ||
        !all_in(v + HEAD_AT_GEN, GEN_LEN, hex) || v[49] != ' ' ||
        !all_in(v + HEAD_AT_SUM, HEX_LEN, hex)) {
        return -1;
    }
    for (i = 6; i < 26; i++) {
        if (len > (APR_UINT64_MAX - 9) / 10) {
            return -1;
        }
        len = len * 10 + (apr_uint64_t)(v[i] - '0');
    }
    for (i = HEAD_AT_N; i < HEAD_AT_N + 5; i++) {
        n = n * 10 + (v[i] - '0');
    }
    if (len > DME_MC_BLOB_MAX || n != chunks_for((apr_size_t)len)) {
        return -1;
    }
    hd->len = (apr_size_t)len;
    hd->nchunks = n;
    memcpy(hd->gen, v + HEAD_AT_GEN, GEN_LEN);
    hd->gen[GEN_LEN] = '\0';
    memcpy(hd->sum, v + HEAD_AT_SUM, HEX_LEN);
    hd->sum[HEX_LEN] = '\0';
    return 0;
}

/* APR_NOTFOUND also for a head in a format this version does not know. */
static apr_status_t read_head(head_t *hd, memcached_st *h, const skey_t *k)
{
    char *val;
    size_t vlen;
    apr_status_t rv = get_item(&val, &vlen, h, k, k->s, k->len);

    if (rv == APR_SUCCESS && (!val || parse_head(hd, val, vlen) != 0)) {
        rv = APR_NOTFOUND;
    }
    free(val);
    return rv;
}

static apr_status_t new_head(head_t *hd, const void *data, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[GEN_BYTES];
    apr_status_t rv;
    int i;

    if ((rv = dme_crypto_random(raw, sizeof(raw))) != APR_SUCCESS ||
        (rv = dme_crypto_sha256_hex(hd->sum, data, len)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < GEN_BYTES; i++) {
        hd->gen[2 * i] = hex[raw[i] >> 4];
        hd->gen[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    hd->gen[GEN_LEN] = '\0';
    hd->len = len;
    hd->nchunks = chunks_for(len);
    return APR_SUCCESS;
}

static apr_status_t write_head(memcached_st *h, const skey_t *k,
                               const head_t *hd, apr_uint32_t expiry)
{
    char v[HEAD_LEN + 1];

    snprintf(v, sizeof(v), HEAD_PRINTF, (apr_uint64_t)hd->len, hd->nchunks,
             hd->gen, hd->sum);
    return status(memcached_set_by_key(h, k->s, k->len, k->s, k->len, v,
                                       HEAD_LEN, (time_t)expiry, 0));
}

/* ---- writing ---- */

static apr_status_t write_chunks(memcached_st *h, const skey_t *k,
                                 const head_t *hd, const char *data,
                                 apr_uint32_t expiry)
{
    char ck[CHUNK_KEY_MAX];
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < hd->nchunks && rv == APR_SUCCESS; i++) {
        apr_size_t off = (apr_size_t)i * DME_MC_CHUNK;
        apr_size_t n =
            hd->len - off < DME_MC_CHUNK ? hd->len - off : DME_MC_CHUNK;
        size_t cklen = chunk_key(ck, k, hd->gen, i);

        rv = status(memcached_set_by_key(h, k->s, k->len, ck, cklen, data + off,
                                         n, (time_t)expiry, 0));
    }
    return rv;
}

/* Best effort: what is left expires or is evicted. A server that stopped
 * answering is not asked again for each chunk. */
static void drop_chunks(memcached_st *h, const skey_t *k, const head_t *hd)
{
    char ck[CHUNK_KEY_MAX];
    int i;

    for (i = 0; i < hd->nchunks; i++) {
        size_t cklen = chunk_key(ck, k, hd->gen, i);

        if (del_item(h, k, ck, cklen) == DME_EDOWN) {
            return;
        }
    }
}

static apr_status_t blob_write(memcached_st *h, const skey_t *k,
                               const char *data, apr_size_t len,
                               apr_uint32_t expiry)
{
    head_t old, hd;
    apr_status_t rv = read_head(&old, h, k);
    int had_old = (rv == APR_SUCCESS);

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    if ((rv = new_head(&hd, data, len)) != APR_SUCCESS) {
        return rv;
    }
    rv = write_chunks(h, k, &hd, data, expiry);
    if (rv == APR_SUCCESS) {
        rv = write_head(h, k, &hd, expiry);
    }
    if (rv != APR_SUCCESS) {
        if (rv != DME_EDOWN) {
            drop_chunks(h, k, &hd);
        }
        return rv;
    }
    /* Readers that still hold the old head look it up again. */
    if (had_old && strcmp(old.gen, hd.gen) != 0) {
        drop_chunks(h, k, &old);
    }
    return APR_SUCCESS;
}

apr_status_t dme_mc_blob_set(dme_mc_t *mc, const char *kind, const void *key,
                             apr_size_t klen, const void *data, apr_size_t len,
                             apr_uint32_t expiry_sec)
{
    memcached_st *h;
    skey_t k;
    apr_status_t rv;

    if (!blob_kind(kind) || expiry_sec > DME_MC_EXPIRY_MAX ||
        (!data && len > 0)) {
        return APR_EINVAL;
    }
    if (len > DME_MC_BLOB_MAX) {
        return DME_ETOOBIG;
    }
    if ((rv = make_key(&k, kind, key, klen)) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = blob_write(h, &k, data ? data : "", len, expiry_sec);
    give(mc, h);
    return rv;
}

/* ---- reading ---- */

/* The index of the chunk that key names, or -1 if it names none of this
 * head's: mget answers only for the keys asked, but check, not trust. */
static int chunk_index(const skey_t *k, const head_t *hd, const char *key,
                       size_t klen)
{
    size_t pre = k->len + 1 + GEN_LEN + 1, j;
    char ck[CHUNK_KEY_MAX];
    int i = 0;

    if (klen <= pre || klen > pre + 5 ||
        !all_in(key + pre, klen - pre, "0123456789")) {
        return -1;
    }
    for (j = pre; j < klen; j++) {
        i = i * 10 + (key[j] - '0');
    }
    if (i >= hd->nchunks || chunk_key(ck, k, hd->gen, i) != klen ||
        memcmp(ck, key, klen) != 0) {
        return -1;
    }
    return i;
}

/* Copies one fetched chunk into place. APR_NOTFOUND for a chunk of the
 * wrong size, a stranger, or one seen twice. */
static apr_status_t place(char *buf, char *seen, const skey_t *k,
                          const head_t *hd, memcached_result_st *r)
{
    int i = chunk_index(k, hd, memcached_result_key_value(r),
                        memcached_result_key_length(r));
    apr_size_t off, want;

    if (i < 0 || seen[i]) {
        return APR_NOTFOUND;
    }
    off = (apr_size_t)i * DME_MC_CHUNK;
    want = hd->len - off < DME_MC_CHUNK ? hd->len - off : DME_MC_CHUNK;
    if (memcached_result_length(r) != want) {
        return APR_NOTFOUND;
    }
    memcpy(buf + off, memcached_result_value(r), want);
    seen[i] = 1;
    return APR_SUCCESS;
}

/* Drains every answer of the mget, so the connection stays in step. */
static apr_status_t fetch_chunks(char *buf, char *seen, memcached_st *h,
                                 const skey_t *k, const head_t *hd,
                                 memcached_result_st *r)
{
    memcached_return_t rc = MEMCACHED_SUCCESS;
    apr_status_t rv = APR_SUCCESS;

    while (memcached_fetch_result(h, r, &rc) != NULL) {
        if (rv == APR_SUCCESS) {
            rv = place(buf, seen, k, hd, r);
        }
    }
    if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND &&
        rc != MEMCACHED_SUCCESS) {
        return status(rc);
    }
    return rv;
}

static apr_status_t mget_chunks(char *buf, memcached_st *h, const skey_t *k,
                                const head_t *hd, apr_pool_t *p)
{
    int i, n = hd->nchunks;
    const char **keys = apr_palloc(p, n * sizeof(*keys));
    size_t *lens = apr_palloc(p, n * sizeof(*lens));
    char *seen = apr_pcalloc(p, n);
    memcached_result_st rs, *r;
    apr_status_t rv;

    for (i = 0; i < n; i++) {
        char *ck = apr_palloc(p, CHUNK_KEY_MAX);

        lens[i] = chunk_key(ck, k, hd->gen, i);
        keys[i] = ck;
    }
    /* A caller-owned result: libmemcached frees results it allocated
     * itself when a fetch loop ends, which would make our free a double
     * one. */
    if (!(r = memcached_result_create(h, &rs))) {
        return APR_ENOMEM;
    }
    rv = status(memcached_mget_by_key(h, k->s, k->len, keys, lens, n));
    if (rv == APR_SUCCESS) {
        rv = fetch_chunks(buf, seen, h, k, hd, r);
    }
    memcached_result_free(r);
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        if (!seen[i]) {
            rv = APR_NOTFOUND;
        }
    }
    return rv;
}

static apr_status_t read_chunks(const char **data, memcached_st *h,
                                const skey_t *k, const head_t *hd,
                                apr_pool_t *p)
{
    char *buf = apr_palloc(p, hd->len + 1);
    char sum[HEX_LEN + 1];
    apr_status_t rv = APR_SUCCESS;

    if (hd->nchunks > 0) {
        rv = mget_chunks(buf, h, k, hd, p);
    }
    if (rv == APR_SUCCESS) {
        rv = dme_crypto_sha256_hex(sum, buf, hd->len);
    }
    if (rv == APR_SUCCESS && strcmp(sum, hd->sum) != 0) {
        rv = APR_NOTFOUND;
    }
    if (rv == APR_SUCCESS) {
        buf[hd->len] = '\0';
        *data = buf;
    }
    return rv;
}

static apr_status_t blob_read(const char **data, apr_size_t *len,
                              memcached_st *h, const skey_t *k, apr_pool_t *p)
{
    char tried[GEN_LEN + 1] = "";
    apr_status_t rv = APR_NOTFOUND;
    head_t hd;
    int i;

    for (i = 0; i < READ_TRIES && rv == APR_NOTFOUND; i++) {
        if ((rv = read_head(&hd, h, k)) != APR_SUCCESS) {
            return rv;
        }
        /* Only a new generation is worth another try. */
        if (strcmp(hd.gen, tried) == 0) {
            return APR_NOTFOUND;
        }
        rv = read_chunks(data, h, k, &hd, p);
        memcpy(tried, hd.gen, sizeof(tried));
    }
    if (rv == APR_SUCCESS) {
        *len = hd.len;
    }
    return rv;
}

apr_status_t dme_mc_blob_get(const char **data, apr_size_t *len, dme_mc_t *mc,
                             const char *kind, const void *key, apr_size_t klen,
                             apr_pool_t *p)
{
    memcached_st *h;
    skey_t k;
    apr_status_t rv;

    *data = NULL;
    *len = 0;
    if (!blob_kind(kind)) {
        return APR_EINVAL;
    }
    if ((rv = make_key(&k, kind, key, klen)) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = blob_read(data, len, h, &k, p);
    give(mc, h);
    if (rv != APR_SUCCESS) {
        *data = NULL;
        *len = 0;
    }
    return rv;
}

static apr_status_t blob_remove(memcached_st *h, const skey_t *k)
{
    head_t hd;
    apr_status_t rv = read_head(&hd, h, k);
    int had = (rv == APR_SUCCESS);

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    rv = del_item(h, k, k->s, k->len);
    if (rv == APR_NOTFOUND) {
        rv = APR_SUCCESS;
    }
    if (rv == APR_SUCCESS && had) {
        drop_chunks(h, k, &hd);
    }
    return rv;
}

apr_status_t dme_mc_blob_delete(dme_mc_t *mc, const char *kind, const void *key,
                                apr_size_t klen)
{
    memcached_st *h;
    skey_t k;
    apr_status_t rv;

    if (!blob_kind(kind)) {
        return APR_EINVAL;
    }
    if ((rv = make_key(&k, kind, key, klen)) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = blob_remove(h, &k);
    give(mc, h);
    return rv;
}

apr_status_t dme_mc_blob_info(dme_mc_blob_info_t *info, dme_mc_t *mc,
                              const char *kind, const void *key,
                              apr_size_t klen, apr_pool_t *p)
{
    memcached_st *h;
    skey_t k;
    head_t hd;
    apr_status_t rv;
    int i;

    memset(info, 0, sizeof(*info));
    if (!blob_kind(kind)) {
        return APR_EINVAL;
    }
    if ((rv = make_key(&k, kind, key, klen)) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = read_head(&hd, h, &k);
    give(mc, h);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    info->len = hd.len;
    info->nchunks = hd.nchunks;
    info->head_key = apr_pstrmemdup(p, k.s, k.len);
    info->chunk_keys = apr_pcalloc(p, (hd.nchunks + 1) * sizeof(char *));
    for (i = 0; i < hd.nchunks; i++) {
        char *ck = apr_palloc(p, CHUNK_KEY_MAX);

        chunk_key(ck, &k, hd.gen, i);
        info->chunk_keys[i] = ck;
    }
    return APR_SUCCESS;
}

/* ---- locks ---- */

apr_status_t dme_mc_lock(const char **token, dme_mc_t *mc, const char *name,
                         apr_uint32_t ttl_sec, apr_pool_t *p)
{
    memcached_st *h;
    const char *tok;
    skey_t k;
    apr_status_t rv;

    *token = NULL;
    if (ttl_sec == 0 || ttl_sec > DME_MC_EXPIRY_MAX) {
        return APR_EINVAL;
    }
    if ((rv = make_key(&k, "lock", name, strlen(name))) != APR_SUCCESS ||
        (rv = dme_crypto_random_id(&tok, 16, p)) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = status(
        memcached_add(h, k.s, k.len, tok, strlen(tok), (time_t)ttl_sec, 0));
    give(mc, h);
    if (rv == APR_SUCCESS) {
        *token = tok;
    }
    return rv;
}

/* One item with its CAS value, copied into p. */
static apr_status_t get_cas(const char **val, size_t *vlen, uint64_t *cas,
                            memcached_st *h, const skey_t *k, apr_pool_t *p)
{
    const char *keys[1] = {k->s};
    size_t lens[1] = {k->len};
    memcached_return_t rc = MEMCACHED_SUCCESS;
    memcached_result_st rs, *r = memcached_result_create(h, &rs);
    apr_status_t rv;

    *val = NULL;
    if (!r) {
        return APR_ENOMEM;
    }
    rv = status(memcached_mget(h, keys, lens, 1));
    while (rv == APR_SUCCESS && memcached_fetch_result(h, r, &rc) != NULL) {
        if (!*val) {
            *vlen = memcached_result_length(r);
            *val = apr_pstrmemdup(p, memcached_result_value(r), *vlen);
            *cas = memcached_result_cas(r);
        }
    }
    memcached_result_free(r);
    if (rv == APR_SUCCESS && rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND &&
        rc != MEMCACHED_SUCCESS) {
        rv = status(rc);
    }
    return rv == APR_SUCCESS && !*val ? APR_NOTFOUND : rv;
}

static apr_status_t release(memcached_st *h, const skey_t *k, const char *token,
                            apr_pool_t *p)
{
    const char *val;
    size_t vlen = 0;
    uint64_t cas = 0;
    apr_status_t rv = get_cas(&val, &vlen, &cas, h, k, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (vlen != strlen(token) || memcmp(val, token, vlen) != 0) {
        return APR_EEXIST;
    }
    /* Fails with "exists" if the item changed since it was read. */
    return status(memcached_cas(h, k->s, k->len, "", 0, EXPIRED, 0, cas));
}

apr_status_t dme_mc_unlock(dme_mc_t *mc, const char *name, const char *token,
                           apr_pool_t *p)
{
    memcached_st *h;
    skey_t k;
    apr_status_t rv;

    if ((rv = make_key(&k, "lock", name, strlen(name))) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = release(h, &k, token, p);
    give(mc, h);
    return rv;
}

/* ---- counters ---- */

/* memcached may leave spaces after a number it rewrote in place. */
static apr_status_t parse_u64(apr_uint64_t *value, const char *v, size_t n)
{
    apr_uint64_t x = 0;
    size_t i = 0;

    while (i < n && v[i] >= '0' && v[i] <= '9') {
        if (x > (APR_UINT64_MAX - (apr_uint64_t)(v[i] - '0')) / 10) {
            return DME_EPROTO;
        }
        x = x * 10 + (apr_uint64_t)(v[i++] - '0');
    }
    if (i == 0) {
        return DME_EPROTO;
    }
    while (i < n && v[i] == ' ') {
        i++;
    }
    if (i != n) {
        return DME_EPROTO;
    }
    *value = x;
    return APR_SUCCESS;
}

/* Over the binary protocol, memcached's "not a number" comes back as a
 * read failure: look at the item before calling the server down. */
static apr_status_t not_a_number(memcached_st *h, const skey_t *k)
{
    char *val = NULL;
    size_t vlen = 0;
    apr_uint64_t x;
    apr_status_t rv = get_item(&val, &vlen, h, k, k->s, k->len);

    if (rv == APR_SUCCESS) {
        rv = val && parse_u64(&x, val, vlen) == APR_SUCCESS ? DME_EDOWN
                                                            : DME_EPROTO;
    }
    free(val);
    return rv;
}

static apr_status_t bump(apr_uint64_t *value, memcached_st *h, const skey_t *k,
                         apr_uint32_t expiry)
{
    uint64_t n = 0;
    memcached_return_t rc = memcached_increment(h, k->s, k->len, 1, &n);

    if (rc == MEMCACHED_NOTFOUND) {
        rc = memcached_add(h, k->s, k->len, "1", 1, (time_t)expiry, 0);
        n = 1;
        /* Someone created it first: count on theirs. */
        if (rc == MEMCACHED_NOTSTORED || rc == MEMCACHED_DATA_EXISTS) {
            rc = memcached_increment(h, k->s, k->len, 1, &n);
        }
    }
    if (rc == MEMCACHED_CLIENT_ERROR || rc == MEMCACHED_UNKNOWN_READ_FAILURE) {
        return not_a_number(h, k);
    }
    if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_STORED) {
        *value = n;
    }
    return status(rc);
}

apr_status_t dme_mc_incr(apr_uint64_t *value, dme_mc_t *mc, const char *name,
                         apr_uint32_t expiry_sec)
{
    memcached_st *h;
    skey_t k;
    apr_status_t rv;

    if (expiry_sec > DME_MC_EXPIRY_MAX) {
        return APR_EINVAL;
    }
    if ((rv = make_key(&k, "ctr", name, strlen(name))) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = bump(value, h, &k, expiry_sec);
    give(mc, h);
    return rv;
}

apr_status_t dme_mc_get_u64(apr_uint64_t *value, dme_mc_t *mc, const char *name)
{
    memcached_st *h;
    char *val = NULL;
    size_t vlen = 0;
    skey_t k;
    apr_status_t rv;

    if ((rv = make_key(&k, "ctr", name, strlen(name))) != APR_SUCCESS ||
        (rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = get_item(&val, &vlen, h, &k, k.s, k.len);
    give(mc, h);
    if (rv == APR_SUCCESS) {
        rv = val ? parse_u64(value, val, vlen) : DME_EPROTO;
    }
    free(val);
    return rv;
}

const char *dme_mc_key(dme_mc_t *mc, const char *kind, const void *key,
                       apr_size_t klen, apr_pool_t *p)
{
    skey_t k;

    if (!blob_kind(kind) || make_key(&k, kind, key, klen) != APR_SUCCESS) {
        return NULL;
    }
    return apr_pstrmemdup(p, k.s, k.len);
}

/* ---- health ---- */

static apr_status_t stat_all(const char **report, memcached_st *h,
                             apr_pool_t *p)
{
    memcached_return_t rc = MEMCACHED_SUCCESS;
    memcached_stat_st *st = memcached_stat(h, NULL, &rc);
    uint32_t i, n = memcached_server_count(h);
    const char *out = "";
    apr_status_t rv = APR_SUCCESS;

    for (i = 0; i < n; i++) {
        const memcached_instance_st *s =
            memcached_server_instance_by_position(h, i);
        int up = st && st[i].pid > 0 && st[i].version[0];
        const char *one =
            apr_psprintf(p, "%s:%u %s%s%s", memcached_server_name(s),
                         (unsigned)memcached_server_port(s), up ? "up" : "down",
                         up ? " " : "", up ? st[i].version : "");

        out = i ? apr_pstrcat(p, out, "; ", one, NULL) : one;
        if (!up) {
            rv = DME_EDOWN;
        }
    }
    memcached_stat_free(NULL, st);
    if (report) {
        *report = out;
    }
    return rv;
}

apr_status_t dme_mc_ping(const char **report, dme_mc_t *mc, apr_pool_t *p)
{
    memcached_st *h;
    apr_status_t rv;

    if (report) {
        *report = NULL;
    }
    if ((rv = take(&h, mc)) != APR_SUCCESS) {
        return rv;
    }
    rv = stat_all(report, h, p);
    give(mc, h);
    return rv;
}

/* ---- creation ---- */

static apr_status_t mc_free(void *data)
{
    dme_mc_t *mc = data;

    if (mc->pool) {
        memcached_pool_destroy(mc->pool);
        mc->pool = NULL;
    }
    if (mc->master) {
        memcached_free(mc->master);
        mc->master = NULL;
    }
    return APR_SUCCESS;
}

/* libmemcached's parser says "... parsing (<reason>): last_token=...";
 * only the reason is kept: the rest may quote the string. */
static const char *config_error(const char *config, apr_pool_t *p)
{
    char buf[512] = "";
    const char *from, *to;

    if (!*config) {
        return "the configuration string is empty";
    }
    if (libmemcached_check_configuration(config, strlen(config), buf,
                                         sizeof(buf)) == MEMCACHED_SUCCESS) {
        return NULL;
    }
    from = strstr(buf, "parsing (");
    to = from ? strstr(from, "):") : NULL;
    if (!to) {
        return "not a libmemcached configuration string";
    }
    from += strlen("parsing (");
    return apr_psprintf(p, "not a libmemcached configuration string: %.*s",
                        (int)(to - from), from);
}

static int configure(memcached_st *m, apr_interval_time_t timeout)
{
    uint64_t ms = (uint64_t)(timeout + 999) / 1000;
    static const struct {
        memcached_behavior_t b;
        uint64_t v;
    } fixed[] = {
        {MEMCACHED_BEHAVIOR_NO_BLOCK, 1},
        {MEMCACHED_BEHAVIOR_TCP_NODELAY, 1},
        {MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1},
        {MEMCACHED_BEHAVIOR_NOREPLY, 0},
        {MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0},
        {MEMCACHED_BEHAVIOR_KETAMA, 1},
        /* a failed server is skipped for about this many seconds */
        {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1},
    };
    size_t i;

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (memcached_behavior_set(m, fixed[i].b, fixed[i].v) !=
            MEMCACHED_SUCCESS) {
            return 0;
        }
    }
    return memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms) ==
               MEMCACHED_SUCCESS &&
           memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms) ==
               MEMCACHED_SUCCESS &&
           memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
                                  (uint64_t)timeout) == MEMCACHED_SUCCESS &&
           memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
                                  (uint64_t)timeout) == MEMCACHED_SUCCESS;
}

static const char *setup(dme_mc_t *mc, apr_interval_time_t timeout,
                         int max_handles)
{
    if (memcached_server_count(mc->master) == 0) {
        return "the configuration string names no --SERVER";
    }
    if (memcached_behavior_get(mc->master, MEMCACHED_BEHAVIOR_USE_UDP)) {
        return "UDP cannot carry blobs; leave out --USE-UDP";
    }
    if (!configure(mc->master, timeout)) {
        return "libmemcached refused a timeout or distribution setting";
    }
    mc->pool = memcached_pool_create(mc->master, 1, (uint32_t)max_handles);
    if (!mc->pool) {
        return "libmemcached could not create a handle pool";
    }
    mc->wait.tv_sec = (time_t)apr_time_sec(timeout);
    mc->wait.tv_nsec = (long)apr_time_usec(timeout) * 1000;
    return NULL;
}

apr_status_t dme_mc_create(dme_mc_t **mc, const char **err, const char *config,
                           apr_interval_time_t timeout, int max_handles,
                           apr_pool_t *p)
{
    const char *why = NULL;
    dme_mc_t *m;

    *mc = NULL;
    if (timeout < apr_time_from_msec(1) || timeout > apr_time_from_sec(60)) {
        why = "the timeout is not between 1 ms and 60 s";
    } else if (max_handles < 1 || max_handles > MAX_HANDLES) {
        why = "the handle count is not between 1 and 4096";
    } else {
        why = config_error(config ? config : "", p);
    }
    if (err) {
        *err = why;
    }
    if (why) {
        return APR_EINVAL;
    }
    m = apr_pcalloc(p, sizeof(*m));
    if (!(m->master = memcached(config, strlen(config)))) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, m, mc_free, apr_pool_cleanup_null);
    if ((why = setup(m, timeout, max_handles)) != NULL) {
        apr_pool_cleanup_run(p, m, mc_free);
        if (err) {
            *err = why;
        }
        return APR_EINVAL;
    }
    *mc = m;
    return APR_SUCCESS;
}
