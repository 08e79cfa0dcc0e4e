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
    int smime_harvest; /* -1: the server's DMESmimeHarvest */
} dme_dir_conf;

/* Per-server (process-wide for the main server) state. */
typedef struct dme_srv_conf {
    int precache;                /* -1 unset, 0 off, 1 on */
    apr_interval_time_t max_age; /* of a pre-cache before a merge */
    const char *memcached;       /* libmemcached configuration string */
    apr_interval_time_t poll;    /* STATUS poll interval, 0: no polling */
    int warning_accepted;        /* technical user may pre-cache */
    apr_interval_time_t hb_min, hb_max; /* long-poll heartbeat bounds */
    int smime_harvest;                  /* -1 unset, 0 off, 1 on */
    int push_private;          /* client push URLs may be private (-1, 0, 1) */
    const char *smime_ca_file; /* trust anchors; NULL: system bundle */
    int smime_max;             /* certificates per lookup answer */
    const char *mail_domain;   /* users' addresses are user@domain */
    struct dme_smime_trust_t *smime_trust; /* loaded in post_config */
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
int dme_conf_precache(const dme_srv_conf *c);
int dme_conf_smime_harvest(const dme_srv_conf *c);
/* Harvesting for requests under dc: its own setting, else the server's. */
int dme_conf_harvest_here(const dme_dir_conf *dc, const dme_srv_conf *sc);
int dme_conf_smime_max(const dme_srv_conf *c);
apr_interval_time_t dme_conf_max_age(const dme_srv_conf *c);
apr_interval_time_t dme_conf_hb_min(const dme_srv_conf *c);
apr_interval_time_t dme_conf_hb_max(const dme_srv_conf *c);

/* Shared by every child through anonymous shared memory. */
typedef struct dme_counters_t {
    apr_uint32_t mail_down; /* non-zero while the mail system is down */
    apr_uint32_t mc_down;   /* non-zero while memcached is down */
    apr_uint32_t builds, merges, appends, hits, misses, fallbacks;
    apr_uint32_t status_hits, pushes, push_failures, wakeups;
    apr_uint32_t imap_commands; /* sent by syncs, for measurements */
} dme_counters_t;

dme_counters_t *dme_glue_counters(void);

/* The handler, in dme_handler.c, and what other files answer with: a
 * short XML error body, and a body read whole (413 past max bytes). */
int dme_handler(request_rec *r);
int dme_send_error(request_rec *r, int status, const char *code,
                   const char *text);
int dme_read_body(char **buf, apr_size_t *len, request_rec *r, apr_off_t max);

/* rv for a log line: the project's own codes become 0. */
apr_status_t dme_log_rv(apr_status_t rv);

/* The process's IMAP pool, shared by every virtual host. */
dme_imap_pool_t *dme_glue_imap_pool(void);

/* The process's memcached handle, NULL when pre-caching is off. */
struct dme_mc_t *dme_glue_mc(void);

/* Mailbox login for a user under a directory config; *needs_password
 * when the user's stored password must still be filled in. DECLINED to
 * go on, else an HTTP status. */
int dme_login_for(dme_imap_login_t *l, int *needs_password,
                  const dme_dir_conf *dc, const char *user, apr_pool_t *p);

/* Background work, dme_bg.c: queue a pre-cache build of a folder. */
void dme_bg_queue_build(server_rec *s, const dme_dir_conf *dc, const char *user,
                        const char *folder);
/* Per child: start the build worker; post_config: the STATUS poll. */
void dme_bg_child_init(apr_pool_t *p, server_rec *s);
int dme_bg_post_config(apr_pool_t *pconf, server_rec *s);
void dme_bg_register_hooks(void);

/* Logical memcached names shared by the sync path and the builder. */
const char *dme_pc_key(apr_size_t *len, const char *user, const char *folder,
                       apr_pool_t *p);
const char *dme_gen_name(const char *user, const char *folder, apr_pool_t *p);

/* dme_smime_glue.c: harvest and lookup of S/MIME certificates. */
typedef struct dme_harvest_result_t {
    const char *reason;      /* no-signature ... stored, already-stored */
    const char *fingerprint; /* of the signer's certificate, or NULL */
} dme_harvest_result_t;
apr_status_t dme_harvest(apr_array_header_t **out, server_rec *s, void *db,
                         const char *user, const char *msg, apr_size_t len,
                         apr_pool_t *p);
int dme_harvest_run(request_rec *r, void *db, const char *msg, apr_size_t len);
int dme_certs_lookup(request_rec *r, void *db, const char *addresses);

/* dme_admin.c: admin pages. */
apr_status_t dme_admin_init(void);
int dme_admin_certs(request_rec *r, void *db, const char *base);

/* dme_push.c: the push endpoint and the long-poll. */
int dme_push_handle(request_rec *r, const dme_dir_conf *dc, void *db);
int dme_wait_run(request_rec *r, const char *client, const char *folder);

#endif
