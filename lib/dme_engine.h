/* One folder sync against the mail system: list the window, compare with
 * what the client holds, and read heads only of the mails new to it.
 */
#ifndef DME_ENGINE_H
#define DME_ENGINE_H

#include "dme_sync.h"
#include "dme_imap.h"
#include "dme_mime.h"

typedef struct dme_sync_req_t {
    const char *folder;
    const dme_notes_t *held; /* what the client holds; empty for import */
    apr_time_t since;        /* start of the sync window */
    int page_size;           /* entries per answer */
    apr_size_t head_bytes;   /* bytes read of each new mail for its summary */
    apr_size_t preview_chars;
} dme_sync_req_t;

typedef struct dme_sync_add_t {
    const dme_note_t *note;
    const dme_mime_summary_t *summary; /* never NULL */
    int maybe_signed; /* its head names pkcs7: worth reading whole */
} dme_sync_add_t;

typedef struct dme_sync_result_t {
    dme_delta_t *delta;
    apr_array_header_t *adds; /* dme_sync_add_t, in delta->adds order */
    apr_uint32_t uidvalidity; /* of the folder now */
    const char *source;       /* "mail-system", "pre-cache" or "status" */
} dme_sync_result_t;

/* Run one sync. Mails that vanish between listing and reading are
 * dropped from this page (and from delta->next) so the next sync reports
 * them correctly. Errors are those of dme_imap_*. */
apr_status_t dme_sync_run(dme_sync_result_t **res, dme_imap_t *s,
                          const dme_sync_req_t *rq, apr_pool_t *p);

/* The same from notes already at hand (a pre-cache) instead of a listing:
 * the folder must be the one examined last on s. Changes whose notes carry
 * no flags get them in one UID FETCH. */
apr_status_t dme_sync_run_with(dme_sync_result_t **res, dme_imap_t *s,
                               const dme_sync_req_t *rq, dme_notes_t *cur,
                               const char *source, apr_pool_t *p);

/* An empty answer: nothing changed (told by one STATUS call). */
dme_sync_result_t *dme_sync_unchanged(const dme_notes_t *held, apr_pool_t *p);

#endif
