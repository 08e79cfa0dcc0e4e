/* Mail summaries on GMime: headers, preview text and S/MIME kind.
 *
 * Each call builds and drops its own GMime objects; the only shared state
 * is what g_mime_init() sets up once, which GMime only reads afterwards.
 */
#include <dlfcn.h>
#include <string.h>
#include <apr_strings.h>
#include <gmime/gmime.h>

#include "dme_mime.h"

#define GMIME_SONAME "libgmime-3.0.so.0"

/* A preview needs little text, but HTML mail can carry long style blocks
 * before its first visible word; past this much decoded text we stop. */
#define SCAN_MAX (256 * 1024)
/* Deeper MIME trees are broken or hostile; their inner parts are ignored. */
#define DEPTH_MAX 32
#define NO_LIMIT  ((apr_size_t)-1)
#define CUT       ((gunichar)-3)

typedef struct {
    GMimePart *plain;
    GMimePart *html;
    int attachments;
} walk_t;

apr_status_t dme_mime_init(void)
{
    /* A host like httpd unloads and reloads its modules at startup. GMime
     * registers its types with GObject, which is never unloaded; were
     * GMime unloaded and loaded again, those types would point into freed
     * code. Pinning GMime keeps both in step, and g_mime_init() counts
     * its calls, so a second one does nothing. */
    if (!dlopen(GMIME_SONAME, RTLD_NOW | RTLD_NODELETE)) {
        return APR_EGENERAL;
    }
    g_mime_init();
    return APR_SUCCESS;
}

/* The character at *s, moving *s past it: U+FFFD for a byte that starts
 * no valid character, and CUT for one cut off by the end of the text. */
static gunichar next_char(const char **s, const char *end)
{
    gunichar c = g_utf8_get_char_validated(*s, end - *s);

    if (c == (gunichar)-2 && !memchr(*s, '\0', end - *s)) {
        return CUT; /* glib's -2 also means a NUL inside the sequence */
    }
    if (c == (gunichar)-1 || c == (gunichar)-2) {
        c = (**s == '\0') ? 0 : 0xFFFD;
        (*s)++;
        return c;
    }
    *s = g_utf8_next_char(*s);
    return c;
}

/* Copy s[0..len) as clean UTF-8: invalid bytes become U+FFFD, controls and
 * whitespace runs a single space, both ends trimmed, at most max chars. */
static const char *clean(const char *s, apr_size_t len, apr_size_t max,
                         apr_pool_t *p)
{
    apr_size_t size = (max < len) ? max * 4 : len * 3;
    char *out = apr_palloc(p, size + 1), *o = out;
    const char *end = s + len;
    apr_size_t chars = 0;
    int space = 0;

    while (s < end && chars < max) {
        gunichar c = next_char(&s, end);

        if (c == CUT) {
            break;
        }
        if (g_unichar_isspace(c) || g_unichar_iscntrl(c)) {
            space = (o > out);
            continue;
        }
        if (c == 0xFFFE || c == 0xFFFF) {
            c = 0xFFFD; /* not allowed in XML, where this text is going */
        }
        if (space) {
            if (chars + 2 > max) {
                break;
            }
            *o++ = ' ';
            chars++;
            space = 0;
        }
        o += g_unichar_to_utf8(c, o);
        chars++;
    }
    *o = '\0';
    return out;
}

static const char *text(const char *s, apr_pool_t *p)
{
    return s ? clean(s, strlen(s), NO_LIMIT, p) : "";
}

static const char *addresses(InternetAddressList *list, apr_pool_t *p)
{
    const char *r;
    char *s;

    if (!list || internet_address_list_length(list) == 0) {
        return "";
    }
    s = internet_address_list_to_string(list, NULL, FALSE);
    r = text(s, p);
    g_free(s);
    return r;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);

    return n >= m && !g_ascii_strcasecmp(s + n - m, tail);
}

/* Whether mime is application/pkcs7-<what>, or its older x-pkcs7 name. */
static int is_pkcs7(const char *mime, const char *what)
{
    if (!mime || g_ascii_strncasecmp(mime, "application/", 12)) {
        return 0;
    }
    mime += 12;
    if (!g_ascii_strncasecmp(mime, "x-", 2)) {
        mime += 2;
    }
    return !g_ascii_strncasecmp(mime, "pkcs7-", 6) &&
           !g_ascii_strcasecmp(mime + 6, what);
}

static const char *mime_type(GMimeObject *o, apr_pool_t *p)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    const char *type = ct ? g_mime_content_type_get_media_type(ct) : NULL;
    const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;

    return apr_pstrcat(p, type ? type : "", "/", sub ? sub : "", NULL);
}

static const char *smime_kind(GMimeObject *top, apr_pool_t *p)
{
    const char *type = mime_type(top, p), *st, *name;

    if (!g_ascii_strcasecmp(type, "multipart/signed")) {
        st = g_mime_object_get_content_type_parameter(top, "protocol");
        return is_pkcs7(st, "signature") ? DME_MIME_SMIME_SIGNED
                                         : DME_MIME_SMIME_NONE;
    }
    if (!is_pkcs7(type, "mime")) {
        return DME_MIME_SMIME_NONE;
    }
    st = g_mime_object_get_content_type_parameter(top, "smime-type");
    if (st && !g_ascii_strcasecmp(st, "signed-data")) {
        return DME_MIME_SMIME_SIGNED;
    }
    if (st && (!g_ascii_strcasecmp(st, "enveloped-data") ||
               !g_ascii_strcasecmp(st, "authEnveloped-data"))) {
        return DME_MIME_SMIME_ENCRYPTED;
    }
    /* Old clients leave smime-type out; their .p7m is then the envelope. */
    name =
        GMIME_IS_PART(top) ? g_mime_part_get_filename(GMIME_PART(top)) : NULL;
    if (!st && name && ends_with(name, ".p7m")) {
        return DME_MIME_SMIME_ENCRYPTED;
    }
    return DME_MIME_SMIME_NONE;
}

static int is_attachment(GMimeObject *o)
{
    GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);

    if (d && (g_mime_content_disposition_is_attachment(d) ||
              g_mime_content_disposition_get_parameter(d, "filename"))) {
        return 1;
    }
    return g_mime_object_get_content_type_parameter(o, "name") != NULL;
}

/* Find the text parts a preview may come from and any attachment. */
static void walk(walk_t *w, GMimeObject *o, int depth, apr_pool_t *p)
{
    const char *type;

    if (GMIME_IS_MULTIPART(o)) {
        int i, n = g_mime_multipart_get_count(GMIME_MULTIPART(o));

        for (i = 0; i < n && depth < DEPTH_MAX; i++) {
            walk(w, g_mime_multipart_get_part(GMIME_MULTIPART(o), i), depth + 1,
                 p);
        }
        return;
    }
    type = mime_type(o, p);
    if (is_pkcs7(type, "signature") || is_pkcs7(type, "mime")) {
        return; /* reported as the S/MIME kind, not as an attachment */
    }
    if (is_attachment(o)) {
        w->attachments = 1;
        return;
    }
    if (!GMIME_IS_PART(o)) {
        return;
    }
    if (!w->plain && !g_ascii_strcasecmp(type, "text/plain")) {
        w->plain = GMIME_PART(o);
    } else if (!w->html && !g_ascii_strcasecmp(type, "text/html")) {
        w->html = GMIME_PART(o);
    }
}

/* Whether b is UTF-8, allowing a sequence cut off at the end. */
static int is_utf8(GByteArray *b)
{
    const gchar *end;
    const char *s = (const char *)b->data;

    if (g_utf8_validate(s, b->len, &end)) {
        return 1;
    }
    /* -2 also means a NUL byte, which is no cut-off sequence */
    return s + b->len - end < 4 && *end &&
           g_utf8_get_char_validated(end, s + b->len - end) == (gunichar)-2;
}

/* The part's content, transfer-decoded and, if charset is given,
 * converted from it to UTF-8; at most about SCAN_MAX bytes. *converted
 * says whether the charset was known. The caller frees the array. */
static GByteArray *decode(GMimePart *part, const char *charset, int *converted)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GByteArray *buf = g_byte_array_new();
    GMimeStream *src = w ? g_mime_data_wrapper_get_stream(w) : NULL;
    GMimeStream *f;
    GMimeFilter *filter;
    GMimeContentEncoding enc;
    char chunk[8192];
    ssize_t n;

    *converted = 0;
    if (!src) {
        return buf;
    }
    g_mime_stream_reset(src);
    f = g_mime_stream_filter_new(src);
    enc = g_mime_data_wrapper_get_encoding(w);
    if (enc == GMIME_CONTENT_ENCODING_BASE64 ||
        enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        enc == GMIME_CONTENT_ENCODING_UUENCODE) {
        filter = g_mime_filter_basic_new(enc, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), filter);
        g_object_unref(filter);
    }
    if (charset && (filter = g_mime_filter_charset_new(charset, "UTF-8"))) {
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), filter);
        g_object_unref(filter);
        *converted = 1;
    }
    while (buf->len < SCAN_MAX &&
           (n = g_mime_stream_read(f, chunk, sizeof(chunk))) > 0) {
        g_byte_array_append(buf, (const guint8 *)chunk, (guint)n);
    }
    g_object_unref(f);
    return buf;
}

static int is_plain_charset(const char *cs)
{
    return !g_ascii_strcasecmp(cs, "utf-8") ||
           !g_ascii_strcasecmp(cs, "utf8") ||
           !g_ascii_strcasecmp(cs, "us-ascii") ||
           !g_ascii_strcasecmp(cs, "ascii");
}

/* The part's text as UTF-8. Text that claims ASCII or no charset (or one
 * iconv does not know) but is not UTF-8 is most often windows-1252. */
static GByteArray *part_text(GMimePart *part)
{
    const char *cs =
        g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
    GByteArray *b;
    int converted;

    if (cs && !is_plain_charset(cs)) {
        b = decode(part, cs, &converted);
        if (converted) {
            return b;
        }
        g_byte_array_free(b, TRUE);
    }
    b = decode(part, NULL, &converted);
    if (is_utf8(b) || (cs && g_ascii_strncasecmp(cs, "utf", 3) == 0)) {
        return b;
    }
    g_byte_array_free(b, TRUE);
    return decode(part, "windows-1252", &converted);
}

/* Case-insensitive search for needle in s[0..n); returns n if absent. */
static apr_size_t find(const char *s, apr_size_t n, const char *needle)
{
    apr_size_t i, m = strlen(needle);

    for (i = 0; i + m <= n; i++) {
        if (!g_ascii_strncasecmp(s + i, needle, m)) {
            return i;
        }
    }
    return n;
}

/* Length of the tag at s[0] == '<' through its '>', or n if cut off.
 * A quoted attribute value may hold a '>'. */
static apr_size_t tag_len(const char *s, apr_size_t n)
{
    apr_size_t i;
    char quote = 0;

    for (i = 1; i < n; i++) {
        if (quote) {
            quote = (s[i] == quote) ? 0 : quote;
        } else if ((s[i] == '"' || s[i] == '\'') && s[i - 1] == '=') {
            quote = s[i];
        } else if (s[i] == '>') {
            return i + 1;
        }
    }
    return n;
}

/* Inline tags sit inside words; every other tag separates them. */
static int is_inline(const char *name, apr_size_t n)
{
    static const char *const tags[] = {
        "a",    "b",    "i",      "u",   "s",   "em",  "strong",
        "span", "font", "small",  "big", "sub", "sup", "code",
        "mark", "abbr", "strike", "tt",  NULL};
    int i;

    for (i = 0; tags[i]; i++) {
        if (strlen(tags[i]) == n && !g_ascii_strncasecmp(name, tags[i], n)) {
            return 1;
        }
    }
    return 0;
}

/* Bytes of markup starting at s[0] == '<' that a reader never sees: the
 * tag, and for script, style and title everything up to their end tag.
 * *sep tells whether the markup separates words. */
static apr_size_t markup_len(const char *s, apr_size_t n, int *sep)
{
    static const char *const hidden[] = {"script", "style", "title", NULL};
    apr_size_t i, len, name = (n > 1 && s[1] == '/') ? 2 : 1;
    char end[16];
    int k;

    if (n >= 4 && !strncmp(s, "<!--", 4)) {
        i = find(s + 4, n - 4, "-->");
        *sep = 1;
        return (i == n - 4) ? n : i + 7;
    }
    len = tag_len(s, n);
    for (i = name; i < len && g_ascii_isalnum(s[i]); i++) {
    }
    *sep = !is_inline(s + name, i - name);
    for (k = 0; hidden[k] && name == 1; k++) {
        if (strlen(hidden[k]) == i - 1 &&
            !g_ascii_strncasecmp(s + 1, hidden[k], i - 1)) {
            apr_snprintf(end, sizeof(end), "</%s", hidden[k]);
            return len + find(s + len, n - len, end);
        }
    }
    return len;
}

/* Decode the character reference at s[0] == '&' into o; returns the bytes
 * it takes in s, or 0 if it is not one (the '&' is then plain text). */
static apr_size_t entity(const char *s, apr_size_t n, char **o)
{
    static const struct {
        const char *name;
        gunichar c;
    } named[] = {{"amp", '&'},   {"lt", '<'},    {"gt", '>'}, {"quot", '"'},
                 {"apos", '\''}, {"nbsp", 0xA0}, {NULL, 0}};
    apr_size_t semi = find(s, n < 12 ? n : 12, ";");
    gunichar c = 0;
    char *e;
    int i;

    if (semi == (n < 12 ? n : 12) || semi < 2) {
        return 0;
    }
    if (s[1] == '#') {
        int hex = (s[2] == 'x' || s[2] == 'X');
        unsigned long v = strtoul(s + 2 + hex, &e, hex ? 16 : 10);

        if (e != s + semi || e == s + 2 + hex) {
            return 0;
        }
        c = (v && v <= 0x10FFFF && g_unichar_validate((gunichar)v))
                ? (gunichar)v
                : 0xFFFD;
    }
    for (i = 0; named[i].name && !c; i++) {
        if (strlen(named[i].name) == semi - 1 &&
            !strncmp(s + 1, named[i].name, semi - 1)) {
            c = named[i].c;
        }
    }
    if (!c) {
        return 0;
    }
    *o += g_unichar_to_utf8(c, *o);
    return semi + 1;
}

/* The visible text of HTML in s[0..n), written to out (at least n bytes:
 * markup and references only ever shrink); returns its length. */
static apr_size_t strip_html(char *out, const char *s, apr_size_t n)
{
    char *o = out;
    apr_size_t i = 0, used;
    int sep;

    while (i < n) {
        if (s[i] == '<') {
            i += markup_len(s + i, n - i, &sep);
            if (sep) {
                *o++ = ' ';
            }
        } else if (s[i] == '&' && (used = entity(s + i, n - i, &o)) > 0) {
            i += used;
        } else {
            *o++ = s[i++];
        }
    }
    return o - out;
}

static const char *preview(GMimePart *part, int html, apr_size_t max,
                           apr_pool_t *p)
{
    GByteArray *b;
    const char *r, *s;
    apr_size_t n;

    if (!part || !max) {
        return "";
    }
    b = part_text(part);
    s = (const char *)b->data;
    n = b->len;
    if (html) {
        char *t = apr_palloc(p, n + 1);

        n = strip_html(t, s, n);
        s = t;
    }
    r = clean(s ? s : "", n, max, p);
    g_byte_array_free(b, TRUE);
    return r;
}

static GMimeMessage *parse_once(const char *data, apr_size_t len)
{
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);

    g_object_unref(parser);
    g_object_unref(stream);
    return msg;
}

/* GMime gives up on a message cut inside a header line; without that last
 * partial line the headers before it can still be read. */
static GMimeMessage *parse(const char *data, apr_size_t len)
{
    GMimeMessage *msg = parse_once(data, len);
    apr_size_t n = len;

    if (msg || data[len - 1] == '\n') {
        return msg;
    }
    while (n > 0 && data[n - 1] != '\n') {
        n--;
    }
    return n ? parse_once(data, n) : NULL;
}

static void summarize(dme_mime_summary_t *s, GMimeMessage *m,
                      apr_size_t preview_max, apr_pool_t *p)
{
    GDateTime *dt = g_mime_message_get_date(m);
    GMimeObject *top = g_mime_message_get_mime_part(m);
    walk_t w = {NULL, NULL, 0};

    s->from = addresses(g_mime_message_get_from(m), p);
    s->to =
        addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), p);
    s->subject = text(g_mime_message_get_subject(m), p);
    s->message_id = text(g_mime_message_get_message_id(m), p);
    s->date = dt ? apr_time_from_sec(g_date_time_to_unix(dt)) : 0;
    s->smime = top ? smime_kind(top, p) : DME_MIME_SMIME_NONE;
    if (top) {
        walk(&w, top, 0, p);
    }
    s->has_attachments = w.attachments;
    s->preview = preview(w.plain ? w.plain : w.html, !w.plain, preview_max, p);
}

apr_status_t dme_mime_summarize(dme_mime_summary_t **out, const char *data,
                                apr_size_t len, apr_size_t preview_max,
                                apr_pool_t *p)
{
    GMimeMessage *msg;

    if (!out || !p) {
        return APR_EINVAL;
    }
    *out = NULL;
    if (!data || len == 0) {
        return DME_EPROTO;
    }
    msg = parse(data, len);
    if (!msg) {
        return DME_EPROTO;
    }
    *out = apr_pcalloc(p, sizeof(**out));
    summarize(*out, msg, preview_max, p);
    g_object_unref(msg);
    return APR_SUCCESS;
}

/* Where the message proper starts: past an mbox "From " line, which GMime
 * would otherwise read as a header field named "From". */
static apr_size_t mbox_skip(const char *data, apr_size_t len)
{
    const char *nl;

    if (len < 5 || memcmp(data, "From ", 5)) {
        return 0;
    }
    nl = memchr(data, '\n', len);
    return nl ? (apr_size_t)(nl - data) + 1 : len;
}

static const char *lower(const char *s, apr_pool_t *p)
{
    char *r = apr_pstrdup(p, s), *c;

    for (c = r; *c; c++) {
        *c = g_ascii_tolower(*c);
    }
    return r;
}

const char *dme_mime_sender_address(const char *data, apr_size_t len,
                                    apr_pool_t *p)
{
    apr_size_t skip = data ? mbox_skip(data, len) : len;
    GMimeMessage *msg = (skip < len) ? parse(data + skip, len - skip) : NULL;
    InternetAddressList *from = msg ? g_mime_message_get_from(msg) : NULL;
    InternetAddress *ia = NULL;
    const char *addr = NULL, *r = NULL, *c;

    if (from && internet_address_list_length(from) == 1) {
        ia = internet_address_list_get_address(from, 0);
    }
    if (ia && INTERNET_ADDRESS_IS_MAILBOX(ia)) {
        addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    }
    for (c = addr; c && *c && (unsigned char)*c > ' ' && *c != 0x7f; c++) {
    }
    if (c && !*c && strchr(addr, '@')) {
        r = lower(addr, p);
    }
    if (msg) {
        g_object_unref(msg);
    }
    return r;
}

typedef struct {
    apr_array_header_t *out;
    const char *base; /* the message at GMime's stream offset 0 */
    apr_size_t len;
    apr_pool_t *p;
} sigwalk_t;

/* The part's body, transfer-decoded, copied into the pool. */
static const unsigned char *body_bytes(GMimePart *part, apr_size_t *len,
                                       apr_pool_t *p)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GByteArray *b = g_byte_array_new();
    GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(b);
    const unsigned char *r;

    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    if (w) {
        g_mime_data_wrapper_write_to_stream(w, mem);
    }
    *len = b->len;
    r = b->len ? apr_pmemdup(p, b->data, b->len) : (const unsigned char *)"";
    g_object_unref(mem);
    g_byte_array_free(b, TRUE);
    return r;
}

/* Lowest stream offset of the header fields GMime read for o; -1 when it
 * read none (fields GMime makes up itself have no offset). */
static gint64 headers_at(GMimeObject *o)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    int i, n = hl ? g_mime_header_list_get_count(hl) : 0;
    gint64 at = -1;

    for (i = 0; i < n; i++) {
        gint64 off =
            g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i));

        if (off >= 0 && (at < 0 || off < at)) {
            at = off;
        }
    }
    return at;
}

/* The line just before the line that starts at s[at]: its start and its
 * length without the line break. Returns 0 when there is none. */
static int prev_line(const char *s, apr_size_t at, apr_size_t *start,
                     apr_size_t *n)
{
    apr_size_t e;

    if (at == 0 || s[at - 1] != '\n') {
        return 0;
    }
    e = at - 1;
    if (e > 0 && s[e - 1] == '\r') {
        e--;
    }
    for (*start = e; *start > 0 && s[*start - 1] != '\n'; (*start)--) {
    }
    *n = e - *start;
    return 1;
}

/* Whether the line s[0..n) opens a part of the multipart with boundary b:
 * "--", the boundary, then nothing but blanks (RFC 2046 transport
 * padding). A closing delimiter ("--b--") does not count. */
static int is_delimiter(const char *s, apr_size_t n, const char *b)
{
    apr_size_t m = strlen(b), i;

    if (n < m + 2 || s[0] != '-' || s[1] != '-' || memcmp(s + 2, b, m)) {
        return 0;
    }
    for (i = m + 2; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t') {
            return 0;
        }
    }
    return 1;
}

/* The exact bytes of the first part of a multipart/signed with boundary b
 * and signature part sig, as slices of the message itself. GMime found
 * the parts; their bounds come from the header offsets it recorded and
 * the delimiter lines around them, never from re-serialising a part.
 * Returns NULL when the bytes are not where a well-formed message has
 * them. */
static const char *signed_bytes(const sigwalk_t *w, GMimeObject *first,
                                GMimeObject *sig, const char *b,
                                apr_size_t *len)
{
    const char *s = w->base;
    gint64 h0 = headers_at(first), h1 = headers_at(sig);
    apr_size_t ls, n, at, ps, end;

    if (h1 <= 0 || (apr_size_t)h1 > w->len || !prev_line(s, h1, &ls, &n) ||
        !is_delimiter(s + ls, n, b) || ls == 0 || s[ls - 1] != '\n') {
        return NULL;
    }
    /* the line break before a delimiter belongs to the delimiter */
    end = (ls > 1 && s[ls - 2] == '\r') ? ls - 2 : ls - 1;
    for (at = ls;; at = ps) {
        if (!prev_line(s, at, &ps, &n)) {
            return NULL;
        }
        if (is_delimiter(s + ps, n, b)) {
            break;
        }
    }
    /* A part without header fields starts with its empty line. */
    if (at >= end || (h0 >= 0 && (apr_size_t)h0 != at) ||
        (h0 < 0 && s[at] != '\r' && s[at] != '\n')) {
        return NULL;
    }
    *len = end - at;
    return s + at;
}

static dme_mime_signed_t *push_signed(sigwalk_t *w)
{
    dme_mime_signed_t *s = apr_array_push(w->out);

    memset(s, 0, sizeof(*s));
    s->smime_type = "";
    return s;
}

/* A multipart/signed counts when its last part is a PKCS #7 signature;
 * its protocol parameter is only the sender's claim. */
static void add_detached(sigwalk_t *w, GMimeMultipart *mp)
{
    int n = g_mime_multipart_get_count(mp);
    GMimeObject *sig = n > 0 ? g_mime_multipart_get_part(mp, n - 1) : NULL;
    const char *b =
        g_mime_object_get_content_type_parameter(GMIME_OBJECT(mp), "boundary");
    dme_mime_signed_t *s;

    if (!sig || !GMIME_IS_PART(sig) ||
        !is_pkcs7(mime_type(sig, w->p), "signature")) {
        return;
    }
    s = push_signed(w);
    s->cms = body_bytes(GMIME_PART(sig), &s->cms_len, w->p);
    if (n == 2 && b && *b) {
        s->content = signed_bytes(w, g_mime_multipart_get_part(mp, 0), sig, b,
                                  &s->content_len);
    }
}

static void add_opaque(sigwalk_t *w, GMimeObject *o)
{
    const char *st = g_mime_object_get_content_type_parameter(o, "smime-type");
    dme_mime_signed_t *s;

    if (st && g_ascii_strcasecmp(st, "signed-data") &&
        g_ascii_strcasecmp(st, "certs-only")) {
        return;
    }
    s = push_signed(w);
    s->opaque = 1;
    s->smime_type = st ? lower(st, w->p) : "";
    s->cms = body_bytes(GMIME_PART(o), &s->cms_len, w->p);
}

static void find_signed(sigwalk_t *w, GMimeObject *o, int depth)
{
    if (!o || depth > DEPTH_MAX || w->out->nelts >= DME_MIME_SIGNED_MAX) {
        return;
    }
    if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

        find_signed(w, m ? g_mime_message_get_mime_part(m) : NULL, depth + 1);
    } else if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int i, n = g_mime_multipart_get_count(mp);

        if (!g_ascii_strcasecmp(mime_type(o, w->p), "multipart/signed")) {
            add_detached(w, mp);
        }
        for (i = 0; i < n; i++) {
            find_signed(w, g_mime_multipart_get_part(mp, i), depth + 1);
        }
    } else if (GMIME_IS_PART(o) && is_pkcs7(mime_type(o, w->p), "mime")) {
        add_opaque(w, o);
    }
}

apr_status_t dme_mime_signed_parts(apr_array_header_t **parts, const char *data,
                                   apr_size_t len, apr_pool_t *p)
{
    GMimeMessage *msg;
    apr_size_t skip;
    sigwalk_t w;

    if (!parts || !data || !p) {
        return APR_EINVAL;
    }
    *parts = apr_array_make(p, 2, sizeof(dme_mime_signed_t));
    skip = mbox_skip(data, len);
    msg = (skip < len) ? parse(data + skip, len - skip) : NULL;
    if (!msg) {
        return DME_EPROTO;
    }
    w.out = *parts;
    w.base = data + skip;
    w.len = len - skip;
    w.p = p;
    find_signed(&w, g_mime_message_get_mime_part(msg), 0);
    g_object_unref(msg);
    return APR_SUCCESS;
}
