/* Unit tests for the IMAP response parser: framing, values, helpers and
 * the inputs it must refuse. */
#include <stdlib.h>
#include <apr_strings.h>

#include "unit.h"
#include "dme_imap_parse.h"

static apr_pool_t *pool;

#define S(lit) lit, sizeof(lit) - 1

/* Parse s, expecting exactly n responses; the first, or NULL. */
static const dme_imap_resp_t *parse_n(const char *s, apr_size_t len, int n)
{
    apr_array_header_t *a = NULL;
    apr_status_t rv = dme_imap_parse_responses(&a, s, len, pool);

    CHECK_INT(rv, APR_SUCCESS);
    if (rv != APR_SUCCESS) {
        return NULL;
    }
    CHECK_INT(a->nelts, n);
    return a->nelts ? APR_ARRAY_IDX(a, 0, const dme_imap_resp_t *) : NULL;
}

static const dme_imap_val_t *at(const apr_array_header_t *a, int i)
{
    return (a && i < a->nelts) ? APR_ARRAY_IDX(a, i, const dme_imap_val_t *)
                               : NULL;
}

static int kind(const dme_imap_val_t *v)
{
    return v ? (int)v->kind : -1;
}

static apr_status_t parse_rv(const char *s, apr_size_t len)
{
    apr_array_header_t *a;

    return dme_imap_parse_responses(&a, s, len, pool);
}

static apr_status_t find(apr_size_t *end, const char *s, apr_size_t len,
                         const char *tag)
{
    return dme_imap_find_tagged(end, NULL, s, len, tag);
}

static void test_literal_framing(void)
{
    /* The body holds what looks like the end of the answer. */
    static const char r[] = "* 1 FETCH (UID 7 BODY[] {24}\r\n"
                            "Subject: x\r\nD7 OK done\r\n)\r\n"
                            "D7 OK Fetch completed.\r\n";
    apr_size_t end = 0, cut = sizeof(r) - 1 - 24;
    const dme_imap_resp_t *x;
    dme_imap_fetch_t *f = NULL;

    CHECK_INT(find(&end, S(r), "D7"), APR_SUCCESS);
    CHECK_INT(end, sizeof(r) - 1);
    CHECK_INT(find(&end, r, cut, "D7"), APR_INCOMPLETE);
    CHECK_INT(find(&end, S(r), "D8"), APR_INCOMPLETE);

    x = parse_n(S(r), 2);
    CHECK(x && dme_imap_fetch_get(&f, x, pool) == APR_SUCCESS);
    if (f) {
        CHECK_INT(f->uid, 7);
        CHECK_INT(f->has_body, 1);
        CHECK_INT(f->body_len, 24);
        CHECK(f->body && !memcmp(f->body, "Subject: x\r\nD7 OK done\r\n", 25));
        CHECK_INT(f->body[24], '\0');
    }
}

static void test_literal_nul(void)
{
    static const char r[] = "* 2 FETCH (BODY[1] {5}\r\na\0b\r\n)\r\n"
                            "* 3 FETCH (BODY[1] ~{3}\r\n\0\0\0)\r\n";
    apr_array_header_t *a = NULL;
    const dme_imap_val_t *l, *v;

    CHECK_INT(dme_imap_parse_responses(&a, S(r), pool), APR_SUCCESS);
    if (!a || a->nelts != 2) {
        CHECK(0);
        return;
    }
    l = at(APR_ARRAY_IDX(a, 0, dme_imap_resp_t *)->items, 0);
    v = l ? at(l->items, 1) : NULL;
    CHECK(v && v->kind == DME_IMAP_STRING);
    CHECK(v && v->len == 5 && !memcmp(v->str, "a\0b\r\n", 6));
    l = at(APR_ARRAY_IDX(a, 1, dme_imap_resp_t *)->items, 0);
    v = l ? at(l->items, 1) : NULL;
    CHECK(v && v->len == 3 && !memcmp(v->str, "\0\0\0", 4));
}

static void test_quoted_and_atoms(void)
{
    static const char r[] =
        "* LIST (\\HasNoChildren \\Marked) \"/\" \"a \\\"b\\\" \\\\c\"\r\n";
    static const char f[] =
        "* FLAGS (\\Answered \\Flagged $Forwarded \\* NonJunk)\r\n";
    const dme_imap_resp_t *x = parse_n(S(r), 1);
    const dme_imap_val_t *l, *v;

    CHECK(x && x->name && !x->status && !x->has_number);
    CHECK_STR(x ? x->tag : NULL, "*");
    CHECK_STR(x ? x->name : NULL, "LIST");
    CHECK_INT(x ? x->items->nelts : 0, 3);
    l = x ? at(x->items, 0) : NULL;
    CHECK(l && l->kind == DME_IMAP_LIST && l->items->nelts == 2);
    CHECK_STR(l ? at(l->items, 0)->str : NULL, "\\HasNoChildren");
    CHECK_INT(kind(l ? at(l->items, 1) : NULL), DME_IMAP_ATOM);
    v = x ? at(x->items, 2) : NULL;
    CHECK_INT(kind(v), DME_IMAP_STRING);
    CHECK_STR(v ? v->str : NULL, "a \"b\" \\c");
    CHECK_INT(v ? v->len : 0, 8);

    x = parse_n(S(f), 1);
    l = x ? at(x->items, 0) : NULL;
    CHECK_INT(l ? l->items->nelts : 0, 5);
    CHECK_STR(l ? at(l->items, 2)->str : NULL, "$Forwarded");
    CHECK_STR(l ? at(l->items, 3)->str : NULL, "\\*");
    CHECK_STR(l ? at(l->items, 4)->str : NULL, "NonJunk");
}

static void test_section_atoms(void)
{
    static const char r[] =
        "* 4 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID \"X-A]\")] \"id\" "
        "BODY[]<0> {2}\r\nhi BODY[1.2.MIME] NIL)\r\n";
    const dme_imap_resp_t *x = parse_n(S(r), 1);
    const dme_imap_val_t *l = x ? at(x->items, 0) : NULL;
    dme_imap_fetch_t *f = NULL;

    CHECK_INT(l ? l->items->nelts : 0, 6);
    CHECK_STR(l ? at(l->items, 0)->str : NULL,
              "BODY[HEADER.FIELDS (MESSAGE-ID \"X-A]\")]");
    CHECK_STR(l ? at(l->items, 2)->str : NULL, "BODY[]<0>");
    CHECK_STR(l ? at(l->items, 3)->str : NULL, "hi");
    CHECK_STR(l ? at(l->items, 4)->str : NULL, "BODY[1.2.MIME]");
    CHECK_INT(kind(l ? at(l->items, 5) : NULL), DME_IMAP_NIL);
    /* The first BODY[...] item is the one taken. */
    CHECK(x && dme_imap_fetch_get(&f, x, pool) == APR_SUCCESS);
    CHECK_STR(f ? f->body : NULL, "id");
}

static void test_nil_body(void)
{
    static const char r[] = "* 5 FETCH (UID 10 BODY[TEXT] NIL)\r\n";
    const dme_imap_resp_t *x = parse_n(S(r), 1);
    dme_imap_fetch_t *f = NULL;

    CHECK(x && dme_imap_fetch_get(&f, x, pool) == APR_SUCCESS);
    CHECK_INT(f ? f->has_body : -1, 0);
    CHECK(f && f->body == NULL);
    CHECK_INT(f ? f->uid : 0, 10);
    CHECK(f && f->flags == NULL && !f->has_size && !f->has_date);
}

static void test_nested_lists(void)
{
    static const char r[] = "* NAMESPACE ((\"\" \"/\")) NIL ((\"Shared/\" "
                            "\"/\" (\"X\" (1 (2 ()))))) \r\n";
    static const char ok[] = "* NAMESPACE ((\"\" \"/\")) NIL ((\"Shared/\" "
                             "\"/\" (\"X\" (1 (2 ())))))\r\n";
    const dme_imap_resp_t *x;
    const dme_imap_val_t *v;

    /* trailing space before CRLF is outside the grammar */
    CHECK_INT(parse_rv(S(r)), DME_EPROTO);
    x = parse_n(S(ok), 1);
    CHECK_INT(x ? x->items->nelts : 0, 3);
    CHECK_INT(kind(x ? at(x->items, 1) : NULL), DME_IMAP_NIL);
    v = x ? at(x->items, 2) : NULL; /* (("Shared/" ...)) */
    v = v ? at(v->items, 0) : NULL; /* ("Shared/" "/" (...)) */
    CHECK_STR(v ? at(v->items, 0)->str : NULL, "Shared/");
    v = v ? at(v->items, 2) : NULL; /* ("X" (1 (2 ()))) */
    v = v ? at(v->items, 1) : NULL; /* (1 (2 ())) */
    CHECK_INT(v && at(v->items, 0) ? at(v->items, 0)->num : 0, 1);
    v = v ? at(v->items, 1) : NULL; /* (2 ()) */
    CHECK_INT(kind(v ? at(v->items, 0) : NULL), DME_IMAP_NUMBER);
    v = v ? at(v->items, 1) : NULL; /* () */
    CHECK(v && v->kind == DME_IMAP_LIST && v->items->nelts == 0);
}

static void test_fetch_all(void)
{
    static const char r[] =
        "* 12 FETCH (UID 4827313 FLAGS (\\Seen $Forwarded) "
        "RFC822.SIZE 44827 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
        "MODSEQ (12121231000) X-GUID abc ENVELOPE (NIL \"s\" NIL) "
        "BODY[HEADER.FIELDS (FROM)] {9}\r\nFrom: a\r\n)\r\n";
    const dme_imap_resp_t *x = parse_n(S(r), 1);
    dme_imap_fetch_t *f = NULL;

    CHECK(x && x->has_number && x->number == 12);
    CHECK_STR(x ? x->name : NULL, "FETCH");
    CHECK(x && dme_imap_fetch_get(&f, x, pool) == APR_SUCCESS);
    if (!f) {
        return;
    }
    CHECK_INT(f->seq, 12);
    CHECK_INT(f->uid, 4827313);
    CHECK_INT(f->flags ? f->flags->nelts : 0, 2);
    CHECK_STR(f->flags ? APR_ARRAY_IDX(f->flags, 0, const char *) : NULL,
              "\\Seen");
    CHECK_STR(f->flags ? APR_ARRAY_IDX(f->flags, 1, const char *) : NULL,
              "$Forwarded");
    CHECK(f->has_size && f->size == 44827);
    CHECK(f->has_date && f->internaldate == apr_time_from_sec(837596665));
    CHECK_INT(f->modseq, 12121231000LL);
    CHECK(f->has_body && f->body_len == 9);
    CHECK_STR(f->body, "From: a\r\n");
}

static void test_fetch_bad(void)
{
    static const char *bad[] = {
        "* 1 FETCH (UID 4294967296)\r\n",
        "* 1 FETCH (UID 0)\r\n",
        "* 1 FETCH (UID)\r\n",
        "* 1 FETCH (FLAGS (\"x\"))\r\n",
        "* 1 FETCH (FLAGS \\Seen)\r\n",
        "* 1 FETCH (RFC822.SIZE x)\r\n",
        "* 1 FETCH (BODY[] (a))\r\n",
        "* 1 FETCH (MODSEQ 5)\r\n",
        "* 1 FETCH (INTERNALDATE \"x\")\r\n",
        "* 0 FETCH (UID 1)\r\n",
        "* 1 FETCH UID 1\r\n",
        "* 1 FETCH (\"UID\" 1)\r\n",
    };
    dme_imap_fetch_t *f;
    const dme_imap_resp_t *x;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        x = parse_n(bad[i], strlen(bad[i]), 1);
        CHECK_INT(x ? dme_imap_fetch_get(&f, x, pool) : -1, DME_EPROTO);
    }
    x = parse_n(S("* 3 EXISTS\r\n"), 1);
    CHECK(x && x->number == 3 && x->items->nelts == 0);
    CHECK_STR(x ? x->name : NULL, "EXISTS");
    CHECK_INT(x ? dme_imap_fetch_get(&f, x, pool) : -1, APR_EINVAL);
}

static void test_search(void)
{
    apr_array_header_t *u = NULL;
    const dme_imap_resp_t *x = parse_n(S("* SEARCH\r\n"), 1);
    char *big, *w;
    int i;

    CHECK(x && dme_imap_search_get(&u, x, pool) == APR_SUCCESS);
    CHECK_INT(u ? u->nelts : -1, 0);

    w = big = apr_palloc(pool, 10000 * 12 + 16);
    w += sprintf(w, "* SEARCH");
    for (i = 0; i < 10000; i++) {
        w += sprintf(w, " %u", 4000000000u + (unsigned)i * 7);
    }
    w += sprintf(w, "\r\n");
    x = parse_n(big, (apr_size_t)(w - big), 1);
    u = NULL;
    CHECK(x && dme_imap_search_get(&u, x, pool) == APR_SUCCESS);
    CHECK_INT(u ? u->nelts : 0, 10000);
    CHECK_INT(u ? APR_ARRAY_IDX(u, 0, apr_uint32_t) : 0, 4000000000u);
    CHECK_INT(u ? APR_ARRAY_IDX(u, 9999, apr_uint32_t) : 0,
              4000000000u + 9999 * 7);

    x = parse_n(S("* SEARCH 2 5 (MODSEQ 917162500)\r\n"), 1);
    CHECK(x && dme_imap_search_get(&u, x, pool) == APR_SUCCESS);
    CHECK_INT(u ? u->nelts : 0, 2);
    CHECK_INT(u ? APR_ARRAY_IDX(u, 1, apr_uint32_t) : 0, 5);
    x = parse_n(S("* SEARCH 2 x\r\n"), 1);
    CHECK_INT(x ? dme_imap_search_get(&u, x, pool) : -1, DME_EPROTO);
    x = parse_n(S("* SEARCH 4294967296\r\n"), 1);
    CHECK_INT(x ? dme_imap_search_get(&u, x, pool) : -1, DME_EPROTO);
}

static void test_status(void)
{
    static const char r[] = "* STATUS \"Sent Items\" (MESSAGES 3 RECENT 0 "
                            "UIDNEXT 9 UIDVALIDITY 1700000000 UNSEEN 1 "
                            "HIGHESTMODSEQ 18446744073709551615)\r\n";
    apr_uint32_t m = 1, n = 1, v = 1;
    apr_uint64_t h = 1;
    const dme_imap_resp_t *x = parse_n(S(r), 1);

    CHECK_INT(x ? dme_imap_status_get(&m, &n, &v, &h, x) : -1, APR_SUCCESS);
    CHECK_INT(m, 3);
    CHECK_INT(n, 9);
    CHECK_INT(v, 1700000000);
    CHECK(h == APR_UINT64_MAX);

    x = parse_n(S("* STATUS INBOX (MESSAGES 0)\r\n"), 1);
    CHECK_INT(x ? dme_imap_status_get(&m, &n, &v, &h, x) : -1, APR_SUCCESS);
    CHECK(m == 0 && n == 0 && v == 0 && h == 0);
    x = parse_n(S("* STATUS INBOX (UIDNEXT 0)\r\n"), 1);
    CHECK_INT(x ? dme_imap_status_get(&m, NULL, NULL, NULL, x) : -1,
              DME_EPROTO);
    x = parse_n(S("* STATUS INBOX (MESSAGES)\r\n"), 1);
    CHECK_INT(x ? dme_imap_status_get(&m, &n, &v, &h, x) : -1, DME_EPROTO);
}

static void test_status_lines(void)
{
    static const char r[] =
        "* OK [UIDVALIDITY 1234] UIDs valid\r\n"
        "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
        "A3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n";
    apr_array_header_t *a = NULL;
    const dme_imap_resp_t *x;

    CHECK_INT(dme_imap_parse_responses(&a, S(r), pool), APR_SUCCESS);
    CHECK_INT(a ? a->nelts : 0, 3);
    if (!a || a->nelts != 3) {
        return;
    }
    x = APR_ARRAY_IDX(a, 0, const dme_imap_resp_t *);
    CHECK_STR(x->status, "OK");
    CHECK_STR(x->code, "UIDVALIDITY 1234");
    CHECK_STR(x->text, "UIDs valid");
    CHECK(x->name == NULL && x->items->nelts == 0);
    x = APR_ARRAY_IDX(a, 1, const dme_imap_resp_t *);
    CHECK_STR(x->code, "PERMANENTFLAGS (\\Deleted \\Seen \\*)");
    x = APR_ARRAY_IDX(a, 2, const dme_imap_resp_t *);
    CHECK_STR(x->tag, "A3");
    CHECK_STR(x->status, "NO");
    CHECK_STR(x->code, "AUTHENTICATIONFAILED");
    CHECK_STR(x->text, "Authentication failed.");

    /* Texts are raw: unbalanced parentheses and quotes are fine. */
    x = parse_n(S("* BYE Server (shutting \"down\r\n"), 1);
    CHECK_STR(x ? x->status : NULL, "BYE");
    CHECK_STR(x ? x->text : NULL, "Server (shutting \"down");
    CHECK(x && x->code == NULL);
    x = parse_n(S("a1 ok\r\n"), 1);
    CHECK_STR(x ? x->status : NULL, "OK");
    CHECK_STR(x ? x->text : NULL, "");
    x = parse_n(S("* OK [ALERT]\r\n"), 1);
    CHECK_STR(x ? x->code : NULL, "ALERT");
    x = parse_n(S("+ idling (\r\n"), 1);
    CHECK_STR(x ? x->tag : NULL, "+");
    CHECK_STR(x ? x->text : NULL, "idling (");
    CHECK(x && !x->status && !x->name);
    x = parse_n(S("+\r\n"), 1);
    CHECK_STR(x ? x->text : NULL, "");
    x = parse_n(S("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as x\r\n"), 1);
    CHECK_STR(x ? x->status : NULL, "PREAUTH");
    x = parse_n(S("* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\n"), 1);
    CHECK_STR(x && at(x->items, 1) ? at(x->items, 1)->str : NULL, "LITERAL+");
}

/* Every prefix short of the whole is INCOMPLETE, with a state carried
 * along as the caller does and without one. */
static void test_incremental(void)
{
    static const char r[] = "* 1 FETCH (BODY[] {14}\r\nD9 OK fake\r\n\r\n)\r\n"
                            "* 2 FETCH (BODY[] {0}\r\n BODY[1] {3+}\r\n{1})\r\n"
                            "* 3 EXISTS\r\nD9 OK done\r\n";
    apr_size_t len = sizeof(r) - 1, i, end = 0;
    dme_imap_scan_t sc;
    int wrong = 0;
    char *copy;

    dme_imap_scan_init(&sc);
    for (i = 0; i < len; i++) {
        /* an exact-size copy lets valgrind see any read past i */
        copy = malloc(i + 1);
        memcpy(copy, r, i);
        wrong +=
            dme_imap_find_tagged(&end, &sc, copy, i, "D9") != APR_INCOMPLETE;
        wrong += find(&end, copy, i, "D9") != APR_INCOMPLETE;
        free(copy);
    }
    CHECK_INT(wrong, 0);
    CHECK_INT(dme_imap_find_tagged(&end, &sc, r, len, "D9"), APR_SUCCESS);
    CHECK_INT(end, len);
    CHECK_INT(sc.pos, len);
    end = 0;
    CHECK_INT(find(&end, r, len, "D9"), APR_SUCCESS);
    CHECK_INT(end, len);
    parse_n(r, len, 4);
}

/* A long answer fed in small pieces must not take quadratic time. */
static void test_large(void)
{
    enum { LINES = 100000, CHUNK = 2048, BODY = 8 * 1024 * 1024 };
    apr_size_t cap = LINES * 48 + BODY + 64, len = 0, fed, end = 0;
    char *buf = malloc(cap);
    dme_imap_scan_t sc = {0, 0, 0};
    apr_status_t rv = APR_INCOMPLETE;
    apr_array_header_t *a = NULL;
    int i, calls = 0;

    for (i = 1; i <= LINES; i++) {
        len += (apr_size_t)sprintf(
            buf + len, "* %d FETCH (UID %d FLAGS (\\Seen))\r\n", i, i + 100);
    }
    len += (apr_size_t)sprintf(buf + len, "* 1 FETCH (BODY[] {%d}\r\n", BODY);
    memset(buf + len, 'x', BODY);
    len += BODY;
    len += (apr_size_t)sprintf(buf + len, ")\r\nL1 OK done\r\n");
    for (fed = 0; fed < len && rv == APR_INCOMPLETE;) {
        fed = fed + CHUNK < len ? fed + CHUNK : len;
        rv = dme_imap_find_tagged(&end, &sc, buf, fed, "L1");
        calls++;
    }
    CHECK_INT(rv, APR_SUCCESS);
    CHECK_INT(end, len);
    CHECK(calls > 1000);
    CHECK_INT(dme_imap_parse_responses(&a, buf, len, pool), APR_SUCCESS);
    CHECK_INT(a ? a->nelts : 0, LINES + 2);
    free(buf);
}

/* "* X ((...))" CRLF with lists nested depth deep; its length */
static size_t nested(char *buf, int depth)
{
    size_t n = (size_t)sprintf(buf, "* X ");

    memset(buf + n, '(', (size_t)depth);
    n += (size_t)depth;
    memset(buf + n, ')', (size_t)depth);
    n += (size_t)depth;
    memcpy(buf + n, "\r\n", 2);
    return n + 2;
}

static void test_malformed(void)
{
    static const char *bad[] = {
        "* LIST () \"/\" \"INBOX\r\n",       /* unterminated quote */
        "* LIST () \"/\" \"a\\b\"\r\n",      /* bad escape */
        "* 1 FETCH (BODY[] {x}\r\nabc)\r\n", /* literal size not a number */
        "* 1 FETCH (BODY[] {}\r\n)\r\n",
        "* 1 FETCH (BODY[] {99999999}\r\nab)\r\n", /* over the cap */
        "* 1 FETCH (BODY[] {10}\r\nab)\r\n",       /* short literal */
        "* 1 FETCH (BODY[] {2}\nab)\r\n",
        "* SEARCH 18446744073709551616\r\n", /* overflowing number */
        "* 4294967296 EXISTS\r\n",
        "* 1 FETCH (FLAGS (\\Seen)\r\n", /* unbalanced parens */
        "* 1 FETCH (FLAGS \\Seen))\r\n",
        "* 1 FETCH (BODY[HEADER (A) NIL)\r\n", /* unbalanced bracket */
        "* 1 FETCH (UID 1)",                   /* missing CRLF */
        "* 1 FETCH (UID 1)\n",
        "* 1 FETCH (UID 1)\r",
        "A1 OK done",
        "* OK [ALERT done\r\n",
        "* OK [] x\r\n",
        "* OK [ALERT]x\r\n",
        "A1 BYE x\r\n", /* not a tagged status */
        "A1 FETCH x\r\n",
        "A1\r\n",
        "*\r\n",
        "* 3\r\n",
        "* 3 OK x\r\n",
        "*  SEARCH\r\n",
        "* SEARCH  1\r\n",
        "* SEARCH 1 \r\n",
        "( OK x\r\n",
        "* OK text\0more\r\n",
        "* OK text\rmore\r\n",
        "* OK send more {5}\r\n",
        "* LIST (a\x80) \"/\" x\r\n",
        "* LIST () \"/\" a\\b\r\n",
        "* X ]\r\n",
        "* X \"a\"b\r\n",
    };
    static const size_t lens[] = {[29] = 16}; /* the one with a NUL */
    char deep[DME_IMAP_DEPTH_MAX * 2 + 32];
    size_t i, n;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        apr_status_t rv;

        n = i < sizeof(lens) / sizeof(lens[0]) && lens[i] ? lens[i]
                                                          : strlen(bad[i]);
        rv = parse_rv(bad[i], n);
        if (rv != DME_EPROTO) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        CHECK_INT(rv, DME_EPROTO);
    }
    CHECK_INT(parse_rv(deep, nested(deep, DME_IMAP_DEPTH_MAX + 1)), DME_EPROTO);
    CHECK_INT(parse_rv(deep, nested(deep, DME_IMAP_DEPTH_MAX)), APR_SUCCESS);
}

static void test_framing_errors(void)
{
    apr_size_t end, n = DME_IMAP_LINE_MAX + 3;
    char *big = malloc(n);

    CHECK_INT(find(&end, S("* OK x\nA1 OK\r\n"), "A1"), DME_EPROTO);
    CHECK_INT(find(&end, S("\nA1 OK\r\n"), "A1"), DME_EPROTO);
    CHECK_INT(find(&end, S("* 1 FETCH (BODY[] {67108865}\r\n"), "A1"),
              DME_EPROTO);
    CHECK_INT(
        find(&end, S("* 1 FETCH (BODY[] {99999999999999999999}\r\n"), "A1"),
        DME_EPROTO);
    /* a literal at its largest is only waited for */
    CHECK_INT(find(&end, S("* 1 FETCH (BODY[] {67108864}\r\nab"), "A1"),
              APR_INCOMPLETE);
    CHECK_INT(find(&end, S("A1 OK\r\n"), ""), APR_EINVAL);
    CHECK_INT(find(&end, S("A1 OK\r\n"), "A 1"), APR_EINVAL);
    /* the tag must be followed by SP: A10 is not A1 */
    CHECK_INT(find(&end, S("A10 OK\r\nA1 OK\r\n"), "A1"), APR_SUCCESS);
    CHECK_INT(end, 15);
    CHECK_INT(find(&end, S("* OK {}\r\nA1 OK\r\n"), "A1"), APR_SUCCESS);
    CHECK_INT(find(&end, S("+ go\r\n"), "+"), APR_SUCCESS);

    /* DME_IMAP_LINE_MAX bytes and CRLF is the longest line accepted,
     * however the bytes arrive */
    memset(big, 'a', n);
    CHECK_INT(find(&end, big, DME_IMAP_LINE_MAX, "A1"), APR_INCOMPLETE);
    CHECK_INT(find(&end, big, DME_IMAP_LINE_MAX + 1, "A1"), DME_EPROTO);
    memcpy(big + DME_IMAP_LINE_MAX, "\r\n", 2);
    CHECK_INT(find(&end, big, DME_IMAP_LINE_MAX + 1, "A1"), APR_INCOMPLETE);
    CHECK_INT(find(&end, big, DME_IMAP_LINE_MAX + 2, "A1"), APR_INCOMPLETE);
    memcpy(big + DME_IMAP_LINE_MAX, "a\r\n", 3);
    CHECK_INT(find(&end, big, n, "A1"), DME_EPROTO);
    free(big);
}

static void test_date(void)
{
    apr_time_t t = 0;

    CHECK_INT(dme_imap_date_parse(&t, "17-Jul-1996 02:44:25 -0700"),
              APR_SUCCESS);
    CHECK(t == apr_time_from_sec(837596665));
    CHECK_INT(dme_imap_date_parse(&t, " 1-jan-1970 00:00:00 +0000"),
              APR_SUCCESS);
    CHECK(t == 0);
    CHECK_INT(dme_imap_date_parse(&t, "29-Feb-2024 23:59:59 +0000"),
              APR_SUCCESS);
    CHECK(t == apr_time_from_sec(1709251199));
    CHECK_INT(dme_imap_date_parse(&t, "01-Mar-2000 00:00:00 +0530"),
              APR_SUCCESS);
    CHECK(t == apr_time_from_sec(951849000));
    CHECK_INT(dme_imap_date_parse(&t, "01-Jan-1960 00:00:00 +0000"),
              APR_SUCCESS);
    CHECK(t == apr_time_from_sec(-315619200LL));
    CHECK_INT(dme_imap_date_parse(&t, "29-Feb-2023 00:00:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "31-Apr-2023 00:00:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "1-Jan-2023 00:00:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "01-Foo-2023 00:00:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "01-Jan-2023 24:00:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "01-Jan-2023 00:00:00 0000 "),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "01-Jan-2023 00:00:00 +0000 "),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, "01-Jan-2023 00:0a:00 +0000"),
              APR_EBADDATE);
    CHECK_INT(dme_imap_date_parse(&t, NULL), APR_EBADDATE);
}

static void test_quote(void)
{
    CHECK_STR(dme_imap_quote("INBOX", pool), "\"INBOX\"");
    CHECK_STR(dme_imap_quote("", pool), "\"\"");
    CHECK_STR(dme_imap_quote("p\"w\\d x", pool), "\"p\\\"w\\\\d x\"");
    CHECK(dme_imap_quote("a\r\nA2 DELETE INBOX", pool) == NULL);
    CHECK(dme_imap_quote("a\nb", pool) == NULL);
    CHECK(dme_imap_quote("gr\xc3\xbcn", pool) == NULL);
    CHECK(dme_imap_quote(NULL, pool) == NULL);
}

static void test_uid_set(void)
{
    static const apr_uint32_t a[] = {1, 2, 3, 4, 5, 9, 12, 13, 14};
    static const apr_uint32_t b[] = {7, 7, 8, 10, 4294967294u, 4294967295u};
    static const apr_uint32_t c[] = {3, 2};
    static const apr_uint32_t d[] = {0, 1};
    const char *s = NULL;

    CHECK_INT(dme_imap_uid_set(&s, a, 9, pool), APR_SUCCESS);
    CHECK_STR(s, "1:5,9,12:14");
    CHECK_INT(dme_imap_uid_set(&s, b, 6, pool), APR_SUCCESS);
    CHECK_STR(s, "7:8,10,4294967294:4294967295");
    CHECK_INT(dme_imap_uid_set(&s, b + 5, 1, pool), APR_SUCCESS);
    CHECK_STR(s, "4294967295");
    CHECK_INT(dme_imap_uid_set(&s, c, 2, pool), APR_EINVAL);
    CHECK_INT(dme_imap_uid_set(&s, d, 2, pool), APR_EINVAL);
    CHECK_INT(dme_imap_uid_set(&s, a, 0, pool), APR_EINVAL);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_literal_framing();
    test_literal_nul();
    test_quoted_and_atoms();
    test_section_atoms();
    test_nil_body();
    test_nested_lists();
    test_fetch_all();
    test_fetch_bad();
    test_search();
    test_status();
    test_status_lines();
    test_incremental();
    test_large();
    test_malformed();
    test_framing_errors();
    test_date();
    test_quote();
    test_uid_set();
    apr_pool_destroy(pool);
    apr_terminate();
    return unit_done("test_imap_parse");
}
