/* acme: the state machine (acme.h). Each state prepares one request
 * (enter()); responses are checked in one place (on_response(): nonce,
 * problem documents, badNonce and transient retries) and then handled by
 * the state's function. */
#include "acme.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define POST_AS_GET ""

static const char *const STATE_NAMES[] = {
    [ACME_DIRECTORY] = "directory", [ACME_NONCE] = "newNonce",        [ACME_ACCOUNT] = "newAccount",
    [ACME_ORDER_RESUME] = "order",  [ACME_ORDER_NEW] = "newOrder",    [ACME_AUTHZ] = "authorization",
    [ACME_CHALLENGES_SET] = "dns-01 values", [ACME_CHALLENGE] = "challenge", [ACME_ORDER_POLL] = "order",
    [ACME_AUTHZ_ERROR] = "authorization", [ACME_KEY] = "certificate key", [ACME_FINALIZE] = "finalize",
    [ACME_CERT] = "certificate", [ACME_CLEANUP] = "cleanup",         [ACME_DONE] = "done",
    [ACME_FAILED] = "failed", [ACME_REVOKE] = "revokeCert", [ACME_KEY_CHANGE] = "keyChange",
    [ACME_RENEWAL_INFO] = "renewalInfo",
};

const char *acme_state_name(acme_state_t s) {
    return (unsigned)s < sizeof STATE_NAMES / sizeof STATE_NAMES[0] ? STATE_NAMES[s] : "?";
}

acme_state_t acme_state(const acme_t *m) { return m->state; }
const char *acme_failure(const acme_t *m) { return m->failure; }
const char *acme_account_url(const acme_t *m) { return m->account_url; }
const char *acme_order_url(const acme_t *m) { return m->order_url; }
const char *acme_progress(const acme_t *m) { return m->progress; }

int acme_renewal_window(const acme_t *m, time_t *start, time_t *end, int64_t *retry_ms) {
    if (!m->window_start)
        return -1;
    *start = m->window_start;
    *end = m->window_end;
    *retry_ms = m->window_retry_ms;
    return 0;
}

static uint32_t random32(acme_t *m);

void acme_renewal_plan(acme_t *m, time_t not_before, time_t not_after, time_t now, acme_renewal_plan_t *plan) {
    time_t start, end;
    int64_t retry_ms;
    if (m->state == ACME_DONE && acme_renewal_window(m, &start, &end, &retry_ms) == 0) {
        if (start != plan->start || end != plan->end || !plan->at)
            plan->at = acme_renewal_pick(start, end, now, random32(m));
        else if (plan->at < now)
            plan->at = now;
        plan->start = start;
        plan->end = end;
        plan->recheck_ms = acme_renewal_recheck_ms(retry_ms);
        return;
    }
    plan->start = plan->end = 0;
    plan->at = acme_renew_at(not_before, not_after);
    plan->recheck_ms = m->state == ACME_DONE ? acme_renewal_recheck_ms(-1) : 3600 * 1000;
}

static void fail(acme_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(acme_t *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->failure, sizeof m->failure, fmt, ap);
    va_end(ap);
    m->state = ACME_FAILED;
}

static void progress(acme_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(acme_t *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->progress, sizeof m->progress, fmt, ap);
    va_end(ap);
}

/* A URL from the CA: absolute http(s), printable, bounded. */
static int copy_url(char dst[ACME_URL_MAX], const char *src) {
    if (!src || (strncmp(src, "https://", 8) != 0 && strncmp(src, "http://", 7) != 0))
        return -1;
    size_t n = strlen(src);
    if (n >= ACME_URL_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)src[i] <= ' ' || (unsigned char)src[i] >= 0x7f)
            return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* What the operation needs from the configuration. */
static int check_op(acme_t *m) {
    const acme_config_t *c = &m->cfg;
    char tp[ACME_THUMBPRINT_SIZE];
    buf_t b;
    buf_init(&b, 0);
    const char *why = NULL;
    if (c->eab_kid && (!*c->eab_kid || !c->eab_hmac_key ||
                       acme_b64url_decode(c->eab_hmac_key, strlen(c->eab_hmac_key), &b) < 0 || b.len == 0))
        why = "the external account binding needs a kid and a base64url MAC key";
    else if ((c->op == ACME_OP_REVOKE || c->op == ACME_OP_RENEWAL_INFO) &&
             acme_cert_der_b64url(c->cert_pem, c->cert_pem_len, &b) < 0)
        why = "no certificate (PEM) to work on";
    else if ((c->op == ACME_OP_REVOKE || c->op == ACME_OP_KEY_CHANGE) && !m->account_url[0])
        why = "no account URL (the account must exist)";
    else if (c->op == ACME_OP_REVOKE && (c->revoke_reason < 0 || c->revoke_reason > 10 || c->revoke_reason == 7))
        why = "bad revocation reason (RFC 5280: 0..10, not 7)";
    else if (c->op == ACME_OP_KEY_CHANGE && (!c->new_account_key || acme_jwk_thumbprint(c->new_account_key, tp) < 0 ||
                                             strcmp(tp, m->thumbprint) == 0))
        why = "the new account key is not another P-256 key";
    else if ((unsigned)c->op > ACME_OP_RENEWAL_INFO)
        why = "unknown operation";
    buf_free_secure(&b);
    if (why) {
        fail(m, "%s", why);
        return -1;
    }
    return 0;
}

int acme_init(acme_t *m, const acme_config_t *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->save = ACME_ACT_DONE;
    m->cleaned = true; /* no dns-01 value is out yet */
    buf_init(&m->body, 0);
    buf_init(&m->chain, ACME_BODY_MAX);
    if (cfg->nnames == 0 || cfg->nnames > ACME_MAX_NAMES) {
        fail(m, "between 1 and %d names", ACME_MAX_NAMES);
        return -1;
    }
    for (size_t i = 0; i < cfg->nnames; i++) {
        size_t n = strlen(cfg->names[i]);
        if (n == 0 || n >= sizeof m->values[0].name || cfg->names[i][n - 1] == '.') {
            fail(m, "bad name \"%.255s\" (no trailing dot)", cfg->names[i]);
            return -1;
        }
    }
    if (copy_url(m->new_nonce_url, cfg->directory_url) < 0) { /* checked here, kept in cfg */
        fail(m, "bad directory URL");
        return -1;
    }
    m->new_nonce_url[0] = '\0';
    if (!cfg->account_key || acme_jwk_thumbprint(cfg->account_key, m->thumbprint) < 0) {
        fail(m, "the account key is not a P-256 key");
        return -1;
    }
    if (cfg->account_url && copy_url(m->account_url, cfg->account_url) < 0) {
        fail(m, "bad saved account URL");
        return -1;
    }
    if (cfg->order_url && copy_url(m->order_url, cfg->order_url) < 0)
        m->order_url[0] = '\0'; /* a damaged saved order: start a new one */
    if (cfg->cert_key && m->order_url[0]) {
        EVP_PKEY_up_ref(cfg->cert_key);
        m->cert_key = cfg->cert_key;
    }
    if (!m->cfg.timeout_ms)
        m->cfg.timeout_ms = 300000;
    m->window_retry_ms = -1;
    return check_op(m);
}

void acme_free(acme_t *m) {
    EVP_PKEY_free(m->cert_key);
    m->cert_key = NULL;
    buf_free(&m->body);
    buf_free(&m->chain);
}

/* ------------------------------------------------------------ requests */

static void set_req(acme_t *m, const char *url, const char *payload, bool post) {
    snprintf(m->req.url, sizeof m->req.url, "%s", url);
    snprintf(m->req.payload, sizeof m->req.payload, "%s", payload ? payload : "");
    m->req.post = post;
    m->req.use_jwk = false;
    m->req.accept = NULL;
}

static int order_payload(acme_t *m) {
    json_t *ids = json_array();
    for (size_t i = 0; i < m->cfg.nnames; i++)
        json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", m->cfg.names[i]));
    json_t *o = json_pack("{s:o}", "identifiers", ids);
    m->replaces_sent = false;
    if (o && m->cfg.op == ACME_OP_ISSUE && m->cfg.cert_pem && m->renewal_info_url[0] && !m->replaces_dropped) {
        buf_t id;
        buf_init(&id, 0);
        if (acme_ari_cert_id(m->cfg.cert_pem, m->cfg.cert_pem_len, &id) == 0) {
            json_object_set_new(o, "replaces", json_string(id.data));
            m->replaces_sent = true;
        }
        buf_free(&id);
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = text && strlen(text) < sizeof m->req.payload ? 0 : -1;
    if (rc == 0)
        set_req(m, m->new_order_url, text, true);
    free(text);
    return rc;
}

/* The externalAccountBinding member of newAccount (a JSON object), or NULL. */
static json_t *eab_object(acme_t *m) {
    buf_t key, jws;
    buf_init(&key, 0);
    buf_init(&jws, 0);
    json_t *o = NULL;
    if (acme_b64url_decode(m->cfg.eab_hmac_key, strlen(m->cfg.eab_hmac_key), &key) == 0 &&
        acme_eab_jws(m->cfg.account_key, m->cfg.eab_kid, (const unsigned char *)key.data, key.len, m->new_account_url,
                     &jws) == 0)
        o = json_loadb(jws.data, jws.len, 0, NULL);
    buf_free_secure(&key);
    buf_free(&jws);
    return o;
}

static int account_payload(acme_t *m) {
    json_t *o = json_pack("{s:b}", "termsOfServiceAgreed", 1);
    if (o && m->cfg.contact)
        json_object_set_new(o, "contact", json_pack("[s]", m->cfg.contact));
    if (o && m->cfg.eab_kid) {
        json_t *eab = eab_object(m);
        if (!eab || json_object_set_new(o, "externalAccountBinding", eab) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = text && strlen(text) < sizeof m->req.payload ? 0 : -1;
    if (rc == 0) {
        set_req(m, m->new_account_url, text, true);
        m->req.use_jwk = true;
    }
    free(text);
    return rc;
}

static int finalize_payload(acme_t *m) {
    buf_t csr;
    buf_init(&csr, 0);
    int rc = -1;
    if (acme_csr(m->cert_key, m->cfg.names, m->cfg.nnames, &csr) == 0 && csr.len + 16 < sizeof m->req.payload) {
        char payload[sizeof m->req.payload];
        snprintf(payload, sizeof payload, "{\"csr\":\"%s\"}", csr.data);
        set_req(m, m->finalize_url, payload, true);
        rc = 0;
    }
    buf_free(&csr);
    return rc;
}

static int revoke_payload(acme_t *m) {
    buf_t der;
    buf_init(&der, 0);
    int rc = -1;
    if (acme_cert_der_b64url(m->cfg.cert_pem, m->cfg.cert_pem_len, &der) == 0 && der.len + 64 < sizeof m->req.payload) {
        char payload[sizeof m->req.payload];
        snprintf(payload, sizeof payload, "{\"certificate\":\"%s\",\"reason\":%d}", der.data, m->cfg.revoke_reason);
        set_req(m, m->revoke_url, payload, true);
        rc = 0;
    }
    buf_free(&der);
    return rc;
}

/* RFC 8555 7.3.5: the payload is a JWS by the new key (jwk, no nonce) of
 * {"account", "oldKey"}; the outer JWS is the old key's, as usual. */
static int key_change_payload(acme_t *m) {
    buf_t old_jwk, inner;
    buf_init(&old_jwk, 0);
    buf_init(&inner, 0);
    json_t *jwk = acme_jwk(m->cfg.account_key, &old_jwk) == 0 ? json_loadb(old_jwk.data, old_jwk.len, 0, NULL) : NULL;
    json_t *o = jwk ? json_pack("{s:s, s:o}", "account", m->account_url, "oldKey", jwk) : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc = -1;
    if (text && acme_jws(m->cfg.new_account_key, NULL, NULL, m->key_change_url, text, &inner) == 0 &&
        inner.len < sizeof m->req.payload) {
        set_req(m, m->key_change_url, inner.data, true);
        rc = 0;
    }
    free(text);
    json_decref(o);
    buf_free(&old_jwk);
    buf_free(&inner);
    return rc;
}

static int renewal_info_request(acme_t *m) {
    buf_t id;
    buf_init(&id, 0);
    size_t n = strlen(m->renewal_info_url);
    int rc = acme_ari_cert_id(m->cfg.cert_pem, m->cfg.cert_pem_len, &id) == 0 &&
                     n + 1 + id.len < sizeof m->req.url
                 ? 0
                 : -1;
    if (rc == 0) {
        char url[ACME_URL_MAX];
        snprintf(url, sizeof url, "%.*s/%s", (int)(n && m->renewal_info_url[n - 1] == '/' ? n - 1 : n),
                 m->renewal_info_url, id.data);
        set_req(m, url, NULL, false);
    }
    buf_free(&id);
    return rc;
}

/* Enters state s and prepares its request. */
static void enter(acme_t *m, acme_state_t s) {
    m->state = s;
    m->polls = s == ACME_ORDER_POLL ? m->polls : 0;
    switch (s) {
    case ACME_DIRECTORY:
        set_req(m, m->cfg.directory_url, NULL, false);
        break;
    case ACME_ACCOUNT:
        if (account_payload(m) < 0)
            fail(m, "newAccount: cannot build the request");
        break;
    case ACME_ORDER_NEW:
        if (order_payload(m) < 0)
            fail(m, "newOrder: cannot build the request");
        break;
    case ACME_ORDER_RESUME:
    case ACME_ORDER_POLL:
        set_req(m, m->order_url, POST_AS_GET, true);
        break;
    case ACME_AUTHZ:
    case ACME_AUTHZ_ERROR:
        set_req(m, m->authz[m->authz_i].url, POST_AS_GET, true);
        break;
    case ACME_CHALLENGE:
        set_req(m, m->authz[m->authz_i].challenge_url, "{}", true);
        break;
    case ACME_FINALIZE:
        if (finalize_payload(m) < 0)
            fail(m, "finalize: cannot make the CSR");
        break;
    case ACME_CERT:
        set_req(m, m->cert_url, POST_AS_GET, true);
        m->req.accept = "application/pem-certificate-chain";
        break;
    case ACME_REVOKE:
        if (revoke_payload(m) < 0)
            fail(m, "revokeCert: cannot build the request");
        break;
    case ACME_KEY_CHANGE:
        if (key_change_payload(m) < 0)
            fail(m, "keyChange: cannot build the request");
        break;
    case ACME_RENEWAL_INFO:
        if (renewal_info_request(m) < 0)
            fail(m, "renewalInfo: the certificate has no authority key id or serial");
        break;
    default:
        break;
    }
}

static uint32_t random32(acme_t *m) {
    if (m->cfg.random)
        return m->cfg.random(m->cfg.random_arg);
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return r;
}

/* Exponential backoff from base ms with +-25 % jitter: the n-th wait. */
static uint64_t backoff_ms(acme_t *m, uint64_t base, unsigned n) {
    uint64_t d = base;
    for (unsigned i = 0; i < n && d < ACME_POLL_MAX_MS; i++)
        d *= 2;
    if (d > ACME_POLL_MAX_MS)
        d = ACME_POLL_MAX_MS;
    return d * 3 / 4 + random32(m) % (d / 2 + 1);
}

/* Waits delay ms before the prepared request (not past the deadline). */
static void wait_then(acme_t *m, uint64_t now, uint64_t delay) {
    m->wake_at = now + delay;
    if (m->wake_at > m->deadline)
        m->wake_at = m->deadline;
}

/* The action for the current state: send the prepared request (fetching a
 * nonce first if there is none), or ask the embedding. */
static void go(acme_t *m, uint64_t now, acme_action_t *out) {
    memset(out, 0, sizeof *out);
    if (m->state != ACME_FAILED && m->state != ACME_DONE && now >= m->deadline)
        fail(m, "%s: gave up after %llu s", acme_state_name(m->state), (unsigned long long)m->cfg.timeout_ms / 1000);
    if (m->state == ACME_FAILED) {
        if (!m->cleaned) { /* values handed out for serving are deleted first */
            m->cleaned = true;
            out->kind = ACME_ACT_DELETE_CHALLENGES;
            out->challenges = m->values;
            out->nchallenges = m->nvalues;
            return;
        }
        out->kind = ACME_ACT_FAILED;
        return;
    }
    if (m->save != ACME_ACT_DONE) {
        out->kind = m->save;
        m->save = ACME_ACT_DONE;
        if (out->kind == ACME_ACT_SAVE_CERT) {
            out->chain = m->chain.data;
            out->chain_len = m->chain.len;
            out->cert_key = m->cert_key;
        }
        return;
    }
    if (now < m->wake_at) {
        out->kind = ACME_ACT_WAIT;
        out->wake_at = m->wake_at;
        return;
    }
    m->wake_at = 0; /* the wait is over */
    switch (m->state) {
    case ACME_CHALLENGES_SET:
        m->cleaned = false;
        out->kind = ACME_ACT_SET_CHALLENGES;
        out->challenges = m->values;
        out->nchallenges = m->nvalues;
        return;
    case ACME_KEY:
        out->kind = ACME_ACT_NEED_KEY;
        return;
    case ACME_CLEANUP:
        if (!m->cleaned) {
            m->cleaned = true;
            out->kind = ACME_ACT_DELETE_CHALLENGES;
            out->challenges = m->values;
            out->nchallenges = m->nvalues;
            return;
        }
        m->state = ACME_DONE;
        /* fall through */
    case ACME_DONE:
        out->kind = ACME_ACT_DONE;
        return;
    default:
        break;
    }
    acme_request_t *r = &out->request;
    out->kind = ACME_ACT_REQUEST;
    m->in_flight = true;
    if (m->req.post && !m->nonce[0]) {
        if (m->state != ACME_NONCE)
            m->after_nonce = m->state;
        m->state = ACME_NONCE;
        r->method = "HEAD";
        r->url = m->new_nonce_url;
        return;
    }
    r->url = m->req.url;
    r->accept = m->req.accept;
    if (!m->req.post) {
        r->method = "GET";
        return;
    }
    buf_free(&m->body);
    if (acme_jws(m->cfg.account_key, m->req.use_jwk ? NULL : m->account_url, m->nonce, m->req.url, m->req.payload,
                 &m->body) < 0) {
        m->in_flight = false;
        fail(m, "%s: cannot sign the request", acme_state_name(m->state));
        out->kind = ACME_ACT_FAILED;
        return;
    }
    m->nonce[0] = '\0'; /* good once */
    r->method = "POST";
    r->body = m->body.data;
    r->body_len = m->body.len;
    r->content_type = "application/jose+json";
}

/* ------------------------------------------------------------ responses */

static json_t *body_json(const acme_response_t *r) {
    if (!r->body || r->body_len == 0 || r->body_len > ACME_BODY_MAX)
        return NULL;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static void on_directory(acme_t *m, const json_t *d) {
    if (copy_url(m->new_nonce_url, jstr(d, "newNonce")) < 0 || copy_url(m->new_account_url, jstr(d, "newAccount")) < 0 ||
        copy_url(m->new_order_url, jstr(d, "newOrder")) < 0) {
        fail(m, "directory: newNonce, newAccount or newOrder missing or bad");
        return;
    }
    if (copy_url(m->revoke_url, jstr(d, "revokeCert")) < 0)
        m->revoke_url[0] = '\0';
    if (copy_url(m->key_change_url, jstr(d, "keyChange")) < 0)
        m->key_change_url[0] = '\0';
    if (copy_url(m->renewal_info_url, jstr(d, "renewalInfo")) < 0)
        m->renewal_info_url[0] = '\0';
    progress(m, "directory %s read", m->cfg.directory_url);
    switch (m->cfg.op) {
    case ACME_OP_REVOKE:
        if (!m->revoke_url[0])
            fail(m, "directory: no revokeCert");
        else
            enter(m, ACME_REVOKE);
        return;
    case ACME_OP_KEY_CHANGE:
        if (!m->key_change_url[0])
            fail(m, "directory: no keyChange");
        else
            enter(m, ACME_KEY_CHANGE);
        return;
    case ACME_OP_RENEWAL_INFO:
        if (m->renewal_info_url[0]) {
            enter(m, ACME_RENEWAL_INFO);
        } else {
            progress(m, "the CA offers no renewal information");
            m->state = ACME_DONE;
        }
        return;
    case ACME_OP_ISSUE:
        break;
    }
    if (!m->account_url[0] && !m->cfg.eab_kid &&
        json_is_true(json_object_get(json_object_get(d, "meta"), "externalAccountRequired"))) {
        fail(m, "directory: the CA requires an external account binding, which is not configured");
        return;
    }
    if (!m->account_url[0])
        enter(m, ACME_ACCOUNT);
    else
        enter(m, m->order_url[0] ? ACME_ORDER_RESUME : ACME_ORDER_NEW);
}

static void on_account(acme_t *m, const acme_response_t *r, const json_t *a) {
    const char *status = jstr(a, "status");
    if (status && strcmp(status, "valid") != 0) {
        fail(m, "newAccount: the account is %.32s", status);
        return;
    }
    if (copy_url(m->account_url, r->location) < 0) {
        fail(m, "newAccount: no account URL (Location) in the answer");
        return;
    }
    progress(m, "account %s", m->account_url);
    m->save = ACME_ACT_SAVE_ACCOUNT;
    enter(m, m->order_url[0] ? ACME_ORDER_RESUME : ACME_ORDER_NEW);
}

static void new_order_instead(acme_t *m, const char *why) {
    progress(m, "order %s %s: a new order", m->order_url, why);
    m->order_url[0] = '\0';
    m->new_order_done = true;
    m->save = ACME_ACT_SAVE_ORDER; /* forget it */
    EVP_PKEY_free(m->cert_key);
    m->cert_key = NULL;
    enter(m, ACME_ORDER_NEW);
}

static void poll_later(acme_t *m, const acme_response_t *r, uint64_t now, time_t wall) {
    int64_t ra = acme_retry_after_ms(r->retry_after, wall);
    enter(m, ACME_ORDER_POLL);
    wait_then(m, now, ra >= 0 ? (uint64_t)ra : backoff_ms(m, ACME_POLL_MIN_MS, m->polls));
    m->polls++;
}

/* An order object, wherever it came from. */
static void on_order(acme_t *m, const acme_response_t *r, const json_t *o, uint64_t now, time_t wall) {
    const char *status = jstr(o, "status");
    if (!status) {
        fail(m, "order: no status");
        return;
    }
    if (copy_url(m->finalize_url, jstr(o, "finalize")) < 0) {
        fail(m, "order: no finalize URL");
        return;
    }
    acme_state_t from = m->state;
    if (strcmp(status, "invalid") == 0) {
        if (from == ACME_ORDER_RESUME && !m->new_order_done) {
            new_order_instead(m, "is invalid");
            return;
        }
        buf_t why;
        buf_init(&why, 2048);
        json_t *err = json_object_get(o, "error");
        char *text = err ? json_dumps(err, JSON_COMPACT) : NULL;
        if (text && acme_problem_message(text, strlen(text), &why) == 0 && why.len) {
            fail(m, "order invalid: %s", why.data);
        } else if (m->nauthz) {
            m->authz_i = 0;
            enter(m, ACME_AUTHZ_ERROR);
        } else {
            fail(m, "order invalid");
        }
        free(text);
        buf_free(&why);
        return;
    }
    if (strcmp(status, "pending") == 0 && (from == ACME_ORDER_NEW || from == ACME_ORDER_RESUME)) {
        json_t *list = json_object_get(o, "authorizations");
        size_t n = json_array_size(list);
        if (n == 0 || n > ACME_MAX_NAMES) {
            fail(m, "order: %zu authorizations", n);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (copy_url(m->authz[i].url, json_string_value(json_array_get(list, i))) < 0) {
                fail(m, "order: a bad authorization URL");
                return;
            }
            m->authz[i].pending = false;
        }
        m->nauthz = n;
        m->authz_i = 0;
        m->nvalues = 0;
        enter(m, ACME_AUTHZ);
    } else if (strcmp(status, "pending") == 0 || strcmp(status, "processing") == 0) {
        poll_later(m, r, now, wall);
    } else if (strcmp(status, "ready") == 0) {
        progress(m, "order %s ready", m->order_url);
        enter(m, m->cert_key ? ACME_FINALIZE : ACME_KEY);
    } else if (strcmp(status, "valid") == 0) {
        if (!m->cert_key) { /* the key of its CSR is lost */
            if (!m->new_order_done) {
                new_order_instead(m, "is valid but its key is lost");
                return;
            }
            fail(m, "order: valid without a key");
            return;
        }
        if (copy_url(m->cert_url, jstr(o, "certificate")) < 0) {
            fail(m, "order: valid without a certificate URL");
            return;
        }
        progress(m, "order %s valid", m->order_url);
        enter(m, ACME_CERT);
    } else {
        fail(m, "order: unknown status %.32s", status);
    }
}

static void on_new_order(acme_t *m, const acme_response_t *r, const json_t *o, uint64_t now, time_t wall) {
    if (copy_url(m->order_url, r->location) < 0) {
        fail(m, "newOrder: no order URL (Location) in the answer");
        return;
    }
    on_order(m, r, o, now, wall);
    if (m->state != ACME_FAILED) {
        progress(m, "order %s created", m->order_url);
        m->save = ACME_ACT_SAVE_ORDER;
    }
}

/* The next authorization whose challenge must be answered, from i on. */
static size_t next_pending(const acme_t *m, size_t i) {
    while (i < m->nauthz && !m->authz[i].pending)
        i++;
    return i;
}

static void on_authz(acme_t *m, const json_t *a) {
    acme_authz_t *z = &m->authz[m->authz_i];
    const char *status = jstr(a, "status");
    const char *name = jstr(json_object_get(a, "identifier"), "value");
    if (!status || !name || strlen(name) >= sizeof m->values[0].name) {
        fail(m, "authorization: no status or identifier");
        return;
    }
    if (strcmp(status, "pending") == 0) {
        json_t *chs = json_object_get(a, "challenges"), *c;
        size_t i;
        const char *token = NULL, *cstatus = NULL;
        json_array_foreach(chs, i, c) {
            const char *type = jstr(c, "type");
            if (type && strcmp(type, "dns-01") == 0) {
                token = jstr(c, "token");
                cstatus = jstr(c, "status");
                if (copy_url(z->challenge_url, jstr(c, "url")) < 0)
                    token = NULL;
                break;
            }
        }
        if (!token || strlen(token) > 256 || !cstatus) {
            fail(m, "authorization %.255s: no usable dns-01 challenge", name);
            return;
        }
        acme_challenge_value_t *v = &m->values[m->nvalues];
        snprintf(v->name, sizeof v->name, "%s", name);
        if (acme_dns01_value(token, m->thumbprint, v->value) < 0) {
            fail(m, "authorization %.255s: cannot compute the dns-01 value", name);
            return;
        }
        m->nvalues++;
        z->pending = strcmp(cstatus, "pending") == 0; /* else the CA works on it already */
        progress(m, "authorization %.255s: dns-01 value %s", name, v->value);
    } else if (strcmp(status, "valid") == 0) {
        z->pending = false;
        progress(m, "authorization %.255s valid already", name);
    } else {
        fail(m, "authorization %.255s is %.32s", name, status);
        return;
    }
    if (++m->authz_i < m->nauthz) {
        enter(m, ACME_AUTHZ);
    } else if (m->nvalues) {
        enter(m, ACME_CHALLENGES_SET);
    } else {
        enter(m, ACME_ORDER_POLL);
    }
}

/* The order went invalid: find and report the authorization that failed. */
static void on_authz_error(acme_t *m, const json_t *a) {
    const char *status = jstr(a, "status");
    const char *name = jstr(json_object_get(a, "identifier"), "value");
    if (status && strcmp(status, "invalid") == 0) {
        json_t *chs = json_object_get(a, "challenges"), *c;
        size_t i;
        json_array_foreach(chs, i, c) {
            json_t *err = json_object_get(c, "error");
            if (!err)
                continue;
            char *text = json_dumps(err, JSON_COMPACT);
            buf_t why;
            buf_init(&why, 2048);
            if (text && acme_problem_message(text, strlen(text), &why) == 0)
                fail(m, "authorization %.255s invalid: %s", name ? name : "?", why.data);
            free(text);
            buf_free(&why);
            if (m->state == ACME_FAILED)
                return;
        }
        fail(m, "authorization %.255s invalid", name ? name : "?");
        return;
    }
    if (++m->authz_i < m->nauthz)
        enter(m, ACME_AUTHZ_ERROR);
    else
        fail(m, "order invalid, but no authorization says why");
}

/* RFC 9773 4.2: {"suggestedWindow": {"start", "end"}, "explanationURL"?}. */
static void on_renewal_info(acme_t *m, const acme_response_t *r, const json_t *o, time_t wall) {
    json_t *w = json_object_get(o, "suggestedWindow");
    time_t start, end;
    if (acme_rfc3339(jstr(w, "start"), &start) < 0 || acme_rfc3339(jstr(w, "end"), &end) < 0 || end < start ||
        start <= 0) {
        fail(m, "renewalInfo: no usable suggestedWindow");
        return;
    }
    m->window_start = start;
    m->window_end = end;
    m->window_retry_ms = acme_retry_after_ms(r->retry_after, wall);
    progress(m, "renewal window %lld..%lld", (long long)start, (long long)end);
    m->state = ACME_DONE;
}

static void on_cert(acme_t *m, const acme_response_t *r) {
    static const char BEGIN[] = "-----BEGIN CERTIFICATE-----";
    if (!r->body || r->body_len < sizeof BEGIN || memcmp(r->body, BEGIN, sizeof BEGIN - 1) != 0) {
        fail(m, "certificate: the answer is not a PEM chain");
        return;
    }
    buf_free(&m->chain);
    if (buf_append(&m->chain, r->body, r->body_len) < 0 || buf_append(&m->chain, "", 1) < 0) {
        fail(m, "certificate: too large");
        return;
    }
    m->chain.len--; /* NUL-terminated for the embedding's convenience */
    progress(m, "certificate downloaded (%zu bytes)", r->body_len);
    m->save = ACME_ACT_SAVE_CERT;
    m->state = ACME_CLEANUP;
}

/* Retries the same request after a wait (transport errors, 5xx). */
static void retry_transient(acme_t *m, uint64_t now, const char *what) {
    if (++m->transient > ACME_TRANSIENT_RETRIES) {
        fail(m, "%s: %s (%u attempts)", acme_state_name(m->state), what, m->transient);
        return;
    }
    if (m->state == ACME_NONCE)
        m->state = m->after_nonce;
    m->nonce[0] = '\0'; /* the request may have used it */
    progress(m, "%s: %s; retrying", acme_state_name(m->state), what);
    wait_then(m, now, backoff_ms(m, ACME_TRANSIENT_MIN_MS, m->transient));
}

static void on_problem(acme_t *m, const acme_response_t *r, uint64_t now, time_t wall) {
    json_t *doc = body_json(r);
    const char *type = jstr(doc, "type");
    const char *t = type && strncmp(type, "urn:ietf:params:acme:error:", 27) == 0 ? type + 27 : "";
    if (strcmp(t, "badNonce") == 0 && ++m->bad_nonces <= ACME_BAD_NONCE_RETRIES) {
        if (m->state == ACME_NONCE) /* cannot happen with a sane CA: HEAD needs no nonce */
            m->state = m->after_nonce;
        json_decref(doc); /* the answer's Replay-Nonce (kept already) is the one to retry with */
        return;
    }
    if (m->state == ACME_FINALIZE && strcmp(t, "orderNotReady") == 0) {
        poll_later(m, r, now, wall);
        json_decref(doc);
        return;
    }
    if (m->state == ACME_ORDER_NEW && m->replaces_sent &&
        (strcmp(t, "alreadyReplaced") == 0 || strcmp(t, "malformed") == 0)) {
        /* RFC 9773 5: the CA does not take that certificate as replaced; a plain order */
        progress(m, "newOrder: the CA refused \"replaces\" (%.32s); ordering without it", t);
        m->replaces_dropped = true;
        enter(m, ACME_ORDER_NEW);
        json_decref(doc);
        return;
    }
    if (m->state == ACME_ORDER_RESUME && (r->status == 404 || strcmp(t, "malformed") == 0) && !m->new_order_done) {
        new_order_instead(m, "is unknown to the CA");
        json_decref(doc);
        return;
    }
    if (r->status >= 500 && r->status != 501) {
        json_decref(doc);
        char what[32];
        snprintf(what, sizeof what, "HTTP %d", r->status);
        retry_transient(m, now, what);
        return;
    }
    buf_t why;
    buf_init(&why, 4096);
    if (type)
        acme_problem_message(r->body, r->body_len, &why);
    int64_t ra = acme_retry_after_ms(r->retry_after, wall);
    if (ra >= 0 && strcmp(t, "rateLimited") == 0)
        buf_printf(&why, " (Retry-After %lld s)", (long long)(ra / 1000));
    fail(m, "%s: HTTP %d%s%.*s", acme_state_name(m->state), r->status, why.len ? " " : "", (int)why.len,
         why.len ? why.data : "");
    buf_free(&why);
    json_decref(doc);
}

static void store_nonce(acme_t *m, const char *nonce) {
    size_t n = nonce ? strlen(nonce) : 0;
    if (n == 0 || n >= sizeof m->nonce)
        return;
    for (size_t i = 0; i < n; i++)
        if (!((nonce[i] >= 'A' && nonce[i] <= 'Z') || (nonce[i] >= 'a' && nonce[i] <= 'z') ||
              (nonce[i] >= '0' && nonce[i] <= '9') || nonce[i] == '-' || nonce[i] == '_'))
            return; /* RFC 8555 6.5.1: base64url only */
    memcpy(m->nonce, nonce, n + 1);
}

static void on_response(acme_t *m, const acme_response_t *r, uint64_t now, time_t wall) {
    store_nonce(m, r->replay_nonce);
    if (r->status >= 400 || r->status < 200) {
        on_problem(m, r, now, wall);
        return;
    }
    if (m->state == ACME_NONCE) {
        if (!m->nonce[0]) {
            fail(m, "newNonce: no usable Replay-Nonce");
            return;
        }
        m->state = m->after_nonce;
        return;
    }
    m->bad_nonces = 0;
    m->transient = 0;
    if (m->state == ACME_CERT) {
        on_cert(m, r);
        return;
    }
    if (m->state == ACME_REVOKE || m->state == ACME_KEY_CHANGE) { /* 200, whatever the body */
        progress(m, m->state == ACME_REVOKE ? "certificate revoked" : "account key changed");
        m->state = ACME_DONE;
        return;
    }
    json_t *j = body_json(r);
    if (!j) {
        fail(m, "%s: HTTP %d without a JSON object", acme_state_name(m->state), r->status);
        return;
    }
    switch (m->state) {
    case ACME_DIRECTORY:
        on_directory(m, j);
        break;
    case ACME_ACCOUNT:
        on_account(m, r, j);
        break;
    case ACME_ORDER_NEW:
        on_new_order(m, r, j, now, wall);
        break;
    case ACME_ORDER_RESUME:
        progress(m, "order %s resumed", m->order_url);
        /* fall through */
    case ACME_ORDER_POLL:
    case ACME_FINALIZE:
        on_order(m, r, j, now, wall);
        break;
    case ACME_AUTHZ:
        on_authz(m, j);
        break;
    case ACME_AUTHZ_ERROR:
        on_authz_error(m, j);
        break;
    case ACME_RENEWAL_INFO:
        on_renewal_info(m, r, j, wall);
        break;
    case ACME_CHALLENGE: {
        size_t next = next_pending(m, m->authz_i + 1);
        if (next < m->nauthz) {
            m->authz_i = next;
            enter(m, ACME_CHALLENGE);
        } else {
            progress(m, "challenges answered; waiting for the CA");
            enter(m, ACME_ORDER_POLL);
        }
        break;
    }
    default:
        fail(m, "%s: unexpected response", acme_state_name(m->state));
    }
    json_decref(j);
}

void acme_advance(acme_t *m, const acme_input_t *in, uint64_t now, acme_action_t *out) {
    static const acme_input_t none = {.kind = ACME_IN_NONE};
    if (!in)
        in = &none;
    m->progress[0] = '\0';
    time_t wall = in->kind == ACME_IN_RESPONSE ? in->response.wall : 0;
    if (!m->started) {
        m->started = true;
        m->deadline = now + m->cfg.timeout_ms;
        enter(m, ACME_DIRECTORY);
        go(m, now, out);
        return;
    }
    switch (in->kind) {
    case ACME_IN_NONE:
        break;
    case ACME_IN_RESPONSE:
    case ACME_IN_TRANSPORT_ERROR:
        if (!m->in_flight) {
            fail(m, "%s: a response without a request", acme_state_name(m->state));
            break;
        }
        m->in_flight = false;
        if (in->kind == ACME_IN_RESPONSE)
            on_response(m, &in->response, now, wall);
        else
            retry_transient(m, now, in->error ? in->error : "no answer");
        break;
    case ACME_IN_CHALLENGES_SET:
        if (m->state != ACME_CHALLENGES_SET) {
            fail(m, "%s: challenges reported set unasked", acme_state_name(m->state));
        } else if (!in->ok) {
            fail(m, "dns-01 values: %s", in->error ? in->error : "not served");
        } else {
            progress(m, "dns-01 values served");
            size_t next = next_pending(m, 0);
            if (next < m->nauthz) {
                m->authz_i = next;
                enter(m, ACME_CHALLENGE);
            } else {
                enter(m, ACME_ORDER_POLL);
            }
        }
        break;
    case ACME_IN_KEY:
        if (m->state != ACME_KEY || !in->key) {
            fail(m, "%s: a key unasked", acme_state_name(m->state));
            break;
        }
        EVP_PKEY_up_ref(in->key);
        m->cert_key = in->key;
        enter(m, ACME_FINALIZE);
        break;
    }
    go(m, now, out);
}
