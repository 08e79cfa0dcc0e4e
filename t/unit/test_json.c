/* Unit tests for lib/dme_json: Dovecot's push notes read strictly, and
 * the documents written for clients. jansson is used here directly only
 * to read the writer's output independently of the code under test. */
#include <stdlib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "unit.h"
#include "dme_json.h"

static apr_pool_t *pool;

/* Bodies Dovecot 2.3.19 PUT (OX driver, user_from_metadata) when
 * dovecot-lda delivered three mails to alice, captured byte for byte:
 * a plain one, one without From and Subject, and one with encoded-word
 * headers, a control character in the Subject and UTF-8 in the text. */
#define REAL_BODY                                                              \
    "{\"user\":\"alice\",\"event\":\"messageNew\",\"folder\":\"INBOX\","       \
    "\"imap-uidvalidity\":1796319848,\"imap-uid\":2,\"from\":\"Bob Example "   \
    "<bob@example.org>\",\"subject\":\"Lunch on Friday?\",\"snippet\":\"Hi "   \
    "Alice, shall we meet at noon? \\\"Quotes\\\" and a backslash \\\\ "       \
    "too.\",\"unseen\":2}"
#define REAL_BARE                                                              \
    "{\"user\":\"alice\",\"event\":\"messageNew\",\"folder\":\"INBOX\","       \
    "\"imap-uidvalidity\":1796319848,\"imap-uid\":3,\"snippet\":\"\","         \
    "\"unseen\":3}"
#define REAL_ENCODED                                                           \
    "{\"user\":\"alice\",\"event\":\"messageNew\",\"folder\":\"INBOX\","       \
    "\"imap-uidvalidity\":1796319848,\"imap-uid\":4,\"from\":\"=?UTF-8?Q?J="   \
    "C3=BCrgen_M=C3=BCller?= <jm@example.org>\",\"subject\":\"=?UTF-8?B?R3LD"  \
    "vMOfZQ==?= \\u0001ctl\",\"snippet\":\"Tab here, line next \xc3\xa9 "      \
    "line\",\"unseen\":4}"

/* The required fields, to which a test appends its own: "{" HEAD ... "}" */
#define HEAD                                                                   \
    "\"user\":\"alice\",\"folder\":\"INBOX\",\"event\":\"messageNew\","        \
    "\"imap-uidvalidity\":7,\"imap-uid\":9"

static apr_status_t parse(dme_push_event_t **ev, const char **why,
                          const char *body)
{
    return dme_json_push_parse(ev, why, body, strlen(body), pool);
}

/* body must be refused with APR_EINVAL and exactly this reason. */
static void refused(const char *body, const char *want, int line)
{
    dme_push_event_t *ev = (dme_push_event_t *)1;
    const char *why = NULL;
    apr_status_t rv = parse(&ev, &why, body);

    unit_checks++;
    if (rv != APR_EINVAL || ev != NULL || !why || strcmp(why, want) != 0) {
        unit_failures++;
        fprintf(stderr, "%s:%d: rv %d, why \"%s\", want \"%s\": %s\n", __FILE__,
                line, rv, why ? why : "(null)", want, body);
    }
}
#define REFUSED(body, why) refused((body), (why), __LINE__)

/* {HEAD,extra} must be read; returns the note or NULL. */
static dme_push_event_t *accepted(const char *extra, int line)
{
    const char *body = apr_pstrcat(pool, "{" HEAD, extra, "}", NULL);
    dme_push_event_t *ev = NULL;
    const char *why = "unset";
    apr_status_t rv = parse(&ev, &why, body);

    unit_checks++;
    if (rv != APR_SUCCESS || !ev || why) {
        unit_failures++;
        fprintf(stderr, "%s:%d: refused (rv %d, %s): %s\n", __FILE__, line, rv,
                why ? why : "(null)", body);
        return NULL;
    }
    return ev;
}
#define ACCEPTED(extra) accepted((extra), __LINE__)

static const char *with(const char *extra)
{
    return apr_pstrcat(pool, "{" HEAD, extra, "}", NULL);
}

/* A JSON string literal holding n copies of c. */
static const char *repeat(char c, apr_size_t n)
{
    char *s = apr_palloc(pool, n + 3);

    s[0] = '"';
    memset(s + 1, c, n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

static void test_real_bodies(void)
{
    dme_push_event_t *ev = NULL;
    const char *why = "unset";

    CHECK_INT(parse(&ev, &why, REAL_BODY), APR_SUCCESS);
    CHECK(why == NULL);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(ev->user, "alice");
        CHECK_STR(ev->folder, "INBOX");
        CHECK_STR(ev->event, "messageNew");
        CHECK_INT(ev->uidvalidity, 1796319848);
        CHECK_INT(ev->uid, 2);
        CHECK_STR(ev->from, "Bob Example <bob@example.org>");
        CHECK_STR(ev->subject, "Lunch on Friday?");
        CHECK_STR(ev->snippet, "Hi Alice, shall we meet at noon? "
                               "\"Quotes\" and a backslash \\ too.");
        CHECK_INT(ev->unseen, 2);
    }

    ev = NULL;
    CHECK_INT(parse(&ev, &why, REAL_BARE), APR_SUCCESS);
    if (ev) {
        CHECK_INT(ev->uid, 3);
        CHECK(ev->from == NULL);
        CHECK(ev->subject == NULL);
        CHECK_STR(ev->snippet, "");
        CHECK_INT(ev->unseen, 3);
    }

    ev = NULL;
    CHECK_INT(parse(&ev, &why, REAL_ENCODED), APR_SUCCESS);
    if (ev) {
        CHECK_INT(ev->uid, 4);
        /* Headers come raw, as in the message; decoding is not ours. */
        CHECK_STR(ev->from, "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= "
                            "<jm@example.org>");
        CHECK_STR(ev->subject, "=?UTF-8?B?R3LDvMOfZQ==?= \x01"
                               "ctl");
        CHECK_STR(ev->snippet, "Tab here, line next \xc3\xa9 line");
    }
}

static void test_fields(void)
{
    dme_push_event_t *ev;

    ev = ACCEPTED("");
    if (ev) {
        CHECK_STR(ev->user, "alice");
        CHECK_INT(ev->uidvalidity, 7);
        CHECK_INT(ev->uid, 9);
        CHECK(!ev->from && !ev->subject && !ev->snippet);
        CHECK_INT(ev->unseen, -1);
    }
    /* White space wherever JSON allows it. */
    ev = ACCEPTED(" , \"unseen\" : 0 \n");
    CHECK(ev && ev->unseen == 0);
    ev = ACCEPTED(",\"unseen\":2147483647");
    CHECK(ev && ev->unseen == 2147483647);
    /* Unknown keys are ignored, whatever their scalar value. */
    ev = ACCEPTED(",\"x\":null,\"y\":true,\"z\":1.5,\"w\":\"s\",\"v\":-3");
    CHECK(ev && ev->unseen == -1 && ev->from == NULL);
    /* Optional strings may hold anything but NUL, controls included. */
    ev = ACCEPTED(",\"from\":\"\",\"subject\":\"a\\nb\\u0001\","
                  "\"snippet\":\"\\\"\\\\/\\/\"");
    if (ev) {
        CHECK_STR(ev->from, "");
        CHECK_STR(ev->subject, "a\nb\x01");
        CHECK_STR(ev->snippet, "\"\\//");
    }
}

/* Non-ASCII names, raw or escaped (a surrogate pair too), and white
 * space around the object. */
static void test_names(void)
{
    dme_push_event_t *ev = NULL;
    const char *why = "unset";

    CHECK_INT(parse(&ev, &why,
                    " \r\n\t{\"user\":\"j\xc3\xbcrgen\",\"folder\":\"\\u00c4"
                    "rger/Sub \\ud83d\\ude00\",\"event\":\"MessageNew\","
                    "\"imap-uidvalidity\":1,\"imap-uid\":4294967295}\n "),
              APR_SUCCESS);
    CHECK(why == NULL);
    if (ev) {
        CHECK_STR(ev->user, "j\xc3\xbcrgen");
        CHECK_STR(ev->folder, "\xc3\x84rger/Sub \xf0\x9f\x98\x80");
        CHECK_STR(ev->event, "MessageNew");
        CHECK_INT(ev->uidvalidity, 1);
        CHECK_INT(ev->uid, 4294967295u);
    }
}

static void test_lengths(void)
{
    dme_push_event_t *ev = NULL;
    const char *why = "unset", *body;

    body = apr_pstrcat(pool, "{\"user\":", repeat('u', 255),
                       ",\"folder\":", repeat('f', 1024),
                       ",\"event\":", repeat('e', 64),
                       ",\"imap-uidvalidity\":1,\"imap-uid\":1}", NULL);
    CHECK_INT(parse(&ev, &why, body), APR_SUCCESS);
    if (ev) {
        CHECK_INT(strlen(ev->user), 255);
        CHECK_INT(strlen(ev->folder), 1024);
        CHECK_INT(strlen(ev->event), 64);
    }
    REFUSED(apr_pstrcat(pool, "{\"user\":", repeat('u', 256),
                        ",\"folder\":\"INBOX\",\"event\":\"e\","
                        "\"imap-uidvalidity\":1,\"imap-uid\":1}",
                        NULL),
            "user empty or too long");
    REFUSED(apr_pstrcat(pool, "{\"user\":\"a\",\"folder\":", repeat('f', 1025),
                        ",\"event\":\"e\",\"imap-uidvalidity\":1,"
                        "\"imap-uid\":1}",
                        NULL),
            "folder empty or too long");
    REFUSED(apr_pstrcat(pool, "{\"user\":\"a\",\"folder\":\"f\",\"event\":",
                        repeat('e', 65),
                        ",\"imap-uidvalidity\":1,\"imap-uid\":1}", NULL),
            "event empty or too long");
    /* Two bytes per character count: 128 x U+00FC is 256 bytes. */
    {
        char u[2 * 128 + 3], *q = u;
        int i;

        *q++ = '"';
        for (i = 0; i < 128; i++) {
            *q++ = '\xc3', *q++ = '\xbc';
        }
        *q++ = '"', *q = '\0';
        REFUSED(apr_pstrcat(pool, "{\"user\":", u,
                            ",\"folder\":\"f\",\"event\":\"e\","
                            "\"imap-uidvalidity\":1,\"imap-uid\":1}",
                            NULL),
                "user empty or too long");
    }
}

/* A note whose snippet pads it to exactly n bytes. */
static const char *note_of_size(apr_size_t n)
{
    const char *head = "{" HEAD ",\"snippet\":";
    apr_size_t pad = n - strlen(head) - 3; /* the quotes and the brace */

    return apr_pstrcat(pool, head, repeat('s', pad), "}", NULL);
}

static void test_size(void)
{
    dme_push_event_t *ev = NULL;
    const char *why = NULL, *body;
    apr_size_t text = DME_JSON_PUSH_MAX - strlen("{" HEAD ",\"snippet\":") - 3;

    body = note_of_size(DME_JSON_PUSH_MAX);
    CHECK_INT(strlen(body), DME_JSON_PUSH_MAX);
    CHECK_INT(parse(&ev, &why, body), APR_SUCCESS);
    CHECK(ev && strlen(ev->snippet) == text);

    ev = (dme_push_event_t *)1;
    body = note_of_size(DME_JSON_PUSH_MAX + 1);
    CHECK_INT(parse(&ev, &why, body), DME_ETOOBIG);
    CHECK(ev == NULL);
    CHECK_STR(why, "note too big");
}

static void test_syntax(void)
{
    dme_push_event_t *ev = (dme_push_event_t *)1;
    const char *why = "unset";

    REFUSED("", "not JSON");
    REFUSED("   ", "not JSON");
    REFUSED("{", "not JSON");
    REFUSED("{\"user\":\"alice\",}", "not JSON");
    REFUSED("{'user':'alice'}", "not JSON");
    REFUSED("{\"user\":\"alice\"", "not JSON");
    REFUSED("{\"user\":\"al\\xice\"}", "not JSON");
    REFUSED(with(",\"unseen\":NaN"), "not JSON");
    REFUSED(with(",\"unseen\":01"), "not JSON");
    REFUSED(with(",\"snippet\":\"tab\there\""), "not JSON");
    REFUSED(with(",\"x\":\"\\ud800\""), "not JSON");
    REFUSED(apr_pstrcat(pool, with(""), " x", NULL),
            "trailing garbage after the object");
    REFUSED(apr_pstrcat(pool, with(""), "{}", NULL),
            "trailing garbage after the object");
    REFUSED(with(",\"user\":\"bob\""), "duplicate key");
    REFUSED(with(",\"x\":1,\"x\":1"), "duplicate key");
    REFUSED(with(",\"imap-uid\":9"), "duplicate key");
    REFUSED("[]", "not an object");
    REFUSED("[" REAL_BODY "]", "not an object");
    REFUSED("\"alice\"", "not an object");
    REFUSED("5", "not an object");
    REFUSED("null", "not an object");
    REFUSED(with(",\"x\":{}"), "nested object or array");
    REFUSED(with(",\"x\":[1,2]"), "nested object or array");
    REFUSED(with(",\"from\":[\"a\"]"), "nested object or array");

    /* Raw bytes that are not UTF-8, in a value or a key. */
    REFUSED(with(",\"from\":\"\xff\""), "not UTF-8");
    REFUSED(with(",\"from\":\"\xc0\xaf\""), "not UTF-8");
    REFUSED(with(",\"\xe2\x82\":1"), "not UTF-8");

    /* NUL, escaped in a value or key, or raw in the text. */
    REFUSED(with(",\"snippet\":\"a\\u0000b\""), "NUL in a string");
    REFUSED(with(",\"x\\u0000\":1"), "NUL in a string");
    {
        static const char raw[] = "{\"user\":\"a\0b\"}";

        ev = (dme_push_event_t *)1;
        CHECK_INT(dme_json_push_parse(&ev, &why, raw, sizeof(raw) - 1, pool),
                  APR_EINVAL);
        CHECK(ev == NULL && why != NULL);
    }

    /* Deeper than the library ever goes: refused, never a crash. */
    {
        apr_size_t n = DME_JSON_PUSH_MAX / 2, i;
        char *deep = apr_palloc(pool, 2 * n + 1);

        for (i = 0; i < n; i++) {
            deep[i] = '[', deep[n + i] = ']';
        }
        deep[2 * n] = '\0';
        REFUSED(deep, "nested too deep");
    }

    /* Only len bytes are read: a valid prefix of a longer buffer. */
    {
        const char *body = apr_pstrcat(pool, with(""), "garbage", NULL);

        ev = NULL;
        CHECK_INT(dme_json_push_parse(&ev, &why, body,
                                      strlen(body) - strlen("garbage"), pool),
                  APR_SUCCESS);
        CHECK(ev != NULL);
        ev = (dme_push_event_t *)1;
        CHECK_INT(dme_json_push_parse(&ev, &why, NULL, 0, pool), APR_EINVAL);
        CHECK(ev == NULL);
        CHECK_STR(why, "not JSON");
    }
}

/* Each required field: missing, and of each wrong kind. */
static void test_required(void)
{
    static const char *const uid_why = "imap-uid not a 32-bit unsigned integer";
    static const char *const uv_why =
        "imap-uidvalidity not a 32-bit unsigned integer";
    const char *tail = ",\"imap-uidvalidity\":7,\"imap-uid\":9}";

    REFUSED("{\"folder\":\"INBOX\",\"event\":\"messageNew\","
            "\"imap-uidvalidity\":7,\"imap-uid\":9}",
            "user missing");
    REFUSED("{\"user\":\"alice\",\"event\":\"messageNew\","
            "\"imap-uidvalidity\":7,\"imap-uid\":9}",
            "folder missing");
    REFUSED("{\"user\":\"alice\",\"folder\":\"INBOX\","
            "\"imap-uidvalidity\":7,\"imap-uid\":9}",
            "event missing");
    REFUSED("{\"user\":\"alice\",\"folder\":\"INBOX\",\"event\":\"e\","
            "\"imap-uid\":9}",
            "imap-uidvalidity missing");
    REFUSED("{\"user\":\"alice\",\"folder\":\"INBOX\",\"event\":\"e\","
            "\"imap-uidvalidity\":7}",
            "imap-uid missing");
    REFUSED("{}", "user missing");

#define NOTE(user, folder, event)                                              \
    apr_pstrcat(pool, "{\"user\":", user, ",\"folder\":", folder,              \
                ",\"event\":", event, tail, NULL)
    REFUSED(NOTE("5", "\"f\"", "\"e\""), "user not a string");
    REFUSED(NOTE("null", "\"f\"", "\"e\""), "user not a string");
    REFUSED(NOTE("true", "\"f\"", "\"e\""), "user not a string");
    REFUSED(NOTE("\"\"", "\"f\"", "\"e\""), "user empty or too long");
    REFUSED(NOTE("\"a\\nb\"", "\"f\"", "\"e\""),
            "user holds a control character");
    REFUSED(NOTE("\"a\\u001fb\"", "\"f\"", "\"e\""),
            "user holds a control character");
    REFUSED(NOTE("\"a\\u007f\"", "\"f\"", "\"e\""),
            "user holds a control character");
    REFUSED(NOTE("\"\xc2\x85\"", "\"f\"", "\"e\""),
            "user holds a control character");
    REFUSED(NOTE("\"\\u009f\"", "\"f\"", "\"e\""),
            "user holds a control character");
    REFUSED(NOTE("\"a\"", "1", "\"e\""), "folder not a string");
    REFUSED(NOTE("\"a\"", "\"\"", "\"e\""), "folder empty or too long");
    REFUSED(NOTE("\"a\"", "\"In\\tbox\"", "\"e\""),
            "folder holds a control character");
    REFUSED(NOTE("\"a\"", "\"f\"", "[]"), "nested object or array");
    REFUSED(NOTE("\"a\"", "\"f\"", "0"), "event not a string");
    REFUSED(NOTE("\"a\"", "\"f\"", "\"\""), "event empty or too long");
    REFUSED(NOTE("\"a\"", "\"f\"", "\"message-new\""),
            "event not made of ASCII letters");
    REFUSED(NOTE("\"a\"", "\"f\"", "\"message1\""),
            "event not made of ASCII letters");
    REFUSED(NOTE("\"a\"", "\"f\"", "\"m\xc3\xa9ssage\""),
            "event not made of ASCII letters");
    /* U+00A0, right after the C1 controls, is no control. */
    {
        dme_push_event_t *ev = NULL;
        const char *why;

        CHECK_INT(
            parse(&ev, &why, NOTE("\"\\u00a0\"", "\"\xc2\xa0\"", "\"e\"")),
            APR_SUCCESS);
        CHECK(ev && strcmp(ev->user, "\xc2\xa0") == 0);
    }
#undef NOTE

#define UIDS(uv, uid)                                                          \
    apr_pstrcat(pool,                                                          \
                "{\"user\":\"a\",\"folder\":\"f\",\"event\":\"e\","            \
                "\"imap-uidvalidity\":",                                       \
                uv, ",\"imap-uid\":", uid, "}", NULL)
    REFUSED(UIDS("7", "\"5\""), uid_why);
    REFUSED(UIDS("7", "5.0"), uid_why);
    REFUSED(UIDS("7", "5e0"), uid_why);
    REFUSED(UIDS("7", "-1"), uid_why);
    REFUSED(UIDS("7", "0"), uid_why);
    REFUSED(UIDS("7", "4294967296"), uid_why);
    REFUSED(UIDS("7", "null"), uid_why);
    REFUSED(UIDS("7", "true"), uid_why);
    REFUSED(UIDS("7", "99999999999999999999"), "number out of range");
    REFUSED(UIDS("\"7\"", "5"), uv_why);
    REFUSED(UIDS("0", "5"), uv_why);
    REFUSED(UIDS("4294967296", "5"), uv_why);
    REFUSED(UIDS("-4294967295", "5"), uv_why);
    REFUSED(UIDS("1.5", "5"), uv_why);
#undef UIDS
}

static void test_optional(void)
{
    dme_push_event_t *ev;

    REFUSED(with(",\"from\":5"), "from not a string");
    REFUSED(with(",\"from\":null"), "from not a string");
    REFUSED(with(",\"subject\":false"), "subject not a string");
    REFUSED(with(",\"snippet\":1"), "snippet not a string");
    REFUSED(with(",\"unseen\":-1"), "unseen not a non-negative integer");
    REFUSED(with(",\"unseen\":\"3\""), "unseen not a non-negative integer");
    REFUSED(with(",\"unseen\":3.0"), "unseen not a non-negative integer");
    REFUSED(with(",\"unseen\":2147483648"),
            "unseen not a non-negative integer");
    ev = ACCEPTED(",\"from\":\"x\"");
    CHECK(ev && ev->subject == NULL && ev->snippet == NULL);
    CHECK(ev && ev->from && strcmp(ev->from, "x") == 0);
}

/* s must be written as want, and read back by jansson as s (or, for
 * input that is not UTF-8, as back). */
static void string_is(const char *s, const char *want, const char *back,
                      int line)
{
    const char *got = dme_json_string(s, pool);
    json_t *j = json_loads(got, JSON_DECODE_ANY, NULL);
    const char *read = j && json_is_string(j) ? json_string_value(j) : NULL;

    unit_checks++;
    if (strcmp(got, want) != 0 || !read || strcmp(read, back) != 0) {
        unit_failures++;
        fprintf(stderr, "%s:%d: wrote %s, want %s\n", __FILE__, line, got,
                want);
    }
    json_decref(j);
}
#define STRING_IS(s, want) string_is((s), (want), (s), __LINE__)

static void test_string(void)
{
    STRING_IS("abc", "\"abc\"");
    STRING_IS("", "\"\"");
    STRING_IS("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    STRING_IS("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    STRING_IS("\x01\x1f\x7f", "\"\\u0001\\u001F\x7f\"");
    STRING_IS("Entw\xc3\xbc"
              "rfe \xf0\x9f\x98\x80",
              "\"Entw\xc3\xbc"
              "rfe \xf0\x9f\x98\x80\"");
    string_is("a\xff"
              "b\xc3",
              "\"a\xef\xbf\xbd"
              "b\xef\xbf\xbd\"",
              "a\xef\xbf\xbd"
              "b\xef\xbf\xbd",
              __LINE__);
    /* An overlong "/" and a surrogate are not UTF-8 either. */
    string_is("\xc0\xaf\xed\xa0\x80",
              "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
              "\xef\xbf\xbd\xef\xbf\xbd\"",
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
              __LINE__);
    CHECK_STR(dme_json_string(NULL, pool), "\"\"");
}

static void test_notice(void)
{
    const char *doc;
    json_t *j;

    CHECK_STR(dme_json_push_notice("id", "INBOX", pool),
              "{\"client\":\"id\",\"folder\":\"INBOX\","
              "\"reason\":\"new-mail\"}");
    doc = dme_json_push_notice("c\"1", "Sent \\ \xc3\x84\n", pool);
    CHECK_STR(doc, "{\"client\":\"c\\\"1\",\"folder\":\"Sent \\\\ \xc3\x84"
                   "\\n\",\"reason\":\"new-mail\"}");
    j = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "client")), "c\"1");
    CHECK_STR(json_string_value(json_object_get(j, "folder")),
              "Sent \\ \xc3\x84\n");
    CHECK_INT(json_object_size(j), 3);
    json_decref(j);
    CHECK_STR(dme_json_push_notice(NULL, NULL, pool),
              "{\"client\":\"\",\"folder\":\"\",\"reason\":\"new-mail\"}");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_real_bodies();
    test_fields();
    test_names();
    test_lengths();
    test_size();
    test_syntax();
    test_required();
    test_optional();
    test_string();
    test_notice();
    apr_pool_destroy(pool);
    apr_terminate();
    return unit_done("test_json");
}
