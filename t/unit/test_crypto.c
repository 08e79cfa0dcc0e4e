/* Unit tests for lib/dme_crypto: digests, ids, the key file, sealing. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "unit.h"
#include "dme_crypto.h"

static void test_md5(void)
{
    /* RFC 1321, appendix A.5 */
    static const char *const vec[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"12345678901234567890123456789012345678901234567890123456789012345"
         "678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    char hex[33];
    apr_size_t i;

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        CHECK_INT(dme_crypto_md5_hex(hex, vec[i][0], strlen(vec[i][0])),
                  APR_SUCCESS);
        CHECK_STR(hex, vec[i][1]);
    }
    CHECK_INT(dme_crypto_md5_hex(hex, NULL, 0), APR_SUCCESS);
    CHECK_STR(hex, "d41d8cd98f00b204e9800998ecf8427e");
    /* Bytes after a NUL count: the length decides, not strlen. */
    CHECK_INT(dme_crypto_md5_hex(hex, "a\0b", 3), APR_SUCCESS);
    CHECK(strcmp(hex, "0cc175b9c0f1b6a831c399e269772661") != 0);
}

static void test_sha256(apr_pool_t *p)
{
    /* FIPS 180-2, appendix B.1 and B.2, and the empty message */
    static const char *const vec[][2] = {
        {"",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc",
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    char *million = apr_palloc(p, 1000000);
    apr_size_t i;

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        CHECK_INT(dme_crypto_sha256_hex(hex, vec[i][0], strlen(vec[i][0])),
                  APR_SUCCESS);
        CHECK_STR(hex, vec[i][1]);
    }
    /* FIPS 180-2, appendix B.3: one million 'a' */
    memset(million, 'a', 1000000);
    CHECK_INT(dme_crypto_sha256_hex(hex, million, 1000000), APR_SUCCESS);
    CHECK_STR(
        hex,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK_INT(dme_crypto_sha256_hex(hex, NULL, 0), APR_SUCCESS);
    CHECK_STR(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* The length decides, not strlen: "a\0b" is not "a". */
    CHECK_INT(dme_crypto_sha256_hex(hex, "a\0b", 3), APR_SUCCESS);
    CHECK(strcmp(hex, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785"
                      "afee48bb") != 0);
    CHECK_INT(strlen(hex), 64);
}

static void test_random(apr_pool_t *p)
{
    unsigned char a[32], b[32];
    const char *id1, *id2;
    apr_size_t i;

    CHECK_INT(dme_crypto_random(a, sizeof(a)), APR_SUCCESS);
    CHECK_INT(dme_crypto_random(b, sizeof(b)), APR_SUCCESS);
    CHECK(memcmp(a, b, sizeof(a)) != 0);

    CHECK_INT(dme_crypto_random_id(&id1, 16, p), APR_SUCCESS);
    CHECK_INT(dme_crypto_random_id(&id2, 16, p), APR_SUCCESS);
    CHECK_INT(strlen(id1), 26);
    CHECK(strcmp(id1, id2) != 0);
    CHECK_INT(strspn(id1, "abcdefghijklmnopqrstuvwxyz234567"), 26);
    CHECK_INT(dme_crypto_random_id(&id1, 5, p), APR_SUCCESS);
    CHECK_INT(strlen(id1), 8);
    CHECK_INT(dme_crypto_random_id(&id1, 1, p), APR_SUCCESS);
    CHECK_INT(strlen(id1), 2);
    /* one byte gives 3 spare bits, always zero: the last char is a/e/i/... */
    CHECK(strchr("aeimquy4", id1[1]) != NULL);
    CHECK_INT(dme_crypto_random_id(&id1, 0, p), APR_EINVAL);
    CHECK(id1 == NULL);
    CHECK_INT(dme_crypto_random_id(&id1, DME_CRYPTO_ID_MAX + 1, p), APR_EINVAL);
    for (i = 0; i < 50; i++) {
        CHECK_INT(dme_crypto_random_id(&id1, 10, p), APR_SUCCESS);
        CHECK_INT(strspn(id1, "abcdefghijklmnopqrstuvwxyz234567"), 16);
    }
}

static const char *write_file(const char *dir, const char *name,
                              const char *text, mode_t mode, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, mode);
    return path;
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return (mode_t)-1;
    }
    return st.st_mode & 07777;
}

/* A key created under a hostile umask is still exactly 0600, holds 64 hex
 * digits and a newline, and loads back as the same key. */
static void test_key_create(const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/dme.key", NULL);
    dme_crypto_key_t *k1, *k2;
    const char *sealed, *plain;
    char buf[128];
    FILE *f;
    size_t n;
    int created = -1;
    mode_t old = umask(0277);

    CHECK_INT(dme_crypto_key_load(&k1, &created, path, p), APR_SUCCESS);
    umask(old);
    CHECK_INT(created, 1);
    CHECK_INT(file_mode(path), 0600);
    f = fopen(path, "r");
    n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f) {
        fclose(f);
    }
    CHECK_INT(n, 65);
    CHECK_INT(strspn(buf, "0123456789abcdef"), 64);
    CHECK_INT(buf[64], '\n');

    old = umask(0);
    CHECK_INT(dme_crypto_key_load(&k2, &created, path, p), APR_SUCCESS);
    umask(old);
    CHECK_INT(created, 0);
    CHECK_INT(file_mode(path), 0600);
    CHECK_INT(dme_crypto_seal(&sealed, k1, "s3cret", "alice", p), APR_SUCCESS);
    CHECK_INT(dme_crypto_open(&plain, k2, sealed, "alice", p), APR_SUCCESS);
    CHECK_STR(plain, "s3cret");
    CHECK_INT(dme_crypto_key_load(&k2, NULL, path, p), APR_SUCCESS);
}

static void test_key_refused(const char *dir, apr_pool_t *p)
{
    static const char hex[] =
        "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    dme_crypto_key_t *k = NULL;
    const char *path;
    int created = -1;

    path = write_file(dir, "open.key", hex, 0644, p);
    CHECK_INT(dme_crypto_key_load(&k, &created, path, p), APR_EINVAL);
    CHECK(k == NULL);
    path = write_file(dir, "grp.key", hex, 0640, p);
    CHECK_INT(dme_crypto_key_load(&k, NULL, path, p), APR_EINVAL);
    path = write_file(dir, "short.key", "00112233", 0600, p);
    CHECK_INT(dme_crypto_key_load(&k, NULL, path, p), APR_EINVAL);
    path = write_file(dir, "empty.key", "", 0600, p);
    CHECK_INT(dme_crypto_key_load(&k, NULL, path, p), APR_EINVAL);
    path = write_file(dir, "nothex.key",
                      "zz112233445566778899aabbccddeeff"
                      "00112233445566778899aabbccddeeff",
                      0600, p);
    CHECK_INT(dme_crypto_key_load(&k, NULL, path, p), APR_EINVAL);
    path =
        write_file(dir, "crlf.key", apr_pstrcat(p, hex, "\r\n", NULL), 0600, p);
    CHECK_INT(dme_crypto_key_load(&k, NULL, path, p), APR_EINVAL);
    CHECK_INT(dme_crypto_key_load(&k, NULL, dir, p), APR_EINVAL);

    /* An administrator's own key: mixed case, no newline. */
    path = write_file(dir, "own.key", hex, 0600, p);
    CHECK_INT(dme_crypto_key_load(&k, &created, path, p), APR_SUCCESS);
    CHECK_INT(created, 0);
    CHECK_INT(file_mode(path), 0600);

    path = apr_pstrcat(p, dir, "/no/such/dir/dme.key", NULL);
    CHECK(APR_STATUS_IS_ENOENT(dme_crypto_key_load(&k, NULL, path, p)));
}

/* Flips the lowest bit of the 6 that the base64 character at i stands
 * for, keeping the text valid base64. */
static const char *flip(const char *sealed, apr_size_t i, apr_pool_t *p)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = apr_pstrdup(p, sealed);

    s[i] = b64[(strchr(b64, s[i]) - b64) ^ 1];
    return s;
}

static void test_seal(const char *dir, apr_pool_t *p)
{
    dme_crypto_key_t *k, *other;
    const char *s1, *s2, *plain = "x";
    char *bad;
    char big[DME_CRYPTO_SEAL_MAX + 2];

    CHECK_INT(
        dme_crypto_key_load(&k, NULL, apr_pstrcat(p, dir, "/a.key", NULL), p),
        APR_SUCCESS);
    CHECK_INT(dme_crypto_key_load(&other, NULL,
                                  apr_pstrcat(p, dir, "/b.key", NULL), p),
              APR_SUCCESS);
    CHECK_INT(dme_crypto_seal(&s1, k, "pa55 w\xc3\xb6rd;'\"", "bob", p),
              APR_SUCCESS);
    CHECK_INT(dme_crypto_seal(&s2, k, "pa55 w\xc3\xb6rd;'\"", "bob", p),
              APR_SUCCESS);
    CHECK(strncmp(s1, "v1:", 3) == 0);
    /* 12 nonce + 13 text + 16 tag = 41 bytes = 56 base64 characters */
    CHECK_INT(strlen(s1), 3 + 56);
    CHECK(strcmp(s1, s2) != 0);
    CHECK_INT(dme_crypto_open(&plain, k, s1, "bob", p), APR_SUCCESS);
    CHECK_STR(plain, "pa55 w\xc3\xb6rd;'\"");
    CHECK_INT(dme_crypto_open(&plain, k, s2, "bob", p), APR_SUCCESS);
    CHECK_STR(plain, "pa55 w\xc3\xb6rd;'\"");

    CHECK_INT(dme_crypto_open(&plain, k, s1, "bob2", p), DME_EAUTH);
    CHECK_INT(dme_crypto_open(&plain, k, s1, "Bob", p), DME_EAUTH);
    CHECK(plain == NULL);
    CHECK_INT(dme_crypto_open(&plain, k, s1, NULL, p), DME_EAUTH);
    CHECK_INT(dme_crypto_open(&plain, other, s1, "bob", p), DME_EAUTH);

    /* One flipped bit in nonce, ciphertext and tag each. */
    CHECK_INT(dme_crypto_open(&plain, k, flip(s1, 3 + 2, p), "bob", p),
              DME_EAUTH);
    CHECK_INT(dme_crypto_open(&plain, k, flip(s1, 3 + 20, p), "bob", p),
              DME_EAUTH);
    CHECK_INT(dme_crypto_open(&plain, k, flip(s1, strlen(s1) - 3, p), "bob", p),
              DME_EAUTH);
    CHECK_INT(
        dme_crypto_open(&plain, k, flip(flip(s1, 30, p), 30, p), "bob", p),
        APR_SUCCESS);

    CHECK_INT(dme_crypto_open(&plain, k, s1 + 3, "bob", p), APR_EINVAL);
    CHECK_INT(dme_crypto_open(&plain, k, "v2:AAAA", "bob", p), APR_EINVAL);
    CHECK_INT(dme_crypto_open(&plain, k, "v1:", "bob", p), APR_EINVAL);
    CHECK_INT(dme_crypto_open(&plain, k, "v1:AAAA", "bob", p), APR_EINVAL);
    bad = apr_pstrdup(p, s1);
    bad[10] = '*';
    CHECK_INT(dme_crypto_open(&plain, k, bad, "bob", p), APR_EINVAL);
    CHECK_INT(
        dme_crypto_open(&plain, k, apr_pstrcat(p, s1, "A", NULL), "bob", p),
        APR_EINVAL);

    CHECK_INT(dme_crypto_seal(&s1, k, "", NULL, p), APR_SUCCESS);
    CHECK_INT(dme_crypto_open(&plain, k, s1, "", p), APR_SUCCESS);
    CHECK_STR(plain, "");

    memset(big, 'x', sizeof(big) - 2);
    big[DME_CRYPTO_SEAL_MAX] = '\0';
    CHECK_INT(dme_crypto_seal(&s1, k, big, "u", p), APR_SUCCESS);
    CHECK_INT(dme_crypto_open(&plain, k, s1, "u", p), APR_SUCCESS);
    CHECK_INT(strlen(plain), DME_CRYPTO_SEAL_MAX);
    big[DME_CRYPTO_SEAL_MAX] = 'x';
    big[DME_CRYPTO_SEAL_MAX + 1] = '\0';
    CHECK_INT(dme_crypto_seal(&s1, k, big, "u", p), DME_ETOOBIG);
}

/* The opened plaintext is wiped when its pool goes. */
static void test_wipe(const char *dir, apr_pool_t *p)
{
    dme_crypto_key_t *k;
    const char *sealed, *plain;
    apr_pool_t *sub;
    char *mem;

    CHECK_INT(
        dme_crypto_key_load(&k, NULL, apr_pstrcat(p, dir, "/a.key", NULL), p),
        APR_SUCCESS);
    CHECK_INT(dme_crypto_seal(&sealed, k, "topsecret", "u", p), APR_SUCCESS);
    apr_pool_create(&sub, p);
    CHECK_INT(dme_crypto_open(&plain, k, sealed, "u", sub), APR_SUCCESS);
    CHECK_STR(plain, "topsecret");
    mem = (char *)plain;
    apr_pool_clear(sub);
    /* clear keeps the pool's memory block, so this read is defined */
    CHECK(memcmp(mem, "topsecret", 9) != 0);
    apr_pool_destroy(sub);
}

static void remove_dir(const char *dir, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            apr_file_remove(apr_pstrcat(p, dir, "/", fi.name, NULL), p);
        }
    }
    apr_dir_close(d);
    apr_dir_remove(dir, p);
}

int main(void)
{
    apr_pool_t *p;
    char tmpl[] = "/tmp/dme-crypto-XXXXXX";
    const char *dir;

    apr_initialize();
    apr_pool_create(&p, NULL);
    dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (dir) {
        test_md5();
        test_sha256(p);
        test_random(p);
        test_key_create(dir, p);
        test_key_refused(dir, p);
        test_seal(dir, p);
        test_wipe(dir, p);
        remove_dir(dir, p);
    }
    apr_pool_destroy(p);
    apr_terminate();
    {
        /* RFC 4231 test case 2 */
        char h[65];

        CHECK_INT(dme_crypto_hmac_sha256_hex(
                      h, "Jefe", 4, "what do ya want for nothing?", 28),
                  APR_SUCCESS);
        CHECK_STR(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec5"
                     "8b964ec3843");
    }
    return unit_done("test_crypto");
}
