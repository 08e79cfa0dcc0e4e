/* Unit tests: minimal notes and the delta between held and current. */
#include "unit.h"
#include "dme_sync.h"

static void add(dme_notes_t *ns, apr_uint32_t uid, const char *flags)
{
    dme_note_t *n = apr_array_push(ns->notes);

    memset(n, 0, sizeof(*n));
    n->uid = uid;
    n->flags = flags;
    n->size = 1000 + uid;
    n->date = apr_time_from_sec(1700000000 + uid);
    dme_note_checksum(n, flags, "INBOX", n->size, n->date, "<id@x>");
}

static void test_checksum(apr_pool_t *p)
{
    dme_note_t a, b;

    /* md5("\\Seen\nINBOX\n1234\n1700000000\n<a@b>\n") */
    dme_note_checksum(&a, "\\Seen", "INBOX", 1234,
                      apr_time_from_sec(1700000000), "<a@b>");
    CHECK_STR(a.sum, "a5a31c30e4b0d4778e036908e3abab12");
    dme_note_checksum(&b, "", "INBOX", 1234, apr_time_from_sec(1700000000),
                      "<a@b>");
    CHECK(strcmp(a.sum, b.sum) != 0);
    dme_note_checksum(&b, "\\Seen", "Archive", 1234,
                      apr_time_from_sec(1700000000), "<a@b>");
    CHECK(strcmp(a.sum, b.sum) != 0);
    dme_note_checksum(&b, "\\Seen", "INBOX", 1235,
                      apr_time_from_sec(1700000000), "<a@b>");
    CHECK(strcmp(a.sum, b.sum) != 0);
}

static void test_flags_join(apr_pool_t *p)
{
    apr_array_header_t *f = apr_array_make(p, 4, sizeof(const char *));

    CHECK_STR(dme_note_flags_join(f, p), "");
    APR_ARRAY_PUSH(f, const char *) = "\\Seen";
    APR_ARRAY_PUSH(f, const char *) = "\\Recent";
    APR_ARRAY_PUSH(f, const char *) = "$Forwarded";
    APR_ARRAY_PUSH(f, const char *) = "\\Flagged";
    CHECK_STR(dme_note_flags_join(f, p), "$Forwarded \\Flagged \\Seen");
}

static void test_serialize(apr_pool_t *p)
{
    dme_notes_t *ns = dme_notes_make(42, 4, p), *back;
    const char *text;

    add(ns, 7, "");
    add(ns, 3, "\\Seen");
    dme_notes_sort(ns);
    text = dme_notes_serialize(ns, p);
    CHECK(strncmp(text, "v1 42\n3 ", 8) == 0);
    CHECK_INT(dme_notes_parse(&back, text, p), APR_SUCCESS);
    CHECK_INT(back->uidvalidity, 42);
    CHECK_INT(back->notes->nelts, 2);
    CHECK_INT(APR_ARRAY_IDX(back->notes, 1, dme_note_t).uid, 7);
    CHECK_STR(APR_ARRAY_IDX(back->notes, 1, dme_note_t).sum,
              APR_ARRAY_IDX(ns->notes, 1, dme_note_t).sum);
    CHECK_INT(dme_notes_parse(&back, "v2 1\n", p), APR_EINVAL);
    CHECK_INT(dme_notes_parse(&back, "v1 1\n5 abc\n", p), APR_EINVAL);
    CHECK_INT(dme_notes_parse(&back, "v1 99999999999\n", p), APR_EINVAL);
    CHECK_INT(
        dme_notes_parse(&back, "v1 1\n5 0123456789abcdef0123456789ABCDEF\n", p),
        APR_EINVAL);
    CHECK_INT(dme_notes_parse(&back, "v1 1\n", p), APR_SUCCESS);
    CHECK_INT(back->notes->nelts, 0);
}

static void test_ref(apr_pool_t *p)
{
    apr_uint32_t v, u;

    CHECK_STR(dme_note_ref(17, 4, p), "17:4");
    CHECK_INT(dme_note_ref_parse(&v, &u, "17:4"), APR_SUCCESS);
    CHECK_INT(v, 17);
    CHECK_INT(u, 4);
    CHECK_INT(dme_note_ref_parse(&v, &u, "17:0"), APR_EINVAL);
    CHECK_INT(dme_note_ref_parse(&v, &u, "17:4x"), APR_EINVAL);
    CHECK_INT(dme_note_ref_parse(&v, &u, ":4"), APR_EINVAL);
    CHECK_INT(dme_note_ref_parse(&v, &u, NULL), APR_EINVAL);
}

static void test_delta(apr_pool_t *p)
{
    dme_notes_t *held = dme_notes_make(5, 4, p), *cur = dme_notes_make(5, 4, p);
    dme_delta_t *d;

    add(held, 1, "");
    add(held, 2, "");
    add(held, 3, "");
    add(cur, 1, "");
    add(cur, 3, "\\Seen"); /* changed */
    add(cur, 4, "");       /* new */
    add(cur, 5, "");       /* new */
    CHECK_INT(dme_sync_delta(&d, held, cur, 0, p), APR_SUCCESS);
    CHECK_INT(d->deletes->nelts, 1);
    CHECK_INT(APR_ARRAY_IDX(d->deletes, 0, apr_uint32_t), 2);
    CHECK_INT(d->changes->nelts, 1);
    CHECK_INT(APR_ARRAY_IDX(d->changes, 0, dme_note_t).uid, 3);
    CHECK_STR(APR_ARRAY_IDX(d->changes, 0, dme_note_t).flags, "\\Seen");
    CHECK_INT(d->adds->nelts, 2);
    CHECK_INT(APR_ARRAY_IDX(d->adds, 0, dme_note_t).uid, 5); /* newest first */
    CHECK_INT(d->more, 0);
    CHECK_INT(d->next->notes->nelts, 4);
    /* what the client holds now equals the folder: nothing more to do */
    CHECK_INT(dme_sync_delta(&d, d->next, cur, 0, p), APR_SUCCESS);
    CHECK(dme_delta_is_empty(d));
}

static void test_paging(apr_pool_t *p)
{
    dme_notes_t *held = dme_notes_make(9, 4, p), *cur = dme_notes_make(9, 4, p);
    dme_delta_t *d;
    int pages = 0, seen = 0;
    apr_uint32_t i;

    for (i = 1; i <= 10; i++) {
        add(cur, i, "");
    }
    add(held, 20, ""); /* to be deleted */
    do {
        CHECK_INT(dme_sync_delta(&d, held, cur, 3, p), APR_SUCCESS);
        seen += d->adds->nelts + d->deletes->nelts;
        CHECK(d->adds->nelts + d->deletes->nelts <= 3);
        held = d->next;
        pages++;
    } while (d->more && pages < 10);
    CHECK_INT(pages, 4); /* 11 entries by 3 */
    CHECK_INT(seen, 11);
    CHECK_INT(held->notes->nelts, 10);
}

static void test_uidvalidity(apr_pool_t *p)
{
    dme_notes_t *held = dme_notes_make(1, 4, p), *cur = dme_notes_make(2, 4, p);
    dme_delta_t *d;
    apr_uint32_t i;

    for (i = 1; i <= 5; i++) {
        add(held, i, "");
        add(cur, i, "");
    }
    CHECK_INT(dme_sync_delta(&d, held, cur, 2, p), APR_SUCCESS);
    CHECK_INT(d->deletes->nelts, 5); /* never cut by the page */
    CHECK_INT(d->deletes_uidvalidity, 1);
    CHECK_INT(d->adds->nelts, 0);
    CHECK_INT(d->more, 1);
    CHECK_INT(d->next->uidvalidity, 2);
    CHECK_INT(d->next->notes->nelts, 0);
    CHECK_INT(dme_sync_delta(&d, d->next, cur, 0, p), APR_SUCCESS);
    CHECK_INT(d->adds->nelts, 5);
    CHECK_INT(d->deletes->nelts, 0);
}

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    test_checksum(p);
    test_flags_join(p);
    test_serialize(p);
    test_ref(p);
    test_delta(p);
    test_paging(p);
    test_uidvalidity(p);
    return unit_done("test_sync");
}
