/* mod_dme background work: pre-cache builds in a worker thread per
 * process, the STATUS poll through mod_watchdog, and HTTP push to
 * clients that registered an endpoint. */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_atomic.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
#include <apr_optional.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <mod_watchdog.h>

#include "mod_dme.h"
#include "dme_mc.h"
#include "dme_store.h"
#include "dme_precache.h"
#include "dme_curl.h"
#include "dme_json.h"

APLOG_USE_MODULE(dme);

#define PC_EXPIRY      1800 /* seconds; renewed at each rewrite */
#define BUILD_LOCK_TTL 120
#define RETRY_DELAY    apr_time_from_msec(500)
/* A build waits this long after the first change, so the changes of a
 * burst (a delivery of many mails notes each one) make one build. */
#define SETTLE_DELAY apr_time_from_msec(300)
#define PUSH_TIMEOUT apr_time_from_sec(3)
#define WD_NAME      "_dme_poll_"

typedef struct job_t {
    struct job_t *next;
    apr_pool_t *pool;
    const char *key; /* user \n folder, the coalescing key */
    const char *user, *folder;
    dme_dir_conf dc; /* the settings of the request that asked */
    apr_time_t not_before;
    int again;   /* another change came while this one ran */
    int retried; /* a failure was retried once already */
} job_t;

static struct {
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    job_t *head;
    apr_hash_t *pending; /* key -> job_t*, queued or running */
    apr_pool_t *pool;
    server_rec *s;
    int stop;
    apr_thread_t *thread;
} bg;

static APR_OPTIONAL_FN_TYPE(ap_dbd_open) * dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) * dbd_close;

const char *dme_pc_key(apr_size_t *len, const char *user, const char *folder,
                       apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, user, "\n", folder, NULL);

    *len = strlen(k);
    return k;
}

const char *dme_gen_name(const char *user, const char *folder, apr_pool_t *p)
{
    return apr_pstrcat(p, "gen\n", user, "\n", folder, NULL);
}

void dme_bg_queue_build(server_rec *s, const dme_dir_conf *dc, const char *user,
                        const char *folder)
{
    const char *key;
    apr_pool_t *jp;
    job_t *j;

    if (!bg.mu) {
        return;
    }
    apr_thread_mutex_lock(bg.mu);
    key = apr_pstrcat(bg.pool, user, "\n", folder, NULL);
    j = apr_hash_get(bg.pending, key, APR_HASH_KEY_STRING);
    if (j) {
        j->again = 1; /* a burst coalesces into one more build at most */
        apr_thread_mutex_unlock(bg.mu);
        return;
    }
    /* Jobs outlive requests and run in another thread: their own pool
     * with its own allocator. */
    if (apr_pool_create_unmanaged_ex(&jp, NULL, NULL) != APR_SUCCESS) {
        apr_thread_mutex_unlock(bg.mu);
        return;
    }
    j = apr_pcalloc(jp, sizeof(*j));
    j->pool = jp;
    j->key = apr_pstrdup(jp, key);
    j->user = apr_pstrdup(jp, user);
    j->folder = apr_pstrdup(jp, folder);
    j->dc = *dc;
    j->not_before = apr_time_now() + SETTLE_DELAY;
    apr_hash_set(bg.pending, j->key, APR_HASH_KEY_STRING, j);
    j->next = bg.head;
    bg.head = j;
    apr_thread_cond_signal(bg.cv);
    apr_thread_mutex_unlock(bg.mu);
}

/* The password mode's stored password, opened with the server key. */
static apr_status_t stored_password(const char **pw, job_t *j, ap_dbd_t *db)
{
    dme_srv_conf *sc = ap_get_module_config(bg.s->module_config, &dme_module);
    const char *sealed = NULL;
    apr_status_t rv;

    rv = dme_store_user_password_get(&sealed, db->driver, db->handle, j->user,
                                     j->pool);
    if (rv == APR_SUCCESS && (!sealed || !sc->key)) {
        rv = APR_NOTFOUND;
    }
    if (rv == APR_SUCCESS) {
        rv = dme_crypto_open(pw, sc->key, sealed, j->user, j->pool);
    }
    return rv;
}

static int push_private_allowed(void)
{
    dme_srv_conf *sc = ap_get_module_config(bg.s->module_config, &dme_module);

    return sc->push_private == 1;
}

/* Tell every client of the user that registered an endpoint. */
static void push_clients(job_t *j, ap_dbd_t *db)
{
    dme_counters_t *c = dme_glue_counters();
    apr_array_header_t *clients;
    int i;

    if (dme_store_client_list(&clients, db->driver, db->handle, j->user,
                              j->pool) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < clients->nelts; i++) {
        const dme_client_t *cl = APR_ARRAY_IDX(clients, i, dme_client_t *);
        const char *doc;
        long status = 0;
        apr_status_t rv;

        if (!cl->push_url) {
            continue;
        }
        doc = dme_json_push_notice(cl->id, j->folder, j->pool);
        rv = dme_curl_post(&status, cl->push_url, "application/json", doc,
                           strlen(doc), PUSH_TIMEOUT, push_private_allowed());
        if (rv == APR_SUCCESS && status >= 200 && status < 300) {
            apr_atomic_inc32(&c->pushes);
            continue;
        }
        apr_atomic_inc32(&c->push_failures);
        ap_log_error(APLOG_MARK, APLOG_INFO, dme_log_rv(rv), bg.s,
                     DMELOGNO(10040) "push to client %s failed (HTTP %ld)",
                     cl->id, status);
    }
}

/* What the STATUS poll last saw of a user's INBOX, as text in memcached,
 * so a poll in any process or server compares with it. */
static const char *poll_name(const char *user, apr_pool_t *p)
{
    return apr_pstrcat(p, "poll\n", user, NULL);
}

static const char *poll_text(const dme_imap_status_t *st, apr_pool_t *p)
{
    return apr_psprintf(p, "%u %u %u %" APR_UINT64_T_FMT, st->uidvalidity,
                        st->uidnext, st->messages, st->highestmodseq);
}

static void poll_remember(const char *user, const char *text, apr_pool_t *p)
{
    const char *name = poll_name(user, p);

    dme_mc_blob_set(dme_glue_mc(), "poll", name, strlen(name), text,
                    strlen(text) + 1, 86400);
}

/* A build of an INBOX, whatever started it, counts as the poll having
 * seen the INBOX as it is now: else a change Dovecot pushed would be
 * found again by the next poll and built, and pushed to clients, twice.
 * Recorded before the build reads, so mail arriving meanwhile is still
 * new to the poll. */
static void poll_seen(dme_imap_t *s, const job_t *j)
{
    dme_srv_conf *sc = ap_get_module_config(bg.s->module_config, &dme_module);
    dme_imap_status_t st;

    if (sc->poll > 0 && strcasecmp(j->folder, "INBOX") == 0 &&
        dme_imap_status(&st, s, "INBOX", j->pool) == APR_SUCCESS) {
        poll_remember(j->user, poll_text(&st, j->pool), j->pool);
    }
}

/* Read, update and store the pre-cache of one folder. */
static apr_status_t build(job_t *j, ap_dbd_t *db)
{
    dme_srv_conf *sc = ap_get_module_config(bg.s->module_config, &dme_module);
    dme_counters_t *c = dme_glue_counters();
    dme_precache_t *old = NULL, *pc;
    dme_imap_login_t login;
    const char *key, *data, *text;
    apr_size_t klen, len;
    dme_pc_how_e how;
    dme_imap_t *s;
    apr_status_t rv;
    int needs_pw;

    if (dme_login_for(&login, &needs_pw, &j->dc, j->user, j->pool) !=
            DECLINED ||
        (needs_pw && stored_password(&login.password, j, db))) {
        return APR_EACCES;
    }
    key = dme_pc_key(&klen, j->user, j->folder, j->pool);
    if (dme_mc_blob_get(&data, &len, dme_glue_mc(), "pc", key, klen, j->pool) ==
        APR_SUCCESS) {
        dme_precache_parse(&old, data, len, j->pool);
    }
    rv = dme_imap_acquire(&s, NULL, dme_glue_imap_pool(), &login, j->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    poll_seen(s, j);
    rv = dme_precache_update(
        &pc, &how, s, j->folder, old,
        apr_time_now() -
            apr_time_from_sec(86400 * (apr_time_t)dme_conf_window_days(&j->dc)),
        dme_conf_max_age(sc), apr_time_now(), j->pool);
    dme_imap_release(dme_glue_imap_pool(), s);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    text = dme_precache_serialize(&len, pc, j->pool);
    rv = dme_mc_blob_set(dme_glue_mc(), "pc", key, klen, text, len, PC_EXPIRY);
    if (rv == APR_SUCCESS) {
        apr_uint64_t gen;

        apr_atomic_inc32(&c->builds);
        if (how == DME_PC_MERGE) {
            apr_atomic_inc32(&c->merges);
        } else if (how == DME_PC_APPEND) {
            apr_atomic_inc32(&c->appends);
        }
        dme_mc_incr(&gen, dme_glue_mc(),
                    dme_gen_name(j->user, j->folder, j->pool), 86400);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, bg.s,
                     DMELOGNO(10041) "pre-cache of %s built (%s, %d mails)",
                     dme_user_tag(j->user, j->pool),
                     how == DME_PC_FULL    ? "full"
                     : how == DME_PC_MERGE ? "merge"
                                           : "append",
                     pc->notes->notes->nelts);
    }
    return rv;
}

/* Mark the folder as changed again for whoever builds it now. */
static void mark_dirty(job_t *j, const char *dirty)
{
    dme_mc_blob_set(dme_glue_mc(), "dirty", dirty, strlen(dirty), "1", 1,
                    BUILD_LOCK_TTL);
}

/* Whether a change came while we built; the mark is taken away. */
static int take_dirty(job_t *j, const char *dirty)
{
    const char *v;
    apr_size_t len;

    if (dme_mc_blob_get(&v, &len, dme_glue_mc(), "dirty", dirty, strlen(dirty),
                        j->pool) != APR_SUCCESS) {
        return 0;
    }
    dme_mc_blob_delete(dme_glue_mc(), "dirty", dirty, strlen(dirty));
    return 1;
}

/* One job under the cross-process lock. A job that finds the folder
 * being built elsewhere leaves a mark for the builder and is done, so a
 * burst of changes spread over processes and servers coalesces too; it
 * tries the lock once more after marking, in case the builder finished
 * in between and never saw the mark. APR_EAGAIN: build again soon. */
static apr_status_t run_job(job_t *j)
{
    const char *lock = apr_pstrcat(j->pool, "build\n", j->key, NULL);
    const char *dirty = apr_pstrcat(j->pool, "dirty\n", j->key, NULL);
    const char *token = NULL;
    ap_dbd_t *db;
    apr_status_t rv;

    rv = dme_mc_lock(&token, dme_glue_mc(), lock, BUILD_LOCK_TTL, j->pool);
    if (rv == APR_EEXIST) {
        mark_dirty(j, dirty);
        rv = dme_mc_lock(&token, dme_glue_mc(), lock, BUILD_LOCK_TTL, j->pool);
        if (rv == APR_EEXIST) {
            return APR_SUCCESS; /* the builder will see the mark */
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    take_dirty(j, dirty);
    db = dbd_open ? dbd_open(j->pool, bg.s) : NULL;
    if (db && dme_store_conn_init(db->driver, db->handle, db->pool)) {
        dbd_close(bg.s, db);
        db = NULL;
    }
    rv = db ? build(j, db) : APR_EGENERAL;
    dme_mc_unlock(dme_glue_mc(), lock, token, j->pool);
    if (rv == APR_SUCCESS) {
        push_clients(j, db);
        if (take_dirty(j, dirty)) {
            rv = APR_EAGAIN; /* changed while we built: once more, soon */
        }
    }
    if (db) {
        dbd_close(bg.s, db);
    }
    return rv;
}

/* The first job that may run now, taken off the list. */
static job_t *next_job(apr_time_t *wait)
{
    apr_time_t now = apr_time_now();
    job_t **pp, *j;

    *wait = apr_time_from_sec(1);
    for (pp = &bg.head; (j = *pp) != NULL; pp = &j->next) {
        if (j->not_before <= now) {
            *pp = j->next;
            return j;
        }
        if (j->not_before - now < *wait) {
            *wait = j->not_before - now;
        }
    }
    return NULL;
}

static void finish_job(job_t *j, apr_status_t rv)
{
    int again = j->again || rv == APR_EAGAIN;

    /* A pooled connection to a restarted memcached or mail system fails
     * once before it is replaced: one more try, a second later. */
    if (rv == DME_EDOWN && !j->retried) {
        j->retried = 1;
        again = 1;
        rv = APR_EAGAIN;
    }
    if (rv != APR_SUCCESS && rv != APR_EAGAIN) {
        ap_log_error(
            APLOG_MARK, APLOG_INFO, dme_log_rv(rv), bg.s,
            DMELOGNO(
                10042) "pre-cache build for %s failed; the next sync reads "
                       "the mail system",
            dme_user_tag(j->user, j->pool));
    }
    apr_thread_mutex_lock(bg.mu);
    if (again && !bg.stop) {
        j->again = 0;
        j->not_before =
            apr_time_now() + (rv == APR_EAGAIN ? RETRY_DELAY : SETTLE_DELAY);
        if (rv == APR_SUCCESS) {
            j->retried = 0;
        }
        j->next = bg.head;
        bg.head = j;
    } else {
        apr_hash_set(bg.pending, j->key, APR_HASH_KEY_STRING, NULL);
        apr_pool_destroy(j->pool);
    }
    apr_thread_mutex_unlock(bg.mu);
}

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    apr_thread_mutex_lock(bg.mu);
    while (!bg.stop) {
        apr_time_t wait;
        job_t *j = next_job(&wait);

        if (!j) {
            apr_thread_cond_timedwait(bg.cv, bg.mu, wait);
            continue;
        }
        apr_thread_mutex_unlock(bg.mu);
        finish_job(j, run_job(j));
        apr_thread_mutex_lock(bg.mu);
    }
    apr_thread_mutex_unlock(bg.mu);
    return NULL;
}

static apr_status_t stop_worker(void *data)
{
    apr_status_t rv;

    apr_thread_mutex_lock(bg.mu);
    bg.stop = 1;
    apr_thread_cond_signal(bg.cv);
    apr_thread_mutex_unlock(bg.mu);
    apr_thread_join(&rv, bg.thread);
    bg.mu = NULL;
    return APR_SUCCESS;
}

void dme_bg_child_init(apr_pool_t *p, server_rec *s)
{
    memset(&bg, 0, sizeof(bg));
    dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    bg.s = s;
    bg.pool = p;
    bg.pending = apr_hash_make(p);
    if (apr_thread_mutex_create(&bg.mu, APR_THREAD_MUTEX_DEFAULT, p) ||
        apr_thread_cond_create(&bg.cv, p) ||
        apr_thread_create(&bg.thread, NULL, worker, NULL, p)) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, 0, s,
            DMELOGNO(
                10043) "cannot start the pre-cache worker; no builds in this "
                       "process");
        bg.mu = NULL;
        return;
    }
    apr_pool_pre_cleanup_register(p, NULL, stop_worker);
}

/* ---- the STATUS poll, for mail systems without push ---- */

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) * wd_get;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) * wd_register;

/* One user's INBOX changed since the poll (or a build) last saw it? */
static void poll_user(server_rec *s, const dme_dir_conf *dc, ap_dbd_t *db,
                      const char *user, apr_pool_t *p)
{
    const char *name = poll_name(user, p), *then, *now;
    dme_imap_status_t st;
    dme_imap_login_t login;
    apr_size_t len;
    dme_imap_t *im;
    job_t j;
    int needs_pw;

    memset(&j, 0, sizeof(j));
    j.pool = p;
    j.user = user;
    if (dme_login_for(&login, &needs_pw, dc, user, p) != DECLINED ||
        (needs_pw && stored_password(&login.password, &j, db)) ||
        dme_imap_acquire(&im, NULL, dme_glue_imap_pool(), &login, p)) {
        return;
    }
    if (dme_imap_status(&st, im, "INBOX", p) != APR_SUCCESS) {
        dme_imap_release(dme_glue_imap_pool(), im);
        return;
    }
    dme_imap_release(dme_glue_imap_pool(), im);
    now = poll_text(&st, p);
    if (dme_mc_blob_get(&then, &len, dme_glue_mc(), "poll", name, strlen(name),
                        p) == APR_SUCCESS &&
        len > 0 && then[len - 1] == '\0' && strcmp(then, now) != 0) {
        dme_bg_queue_build(s, dc, user, "INBOX");
    }
    poll_remember(user, now, p);
}

static apr_status_t poll_tick(int state, void *data, apr_pool_t *p)
{
    server_rec *s = data;
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    const dme_dir_conf *dc =
        ap_get_module_config(s->lookup_defaults, &dme_module);
    static apr_time_t last;
    apr_array_header_t *users;
    ap_dbd_t *db;
    int i;

    if (state != AP_WATCHDOG_STATE_RUNNING || !dme_glue_mc() || !dc->mail_url ||
        apr_time_now() - last < sc->poll) {
        return APR_SUCCESS;
    }
    last = apr_time_now();
    db = dbd_open ? dbd_open(p, s) : NULL;
    if (!db) {
        return APR_SUCCESS;
    }
    if (dme_store_conn_init(db->driver, db->handle, db->pool) == APR_SUCCESS &&
        dme_store_user_list(&users, db->driver, db->handle, p) == APR_SUCCESS) {
        for (i = 0; i < users->nelts; i++) {
            poll_user(s, dc, db, APR_ARRAY_IDX(users, i, const char *), p);
        }
    }
    dbd_close(s, db);
    return APR_SUCCESS;
}

static int poll_need(server_rec *s, const char *name, int parent, int singleton)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);

    if (name && !strcmp(name, WD_NAME) && !parent && singleton &&
        dme_conf_precache(sc) && sc->poll > 0) {
        return OK;
    }
    return DECLINED;
}

int dme_bg_post_config(apr_pool_t *pconf, server_rec *s)
{
    dme_srv_conf *sc = ap_get_module_config(s->module_config, &dme_module);
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (!dme_conf_precache(sc) || sc->poll <= 0) {
        return OK;
    }
    wd_get = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!wd_get || !wd_register) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     DMELOGNO(10044) "DMEPollInterval needs mod_watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* one process of the server polls (singleton), checking every second
     * whether the interval has passed */
    rv = wd_get(&wd, WD_NAME, 0, 1, pconf);
    if (rv == APR_SUCCESS) {
        rv = wd_register(wd, apr_time_from_sec(1), s, poll_tick);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     DMELOGNO(10045) "cannot set up the STATUS poll");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

void dme_bg_register_hooks(void)
{
    APR_OPTIONAL_HOOK(ap, watchdog_need, poll_need, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
