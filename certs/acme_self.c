/* acme_self: skd's own certificate over ACME (acme_self.h). */
#include "acme_self.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/file.h"
#include "../common/log.h"
#include "certs_internal.h"

#define PUBLISH_WAIT_MS 60000     /* for the DNS servers to serve the values */
#define PUBLISH_RETRY_MS 250      /* while kvpsend waits for its first snapshot */
#define BACKOFF_FIRST_S 30
#define BACKOFF_MAX_S 3600
#define SLEEP_MAX_MS (3600 * 1000) /* long sleeps are re-checked against the wall clock */
#define ATTEMPT_TIMEOUT_MS (300 * 1000)
#define CHECK_TIMEOUT_MS (60 * 1000) /* renewalInfo */

/* The service's states, for /metrics. */
static const char *const STATES[] = {"starting", "valid", "ordering", "backoff", NULL};
enum { ST_STARTING, ST_VALID, ST_ORDERING, ST_BACKOFF };

static void set_state(acme_self_t *as, int st) { as->server->metrics.acme.state = STATES[st]; }

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void label_of(const char *name, char out[STORE_LABEL_SIZE]) {
    snprintf(out, STORE_LABEL_SIZE, "%.*s", (int)strcspn(name, "."), name);
}

/* ---- files (worker threads) ---- */

static int read_file(const char *path, buf_t *out) {
    return file_read(path, out, ACME_BODY_MAX);
}

static void state_path(const config_t *cfg, const char *name, char *out, size_t len) {
    snprintf(out, len, "%s/%s", cfg->acme_state_dir, name);
}

static EVP_PKEY *read_key(const char *path) {
    buf_t b;
    buf_init(&b, 0);
    EVP_PKEY *key = read_file(path, &b) == 0 ? acme_key_from_pem(b.data, b.len) : NULL;
    buf_free_secure(&b);
    return key;
}

static int write_key(const char *path, EVP_PKEY *key) {
    buf_t b;
    buf_init(&b, 0);
    int rc = acme_key_to_pem(key, &b) == 0 ? file_write_atomic(path, b.data, b.len, 0600) : -1;
    buf_free_secure(&b);
    return rc;
}

static int mkdirs(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -1;
            if (!(*p = c))
                return 0;
        }
    }
}

/* acme.json: the CA, the account, the order in progress and skd's installations. */
static char *state_text(const config_t *cfg, const char *account, const char *order,
                        const char (*ids)[STORE_INSTALLATION_ID_SIZE]) {
    json_t *o = json_pack("{s:s}", "directory", cfg->acme_directory);
    json_t *names = json_array(), *inst = json_object();
    for (size_t i = 0; i < cfg->acme_name_count; i++) {
        char label[STORE_LABEL_SIZE];
        label_of(cfg->acme_names[i], label);
        json_array_append_new(names, json_string(cfg->acme_names[i]));
        if (ids[i][0])
            json_object_set_new(inst, label, json_string(ids[i]));
    }
    json_object_set_new(o, "names", names);
    json_object_set_new(o, "installations", inst);
    if (account && account[0])
        json_object_set_new(o, "account", json_string(account));
    if (order && order[0])
        json_object_set_new(o, "order", json_string(order));
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}

static int write_state(const config_t *cfg, const char *text) {
    char path[4096];
    state_path(cfg, "acme.json", path, sizeof path);
    return text ? file_write_atomic(path, text, strlen(text), 0600) : -1;
}

/* The first certificate of a PEM chain: its validity and whether it covers every name. */
static int cert_info(const config_t *cfg, const char *pem, size_t len, int64_t *nb, int64_t *na, bool *covers) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    struct tm tb, ta;
    int rc = -1;
    if (x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tb) == 1 && ASN1_TIME_to_tm(X509_get0_notAfter(x), &ta) == 1) {
        *nb = timegm(&tb);
        *na = timegm(&ta);
        *covers = true;
        for (size_t i = 0; i < cfg->acme_name_count; i++)
            *covers = *covers && X509_check_host(x, cfg->acme_names[i], 0, 0, NULL) == 1;
        rc = 0;
    }
    X509_free(x);
    return rc;
}

/* ---- jobs on the worker pool ---- */

typedef enum job_kind { JOB_LOAD, JOB_SET, JOB_DELETE, JOB_KEY, JOB_STATE, JOB_CERT } job_kind_t;

typedef struct acme_job {
    acme_self_t *as;
    const config_t *cfg;
    store_t *store;
    job_kind_t kind;
    int rc;
    char err[512];
    char *text;          /* acme.json to write */
    char *chain;         /* CERT: the PEM chain */
    size_t chain_len;
    EVP_PKEY *key;       /* CERT: to write; KEY: made */
    acme_challenge_value_t values[ACME_MAX_NAMES]; /* SET, DELETE */
    size_t nvalues;
    char ids[CONFIG_ACME_NAMES][STORE_INSTALLATION_ID_SIZE];
    store_txt_list_t removed[CONFIG_ACME_NAMES]; /* LOAD, DELETE: per name */
    /* LOAD */
    EVP_PKEY *account_key, *order_key;
    char account_url[ACME_URL_MAX], order_url[ACME_URL_MAX];
    /* LOAD, CERT: the certificate served */
    bool have_cert, covers;
    int64_t not_before, not_after;
} acme_job_t;

static void job_free(acme_job_t *j) {
    free(j->text);
    free(j->chain);
    EVP_PKEY_free(j->key);
    EVP_PKEY_free(j->account_key);
    EVP_PKEY_free(j->order_key);
    free(j);
}

/* err = "<what> <arg>: <why>", why from the store or errno. */
static void fail_job(acme_job_t *j, const char *what, const char *arg) {
    bool store = j->kind == JOB_LOAD || j->kind == JOB_SET || j->kind == JOB_DELETE;
    j->rc = -1;
    snprintf(j->err, sizeof j->err, "%s %.300s: %.150s", what, arg, store ? store_last_error() : strerror(errno));
}

static size_t name_index(const config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->acme_name_count; i++)
        if (strcmp(cfg->acme_names[i], name) == 0)
            return i;
    return cfg->acme_name_count;
}

/* skd's installation for name i: the saved one if it still holds that label, else a new one. */
static int ensure_installation(acme_job_t *j, size_t i) {
    char label[STORE_LABEL_SIZE];
    label_of(j->cfg->acme_names[i], label);
    if (j->ids[i][0]) {
        store_installation_t inst;
        int rc = store_installation_get(j->store, j->ids[i], &inst);
        bool ours = rc == 0 && strcmp(inst.label, label) == 0;
        if (rc == 0)
            store_installation_clear(&inst);
        if (ours)
            return 0;
    }
    /* A key nobody keeps: the installation changes through the store only. */
    EVP_PKEY *k = acme_key_new_p256();
    buf_t jwk;
    buf_init(&jwk, 0);
    store_installation_t in = {.metadata = "{\"owner\":\"skd acme\"}"};
    uint8_t raw[16];
    int rc = -1;
    if (k && acme_jwk(k, &jwk) == 0 && acme_jwk_thumbprint(k, in.thumbprint) == 0 && RAND_bytes(raw, 16) == 1) {
        for (size_t b = 0; b < 16; b++)
            snprintf(in.id + 2 * b, 3, "%02x", raw[b]);
        snprintf(in.label, sizeof in.label, "%s", label);
        in.jwk = jwk.data;
        rc = store_installation_add(j->store, &in);
    }
    EVP_PKEY_free(k);
    buf_free(&jwk);
    if (rc == STORE_CONFLICT) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err,
                 "%s: the label %s is taken by an installation that is not skd's (delete it, or lost %s/acme.json?)",
                 j->cfg->acme_names[i], label, j->cfg->acme_state_dir);
        return -1;
    }
    if (rc != 0) {
        fail_job(j, "cannot register skd's installation for", j->cfg->acme_names[i]);
        return -1;
    }
    snprintf(j->ids[i], sizeof j->ids[i], "%s", in.id);
    return 0;
}

static void load_saved(acme_job_t *j) {
    const config_t *cfg = j->cfg;
    char path[4096];
    state_path(cfg, "acme.json", path, sizeof path);
    json_t *st = json_load_file(path, 0, NULL);
    const char *dir = json_string_value(json_object_get(st, "directory"));
    bool same_ca = dir && strcmp(dir, cfg->acme_directory) == 0;
    json_t *names = json_array();
    for (size_t i = 0; i < cfg->acme_name_count; i++)
        json_array_append_new(names, json_string(cfg->acme_names[i]));
    bool same_names = json_equal(names, json_object_get(st, "names"));
    json_decref(names);
    const char *account = json_string_value(json_object_get(st, "account"));
    const char *order = json_string_value(json_object_get(st, "order"));
    if (same_ca && account)
        snprintf(j->account_url, sizeof j->account_url, "%s", account);
    if (same_ca && same_names && order) {
        state_path(cfg, "order-key.pem", path, sizeof path);
        snprintf(j->order_url, sizeof j->order_url, "%s", order);
        j->order_key = read_key(path);
    }
    json_t *inst = json_object_get(st, "installations");
    for (size_t i = 0; i < cfg->acme_name_count; i++) {
        char label[STORE_LABEL_SIZE];
        label_of(cfg->acme_names[i], label);
        const char *id = json_string_value(json_object_get(inst, label));
        if (id && store_valid_installation_id(id))
            snprintf(j->ids[i], sizeof j->ids[i], "%s", id);
    }
    json_decref(st);
}

static void work_load(acme_job_t *j) {
    const config_t *cfg = j->cfg;
    char path[4096];
    if (mkdirs(cfg->acme_state_dir) < 0) {
        fail_job(j, "cannot make", cfg->acme_state_dir);
        return;
    }
    /* The account key is on disk before the account exists. */
    state_path(cfg, "account-key.pem", path, sizeof path);
    if (!(j->account_key = read_key(path))) {
        j->account_key = acme_key_new_p256();
        if (!j->account_key || write_key(path, j->account_key) < 0) {
            fail_job(j, "cannot write", path);
            return;
        }
    } else {
        load_saved(j);
    }
    for (size_t i = 0; i < cfg->acme_name_count; i++) {
        if (ensure_installation(j, i) < 0)
            return;
        /* Values a crashed attempt left behind. */
        if (store_challenge_remove(j->store, j->ids[i], NULL, &j->removed[i]) != 0) {
            fail_job(j, "cannot clear the dns-01 values of", cfg->acme_names[i]);
            return;
        }
    }
    char *text = state_text(cfg, j->account_url, j->order_url, (const char(*)[STORE_INSTALLATION_ID_SIZE])j->ids);
    int rc = write_state(cfg, text);
    free(text);
    if (rc < 0) {
        fail_job(j, "cannot write acme.json in", cfg->acme_state_dir);
        return;
    }
    buf_t b;
    buf_init(&b, 0);
    if (read_file(cfg->tls_cert, &b) == 0)
        j->have_cert = cert_info(cfg, b.data, b.len, &j->not_before, &j->not_after, &j->covers) == 0;
    if (j->have_cert && (j->chain = malloc(b.len + 1))) { /* for renewalInfo and "replaces" */
        memcpy(j->chain, b.data, b.len + 1);
        j->chain_len = b.len;
    }
    buf_free(&b);
}

static void work_values(acme_job_t *j) {
    for (size_t v = 0; v < j->nvalues; v++) {
        size_t i = name_index(j->cfg, j->values[v].name);
        int rc = j->kind == JOB_SET ? store_challenge_add(j->store, j->ids[i], j->values[v].value)
                                    : store_challenge_remove(j->store, j->ids[i], j->values[v].value, &j->removed[i]);
        if (rc != 0) {
            fail_job(j, "store: the dns-01 value of", j->values[v].name);
            return;
        }
    }
}

static void work_cert(acme_job_t *j) {
    const config_t *cfg = j->cfg;
    char path[4096];
    if (cert_info(cfg, j->chain, j->chain_len, &j->not_before, &j->not_after, &j->covers) < 0) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "the CA's chain does not start with a certificate");
        return;
    }
    j->have_cert = true;
    if (write_key(cfg->tls_key, j->key) < 0) {
        fail_job(j, "cannot write", cfg->tls_key);
        return;
    }
    if (file_write_atomic(cfg->tls_cert, j->chain, j->chain_len, 0644) < 0) {
        fail_job(j, "cannot write", cfg->tls_cert);
        return;
    }
    if (write_state(cfg, j->text) < 0) {
        fail_job(j, "cannot write acme.json in", cfg->acme_state_dir);
        return;
    }
    state_path(cfg, "order-key.pem", path, sizeof path);
    unlink(path);
}

static void job_work(void *arg) {
    acme_job_t *j = arg;
    char path[4096];
    switch (j->kind) {
    case JOB_LOAD:
        work_load(j);
        break;
    case JOB_SET:
    case JOB_DELETE:
        work_values(j);
        break;
    case JOB_KEY:
        state_path(j->cfg, "order-key.pem", path, sizeof path);
        if (!(j->key = acme_key_new_p256()) || write_key(path, j->key) < 0)
            fail_job(j, "cannot make or write", path);
        break;
    case JOB_STATE:
        if (write_state(j->cfg, j->text) < 0)
            fail_job(j, "cannot write acme.json in", j->cfg->acme_state_dir);
        break;
    case JOB_CERT:
        work_cert(j);
        break;
    }
}

/* ---- the loop side ---- */

static void feed(acme_self_t *as, const acme_input_t *in);
static void job_done(int status, void *arg);
static void schedule(acme_self_t *as);

static acme_job_t *job_new(acme_self_t *as, job_kind_t kind) {
    acme_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->as = as;
    j->cfg = as->cfg;
    j->store = as->cs->store;
    j->kind = kind;
    memcpy(j->ids, as->ids, sizeof j->ids);
    return j;
}

static int job_start(acme_self_t *as, acme_job_t *j) {
    if (!j || worker_submit(&as->server->pool, job_work, job_done, j) != 0) {
        if (j)
            job_free(j);
        return -1;
    }
    return 0;
}

static char *current_state_text(const acme_self_t *as) {
    return state_text(as->cfg, as->account_url, as->order_url, (const char(*)[STORE_INSTALLATION_ID_SIZE])as->ids);
}

/* An attempt ends: the next one after backoff, or the renewal. */
static void attempt_over(acme_self_t *as, const char *failure) {
    if (as->running) {
        acme_free(&as->m);
        as->running = false;
    }
    if (!failure) {
        as->failures = 0;
        schedule(as);
        return;
    }
    as->server->metrics.acme.failures_total++;
    as->failures++;
    unsigned shift = as->failures > 8 ? 8 : as->failures - 1;
    uint64_t delay_s = (uint64_t)BACKOFF_FIRST_S << shift;
    if (delay_s > BACKOFF_MAX_S)
        delay_s = BACKOFF_MAX_S;
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    uint64_t delay_ms = delay_s * 1000 + r % (delay_s * 100 + 1); /* up to 10% of jitter */
    as->renew_at_ms = wall_ms() + (int64_t)delay_ms;
    as->server->metrics.acme.next_renewal = as->renew_at_ms / 1000;
    set_state(as, ST_BACKOFF);
    log_error("acme: %s; trying again in %llu s", failure, (unsigned long long)(delay_ms / 1000));
    schedule(as);
}

/* The served certificate's PEM (the machine's cert_pem), taken over from a job. */
static void keep_cert(acme_self_t *as, acme_job_t *j) {
    free(as->cert_pem);
    as->cert_pem = j->chain;
    as->cert_pem_len = j->chain_len;
    j->chain = NULL;
}

static void start_attempt(acme_self_t *as) {
    acme_config_t mc = {
        .directory_url = as->cfg->acme_directory,
        .account_key = as->account_key,
        .account_url = as->account_url[0] ? as->account_url : NULL,
        .order_url = as->order_url[0] ? as->order_url : NULL,
        .cert_key = as->order_key,
        .cert_pem = as->cert_not_after ? as->cert_pem : NULL, /* replaced by the new one */
        .cert_pem_len = as->cert_pem_len,
        .names = as->names,
        .nnames = as->cfg->acme_name_count,
        .contact = as->cfg->acme_contact,
        .timeout_ms = ATTEMPT_TIMEOUT_MS,
    };
    as->checking = false;
    set_state(as, ST_ORDERING);
    if (acme_init(&as->m, &mc) < 0) {
        char why[sizeof as->m.failure];
        snprintf(why, sizeof why, "%s", acme_failure(&as->m));
        acme_free(&as->m);
        attempt_over(as, why);
        return;
    }
    as->running = true;
    log_info("acme: %s certificate for %s%s from %s", as->cert_not_after ? "renewing the" : "getting a",
             as->cfg->acme_names[0], as->cfg->acme_name_count > 1 ? " and more" : "", as->cfg->acme_directory);
    feed(as, NULL);
}

static void set_renewal(acme_self_t *as, const acme_renewal_plan_t *plan);

/* Asks the CA for its renewal window of the served certificate (RFC 9773);
 * check_over() plans with the answer. */
static void start_check(acme_self_t *as) {
    acme_config_t mc = {
        .op = ACME_OP_RENEWAL_INFO,
        .directory_url = as->cfg->acme_directory,
        .account_key = as->account_key,
        .names = as->names,
        .nnames = as->cfg->acme_name_count,
        .cert_pem = as->cert_pem,
        .cert_pem_len = as->cert_pem_len,
        .timeout_ms = CHECK_TIMEOUT_MS,
    };
    as->check_at_ms = 0;
    if (acme_init(&as->m, &mc) < 0) { /* a certificate renewalInfo cannot name: two thirds, no more checks */
        log_info("acme: no renewal window for this certificate (%s)", acme_failure(&as->m));
        acme_free(&as->m);
        schedule(as);
        return;
    }
    as->running = as->checking = true;
    feed(as, NULL);
}

static void check_over(acme_self_t *as) {
    acme_renewal_plan(&as->m, (time_t)as->cert_not_before, (time_t)as->cert_not_after, time(NULL), &as->plan);
    if (acme_state(&as->m) == ACME_FAILED)
        log_warn("acme: renewalInfo: %s; renewing two thirds into the lifetime", acme_failure(&as->m));
    acme_free(&as->m);
    as->running = as->checking = false;
    as->check_at_ms = wall_ms() + as->plan.recheck_ms;
    set_renewal(as, &as->plan);
    schedule(as);
}

static void on_sleep(uv_timer_t *t) {
    acme_self_t *as = t->data;
    schedule(as);
}

/* Sleeps until the CA is to be asked for its renewal window (check_at_ms)
 * or renew_at_ms, whichever comes first (in steps of at most an hour: the
 * wall clock may jump), then asks or starts. */
static void schedule(acme_self_t *as) {
    int64_t now = wall_ms();
    if (as->check_at_ms && as->check_at_ms <= now && as->failures == 0) {
        start_check(as);
        return;
    }
    int64_t left = as->renew_at_ms - now;
    if (as->check_at_ms && as->failures == 0 && as->check_at_ms - now < left)
        left = as->check_at_ms - now;
    else if (left <= 0) {
        start_attempt(as);
        return;
    }
    uv_timer_start(&as->timer, on_sleep, (uint64_t)(left > SLEEP_MAX_MS ? SLEEP_MAX_MS : left), 0);
}

/* The served certificate (valid from nb to na, Unix seconds): renewal two
 * thirds into its lifetime for now, and the CA asked for its window next. */
static void new_cert(acme_self_t *as, int64_t nb, int64_t na) {
    as->cert_not_before = nb;
    as->cert_not_after = na;
    as->plan = (acme_renewal_plan_t){0};
    as->check_at_ms = wall_ms();
    acme_renewal_plan_t fallback = {.at = acme_renew_at((time_t)nb, (time_t)na)};
    set_renewal(as, &fallback);
}

/* The renewal time from plan (the CA's window, or two thirds into the
 * lifetime); renew_before_ms replaces the latter and may bring the former
 * forward. */
static void set_renewal(acme_self_t *as, const acme_renewal_plan_t *plan) {
    int64_t nb = as->cert_not_before, na = as->cert_not_after;
    int64_t at_ms = (int64_t)plan->at * 1000;
    uint64_t before = as->cfg->acme_renew_before_ms;
    if (before && na * 1000 - (int64_t)before > nb * 1000) {
        if (!plan->start || na * 1000 - (int64_t)before < at_ms)
            at_ms = na * 1000 - (int64_t)before;
    } else if (before) {
        log_warn("acme: renew_before_ms is not below the certificate's lifetime: renewing at two thirds of it");
    }
    as->renew_at_ms = at_ms;
    as->server->metrics.acme.next_renewal = at_ms / 1000;
    set_state(as, ST_VALID);
    char until[32], renew[32];
    time_t t_na = (time_t)na, t_at = (time_t)(at_ms / 1000);
    struct tm tm_na, tm_at;
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t_na, &tm_na));
    strftime(renew, sizeof renew, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t_at, &tm_at));
    log_info("acme: certificate valid until %s; renewal at %s (%lld)%s", until, renew, (long long)(at_ms / 1000),
             plan->start ? ", in the CA's window" : "");
}

/* ---- dns-01 values: store, then kvpsend, then wait until served ---- */

static void publish(acme_self_t *as);

static void cancel_waits(acme_self_t *as) {
    for (size_t i = 0; i < as->nvalues; i++) {
        if (as->slots[i].wait)
            kvpsend_wait_cancel(as->slots[i].wait);
        as->slots[i].wait = NULL;
    }
    as->nwaiting = 0;
}

static void values_served(acme_self_t *as, bool ok, const char *error) {
    uv_timer_stop(&as->timer);
    cancel_waits(as);
    acme_input_t in = {.kind = ACME_IN_CHALLENGES_SET, .ok = ok, .error = error};
    feed(as, &in);
}

static void on_value_ready(int status, void *arg) {
    struct acme_self_slot *slot = arg;
    acme_self_t *as = slot->as;
    slot->wait = NULL;
    if (status != 0 || as->closing)
        return; /* kvpsend closed: skd is stopping */
    if (--as->nwaiting == 0) {
        log_info("acme: %zu dns-01 value%s served by the DNS servers", as->nvalues, as->nvalues == 1 ? "" : "s");
        values_served(as, true, NULL);
    }
}

static void on_publish_timer(uv_timer_t *t) {
    acme_self_t *as = t->data;
    if (as->nwaiting || uv_now(as->server->loop) >= as->publish_deadline)
        values_served(as, false, "the DNS servers did not serve the dns-01 values in time");
    else
        publish(as);
}

static void publish(acme_self_t *as) {
    certs_service_t *cs = as->cs;
    uint64_t now = uv_now(as->server->loop);
    if (!cs->kvpsend_open || cs->closing) { /* its first snapshot is being read */
        uv_timer_start(&as->timer, on_publish_timer, PUBLISH_RETRY_MS, 0);
        return;
    }
    as->nwaiting = as->nvalues;
    for (size_t v = 0; v < as->nvalues; v++) {
        char label[STORE_LABEL_SIZE], key[STORE_KVP_KEY_SIZE];
        label_of(as->values[v].name, label);
        uint64_t update = store_kvp_key(key, sizeof key, STORE_KVP_TXT, label, as->values[v].value) == 0
                              ? certs_kv_put(cs, key, "")
                              : 0;
        as->slots[v] = (struct acme_self_slot){.as = as};
        if (!update || !(as->slots[v].wait = kvpsend_wait(cs->kvpsend, update, on_value_ready, &as->slots[v]))) {
            as->nvalues = v; /* the ones with a wait to cancel */
            values_served(as, false, "the DNS push refused a dns-01 value");
            return;
        }
    }
    uv_timer_start(&as->timer, on_publish_timer, as->publish_deadline > now ? as->publish_deadline - now : 0, 0);
}

/* Pushes the deletion of values removed from the store. */
static void unpublish(acme_self_t *as, const store_txt_list_t *removed) {
    for (size_t i = 0; i < as->cfg->acme_name_count; i++) {
        char label[STORE_LABEL_SIZE], key[STORE_KVP_KEY_SIZE];
        label_of(as->cfg->acme_names[i], label);
        for (size_t k = 0; k < removed[i].n; k++)
            if (store_kvp_key(key, sizeof key, STORE_KVP_TXT, label, removed[i].values[k]) == 0)
                certs_kv_del(as->cs, key);
    }
}

/* ---- job completions ---- */

static void loaded(acme_self_t *as, acme_job_t *j) {
    as->account_key = j->account_key;
    as->order_key = j->order_key;
    j->account_key = j->order_key = NULL;
    memcpy(as->ids, j->ids, sizeof as->ids);
    snprintf(as->account_url, sizeof as->account_url, "%s", j->account_url);
    snprintf(as->order_url, sizeof as->order_url, "%s", j->order_url);
    unpublish(as, j->removed);
    if (as->order_url[0])
        log_info("acme: resuming order %s", as->order_url);
    if (j->have_cert && j->covers) {
        keep_cert(as, j);
        new_cert(as, j->not_before, j->not_after);
    } else {
        log_info("acme: %s does not hold a certificate for every name in [acme] names yet", as->cfg->tls_cert);
        as->renew_at_ms = 0;
    }
    schedule(as);
}

static void job_done(int status, void *arg) {
    acme_job_t *j = arg;
    acme_self_t *as = j->as;
    if (as->closing) {
        job_free(j);
        return;
    }
    if (status != 0 && j->rc == 0) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "worker: %s", uv_strerror(status));
    }
    if (j->rc != 0 && j->kind == JOB_LOAD) {
        log_error("acme: %s", j->err);
        server_fail(as->server); /* no certificate can be had without that */
    } else if (j->rc != 0 && j->kind == JOB_SET) {
        acme_input_t in = {.kind = ACME_IN_CHALLENGES_SET, .ok = false, .error = j->err};
        feed(as, &in);
    } else if (j->rc != 0 && j->kind == JOB_DELETE) {
        log_warn("acme: deleting the dns-01 values: %s", j->err);
        feed(as, NULL);
    } else if (j->rc != 0) {
        attempt_over(as, j->err);
    } else {
        switch (j->kind) {
        case JOB_LOAD:
            loaded(as, j);
            break;
        case JOB_SET:
            as->publish_deadline = uv_now(as->server->loop) + PUBLISH_WAIT_MS;
            publish(as);
            break;
        case JOB_DELETE:
            unpublish(as, j->removed);
            feed(as, NULL);
            break;
        case JOB_KEY: {
            EVP_PKEY_free(as->order_key);
            as->order_key = j->key;
            j->key = NULL;
            acme_input_t in = {.kind = ACME_IN_KEY, .key = as->order_key};
            feed(as, &in);
            break;
        }
        case JOB_STATE:
            if (as->saved_line[0]) /* the step it records is durable now */
                log_info("acme: %s", as->saved_line);
            as->saved_line[0] = '\0';
            feed(as, NULL);
            break;
        case JOB_CERT:
            EVP_PKEY_free(as->order_key);
            as->order_key = NULL;
            as->server->metrics.acme.renewals_total++;
            log_info("acme: certificate written to %s, key to %s; swapping the TLS context", as->cfg->tls_cert,
                     as->cfg->tls_key);
            server_reload_tls(as->server); /* new handshakes get it; open connections keep theirs */
            keep_cert(as, j);
            new_cert(as, j->not_before, j->not_after);
            feed(as, NULL);
            break;
        }
    }
    job_free(j);
}

/* ---- the machine ---- */

static void on_answer(int status, const acme_http_response_t *res, const char *error, void *arg) {
    acme_self_t *as = arg;
    acme_input_t in = acme_http_input(status, res, error);
    feed(as, &in);
}

static void on_wake(uv_timer_t *t) { feed(t->data, NULL); }

static int values_job(acme_self_t *as, const acme_action_t *a, job_kind_t kind) {
    acme_job_t *j = job_new(as, kind);
    if (!j)
        return -1;
    as->nvalues = a->nchallenges < ACME_MAX_NAMES ? a->nchallenges : ACME_MAX_NAMES;
    for (size_t v = 0; v < as->nvalues; v++) {
        if (name_index(as->cfg, a->challenges[v].name) == as->cfg->acme_name_count) {
            job_free(j);
            return -1;
        }
        as->values[v] = a->challenges[v];
    }
    memcpy(j->values, as->values, sizeof j->values);
    j->nvalues = as->nvalues;
    return job_start(as, j);
}

static int state_job(acme_self_t *as) {
    acme_job_t *j = job_new(as, JOB_STATE);
    if (j && !(j->text = current_state_text(as))) {
        job_free(j);
        return -1;
    }
    return job_start(as, j);
}

static int cert_job(acme_self_t *as, const acme_action_t *a) {
    acme_job_t *j = job_new(as, JOB_CERT);
    if (!j)
        return -1;
    as->order_url[0] = '\0';
    j->text = current_state_text(as);
    j->chain = malloc(a->chain_len + 1);
    if (!j->text || !j->chain || EVP_PKEY_up_ref(a->cert_key) != 1) {
        job_free(j);
        return -1;
    }
    j->key = a->cert_key;
    memcpy(j->chain, a->chain, a->chain_len);
    j->chain[a->chain_len] = '\0';
    j->chain_len = a->chain_len;
    return job_start(as, j);
}

static void feed(acme_self_t *as, const acme_input_t *in) {
    if (as->closing || !as->running)
        return;
    acme_action_t a;
    acme_advance(&as->m, in, uv_now(as->server->loop), &a);
    if (a.kind == ACME_ACT_SAVE_ACCOUNT || a.kind == ACME_ACT_SAVE_ORDER) /* logged once saved */
        snprintf(as->saved_line, sizeof as->saved_line, "%s", acme_progress(&as->m));
    else if (acme_progress(&as->m)[0])
        log_info("acme: %s", acme_progress(&as->m));
    int rc = 0;
    switch (a.kind) {
    case ACME_ACT_REQUEST: {
        acme_http_request_t r = {.method = a.request.method,
                                 .url = a.request.url,
                                 .body = a.request.body,
                                 .body_len = a.request.body_len,
                                 .content_type = a.request.content_type,
                                 .accept = a.request.accept};
        rc = acme_http_send(&as->http, &r, on_answer, as);
        break;
    }
    case ACME_ACT_WAIT: {
        uint64_t now = uv_now(as->server->loop);
        uv_timer_start(&as->timer, on_wake, a.wake_at > now ? a.wake_at - now : 0, 0);
        break;
    }
    case ACME_ACT_SET_CHALLENGES:
        log_info("acme: setting %zu dns-01 value%s", a.nchallenges, a.nchallenges == 1 ? "" : "s");
        rc = values_job(as, &a, JOB_SET);
        break;
    case ACME_ACT_DELETE_CHALLENGES:
        rc = values_job(as, &a, JOB_DELETE);
        break;
    case ACME_ACT_NEED_KEY:
        rc = job_start(as, job_new(as, JOB_KEY));
        break;
    case ACME_ACT_SAVE_ACCOUNT:
        snprintf(as->account_url, sizeof as->account_url, "%s", acme_account_url(&as->m));
        rc = state_job(as);
        break;
    case ACME_ACT_SAVE_ORDER:
        snprintf(as->order_url, sizeof as->order_url, "%s", acme_order_url(&as->m));
        rc = state_job(as);
        break;
    case ACME_ACT_SAVE_CERT:
        rc = cert_job(as, &a);
        break;
    case ACME_ACT_DONE:
        if (as->checking) {
            check_over(as);
            break;
        }
        log_info("acme: done");
        attempt_over(as, NULL);
        break;
    case ACME_ACT_FAILED: {
        if (as->checking) {
            check_over(as);
            break;
        }
        char why[sizeof as->m.failure];
        snprintf(why, sizeof why, "%s", acme_failure(&as->m));
        attempt_over(as, why);
        break;
    }
    }
    if (rc != 0)
        attempt_over(as, "cannot start a request or a worker job (out of memory or a full queue)");
}

/* ---- life cycle ---- */

static void on_check(uv_check_t *h) {
    acme_self_t *as = h->data;
    if (as->server->stopping)
        acme_self_close(as);
}

int acme_self_init(acme_self_t *as, server_t *s, certs_service_t *cs, const config_t *cfg) {
    memset(as, 0, sizeof *as);
    if (!cfg->acme)
        return 0;
    as->server = s;
    as->cs = cs;
    as->cfg = cfg;
    for (size_t i = 0; i < cfg->acme_name_count; i++)
        as->names[i] = cfg->acme_names[i];
    s->metrics.acme = (metrics_acme_t){.enabled = true, .states = STATES, .state = STATES[ST_STARTING]};
    if (acme_http_init(&as->http, s->loop, cfg->acme_ca_bundle) < 0) {
        log_error("acme: cannot set up HTTPS (libcurl)");
        as->server = NULL;
        return -1;
    }
    uv_timer_init(s->loop, &as->timer);
    as->timer.data = as;
    uv_unref((uv_handle_t *)&as->timer); /* the listeners keep the loop alive */
    uv_check_init(s->loop, &as->stop_watch);
    as->stop_watch.data = as;
    uv_check_start(&as->stop_watch, on_check);
    uv_unref((uv_handle_t *)&as->stop_watch);
    if (job_start(as, job_new(as, JOB_LOAD)) != 0) {
        log_error("acme: cannot start: the worker queue is full");
        return -1;
    }
    log_info("acme: certificate for %zu name(s) from %s, state in %s, written to %s", cfg->acme_name_count,
             cfg->acme_directory, cfg->acme_state_dir, cfg->tls_cert);
    return 0;
}

void acme_self_close(acme_self_t *as) {
    if (!as->server || as->closing)
        return;
    as->closing = true;
    cancel_waits(as);
    if (as->running) {
        acme_free(&as->m);
        as->running = false;
    }
    acme_http_close(&as->http);
    uv_close((uv_handle_t *)&as->timer, NULL);
    uv_close((uv_handle_t *)&as->stop_watch, NULL);
}

void acme_self_free(acme_self_t *as) {
    free(as->cert_pem);
    EVP_PKEY_free(as->account_key);
    EVP_PKEY_free(as->order_key);
    memset(as, 0, sizeof *as);
}
