/* The agent's key-API bodies (agent/api.h) and its crypto (agent/crypto.h):
 * request bodies, strict answers, signatures against a pinned P-384 key,
 * OAEP unwrap with the announced hash into locked memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "../../agent/api.h"
#include "../../agent/crypto.h"
#include "../../agent/ids.h"
#include "../../common/base64.h"

#define UUID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

static EVP_PKEY *rsa_key; /* made once: RSA keys are slow */

static int setup(void **state) {
    (void)state;
    rsa_key = skcrypto_rsa_new(3072);
    return rsa_key ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    EVP_PKEY_free(rsa_key);
    return 0;
}

static const char *field(json_t *o, const char *name) {
    const char *s = json_string_value(json_object_get(o, name));
    assert_non_null(s);
    return s;
}

static void request_bodies(void **state) {
    (void)state;
    buf_t spki, blob;
    buf_init(&spki, 0);
    buf_init(&blob, 0);
    assert_int_equal(skcrypto_spki(rsa_key, &spki), 0);
    buf_append(&blob, "\x01\x02\x03", 3);
    char *s = skapi_generate_body(&spki, UUID);
    json_t *o = json_loads(s, 0, NULL);
    assert_int_equal(json_object_size(o), 2);
    assert_string_equal(field(o, "volume_uuid"), UUID);
    buf_t der;
    buf_init(&der, 0);
    const char *b64 = field(o, "rsa_wrapping_key");
    assert_int_equal(base64_decode(b64, strlen(b64), &der), 0);
    assert_int_equal(der.len, spki.len);
    assert_memory_equal(der.data, spki.data, spki.len);
    json_decref(o);
    free(s);
    s = skapi_decrypt_body(&blob, &spki, UUID);
    o = json_loads(s, 0, NULL);
    assert_int_equal(json_object_size(o), 3);
    assert_string_equal(field(o, "encrypted_secret"), "AQID");
    json_decref(o);
    free(s);
    s = skapi_convert_body(&blob, "i-0123456789abcdef0", UUID);
    o = json_loads(s, 0, NULL);
    assert_int_equal(json_object_size(o), 3);
    assert_string_equal(field(o, "source_instance_id"), "i-0123456789abcdef0");
    assert_string_equal(field(o, "encrypted_secret"), "AQID");
    json_decref(o);
    free(s);
    buf_free(&der);
    buf_free(&spki);
    buf_free(&blob);
}

static int parse(const char *body, int want, skapi_reply_t *r, char *err) {
    skapi_reply_init(r);
    return skapi_parse_reply(body, strlen(body), want, r, err, 256);
}

static void replies(void **state) {
    (void)state;
    skapi_reply_t r;
    char err[256];
    const char *full =
        "{\"encrypted_secret\":\"AQID\",\"encrypted_secret_signature\":\"BAUG\",\"wrapped_secret\":\"BwgJ\","
        "\"wrapped_secret_signature\":\"CgsM\",\"wrapped_secret_algorithm\":\"RSA-OAEP-SHA1\",\"audit_seq\":7}";
    assert_int_equal(parse(full, SKAPI_ENCRYPTED | SKAPI_WRAPPED, &r, err), 0);
    assert_int_equal(r.enc.len, 3);
    assert_memory_equal(r.wrapped_sig.data, "\x0a\x0b\x0c", 3);
    assert_string_equal(r.algorithm, "RSA-OAEP-SHA1");
    skapi_reply_free(&r);
    /* decrypt-secret's answer: no encrypted_secret needed; no algorithm: "" (SHA-256) */
    assert_int_equal(
        parse("{\"wrapped_secret\":\"BwgJ\",\"wrapped_secret_signature\":\"CgsM\"}", SKAPI_WRAPPED, &r, err), 0);
    assert_string_equal(r.algorithm, "");
    skapi_reply_free(&r);
    struct {
        const char *body;
        const char *want;
    } bad[] = {
        {"", "not a JSON object"},
        {"[1]", "not a JSON object"},
        {"{\"wrapped_secret\":\"BwgJ\"}", "wrapped_secret_signature"},
        {"{\"wrapped_secret\":\"Bwg\",\"wrapped_secret_signature\":\"CgsM\"}", "wrapped_secret"},
        {"{\"wrapped_secret\":7,\"wrapped_secret_signature\":\"CgsM\"}", "wrapped_secret"},
        {"{\"wrapped_secret\":\"BwgJ\",\"wrapped_secret_signature\":\"CgsM\",\"wrapped_secret_algorithm\":\"RSA-"
         "PKCS1\"}",
         "algorithm"},
        {"{\"wrapped_secret\":\"BwgJ\",\"wrapped_secret\":\"BwgJ\",\"wrapped_secret_signature\":\"CgsM\"}",
         "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i].body, SKAPI_WRAPPED, &r, err), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("%s: error %s", bad[i].body, err);
        skapi_reply_free(&r);
    }
    /* a wrapped secret longer than RSA-8192 */
    char *big = malloc(4096);
    strcpy(big, "{\"wrapped_secret_signature\":\"CgsM\",\"wrapped_secret\":\"");
    size_t at = strlen(big), b64len = 4 * ((SKAPI_WRAPPED_MAX + 3) / 3); /* decodes to more than the bound */
    memset(big + at, 'A', b64len);
    strcpy(big + at + b64len, "\"}");
    assert_int_equal(parse(big, SKAPI_WRAPPED, &r, err), -1);
    skapi_reply_free(&r);
    free(big);
    /* public key and error messages */
    buf_t der;
    buf_init(&der, 0);
    assert_int_equal(skapi_parse_public_key("{\"public_key\":\"AQID\"}", 21, &der, err, sizeof err), 0);
    assert_int_equal(der.len, 3);
    buf_free(&der);
    assert_int_equal(skapi_parse_public_key("{}", 2, &der, err, sizeof err), -1);
    char msg[32];
    skapi_error_message("{\"message\":\"Bad parameters\"}", 28, msg, sizeof msg);
    assert_string_equal(msg, "Bad parameters");
    skapi_error_message("{\"message\":\"a\\u001b[31mb\"}", 26, msg, sizeof msg);
    assert_string_equal(msg, "a?[31mb");
    skapi_error_message("<html>", 6, msg, sizeof msg);
    assert_string_equal(msg, "(no message)");
    skapi_error_message("{\"message\":\"0123456789012345678901234567890123456789\"}", 54, msg, 8);
    assert_string_equal(msg, "0123456");
}

static EVP_PKEY *ec_key(const char *curve) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static void write_pub(EVP_PKEY *k, const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
}

static void sign(EVP_PKEY *k, const void *data, size_t len, unsigned char *sig, size_t *siglen) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, siglen, data, len), 1);
    EVP_MD_CTX_free(ctx);
}

static void pinned_key_and_signatures(void **state) {
    (void)state;
    char dir[] = "/tmp/test_agent_api-XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/pub.pem", dir);
    EVP_PKEY *api = ec_key("P-384"), *other = ec_key("P-384"), *p256 = ec_key("P-256");
    write_pub(api, path);
    EVP_PKEY *pinned = skcrypto_load_api_key(path, err, sizeof err);
    assert_non_null(pinned);
    unsigned char blob[74], sig[128];
    size_t siglen = sizeof sig;
    memset(blob, 0x5a, sizeof blob);
    sign(api, blob, sizeof blob, sig, &siglen);
    assert_int_equal(skcrypto_verify(pinned, blob, sizeof blob, sig, siglen), 1);
    blob[10] ^= 1;
    assert_int_equal(skcrypto_verify(pinned, blob, sizeof blob, sig, siglen), 0);
    blob[10] ^= 1;
    sig[siglen - 1] ^= 1;
    assert_int_equal(skcrypto_verify(pinned, blob, sizeof blob, sig, siglen), 0);
    assert_int_equal(skcrypto_verify(pinned, blob, sizeof blob, sig, 0), 0);
    siglen = sizeof sig;
    sign(other, blob, sizeof blob, sig, &siglen);
    assert_int_equal(skcrypto_verify(pinned, blob, sizeof blob, sig, siglen), 0);
    /* the fingerprint: SHA-256 of the DER SubjectPublicKeyInfo */
    char fpr[SKCRYPTO_FPR_LEN + 1], want[SKCRYPTO_FPR_LEN + 1];
    assert_int_equal(skcrypto_fingerprint(pinned, fpr), 0);
    unsigned char *der = NULL, md[32];
    int n = i2d_PUBKEY(api, &der);
    EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
    OPENSSL_free(der);
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(fpr, want);
    /* only EC P-384 is taken as the pinned key */
    write_pub(p256, path);
    assert_null(skcrypto_load_api_key(path, err, sizeof err));
    assert_non_null(strstr(err, "P-384"));
    write_pub(rsa_key, path);
    assert_null(skcrypto_load_api_key(path, err, sizeof err));
    unlink(path);
    assert_null(skcrypto_load_api_key(path, err, sizeof err));
    assert_non_null(strstr(err, "cannot read"));
    rmdir(dir);
    EVP_PKEY_free(pinned);
    EVP_PKEY_free(api);
    EVP_PKEY_free(other);
    EVP_PKEY_free(p256);
}

/* What skd's HSM does: OAEP to our public key with the named hash. */
static size_t wrap(const char *md, const unsigned char *secret, unsigned char *out) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, rsa_key, NULL);
    size_t len = 512;
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL), 1);
    assert_int_equal(EVP_PKEY_encrypt(ctx, out, &len, secret, 32), 1);
    EVP_PKEY_CTX_free(ctx);
    return len;
}

static void oaep_unwrap(void **state) {
    (void)state;
    unsigned char secret[32], wrapped[512];
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)(i * 7 + 1);
    secmem_t out;
    size_t n = wrap("SHA1", secret, wrapped);
    assert_int_equal(n, 384);
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, "RSA-OAEP-SHA1", wrapped, n, &out), 0);
    assert_int_equal(out.len, 32);
    assert_memory_equal(out.data, secret, 32);
    secmem_free(&out);
    assert_null(out.data);
    /* the wrong hash, an unknown name, a flipped byte: refused, nothing kept */
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, "RSA-OAEP-SHA256", wrapped, n, &out), -1);
    assert_null(out.data);
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, "RSA-OAEP-MD5", wrapped, n, &out), -1);
    wrapped[5] ^= 1;
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, "RSA-OAEP-SHA1", wrapped, n, &out), -1);
    n = wrap("SHA256", secret, wrapped);
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, "RSA-OAEP-SHA256", wrapped, n, &out), 0);
    assert_memory_equal(out.data, secret, 32);
    secmem_free(&out);
    assert_int_equal(skcrypto_oaep_decrypt(rsa_key, NULL, wrapped, n, &out), 0); /* the original's default */
    secmem_free(&out);
    secmem_free(&out); /* twice is harmless */
}

static void uuid4(void **state) {
    (void)state;
    char a[37], b[37];
    assert_int_equal(skcrypto_uuid4(a), 0);
    assert_int_equal(skcrypto_uuid4(b), 0);
    assert_true(skid_uuid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_bodies), cmocka_unit_test(replies), cmocka_unit_test(pinned_key_and_signatures),
        cmocka_unit_test(oaep_unwrap),    cmocka_unit_test(uuid4),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
