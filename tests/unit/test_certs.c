/* The installations API's sans-IO parts: base64url, JWK, JWS (flattened,
 * ES256), the replay nonces and the reconcile's log. Requests are signed
 * here with OpenSSL the way a client does (DER ECDSA converted to r || s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../certs/b64url.h"
#include "../../certs/jws.h"
#include "../../certs/kvlog.h"
#include "../../certs/nonce.h"

#define URL "http://127.0.0.1:8080/api/v1/installations/0123456789abcdef0123456789abcdef/address"
#define ID "0123456789abcdef0123456789abcdef"

static EVP_PKEY *key1, *key2;

static int make_keys(void **state) {
    (void)state;
    key1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return key1 && key2 ? 0 : -1;
}

static int free_keys(void **state) {
    (void)state;
    EVP_PKEY_free(key1);
    EVP_PKEY_free(key2);
    return 0;
}

static char *b64(const void *data, size_t len) {
    char *out = malloc(b64url_encoded_len(len) + 1);
    assert_int_equal(b64url_encode(data, len, out, b64url_encoded_len(len) + 1), 0);
    return out;
}

/* The public JWK of key as JSON text (x and y from the uncompressed point). */
static char *jwk_text(EVP_PKEY *key) {
    uint8_t point[65];
    size_t len = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len), 1);
    assert_int_equal(len, 65);
    char *x = b64(point + 1, 32), *y = b64(point + 33, 32);
    char *out = malloc(256);
    snprintf(out, 256, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    free(x);
    free(y);
    return out;
}

/* ES256 over input with key, as r || s. */
static void sign_raw(EVP_PKEY *key, const char *input, uint8_t out[64]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[80];
    size_t der_len = sizeof der;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    assert_non_null(sig);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32), 32);
    ECDSA_SIG_free(sig);
}

/* A flattened JWS of header (JSON text) and payload, signed by key. */
static char *make_jws(EVP_PKEY *key, const char *header, const char *payload) {
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);
    snprintf(input, n, "%s.%s", h, p);
    uint8_t sig[64];
    sign_raw(key, input, sig);
    char *s = b64(sig, sizeof sig);
    size_t m = strlen(h) + strlen(p) + strlen(s) + 64;
    char *out = malloc(m);
    snprintf(out, m, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", h, p, s);
    free(h), free(p), free(s), free(input);
    return out;
}

static char *kid_header(const char *alg, const char *kid, const char *nonce, const char *url) {
    char *out = malloc(1024);
    snprintf(out, 1024, "{\"alg\":\"%s\",\"kid\":\"%s\",\"nonce\":\"%s\",\"url\":\"%s\"}", alg, kid, nonce, url);
    return out;
}

static jws_status_t parse(const char *body, jws_t *j) {
    const char *why = NULL;
    jws_status_t st = jws_parse(j, body, strlen(body), &why);
    if (st != JWS_OK)
        assert_non_null(why);
    return st;
}

/* Parses, verifies with key, frees; returns the status or 99 for a bad signature. */
static int check(const char *body, EVP_PKEY *key) {
    jws_t j;
    int st = (int)parse(body, &j);
    if (st == JWS_OK && jws_verify(&j, key) != 0)
        st = 99;
    jws_free(&j);
    return st;
}

/* ---- base64url ---- */

static void b64url_vectors(void **state) {
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        assert_int_equal(b64url_encode(plain[i], strlen(plain[i]), out, sizeof out), 0);
        assert_string_equal(out, coded[i]);
        buf_t b;
        buf_init(&b, 16);
        assert_int_equal(b64url_decode(coded[i], strlen(coded[i]), &b), 0);
        assert_int_equal(b.len, strlen(plain[i]));
        assert_memory_equal(b.data ? b.data : "", plain[i], b.len);
        buf_free(&b);
    }
    uint8_t all[3] = {0xfb, 0xff, 0xbf};
    char out[8];
    assert_int_equal(b64url_encode(all, 3, out, sizeof out), 0);
    assert_string_equal(out, "-_-_");
    assert_int_equal(b64url_encode(all, 3, out, 4), -1); /* no room for the NUL */
    static const char *const bad[] = {"Zg==", "Zm9v=", "Z", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n", "Zm\0v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t b;
        buf_init(&b, 16);
        size_t len = i == 9 ? 4 : strlen(bad[i]);
        assert_int_equal(b64url_decode(bad[i], len, &b), -1);
        assert_int_equal(b.len, 0);
        buf_free(&b);
    }
    buf_t small;
    buf_init(&small, 2);
    assert_int_equal(b64url_decode("Zm9v", 4, &small), -1); /* past the buffer's limit */
    buf_free(&small);
}

/* ---- JWS ---- */

static void valid_kid_and_jwk(void **state) {
    (void)state;
    char *h = kid_header("ES256", ID, "n0nce", URL);
    char *body = make_jws(key1, h, "{\"address\":\"auto\"}");
    jws_t j;
    assert_int_equal(parse(body, &j), JWS_OK);
    assert_string_equal(j.nonce, "n0nce");
    assert_string_equal(j.url, URL);
    assert_string_equal(j.kid, ID);
    assert_false(j.has_jwk);
    assert_int_equal(j.payload.len, 18);
    assert_memory_equal(j.payload.data, "{\"address\":\"auto\"}", 18);
    assert_int_equal(jws_verify(&j, key1), 0);
    assert_int_equal(jws_verify(&j, key2), -1);
    assert_true(jws_url_is(&j, "http", "127.0.0.1:8080", "/api/v1/installations/" ID "/address"));
    assert_false(jws_url_is(&j, "https", "127.0.0.1:8080", "/api/v1/installations/" ID "/address"));
    assert_false(jws_url_is(&j, "http", "127.0.0.1:8081", "/api/v1/installations/" ID "/address"));
    assert_false(jws_url_is(&j, "http", "127.0.0.1:8080", "/api/v1/installations/" ID "/challenge"));
    assert_false(jws_url_is(&j, "http", "127.0.0.1:8080", "/api/v1/installations/" ID "/addres"));
    assert_true(jws_kid_is(&j, ID));
    assert_false(jws_kid_is(&j, "fedcba9876543210fedcba9876543210"));
    jws_free(&j);
    free(body), free(h);

    /* kid as the installation's URL */
    h = kid_header("ES256", "https://skd.example/api/v1/installations/" ID, "n", URL);
    body = make_jws(key1, h, "");
    assert_int_equal(parse(body, &j), JWS_OK);
    assert_true(jws_kid_is(&j, ID));
    assert_int_equal(j.payload.len, 0); /* POST-as-GET style */
    assert_int_equal(jws_verify(&j, key1), 0);
    jws_free(&j);
    free(body), free(h);
    h = kid_header("ES256", "https://skd.example/x" ID, "n", URL);
    body = make_jws(key1, h, "");
    assert_int_equal(parse(body, &j), JWS_OK);
    assert_false(jws_kid_is(&j, ID)); /* not .../installations/<id> */
    jws_free(&j);
    free(body), free(h);

    /* jwk in the header: registration */
    char *jwk = jwk_text(key1), hdr[512];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"n\",\"url\":\"%s\"}", jwk, URL);
    body = make_jws(key1, hdr, "{}");
    assert_int_equal(parse(body, &j), JWS_OK);
    assert_true(j.has_jwk);
    assert_string_equal(j.kid, "");
    assert_int_equal(strlen(j.jwk.thumbprint), 43);
    assert_non_null(strstr(j.jwk.text, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""));
    assert_int_equal(jws_verify(&j, j.jwk.pkey), 0);
    /* The stored text gives the same key and thumbprint. */
    jwk_t again;
    const char *why;
    assert_int_equal(jwk_parse_text(&again, j.jwk.text, &why), 0);
    assert_string_equal(again.thumbprint, j.jwk.thumbprint);
    assert_int_equal(jws_verify(&j, again.pkey), 0);
    jwk_free(&again);
    jws_free(&j);
    free(body), free(jwk);
}

/* RFC 7638 section 3.1's example is RSA; this pins the EC form instead:
 * the thumbprint is SHA-256 of the canonical members in order. */
#define JX "\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\""
#define JY "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\""
#define JEC "\"kty\":\"EC\",\"crv\":\"P-256\","

static void thumbprint_canonical(void **state) {
    (void)state;
    const char *a = "{" JY ",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\"," JX ",\"kid\":\"1\"}";
    jwk_t k;
    const char *why = NULL;
    assert_int_equal(jwk_parse_text(&k, a, &why), 0);
    assert_string_equal(k.text, "{\"crv\":\"P-256\",\"kty\":\"EC\"," JX "," JY "}");
    /* echo -n TEXT | openssl dgst -sha256 -binary | basenc --base64url */
    assert_string_equal(k.thumbprint, "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
    jwk_free(&k);
    static const char *const bad[] = {
        "{\"kty\":\"EC\",\"crv\":\"P-384\"," JX "," JY "}",
        "{\"kty\":\"RSA\",\"crv\":\"P-256\"," JX "," JY "}",
        /* not on the curve (last character of y changed) */
        "{" JEC JX ",\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyA\"}",
        /* a private key */
        "{" JEC JX "," JY ",\"d\":\"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE\"}",
        "{" JEC JX "}",
        "{" JEC "\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4=\"," JY "}",
        "{" JEC "\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7\"," JY "}",
        "{" JEC JX "," JY ",\"alg\":\"ES384\"}",
        "{" JEC JX "," JY ",\"ext\":true}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(jwk_parse_text(&k, bad[i], &why), -1);
        assert_non_null(why);
        jwk_free(&k);
    }
}

static void wrong_alg(void **state) {
    (void)state;
    static const char *const algs[] = {"RS256", "none", "ES384", "es256", "HS256"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        char *h = kid_header(algs[i], ID, "n", URL);
        char *body = make_jws(key1, h, "{}");
        assert_int_equal(check(body, key1), JWS_BAD_ALG);
        free(body), free(h);
    }
    char *body = make_jws(key1, "{\"kid\":\"" ID "\",\"nonce\":\"n\",\"url\":\"" URL "\"}", "{}");
    assert_int_equal(check(body, key1), JWS_MALFORMED); /* no alg at all */
    free(body);
}

static void bad_signatures(void **state) {
    (void)state;
    char *h = kid_header("ES256", ID, "n", URL);
    char *body = make_jws(key2, h, "{}");
    assert_int_equal(check(body, key1), 99); /* another key's */
    assert_int_equal(check(body, key2), JWS_OK);
    /* A flipped signature bit. */
    char *sig = strstr(body, "\"signature\":\"") + 13;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    assert_int_equal(check(body, key2), 99);
    free(body);
    /* A changed payload under the old signature. */
    body = make_jws(key1, h, "{\"value\":\"a\"}");
    char *pl = strstr(body, "\"payload\":\"") + 11;
    pl[3] = pl[3] == 'A' ? 'B' : 'A';
    assert_int_equal(check(body, key1), 99);
    free(body);
    /* r = 0, s = 0 and a 63-byte signature. */
    uint8_t zero[64] = {0};
    char *hh = b64(h, strlen(h)), *z = b64(zero, 64), *z63 = b64(zero, 63), text[2048];
    snprintf(text, sizeof text, "{\"protected\":\"%s\",\"payload\":\"\",\"signature\":\"%s\"}", hh, z);
    assert_int_equal(check(text, key1), 99);
    snprintf(text, sizeof text, "{\"protected\":\"%s\",\"payload\":\"\",\"signature\":\"%s\"}", hh, z63);
    assert_int_equal(check(text, key1), JWS_MALFORMED);
    free(hh), free(z), free(z63), free(h);
}

static void malformed(void **state) {
    (void)state;
    char *h = kid_header("ES256", ID, "n", URL);
    char *hh = b64(h, strlen(h));
    char *good = make_jws(key1, h, "{}");
    char *sig = strstr(good, "\"signature\":\"") + 13;
    sig[strlen(sig) - 2] = '\0'; /* the signature's text alone */
    char text[2048];
#define MALFORMED_BODY(...)                                                                                        \
    do {                                                                                                           \
        snprintf(text, sizeof text, __VA_ARGS__);                                                                  \
        jws_t j_;                                                                                                  \
        assert_int_equal(parse(text, &j_), JWS_MALFORMED);                                                         \
        jws_free(&j_);                                                                                             \
    } while (0)
    MALFORMED_BODY("%s", "");
    MALFORMED_BODY("%s", "null");
    MALFORMED_BODY("%s", "[]");
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"\"}", hh); /* no signature */
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"\",\"signature\":\"%s\",\"header\":{}}", hh, sig);
    MALFORMED_BODY("{\"protected\":\"%s=\",\"payload\":\"\",\"signature\":\"%s\"}", hh, sig);   /* padding */
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"e30=\",\"signature\":\"%s\"}", hh, sig); /* padded */
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"e3+\",\"signature\":\"%s\"}", hh, sig);  /* alphabet */
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":1,\"signature\":\"%s\"}", hh, sig);
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"\",\"signature\":\"%s=\"}", hh, sig);
    MALFORMED_BODY("{\"protected\":\"%s\",\"payload\":\"\",\"signature\":\"%s\"} x", hh, sig); /* trailing */
#undef MALFORMED_BODY
    /* Headers: both kid and jwk, neither, an unknown member, empty nonce, bad JSON. */
    char *jwk = jwk_text(key1);
    char hdrs[6][700];
    snprintf(hdrs[0], 700, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"jwk\":%s,\"nonce\":\"n\",\"url\":\"u\"}", ID, jwk);
    snprintf(hdrs[1], 700, "{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\"}");
    snprintf(hdrs[2], 700, "{\"alg\":\"ES256\",\"kid\":\"k\",\"nonce\":\"n\",\"url\":\"u\",\"crit\":[\"b64\"]}");
    snprintf(hdrs[3], 700, "{\"alg\":\"ES256\",\"kid\":\"k\",\"nonce\":\"\",\"url\":\"u\"}");
    snprintf(hdrs[4], 700, "{\"alg\":\"ES256\",\"kid\":\"k\",\"nonce\":\"n\",\"url\":\"u\"");
    snprintf(hdrs[5], 700, "{\"alg\":\"ES256\",\"kid\":7,\"nonce\":\"n\",\"url\":\"u\"}");
    for (size_t i = 0; i < 6; i++) {
        char *body = make_jws(key1, hdrs[i], "{}");
        assert_int_equal(check(body, key1), JWS_MALFORMED);
        free(body);
    }
    /* A bad key in the header: its own status. */
    char bad_jwk[700];
    snprintf(bad_jwk, sizeof bad_jwk,
             "{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
             "\"nonce\":\"n\",\"url\":\"u\"}");
    char *body = make_jws(key1, bad_jwk, "{}");
    assert_int_equal(check(body, key1), JWS_BAD_KEY);
    free(body), free(jwk), free(good), free(hh), free(h);
}

static void duplicate_members(void **state) {
    (void)state;
    /* In the protected header. */
    char *body =
        make_jws(key1, "{\"alg\":\"ES256\",\"kid\":\"" ID "\",\"nonce\":\"n\",\"url\":\"u\",\"url\":\"v\"}", "{}");
    assert_int_equal(check(body, key1), JWS_MALFORMED);
    free(body);
    body = make_jws(key1, "{\"alg\":\"none\",\"alg\":\"ES256\",\"kid\":\"k\",\"nonce\":\"n\",\"url\":\"u\"}", "{}");
    assert_int_equal(check(body, key1), JWS_MALFORMED);
    free(body);
    /* At the top. */
    char *h = kid_header("ES256", ID, "n", URL);
    body = make_jws(key1, h, "{}");
    char text[2048];
    char *p = strstr(body, "\"payload\"");
    snprintf(text, sizeof text, "%.*s\"payload\":\"\",%s", (int)(p - body), body, p);
    assert_int_equal(check(text, key1), JWS_MALFORMED);
    free(body), free(h);
}

static void oversized(void **state) {
    (void)state;
    char *h = kid_header("ES256", ID, "n", URL);
    size_t n = JWS_PAYLOAD_MAX + 1;
    char *payload = malloc(n + 1);
    memset(payload, 'a', n);
    payload[n] = '\0';
    char *body = make_jws(key1, h, payload);
    assert_int_equal(check(body, key1), JWS_TOO_BIG);
    free(body);
    payload[JWS_PAYLOAD_MAX] = '\0'; /* exactly the limit is fine */
    body = make_jws(key1, h, payload);
    assert_true(strlen(body) <= JWS_MAX_BYTES);
    assert_int_equal(check(body, key1), JWS_OK);
    free(body);
    /* A whole body over the limit, even with spaces only. */
    char *big = malloc(JWS_MAX_BYTES + 2);
    memset(big, ' ', JWS_MAX_BYTES + 1);
    big[JWS_MAX_BYTES + 1] = '\0';
    assert_int_equal(check(big, key1), JWS_TOO_BIG);
    /* A long url or nonce. */
    char url[JWS_URL_MAX + 8];
    memset(url, 'u', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    char *h2 = kid_header("ES256", ID, "n", url);
    body = make_jws(key1, h2, "");
    assert_int_equal(check(body, key1), JWS_MALFORMED);
    free(body), free(h2), free(big), free(payload), free(h);
}

/* ---- nonces ---- */

static void nonces(void **state) {
    (void)state;
    uint8_t k[NONCE_KEY_BYTES] = {1, 2, 3};
    nonce_table_t t;
    assert_int_equal(nonce_table_init(&t, k, 300000, 64), 0);
    char a[NONCE_TEXT_SIZE], b[NONCE_TEXT_SIZE];
    nonce_issue(&t, 1000, a);
    nonce_issue(&t, 1000, b);
    assert_int_equal(strlen(a), NONCE_TEXT_SIZE - 1);
    assert_string_not_equal(a, b);
    assert_int_equal(nonce_redeem(&t, b, strlen(b), 2000), NONCE_OK);
    assert_int_equal(nonce_redeem(&t, b, strlen(b), 2000), NONCE_REPLAYED);
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 2000), NONCE_OK); /* order does not matter */
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 2001), NONCE_REPLAYED);

    /* Expiry. */
    nonce_issue(&t, 1000, a);
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 1000 + 300001), NONCE_EXPIRED);
    nonce_issue(&t, 1000, a);
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 1000 + 300000), NONCE_OK);

    /* Forged, truncated, another process's. */
    nonce_issue(&t, 1000, a);
    char forged[NONCE_TEXT_SIZE];
    memcpy(forged, a, sizeof forged);
    forged[2] = forged[2] == 'A' ? 'B' : 'A'; /* another seq under the same MAC */
    assert_int_equal(nonce_redeem(&t, forged, strlen(forged), 1001), NONCE_INVALID);
    assert_int_equal(nonce_redeem(&t, a, strlen(a) - 1, 1001), NONCE_INVALID);
    assert_int_equal(nonce_redeem(&t, "", 0, 1001), NONCE_INVALID);
    uint8_t k2[NONCE_KEY_BYTES] = {9};
    nonce_table_t other;
    assert_int_equal(nonce_table_init(&other, k2, 300000, 64), 0);
    assert_int_equal(nonce_redeem(&other, a, strlen(a), 1001), NONCE_INVALID);
    nonce_table_free(&other);
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 1001), NONCE_OK); /* still good here */

    /* Out of the window: 64 more issued after it. */
    nonce_issue(&t, 5000, a);
    nonce_issue(&t, 5000, b);
    for (uint64_t i = 0; i < 64 - 1; i++) {
        char c[NONCE_TEXT_SIZE];
        nonce_issue(&t, 5000, c);
    }
    assert_int_equal(nonce_redeem(&t, a, strlen(a), 5000), NONCE_EXPIRED);
    assert_int_equal(nonce_redeem(&t, b, strlen(b), 5000), NONCE_OK); /* the oldest still inside */
    nonce_table_free(&t);
    assert_int_equal(nonce_table_init(&t, k, 1, 48), -1); /* not a power of two */
    nonce_table_free(&t);
}

/* ---- the reconcile's log ---- */

static void kvlog_replay(void **state) {
    (void)state;
    static const char *const keys[] = {"a/x", "n/x", "n/y", "t/x/v1"};
    static const char *const vals[] = {"192.0.2.1", "", "", ""};
    const char *ok[16], *ov[16];
    kvlog_t log = {0};
    /* An empty log gives the snapshot. */
    assert_int_equal(kvlog_apply(&log, keys, vals, 4, ok, ov), 4);
    assert_string_equal(ok[3], "t/x/v1");
    /* A changed value, a new key, a deleted key, a key put then deleted,
     * one deleted then put back: the last operation of each key wins. */
    kvlog_add(&log, "a/x", "192.0.2.2");
    kvlog_add(&log, "t/x/v2", "");
    kvlog_add(&log, "n/y", NULL);
    kvlog_add(&log, "t/z/v", "");
    kvlog_add(&log, "t/z/v", NULL);
    kvlog_add(&log, "t/x/v1", NULL);
    kvlog_add(&log, "t/x/v1", "");
    kvlog_add(&log, "aaaa/x", "2001:db8::1");
    kvlog_add(&log, "zzz", NULL); /* deleting what is not there */
    assert_int_equal(kvlog_apply(&log, keys, vals, 4, ok, ov), 5);
    static const char *const want_k[] = {"a/x", "aaaa/x", "n/x", "t/x/v1", "t/x/v2"};
    static const char *const want_v[] = {"192.0.2.2", "2001:db8::1", "", "", ""};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(ok[i], want_k[i]);
        assert_string_equal(ov[i], want_v[i]);
    }
    /* An empty snapshot. */
    assert_int_equal(kvlog_apply(&log, NULL, NULL, 0, ok, ov), 4);
    assert_string_equal(ok[0], "a/x");
    kvlog_free(&log);
    /* Bounded: past KVLOG_MAX operations the log is spoilt. */
    for (int i = 0; i <= KVLOG_MAX; i++)
        kvlog_add(&log, "k", "v");
    assert_true(log.spoilt);
    assert_int_equal(log.n, KVLOG_MAX);
    kvlog_free(&log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64url_vectors),
        cmocka_unit_test(valid_kid_and_jwk),
        cmocka_unit_test(thumbprint_canonical),
        cmocka_unit_test(wrong_alg),
        cmocka_unit_test(bad_signatures),
        cmocka_unit_test(malformed),
        cmocka_unit_test(duplicate_members),
        cmocka_unit_test(oversized),
        cmocka_unit_test(nonces),
        cmocka_unit_test(kvlog_replay),
    };
    return cmocka_run_group_tests(tests, make_keys, free_keys);
}
