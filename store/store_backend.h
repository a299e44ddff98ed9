/* store_backend: what a store backend implements (internal to store/).
 *
 * store.c validates and normalizes every argument before calling a backend,
 * so a backend receives well-formed ids, canonical networks and IPs, and
 * sizes within limits. A backend struct starts with a store_t. */
#ifndef SKD_STORE_BACKEND_H
#define SKD_STORE_BACKEND_H

#include "store.h"

typedef struct store_ops {
    void (*close)(store_t *s);
    int (*tenant_add)(store_t *s, const store_tenant_t *t);
    /* out is zeroed on entry; on failure the backend leaves nothing allocated. */
    int (*tenant_get)(store_t *s, const char *id, store_tenant_t *out);
    int (*tenant_list)(store_t *s, store_tenant_t **out, size_t *n);
    int (*tenant_set_ekt_if_absent)(store_t *s, const char *tenant_id, const uint8_t *ekt,
                                    size_t len);
    int (*instance_add)(store_t *s, const char *tenant_id, const char *instance_id,
                        const char *ip, int64_t created_at);
    int (*instance_get)(store_t *s, const char *tenant_id, const char *instance_id,
                        char *ip_out, size_t ip_len);
    int (*instance_remove)(store_t *s, const char *tenant_id, const char *instance_id);
    /* inst->created_at is set; on STORE_EXISTS the backend copies the
     * existing installation's id, label and created_at into inst. */
    int (*installation_add)(store_t *s, store_installation_t *inst);
    /* out is zeroed on entry (it may be NULL for remove); on failure the
     * backend leaves nothing allocated. */
    int (*installation_get)(store_t *s, const char *id, store_installation_t *out);
    int (*installation_remove)(store_t *s, const char *id, store_installation_t *removed);
    /* family is 4 or 6; ip is canonical. */
    int (*installation_set_address)(store_t *s, const char *id, int family, const char *ip, int64_t now);
    int (*challenge_add)(store_t *s, const char *id, const char *value, int64_t now);
    /* value NULL: all; removed may be NULL. */
    int (*challenge_remove)(store_t *s, const char *id, const char *value, store_txt_list_t *removed);
    /* out is zeroed on entry; the backend fills it sorted by key. */
    int (*kvp_list)(store_t *s, store_kvp_list_t *out);
} store_ops_t;

struct store {
    const store_ops_t *ops;
};

/* Sets this thread's store_last_error() message and returns rc. */
int store_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
