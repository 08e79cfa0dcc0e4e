/* The protocol's XML: requests read with libxml2, responses written here.
 *
 * Requests come from the network, so the parser is held on a short leash:
 * a DOCTYPE stops it at once (no entity is ever declared, let alone
 * expanded), it never touches the network, it reads UTF-8 only, and its
 * complaints go to a handler that drops them instead of to stderr.
 */
#include <limits.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "dme_xml.h"

#define PARSE_OPTIONS                                                          \
    (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |               \
     XML_PARSE_NOCDATA)

struct dme_xml_w_t {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
    apr_array_header_t *open;  /* names of the open elements */
    apr_array_header_t *attrs; /* attribute names of the open start tag */
    int in_tag;                /* the last start tag still lacks its '>' */
    int done;
};

apr_status_t dme_xml_init(void)
{
    xmlInitParser();
    return APR_SUCCESS;
}

/* Length of the well-formed UTF-8 sequence at s, with n bytes left, and
 * its code point in *c; 0 if there is none (overlong forms, surrogates
 * and values past U+10FFFF included). */
static int utf8_seq(const unsigned char *s, apr_size_t n, unsigned *c)
{
    unsigned min;
    int len, i;

    if (s[0] < 0x80) {
        *c = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2, min = 0x80, *c = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, min = 0x800, *c = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4, min = 0x10000, *c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < (apr_size_t)len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        *c = (*c << 6) | (s[i] & 0x3F);
    }
    if (*c < min || *c > 0x10FFFF || (*c >= 0xD800 && *c <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* Strict UTF-8 without NUL bytes. With that checked, libxml2's guess at
 * the encoding can only be UTF-8, and no other decoder ever runs. */
static int is_utf8(const char *buf, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    apr_size_t i = 0;
    unsigned c;
    int n;

    while (i < len) {
        if (s[i] > 0 && s[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_seq(s + i, len - i, &c);
        if (n == 0 || c == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* Whether the XML declaration, if any, names an encoding other than
 * UTF-8; the parser is told to read UTF-8 whatever it says. */
static int declares_other_encoding(const char *buf, apr_size_t len)
{
    apr_size_t end, i;
    const char *v;

    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) {
        buf += 3, len -= 3; /* a UTF-8 byte order mark */
    }
    if (len < 6 || strncmp(buf, "<?xml", 5) || !strchr(" \t\r\n", buf[5])) {
        return 0;
    }
    for (end = 5; end + 1 < len && strncmp(buf + end, "?>", 2); end++) {
    }
    for (i = 5; i + 8 <= end && strncmp(buf + i, "encoding", 8); i++) {
    }
    if (i + 8 > end) {
        return 0;
    }
    for (i += 8; i < end && strchr(" \t\r\n=", buf[i]); i++) {
    }
    v = buf + i + 1; /* past the quote */
    return i + 6 >= end || strncasecmp(v, "UTF-8", 5) || v[5] != buf[i];
}

#if LIBXML_VERSION >= 21200
static void drop_error(void *ctx, const xmlError *err)
#else
static void drop_error(void *ctx, xmlErrorPtr err)
#endif
{
    (void)ctx;
    (void)err;
}

/* Called as soon as "<!DOCTYPE name ...>" is seen, before any markup
 * declaration in it is read. */
static void refuse_doctype(void *ctx, const xmlChar *name,
                           const xmlChar *external_id, const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = ctx;

    (void)name, (void)external_id, (void)system_id;
    *(int *)ctxt->_private = 1;
    xmlStopParser(ctxt);
}

static int ns_ok(xmlNodePtr n)
{
    return !n->ns || !n->ns->href ||
           !strcmp((const char *)n->ns->href, DME_XML_NS);
}

static int is_blank(const xmlChar *s)
{
    for (; s && *s; s++) {
        if (!strchr(" \t\r\n", *s)) {
            return 0;
        }
    }
    return 1;
}

/* The text of a field element, which may hold only text, CDATA, comments
 * and processing instructions. */
static apr_status_t field_text(const char **out, xmlNodePtr field,
                               apr_pool_t *p)
{
    char buf[DME_XML_MAX_FIELD];
    apr_size_t len = 0, n;
    xmlNodePtr c;

    for (c = field->children; c; c = c->next) {
        if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE) {
            continue;
        }
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) {
            return APR_EINVAL;
        }
        n = c->content ? strlen((const char *)c->content) : 0;
        if (n > sizeof(buf) - len) {
            return APR_EINVAL;
        }
        memcpy(buf + len, c->content, n);
        len += n;
    }
    *out = apr_pstrmemdup(p, buf, len);
    return APR_SUCCESS;
}

static apr_status_t read_child(apr_table_t *fields, xmlNodePtr n, apr_pool_t *p)
{
    const char *name = (const char *)n->name, *value;
    apr_status_t rv;

    switch (n->type) {
        case XML_ELEMENT_NODE:
            break;
        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            return is_blank(n->content) ? APR_SUCCESS : APR_EINVAL;
        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            return APR_SUCCESS;
        default:
            return APR_EINVAL;
    }
    if (!ns_ok(n) || apr_table_get(fields, name) ||
        apr_table_elts(fields)->nelts >= DME_XML_MAX_FIELDS) {
        return APR_EINVAL;
    }
    rv = field_text(&value, n, p);
    if (rv == APR_SUCCESS) {
        apr_table_setn(fields, apr_pstrdup(p, name), value);
    }
    return rv;
}

static apr_status_t read_request(dme_xml_req_t **out, xmlNodePtr root,
                                 apr_pool_t *p)
{
    dme_xml_req_t *req;
    xmlNodePtr n;
    apr_status_t rv;

    if (!root || !ns_ok(root)) {
        return APR_EINVAL;
    }
    req = apr_palloc(p, sizeof(*req));
    req->root = apr_pstrdup(p, (const char *)root->name);
    req->fields = apr_table_make(p, 8);
    for (n = root->children; n; n = n->next) {
        if ((rv = read_child(req->fields, n, p)) != APR_SUCCESS) {
            return rv;
        }
    }
    *out = req;
    return APR_SUCCESS;
}

apr_status_t dme_xml_parse_request(dme_xml_req_t **out, const char *buf,
                                   apr_size_t len, apr_size_t max_len,
                                   apr_pool_t *p)
{
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    apr_status_t rv;
    int doctype = 0;

    *out = NULL;
    if (len > max_len || len > INT_MAX) {
        return DME_ETOOBIG;
    }
    if (!buf || !is_utf8(buf, len) || declares_other_encoding(buf, len)) {
        return APR_EINVAL;
    }
    ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        return APR_ENOMEM;
    }
    /* the SAX handler is this context's own copy: no other parse sees it */
    ctxt->_private = &doctype;
    ctxt->sax->internalSubset = refuse_doctype;
    ctxt->sax->serror = drop_error;
    doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, "UTF-8", PARSE_OPTIONS);
    if (!doc || doctype || !ctxt->wellFormed || !ctxt->nsWellFormed ||
        doc->intSubset || doc->extSubset) {
        rv = APR_EINVAL;
    } else {
        rv = read_request(out, xmlDocGetRootElement(doc), p);
    }
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return rv;
}

/* --- the writer --- */

static void put(dme_xml_w_t *w, const char *s, apr_size_t n)
{
    if (w->len + n + 1 > w->cap) {
        apr_size_t cap = w->cap * 2;
        char *buf;

        while (cap < w->len + n + 1) {
            cap *= 2;
        }
        buf = apr_palloc(w->p, cap);
        memcpy(buf, w->buf, w->len);
        w->buf = buf;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void puts_(dme_xml_w_t *w, const char *s)
{
    put(w, s, strlen(s));
}

/* The escape for byte c, or NULL if it may stand as it is. */
static const char *escape_of(unsigned char c, int attr)
{
    switch (c) {
        case '&':
            return "&amp;";
        case '<':
            return "&lt;";
        case '>':
            return "&gt;"; /* also keeps "]]>" out of text */
        case '"':
            return "&quot;";
        case '\r':
            return "&#13;"; /* a parser would turn a raw CR into LF */
        case '\t':
            return attr ? "&#9;" : NULL;
        case '\n':
            return attr ? "&#10;" : NULL;
        default:
            return NULL;
    }
}

static void put_escaped(dme_xml_w_t *w, const char *text, int attr)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    apr_size_t run = 0, left = strlen((const char *)s);
    const char *esc;
    unsigned c;
    int n;

    while (run < left) {
        if (s[run] >= 0x20 && s[run] < 0x80 && !escape_of(s[run], attr)) {
            run++; /* plain ASCII: copied in one go below */
            continue;
        }
        put(w, (const char *)s, run);
        s += run, left -= run, run = 0;
        n = utf8_seq(s, left, &c);
        if ((esc = escape_of(*s, attr)) != NULL) {
            puts_(w, esc);
        } else if (n == 0 || (c < 0x20 && c != '\t' && c != '\n') ||
                   c == 0xFFFE || c == 0xFFFF) {
            puts_(w, "\xEF\xBF\xBD"); /* U+FFFD */
        } else {
            put(w, (const char *)s, n);
        }
        n = n ? n : 1;
        s += n, left -= n;
    }
    put(w, (const char *)s, run);
}

/* A usable XML name: [A-Za-z_][A-Za-z0-9._-]*, no namespace prefix. */
static const char *xml_name(const char *name, apr_pool_t *p)
{
    char *n;
    int i;

    n = apr_pstrcat(p, "_", name ? name : "", NULL);
    for (i = 1; n[i]; i++) {
        if (!apr_isalnum(n[i]) && !strchr("._-", n[i])) {
            n[i] = '_';
        }
    }
    return (apr_isalpha(n[1]) || n[1] == '_') ? n + 1 : n;
}

static void open_tag(dme_xml_w_t *w, const char *name)
{
    if (w->in_tag) {
        puts_(w, ">");
    }
    name = xml_name(name, w->p);
    puts_(w, "<");
    puts_(w, name);
    APR_ARRAY_PUSH(w->open, const char *) = name;
    apr_array_clear(w->attrs);
    w->in_tag = 1;
}

dme_xml_w_t *dme_xml_writer_create(const char *root, apr_pool_t *p)
{
    dme_xml_w_t *w = apr_pcalloc(p, sizeof(*w));

    w->p = p;
    w->cap = 4096;
    w->buf = apr_palloc(p, w->cap);
    w->open = apr_array_make(p, 8, sizeof(const char *));
    w->attrs = apr_array_make(p, 8, sizeof(const char *));
    puts_(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    open_tag(w, root);
    dme_xml_attr(w, "xmlns", DME_XML_NS);
    return w;
}

void dme_xml_attr(dme_xml_w_t *w, const char *name, const char *value)
{
    int i;

    if (w->done || !w->in_tag) {
        return;
    }
    name = xml_name(name, w->p);
    for (i = 0; i < w->attrs->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(w->attrs, i, const char *), name)) {
            return; /* a repeated attribute would break the document */
        }
    }
    APR_ARRAY_PUSH(w->attrs, const char *) = name;
    puts_(w, " ");
    puts_(w, name);
    puts_(w, "=\"");
    put_escaped(w, value, 1);
    puts_(w, "\"");
}

void dme_xml_start(dme_xml_w_t *w, const char *name)
{
    if (!w->done) {
        open_tag(w, name);
    }
}

void dme_xml_elem(dme_xml_w_t *w, const char *name, const char *text)
{
    if (w->done) {
        return;
    }
    open_tag(w, name);
    if (text && *text) {
        puts_(w, ">");
        w->in_tag = 0;
        put_escaped(w, text, 0);
    }
    dme_xml_end(w);
}

void dme_xml_end(dme_xml_w_t *w)
{
    const char **name;

    if (w->done || !(name = apr_array_pop(w->open))) {
        return;
    }
    if (w->in_tag) {
        puts_(w, "/>");
        w->in_tag = 0;
        return;
    }
    puts_(w, "</");
    puts_(w, *name);
    puts_(w, ">");
}

const char *dme_xml_finish(dme_xml_w_t *w, apr_size_t *len)
{
    while (!w->done && w->open->nelts > 0) {
        dme_xml_end(w);
    }
    w->done = 1;
    w->buf[w->len] = '\0';
    if (len) {
        *len = w->len;
    }
    return w->buf;
}

const char *dme_xml_error(const char *code, const char *text, apr_pool_t *p)
{
    dme_xml_w_t *w = dme_xml_writer_create("error", p);

    dme_xml_attr(w, "code", code);
    if (text && *text) {
        puts_(w, ">");
        w->in_tag = 0;
        put_escaped(w, text, 0);
    }
    return dme_xml_finish(w, NULL);
}
