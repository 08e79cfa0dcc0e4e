/* Digests, randomness and sealing of stored secrets.
 *
 * This is the only file of the core that speaks to OpenSSL; everything
 * else uses these functions and the project's own types.
 */
#ifndef DME_CRYPTO_H
#define DME_CRYPTO_H

#include "dme.h"

#define DME_CRYPTO_KEY_LEN   32 /* AES-256 */
#define DME_CRYPTO_NONCE_LEN 12 /* GCM's natural nonce size */
#define DME_CRYPTO_TAG_LEN   16
#define DME_CRYPTO_SEAL_MAX                                                    \
    65536                          /* longest plaintext dme_crypto_seal takes  \
                                    */
#define DME_CRYPTO_ID_MAX      256 /* most random bytes in one random id */
#define DME_CRYPTO_SEAL_PREFIX "v1:"

/* Writes the MD5 digest of len bytes at data to out as 32 lowercase hex
 * digits and a NUL. data may be NULL when len is 0.
 * @return APR_EGENERAL if OpenSSL refuses MD5 (e.g. a FIPS-only setup). */
apr_status_t dme_crypto_md5_hex(char out[33], const void *data, apr_size_t len);

/* Writes the SHA-256 digest of len bytes at data to out as 64 lowercase
 * hex digits and a NUL. data may be NULL when len is 0.
 * @return APR_EGENERAL if OpenSSL fails. */
apr_status_t dme_crypto_sha256_hex(char out[65], const void *data,
                                   apr_size_t len);

/* Fills buf with len bytes from OpenSSL's CSPRNG.
 * @return APR_EGENERAL if the generator cannot deliver (not seeded). */
/* HMAC-SHA-256 of data under key, lowercase hex; APR_EGENERAL if
 * OpenSSL fails. */
apr_status_t dme_crypto_hmac_sha256_hex(char out[65], const void *key,
                                        apr_size_t klen, const void *data,
                                        apr_size_t len);

apr_status_t dme_crypto_random(void *buf, apr_size_t len);

/* A random identifier of `bytes` random bytes (1..DME_CRYPTO_ID_MAX),
 * written in lowercase base32 without padding ("a-z2-7", ceil(bytes*8/5)
 * characters): safe in URLs, file names and XML without escaping.
 * @return APR_EINVAL for a byte count out of range, APR_EGENERAL if the
 *         generator fails. */
apr_status_t dme_crypto_random_id(const char **out, apr_size_t bytes,
                                  apr_pool_t *p);

/* An AES-256-GCM key. Its bytes live in p and are overwritten with zeros
 * when p is cleared or destroyed. */
typedef struct dme_crypto_key_t dme_crypto_key_t;

/* Loads the key file at path, or creates it when it does not exist.
 *
 * Format: exactly 64 hexadecimal digits (either case), optionally followed
 * by one "\n" - what `openssl rand -hex 32` writes. A created file holds 64
 * lowercase digits and "\n".
 *
 * Creation writes a private temporary file next to path (O_CREAT|O_EXCL,
 * then fchmod 0600 so no umask can widen or narrow it), fsyncs it, and
 * hard-links it to path, which fails rather than replaces when another
 * process created the key first; that process's key is then loaded. The
 * directory is fsynced afterwards. *created (may be NULL) is 1 only when
 * this call made the file.
 *
 * @return APR_EINVAL if the file is not a regular file, can be read or
 *         written by group or others, or is not in the format above (the
 *         caller names the directive and the path; nothing here logs);
 *         an APR error from the OS when the file or its directory cannot
 *         be opened, written or linked (e.g. a file system without hard
 *         links); APR_EGENERAL if the random generator fails. */
apr_status_t dme_crypto_key_load(dme_crypto_key_t **key, int *created,
                                 const char *path, apr_pool_t *p);

/* Encrypts the NUL-terminated plaintext with AES-256-GCM under a fresh
 * random 12-byte nonce, binding it to aad (NULL counts as ""), so a sealed
 * value copied to another user's row does not open there.
 * *out = "v1:" + base64(nonce | ciphertext | tag), standard alphabet with
 * padding, no line breaks.
 * @return DME_ETOOBIG if plaintext is longer than DME_CRYPTO_SEAL_MAX,
 *         APR_EGENERAL if OpenSSL or the random generator fails. */
apr_status_t dme_crypto_seal(const char **out, const dme_crypto_key_t *key,
                             const char *plaintext, const char *aad,
                             apr_pool_t *p);

/* Reverses dme_crypto_seal. The plaintext lives in p and is overwritten
 * with zeros when p is cleared or destroyed.
 * @return APR_EINVAL if sealed is not "v1:" and well-formed base64 of at
 *         least nonce and tag, DME_EAUTH if the tag does not verify (the
 *         text was altered, or the key or aad differ from sealing time),
 *         APR_EGENERAL if OpenSSL fails otherwise. */
apr_status_t dme_crypto_open(const char **plaintext,
                             const dme_crypto_key_t *key, const char *sealed,
                             const char *aad, apr_pool_t *p);

#endif /* DME_CRYPTO_H */
