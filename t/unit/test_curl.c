/* Unit tests: which addresses a client-supplied URL may reach. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include "unit.h"
#include "dme_curl.h"

static int v4(const char *ip)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    return dme_curl_is_private_addr(&a);
}

static int v6(const char *ip)
{
    struct sockaddr_in6 a;

    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return dme_curl_is_private_addr(&a);
}

int main(void)
{
    long status = 0;

    apr_initialize();
    dme_curl_global_init();
    CHECK(v4("127.0.0.1"));
    CHECK(v4("10.1.2.3"));
    CHECK(v4("172.16.0.1"));
    CHECK(v4("172.31.255.255"));
    CHECK(!v4("172.32.0.1"));
    CHECK(v4("192.168.1.1"));
    CHECK(v4("169.254.169.254"));
    CHECK(v4("100.64.0.1"));
    CHECK(v4("0.0.0.0"));
    CHECK(v4("224.0.0.1"));
    CHECK(!v4("93.184.216.34"));
    CHECK(!v4("8.8.8.8"));
    CHECK(v6("::1"));
    CHECK(v6("::"));
    CHECK(v6("fe80::1"));
    CHECK(v6("fd00::1"));
    CHECK(v6("::ffff:127.0.0.1"));
    CHECK(v6("::ffff:10.0.0.1"));
    CHECK(!v6("2001:4860:4860::8888"));
    CHECK(!v6("::ffff:8.8.8.8"));
    /* A POST to a private address is refused before any connection. */
    CHECK_INT(dme_curl_post(&status, "http://127.0.0.1:9/hook",
                            "application/json", "{}", 2, apr_time_from_sec(2),
                            0),
              APR_EACCES);
    CHECK_INT(dme_curl_post(&status, "http://localhost:9/hook",
                            "application/json", "{}", 2, apr_time_from_sec(2),
                            0),
              APR_EACCES);
    /* Allowed, it tries and finds nothing listening on the discard port. */
    CHECK_INT(dme_curl_post(&status, "http://127.0.0.1:9/hook",
                            "application/json", "{}", 2, apr_time_from_sec(2),
                            1),
              DME_EDOWN);
    return unit_done("test_curl");
}
