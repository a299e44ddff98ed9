#include "token.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/base64.h"

static void blob_init(sktoken_blob_t *b) {
    buf_init(&b->blob, SKTOKEN_BLOB_MAX);
    buf_init(&b->sig, SKTOKEN_SIG_MAX);
    b->instance_id[0] = b->replaced_at[0] = '\0';
}

static void blob_free(sktoken_blob_t *b) {
    buf_free(&b->blob);
    buf_free(&b->sig);
}

void sktoken_init(sktoken_t *t) {
    memset(t, 0, sizeof *t);
    blob_init(&t->current);
    for (size_t i = 0; i < SKTOKEN_HISTORY_MAX; i++)
        blob_init(&t->history[i]);
}

void sktoken_free(sktoken_t *t) {
    blob_free(&t->current);
    for (size_t i = 0; i < SKTOKEN_HISTORY_MAX; i++)
        blob_free(&t->history[i]);
    t->nhistory = 0;
}

static int set_bytes(buf_t *b, const void *data, size_t len) {
    b->len = 0;
    return len > 0 && buf_append(b, data, len) == 0 ? 0 : -1;
}

int sktoken_set_current(sktoken_t *t, const void *blob, size_t blob_len, const void *sig, size_t sig_len) {
    if (blob_len == 0 || blob_len > SKTOKEN_BLOB_MAX || sig_len == 0 || sig_len > SKTOKEN_SIG_MAX)
        return -1;
    return set_bytes(&t->current.blob, blob, blob_len) == 0 && set_bytes(&t->current.sig, sig, sig_len) == 0 ? 0 : -1;
}

/* ---- encoding */

static json_t *b64_string(const buf_t *b) {
    buf_t text;
    buf_init(&text, 0);
    json_t *s = NULL;
    if (base64_encode(b->data, b->len, &text) == 0)
        s = json_stringn(text.data, text.len);
    buf_free(&text);
    return s;
}

static json_t *blob_json(const sktoken_blob_t *b, int history) {
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "encrypted_secret", b64_string(&b->blob)) != 0 ||
        json_object_set_new(o, "encrypted_secret_signature", b64_string(&b->sig)) != 0 ||
        json_object_set_new(o, "instance_id", json_string(b->instance_id)) != 0 ||
        (history && json_object_set_new(o, "replaced_at", json_string(b->replaced_at)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int valid_time(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SKTOKEN_TIME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return 0;
    return 1;
}

static int valid_blob(const sktoken_blob_t *b, int history) {
    return b->blob.len > 0 && b->sig.len > 0 && skid_instance(b->instance_id) &&
           (!history || valid_time(b->replaced_at));
}

static int valid_fpr(const char *s) {
    if (strlen(s) != SKCRYPTO_FPR_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

char *sktoken_encode(const sktoken_t *t) {
    if (t->keyslot < 0 || t->keyslot > 31 || !skid_uuid(t->volume_uuid) || (t->tenant[0] && !skid_tenant(t->tenant)) ||
        !valid_fpr(t->api_key_fingerprint) || !valid_blob(&t->current, 0) || t->nhistory > SKTOKEN_HISTORY_MAX)
        return NULL;
    char slot[4];
    snprintf(slot, sizeof slot, "%d", t->keyslot);
    json_t *o =
        json_pack("{s:s, s:[s], s:i, s:s, s:s}", "type", SKTOKEN_TYPE, "keyslots", slot, "sk_version", SKTOKEN_VERSION,
                  "volume_uuid", t->volume_uuid, "api_key_fingerprint", t->api_key_fingerprint);
    json_t *history = json_array();
    json_t *cur = blob_json(&t->current, 0);
    int ok = o && history && cur;
    if (ok && t->tenant[0])
        ok = json_object_set_new(o, "tenant", json_string(t->tenant)) == 0;
    if (ok) { /* the current blob's fields at top level */
        const char *key;
        json_t *v;
        json_object_foreach(cur, key, v) {
            ok = ok && json_object_set(o, key, v) == 0;
        }
    }
    for (size_t i = 0; ok && i < t->nhistory; i++)
        ok = valid_blob(&t->history[i], 1) && json_array_append_new(history, blob_json(&t->history[i], 1)) == 0;
    char *out = NULL;
    if (ok && json_object_set(o, "history", history) == 0)
        out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cur);
    json_decref(history);
    json_decref(o);
    return out;
}

/* ---- parsing */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* obj[name] as a string of at most max bytes, copied to out (max + 1 bytes). */
static int get_str(json_t *obj, const char *name, char *out, size_t max) {
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_b64(json_t *obj, const char *name, buf_t *out) {
    json_t *v = json_object_get(obj, name);
    out->len = 0;
    if (!json_is_string(v) || base64_decode(json_string_value(v), json_string_length(v), out) != 0 || out->len == 0)
        return -1;
    return 0;
}

static int parse_blob(json_t *obj, sktoken_blob_t *b, int history, char *err, size_t errlen, const char *where) {
    if (!json_is_object(obj))
        return fail(err, errlen, "%s is not an object", where);
    if (get_b64(obj, "encrypted_secret", &b->blob) != 0)
        return fail(err, errlen, "%s: bad or missing encrypted_secret", where);
    if (get_b64(obj, "encrypted_secret_signature", &b->sig) != 0)
        return fail(err, errlen, "%s: bad or missing encrypted_secret_signature", where);
    if (get_str(obj, "instance_id", b->instance_id, SKID_INSTANCE_MAX) != 0 || !skid_instance(b->instance_id))
        return fail(err, errlen, "%s: bad or missing instance_id", where);
    if (history && (get_str(obj, "replaced_at", b->replaced_at, SKTOKEN_TIME_MAX) != 0 || !valid_time(b->replaced_at)))
        return fail(err, errlen, "%s: bad or missing replaced_at", where);
    return 0;
}

static int parse_object(json_t *o, sktoken_t *t, char *err, size_t errlen) {
    if (!json_is_object(o))
        return fail(err, errlen, "not a JSON object");
    json_t *type = json_object_get(o, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), SKTOKEN_TYPE) != 0)
        return fail(err, errlen, "not an sk token");
    json_t *version = json_object_get(o, "sk_version");
    if (!json_is_integer(version) || json_integer_value(version) != SKTOKEN_VERSION)
        return fail(err, errlen, "unknown sk_version (want %d)", SKTOKEN_VERSION);
    json_t *slots = json_object_get(o, "keyslots");
    const char *slot = json_string_value(json_array_get(slots, 0));
    if (!json_is_array(slots) || json_array_size(slots) != 1 || !slot || !slot[0] || strlen(slot) > 2 ||
        strspn(slot, "0123456789") != strlen(slot) || (t->keyslot = atoi(slot)) > 31)
        return fail(err, errlen, "keyslots must name one keyslot");
    if (get_str(o, "volume_uuid", t->volume_uuid, SKID_UUID_LEN) != 0 || !skid_uuid(t->volume_uuid))
        return fail(err, errlen, "bad or missing volume_uuid");
    if (json_object_get(o, "tenant") &&
        (get_str(o, "tenant", t->tenant, SKID_TENANT_MAX) != 0 || !skid_tenant(t->tenant)))
        return fail(err, errlen, "bad tenant");
    if (get_str(o, "api_key_fingerprint", t->api_key_fingerprint, SKCRYPTO_FPR_LEN) != 0 ||
        !valid_fpr(t->api_key_fingerprint))
        return fail(err, errlen, "bad or missing api_key_fingerprint");
    if (parse_blob(o, &t->current, 0, err, errlen, "token") != 0)
        return -1;
    json_t *history = json_object_get(o, "history");
    if (!json_is_array(history) || json_array_size(history) > SKTOKEN_HISTORY_MAX)
        return fail(err, errlen, "history must be an array of at most %d entries", SKTOKEN_HISTORY_MAX);
    for (size_t i = 0; i < json_array_size(history); i++) {
        char where[32];
        snprintf(where, sizeof where, "history[%zu]", i);
        if (parse_blob(json_array_get(history, i), &t->history[i], 1, err, errlen, where) != 0)
            return -1;
        t->nhistory = i + 1;
    }
    return 0;
}

int sktoken_parse(const char *json, size_t len, sktoken_t *t, char *err, size_t errlen) {
    sktoken_init(t);
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return fail(err, errlen, "not JSON (%s)", jerr.text);
    int rc = parse_object(o, t, err, errlen);
    json_decref(o);
    if (rc != 0) {
        sktoken_free(t);
        sktoken_init(t);
    }
    return rc;
}

int sktoken_replace(sktoken_t *t, const buf_t *blob, const buf_t *sig, const char *owner, const char *now) {
    if (!skid_instance(owner) || !valid_time(now) || blob->len == 0 || blob->len > SKTOKEN_BLOB_MAX || sig->len == 0 ||
        sig->len > SKTOKEN_SIG_MAX)
        return -1;
    int dropped = 0;
    if (t->nhistory == SKTOKEN_HISTORY_MAX) { /* drop the oldest: rotate it to the end and reuse it */
        sktoken_blob_t oldest = t->history[0];
        memmove(&t->history[0], &t->history[1], (SKTOKEN_HISTORY_MAX - 1) * sizeof t->history[0]);
        t->history[SKTOKEN_HISTORY_MAX - 1] = oldest;
        t->nhistory--;
        dropped = 1;
    }
    /* The current entry moves into the history slot; the slot's buffers become current's. */
    sktoken_blob_t *h = &t->history[t->nhistory];
    sktoken_blob_t spare = *h;
    *h = t->current;
    snprintf(h->replaced_at, sizeof h->replaced_at, "%s", now);
    t->current = spare;
    t->nhistory++;
    snprintf(t->current.instance_id, sizeof t->current.instance_id, "%s", owner);
    t->current.replaced_at[0] = '\0';
    if (set_bytes(&t->current.blob, blob->data, blob->len) != 0 || set_bytes(&t->current.sig, sig->data, sig->len) != 0)
        return -1; /* cannot happen: lengths checked, buffers bounded by the same limits */
    return dropped;
}
