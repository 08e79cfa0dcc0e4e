/* Minimal notes: checksum and storage form. */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "dme_note.h"
#include "dme_crypto.h"

dme_notes_t *dme_notes_make(apr_uint32_t uidvalidity, int nalloc, apr_pool_t *p)
{
    dme_notes_t *ns = apr_pcalloc(p, sizeof(*ns));

    ns->uidvalidity = uidvalidity;
    ns->notes = apr_array_make(p, nalloc > 0 ? nalloc : 16, sizeof(dme_note_t));
    return ns;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *dme_note_flags_join(const apr_array_header_t *flags, apr_pool_t *p)
{
    apr_array_header_t *keep;
    int i;

    if (!flags || flags->nelts == 0) {
        return "";
    }
    keep = apr_array_make(p, flags->nelts, sizeof(const char *));
    for (i = 0; i < flags->nelts; i++) {
        const char *f = APR_ARRAY_IDX(flags, i, const char *);

        if (strcasecmp(f, "\\Recent") != 0) {
            APR_ARRAY_PUSH(keep, const char *) = f;
        }
    }
    qsort(keep->elts, keep->nelts, sizeof(const char *), cmp_str);
    return apr_array_pstrcat(p, keep, ' ');
}

apr_status_t dme_note_checksum(dme_note_t *n, const char *flags,
                               const char *folder, apr_uint64_t size,
                               apr_time_t date, const char *message_id)
{
    const char *parts[4];
    char num[64];
    apr_size_t lens[4], len = 0, off = 0;
    apr_status_t rv;
    char *all;
    int i;

    /* Fields are joined with LF, which none of them contains (flags are
     * atoms, folder names with CR or LF are refused, Message-IDs are
     * unfolded), so the input is unambiguous. */
    apr_snprintf(num, sizeof(num), "%" APR_UINT64_T_FMT "\n%" APR_TIME_T_FMT,
                 size, apr_time_sec(date));
    parts[0] = flags ? flags : "";
    parts[1] = folder ? folder : "";
    parts[2] = num;
    parts[3] = message_id ? message_id : "";
    for (i = 0; i < 4; i++) {
        lens[i] = strlen(parts[i]);
        len += lens[i] + 1;
    }
    all = malloc(len);
    if (!all) {
        return APR_ENOMEM;
    }
    for (i = 0; i < 4; i++) {
        memcpy(all + off, parts[i], lens[i]);
        off += lens[i];
        all[off++] = '\n';
    }
    rv = dme_crypto_md5_hex(n->sum, all, len);
    free(all);
    return rv;
}

static int cmp_note(const void *a, const void *b)
{
    apr_uint32_t x = ((const dme_note_t *)a)->uid;
    apr_uint32_t y = ((const dme_note_t *)b)->uid;

    return x < y ? -1 : x > y;
}

void dme_notes_sort(dme_notes_t *ns)
{
    dme_note_t *v = (dme_note_t *)ns->notes->elts;
    int i, j = 0;

    qsort(v, ns->notes->nelts, sizeof(dme_note_t), cmp_note);
    for (i = 0; i < ns->notes->nelts; i++) {
        if (j > 0 && v[j - 1].uid == v[i].uid) {
            continue;
        }
        v[j++] = v[i];
    }
    ns->notes->nelts = j;
}

const char *dme_notes_serialize(const dme_notes_t *ns, apr_pool_t *p)
{
    apr_size_t cap = 32 + (apr_size_t)ns->notes->nelts * 45, off;
    char *out = apr_palloc(p, cap);
    int i;

    off = apr_snprintf(out, cap, "v1 %u\n", ns->uidvalidity);
    for (i = 0; i < ns->notes->nelts; i++) {
        const dme_note_t *n = &APR_ARRAY_IDX(ns->notes, i, dme_note_t);

        off += apr_snprintf(out + off, cap - off, "%u %s\n", n->uid, n->sum);
    }
    return out;
}

static int is_hex32(const char *s)
{
    int i;

    for (i = 0; i < DME_NOTE_SUM_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Parse a decimal 32-bit number ending at a given terminator. */
static int parse_u32(apr_uint32_t *out, const char **s, char term)
{
    apr_uint64_t v = 0;
    const char *c = *s;

    if (*c < '0' || *c > '9') {
        return 0;
    }
    for (; *c >= '0' && *c <= '9'; c++) {
        v = v * 10 + (apr_uint64_t)(*c - '0');
        if (v > 0xffffffffu) {
            return 0;
        }
    }
    if (*c != term) {
        return 0;
    }
    *out = (apr_uint32_t)v;
    *s = c + 1;
    return 1;
}

apr_status_t dme_notes_parse(dme_notes_t **ns, const char *text, apr_pool_t *p)
{
    apr_uint32_t uidvalidity;
    const char *s = text;
    dme_notes_t *out;

    *ns = NULL;
    if (strncmp(s, "v1 ", 3) != 0) {
        return APR_EINVAL;
    }
    s += 3;
    if (!parse_u32(&uidvalidity, &s, '\n')) {
        return APR_EINVAL;
    }
    out = dme_notes_make(uidvalidity, (int)(strlen(s) / 44) + 1, p);
    while (*s) {
        dme_note_t *n = apr_array_push(out->notes);

        memset(n, 0, sizeof(*n));
        if (!parse_u32(&n->uid, &s, ' ') ||
            strnlen(s, DME_NOTE_SUM_LEN + 1) < DME_NOTE_SUM_LEN + 1 ||
            !is_hex32(s) || s[DME_NOTE_SUM_LEN] != '\n') {
            return APR_EINVAL;
        }
        memcpy(n->sum, s, DME_NOTE_SUM_LEN);
        s += DME_NOTE_SUM_LEN + 1;
    }
    dme_notes_sort(out);
    *ns = out;
    return APR_SUCCESS;
}

const char *dme_note_ref(apr_uint32_t uidvalidity, apr_uint32_t uid,
                         apr_pool_t *p)
{
    return apr_psprintf(p, "%u:%u", uidvalidity, uid);
}

apr_status_t dme_note_ref_parse(apr_uint32_t *uidvalidity, apr_uint32_t *uid,
                                const char *ref)
{
    const char *s = ref;

    if (!s || !parse_u32(uidvalidity, &s, ':') || !parse_u32(uid, &s, '\0')) {
        return APR_EINVAL;
    }
    return *uid > 0 ? APR_SUCCESS : APR_EINVAL;
}
