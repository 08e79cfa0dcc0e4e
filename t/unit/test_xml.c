/* Unit tests for lib/dme_xml: hostile requests refused, responses that
 * stay well-formed whatever they carry. libxml2 is used here directly
 * only to read the writer's output independently of the code under test.
 */
#include <stdlib.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "unit.h"
#include "dme_xml.h"

#define MAX 65536

static apr_pool_t *pool;

static apr_status_t parse(dme_xml_req_t **req, const char *xml)
{
    return dme_xml_parse_request(req, xml, strlen(xml), MAX, pool);
}

/* The request must be refused as malformed. */
static void refused(const char *xml, int line)
{
    dme_xml_req_t *req = (dme_xml_req_t *)1;
    apr_status_t rv = parse(&req, xml);

    unit_checks++;
    if (rv != APR_EINVAL || req != NULL) {
        unit_failures++;
        fprintf(stderr, "%s:%d: accepted (rv %d): %s\n", __FILE__, line, rv,
                xml);
    }
}
#define REFUSED(xml) refused((xml), __LINE__)

static void test_valid(void)
{
    dme_xml_req_t *req = NULL;

    CHECK_INT(parse(&req, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                          "<sync xmlns=\"urn:dme:1\">\n"
                          "  <client>c1</client>\n"
                          "  <!-- a comment -->\n"
                          "  <folder> Sent  Items\n</folder>\n"
                          "  <type>p<![CDATA[u<&]]>sh &amp; &#xe4;</type>\n"
                          "  <key>3</key><empty/>\n"
                          "</sync>\n"),
              APR_SUCCESS);
    CHECK(req != NULL);
    if (!req) {
        return;
    }
    CHECK_STR(req->root, "sync");
    CHECK_INT(apr_table_elts(req->fields)->nelts, 5);
    CHECK_STR(apr_table_get(req->fields, "client"), "c1");
    CHECK_STR(apr_table_get(req->fields, "folder"), " Sent  Items\n");
    CHECK_STR(apr_table_get(req->fields, "type"), "pu<&sh & \xc3\xa4");
    CHECK_STR(apr_table_get(req->fields, "key"), "3");
    CHECK_STR(apr_table_get(req->fields, "empty"), "");
}

static void test_namespaces(void)
{
    dme_xml_req_t *req = NULL;

    CHECK_INT(parse(&req, "<enrol><device>d</device></enrol>"), APR_SUCCESS);
    CHECK(req && !strcmp(req->root, "enrol"));
    CHECK_INT(parse(&req, "<d:sync xmlns:d=\"urn:dme:1\"><d:key>9</d:key>"
                          "</d:sync>"),
              APR_SUCCESS);
    CHECK(req && !strcmp(apr_table_get(req->fields, "key"), "9"));
    CHECK_INT(parse(&req, "<?xml version='1.0'?>\xef\xbb\xbf<a/>"), APR_EINVAL);
    CHECK_INT(parse(&req, "\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?>"
                          "<a/>"),
              APR_SUCCESS);

    REFUSED("<sync xmlns=\"urn:dme:2\"><key>3</key></sync>");
    REFUSED("<sync xmlns=\"urn:dme:1\"><key xmlns=\"urn:x\">3</key></sync>");
    REFUSED("<sync><x:key xmlns:x=\"urn:x\">3</x:key></sync>");
    REFUSED("<x:sync><key>3</key></x:sync>"); /* undeclared prefix */
}

static void test_doctype(void)
{
    const char *laughs =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE sync [\n"
        " <!ENTITY l0 \"lol\">\n"
        " <!ENTITY l1 \"&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;\">\n"
        " <!ENTITY l2 \"&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;\">\n"
        " <!ENTITY l3 \"&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;\">\n"
        " <!ENTITY l4 \"&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;\">\n"
        " <!ENTITY l5 \"&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;\">\n"
        " <!ENTITY l6 \"&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;\">\n"
        " <!ENTITY l7 \"&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;\">\n"
        " <!ENTITY l8 \"&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;\">\n"
        " <!ENTITY l9 \"&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;\">\n"
        "]>\n"
        "<sync><key>&l9;</key></sync>\n";
    apr_time_t start = apr_time_now();
    int i;

    for (i = 0; i < 100; i++) {
        REFUSED(laughs);
    }
    /* refused at "<!DOCTYPE", never expanded: 100 tries in well under 1s */
    CHECK(apr_time_now() - start < apr_time_from_sec(1));

    REFUSED("<!DOCTYPE sync [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
            "<sync><key>&x;</key></sync>");
    REFUSED("<!DOCTYPE sync SYSTEM \"http://127.0.0.1:9/x.dtd\">"
            "<sync><key>1</key></sync>");
    REFUSED("<!DOCTYPE sync [<!ENTITY % p SYSTEM \"file:///etc/passwd\">%p;]>"
            "<sync/>");
    REFUSED("<!DOCTYPE sync><sync/>");
    REFUSED("<sync><key>&x;</key></sync>"); /* undeclared entity */
    REFUSED("<sync xmlns:xi=\"http://www.w3.org/2001/XInclude\">"
            "<xi:include href=\"file:///etc/passwd\" parse=\"text\"/>"
            "</sync>");
}

static void test_malformed(void)
{
    dme_xml_req_t *req = NULL;
    char *many, *big;
    int i;

    REFUSED("");
    REFUSED("   ");
    REFUSED("<sync><client>c1</client><key>3</ke");
    REFUSED("<sync><client>c1</client>");
    REFUSED("<sync><client><x>c1</x></client></sync>");
    REFUSED("<sync><client>c1</client><client>c2</client></sync>");
    REFUSED("<sync><key>1</key><KEY>2</KEY></sync>");
    REFUSED("<sync>stray<key>1</key></sync>");
    REFUSED("<sync><key>1</key><![CDATA[x]]></sync>");
    REFUSED("<sync><key>1</key></sync><sync/>");
    REFUSED("<sync><key>\x01</key></sync>");
    REFUSED("<sync><key>&#1;</key></sync>");
    CHECK_INT(parse(&req, "<sync>\n\t <key>1</key>\r\n</sync>"), APR_SUCCESS);

    many = apr_pstrdup(pool, "<sync>");
    for (i = 0; i < DME_XML_MAX_FIELDS; i++) {
        many = apr_psprintf(pool, "%s<f%d>%d</f%d>", many, i, i, i);
    }
    CHECK_INT(parse(&req, apr_pstrcat(pool, many, "</sync>", NULL)),
              APR_SUCCESS);
    CHECK(req && apr_table_elts(req->fields)->nelts == DME_XML_MAX_FIELDS);
    CHECK_STR(req ? apr_table_get(req->fields, "f63") : NULL, "63");
    REFUSED(apr_pstrcat(pool, many, "<extra/></sync>", NULL));

    big = apr_palloc(pool, DME_XML_MAX_FIELD + 2);
    memset(big, 'x', DME_XML_MAX_FIELD + 1);
    big[DME_XML_MAX_FIELD + 1] = '\0';
    REFUSED(apr_pstrcat(pool, "<sync><v>", big, "</v></sync>", NULL));
    big[DME_XML_MAX_FIELD] = '\0';
    CHECK_INT(
        parse(&req, apr_pstrcat(pool, "<sync><v>", big, "</v></sync>", NULL)),
        APR_SUCCESS);
    CHECK_INT(strlen(apr_table_get(req->fields, "v")), DME_XML_MAX_FIELD);
}

static void test_encoding(void)
{
    static const char utf16[] = "\xff\xfe<\0s\0/\0>\0";
    dme_xml_req_t *req = NULL;

    REFUSED("<sync><key>\xff</key></sync>");
    REFUSED("<sync><key>K\xf6ln</key></sync>");      /* ISO-8859-1 */
    REFUSED("<sync><key>\xc0\xaf</key></sync>");     /* overlong '/' */
    REFUSED("<sync><key>\xed\xa0\x80</key></sync>"); /* surrogate */
    REFUSED("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><sync/>");
    REFUSED("<?xml version=\"1.0\" encoding=\"UTF-16\"?><sync/>");
    REFUSED("<?xml version=\"1.0\" encoding=\"UTF-8x\"?><sync/>");
    CHECK_INT(dme_xml_parse_request(&req, utf16, sizeof(utf16) - 1, MAX, pool),
              APR_EINVAL);
    CHECK_INT(dme_xml_parse_request(&req, "<a>\0</a>", 8, MAX, pool),
              APR_EINVAL);
    CHECK_INT(parse(&req, "<?xml version=\"1.0\" encoding='utf-8' ?>"
                          "<sync><key>K\xc3\xb6ln \xf0\x9f\x98\x80</key>"
                          "</sync>"),
              APR_SUCCESS);
    CHECK_STR(apr_table_get(req->fields, "key"),
              "K\xc3\xb6ln \xf0\x9f\x98\x80");
}

static void test_size(void)
{
    const char *xml = "<sync><key>3</key></sync>";
    dme_xml_req_t *req = NULL;
    apr_size_t n = strlen(xml);

    CHECK_INT(dme_xml_parse_request(&req, xml, n, n - 1, pool), DME_ETOOBIG);
    CHECK(req == NULL);
    CHECK_INT(dme_xml_parse_request(&req, xml, n, n, pool), APR_SUCCESS);
}

/* Run fn with stderr sent to a file; return how many bytes it wrote. */
static long stderr_bytes(void (*fn)(void))
{
    FILE *f = tmpfile();
    int saved = dup(2);
    long n;

    fflush(stderr);
    dup2(fileno(f), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

static void noisy_inputs(void)
{
    static const char *const bad[] = {
        "<sync><key>1</ke>",
        "<x:a/>",
        "<!DOCTYPE a [<!ENTITY e 'x'>]><a/>",
        "<?xml version=\"1.0\" encoding=\"EBCDIC-US\"?><a>x</a>",
        "<a>&nope;</a>",
        "<a b='1' b='2'/>",
        "<a>\xc3\xa4",
        "",
        " ",
        "<a/><!DOCTYPE a>",
        "<?xml version='2.0'?><a/>",
        NULL};
    dme_xml_req_t *req;
    int i;

    for (i = 0; bad[i]; i++) {
        parse(&req, bad[i]);
    }
}

static void test_silent(void)
{
    CHECK_INT(stderr_bytes(noisy_inputs), 0);
}

/* Read a document with libxml2 itself, as a client would. */
static xmlDocPtr reread(const char *doc, apr_size_t len)
{
    return xmlReadMemory(doc, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR |
                             XML_PARSE_NOWARNING);
}

static void check_content(xmlNodePtr n, const char *want)
{
    xmlChar *got = xmlNodeGetContent(n);

    CHECK_STR((const char *)got, want);
    xmlFree(got);
}

static void check_attr(xmlNodePtr n, const char *name, const char *want)
{
    xmlChar *got = xmlGetProp(n, BAD_CAST name);

    CHECK_STR((const char *)got, want);
    xmlFree(got);
}

#define FFFD "\xef\xbf\xbd"

static void test_writer_hostile(void)
{
    const char *hostile = "<a & b> \"q\" 'a' \x01 \xff ]]> \xc0\xaf"
                          " \xef\xbf\xbe \xe2\x82";
    const char *clean = "<a & b> \"q\" 'a' " FFFD " " FFFD " ]]> " FFFD FFFD
                        " " FFFD " " FFFD FFFD;
    dme_xml_w_t *w = dme_xml_writer_create("sync", pool);
    const char *doc;
    apr_size_t len;
    xmlDocPtr x;
    xmlNodePtr root, n;

    dme_xml_attr(w, "status", hostile);
    dme_xml_attr(w, "xmlns", "urn:evil"); /* repeated: dropped */
    dme_xml_attr(w, "lines", "a\tb\nc\r\nd");
    dme_xml_elem(w, "subject", hostile);
    dme_xml_attr(w, "late", "x"); /* root has content: dropped */
    dme_xml_elem(w, "body", "l1\r\nl2\n\tl3");
    dme_xml_elem(w, "bad name<", "n");
    doc = dme_xml_finish(w, &len);
    CHECK_INT(strlen(doc), len);

    x = reread(doc, len);
    CHECK(x != NULL);
    if (!x) {
        fprintf(stderr, "not well-formed: %s\n", doc);
        return;
    }
    root = xmlDocGetRootElement(x);
    CHECK_STR((const char *)root->ns->href, "urn:dme:1");
    check_attr(root, "status", clean);
    check_attr(root, "lines", "a\tb\nc\r\nd");
    CHECK(xmlHasProp(root, BAD_CAST "late") == NULL);
    n = xmlFirstElementChild(root);
    CHECK_STR((const char *)n->name, "subject");
    check_content(n, clean);
    n = xmlNextElementSibling(n);
    check_content(n, "l1\r\nl2\n\tl3");
    n = xmlNextElementSibling(n);
    CHECK_STR((const char *)n->name, "bad_name_");
    CHECK(xmlNextElementSibling(n) == NULL);
    xmlFreeDoc(x);
}

static void test_writer_shape(void)
{
    dme_xml_w_t *w = dme_xml_writer_create("sync", pool);
    dme_xml_req_t *req = NULL;
    const char *doc;
    apr_size_t len;

    dme_xml_attr(w, "key", "4");
    dme_xml_start(w, "adds");
    dme_xml_start(w, "mail");
    dme_xml_attr(w, "uid", "17");
    dme_xml_elem(w, "subject", "Hi & bye");
    dme_xml_elem(w, "preview", "");
    dme_xml_end(w);
    dme_xml_start(w, "mail");
    dme_xml_end(w);
    dme_xml_start(w, "deletes");
    doc = dme_xml_finish(w, &len);
    CHECK_STR(doc, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<sync xmlns=\"urn:dme:1\" key=\"4\"><adds>"
                   "<mail uid=\"17\"><subject>Hi &amp; bye</subject>"
                   "<preview/></mail><mail/><deletes/></adds></sync>");
    dme_xml_elem(w, "after", "x"); /* finished: ignored */
    dme_xml_end(w);
    CHECK_STR(dme_xml_finish(w, NULL), doc);

    /* a flat answer reads back through the request reader */
    w = dme_xml_writer_create("enrol", pool);
    dme_xml_elem(w, "client", "c\"1<");
    dme_xml_elem(w, "name", " Jo\xc3\xabl ");
    doc = dme_xml_finish(w, &len);
    CHECK_INT(dme_xml_parse_request(&req, doc, len, MAX, pool), APR_SUCCESS);
    CHECK_STR(req ? apr_table_get(req->fields, "client") : NULL, "c\"1<");
    CHECK_STR(req ? apr_table_get(req->fields, "name") : NULL, " Jo\xc3\xabl ");
}

static void test_error_doc(void)
{
    const char *doc = dme_xml_error("E_AUTH", "bad <login> & \"x\"", pool);
    xmlDocPtr x;

    CHECK_STR(doc, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<error xmlns=\"urn:dme:1\" code=\"E_AUTH\">"
                   "bad &lt;login&gt; &amp; &quot;x&quot;</error>");
    doc = dme_xml_error("a\"b", "\x02\xfe", pool);
    x = reread(doc, strlen(doc));
    CHECK(x != NULL);
    if (x) {
        check_attr(xmlDocGetRootElement(x), "code", "a\"b");
        check_content(xmlDocGetRootElement(x), FFFD FFFD);
        xmlFreeDoc(x);
    }
}

/* Writing many elements must stay linear: a writer that copied the whole
 * document per element would take minutes here. */
static void test_writer_many(void)
{
    const int count = 100000;
    dme_xml_w_t *w = dme_xml_writer_create("list", pool);
    apr_time_t start = apr_time_now();
    apr_size_t len, head, item;
    const char *doc;
    xmlDocPtr x;
    int i;

    for (i = 0; i < count; i++) {
        dme_xml_elem(w, "item", "value<1>");
    }
    doc = dme_xml_finish(w, &len);
    CHECK(apr_time_now() - start < apr_time_from_sec(5));
    head = strlen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<list xmlns=\"urn:dme:1\">");
    item = strlen("<item>value&lt;1&gt;</item>");
    CHECK_INT(len, head + count * item + strlen("</list>"));
    x = reread(doc, len);
    CHECK(x != NULL);
    if (x) {
        CHECK_INT(xmlChildElementCount(xmlDocGetRootElement(x)), count);
        xmlFreeDoc(x);
    }
}

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    apr_pool_t *p = data;
    dme_xml_req_t *req;
    int i, bad = 0;

    for (i = 0; i < 300; i++) {
        const char *k = apr_psprintf(p, "<sync><key>%d</key></sync>", i);

        if (dme_xml_parse_request(&req, k, strlen(k), MAX, p) ||
            atoi(apr_table_get(req->fields, "key")) != i ||
            dme_xml_parse_request(&req, "<!DOCTYPE a><a/>", 16, MAX, p) !=
                APR_EINVAL) {
            bad++;
        }
        apr_pool_clear(p);
    }
    apr_thread_exit(t, bad);
    return NULL;
}

static void test_threads(void)
{
    apr_thread_t *t[4];
    apr_pool_t *p[4];
    apr_status_t rv;
    int i;

    for (i = 0; i < 4; i++) {
        apr_pool_create(&p[i], pool);
    }
    for (i = 0; i < 4; i++) {
        CHECK_INT(apr_thread_create(&t[i], NULL, worker, p[i], pool), 0);
    }
    for (i = 0; i < 4; i++) {
        apr_thread_join(&rv, t[i]);
        CHECK_INT(rv, 0);
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    CHECK_INT(dme_xml_init(), APR_SUCCESS);

    test_valid();
    test_namespaces();
    test_doctype();
    test_malformed();
    test_encoding();
    test_size();
    test_silent();
    test_writer_hostile();
    test_writer_shape();
    test_error_doc();
    test_writer_many();
    test_threads();

    apr_pool_destroy(pool);
    apr_terminate();
    return unit_done("test_xml");
}
