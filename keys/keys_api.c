/* The key-release API: generate-secret, decrypt-secret, convert-secret.
 *
 * The loop thread only checks that the HSM is ready and hands the request to
 * one worker job, which does everything that blocks, in this order:
 *   1. who is calling: the tenant from the peer address and the tenants'
 *      networks, the instance from the registry (instance id -> address);
 *   2. the body (every field validated; nothing in it can name a tenant,
 *      an instance or an address);
 *   3. the HSM operation and the signatures over the returned blobs;
 *   4. the audit event, for every outcome after step 1.
 * Messages and statuses are the original API's (../shared/spec/keys-api.md). */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../common/base64.h"
#include "../common/log.h"
#include "../server/client_addr.h"
#include "../server/conn.h"
#include "../store/store.h"
#include "keys_service.h"

typedef enum keys_call {
    CALL_GENERATE,
    CALL_DECRYPT,
    CALL_CONVERT,
} keys_call_t;

static const char *const call_names[] = {"generate-secret", "decrypt-secret", "convert-secret"};

#define MSG_BAD_PARAMETERS "Bad parameters"
#define MSG_BAD_RSA "Invalid RSA pub key"
#define MSG_BAD_BLOB "Wrapped secret and/or context are incorrect"
#define MSG_NO_KEY "There is no encryption key for this VPC"
#define MSG_INTERNAL "Internal error"

typedef struct keys_job {
    keys_service_t *ks;
    keys_call_t call;
    char instance_id[STORE_INSTANCE_ID_SIZE];
    char peer_ip[STORE_IP_SIZE];  /* the client's address, from the transport */
    char vpc_hint[STORE_TENANT_ID_SIZE]; /* x-amzn-vpc-id from a trusted proxy */
    char vpce_id[64];              /* VPC endpoint from a PROXY v2 header */
    char *identity_document;       /* the identity-document verifier's headers */
    char *identity_signature;
    buf_t body; /* a copy of the request body, zeroed when freed */
    /* results */
    int status;
    const char *message; /* error message, or NULL with response set */
    json_t *answer;      /* the 200 answer's fields, until audited */
    char *response;      /* JSON text of the answer (200 or error) */
    bool authenticated;
    store_tenant_t tenant;
    char volume_uuid[40];
    char source_instance_id[STORE_INSTANCE_ID_SIZE];
    audit_event_t ev;
    /* The answer waits for both the job and its audit record (loop thread). */
    bool audit_submitted;
    bool audited;
    int audit_status;
    uint64_t audit_seq;
    bool job_done;
    http_request_t *req; /* held between the two, NULL if gone */
} keys_job_t;

static uint64_t wall_us(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void hex_sha256(const void *data, size_t len, char out[65]) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static bool valid_uuid(const char *s) {
    static const int dashes[] = {8, 13, 18, 23};
    if (strlen(s) != 36)
        return false;
    for (int i = 0, d = 0; i < 36; i++) {
        if (d < 4 && i == dashes[d]) {
            if (s[i] != '-')
                return false;
            d++;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* ---- step 1: who is calling ---- */

/* Whether tenant t may be the caller's, given what the transport said. */
static bool tenant_candidate(const keys_job_t *job, const store_tenant_t *t) {
    if (job->vpc_hint[0] && strcmp(t->id, job->vpc_hint) != 0)
        return false;
    if (job->vpce_id[0] && !store_endpoints_contain(t->endpoints, job->vpce_id))
        return false;
    return true;
}

/* The tenant whose networks hold the client, the most specific match
 * winning, among those the transport allows (VPC id from a trusted proxy,
 * VPC endpoint from a load balancer); none if two match equally (a
 * configuration error). */
static int find_tenant(keys_job_t *job) {
    store_tenant_t *list = NULL;
    size_t n = 0;
    if (store_tenant_list(job->ks->store, &list, &n) != 0) {
        log_error("store: %s", store_last_error());
        return -1;
    }
    unsigned char addr[16];
    int family = strchr(job->peer_ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, job->peer_ip, addr) != 1)
        n = 0;
    long best = -1, best_prefix = -1;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        cidr_t nets[STORE_NETWORKS_MAX];
        size_t nnets = 0;
        char err[128];
        if (!tenant_candidate(job, &list[i]))
            continue;
        if (cidr_parse_list(list[i].networks, nets, STORE_NETWORKS_MAX, &nnets, err, sizeof err) != 0)
            continue;
        for (size_t k = 0; k < nnets; k++) {
            if (!cidr_contains(&nets[k], family, addr))
                continue;
            if ((long)nets[k].prefix > best_prefix) {
                best = (long)i, best_prefix = (long)nets[k].prefix, tie = false;
            } else if ((long)nets[k].prefix == best_prefix && best != (long)i) {
                tie = true;
            }
        }
    }
    int rc = 1;
    if (best >= 0 && !tie) {
        job->tenant = list[best];
        memset(&list[best], 0, sizeof list[best]); /* moved out */
        rc = 0;
    } else if (tie) {
        log_error("networks of two tenants hold %s equally: refusing the caller", job->peer_ip);
    }
    store_tenant_list_free(list, n);
    return rc;
}

/* Returns 0 if the peer is the instance it claims to be, 1 if not, -1 if
 * that cannot be known now. */
static int verify_instance(keys_job_t *job, char *reason, size_t reason_len) {
    if (job->tenant.verifier == STORE_VERIFIER_IDENTITY_DOCUMENT) {
        if (!job->ks->identity.signers) {
            snprintf(reason, reason_len, "tenant wants identity documents but no [identity] signer_certs is set");
            return 1;
        }
        identity_claim_t claim = {job->instance_id, job->peer_ip, job->tenant.account_id};
        return identity_verify(&job->ks->identity, job->identity_document, job->identity_signature, &claim, reason,
                               reason_len) == 0
                   ? 0
                   : 1;
    }
    snprintf(reason, reason_len, "instance not registered at this address");
    char ip[STORE_IP_SIZE];
    int rc = store_instance_get(job->ks->store, job->tenant.id, job->instance_id, ip, sizeof ip);
    if (rc < 0) {
        log_error("store: %s", store_last_error());
        return -1;
    }
    return rc == 0 && strcmp(ip, job->peer_ip) == 0 ? 0 : 1;
}

/* ---- step 2: the body ---- */

/* A required base64 string field, decoded; -1 if missing or malformed. */
static int b64_field(json_t *body, const char *name, buf_t *out) {
    const char *text = json_string_value(json_object_get(body, name));
    if (!text)
        return -1;
    return base64_decode(text, strlen(text), out);
}

/* ---- step 3: the operation ---- */

static void fail(keys_job_t *job, int status, const char *message) {
    job->status = status;
    job->message = message;
}

static hsm_status_t ensure_ekt(keys_job_t *job) {
    if (job->tenant.ekt)
        return HSM_OK;
    hsm_t *h = job->ks->hsm;
    buf_t ekt;
    buf_init(&ekt, 0);
    hsm_status_t st = hsm_create_ekt(h, job->tenant.id, &ekt);
    if (st != HSM_OK)
        return st;
    /* Create-if-absent, then read back: with concurrent first calls one EKT
     * wins and every caller uses it. */
    int rc = store_tenant_set_ekt_if_absent(job->ks->store, job->tenant.id, (uint8_t *)ekt.data, ekt.len);
    buf_free(&ekt);
    if (rc != 0 && rc != STORE_EXISTS)
        return HSM_ERR_FAILED;
    store_tenant_t fresh = {0};
    if (store_tenant_get(job->ks->store, job->tenant.id, &fresh) != 0 || !fresh.ekt) {
        store_tenant_clear(&fresh);
        return HSM_ERR_FAILED;
    }
    store_tenant_clear(&job->tenant);
    job->tenant = fresh;
    return HSM_OK;
}

static void fail_hsm(keys_job_t *job, hsm_status_t st) {
    if (st == HSM_ERR_BAD_BLOB)
        fail(job, 400, MSG_BAD_BLOB);
    else if (st == HSM_ERR_BAD_RSA_KEY)
        fail(job, 400, MSG_BAD_RSA);
    else if (st == HSM_ERR_NOT_READY)
        fail(job, 500, "Unhealthy");
    else
        fail(job, 500, MSG_INTERNAL);
}

/* Adds "name": base64(blob) and "name_signature": base64(signature). */
static int add_signed(keys_job_t *job, json_t *out, const char *name, const buf_t *blob, int which) {
    buf_t sig, text;
    buf_init(&sig, 0);
    buf_init(&text, 0);
    char sig_name[64];
    snprintf(sig_name, sizeof sig_name, "%s_signature", name);
    int rc = -1;
    if (hsm_sign(job->ks->hsm, blob->data, blob->len, &sig) == HSM_OK && base64_encode(blob->data, blob->len, &text) == 0 &&
        buf_append(&text, "", 1) == 0 && json_object_set_new(out, name, json_string(text.data)) == 0) {
        text.len = 0;
        if (base64_encode(sig.data, sig.len, &text) == 0 && buf_append(&text, "", 1) == 0 &&
            json_object_set_new(out, sig_name, json_string(text.data)) == 0)
            rc = 0;
    }
    hex_sha256(blob->data, blob->len, job->ev.blob_sha256[which]);
    buf_free(&sig);
    buf_free(&text);
    return rc;
}

static void operate(keys_job_t *job) {
    json_error_t jerr;
    json_t *body = json_loadb(job->body.data, job->body.len, JSON_REJECT_DUPLICATES, &jerr);
    buf_t rsa, blob, enc, wrapped;
    buf_init(&rsa, 0), buf_init(&blob, 0), buf_init(&enc, 0), buf_init(&wrapped, 0);
    json_t *out = json_object();
    const char *volume = json_string_value(json_object_get(body, "volume_uuid"));
    if (!json_is_object(body) || !volume || !valid_uuid(volume)) {
        fail(job, 400, MSG_BAD_PARAMETERS);
        goto done;
    }
    snprintf(job->volume_uuid, sizeof job->volume_uuid, "%s", volume);
    job->ev.volume_uuid = job->volume_uuid;
    if (job->call != CALL_CONVERT && b64_field(body, "rsa_wrapping_key", &rsa) != 0) {
        /* Present but not base64 DER: the original's "Invalid RSA pub key". */
        bool present = json_is_string(json_object_get(body, "rsa_wrapping_key"));
        fail(job, 400, present ? MSG_BAD_RSA : MSG_BAD_PARAMETERS);
        goto done;
    }
    if (rsa.len)
        hex_sha256(rsa.data, rsa.len, job->ev.rsa_key_sha256);
    if (job->call != CALL_GENERATE && b64_field(body, "encrypted_secret", &blob) != 0) {
        fail(job, 400, MSG_BAD_PARAMETERS);
        goto done;
    }
    if (job->call == CALL_CONVERT) {
        const char *source = json_string_value(json_object_get(body, "source_instance_id"));
        if (!source || !store_valid_instance_id(source)) {
            fail(job, 400, MSG_BAD_PARAMETERS);
            goto done;
        }
        snprintf(job->source_instance_id, sizeof job->source_instance_id, "%s", source);
        job->ev.source_instance_id = job->source_instance_id;
    }
    if (job->call != CALL_GENERATE && !job->tenant.ekt) {
        fail(job, 400, MSG_NO_KEY);
        goto done;
    }
    hsm_status_t st = ensure_ekt(job);
    if (st != HSM_OK) {
        fail_hsm(job, st);
        goto done;
    }
    buf_t ekt = {.data = (char *)job->tenant.ekt, .len = job->tenant.ekt_len};
    hsm_binding_t caller = {job->tenant.id, job->instance_id, job->volume_uuid};
    hsm_t *h = job->ks->hsm;
    switch (job->call) {
    case CALL_GENERATE:
        st = hsm_generate_secret(h, &ekt, &caller, rsa.data, rsa.len, &enc, &wrapped);
        break;
    case CALL_DECRYPT:
        st = hsm_decrypt_secret(h, &ekt, &caller, blob.data, blob.len, rsa.data, rsa.len, &wrapped);
        break;
    case CALL_CONVERT: {
        hsm_binding_t source = {job->tenant.id, job->source_instance_id, job->volume_uuid};
        st = hsm_convert_secret(h, &ekt, &source, &caller, blob.data, blob.len, &enc);
        break;
    }
    }
    if (st != HSM_OK) {
        fail_hsm(job, st);
        goto done;
    }
    if ((enc.len && add_signed(job, out, "encrypted_secret", &enc, 0) != 0) ||
        (wrapped.len && (add_signed(job, out, "wrapped_secret", &wrapped, 1) != 0 ||
                         json_object_set_new(out, "wrapped_secret_algorithm",
                                             json_string(hsm_oaep_name(hsm_oaep(h)))) != 0))) {
        fail(job, 500, MSG_INTERNAL);
        goto done;
    }
    job->answer = json_incref(out);
    job->status = 200;
    job->message = NULL;
done:
    json_decref(out);
    json_decref(body);
    buf_free(&rsa), buf_free(&blob), buf_free(&enc), buf_free(&wrapped);
}

static void keys_audited(int status, uint64_t seq, void *arg);

static void discard_response(keys_job_t *job) {
    if (job->response)
        OPENSSL_cleanse(job->response, strlen(job->response));
    free(job->response);
    job->response = NULL;
}

/* {"...":...} -> {"...":...,"audit_seq":N} */
static int add_audit_seq(keys_job_t *job) {
    size_t len = strlen(job->response);
    char tail[40];
    int n = snprintf(tail, sizeof tail, ",\"audit_seq\":%llu}", (unsigned long long)job->audit_seq);
    char *grown = malloc(len + (size_t)n);
    if (len < 2 || job->response[len - 1] != '}' || !grown) {
        free(grown);
        return -1;
    }
    memcpy(grown, job->response, len - 1);
    memcpy(grown + len - 1, tail, (size_t)n + 1);
    discard_response(job);
    job->response = grown;
    return 0;
}

static void keys_work(void *arg) {
    keys_job_t *job = arg;
    job->ev.op_start_us = wall_us();
    char reason[160] = "no tenant matches the address (and VPC or endpoint)";
    int rc = find_tenant(job);
    if (rc == 0)
        rc = verify_instance(job, reason, sizeof reason);
    if (rc != 0) {
        /* Refused before authentication: a security log line, no audit record. */
        if (rc < 0)
            fail(job, 500, MSG_INTERNAL);
        else
            fail(job, 403, "Forbidden");
        log_security("%s from %s for instance %s refused: %s", call_names[job->call], job->peer_ip,
                 job->instance_id, rc < 0 ? "store failure" : reason);
        return;
    }
    job->authenticated = true;
    operate(job);
    audit_event_t *ev = &job->ev;
    ev->tenant_id = job->tenant.id;
    ev->account_id = job->tenant.account_id;
    ev->caller_type = "instance";
    ev->caller_id = job->instance_id;
    ev->caller_ip = job->peer_ip;
    ev->call_name = call_names[job->call];
    ev->result = job->status == 200 ? "Succeed" : "Failed";
    ev->failure_reason = job->message;
    ev->op_end_us = wall_us();
    /* Every answer after authentication names its record: audit_seq is
     * added once the record is durable (keys_audited). */
    json_t *answer = job->answer;
    job->answer = NULL;
    if (!answer)
        answer = json_pack("{s:s}", "message", job->message);
    job->response = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (!job->response) {
        fail(job, 500, MSG_INTERNAL);
        return;
    }
    if (!job->ks->audit)
        return;
    /* No audit, no secret: the answer waits for the record; the worker does not. */
    job->audit_submitted = true;
    if (audit_submit(job->ks->audit, ev, job->tenant.audit_dir, keys_audited, job) != 0) {
        job->audit_submitted = false;
        fail(job, 500, MSG_INTERNAL);
        discard_response(job);
    }
}

static void keys_finish(keys_job_t *job, http_request_t *req) {
    if (job->audit_submitted && (job->audit_status != 0 || add_audit_seq(job) != 0)) {
        fail(job, 500, MSG_INTERNAL);
        discard_response(job);
    }
    if (req) {
        if (job->response)
            http_respond_json(req, job->status, job->response, strlen(job->response));
        else
            http_respond_error(req, job->status, job->message);
    }
    discard_response(job);
    buf_free_secure(&job->body);
    store_tenant_clear(&job->tenant);
    free(job->identity_document);
    free(job->identity_signature);
    free(job);
}

static void keys_done(int status, http_request_t *req, void *arg) {
    keys_job_t *job = arg;
    if (status != 0)
        req = NULL;
    if (job->audit_submitted && !job->audited) {
        job->job_done = true;
        job->req = req;
        if (req)
            worker_hold_request(req);
        return;
    }
    keys_finish(job, req);
}

static void keys_audited(int status, uint64_t seq, void *arg) {
    keys_job_t *job = arg;
    job->audited = true;
    job->audit_status = status;
    job->audit_seq = seq;
    if (job->job_done)
        keys_finish(job, job->req ? worker_release_request(job->req) : NULL);
}

/* The caller's address and tenant hints come from the transport only
 * (client_addr.h). */
static int caller_from_transport(keys_service_t *ks, http_request_t *req, keys_job_t *job) {
    const conn_t *c = req->conn->owner;
    const config_t *cfg = ks->server->cfg;
    if (client_addr_of(req, cfg, job->peer_ip, sizeof job->peer_ip) != 0)
        return -1;
    snprintf(job->vpce_id, sizeof job->vpce_id, "%s", c->vpce_id);
    const char *vpc = http_request_header(req, "x-amzn-vpc-id");
    if (vpc && client_from_trusted_proxy(c, cfg)) {
        if (!store_valid_tenant_id(vpc))
            return -1;
        snprintf(job->vpc_hint, sizeof job->vpc_hint, "%s", vpc);
    }
    return 0;
}

static void handle(http_request_t *req, keys_service_t *ks, keys_call_t call) {
    if (!ks->ready) {
        http_respond_error(req, 500, "Unhealthy");
        return;
    }
    const char *instance = http_request_param(req, "InstanceId");
    if (!instance || !store_valid_instance_id(instance)) {
        http_respond_error(req, 400, MSG_BAD_PARAMETERS);
        return;
    }
    keys_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        http_respond_error(req, 500, MSG_INTERNAL);
        return;
    }
    job->ks = ks;
    job->call = call;
    snprintf(job->instance_id, sizeof job->instance_id, "%s", instance);
    if (caller_from_transport(ks, req, job) != 0) {
        log_security("%s from %s for instance %s refused: unusable forwarding headers from a trusted proxy",
                     call_names[call], req->conn ? ((const conn_t *)req->conn->owner)->peer : "?", job->instance_id);
        free(job);
        http_respond_error(req, 403, "Forbidden");
        return;
    }
    const char *doc = http_request_header(req, IDENTITY_DOCUMENT_HEADER);
    const char *sig = http_request_header(req, IDENTITY_SIGNATURE_HEADER);
    job->identity_document = doc ? strdup(doc) : NULL;
    job->identity_signature = sig ? strdup(sig) : NULL;
    buf_init(&job->body, 0);
    if ((doc && !job->identity_document) || (sig && !job->identity_signature) ||
        buf_append(&job->body, req->body.data, req->body.len) != 0 ||
        worker_submit_for_request(&ks->server->pool, req, keys_work, keys_done, job) != 0) {
        buf_free_secure(&job->body);
        free(job->identity_document);
        free(job->identity_signature);
        free(job);
        http_respond_error(req, 503, "Server busy");
    }
}

static void handle_generate(http_request_t *req, void *ctx) {
    handle(req, ctx, CALL_GENERATE);
}

static void handle_decrypt(http_request_t *req, void *ctx) {
    handle(req, ctx, CALL_DECRYPT);
}

static void handle_convert(http_request_t *req, void *ctx) {
    handle(req, ctx, CALL_CONVERT);
}

int keys_api_add_routes(keys_service_t *ks) {
    router_t *r = &ks->server->public_router;
    if (router_add(r, HTTP_POST, "/v1/encryption/{InstanceId}/generate-secret", handle_generate, ks) != 0 ||
        router_add(r, HTTP_POST, "/v1/encryption/{InstanceId}/decrypt-secret", handle_decrypt, ks) != 0 ||
        router_add(r, HTTP_POST, "/v1/encryption/{InstanceId}/convert-secret", handle_convert, ks) != 0)
        return -1;
    return 0;
}
