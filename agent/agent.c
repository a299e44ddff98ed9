#include "agent.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "imds.h"

#define STEP_WIDTH 72

void agent_init(agent_t *a, const char *me) {
    memset(a, 0, sizeof *a);
    a->me = me;
    a->config_dir = AGENT_DEFAULT_CONFIG_DIR;
    a->rsa_bits = AGENT_RSA_BITS;
    a->http = (skhttp_opts_t){
        .connect_timeout_ms = 5000, .timeout_ms = 30000, .attempts = 4, .backoff_ms = 500, .max_body = SKAPI_BODY_MAX};
    skvol_setup();
}

void agent_free(agent_t *a) {
    EVP_PKEY_free(a->api_key);
    a->api_key = NULL;
    if (a->http_ready)
        skhttp_global_cleanup();
    a->http_ready = false;
}

int agent_option(agent_t *a, int ch, const char *arg) {
    switch (ch) {
    case 'C':
        a->config_dir = arg;
        return 1;
    case 'I':
        a->instance_opt = arg;
        return 1;
    case 'B':
        a->bind_address = arg;
        return 1;
    case 'N': /* the original's Nitro check: accepted for old scripts, nothing to ignore */
        return 1;
    default:
        return 0;
    }
}

int agent_parse_options(agent_t *a, int argc, char **argv, void (*usage)(FILE *), const struct option *opts, bool *check) {
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (agent_option(a, ch, optarg))
            continue;
        if (ch == 'k' && check) {
            *check = true;
            continue;
        }
        if (ch == 'h') {
            usage(stdout);
            return -1;
        }
        return agent_usage_error(a, ch, argv);
    }
    return AGENT_OK;
}

int agent_usage_error(agent_t *a, int ch, char **argv) {
    if (ch == ':')
        fprintf(stderr, "%s: %s needs a value (see --help)\n", a->me, argv[optind - 1]);
    else
        fprintf(stderr, "%s: unknown option %s (see --help)\n", a->me, argv[optind - 1]);
    return AGENT_USAGE;
}

int agent_require_root(agent_t *a) {
    if (geteuid() == 0)
        return AGENT_OK;
    fprintf(stderr, "%s: must be run as root\n", a->me);
    return AGENT_NOT_ROOT;
}

int agent_check_device(agent_t *a, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s: %m\n", a->me, path);
        return AGENT_USAGE;
    }
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a block device or a regular file\n", a->me, path);
        return AGENT_USAGE;
    }
    return AGENT_OK;
}

/* ---- progress */

void agent_step(agent_t *a, const char *fmt, ...) {
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    int n = printf("%s", text);
    printf("%*s", n >= 0 && n < STEP_WIDTH ? STEP_WIDTH - n : 1, ""); /* OK goes in a column, or after a space */
    fflush(stdout);
    a->step_open = true;
}

void agent_ok(agent_t *a) {
    if (a->step_open)
        printf("OK\n");
    fflush(stdout);
    a->step_open = false;
}

int agent_fail(agent_t *a, int code, const char *fmt, ...) {
    if (a->step_open)
        printf("NOK\n");
    fflush(stdout);
    a->step_open = false;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", a->me, text);
    return code;
}

/* ---- configuration and identity */

static int env_rsa_bits(agent_t *a) {
    const char *env = getenv("SK_RSA_BITS"); /* tests: 3072 is quicker to make */
    if (!env)
        return 0;
    char *end;
    unsigned long v = strtoul(env, &end, 10);
    if (!*env || *end || v < 3072 || v > 8192 || v % 1024)
        return -1;
    a->rsa_bits = (unsigned)v;
    return 0;
}

int agent_load(agent_t *a, bool identity) {
    char err[1024], line[SKCFG_PATH_MAX];
    /* No core dumps and no ptrace by other users from here on: secrets follow. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (!a->http_ready && skhttp_global_init() != 0)
        return agent_fail(a, AGENT_FAIL, "cannot initialize libcurl");
    a->http_ready = true;
    if (env_rsa_bits(a) != 0)
        return agent_fail(a, AGENT_FAIL, "SK_RSA_BITS must be 3072 to 8192 in steps of 1024");
    int rc = skcfg_read_line(a->config_dir, "api_url", line, sizeof line, err, sizeof err);
    if (rc == 1)
        return agent_fail(a, AGENT_FAIL, "%s/api_url is missing", a->config_dir);
    if (rc < 0)
        return agent_fail(a, AGENT_FAIL, "%s", err);
    if (skcfg_api_url(line, a->api_url, sizeof a->api_url) != 0)
        return agent_fail(a, AGENT_FAIL, "%s/api_url is not an http:// or https:// URL", a->config_dir);
    char path[SKCFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/api_public_key.pem", a->config_dir);
    a->api_key = skcrypto_load_api_key(path, err, sizeof err);
    if (!a->api_key || skcrypto_fingerprint(a->api_key, a->api_fpr) != 0)
        return agent_fail(a, AGENT_FAIL, "%s", err);
    snprintf(a->ca_file, sizeof a->ca_file, "%s/ca.pem", a->config_dir);
    a->http.ca_file = access(a->ca_file, F_OK) == 0 ? a->ca_file : NULL;
    a->http.bind_address = a->bind_address;
    if (!identity)
        return AGENT_OK;

    rc = skcfg_read_line(a->config_dir, "tenant", line, sizeof line, err, sizeof err);
    if (rc < 0)
        return agent_fail(a, AGENT_FAIL, "%s", err);
    if (rc == 0 && !skid_tenant(line))
        return agent_fail(a, AGENT_FAIL, "%s/tenant is not a tenant id", a->config_dir);
    char tenant[SKID_TENANT_MAX + 1] = "";
    if (rc == 0)
        snprintf(tenant, sizeof tenant, "%.*s", SKID_TENANT_MAX, line); /* skid_tenant bounds it */
    if (a->instance_opt) {
        if (!skid_instance(a->instance_opt))
            return agent_fail(a, AGENT_USAGE, "--instance-id must be i- and 8 or 17 lower-case hex digits");
        snprintf(a->instance_id, sizeof a->instance_id, "%s", a->instance_opt);
    } else {
        char url[SKCFG_URL_MAX + 1], from_imds[SKID_TENANT_MAX + 1];
        const char *env = getenv("SK_IMDS_URL");
        snprintf(line, sizeof line, "%s", SKIMDS_DEFAULT_URL);
        if (env)
            snprintf(line, sizeof line, "%s", env);
        else if ((rc = skcfg_read_line(a->config_dir, "imds_url", line, sizeof line, err, sizeof err)) < 0)
            return agent_fail(a, AGENT_FAIL, "%s", err);
        else if (rc == 1)
            snprintf(line, sizeof line, "%s", SKIMDS_DEFAULT_URL);
        if (skcfg_api_url(line, url, sizeof url) != 0)
            return agent_fail(a, AGENT_FAIL, "the metadata service URL %s is not an http:// URL", line);
        agent_step(a, "Asking the metadata service for this instance's id...");
        if (skimds_identity(url, a->instance_id, from_imds, err, sizeof err) != 0)
            return agent_fail(a, AGENT_FAIL, "%s (or give --instance-id)", err);
        agent_ok(a);
        if (!tenant[0])
            snprintf(tenant, sizeof tenant, "%s", from_imds);
    }
    snprintf(a->tenant, sizeof a->tenant, "%s", tenant);
    return AGENT_OK;
}

/* ---- the key API */

/* POST url/encryption/<this instance>/op; a 200 answer parsed into r. */
static int call(agent_t *a, const char *op, const char *body, int want, skapi_reply_t *r) {
    char url[SKCFG_URL_MAX + 128], err[512];
    snprintf(url, sizeof url, "%s/encryption/%s/%s", a->api_url, a->instance_id, op);
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    skhttp_response_t resp;
    int tries = 0;
    if (!body)
        return agent_fail(a, AGENT_FAIL, "out of memory");
    if (skhttp_request(&a->http, "POST", url, headers, body, &resp, &tries, err, sizeof err) != 0)
        return agent_fail(a, AGENT_FAIL, "cannot reach the key API at %s: %s (after %d tr%s)", a->api_url, err, tries,
                          tries == 1 ? "y" : "ies");
    int rc = AGENT_OK;
    if (resp.status != 200) {
        char msg[256];
        skapi_error_message(resp.body.data, resp.body.len, msg, sizeof msg);
        rc = agent_fail(a, AGENT_FAIL, "the key API refused: HTTP %ld %s", resp.status, msg);
    } else if (skapi_parse_reply(resp.body.data, resp.body.len, want, r, err, sizeof err) != 0) {
        rc = agent_fail(a, AGENT_FAIL, "%s", err);
    } else {
        agent_ok(a);
    }
    buf_free(&resp.body);
    return rc;
}

static int verify(agent_t *a, const char *what, const buf_t *blob, const buf_t *sig) {
    agent_step(a, "Verifying the signature of the %s...", what);
    if (!skcrypto_verify(a->api_key, (const uint8_t *)blob->data, blob->len, (const uint8_t *)sig->data, sig->len))
        return agent_fail(a, AGENT_FAIL,
                          "CRITICAL: the %s is not signed by the pinned API key (%s/api_public_key.pem); "
                          "nothing was changed",
                          what, a->config_dir);
    agent_ok(a);
    return AGENT_OK;
}

static EVP_PKEY *one_time_key(agent_t *a, buf_t *spki) {
    agent_step(a, "Making a one-time RSA-%u key pair...", a->rsa_bits);
    EVP_PKEY *k = skcrypto_rsa_new(a->rsa_bits);
    if (!k || skcrypto_spki(k, spki) != 0) {
        EVP_PKEY_free(k);
        agent_fail(a, AGENT_FAIL, "cannot make an RSA key pair");
        return NULL;
    }
    agent_ok(a);
    return k;
}

static int unwrap(agent_t *a, EVP_PKEY *rsa, const skapi_reply_t *r, secmem_t *secret) {
    const char *alg = r->algorithm[0] ? r->algorithm : "RSA-OAEP-SHA256";
    agent_step(a, "Unwrapping the secret (%s)...", alg);
    if (skcrypto_oaep_decrypt(rsa, alg, (const uint8_t *)r->wrapped.data, r->wrapped.len, secret) != 0)
        return agent_fail(a, AGENT_FAIL, "cannot unwrap the secret (not for our key, or memory cannot be locked)");
    if (secret->len != 32) {
        secmem_free(secret);
        return agent_fail(a, AGENT_FAIL, "the unwrapped secret is not 32 bytes");
    }
    agent_ok(a);
    return AGENT_OK;
}

static int copy(buf_t *dst, const buf_t *src) {
    dst->len = 0;
    return buf_append(dst, src->data, src->len);
}

int agent_generate(agent_t *a, const char *uuid, buf_t *blob, buf_t *sig, secmem_t *secret) {
    buf_t spki;
    buf_init(&spki, 0);
    skapi_reply_t r;
    skapi_reply_init(&r);
    int rc = AGENT_FAIL;
    EVP_PKEY *rsa = one_time_key(a, &spki);
    if (!rsa)
        goto done;
    char *body = skapi_generate_body(&spki, uuid);
    agent_step(a, "Asking the key API for a new secret...");
    rc = call(a, "generate-secret", body, SKAPI_ENCRYPTED | SKAPI_WRAPPED, &r);
    free(body);
    if (rc == AGENT_OK)
        rc = verify(a, "encrypted secret", &r.enc, &r.enc_sig);
    if (rc == AGENT_OK)
        rc = verify(a, "wrapped secret", &r.wrapped, &r.wrapped_sig);
    if (rc == AGENT_OK)
        rc = unwrap(a, rsa, &r, secret);
    if (rc == AGENT_OK && (copy(blob, &r.enc) != 0 || copy(sig, &r.enc_sig) != 0)) {
        secmem_free(secret);
        rc = agent_fail(a, AGENT_FAIL, "out of memory");
    }
done:
    EVP_PKEY_free(rsa);
    skapi_reply_free(&r);
    buf_free(&spki);
    return rc;
}

static int decrypt(agent_t *a, const buf_t *blob, const char *uuid, secmem_t *secret) {
    buf_t spki;
    buf_init(&spki, 0);
    skapi_reply_t r;
    skapi_reply_init(&r);
    int rc = AGENT_FAIL;
    EVP_PKEY *rsa = one_time_key(a, &spki);
    if (!rsa)
        goto done;
    char *body = skapi_decrypt_body(blob, &spki, uuid);
    agent_step(a, "Asking the key API to decrypt the secret...");
    rc = call(a, "decrypt-secret", body, SKAPI_WRAPPED, &r);
    free(body);
    if (rc == AGENT_OK)
        rc = verify(a, "wrapped secret", &r.wrapped, &r.wrapped_sig);
    if (rc == AGENT_OK)
        rc = unwrap(a, rsa, &r, secret);
done:
    EVP_PKEY_free(rsa);
    skapi_reply_free(&r);
    buf_free(&spki);
    return rc;
}

int agent_convert(agent_t *a, const buf_t *blob, const char *source, const char *uuid, buf_t *new_blob,
                  buf_t *new_sig) {
    skapi_reply_t r;
    skapi_reply_init(&r);
    char *body = skapi_convert_body(blob, source, uuid);
    agent_step(a, "Asking the key API to convert the secret from %s...", source);
    int rc = call(a, "convert-secret", body, SKAPI_ENCRYPTED, &r);
    free(body);
    if (rc == AGENT_OK)
        rc = verify(a, "new encrypted secret", &r.enc, &r.enc_sig);
    if (rc == AGENT_OK && (copy(new_blob, &r.enc) != 0 || copy(new_sig, &r.enc_sig) != 0))
        rc = agent_fail(a, AGENT_FAIL, "out of memory");
    skapi_reply_free(&r);
    return rc;
}

/* ---- volumes */

int agent_open_volume(agent_t *a, const char *device, agent_volume_t *v) {
    char err[1024];
    memset(v, 0, sizeof *v);
    v->device = device;
    sktoken_init(&v->token);
    agent_step(a, "Reading the sk token of %s...", device);
    int rc = skvol_open(device, &v->vol, err, sizeof err);
    if (rc == SKVOL_NOT_LUKS2)
        return agent_fail(a, AGENT_STATE, "%s is not an sk volume (no LUKS2 header; prepare it with sk prep-dev)",
                          device);
    if (rc != 0)
        return agent_fail(a, AGENT_FAIL, "%s", err);
    const char *json = NULL;
    rc = skvol_token(v->vol, &json, &v->token_id);
    if (rc == SKVOL_NO_TOKEN)
        return agent_fail(a, AGENT_STATE, "%s is a LUKS2 volume without an sk token", device);
    if (rc == SKVOL_MANY_TOKENS)
        return agent_fail(a, AGENT_STATE, "%s has more than one sk token", device);
    if (sktoken_parse(json, strlen(json), &v->token, err, sizeof err) != 0)
        return agent_fail(a, AGENT_FAIL, "the sk token of %s is damaged: %s", device, err);
    snprintf(v->uuid, sizeof v->uuid, "%s", skvol_uuid(v->vol));
    for (char *p = v->uuid; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!skid_uuid(v->uuid) || strcasecmp(v->uuid, v->token.volume_uuid) != 0)
        return agent_fail(a, AGENT_FAIL, "the sk token of %s names volume %s, but the volume is %s", device,
                          v->token.volume_uuid, v->uuid);
    agent_ok(a);
    if (strcmp(v->token.api_key_fingerprint, a->api_fpr) != 0)
        return agent_fail(a, AGENT_FAIL,
                          "CRITICAL: %s was prepared under another API signing key (SHA-256 %.16s...) than the "
                          "pinned one (%.16s...); nothing was changed",
                          device, v->token.api_key_fingerprint, a->api_fpr);
    buf_t *blob = &v->token.current.blob, *sig = &v->token.current.sig;
    return verify(a, "encrypted secret", blob, sig);
}

void agent_close_volume(agent_volume_t *v) {
    skvol_close(v->vol);
    v->vol = NULL;
    sktoken_free(&v->token);
}

int agent_check_tenant(agent_t *a, const agent_volume_t *v) {
    const char *t = v->token.tenant;
    if (a->tenant[0] && t[0] && strcmp(a->tenant, t) != 0)
        return agent_fail(a, AGENT_FAIL, "%s belongs to tenant %s; this instance is in %s", v->device, t, a->tenant);
    return AGENT_OK;
}

int agent_unlock(agent_t *a, agent_volume_t *v, secmem_t *secret) {
    const sktoken_t *t = &v->token;
    if (agent_check_tenant(a, v) != AGENT_OK)
        return AGENT_FAIL;
    if (strcmp(t->current.instance_id, a->instance_id) != 0)
        return agent_fail(a, AGENT_FAIL, "%s belongs to instance %s, not %s (take it over with: sk takeown -i %s %s)",
                          v->device, t->current.instance_id, a->instance_id, t->current.instance_id, v->device);
    int rc = decrypt(a, &t->current.blob, v->uuid, secret);
    if (rc != AGENT_OK)
        return rc;
    char err[1024];
    agent_step(a, "Checking that the secret opens the volume's keyslot...");
    if (skvol_test_key(v->vol, t->keyslot, secret, err, sizeof err) != 0) {
        secmem_free(secret);
        return agent_fail(a, AGENT_FAIL, "%s", err);
    }
    agent_ok(a);
    return AGENT_OK;
}
