/* Mail summaries for the sync answer: the headers a client lists, a short
 * preview of the text and the S/MIME kind, read from raw RFC 5322 bytes.
 *
 * This is the only place that knows the MIME library; callers see APR
 * types and pool-allocated UTF-8 strings only.
 */
#ifndef DME_MIME_H
#define DME_MIME_H

#include "dme.h"

/* The S/MIME kinds of a mail, judged on its top-level part only. */
#define DME_MIME_SMIME_NONE      "none"
#define DME_MIME_SMIME_SIGNED    "signed"
#define DME_MIME_SMIME_ENCRYPTED "encrypted"

/* Every string is valid UTF-8 without control characters (invalid bytes
 * become U+FFFD, controls a space), never NULL, allocated in the pool
 * given to dme_mime_summarize(). */
typedef struct {
    const char *from;       /* display form, "Name <addr>"; "" if none */
    const char *to;         /* every To address, comma-separated */
    const char *subject;    /* RFC 2047 decoded; "" if none */
    const char *message_id; /* without the angle brackets; "" if none */
    apr_time_t date;        /* Date header; 0 if absent or unparseable */
    const char *preview;    /* start of the text, see dme_mime_summarize */
    const char *smime;      /* one of the DME_MIME_SMIME_* strings */
    int has_attachments;    /* 1 if any part is an attachment */
} dme_mime_summary_t;

/* Prepare the MIME library. Call once per process before any thread calls
 * dme_mime_summarize(); later calls do nothing. Returns APR_SUCCESS. */
apr_status_t dme_mime_init(void);

/* Summarise the mail in data[0..len), which may be only the first bytes of
 * a longer message: whatever is there is summarised.
 *
 * preview: the first text/plain part that is not an attachment, or if
 * there is none the first such text/html part with its markup removed,
 * transfer-decoded, converted from its charset to UTF-8 (undeclared text
 * that is not UTF-8 is read as windows-1252), whitespace runs collapsed to
 * one space, trimmed, and cut to at most preview_max characters (not
 * bytes). Only the first 256 KiB of decoded text are looked at.
 *
 * smime: "signed" for multipart/signed with an (x-)pkcs7-signature
 * protocol or (x-)pkcs7-mime with smime-type=signed-data; "encrypted" for
 * (x-)pkcs7-mime with smime-type enveloped-data or authEnveloped-data, or
 * with no smime-type and a file name ending in .p7m; "none" otherwise.
 *
 * has_attachments: a part with Content-Disposition attachment or a file
 * name. S/MIME's own parts (the detached signature, the pkcs7-mime body)
 * are not counted: the kind is reported in smime instead.
 *
 * Safe to call from several threads at once after dme_mime_init().
 * Returns APR_SUCCESS, also for damaged input (fields then stay empty);
 * DME_EPROTO if no message at all can be read (empty input, no header);
 * APR_EINVAL if out or p is NULL.
 */
apr_status_t dme_mime_summarize(dme_mime_summary_t **out, const char *data,
                                apr_size_t len, apr_size_t preview_max,
                                apr_pool_t *p);

#endif /* DME_MIME_H */
