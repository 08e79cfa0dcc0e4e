/* Strict IMAP4rev1 response parsing (RFC 3501); see dme_imap_parse.h.
 *
 * The server is trusted for nothing: every length is checked against what
 * was received, and whatever falls outside the grammar is DME_EPROTO. Only
 * ASCII tests are used, never the locale's.
 */
#include <string.h>
#include <apr_strings.h>

#include "dme_imap_parse.h"

static int dig(char ch)
{
    return ch >= '0' && ch <= '9';
}

static char upper(char ch)
{
    return (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
}

/* ---- framing ---------------------------------------------------------- */

void dme_imap_scan_init(dme_imap_scan_t *sc)
{
    memset(sc, 0, sizeof(*sc));
}

/* Does s[0..n), a line stretch without its CRLF, end in "{digits}" or
 * "{digits+}"? 1 with *size set, 0 if not, -1 if the size is too big.
 * Shared by framing and parsing so both agree on what a literal is. */
static int literal_at_end(apr_size_t *size, const char *s, apr_size_t n)
{
    apr_size_t i = n, stop;
    apr_uint64_t v = 0;

    if (i == 0 || s[--i] != '}') {
        return 0;
    }
    if (i > 0 && s[i - 1] == '+') {
        i--;
    }
    stop = i;
    while (i > 0 && dig(s[i - 1])) {
        i--;
    }
    if (i == stop || i == 0 || s[i - 1] != '{') {
        return 0;
    }
    for (; i < stop; i++) {
        v = v * 10 + (apr_uint64_t)(s[i] - '0');
        if (v > DME_IMAP_LITERAL_MAX) {
            return -1;
        }
    }
    *size = (apr_size_t)v;
    return 1;
}

static int starts_tagged(const char *line, apr_size_t n, const char *tag,
                         apr_size_t tl)
{
    return n > tl && memcmp(line, tag, tl) == 0 && line[tl] == ' ';
}

apr_status_t dme_imap_find_tagged(apr_size_t *end, dme_imap_scan_t *sc,
                                  const char *buf, apr_size_t len,
                                  const char *tag)
{
    dme_imap_scan_t local = {0, 0, 0};
    apr_size_t tl, lf, size;
    const char *nl;
    int lit;

    if (!tag || !(tl = strlen(tag)) || strpbrk(tag, " \r\n")) {
        return APR_EINVAL;
    }
    sc = sc ? sc : &local;
    for (;;) {
        /* Past len only while the bytes of a literal are still missing. */
        if (sc->pos >= len) {
            return APR_INCOMPLETE;
        }
        nl = memchr(buf + sc->pos, '\n', len - sc->pos);
        if (!nl) {
            /* A CR at the end may yet be followed by its LF. */
            sc->pos = len;
            return len - sc->seg - (buf[len - 1] == '\r') > DME_IMAP_LINE_MAX
                       ? DME_EPROTO
                       : APR_INCOMPLETE;
        }
        lf = (apr_size_t)(nl - buf);
        if (lf == sc->seg || buf[lf - 1] != '\r' ||
            lf - 1 - sc->seg > DME_IMAP_LINE_MAX) {
            return DME_EPROTO;
        }
        lit = literal_at_end(&size, buf + sc->seg, lf - 1 - sc->seg);
        if (lit < 0) {
            return DME_EPROTO;
        }
        if (lit) {
            sc->seg = sc->pos = lf + 1 + size;
            continue;
        }
        lit = starts_tagged(buf + sc->line, lf - sc->line, tag, tl);
        sc->line = sc->seg = sc->pos = lf + 1;
        if (lit) {
            *end = lf + 1;
            return APR_SUCCESS;
        }
    }
}

/* ---- values ----------------------------------------------------------- */

/* A cursor over whole response lines; pos never passes len. */
typedef struct cur_t {
    const char *b;
    apr_size_t len;
    apr_size_t pos;
    apr_pool_t *p;
    int depth;
} cur_t;

static int at(const cur_t *c, char ch)
{
    return c->pos < c->len && c->b[c->pos] == ch;
}

static int at_crlf(const cur_t *c)
{
    return c->len - c->pos >= 2 && c->b[c->pos] == '\r' &&
           c->b[c->pos + 1] == '\n';
}

static apr_status_t expect_sp(cur_t *c)
{
    if (!at(c, ' ')) {
        return DME_EPROTO;
    }
    c->pos++;
    return APR_SUCCESS;
}

static apr_status_t expect_crlf(cur_t *c)
{
    if (!at_crlf(c)) {
        return DME_EPROTO;
    }
    c->pos += 2;
    return APR_SUCCESS;
}

/* The RFC's ATOM-CHAR, plus '%' and '*' (as in the flag \*) and '['; a
 * backslash is let in separately, only as the first character. */
static int atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("(){\"\\]", ch);
}

static apr_status_t to_u64(apr_uint64_t *out, const char *s, apr_size_t n)
{
    apr_uint64_t v = 0;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (!dig(s[i]) || v > (APR_UINT64_MAX - d) / 10) {
            return DME_EPROTO;
        }
        v = v * 10 + d;
    }
    *out = v;
    return n ? APR_SUCCESS : DME_EPROTO;
}

/* Find the closing quote of the quoted string at c->pos: *close is its
 * offset, *n the length once unescaped. */
static apr_status_t quoted_scan(apr_size_t *close, apr_size_t *n,
                                const cur_t *c)
{
    apr_size_t i = c->pos + 1, k = 0;

    for (; i < c->len; i++, k++) {
        char ch = c->b[i];

        if (ch == '"') {
            *close = i;
            *n = k;
            return APR_SUCCESS;
        }
        if (ch == '\\') {
            if (++i == c->len || (c->b[i] != '"' && c->b[i] != '\\')) {
                return DME_EPROTO;
            }
        } else if (ch == '\0' || ch == '\r' || ch == '\n') {
            return DME_EPROTO;
        }
    }
    return DME_EPROTO;
}

static apr_status_t parse_quoted(dme_imap_val_t *v, cur_t *c)
{
    apr_size_t close, n, i, k = 0;
    apr_status_t rv;
    char *s;

    if ((rv = quoted_scan(&close, &n, c)) != APR_SUCCESS) {
        return rv;
    }
    s = apr_palloc(c->p, n + 1);
    for (i = c->pos + 1; i < close; i++) {
        if (c->b[i] == '\\') {
            i++;
        }
        s[k++] = c->b[i];
    }
    s[k] = '\0';
    v->kind = DME_IMAP_STRING;
    v->str = s;
    v->len = n;
    c->pos = close + 1;
    return APR_SUCCESS;
}

/* "{n}" CRLF and n bytes, or "~{n}" (BINARY); "{n+}" is let through too. */
static apr_status_t parse_literal(dme_imap_val_t *v, cur_t *c)
{
    apr_uint64_t size = 0;
    apr_size_t start;

    if (at(c, '~')) {
        c->pos++;
    }
    if (!at(c, '{')) {
        return DME_EPROTO;
    }
    start = ++c->pos;
    for (; c->pos < c->len && dig(c->b[c->pos]); c->pos++) {
        size = size * 10 + (apr_uint64_t)(c->b[c->pos] - '0');
        if (size > DME_IMAP_LITERAL_MAX) {
            return DME_EPROTO;
        }
    }
    if (c->pos == start) {
        return DME_EPROTO;
    }
    if (at(c, '+')) {
        c->pos++;
    }
    if (!at(c, '}')) {
        return DME_EPROTO;
    }
    c->pos++;
    if (expect_crlf(c) != APR_SUCCESS || c->len - c->pos < size) {
        return DME_EPROTO;
    }
    v->kind = DME_IMAP_STRING;
    v->len = (apr_size_t)size;
    v->str = apr_pstrmemdup(c->p, c->b + c->pos, v->len);
    c->pos += v->len;
    return APR_SUCCESS;
}

/* An atom, in which brackets enclose a section spec that may hold spaces,
 * parentheses and quoted strings: BODY[HEADER.FIELDS (FROM)]<0>. */
static apr_status_t read_atom(const char **s, apr_size_t *n, cur_t *c)
{
    apr_size_t start = c->pos, depth = 0, close, qn;

    for (; c->pos < c->len; c->pos++) {
        unsigned char ch = (unsigned char)c->b[c->pos];

        if (ch == '[') {
            depth++;
        } else if (depth && ch == ']') {
            depth--;
        } else if (depth && ch == '"') {
            if (quoted_scan(&close, &qn, c) != APR_SUCCESS) {
                return DME_EPROTO;
            }
            c->pos = close;
        } else if (depth && (ch < 0x20 || ch >= 0x7f)) {
            return DME_EPROTO;
        } else if (!depth && !atom_char(ch) &&
                   !(ch == '\\' && c->pos == start)) {
            break;
        }
    }
    if (depth || c->pos == start) {
        return DME_EPROTO;
    }
    *s = c->b + start;
    *n = c->pos - start;
    return APR_SUCCESS;
}

static apr_status_t parse_atom(dme_imap_val_t *v, cur_t *c)
{
    const char *s;
    apr_size_t n, i;
    apr_status_t rv;

    if ((rv = read_atom(&s, &n, c)) != APR_SUCCESS) {
        return rv;
    }
    v->str = apr_pstrmemdup(c->p, s, n);
    v->len = n;
    for (i = 0; i < n && dig(s[i]); i++) {
    }
    if (i == n) {
        v->kind = DME_IMAP_NUMBER;
        return to_u64(&v->num, s, n);
    }
    v->kind = (n == 3 && strncasecmp(s, "NIL", 3) == 0) ? DME_IMAP_NIL
                                                        : DME_IMAP_ATOM;
    return APR_SUCCESS;
}

static apr_status_t parse_seq(apr_array_header_t *items, cur_t *c);

static apr_status_t parse_list(dme_imap_val_t *v, cur_t *c)
{
    apr_status_t rv;

    if (++c->depth > DME_IMAP_DEPTH_MAX) {
        return DME_EPROTO;
    }
    c->pos++;
    v->kind = DME_IMAP_LIST;
    v->items = apr_array_make(c->p, 4, sizeof(dme_imap_val_t *));
    if (!at(c, ')') && (rv = parse_seq(v->items, c)) != APR_SUCCESS) {
        return rv;
    }
    if (!at(c, ')')) {
        return DME_EPROTO;
    }
    c->pos++;
    c->depth--;
    return APR_SUCCESS;
}

static apr_status_t parse_value(dme_imap_val_t **out, cur_t *c)
{
    dme_imap_val_t *v = apr_pcalloc(c->p, sizeof(*v));

    *out = v;
    if (c->pos >= c->len) {
        return DME_EPROTO;
    }
    switch (c->b[c->pos]) {
        case '(':
            return parse_list(v, c);
        case '"':
            return parse_quoted(v, c);
        case '{':
            return parse_literal(v, c);
        case '~':
            if (c->len - c->pos > 1 && c->b[c->pos + 1] == '{') {
                return parse_literal(v, c);
            }
            return parse_atom(v, c);
        default:
            return parse_atom(v, c);
    }
}

/* Values separated by single spaces; stops before whatever follows. */
static apr_status_t parse_seq(apr_array_header_t *items, cur_t *c)
{
    dme_imap_val_t *v;
    apr_status_t rv;

    for (;;) {
        if ((rv = parse_value(&v, c)) != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(items, dme_imap_val_t *) = v;
        if (!at(c, ' ')) {
            return APR_SUCCESS;
        }
        c->pos++;
    }
}

/* ---- response lines --------------------------------------------------- */

/* Raw human text up to CRLF. */
static apr_status_t parse_text(const char **out, cur_t *c)
{
    apr_size_t start = c->pos, size;

    while (c->pos < c->len && c->b[c->pos] != '\r' && c->b[c->pos] != '\n' &&
           c->b[c->pos] != '\0') {
        c->pos++;
    }
    /* Framing took the announcement as a literal, so this is no text. */
    if (literal_at_end(&size, c->b + start, c->pos - start) != 0) {
        return DME_EPROTO;
    }
    *out = apr_pstrmemdup(c->p, c->b + start, c->pos - start);
    return expect_crlf(c);
}

/* After OK/NO/BAD/BYE/PREAUTH: [SP ["[" code "]"] [SP text]] CRLF. */
static apr_status_t parse_status(dme_imap_resp_t *r, cur_t *c)
{
    apr_size_t start;

    r->text = "";
    if (at_crlf(c)) {
        return expect_crlf(c);
    }
    if (expect_sp(c) != APR_SUCCESS) {
        return DME_EPROTO;
    }
    if (at(c, '[')) {
        start = ++c->pos;
        while (c->pos < c->len && c->b[c->pos] != ']' && c->b[c->pos] != '\r' &&
               c->b[c->pos] != '\n' && c->b[c->pos] != '\0') {
            c->pos++;
        }
        if (!at(c, ']') || c->pos == start) {
            return DME_EPROTO;
        }
        r->code = apr_pstrmemdup(c->p, c->b + start, c->pos - start);
        c->pos++;
        if (at_crlf(c)) {
            return expect_crlf(c);
        }
        if (expect_sp(c) != APR_SUCCESS) {
            return DME_EPROTO;
        }
    }
    return parse_text(&r->text, c);
}

static int word_char(char ch)
{
    return dig(ch) || (upper(ch) >= 'A' && upper(ch) <= 'Z') || ch == '.' ||
           ch == '-' || ch == '_';
}

/* A response name, a status word or a message number, upper-cased. */
static apr_status_t read_word(const char **out, cur_t *c)
{
    apr_size_t start = c->pos;
    char *s;

    while (c->pos < c->len && word_char(c->b[c->pos])) {
        c->pos++;
    }
    if (c->pos == start) {
        return DME_EPROTO;
    }
    *out = s = apr_pstrmemdup(c->p, c->b + start, c->pos - start);
    for (; *s; s++) {
        *s = upper(*s);
    }
    return APR_SUCCESS;
}

static int is_status(const char *w, int tagged)
{
    return !strcmp(w, "OK") || !strcmp(w, "NO") || !strcmp(w, "BAD") ||
           (!tagged && (!strcmp(w, "BYE") || !strcmp(w, "PREAUTH")));
}

static apr_status_t parse_data(dme_imap_resp_t *r, cur_t *c)
{
    apr_status_t rv;

    if (at_crlf(c)) {
        return expect_crlf(c);
    }
    if (expect_sp(c) != APR_SUCCESS) {
        return DME_EPROTO;
    }
    if ((rv = parse_seq(r->items, c)) != APR_SUCCESS) {
        return rv;
    }
    return expect_crlf(c);
}

/* After "* ": a status, "n NAME ..." or "NAME ...". */
static apr_status_t parse_untagged(dme_imap_resp_t *r, cur_t *c)
{
    apr_uint64_t n;
    const char *w;

    if (read_word(&w, c) != APR_SUCCESS) {
        return DME_EPROTO;
    }
    if (dig(*w)) {
        if (to_u64(&n, w, strlen(w)) != APR_SUCCESS || n > APR_UINT32_MAX ||
            expect_sp(c) != APR_SUCCESS || read_word(&w, c) != APR_SUCCESS ||
            dig(*w) || is_status(w, 0)) {
            return DME_EPROTO;
        }
        r->number = (apr_uint32_t)n;
        r->has_number = 1;
    } else if (is_status(w, 0)) {
        r->status = w;
        return parse_status(r, c);
    }
    r->name = w;
    return parse_data(r, c);
}

static int tag_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("(){%*\"\\+", ch);
}

static apr_status_t parse_tagged(dme_imap_resp_t *r, cur_t *c)
{
    apr_size_t start = c->pos;
    const char *w;

    while (c->pos < c->len && tag_char((unsigned char)c->b[c->pos])) {
        c->pos++;
    }
    if (c->pos == start) {
        return DME_EPROTO;
    }
    r->tag = apr_pstrmemdup(c->p, c->b + start, c->pos - start);
    if (expect_sp(c) != APR_SUCCESS || read_word(&w, c) != APR_SUCCESS ||
        !is_status(w, 1)) {
        return DME_EPROTO;
    }
    r->status = w;
    return parse_status(r, c);
}

static apr_status_t parse_resp(dme_imap_resp_t **out, cur_t *c)
{
    dme_imap_resp_t *r = apr_pcalloc(c->p, sizeof(*r));

    *out = r;
    r->items = apr_array_make(c->p, 4, sizeof(dme_imap_val_t *));
    if (at(c, '+')) {
        r->tag = "+";
        r->text = "";
        c->pos++;
        if (at_crlf(c)) {
            return expect_crlf(c);
        }
        return expect_sp(c) == APR_SUCCESS ? parse_text(&r->text, c)
                                           : DME_EPROTO;
    }
    if (at(c, '*')) {
        r->tag = "*";
        c->pos++;
        return expect_sp(c) == APR_SUCCESS ? parse_untagged(r, c) : DME_EPROTO;
    }
    return parse_tagged(r, c);
}

apr_status_t dme_imap_parse_responses(apr_array_header_t **resps,
                                      const char *buf, apr_size_t len,
                                      apr_pool_t *p)
{
    cur_t c = {buf, len, 0, p, 0};
    apr_array_header_t *all = apr_array_make(p, 8, sizeof(void *));
    dme_imap_resp_t *r;
    apr_status_t rv;

    while (c.pos < c.len) {
        if ((rv = parse_resp(&r, &c)) != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(all, dme_imap_resp_t *) = r;
    }
    *resps = all;
    return APR_SUCCESS;
}

/* ---- helpers ---------------------------------------------------------- */

static const dme_imap_val_t *item(const apr_array_header_t *a, int i)
{
    return APR_ARRAY_IDX(a, i, const dme_imap_val_t *);
}

static int is_name(const char *have, const char *want)
{
    return have && !strcmp(have, want);
}

/* A number of 32 bits; min 1 for UIDs and the like, 0 for counts. */
static apr_status_t get_u32(apr_uint32_t *out, const dme_imap_val_t *v,
                            apr_uint64_t min)
{
    if (v->kind != DME_IMAP_NUMBER || v->num < min || v->num > APR_UINT32_MAX) {
        return DME_EPROTO;
    }
    *out = (apr_uint32_t)v->num;
    return APR_SUCCESS;
}

static apr_status_t fetch_flags(dme_imap_fetch_t *f, const dme_imap_val_t *v,
                                apr_pool_t *p)
{
    int i;

    if (v->kind != DME_IMAP_LIST) {
        return DME_EPROTO;
    }
    f->flags = apr_array_make(p, v->items->nelts + 1, sizeof(const char *));
    for (i = 0; i < v->items->nelts; i++) {
        if (item(v->items, i)->kind != DME_IMAP_ATOM) {
            return DME_EPROTO;
        }
        APR_ARRAY_PUSH(f->flags, const char *) = item(v->items, i)->str;
    }
    return APR_SUCCESS;
}

/* BODY[...]: only the first one counts; *seen records that it came. */
static apr_status_t fetch_body(dme_imap_fetch_t *f, const dme_imap_val_t *v,
                               int *seen)
{
    if (v->kind != DME_IMAP_STRING && v->kind != DME_IMAP_NIL) {
        return DME_EPROTO;
    }
    if (!*seen && v->kind == DME_IMAP_STRING) {
        f->body = v->str;
        f->body_len = v->len;
        f->has_body = 1;
    }
    *seen = 1;
    return APR_SUCCESS;
}

static apr_status_t fetch_item(dme_imap_fetch_t *f, const dme_imap_val_t *k,
                               const dme_imap_val_t *v, int *seen,
                               apr_pool_t *p)
{
    const char *n = k->str;

    if (k->kind != DME_IMAP_ATOM) {
        return DME_EPROTO;
    }
    if (!strcasecmp(n, "UID")) {
        return get_u32(&f->uid, v, 1);
    }
    if (!strcasecmp(n, "FLAGS")) {
        return fetch_flags(f, v, p);
    }
    if (!strcasecmp(n, "RFC822.SIZE")) {
        f->has_size = v->kind == DME_IMAP_NUMBER;
        f->size = v->num;
        return f->has_size ? APR_SUCCESS : DME_EPROTO;
    }
    if (!strcasecmp(n, "INTERNALDATE")) {
        f->has_date =
            v->kind == DME_IMAP_STRING &&
            dme_imap_date_parse(&f->internaldate, v->str) == APR_SUCCESS;
        return f->has_date ? APR_SUCCESS : DME_EPROTO;
    }
    if (!strcasecmp(n, "MODSEQ")) {
        if (v->kind != DME_IMAP_LIST || v->items->nelts != 1 ||
            item(v->items, 0)->kind != DME_IMAP_NUMBER) {
            return DME_EPROTO;
        }
        f->modseq = item(v->items, 0)->num;
        return APR_SUCCESS;
    }
    if (!strncasecmp(n, "BODY[", 5)) {
        return fetch_body(f, v, seen);
    }
    return APR_SUCCESS;
}

apr_status_t dme_imap_fetch_get(dme_imap_fetch_t **out,
                                const dme_imap_resp_t *r, apr_pool_t *p)
{
    const dme_imap_val_t *l;
    dme_imap_fetch_t *f;
    apr_status_t rv;
    int i, seen = 0;

    if (!r || !is_name(r->name, "FETCH") || !r->has_number) {
        return APR_EINVAL;
    }
    if (r->number == 0 || r->items->nelts != 1) {
        return DME_EPROTO;
    }
    l = item(r->items, 0);
    if (l->kind != DME_IMAP_LIST || l->items->nelts % 2) {
        return DME_EPROTO;
    }
    f = apr_pcalloc(p, sizeof(*f));
    f->seq = r->number;
    for (i = 0; i < l->items->nelts; i += 2) {
        rv = fetch_item(f, item(l->items, i), item(l->items, i + 1), &seen, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    *out = f;
    return APR_SUCCESS;
}

/* n decimal digits at s into *out; 0 if any is not a digit. */
static int digits(int *out, const char *s, int n)
{
    int v = 0;

    for (; n > 0; n--, s++) {
        if (!dig(*s)) {
            return 0;
        }
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1 January of year 1 (proleptic Gregorian) to y-m-d. */
static apr_int64_t day_number(int y, int m, int d)
{
    static const int before[12] = {0,   31,  59,  90,  120, 151,
                                   181, 212, 243, 273, 304, 334};
    apr_int64_t py = y - 1;

    return 365 * py + py / 4 - py / 100 + py / 400 + before[m - 1] + d - 1 +
           (m > 2 && leap(y));
}

static int month_of(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int m;

    for (m = 0; m < 12; m++) {
        if (!strncasecmp(s, names + 3 * m, 3)) {
            return m + 1;
        }
    }
    return 0;
}

apr_status_t dme_imap_date_parse(apr_time_t *t, const char *s)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    int d, m, y, hh, mi, ss, zh, zm;
    apr_int64_t secs;

    /* "dd-Mon-yyyy hh:mm:ss +zzzz", the day possibly " d" */
    if (!s || strlen(s) != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' ||
        s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-')) {
        return APR_EBADDATE;
    }
    if (!digits(&d, s + (s[0] == ' '), 2 - (s[0] == ' ')) ||
        !(m = month_of(s + 3)) || !digits(&y, s + 7, 4) ||
        !digits(&hh, s + 12, 2) || !digits(&mi, s + 15, 2) ||
        !digits(&ss, s + 18, 2) || !digits(&zh, s + 22, 2) ||
        !digits(&zm, s + 24, 2)) {
        return APR_EBADDATE;
    }
    if (y < 1 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap(y)) ||
        hh > 23 || mi > 59 || ss > 60 || zh > 23 || zm > 59) {
        return APR_EBADDATE;
    }
    secs = (day_number(y, m, d) - day_number(1970, 1, 1)) * 86400 + hh * 3600 +
           mi * 60 + ss;
    secs -= (s[21] == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
    *t = apr_time_from_sec(secs);
    return APR_SUCCESS;
}

apr_status_t dme_imap_search_get(apr_array_header_t **uids,
                                 const dme_imap_resp_t *r, apr_pool_t *p)
{
    apr_array_header_t *a;
    const dme_imap_val_t *v;
    int i, n;

    if (!r || !is_name(r->name, "SEARCH") || r->has_number) {
        return APR_EINVAL;
    }
    n = r->items->nelts;
    a = apr_array_make(p, n ? n : 1, sizeof(apr_uint32_t));
    for (i = 0; i < n; i++) {
        v = item(r->items, i);
        if (i == n - 1 && v->kind == DME_IMAP_LIST && v->items->nelts == 2 &&
            item(v->items, 0)->kind == DME_IMAP_ATOM &&
            !strcasecmp(item(v->items, 0)->str, "MODSEQ") &&
            item(v->items, 1)->kind == DME_IMAP_NUMBER) {
            break;
        }
        if (get_u32(&APR_ARRAY_PUSH(a, apr_uint32_t), v, 1) != APR_SUCCESS) {
            return DME_EPROTO;
        }
    }
    *uids = a;
    return APR_SUCCESS;
}

apr_status_t dme_imap_status_get(apr_uint32_t *messages, apr_uint32_t *uidnext,
                                 apr_uint32_t *uidvalidity,
                                 apr_uint64_t *highestmodseq,
                                 const dme_imap_resp_t *r)
{
    apr_uint32_t msg = 0, next = 0, valid = 0;
    apr_uint64_t hms = 0;
    const dme_imap_val_t *l, *k, *v;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!r || !is_name(r->name, "STATUS") || r->has_number) {
        return APR_EINVAL;
    }
    if (r->items->nelts != 2 || item(r->items, 0)->kind == DME_IMAP_LIST ||
        (l = item(r->items, 1))->kind != DME_IMAP_LIST || l->items->nelts % 2) {
        return DME_EPROTO;
    }
    for (i = 0; i < l->items->nelts && rv == APR_SUCCESS; i += 2) {
        k = item(l->items, i);
        v = item(l->items, i + 1);
        if (k->kind != DME_IMAP_ATOM) {
            rv = DME_EPROTO;
        } else if (!strcasecmp(k->str, "MESSAGES")) {
            rv = get_u32(&msg, v, 0);
        } else if (!strcasecmp(k->str, "UIDNEXT")) {
            rv = get_u32(&next, v, 1);
        } else if (!strcasecmp(k->str, "UIDVALIDITY")) {
            rv = get_u32(&valid, v, 1);
        } else if (!strcasecmp(k->str, "HIGHESTMODSEQ")) {
            hms = v->num;
            rv = v->kind == DME_IMAP_NUMBER ? APR_SUCCESS : DME_EPROTO;
        }
    }
    if (messages) {
        *messages = rv == APR_SUCCESS ? msg : 0;
    }
    if (uidnext) {
        *uidnext = rv == APR_SUCCESS ? next : 0;
    }
    if (uidvalidity) {
        *uidvalidity = rv == APR_SUCCESS ? valid : 0;
    }
    if (highestmodseq) {
        *highestmodseq = rv == APR_SUCCESS ? hms : 0;
    }
    return rv;
}

const char *dme_imap_quote(const char *s, apr_pool_t *p)
{
    const unsigned char *u;
    apr_size_t n = 0;
    char *out, *w;

    if (!s) {
        return NULL;
    }
    for (u = (const unsigned char *)s; *u; u++) {
        if (*u == '\r' || *u == '\n' || *u > 127) {
            return NULL;
        }
        n += (*u == '"' || *u == '\\') ? 2 : 1;
    }
    w = out = apr_palloc(p, n + 3);
    *w++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            *w++ = '\\';
        }
        *w++ = *s;
    }
    *w++ = '"';
    *w = '\0';
    return out;
}

apr_status_t dme_imap_uid_set(const char **out, const apr_uint32_t *uids, int n,
                              apr_pool_t *p)
{
    /* ",4294967295:4294967295" is the longest run: 22 bytes */
    enum { RUN_MAX = 22 };
    apr_uint32_t first, last;
    char *buf, *w;
    int i;

    if (n < 1 || !uids) {
        return APR_EINVAL;
    }
    for (i = 0; i < n; i++) {
        if (uids[i] == 0 || (i > 0 && uids[i] < uids[i - 1])) {
            return APR_EINVAL;
        }
    }
    w = buf = apr_palloc(p, (apr_size_t)n * RUN_MAX + 1);
    for (i = 0; i < n; i++) {
        first = last = uids[i];
        while (i + 1 < n && (uids[i + 1] == last || uids[i + 1] == last + 1)) {
            last = uids[++i];
        }
        if (w != buf) {
            *w++ = ',';
        }
        w += first == last ? apr_snprintf(w, RUN_MAX, "%u", first)
                           : apr_snprintf(w, RUN_MAX, "%u:%u", first, last);
    }
    *out = buf;
    return APR_SUCCESS;
}
