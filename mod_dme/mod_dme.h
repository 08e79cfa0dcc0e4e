/* mod_dme glue: configuration shared by the module's files. */
#ifndef MOD_DME_H
#define MOD_DME_H

#include <httpd.h>
#include <http_config.h>

#include "dme.h"
#include "dme_imap.h"
#include "dme_crypto.h"

extern module AP_MODULE_DECLARE_DATA dme_module;

typedef enum {
    DME_ACCESS_UNSET = -1,
    DME_ACCESS_TECHNICAL = 0, /* one master user reaches every mailbox */
    DME_ACCESS_PASSWORD = 1   /* the user's own password, stored sealed */
} dme_access_e;

/* Per-directory settings; unset is -1 or NULL, defaults come from the
 * getters in mod_dme.c. */
typedef struct dme_dir_conf {
    const char *base; /* the <Location> path, for sub-resources */
    const char *mail_url;
    int access;
    const char *tech_user;
    const char *tech_password; /* read from DMETechnicalPasswordFile */
    int use_authzid;           /* -1, 0: user<sep>master, 1: SASL authzid */
    const char *separator;
    const char *ca_file;
    int window_days;
    int page_size;
    apr_interval_time_t timeout;
    int retry_after;
    apr_off_t max_body;
} dme_dir_conf;

/* Per-server (process-wide for the main server) state. */
typedef struct dme_srv_conf {
    const char *key_file;
    dme_crypto_key_t *key;      /* loaded in post_config when needed */
    dme_imap_pool_t *imap_pool; /* per child process */
} dme_srv_conf;

int dme_conf_window_days(const dme_dir_conf *c);
int dme_conf_page_size(const dme_dir_conf *c);
apr_interval_time_t dme_conf_timeout(const dme_dir_conf *c);
int dme_conf_retry_after(const dme_dir_conf *c);
apr_off_t dme_conf_max_body(const dme_dir_conf *c);
int dme_conf_access(const dme_dir_conf *c);

/* The handler, in dme_handler.c. */
int dme_handler(request_rec *r);

/* The process's IMAP pool, shared by every virtual host. */
dme_imap_pool_t *dme_glue_imap_pool(void);

/* Non-zero while the mail system is known to be down (all processes). */
apr_uint32_t *dme_glue_mail_down(void);

#endif
