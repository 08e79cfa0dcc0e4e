/* Pre-cache model and its build rules. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "dme_precache.h"

const char *dme_precache_serialize(apr_size_t *len, const dme_precache_t *pc,
                                   apr_pool_t *p)
{
    const apr_array_header_t *v = pc->notes->notes;
    apr_size_t cap = 64 + (apr_size_t)v->nelts * 56, off;
    char *out = apr_palloc(p, cap);
    int i;

    off = apr_snprintf(out, cap, "dmepc1 %u %" APR_TIME_T_FMT " %u\n",
                       pc->uidvalidity, apr_time_sec(pc->built_at),
                       pc->newest_uid);
    for (i = 0; i < v->nelts; i++) {
        const dme_note_t *n = &APR_ARRAY_IDX(v, i, dme_note_t);

        off += apr_snprintf(out + off, cap - off, "%u %s %" APR_TIME_T_FMT "\n",
                            n->uid, n->sum, apr_time_sec(n->date));
    }
    *len = off;
    return out;
}

static int is_sum(const char *s)
{
    int i;

    for (i = 0; i < DME_NOTE_SUM_LEN; i++) {
        if (!apr_isxdigit(s[i]) || apr_isupper(s[i])) {
            return 0;
        }
    }
    return s[DME_NOTE_SUM_LEN] == ' ';
}

/* One "<uid> <sum> <date>" line; the text is NUL-terminated. */
static apr_status_t parse_line(dme_note_t *n, char *line)
{
    char *end;
    apr_uint64_t uid;
    apr_int64_t date;

    uid = apr_strtoi64(line, &end, 10);
    if (end == line || *end != ' ' || uid < 1 || uid > 0xffffffffu ||
        !is_sum(end + 1)) {
        return APR_EINVAL;
    }
    memset(n, 0, sizeof(*n));
    n->uid = (apr_uint32_t)uid;
    memcpy(n->sum, end + 1, DME_NOTE_SUM_LEN);
    line = end + 1 + DME_NOTE_SUM_LEN + 1;
    date = apr_strtoi64(line, &end, 10);
    if (end == line || *end || date < 0) {
        return APR_EINVAL;
    }
    n->date = apr_time_from_sec(date);
    return APR_SUCCESS;
}

apr_status_t dme_precache_parse(dme_precache_t **pc, const char *data,
                                apr_size_t len, apr_pool_t *p)
{
    char *text = apr_pstrmemdup(p, data, len), *line, *last;
    dme_precache_t *out = apr_pcalloc(p, sizeof(*out));
    unsigned int uv, newest;
    apr_int64_t built;
    char tail;

    *pc = NULL;
    if (memchr(data, '\0', len) || len == 0 || data[len - 1] != '\n') {
        return APR_EINVAL;
    }
    line = apr_strtok(text, "\n", &last);
    if (!line || sscanf(line, "dmepc1 %u %" APR_INT64_T_FMT " %u%c", &uv,
                        &built, &newest, &tail) != 3) {
        return APR_EINVAL;
    }
    out->uidvalidity = uv;
    out->built_at = apr_time_from_sec(built);
    out->newest_uid = newest;
    out->notes = dme_notes_make(uv, (int)(len / 50) + 1, p);
    while ((line = apr_strtok(NULL, "\n", &last)) != NULL) {
        if (parse_line(apr_array_push(out->notes->notes), line)) {
            return APR_EINVAL;
        }
    }
    dme_notes_sort(out->notes);
    *pc = out;
    return APR_SUCCESS;
}

/* Midnight UTC at the start of yesterday. */
static apr_time_t yesterday(apr_time_t now)
{
    apr_time_t day = apr_time_from_sec(86400);

    return now - now % day - day;
}

/* Keep the old notes older than `from` (and not older than the first day
 * of the window, `since`, as midnight UTC), take
 * the re-read notes for everything after. Re-read mail arriving from
 * `from` on replaces the old view of that period, so flag changes, moves
 * and deletions there are seen. */
static dme_notes_t *merge(const dme_notes_t *old, const dme_notes_t *fresh,
                          apr_time_t from, apr_time_t since, apr_pool_t *p)
{
    dme_notes_t *m = dme_notes_make(fresh->uidvalidity,
                                    old->notes->nelts + fresh->notes->nelts, p);
    int i;

    for (i = 0; i < old->notes->nelts; i++) {
        const dme_note_t *n = &APR_ARRAY_IDX(old->notes, i, dme_note_t);

        if (n->date < from && n->date >= since) {
            APR_ARRAY_PUSH(m->notes, dme_note_t) = *n;
        }
    }
    apr_array_cat(m->notes, fresh->notes);
    dme_notes_sort(m);
    return m;
}

static apr_uint32_t newest_of(const dme_notes_t *ns, apr_uint32_t floor)
{
    int n = ns->notes->nelts;
    apr_uint32_t top = n ? APR_ARRAY_IDX(ns->notes, n - 1, dme_note_t).uid : 0;

    return top > floor ? top : floor;
}

apr_status_t dme_precache_update(dme_precache_t **out, dme_pc_how_e *how,
                                 dme_imap_t *s, const char *folder,
                                 const dme_precache_t *old, apr_time_t since,
                                 apr_interval_time_t max_age, apr_time_t now,
                                 apr_pool_t *p)
{
    dme_precache_t *pc = apr_pcalloc(p, sizeof(*pc));
    apr_uint32_t uidvalidity, exists;
    dme_notes_t *fresh;
    apr_status_t rv;

    *out = NULL;
    rv = dme_imap_examine(&uidvalidity, &exists, s, folder, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!old || old->uidvalidity != uidvalidity) {
        *how = DME_PC_FULL;
        rv = dme_imap_list_notes(&fresh, s, folder, since, p);
        pc->notes = fresh;
        pc->built_at = now;
    } else if (now - old->built_at > max_age) {
        *how = DME_PC_MERGE;
        rv = dme_imap_list_notes(&fresh, s, folder, yesterday(now), p);
        if (rv == APR_SUCCESS) {
            apr_time_t day = apr_time_from_sec(86400);

            pc->notes = merge(old->notes, fresh, yesterday(now),
                              since - since % day, p);
        }
        pc->built_at = now;
    } else {
        *how = DME_PC_APPEND;
        pc->notes =
            dme_notes_make(uidvalidity, old->notes->notes->nelts + 8, p);
        apr_array_cat(pc->notes->notes, old->notes->notes);
        pc->built_at = old->built_at;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    pc->uidvalidity = uidvalidity;
    pc->newest_uid =
        newest_of(pc->notes, old && *how != DME_PC_FULL ? old->newest_uid : 0);
    /* the one cheap call: anything newer than the newest we know */
    rv = dme_imap_list_newer(pc->notes, s, folder, pc->newest_uid, p);
    if (rv == APR_SUCCESS) {
        pc->newest_uid = newest_of(pc->notes, pc->newest_uid);
        *out = pc;
    }
    return rv;
}
