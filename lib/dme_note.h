/* Minimal notes: what the server remembers of one mail, never content.
 *
 * A note is the mail's reference within its folder (the folder's
 * UIDVALIDITY and the mail's UID) and an MD5 checksum over its
 * synchronised state: flags, folder, size, internal date, Message-ID.
 * A set of notes is what a client holds for one folder.
 */
#ifndef DME_NOTE_H
#define DME_NOTE_H

#include "dme.h"

#define DME_NOTE_SUM_LEN 32 /* lowercase hex MD5 */

typedef struct dme_note_t {
    apr_uint32_t uid;
    char sum[DME_NOTE_SUM_LEN + 1];
    /* Known only for notes read from the mail system just now; NULL or 0
     * for notes loaded from storage. */
    const char *flags; /* space-separated, sorted */
    apr_uint64_t size;
    apr_time_t date;
} dme_note_t;

typedef struct dme_notes_t {
    apr_uint32_t uidvalidity;
    apr_array_header_t *notes; /* dme_note_t, ascending uid, unique */
} dme_notes_t;

dme_notes_t *dme_notes_make(apr_uint32_t uidvalidity, int nalloc,
                            apr_pool_t *p);

/* Sorted, space-joined copy of a flag list (const char *), so a
 * reordering by the server never looks like a change. \Recent is
 * dropped: it is session state, not mail state. */
const char *dme_note_flags_join(const apr_array_header_t *flags, apr_pool_t *p);

/* Fill n->sum from the synchronised state. */
apr_status_t dme_note_checksum(dme_note_t *n, const char *flags,
                               const char *folder, apr_uint64_t size,
                               apr_time_t date, const char *message_id);

/* Sort by uid and drop duplicate uids (keeping the first). */
void dme_notes_sort(dme_notes_t *ns);

/* Text form for storage: "v1 <uidvalidity>\n" then "<uid> <sum>\n" each. */
const char *dme_notes_serialize(const dme_notes_t *ns, apr_pool_t *p);

/* Parse the text form. APR_EINVAL on any malformed line. */
apr_status_t dme_notes_parse(dme_notes_t **ns, const char *text, apr_pool_t *p);

/* Reference text "<uidvalidity>:<uid>" and its parser (APR_EINVAL). */
const char *dme_note_ref(apr_uint32_t uidvalidity, apr_uint32_t uid,
                         apr_pool_t *p);
apr_status_t dme_note_ref_parse(apr_uint32_t *uidvalidity, apr_uint32_t *uid,
                                const char *ref);

#endif
