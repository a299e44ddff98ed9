/* verify: checks audit records against audit/FORMAT.md (see verify.h). */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "../common/base64.h"
#include "../common/buf.h"

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define INT_CANON_MAX 9007199254740991LL /* 2^53-1: jq 1.6 prints every integer up to here exactly */
#define SIG_MAX 256                      /* a DER ECDSA P-384 signature is at most 104 bytes */
#define BATCH 2048                       /* records whose signatures are checked together */
#define THREADS_MAX 64
#define AUDIT_PATH_MAX 256 /* a value's path in reasons (".caller.ip"), truncated */
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* One signature to check: SHA-256 of the canonical form without "signature". */
typedef struct sigjob {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned char sig[SIG_MAX];
    size_t sig_len;
    uint32_t num;
    int ok; /* 1 verified, 0 wrong, -1 not a signature, INT_MIN not checked */
} sigjob_t;

typedef struct checker {
    EVP_PKEY *pub;
    unsigned threads;
    sigjob_t *jobs; /* BATCH of them */
    size_t njobs;
    buf_t text; /* the file being read */
    buf_t ser;  /* canonical serialisation */
} checker_t;

/* ---------------------------------------------------------------- helpers */

static void copy_printable(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = (src[i] >= 0x20 && src[i] <= 0x7e) ? src[i] : '?';
    dst[i] = '\0';
}

static void set_failure(audit_verify_failure_t *fail, const char *tenant, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_failure(audit_verify_failure_t *fail, const char *tenant, const char *file, const char *fmt, ...) {
    copy_printable(fail->tenant, sizeof fail->tenant, tenant ? tenant : "");
    copy_printable(fail->file, sizeof fail->file, file ? file : "");
    va_list ap;
    va_start(ap, fmt);
    char reason[sizeof fail->reason];
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    copy_printable(fail->reason, sizeof fail->reason, reason);
}

static void hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool is_hash_hex(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

static bool printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* NNNNNNNNN.json: returns the number, or -1. */
static long record_number(const char *name) {
    if (strlen(name) != 14 || strcmp(name + 9, ".json") != 0)
        return -1;
    long n = 0;
    for (int i = 0; i < 9; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        n = n * 10 + (name[i] - '0');
    }
    return n;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---------------------------------------------------------------- canonical form */

/* Only objects, printable-ASCII strings, integers of magnitude <= 2^53-1
 * and null: for those, jansson's canonical output equals jq -cjS. path
 * (AUDIT_PATH_MAX bytes, plen used) names v in the reason. */
static int check_value(const json_t *v, int depth, char *path, size_t plen, char *reason, size_t rlen) {
    const char *what = NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (depth >= AUDIT_MAX_DEPTH) {
            what = "objects nested too deep";
            break;
        }
        const char *key;
        const json_t *child;
        json_object_foreach ((json_t *)v, key, child) {
            if (!printable(key, strlen(key))) {
                snprintf(reason, rlen, "not canonical: a key with a byte outside printable ASCII in %s",
                         plen ? path : ".");
                return -1;
            }
            int n = snprintf(path + plen, AUDIT_PATH_MAX - plen, ".%s", key);
            size_t clen = n < 0 ? plen : (size_t)n + plen >= AUDIT_PATH_MAX ? AUDIT_PATH_MAX - 1 : (size_t)n + plen;
            if (check_value(child, depth + 1, path, clen, reason, rlen) != 0)
                return -1;
            path[plen] = '\0';
        }
        return 0;
    }
    case JSON_STRING:
        if (printable(json_string_value(v), json_string_length(v)))
            return 0;
        what = "a string with a byte outside printable ASCII";
        break;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= -INT_CANON_MAX && i <= INT_CANON_MAX)
            return 0;
        what = "an integer beyond 2^53-1";
        break;
    }
    case JSON_NULL:
        return 0;
    case JSON_REAL:
        what = "a float";
        break;
    case JSON_ARRAY:
        what = "an array";
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        what = "a boolean";
        break;
    }
    snprintf(reason, rlen, "not canonical: %s at %s", what, plen ? path : ".");
    return -1;
}

/* Serialises v canonically into c->ser (without a terminating NUL). */
static int canonical(checker_t *c, const json_t *v) {
    for (;;) {
        size_t n = json_dumpb(v, c->ser.data, c->ser.cap, CANON_FLAGS);
        if (n == 0)
            return -1;
        if (n <= c->ser.cap) {
            c->ser.len = n;
            return 0;
        }
        c->ser.len = 0;
        if (buf_reserve(&c->ser, n) != 0)
            return -1;
    }
}

/* Everything but the signature itself. On success fills job (digest and
 * signature), hash_hex (this record's canonical hash) and post (a chain
 * break to report if the signature verifies, else ""). Returns 0, or -1
 * with reason. */
static int prepare_record(checker_t *c, const char *text, size_t len, const char *tenant, uint64_t seq,
                          const char *prev_hex, sigjob_t *job, char hash_hex[65], char *post, size_t postlen,
                          char *reason, size_t rlen) {
    post[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[JSON_ERROR_TEXT_LENGTH];
        copy_printable(msg, sizeof msg, jerr.text); /* it may quote the input */
        snprintf(reason, rlen, "unparsable: %s (line %d, column %d)", msg, jerr.line, jerr.column);
        return -1;
    }
    int rc = -1;
    char path[AUDIT_PATH_MAX] = "";
    if (!json_is_object(root)) {
        snprintf(reason, rlen, "not canonical: not a JSON object");
        goto out;
    }
    if (check_value(root, 0, path, 0, reason, rlen) != 0)
        goto out;
    if (canonical(c, root) != 0) {
        snprintf(reason, rlen, "out of memory");
        goto out;
    }
    if (len != c->ser.len + 1 || text[len - 1] != '\n' || memcmp(text, c->ser.data, c->ser.len) != 0) {
        snprintf(reason, rlen, "not canonical: the file is not the record's canonical form (jq -cjS .) and one newline");
        goto out;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)c->ser.data, c->ser.len, md);
    hex(md, sizeof md, hash_hex);

    const json_t *v = json_object_get(root, "event_version");
    if (!v) {
        snprintf(reason, rlen, "missing field: event_version");
        goto out;
    }
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        if (json_is_integer(v))
            snprintf(reason, rlen, "bad event_version: %lld (expected 2)", (long long)json_integer_value(v));
        else
            snprintf(reason, rlen, "bad event_version: not an integer (expected 2)");
        goto out;
    }

    v = json_object_get(root, "vpc_id");
    if (!v) {
        snprintf(reason, rlen, "missing field: vpc_id");
        goto out;
    }
    if (!json_is_string(v)) {
        snprintf(reason, rlen, "wrong tenant: vpc_id is not a string");
        goto out;
    }
    if (strcmp(json_string_value(v), tenant) != 0) {
        char dir[128];
        copy_printable(dir, sizeof dir, tenant);
        snprintf(reason, rlen, "wrong tenant: vpc_id is \"%.128s\" in the directory of %s", json_string_value(v),
                 dir);
        goto out;
    }

    v = json_object_get(root, "vpc_op_seq_num");
    if (!v) {
        snprintf(reason, rlen, "missing field: vpc_op_seq_num");
        goto out;
    }
    if (!json_is_integer(v)) {
        snprintf(reason, rlen, "misnumbered: vpc_op_seq_num is not an integer");
        goto out;
    }
    json_int_t got = json_integer_value(v);
    if ((uint64_t)got != seq || got < 1) {
        if (got >= 1 && (uint64_t)got < seq)
            snprintf(reason, rlen, "duplicate: vpc_op_seq_num %lld in file %09llu.json repeats record %lld",
                     (long long)got, (unsigned long long)seq, (long long)got);
        else
            snprintf(reason, rlen, "misnumbered: vpc_op_seq_num %lld in file %09llu.json", (long long)got,
                     (unsigned long long)seq);
        goto out;
    }

    v = json_object_get(root, "prev_hash");
    if (!v) {
        snprintf(reason, rlen, "missing field: prev_hash");
        goto out;
    }
    if (!json_is_string(v) || !is_hash_hex(json_string_value(v))) {
        snprintf(reason, rlen, "bad prev_hash: not 64 lowercase hex digits");
        goto out;
    }
    if (strcmp(json_string_value(v), prev_hex ? prev_hex : ZERO_HASH) != 0) {
        if (seq == 1)
            snprintf(post, postlen, "chain break (prev_hash of record 1 is not 64 zeros)");
        else
            snprintf(post, postlen, "chain break (prev_hash does not match record %llu)",
                     (unsigned long long)(seq - 1));
    }

    v = json_object_get(root, "signature");
    if (!v) {
        snprintf(reason, rlen, "missing field: signature");
        goto out;
    }
    buf_t sig;
    buf_init(&sig, 0);
    if (!json_is_string(v) || base64_decode(json_string_value(v), json_string_length(v), &sig) != 0) {
        buf_free(&sig);
        snprintf(reason, rlen, "bad signature: not base64");
        goto out;
    }
    if (sig.len == 0 || sig.len > SIG_MAX) {
        snprintf(reason, rlen, "bad signature: not a DER ECDSA signature (%zu bytes)", sig.len);
        buf_free(&sig);
        goto out;
    }
    memcpy(job->sig, sig.data, sig.len);
    job->sig_len = sig.len;
    buf_free(&sig);

    if (json_object_del(root, "signature") != 0 || canonical(c, root) != 0) {
        snprintf(reason, rlen, "out of memory");
        goto out;
    }
    SHA256((const unsigned char *)c->ser.data, c->ser.len, job->digest);
    job->num = (uint32_t)seq;
    job->ok = INT_MIN;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- signatures */

typedef struct sigrun {
    sigjob_t *jobs;
    size_t n;
    atomic_size_t next;
    EVP_PKEY *pub;
} sigrun_t;

static void *sig_worker(void *arg) {
    sigrun_t *r = arg;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(r->pub, NULL);
    if (!ctx || EVP_PKEY_verify_init(ctx) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return NULL; /* the other threads (or none: "not checked") do the work */
    }
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n)
            break;
        sigjob_t *j = &r->jobs[i];
        int v = EVP_PKEY_verify(ctx, j->sig, j->sig_len, j->digest, sizeof j->digest);
        j->ok = v == 1 ? 1 : v == 0 ? 0 : -1;
        if (v != 1)
            ERR_clear_error();
    }
    EVP_PKEY_CTX_free(ctx);
    return NULL;
}

/* Checks the batch's signatures; returns the index of the first that does
 * not verify, or -1 if all do. */
static long run_batch(checker_t *c) {
    if (c->njobs == 0)
        return -1;
    sigrun_t r = {.jobs = c->jobs, .n = c->njobs, .pub = c->pub};
    atomic_init(&r.next, 0);
    pthread_t tids[THREADS_MAX];
    unsigned want = c->threads;
    size_t useful = (c->njobs + 15) / 16;
    if (want > useful)
        want = (unsigned)useful;
    unsigned started = 0;
    for (unsigned t = 1; t < want; t++) {
        if (pthread_create(&tids[started], NULL, sig_worker, &r) != 0)
            break;
        started++;
    }
    sig_worker(&r);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    for (size_t i = 0; i < c->njobs; i++)
        if (c->jobs[i].ok != 1)
            return (long)i;
    return -1;
}

/* ---------------------------------------------------------------- one tenant */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int read_file(checker_t *c, int dfd, const char *name, char *reason, size_t rlen) {
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(reason, rlen, "unexpected file (a symbolic link)");
        else
            snprintf(reason, rlen, "unreadable: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(reason, rlen, "unexpected file (not a regular file)");
        close(fd);
        return -1;
    }
    if (st.st_size > AUDIT_RECORD_MAX) {
        snprintf(reason, rlen, "too large (%lld bytes, at most %d)", (long long)st.st_size, AUDIT_RECORD_MAX);
        close(fd);
        return -1;
    }
    c->text.len = 0;
    if (buf_reserve(&c->text, (size_t)st.st_size + 1) != 0) {
        snprintf(reason, rlen, "out of memory");
        close(fd);
        return -1;
    }
    for (;;) {
        if (c->text.len == c->text.cap && buf_reserve(&c->text, 4096) != 0) {
            snprintf(reason, rlen, "too large (at most %d bytes)", AUDIT_RECORD_MAX);
            close(fd);
            return -1;
        }
        ssize_t n = read(fd, c->text.data + c->text.len, c->text.cap - c->text.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(reason, rlen, "unreadable: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        c->text.len += (size_t)n;
    }
    close(fd);
    if (c->text.len == 0) {
        snprintf(reason, rlen, "unparsable: empty file");
        return -1;
    }
    return 0;
}

/* Verifies the open tenant directory dfd (closed here). */
static int verify_tenant_fd(checker_t *c, int dfd, const char *tenant, audit_verify_tenant_t *out,
                            audit_verify_failure_t *fail) {
    out->tenant = tenant;
    out->records = 0;
    memcpy(out->last_hash, ZERO_HASH, sizeof out->last_hash);

    DIR *d = fdopendir(dfd);
    if (!d) {
        set_failure(fail, tenant, NULL, "unreadable directory: %s", strerror(errno));
        close(dfd);
        return AUDIT_VERIFY_FAILED;
    }
    uint32_t *nums = NULL;
    size_t n = 0, cap = 0;
    char *unexpected = NULL;
    int rc = AUDIT_VERIFY_FAILED;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || ends_with(name, ".json.tmp"))
            continue;
        long num = record_number(name);
        if (num < 0) {
            if (!unexpected || strcmp(name, unexpected) < 0) {
                free(unexpected);
                unexpected = strdup(name);
                if (!unexpected) {
                    set_failure(fail, tenant, NULL, "out of memory");
                    goto out;
                }
            }
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            uint32_t *p = realloc(nums, ncap * sizeof *p);
            if (!p) {
                set_failure(fail, tenant, NULL, "out of memory");
                goto out;
            }
            nums = p;
            cap = ncap;
        }
        nums[n++] = (uint32_t)num;
        errno = 0;
    }
    if (errno != 0) {
        set_failure(fail, tenant, NULL, "unreadable directory: %s", strerror(errno));
        goto out;
    }
    if (unexpected) {
        set_failure(fail, tenant, unexpected, "unexpected file");
        goto out;
    }
    if (n > 1)
        qsort(nums, n, sizeof *nums, cmp_u32);

    char prev_hex[65] = ZERO_HASH;
    char pre_reason[512] = "", pre_file[32] = "";
    char post_reason[512] = "";
    c->njobs = 0;
    size_t i = 0;
    for (;;) {
        bool stop = false;
        while (i < n && c->njobs < BATCH) {
            uint32_t num = nums[i];
            char name[32];
            snprintf(name, sizeof name, "%09u.json", num);
            uint64_t seq = i + 1;
            if (num != seq) {
                snprintf(pre_file, sizeof pre_file, "%s", name);
                if (num == 0)
                    snprintf(pre_reason, sizeof pre_reason, "misnumbered: 0 (numbering starts at 1)");
                else if (i == 0)
                    snprintf(pre_reason, sizeof pre_reason, "gap: %u is the first record (numbering starts at 1)",
                             num);
                else
                    snprintf(pre_reason, sizeof pre_reason, "gap: %u follows %u", num, nums[i - 1]);
                stop = true;
                break;
            }
            sigjob_t *job = &c->jobs[c->njobs];
            char hash_hex[65];
            if (read_file(c, dirfd(d), name, pre_reason, sizeof pre_reason) != 0 ||
                prepare_record(c, c->text.data, c->text.len, tenant, seq, prev_hex, job, hash_hex, post_reason,
                               sizeof post_reason, pre_reason, sizeof pre_reason) != 0) {
                snprintf(pre_file, sizeof pre_file, "%s", name);
                stop = true;
                break;
            }
            c->njobs++;
            i++;
            memcpy(prev_hex, hash_hex, sizeof prev_hex);
            if (post_reason[0]) {
                stop = true;
                break;
            }
        }
        long bad = run_batch(c);
        if (bad >= 0) {
            char name[32];
            snprintf(name, sizeof name, "%09u.json", c->jobs[bad].num);
            int ok = c->jobs[bad].ok;
            set_failure(fail, tenant, name, "%s",
                        ok == 0    ? "bad signature"
                        : ok == -1 ? "bad signature (not a DER ECDSA signature for this key)"
                                   : "signature not checked (OpenSSL error)");
            goto out;
        }
        if (post_reason[0]) {
            char name[32];
            snprintf(name, sizeof name, "%09u.json", c->jobs[c->njobs - 1].num);
            set_failure(fail, tenant, name, "%s", post_reason);
            goto out;
        }
        if (stop) {
            set_failure(fail, tenant, pre_file, "%s", pre_reason);
            goto out;
        }
        c->njobs = 0;
        if (i >= n)
            break;
    }
    out->records = n;
    memcpy(out->last_hash, prev_hex, sizeof out->last_hash);
    rc = AUDIT_VERIFY_OK;
out:
    c->njobs = 0;
    free(unexpected);
    free(nums);
    closedir(d);
    return rc;
}

static unsigned thread_count(const audit_verify_opts_t *opts) {
    long t = opts && opts->threads ? (long)opts->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1)
        t = 1;
    if (t > THREADS_MAX)
        t = THREADS_MAX;
    return (unsigned)t;
}

static int checker_init(checker_t *c, EVP_PKEY *pub, const audit_verify_opts_t *opts) {
    memset(c, 0, sizeof *c);
    c->pub = pub;
    c->threads = thread_count(opts);
    c->jobs = calloc(BATCH, sizeof *c->jobs);
    buf_init(&c->text, AUDIT_RECORD_MAX + 1);
    buf_init(&c->ser, 0);
    if (!c->jobs || buf_reserve(&c->ser, 4096) != 0) {
        free(c->jobs);
        buf_free(&c->ser);
        return -1;
    }
    return 0;
}

static void checker_free(checker_t *c) {
    free(c->jobs);
    buf_free(&c->text);
    buf_free(&c->ser);
}

/* ---------------------------------------------------------------- public API */

EVP_PKEY *audit_verify_load_pubkey(const char *pem_path, char *err, size_t errlen) {
    FILE *f = fopen(pem_path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", pem_path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) {
        ERR_clear_error();
        snprintf(err, errlen, "%s holds no PEM public key (BEGIN PUBLIC KEY)", pem_path);
        return NULL;
    }
    char group[64] = "";
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1 ||
        strcmp(group, "secp384r1") != 0) {
        ERR_clear_error();
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "%s is not an EC P-384 public key", pem_path);
        return NULL;
    }
    return pkey;
}

int audit_verify_tenant_dir(const char *path, const char *tenant, EVP_PKEY *pub, const audit_verify_opts_t *opts,
                            audit_verify_tenant_t *out, audit_verify_failure_t *fail) {
    memset(fail, 0, sizeof *fail);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        set_failure(fail, tenant, NULL, "unreadable directory: %s", strerror(errno));
        return AUDIT_VERIFY_FAILED;
    }
    checker_t c;
    if (checker_init(&c, pub, opts) != 0) {
        close(dfd);
        set_failure(fail, tenant, NULL, "out of memory");
        return AUDIT_VERIFY_ERROR;
    }
    int rc = verify_tenant_fd(&c, dfd, tenant, out, fail);
    checker_free(&c);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int audit_verify_dir(const char *dir, EVP_PKEY *pub, const audit_verify_opts_t *opts, audit_verify_summary_t *sum,
                     audit_verify_failure_t *fail) {
    memset(fail, 0, sizeof *fail);
    memset(sum, 0, sizeof *sum);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        set_failure(fail, NULL, NULL, "cannot open %s: %s", dir, strerror(errno));
        return AUDIT_VERIFY_ERROR;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        set_failure(fail, NULL, NULL, "cannot read %s: %s", dir, strerror(errno));
        close(fd);
        return AUDIT_VERIFY_ERROR;
    }

    char **names = NULL;
    size_t n = 0, cap = 0;
    char *unexpected = NULL;
    int rc = AUDIT_VERIFY_ERROR;
    checker_t c;
    bool have_checker = false;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
            if (!unexpected || strcmp(name, unexpected) < 0) {
                free(unexpected);
                if (!(unexpected = strdup(name))) {
                    set_failure(fail, NULL, NULL, "out of memory");
                    goto out;
                }
            }
            errno = 0;
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **p = realloc(names, ncap * sizeof *p);
            if (!p) {
                set_failure(fail, NULL, NULL, "out of memory");
                goto out;
            }
            names = p;
            cap = ncap;
        }
        if (!(names[n] = strdup(name))) {
            set_failure(fail, NULL, NULL, "out of memory");
            goto out;
        }
        n++;
        errno = 0;
    }
    if (errno != 0) {
        set_failure(fail, NULL, NULL, "cannot read %s: %s", dir, strerror(errno));
        goto out;
    }
    if (unexpected) {
        set_failure(fail, unexpected, NULL, "unexpected file (not a tenant directory)");
        rc = AUDIT_VERIFY_FAILED;
        goto out;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    if (checker_init(&c, pub, opts) != 0) {
        set_failure(fail, NULL, NULL, "out of memory");
        goto out;
    }
    have_checker = true;
    for (size_t i = 0; i < n; i++) {
        int tfd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tfd < 0) {
            set_failure(fail, names[i], NULL, "unreadable directory: %s", strerror(errno));
            rc = AUDIT_VERIFY_FAILED;
            goto out;
        }
        audit_verify_tenant_t t;
        rc = verify_tenant_fd(&c, tfd, names[i], &t, fail);
        if (rc != AUDIT_VERIFY_OK)
            goto out;
        sum->tenants++;
        sum->records += t.records;
        if (opts && opts->on_tenant)
            opts->on_tenant(&t, opts->arg);
    }
    rc = AUDIT_VERIFY_OK;
out:
    if (have_checker)
        checker_free(&c);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(unexpected);
    closedir(d);
    return rc;
}

int audit_verify_record(const char *text, size_t len, const char *tenant, uint64_t seq, const char *prev_hash,
                        EVP_PKEY *pub, char hash[65], char *reason, size_t reasonlen) {
    checker_t c;
    audit_verify_opts_t one = {.threads = 1};
    if (checker_init(&c, pub, &one) != 0) {
        snprintf(reason, reasonlen, "out of memory");
        return AUDIT_VERIFY_ERROR;
    }
    int rc = AUDIT_VERIFY_FAILED;
    char post[512], own[65];
    if (len == 0 || len > AUDIT_RECORD_MAX) {
        snprintf(reason, reasonlen, len ? "too large" : "unparsable: empty");
        goto out;
    }
    if (prepare_record(&c, text, len, tenant, seq, prev_hash, &c.jobs[0], own, post, sizeof post, reason,
                       reasonlen) != 0)
        goto out;
    c.njobs = 1;
    if (run_batch(&c) >= 0) {
        snprintf(reason, reasonlen, "%s", c.jobs[0].ok == 0 ? "bad signature" : "bad signature (not a DER ECDSA signature for this key)");
        goto out;
    }
    if (post[0]) {
        snprintf(reason, reasonlen, "%s", post);
        goto out;
    }
    if (hash)
        memcpy(hash, own, 65);
    rc = AUDIT_VERIFY_OK;
out:
    checker_free(&c);
    return rc;
}
