/* Unit tests for lib/dme_mime: header decoding, previews, S/MIME kinds. */
#include <stdlib.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "unit.h"
#include "dme_mime.h"

/* Real S/MIME samples live outside the repository; see its README. */
#define CORPUS_DEFAULT "/work/shared/corpus/smime"

static apr_pool_t *pool;

static dme_mime_summary_t *sum_n(const char *mail, apr_size_t len,
                                 apr_size_t max)
{
    dme_mime_summary_t *s = NULL;
    apr_status_t rv = dme_mime_summarize(&s, mail, len, max, pool);

    CHECK_INT(rv, APR_SUCCESS);
    CHECK(s != NULL);
    return s;
}

static dme_mime_summary_t *sum(const char *mail)
{
    return sum_n(mail, strlen(mail), 200);
}

/* Strict UTF-8 with no control characters: what every output must be. */
static int clean_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    while (*u) {
        int n = (*u < 0x80)                 ? 0
                : (*u >= 0xC2 && *u < 0xE0) ? 1
                : (*u >= 0xE0 && *u < 0xF0) ? 2
                : (*u >= 0xF0 && *u < 0xF5) ? 3
                                            : -1;

        if (n < 0 || *u < 0x20 || *u == 0x7F) {
            return 0;
        }
        for (u++; n > 0; n--, u++) {
            if ((*u & 0xC0) != 0x80) {
                return 0;
            }
        }
    }
    return 1;
}

static void test_headers(void)
{
    dme_mime_summary_t *s =
        sum("From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.org>\r\n"
            "To: a@example.org, \"B, Bea\" <b@example.org>\r\n"
            "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
            "Message-ID: <abc.123@example.org>\r\n"
            "Date: Mon, 26 Jan 2026 14:38:03 +0000\r\n"
            "\r\n"
            "Hallo.\r\n");

    CHECK_STR(s->from, "J\xc3\xb6rg M\xc3\xbcller <jm@example.org>");
    CHECK_STR(s->to, "a@example.org, \"B, Bea\" <b@example.org>");
    CHECK_STR(s->subject, "Gr\xc3\xbc\xc3\x9f"
                          "e aus K\xc3\xb6ln");
    CHECK_STR(s->message_id, "abc.123@example.org");
    CHECK_INT(s->date, apr_time_from_sec(1769438283));
    CHECK_STR(s->preview, "Hallo.");
    CHECK_STR(s->smime, "none");
    CHECK_INT(s->has_attachments, 0);
}

/* A subject in two B-encoded words; in the second subject the split falls
 * inside a character, so the decoder must join the bytes first. */
static void test_split_words(void)
{
    dme_mime_summary_t *s = sum(
        "Subject: =?UTF-8?B?SsO2cmcg?=\r\n =?UTF-8?B?TcO8bGxlcg==?=\r\n\r\n");

    CHECK_STR(s->subject, "J\xc3\xb6rg M\xc3\xbcller");
    CHECK_STR(s->from, "");
    CHECK_STR(s->to, "");
    CHECK_STR(s->message_id, "");
    CHECK_INT(s->date, 0);
    CHECK_STR(s->preview, "");

    s = sum("Subject: =?utf-8?b?R3LD?= =?utf-8?b?vMOfZSBhdXMgS8O2bG4=?=\r\n"
            "\r\nx");
    CHECK_STR(s->subject, "Gr\xc3\xbc\xc3\x9f"
                          "e aus K\xc3\xb6ln");
}

static void test_bad_headers(void)
{
    dme_mime_summary_t *s = sum("Subject: a\x01\x7f b \xff\xfe c\r\n"
                                "Date: not a date\r\n\r\nx");

    CHECK(clean_utf8(s->subject));
    CHECK(strstr(s->subject, "a") == s->subject);
    CHECK(strchr(s->subject, 0x01) == NULL);
    CHECK_INT(s->date, 0);
    CHECK_STR(s->preview, "x");
}

static void test_base64_cp1252(void)
{
    dme_mime_summary_t *s = sum(
        "Subject: b64\r\n"
        "Content-Type: text/plain; charset=windows-1252\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "R3L832UgYXVzIEv2bG46IDEwMCCAIGltIEL8cm8uDQpad2VpdGUgWmVpbGUuDQo=\r\n");

    /* 0x80 is the euro sign only in windows-1252, not in ISO-8859-1 */
    CHECK_STR(s->preview, "Gr\xc3\xbc\xc3\x9f"
                          "e aus K\xc3\xb6ln: 100 "
                          "\xe2\x82\xac im B\xc3\xbcro. Zweite Zeile.");
}

static void test_undeclared_8bit(void)
{
    dme_mime_summary_t *s = sum("Subject: x\r\n\r\nK\xf6ln \x80 5\r\n");

    CHECK_STR(s->preview, "K\xc3\xb6ln \xe2\x82\xac 5");
}

static void test_quoted_printable(void)
{
    dme_mime_summary_t *s = sum(
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Ein langer Satz, der hier wei=\r\n"
        "ch umbricht, mit =C3=A4 und=09Tab\r\n\r\n\r\n   zweiter  Absatz=\r\n");

    CHECK_STR(s->preview, "Ein langer Satz, der hier weich umbricht, mit "
                          "\xc3\xa4 und Tab zweiter Absatz");
}

static void test_alternative(void)
{
    dme_mime_summary_t *s =
        sum("Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/html\r\n\r\n<p>the html</p>\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nthe plain text\r\n"
            "--b1--\r\n");

    CHECK_STR(s->preview, "the plain text");
    CHECK_INT(s->has_attachments, 0);
}

static void test_html_only(void)
{
    dme_mime_summary_t *s =
        sum("Content-Type: text/html; charset=\"iso-8859-1\"\r\n\r\n"
            "<!DOCTYPE html><html><head><title>Title</title>\r\n"
            "<style type=\"text/css\">p { color: red; }</style>"
            "<script>var a = '<b>';</script></head>\r\n"
            "<body><!-- note <p>hidden</p> --><p class=\"x>y\">Hello&nbsp;"
            "<b>wor</b>ld &amp; &lt;you&gt; &#8364;&#x41; &bogus; Gr\xfc\xdf"
            "e</p><br>next<div>line</div></body></html>\r\n");

    CHECK_STR(s->preview, "Hello world & <you> \xe2\x82\xac"
                          "A &bogus; "
                          "Gr\xc3\xbc\xc3\x9f"
                          "e next line");
}

static const char mixed[] =
    "From: a@example.org\r\n"
    "Subject: report\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    "preamble\r\n"
    "--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "See the report attached.\r\n"
    "--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\n"
    "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9G\r\n"
    "--outer--\r\n";

static void test_attachment(void)
{
    dme_mime_summary_t *s = sum(mixed);

    CHECK_INT(s->has_attachments, 1);
    CHECK_STR(s->preview, "See the report attached.");
    s = sum("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
            "--o\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
            "--o\r\nContent-Type: image/png; name=pic.png\r\n\r\nxx\r\n"
            "--o--\r\n");
    CHECK_INT(s->has_attachments, 1);
    /* a text part sent as an attachment is no preview */
    s = sum("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
            "--o\r\nContent-Type: text/plain\r\n"
            "Content-Disposition: attachment; filename=a.txt\r\n\r\nfile\r\n"
            "--o\r\nContent-Type: text/html\r\n\r\n<i>body</i>\r\n--o--\r\n");
    CHECK_INT(s->has_attachments, 1);
    CHECK_STR(s->preview, "body");
}

static const char b64[] = "Content-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "w6TDtsO8";

static void test_truncated(void)
{
    const char *cut = strstr(mixed, "JVBER");
    dme_mime_summary_t *s = sum_n(mixed, cut + 10 - mixed, 200);

    CHECK_STR(s->subject, "report");
    CHECK_STR(s->preview, "See the report attached.");
    CHECK_INT(s->has_attachments, 1);

    /* cut inside the text itself */
    cut = strstr(mixed, "report attached");
    s = sum_n(mixed, cut + 3 - mixed, 200);
    CHECK_STR(s->preview, "See the rep");

    /* cut inside a header line: earlier headers still count */
    cut = strstr(mixed, "Subject: rep");
    s = sum_n(mixed, cut + 5 - mixed, 200);
    CHECK_STR(s->from, "a@example.org");
    CHECK_STR(s->subject, "");

    /* cut inside a base64 body and inside a multibyte character */
    s = sum_n(b64, sizeof(b64) - 2, 200);
    CHECK_STR(s->preview, "\xc3\xa4");
    s = sum_n("Subject: x\r\n\r\nab\xc3\xa4\xc3", 19, 200);
    CHECK_STR(s->preview, "ab\xc3\xa4");
}

static void test_preview_cap(void)
{
    /* 3 umlauts of two bytes, a space, euro signs of three bytes */
    const char *m = "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                    "\xc3\xa4\xc3\xb6\xc3\xbc  \xe2\x82\xac\xe2\x82\xac"
                    "\xe2\x82\xac\xf0\x9f\x98\x80 end\r\n";
    dme_mime_summary_t *s = sum_n(m, strlen(m), 5);

    CHECK_STR(s->preview, "\xc3\xa4\xc3\xb6\xc3\xbc \xe2\x82\xac");
    s = sum_n(m, strlen(m), 7);
    CHECK_STR(s->preview, "\xc3\xa4\xc3\xb6\xc3\xbc \xe2\x82\xac\xe2\x82\xac"
                          "\xe2\x82\xac");
    s = sum_n(m, strlen(m), 9);
    CHECK_INT(strlen(s->preview), 6 + 1 + 9 + 4);
    /* a cut that lands on the space leaves no trailing space */
    s = sum_n(m, strlen(m), 4);
    CHECK_STR(s->preview, "\xc3\xa4\xc3\xb6\xc3\xbc");
    s = sum_n(m, strlen(m), 0);
    CHECK_STR(s->preview, "");
}

static void test_smime_strings(void)
{
    dme_mime_summary_t *s = sum(
        "From: a@example.org\r\nSubject: secret\r\n"
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;"
        " name=smime.p7m\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=smime.p7m\r\n\r\n"
        "MIAGCSqGSIb3DQEHA6CAMIACAQAxggFJMIIBRQIBADAtMCAxHjAcBgNVBAMMFUFs\r\n");

    CHECK_STR(s->smime, "encrypted");
    CHECK_STR(s->subject, "secret");
    CHECK_INT(s->has_attachments, 0);
    CHECK_STR(s->preview, "");

    s = sum("Content-Type: application/x-pkcs7-mime; name=\"smime.p7m\"\r\n"
            "\r\nxx\r\n");
    CHECK_STR(s->smime, "encrypted");
    s = sum("Content-Type: application/pkcs7-mime; "
            "smime-type=authEnveloped-data\r\n\r\nxx\r\n");
    CHECK_STR(s->smime, "encrypted");
    s = sum("Content-Type: application/pkcs7-mime; smime-type=certs-only;"
            " name=smime.p7c\r\n\r\nxx\r\n");
    CHECK_STR(s->smime, "none");
    s = sum("Content-Type: multipart/signed; boundary=s; "
            "protocol=\"application/x-pkcs7-signature\"\r\n\r\n"
            "--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
            "--s\r\nContent-Type: application/x-pkcs7-signature; "
            "name=smime.p7s\r\n\r\nxx\r\n--s--\r\n");
    CHECK_STR(s->smime, "signed");
    CHECK_STR(s->preview, "signed text");
    CHECK_INT(s->has_attachments, 0);
    /* an OpenPGP signature is not S/MIME */
    s = sum("Content-Type: multipart/signed; boundary=s; "
            "protocol=\"application/pgp-signature\"\r\n\r\n"
            "--s\r\nContent-Type: text/plain\r\n\r\nx\r\n--s--\r\n");
    CHECK_STR(s->smime, "none");
}

static char *slurp(const char *dir, const char *name, apr_size_t *len)
{
    char *path = apr_pstrcat(pool, dir, "/", name, NULL), *buf;
    FILE *f = fopen(path, "rb");
    long n;

    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = apr_palloc(pool, n + 1);
    *len = fread(buf, 1, n, f);
    fclose(f);
    return buf;
}

static void test_smime_corpus(void)
{
    const char *dir = getenv("DME_SMIME_CORPUS");
    dme_mime_summary_t *s;
    apr_size_t len = 0;
    char *m;

    dir = dir ? dir : CORPUS_DEFAULT;
    m = slurp(dir, "cc_alice.dsig.SHA256.multipart.eml", &len);
    if (!m) {
        printf("test_mime: S/MIME corpus %s absent, samples skipped\n", dir);
        return;
    }
    s = sum_n(m, len, 200);
    CHECK_STR(s->smime, "signed");
    CHECK_STR(s->from, "Alice@example.com");
    CHECK_STR(s->subject, "clear-signed sig.SHA256");
    CHECK_STR(s->preview, "This is a test message from Alice to Bob.");
    CHECK_INT(s->has_attachments, 0);

    m = slurp(dir, "cc_alice.sig.SHA256.opaque.eml", &len);
    CHECK(m != NULL);
    if (m) {
        s = sum_n(m, len, 200);
        CHECK_STR(s->smime, "signed");
        CHECK_STR(s->subject, "opaque-signed sig.SHA256");
        CHECK_STR(s->preview, "");
    }
}

static const char junk[] =
    "X-Junk: \xff\x00\x01\r\nContent-Type: multipart/mixed\r\n\r\n\x00\x01";
static const char junk_body[] = "Content-Type: text/plain; charset=utf-8\r\n"
                                "\r\n\x01\x02\xc3\x28\xed\xa0\x80z\x00y";

static void test_garbage(void)
{
    static const char bin[] = "\x00\x01\x02\xff\xfe\x80 \x00\n\x00";
    dme_mime_summary_t *s = (dme_mime_summary_t *)1;

    CHECK_INT(dme_mime_summarize(&s, bin, sizeof(bin), 10, pool), DME_EPROTO);
    CHECK(s == NULL);
    CHECK_INT(dme_mime_summarize(&s, "", 0, 10, pool), DME_EPROTO);
    CHECK_INT(dme_mime_summarize(NULL, "x", 1, 10, pool), APR_EINVAL);

    /* headers that parse but carry nothing useful */
    s = sum_n(junk, sizeof(junk) - 1, 10);
    CHECK_STR(s->subject, "");
    CHECK_STR(s->smime, "none");
    CHECK(clean_utf8(s->preview));

    /* a body of binary junk still gives clean text */
    s = sum_n(junk_body, sizeof(junk_body) - 1, 50);
    CHECK_STR(s->preview, "\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                          "z y");
    CHECK(clean_utf8(s->preview));
}

typedef struct {
    apr_pool_t *p;
    int bad;
} job_t;

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    job_t *job = data;
    int i;

    for (i = 0; i < 200; i++) {
        dme_mime_summary_t *s;

        if (dme_mime_summarize(&s, mixed, sizeof(mixed) - 1, 40, job->p) ||
            strcmp(s->preview, "See the report attached.") ||
            !s->has_attachments) {
            job->bad++;
        }
        apr_pool_clear(job->p);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Pools are made before the threads start: APR's own pool creation is
 * not what this test is about. */
static void test_threads(void)
{
    apr_thread_t *t[4];
    job_t job[4];
    apr_status_t rv;
    int i;

    for (i = 0; i < 4; i++) {
        apr_pool_create(&job[i].p, pool);
        job[i].bad = 0;
    }
    for (i = 0; i < 4; i++) {
        CHECK_INT(apr_thread_create(&t[i], NULL, worker, &job[i], pool), 0);
    }
    for (i = 0; i < 4; i++) {
        apr_thread_join(&rv, t[i]);
        CHECK_INT(job[i].bad, 0);
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    CHECK_INT(dme_mime_init(), APR_SUCCESS);
    CHECK_INT(dme_mime_init(), APR_SUCCESS);

    test_headers();
    test_split_words();
    test_bad_headers();
    test_base64_cp1252();
    test_undeclared_8bit();
    test_quoted_printable();
    test_alternative();
    test_html_only();
    test_attachment();
    test_truncated();
    test_preview_cap();
    test_smime_strings();
    test_smime_corpus();
    test_garbage();
    test_threads();

    apr_pool_destroy(pool);
    apr_terminate();
    return unit_done("test_mime");
}
