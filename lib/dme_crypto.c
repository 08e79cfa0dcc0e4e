/* The core's one home of OpenSSL: digests, randomness, the key file and
 * AES-256-GCM sealing of stored secrets. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "dme_crypto.h"

#define KEY_HEX_LEN (2 * DME_CRYPTO_KEY_LEN)

struct dme_crypto_key_t {
    unsigned char k[DME_CRYPTO_KEY_LEN];
};

/* Memory that held a secret and must not outlive its pool readable. */
typedef struct {
    void *buf;
    apr_size_t len;
} wipe_t;

static apr_status_t wipe(void *data)
{
    wipe_t *w = data;

    OPENSSL_cleanse(w->buf, w->len);
    return APR_SUCCESS;
}

static void wipe_on_cleanup(void *buf, apr_size_t len, apr_pool_t *p)
{
    wipe_t *w = apr_palloc(p, sizeof(*w));

    w->buf = buf;
    w->len = len;
    apr_pool_cleanup_register(p, w, wipe, apr_pool_cleanup_null);
}

static void to_hex(char *out, const unsigned char *in, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

apr_status_t dme_crypto_md5_hex(char out[33], const void *data, apr_size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_md5(), NULL) ||
        mdlen != 16) {
        ERR_clear_error();
        return APR_EGENERAL;
    }
    to_hex(out, md, 16);
    return APR_SUCCESS;
}

apr_status_t dme_crypto_sha256_hex(char out[65], const void *data,
                                   apr_size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != 32) {
        ERR_clear_error();
        return APR_EGENERAL;
    }
    to_hex(out, md, 32);
    return APR_SUCCESS;
}

apr_status_t dme_crypto_hmac_sha256_hex(char out[65], const void *key,
                                        apr_size_t klen, const void *data,
                                        apr_size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!HMAC(EVP_sha256(), key, (int)klen, data ? data : (const void *)"", len,
              md, &mdlen) ||
        mdlen != 32) {
        ERR_clear_error();
        return APR_EGENERAL;
    }
    to_hex(out, md, 32);
    return APR_SUCCESS;
}

apr_status_t dme_crypto_random(void *buf, apr_size_t len)
{
    unsigned char *b = buf;

    /* RAND_bytes counts in int; hand it bounded slices. */
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;

        if (RAND_bytes(b, n) != 1) {
            ERR_clear_error();
            return APR_EGENERAL;
        }
        b += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* Lowercase RFC 4648 base32 without padding. */
static char *base32(const unsigned char *in, apr_size_t len, apr_pool_t *p)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    char *out = apr_palloc(p, (len * 8 + 4) / 5 + 1), *o = out;
    apr_uint32_t acc = 0;
    int bits = 0;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            *o++ = alpha[(acc >> bits) & 0x1f];
        }
    }
    if (bits > 0) {
        *o++ = alpha[(acc << (5 - bits)) & 0x1f];
    }
    *o = '\0';
    return out;
}

apr_status_t dme_crypto_random_id(const char **out, apr_size_t bytes,
                                  apr_pool_t *p)
{
    unsigned char raw[DME_CRYPTO_ID_MAX];
    apr_status_t rv;

    *out = NULL;
    if (bytes == 0 || bytes > sizeof(raw)) {
        return APR_EINVAL;
    }
    rv = dme_crypto_random(raw, bytes);
    if (rv == APR_SUCCESS) {
        *out = base32(raw, bytes, p);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return rv;
}

/* ---- key file ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static apr_status_t parse_key(dme_crypto_key_t *key, const char *buf,
                              apr_size_t len)
{
    apr_size_t i;

    if (len == KEY_HEX_LEN + 1 && buf[KEY_HEX_LEN] == '\n') {
        len--;
    }
    if (len != KEY_HEX_LEN) {
        return APR_EINVAL;
    }
    for (i = 0; i < DME_CRYPTO_KEY_LEN; i++) {
        int hi = hex_value(buf[2 * i]), lo = hex_value(buf[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return APR_EINVAL;
        }
        key->k[i] = (unsigned char)(hi << 4 | lo);
    }
    return APR_SUCCESS;
}

static apr_status_t read_all(int fd, char *buf, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? APR_FROM_OS_ERROR(errno) : APR_EINVAL;
        }
        buf += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

static apr_status_t write_all(int fd, const char *buf, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
        }
        buf += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* APR_ENOENT when there is no file yet, so the caller may create one. */
static apr_status_t read_key(dme_crypto_key_t *key, const char *path)
{
    char buf[KEY_HEX_LEN + 1];
    struct stat st;
    apr_status_t rv;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (fstat(fd, &st) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    } else if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)) ||
               (st.st_size != KEY_HEX_LEN && st.st_size != KEY_HEX_LEN + 1)) {
        rv = APR_EINVAL;
    } else {
        rv = read_all(fd, buf, (apr_size_t)st.st_size);
        if (rv == APR_SUCCESS) {
            rv = parse_key(key, buf, (apr_size_t)st.st_size);
        }
    }
    close(fd);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rv;
}

/* Makes the new directory entry durable, not only the file's bytes. */
static void sync_dir(const char *path, apr_pool_t *p)
{
    const char *slash = strrchr(path, '/');
    const char *dir = !slash          ? "."
                      : slash == path ? "/"
                                      : apr_pstrmemdup(p, path, slash - path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Writes a fresh key to a private temporary file, then links it to path.
 * APR_EEXIST when another process got there first. */
static apr_status_t create_key(dme_crypto_key_t *key, const char *path,
                               apr_pool_t *p)
{
    char buf[KEY_HEX_LEN + 1];
    const char *suffix, *tmp;
    apr_status_t rv;
    int fd;

    if ((rv = dme_crypto_random_id(&suffix, 8, p)) != APR_SUCCESS ||
        (rv = dme_crypto_random(key->k, sizeof(key->k))) != APR_SUCCESS) {
        return rv;
    }
    tmp = apr_pstrcat(p, path, ".new-", suffix, NULL);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              S_IRUSR | S_IWUSR);
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    to_hex(buf, key->k, sizeof(key->k));
    buf[KEY_HEX_LEN] = '\n';
    /* open() applied the umask; the mode must be exactly 0600. */
    rv = fchmod(fd, S_IRUSR | S_IWUSR) ? APR_FROM_OS_ERROR(errno)
                                       : write_all(fd, buf, sizeof(buf));
    if (rv == APR_SUCCESS && fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (close(fd) != 0 && rv == APR_SUCCESS) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (rv == APR_SUCCESS && link(tmp, path) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    unlink(tmp);
    if (rv == APR_SUCCESS) {
        sync_dir(path, p);
    }
    return rv;
}

static apr_status_t key_wipe(void *data)
{
    OPENSSL_cleanse(data, sizeof(dme_crypto_key_t));
    return APR_SUCCESS;
}

apr_status_t dme_crypto_key_load(dme_crypto_key_t **key, int *created,
                                 const char *path, apr_pool_t *p)
{
    dme_crypto_key_t *k = apr_pcalloc(p, sizeof(*k));
    apr_status_t rv;
    int made = 0;

    *key = NULL;
    apr_pool_cleanup_register(p, k, key_wipe, apr_pool_cleanup_null);
    rv = read_key(k, path);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = create_key(k, path, p);
        made = (rv == APR_SUCCESS);
        if (APR_STATUS_IS_EEXIST(rv)) {
            rv = read_key(k, path);
        }
    }
    if (rv != APR_SUCCESS) {
        OPENSSL_cleanse(k, sizeof(*k));
        return rv;
    }
    if (created) {
        *created = made;
    }
    *key = k;
    return APR_SUCCESS;
}

/* ---- sealing ---- */

/* Runs GCM over in, with aad, into out; encrypting sets tag, decrypting
 * checks it. DME_EAUTH when the tag does not match. */
static apr_status_t gcm(unsigned char *out, const dme_crypto_key_t *key,
                        const unsigned char *nonce, const char *aad,
                        const unsigned char *in, int inlen, unsigned char *tag,
                        int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    apr_status_t rv = APR_EGENERAL;
    int n = 0, fin = 0;

    if (!ctx ||
        !EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->k, nonce, enc) ||
        !EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad,
                          (int)strlen(aad)) ||
        !EVP_CipherUpdate(ctx, out, &n, in, inlen)) {
        goto cleanup;
    }
    if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
                                     DME_CRYPTO_TAG_LEN, tag)) {
        goto cleanup;
    }
    if (EVP_CipherFinal_ex(ctx, out + n, &fin) <= 0) {
        rv = enc ? APR_EGENERAL : DME_EAUTH;
        goto cleanup;
    }
    if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                                    DME_CRYPTO_TAG_LEN, tag)) {
        goto cleanup;
    }
    rv = APR_SUCCESS;
cleanup:
    /* The error queue is per thread and shared with mod_ssl. */
    ERR_clear_error();
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

apr_status_t dme_crypto_seal(const char **out, const dme_crypto_key_t *key,
                             const char *plaintext, const char *aad,
                             apr_pool_t *p)
{
    apr_size_t len = strlen(plaintext);
    apr_size_t rawlen = DME_CRYPTO_NONCE_LEN + len + DME_CRYPTO_TAG_LEN;
    apr_size_t plen = sizeof(DME_CRYPTO_SEAL_PREFIX) - 1;
    unsigned char *raw, *ct;
    char *b64;
    apr_status_t rv;

    *out = NULL;
    if (len > DME_CRYPTO_SEAL_MAX) {
        return DME_ETOOBIG;
    }
    raw = apr_palloc(p, rawlen);
    ct = raw + DME_CRYPTO_NONCE_LEN;
    rv = dme_crypto_random(raw, DME_CRYPTO_NONCE_LEN);
    if (rv == APR_SUCCESS) {
        rv = gcm(ct, key, raw, aad ? aad : "", (const unsigned char *)plaintext,
                 (int)len, ct + len, 1);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    b64 = apr_palloc(p, plen + 4 * ((rawlen + 2) / 3) + 1);
    memcpy(b64, DME_CRYPTO_SEAL_PREFIX, plen);
    EVP_EncodeBlock((unsigned char *)b64 + plen, raw, (int)rawlen);
    *out = b64;
    return APR_SUCCESS;
}

/* Strict base64: standard alphabet, length a multiple of 4, at most two
 * '=' and only at the end. Returns the decoded length, or -1. */
static long unbase64(unsigned char *out, const char *in, apr_size_t len)
{
    apr_size_t i, pad = 0;
    int n;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    while (pad < 2 && in[len - 1 - pad] == '=') {
        pad++;
    }
    for (i = 0; i < len - pad; i++) {
        char c = in[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return -1;
        }
    }
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    return n < 0 ? -1 : (long)(n - (int)pad);
}

apr_status_t dme_crypto_open(const char **plaintext,
                             const dme_crypto_key_t *key, const char *sealed,
                             const char *aad, apr_pool_t *p)
{
    apr_size_t plen = sizeof(DME_CRYPTO_SEAL_PREFIX) - 1, b64len, ctlen;
    unsigned char *raw;
    char *pt;
    long rawlen;
    apr_status_t rv;

    *plaintext = NULL;
    if (strncmp(sealed, DME_CRYPTO_SEAL_PREFIX, plen) != 0) {
        return APR_EINVAL;
    }
    b64len = strlen(sealed + plen);
    if (b64len > 4 * ((DME_CRYPTO_SEAL_MAX + 30) / 3 + 1)) {
        return APR_EINVAL;
    }
    raw = apr_palloc(p, b64len / 4 * 3 + 1);
    rawlen = unbase64(raw, sealed + plen, b64len);
    if (rawlen < DME_CRYPTO_NONCE_LEN + DME_CRYPTO_TAG_LEN) {
        return APR_EINVAL;
    }
    ctlen = (apr_size_t)rawlen - DME_CRYPTO_NONCE_LEN - DME_CRYPTO_TAG_LEN;
    pt = apr_palloc(p, ctlen + 1);
    rv = gcm((unsigned char *)pt, key, raw, aad ? aad : "",
             raw + DME_CRYPTO_NONCE_LEN, (int)ctlen,
             raw + DME_CRYPTO_NONCE_LEN + ctlen, 0);
    if (rv != APR_SUCCESS) {
        OPENSSL_cleanse(pt, ctlen + 1);
        return rv;
    }
    pt[ctlen] = '\0';
    wipe_on_cleanup(pt, ctlen + 1, p);
    *plaintext = pt;
    return APR_SUCCESS;
}
