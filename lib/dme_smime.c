/* S/MIME signer certificates on OpenSSL: CMS verification one signer at a
 * time, chains to the configured anchors, and the certificate fields the
 * harvest keeps.
 *
 * Besides lib/dme_crypto.c this is the one file of the core that uses
 * OpenSSL: the home of its CMS and X.509 code for S/MIME. The MIME side
 * comes from dme_mime, which hands over the signed bytes as slices of the
 * mail as received, so what is verified here is what the sender signed.
 */
#include <limits.h>
#include <time.h>
#include <apr_cstr.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dme_crypto.h"
#include "dme_mime.h"
#include "dme_smime.h"

/* A CA bundle is a few hundred KiB; anything this big is a wrong path. */
#define CA_FILE_MAX (16 * 1024 * 1024)

struct dme_smime_trust_t {
    X509_STORE *store;
};

/* What one inspection carries from part to part. */
typedef struct {
    apr_array_header_t *out;
    const char *sender;
    const dme_smime_trust_t *trust;
    apr_time_t now;
    const dme_logger_t *lg;
    apr_pool_t *p;
    const char *note; /* why the last part gave no verdict */
} job_t;

static const char *const reason_names[] = {
    "no-signature", "bad-signature",   "no-signer-cert",
    "untrusted",    "sender-mismatch", "expired",
    "weak",         "no-address",      "acceptable"};

const char *dme_smime_reason_name(dme_smime_reason_e r)
{
    if ((int)r < 0 ||
        (size_t)r >= sizeof(reason_names) / sizeof(*reason_names)) {
        return "unknown";
    }
    return reason_names[r];
}

/* OpenSSL's reason for the last failure after what, for a verdict's
 * detail; the error queue is left empty for the next caller. */
static const char *ssl_why(const char *what, apr_pool_t *p)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? apr_pstrcat(p, what, ": ", r, NULL) : what;
}

static apr_status_t store_free(void *data)
{
    X509_STORE_free(data);
    return APR_SUCCESS;
}

static apr_status_t read_small(char **buf, apr_size_t *len, const char *path,
                               apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;

    *len = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS && fi.size > CA_FILE_MAX) {
        rv = DME_ETOOBIG;
    }
    *buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    if (rv == APR_SUCCESS && fi.size > 0) {
        rv = apr_file_read_full(f, *buf, (apr_size_t)fi.size, len);
    }
    apr_file_close(f);
    return rv;
}

/* Add every PEM certificate of buf to the store, or else the one DER
 * certificate buf is. Returns how many were added. */
static int add_anchors(X509_STORE *st, const char *buf, apr_size_t len)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    const unsigned char *d = (const unsigned char *)buf;
    X509 *x;
    int n = 0;

    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        n += X509_STORE_add_cert(st, x);
        X509_free(x);
    }
    BIO_free(bio);
    if (n == 0 && (x = d2i_X509(NULL, &d, (long)len))) {
        n = X509_STORE_add_cert(st, x);
        X509_free(x);
    }
    ERR_clear_error();
    return n;
}

static apr_status_t load_file(X509_STORE *st, const char *path, apr_pool_t *p)
{
    apr_pool_t *tmp;
    apr_size_t len;
    apr_status_t rv;
    char *buf;

    apr_pool_create(&tmp, p);
    rv = read_small(&buf, &len, path, tmp);
    if (rv == APR_SUCCESS && add_anchors(st, buf, len) == 0) {
        rv = APR_EINVAL;
    }
    apr_pool_destroy(tmp);
    return rv;
}

apr_status_t dme_smime_trust_load(dme_smime_trust_t **t, const char *ca_file,
                                  apr_pool_t *p)
{
    X509_STORE *st = X509_STORE_new();
    apr_status_t rv = APR_SUCCESS;

    if (!st) {
        return APR_EGENERAL;
    }
    /* The operator names the anchors; an intermediate there is one too. */
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    if (!ca_file) {
        rv = X509_STORE_set_default_paths(st) == 1 ? APR_SUCCESS : APR_EGENERAL;
    } else {
        rv = load_file(st, ca_file, p);
    }
    ERR_clear_error();
    if (rv != APR_SUCCESS) {
        X509_STORE_free(st);
        return rv;
    }
    *t = apr_pcalloc(p, sizeof(**t));
    (*t)->store = st;
    apr_pool_cleanup_register(p, st, store_free, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static const char *lower(const char *s, apr_size_t n, apr_pool_t *p)
{
    char *r = apr_pstrmemdup(p, s, n), *c;

    for (c = r; *c; c++) {
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
    }
    return r;
}

static const char *issuer_of(X509 *x, apr_pool_t *p)
{
    BIO *b = BIO_new(BIO_s_mem());
    const char *r = "";
    char *d;
    long n;

    if (b && X509_NAME_print_ex(b, X509_get_issuer_name(x), 0,
                                XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(b, &d);
        r = apr_pstrmemdup(p, d, n > 0 ? (apr_size_t)n : 0);
    }
    BIO_free(b);
    return r;
}

static const char *serial_of(X509 *x, apr_pool_t *p)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;
    const char *r = h ? lower(h, strlen(h), p) : "";

    OPENSSL_free(h);
    BN_free(bn);
    return r;
}

static apr_time_t time_of(const ASN1_TIME *t)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        return 0;
    }
    return apr_time_from_sec((apr_time_t)timegm(&tm));
}

/* A plain ASCII address: no controls, spaces or 8-bit bytes, and an "@"
 * with something on each side. Anything else is nothing to match. */
static int is_plain_address(const unsigned char *s, int n)
{
    int i, at = -1;

    for (i = 0; i < n; i++) {
        if (s[i] <= ' ' || s[i] >= 0x7f) {
            return 0;
        }
        at = (s[i] == '@') ? i : at;
    }
    return at > 0 && at < n - 1;
}

static void add_address(apr_array_header_t *a, const ASN1_STRING *s,
                        apr_pool_t *p)
{
    const unsigned char *d = s ? ASN1_STRING_get0_data(s) : NULL;
    int i, n = s ? ASN1_STRING_length(s) : 0;
    const char *addr;

    if (!d || !is_plain_address(d, n)) {
        return;
    }
    addr = lower((const char *)d, (apr_size_t)n, p);
    for (i = 0; i < a->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(a, i, const char *), addr)) {
            return;
        }
    }
    APR_ARRAY_PUSH(a, const char *) = addr;
}

static apr_array_header_t *addresses_of(X509 *x, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(const char *));
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    X509_NAME *name = X509_get_subject_name(x);
    int i;

    for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g->type == GEN_EMAIL) {
            add_address(a, g->d.rfc822Name, p);
        }
    }
    GENERAL_NAMES_free(gens);
    for (i = -1; (i = X509_NAME_get_index_by_NID(name, NID_pkcs9_emailAddress,
                                                 i)) >= 0;) {
        add_address(a, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)),
                    p);
    }
    return a;
}

static const char *key_usage_of(X509 *x, apr_pool_t *p)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } ku[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"},
              {KU_NON_REPUDIATION, "nonRepudiation"},
              {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
              {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
              {KU_KEY_AGREEMENT, "keyAgreement"},
              {KU_KEY_CERT_SIGN, "keyCertSign"},
              {KU_CRL_SIGN, "cRLSign"},
              {KU_ENCIPHER_ONLY, "encipherOnly"},
              {KU_DECIPHER_ONLY, "decipherOnly"}};
    uint32_t bits = X509_get_key_usage(x);
    const char *r = "";
    size_t i;

    if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE)) {
        return "";
    }
    for (i = 0; i < sizeof(ku) / sizeof(*ku); i++) {
        if (bits & ku[i].bit) {
            r = apr_pstrcat(p, r, *r ? "," : "", ku[i].name, NULL);
        }
    }
    return r;
}

static int can_encrypt(X509 *x)
{
    uint32_t flags = X509_get_extension_flags(x);
    EVP_PKEY *k = X509_get0_pubkey(x);
    int type = k ? EVP_PKEY_get_base_id(k) : NID_undef;
    uint32_t need = (type == EVP_PKEY_RSA)  ? KU_KEY_ENCIPHERMENT
                    : (type == EVP_PKEY_EC) ? KU_KEY_AGREEMENT
                                            : 0;

    ERR_clear_error();
    if (!need || ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & need))) {
        return 0;
    }
    return !(flags & EXFLAG_XKUSAGE) ||
           (X509_get_extended_key_usage(x) & XKU_SMIME);
}

static apr_status_t cert_of(dme_cert_t **c, X509 *x, apr_pool_t *p)
{
    int n = i2d_X509(x, NULL);
    unsigned char *der, *q;
    dme_cert_t *r;

    if (n <= 0) {
        return APR_EGENERAL;
    }
    r = apr_pcalloc(p, sizeof(*r));
    der = q = apr_palloc(p, (apr_size_t)n);
    if (i2d_X509(x, &q) != n ||
        dme_crypto_sha256_hex(r->fingerprint, der, (apr_size_t)n)) {
        return APR_EGENERAL;
    }
    r->der = der;
    r->der_len = (apr_size_t)n;
    r->issuer = issuer_of(x, p);
    r->serial = serial_of(x, p);
    r->not_before = time_of(X509_get0_notBefore(x));
    r->not_after = time_of(X509_get0_notAfter(x));
    r->addresses = addresses_of(x, p);
    r->key_usage = key_usage_of(x, p);
    r->can_encrypt = can_encrypt(x);
    *c = r;
    return APR_SUCCESS;
}

apr_status_t dme_cert_parse(dme_cert_t **c, const unsigned char *der,
                            apr_size_t len, apr_pool_t *p)
{
    const unsigned char *d = der;
    apr_status_t rv = APR_EINVAL;
    X509 *x;

    if (!c || !der || len == 0 || len > LONG_MAX) {
        return APR_EINVAL;
    }
    x = d2i_X509(NULL, &d, (long)len);
    if (x && d == der + len) {
        rv = cert_of(c, x, p);
    }
    X509_free(x);
    ERR_clear_error();
    return rv;
}

static void verdict(job_t *j, dme_smime_reason_e r, const dme_cert_t *c,
                    const char *detail)
{
    dme_smime_verdict_t *v = apr_array_push(j->out);

    v->reason = r;
    v->cert = c;
    v->detail = detail;
    if (r == DME_SMIME_ACCEPTABLE || r == DME_SMIME_NO_SIGNATURE) {
        return;
    }
    dme_log(j->lg, DME_LOG_INFO, APR_SUCCESS,
            DMELOGNO(10800) "S/MIME: certificate %s (issuer %s) of a signer "
                            "of a mail from %s not taken: %s (%s)",
            c ? c->fingerprint : "(none)", c ? c->issuer : "-",
            j->sender ? dme_user_tag(j->sender, j->p) : "no sender",
            dme_smime_reason_name(r), detail);
}

static int is_weak_md(int nid)
{
    return nid == NID_md5 || nid == NID_sha1 || nid == NID_md5_sha1 ||
           nid == NID_md4 || nid == NID_md2;
}

/* Why the algorithms of the signer or of its certificate are too weak to
 * rely on; NULL when they are not. */
/* Keys too small to encrypt to today: RSA and DSA under 2048 bits, EC
 * under 256 (NIST SP 800-131A). */
static const char *weak_key(X509 *x, apr_pool_t *p)
{
    EVP_PKEY *k = X509_get0_pubkey(x);
    int bits = k ? EVP_PKEY_get_bits(k) : 0;
    int id = k ? EVP_PKEY_get_base_id(k) : NID_undef;
    int min = id == EVP_PKEY_EC ? 256 : 2048;

    if (!k || id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) {
        return NULL;
    }
    if (bits > 0 && bits < min) {
        return apr_psprintf(p, "a %d-bit %s key", bits, OBJ_nid2sn(id));
    }
    return NULL;
}

static const char *weakness(CMS_SignerInfo *si, X509 *x, apr_pool_t *p)
{
    X509_ALGOR *dig = NULL, *sig = NULL;
    const ASN1_OBJECT *obj = NULL;
    int md = NID_undef, pk;

    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
    if (dig) {
        X509_ALGOR_get0(&obj, NULL, NULL, dig);
        md = OBJ_obj2nid(obj);
    }
    if (!is_weak_md(md) && sig) {
        X509_ALGOR_get0(&obj, NULL, NULL, sig);
        md = OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md, &pk) ? md : NID_undef;
    }
    if (is_weak_md(md)) {
        return apr_pstrcat(p, OBJ_nid2sn(md), " in the CMS signature", NULL);
    }
    if (X509_get_signature_info(x, &md, NULL, NULL, NULL) && is_weak_md(md)) {
        return apr_pstrcat(p, "certificate signed with ", OBJ_nid2sn(md), NULL);
    }
    ERR_clear_error();
    return weak_key(x, p);
}

/* Why the signer's signature does not hold over the content that chain
 * has digested; NULL when it holds. */
static const char *signature_error(CMS_SignerInfo *si, BIO *chain,
                                   apr_pool_t *p)
{
    if (!chain) {
        return "the signed content is missing or malformed";
    }
    /* Without signed attributes the signature covers the content itself,
     * which verify_content checks on its own. */
    if (CMS_signed_get_attr_count(si) >= 0 && CMS_SignerInfo_verify(si) <= 0) {
        return ssl_why("signature does not verify", p);
    }
    if (CMS_SignerInfo_verify_content(si, chain) <= 0) {
        return ssl_why("content does not match the signature", p);
    }
    return NULL;
}

/* An expired signer certificate is its own verdict, so its chain is
 * judged as if it were still valid; the caller learns of it by *expired. */
static int allow_expired_leaf(int ok, X509_STORE_CTX *ctx)
{
    int *expired = X509_STORE_CTX_get_app_data(ctx);

    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_HAS_EXPIRED &&
        X509_STORE_CTX_get_error_depth(ctx) == 0) {
        *expired = 1;
        return 1;
    }
    return ok;
}

/* Why x does not chain to an anchor for S/MIME signing at the job's time,
 * helped by the certificates the message carries; NULL when it does. */
static const char *chain_error(const job_t *j, X509 *x, STACK_OF(X509) * certs,
                               int *expired)
{
    X509_STORE_CTX *ctx;
    const char *err = NULL;

    *expired = 0;
    if (X509_get_extension_flags(x) & EXFLAG_CA) {
        return "the signer's certificate is a CA certificate";
    }
    ctx = X509_STORE_CTX_new();
    if (!ctx || !X509_STORE_CTX_init(ctx, j->trust->store, x, certs) ||
        !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_SIGN)) {
        X509_STORE_CTX_free(ctx);
        return ssl_why("cannot set up chain verification", j->p);
    }
    X509_STORE_CTX_set_time(ctx, 0, (time_t)apr_time_sec(j->now));
    X509_STORE_CTX_set_app_data(ctx, expired);
    X509_STORE_CTX_set_verify_cb(ctx, allow_expired_leaf);
    if (X509_verify_cert(ctx) <= 0) {
        err = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

static int has_address(const dme_cert_t *c, const char *sender)
{
    int i;

    for (i = 0; sender && i < c->addresses->nelts; i++) {
        if (!apr_cstr_casecmp(APR_ARRAY_IDX(c->addresses, i, const char *),
                              sender)) {
            return 1;
        }
    }
    return 0;
}

/* Only the certificate the signer info names is the signer's; the rest
 * of the bag may be CAs or anything else the sender put in. */
static X509 *signer_cert(CMS_SignerInfo *si, STACK_OF(X509) * certs)
{
    int i;

    for (i = 0; i < sk_X509_num(certs); i++) {
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0) {
            return sk_X509_value(certs, i);
        }
    }
    return NULL;
}

static void judge_signer(job_t *j, CMS_SignerInfo *si, STACK_OF(X509) * certs,
                         BIO *chain)
{
    X509 *x = signer_cert(si, certs);
    dme_cert_t *c;
    const char *why;
    int expired;

    if (!x) {
        verdict(j, DME_SMIME_NO_SIGNER_CERT, NULL,
                "the signer's certificate is not in the message");
        return;
    }
    if (cert_of(&c, x, j->p) != APR_SUCCESS) {
        verdict(j, DME_SMIME_BAD_SIGNATURE, NULL,
                ssl_why("unreadable signer certificate", j->p));
        return;
    }
    CMS_SignerInfo_set1_signer_cert(si, x);
    if ((why = signature_error(si, chain, j->p))) {
        verdict(j, DME_SMIME_BAD_SIGNATURE, c, why);
    } else if ((why = chain_error(j, x, certs, &expired))) {
        verdict(j, DME_SMIME_UNTRUSTED, c, why);
    } else if (expired) {
        verdict(j, DME_SMIME_EXPIRED, c, "certificate has expired");
    } else if ((why = weakness(si, x, j->p))) {
        verdict(j, DME_SMIME_WEAK, c, why);
    } else if (c->addresses->nelts == 0) {
        verdict(j, DME_SMIME_NO_ADDRESS, c, "no e-mail address in it");
    } else if (!has_address(c, j->sender)) {
        verdict(j, DME_SMIME_SENDER_MISMATCH, c,
                j->sender ? "not the sender's address" : "no sender address");
    } else {
        verdict(j, DME_SMIME_ACCEPTABLE, c, "signature and chain hold");
    }
}

/* Run the signed content through OpenSSL's digest BIOs once, so every
 * signer can be checked against it. For a detached signature the content
 * is the slice of the mail dme_mime found, handed over unchanged.
 * Returns the digested chain (and in *cont the content BIO it ends in, to
 * free), or NULL when there is no content. */
static BIO *digest_content(CMS_ContentInfo *cms, const dme_mime_signed_t *sp,
                           BIO **cont)
{
    BIO *chain;
    char buf[4096];

    *cont = NULL;
    if (!sp->opaque) {
        if (!sp->content || sp->content_len > INT_MAX) {
            return NULL;
        }
        *cont = BIO_new_mem_buf(sp->content, (int)sp->content_len);
        if (!*cont) {
            return NULL;
        }
    }
    chain = CMS_dataInit(cms, *cont);
    while (chain && BIO_read(chain, buf, sizeof(buf)) > 0) {
    }
    return chain;
}

static void free_content(BIO *chain, BIO *cont)
{
    while (chain && chain != cont) {
        BIO *next = BIO_pop(chain);

        BIO_free(chain);
        chain = next;
    }
    BIO_free(cont);
}

static CMS_ContentInfo *read_cms(const dme_mime_signed_t *sp)
{
    const unsigned char *d = sp->cms;

    if (sp->cms_len == 0 || sp->cms_len > LONG_MAX) {
        return NULL;
    }
    return d2i_CMS_ContentInfo(NULL, &d, (long)sp->cms_len);
}

static void judge_part(job_t *j, const dme_mime_signed_t *sp)
{
    CMS_ContentInfo *cms = read_cms(sp);
    STACK_OF(CMS_SignerInfo) *sis = NULL;
    STACK_OF(X509) *certs = NULL;
    BIO *chain = NULL, *cont = NULL;
    int i, n = 0;

    if (cms && OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed) {
        sis = CMS_get0_SignerInfos(cms);
        n = sk_CMS_SignerInfo_num(sis);
    } else if (!sp->opaque || !strcmp(sp->smime_type, "signed-data")) {
        verdict(j, DME_SMIME_BAD_SIGNATURE, NULL,
                cms ? "not CMS signed-data" : ssl_why("unreadable CMS", j->p));
    } else {
        j->note = cms ? "a pkcs7-mime part that is not signed-data"
                      : "an unreadable pkcs7-mime part, not signed-data";
    }
    if (sis && n <= 0) {
        j->note = "certificates only, no signer";
    }
    if (n > 0) {
        certs = CMS_get1_certs(cms);
        chain = digest_content(cms, sp, &cont);
    }
    for (i = 0; i < n && i < DME_SMIME_SIGNERS_MAX; i++) {
        judge_signer(j, sk_CMS_SignerInfo_value(sis, i), certs, chain);
    }
    free_content(chain, cont);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
}

apr_status_t dme_smime_inspect(apr_array_header_t **verdicts, const char *msg,
                               apr_size_t len, const char *sender,
                               const dme_smime_trust_t *t, apr_time_t now,
                               const dme_logger_t *lg, apr_pool_t *p)
{
    apr_array_header_t *parts = NULL;
    job_t j;
    int i;

    if (!verdicts || !msg || !t || !p) {
        return APR_EINVAL;
    }
    j.out = apr_array_make(p, 2, sizeof(dme_smime_verdict_t));
    j.sender = sender;
    j.trust = t;
    j.now = now;
    j.lg = lg;
    j.p = p;
    j.note = "no signed part";
    if (dme_mime_signed_parts(&parts, msg, len, p) != APR_SUCCESS) {
        j.note = "not a readable mail";
        parts = NULL;
    }
    for (i = 0; parts && i < parts->nelts; i++) {
        judge_part(&j, &APR_ARRAY_IDX(parts, i, dme_mime_signed_t));
    }
    if (j.out->nelts == 0) {
        verdict(&j, DME_SMIME_NO_SIGNATURE, NULL, j.note);
    }
    *verdicts = j.out;
    return APR_SUCCESS;
}
