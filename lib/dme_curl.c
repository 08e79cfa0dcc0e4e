/* libcurl home: IMAP login with CONNECT_ONLY, then raw send/recv. */
#include <poll.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <stdlib.h>
#include <apr_strings.h>
#include <curl/curl.h>

#include "dme_curl.h"

struct dme_curl_conn_t {
    CURL *easy;
    curl_socket_t sock;
};

apr_status_t dme_curl_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS
                                                             : APR_EGENERAL;
}

static apr_status_t map_code(CURLcode rc)
{
    switch (rc) {
        case CURLE_OK:
            return APR_SUCCESS;
        case CURLE_LOGIN_DENIED:
            return DME_EAUTH;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
            return APR_EINVAL;
        default:
            return DME_EDOWN;
    }
}

static apr_status_t set_opts(CURL *e, const dme_curl_imap_opts_t *o)
{
    long ms = (long)apr_time_as_msec(o->timeout);
    CURLcode rc = CURLE_OK;

    /* Each setopt is checked: a silently ignored option could mean an
     * unencrypted or unbounded connection. */
#define SET(opt, val)                                                          \
    if (rc == CURLE_OK)                                                        \
    rc = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, o->url);
    SET(CURLOPT_PROTOCOLS_STR, "imap,imaps");
    SET(CURLOPT_CONNECT_ONLY, 1L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    SET(CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    SET(CURLOPT_USERNAME, o->user);
    SET(CURLOPT_PASSWORD, o->password);
    if (o->authzid) {
        SET(CURLOPT_SASL_AUTHZID, o->authzid);
        SET(CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN");
    }
    if (o->ca_file) {
        SET(CURLOPT_CAINFO, o->ca_file);
    }
#undef SET
    return rc == CURLE_OK ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t dme_curl_imap_open(dme_curl_conn_t **c, const char **errmsg,
                                const dme_curl_imap_opts_t *o, apr_pool_t *p)
{
    char err[CURL_ERROR_SIZE] = "";
    dme_curl_conn_t *conn;
    CURLcode rc;
    apr_status_t rv;
    CURL *e;

    *c = NULL;
    if (errmsg) {
        *errmsg = NULL;
    }
    e = curl_easy_init();
    if (!e) {
        return APR_ENOMEM;
    }
    rv = set_opts(e, o);
    if (rv == APR_SUCCESS) {
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
        rc = curl_easy_perform(e);
        rv = map_code(rc);
        if (rv != APR_SUCCESS && errmsg) {
            *errmsg = apr_pstrdup(p, err[0] ? err : curl_easy_strerror(rc));
        }
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    }
    if (rv != APR_SUCCESS) {
        curl_easy_cleanup(e);
        return rv;
    }
    conn = calloc(1, sizeof(*conn));
    if (!conn) {
        curl_easy_cleanup(e);
        return APR_ENOMEM;
    }
    conn->easy = e;
    if (curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &conn->sock) != CURLE_OK ||
        conn->sock == CURL_SOCKET_BAD) {
        dme_curl_close(conn);
        return DME_EDOWN;
    }
    *c = conn;
    return APR_SUCCESS;
}

/* Wait until the socket is ready for events or the deadline passes. */
static apr_status_t wait_sock(dme_curl_conn_t *c, short events,
                              apr_time_t deadline)
{
    struct pollfd pfd;
    apr_time_t left = deadline - apr_time_now();
    int n;

    if (left <= 0) {
        return DME_EDOWN;
    }
    pfd.fd = c->sock;
    pfd.events = events;
    pfd.revents = 0;
    n = poll(&pfd, 1, (int)apr_time_as_msec(left) + 1);
    return n > 0 ? APR_SUCCESS : DME_EDOWN;
}

apr_status_t dme_curl_send(dme_curl_conn_t *c, const char *data, apr_size_t len,
                           apr_interval_time_t timeout)
{
    apr_time_t deadline = apr_time_now() + timeout;
    size_t sent;
    CURLcode rc;

    while (len > 0) {
        rc = curl_easy_send(c->easy, data, len, &sent);
        if (rc == CURLE_AGAIN) {
            if (wait_sock(c, POLLOUT, deadline) != APR_SUCCESS) {
                return DME_EDOWN;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            return DME_EDOWN;
        }
        data += sent;
        len -= sent;
    }
    return APR_SUCCESS;
}

apr_status_t dme_curl_recv(apr_size_t *got, dme_curl_conn_t *c, char *buf,
                           apr_size_t cap, apr_interval_time_t timeout)
{
    apr_time_t deadline = apr_time_now() + timeout;
    size_t n = 0;
    CURLcode rc;

    *got = 0;
    for (;;) {
        /* Ask curl first: TLS may hold decrypted bytes the socket no
         * longer signals. */
        rc = curl_easy_recv(c->easy, buf, cap, &n);
        if (rc == CURLE_OK) {
            if (n == 0) {
                return DME_EDOWN; /* orderly close */
            }
            *got = n;
            return APR_SUCCESS;
        }
        if (rc != CURLE_AGAIN) {
            return DME_EDOWN;
        }
        if (wait_sock(c, POLLIN, deadline) != APR_SUCCESS) {
            return DME_EDOWN;
        }
    }
}

int dme_curl_is_idle_ok(dme_curl_conn_t *c)
{
    struct pollfd pfd;

    pfd.fd = c->sock;
    pfd.events = POLLIN;
    pfd.revents = 0;
    /* Readable or hung up while idle means BYE or a closed socket. */
    return poll(&pfd, 1, 0) == 0;
}

void dme_curl_close(dme_curl_conn_t *c)
{
    if (c) {
        curl_easy_cleanup(c->easy);
        free(c);
    }
}

/* The four bytes of an IPv4 address, network order. */
static int private_v4(const unsigned char *b)
{
    return b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224 ||
           (b[0] == 169 && b[1] == 254) ||
           (b[0] == 172 && (b[1] & 0xf0) == 16) ||
           (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64);
}

int dme_curl_is_private_addr(const void *sa)
{
    sa_family_t family;

    /* read through memcpy: the caller's object is a sockaddr_in or
     * sockaddr_in6, and the compiler may not assume otherwise */
    memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family),
           sizeof(family));
    if (family == AF_INET) {
        struct sockaddr_in in;

        memcpy(&in, sa, sizeof(in));
        return private_v4((const unsigned char *)&in.sin_addr.s_addr);
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 in;
        const unsigned char *b;

        memcpy(&in, sa, sizeof(in));
        b = in.sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&in.sin6_addr)) {
            return private_v4(b + 12);
        }
        return IN6_IS_ADDR_LOOPBACK(&in.sin6_addr) ||
               IN6_IS_ADDR_UNSPECIFIED(&in.sin6_addr) ||
               IN6_IS_ADDR_LINKLOCAL(&in.sin6_addr) ||
               IN6_IS_ADDR_MULTICAST(&in.sin6_addr) || (b[0] & 0xfe) == 0xfc;
    }
    return 1; /* unix sockets and the like: never */
}

/* Refuse the connection before it is made when the address resolved for
 * a client's URL is private. */
static curl_socket_t open_public(void *data, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    int *refused = data;

    if (dme_curl_is_private_addr(&addr->addr)) {
        *refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

/* Count and drop what the server answers, refusing more than 64 KiB. */
static size_t drop_body(char *ptr, size_t size, size_t n, void *data)
{
    apr_size_t *seen = data;

    *seen += size * n;
    return *seen > 65536 ? 0 : size * n;
}

apr_status_t dme_curl_post(long *status, const char *url,
                           const char *content_type, const char *body,
                           apr_size_t len, apr_interval_time_t timeout,
                           int allow_private)
{
    int refused = 0;
    long ms = (long)apr_time_as_msec(timeout);
    struct curl_slist *hdrs = NULL;
    char ct[256];
    apr_size_t seen = 0;
    CURLcode rc = CURLE_OK;
    CURL *e;

    *status = 0;
    e = curl_easy_init();
    if (!e) {
        return APR_ENOMEM;
    }
    apr_snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    hdrs = curl_slist_append(hdrs, ct);
#define SET(opt, val)                                                          \
    if (rc == CURLE_OK)                                                        \
    rc = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    SET(CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_POSTFIELDS, body);
    SET(CURLOPT_POSTFIELDSIZE, (long)len);
    SET(CURLOPT_WRITEFUNCTION, drop_body);
    SET(CURLOPT_WRITEDATA, &seen);
    if (!allow_private) {
        SET(CURLOPT_OPENSOCKETFUNCTION, open_public);
        SET(CURLOPT_OPENSOCKETDATA, &refused);
    }
#undef SET
    if (rc == CURLE_OK) {
        rc = curl_easy_perform(e);
    }
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_OK) {
        return APR_SUCCESS;
    }
    if (refused) {
        return APR_EACCES;
    }
    return map_code(rc) == APR_EINVAL ? APR_EINVAL : DME_EDOWN;
}
