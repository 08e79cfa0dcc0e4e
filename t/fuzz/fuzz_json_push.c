/* libFuzzer target for the push note reader and the JSON string writer.
 * The input stands for what anyone reaching /dme/push sends. Beyond
 * crashes and sanitizer reports it aborts when an accepted note breaks
 * the header's promises, when a note rebuilt from what was read does not
 * read back the same, or when a written string literal is not JSON for
 * its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

#include "dme_json.h"

static apr_pool_t *root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&root, NULL);
    return 0;
}

static int clean_name(const char *s, apr_size_t max)
{
    apr_size_t n = strlen(s), i;

    if (n == 0 || n > max) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7F ||
            (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9F)) {
            return 0;
        }
    }
    return 1;
}

static void check_promises(const dme_push_event_t *ev)
{
    const char *e;

    if (!ev->user || !ev->folder || !ev->event || ev->uid == 0 ||
        ev->uidvalidity == 0 || ev->unseen < -1) {
        abort();
    }
    if (!clean_name(ev->user, DME_JSON_PUSH_USER_MAX) ||
        !clean_name(ev->folder, DME_JSON_PUSH_FOLDER_MAX) ||
        strlen(ev->event) > DME_JSON_PUSH_EVENT_MAX || !*ev->event) {
        abort();
    }
    for (e = ev->event; *e; e++) {
        if (!((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z'))) {
            abort();
        }
    }
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Write the note again with dme_json_string; it must read back equal. */
static void check_round_trip(const dme_push_event_t *ev, apr_pool_t *p)
{
    const char *doc, *why;
    dme_push_event_t *ev2;
    const char *tail = "";

    if (ev->from) {
        tail = apr_pstrcat(p, tail, ",\"from\":", dme_json_string(ev->from, p),
                           NULL);
    }
    if (ev->subject) {
        tail = apr_pstrcat(
            p, tail, ",\"subject\":", dme_json_string(ev->subject, p), NULL);
    }
    if (ev->snippet) {
        tail = apr_pstrcat(
            p, tail, ",\"snippet\":", dme_json_string(ev->snippet, p), NULL);
    }
    if (ev->unseen >= 0) {
        tail = apr_psprintf(p, "%s,\"unseen\":%d", tail, ev->unseen);
    }
    doc = apr_psprintf(
        p,
        "{\"user\":%s,\"folder\":%s,\"event\":%s,"
        "\"imap-uidvalidity\":%u,\"imap-uid\":%u%s}",
        dme_json_string(ev->user, p), dme_json_string(ev->folder, p),
        dme_json_string(ev->event, p), ev->uidvalidity, ev->uid, tail);
    if (strlen(doc) > DME_JSON_PUSH_MAX) {
        return; /* escaping may grow a note past the limit */
    }
    if (dme_json_push_parse(&ev2, &why, doc, strlen(doc), p) != APR_SUCCESS ||
        !same(ev->user, ev2->user) || !same(ev->folder, ev2->folder) ||
        !same(ev->event, ev2->event) || ev->uid != ev2->uid ||
        ev->uidvalidity != ev2->uidvalidity || ev->unseen != ev2->unseen ||
        !same(ev->from, ev2->from) || !same(ev->subject, ev2->subject) ||
        !same(ev->snippet, ev2->snippet)) {
        abort();
    }
}

/* The input as a C string must come out as a JSON string literal; input
 * that is UTF-8 must read back unchanged. */
static void check_string(const uint8_t *d, size_t n, apr_pool_t *p)
{
    char *s = apr_pstrmemdup(p, (const char *)d, n);
    const char *lit = dme_json_string(s, p);
    json_t *j = json_loads(lit, JSON_DECODE_ANY, NULL);
    json_t *in = json_string(s);

    if (!j || !json_is_string(j)) {
        abort();
    }
    if (in && strcmp(json_string_value(in), json_string_value(j)) != 0) {
        abort();
    }
    json_decref(in);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    dme_push_event_t *ev;
    const char *why;
    apr_pool_t *p;
    apr_status_t rv;
    char *copy;

    apr_pool_create(&p, root);
    /* An exact-size copy, so a read past len is caught. */
    copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    rv = dme_json_push_parse(&ev, &why, copy, n, p);
    free(copy);
    if (rv == APR_SUCCESS) {
        if (why) {
            abort();
        }
        check_promises(ev);
        check_round_trip(ev, p);
    } else if (ev || !why || (rv != APR_EINVAL && rv != DME_ETOOBIG)) {
        abort();
    }
    check_string(d, n, p);
    apr_pool_destroy(p);
    return 0;
}
