#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/base64.h"
#include "../common/log.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* A record signed and waiting to be written. */
typedef struct pending {
    uint64_t seq;
    char *text; /* full canonical form and a newline */
    char *tenant_dir;
    int rc;
    bool done;
    struct pending *next;
} pending_t;

/* One tenant's chain. */
typedef struct chain {
    char tenant[32];
    pthread_mutex_t lock;
    pthread_cond_t written;
    bool recovered;
    uint64_t next_seq;
    char prev_hash[65];     /* hash of record next_seq - 1 (signed, maybe not yet durable) */
    uint64_t durable_seq;
    char durable_hash[65];
    pending_t *queue, *tail; /* signed, not yet written, in seq order */
    bool writing;            /* a caller is writing a batch */
    struct chain *next;
} chain_t;

struct audit {
    char *dir;
    hsm_t *hsm;
    char node[256];
    pthread_mutex_t lock; /* guards chains */
    chain_t *chains;
};

/* ---- small helpers ---- */

static void hex_sha256(const char *data, size_t len, char out[65]) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void format_time(uint64_t us, char out[32]) {
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%06uZ", date, (unsigned)(us % 1000000));
}

/* What jq -cjS prints, for records whose strings are printable ASCII. */
static char *canonical(const json_t *record) {
    return json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
}

static json_t *str_or_null(const char *s) {
    return s && *s ? json_string(s) : json_null();
}

static int mkdir_p(const char *path) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

static int fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void record_path(char *out, size_t len, const char *dir, const char *tenant, uint64_t seq, bool tmp) {
    snprintf(out, len, "%s/%s/%09llu.json%s", dir, tenant, (unsigned long long)seq, tmp ? ".tmp" : "");
}

/* ---- records ---- */

static json_t *build_record(const audit_t *a, const audit_event_t *ev, uint64_t seq, const char *prev_hash) {
    char start[32], end[32];
    format_time(ev->op_start_us, start);
    format_time(ev->op_end_us, end);
    return json_pack("{s:i, s:s, s:I, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:{s:o, s:o, s:o}}, s:s, s:o,"
                     " s:{s:o, s:o}, s:s, s:s}",
                     "event_version", 2, "vpc_id", ev->tenant_id, "vpc_op_seq_num", (json_int_t)seq, "op_start",
                     start, "op_end", end, "caller", "type", ev->caller_type, "id", ev->caller_id, "ip",
                     ev->caller_ip, "aws_account_id", ev->account_id, "call", "name", ev->call_name, "parameters",
                     "volume_uuid", str_or_null(ev->volume_uuid), "rsa_key_sha256", str_or_null(ev->rsa_key_sha256),
                     "source_instance_id", str_or_null(ev->source_instance_id), "result", ev->result,
                     "failure_reason", str_or_null(ev->failure_reason), "returned", "encrypted_secret_sha256",
                     str_or_null(ev->blob_sha256[0]), "wrapped_secret_sha256", str_or_null(ev->blob_sha256[1]),
                     "node", a->node, "prev_hash", prev_hash);
}

/* Signs record (adding "signature"); returns its full canonical form. */
static char *sign_record(audit_t *a, json_t *record) {
    char *body = canonical(record);
    if (!body)
        return NULL;
    buf_t sig, text;
    buf_init(&sig, 0);
    buf_init(&text, 0);
    char *full = NULL;
    if (hsm_sign(a->hsm, body, strlen(body), &sig) == HSM_OK && base64_encode(sig.data, sig.len, &text) == 0 &&
        buf_append(&text, "", 1) == 0 && json_object_set_new(record, "signature", json_string(text.data)) == 0)
        full = canonical(record);
    free(body);
    buf_free(&sig);
    buf_free(&text);
    return full;
}

/* ---- recovery ---- */

/* Reads a record file and checks it is record seq of tenant, signed by our
 * key and (when want_prev is set) chained to it; fills its hash. */
static int check_file(const audit_t *a, const char *path, const char *tenant, uint64_t seq, const char *want_prev,
                      char hash[65]) {
    json_error_t jerr;
    json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    char *full = r ? canonical(r) : NULL;
    const char *sig_b64 = json_string_value(json_object_get(r, "signature"));
    json_t *unsigned_copy = r ? json_deep_copy(r) : NULL;
    char *body = NULL;
    if (!full || !sig_b64 || !unsigned_copy || json_object_del(unsigned_copy, "signature") != 0 ||
        !(body = canonical(unsigned_copy)))
        goto done;
    if (json_integer_value(json_object_get(r, "vpc_op_seq_num")) != (json_int_t)seq ||
        !json_string_value(json_object_get(r, "vpc_id")) ||
        strcmp(json_string_value(json_object_get(r, "vpc_id")), tenant) != 0)
        goto done;
    const char *prev = json_string_value(json_object_get(r, "prev_hash"));
    if (want_prev && (!prev || strcmp(prev, want_prev) != 0))
        goto done;
    buf_t sig;
    buf_init(&sig, 0);
    const buf_t *pub = hsm_public_key_der(a->hsm);
    const unsigned char *p = (const unsigned char *)pub->data;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)pub->len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (key && ctx && base64_decode(sig_b64, strlen(sig_b64), &sig) == 0 &&
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(ctx, (const unsigned char *)sig.data, sig.len, (const unsigned char *)body, strlen(body)) ==
            1) {
        hex_sha256(full, strlen(full), hash);
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    buf_free(&sig);
done:
    free(body);
    free(full);
    json_decref(unsigned_copy);
    json_decref(r);
    return rc;
}

/* The head of a tenant's chain from disk: the highest record, checked; then
 * temporary files of a batch that crashed between its fsyncs and renames
 * finish their renames while they continue the chain (none was answered, but
 * their content is whole); other temporary files are removed. */
static int recover(audit_t *a, chain_t *c) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s", a->dir, c->tenant);
    if (mkdir_p(a->dir) != 0 || mkdir_p(dir) != 0) {
        log_error("audit: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    uint64_t head = 0, max_tmp = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long n;
        char tail[16];
        if (sscanf(e->d_name, "%9llu.%15s", &n, tail) != 2 || strlen(e->d_name) < 14)
            continue;
        if (strcmp(tail, "json") == 0 && n > head)
            head = n;
        else if (strcmp(tail, "json.tmp") == 0 && n > max_tmp)
            max_tmp = n;
    }
    closedir(d);
    snprintf(c->prev_hash, sizeof c->prev_hash, ZERO_HASH);
    if (head) {
        record_path(path, sizeof path, a->dir, c->tenant, head, false);
        if (check_file(a, path, c->tenant, head, NULL, c->prev_hash) != 0) {
            log_error("audit: the chain of %s is damaged at record %llu (%s): refusing to extend it", c->tenant,
                      (unsigned long long)head, path);
            return -1;
        }
    }
    uint64_t seq = head + 1;
    for (; seq <= max_tmp; seq++) {
        char final[4200], hash[65];
        record_path(path, sizeof path, a->dir, c->tenant, seq, true);
        record_path(final, sizeof final, a->dir, c->tenant, seq, false);
        if (check_file(a, path, c->tenant, seq, c->prev_hash, hash) != 0 || rename(path, final) != 0)
            break;
        memcpy(c->prev_hash, hash, sizeof hash);
        log_warn("audit: completed record %s/%llu left by a crash", c->tenant, (unsigned long long)seq);
    }
    for (uint64_t t = seq; t <= max_tmp; t++) {
        record_path(path, sizeof path, a->dir, c->tenant, t, true);
        unlink(path);
    }
    if (fsync_dir(dir) != 0)
        return -1;
    c->next_seq = seq;
    c->durable_seq = seq - 1;
    memcpy(c->durable_hash, c->prev_hash, sizeof c->durable_hash);
    c->recovered = true;
    if (head)
        log_info("audit: %s continues after record %llu", c->tenant, (unsigned long long)(seq - 1));
    return 0;
}

/* ---- writing ---- */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    int rc = fsync(fd);
    return close(fd) == 0 && rc == 0 ? 0 : -1;
}

/* Writes a batch under one root: every temporary file written and synced,
 * then renamed in order, then the directory synced once. */
static int write_batch_in(const char *root, const char *tenant, pending_t *batch, bool tenant_copy) {
    char dir[4096], tmp[4200], final[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, tenant);
    if (mkdir_p(root) != 0 || mkdir_p(dir) != 0)
        return -1;
    pending_t *p;
    for (p = batch; p; p = p->next) {
        if (tenant_copy && !p->tenant_dir)
            continue;
        record_path(tmp, sizeof tmp, root, tenant, p->seq, true);
        if (write_file(tmp, p->text) != 0)
            goto fail;
    }
    for (p = batch; p; p = p->next) {
        if (tenant_copy && !p->tenant_dir)
            continue;
        record_path(tmp, sizeof tmp, root, tenant, p->seq, true);
        record_path(final, sizeof final, root, tenant, p->seq, false);
        if (rename(tmp, final) != 0)
            return -1;
    }
    return fsync_dir(dir);
fail:
    for (p = batch; p; p = p->next) {
        record_path(tmp, sizeof tmp, root, tenant, p->seq, true);
        unlink(tmp);
    }
    return -1;
}

static int write_batch(audit_t *a, chain_t *c, pending_t *batch) {
    if (write_batch_in(a->dir, c->tenant, batch, false) != 0) {
        log_error("audit: cannot write records of %s under %s: %s", c->tenant, a->dir, strerror(errno));
        return -1;
    }
    /* The tenant's own copy; a batch's records share the tenant's directory. */
    const char *tenant_dir = NULL;
    for (pending_t *p = batch; p; p = p->next)
        if (p->tenant_dir)
            tenant_dir = p->tenant_dir;
    if (tenant_dir && write_batch_in(tenant_dir, c->tenant, batch, true) != 0) {
        log_error("audit: cannot write records of %s under its audit directory %s: %s", c->tenant, tenant_dir,
                  strerror(errno));
        return -2; /* ours are durable: the chain goes on, these calls fail */
    }
    return 0;
}

static void free_pending(pending_t *p) {
    free(p->text);
    free(p->tenant_dir);
    free(p);
}

/* ---- public ---- */

audit_t *audit_open(const char *dir, hsm_t *hsm, char *err, size_t err_len) {
    audit_t *a = calloc(1, sizeof *a);
    if (!a || !(a->dir = strdup(dir))) {
        free(a);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (mkdir_p(dir) != 0) {
        snprintf(err, err_len, "cannot create the audit directory %s: %s", dir, strerror(errno));
        free(a->dir);
        free(a);
        return NULL;
    }
    a->hsm = hsm;
    if (gethostname(a->node, sizeof a->node - 1) != 0)
        snprintf(a->node, sizeof a->node, "skd");
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void audit_close(audit_t *a) {
    if (!a)
        return;
    for (chain_t *c = a->chains, *next; c; c = next) {
        next = c->next;
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->written);
        free(c);
    }
    pthread_mutex_destroy(&a->lock);
    free(a->dir);
    free(a);
}

static chain_t *chain_of(audit_t *a, const char *tenant) {
    pthread_mutex_lock(&a->lock);
    chain_t *c = a->chains;
    while (c && strcmp(c->tenant, tenant) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c)) != NULL) {
        snprintf(c->tenant, sizeof c->tenant, "%s", tenant);
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->written, NULL);
        c->next = a->chains;
        a->chains = c;
    }
    pthread_mutex_unlock(&a->lock);
    return c;
}

int audit_recover_all(audit_t *a) {
    DIR *d = opendir(a->dir);
    if (!d)
        return 0;
    int damaged = 0, chains = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "vpc-", 4) != 0 || strlen(e->d_name) >= 32)
            continue;
        chain_t *c = chain_of(a, e->d_name);
        if (!c)
            continue;
        pthread_mutex_lock(&c->lock);
        if (!c->recovered && recover(a, c) != 0)
            damaged++;
        pthread_mutex_unlock(&c->lock);
        chains++;
    }
    closedir(d);
    log_info("audit: %d tenant chain(s) checked, %d damaged", chains, damaged);
    return damaged;
}

/* Marks every record of a list done with rc. */
static void finish(pending_t *list, int rc) {
    for (pending_t *p = list; p; p = p->next) {
        p->rc = rc;
        p->done = true;
    }
}

int audit_record(audit_t *a, const audit_event_t *ev, const char *tenant_dir, uint64_t *seq) {
    chain_t *c = chain_of(a, ev->tenant_id);
    if (!c || strlen(ev->tenant_id) >= sizeof c->tenant)
        return -1;
    pthread_mutex_lock(&c->lock);
    if (!c->recovered && recover(a, c) != 0) {
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    /* Sign in chain order: the next record's prev_hash needs this one whole. */
    pending_t *me = calloc(1, sizeof *me);
    json_t *record = me ? build_record(a, ev, c->next_seq, c->prev_hash) : NULL;
    char *full = record ? sign_record(a, record) : NULL;
    json_decref(record);
    if (!full || (tenant_dir && !(me->tenant_dir = strdup(tenant_dir))) || asprintf(&me->text, "%s\n", full) < 0) {
        me->text = NULL;
        free(full);
        if (me)
            free_pending(me);
        pthread_mutex_unlock(&c->lock);
        log_error("audit: cannot sign a record of %s", ev->tenant_id);
        return -1;
    }
    me->seq = c->next_seq++;
    hex_sha256(full, strlen(full), c->prev_hash);
    free(full);
    if (c->tail)
        c->tail->next = me;
    else
        c->queue = me;
    c->tail = me;
    /* Group commit: whoever finds no writer writes everything queued. */
    while (!me->done) {
        if (c->writing) {
            pthread_cond_wait(&c->written, &c->lock);
            continue;
        }
        c->writing = true;
        pending_t *batch = c->queue, *last = c->tail;
        c->queue = c->tail = NULL;
        pthread_mutex_unlock(&c->lock);
        int rc = write_batch(a, c, batch);
        pthread_mutex_lock(&c->lock);
        c->writing = false;
        if (rc == 0 || rc == -2) {
            /* Durable under our directory: the chain stands (records signed
             * meanwhile follow it and go with the next batch). */
            c->durable_seq = last->seq;
            hex_sha256(last->text, strlen(last->text) - 1, c->durable_hash);
            finish(batch, rc == 0 ? 0 : -1);
        } else {
            /* Nothing of the batch is on disk: the chain goes back to its last
             * durable record, and records signed after the batch (chained to
             * it) fail too. Numbers are reused only by records never written. */
            finish(batch, -1);
            finish(c->queue, -1);
            c->queue = c->tail = NULL;
            c->next_seq = c->durable_seq + 1;
            memcpy(c->prev_hash, c->durable_hash, sizeof c->prev_hash);
        }
        pthread_cond_broadcast(&c->written);
    }
    int rc = me->rc;
    *seq = me->seq;
    pthread_mutex_unlock(&c->lock);
    free_pending(me); /* a finished batch is never walked again */
    return rc;
}
