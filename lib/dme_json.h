/* JSON for change notifications: reading the note Dovecot's push
 * notification plugin (OX driver) PUTs for each new message, and writing
 * the small documents the module POSTs to clients' push URLs. The only
 * place that knows the JSON library.
 *
 * A note as Dovecot 2.3 sends it (one line, keys in this order):
 *   {"user":"alice","event":"messageNew","folder":"INBOX",
 *    "imap-uidvalidity":1796319848,"imap-uid":2,"from":"Bob <b@x.org>",
 *    "subject":"Lunch","snippet":"Hi Alice","unseen":2}
 */
#ifndef DME_JSON_H
#define DME_JSON_H

#include "dme.h"

#define DME_JSON_PUSH_MAX        65536 /* bytes of a whole note */
#define DME_JSON_PUSH_USER_MAX   255   /* bytes of "user" */
#define DME_JSON_PUSH_FOLDER_MAX 1024  /* bytes of "folder" */
#define DME_JSON_PUSH_EVENT_MAX  64    /* bytes of "event" */

/* One note, all strings allocated from the pool given to the parser.
 * from, subject and snippet come from the message itself: show them to
 * the mailbox's owner at most, never write them to a log. */
typedef struct dme_push_event_t {
    const char *user;         /* whose mailbox; UTF-8, no control chars */
    const char *folder;       /* mailbox name as Dovecot shows it, ditto */
    const char *event;        /* ASCII letters only, e.g. "messageNew" */
    apr_uint32_t uidvalidity; /* "imap-uidvalidity", 1..2^32-1 */
    apr_uint32_t uid;         /* "imap-uid", 1..2^32-1 */
    const char *from, *subject, *snippet; /* UTF-8 as sent, or NULL */
    int unseen; /* unseen messages in folder, or -1 if not sent */
} dme_push_event_t;

/* Read the note in body[0..len) into *ev, allocated from p.
 *
 * The note must be one JSON object, nothing after it but white space,
 * with no key twice, no object or array anywhere inside it and no string
 * holding U+0000. Required: "user" (1..DME_JSON_PUSH_USER_MAX bytes) and
 * "folder" (1..DME_JSON_PUSH_FOLDER_MAX bytes), strings without C0 or C1
 * control characters or DEL; "event" (1..DME_JSON_PUSH_EVENT_MAX ASCII
 * letters); "imap-uidvalidity" and "imap-uid", JSON integers (no
 * fraction, no exponent, not a string) from 1 to 4294967295. Optional:
 * "from", "subject", "snippet" (strings, any content) and "unseen" (an
 * integer from 0 to INT_MAX). Other keys are ignored whatever their
 * (scalar) value.
 *
 * Returns APR_SUCCESS with *why NULL; DME_ETOOBIG if len is over
 * DME_JSON_PUSH_MAX; APR_EINVAL for any other fault, with *ev NULL and
 * *why a short static English reason naming the field, such as "not
 * JSON", "user missing" or "imap-uid not a 32-bit unsigned integer",
 * fit for a log line (it never quotes the note). Thread-safe. */
apr_status_t dme_json_push_parse(dme_push_event_t **ev, const char **why,
                                 const char *body, apr_size_t len,
                                 apr_pool_t *p);

/* s as a JSON string literal: in double quotes, with ", \ and control
 * characters escaped. Bytes that are not well-formed UTF-8 become
 * U+FFFD; NULL counts as "". Never fails. */
const char *dme_json_string(const char *s, apr_pool_t *p);

/* The document the module POSTs to a client's push URL when a folder has
 * new mail, exactly {"client":CLIENT,"folder":FOLDER,"reason":"new-mail"}
 * with both values as dme_json_string() writes them. */
const char *dme_json_push_notice(const char *client, const char *folder,
                                 apr_pool_t *p);

#endif /* DME_JSON_H */
