/* Mail summaries for the sync answer: the headers a client lists, a short
 * preview of the text and the S/MIME kind, read from raw RFC 5322 bytes.
 *
 * Also finds the S/MIME signed parts of a mail with their exact bytes,
 * and the sender's address, for the certificate harvest (dme_smime).
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

/* Signed parts dme_mime_signed_parts() reports at most; a mail with more
 * is broken or hostile, and the rest are not looked at. */
#define DME_MIME_SIGNED_MAX 16

/* One S/MIME signature found in a mail. */
typedef struct {
    /* 1 for application/(x-)pkcs7-mime, whose signed content travels
     * inside cms; 0 for a multipart/signed with a detached signature. */
    int opaque;
    /* The smime-type parameter, lowercased; "" when absent. Opaque only. */
    const char *smime_type;
    /* Detached only: the signed entity exactly as received - its MIME
     * headers and body from just after the first delimiter line up to,
     * not including, the line break before the next delimiter (RFC 1847).
     * It points into the caller's buffer: no byte is converted, decoded or
     * re-serialised. NULL when the multipart/signed is malformed (not two
     * parts, or its delimiters are not where they must be). */
    const char *content;
    apr_size_t content_len;
    /* The signature part's (detached) or the pkcs7-mime part's (opaque)
     * body, transfer-decoded: a CMS ContentInfo in DER or BER if the
     * sender was honest, arbitrary bytes otherwise. In the pool. */
    const unsigned char *cms;
    apr_size_t cms_len;
} dme_mime_signed_t;

/* Find every S/MIME signed part of the whole mail in data[0..len): a
 * multipart/signed whose second part is (x-)pkcs7-signature (whatever its
 * protocol and micalg parameters say), and every (x-)pkcs7-mime part whose
 * smime-type is signed-data, certs-only or absent (enveloped, compressed
 * and other kinds are left out). Signed parts nested in other multiparts,
 * in the content of a multipart/signed and in attached messages
 * (message/rfc822) are found too, in the order they appear, down to 32
 * levels and at most DME_MIME_SIGNED_MAX of them. The content inside an
 * opaque signature is not searched. A first line "From " (an mbox
 * separator) is skipped.
 *
 * *parts is an array of dme_mime_signed_t, empty when there is none;
 * content pointers stay valid as long as data does.
 * Needs dme_mime_init(); safe from several threads at once.
 * @return APR_SUCCESS, also for damaged input; DME_EPROTO if no message
 *         can be read at all; APR_EINVAL if parts, data or p is NULL. */
apr_status_t dme_mime_signed_parts(apr_array_header_t **parts, const char *data,
                                   apr_size_t len, apr_pool_t *p);

/* The bare address of the mail's From header ("local@domain"), ASCII
 * letters lowercased, in p; NULL when there is no From, it is not exactly
 * one mailbox (a group, or several addresses: no single sender to judge
 * by), or the address has no "@". A first line "From " is skipped.
 * Needs dme_mime_init(). */
const char *dme_mime_sender_address(const char *data, apr_size_t len,
                                    apr_pool_t *p);

#endif /* DME_MIME_H */
