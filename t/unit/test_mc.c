/* Unit tests for lib/dme_mc against real memcached servers of its own on
 * free loopback ports. A tiny raw client in this file looks behind the
 * library: what keys the servers really hold, and damage done on purpose.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "unit.h"
#include "dme_crypto.h"
#include "dme_mc.h"

#define TIMEOUT  apr_time_from_msec(200)
#define NSERVERS 2

/* ---- memcached servers of our own ---- */

static struct {
    int port;
    pid_t pid;
} srv[NSERVERS];

static void stop_server(int i)
{
    if (srv[i].pid > 0) {
        kill(srv[i].pid, SIGKILL);
        waitpid(srv[i].pid, NULL, 0);
        srv[i].pid = 0;
    }
}

static void stop_all(void)
{
    int i;

    for (i = 0; i < NSERVERS; i++) {
        stop_server(i);
    }
}

/* A crash, an abort or a hung test still stops the servers. */
static void on_fatal(int sig)
{
    int i;

    for (i = 0; i < NSERVERS; i++) {
        if (srv[i].pid > 0) {
            kill(srv[i].pid, SIGKILL);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard(void)
{
    static const int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE,
                               SIGINT,  SIGTERM, SIGALRM};
    size_t i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        signal(sigs[i], on_fatal);
    }
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_all);
    alarm(300);
}

static int connect_to(int port)
{
    struct sockaddr_in a;
    struct timeval tv = {2, 0};
    int s = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* A listening loopback socket on a free port; *port says which. */
static int listener(int *port, int backlog)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s, backlog) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &alen) != 0) {
        if (s >= 0) {
            close(s);
        }
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

static int free_port(void)
{
    int port = 0, s = listener(&port, 1);

    if (s >= 0) {
        close(s);
    }
    return port;
}

/* Runs memcached in the foreground as our child, so its pid is known
 * without a pid file; waits until it accepts connections. */
static int start_server(int i)
{
    char port[16];
    int tries, s;

    snprintf(port, sizeof(port), "%d", srv[i].port);
    srv[i].pid = fork();
    if (srv[i].pid == 0) {
        execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port, "-U",
               "0", "-u", "nobody", "-m", "64", "-t", "2", (char *)NULL);
        _exit(127);
    }
    for (tries = 0; srv[i].pid > 0 && tries < 100; tries++) {
        if ((s = connect_to(srv[i].port)) >= 0) {
            close(s);
            return 0;
        }
        if (waitpid(srv[i].pid, NULL, WNOHANG) == srv[i].pid) {
            srv[i].pid = 0;
            break;
        }
        apr_sleep(apr_time_from_msec(50));
    }
    return -1;
}

/* ---- a raw ASCII client, to look behind the library ---- */

static int ends_with(const char *buf, size_t n, const char *tail)
{
    size_t t = strlen(tail);

    return n >= t && memcmp(buf + n - t, tail, t) == 0;
}

static int answer_done(const char *buf, size_t n)
{
    static const char *const tails[] = {
        "END\r\n",    "DELETED\r\n", "NOT_FOUND\r\n", "STORED\r\n", "ERROR\r\n",
        "EXISTS\r\n", NULL};
    const char *last;
    size_t i;

    if (n < 2 || !ends_with(buf, n, "\r\n")) {
        return 0;
    }
    for (i = 0; tails[i]; i++) {
        if (ends_with(buf, n, tails[i])) {
            return 1;
        }
    }
    /* CLIENT_ERROR / SERVER_ERROR lines carry text after the word */
    for (last = buf + n - 2; last > buf && last[-1] != '\n'; last--) {
    }
    return strstr(last, "ERROR") != NULL;
}

/* Sends req, returns the whole answer (NUL-terminated) or NULL. */
static char *raw(int port, const char *req, size_t reqlen, size_t *n,
                 apr_pool_t *p)
{
    size_t cap = 8 * 1024 * 1024, used = 0;
    char *buf = apr_palloc(p, cap + 1);
    int s = connect_to(port);

    if (s < 0 || write(s, req, reqlen) != (ssize_t)reqlen) {
        if (s >= 0) {
            close(s);
        }
        return NULL;
    }
    while (used < cap && !answer_done(buf, used)) {
        ssize_t r = read(s, buf + used, cap - used);

        if (r <= 0) {
            break;
        }
        used += (size_t)r;
    }
    close(s);
    buf[used] = '\0';
    *n = used;
    return answer_done(buf, used) ? buf : NULL;
}

/* The value stored under key, or NULL when the server has none. */
static const char *raw_get(size_t *vlen, int port, const char *key,
                           apr_pool_t *p)
{
    const char *req = apr_pstrcat(p, "get ", key, "\r\n", NULL);
    size_t n = 0;
    char *a = raw(port, req, strlen(req), &n, p);
    char *nl, *sp;

    *vlen = 0;
    if (!a || strncmp(a, "VALUE ", 6) != 0 || !(nl = strstr(a, "\r\n"))) {
        return NULL;
    }
    *nl = '\0';
    sp = strrchr(a, ' ');
    *vlen = (size_t)atol(sp + 1);
    return nl + 2;
}

static int raw_del(int port, const char *key, apr_pool_t *p)
{
    const char *req = apr_pstrcat(p, "delete ", key, "\r\n", NULL);
    size_t n = 0;
    const char *a = raw(port, req, strlen(req), &n, p);

    return a && strcmp(a, "DELETED\r\n") == 0;
}

static int raw_set(int port, const char *key, const char *val, size_t vlen,
                   apr_pool_t *p)
{
    const char *hdr =
        apr_psprintf(p, "set %s 0 0 %lu\r\n", key, (unsigned long)vlen);
    size_t hl = strlen(hdr), n = 0;
    char *req = apr_palloc(p, hl + vlen + 2);
    const char *a;

    memcpy(req, hdr, hl);
    memcpy(req + hl, val, vlen);
    memcpy(req + hl + vlen, "\r\n", 2);
    a = raw(port, req, hl + vlen + 2, &n, p);
    return a && strcmp(a, "STORED\r\n") == 0;
}

/* ---- helpers ---- */

static const char *config_for(int port, int binary, apr_pool_t *p)
{
    return apr_psprintf(p, "--SERVER=127.0.0.1:%d%s", port,
                        binary ? " --BINARY-PROTOCOL" : "");
}

static dme_mc_t *open_mc(const char *config, int handles, apr_pool_t *p)
{
    dme_mc_t *mc = NULL;
    const char *err = NULL;

    CHECK_INT(dme_mc_create(&mc, &err, config, TIMEOUT, handles, p),
              APR_SUCCESS);
    CHECK(err == NULL);
    return mc;
}

/* Bytes that include NULs, CR/LF and every other value, in a pattern
 * that differs for each seed. */
static char *pattern(apr_size_t len, unsigned seed, apr_pool_t *p)
{
    char *b = apr_palloc(p, len);
    apr_uint32_t x = 2463534242u ^ seed;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (char)((i % 97 == 0) ? 0 : (x & 0xff));
    }
    return b;
}

static int same(const char *got, apr_size_t glen, const char *want,
                apr_size_t wlen)
{
    return got && glen == wlen && memcmp(got, want, wlen) == 0;
}

static double ms_since(apr_time_t t0)
{
    return (double)(apr_time_now() - t0) / 1000.0;
}

/* ---- tests ---- */

static void test_create(apr_pool_t *p)
{
    dme_mc_t *mc = (dme_mc_t *)1;
    const char *err = NULL;

    CHECK_INT(dme_mc_create(&mc, &err, "hello", TIMEOUT, 4, p), APR_EINVAL);
    CHECK(mc == NULL);
    CHECK(err && strstr(err, "syntax error") && !strstr(err, "hello"));
    CHECK_INT(dme_mc_create(&mc, &err, "--SERVER=127.0.0.1:1 --BOGUS=s3cr3t",
                            TIMEOUT, 4, p),
              APR_EINVAL);
    CHECK(err && !strstr(err, "s3cr3t"));
    CHECK_INT(dme_mc_create(&mc, &err, "", TIMEOUT, 4, p), APR_EINVAL);
    CHECK(err != NULL);
    CHECK_INT(dme_mc_create(&mc, &err, NULL, TIMEOUT, 4, p), APR_EINVAL);
    CHECK_INT(dme_mc_create(&mc, &err, "--BINARY-PROTOCOL", TIMEOUT, 4, p),
              APR_EINVAL);
    CHECK(err && strstr(err, "--SERVER"));
    CHECK_INT(dme_mc_create(&mc, &err, "--SERVER=127.0.0.1:1 --USE-UDP",
                            TIMEOUT, 4, p),
              APR_EINVAL);
    CHECK(err && strstr(err, "UDP"));
    CHECK_INT(dme_mc_create(&mc, &err, "--SERVER=127.0.0.1:1", 0, 4, p),
              APR_EINVAL);
    CHECK(err && strstr(err, "timeout"));
    CHECK_INT(dme_mc_create(&mc, &err, "--SERVER=127.0.0.1:1", TIMEOUT, 0, p),
              APR_EINVAL);
    CHECK_INT(
        dme_mc_create(&mc, NULL, "--SERVER=127.0.0.1:1", TIMEOUT, 5000, p),
        APR_EINVAL);
    /* Creating connects to nothing: a dead address is fine until used. */
    CHECK_INT(dme_mc_create(&mc, &err, "--SERVER=127.0.0.1:1", TIMEOUT, 4, p),
              APR_SUCCESS);
    CHECK(mc != NULL && err == NULL);
}

static void test_keys(dme_mc_t *mc, apr_pool_t *p)
{
    char big[10240], hex[65];
    const char *k1, *k2;
    apr_size_t i;

    /* SHA-256("abc"), FIPS 180-2 B.1 */
    CHECK_STR(dme_mc_key(mc, "pc", "abc", 3, p),
              "dme:pc:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
              "f20015ad");
    memset(big, ' ', sizeof(big));
    big[10] = '\0';
    big[sizeof(big) - 1] = '\n';
    k1 = dme_mc_key(mc, "pc", big, sizeof(big), p);
    big[sizeof(big) - 1] = '\r';
    k2 = dme_mc_key(mc, "pc", big, sizeof(big), p);
    CHECK(k1 && k2 && strcmp(k1, k2) != 0);
    CHECK_INT(strlen(k1), 4 + 2 + 1 + 64);
    CHECK(strncmp(k1, "dme:pc:", 7) == 0);
    for (i = 0; k1 && k1[i]; i++) {
        CHECK(k1[i] > ' ' && k1[i] < 127);
    }
    CHECK_INT(dme_crypto_sha256_hex(hex, "pc\0alice smith\0INBOX", 20),
              APR_SUCCESS);
    CHECK_STR(dme_mc_key(mc, "pc_2", "pc\0alice smith\0INBOX", 20, p),
              apr_pstrcat(p, "dme:pc_2:", hex, NULL));
    k1 = dme_mc_key(mc, "abcdefghijklmnop", "x", 1, p);
    CHECK(k1 && strlen(k1) == 85);
    CHECK(dme_mc_key(mc, "abcdefghijklmnopq", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "PC", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "p c", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "p:c", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "lock", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, "ctr", "x", 1, p) == NULL);
    CHECK(dme_mc_key(mc, NULL, "x", 1, p) == NULL);
}

static void test_small(dme_mc_t *mc, int port, apr_pool_t *p)
{
    static const char key[] = "pc\0alice smith\0INBOX";
    static const char val[] = "hello\0world\r\nEND\r\n";
    const char *data = NULL, *head;
    apr_size_t len = 0;
    size_t hlen = 0;

    CHECK_INT(dme_mc_blob_set(mc, "pc", key, sizeof(key) - 1, val,
                              sizeof(val) - 1, 60),
              APR_SUCCESS);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", key, sizeof(key) - 1, p),
              APR_SUCCESS);
    CHECK(same(data, len, val, sizeof(val) - 1));
    CHECK(data && data[len] == '\0');
    /* what the server holds: a head under the hashed key, no user name */
    head =
        raw_get(&hlen, port, dme_mc_key(mc, "pc", key, sizeof(key) - 1, p), p);
    CHECK(head && strncmp(head, "DMEB1 ", 6) == 0);
    CHECK_INT(hlen, 114);
    /* another kind is another blob */
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pd", key, sizeof(key) - 1, p),
              APR_NOTFOUND);

    CHECK_INT(dme_mc_blob_set(mc, "pc", "empty", 5, NULL, 0, 0), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "empty", 5, p),
              APR_SUCCESS);
    CHECK(data && len == 0 && data[0] == '\0');
}

static void test_big(dme_mc_t *mc, int port, apr_pool_t *p)
{
    apr_size_t blen = 5 * 1024 * 1024 + 1234, len = 0;
    char *val = pattern(blen, 1, p);
    char key[10240];
    const char *data = NULL, *chunk;
    dme_mc_blob_info_t info;
    apr_time_t t0;
    size_t clen = 0;
    int i;

    memset(key, 'k', sizeof(key));
    key[5] = ' ';
    key[6] = '\0';
    key[7] = '\n';
    t0 = apr_time_now();
    CHECK_INT(dme_mc_blob_set(mc, "pc", key, sizeof(key), val, blen, 60),
              APR_SUCCESS);
    printf("  5 MB set %.1f ms", ms_since(t0));
    t0 = apr_time_now();
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", key, sizeof(key), p),
              APR_SUCCESS);
    printf(", get %.1f ms\n", ms_since(t0));
    CHECK(same(data, len, val, blen));
    /* the last byte of the key counts */
    key[sizeof(key) - 1] = 'j';
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", key, sizeof(key), p),
              APR_NOTFOUND);
    CHECK(data == NULL && len == 0);
    key[sizeof(key) - 1] = 'k';

    CHECK_INT(dme_mc_blob_info(&info, mc, "pc", key, sizeof(key), p),
              APR_SUCCESS);
    CHECK_INT(info.len, blen);
    CHECK_INT(info.nchunks, 11);
    CHECK_STR(info.head_key, dme_mc_key(mc, "pc", key, sizeof(key), p));
    for (i = 0; i < info.nchunks; i++) {
        const char *ck = info.chunk_keys[i];

        CHECK(strncmp(ck, info.head_key, strlen(info.head_key)) == 0);
        CHECK(strlen(ck) <= 250 && !strchr(ck, ' '));
    }
    chunk = raw_get(&clen, port, info.chunk_keys[10], p);
    CHECK_INT(clen, 1234);
    CHECK(chunk && memcmp(chunk, val + 10 * DME_MC_CHUNK, 1234) == 0);
    chunk = raw_get(&clen, port, info.chunk_keys[3], p);
    CHECK_INT(clen, DME_MC_CHUNK);
}

/* Missing, altered and alien items all read as absent, never as data. */
static void test_damage(dme_mc_t *mc, int port, apr_pool_t *p)
{
    apr_size_t blen = 2 * 1024 * 1024 + 7, len = 0;
    char *val = pattern(blen, 2, p), *bad;
    const char *data = NULL;
    dme_mc_blob_info_t info;

    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "nobody", 6, p),
              APR_NOTFOUND);
    CHECK(data == NULL && len == 0);
    CHECK_INT(dme_mc_blob_info(&info, mc, "pc", "nobody", 6, p), APR_NOTFOUND);
    CHECK_INT(dme_mc_blob_delete(mc, "pc", "nobody", 6), APR_SUCCESS);

    CHECK_INT(dme_mc_blob_set(mc, "pc", "dmg", 3, val, blen, 60), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_info(&info, mc, "pc", "dmg", 3, p), APR_SUCCESS);
    CHECK_INT(info.nchunks, 5);
    CHECK(raw_del(port, info.chunk_keys[2], p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    CHECK(data == NULL);

    /* same size, one byte changed: only the checksum can tell */
    bad = apr_pmemdup(p, val + 2 * DME_MC_CHUNK, DME_MC_CHUNK);
    bad[100] ^= 1;
    CHECK(raw_set(port, info.chunk_keys[2], bad, DME_MC_CHUNK, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    bad[100] ^= 1;
    CHECK(raw_set(port, info.chunk_keys[2], bad, DME_MC_CHUNK, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p), APR_SUCCESS);
    CHECK(same(data, len, val, blen));

    /* a chunk of the wrong size */
    CHECK(raw_set(port, info.chunk_keys[4], "x", 1, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    /* a head in another format, a truncated head */
    CHECK(raw_set(port, info.head_key, "DMEB2 garbage", 13, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    CHECK(raw_set(port, info.head_key, "DMEB1 0000", 10, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    /* a head whose length and chunk count disagree */
    CHECK(raw_set(port, info.head_key,
                  "DMEB1 00000000000000000010 00002 0123456789abcdef "
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                  "7852b855",
                  114, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p),
              APR_NOTFOUND);
    /* a well-formed empty head with the right checksum is an empty value */
    CHECK(raw_set(port, info.head_key,
                  "DMEB1 00000000000000000000 00000 0123456789abcdef "
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                  "7852b855",
                  114, p));
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "dmg", 3, p), APR_SUCCESS);
    CHECK_INT(len, 0);
}

static void test_overwrite(dme_mc_t *mc, int port, apr_pool_t *p)
{
    apr_size_t alen = 3 * 1024 * 1024, len = 0;
    char *a = pattern(alen, 3, p);
    const char *data = NULL, *v;
    dme_mc_blob_info_t old, now;
    size_t vlen = 0;
    int i;

    CHECK_INT(dme_mc_blob_set(mc, "pc", "ow", 2, a, alen, 60), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_info(&old, mc, "pc", "ow", 2, p), APR_SUCCESS);
    CHECK_INT(old.nchunks, 6);
    CHECK_INT(dme_mc_blob_set(mc, "pc", "ow", 2, "short", 5, 60), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "ow", 2, p), APR_SUCCESS);
    CHECK(same(data, len, "short", 5));
    CHECK_INT(dme_mc_blob_info(&now, mc, "pc", "ow", 2, p), APR_SUCCESS);
    CHECK_INT(now.nchunks, 1);
    CHECK(strcmp(now.chunk_keys[0], old.chunk_keys[0]) != 0);
    /* the previous generation's chunks are gone from the server */
    for (i = 0; i < old.nchunks; i++) {
        CHECK(raw_get(&vlen, port, old.chunk_keys[i], p) == NULL);
    }
    CHECK_INT(dme_mc_blob_delete(mc, "pc", "ow", 2), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "ow", 2, p), APR_NOTFOUND);
    CHECK(raw_get(&vlen, port, now.head_key, p) == NULL);
    CHECK(raw_get(&vlen, port, now.chunk_keys[0], p) == NULL);
    v = raw_get(&vlen, port, old.head_key, p);
    CHECK(v == NULL);
}

/* ---- two writers and a reader on one key ---- */

typedef struct {
    dme_mc_t *mc;
    const char *val[3];
    apr_size_t len[3];
    int who; /* 0, 1: writers of val[who]; 2: the reader */
    volatile int *writers_left;
    int rounds, reads, hits, bad, errors;
    apr_pool_t *p;
} race_t;

static void *APR_THREAD_FUNC race(apr_thread_t *t, void *arg)
{
    race_t *r = arg;
    int i;

    if (r->who < 2) {
        for (i = 0; i < r->rounds; i++) {
            if (dme_mc_blob_set(r->mc, "pc", "race", 4, r->val[r->who],
                                r->len[r->who], 60) != APR_SUCCESS) {
                r->errors++;
            }
        }
        __sync_fetch_and_sub(r->writers_left, 1);
        return NULL;
    }
    while (*r->writers_left > 0 || r->reads < 10) {
        const char *d;
        apr_size_t n;
        apr_status_t rv = dme_mc_blob_get(&d, &n, r->mc, "pc", "race", 4, r->p);

        r->reads++;
        if (rv == APR_SUCCESS) {
            r->hits++;
            if (!same(d, n, r->val[0], r->len[0]) &&
                !same(d, n, r->val[1], r->len[1]) &&
                !same(d, n, r->val[2], r->len[2])) {
                r->bad++;
            }
        } else if (rv != APR_NOTFOUND) {
            r->errors++;
        }
        apr_pool_clear(r->p);
    }
    return NULL;
}

static void test_race(dme_mc_t *mc, apr_pool_t *p)
{
    race_t r[3];
    apr_thread_t *th[3];
    volatile int left = 2;
    const char *data = NULL;
    apr_size_t len = 0;
    apr_status_t trv;
    int i;

    memset(r, 0, sizeof(r));
    r[0].val[0] = pattern(1536 * 1024, 10, p);
    r[0].len[0] = 1536 * 1024;
    r[0].val[1] = pattern(1100 * 1024, 11, p);
    r[0].len[1] = 1100 * 1024;
    r[0].val[2] = pattern(700 * 1024, 12, p);
    r[0].len[2] = 700 * 1024;
    CHECK_INT(
        dme_mc_blob_set(mc, "pc", "race", 4, r[0].val[2], r[0].len[2], 60),
        APR_SUCCESS);
    for (i = 0; i < 3; i++) {
        r[i] = r[0];
        r[i].mc = mc;
        r[i].who = i;
        r[i].writers_left = &left;
        r[i].rounds = 25;
        apr_pool_create(&r[i].p, p);
    }
    for (i = 0; i < 3; i++) {
        CHECK_INT(apr_thread_create(&th[i], NULL, race, &r[i], p), APR_SUCCESS);
    }
    for (i = 0; i < 3; i++) {
        apr_thread_join(&trv, th[i]);
    }
    printf("  race: %d reads, %d whole values, %d misses, %d mixed\n",
           r[2].reads, r[2].hits, r[2].reads - r[2].hits, r[2].bad);
    CHECK_INT(r[0].errors + r[1].errors + r[2].errors, 0);
    CHECK_INT(r[2].bad, 0);
    CHECK(r[2].hits > 0);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "race", 4, p),
              APR_SUCCESS);
    CHECK(same(data, len, r[0].val[0], r[0].len[0]) ||
          same(data, len, r[0].val[1], r[0].len[1]));
}

static void test_lock(dme_mc_t *mc, int port, apr_pool_t *p)
{
    const char *t1 = NULL, *t2 = NULL, *v;
    char hex[65];
    size_t vlen = 0;

    CHECK_INT(dme_mc_lock(&t1, mc, "build alice", 30, p), APR_SUCCESS);
    CHECK(t1 && strlen(t1) == 26);
    /* the server holds the token under the hashed name */
    dme_crypto_sha256_hex(hex, "build alice", 11);
    v = raw_get(&vlen, port, apr_pstrcat(p, "dme:lock:", hex, NULL), p);
    CHECK(v && t1 && vlen == strlen(t1) && memcmp(v, t1, vlen) == 0);

    CHECK_INT(dme_mc_lock(&t2, mc, "build alice", 30, p), APR_EEXIST);
    CHECK(t2 == NULL);
    CHECK_INT(dme_mc_lock(&t2, mc, "build bob", 30, p), APR_SUCCESS);
    CHECK(t2 && strcmp(t1, t2) != 0);
    CHECK_INT(dme_mc_unlock(mc, "build alice", t2, p), APR_EEXIST);
    CHECK_INT(dme_mc_lock(&t2, mc, "build alice", 30, p), APR_EEXIST);
    CHECK_INT(dme_mc_unlock(mc, "build alice", t1, p), APR_SUCCESS);
    CHECK_INT(dme_mc_unlock(mc, "build alice", t1, p), APR_NOTFOUND);
    CHECK_INT(dme_mc_lock(&t2, mc, "build alice", 30, p), APR_SUCCESS);
    /* our old token no longer frees the lock someone else holds now */
    CHECK_INT(dme_mc_unlock(mc, "build alice", t1, p), APR_EEXIST);
    CHECK_INT(dme_mc_lock(&t1, mc, "build alice", 30, p), APR_EEXIST);
    CHECK_INT(dme_mc_unlock(mc, "build alice", t2, p), APR_SUCCESS);
    CHECK_INT(dme_mc_unlock(mc, "build bob", "wrong", p), APR_EEXIST);

    CHECK_INT(dme_mc_lock(&t1, mc, "x", 0, p), APR_EINVAL);
    CHECK_INT(dme_mc_lock(&t1, mc, "x", DME_MC_EXPIRY_MAX + 1, p), APR_EINVAL);

    CHECK_INT(dme_mc_lock(&t1, mc, "short", 1, p), APR_SUCCESS);
    CHECK_INT(dme_mc_lock(&t2, mc, "short", 1, p), APR_EEXIST);
    apr_sleep(apr_time_from_sec(2));
    CHECK_INT(dme_mc_lock(&t2, mc, "short", 1, p), APR_SUCCESS);
    CHECK_INT(dme_mc_unlock(mc, "short", t1, p), APR_EEXIST);
}

typedef struct {
    dme_mc_t *mc;
    apr_uint64_t got[50];
    int errors;
} bump_t;

static void *APR_THREAD_FUNC bumper(apr_thread_t *t, void *arg)
{
    bump_t *b = arg;
    int i;

    for (i = 0; i < 50; i++) {
        if (dme_mc_incr(&b->got[i], b->mc, "fresh", 60) != APR_SUCCESS) {
            b->errors++;
        }
    }
    return NULL;
}

static void test_counter(dme_mc_t *mc, int port, apr_pool_t *p)
{
    apr_uint64_t v = 99;
    char hex[65], seen[201];
    bump_t b[4];
    apr_thread_t *th[4];
    apr_status_t trv;
    int i, j, dup = 0;

    CHECK_INT(dme_mc_get_u64(&v, mc, "gen alice"), APR_NOTFOUND);
    CHECK_INT(v, 99);
    CHECK_INT(dme_mc_incr(&v, mc, "gen alice", 60), APR_SUCCESS);
    CHECK_INT(v, 1);
    CHECK_INT(dme_mc_incr(&v, mc, "gen alice", 60), APR_SUCCESS);
    CHECK_INT(dme_mc_incr(&v, mc, "gen alice", 60), APR_SUCCESS);
    CHECK_INT(v, 3);
    CHECK_INT(dme_mc_get_u64(&v, mc, "gen alice"), APR_SUCCESS);
    CHECK_INT(v, 3);
    CHECK_INT(dme_mc_get_u64(&v, mc, "gen bob"), APR_NOTFOUND);
    CHECK_INT(dme_mc_incr(&v, mc, "x", DME_MC_EXPIRY_MAX + 1), APR_EINVAL);

    /* four threads race to create and bump one counter */
    memset(b, 0, sizeof(b));
    for (i = 0; i < 4; i++) {
        b[i].mc = mc;
        CHECK_INT(apr_thread_create(&th[i], NULL, bumper, &b[i], p),
                  APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        apr_thread_join(&trv, th[i]);
    }
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 4; i++) {
        CHECK_INT(b[i].errors, 0);
        for (j = 0; j < 50; j++) {
            if (b[i].got[j] < 1 || b[i].got[j] > 200 || seen[b[i].got[j]]++) {
                dup++;
            }
        }
    }
    CHECK_INT(dup, 0);
    CHECK_INT(dme_mc_get_u64(&v, mc, "fresh"), APR_SUCCESS);
    CHECK_INT(v, 200);

    /* an item that holds no number */
    dme_crypto_sha256_hex(hex, "junk", 4);
    CHECK(raw_set(port, apr_pstrcat(p, "dme:ctr:", hex, NULL), "12ab", 4, p));
    CHECK_INT(dme_mc_get_u64(&v, mc, "junk"), DME_EPROTO);
    CHECK_INT(dme_mc_incr(&v, mc, "junk", 60), DME_EPROTO);
    CHECK(raw_set(port, apr_pstrcat(p, "dme:ctr:", hex, NULL), "42  ", 4, p));
    CHECK_INT(dme_mc_get_u64(&v, mc, "junk"), APR_SUCCESS);
    CHECK_INT(v, 42);
}

static void test_limits(dme_mc_t *mc, apr_pool_t *p)
{
    const char *data = NULL;
    apr_size_t len = 0;

    CHECK_INT(dme_mc_blob_set(mc, "PC", "k", 1, "v", 1, 60), APR_EINVAL);
    CHECK_INT(dme_mc_blob_set(mc, "lock", "k", 1, "v", 1, 60), APR_EINVAL);
    CHECK_INT(dme_mc_blob_set(mc, "pc", "k", 1, "v", 1, DME_MC_EXPIRY_MAX + 1),
              APR_EINVAL);
    CHECK_INT(dme_mc_blob_set(mc, "pc", "k", 1, NULL, 5, 60), APR_EINVAL);
    /* refused before a byte is read */
    CHECK_INT(dme_mc_blob_set(mc, "pc", "k", 1, "v", DME_MC_BLOB_MAX + 1, 60),
              DME_ETOOBIG);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "ctr", "k", 1, p), APR_EINVAL);
    CHECK_INT(dme_mc_blob_delete(mc, "", "k", 1), APR_EINVAL);
}

static void test_ping(dme_mc_t *mc, int port, apr_pool_t *p)
{
    const char *report = NULL;

    CHECK_INT(dme_mc_ping(&report, mc, p), APR_SUCCESS);
    CHECK(report &&
          strstr(report, apr_psprintf(p, "127.0.0.1:%d up 1.", port)));
    CHECK_INT(dme_mc_ping(NULL, mc, p), APR_SUCCESS);
}

/* With one handle, any call that failed to return it would leave the
 * next one waiting for the timeout and then APR_EAGAIN. */
static void test_handles(int port, int binary, apr_pool_t *p)
{
    dme_mc_t *mc = open_mc(config_for(port, binary, p), 1, p);
    dme_mc_blob_info_t info;
    const char *data, *tok = NULL, *t2;
    apr_size_t len;
    apr_uint64_t v;
    int i, again = 0;

    for (i = 0; mc && i < 5; i++) {
        apr_status_t rvs[] = {
            dme_mc_blob_get(&data, &len, mc, "pc", "none", 4, p),
            dme_mc_blob_info(&info, mc, "pc", "none", 4, p),
            dme_mc_blob_set(mc, "pc", "one", 3, "v", 1, 60),
            dme_mc_blob_get(&data, &len, mc, "pc", "one", 3, p),
            dme_mc_blob_delete(mc, "pc", "one", 3),
            dme_mc_lock(&tok, mc, "h", 5, p),
            dme_mc_lock(&t2, mc, "h", 5, p),
            dme_mc_unlock(mc, "h", "wrong", p),
            dme_mc_unlock(mc, "h", tok ? tok : "", p),
            dme_mc_unlock(mc, "h", "gone", p),
            dme_mc_get_u64(&v, mc, "none"),
            dme_mc_incr(&v, mc, "h", 5),
            dme_mc_ping(NULL, mc, p),
        };
        size_t j;

        for (j = 0; j < sizeof(rvs) / sizeof(rvs[0]); j++) {
            again += rvs[j] == APR_EAGAIN;
        }
        CHECK_INT(rvs[5], APR_SUCCESS);
        CHECK_INT(rvs[6], APR_EEXIST);
        CHECK_INT(rvs[8], APR_SUCCESS);
    }
    CHECK_INT(again, 0);
}

/* Everything above, over one protocol. */
static void test_protocol(int binary, apr_pool_t *p)
{
    dme_mc_t *mc;
    apr_pool_t *sub;

    printf("%s protocol:\n", binary ? "binary" : "ASCII");
    apr_pool_create(&sub, p);
    mc = open_mc(config_for(srv[0].port, binary, sub), 4, sub);
    if (mc) {
        test_keys(mc, sub);
        test_small(mc, srv[0].port, sub);
        test_big(mc, srv[0].port, sub);
        test_damage(mc, srv[0].port, sub);
        test_overwrite(mc, srv[0].port, sub);
        test_race(mc, sub);
        test_lock(mc, srv[0].port, sub);
        test_counter(mc, srv[0].port, sub);
        test_limits(mc, sub);
        test_ping(mc, srv[0].port, sub);
        test_handles(srv[0].port, binary, sub);
    }
    apr_pool_destroy(sub);
    raw(srv[0].port, "flush_all\r\n", 11, &(size_t){0}, p);
}

/* Keys spread over both servers, and every item of a blob stays with its
 * head; with one server gone, its keys fail fast and the others work. */
static void test_two_servers(apr_pool_t *p)
{
    const char *cfg =
        apr_psprintf(p, "--SERVER=127.0.0.1:%d --SERVER=127.0.0.1:%d",
                     srv[0].port, srv[1].port);
    dme_mc_t *mc = open_mc(cfg, 2, p);
    char *val = pattern(DME_MC_CHUNK * 2 + 5, 20, p);
    const char *report = NULL, *data;
    int on[NSERVERS] = {0, 0}, ok = 0, down = 0, i, s, c;
    apr_size_t len;
    size_t vlen;

    for (i = 0; mc && i < 24; i++) {
        const char *key = apr_psprintf(p, "user%d", i);
        dme_mc_blob_info_t info;

        CHECK_INT(dme_mc_blob_set(mc, "pc", key, strlen(key), val,
                                  DME_MC_CHUNK * 2 + 5, 60),
                  APR_SUCCESS);
        CHECK_INT(dme_mc_blob_info(&info, mc, "pc", key, strlen(key), p),
                  APR_SUCCESS);
        for (s = 0; s < NSERVERS && info.head_key; s++) {
            if (raw_get(&vlen, srv[s].port, info.head_key, p)) {
                on[s]++;
                for (c = 0; c < info.nchunks; c++) {
                    CHECK(raw_get(&vlen, srv[s].port, info.chunk_keys[c], p));
                }
            }
        }
    }
    printf("two servers: %d and %d of 24 blobs\n", on[0], on[1]);
    CHECK(on[0] > 0 && on[1] > 0);
    CHECK_INT(on[0] + on[1], 24);

    stop_server(1);
    CHECK_INT(dme_mc_ping(&report, mc, p), DME_EDOWN);
    CHECK(report &&
          strstr(report, apr_psprintf(p, "127.0.0.1:%d up", srv[0].port)) &&
          strstr(report, apr_psprintf(p, "127.0.0.1:%d down", srv[1].port)));
    printf("  ping: %s\n", report ? report : "(none)");
    for (i = 0; mc && i < 24; i++) {
        const char *key = apr_psprintf(p, "user%d", i);
        apr_status_t rv =
            dme_mc_blob_get(&data, &len, mc, "pc", key, strlen(key), p);

        ok += rv == APR_SUCCESS && same(data, len, val, DME_MC_CHUNK * 2 + 5);
        down += rv == DME_EDOWN;
    }
    CHECK_INT(ok, on[0]);
    CHECK_INT(down, on[1]);
}

/* memcached killed, then started again on the same port. */
static void test_restart(int binary, apr_pool_t *p)
{
    dme_mc_t *mc = open_mc(config_for(srv[0].port, binary, p), 2, p);
    const char *data, *tok;
    apr_uint64_t v;
    apr_size_t len;
    apr_status_t rv = DME_EDOWN;
    apr_time_t t0;
    double worst = 0, ms;
    int i;

    if (!mc) {
        return;
    }
    CHECK_INT(dme_mc_blob_set(mc, "pc", "r", 1, "before", 6, 60), APR_SUCCESS);
    stop_server(0);
    for (i = 0; i < 3; i++) {
        t0 = apr_time_now();
        CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "r", 1, p), DME_EDOWN);
        ms = ms_since(t0);
        worst = ms > worst ? ms : worst;
    }
    t0 = apr_time_now();
    CHECK_INT(dme_mc_blob_set(mc, "pc", "r", 1, "x", 1, 60), DME_EDOWN);
    CHECK_INT(dme_mc_lock(&tok, mc, "l", 5, p), DME_EDOWN);
    CHECK_INT(dme_mc_incr(&v, mc, "c", 5), DME_EDOWN);
    CHECK_INT(dme_mc_ping(NULL, mc, p), DME_EDOWN);
    printf("%s, stopped server: get DME_EDOWN in at most %.1f ms; "
           "set+lock+incr+ping %.1f ms\n",
           binary ? "binary" : "ASCII", worst, ms_since(t0));
    CHECK(worst < 1000);

    CHECK_INT(start_server(0), 0);
    t0 = apr_time_now();
    for (i = 0; i < 100 && rv == DME_EDOWN; i++) {
        rv = dme_mc_blob_get(&data, &len, mc, "pc", "r", 1, p);
        if (rv == DME_EDOWN) {
            apr_sleep(apr_time_from_msec(50));
        }
    }
    ms = ms_since(t0);
    printf("  restarted server answers again after %.0f ms\n", ms);
    /* a fresh memcached is empty */
    CHECK_INT(rv, APR_NOTFOUND);
    CHECK(ms < 5000);
    CHECK_INT(dme_mc_blob_set(mc, "pc", "r", 1, "after", 5, 60), APR_SUCCESS);
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "r", 1, p), APR_SUCCESS);
    CHECK(same(data, len, "after", 5));
}

/* A server that takes connections into its backlog and never answers. */
static void test_blackhole(apr_pool_t *p)
{
    int port = 0, s = listener(&port, 1);
    dme_mc_t *mc = open_mc(config_for(port, 0, p), 4, p);
    const char *data, *tok, *report = NULL;
    char *val = pattern(3 * DME_MC_CHUNK, 30, p);
    apr_size_t len;
    apr_uint64_t v;
    apr_time_t t0;
    double get_ms, set_ms, rest_ms;

    if (!mc || s < 0) {
        CHECK(0);
        return;
    }
    t0 = apr_time_now();
    CHECK_INT(dme_mc_blob_get(&data, &len, mc, "pc", "k", 1, p), DME_EDOWN);
    get_ms = ms_since(t0);
    t0 = apr_time_now();
    CHECK_INT(dme_mc_blob_set(mc, "pc", "k", 1, val, 3 * DME_MC_CHUNK, 60),
              DME_EDOWN);
    set_ms = ms_since(t0);
    t0 = apr_time_now();
    CHECK_INT(dme_mc_lock(&tok, mc, "l", 5, p), DME_EDOWN);
    CHECK_INT(dme_mc_incr(&v, mc, "c", 5), DME_EDOWN);
    CHECK_INT(dme_mc_get_u64(&v, mc, "c"), DME_EDOWN);
    CHECK_INT(dme_mc_ping(&report, mc, p), DME_EDOWN);
    rest_ms = ms_since(t0);
    printf("blackhole: get %.1f ms, 1.5 MB set %.1f ms, "
           "lock+incr+get+ping %.1f ms\n",
           get_ms, set_ms, rest_ms);
    CHECK(get_ms < 1000);
    CHECK(set_ms < 1000);
    CHECK(rest_ms < 1000);
    CHECK(report && strstr(report, "down"));
    close(s);
}

int main(void)
{
    apr_pool_t *p;
    int i, up = 1;

    apr_initialize();
    apr_pool_create(&p, NULL);
    guard();
    test_create(p);
    for (i = 0; i < NSERVERS; i++) {
        srv[i].port = free_port();
        if (start_server(i) != 0) {
            fprintf(stderr, "test_mc: cannot start memcached\n");
            up = 0;
        }
    }
    CHECK(up);
    if (up) {
        test_protocol(0, p);
        test_protocol(1, p);
        test_two_servers(p);
        test_restart(0, p);
        test_restart(1, p);
        test_blackhole(p);
    }
    stop_all();
    apr_pool_destroy(p);
    apr_terminate();
    return unit_done("test_mc");
}
