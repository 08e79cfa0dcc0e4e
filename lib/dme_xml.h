/* The XML wire format of the client protocol: reading requests and
 * writing responses. The only place that knows the XML library.
 *
 * A request is a root element whose children are simple text elements:
 *   <sync xmlns="urn:dme:1"><client>c1</client><key>3</key></sync>
 */
#ifndef DME_XML_H
#define DME_XML_H

#include "dme.h"

#define DME_XML_NS         "urn:dme:1"
#define DME_XML_MAX_FIELDS 64   /* child elements of a request's root */
#define DME_XML_MAX_FIELD  4096 /* bytes of text in one child element */

typedef struct {
    const char *root;    /* local name of the root element */
    apr_table_t *fields; /* child local name -> its text, as sent */
} dme_xml_req_t;

/* Prepare the XML library. Call once per process before threads start;
 * later calls do nothing. Returns APR_SUCCESS. */
apr_status_t dme_xml_init(void);

/* Read the request in buf[0..len) into *out, allocated from p.
 *
 * Field names are the children's local names; values are their text with
 * whitespace kept. As apr_table_t compares keys without regard to case,
 * two children differing only in case count as duplicates.
 *
 * Returns APR_SUCCESS; DME_ETOOBIG if len > max_len; APR_EINVAL if buf is
 * no acceptable request: not well-formed, not UTF-8 (or declaring another
 * encoding), carrying a DOCTYPE (refused before its declarations are
 * read: no DTD, entity or network access ever happens), an element in a
 * namespace other than DME_XML_NS (none at all is accepted), a child
 * with child elements, two children of one name, non-blank text directly
 * in the root, more than DME_XML_MAX_FIELDS children or a child over
 * DME_XML_MAX_FIELD bytes; APR_ENOMEM if the parser cannot be made.
 * Parse errors are never printed. Thread-safe after dme_xml_init(). */
apr_status_t dme_xml_parse_request(dme_xml_req_t **out, const char *buf,
                                   apr_size_t len, apr_size_t max_len,
                                   apr_pool_t *p);

/* A response writer. All output goes into memory from the pool given to
 * dme_xml_writer_create(); appending is amortised constant time.
 *
 * Text and attribute values may be anything: &, <, >, " are escaped, as
 * are TAB, LF and CR where a parser would otherwise normalise them, and
 * bytes that are not well-formed UTF-8 or characters XML 1.0 forbids
 * (controls other than TAB, LF, CR; U+FFFE, U+FFFF) become U+FFFD. NULL
 * counts as "". Element and attribute names are meant to be constants of
 * the protocol; characters not allowed in a name become '_'. */
typedef struct dme_xml_w_t dme_xml_w_t;

/* Start a document: the XML declaration and <root xmlns="urn:dme:1". */
dme_xml_w_t *dme_xml_writer_create(const char *root, apr_pool_t *p);

/* Add an attribute to the element just started. Ignored once that
 * element has content, and for a name it already has (such as xmlns). */
void dme_xml_attr(dme_xml_w_t *w, const char *name, const char *value);

/* Open a child element of the innermost open element. */
void dme_xml_start(dme_xml_w_t *w, const char *name);

/* Write <name>text</name>, or <name/> for empty text. */
void dme_xml_elem(dme_xml_w_t *w, const char *name, const char *text);

/* Close the innermost open element; nothing if none is open. */
void dme_xml_end(dme_xml_w_t *w);

/* Close every open element and return the NUL-terminated document, its
 * length in *len if len is not NULL. Later writes are ignored; calling
 * again returns the same document. */
const char *dme_xml_finish(dme_xml_w_t *w, apr_size_t *len);

/* A complete error response:
 * <?xml ...?><error xmlns="urn:dme:1" code="CODE">text</error> */
const char *dme_xml_error(const char *code, const char *text, apr_pool_t *p);

#endif /* DME_XML_H */
