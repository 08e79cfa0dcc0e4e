/* IMAP client of the core: per-process connection reuse and the few
 * operations sync needs. Commands go over a raw connection that libcurl
 * logged in (dme_curl.c); responses are read with the strict parser of
 * dme_imap_parse.c.
 */
#ifndef DME_IMAP_H
#define DME_IMAP_H

#include "dme.h"
#include "dme_note.h"
#include "dme_imap_parse.h"
#include <apr_hash.h>

typedef struct dme_imap_t dme_imap_t;
typedef struct dme_imap_pool_t dme_imap_pool_t;

/* Who logs in where. With a technical user, either user is
 * "<mailbox-user><separator><master>" (Dovecot style) or authzid names the
 * mailbox user (SASL PLAIN authorisation id). */
typedef struct dme_imap_login_t {
    const char *url;
    const char *user;
    const char *password;
    const char *authzid;
    const char *ca_file;
    apr_interval_time_t timeout; /* per login and per command */
} dme_imap_login_t;

/* A per-process pool of logged-in connections, keyed by login. At most
 * max_idle wait idle; an idle one older than idle_ttl is closed. */
apr_status_t dme_imap_pool_create(dme_imap_pool_t **pl, int max_idle,
                                  apr_interval_time_t idle_ttl, apr_pool_t *p);

/* Take a connection for this login: an idle one if it still looks
 * healthy, or a new one. DME_EAUTH: login refused; DME_EDOWN: server
 * unreachable. *errmsg (may be NULL) gets a short reason. */
apr_status_t dme_imap_acquire(dme_imap_t **s, const char **errmsg,
                              dme_imap_pool_t *pl,
                              const dme_imap_login_t *login, apr_pool_t *p);

/* Give it back; a connection that saw an error is closed instead. */
void dme_imap_release(dme_imap_pool_t *pl, dme_imap_t *s);

/* Whether the last acquire reused an idle connection (for tests/logs). */
int dme_imap_is_reused(const dme_imap_t *s);

/* Send one command (without tag and CRLF), read to its tagged end.
 * *resps holds every response, the tagged one last. A tagged NO gives
 * APR_EGENERAL (DME_ENOMBOX from SELECT/EXAMINE), BAD gives DME_EPROTO;
 * I/O faults give DME_EDOWN and mark the connection broken. */
apr_status_t dme_imap_cmd(apr_array_header_t **resps, dme_imap_t *s,
                          const char *cmd, apr_pool_t *p);

/* A folder name in UTF-8 as an IMAP mailbox argument: modified UTF-7
 * (RFC 3501 5.1.3), quoted. NULL for invalid UTF-8 or control
 * characters. */
const char *dme_imap_mailbox_name(const char *utf8, apr_pool_t *p);

/* EXAMINE folder read-only. DME_ENOMBOX if it does not exist,
 * APR_EINVAL if the name cannot be sent (CR, LF, NUL, too long). */
apr_status_t dme_imap_examine(apr_uint32_t *uidvalidity, apr_uint32_t *exists,
                              dme_imap_t *s, const char *folder, apr_pool_t *p);

/* Notes of every mail in folder with an internal date on or after the
 * calendar day of `since` (IMAP SEARCH SINCE). */
apr_status_t dme_imap_list_notes(dme_notes_t **ns, dme_imap_t *s,
                                 const char *folder, apr_time_t since,
                                 apr_pool_t *p);

/* The first `bytes` bytes of each listed mail (the folder must be the one
 * examined last). Returns an array of dme_imap_fetch_t* in any order;
 * mails gone meanwhile are simply absent. */
apr_status_t dme_imap_fetch_heads(apr_array_header_t **fetches, dme_imap_t *s,
                                  const apr_uint32_t *uids, int n,
                                  apr_size_t bytes, apr_pool_t *p);

/* Notes of the mails with a UID above after_uid (the folder must be the
 * one examined last). One UID FETCH whatever the folder's size. */
apr_status_t dme_imap_list_newer(dme_notes_t *ns, dme_imap_t *s,
                                 const char *folder, apr_uint32_t after_uid,
                                 apr_pool_t *p);

/* Current flags of the listed mails (examined folder), joined as in
 * dme_note_flags_join, in a hash from apr_uint32_t uid to const char *. */
apr_status_t dme_imap_fetch_flags(apr_hash_t **flags, dme_imap_t *s,
                                  const apr_uint32_t *uids, int n,
                                  apr_pool_t *p);

typedef struct dme_imap_status_t {
    apr_uint32_t uidvalidity, uidnext, messages;
    apr_uint64_t highestmodseq; /* 0 when the server has no CONDSTORE */
} dme_imap_status_t;

/* One STATUS call; asks HIGHESTMODSEQ only where CONDSTORE is offered.
 * DME_ENOMBOX if the folder does not exist. */
apr_status_t dme_imap_status(dme_imap_status_t *st, dme_imap_t *s,
                             const char *folder, apr_pool_t *p);

/* Commands sent on this connection so far (for measurements). */
unsigned int dme_imap_commands(const dme_imap_t *s);

/* One whole mail byte-exact. APR_NOTFOUND if there is no such uid. */
apr_status_t dme_imap_fetch_message(const char **data, apr_size_t *len,
                                    dme_imap_t *s, apr_uint32_t uid,
                                    apr_pool_t *p);

#endif
