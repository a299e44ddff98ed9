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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../common/base64.h"
#include "../common/log.h"
#include "files.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* One event on its way: submitted, then signed, then written. */
typedef struct pending {
    struct chain *chain;
    const audit_event_t *ev; /* the submitter's, valid until done runs */
    uint64_t seq;
    char *text; /* full canonical form and a newline, once signed */
    char *tenant_dir;
    int rc;
    audit_done_fn done;
    void *arg;
    struct pending *next;
} pending_t;

/* One tenant's chain. Guarded by audit_t.lock, except that the signer
 * working on it (signing) owns its recovery. */
typedef struct chain {
    char tenant[32];
    bool recovered;
    uint64_t next_seq;
    char prev_hash[65];     /* hash of record next_seq - 1 (signed, maybe not yet durable) */
    uint64_t durable_seq;
    char durable_hash[65];
    uint64_t epoch;         /* bumped when a failed write rolls the chain back */
    pending_t *events, *events_tail; /* submitted, not yet signed */
    bool signing;           /* a signer works on it */
    bool scheduled;         /* on the ready list */
    struct chain *next;     /* all chains */
    struct chain *next_ready;
} chain_t;

typedef struct plist {
    pending_t *head, *tail;
} plist_t;

struct audit {
    char *dir;
    hsm_t *hsm;
    char node[256];
    pthread_mutex_t lock;
    pthread_cond_t sign_cond;  /* a chain is ready, or stop */
    pthread_cond_t write_cond; /* records to write, or stop */
    chain_t *chains;
    chain_t *ready, *ready_tail; /* chains with events and no signer */
    plist_t to_write;            /* signed, in chain order per tenant */
    plist_t completed;           /* for the loop thread */
    bool stopping;
    unsigned nsigners, signers_running;
    pthread_t *signers;
    pthread_t writer;
    bool writer_started;
    uv_async_t async;
    bool loop_gone; /* audit_close: outcomes run there, not on the loop */
    audit_counters_t counters;
};

static void plist_push(plist_t *l, pending_t *p) {
    p->next = NULL;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
}

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

/* Signs record; returns its full canonical form. "signature" sorts just
 * before "vpc_id", the last key but one (its value an integer), so it is
 * spliced in front of the last ,"vpc_id": instead of serializing twice;
 * base64 needs no escaping. */
static char *sign_record(audit_t *a, json_t *record) {
    char *body = canonical(record);
    if (!body)
        return NULL;
    buf_t sig, full;
    buf_init(&sig, 0);
    buf_init(&full, 0);
    const char *at = NULL;
    for (const char *p = body; (p = strstr(p, ",\"vpc_id\":")) != NULL; p++)
        at = p;
    int ok = at && hsm_sign(a->hsm, body, strlen(body), &sig) == HSM_OK &&
             buf_append(&full, body, (size_t)(at - body)) == 0 && buf_append(&full, ",\"signature\":\"", 14) == 0 &&
             base64_encode(sig.data, sig.len, &full) == 0 && buf_append(&full, "\"", 1) == 0 &&
             buf_append(&full, at, strlen(at) + 1) == 0;
    free(body);
    buf_free(&sig);
    if (!ok) {
        buf_free(&full);
        return NULL;
    }
    return full.data; /* NUL-terminated, owned by the caller */
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
    if (audit_dir_create(a->dir, c->tenant) != 0) {
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
        audit_file_path(path, sizeof path, a->dir, c->tenant, head, false);
        if (check_file(a, path, c->tenant, head, NULL, c->prev_hash) != 0) {
            log_error("audit: the chain of %s is damaged at record %llu (%s): refusing to extend it", c->tenant,
                      (unsigned long long)head, path);
            return -1;
        }
    }
    uint64_t seq = head + 1;
    for (; seq <= max_tmp; seq++) {
        char final[4200], hash[65];
        audit_file_path(path, sizeof path, a->dir, c->tenant, seq, true);
        audit_file_path(final, sizeof final, a->dir, c->tenant, seq, false);
        if (check_file(a, path, c->tenant, seq, c->prev_hash, hash) != 0 || rename(path, final) != 0)
            break;
        memcpy(c->prev_hash, hash, sizeof hash);
        log_warn("audit: completed record %s/%llu left by a crash", c->tenant, (unsigned long long)seq);
    }
    /* The other temporary files: unfinished, or renamed already and left
     * behind when the crash came between the rename and the sync. */
    if ((d = opendir(dir)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 9 && strcmp(e->d_name + len - 9, ".json.tmp") == 0 &&
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    }
    closedir(d);
    if (audit_dir_sync(dir) != 0)
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

/* Writes a batch of one tenant under root (only the records that have a
 * tenant directory when tenant_copy). */
static int write_batch_in(const char *root, const char *tenant, pending_t *batch, bool tenant_copy) {
    size_t n = 0;
    for (pending_t *p = batch; p; p = p->next)
        n++;
    audit_file_t *files = calloc(n, sizeof *files);
    if (!files)
        return -1;
    n = 0;
    for (pending_t *p = batch; p; p = p->next)
        if (!tenant_copy || p->tenant_dir)
            files[n++] = (audit_file_t){.seq = p->seq, .text = p->text};
    int rc = audit_files_write(root, tenant, files, n);
    free(files);
    return rc;
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

/* ---- the pipeline ----
 * Each tenant's records are signed in chain order, by one signer at a time:
 * the worker that submits an event signs it when no one else is signing for
 * that tenant (tenants in parallel), otherwise it queues the event and goes
 * back to the HSM. The writer thread makes signed records durable in
 * batches; the loop thread gets the outcomes through an async handle. No
 * worker waits for another call's signature or for a disk flush. */

/* Events one submitting worker signs at most before it hands the rest to
 * the signer thread. */
#define AUDIT_COMBINE_MAX 4

/* Hands p's outcome to the loop thread. Called with the lock held. */
static void complete_locked(audit_t *a, pending_t *p, int rc) {
    p->rc = rc;
    if (rc != 0)
        a->counters.records_failed++;
    plist_push(&a->completed, p);
    if (!a->loop_gone)
        uv_async_send(&a->async);
}

static void schedule_locked(audit_t *a, chain_t *c) {
    if (c->scheduled || c->signing || !c->events)
        return;
    c->scheduled = true;
    c->next_ready = NULL;
    if (a->ready_tail)
        a->ready_tail->next_ready = c;
    else
        a->ready = c;
    a->ready_tail = c;
    pthread_cond_signal(&a->sign_cond);
}

/* Signs up to max events of c in order, the lock held on entry and exit. */
static void sign_chain_locked(audit_t *a, chain_t *c, size_t max) {
    pending_t *p;
    for (size_t n = 0; n < max && (p = c->events) != NULL; n++) {
        c->events = p->next;
        if (!c->events)
            c->events_tail = NULL;
        if (!c->recovered) {
            pthread_mutex_unlock(&a->lock);
            int rc = recover(a, c);
            pthread_mutex_lock(&a->lock);
            if (rc != 0) {
                complete_locked(a, p, -1);
                continue;
            }
        }
        uint64_t seq = c->next_seq, epoch = c->epoch;
        char prev[65];
        memcpy(prev, c->prev_hash, sizeof prev);
        pthread_mutex_unlock(&a->lock);
        /* The slow part (the HSM signature) runs without the lock. */
        json_t *record = build_record(a, p->ev, seq, prev);
        char *full = record ? sign_record(a, record) : NULL;
        json_decref(record);
        char hash[65];
        if (full) {
            hex_sha256(full, strlen(full), hash);
            if (asprintf(&p->text, "%s\n", full) < 0)
                p->text = NULL;
        }
        free(full);
        pthread_mutex_lock(&a->lock);
        if (!p->text || epoch != c->epoch) {
            /* Unsigned, or chained to records that a failed write took back. */
            if (!p->text)
                log_error("audit: cannot sign a record of %s", c->tenant);
            complete_locked(a, p, -1);
            continue;
        }
        p->seq = seq;
        c->next_seq = seq + 1;
        memcpy(c->prev_hash, hash, sizeof hash);
        plist_push(&a->to_write, p);
        pthread_cond_signal(&a->write_cond);
    }
}

static void *signer_main(void *arg) {
    audit_t *a = arg;
    pthread_setname_np(pthread_self(), "skd-audit-sign");
    pthread_mutex_lock(&a->lock);
    for (;;) {
        chain_t *c = a->ready;
        if (!c) {
            if (a->stopping)
                break;
            pthread_cond_wait(&a->sign_cond, &a->lock);
            continue;
        }
        a->ready = c->next_ready;
        if (!a->ready)
            a->ready_tail = NULL;
        c->scheduled = false;
        c->signing = true;
        sign_chain_locked(a, c, SIZE_MAX);
        c->signing = false;
    }
    a->signers_running--;
    pthread_cond_signal(&a->write_cond);
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Takes the records of chain c out of list l, in order. */
static pending_t *take_chain(plist_t *l, const chain_t *c) {
    plist_t mine = {0}, rest = {0};
    for (pending_t *p = l->head, *next; p; p = next) {
        next = p->next;
        plist_push(p->chain == c ? &mine : &rest, p);
    }
    *l = rest;
    return mine.head;
}

/* Writes one tenant's share of a batch and settles the chain. */
static void write_group(audit_t *a, chain_t *c, pending_t *group) {
    pending_t *last = group;
    while (last->next)
        last = last->next;
    int rc = write_batch(a, c, group);
    pthread_mutex_lock(&a->lock);
    if (rc == 0 || rc == -2) {
        /* Durable under our directory: the chain stands. */
        a->counters.batches_written++;
        for (pending_t *p = group; p; p = p->next)
            a->counters.records_written++;
        c->durable_seq = last->seq;
        hex_sha256(last->text, strlen(last->text) - 1, c->durable_hash);
    } else {
        /* Nothing of the group is on disk: the chain goes back to its last
         * durable record; records signed after the group (chained to it)
         * fail too, and so does one being signed now (epoch). Numbers are
         * reused only by records never written. */
        c->epoch++;
        c->next_seq = c->durable_seq + 1;
        memcpy(c->prev_hash, c->durable_hash, sizeof c->prev_hash);
        for (pending_t *p = take_chain(&a->to_write, c), *next; p; p = next) {
            next = p->next;
            complete_locked(a, p, -1);
        }
    }
    for (pending_t *p = group, *next; p; p = next) {
        next = p->next;
        complete_locked(a, p, rc == 0 ? 0 : -1);
    }
    pthread_mutex_unlock(&a->lock);
}

/* How far below the workers' priority the writer runs (nice). */
#define AUDIT_WRITER_NICE 10

/* The writer runs below the workers' priority. With a CPU free it writes at
 * once, a record per flush at low load; while the workers keep every CPU
 * busy it gets its turn less often, and each flush takes the records that
 * came meanwhile. Flushes are most of what records cost on disk (at
 * saturation ~4 records per flush instead of ~1.2: bench/README.md), and the
 * workers, who wait for nothing here, keep the HSM busy. */
static void lower_priority(void) {
    id_t tid = (id_t)gettid();
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid);
    int nice_new = nice_now + AUDIT_WRITER_NICE > 19 ? 19 : nice_now + AUDIT_WRITER_NICE;
    if (errno != 0 || setpriority(PRIO_PROCESS, tid, nice_new) != 0)
        log_warn("audit: cannot lower the writer's priority: %s", strerror(errno));
}

static void *writer_main(void *arg) {
    audit_t *a = arg;
    pthread_setname_np(pthread_self(), "skd-audit-write");
    lower_priority();
    pthread_mutex_lock(&a->lock);
    for (;;) {
        if (!a->to_write.head) {
            if (a->stopping && a->signers_running == 0)
                break;
            pthread_cond_wait(&a->write_cond, &a->lock);
            continue;
        }
        /* Group commit: everything signed so far goes in this batch. */
        plist_t batch = a->to_write;
        a->to_write = (plist_t){0};
        pthread_mutex_unlock(&a->lock);
        while (batch.head) {
            chain_t *c = batch.head->chain;
            write_group(a, c, take_chain(&batch, c));
        }
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Runs the outcomes on the loop thread. */
static void run_completed(audit_t *a) {
    pthread_mutex_lock(&a->lock);
    pending_t *p = a->completed.head;
    a->completed = (plist_t){0};
    pthread_mutex_unlock(&a->lock);
    for (pending_t *next; p; p = next) {
        next = p->next;
        p->done(p->rc, p->rc == 0 ? p->seq : 0, p->arg);
        free_pending(p);
    }
}

static void on_async(uv_async_t *h) {
    run_completed(h->data);
}

/* ---- public ---- */

static void stop_threads(audit_t *a) {
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->sign_cond);
    pthread_cond_broadcast(&a->write_cond);
    pthread_mutex_unlock(&a->lock);
    for (unsigned i = 0; i < a->nsigners; i++)
        pthread_join(a->signers[i], NULL);
    if (a->writer_started)
        pthread_join(a->writer, NULL);
}

audit_t *audit_open(const char *dir, hsm_t *hsm, uv_loop_t *loop, char *err, size_t err_len) {
    const unsigned signers = 1; /* for chains a worker left work on */
    audit_t *a = calloc(1, sizeof *a);
    if (!a || !(a->dir = strdup(dir)) || !(a->signers = calloc(signers, sizeof *a->signers))) {
        if (a)
            free(a->dir);
        free(a);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (audit_dir_create(dir, NULL) != 0) {
        snprintf(err, err_len, "cannot create the audit directory %s: %s", dir, strerror(errno));
        free(a->signers);
        free(a->dir);
        free(a);
        return NULL;
    }
    a->hsm = hsm;
    if (gethostname(a->node, sizeof a->node - 1) != 0)
        snprintf(a->node, sizeof a->node, "skd");
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->sign_cond, NULL);
    pthread_cond_init(&a->write_cond, NULL);
    if (pthread_create(&a->writer, NULL, writer_main, a) == 0)
        a->writer_started = true;
    for (unsigned i = 0; a->writer_started && i < signers; i++) {
        if (pthread_create(&a->signers[i], NULL, signer_main, a) != 0)
            break;
        a->nsigners++;
        a->signers_running++;
    }
    if (a->nsigners == 0) {
        snprintf(err, err_len, "cannot start the audit threads");
        a->loop_gone = true;
        audit_close(a);
        return NULL;
    }
    uv_async_init(loop, &a->async, on_async);
    a->async.data = a;
    /* Open connections keep the loop running while their records are on
     * their way; the handle alone does not. */
    uv_unref((uv_handle_t *)&a->async);
    return a;
}

void audit_close(audit_t *a) {
    if (!a)
        return;
    /* The loop has closed every handle (serve_run), the async one too.
     * Records submitted still get written; their outcomes run here. */
    pthread_mutex_lock(&a->lock);
    a->loop_gone = true;
    pthread_mutex_unlock(&a->lock);
    stop_threads(a);
    const audit_counters_t *n = &a->counters;
    if (n->batches_written)
        log_info("audit: %llu records written in %llu batches (%.1f per batch), %llu failed",
                 (unsigned long long)n->records_written, (unsigned long long)n->batches_written,
                 (double)n->records_written / (double)n->batches_written, (unsigned long long)n->records_failed);
    run_completed(a);
    for (chain_t *c = a->chains, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_cond_destroy(&a->sign_cond);
    pthread_cond_destroy(&a->write_cond);
    pthread_mutex_destroy(&a->lock);
    free(a->signers);
    free(a->dir);
    free(a);
}

void audit_get_counters(audit_t *a, audit_counters_t *out) {
    pthread_mutex_lock(&a->lock);
    *out = a->counters;
    pthread_mutex_unlock(&a->lock);
}

/* Called with the lock held. */
static chain_t *chain_of_locked(audit_t *a, const char *tenant) {
    chain_t *c = a->chains;
    while (c && strcmp(c->tenant, tenant) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c)) != NULL) {
        snprintf(c->tenant, sizeof c->tenant, "%s", tenant);
        c->next = a->chains;
        a->chains = c;
    }
    return c;
}

int audit_recover_all(audit_t *a) {
    DIR *d = opendir(a->dir);
    if (!d)
        return 0;
    int damaged = 0, chains = 0;
    struct dirent *e;
    pthread_mutex_lock(&a->lock);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "vpc-", 4) != 0 || strlen(e->d_name) >= 32)
            continue;
        chain_t *c = chain_of_locked(a, e->d_name);
        if (!c)
            continue;
        /* At start, before any call: no signer holds the chain. */
        if (!c->recovered && !c->signing && recover(a, c) != 0)
            damaged++;
        chains++;
    }
    pthread_mutex_unlock(&a->lock);
    closedir(d);
    log_info("audit: %d tenant chain(s) checked, %d damaged", chains, damaged);
    return damaged;
}

int audit_submit(audit_t *a, const audit_event_t *ev, const char *tenant_dir, audit_done_fn done, void *arg) {
    if (strlen(ev->tenant_id) >= sizeof ((chain_t *)0)->tenant)
        return -1;
    pending_t *p = calloc(1, sizeof *p);
    if (!p || (tenant_dir && !(p->tenant_dir = strdup(tenant_dir)))) {
        free(p);
        return -1;
    }
    p->ev = ev;
    p->done = done;
    p->arg = arg;
    pthread_mutex_lock(&a->lock);
    chain_t *c = chain_of_locked(a, ev->tenant_id);
    if (!c || a->stopping) {
        pthread_mutex_unlock(&a->lock);
        free_pending(p);
        return -1;
    }
    p->chain = c;
    p->next = NULL;
    if (c->events_tail)
        c->events_tail->next = p;
    else
        c->events = p;
    c->events_tail = p;
    if (!c->signing && !c->scheduled) {
        /* Nobody signs for this tenant: sign here (no hand-off, no context
         * switch), also what others submit meanwhile, up to a bound that
         * keeps this worker's own answer from waiting long; the rest goes to
         * the signer thread. Others only queue while a signer is at it. */
        c->signing = true;
        sign_chain_locked(a, c, AUDIT_COMBINE_MAX);
        c->signing = false;
        schedule_locked(a, c);
    }
    pthread_mutex_unlock(&a->lock);
    return 0;
}
