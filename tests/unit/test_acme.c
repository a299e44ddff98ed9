/* The ACME machine (acme/acme.h) fed recorded responses: every state, the
 * problem documents, badNonce, transient and poll retries, resume, the
 * deadline; and its crypto (JWS, JWK thumbprint, dns-01 value, CSR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../acme/acme.h"
#include "../support/acme_test_cert.h"

#define DIR_URL "https://ca.test/dir"
#define DIRECTORY                                                                                                \
    "{\"newNonce\":\"https://ca.test/nonce\",\"newAccount\":\"https://ca.test/acct\",\"newOrder\":\"https://" \
    "ca.test/order\",\"meta\":{\"termsOfService\":\"https://ca.test/tos\"}}"
#define ORDER_URL "https://ca.test/o/1"
#define ACCT_URL "https://ca.test/a/1"

static EVP_PKEY *account_key;
static const char *NAMES[] = {"a.sk.test", "b.sk.test"};

static uint32_t fixed_random(void *arg) {
    (void)arg;
    return 0; /* the lowest jitter: waits are 3/4 of the backoff */
}

/* base64url decoding for the checks. */
static size_t b64url_dec(const char *in, size_t len, unsigned char *out) {
    char tmp[8192];
    assert_true(len + 4 < sizeof tmp);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        tmp[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (n % 4)
        tmp[n++] = '=';
    int r = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)n);
    assert_true(r >= 0);
    return (size_t)r - (len % 4 == 2 ? 2 : len % 4 == 3 ? 1 : 0);
}

/* The protected header of a JWS body, checked to be signed by key. */
static json_t *jws_header(const char *body, EVP_PKEY *key, char *payload_out, size_t payload_size) {
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    const char *prot = json_string_value(json_object_get(j, "protected"));
    const char *payload = json_string_value(json_object_get(j, "payload"));
    const char *sig = json_string_value(json_object_get(j, "signature"));
    assert_non_null(prot);
    assert_non_null(payload);
    assert_non_null(sig);
    unsigned char buf[8192];
    size_t n = b64url_dec(prot, strlen(prot), buf);
    buf[n] = 0;
    json_t *hdr = json_loads((char *)buf, 0, NULL);
    assert_non_null(hdr);
    n = b64url_dec(payload, strlen(payload), buf);
    assert_true(n < payload_size);
    memcpy(payload_out, buf, n);
    payload_out[n] = 0;
    /* r || s -> DER, verify over protected.payload */
    unsigned char raw[64];
    assert_int_equal(b64url_dec(sig, strlen(sig), raw), 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    char input[8192];
    snprintf(input, sizeof input, "%s.%s", prot, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestVerify(ctx, der, (size_t)der_len, (unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    json_decref(j);
    return hdr;
}

static void init(acme_t *m, const char *account_url, const char *order_url, EVP_PKEY *cert_key) {
    acme_config_t cfg = {.directory_url = DIR_URL,
                         .account_key = account_key,
                         .account_url = account_url,
                         .order_url = order_url,
                         .cert_key = cert_key,
                         .names = NAMES,
                         .nnames = 2,
                         .contact = "mailto:ops@sk.test",
                         .timeout_ms = 60000,
                         .random = fixed_random};
    assert_int_equal(acme_init(m, &cfg), 0);
}

static void respond_full(acme_t *m, uint64_t now, int status, const char *nonce, const char *location,
                         const char *retry_after, const char *body, acme_action_t *out) {
    acme_input_t in = {.kind = ACME_IN_RESPONSE,
                       .response = {.status = status,
                                    .replay_nonce = nonce,
                                    .location = location,
                                    .retry_after = retry_after,
                                    .body = body,
                                    .body_len = body ? strlen(body) : 0}};
    acme_advance(m, &in, now, out);
}

static int nonce_counter;
/* A response with a fresh nonce. */
static void respond(acme_t *m, int status, const char *location, const char *body, acme_action_t *out) {
    char nonce[32];
    snprintf(nonce, sizeof nonce, "nonce%d", ++nonce_counter);
    respond_full(m, 0, status, nonce, location, NULL, body, out);
}

static void expect_request(const acme_action_t *a, const char *method, const char *url) {
    assert_int_equal(a->kind, ACME_ACT_REQUEST);
    assert_string_equal(a->request.method, method);
    assert_string_equal(a->request.url, url);
}

/* A POST: its header's url and nonce, kid or jwk; returns the payload. */
static void expect_post(const acme_action_t *a, const char *url, const char *kid, char *payload, size_t size) {
    expect_request(a, "POST", url);
    assert_string_equal(a->request.content_type, "application/jose+json");
    json_t *hdr = jws_header(a->request.body, account_key, payload, size);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(hdr, "url")), url);
    char want_nonce[32];
    snprintf(want_nonce, sizeof want_nonce, "nonce%d", nonce_counter);
    assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), want_nonce);
    if (kid) {
        assert_string_equal(json_string_value(json_object_get(hdr, "kid")), kid);
        assert_null(json_object_get(hdr, "jwk"));
    } else {
        assert_non_null(json_object_get(hdr, "jwk"));
        assert_null(json_object_get(hdr, "kid"));
    }
    json_decref(hdr);
}

static char *order_json(const char *status, const char *cert) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"status\":\"%s\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.sk.test\"},{\"type\":\"dns\","
             "\"value\":\"b.sk.test\"}],\"authorizations\":[\"https://ca.test/z/a\",\"https://ca.test/z/b\"],"
             "\"finalize\":\"https://ca.test/o/1/fin\"%s%s%s}",
             status, cert ? ",\"certificate\":\"" : "", cert ? cert : "", cert ? "\"" : "");
    return buf;
}

static char *authz_json(const char *name, const char *status, const char *tag) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"status\":\"%s\",\"identifier\":{\"type\":\"dns\",\"value\":\"%s\"},\"challenges\":["
             "{\"type\":\"http-01\",\"url\":\"https://ca.test/c/%s/http\",\"token\":\"t\",\"status\":\"pending\"},"
             "{\"type\":\"dns-01\",\"url\":\"https://ca.test/c/%s\",\"token\":\"tok-%s\",\"status\":\"pending\"}]}",
             status, name, tag, tag, tag);
    return buf;
}

/* directory -> nonce -> newAccount -> newOrder: leaves the first authz GET out. */
static void to_order(acme_t *m, acme_action_t *a) {
    char payload[4096];
    acme_advance(m, NULL, 0, a);
    expect_request(a, "GET", DIR_URL);
    assert_int_equal(acme_state(m), ACME_DIRECTORY);
    respond_full(m, 0, 200, NULL, NULL, NULL, DIRECTORY, a); /* no nonce yet */
    assert_string_equal(acme_progress(m), "directory " DIR_URL " read");
    expect_request(a, "HEAD", "https://ca.test/nonce");
    assert_int_equal(acme_state(m), ACME_NONCE);
    respond(m, 200, NULL, NULL, a);
    expect_post(a, "https://ca.test/acct", NULL, payload, sizeof payload);
    assert_string_equal(payload, "{\"termsOfServiceAgreed\":true,\"contact\":[\"mailto:ops@sk.test\"]}");
    respond(m, 201, ACCT_URL, "{\"status\":\"valid\"}", a);
    assert_int_equal(a->kind, ACME_ACT_SAVE_ACCOUNT);
    assert_string_equal(acme_account_url(m), ACCT_URL);
    acme_advance(m, NULL, 0, a);
    expect_post(a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    assert_string_equal(payload, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.sk.test\"},{\"type\":\"dns\","
                                 "\"value\":\"b.sk.test\"}]}");
    respond(m, 201, ORDER_URL, order_json("pending", NULL), a);
    assert_int_equal(a->kind, ACME_ACT_SAVE_ORDER);
    assert_string_equal(acme_order_url(m), ORDER_URL);
    assert_string_equal(acme_progress(m), "order " ORDER_URL " created");
    acme_advance(m, NULL, 0, a);
}

static void test_happy_path(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096];
    init(&m, NULL, NULL, NULL);
    to_order(&m, &a);
    expect_post(&a, "https://ca.test/z/a", ACCT_URL, payload, sizeof payload);
    assert_string_equal(payload, ""); /* POST-as-GET */
    respond(&m, 200, NULL, authz_json("a.sk.test", "pending", "a"), &a);
    expect_post(&a, "https://ca.test/z/b", ACCT_URL, payload, sizeof payload);
    respond(&m, 200, NULL, authz_json("b.sk.test", "pending", "b"), &a);
    /* Both values at once. */
    assert_int_equal(a.kind, ACME_ACT_SET_CHALLENGES);
    assert_int_equal(a.nchallenges, 2);
    char tp[ACME_THUMBPRINT_SIZE], want[ACME_DNS01_SIZE];
    assert_int_equal(acme_jwk_thumbprint(account_key, tp), 0);
    assert_int_equal(acme_dns01_value("tok-a", tp, want), 0);
    assert_string_equal(a.challenges[0].name, "a.sk.test");
    assert_string_equal(a.challenges[0].value, want);
    assert_string_equal(a.challenges[1].name, "b.sk.test");
    assert_int_equal(strlen(a.challenges[1].value), 43);
    acme_input_t set = {.kind = ACME_IN_CHALLENGES_SET, .ok = true};
    acme_advance(&m, &set, 0, &a);
    expect_post(&a, "https://ca.test/c/a", ACCT_URL, payload, sizeof payload);
    assert_string_equal(payload, "{}");
    respond(&m, 200, NULL, "{\"type\":\"dns-01\",\"status\":\"processing\"}", &a);
    expect_post(&a, "https://ca.test/c/b", ACCT_URL, payload, sizeof payload);
    respond(&m, 200, NULL, "{\"type\":\"dns-01\",\"status\":\"processing\"}", &a);
    /* The order is polled at once, then with Retry-After. */
    expect_post(&a, ORDER_URL, ACCT_URL, payload, sizeof payload);
    respond_full(&m, 1000, 200, "n-poll", NULL, "3", order_json("pending", NULL), &a);
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    assert_int_equal(a.wake_at, 4000);
    acme_advance(&m, NULL, 2000, &a); /* early: still waiting */
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    acme_advance(&m, NULL, 4000, &a);
    assert_int_equal(a.kind, ACME_ACT_REQUEST);
    respond_full(&m, 4000, 200, "n-ready", NULL, NULL, order_json("ready", NULL), &a);
    assert_int_equal(a.kind, ACME_ACT_NEED_KEY);
    EVP_PKEY *ck = acme_key_new_p256();
    acme_input_t key = {.kind = ACME_IN_KEY, .key = ck};
    nonce_counter = 0;
    snprintf(payload, sizeof payload, "x");
    acme_advance(&m, &key, 4000, &a);
    assert_int_equal(a.kind, ACME_ACT_REQUEST);
    assert_string_equal(a.request.url, "https://ca.test/o/1/fin");
    json_t *hdr = jws_header(a.request.body, account_key, payload, sizeof payload);
    assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), "n-ready");
    json_decref(hdr);
    /* The CSR: both names, the certificate key. */
    json_t *fin = json_loads(payload, 0, NULL);
    const char *csr64 = json_string_value(json_object_get(fin, "csr"));
    unsigned char der[4096];
    size_t der_len = b64url_dec(csr64, strlen(csr64), der);
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)der_len);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, ck), 1);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *san = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(san), 2);
    GENERAL_NAMES_free(san);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    json_decref(fin);
    /* processing without Retry-After: backoff with jitter (3/4 of 50 ms here). */
    respond_full(&m, 5000, 200, "n-proc", NULL, NULL, order_json("processing", NULL), &a);
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    assert_int_equal(a.wake_at, 5000 + 37);
    acme_advance(&m, NULL, 5037, &a);
    expect_request(&a, "POST", ORDER_URL);
    respond_full(&m, 5200, 200, "n-proc2", NULL, NULL, order_json("processing", NULL), &a);
    assert_int_equal(a.wake_at, 5200 + 75); /* doubled */
    acme_advance(&m, NULL, 6000, &a);
    respond_full(&m, 6000, 200, "n-valid", NULL, NULL, order_json("valid", "https://ca.test/cert/1"), &a);
    expect_request(&a, "POST", "https://ca.test/cert/1");
    assert_string_equal(a.request.accept, "application/pem-certificate-chain");
    const char *chain = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    respond(&m, 200, NULL, chain, &a);
    assert_int_equal(a.kind, ACME_ACT_SAVE_CERT);
    assert_string_equal(a.chain, chain);
    assert_ptr_equal(a.cert_key, ck);
    acme_advance(&m, NULL, 6000, &a);
    assert_int_equal(a.kind, ACME_ACT_DELETE_CHALLENGES);
    assert_int_equal(a.nchallenges, 2);
    acme_advance(&m, NULL, 6000, &a);
    assert_int_equal(a.kind, ACME_ACT_DONE);
    assert_int_equal(acme_state(&m), ACME_DONE);
    EVP_PKEY_free(ck);
    acme_free(&m);
}

static void test_bad_nonce(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096];
    const char *bad = "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"JWS has an invalid anti-replay nonce\"}";
    init(&m, NULL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    expect_post(&a, "https://ca.test/acct", NULL, payload, sizeof payload);
    /* Retried with the nonce of the refusal, ACME_BAD_NONCE_RETRIES times. */
    for (int i = 0; i < ACME_BAD_NONCE_RETRIES; i++) {
        respond(&m, 400, NULL, bad, &a);
        expect_post(&a, "https://ca.test/acct", NULL, payload, sizeof payload);
    }
    respond(&m, 400, NULL, bad, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "newAccount: HTTP 400 badNonce: JWS has an invalid anti-replay nonce (the "
                                          "CA refused the nonce)");
    acme_free(&m);
    /* A refusal without a nonce: a fresh one from newNonce first. */
    init(&m, ACCT_URL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    respond_full(&m, 0, 400, NULL, NULL, NULL, bad, &a);
    expect_request(&a, "HEAD", "https://ca.test/nonce");
    respond(&m, 200, NULL, NULL, &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    acme_free(&m);
}

static void test_problems(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    init(&m, ACCT_URL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    respond_full(&m, 0, 429, "n1", NULL, "3600",
                 "{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":\"too many new orders\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "newOrder: HTTP 429 rateLimited: too many new orders (the CA's rate limit "
                                          "was reached; try again later) (Retry-After 3600 s)");
    acme_free(&m);

    buf_t b;
    buf_init(&b, 0);
    const char *doc = "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"detail\":\"no\\nway\","
                      "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:dns\",\"detail\":\"SERVFAIL\","
                      "\"identifier\":{\"type\":\"dns\",\"value\":\"x.sk.test\"}}]}";
    assert_int_equal(acme_problem_message(doc, strlen(doc), &b), 0);
    assert_string_equal(b.data, "rejectedIdentifier: no way [x.sk.test: SERVFAIL] (the CA will not issue for "
                                "this name)");
    buf_free(&b);
    assert_int_equal(acme_problem_message("nope", 4, &b), 0);
    assert_string_equal(b.data, "no problem document");
    buf_free(&b);
    /* A directory asking for external account binding. */
    init(&m, NULL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL,
            "{\"newNonce\":\"https://ca.test/n\",\"newAccount\":\"https://ca.test/a\",\"newOrder\":\"https://ca.test/"
            "o\",\"meta\":{\"externalAccountRequired\":true}}",
            &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_non_null(strstr(acme_failure(&m), "external account binding"));
    acme_free(&m);
    /* A directory without newOrder; a body that is not JSON. */
    init(&m, NULL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, "{\"newNonce\":\"https://ca.test/n\",\"newAccount\":\"https://ca.test/a\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    acme_free(&m);
    init(&m, NULL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, "<html>", &a);
    assert_string_equal(acme_failure(&m), "directory: HTTP 200 without a JSON object");
    acme_free(&m);
}

/* The order goes invalid: the failed authorization's error is the message. */
static void test_invalid_authorization(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    init(&m, NULL, NULL, NULL);
    to_order(&m, &a);
    respond(&m, 200, NULL, authz_json("a.sk.test", "valid", "a"), &a);
    respond(&m, 200, NULL, authz_json("b.sk.test", "pending", "b"), &a);
    assert_int_equal(a.kind, ACME_ACT_SET_CHALLENGES);
    assert_int_equal(a.nchallenges, 1); /* a is valid already */
    acme_input_t set = {.kind = ACME_IN_CHALLENGES_SET, .ok = true};
    acme_advance(&m, &set, 0, &a);
    expect_request(&a, "POST", "https://ca.test/c/b");
    respond(&m, 200, NULL, "{}", &a);
    respond(&m, 200, NULL, order_json("invalid", NULL), &a);
    expect_request(&a, "POST", "https://ca.test/z/a");
    assert_int_equal(acme_state(&m), ACME_AUTHZ_ERROR);
    respond(&m, 200, NULL, authz_json("a.sk.test", "valid", "a"), &a);
    expect_request(&a, "POST", "https://ca.test/z/b");
    respond(&m, 200, NULL,
            "{\"status\":\"invalid\",\"identifier\":{\"type\":\"dns\",\"value\":\"b.sk.test\"},\"challenges\":[{"
            "\"type\":\"dns-01\",\"url\":\"https://ca.test/c/b\",\"status\":\"invalid\",\"error\":{\"type\":\"urn:"
            "ietf:params:acme:error:unauthorized\",\"detail\":\"Incorrect TXT record\"}}]}",
            &a);
    /* The value set for b is deleted before the failure is reported. */
    assert_int_equal(a.kind, ACME_ACT_DELETE_CHALLENGES);
    assert_int_equal(a.nchallenges, 1);
    assert_string_equal(a.challenges[0].name, "b.sk.test");
    acme_advance(&m, NULL, 0, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "authorization b.sk.test invalid: unauthorized: Incorrect TXT record (the "
                                          "CA did not accept the validation)");
    acme_advance(&m, NULL, 0, &a); /* stays failed, deletes once */
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    acme_free(&m);
    /* Values that could not be served. */
    init(&m, NULL, NULL, NULL);
    to_order(&m, &a);
    respond(&m, 200, NULL, authz_json("a.sk.test", "pending", "a"), &a);
    respond(&m, 200, NULL, authz_json("b.sk.test", "pending", "b"), &a);
    acme_input_t notset = {.kind = ACME_IN_CHALLENGES_SET, .ok = false, .error = "skd: HTTP 503"};
    acme_advance(&m, &notset, 0, &a);
    assert_int_equal(a.kind, ACME_ACT_DELETE_CHALLENGES); /* some may be set */
    assert_int_equal(a.nchallenges, 2);
    acme_advance(&m, NULL, 0, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "dns-01 values: skd: HTTP 503");
    acme_free(&m);
    /* An authorization without a dns-01 challenge. */
    init(&m, NULL, NULL, NULL);
    to_order(&m, &a);
    respond(&m, 200, NULL,
            "{\"status\":\"pending\",\"identifier\":{\"value\":\"a.sk.test\"},\"challenges\":[{\"type\":\"http-01\"}]}",
            &a);
    assert_string_equal(acme_failure(&m), "authorization a.sk.test: no usable dns-01 challenge");
    acme_free(&m);
}

static void test_order_not_ready_and_transient(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    EVP_PKEY *ck = acme_key_new_p256();
    /* A resumed ready order with its key: finalize at once. */
    init(&m, ACCT_URL, ORDER_URL, ck);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    expect_request(&a, "POST", ORDER_URL);
    assert_int_equal(acme_state(&m), ACME_ORDER_RESUME);
    respond(&m, 200, NULL, order_json("ready", NULL), &a);
    assert_string_equal(acme_progress(&m), "order " ORDER_URL " ready");
    expect_request(&a, "POST", "https://ca.test/o/1/fin");
    respond_full(&m, 100, 403, "n1", NULL, NULL, "{\"type\":\"urn:ietf:params:acme:error:orderNotReady\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    assert_int_equal(a.wake_at, 100 + 37);
    acme_advance(&m, NULL, 300, &a);
    expect_request(&a, "POST", ORDER_URL);
    /* 5xx and transport errors: retried after a wait, then given up. */
    respond_full(&m, 300, 503, "n2", NULL, NULL, "{\"type\":\"urn:ietf:params:acme:error:serverInternal\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    for (int i = 0; i < ACME_TRANSIENT_RETRIES; i++) {
        acme_advance(&m, NULL, a.wake_at, &a);
        expect_request(&a, "HEAD", "https://ca.test/nonce"); /* the last nonce may be spent */
        respond(&m, 200, NULL, NULL, &a);
        expect_request(&a, "POST", ORDER_URL);
        acme_input_t err = {.kind = ACME_IN_TRANSPORT_ERROR, .error = "Connection refused"};
        acme_advance(&m, &err, a.wake_at, &a);
        if (i < ACME_TRANSIENT_RETRIES - 1)
            assert_int_equal(a.kind, ACME_ACT_WAIT);
    }
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_non_null(strstr(acme_failure(&m), "Connection refused"));
    acme_free(&m);
    EVP_PKEY_free(ck);
}

static void test_resume(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    /* The saved order is gone at the CA: a new order, the saved one forgotten. */
    init(&m, ACCT_URL, ORDER_URL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    respond(&m, 404, NULL, "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"No order\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_SAVE_ORDER);
    assert_string_equal(acme_order_url(&m), "");
    acme_advance(&m, NULL, 0, &a);
    expect_request(&a, "POST", "https://ca.test/order");
    acme_free(&m);
    /* Valid, but its key was lost: a new order. */
    init(&m, ACCT_URL, ORDER_URL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    respond(&m, 200, NULL, order_json("valid", "https://ca.test/cert/1"), &a);
    assert_int_equal(a.kind, ACME_ACT_SAVE_ORDER);
    acme_advance(&m, NULL, 0, &a);
    expect_request(&a, "POST", "https://ca.test/order");
    acme_free(&m);
    /* Pending: its authorizations again. */
    init(&m, ACCT_URL, ORDER_URL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    respond(&m, 200, NULL, order_json("pending", NULL), &a);
    assert_string_equal(acme_progress(&m), "order " ORDER_URL " resumed");
    expect_request(&a, "POST", "https://ca.test/z/a");
    acme_free(&m);
}

static void test_deadline_and_misuse(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    init(&m, ACCT_URL, ORDER_URL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    respond_full(&m, 59000, 200, "n", NULL, "120", order_json("processing", NULL), &a);
    assert_int_equal(a.kind, ACME_ACT_WAIT);
    assert_int_equal(a.wake_at, 60000); /* capped at the deadline */
    acme_advance(&m, NULL, 60000, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "order: gave up after 60 s");
    acme_free(&m);
    /* A response nobody asked for; a key unasked. */
    init(&m, NULL, NULL, NULL);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    acme_input_t key = {.kind = ACME_IN_KEY, .key = account_key};
    acme_advance(&m, &key, 0, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    acme_free(&m);
    /* Bad configurations. */
    acme_config_t cfg = {.directory_url = "ftp://x", .account_key = account_key, .names = NAMES, .nnames = 1};
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    const char *dotted[] = {"a.sk.test."};
    cfg = (acme_config_t){.directory_url = DIR_URL, .account_key = account_key, .names = dotted, .nnames = 1};
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
}

static void test_crypto_and_times(void **state) {
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    acme_b64url("\xfb\xff", 2, &b);
    assert_string_equal(b.data, "-_8");
    buf_free(&b);
    /* The thumbprint is SHA-256 of the canonical JWK. */
    acme_jwk(account_key, &b);
    assert_true(strncmp(b.data, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"", 31) == 0);
    unsigned char md[32];
    SHA256((unsigned char *)b.data, b.len, md);
    buf_free(&b);
    acme_b64url(md, 32, &b);
    char tp[ACME_THUMBPRINT_SIZE];
    assert_int_equal(acme_jwk_thumbprint(account_key, tp), 0);
    assert_string_equal(tp, b.data);
    buf_free(&b);
    /* dns-01: base64url(SHA-256("token.thumbprint")). */
    char v[ACME_DNS01_SIZE];
    assert_int_equal(acme_dns01_value("abc", "xyz", v), 0);
    SHA256((const unsigned char *)"abc.xyz", 7, md);
    acme_b64url(md, 32, &b);
    assert_string_equal(v, b.data);
    buf_free(&b);
    /* Keys round-trip through PEM. */
    acme_key_to_pem(account_key, &b);
    EVP_PKEY *k = acme_key_from_pem(b.data, b.len);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, account_key), 1);
    EVP_PKEY_free(k);
    buf_free(&b);
    assert_null(acme_key_from_pem("junk", 4));
    /* Retry-After */
    assert_int_equal(acme_retry_after_ms("120", 0), 120000);
    assert_int_equal(acme_retry_after_ms(" 7", 0), 7000);
    assert_int_equal(acme_retry_after_ms("7x", 0), -1);
    assert_int_equal(acme_retry_after_ms(NULL, 0), -1);
    assert_int_equal(acme_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
    assert_int_equal(acme_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
    assert_int_equal(acme_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 0), -1);
    assert_int_equal(acme_renew_at(0, 90 * 86400), 60 * 86400);
    assert_int_equal(acme_renew_at(100, 100), 100);
}

#define ARI_ID "6RasN6QecRPVdA0AcX008W-kOtI.AIdlQyE"
#define DIRECTORY_MORE                                                                                          \
    "{\"newNonce\":\"https://ca.test/nonce\",\"newAccount\":\"https://ca.test/acct\",\"newOrder\":\"https://" \
    "ca.test/order\",\"revokeCert\":\"https://ca.test/revoke\",\"keyChange\":\"https://ca.test/key\","       \
    "\"renewalInfo\":\"https://ca.test/ari/\",\"meta\":{\"externalAccountRequired\":true}}"

static void init_op(acme_t *m, acme_config_t *cfg) {
    cfg->directory_url = DIR_URL;
    cfg->account_key = account_key;
    cfg->names = NAMES;
    cfg->nnames = 1;
    cfg->random = fixed_random;
    assert_int_equal(acme_init(m, cfg), 0);
}

static void test_external_account_binding(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096];
    /* Required by the directory and not configured: a clear failure. */
    acme_config_t cfg = {0};
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_non_null(strstr(acme_failure(&m), "external account binding"));
    acme_free(&m);
    /* A MAC key that is not base64url. */
    cfg = (acme_config_t){.eab_kid = "kid-1", .eab_hmac_key = "not base64!"};
    cfg.directory_url = DIR_URL, cfg.account_key = account_key, cfg.names = NAMES, cfg.nnames = 1;
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    /* Configured: newAccount carries the HS256 JWS of the account key's JWK. */
    const unsigned char mac_key[] = "0123456789abcdef0123456789abcdef";
    cfg = (acme_config_t){.eab_kid = "kid-1", .eab_hmac_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"};
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    expect_post(&a, "https://ca.test/acct", NULL, payload, sizeof payload);
    json_t *p = json_loads(payload, 0, NULL), *eab = json_object_get(p, "externalAccountBinding");
    const char *prot = json_string_value(json_object_get(eab, "protected"));
    const char *pl = json_string_value(json_object_get(eab, "payload"));
    const char *sig = json_string_value(json_object_get(eab, "signature"));
    assert_non_null(prot);
    unsigned char buf[1024];
    size_t n = b64url_dec(prot, strlen(prot), buf);
    buf[n] = 0;
    json_t *hdr = json_loads((char *)buf, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "HS256");
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")), "kid-1");
    assert_string_equal(json_string_value(json_object_get(hdr, "url")), "https://ca.test/acct");
    json_decref(hdr);
    n = b64url_dec(pl, strlen(pl), buf);
    buf_t jwk;
    buf_init(&jwk, 0);
    assert_int_equal(acme_jwk(account_key, &jwk), 0);
    assert_int_equal(n, jwk.len);
    assert_memory_equal(buf, jwk.data, n);
    buf_free(&jwk);
    char input[2048];
    snprintf(input, sizeof input, "%s.%s", prot, pl);
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), mac_key, 32, (unsigned char *)input, strlen(input), mac, &mac_len);
    assert_int_equal(b64url_dec(sig, strlen(sig), buf), 32);
    assert_memory_equal(buf, mac, 32);
    json_decref(p);
    acme_free(&m);
}

static void test_revoke(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096];
    acme_config_t cfg = {.op = ACME_OP_REVOKE, .account_url = ACCT_URL, .cert_pem = ACME_TEST_CERT_PEM,
                         .cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1, .revoke_reason = 4};
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    expect_post(&a, "https://ca.test/revoke", ACCT_URL, payload, sizeof payload);
    json_t *p = json_loads(payload, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(p, "reason")), 4);
    buf_t der;
    buf_init(&der, 0);
    assert_int_equal(acme_cert_der_b64url(ACME_TEST_CERT_PEM, sizeof ACME_TEST_CERT_PEM - 1, &der), 0);
    assert_string_equal(json_string_value(json_object_get(p, "certificate")), der.data);
    buf_free(&der);
    json_decref(p);
    respond(&m, 200, NULL, NULL, &a); /* an empty body */
    assert_int_equal(a.kind, ACME_ACT_DONE);
    assert_string_equal(acme_progress(&m), "certificate revoked");
    acme_free(&m);
    /* Already revoked: the problem document. */
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    respond(&m, 400, NULL, "{\"type\":\"urn:ietf:params:acme:error:alreadyRevoked\",\"detail\":\"gone\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "revokeCert: HTTP 400 alreadyRevoked: gone");
    acme_free(&m);
    /* Misuse: no account, a bad reason, no certificate; a CA without revokeCert. */
    cfg.account_url = NULL;
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    cfg.account_url = ACCT_URL;
    cfg.revoke_reason = 7;
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    cfg.revoke_reason = 0;
    cfg.cert_pem = "junk";
    cfg.cert_pem_len = 4;
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    cfg.cert_pem = ACME_TEST_CERT_PEM;
    cfg.cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1;
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    assert_string_equal(acme_failure(&m), "directory: no revokeCert");
    acme_free(&m);
}

static void test_key_change(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096], inner_payload[4096];
    EVP_PKEY *new_key = acme_key_new_p256();
    acme_config_t cfg = {.op = ACME_OP_KEY_CHANGE, .account_url = ACCT_URL, .new_account_key = new_key};
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    expect_post(&a, "https://ca.test/key", ACCT_URL, payload, sizeof payload); /* outer: the old key, kid */
    json_t *inner_hdr = jws_header(payload, new_key, inner_payload, sizeof inner_payload); /* inner: the new key */
    assert_string_equal(json_string_value(json_object_get(inner_hdr, "url")), "https://ca.test/key");
    assert_null(json_object_get(inner_hdr, "nonce"));
    assert_null(json_object_get(inner_hdr, "kid"));
    assert_non_null(json_object_get(inner_hdr, "jwk"));
    json_decref(inner_hdr);
    json_t *ip = json_loads(inner_payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ip, "account")), ACCT_URL);
    buf_t jwk;
    buf_init(&jwk, 0);
    assert_int_equal(acme_jwk(account_key, &jwk), 0);
    json_t *old = json_loads(jwk.data, 0, NULL);
    assert_true(json_equal(json_object_get(ip, "oldKey"), old));
    json_decref(old);
    json_decref(ip);
    buf_free(&jwk);
    /* badNonce: the same request again, re-signed with the new nonce. */
    respond(&m, 400, NULL, "{\"type\":\"urn:ietf:params:acme:error:badNonce\"}", &a);
    expect_post(&a, "https://ca.test/key", ACCT_URL, payload, sizeof payload);
    respond(&m, 200, NULL, "{\"status\":\"valid\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_DONE);
    assert_string_equal(acme_progress(&m), "account key changed");
    acme_free(&m);
    /* The same key again, or none: refused. */
    cfg.new_account_key = account_key;
    assert_int_equal(acme_init(&m, &cfg), -1);
    acme_free(&m);
    EVP_PKEY_free(new_key);
}

static void test_renewal_info(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    time_t start, end;
    int64_t retry;
    buf_t id;
    buf_init(&id, 0);
    assert_int_equal(acme_ari_cert_id(ACME_TEST_CERT_PEM, sizeof ACME_TEST_CERT_PEM - 1, &id), 0);
    assert_string_equal(id.data, ARI_ID);
    buf_free(&id);
    acme_config_t cfg = {.op = ACME_OP_RENEWAL_INFO, .cert_pem = ACME_TEST_CERT_PEM, .cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1};
    /* A CA without renewalInfo (pebble 2.4): done, no window. */
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY, &a);
    assert_int_equal(a.kind, ACME_ACT_DONE);
    assert_int_equal(acme_renewal_window(&m, &start, &end, &retry), -1);
    acme_free(&m);
    /* With it: GET renewalInfo/<id> (no JWS), the window and Retry-After. */
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    expect_request(&a, "GET", "https://ca.test/ari/" ARI_ID);
    assert_null(a.request.body);
    respond_full(&m, 0, 200, NULL, NULL, "21600",
                 "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:00.5+01:00\"},"
                 "\"explanationURL\":\"https://ca.test/why\"}",
                 &a);
    assert_int_equal(a.kind, ACME_ACT_DONE);
    assert_int_equal(acme_renewal_window(&m, &start, &end, &retry), 0);
    assert_int_equal(start, 1735790400);
    assert_int_equal(end, 1735790400 + 86400 - 3600);
    assert_int_equal(retry, 21600000);
    acme_free(&m);
    /* A window that is not one. */
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    respond(&m, 200, NULL, "{\"suggestedWindow\":{\"start\":\"2025-01-03T00:00:00Z\",\"end\":\"2025-01-02T00:00:00Z\"}}",
            &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "renewalInfo: no usable suggestedWindow");
    acme_free(&m);
    /* RFC 3339 edge cases. */
    time_t t;
    assert_int_equal(acme_rfc3339("1970-01-01T00:00:10Z", &t), 0);
    assert_int_equal(t, 10);
    assert_int_equal(acme_rfc3339("1970-01-01T01:00:00-01:00", &t), 0);
    assert_int_equal(t, 7200);
    assert_int_equal(acme_rfc3339("1970-01-01 00:00:10Z", &t), -1);
    assert_int_equal(acme_rfc3339("1970-01-01T00:00:10", &t), -1);
    assert_int_equal(acme_rfc3339("1970-01-01T00:00:10Zjunk", &t), -1);
    assert_int_equal(acme_rfc3339(NULL, &t), -1);
    /* base64url decoding: canonical text only. */
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(acme_b64url_decode("-_8", 3, &b), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\xfb\xff", 2);
    assert_int_equal(acme_b64url_decode("-_9", 3, &b), -1);
    assert_int_equal(acme_b64url_decode("a+b/", 4, &b), -1);
    assert_int_equal(acme_b64url_decode("abcde", 5, &b), -1);
    buf_free(&b);
}

static uint32_t half_random(void *arg) {
    (void)arg;
    return 0x80000000u; /* the middle of a window */
}

/* A RENEWAL_INFO machine against DIRECTORY_MORE (or DIRECTORY) ended by body (NULL: none needed). */
static void renewal_info_run(acme_t *m, const char *directory, int status, const char *retry_after,
                             const char *body) {
    acme_config_t cfg = {.op = ACME_OP_RENEWAL_INFO, .cert_pem = ACME_TEST_CERT_PEM, .cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1};
    acme_action_t a;
    init_op(m, &cfg);
    m->cfg.random = half_random;
    acme_advance(m, NULL, 0, &a);
    respond(m, 200, NULL, directory, &a);
    if (body)
        respond_full(m, 0, status, "n1", NULL, retry_after, body, &a);
    assert_true(a.kind == ACME_ACT_DONE || a.kind == ACME_ACT_FAILED);
    acme_free(m);
}

#define WINDOW(s, e) "{\"suggestedWindow\":{\"start\":\"" s "\",\"end\":\"" e "\"}}"

static void test_renewal_plan(void **state) {
    (void)state;
    acme_t m;
    /* The pick: uniform over [start, end] by r, never before now. */
    assert_int_equal(acme_renewal_pick(1000, 2000, 0, 0), 1000);
    assert_int_equal(acme_renewal_pick(1000, 2000, 0, 0x80000000u), 1500);
    assert_int_equal(acme_renewal_pick(1000, 2000, 0, 0xffffffffu), 2000);
    assert_int_equal(acme_renewal_pick(1000, 1000, 0, 0xffffffffu), 1000);
    assert_int_equal(acme_renewal_pick(1000, 2000, 1600, 0x80000000u), 1600);
    assert_int_equal(acme_renewal_pick(1000, 2000, 5000, 0), 5000);
    assert_int_equal(acme_renewal_recheck_ms(-1), ACME_ARI_RECHECK_S * 1000);
    assert_int_equal(acme_renewal_recheck_ms(5000), 60000);
    assert_int_equal(acme_renewal_recheck_ms(7200000), 7200000);
    assert_int_equal(acme_renewal_recheck_ms(90000000), 86400000);

    const time_t nb = 1735689600, na = nb + 90 * 86400; /* 2025-01-01 + 90 days */
    const time_t now = nb + 86400;
    /* The CA's window (2025-03-01 .. 2025-03-03): its middle; Retry-After for the next check. */
    acme_renewal_plan_t plan = {0};
    renewal_info_run(&m, DIRECTORY_MORE, 200, "7200", WINDOW("2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"));
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.start, 1740787200);
    assert_int_equal(plan.end, 1740787200 + 2 * 86400);
    assert_int_equal(plan.at, 1740787200 + 86400);
    assert_int_equal(plan.recheck_ms, 7200000);
    /* Asked again, the same window: the time picked stays (another pick would bias it early). */
    plan.at = 1740787200 + 600;
    renewal_info_run(&m, DIRECTORY_MORE, 200, NULL, WINDOW("2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"));
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.at, 1740787200 + 600);
    assert_int_equal(plan.recheck_ms, ACME_ARI_RECHECK_S * 1000);
    /* A window moved into the past (the CA wants it replaced, e.g. a revocation ahead): now. */
    renewal_info_run(&m, DIRECTORY_MORE, 200, "60", WINDOW("2025-01-01T12:00:00Z", "2025-01-01T18:00:00Z"));
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.at, now);
    assert_int_equal(plan.start, 1735732800);
    /* No renewalInfo in the directory (pebble 2.4): two thirds, asked again after the default. */
    renewal_info_run(&m, DIRECTORY, 0, NULL, NULL);
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.start, 0);
    assert_int_equal(plan.at, nb + 60 * 86400);
    assert_int_equal(plan.recheck_ms, ACME_ARI_RECHECK_S * 1000);
    /* The query failed (a problem document, a bad window): two thirds, asked again in an hour. */
    plan = (acme_renewal_plan_t){0};
    renewal_info_run(&m, DIRECTORY_MORE, 404, NULL, "{\"type\":\"urn:ietf:params:acme:error:malformed\"}");
    assert_int_equal(acme_state(&m), ACME_FAILED);
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.at, nb + 60 * 86400);
    assert_int_equal(plan.recheck_ms, 3600 * 1000);
    renewal_info_run(&m, DIRECTORY_MORE, 200, "60", "{\"suggestedWindow\":{}}");
    acme_renewal_plan(&m, nb, na, now, &plan);
    assert_int_equal(plan.at, nb + 60 * 86400);
    assert_int_equal(plan.start, 0);
}

/* newOrder of a renewal: "replaces" (RFC 9773 5) only when the directory offers renewalInfo. */
static void order_replaces(acme_t *m, const char *directory, char *payload, size_t size) {
    acme_config_t cfg = {.account_url = ACCT_URL, .cert_pem = ACME_TEST_CERT_PEM, .cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1};
    acme_action_t a;
    init_op(m, &cfg);
    acme_advance(m, NULL, 0, &a);
    respond(m, 200, NULL, directory, &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, size);
}

static void test_replaces(void **state) {
    (void)state;
    acme_t m;
    acme_action_t a;
    char payload[4096];
    order_replaces(&m, DIRECTORY, payload, sizeof payload);
    json_t *p = json_loads(payload, 0, NULL);
    assert_null(json_object_get(p, "replaces"));
    json_decref(p);
    acme_free(&m);

    order_replaces(&m, DIRECTORY_MORE, payload, sizeof payload);
    p = json_loads(payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "replaces")), ARI_ID);
    assert_non_null(json_object_get(p, "identifiers"));
    json_decref(p);
    /* badNonce: the same order again, still replacing. */
    respond(&m, 400, NULL, "{\"type\":\"urn:ietf:params:acme:error:badNonce\"}", &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    p = json_loads(payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "replaces")), ARI_ID);
    json_decref(p);
    /* Replaced already: once more without it; refused again: a failure. */
    respond(&m, 409, NULL, "{\"type\":\"urn:ietf:params:acme:error:alreadyReplaced\",\"detail\":\"done\"}", &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    p = json_loads(payload, 0, NULL);
    assert_null(json_object_get(p, "replaces"));
    json_decref(p);
    respond(&m, 409, NULL, "{\"type\":\"urn:ietf:params:acme:error:alreadyReplaced\",\"detail\":\"done\"}", &a);
    assert_int_equal(a.kind, ACME_ACT_FAILED);
    assert_string_equal(acme_failure(&m), "newOrder: HTTP 409 alreadyReplaced: done");
    acme_free(&m);

    /* A certificate without an authority key id cannot be named: a plain order. */
    acme_config_t cfg = {.account_url = ACCT_URL, .cert_pem = "junk", .cert_pem_len = 4};
    init_op(&m, &cfg);
    acme_advance(&m, NULL, 0, &a);
    respond(&m, 200, NULL, DIRECTORY_MORE, &a);
    expect_post(&a, "https://ca.test/order", ACCT_URL, payload, sizeof payload);
    p = json_loads(payload, 0, NULL);
    assert_null(json_object_get(p, "replaces"));
    json_decref(p);
    acme_free(&m);
}

int main(void) {
    account_key = acme_key_new_p256();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_bad_nonce),
        cmocka_unit_test(test_problems),
        cmocka_unit_test(test_invalid_authorization),
        cmocka_unit_test(test_order_not_ready_and_transient),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_deadline_and_misuse),
        cmocka_unit_test(test_crypto_and_times),
        cmocka_unit_test(test_external_account_binding),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_key_change),
        cmocka_unit_test(test_renewal_info),
        cmocka_unit_test(test_renewal_plan),
        cmocka_unit_test(test_replaces),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(account_key);
    return rc;
}
