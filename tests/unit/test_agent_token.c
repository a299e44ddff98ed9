/* The sk LUKS2 token (agent/token.h): encoding, strict parsing, takeown history. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../agent/token.h"

#define UUID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define I1 "i-0123456789abcdef0"
#define I2 "i-0fedcba9876543210"
#define FPR "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void make(sktoken_t *t, const char *tenant) {
    sktoken_init(t);
    t->keyslot = 0;
    snprintf(t->volume_uuid, sizeof t->volume_uuid, "%s", UUID);
    snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    snprintf(t->api_key_fingerprint, sizeof t->api_key_fingerprint, "%s", FPR);
    snprintf(t->current.instance_id, sizeof t->current.instance_id, "%s", I1);
    assert_int_equal(sktoken_set_current(t, "\x01\x02\x03", 3, "\x30\x06\x02\x01\x01\x02\x01\x01", 8), 0);
}

static char *encode(const sktoken_t *t) {
    char *s = sktoken_encode(t);
    assert_non_null(s);
    return s;
}

static void round_trip(void **state) {
    (void)state;
    sktoken_t t, back;
    make(&t, "vpc-0123456789abcdef0");
    char *json = encode(&t);
    /* What cryptsetup sees: type and keyslots, our fields, base64 blobs. */
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "sk");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "keyslots"), 0)), "0");
    assert_string_equal(json_string_value(json_object_get(o, "encrypted_secret")), "AQID");
    assert_string_equal(json_string_value(json_object_get(o, "encrypted_secret_signature")), "MAYCAQECAQE=");
    assert_string_equal(json_string_value(json_object_get(o, "volume_uuid")), UUID);
    assert_string_equal(json_string_value(json_object_get(o, "instance_id")), I1);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "vpc-0123456789abcdef0");
    assert_string_equal(json_string_value(json_object_get(o, "api_key_fingerprint")), FPR);
    assert_int_equal(json_array_size(json_object_get(o, "history")), 0);
    json_decref(o);
    char err[256];
    assert_int_equal(sktoken_parse(json, strlen(json), &back, err, sizeof err), 0);
    assert_int_equal(back.keyslot, 0);
    assert_string_equal(back.volume_uuid, UUID);
    assert_string_equal(back.tenant, "vpc-0123456789abcdef0");
    assert_string_equal(back.current.instance_id, I1);
    assert_int_equal(back.current.blob.len, 3);
    assert_memory_equal(back.current.blob.data, "\x01\x02\x03", 3);
    assert_int_equal(back.current.sig.len, 8);
    assert_int_equal(back.nhistory, 0);
    free(json);
    sktoken_free(&back);
    sktoken_free(&t);
    /* no tenant: the field is left out, and parses back empty */
    make(&t, "");
    json = encode(&t);
    assert_null(strstr(json, "tenant"));
    assert_int_equal(sktoken_parse(json, strlen(json), &back, err, sizeof err), 0);
    assert_string_equal(back.tenant, "");
    free(json);
    sktoken_free(&back);
    sktoken_free(&t);
}

static void replace_keeps_history(void **state) {
    (void)state;
    sktoken_t t, back;
    make(&t, "");
    buf_t blob, sig;
    buf_init(&blob, 0);
    buf_init(&sig, 0);
    buf_append(&blob, "\x0a\x0b", 2);
    buf_append(&sig, "\x30\x06\x02\x01\x02\x02\x01\x02", 8);
    assert_int_equal(sktoken_replace(&t, &blob, &sig, I2, "2026-01-02T03:04:05Z"), 0);
    assert_string_equal(t.current.instance_id, I2);
    assert_int_equal(t.nhistory, 1);
    assert_string_equal(t.history[0].instance_id, I1);
    assert_string_equal(t.history[0].replaced_at, "2026-01-02T03:04:05Z");
    assert_memory_equal(t.history[0].blob.data, "\x01\x02\x03", 3);
    char *json = encode(&t);
    char err[256];
    assert_int_equal(sktoken_parse(json, strlen(json), &back, err, sizeof err), 0);
    assert_int_equal(back.nhistory, 1);
    assert_memory_equal(back.current.blob.data, "\x0a\x0b", 2);
    assert_memory_equal(back.history[0].blob.data, "\x01\x02\x03", 3);
    assert_string_equal(back.history[0].instance_id, I1);
    free(json);
    sktoken_free(&back);
    /* bad input changes nothing */
    assert_int_equal(sktoken_replace(&t, &blob, &sig, "i-XYZ", "2026-01-02T03:04:05Z"), -1);
    assert_int_equal(sktoken_replace(&t, &blob, &sig, I1, ""), -1);
    assert_int_equal(t.nhistory, 1);
    /* fill the history: then the oldest goes */
    for (int i = 1; i < SKTOKEN_HISTORY_MAX; i++)
        assert_int_equal(sktoken_replace(&t, &blob, &sig, i % 2 ? I1 : I2, "2026-01-02T03:04:06Z"), 0);
    assert_int_equal(t.nhistory, SKTOKEN_HISTORY_MAX);
    assert_memory_equal(t.history[0].blob.data, "\x01\x02\x03", 3);
    assert_int_equal(sktoken_replace(&t, &blob, &sig, I2, "2026-01-02T03:04:07Z"), 1);
    assert_int_equal(t.nhistory, SKTOKEN_HISTORY_MAX);
    assert_memory_equal(t.history[0].blob.data, "\x0a\x0b", 2);
    assert_string_equal(t.history[SKTOKEN_HISTORY_MAX - 1].replaced_at, "2026-01-02T03:04:07Z");
    json = encode(&t);
    assert_true(strlen(json) < 12 * 1024); /* fits LUKS2's default JSON area */
    assert_int_equal(sktoken_parse(json, strlen(json), &back, err, sizeof err), 0);
    assert_int_equal(back.nhistory, SKTOKEN_HISTORY_MAX);
    free(json);
    sktoken_free(&back);
    buf_free(&blob);
    buf_free(&sig);
    sktoken_free(&t);
}

/* A valid token with one field replaced (value NULL: removed). */
static char *variant(const char *field, json_t *value) {
    sktoken_t t;
    make(&t, "vpc-1");
    char *json = encode(&t);
    sktoken_free(&t);
    json_t *o = json_loads(json, 0, NULL);
    free(json);
    if (value)
        json_object_set_new(o, field, value);
    else
        json_object_del(o, field);
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

static void refuse(const char *json, const char *want) {
    sktoken_t t;
    char err[256] = "";
    assert_int_equal(sktoken_parse(json, strlen(json), &t, err, sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("error %s does not mention %s (token %s)", err, want, json);
    sktoken_free(&t);
}

static void refuse_variant(const char *field, json_t *value, const char *want) {
    char *json = variant(field, value);
    refuse(json, want);
    free(json);
}

static void strict_parse(void **state) {
    (void)state;
    refuse("", "not JSON");
    refuse("[]", "not a JSON object");
    refuse("{\"type\":\"sk\",\"type\":\"sk\"}", "not JSON"); /* duplicate keys */
    refuse_variant("type", json_string("systemd-tpm2"), "not an sk token");
    refuse_variant("sk_version", json_integer(2), "sk_version");
    refuse_variant("sk_version", NULL, "sk_version");
    refuse_variant("keyslots", json_pack("[s,s]", "0", "1"), "keyslots");
    refuse_variant("keyslots", json_pack("[s]", "x"), "keyslots");
    refuse_variant("keyslots", json_pack("[s]", "99"), "keyslots");
    refuse_variant("volume_uuid", json_string("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), "volume_uuid");
    refuse_variant("volume_uuid", NULL, "volume_uuid");
    refuse_variant("tenant", json_string("vpc 1"), "tenant");
    refuse_variant("tenant", json_integer(1), "tenant");
    refuse_variant("api_key_fingerprint",
                   json_string("00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"),
                   "api_key_fingerprint");
    refuse_variant("api_key_fingerprint", json_string("0011"), "api_key_fingerprint");
    refuse_variant("encrypted_secret", json_string("AQI"), "encrypted_secret");
    refuse_variant("encrypted_secret", json_string("AQ ID"), "encrypted_secret");
    refuse_variant("encrypted_secret", json_string(""), "encrypted_secret");
    refuse_variant("encrypted_secret", NULL, "encrypted_secret");
    refuse_variant("encrypted_secret_signature", json_integer(5), "encrypted_secret_signature");
    refuse_variant("instance_id", json_string("i-0123456789ABCDEF0"), "instance_id");
    refuse_variant("history", NULL, "history");
    refuse_variant("history", json_pack("[i]", 1), "history[0]");
    refuse_variant("history", json_pack("[{s:s}]", "encrypted_secret", "AQID"), "history[0]");
    /* a blob longer than the bound */
    char *big = malloc(2000);
    memset(big, 'A', 1400);
    big[1400] = '\0';
    refuse_variant("encrypted_secret", json_string(big), "encrypted_secret");
    free(big);
    /* too many history entries */
    json_t *h = json_array();
    for (int i = 0; i <= SKTOKEN_HISTORY_MAX; i++)
        json_array_append_new(h,
                              json_pack("{s:s,s:s,s:s,s:s}", "encrypted_secret", "AQID", "encrypted_secret_signature",
                                        "AQID", "instance_id", I1, "replaced_at", "2026-01-01T00:00:00Z"));
    refuse_variant("history", h, "history");
    /* unknown fields are ignored */
    char *json = variant("x-note", json_string("hello"));
    sktoken_t t;
    char err[256];
    assert_int_equal(sktoken_parse(json, strlen(json), &t, err, sizeof err), 0);
    sktoken_free(&t);
    free(json);
}

static void encode_refuses_invalid(void **state) {
    (void)state;
    sktoken_t t;
    make(&t, "");
    snprintf(t.volume_uuid, sizeof t.volume_uuid, "nope");
    assert_null(sktoken_encode(&t));
    sktoken_free(&t);
    make(&t, "");
    t.current.blob.len = 0;
    assert_null(sktoken_encode(&t));
    sktoken_free(&t);
    make(&t, "");
    snprintf(t.current.instance_id, sizeof t.current.instance_id, "x");
    assert_null(sktoken_encode(&t));
    sktoken_free(&t);
    sktoken_init(&t);
    assert_int_equal(sktoken_set_current(&t, "", 0, "x", 1), -1);
    char big[SKTOKEN_BLOB_MAX + 1] = {0};
    assert_int_equal(sktoken_set_current(&t, big, sizeof big, "x", 1), -1);
    sktoken_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(replace_keeps_history),
        cmocka_unit_test(strict_parse),
        cmocka_unit_test(encode_refuses_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
