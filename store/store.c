/* store: argument checks and dispatch to the backend, error messages. */
#include "store_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[256];

const char *store_last_error(void) {
    return last_error;
}

int store_fail(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return rc;
}

void store_close(store_t *s) {
    if (s)
        s->ops->close(s);
}

void store_tenant_clear(store_tenant_t *t) {
    free(t->networks);
    free(t->endpoints);
    free(t->audit_dir);
    free(t->ekt);
    memset(t, 0, sizeof *t);
}

void store_tenant_list_free(store_tenant_t *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        store_tenant_clear(&list[i]);
    free(list);
}

static int check_tenant_id(const char *id) {
    return store_valid_tenant_id(id)
               ? 0
               : store_fail(-1, "invalid tenant id (vpc- and 8 or 17 lowercase hex digits)");
}

static int check_instance_id(const char *id) {
    return store_valid_instance_id(id)
               ? 0
               : store_fail(-1, "invalid instance id (i- and 8 or 17 lowercase hex digits)");
}

static int check_ekt(const uint8_t *ekt, size_t len) {
    if (ekt == NULL && len == 0)
        return 0;
    if (ekt == NULL || len == 0 || len > STORE_EKT_MAX)
        return store_fail(-1, "invalid EKT length %zu (1 to %d bytes)", len, STORE_EKT_MAX);
    return 0;
}

/* Checks every field; writes the canonical networks text to networks. */
static int check_tenant(const store_tenant_t *t, char *networks, size_t networks_len) {
    if (check_tenant_id(t->id) != 0)
        return -1;
    if (!store_valid_account_id(t->account_id))
        return store_fail(-1, "invalid account id (12 digits)");
    if (store_verifier_name(t->verifier) == NULL)
        return store_fail(-1, "invalid instance verifier");
    if (t->audit_dir && !store_valid_audit_dir(t->audit_dir))
        return store_fail(-1, "invalid audit directory");
    if (t->endpoints && !store_valid_endpoints(t->endpoints))
        return store_fail(-1, "invalid endpoints (vpce- and 8 or 17 lowercase hex digits, comma-separated)");
    if (check_ekt(t->ekt, t->ekt_len) != 0)
        return -1;
    if (t->networks == NULL)
        return store_fail(-1, "invalid networks: none given");
    cidr_t nets[STORE_NETWORKS_MAX];
    size_t n;
    char err[160];
    if (cidr_parse_list(t->networks, nets, STORE_NETWORKS_MAX, &n, err, sizeof err) != 0)
        return store_fail(-1, "invalid networks: %s", err);
    if (cidr_format_list(nets, n, networks, networks_len) != 0)
        return store_fail(-1, "invalid networks: too long");
    return 0;
}

int store_tenant_add(store_t *s, const store_tenant_t *t) {
    char networks[STORE_NETWORKS_TEXT_SIZE];
    if (check_tenant(t, networks, sizeof networks) != 0)
        return -1;
    store_tenant_t norm = *t;
    norm.networks = networks;
    norm.created_at = (int64_t)time(NULL);
    return s->ops->tenant_add(s, &norm);
}

int store_tenant_get(store_t *s, const char *id, store_tenant_t *out) {
    memset(out, 0, sizeof *out);
    if (check_tenant_id(id) != 0)
        return -1;
    return s->ops->tenant_get(s, id, out);
}

int store_tenant_list(store_t *s, store_tenant_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    return s->ops->tenant_list(s, out, n);
}

int store_tenant_set_ekt_if_absent(store_t *s, const char *tenant_id, const uint8_t *ekt,
                                   size_t len) {
    if (check_tenant_id(tenant_id) != 0)
        return -1;
    if (ekt == NULL || check_ekt(ekt, len) != 0)
        return store_fail(-1, "invalid EKT length %zu (1 to %d bytes)", len, STORE_EKT_MAX);
    return s->ops->tenant_set_ekt_if_absent(s, tenant_id, ekt, len);
}

int store_instance_add(store_t *s, const char *tenant_id, const char *instance_id,
                       const char *ip) {
    if (check_tenant_id(tenant_id) != 0 || check_instance_id(instance_id) != 0)
        return -1;
    char norm[STORE_IP_SIZE];
    if (ip == NULL || ip_normalize(ip, norm, sizeof norm) != 0)
        return store_fail(-1, "invalid IP address");
    return s->ops->instance_add(s, tenant_id, instance_id, norm, (int64_t)time(NULL));
}

int store_instance_get(store_t *s, const char *tenant_id, const char *instance_id, char *ip_out,
                       size_t ip_len) {
    if (ip_len > 0)
        ip_out[0] = '\0';
    if (check_tenant_id(tenant_id) != 0 || check_instance_id(instance_id) != 0)
        return -1;
    return s->ops->instance_get(s, tenant_id, instance_id, ip_out, ip_len);
}

int store_instance_remove(store_t *s, const char *tenant_id, const char *instance_id) {
    if (check_tenant_id(tenant_id) != 0 || check_instance_id(instance_id) != 0)
        return -1;
    return s->ops->instance_remove(s, tenant_id, instance_id);
}

/* ---- installations ---- */

void store_installation_clear(store_installation_t *inst) {
    free(inst->jwk);
    free(inst->metadata);
    memset(inst, 0, sizeof *inst);
}

void store_kvp_list_free(store_kvp_list_t *list) {
    free(list->keys);
    free(list->vals);
    free(list->arena);
    memset(list, 0, sizeof *list);
}

static int check_installation_id(const char *id) {
    return store_valid_installation_id(id) ? 0
                                           : store_fail(-1, "invalid installation id (32 lowercase hex digits)");
}

/* Printable ASCII (JSON text as skd writes it), 1..max-1 bytes. */
static bool valid_json_text(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n + 1 >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f)
            return false;
    }
    return n > 0;
}

int store_installation_add(store_t *s, store_installation_t *inst) {
    if (check_installation_id(inst->id) != 0)
        return -1;
    if (!store_valid_label(inst->label))
        return store_fail(-1, "invalid label (1 to 63 of a-z, 0-9 and '-', not first or last)");
    if (!store_valid_thumbprint(inst->thumbprint))
        return store_fail(-1, "invalid key thumbprint (43 base64url characters)");
    if (!inst->jwk || !valid_json_text(inst->jwk, STORE_JWK_MAX))
        return store_fail(-1, "invalid JWK text (printable ASCII, at most %d bytes)", STORE_JWK_MAX - 1);
    if (inst->metadata && !valid_json_text(inst->metadata, STORE_METADATA_MAX))
        return store_fail(-1, "invalid metadata text (printable ASCII, at most %d bytes)", STORE_METADATA_MAX - 1);
    inst->created_at = (int64_t)time(NULL);
    return s->ops->installation_add(s, inst);
}

int store_installation_get(store_t *s, const char *id, store_installation_t *out) {
    memset(out, 0, sizeof *out);
    if (check_installation_id(id) != 0)
        return -1;
    return s->ops->installation_get(s, id, out);
}

int store_installation_remove(store_t *s, const char *id, store_installation_t *removed) {
    if (removed)
        memset(removed, 0, sizeof *removed);
    if (check_installation_id(id) != 0)
        return -1;
    return s->ops->installation_remove(s, id, removed);
}

int store_installation_set_address(store_t *s, const char *id, const char *ip) {
    if (check_installation_id(id) != 0)
        return -1;
    char norm[STORE_IP_SIZE];
    if (ip == NULL || ip_normalize(ip, norm, sizeof norm) != 0)
        return store_fail(-1, "invalid IP address");
    int family = strchr(norm, ':') ? 6 : 4;
    return s->ops->installation_set_address(s, id, family, norm, (int64_t)time(NULL));
}

int store_challenge_add(store_t *s, const char *id, const char *value) {
    if (check_installation_id(id) != 0)
        return -1;
    if (!store_valid_txt(value))
        return store_fail(-1, "invalid TXT value (1 to 255 printable characters, no space or '/')");
    return s->ops->challenge_add(s, id, value, (int64_t)time(NULL));
}

int store_challenge_remove(store_t *s, const char *id, const char *value, store_txt_list_t *removed) {
    if (removed)
        memset(removed, 0, sizeof *removed);
    if (check_installation_id(id) != 0)
        return -1;
    if (value && !store_valid_txt(value))
        return store_fail(-1, "invalid TXT value (1 to 255 printable characters, no space or '/')");
    return s->ops->challenge_remove(s, id, value, removed);
}

int store_kvp_list(store_t *s, store_kvp_list_t *out) {
    memset(out, 0, sizeof *out);
    return s->ops->kvp_list(s, out);
}
