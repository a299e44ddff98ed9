/* certs_api: the installations routes (certs_service.h lists them).
 *
 * A signed request (every POST, PUT and DELETE) is checked on the loop, in
 * this order, and refused at the first failure with a fresh Replay-Nonce and
 * {"type": ..., "message": ...}:
 *   1. Content-Type application/jose+json (or application/json), else 415;
 *      a body of at most JWS_MAX_BYTES, else 413;
 *   2. registration only: the enrolment token, if tokens are configured
 *      (401 without one, 403 for a wrong one);
 *   3. the JWS parses strictly (jws.h): 400 malformed, badSignatureAlgorithm
 *      or badPublicKey; 413 for oversized parts;
 *   4. its url is this request's URL: the scheme ("https" on a TLS
 *      listener, else "http"; X-Forwarded-Proto counts from a trusted proxy
 *      only), "://", the Host header as sent, then the request target as
 *      sent (path and query): 400 otherwise, so that a signed request cannot
 *      be moved to another route or installation;
 *   5. registration carries jwk, every other call a kid that names the
 *      installation of the path (400; 403 for another installation's kid;
 *      404 for an id that cannot exist);
 *   6. the payload is exactly what the route takes (400);
 *   7. the nonce is this process's, fresh and unused; it is used up now
 *      (400 badNonce; the answer's Replay-Nonce is the one to retry with).
 * Then one worker job reads the installation (404 if none), verifies the
 * signature with the key stored at registration (401), and changes the
 * store (409 for a label taken or too many TXT values). Its completion, on
 * the loop, pushes the change to the DNS servers (certs_kv_put/del) even if
 * the client left meanwhile (the store has changed), then answers. */
#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/log.h"
#include "../store/store.h"
#include "certs_internal.h"
#include "jws.h"

#define METADATA_MEMBERS_MAX 16
#define METADATA_KEY_MAX 64
#define METADATA_VALUE_MAX 256
#define LABEL_ATTEMPTS 5   /* generated labels (80 random bits) almost never collide */
#define ACME_TXT_LEN 43    /* base64url of a SHA-256 digest */

typedef enum certs_op {
    OP_REGISTER,
    OP_ADDRESS,
    OP_CHALLENGE_SET,
    OP_CHALLENGE_DELETE,
    OP_DELETE,
} certs_op_t;

typedef struct certs_job {
    certs_service_t *cs;
    certs_op_t op;
    jws_t jws;
    char id[STORE_INSTALLATION_ID_SIZE];
    char value[STORE_TXT_SIZE];   /* the address, or the TXT value ("": every value) */
    char label[STORE_LABEL_SIZE]; /* registration: the label asked for, "" for a random one */
    char *metadata;               /* registration: compact JSON text, or NULL */
    char base[JWS_URL_MAX];       /* scheme "://" host, for Location */
    /* results */
    int status;
    const char *type, *message;
    store_installation_t inst; /* its id and label; after DELETE what it held */
    store_txt_list_t removed;  /* DELETE .../challenge */
} certs_job_t;

static void job_free(certs_job_t *job) {
    jws_free(&job->jws);
    free(job->metadata);
    store_installation_clear(&job->inst);
    free(job);
}

static void fail(certs_job_t *job, int status, const char *type, const char *message) {
    job->status = status;
    job->type = type;
    job->message = message;
}

static void fail_store(certs_job_t *job, int rc) {
    if (rc == STORE_NOT_FOUND) {
        fail(job, 404, "notFound", "No such installation");
        return;
    }
    log_error("installations: store: %s", store_last_error());
    fail(job, 500, "serverInternal", "Internal error");
}

/* ---- worker side ---- */

static void random_hex(char *out, size_t bytes) {
    uint8_t raw[32];
    RAND_bytes(raw, (int)bytes);
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* 16 characters of lowercase base32: 80 random bits, DNS-safe. */
static void random_label(char *out) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t raw[16];
    RAND_bytes(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        out[i] = alphabet[raw[i] & 31];
    out[sizeof raw] = '\0';
}

static void work_register(certs_job_t *job) {
    if (jws_verify(&job->jws, job->jws.jwk.pkey) != 0) {
        fail(job, 401, "unauthorized", "The signature does not verify with the jwk of the header");
        return;
    }
    store_installation_t in = {.jwk = job->jws.jwk.text, .metadata = job->metadata};
    snprintf(in.thumbprint, sizeof in.thumbprint, "%s", job->jws.jwk.thumbprint);
    int rc = STORE_CONFLICT;
    for (int attempt = 0; attempt < LABEL_ATTEMPTS && rc == STORE_CONFLICT; attempt++) {
        random_hex(in.id, (STORE_INSTALLATION_ID_SIZE - 1) / 2);
        if (job->label[0])
            snprintf(in.label, sizeof in.label, "%s", job->label);
        else
            random_label(in.label);
        rc = store_installation_add(job->cs->store, &in);
        if (job->label[0])
            break; /* a label asked for is taken or not: no retry */
    }
    if (rc == 0 || rc == STORE_EXISTS) {
        /* The same key again (e.g. the answer was lost): its installation. */
        job->status = rc == 0 ? 201 : 200;
        snprintf(job->inst.id, sizeof job->inst.id, "%s", in.id);
        snprintf(job->inst.label, sizeof job->inst.label, "%s", in.label);
    } else if (rc == STORE_CONFLICT) {
        fail(job, 409, "conflict", "The label is taken");
    } else {
        fail_store(job, rc);
    }
}

static void work_signed(certs_job_t *job) {
    certs_service_t *cs = job->cs;
    int rc = store_installation_get(cs->store, job->id, &job->inst);
    if (rc != 0) {
        fail_store(job, rc);
        return;
    }
    jwk_t key;
    const char *why;
    if (jwk_parse_text(&key, job->inst.jwk, &why) != 0) {
        log_error("installations: stored key of %s unusable: %s", job->id, why);
        fail(job, 500, "serverInternal", "Internal error");
        return;
    }
    bool verified = jws_verify(&job->jws, key.pkey) == 0;
    jwk_free(&key);
    if (!verified) {
        fail(job, 401, "unauthorized", "The signature does not verify with the installation's key");
        return;
    }
    job->status = 200;
    switch (job->op) {
    case OP_ADDRESS:
        rc = store_installation_set_address(cs->store, job->id, job->value);
        break;
    case OP_CHALLENGE_SET:
        rc = store_challenge_add(cs->store, job->id, job->value);
        if (rc == STORE_LIMIT) {
            fail(job, 409, "conflict", "At most 8 TXT values at once: delete one first");
            return;
        }
        break;
    case OP_CHALLENGE_DELETE:
        rc = store_challenge_remove(cs->store, job->id, job->value[0] ? job->value : NULL, &job->removed);
        break;
    case OP_DELETE:
        store_installation_clear(&job->inst);
        rc = store_installation_remove(cs->store, job->id, &job->inst);
        job->status = 204;
        break;
    case OP_REGISTER:
        break;
    }
    if (rc != 0)
        fail_store(job, rc); /* e.g. removed meanwhile through another node */
}

static void job_work(void *arg) {
    certs_job_t *job = arg;
    if (job->op == OP_REGISTER)
        work_register(job);
    else
        work_signed(job);
}

/* ---- loop side: the DNS servers and the answer ---- */

static uint64_t put(certs_service_t *cs, store_kvp_kind_t kind, const char *label, const char *txt, const char *val) {
    char key[STORE_KVP_KEY_SIZE];
    if (store_kvp_key(key, sizeof key, kind, label, txt) != 0)
        return 0;
    return certs_kv_put(cs, key, val);
}

static void del(certs_service_t *cs, store_kvp_kind_t kind, const char *label, const char *txt) {
    char key[STORE_KVP_KEY_SIZE];
    if (store_kvp_key(key, sizeof key, kind, label, txt) == 0)
        certs_kv_del(cs, key);
}

/* Pushes the job's change; returns the update id of a TXT value set. */
static uint64_t push(certs_job_t *job) {
    certs_service_t *cs = job->cs;
    const char *label = job->inst.label;
    switch (job->op) {
    case OP_REGISTER:
        put(cs, STORE_KVP_NAME, label, NULL, "");
        break;
    case OP_ADDRESS:
        put(cs, strchr(job->value, ':') ? STORE_KVP_AAAA : STORE_KVP_A, label, NULL, job->value);
        break;
    case OP_CHALLENGE_SET:
        return put(cs, STORE_KVP_TXT, label, job->value, "");
    case OP_CHALLENGE_DELETE:
        for (size_t i = 0; i < job->removed.n; i++)
            del(cs, STORE_KVP_TXT, label, job->removed.values[i]);
        break;
    case OP_DELETE:
        for (size_t i = 0; i < job->inst.challenges.n; i++)
            del(cs, STORE_KVP_TXT, label, job->inst.challenges.values[i]);
        del(cs, STORE_KVP_A, label, NULL);
        del(cs, STORE_KVP_AAAA, label, NULL);
        del(cs, STORE_KVP_NAME, label, NULL);
        break;
    }
    return 0;
}

static void respond_json(certs_service_t *cs, http_request_t *req, int status, json_t *o, const char *location) {
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_response_t *resp = text ? certs_response(cs, status, text) : NULL;
    free(text);
    if (!resp || (location && http_response_header(resp, "Location", location) != 0)) {
        http_response_free(resp);
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    http_respond(req, resp);
}

static void answer(certs_job_t *job, http_request_t *req, uint64_t update) {
    certs_service_t *cs = job->cs;
    if (job->status >= 300) {
        certs_respond_error(cs, req, job->status, job->type, job->message);
        return;
    }
    char name[STORE_LABEL_SIZE + CONFIG_ZONE_SIZE], location[JWS_URL_MAX + 64];
    snprintf(name, sizeof name, "%s.%s", job->inst.label, cs->cfg->installations_zone);
    switch (job->op) {
    case OP_REGISTER:
        snprintf(location, sizeof location, "%s/api/v1/installations/%s", job->base, job->inst.id);
        respond_json(cs, req, job->status,
                     json_pack("{s:s, s:s, s:s}", "id", job->inst.id, "name", name, "label", job->inst.label),
                     location);
        break;
    case OP_ADDRESS:
        respond_json(cs, req, 200, json_pack("{s:s, s:s}", "name", name, "address", job->value), NULL);
        break;
    case OP_CHALLENGE_SET:
        if (!cs->kvpsend_open || cs->closing)
            certs_respond(cs, req, 202, "{\"status\":\"pending\"}", 1);
        else if (!update) /* kvpsend refused the key (its cache is full): not stored in vain, but not served */
            certs_respond_error(cs, req, 503, "serverInternal", "The DNS push refused the value; see the log");
        else
            certs_longpoll_start(cs, req, update);
        break;
    case OP_CHALLENGE_DELETE:
        respond_json(cs, req, 200, json_pack("{s:I}", "deleted", (json_int_t)job->removed.n), NULL);
        break;
    case OP_DELETE:
        certs_respond(cs, req, 204, NULL, 0);
        break;
    }
}

static void job_done(int status, http_request_t *req, void *arg) {
    certs_job_t *job = arg;
    uint64_t update = job->status < 300 ? push(job) : 0;
    if (req && status == 0)
        answer(job, req, update);
    job_free(job);
}

/* ---- loop side: the checks before the job ---- */

static bool json_content_type(const http_request_t *req) {
    const char *ct = http_request_header(req, "Content-Type");
    if (!ct)
        return false;
    size_t len = strcspn(ct, ";");
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    return (len == 21 && strncasecmp(ct, "application/jose+json", len) == 0) ||
           (len == 16 && strncasecmp(ct, "application/json", len) == 0);
}

/* Labels the DNS zone may use for itself (its name servers), never given out. */
static bool reserved_label(const char *label) {
    if (strncmp(label, "ns", 2) != 0)
        return false;
    for (const char *p = label + 2; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* The payload as a JSON object whose members are all among allowed (NULL
 * for an empty payload when empty_ok). */
static json_t *payload_object(certs_job_t *job, const char *const *allowed, bool empty_ok, const char **why) {
    if (job->jws.payload.len == 0) {
        *why = "The payload must be a JSON object";
        return empty_ok ? json_object() : NULL;
    }
    json_error_t jerr;
    json_t *o = json_loadb(job->jws.payload.data, job->jws.payload.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        *why = "The payload must be a JSON object (without duplicate members)";
        json_decref(o);
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            *why = "The payload has an unknown member";
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* {"metadata": {"name": "string", ...}}: a few short strings, kept as sorted compact JSON. */
static int take_metadata(certs_job_t *job, json_t *md, const char **why) {
    *why = "metadata: an object of at most 16 strings of 256 bytes, names of 1-64 letters, digits, '_', '-', '.'";
    if (!json_is_object(md) || json_object_size(md) > METADATA_MEMBERS_MAX)
        return -1;
    const char *key;
    json_t *value;
    json_object_foreach(md, key, value) {
        size_t len = strlen(key);
        if (len == 0 || len > METADATA_KEY_MAX || strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                              "0123456789_-.") != len ||
            !json_is_string(value) || json_string_length(value) > METADATA_VALUE_MAX)
            return -1;
    }
    job->metadata = json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!job->metadata || strlen(job->metadata) >= STORE_METADATA_MAX)
        return -1;
    return 0;
}

static int parse_register(certs_job_t *job, const char **why) {
    static const char *const allowed[] = {"jwk", "label", "metadata", NULL};
    json_t *o = payload_object(job, allowed, true, why);
    if (!o)
        return -1;
    int rc = -1;
    json_t *jwk = json_object_get(o, "jwk"), *label = json_object_get(o, "label"), *md = json_object_get(o, "metadata");
    jwk_t again;
    if (jwk) {
        /* Optional and redundant; if present, the header's key. */
        bool same = jwk_parse(&again, jwk, why) == 0 && strcmp(again.thumbprint, job->jws.jwk.thumbprint) == 0;
        jwk_free(&again);
        if (!same) {
            *why = "The payload's jwk is not the protected header's";
            goto done;
        }
    }
    if (label) {
        const char *text = json_string_value(label);
        if (!text || !store_valid_label(text) || reserved_label(text)) {
            *why = "label: 1 to 63 of a-z, 0-9 and '-' (not first or last), not a name server's (ns, ns1, ...)";
            goto done;
        }
        snprintf(job->label, sizeof job->label, "%s", text);
    }
    if (md && !json_is_null(md) && take_metadata(job, md, why) != 0)
        goto done;
    rc = 0;
done:
    json_decref(o);
    return rc;
}

/* An address the installation may point its name at. */
static bool usable_address(const char *ip) {
    unsigned char raw[16];
    if (strchr(ip, ':')) {
        return inet_pton(AF_INET6, ip, raw) == 1 && raw[0] != 0xff &&
               memcmp(raw, (const unsigned char[16]){0}, 16) != 0;
    }
    return inet_pton(AF_INET, ip, raw) == 1 && raw[0] != 0 && (raw[0] & 0xf0) != 0xe0 &&
           memcmp(raw, "\xff\xff\xff\xff", 4) != 0;
}

static int parse_address(certs_job_t *job, http_request_t *req, const char **why) {
    static const char *const allowed[] = {"address", NULL};
    json_t *o = payload_object(job, allowed, false, why);
    if (!o)
        return -1;
    const char *text = json_string_value(json_object_get(o, "address"));
    int rc = -1;
    *why = "address: an IPv4 or IPv6 address (not unspecified, multicast or broadcast), or \"auto\"";
    if (text && strcmp(text, "auto") == 0) {
        rc = certs_client_address(job->cs, req, job->value, sizeof job->value);
        if (rc == 0 && !usable_address(job->value)) {
            *why = "address auto: the address this server sees cannot be used";
            rc = -1;
        }
    } else if (text && ip_normalize(text, job->value, sizeof job->value) == 0 && usable_address(job->value)) {
        rc = 0;
    }
    json_decref(o);
    return rc;
}

/* {"value": "<43 base64url characters>"}; for a delete, {} or no payload: all. */
static int parse_challenge(certs_job_t *job, bool deleting, const char **why) {
    static const char *const allowed[] = {"value", NULL};
    json_t *o = payload_object(job, allowed, deleting, why);
    if (!o)
        return -1;
    json_t *v = json_object_get(o, "value");
    const char *text = json_string_value(v);
    int rc = -1;
    *why = "value: the 43-character base64url dns-01 value";
    if (!v && deleting) {
        rc = 0;
    } else if (text && json_string_length(v) == ACME_TXT_LEN &&
               strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ACME_TXT_LEN) {
        snprintf(job->value, sizeof job->value, "%s", text);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

static int parse_empty(certs_job_t *job, const char **why) {
    static const char *const allowed[] = {NULL};
    json_t *o = payload_object(job, allowed, true, why);
    json_decref(o);
    return o ? 0 : -1;
}

static int parse_payload(certs_job_t *job, http_request_t *req, const char **why) {
    switch (job->op) {
    case OP_REGISTER:
        return parse_register(job, why);
    case OP_ADDRESS:
        return parse_address(job, req, why);
    case OP_CHALLENGE_SET:
        return parse_challenge(job, false, why);
    case OP_CHALLENGE_DELETE:
        return parse_challenge(job, true, why);
    case OP_DELETE:
        return parse_empty(job, why);
    }
    return -1;
}

static void refuse_jws(certs_service_t *cs, http_request_t *req, jws_status_t st, const char *why) {
    certs_respond_error(cs, req, st == JWS_TOO_BIG ? 413 : 400, jws_status_type(st), why);
}

/* Steps 2 to 6 of the header comment; 0, or -1 after answering. */
static int check_request(certs_job_t *job, http_request_t *req) {
    certs_service_t *cs = job->cs;
    if (job->op == OP_REGISTER) {
        int st = certs_check_enrolment(cs, req);
        if (st) {
            certs_respond_error(cs, req, st, "unauthorized",
                                st == 401 ? "Registration needs an enrolment token (Authorization: Bearer ...)"
                                          : "The enrolment token is not valid");
            return -1;
        }
    }
    const char *why = "";
    jws_status_t st = jws_parse(&job->jws, req->body.data, req->body.len, &why);
    if (st != JWS_OK) {
        refuse_jws(cs, req, st, why);
        return -1;
    }
    const char *host = http_request_header(req, "Host"), *scheme = certs_request_scheme(cs, req);
    if (!host || !host[0] || req->target[0] != '/' ||
        (size_t)snprintf(job->base, sizeof job->base, "%s://%s", scheme, host) >= sizeof job->base) {
        certs_respond_error(cs, req, 400, "malformed", "The request needs a Host header and an origin-form target");
        return -1;
    }
    if (!jws_url_is(&job->jws, scheme, host, req->target)) {
        char msg[JWS_URL_MAX * 2 + 64];
        snprintf(msg, sizeof msg, "The url in the protected header must be this request's URL: %s%s", job->base,
                 req->target);
        certs_respond_error(cs, req, 400, "malformed", msg);
        return -1;
    }
    if (job->op == OP_REGISTER) {
        if (!job->jws.has_jwk) {
            certs_respond_error(cs, req, 400, "malformed", "Registration is signed with jwk in the protected header");
            return -1;
        }
    } else {
        const char *id = http_request_param(req, "id");
        if (job->jws.has_jwk) {
            certs_respond_error(cs, req, 400, "malformed", "Sign with kid (the installation id), not jwk");
            return -1;
        }
        if (!id || !store_valid_installation_id(id)) {
            certs_respond_error(cs, req, 404, "notFound", "No such installation");
            return -1;
        }
        if (!jws_kid_is(&job->jws, id)) {
            certs_respond_error(cs, req, 403, "unauthorized", "The kid names another installation than the URL");
            return -1;
        }
        snprintf(job->id, sizeof job->id, "%s", id);
    }
    if (parse_payload(job, req, &why) != 0) {
        certs_respond_error(cs, req, 400, "malformed", why);
        return -1;
    }
    return 0;
}

static void handle(http_request_t *req, certs_service_t *cs, certs_op_t op) {
    if (op == OP_CHALLENGE_SET && !cs->cfg->kvpsend) {
        certs_respond_error(cs, req, 503, "serverInternal",
                            "No DNS servers configured ([kvpsend]): challenge values cannot be published");
        return;
    }
    if (op == OP_CHALLENGE_SET && !cs->kvpsend_open) {
        certs_respond(cs, req, 503, "{\"type\":\"serverInternal\",\"message\":\"Starting: try again\"}", 1);
        return;
    }
    if (!json_content_type(req)) {
        certs_respond_error(cs, req, 415, "malformed", "Content-Type must be application/jose+json");
        return;
    }
    if (req->body.len > JWS_MAX_BYTES) {
        certs_respond_error(cs, req, 413, "tooLarge", "The request body is too long");
        return;
    }
    certs_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    job->cs = cs;
    job->op = op;
    if (check_request(job, req) != 0) {
        job_free(job);
        return;
    }
    /* The job holds what it needs of the body: a long-poll keeps less. */
    buf_free(&req->body);
    static const char *const nonce_errors[] = {
        [NONCE_INVALID] = "The nonce is not one of this server's: use the Replay-Nonce of this answer",
        [NONCE_EXPIRED] = "The nonce has expired: use the Replay-Nonce of this answer",
        [NONCE_REPLAYED] = "The nonce was used already: use the Replay-Nonce of this answer",
    };
    nonce_result_t nr = nonce_redeem(&cs->nonces, job->jws.nonce, strlen(job->jws.nonce), certs_now_ms(cs));
    if (nr != NONCE_OK) {
        certs_respond_error(cs, req, 400, "badNonce", nonce_errors[nr]);
        job_free(job);
        return;
    }
    if (worker_submit_for_request(&cs->server->pool, req, job_work, job_done, job) != 0) {
        job_free(job);
        certs_respond_error(cs, req, 503, "serverInternal", "Server busy");
    }
}

static void handle_register(http_request_t *req, void *ctx) {
    handle(req, ctx, OP_REGISTER);
}

static void handle_address(http_request_t *req, void *ctx) {
    handle(req, ctx, OP_ADDRESS);
}

static void handle_challenge_set(http_request_t *req, void *ctx) {
    handle(req, ctx, OP_CHALLENGE_SET);
}

static void handle_challenge_delete(http_request_t *req, void *ctx) {
    handle(req, ctx, OP_CHALLENGE_DELETE);
}

static void handle_delete(http_request_t *req, void *ctx) {
    handle(req, ctx, OP_DELETE);
}

int certs_api_add_routes(certs_service_t *cs) {
    router_t *r = &cs->server->public_router;
    if (router_add(r, HTTP_POST, "/api/v1/installations", handle_register, cs) != 0 ||
        router_add(r, HTTP_PUT, "/api/v1/installations/{id}/address", handle_address, cs) != 0 ||
        router_add(r, HTTP_PUT, "/api/v1/installations/{id}/challenge", handle_challenge_set, cs) != 0 ||
        router_add(r, HTTP_DELETE, "/api/v1/installations/{id}/challenge", handle_challenge_delete, cs) != 0 ||
        router_add(r, HTTP_DELETE, "/api/v1/installations/{id}", handle_delete, cs) != 0)
        return -1;
    return 0;
}
