/* The audit verifier (audit/verify.c) on records made here with jansson
 * and OpenSSL the way audit/FORMAT.md says: valid chains, every kind of
 * damage with its exact reason, batches of signatures checked in parallel
 * still reporting the first failure, and the stock-tools recipe of
 * FORMAT.md (jq + openssl) on a record made here.
 *
 * Also a generator for benchmarks:
 *   test_audit_verify --generate AUDIT-DIR PUBKEY-PEM TENANTS RECORDS
 * writes TENANTS chains of RECORDS records each (one process per tenant)
 * and the public key; then: time sk audit verify AUDIT-DIR --pubkey PEM */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "../../audit/verify.h"
#include "../../common/base64.h"

#define CANON (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define ZERO "0000000000000000000000000000000000000000000000000000000000000000"
#define ONES "1111111111111111111111111111111111111111111111111111111111111111"
#define TA "vpc-0123456789abcdef0"
#define TB "vpc-0fedcba9876543210"

static char dir[64];    /* the test's scratch directory */
static char pubpem[128];
static EVP_PKEY *key;   /* the signing key */
static EVP_PKEY *pub;   /* its public half, as the verifier loads it */
static EVP_PKEY *other; /* an impostor */

/* ---------------------------------------------------------------- making records */

static void hexs(const unsigned char *md, char out[65]) {
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static json_t *base_record(const char *tenant, uint64_t seq, const char *prev) {
    return json_pack("{s:i, s:s, s:I, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:{s:s, s:s, s:n}},"
                     " s:s, s:n, s:{s:n, s:s}, s:s, s:s}",
                     "event_version", 2, "vpc_id", tenant, "vpc_op_seq_num", (json_int_t)seq, "op_start",
                     "2026-11-22T15:33:00.123456Z", "op_end", "2026-11-22T15:33:00.124900Z", "caller", "type",
                     "instance", "id", "i-0123456789abcdef0", "ip", "127.0.0.1", "aws_account_id", "111122223333",
                     "call", "name", "decrypt-secret", "parameters", "volume_uuid",
                     "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "rsa_key_sha256", ZERO, "source_instance_id", "result",
                     "Succeed", "failure_reason", "returned", "encrypted_secret_sha256", "wrapped_secret_sha256",
                     ZERO, "node", "node-1", "prev_hash", prev ? prev : ZERO);
}

/* Signs rec with k (over its canonical form without "signature"), adds
 * the signature and returns the full canonical form plus a newline (the
 * file's bytes), its hash in hash (may be NULL). Takes rec. */
static char *finish(json_t *rec, EVP_PKEY *k, char hash[65]) {
    json_object_del(rec, "signature");
    char *ser = json_dumps(rec, CANON);
    assert_non_null(ser);
    unsigned char sig[256];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)ser, strlen(ser)), 1);
    EVP_MD_CTX_free(md);
    free(ser);
    buf_t b64;
    buf_init(&b64, 0);
    base64_encode(sig, siglen, &b64);
    buf_append(&b64, "", 1);
    json_object_set_new(rec, "signature", json_string(b64.data));
    buf_free(&b64);
    char *full = json_dumps(rec, CANON);
    assert_non_null(full);
    json_decref(rec);
    if (hash) {
        unsigned char h[32];
        SHA256((unsigned char *)full, strlen(full), h);
        hexs(h, hash);
    }
    size_t n = strlen(full);
    char *text = realloc(full, n + 2);
    memcpy(text + n, "\n", 2);
    return text;
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void tenant_path(char *out, size_t cap, const char *root, const char *tenant, uint64_t seq) {
    if (seq)
        snprintf(out, cap, "%s/%s/%09llu.json", root, tenant, (unsigned long long)seq);
    else
        snprintf(out, cap, "%s/%s", root, tenant);
}

/* Writes records 1..n of tenant under root; prev (in/out) chains them. */
static void write_chain(const char *root, const char *tenant, uint64_t from, uint64_t n, char prev[65]) {
    char path[512];
    tenant_path(path, sizeof path, root, tenant, 0);
    mkdir(root, 0700);
    mkdir(path, 0700);
    for (uint64_t s = from; s <= n; s++) {
        char *text = finish(base_record(tenant, s, prev), key, prev);
        tenant_path(path, sizeof path, root, tenant, s);
        put(path, text);
        free(text);
    }
}

/* Rewrites record seq of tenant under root, re-signed by k after mutate. */
static void rewrite(const char *root, const char *tenant, uint64_t seq, const char *prev, EVP_PKEY *k,
                    void (*mutate)(json_t *rec)) {
    json_t *rec = base_record(tenant, seq, prev);
    if (mutate)
        mutate(rec);
    char *text = finish(rec, k, NULL);
    char path[512];
    tenant_path(path, sizeof path, root, tenant, seq);
    put(path, text);
    free(text);
}

/* Runs a shell command in the test's directory. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char script[2048], cmd[2200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(script, sizeof script, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s", dir, script);
    return system(cmd);
}

/* A fresh audit directory name under the scratch directory. */
static const char *fresh(void) {
    static char root[128];
    static int n;
    snprintf(root, sizeof root, "%s/audit%d", dir, ++n);
    mkdir(root, 0700);
    return root;
}

/* ---------------------------------------------------------------- checking */

typedef struct seen {
    int n;
    char tenant[4][64];
    uint64_t records[4];
    char last[4][65];
} seen_t;

static void on_tenant(const audit_verify_tenant_t *t, void *arg) {
    seen_t *s = arg;
    if (s->n < 4) {
        snprintf(s->tenant[s->n], sizeof s->tenant[0], "%s", t->tenant);
        s->records[s->n] = t->records;
        memcpy(s->last[s->n], t->last_hash, 65);
    }
    s->n++;
}

/* Verifies root with threads threads; expects rc and, on failure, exactly
 * tenant, file and a reason starting with reason. */
static void expect(const char *root, unsigned threads, int want, const char *tenant, const char *file,
                   const char *reason) {
    audit_verify_opts_t o = {.threads = threads};
    audit_verify_summary_t sum;
    audit_verify_failure_t fail;
    int rc = audit_verify_dir(root, pub, &o, &sum, &fail);
    if (rc != want)
        fail_msg("%s: want %d, got %d (%s/%s: %s)", root, want, rc, fail.tenant, fail.file, fail.reason);
    if (want == AUDIT_VERIFY_OK)
        return;
    if ((tenant && strcmp(fail.tenant, tenant) != 0) || (file && strcmp(fail.file, file) != 0) ||
        strncmp(fail.reason, reason, strlen(reason)) != 0)
        fail_msg("%s: want %s/%s: %s..., got %s/%s: %s", root, tenant, file, reason, fail.tenant, fail.file,
                 fail.reason);
}

/* The record text of a valid record 1 of TA, with one substring replaced. */
static char *edited(const char *from, const char *to) {
    char *text = finish(base_record(TA, 1, NULL), key, NULL);
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text), a = strlen(from), b = strlen(to);
    char *out = malloc(n - a + b + 1);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), to, b);
    memcpy(out + (at - text) + b, at + a, n - (size_t)(at - text) - a + 1);
    free(text);
    return out;
}

static void expect_record(const char *text, int want, const char *reason) {
    char got[512] = "", hash[65];
    int rc = audit_verify_record(text, strlen(text), TA, 1, NULL, pub, hash, got, sizeof got);
    if (rc != want || (reason && strncmp(got, reason, strlen(reason)) != 0))
        fail_msg("want %d %s, got %d %s\nrecord: %s", want, reason, rc, got, text);
}

/* ---------------------------------------------------------------- tests */

static void valid_chains(void **state) {
    (void)state;
    const char *root = fresh();
    char ha[65] = ZERO, hb[65] = ZERO, path[512];
    write_chain(root, TA, 1, 50, ha);
    write_chain(root, TB, 1, 50, hb);
    snprintf(path, sizeof path, "%s/vpc-00000000000000000", root); /* a tenant without records */
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/000000051.json.tmp", root, TA); /* a crash leftover */
    put(path, "{\"half");
    seen_t seen = {0};
    audit_verify_opts_t o = {.threads = 0, .on_tenant = on_tenant, .arg = &seen};
    audit_verify_summary_t sum;
    audit_verify_failure_t fail;
    assert_int_equal(audit_verify_dir(root, pub, &o, &sum, &fail), AUDIT_VERIFY_OK);
    assert_int_equal(sum.tenants, 3);
    assert_int_equal(sum.records, 100);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.tenant[0], "vpc-00000000000000000");
    assert_int_equal(seen.records[0], 0);
    assert_string_equal(seen.last[0], ZERO);
    assert_string_equal(seen.tenant[1], TA);
    assert_int_equal(seen.records[1], 50);
    assert_string_equal(seen.last[1], ha);
    assert_string_equal(seen.tenant[2], TB);
    assert_string_equal(seen.last[2], hb);

    /* one tenant on its own, as skd would at start-up */
    audit_verify_tenant_t t;
    snprintf(path, sizeof path, "%s/%s", root, TB);
    assert_int_equal(audit_verify_tenant_dir(path, TB, pub, NULL, &t, &fail), AUDIT_VERIFY_OK);
    assert_int_equal(t.records, 50);
    assert_string_equal(t.last_hash, hb);
    assert_int_equal(audit_verify_tenant_dir(path, TA, pub, NULL, &t, &fail), AUDIT_VERIFY_FAILED);
    assert_string_equal(fail.file, "000000001.json");
    assert_true(strncmp(fail.reason, "wrong tenant", 12) == 0);

    /* an impostor's key: the first record */
    audit_verify_opts_t one = {.threads = 1};
    EVP_PKEY *saved = pub;
    char err[256];
    snprintf(path, sizeof path, "%s/other.pem", dir);
    FILE *f = fopen(path, "w");
    PEM_write_PUBKEY(f, other);
    fclose(f);
    pub = audit_verify_load_pubkey(path, err, sizeof err);
    assert_non_null(pub);
    assert_int_equal(audit_verify_dir(root, pub, &one, &sum, &fail), AUDIT_VERIFY_FAILED);
    assert_string_equal(fail.tenant, TA);
    assert_string_equal(fail.file, "000000001.json");
    assert_string_equal(fail.reason, "bad signature");
    EVP_PKEY_free(pub);
    pub = saved;
}

static void empty_and_unreadable(void **state) {
    (void)state;
    expect(fresh(), 0, AUDIT_VERIFY_OK, NULL, NULL, NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/missing", dir);
    expect(path, 0, AUDIT_VERIFY_ERROR, "", "", "cannot open");
}

/* FORMAT.md's recipe, with jq and openssl only, on records made here. */
static void stock_tools(void **state) {
    (void)state;
    const char *root = fresh();
    char h[65] = ZERO;
    write_chain(root, TA, 1, 3, h);
    assert_int_equal(sh("cd %s/%s && jq -cjS 'del(.signature)' 000000002.json > r.ser && "
                        "jq -r .signature 000000002.json | base64 -d > r.sig && "
                        "openssl dgst -sha256 -verify %s -signature r.sig r.ser >/dev/null && "
                        "test \"$(jq -cjS . 000000001.json | sha256sum | cut -d' ' -f1)\" = "
                        "\"$(jq -r .prev_hash 000000002.json)\" && "
                        "jq -cS . 000000002.json | cmp - 000000002.json && rm r.ser r.sig",
                        root, TA, pubpem),
                     0);
}

static void set_float(json_t *r) {
    json_object_set_new(json_object_get(r, "caller"), "ip", json_real(1.5));
}
static void set_version(json_t *r) {
    json_object_set_new(r, "event_version", json_integer(3));
}
static void set_tenant_b(json_t *r) {
    json_object_set_new(r, "vpc_id", json_string(TB));
}
static void set_bad_prev(json_t *r) {
    json_object_set_new(r, "prev_hash", json_string("1" ZERO));
}

/* Every kind of damage in a tenant directory, with its exact reason. */
static void damage(void **state) {
    (void)state;
    char h[65], path[512], path2[512], path3[512];
    const char *root;
#define FRESH_CHAIN(n)                                                                                           \
    do {                                                                                                         \
        root = fresh();                                                                                          \
        memcpy(h, ZERO, 65);                                                                                     \
        write_chain(root, TA, 1, (n), h);                                                                        \
    } while (0)

    /* a deleted record */
    FRESH_CHAIN(10);
    tenant_path(path, sizeof path, root, TA, 3);
    unlink(path);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000004.json", "gap: 4 follows 2");
    /* the first one deleted */
    FRESH_CHAIN(3);
    tenant_path(path, sizeof path, root, TA, 1);
    unlink(path);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000002.json", "gap: 2 is the first record");
    /* a file 0 */
    FRESH_CHAIN(3);
    tenant_path(path, sizeof path, root, TA, 1);
    snprintf(path2, sizeof path2, "%s/%s/000000000.json", root, TA);
    link(path, path2);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000000.json", "misnumbered: 0");
    /* two swapped records */
    FRESH_CHAIN(10);
    tenant_path(path, sizeof path, root, TA, 5);
    tenant_path(path2, sizeof path2, root, TA, 6);
    snprintf(path3, sizeof path3, "%s/swap", root);
    rename(path, path3);
    rename(path2, path);
    rename(path3, path2);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000005.json",
           "misnumbered: vpc_op_seq_num 6 in file 000000005.json");
    /* a record copied over the next one */
    FRESH_CHAIN(10);
    tenant_path(path, sizeof path, root, TA, 7);
    tenant_path(path2, sizeof path2, root, TA, 8);
    unlink(path2);
    link(path, path2);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000008.json",
           "duplicate: vpc_op_seq_num 7 in file 000000008.json repeats record 7");
    /* a record of another tenant, appended here */
    FRESH_CHAIN(10);
    rewrite(root, TA, 11, h, key, set_tenant_b);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000011.json", "wrong tenant: vpc_id is \"" TB "\"");
    /* re-signed with another key */
    FRESH_CHAIN(10);
    rewrite(root, TA, 11, h, other, NULL);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000011.json", "bad signature");
    /* a changed value */
    FRESH_CHAIN(10);
    assert_int_equal(sh("sed -i 's/127.0.0.1/127.0.0.2/' %s/%s/000000004.json", root, TA), 0);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000004.json", "bad signature");
    /* another record's signature */
    FRESH_CHAIN(10);
    assert_int_equal(sh("cd %s/%s && s4=$(jq -r .signature 000000004.json) && "
                        "jq -cjS \".signature = \\\"$s4\\\"\" 000000005.json > x && echo >> x && mv x 000000005.json",
                        root, TA),
                     0);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000005.json", "bad signature");
    /* a signed record whose prev_hash is wrong */
    FRESH_CHAIN(10);
    rewrite(root, TA, 11, ONES, key, NULL);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000011.json",
           "chain break (prev_hash does not match record 10)");
    FRESH_CHAIN(2);
    rewrite(root, TA, 1, ONES, key, NULL);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000001.json", "chain break (prev_hash of record 1 is not 64 zeros)");
    /* prev_hash changed after signing: the signature says so first */
    FRESH_CHAIN(10);
    assert_int_equal(sh("sed -i -e 's/\"prev_hash\":\"[0-9a-e]/\"prev_hash\":\"f/; t' -e 's/\"prev_hash\":\"f/\"prev_hash\":\"0/' %s/%s/000000006.json", root, TA), 0);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000006.json", "bad signature");
    /* a float, signed */
    FRESH_CHAIN(3);
    rewrite(root, TA, 4, h, key, set_float);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000004.json", "not canonical: a float at .caller.ip");
    /* a wrong event_version, signed */
    FRESH_CHAIN(3);
    rewrite(root, TA, 4, h, key, set_version);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000004.json", "bad event_version: 3 (expected 2)");
    /* a malformed prev_hash, signed */
    FRESH_CHAIN(3);
    rewrite(root, TA, 4, h, key, set_bad_prev);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000004.json", "bad prev_hash");
    /* an extra file; a crash leftover is fine */
    FRESH_CHAIN(3);
    snprintf(path, sizeof path, "%s/%s/000000004.json.tmp", root, TA);
    put(path, "");
    expect(root, 0, AUDIT_VERIFY_OK, NULL, NULL, NULL);
    snprintf(path, sizeof path, "%s/%s/notes.txt", root, TA);
    put(path, "hello");
    snprintf(path, sizeof path, "%s/%s/00000004.json", root, TA);
    put(path, "{}");
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "00000004.json", "unexpected file");
    /* a stray file next to the tenants */
    FRESH_CHAIN(3);
    snprintf(path, sizeof path, "%s/README", root);
    put(path, "hello");
    expect(root, 0, AUDIT_VERIFY_FAILED, "README", "", "unexpected file (not a tenant directory)");
    /* a symbolic link and a directory in place of records */
    FRESH_CHAIN(3);
    tenant_path(path, sizeof path, root, TA, 3);
    unlink(path);
    assert_int_equal(symlink("000000002.json", path), 0);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000003.json", "unexpected file (a symbolic link)");
    unlink(path);
    mkdir(path, 0700);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000003.json", "unexpected file (not a regular file)");
    /* an empty file and a huge one */
    FRESH_CHAIN(3);
    tenant_path(path, sizeof path, root, TA, 3);
    put(path, "");
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000003.json", "unparsable: empty file");
    assert_int_equal(truncate(path, AUDIT_RECORD_MAX + 1), 0);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000003.json", "too large");
    /* the tenant whose name sorts first fails first */
    FRESH_CHAIN(3);
    memcpy(h, ZERO, 65);
    write_chain(root, TB, 1, 3, h);
    tenant_path(path, sizeof path, root, TB, 2);
    unlink(path);
    tenant_path(path, sizeof path, root, TA, 2);
    unlink(path);
    expect(root, 0, AUDIT_VERIFY_FAILED, TA, "000000003.json", "gap: 3 follows 1");
    /* a record moved to the other tenant */
    FRESH_CHAIN(5);
    memcpy(h, ZERO, 65);
    write_chain(root, TB, 1, 5, h);
    tenant_path(path, sizeof path, root, TA, 5);
    tenant_path(path2, sizeof path2, root, TB, 6);
    rename(path, path2);
    expect(root, 0, AUDIT_VERIFY_FAILED, TB, "000000006.json", "wrong tenant: vpc_id is \"" TA "\"");
#undef FRESH_CHAIN
}

/* The hash of record seq of TA under root (its file is canonical + newline). */
static void file_hash(const char *root, uint64_t seq, char out[65]) {
    char path[512], text[4096];
    tenant_path(path, sizeof path, root, TA, seq);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    unsigned char md[32];
    SHA256((unsigned char *)text, n - 1, md);
    hexs(md, out);
}

/* More records than one batch: whichever thread finds what, the first
 * failure in walking order is the one reported. */
static void batches(void **state) {
    (void)state;
    const char *root = fresh();
    char h[65] = ZERO, path[512];
    write_chain(root, TA, 1, 2100, h);
    for (unsigned threads = 1; threads <= 8; threads *= 8)
        expect(root, threads, AUDIT_VERIFY_OK, NULL, NULL, NULL);

    /* a chain break at 2060 before a bad signature at 2080 */
    rewrite(root, TA, 2060, ONES, key, NULL);
    rewrite(root, TA, 2080, ONES, other, NULL);
    expect(root, 8, AUDIT_VERIFY_FAILED, TA, "000002060.json", "chain break (prev_hash does not match record 2059)");
    /* a bad signature at 2050 before the chain break it makes at 2051 */
    char hx[65];
    file_hash(root, 2049, hx);
    rewrite(root, TA, 2050, hx, other, NULL);
    expect(root, 8, AUDIT_VERIFY_FAILED, TA, "000002050.json", "bad signature");
    /* a bad signature at 2048, the last of the first batch */
    file_hash(root, 2047, hx);
    rewrite(root, TA, 2048, hx, other, NULL);
    expect(root, 8, AUDIT_VERIFY_FAILED, TA, "000002048.json", "bad signature");
    /* and a gap at 1500 before it */
    tenant_path(path, sizeof path, root, TA, 1500);
    unlink(path);
    expect(root, 8, AUDIT_VERIFY_FAILED, TA, "000001501.json", "gap: 1501 follows 1499");
    /* a bad signature at 100 before a gap at 1500 in the same batch */
    file_hash(root, 99, hx);
    rewrite(root, TA, 100, hx, other, NULL);
    expect(root, 8, AUDIT_VERIFY_FAILED, TA, "000000100.json", "bad signature");
}

/* The format checks on one record in memory. */
static void record_format(void **state) {
    (void)state;
    char *t;
    /* the untouched record */
    t = finish(base_record(TA, 1, NULL), key, NULL);
    expect_record(t, AUDIT_VERIFY_OK, NULL);
    char got[256];
    assert_int_equal(audit_verify_record(t, strlen(t), TB, 1, NULL, pub, NULL, got, sizeof got), AUDIT_VERIFY_FAILED);
    assert_string_equal(got, "wrong tenant: vpc_id is \"" TA "\" in the directory of " TB);
    assert_int_equal(audit_verify_record(t, strlen(t), TA, 2, NULL, pub, NULL, got, sizeof got), AUDIT_VERIFY_FAILED);
    assert_string_equal(got, "duplicate: vpc_op_seq_num 1 in file 000000002.json repeats record 1");
    free(t);

    struct {
        const char *from, *to, *reason;
    } cases[] = {
        {"\"event_version\":2", "\"event_version\":2.0", "not canonical: a float at .event_version"},
        {"\"event_version\":2", "\"event_version\":2e0", "not canonical: a float at .event_version"},
        {"\"node\":\"node-1\"", "\"node\":[\"node-1\"]", "not canonical: an array at .node"},
        {"\"node\":\"node-1\"", "\"node\":true", "not canonical: a boolean at .node"},
        {"\"node\":\"node-1\"", "\"node\":\"n\\u00e9\"", "not canonical: a string with a byte outside printable ASCII at .node"},
        {"\"node\":\"node-1\"", "\"node\":\"n\xc3\xa9\"", "not canonical: a string with a byte outside printable ASCII at .node"},
        {"\"node\":\"node-1\"", "\"node\":\"a\\tb\"", "not canonical: a string with a byte outside printable ASCII at .node"},
        {"\"node\":\"node-1\"", "\"node\":\"a\\u007fb\"", "not canonical: a string with a byte outside printable ASCII at .node"},
        {"\"type\":\"instance\"", "\"t\\u00ffpe\":\"instance\"", "not canonical: a key with a byte outside printable ASCII in .caller"},
        {"\"node\":\"node-1\"", "\"node\":9007199254740992", "not canonical: an integer beyond 2^53-1 at .node"},
        {"\"node\":\"node-1\"", "\"node\":-9007199254740992", "not canonical: an integer beyond 2^53-1 at .node"},
        {"\"node\":\"node-1\"", "\"node\":99999999999999999999", "unparsable: "},
        {"\"node\":\"node-1\"", "\"node\":\"a\\u0000b\"", "unparsable: "},
        {"\"node\":\"node-1\"", "\"node\":\"node-1\",\"node\":\"x\"", "unparsable: duplicate object key"},
        {"\"node\":\"node-1\"", "\"node\":\"node-1\"", NULL}, /* placeholder: unchanged */
        {"\"node\":\"node-1\"", "\"node\": \"node-1\"", "not canonical: the file is not"},
        {"\"node\":\"node-1\"", "\"node\":\"node\\u002d1\"", "not canonical: the file is not"},
        {"\"node\":\"node-1\"", "\"node\":\"node-1\"}\n{\"a\":1", "unparsable: "},
        {"{\"call\"", "[{\"call\"", "unparsable: "},
        {"\"event_version\":2,", "", "missing field: event_version"},
        {"\"event_version\":2", "\"event_version\":\"2\"", "bad event_version: not an integer"},
        {"\"vpc_id\":\"" TA "\",", "", "missing field: vpc_id"},
        {"\"vpc_id\":\"" TA "\"", "\"vpc_id\":null", "wrong tenant: vpc_id is not a string"},
        {"\"vpc_op_seq_num\":1", "\"vpc_op_seq_num\":\"1\"", "misnumbered: vpc_op_seq_num is not an integer"},
        {"\"vpc_op_seq_num\":1", "\"vpc_op_seq_num\":0", "misnumbered: vpc_op_seq_num 0 in file 000000001.json"},
        {"\"vpc_op_seq_num\":1", "\"vpc_op_seq_num\":-1", "misnumbered: vpc_op_seq_num -1"},
        {"\"prev_hash\":\"0", "\"prev_hash\":\"A", "bad prev_hash: not 64 lowercase hex digits"},
        {"\"prev_hash\":\"0", "\"prev_hash\":\"", "bad prev_hash: not 64 lowercase hex digits"},
        {"\"signature\":\"", "\"signature\":\"!", "bad signature: not base64"},
        {"\"signature\":\"", "\"signature\":null,\"signaturf\":\"", "bad signature: not base64"},
        {"\"signature\":\"", "\"signature\":\"AAAA", "bad signature"},
        {"\"signature\":\"", "\"signatur\":\"", "missing field: signature"},
        {"\"prev_hash\":\"", "\"prev_has\":\"", "missing field: prev_hash"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].reason)
            continue;
        t = edited(cases[i].from, cases[i].to);
        expect_record(t, AUDIT_VERIFY_FAILED, cases[i].reason);
        free(t);
    }
    /* the text is not NUL-terminated where the record ends */
    t = finish(base_record(TA, 1, NULL), key, NULL);
    size_t n = strlen(t);
    char *padded = malloc(n + 5);
    memcpy(padded, t, n);
    memcpy(padded + n, "junk", 5);
    assert_int_equal(audit_verify_record(padded, n, TA, 1, NULL, pub, NULL, got, sizeof got), AUDIT_VERIFY_OK);
    assert_int_equal(audit_verify_record(t, n - 1, TA, 1, NULL, pub, NULL, got, sizeof got), AUDIT_VERIFY_FAILED);
    assert_string_equal(got, "not canonical: the file is not the record's canonical form (jq -cjS .) and one newline");
    free(padded);
    free(t);

    /* nesting: 31 objects inside the record are fine, 32 are not */
    for (int depth = 31; depth <= 32; depth++) {
        json_t *rec = base_record(TA, 1, NULL), *inner = json_object();
        json_t *top = inner;
        for (int d = 1; d < depth; d++) {
            json_t *o = json_object();
            json_object_set_new(inner, "k", o);
            inner = o;
        }
        json_object_set_new(rec, "deep", top);
        t = finish(rec, key, NULL);
        if (depth == 31)
            expect_record(t, AUDIT_VERIFY_OK, NULL);
        else
            expect_record(t, AUDIT_VERIFY_FAILED, "not canonical: objects nested too deep at .deep.k.k");
        free(t);
    }
}

static void pubkeys(void **state) {
    (void)state;
    char err[256], path[256];
    EVP_PKEY *k = audit_verify_load_pubkey(pubpem, err, sizeof err);
    assert_non_null(k);
    EVP_PKEY_free(k);
    snprintf(path, sizeof path, "%s/nope.pem", dir);
    assert_null(audit_verify_load_pubkey(path, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | "
                        "openssl pkey -pubout -out rsa.pem && "
                        "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | "
                        "openssl ec -pubout -out p256.pem 2>/dev/null && "
                        "openssl ecparam -name secp384r1 -genkey -noout -out priv.pem && echo junk > junk.pem"),
                     0);
    const char *bad[] = {"rsa.pem", "p256.pem", "priv.pem", "junk.pem"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, bad[i]);
        assert_null(audit_verify_load_pubkey(path, err, sizeof err));
    }
}

/* ---------------------------------------------------------------- set-up */

static int write_pub(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f || PEM_write_PUBKEY(f, key) != 1)
        return -1;
    return fclose(f);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/skd-audit-verify-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    key = EVP_EC_gen("P-384");
    other = EVP_EC_gen("P-384");
    snprintf(pubpem, sizeof pubpem, "%s/pub.pem", dir);
    char err[256];
    if (!key || !other || write_pub(pubpem) != 0 || !(pub = audit_verify_load_pubkey(pubpem, err, sizeof err)))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(pub);
    return sh("rm -rf \"$PWD\"");
}

/* --generate AUDIT-DIR PUBKEY-PEM TENANTS RECORDS */
static int generate(char **argv) {
    const char *root = argv[0];
    int tenants = atoi(argv[2]);
    long records = atol(argv[3]);
    key = EVP_EC_gen("P-384");
    if (!key || tenants < 1 || records < 0 || write_pub(argv[1]) != 0) {
        fprintf(stderr, "generate: bad arguments or no key\n");
        return 2;
    }
    mkdir(root, 0700);
    for (int t = 0; t < tenants; t++) {
        pid_t pid = fork();
        if (pid == 0) {
            char tenant[32], h[65] = ZERO;
            snprintf(tenant, sizeof tenant, "vpc-%017d", t);
            write_chain(root, tenant, 1, (uint64_t)records, h);
            _exit(0);
        }
    }
    int status, bad = 0;
    while (wait(&status) > 0)
        bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    EVP_PKEY_free(key);
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--generate") == 0)
        return generate(argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_chains), cmocka_unit_test(empty_and_unreadable), cmocka_unit_test(stock_tools),
        cmocka_unit_test(damage),       cmocka_unit_test(batches),              cmocka_unit_test(record_format),
        cmocka_unit_test(pubkeys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
