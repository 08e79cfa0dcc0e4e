/* libFuzzer target for the S/MIME harvest. The input stands for any mail
 * the server reads. Beyond crashes and sanitizer reports it aborts when a
 * signed part's bytes are not a slice of the input, when an inspection
 * gives no verdict or a verdict without its detail, or when a certificate
 * the harvest returns does not read back the same through
 * dme_cert_parse(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>

#include "dme_mime.h"
#include "dme_smime.h"

/* 2026-06-01, so runs are repeatable */
#define WHEN apr_time_from_sec(1780272000)

static apr_pool_t *root;
static dme_smime_trust_t *trust;

/* Frees the trust store, so a leak report at exit shows only real leaks. */
static void done(void)
{
    apr_pool_destroy(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&root, NULL);
    atexit(done);
    if (dme_mime_init() || dme_smime_trust_load(&trust, NULL, root)) {
        abort();
    }
    return 0;
}

static void check_parts(const char *msg, size_t size, apr_pool_t *p)
{
    apr_array_header_t *parts = NULL;
    int i;

    if (dme_mime_signed_parts(&parts, msg, size, p) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < parts->nelts; i++) {
        const dme_mime_signed_t *s =
            &APR_ARRAY_IDX(parts, i, dme_mime_signed_t);

        if (s->content && (s->content < msg || s->content_len > size ||
                           s->content + s->content_len > msg + size)) {
            abort();
        }
        if (!s->cms || !s->smime_type || (s->opaque && s->content)) {
            abort();
        }
    }
}

/* A harvested certificate must read back as itself. */
static void check_cert(const dme_cert_t *c, apr_pool_t *p)
{
    dme_cert_t *back = NULL;

    if (dme_cert_parse(&back, c->der, c->der_len, p) != APR_SUCCESS ||
        strcmp(back->fingerprint, c->fingerprint) ||
        back->addresses->nelts != c->addresses->nelts) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    apr_array_header_t *v = NULL;
    dme_cert_t *c;
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, root);
    check_parts(msg, size, p);
    if (dme_smime_inspect(&v, msg, size, dme_mime_sender_address(msg, size, p),
                          trust, WHEN, NULL, p) != APR_SUCCESS ||
        v->nelts < 1) {
        abort();
    }
    for (i = 0; i < v->nelts; i++) {
        const dme_smime_verdict_t *r =
            &APR_ARRAY_IDX(v, i, dme_smime_verdict_t);

        if (!r->detail) {
            abort();
        }
        if (r->cert) {
            check_cert(r->cert, p);
        }
    }
    dme_cert_parse(&c, data, size, p);
    apr_pool_destroy(p);
    return 0;
}
