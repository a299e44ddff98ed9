/* store_valid: syntax of tenant, instance and account ids, the verifier,
 * and of installations' ids, labels and values (with the DNS keys). */
#include "store.h"

#include <stdio.h>
#include <string.h>

static bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* prefix followed by exactly 8 or 17 lowercase hex digits (AWS id shapes). */
static bool hex_id(const char *s, const char *prefix) {
    if (s == NULL)
        return false;
    size_t p = strlen(prefix);
    if (strncmp(s, prefix, p) != 0)
        return false;
    s += p;
    size_t n = 0;
    while (n < 18 && s[n] != '\0') {
        if (!is_lower_hex(s[n]))
            return false;
        n++;
    }
    return s[n] == '\0' && (n == 8 || n == 17);
}

bool store_valid_tenant_id(const char *s) {
    return hex_id(s, "vpc-");
}

bool store_valid_instance_id(const char *s) {
    return hex_id(s, "i-");
}

bool store_valid_account_id(const char *s) {
    if (s == NULL)
        return false;
    for (int i = 0; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return s[12] == '\0';
}

bool store_valid_audit_dir(const char *s) {
    if (s == NULL || s[0] == '\0')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f || n + 1 >= STORE_AUDIT_DIR_SIZE)
            return false;
    }
    return true;
}

static const char *const verifier_names[] = {
    [STORE_VERIFIER_REGISTRY] = "registry",
    [STORE_VERIFIER_IDENTITY_DOCUMENT] = "identity-document",
};

int store_verifier_parse(const char *s, store_verifier_t *out) {
    for (size_t i = 0; s && i < sizeof verifier_names / sizeof verifier_names[0]; i++) {
        if (strcmp(s, verifier_names[i]) == 0) {
            *out = (store_verifier_t)i;
            return 0;
        }
    }
    return -1;
}

const char *store_verifier_name(store_verifier_t v) {
    if ((unsigned)v >= sizeof verifier_names / sizeof verifier_names[0])
        return NULL;
    return verifier_names[v];
}

bool store_valid_networks(const char *text) {
    cidr_t nets[STORE_NETWORKS_MAX];
    size_t n;
    char err[128];
    return cidr_parse_list(text, nets, STORE_NETWORKS_MAX, &n, err, sizeof err) == 0;
}

static bool valid_endpoint(const char *s, size_t len) {
    if (len != 13 && len != 22)
        return false;
    if (strncmp(s, "vpce-", 5) != 0)
        return false;
    for (size_t i = 5; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool store_valid_endpoints(const char *s) {
    if (s == NULL)
        return true;
    size_t count = 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        if (!valid_endpoint(s, len) || ++count > 16)
            return false;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

bool store_endpoints_contain(const char *list, const char *id) {
    size_t id_len = strlen(id);
    while (list && *list) {
        size_t len = strcspn(list, ",");
        if (len == id_len && strncmp(list, id, len) == 0)
            return true;
        list += len + (list[len] == ',');
    }
    return false;
}

bool store_valid_installation_id(const char *s) {
    if (s == NULL)
        return false;
    size_t n = 0;
    while (n < STORE_INSTALLATION_ID_SIZE && is_lower_hex(s[n]))
        n++;
    return n == STORE_INSTALLATION_ID_SIZE - 1 && s[n] == '\0';
}

bool store_valid_label(const char *s) {
    if (s == NULL || s[0] == '-')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n + 1 >= STORE_LABEL_SIZE || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return n > 0 && s[n - 1] != '-';
}

bool store_valid_thumbprint(const char *s) {
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n + 1 >= STORE_THUMBPRINT_SIZE ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return n == STORE_THUMBPRINT_SIZE - 1;
}

bool store_valid_txt(const char *s) {
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n + 1 >= STORE_TXT_SIZE || c <= ' ' || c >= 0x7f || c == '/')
            return false;
    }
    return n > 0;
}

int store_kvp_key(char *out, size_t len, store_kvp_kind_t kind, const char *label, const char *txt) {
    static const char *const prefix[] = {
        [STORE_KVP_NAME] = "n/", [STORE_KVP_A] = "a/", [STORE_KVP_AAAA] = "aaaa/", [STORE_KVP_TXT] = "t/"};
    if ((unsigned)kind > STORE_KVP_TXT || !store_valid_label(label) || (kind == STORE_KVP_TXT && !store_valid_txt(txt)))
        return -1;
    int n = kind == STORE_KVP_TXT ? snprintf(out, len, "t/%s/%s", label, txt)
                                  : snprintf(out, len, "%s%s", prefix[kind], label);
    return n > 0 && (size_t)n < len ? 0 : -1;
}
