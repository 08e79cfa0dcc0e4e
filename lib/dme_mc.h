/* The shared cache: blobs, locks and counters in memcached, seen alike by
 * every process of every server.
 *
 * This is the only file of the core that speaks to libmemcached. Callers
 * name things with logical keys of any bytes (a user name, a folder, NUL
 * separators); memcached only ever sees "dme:" kind ":" and the SHA-256 of
 * the logical key in hex, so every key is valid there and no user name or
 * folder reaches the cache servers.
 *
 * A dme_mc_t is made once per process and is safe to share between its
 * threads: each call borrows a connection handle from a pool and returns
 * it before it returns. Every network wait is bounded by the timeout given
 * at creation; a server that refused or timed out is skipped for the next
 * second or two, so calls fail fast while it is down and work again soon
 * after it is back.
 */
#ifndef DME_MC_H
#define DME_MC_H

#include "dme.h"

#define DME_MC_KIND_MAX   16                 /* longest blob kind tag */
#define DME_MC_CHUNK      (512 * 1024)       /* most bytes in one item */
#define DME_MC_BLOB_MAX   (64 * 1024 * 1024) /* longest blob */
#define DME_MC_EXPIRY_MAX 2592000 /* 30 days: memcached's relative limit */

typedef struct dme_mc_t dme_mc_t;

/* Opens the cache described by config, a libmemcached configuration
 * string such as "--SERVER=127.0.0.1:11211 --SERVER=10.0.0.2:11211"; with
 * several servers, keys are spread by consistent hashing (ketama, MD5 as
 * other ketama clients do), so adding a server moves few keys. Options of
 * the string apply, except that this file always
 * sets its own timeouts, distribution, CAS support, non-blocking I/O, and
 * turns off "noreply" and request buffering, which would hide failures.
 * Both protocols work with memcached 1.6 (the unit tests run each);
 * ASCII, the default, is the one memcached still develops, while
 * --BINARY-PROTOCOL is deprecated there.
 *
 * timeout (1 ms .. 60 s) bounds each connect, send, receive and the wait
 * for a free handle; max_handles (1 .. 4096) is the most connections per
 * server this process opens, which should match its thread count. No
 * connection is made here. Everything is released when p is cleared.
 *
 * @return APR_EINVAL for an unparsable config string, one naming no
 *         server or asking for UDP, or numbers out of range, with a short
 *         reason in *err (err may be NULL; the reason never repeats the
 *         string); APR_ENOMEM if libmemcached cannot allocate. */
apr_status_t dme_mc_create(dme_mc_t **mc, const char **err, const char *config,
                           apr_interval_time_t timeout, int max_handles,
                           apr_pool_t *p);

/* Stores len bytes at data (any bytes; data may be NULL when len is 0)
 * under the logical key of klen bytes, replacing what was there, for
 * expiry_sec seconds (0: until evicted; at most DME_MC_EXPIRY_MAX).
 *
 * kind is 1..DME_MC_KIND_MAX characters of [a-z0-9_], other than "lock"
 * and "ctr", which this file uses itself.
 *
 * The value goes into chunk items of at most DME_MC_CHUNK bytes, named
 * after a fresh random generation, and then into a small head item that
 * holds a format version, the length, the chunk count, the generation and
 * the SHA-256 of the whole value. All items of one blob live on the
 * server that the head key hashes to. The head is written last, so a
 * reader sees the old value or the new one, never a mixture; once the new
 * head is stored, the previous generation's chunks are deleted. Two
 * writers racing on one key leave one whole value (the later head); the
 * loser's chunks stay until they expire or are evicted.
 *
 * @return APR_EINVAL for a bad kind or expiry, DME_ETOOBIG over
 *         DME_MC_BLOB_MAX or when the server refuses an item as too large
 *         (its item limit must exceed DME_MC_CHUNK; memcached's default of
 *         1 MB does), APR_EAGAIN when no handle became free within the
 *         timeout, DME_EDOWN when the server did not answer in time or
 *         answered with an error. After a failure the old value may still
 *         be readable. */
apr_status_t dme_mc_blob_set(dme_mc_t *mc, const char *kind, const void *key,
                             apr_size_t klen, const void *data, apr_size_t len,
                             apr_uint32_t expiry_sec);

/* Reads the blob stored under kind and key into p. *data is followed by
 * a NUL byte that *len does not count. A head whose chunks were replaced
 * while they were being read is looked up again, a few times at most.
 * @return APR_NOTFOUND if absent, expired, or anything fails to verify
 *         (a missing or mis-sized chunk, another generation, a checksum
 *         mismatch, a head in an unknown format); APR_EINVAL for a bad
 *         kind; APR_EAGAIN and DME_EDOWN as for dme_mc_blob_set. *data is
 *         NULL and *len 0 on every failure. */
apr_status_t dme_mc_blob_get(const char **data, apr_size_t *len, dme_mc_t *mc,
                             const char *kind, const void *key, apr_size_t klen,
                             apr_pool_t *p);

/* Removes the blob's head, then its chunks.
 * @return APR_SUCCESS also when there was no such blob; APR_EINVAL for a
 *         bad kind; APR_EAGAIN and DME_EDOWN as for dme_mc_blob_set. */
apr_status_t dme_mc_blob_delete(dme_mc_t *mc, const char *kind, const void *key,
                                apr_size_t klen);

/* What the head of a blob says, for the status page and for tests. */
typedef struct dme_mc_blob_info_t {
    apr_size_t len;          /* bytes of the whole value */
    int nchunks;             /* 0 for an empty value */
    const char *head_key;    /* server key of the head item */
    const char **chunk_keys; /* nchunks server keys, in value order */
} dme_mc_blob_info_t;

/* Reads and checks the blob's head only (one small item).
 * @return as dme_mc_blob_get; APR_NOTFOUND also for a head in an unknown
 *         format. Chunks are not read, so a head can be reported for a
 *         blob whose chunks are gone. */
apr_status_t dme_mc_blob_info(dme_mc_blob_info_t *info, dme_mc_t *mc,
                              const char *kind, const void *key,
                              apr_size_t klen, apr_pool_t *p);

/* Takes the lock called name (any NUL-terminated text; hashed like a
 * blob key) for ttl_sec seconds (1..DME_MC_EXPIRY_MAX), across all
 * processes and servers that share the cache, with memcached's atomic
 * "add". *token is a fresh random value, needed to unlock; the TTL frees
 * a lock whose holder died. Nothing is queued: callers retry or give up.
 * A lock lives only in the memory of one server: if that server restarts
 * or evicts it, it can be taken again while its holder still works, so
 * it serves to avoid duplicate work, not to protect data.
 * @return APR_SUCCESS when taken, APR_EEXIST when someone holds it,
 *         APR_EINVAL for a bad TTL, APR_EAGAIN and DME_EDOWN as above. */
apr_status_t dme_mc_lock(const char **token, dme_mc_t *mc, const char *name,
                         apr_uint32_t ttl_sec, apr_pool_t *p);

/* Releases the lock if it still carries token: reads it with its CAS
 * value, compares, and replaces it with an already expired item under
 * that CAS value, so a lock someone else took after ours expired is left
 * alone even if they took it in between.
 * @return APR_SUCCESS when released, APR_EEXIST when it is held with
 *         another token (kept), APR_NOTFOUND when nobody holds it,
 *         APR_EAGAIN and DME_EDOWN as above. */
apr_status_t dme_mc_unlock(dme_mc_t *mc, const char *name, const char *token,
                           apr_pool_t *p);

/* Adds one to the counter called name and writes the new value to *value;
 * a missing counter starts at 1 and lives expiry_sec seconds (0: until
 * evicted) from its creation: increments do not extend it. Racing
 * creators are resolved by memcached, so each caller sees its own value.
 * @return APR_EINVAL for a bad expiry, APR_EAGAIN and DME_EDOWN as above;
 *         DME_EPROTO if the item holds no number. */
apr_status_t dme_mc_incr(apr_uint64_t *value, dme_mc_t *mc, const char *name,
                         apr_uint32_t expiry_sec);

/* Reads the counter called name.
 * @return APR_NOTFOUND if it does not exist, DME_EPROTO if the item
 *         holds no decimal number, APR_EAGAIN and DME_EDOWN as above. */
apr_status_t dme_mc_get_u64(apr_uint64_t *value, dme_mc_t *mc,
                            const char *name);

/* The server key of a blob's head: "dme:" kind ":" and 64 hex digits of
 * the SHA-256 of the logical key; at most 85 characters, no spaces.
 * NULL for a bad kind. Safe to log and to show. */
const char *dme_mc_key(dme_mc_t *mc, const char *kind, const void *key,
                       apr_size_t klen, apr_pool_t *p);

/* Asks every server for its statistics. *report (report may be NULL)
 * says per server "host:port up <version>" or "host:port down",
 * separated by "; ".
 * @return APR_SUCCESS when every server answered, DME_EDOWN when one or
 *         more did not, APR_EAGAIN when no handle became free. */
apr_status_t dme_mc_ping(const char **report, dme_mc_t *mc, apr_pool_t *p);

#endif /* DME_MC_H */
