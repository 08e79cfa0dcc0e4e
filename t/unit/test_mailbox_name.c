/* Unit tests: UTF-8 folder names to IMAP's modified UTF-7. */
#include "unit.h"
#include "dme_imap.h"

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    CHECK_STR(dme_imap_mailbox_name("INBOX", p), "\"INBOX\"");
    /* RFC 3501's own example: "~peter/mail/台北/日本語" */
    CHECK_STR(dme_imap_mailbox_name("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
                                    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                    p),
              "\"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"");
    CHECK_STR(dme_imap_mailbox_name("Entw\xc3\xbc"
                                    "rfe",
                                    p),
              "\"Entw&APw-rfe\"");
    CHECK_STR(dme_imap_mailbox_name("A&B", p), "\"A&-B\"");
    CHECK_STR(dme_imap_mailbox_name("say \"hi\" \\", p),
              "\"say \\\"hi\\\" \\\\\"");
    /* a character outside the BMP becomes a surrogate pair */
    CHECK_STR(dme_imap_mailbox_name("\xf0\x9f\x98\x80", p), "\"&2D3eAA-\"");
    CHECK(dme_imap_mailbox_name("bad\xff", p) == NULL);
    CHECK(dme_imap_mailbox_name("over\xc0\xaflong", p) == NULL);
    CHECK(dme_imap_mailbox_name("cr\r", p) == NULL);
    CHECK(dme_imap_mailbox_name("\xed\xa0\x80", p) == NULL); /* surrogate */
    return unit_done("test_mailbox_name");
}
