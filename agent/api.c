#include "api.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../common/base64.h"

static int set_b64(json_t *o, const char *name, const void *data, size_t len) {
    buf_t text;
    buf_init(&text, 0);
    int rc =
        base64_encode(data, len, &text) == 0 ? json_object_set_new(o, name, json_stringn(text.data, text.len)) : -1;
    buf_free(&text);
    return rc;
}

static char *dump(json_t *o, int ok) {
    char *s = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *skapi_generate_body(const buf_t *rsa_spki, const char *volume_uuid) {
    json_t *o = json_pack("{s:s}", "volume_uuid", volume_uuid);
    return dump(o, o && set_b64(o, "rsa_wrapping_key", rsa_spki->data, rsa_spki->len) == 0);
}

char *skapi_decrypt_body(const buf_t *blob, const buf_t *rsa_spki, const char *volume_uuid) {
    json_t *o = json_pack("{s:s}", "volume_uuid", volume_uuid);
    return dump(o, o && set_b64(o, "encrypted_secret", blob->data, blob->len) == 0 &&
                       set_b64(o, "rsa_wrapping_key", rsa_spki->data, rsa_spki->len) == 0);
}

char *skapi_convert_body(const buf_t *blob, const char *source_instance_id, const char *volume_uuid) {
    json_t *o = json_pack("{s:s, s:s}", "volume_uuid", volume_uuid, "source_instance_id", source_instance_id);
    return dump(o, o && set_b64(o, "encrypted_secret", blob->data, blob->len) == 0);
}

void skapi_reply_init(skapi_reply_t *r) {
    buf_init(&r->enc, SKAPI_WRAPPED_MAX);
    buf_init(&r->enc_sig, SKAPI_SIG_MAX);
    buf_init(&r->wrapped, SKAPI_WRAPPED_MAX);
    buf_init(&r->wrapped_sig, SKAPI_SIG_MAX);
    r->algorithm[0] = '\0';
}

void skapi_reply_free(skapi_reply_t *r) {
    buf_free(&r->enc);
    buf_free(&r->enc_sig);
    buf_free(&r->wrapped);
    buf_free(&r->wrapped_sig);
}

static int get_b64(json_t *o, const char *name, buf_t *out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, name);
    out->len = 0;
    if (!json_is_string(v) || base64_decode(json_string_value(v), json_string_length(v), out) != 0 || !out->len) {
        snprintf(err, errlen, "the API's answer has no valid %s", name);
        return -1;
    }
    return 0;
}

static json_t *load_object(const char *body, size_t len, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *o = len <= SKAPI_BODY_MAX ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "the API's answer is not a JSON object");
        return NULL;
    }
    return o;
}

int skapi_parse_reply(const char *body, size_t len, int want, skapi_reply_t *r, char *err, size_t errlen) {
    json_t *o = load_object(body, len, err, errlen);
    if (!o)
        return -1;
    int rc = -1;
    if (want & SKAPI_ENCRYPTED) {
        if (get_b64(o, "encrypted_secret", &r->enc, err, errlen) != 0 ||
            get_b64(o, "encrypted_secret_signature", &r->enc_sig, err, errlen) != 0)
            goto done;
    }
    if (want & SKAPI_WRAPPED) {
        if (get_b64(o, "wrapped_secret", &r->wrapped, err, errlen) != 0 ||
            get_b64(o, "wrapped_secret_signature", &r->wrapped_sig, err, errlen) != 0)
            goto done;
        json_t *alg = json_object_get(o, "wrapped_secret_algorithm");
        if (alg) {
            const char *a = json_string_value(alg);
            if (!a || (strcmp(a, "RSA-OAEP-SHA256") != 0 && strcmp(a, "RSA-OAEP-SHA1") != 0)) {
                snprintf(err, errlen, "the API's answer names an unknown wrapped_secret_algorithm");
                goto done;
            }
            snprintf(r->algorithm, sizeof r->algorithm, "%s", a);
        }
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

int skapi_parse_public_key(const char *body, size_t len, buf_t *der, char *err, size_t errlen) {
    json_t *o = load_object(body, len, err, errlen);
    if (!o)
        return -1;
    int rc = get_b64(o, "public_key", der, err, errlen);
    json_decref(o);
    return rc;
}

void skapi_error_message(const char *body, size_t len, char *out, size_t outlen) {
    json_t *o = len <= SKAPI_BODY_MAX ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (outlen == 0) {
        json_decref(o);
        return;
    }
    size_t n = 0;
    for (const char *p = msg ? msg : "(no message)"; *p && n + 1 < outlen; p++)
        out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    out[n] = '\0';
    json_decref(o);
}
