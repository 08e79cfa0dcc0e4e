/* mod_dme: module record, directives and process hooks. */
#include <stdlib.h>
#include <unistd.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <ap_config.h>
#include <stdint.h>
#include <errno.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_shm.h>

#include "mod_dme.h"
#include "dme_curl.h"
#include "dme_mime.h"
#include "dme_xml.h"
#include "dme_store.h"
#include "dme_mc.h"
#include "dme_smime.h"

static int password_mode_seen; /* any DMEMailAccess password in config */
static dme_imap_pool_t *imap_pool;
static int harvest_seen;         /* DMESmimeHarvest On in some <Location> */
static int technical_seen;       /* technical-user access configured */
static dme_counters_t *counters; /* shared by all children */
static dme_counters_t counters_local; /* if shared memory failed */
static dme_mc_t *mc;                  /* per child, when pre-caching */

#define DEFAULT_WINDOW_DAYS 14
#define DEFAULT_PAGE_SIZE   100
#define DEFAULT_TIMEOUT_SEC 3
#define DEFAULT_RETRY_AFTER 10
#define DEFAULT_MAX_BODY    65536
#define DEFAULT_KEY_FILE    "dme-password.key"

dme_imap_pool_t *dme_glue_imap_pool(void)
{
    return imap_pool;
}

apr_status_t dme_log_rv(apr_status_t rv)
{
    /* APR's strerror knows nothing of the project's own codes; logged as
     * 0 the line does not start with "APR does not understand this error
     * code" (the message itself says what happened). */
    return rv >= APR_OS_START_USERERR && rv < APR_OS_START_USERERR + 100 ? 0
                                                                         : rv;
}

dme_counters_t *dme_glue_counters(void)
{
    return counters ? counters : &counters_local;
}

struct dme_mc_t *dme_glue_mc(void)
{
    return mc;
}

/* Counters and outage flags in anonymous shared memory, inherited by
 * every child: an outage is logged once by the server, not once per
 * process, and the counters add up over all processes. */
static void make_counters(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;

    counters = NULL;
    rv = apr_shm_create(&shm, sizeof(dme_counters_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_WARNING, rv, s,
            DMELOGNO(
                10005) "no shared memory: counters and outage messages are "
                       "per process");
        return;
    }
    counters = apr_shm_baseaddr_get(shm);
    memset(counters, 0, sizeof(*counters));
}

int dme_conf_window_days(const dme_dir_conf *c)
{
    return c->window_days > 0 ? c->window_days : DEFAULT_WINDOW_DAYS;
}

int dme_conf_page_size(const dme_dir_conf *c)
{
    return c->page_size > 0 ? c->page_size : DEFAULT_PAGE_SIZE;
}

apr_interval_time_t dme_conf_timeout(const dme_dir_conf *c)
{
    return c->timeout > 0 ? c->timeout : apr_time_from_sec(DEFAULT_TIMEOUT_SEC);
}

int dme_conf_retry_after(const dme_dir_conf *c)
{
    return c->retry_after > 0 ? c->retry_after : DEFAULT_RETRY_AFTER;
}

apr_off_t dme_conf_max_body(const dme_dir_conf *c)
{
    return c->max_body > 0 ? c->max_body : DEFAULT_MAX_BODY;
}

int dme_conf_access(const dme_dir_conf *c)
{
    return c->access == DME_ACCESS_UNSET ? DME_ACCESS_TECHNICAL : c->access;
}

int dme_conf_smime_harvest(const dme_srv_conf *c)
{
    return c->smime_harvest == 1;
}

int dme_conf_harvest_here(const dme_dir_conf *dc, const dme_srv_conf *sc)
{
    return dc->smime_harvest != -1 ? dc->smime_harvest == 1
                                   : dme_conf_smime_harvest(sc);
}

int dme_conf_smime_max(const dme_srv_conf *c)
{
    return c->smime_max > 0 ? c->smime_max : 10;
}

int dme_conf_precache(const dme_srv_conf *c)
{
    return c->precache == 1;
}

apr_interval_time_t dme_conf_max_age(const dme_srv_conf *c)
{
    return c->max_age >= 0 ? c->max_age : apr_time_from_sec(1800);
}

apr_interval_time_t dme_conf_hb_min(const dme_srv_conf *c)
{
    return c->hb_min >= 0 ? c->hb_min : apr_time_from_sec(60);
}

apr_interval_time_t dme_conf_hb_max(const dme_srv_conf *c)
{
    return c->hb_max >= 0 ? c->hb_max : apr_time_from_sec(1740);
}

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    dme_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->base = dir;
    c->access = DME_ACCESS_UNSET;
    c->use_authzid = -1;
    c->window_days = -1;
    c->page_size = -1;
    c->timeout = -1;
    c->retry_after = -1;
    c->max_body = -1;
    c->smime_harvest = -1;
    return c;
}

#define MERGE_PTR(f) m->f = add->f ? add->f : base->f
#define MERGE_INT(f) m->f = add->f != -1 ? add->f : base->f

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    dme_dir_conf *base = basev, *add = addv;
    dme_dir_conf *m = apr_pcalloc(p, sizeof(*m));

    MERGE_PTR(base);
    MERGE_PTR(mail_url);
    MERGE_INT(access);
    MERGE_PTR(tech_user);
    MERGE_PTR(tech_password);
    MERGE_INT(use_authzid);
    MERGE_PTR(separator);
    MERGE_PTR(ca_file);
    MERGE_INT(window_days);
    MERGE_INT(page_size);
    MERGE_INT(timeout);
    MERGE_INT(retry_after);
    MERGE_INT(max_body);
    MERGE_INT(smime_harvest);
    return m;
}

static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    dme_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    c->precache = -1;
    c->max_age = -1;
    c->poll = -1;
    c->warning_accepted = -1;
    c->hb_min = -1;
    c->hb_max = -1;
    c->smime_harvest = -1;
    c->smime_max = -1;
    c->push_private = -1;
    return c;
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    dme_srv_conf *base = basev, *add = addv;
    dme_srv_conf *m = apr_pcalloc(p, sizeof(*m));

    MERGE_INT(precache);
    MERGE_INT(max_age);
    MERGE_PTR(memcached);
    MERGE_INT(poll);
    MERGE_INT(warning_accepted);
    MERGE_INT(hb_min);
    MERGE_INT(hb_max);
    MERGE_INT(smime_harvest);
    MERGE_INT(push_private);
    MERGE_PTR(smime_ca_file);
    MERGE_INT(smime_max);
    MERGE_PTR(mail_domain);
    MERGE_PTR(smime_trust);
    MERGE_PTR(key_file);
    return m;
}

/* Parse a whole decimal number in [min, max]; "10x" and "" are refused. */
static const char *parse_long(long *out, cmd_parms *cmd, const char *arg,
                              long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (!*arg || *end || errno || v < min || v > max) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a number from %ld "
                            "to %ld",
                            cmd->cmd->name, arg, min, max);
    }
    *out = v;
    return NULL;
}

static const char *set_mail_server(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;
    apr_uri_t uri;

    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || !uri.scheme ||
        (strcasecmp(uri.scheme, "imap") && strcasecmp(uri.scheme, "imaps")) ||
        !uri.hostname || !*uri.hostname ||
        (uri.path && *uri.path && strcmp(uri.path, "/"))) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not an imap:// or "
                            "imaps:// URL of a server "
                            "(host and optional port only)",
                            cmd->cmd->name, arg);
    }
    c->mail_url = arg;
    return NULL;
}

static const char *set_access(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;

    if (!strcasecmp(arg, "technical")) {
        c->access = DME_ACCESS_TECHNICAL;
        technical_seen = 1;
    } else if (!strcasecmp(arg, "password")) {
        c->access = DME_ACCESS_PASSWORD;
        password_mode_seen = 1;
    } else {
        return apr_psprintf(cmd->pool,
                            "%s: must be 'technical' or "
                            "'password', not '%s'",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_tech_user(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;

    if (!*arg || strpbrk(arg, " \t\r\n\"")) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid user name",
                            cmd->cmd->name, arg);
    }
    c->tech_user = arg;
    technical_seen = 1;
    return NULL;
}

/* The password is read at startup, while the server still runs as root,
 * so the file can stay readable by root alone. */
static const char *set_tech_password_file(cmd_parms *cmd, void *dc,
                                          const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    dme_dir_conf *c = dc;
    apr_file_t *f;
    char buf[512];
    apr_size_t n = sizeof(buf) - 1;
    apr_status_t rv;

    rv = path ? apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool)
              : APR_EBADPATH;
    if (rv == APR_SUCCESS) {
        rv = apr_file_read(f, buf, &n);
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(cmd->pool, "%s: cannot read '%s'", cmd->cmd->name,
                            arg);
    }
    buf[rv == APR_EOF ? 0 : n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!*buf) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' holds no password on its "
                            "first line",
                            cmd->cmd->name, arg);
    }
    c->tech_password = apr_pstrdup(cmd->pool, buf);
    memset(buf, 0, sizeof(buf));
    return NULL;
}

static const char *set_tech_login(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;

    if (!strcasecmp(arg, "separator")) {
        c->use_authzid = 0;
    } else if (!strcasecmp(arg, "authzid")) {
        c->use_authzid = 1;
    } else {
        return apr_psprintf(cmd->pool,
                            "%s: must be 'separator' or "
                            "'authzid', not '%s'",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_separator(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;

    if (strlen(arg) != 1 || !apr_isgraph(*arg) || *arg == '"') {
        return apr_psprintf(cmd->pool,
                            "%s: must be one visible character, "
                            "not '%s'",
                            cmd->cmd->name, arg);
    }
    c->separator = arg;
    return NULL;
}

/* A regular file, ServerRoot-relative; the error names the directive. */
static const char *regular_file(const char **path, cmd_parms *cmd,
                                const char *arg)
{
    apr_finfo_t fi;

    *path = ap_server_root_relative(cmd->pool, arg);
    if (!*path || apr_stat(&fi, *path, APR_FINFO_TYPE, cmd->temp_pool) ||
        fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    return regular_file(&((dme_dir_conf *)dc)->ca_file, cmd, arg);
}

static const char *set_number(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_dir_conf *c = dc;
    const char *err;
    long v;

    switch ((int)(intptr_t)cmd->info) {
        case 0:
            err = parse_long(&v, cmd, arg, 1, 365);
            c->window_days = (int)v;
            break;
        case 1:
            err = parse_long(&v, cmd, arg, 1, 10000);
            c->page_size = (int)v;
            break;
        case 2:
            err = parse_long(&v, cmd, arg, 1, 60);
            c->timeout = apr_time_from_sec(v);
            break;
        case 3:
            err = parse_long(&v, cmd, arg, 1, 3600);
            c->retry_after = (int)v;
            break;
        default:
            err = parse_long(&v, cmd, arg, 1024, 16 * 1024 * 1024);
            c->max_body = v;
            break;
    }
    return err;
}

static dme_srv_conf *srv_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &dme_module);
}

static const char *set_precache(cmd_parms *cmd, void *dc, int on)
{
    srv_conf(cmd)->precache = on;
    return NULL;
}

static const char *set_warning(cmd_parms *cmd, void *dc, int on)
{
    srv_conf(cmd)->warning_accepted = on;
    return NULL;
}

/* Seconds, whole, optionally with an s, m or h unit: "90", "30m". */
static const char *parse_secs(apr_interval_time_t *out, cmd_parms *cmd,
                              const char *arg, long min, long max)
{
    char *end;
    long v, unit = 1;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (*end && !end[1]) {
        unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 0;
        end++;
    }
    if (!*arg || !apr_isdigit(*arg) || *end || errno || !unit ||
        v > max / unit || v * unit < min) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a duration from %ld "
                            "to %ld seconds (e.g. 90, 30m, 1h)",
                            cmd->cmd->name, arg, min, max);
    }
    *out = apr_time_from_sec(v * unit);
    return NULL;
}

static const char *set_duration(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_srv_conf *sc = srv_conf(cmd);

    switch ((int)(intptr_t)cmd->info) {
        case 0:
            return parse_secs(&sc->max_age, cmd, arg, 1, 86400);
        case 1:
            return parse_secs(&sc->poll, cmd, arg, 0, 86400);
        case 2:
            return parse_secs(&sc->hb_min, cmd, arg, 1, 3600);
        default:
            return parse_secs(&sc->hb_max, cmd, arg, 1, 3600);
    }
}

/* Server-wide, or for one <Location>: either turns the trust anchors on. */
static const char *set_harvest(cmd_parms *cmd, void *dc, int on)
{
    if (cmd->path) {
        ((dme_dir_conf *)dc)->smime_harvest = on;
        harvest_seen |= on;
    } else {
        srv_conf(cmd)->smime_harvest = on;
    }
    return NULL;
}

static const char *set_push_private(cmd_parms *cmd, void *dc, int on)
{
    srv_conf(cmd)->push_private = on;
    return NULL;
}

static const char *set_smime_ca(cmd_parms *cmd, void *dc, const char *arg)
{
    return regular_file(&srv_conf(cmd)->smime_ca_file, cmd, arg);
}

static const char *set_smime_max(cmd_parms *cmd, void *dc, const char *arg)
{
    long v;
    const char *err = parse_long(&v, cmd, arg, 1, 1000);

    if (!err) {
        srv_conf(cmd)->smime_max = (int)v;
    }
    return err;
}

static const char *set_mail_domain(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++) {
        if (!apr_isalnum(*c) && *c != '.' && *c != '-') {
            return apr_psprintf(cmd->pool, "%s: '%s' is not a domain name",
                                cmd->cmd->name, arg);
        }
    }
    if (!*arg) {
        return apr_psprintf(cmd->pool, "%s: empty domain", cmd->cmd->name);
    }
    srv_conf(cmd)->mail_domain = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_memcached(cmd_parms *cmd, void *dc, const char *arg)
{
    if (!*arg || strpbrk(arg, "\r\n")) {
        return apr_psprintf(cmd->pool,
                            "%s: needs a libmemcached "
                            "configuration such as "
                            "--SERVER=127.0.0.1:11211",
                            cmd->cmd->name);
    }
    srv_conf(cmd)->memcached = arg;
    return NULL;
}

static const char *set_key_file(cmd_parms *cmd, void *dc, const char *arg)
{
    dme_srv_conf *sc =
        ap_get_module_config(cmd->server->module_config, &dme_module);

    sc->key_file = ap_server_root_relative(cmd->pool, arg);
    if (!sc->key_file) {
        return apr_psprintf(cmd->pool, "%s: bad path '%s'", cmd->cmd->name,
                            arg);
    }
    return NULL;
}

#define DIRCONF (RSRC_CONF | ACCESS_CONF)
#define NUM(name, i, help)                                                     \
    AP_INIT_TAKE1(name, set_number, (void *)(intptr_t)(i), DIRCONF, help)

static const command_rec dme_cmds[] = {
    AP_INIT_TAKE1("DMEMailServer", set_mail_server, NULL, DIRCONF,
                  "imap:// or imaps:// URL of the mail system"),
    AP_INIT_TAKE1("DMEMailAccess", set_access, NULL, DIRCONF,
                  "how mailboxes are reached: technical or password"),
    AP_INIT_TAKE1("DMETechnicalUser", set_tech_user, NULL, DIRCONF,
                  "IMAP master user that may open every mailbox"),
    AP_INIT_TAKE1("DMETechnicalPasswordFile", set_tech_password_file, NULL,
                  DIRCONF, "file whose first line is the master password"),
    AP_INIT_TAKE1("DMETechnicalLogin", set_tech_login, NULL, DIRCONF,
                  "separator (user*master login) or authzid (SASL PLAIN)"),
    AP_INIT_TAKE1("DMEMasterSeparator", set_separator, NULL, DIRCONF,
                  "character between mailbox user and master user"),
    AP_INIT_TAKE1("DMEMailCAFile", set_ca_file, NULL, DIRCONF,
                  "CA bundle to verify the mail system's TLS certificate"),
    NUM("DMESyncWindow", 0, "days of mail a sync covers (1-365)"),
    NUM("DMESyncPageSize", 1, "entries per sync answer (1-10000)"),
    NUM("DMEMailTimeout", 2, "seconds to wait for the mail system (1-60)"),
    NUM("DMERetryAfter", 3, "Retry-After seconds while it is down"),
    NUM("DMEMaxRequestSize", 4, "largest request body in bytes"),
    AP_INIT_TAKE1("DMEPasswordKeyFile", set_key_file, NULL, RSRC_CONF,
                  "key file sealing stored user passwords"),
    AP_INIT_FLAG("DMEPrecache", set_precache, NULL, RSRC_CONF,
                 "build sync data in memcached when a mailbox changes"),
    AP_INIT_TAKE1("DMEPrecacheMaxAge", set_duration, (void *)0, RSRC_CONF,
                  "age after which a pre-cache is merged, not appended"),
    AP_INIT_TAKE1("DMEPollInterval", set_duration, (void *)1, RSRC_CONF,
                  "STATUS poll of users with clients; 0 turns it off"),
    AP_INIT_TAKE1("DMEHeartbeatMin", set_duration, (void *)2, RSRC_CONF,
                  "shortest long-poll heartbeat proposed to clients"),
    AP_INIT_TAKE1("DMEHeartbeatMax", set_duration, (void *)3, RSRC_CONF,
                  "longest long-poll heartbeat proposed to clients"),
    AP_INIT_TAKE1("DMEMemcached", set_memcached, NULL, RSRC_CONF,
                  "memcached servers (libmemcached configuration string)"),
    AP_INIT_FLAG("DMESmimeHarvest", set_harvest, NULL, DIRCONF,
                 "store S/MIME certificates of external senders"),
    AP_INIT_FLAG("DMEPushAllowPrivate", set_push_private, NULL, RSRC_CONF,
                 "client push URLs may name loopback or private addresses"),
    AP_INIT_TAKE1("DMESmimeCAFile", set_smime_ca, NULL, RSRC_CONF,
                  "trust anchors for harvested certificates"),
    AP_INIT_TAKE1("DMESmimeMaxCertificates", set_smime_max, NULL, RSRC_CONF,
                  "certificates per address lookup answer (1-1000)"),
    AP_INIT_TAKE1("DMEMailDomain", set_mail_domain, NULL, RSRC_CONF,
                  "domain of users' addresses (user@domain)"),
    AP_INIT_FLAG("DMETechnicalWarningAccepted", set_warning, NULL, RSRC_CONF,
                 "the technical user has full access to every mailbox"),
    {NULL}};

static int load_key(server_rec *s, apr_pool_t *p)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    apr_status_t rv;
    int created = 0;

    if (!sc->key_file) {
        sc->key_file = ap_server_root_relative(p, DEFAULT_KEY_FILE);
    }
    rv = dme_crypto_key_load(&sc->key, &created, sc->key_file, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            DMELOGNO(
                10001) "DMEPasswordKeyFile: cannot use '%s': it must be 32 "
                       "bytes, mode 0600, or absent so it is made",
            sc->key_file);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (created) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     DMELOGNO(10002) "made a new password key file %s",
                     sc->key_file);
    }
    return OK;
}

static const char *memcached_config(const dme_srv_conf *sc)
{
    return sc->memcached ? sc->memcached : "--SERVER=127.0.0.1:11211";
}

/* Pre-caching reads every user's mailbox in the background; with the
 * technical user that needs the administrator's explicit consent. */
static int check_precache(server_rec *s, apr_pool_t *ptemp)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    const char *why = NULL;
    dme_mc_t *probe;

    if (!dme_conf_precache(sc)) {
        return OK;
    }
    if (technical_seen && sc->warning_accepted != 1) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, 0, s,
            DMELOGNO(
                10006) "DMEPrecache On with the technical user needs "
                       "DMETechnicalWarningAccepted On: pre-caching reads "
                       "every mailbox, so the technical user must have full "
                       "access to all of them");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (dme_mc_create(&probe, &why, memcached_config(sc),
                      apr_time_from_msec(200), 1, ptemp) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     DMELOGNO(10008) "DMEMemcached: %s",
                     why ? why : "not usable");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (dme_conf_hb_min(sc) > dme_conf_hb_max(sc)) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, 0, s,
            DMELOGNO(10007) "DMEHeartbeatMin is above DMEHeartbeatMax");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Trust anchors for harvested certificates, read once at startup. */
static int load_trust(server_rec *s, apr_pool_t *pconf)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    apr_status_t rv;
    server_rec *v;

    if (!dme_conf_smime_harvest(sc) && !harvest_seen) {
        return OK;
    }
    rv = dme_smime_trust_load(&sc->smime_trust, sc->smime_ca_file, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            DMELOGNO(10009) "DMESmimeCAFile: cannot load trust anchors from %s",
            sc->smime_ca_file ? sc->smime_ca_file : "the system bundle");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (v = s->next; v; v = v->next) {
        dme_srv_conf *vc = ap_get_module_config(v->module_config, &dme_module);

        if (!vc->smime_trust) {
            vc->smime_trust = sc->smime_trust;
        }
    }
    return OK;
}

static int dme_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    server_rec *v;

    if (dme_curl_global_init() != APR_SUCCESS ||
        dme_xml_init() != APR_SUCCESS || dme_mime_init() != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, 0, s,
            DMELOGNO(10003) "cannot initialise curl, libxml2 or GMime");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    make_counters(pconf, s);
    if (dme_admin_init() != APR_SUCCESS || load_trust(s, pconf) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (check_precache(s, ptemp) != OK || dme_bg_post_config(pconf, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!password_mode_seen) {
        return OK;
    }
    for (v = s; v; v = v->next) {
        if (load_key(v, pconf) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static int dme_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    password_mode_seen = 0; /* config is read twice at startup */
    technical_seen = 0;
    harvest_seen = 0;
    return OK;
}

static void dme_child_init(apr_pool_t *p, server_rec *s)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    apr_status_t rv;

    /* one idle login per worker thread at most: a busy server keeps them */
    rv = dme_imap_pool_create(&imap_pool, 64, apr_time_from_sec(60), p);
    if (rv == APR_SUCCESS) {
        rv = dme_store_init(p);
    }
    if (rv == APR_SUCCESS && dme_conf_precache(sc)) {
        rv = dme_mc_create(&mc, NULL, memcached_config(sc),
                           apr_time_from_msec(200), 32, p);
        if (rv == APR_SUCCESS) {
            dme_bg_child_init(p, s);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, rv, s,
            DMELOGNO(
                10004) "cannot set up the IMAP pool, the store or memcached");
    }
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(dme_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(dme_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(dme_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(dme_handler, NULL, NULL, APR_HOOK_MIDDLE);
    dme_bg_register_hooks();
}

AP_DECLARE_MODULE(dme) = {STANDARD20_MODULE_STUFF,
                          create_dir_conf,
                          merge_dir_conf,
                          create_srv_conf,
                          merge_srv_conf,
                          dme_cmds,
                          register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                          AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
