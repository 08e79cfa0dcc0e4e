/* Pre-caches: one user's minimal notes of one folder, built in the
 * background after a change so the next sync needs only the mails new to
 * the client. Never holds mail content: per mail only its UID, checksum
 * and arrival time; plus when it was last fully read and its newest UID.
 */
#ifndef DME_PRECACHE_H
#define DME_PRECACHE_H

#include "dme_imap.h"

typedef struct dme_precache_t {
    apr_uint32_t uidvalidity;
    apr_time_t built_at;     /* last full read or merge */
    apr_uint32_t newest_uid; /* highest UID seen in the folder */
    dme_notes_t *notes;      /* uid, sum, date */
} dme_precache_t;

typedef enum {
    DME_PC_FULL,   /* none existed (or the folder was recreated) */
    DME_PC_APPEND, /* young enough: only newer mail was added */
    DME_PC_MERGE   /* too old: today's and yesterday's mail re-read */
} dme_pc_how_e;

/* Text form for memcached: "dmepc1 <uidvalidity> <built_at> <newest>\n"
 * then "<uid> <sum> <date>\n" per mail. */
const char *dme_precache_serialize(apr_size_t *len, const dme_precache_t *pc,
                                   apr_pool_t *p);

/* APR_EINVAL for anything not written by dme_precache_serialize. */
apr_status_t dme_precache_parse(dme_precache_t **pc, const char *data,
                                apr_size_t len, apr_pool_t *p);

/* Bring a pre-cache up to date with the folder, the way DESIGN's rules
 * say: no old one (or another UIDVALIDITY): read the window; one older
 * than max_age: re-read mail since yesterday 00:00 UTC and merge it in,
 * which resets built_at; then in every case add mail newer than the
 * newest known in one UID FETCH. Notes older than `since` are dropped.
 * *how says which path ran. Errors are those of dme_imap_*. */
apr_status_t dme_precache_update(dme_precache_t **out, dme_pc_how_e *how,
                                 dme_imap_t *s, const char *folder,
                                 const dme_precache_t *old, apr_time_t since,
                                 apr_interval_time_t max_age, apr_time_t now,
                                 apr_pool_t *p);

#endif
