/* IMAP client: connection pool, command loop, sync operations. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_md5.h>
#include <apr_escape.h>

#include "dme_imap.h"
#include "dme_curl.h"

#define READ_CHUNK   65536
#define MAX_RESPONSE (256u * 1024 * 1024) /* a 100,000-mail listing fits */
#define FETCH_CHUNK  500                  /* uids per UID FETCH */
#define MAX_FOLDER   1024

struct dme_imap_t {
    dme_imap_t *next; /* in the idle list */
    dme_curl_conn_t *conn;
    char *key; /* login identity, malloc'd */
    char *buf; /* unread bytes, malloc'd */
    apr_size_t len, cap;
    unsigned int tag;
    int condstore; /* -1 unknown, 0 no, 1 offered */
    int selected;  /* a folder is examined on this connection */
    int broken;
    int reused;
    apr_interval_time_t timeout;
    apr_time_t idle_since;
};

struct dme_imap_pool_t {
    apr_thread_mutex_t *mutex;
    dme_imap_t *idle;
    int nidle, max_idle;
    apr_interval_time_t idle_ttl;
};

static void conn_free(dme_imap_t *s)
{
    if (s) {
        dme_curl_close(s->conn);
        free(s->key);
        free(s->buf);
        free(s);
    }
}

static apr_status_t pool_cleanup(void *data)
{
    dme_imap_pool_t *pl = data;

    while (pl->idle) {
        dme_imap_t *s = pl->idle;

        pl->idle = s->next;
        conn_free(s);
    }
    pl->nidle = 0;
    return APR_SUCCESS;
}

apr_status_t dme_imap_pool_create(dme_imap_pool_t **pl, int max_idle,
                                  apr_interval_time_t idle_ttl, apr_pool_t *p)
{
    dme_imap_pool_t *x = apr_pcalloc(p, sizeof(*x));
    apr_status_t rv;

    rv = apr_thread_mutex_create(&x->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    x->max_idle = max_idle;
    x->idle_ttl = idle_ttl;
    apr_pool_cleanup_register(p, x, pool_cleanup, apr_pool_cleanup_null);
    *pl = x;
    return APR_SUCCESS;
}

/* The identity a connection is reused under; the password enters only
 * as a digest so a changed password never reuses an old login. */
static char *login_key(const dme_imap_login_t *l, apr_pool_t *p)
{
    unsigned char d[APR_MD5_DIGESTSIZE];
    const char *pw = l->password ? l->password : "";

    apr_md5(d, pw, strlen(pw));
    return apr_psprintf(p, "%s\n%s\n%s\n%s", l->url, l->user,
                        l->authzid ? l->authzid : "",
                        apr_pescape_hex(p, d, sizeof(d), 0));
}

/* Take a matching idle connection, dropping stale ones on the way. */
static dme_imap_t *take_idle(dme_imap_pool_t *pl, const char *key)
{
    dme_imap_t **pp, *found = NULL, *stale = NULL;
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(pl->mutex);
    for (pp = &pl->idle; *pp;) {
        dme_imap_t *s = *pp;
        int old = now - s->idle_since > pl->idle_ttl;

        if (old || (!found && strcmp(s->key, key) == 0)) {
            *pp = s->next;
            pl->nidle--;
            if (old) {
                s->next = stale;
                stale = s;
            } else {
                found = s;
            }
            continue;
        }
        pp = &s->next;
    }
    apr_thread_mutex_unlock(pl->mutex);
    while (stale) {
        dme_imap_t *s = stale;

        stale = s->next;
        conn_free(s);
    }
    return found;
}

apr_status_t dme_imap_acquire(dme_imap_t **out, const char **errmsg,
                              dme_imap_pool_t *pl,
                              const dme_imap_login_t *login, apr_pool_t *p)
{
    char *key = login_key(login, p);
    dme_curl_imap_opts_t o;
    dme_imap_t *s;
    apr_status_t rv;

    *out = NULL;
    if (errmsg) {
        *errmsg = NULL;
    }
    while ((s = take_idle(pl, key)) != NULL) {
        if (dme_curl_is_idle_ok(s->conn) && s->len == 0) {
            s->reused = 1;
            s->timeout = login->timeout;
            *out = s;
            return APR_SUCCESS;
        }
        conn_free(s);
    }
    memset(&o, 0, sizeof(o));
    o.url = login->url;
    o.user = login->user;
    o.password = login->password;
    o.authzid = login->authzid;
    o.ca_file = login->ca_file;
    o.timeout = login->timeout;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->key = strdup(key))) {
        free(s);
        return APR_ENOMEM;
    }
    rv = dme_curl_imap_open(&s->conn, errmsg, &o, p);
    if (rv != APR_SUCCESS) {
        conn_free(s);
        return rv;
    }
    s->timeout = login->timeout;
    s->condstore = -1;
    *out = s;
    return APR_SUCCESS;
}

void dme_imap_release(dme_imap_pool_t *pl, dme_imap_t *s)
{
    dme_imap_t *drop = NULL;

    if (!s) {
        return;
    }
    if (s->broken || s->len != 0) {
        conn_free(s);
        return;
    }
    s->idle_since = apr_time_now();
    s->reused = 0;
    apr_thread_mutex_lock(pl->mutex);
    if (pl->nidle >= pl->max_idle) {
        /* keep the newest; the oldest idle one goes */
        dme_imap_t **pp = &pl->idle;

        while (*pp && (*pp)->next) {
            pp = &(*pp)->next;
        }
        drop = *pp;
        *pp = NULL;
        if (drop) {
            pl->nidle--;
        }
    }
    if (pl->max_idle > 0) {
        s->next = pl->idle;
        pl->idle = s;
        pl->nidle++;
        s = NULL;
    }
    apr_thread_mutex_unlock(pl->mutex);
    conn_free(drop);
    conn_free(s);
}

int dme_imap_is_reused(const dme_imap_t *s)
{
    return s->reused;
}

/* Read until the buffer holds the whole response ending in `tag`. */
static apr_status_t read_response(apr_size_t *end, dme_imap_t *s,
                                  const char *tag)
{
    dme_imap_scan_t scan;
    apr_status_t rv;

    memset(&scan, 0, sizeof(scan));
    for (;;) {
        apr_size_t got;

        rv = dme_imap_find_tagged(end, &scan, s->buf, s->len, tag);
        if (rv != APR_INCOMPLETE) {
            return rv;
        }
        if (s->len >= MAX_RESPONSE) {
            return DME_ETOOBIG;
        }
        if (s->cap - s->len < READ_CHUNK) {
            apr_size_t cap = s->cap ? s->cap * 2 : 2 * READ_CHUNK;
            char *nb = realloc(s->buf, cap);

            if (!nb) {
                return APR_ENOMEM;
            }
            s->buf = nb;
            s->cap = cap;
        }
        rv = dme_curl_recv(&got, s->conn, s->buf + s->len, s->cap - s->len,
                           s->timeout);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        s->len += got;
    }
}

static apr_status_t tagged_status(const apr_array_header_t *resps)
{
    const dme_imap_resp_t *last;

    if (resps->nelts == 0) {
        return DME_EPROTO;
    }
    last = APR_ARRAY_IDX(resps, resps->nelts - 1, const dme_imap_resp_t *);
    if (!last->status) {
        return DME_EPROTO;
    }
    if (strcmp(last->status, "OK") == 0) {
        return APR_SUCCESS;
    }
    return strcmp(last->status, "NO") == 0 ? APR_EGENERAL : DME_EPROTO;
}

apr_status_t dme_imap_cmd(apr_array_header_t **resps, dme_imap_t *s,
                          const char *cmd, apr_pool_t *p)
{
    char tag[16];
    const char *line;
    apr_size_t end;
    apr_status_t rv;

    *resps = NULL;
    if (s->broken) {
        return DME_EDOWN;
    }
    apr_snprintf(tag, sizeof(tag), "D%u", ++s->tag);
    line = apr_pstrcat(p, tag, " ", cmd, "\r\n", NULL);
    rv = dme_curl_send(s->conn, line, strlen(line), s->timeout);
    if (rv == APR_SUCCESS) {
        rv = read_response(&end, s, tag);
    }
    if (rv == APR_SUCCESS) {
        rv = dme_imap_parse_responses(resps, s->buf, end, p);
        memmove(s->buf, s->buf + end, s->len - end);
        s->len -= end;
    }
    if (rv != APR_SUCCESS) {
        /* The stream position is unknown now; never reuse it. */
        s->broken = 1;
        return rv == APR_ENOMEM || rv == DME_ETOOBIG ? rv : DME_EDOWN;
    }
    return tagged_status(*resps);
}

/* Decode one UTF-8 character; 0 on invalid input (overlong, surrogate,
 * out of range, truncated). */
static apr_size_t utf8_char(apr_uint32_t *cp, const unsigned char *s)
{
    apr_size_t n, i;
    apr_uint32_t c = s[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    n = (c & 0xe0) == 0xc0   ? 2
        : (c & 0xf0) == 0xe0 ? 3
        : (c & 0xf8) == 0xf0 ? 4
                             : 0;
    if (!n) {
        return 0;
    }
    min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    c &= 0x7f >> n;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* Modified base64 of UTF-16BE units, as RFC 3501 5.1.3 wants for
 * mailbox names: "&" + base64 with "," for "/" and no padding + "-". */
static void put_utf16(char **o, const apr_uint16_t *u, int n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                              "wxyz0123456789+,";
    apr_uint32_t bits = 0;
    int nbits = 0, i;

    *(*o)++ = '&';
    for (i = 0; i < n; i++) {
        bits = (bits << 16) | u[i];
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            *(*o)++ = b64[(bits >> nbits) & 0x3f];
        }
    }
    if (nbits > 0) {
        *(*o)++ = b64[(bits << (6 - nbits)) & 0x3f];
    }
    *(*o)++ = '-';
}

const char *dme_imap_mailbox_name(const char *utf8, apr_pool_t *p)
{
    const unsigned char *s = (const unsigned char *)utf8;
    apr_size_t len = strlen(utf8);
    char *out = apr_palloc(p, len * 6 + 4), *o = out;
    apr_uint16_t *u = apr_palloc(p, sizeof(*u) * (len * 2 + 2));

    while (*s) {
        apr_uint32_t cp;
        int n = 0;

        if (*s >= 0x20 && *s < 0x7f) {
            if (*s == '&') {
                *o++ = '&';
                *o++ = '-';
            } else {
                *o++ = (char)*s;
            }
            s++;
            continue;
        }
        while (*s && (*s < 0x20 || *s >= 0x7f)) {
            apr_size_t k = utf8_char(&cp, s);

            if (!k || cp < 0x20 || cp == 0x7f) {
                return NULL; /* invalid UTF-8 or a control character */
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                u[n++] = (apr_uint16_t)(0xd800 | (cp >> 10));
                u[n++] = (apr_uint16_t)(0xdc00 | (cp & 0x3ff));
            } else {
                u[n++] = (apr_uint16_t)cp;
            }
            s += k;
        }
        put_utf16(&o, u, n);
    }
    *o = '\0';
    return dme_imap_quote(out, p);
}

apr_status_t dme_imap_examine(apr_uint32_t *uidvalidity, apr_uint32_t *exists,
                              dme_imap_t *s, const char *folder, apr_pool_t *p)
{
    const char *q =
        strlen(folder) > MAX_FOLDER ? NULL : dme_imap_mailbox_name(folder, p);
    apr_array_header_t *resps;
    apr_status_t rv;
    int i;

    *uidvalidity = 0;
    *exists = 0;
    if (!q || !*folder) {
        return APR_EINVAL;
    }
    rv = dme_imap_cmd(&resps, s, apr_pstrcat(p, "EXAMINE ", q, NULL), p);
    s->selected = rv == APR_SUCCESS;
    if (rv == APR_EGENERAL) {
        return DME_ENOMBOX;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < resps->nelts; i++) {
        const dme_imap_resp_t *r = APR_ARRAY_IDX(resps, i, dme_imap_resp_t *);

        if (r->code && strncasecmp(r->code, "UIDVALIDITY ", 12) == 0) {
            *uidvalidity = (apr_uint32_t)strtoul(r->code + 12, NULL, 10);
        } else if (r->has_number && r->name && !strcmp(r->name, "EXISTS")) {
            *exists = r->number;
        }
    }
    return *uidvalidity ? APR_SUCCESS : DME_EPROTO;
}

static const char *imap_date(apr_time_t t, apr_pool_t *p)
{
    static const char *mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%d-%s-%d", tm.tm_mday, mon[tm.tm_mon],
                        tm.tm_year + 1900);
}

/* UIDs from every SEARCH response of a command. */
static apr_status_t search_uids(apr_array_header_t **uids,
                                const apr_array_header_t *resps, apr_pool_t *p)
{
    apr_array_header_t *all = apr_array_make(p, 64, sizeof(apr_uint32_t));
    int i;

    for (i = 0; i < resps->nelts; i++) {
        const dme_imap_resp_t *r = APR_ARRAY_IDX(resps, i, dme_imap_resp_t *);
        apr_array_header_t *part;
        apr_status_t rv;

        if (!r->name || strcmp(r->name, "SEARCH") != 0) {
            continue;
        }
        rv = dme_imap_search_get(&part, r, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        apr_array_cat(all, part);
    }
    *uids = all;
    return APR_SUCCESS;
}

static int cmp_u32(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Message-ID value from a "Message-ID: <x>" header block, unfolded. */
static const char *header_msgid(const dme_imap_fetch_t *f, apr_pool_t *p)
{
    const char *v, *e;
    char *out, *o;

    if (!f->has_body || f->body_len < 11) {
        return "";
    }
    v = memchr(f->body, ':', f->body_len);
    if (!v) {
        return "";
    }
    e = f->body + f->body_len;
    o = out = apr_palloc(p, (apr_size_t)(e - v));
    for (v++; v < e; v++) {
        if (*v != '\r' && *v != '\n' && *v != ' ' && *v != '\t') {
            *o++ = *v;
        }
    }
    *o = '\0';
    return out;
}

static apr_status_t note_from_fetch(dme_notes_t *ns, const dme_imap_fetch_t *f,
                                    const char *folder, apr_pool_t *p)
{
    dme_note_t *n;

    if (!f->uid || !f->has_size || !f->has_date) {
        return DME_EPROTO;
    }
    n = apr_array_push(ns->notes);
    memset(n, 0, sizeof(*n));
    n->uid = f->uid;
    n->flags = dme_note_flags_join(f->flags, p);
    n->size = f->size;
    n->date = f->internaldate;
    return dme_note_checksum(n, n->flags, folder, n->size, n->date,
                             header_msgid(f, p));
}

/* The FETCH responses of a command, as parsed records. A FETCH without
 * UID is an unsolicited flag update of some other mail: left out. */
static apr_status_t collect_fetches(apr_array_header_t *out,
                                    const apr_array_header_t *resps,
                                    apr_pool_t *p)
{
    int i;

    for (i = 0; i < resps->nelts; i++) {
        const dme_imap_resp_t *r = APR_ARRAY_IDX(resps, i, dme_imap_resp_t *);
        dme_imap_fetch_t *f;
        apr_status_t rv;

        if (!r->name || strcmp(r->name, "FETCH") != 0) {
            continue;
        }
        rv = dme_imap_fetch_get(&f, r, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (f->uid) {
            APR_ARRAY_PUSH(out, dme_imap_fetch_t *) = f;
        }
    }
    return APR_SUCCESS;
}

/* UID FETCH in chunks, so no single response grows without bound. */
static apr_status_t fetch_chunks(apr_array_header_t *out, dme_imap_t *s,
                                 const apr_uint32_t *uids, int n,
                                 const char *items, apr_pool_t *p)
{
    int off;

    for (off = 0; off < n; off += FETCH_CHUNK) {
        int cnt = n - off < FETCH_CHUNK ? n - off : FETCH_CHUNK;
        apr_array_header_t *resps;
        const char *set;
        apr_status_t rv;

        rv = dme_imap_uid_set(&set, uids + off, cnt, p);
        if (rv == APR_SUCCESS) {
            rv = dme_imap_cmd(
                &resps, s, apr_psprintf(p, "UID FETCH %s %s", set, items), p);
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = collect_fetches(out, resps, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t dme_imap_list_notes(dme_notes_t **ns, dme_imap_t *s,
                                 const char *folder, apr_time_t since,
                                 apr_pool_t *p)
{
    apr_array_header_t *resps, *uids, *fetches;
    apr_uint32_t uidvalidity, exists;
    dme_notes_t *out;
    apr_status_t rv;
    int i;

    *ns = NULL;
    rv = dme_imap_examine(&uidvalidity, &exists, s, folder, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = dme_imap_cmd(
        &resps, s,
        apr_pstrcat(p, "UID SEARCH SINCE ", imap_date(since, p), NULL), p);
    if (rv == APR_SUCCESS) {
        rv = search_uids(&uids, resps, p);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    qsort(uids->elts, uids->nelts, sizeof(apr_uint32_t), cmp_u32);
    fetches = apr_array_make(p, uids->nelts + 1, sizeof(dme_imap_fetch_t *));
    rv = fetch_chunks(fetches, s, (const apr_uint32_t *)uids->elts, uids->nelts,
                      "(UID FLAGS RFC822.SIZE INTERNALDATE "
                      "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                      p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    out = dme_notes_make(uidvalidity, fetches->nelts + 1, p);
    for (i = 0; i < fetches->nelts && rv == APR_SUCCESS; i++) {
        rv = note_from_fetch(out, APR_ARRAY_IDX(fetches, i, dme_imap_fetch_t *),
                             folder, p);
    }
    dme_notes_sort(out);
    *ns = out;
    return rv;
}

apr_status_t dme_imap_fetch_heads(apr_array_header_t **fetches, dme_imap_t *s,
                                  const apr_uint32_t *uids, int n,
                                  apr_size_t bytes, apr_pool_t *p)
{
    apr_array_header_t *out =
        apr_array_make(p, n + 1, sizeof(dme_imap_fetch_t *));
    apr_uint32_t *sorted = apr_pmemdup(p, uids, sizeof(*uids) * (n + 1));
    const char *items;

    qsort(sorted, n, sizeof(*sorted), cmp_u32);
    items = apr_psprintf(p,
                         "(UID FLAGS RFC822.SIZE INTERNALDATE "
                         "BODY.PEEK[]<0.%" APR_SIZE_T_FMT ">)",
                         bytes);
    *fetches = out;
    return n > 0 ? fetch_chunks(out, s, sorted, n, items, p) : APR_SUCCESS;
}

apr_status_t dme_imap_fetch_message(const char **data, apr_size_t *len,
                                    dme_imap_t *s, apr_uint32_t uid,
                                    apr_pool_t *p)
{
    apr_array_header_t *out = apr_array_make(p, 1, sizeof(dme_imap_fetch_t *));
    apr_status_t rv;
    int i;

    *data = NULL;
    *len = 0;
    rv = fetch_chunks(out, s, &uid, 1, "(UID BODY.PEEK[])", p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < out->nelts; i++) {
        const dme_imap_fetch_t *f = APR_ARRAY_IDX(out, i, dme_imap_fetch_t *);

        if (f->uid == uid && f->has_body) {
            *data = f->body;
            *len = f->body_len;
            return APR_SUCCESS;
        }
    }
    return APR_NOTFOUND;
}

unsigned int dme_imap_commands(const dme_imap_t *s)
{
    return s->tag;
}

static apr_status_t notes_from_fetches(dme_notes_t *ns,
                                       const apr_array_header_t *fetches,
                                       const char *folder,
                                       apr_uint32_t after_uid, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < fetches->nelts && rv == APR_SUCCESS; i++) {
        const dme_imap_fetch_t *f =
            APR_ARRAY_IDX(fetches, i, dme_imap_fetch_t *);

        /* "n:*" always names the last mail, even one below n */
        if (f->uid > after_uid) {
            rv = note_from_fetch(ns, f, folder, p);
        }
    }
    dme_notes_sort(ns);
    return rv;
}

apr_status_t dme_imap_list_newer(dme_notes_t *ns, dme_imap_t *s,
                                 const char *folder, apr_uint32_t after_uid,
                                 apr_pool_t *p)
{
    apr_array_header_t *resps, *fetches;
    apr_status_t rv;

    rv = dme_imap_cmd(&resps, s,
                      apr_psprintf(p,
                                   "UID FETCH %u:* (UID FLAGS RFC822.SIZE "
                                   "INTERNALDATE BODY.PEEK[HEADER.FIELDS "
                                   "(MESSAGE-ID)])",
                                   after_uid + 1),
                      p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    fetches = apr_array_make(p, 8, sizeof(dme_imap_fetch_t *));
    rv = collect_fetches(fetches, resps, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return notes_from_fetches(ns, fetches, folder, after_uid, p);
}

apr_status_t dme_imap_fetch_flags(apr_hash_t **flags, dme_imap_t *s,
                                  const apr_uint32_t *uids, int n,
                                  apr_pool_t *p)
{
    apr_array_header_t *out =
        apr_array_make(p, n + 1, sizeof(dme_imap_fetch_t *));
    apr_uint32_t *sorted = apr_pmemdup(p, uids, sizeof(*uids) * (n + 1));
    apr_status_t rv = APR_SUCCESS;
    int i;

    *flags = apr_hash_make(p);
    qsort(sorted, n, sizeof(*sorted), cmp_u32);
    if (n > 0) {
        rv = fetch_chunks(out, s, sorted, n, "(UID FLAGS)", p);
    }
    for (i = 0; rv == APR_SUCCESS && i < out->nelts; i++) {
        dme_imap_fetch_t *f = APR_ARRAY_IDX(out, i, dme_imap_fetch_t *);
        apr_uint32_t *key = apr_pmemdup(p, &f->uid, sizeof(f->uid));

        apr_hash_set(*flags, key, sizeof(*key),
                     dme_note_flags_join(f->flags, p));
    }
    return rv;
}

/* Whether the server offers CONDSTORE; asked once per connection. */
static apr_status_t has_condstore(int *yes, dme_imap_t *s, apr_pool_t *p)
{
    apr_array_header_t *resps;
    apr_status_t rv;
    int i, j;

    if (s->condstore >= 0) {
        *yes = s->condstore;
        return APR_SUCCESS;
    }
    rv = dme_imap_cmd(&resps, s, "CAPABILITY", p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->condstore = 0;
    for (i = 0; i < resps->nelts; i++) {
        const dme_imap_resp_t *r = APR_ARRAY_IDX(resps, i, dme_imap_resp_t *);

        for (j = 0;
             r->name && !strcmp(r->name, "CAPABILITY") && j < r->items->nelts;
             j++) {
            const dme_imap_val_t *v =
                APR_ARRAY_IDX(r->items, j, dme_imap_val_t *);

            if (v->kind == DME_IMAP_ATOM && !strcasecmp(v->str, "CONDSTORE")) {
                s->condstore = 1;
            }
        }
    }
    *yes = s->condstore;
    return APR_SUCCESS;
}

apr_status_t dme_imap_status(dme_imap_status_t *st, dme_imap_t *s,
                             const char *folder, apr_pool_t *p)
{
    const char *q = dme_imap_mailbox_name(folder, p);
    apr_array_header_t *resps;
    apr_status_t rv;
    int cs = 0, i;

    memset(st, 0, sizeof(*st));
    if (!q || !*folder || strlen(folder) > MAX_FOLDER) {
        return APR_EINVAL;
    }
    rv = has_condstore(&cs, s, p);
    if (rv == APR_SUCCESS && s->selected) {
        /* STATUS of the selected folder may answer this session's own,
         * older view of it; leave the folder first (CLOSE after EXAMINE
         * expunges nothing). */
        rv = dme_imap_cmd(&resps, s, "CLOSE", p);
        s->selected = 0;
    }
    if (rv == APR_SUCCESS) {
        rv = dme_imap_cmd(&resps, s,
                          apr_pstrcat(p, "STATUS ", q,
                                      cs ? " (UIDVALIDITY UIDNEXT MESSAGES "
                                           "HIGHESTMODSEQ)"
                                         : " (UIDVALIDITY UIDNEXT MESSAGES)",
                                      NULL),
                          p);
    }
    if (rv == APR_EGENERAL) {
        return DME_ENOMBOX;
    }
    for (i = 0; rv == APR_SUCCESS && i < resps->nelts; i++) {
        const dme_imap_resp_t *r = APR_ARRAY_IDX(resps, i, dme_imap_resp_t *);

        if (r->name && !strcmp(r->name, "STATUS")) {
            rv = dme_imap_status_get(&st->messages, &st->uidnext,
                                     &st->uidvalidity, &st->highestmodseq, r);
        }
    }
    if (rv == APR_SUCCESS && !st->uidvalidity) {
        rv = DME_EPROTO;
    }
    return rv;
}
