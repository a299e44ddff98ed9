#include "keys_service.h"

#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/log.h"

static void *json_alloc(size_t n) {
    return malloc(n);
}

static void json_release(void *p) {
    if (p)
        OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

void keys_install_secure_json_alloc(void) {
    json_set_alloc_funcs(json_alloc, json_release);
}

/* ---- PUT /hsm-pin ---- */

typedef struct login_job {
    keys_service_t *ks;
    hsm_status_t status;
    char err[512];
} login_job_t;

static void login_work(void *arg) {
    login_job_t *job = arg;
    keys_service_t *ks = job->ks;
    job->status = hsm_login(ks->hsm, ks->locked, ks->pin_len, job->err, sizeof job->err);
    if (job->status == HSM_OK)
        job->status = hsm_load_keys(ks->hsm, job->err, sizeof job->err);
    /* With the public key known, every tenant's chain is read back and checked. */
    if (job->status == HSM_OK && ks->audit)
        audit_recover_all(ks->audit);
}

static char *public_key_json(const buf_t *der) {
    char b64[256];
    if (der->len > 180)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)der->data, (int)der->len);
    json_t *o = json_pack("{s:s}", "public_key", b64);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void login_done(int status, http_request_t *req, void *arg) {
    login_job_t *job = arg;
    keys_service_t *ks = job->ks;
    ks->logging_in = false;
    if (job->status == HSM_OK) {
        ks->public_key_json = public_key_json(hsm_public_key_der(ks->hsm));
        ks->ready = ks->public_key_json != NULL;
        log_info("HSM ready: keys found, blobs bound with profile kwp, secrets released as %s",
                 hsm_oaep_name(hsm_oaep(ks->hsm)));
        if (req && status == 0)
            http_respond_empty(req, 204);
    } else if (job->status == HSM_ERR_PIN) {
        OPENSSL_cleanse(ks->locked, ks->pin_len);
        ks->pin_len = 0;
        log_warn("HSM PIN was not accepted");
        if (req && status == 0)
            http_respond_error(req, 400, "PIN was not accepted");
    } else {
        /* Fail closed: a missing or duplicated key is for an operator to fix. */
        log_error("HSM not usable: %s", job->err);
        if (req && status == 0)
            http_respond_error(req, 500, "HSM not usable; see the log");
        server_fail(ks->server);
    }
    free(job);
}

static void handle_hsm_pin(http_request_t *req, void *ctx) {
    keys_service_t *ks = ctx;
    if (ks->ready || ks->logging_in || ks->pin_len) {
        http_respond_error(req, 400, "PIN already present");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *pin = json_is_object(body) ? json_string_value(json_object_get(body, "pin")) : NULL;
    size_t pin_len = pin ? strlen(pin) : 0;
    if (!pin || pin_len == 0 || pin_len >= KEYS_SECRET_MAX / 2) {
        json_decref(body);
        http_respond_error(req, 400, "Bad parameters");
        return;
    }
    memcpy(ks->locked, pin, pin_len);
    ks->pin_len = pin_len;
    json_decref(body); /* zeroed by the allocator */
    login_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    job->ks = ks;
    ks->logging_in = true;
    if (worker_submit_for_request(&ks->server->pool, req, login_work, login_done, job) != 0) {
        ks->logging_in = false;
        OPENSSL_cleanse(ks->locked, ks->pin_len);
        ks->pin_len = 0;
        free(job);
        http_respond_error(req, 503, "Server busy");
    }
}

/* ---- PUT /client-key ---- */

static void handle_client_key(http_request_t *req, void *ctx) {
    keys_service_t *ks = ctx;
    if (ks->client_key_len) {
        http_respond_error(req, 400, "Client key already present");
        return;
    }
    size_t room = KEYS_SECRET_MAX / 2;
    if (req->body.len == 0 || req->body.len >= room || !memmem(req->body.data, req->body.len, "PRIVATE KEY", 11)) {
        http_respond_error(req, 400, "Bad parameters");
        return;
    }
    memcpy(ks->locked + room, req->body.data, req->body.len);
    ks->client_key_len = req->body.len;
    log_info("HSM client key received");
    http_respond_empty(req, 204);
}

/* ---- public routes ---- */

static void handle_public_key(http_request_t *req, void *ctx) {
    keys_service_t *ks = ctx;
    if (!ks->ready) {
        http_respond_error(req, 500, "Unhealthy");
        return;
    }
    http_respond_json(req, 200, ks->public_key_json, strlen(ks->public_key_json));
}

static bool healthy(void *ctx) {
    return ((keys_service_t *)ctx)->ready;
}

static void audit_metrics(void *ctx, metrics_t *m) {
    keys_service_t *ks = ctx;
    audit_counters_t n;
    audit_get_counters(ks->audit, &n);
    m->audit = (metrics_audit_t){.enabled = true,
                                 .records_total = n.records_written,
                                 .batches_total = n.batches_written,
                                 .failures_total = n.records_failed};
}

int keys_service_init(keys_service_t *ks, server_t *s, store_t *store, const config_t *cfg) {
    memset(ks, 0, sizeof *ks);
    ks->server = s;
    char err[512];
    if (!store) {
        log_error("%s: [hsm] needs [store] path (tenants and their keys live there)", cfg->path);
        return -1;
    }
    ks->store = store;
    if (cfg->identity_signer_certs &&
        identity_load(&ks->identity, cfg->identity_signer_certs, err, sizeof err) != 0) {
        log_error("%s: [identity] %s", cfg->path, err);
        return -1;
    }
    if (hsm_open(&ks->hsm, cfg->hsm_module, cfg->hsm_token_label, err, sizeof err) != HSM_OK) {
        log_error("%s", err);
        return -1;
    }
    if (getenv("SKD_BENCH_NO_AUDIT")) {
        log_warn("SKD_BENCH_NO_AUDIT is set: key operations are NOT audited (benchmarks only)");
    } else {
        char dir[4096];
        if (cfg->audit_dir) {
            snprintf(dir, sizeof dir, "%s", cfg->audit_dir);
        } else {
            /* Next to the store by default: var/skd.db -> var/audit. */
            const char *slash = strrchr(cfg->store_path, '/');
            snprintf(dir, sizeof dir, "%.*saudit", slash ? (int)(slash - cfg->store_path + 1) : 0, cfg->store_path);
        }
        if (!(ks->audit = audit_open(dir, ks->hsm, s->loop, err, sizeof err))) {
            log_error("audit: %s", err);
            return -1;
        }
        log_info("audit records under %s", dir);
        s->metrics_refresh = audit_metrics;
        s->metrics_ctx = ks;
    }
    ks->locked = mmap(NULL, KEYS_SECRET_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ks->locked == MAP_FAILED) {
        ks->locked = NULL;
        log_error("cannot allocate memory for the PIN");
        return -1;
    }
    if (mlock(ks->locked, KEYS_SECRET_MAX) != 0)
        log_warn("cannot lock the PIN's memory (mlock): it could be swapped out");
    madvise(ks->locked, KEYS_SECRET_MAX, MADV_DONTDUMP);
    s->health = healthy;
    s->health_ctx = ks;
    if (router_add(&s->admin_router, HTTP_PUT, "/hsm-pin", handle_hsm_pin, ks) != 0 ||
        router_add(&s->admin_router, HTTP_PUT, "/client-key", handle_client_key, ks) != 0 ||
        router_add(&s->public_router, HTTP_GET, "/v1/public-signing-key", handle_public_key, ks) != 0 ||
        keys_api_add_routes(ks) != 0)
        return -1;
    return 0;
}

void keys_service_free(keys_service_t *ks) {
    if (ks->locked) {
        OPENSSL_cleanse(ks->locked, KEYS_SECRET_MAX);
        munlock(ks->locked, KEYS_SECRET_MAX);
        munmap(ks->locked, KEYS_SECRET_MAX);
    }
    free(ks->public_key_json);
    audit_close(ks->audit);
    hsm_close(ks->hsm);
    identity_free(&ks->identity);
    memset(ks, 0, sizeof *ks);
}
