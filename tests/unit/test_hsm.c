/* The PKCS#11 layer against a real SoftHSM token made for this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../../hsm/hsm.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define LABEL "skd-unit"
#define PIN "1234"

static char dir[64];
static hsm_t *h;
static char err[512];

/* A fresh token in a temporary directory, through SOFTHSM2_CONF. */
static int make_token(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/skd-hsm-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[512], conf[128];
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
    fclose(f);
    setenv("SOFTHSM2_CONF", conf, 1);
    snprintf(cmd, sizeof cmd, "softhsm2-util --init-token --free --label %s --pin %s --so-pin 5678 >/dev/null",
             LABEL, PIN);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_token(void **state) {
    (void)state;
    hsm_close(h);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void open_and_login(void **state) {
    (void)state;
    hsm_t *other;
    assert_int_equal(hsm_open(&other, MODULE, "no-such-token", err, sizeof err), HSM_ERR_FAILED);
    assert_non_null(strstr(err, "no token labelled"));
    assert_int_equal(hsm_open(&h, MODULE, LABEL, err, sizeof err), HSM_OK);
    assert_int_equal(hsm_load_keys(h, err, sizeof err), HSM_ERR_NOT_READY);
    assert_int_equal(hsm_login(h, "0000", 4, err, sizeof err), HSM_ERR_PIN);
    assert_int_equal(hsm_login(h, PIN, strlen(PIN), err, sizeof err), HSM_OK);
}

static void serve_fails_closed_before_init(void **state) {
    (void)state;
    assert_int_equal(hsm_load_keys(h, err, sizeof err), HSM_ERR_FAILED);
    assert_non_null(strstr(err, "no \"skd-domain-key\""));
    buf_t sig;
    buf_init(&sig, 0);
    assert_int_equal(hsm_sign(h, "x", 1, &sig), HSM_ERR_NOT_READY);
}

static void init_once(void **state) {
    (void)state;
    assert_int_equal(hsm_init(h, err, sizeof err), HSM_OK);
    assert_int_equal(hsm_init(h, err, sizeof err), HSM_ERR_EXISTS);
    assert_int_equal(hsm_load_keys(h, err, sizeof err), HSM_OK);
    assert_int_equal(hsm_public_key_der(h)->len, 120); /* P-384 SubjectPublicKeyInfo */
    assert_int_equal(hsm_profile(h), HSM_PROFILE_KWP);
    assert_true(hsm_oaep(h) == HSM_OAEP_SHA1 || hsm_oaep(h) == HSM_OAEP_SHA256);
}

static EVP_PKEY *signing_key(void) {
    const unsigned char *p = (const unsigned char *)hsm_public_key_der(h)->data;
    return d2i_PUBKEY(NULL, &p, (long)hsm_public_key_der(h)->len);
}

static void verify(EVP_PKEY *pub, const void *data, size_t len, const buf_t *sig) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(ctx, (const unsigned char *)sig->data, sig->len, data, len), 1);
    EVP_MD_CTX_free(ctx);
    /* Canonical DER: re-encoding the parsed signature gives the same bytes. */
    const unsigned char *p = (const unsigned char *)sig->data;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sig->len);
    assert_non_null(s);
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(s, &der);
    assert_int_equal(n, (int)sig->len);
    assert_memory_equal(der, sig->data, sig->len);
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
}

static void signatures_verify_and_are_canonical(void **state) {
    (void)state;
    EVP_PKEY *pub = signing_key();
    assert_non_null(pub);
    for (int i = 0; i < 300; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d", i);
        buf_t sig;
        buf_init(&sig, 0);
        assert_int_equal(hsm_sign(h, msg, (size_t)n, &sig), HSM_OK);
        verify(pub, msg, (size_t)n, &sig);
        buf_free(&sig);
    }
    EVP_PKEY_free(pub);
}

static void spki(EVP_PKEY *k, buf_t *out) {
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_true(n > 0);
    buf_append(out, der, (size_t)n);
    OPENSSL_free(der);
}

/* Decrypts wrapped_secret with OpenSSL, as the agent does. */
static void unwrap_rsa(EVP_PKEY *k, const buf_t *wrapped, unsigned char secret[HSM_SECRET_LEN]) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
    const EVP_MD *md = hsm_oaep(h) == HSM_OAEP_SHA256 ? EVP_sha256() : EVP_sha1();
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md);
    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md);
    unsigned char out[1024];
    size_t out_len = sizeof out;
    assert_int_equal(EVP_PKEY_decrypt(ctx, out, &out_len, (const unsigned char *)wrapped->data, wrapped->len), 1);
    assert_int_equal(out_len, HSM_SECRET_LEN);
    memcpy(secret, out, HSM_SECRET_LEN);
    EVP_PKEY_CTX_free(ctx);
}

static void secrets_round_trip(void **state) {
    (void)state;
    buf_t ekt, ekt_other, enc, wrapped, enc2, key1, key2, small;
    buf_init(&ekt, 0), buf_init(&ekt_other, 0), buf_init(&enc, 0), buf_init(&wrapped, 0);
    buf_init(&enc2, 0), buf_init(&key1, 0), buf_init(&key2, 0), buf_init(&small, 0);
    assert_int_equal(hsm_create_ekt(h, "vpc-0123456789abcdef0", &ekt), HSM_OK);
    assert_int_equal(hsm_create_ekt(h, "vpc-00000000", &ekt_other), HSM_OK);
    EVP_PKEY *rsa1 = EVP_RSA_gen(4096), *rsa2 = EVP_RSA_gen(3072), *rsa_small = EVP_RSA_gen(2048);
    spki(rsa1, &key1), spki(rsa2, &key2), spki(rsa_small, &small);
    hsm_binding_t a = {"vpc-0123456789abcdef0", "i-0123456789abcdef0", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"};
    hsm_binding_t a_upper = {"vpc-0123456789abcdef0", "i-0123456789abcdef0", "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"};
    hsm_binding_t other_volume = {"vpc-0123456789abcdef0", "i-0123456789abcdef0",
                                  "00000000-4b5a-6978-8796-a5b4c3d2e1f0"};
    hsm_binding_t b = {"vpc-0123456789abcdef0", "i-0fedcba9876543210", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"};

    assert_int_equal(hsm_generate_secret(h, &ekt, &a, small.data, small.len, &enc, &wrapped), HSM_ERR_BAD_RSA_KEY);
    assert_int_equal(hsm_generate_secret(h, &ekt, &a, key1.data, key1.len, &enc, &wrapped), HSM_OK);
    unsigned char s1[HSM_SECRET_LEN], s2[HSM_SECRET_LEN], s3[HSM_SECRET_LEN];
    unwrap_rsa(rsa1, &wrapped, s1);

    /* decrypt-secret with another key gives the same secret; the uuid's case does not matter */
    wrapped.len = 0;
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &a_upper, enc.data, enc.len, key2.data, key2.len, &wrapped),
                     HSM_OK);
    unwrap_rsa(rsa2, &wrapped, s2);
    assert_memory_equal(s1, s2, HSM_SECRET_LEN);

    /* wrong instance, wrong volume, flipped byte, another tenant's CMK, truncated */
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &b, enc.data, enc.len, key2.data, key2.len, &wrapped),
                     HSM_ERR_BAD_BLOB);
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &other_volume, enc.data, enc.len, key2.data, key2.len, &wrapped),
                     HSM_ERR_BAD_BLOB);
    for (size_t i = 0; i < enc.len; i += 7) {
        enc.data[i] ^= 0x01;
        assert_int_equal(hsm_decrypt_secret(h, &ekt, &a, enc.data, enc.len, key2.data, key2.len, &wrapped),
                         HSM_ERR_BAD_BLOB);
        enc.data[i] ^= 0x01;
    }
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &a, enc.data, enc.len - 1, key2.data, key2.len, &wrapped),
                     HSM_ERR_BAD_BLOB);
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &a, enc.data, 2, key2.data, key2.len, &wrapped), HSM_ERR_BAD_BLOB);
    hsm_binding_t a_other_tenant = {"vpc-00000000", a.instance_id, a.volume_uuid};
    assert_int_equal(hsm_decrypt_secret(h, &ekt_other, &a_other_tenant, enc.data, enc.len, key2.data, key2.len,
                                        &wrapped),
                     HSM_ERR_BAD_BLOB);
    /* an EKT opens only for its own tenant */
    assert_int_equal(hsm_decrypt_secret(h, &ekt_other, &a, enc.data, enc.len, key2.data, key2.len, &wrapped),
                     HSM_ERR_FAILED);

    /* convert-secret to instance b: b can decrypt, a's old blob still works */
    assert_int_equal(hsm_convert_secret(h, &ekt, &a, &b, enc.data, enc.len, &enc2), HSM_OK);
    wrapped.len = 0;
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &b, enc2.data, enc2.len, key1.data, key1.len, &wrapped), HSM_OK);
    unwrap_rsa(rsa1, &wrapped, s3);
    assert_memory_equal(s1, s3, HSM_SECRET_LEN);
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &a, enc2.data, enc2.len, key1.data, key1.len, &wrapped),
                     HSM_ERR_BAD_BLOB);
    wrapped.len = 0;
    assert_int_equal(hsm_decrypt_secret(h, &ekt, &a, enc.data, enc.len, key1.data, key1.len, &wrapped), HSM_OK);

    EVP_PKEY_free(rsa1), EVP_PKEY_free(rsa2), EVP_PKEY_free(rsa_small);
    buf_free(&ekt), buf_free(&ekt_other), buf_free(&enc), buf_free(&wrapped);
    buf_free(&enc2), buf_free(&key1), buf_free(&key2), buf_free(&small);
}

static void nothing_left_behind(void **state) {
    (void)state;
    unsigned long n;
    assert_int_equal(hsm_count_objects(h, 0, &n), HSM_OK);
    assert_int_equal(n, 0); /* every temporary destroyed */
    assert_int_equal(hsm_count_objects(h, 1, &n), HSM_OK);
    assert_int_equal(n, 4); /* domain key, signing pair, profile record */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_and_login),
        cmocka_unit_test(serve_fails_closed_before_init),
        cmocka_unit_test(init_once),
        cmocka_unit_test(signatures_verify_and_are_canonical),
        cmocka_unit_test(secrets_round_trip),
        cmocka_unit_test(nothing_left_behind),
    };
    return cmocka_run_group_tests(tests, make_token, remove_token);
}
