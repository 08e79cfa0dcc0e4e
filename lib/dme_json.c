/* Change notifications in JSON, read and written with jansson.
 *
 * A note arrives from the network, so it is read whole into jansson's
 * tree only after its size is checked, and every field is checked for
 * type and range before anything is copied out: a string "5" is not a
 * uid, 5.0 is not one either, and a uid that does not fit 32 bits is a
 * fault, not a value to be truncated. The tree is freed before return;
 * callers see pool memory only.
 */
#include <limits.h>
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>

#include "dme_json.h"

/* How a note's string field is checked. missing == NULL: optional. */
typedef struct {
    const char *key;
    apr_size_t max;
    int (*ok)(const char *s, apr_size_t n);
    const char *missing, *type, *size, *content;
} text_rule;

/* How a note's integer field is checked. missing == NULL: optional. */
typedef struct {
    const char *key;
    json_int_t min, max;
    const char *missing, *wrong;
} int_rule;

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if
 * none: overlong forms, surrogates and code points past U+10FFFF are not
 * well-formed. */
static apr_size_t utf8_len(const unsigned char *s, apr_size_t n)
{
    apr_size_t len, i;
    unsigned long c, min;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2, min = 0x80, c = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3, min = 0x800, c = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4, min = 0x10000, c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* s with every byte that starts no well-formed UTF-8 sequence replaced
 * by U+FFFD; s itself when there is none. */
static const char *utf8_clean(const char *s, apr_pool_t *p)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t n = strlen(s), i = 0, k, o = 0;
    char *out;

    while (i < n && (k = utf8_len(u + i, n - i)) > 0) {
        i += k;
    }
    if (i == n) {
        return s;
    }
    out = apr_palloc(p, 3 * n + 1); /* each byte at worst 3 bytes */
    for (i = 0; i < n; i += k) {
        k = utf8_len(u + i, n - i);
        if (k > 0) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            k = 1;
        }
    }
    out[o] = '\0';
    return out;
}

/* No C0 control, DEL or C1 control (U+0080..U+009F, C2 80..C2 9F);
 * jansson has already checked that s is UTF-8. */
static int no_controls(const char *s, apr_size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7F) {
            return 0;
        }
        if (u[i] == 0xC2 && i + 1 < n && u[i + 1] <= 0x9F) {
            return 0;
        }
    }
    return 1;
}

static int ascii_letters(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
            return 0;
        }
    }
    return 1;
}

static const text_rule USER = {"user",
                               DME_JSON_PUSH_USER_MAX,
                               no_controls,
                               "user missing",
                               "user not a string",
                               "user empty or too long",
                               "user holds a control character"};
static const text_rule FOLDER = {"folder",
                                 DME_JSON_PUSH_FOLDER_MAX,
                                 no_controls,
                                 "folder missing",
                                 "folder not a string",
                                 "folder empty or too long",
                                 "folder holds a control character"};
static const text_rule EVENT = {"event",
                                DME_JSON_PUSH_EVENT_MAX,
                                ascii_letters,
                                "event missing",
                                "event not a string",
                                "event empty or too long",
                                "event not made of ASCII letters"};
static const text_rule FROM = {
    "from", DME_JSON_PUSH_MAX, NULL, NULL, "from not a string", NULL, NULL};
static const text_rule SUBJECT = {"subject", DME_JSON_PUSH_MAX,      NULL,
                                  NULL,      "subject not a string", NULL,
                                  NULL};
static const text_rule SNIPPET = {"snippet", DME_JSON_PUSH_MAX,      NULL,
                                  NULL,      "snippet not a string", NULL,
                                  NULL};
static const int_rule UIDVALIDITY = {
    "imap-uidvalidity", 1, 0xFFFFFFFF, "imap-uidvalidity missing",
    "imap-uidvalidity not a 32-bit unsigned integer"};
static const int_rule UID = {"imap-uid", 1, 0xFFFFFFFF, "imap-uid missing",
                             "imap-uid not a 32-bit unsigned integer"};
static const int_rule UNSEEN = {"unseen", 0, INT_MAX, NULL,
                                "unseen not a non-negative integer"};

/* The string field r->key of obj copied into *out (untouched if absent
 * and optional); NULL, or why it is refused. */
static const char *get_text(const char **out, json_t *obj, const text_rule *r,
                            apr_pool_t *p)
{
    json_t *v = json_object_get(obj, r->key);
    const char *s;
    apr_size_t n;

    if (!v) {
        return r->missing;
    }
    if (!json_is_string(v)) {
        return r->type;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (r->size && (n == 0 || n > r->max)) {
        return r->size;
    }
    if (r->ok && !r->ok(s, n)) {
        return r->content;
    }
    *out = apr_pstrmemdup(p, s, n);
    return NULL;
}

/* The integer field r->key of obj into *out (untouched if absent and
 * optional); NULL, or why it is refused. */
static const char *get_int(json_int_t *out, json_t *obj, const int_rule *r)
{
    json_t *v = json_object_get(obj, r->key);

    if (!v) {
        return r->missing;
    }
    if (!json_is_integer(v) || json_integer_value(v) < r->min ||
        json_integer_value(v) > r->max) {
        return r->wrong;
    }
    *out = json_integer_value(v);
    return NULL;
}

/* The note is flat: a value that is an object or array has no meaning
 * here, even under a key this reader ignores. */
static int is_flat(json_t *obj)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        if (json_is_object(v) || json_is_array(v)) {
            return 0;
        }
    }
    return 1;
}

/* Why jansson refused the text, in the caller's terms. */
static const char *load_error(const json_error_t *err)
{
    switch (json_error_code(err)) {
        case json_error_duplicate_key:
            return "duplicate key";
        case json_error_null_character:
        case json_error_null_byte_in_key:
            return "NUL in a string";
        case json_error_numeric_overflow:
            return "number out of range";
        case json_error_end_of_input_expected:
            return "trailing garbage after the object";
        case json_error_invalid_utf8:
            return "not UTF-8";
        case json_error_stack_overflow:
            return "nested too deep";
        default:
            return "not JSON";
    }
}

static const char *read_fields(dme_push_event_t *ev, json_t *obj, apr_pool_t *p)
{
    const char *why;
    json_int_t uidvalidity = 0, uid = 0, unseen = -1;

    if ((why = get_text(&ev->user, obj, &USER, p)) ||
        (why = get_text(&ev->folder, obj, &FOLDER, p)) ||
        (why = get_text(&ev->event, obj, &EVENT, p)) ||
        (why = get_int(&uidvalidity, obj, &UIDVALIDITY)) ||
        (why = get_int(&uid, obj, &UID)) ||
        (why = get_text(&ev->from, obj, &FROM, p)) ||
        (why = get_text(&ev->subject, obj, &SUBJECT, p)) ||
        (why = get_text(&ev->snippet, obj, &SNIPPET, p)) ||
        (why = get_int(&unseen, obj, &UNSEEN))) {
        return why;
    }
    ev->uidvalidity = (apr_uint32_t)uidvalidity;
    ev->uid = (apr_uint32_t)uid;
    ev->unseen = (int)unseen;
    return NULL;
}

apr_status_t dme_json_push_parse(dme_push_event_t **ev, const char **why,
                                 const char *body, apr_size_t len,
                                 apr_pool_t *p)
{
    dme_push_event_t *e;
    json_error_t err;
    json_t *root;

    *ev = NULL;
    *why = NULL;
    if (len > DME_JSON_PUSH_MAX) {
        *why = "note too big";
        return DME_ETOOBIG;
    }
    /* DECODE_ANY lets a bare scalar parse, to be named for what it is. */
    root = json_loadb(body ? body : "", body ? len : 0,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root) {
        *why = load_error(&err);
        return APR_EINVAL;
    }
    e = apr_pcalloc(p, sizeof(*e));
    if (!json_is_object(root)) {
        *why = "not an object";
    } else if (!is_flat(root)) {
        *why = "nested object or array";
    } else {
        *why = read_fields(e, root, p);
    }
    json_decref(root);
    if (*why) {
        return APR_EINVAL;
    }
    *ev = e;
    return APR_SUCCESS;
}

const char *dme_json_string(const char *s, apr_pool_t *p)
{
    json_t *j = json_string(utf8_clean(s ? s : "", p));
    apr_size_t n;
    char *out;

    /* jansson fails here only when memory runs out. */
    if (!j) {
        return "\"\"";
    }
    n = json_dumpb(j, NULL, 0, JSON_ENCODE_ANY);
    out = apr_palloc(p, n + 1);
    if (n == 0 || json_dumpb(j, out, n, JSON_ENCODE_ANY) != n) {
        json_decref(j);
        return "\"\"";
    }
    out[n] = '\0';
    json_decref(j);
    return out;
}

const char *dme_json_push_notice(const char *client, const char *folder,
                                 apr_pool_t *p)
{
    return apr_pstrcat(p, "{\"client\":", dme_json_string(client, p),
                       ",\"folder\":", dme_json_string(folder, p),
                       ",\"reason\":\"new-mail\"}", NULL);
}
