/* The sync engine's core decision: what changed between the notes a
 * client holds and the notes the mail system has now.
 *
 * This knows nothing of the wire format; the XML protocol (and later
 * other front ends) render its result.
 */
#ifndef DME_SYNC_H
#define DME_SYNC_H

#include "dme_note.h"

typedef struct dme_delta_t {
    apr_array_header_t *deletes; /* apr_uint32_t uids, held uidvalidity */
    apr_uint32_t deletes_uidvalidity;
    apr_array_header_t *changes; /* dme_note_t from the current set */
    apr_array_header_t *adds;    /* dme_note_t, newest (highest uid) first */
    int more;                    /* page_size cut this answer short */
    dme_notes_t *next;           /* what the client holds after this page */
} dme_delta_t;

/* Compare held with cur (both sorted, as dme_notes_sort leaves them).
 * A different UIDVALIDITY deletes everything held and adds everything
 * current. At most page_size entries are returned (deletes first, then
 * changes, then adds newest first); *more says whether some were left
 * for the next page. page_size <= 0 means no limit. */
apr_status_t dme_sync_delta(dme_delta_t **d, const dme_notes_t *held,
                            const dme_notes_t *cur, int page_size,
                            apr_pool_t *p);

int dme_delta_is_empty(const dme_delta_t *d);

#endif
