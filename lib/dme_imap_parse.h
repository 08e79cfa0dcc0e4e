/* Strict parser for IMAP4rev1 server responses (RFC 3501).
 *
 * The module talks IMAP itself over a raw connection; these functions see
 * the bytes as received. Framing (where does the answer to a command end?)
 * is dme_imap_find_tagged(); dme_imap_parse_responses() turns complete
 * response lines into values; the helpers read FETCH, SEARCH and STATUS.
 *
 * Nothing here logs, allocates outside the given pool, or reads past the
 * given length. Every malformed input gives DME_EPROTO.
 */
#ifndef DME_IMAP_PARSE_H
#define DME_IMAP_PARSE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "dme.h"

/* Longest stretch of a response line without CRLF, outside literals.
 * "* SEARCH" over a million messages is about 8 MB, hence generous. */
#define DME_IMAP_LINE_MAX (16 * 1024 * 1024)
/* Largest literal accepted, e.g. one message body. */
#define DME_IMAP_LITERAL_MAX (64 * 1024 * 1024)
/* Deepest nesting of parenthesised lists (BODYSTRUCTURE nests). */
#define DME_IMAP_DEPTH_MAX 64

/* Where dme_imap_find_tagged() stopped, so a call on a grown buffer goes on
 * from there instead of rescanning. Zero it (or call dme_imap_scan_init())
 * before the first call; reset it whenever bytes are removed from the front
 * of the buffer, since it holds offsets. */
typedef struct dme_imap_scan_t {
    apr_size_t line; /* start of the response line being scanned */
    apr_size_t seg;  /* start of its current stretch after a literal */
    apr_size_t pos;  /* first byte not yet looked at */
} dme_imap_scan_t;

void dme_imap_scan_init(dme_imap_scan_t *sc);

/* Find the end of the tagged response line "tag SP ..." in buf[0..len).
 *
 * buf holds what the server sent so far; it may grow between calls as long
 * as its first len bytes of a previous call stay the same (it may move in
 * memory). Literals "{n}" CRLF (also "{n+}", "~{n}") are skipped by count,
 * so a body containing "\r\nD7 OK\r\n" never ends the scan. Every line must
 * end in CRLF. sc may be NULL to scan from the start each time; with sc the
 * work over all calls is linear in the data. Lines starting "+ " match the
 * tag "+" (continuation requests).
 *
 * @return APR_SUCCESS with *end just past the tagged line's CRLF (sc then
 *         points there, ready for the next command's answer);
 *         APR_INCOMPLETE when more bytes are needed;
 *         DME_EPROTO for a bare LF, a stretch without CRLF longer than
 *         DME_IMAP_LINE_MAX, or a literal over DME_IMAP_LITERAL_MAX;
 *         APR_EINVAL when tag is empty or holds SP, CR or LF.
 * A literal announced at the end of a human-readable text is taken as a
 * literal too, as any client would; such a response will not parse.
 */
apr_status_t dme_imap_find_tagged(apr_size_t *end, dme_imap_scan_t *sc,
                                  const char *buf, apr_size_t len,
                                  const char *tag);

typedef enum {
    DME_IMAP_ATOM,   /* str: the atom as received, e.g. "\Seen", "BODY[]<0>" */
    DME_IMAP_NUMBER, /* num: the value; str: its digits */
    DME_IMAP_STRING, /* str/len: unescaped quoted string or literal */
    DME_IMAP_NIL,    /* str: "NIL" */
    DME_IMAP_LIST    /* items: the members */
} dme_imap_kind_e;

typedef struct dme_imap_val_t {
    dme_imap_kind_e kind;
    const char *str; /* always NUL-terminated; a literal may hold NULs */
    apr_size_t len;  /* bytes in str, without the terminator */
    apr_uint64_t num;
    apr_array_header_t *items; /* dme_imap_val_t * each, for LIST */
} dme_imap_val_t;

/* One response line. Exactly one of status/name is set, except for "+"
 * continuation requests which have neither, only text. */
typedef struct dme_imap_resp_t {
    const char *tag;     /* "*", "+", or the command's tag */
    const char *status;  /* "OK","NO","BAD","BYE","PREAUTH", upper-cased */
    const char *code;    /* text inside [...] after the status, or NULL */
    const char *text;    /* human text, raw; "" when absent */
    apr_uint32_t number; /* the n of "* n EXISTS" / "* n FETCH" */
    int has_number;
    const char *name;          /* upper-cased: "FETCH","SEARCH",... */
    apr_array_header_t *items; /* dme_imap_val_t * after the name;
                                * never NULL, empty without a name */
} dme_imap_resp_t;

/* Parse buf[0..len), which must be whole response lines (as delimited by
 * dme_imap_find_tagged()), into *resps: an array of dme_imap_resp_t *.
 * Quoted strings are unescaped; literals are copied and NUL-terminated.
 * Status and continuation texts are kept raw and not looked into.
 * Separators are single spaces, as the RFC's grammar says.
 *
 * @return APR_SUCCESS; DME_EPROTO for anything not in the grammar:
 *         unterminated quote, bad escape, bad or oversized literal,
 *         number over 64 bits (32 for a message number), unbalanced
 *         parentheses or brackets, nesting past DME_IMAP_DEPTH_MAX,
 *         NUL or bare CR/LF outside literals, 8-bit bytes in atoms,
 *         a missing final CRLF, a tagged response that is not OK/NO/BAD,
 *         a text ending in a literal announcement.
 */
apr_status_t dme_imap_parse_responses(apr_array_header_t **resps,
                                      const char *buf, apr_size_t len,
                                      apr_pool_t *p);

/* What dme_imap_fetch_get() reads from "* n FETCH (...)". Zero or NULL
 * means absent (UIDs and MODSEQs are never 0). */
typedef struct dme_imap_fetch_t {
    apr_uint32_t seq;
    apr_uint32_t uid;
    apr_array_header_t *flags; /* const char * each, as received; NULL
                                * when FLAGS was not in the response */
    apr_uint64_t size;         /* RFC822.SIZE */
    int has_size;
    apr_time_t internaldate;
    int has_date;
    const char *body; /* content of the first BODY[...] item */
    apr_size_t body_len;
    int has_body; /* 0 if absent or NIL */
    apr_uint64_t modseq;
} dme_imap_fetch_t;

/* Read UID, FLAGS, RFC822.SIZE, INTERNALDATE, BODY[...] and MODSEQ (n)
 * from a FETCH response; other items are skipped.
 * @return APR_SUCCESS; APR_EINVAL if r is not a FETCH response;
 *         DME_EPROTO if an item is malformed (a UID over 32 bits, a flag
 *         that is not an atom, an unparsable INTERNALDATE, a body that is
 *         neither string nor NIL, an odd number of list members...).
 */
apr_status_t dme_imap_fetch_get(dme_imap_fetch_t **out,
                                const dme_imap_resp_t *r, apr_pool_t *p);

/* Parse an INTERNALDATE such as "17-Jul-1996 02:44:25 -0700" (the day may
 * be space-padded) into *t, in UTC.
 * @return APR_SUCCESS; APR_EBADDATE if s does not match exactly or names
 *         an impossible date or time.
 */
apr_status_t dme_imap_date_parse(apr_time_t *t, const char *s);

/* The numbers of "* SEARCH 1 2 3" into *uids (apr_uint32_t each, in the
 * order received; empty for "* SEARCH"). A trailing "(MODSEQ n)" that
 * CONDSTORE adds is ignored.
 * @return APR_SUCCESS; APR_EINVAL if r is not a SEARCH response;
 *         DME_EPROTO if a member is not a number from 1 to 2^32-1.
 */
apr_status_t dme_imap_search_get(apr_array_header_t **uids,
                                 const dme_imap_resp_t *r, apr_pool_t *p);

/* Read "* STATUS mailbox (MESSAGES 3 UIDNEXT 9 ...)". Each output may be
 * NULL; items the server did not send are set to 0. Other items skipped.
 * @return APR_SUCCESS; APR_EINVAL if r is not a STATUS response;
 *         DME_EPROTO if the list is malformed or a value does not fit.
 */
apr_status_t dme_imap_status_get(apr_uint32_t *messages, apr_uint32_t *uidnext,
                                 apr_uint32_t *uidvalidity,
                                 apr_uint64_t *highestmodseq,
                                 const dme_imap_resp_t *r);

/* s as an IMAP quoted string for a command argument, '"' and '\' escaped.
 * @return the quoted string, or NULL when s is NULL or holds CR, LF or a
 *         byte over 127, which a quoted string cannot carry; the caller
 *         must then refuse (or send a literal).
 */
const char *dme_imap_quote(const char *s, apr_pool_t *p);

/* A compact UID set such as "1:5,9,12:14" from n ascending UIDs
 * (repeats are allowed and merged).
 * @return APR_SUCCESS; APR_EINVAL if n < 1, a UID is 0, or the UIDs
 *         are not in ascending order.
 */
apr_status_t dme_imap_uid_set(const char **out, const apr_uint32_t *uids, int n,
                              apr_pool_t *p);

#endif /* DME_IMAP_PARSE_H */
