/* store: the tenants and instances skd knows, and each tenant's EKT.
 *
 * A backend-neutral interface (store_backend.h has the function table a
 * backend implements); SQLite is the embedded backend, PostgreSQL may follow.
 *
 * Every store_* call that touches the database BLOCKS: call it from worker
 * threads, never from the loop thread. Calls are thread-safe; a store_t may be
 * used from any number of threads at once, except store_close, which must
 * come after every other call has returned.
 *
 * Return values: 0 on success, STORE_NOT_FOUND or STORE_EXISTS where the
 * function says so, -1 on an invalid argument or a storage failure. After
 * any non-zero return, store_last_error() gives a one-line message.
 *
 * Inputs are validated here (whatever the backend): ids, account, networks,
 * IP addresses. Networks and IPs are stored in canonical text form. */
#ifndef SKD_STORE_H
#define SKD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/cidr.h"

#define STORE_NOT_FOUND 1
#define STORE_EXISTS 2

/* Buffer sizes, terminating NUL included. */
#define STORE_TENANT_ID_SIZE 22   /* "vpc-" + 17 hex */
#define STORE_INSTANCE_ID_SIZE 20 /* "i-" + 17 hex */
#define STORE_ACCOUNT_ID_SIZE 13  /* 12 digits */
#define STORE_IP_SIZE 46          /* INET6_ADDRSTRLEN */
#define STORE_NETWORKS_MAX 64     /* networks per tenant */
#define STORE_NETWORKS_TEXT_SIZE 4096
#define STORE_AUDIT_DIR_SIZE 4096
#define STORE_EKT_MAX 4096 /* bytes */

typedef struct store store_t;

typedef enum store_verifier {
    STORE_VERIFIER_REGISTRY = 0,          /* "registry" */
    STORE_VERIFIER_IDENTITY_DOCUMENT = 1, /* "identity-document" */
} store_verifier_t;

/* One tenant. Ownership: for store_tenant_add the store only reads the
 * pointers (they may point anywhere). A tenant filled by store_tenant_get or
 * store_tenant_list owns networks, audit_dir and ekt (malloc'd); release them
 * with store_tenant_clear. */
typedef struct store_tenant {
    char id[STORE_TENANT_ID_SIZE];
    char account_id[STORE_ACCOUNT_ID_SIZE];
    store_verifier_t verifier;
    char *networks;     /* "10.0.0.0/8,fd00::/8": canonical when read back */
    char *audit_dir;    /* NULL: none registered */
    char *endpoints;    /* "vpce-...,vpce-..." its callers come through; NULL: none */
    uint8_t *ekt;       /* the wrapped CMK; NULL: none yet */
    size_t ekt_len;
    int64_t created_at; /* Unix seconds; set by store_tenant_add, input ignored */
} store_tenant_t;

/* Thread-local: the message of this thread's last failed store_* call. */
const char *store_last_error(void);

/* Opens (creating the file, not its directory, with mode 0600 if missing) and
 * migrates the SQLite store at path. NULL on failure, with the reason in err
 * (and in store_last_error()); a database written by a newer skd is refused. */
store_t *store_open_sqlite(const char *path, char *err, size_t err_len);
/* Closes every connection and frees the store; NULL is fine. */
void store_close(store_t *s);

/* STORE_EXISTS if a tenant with that id exists. */
int store_tenant_add(store_t *s, const store_tenant_t *t);
/* STORE_NOT_FOUND if none; on success out owns its fields (store_tenant_clear). */
int store_tenant_get(store_t *s, const char *id, store_tenant_t *out);
/* Every tenant ordered by id; *out is NULL when there are none. Free with
 * store_tenant_list_free. */
int store_tenant_list(store_t *s, store_tenant_t **out, size_t *n);
void store_tenant_list_free(store_tenant_t *list, size_t n);
/* Frees the owned fields and zeroes *t. */
void store_tenant_clear(store_tenant_t *t);

/* Sets the tenant's EKT only if it has none, atomically: 0 if this call set
 * it; STORE_EXISTS if one was already there (re-read it with
 * store_tenant_get); STORE_NOT_FOUND if no such tenant. Of any number of
 * concurrent callers (threads or processes), exactly one gets 0. */
int store_tenant_set_ekt_if_absent(store_t *s, const char *tenant_id, const uint8_t *ekt,
                                   size_t len);

/* ip is normalized (ip_normalize). STORE_EXISTS if the instance is
 * already registered for the tenant; STORE_NOT_FOUND if no such tenant. */
int store_instance_add(store_t *s, const char *tenant_id, const char *instance_id,
                       const char *ip);
/* Writes the instance's IP into ip_out (STORE_IP_SIZE is enough);
 * STORE_NOT_FOUND if not registered. */
int store_instance_get(store_t *s, const char *tenant_id, const char *instance_id, char *ip_out,
                       size_t ip_len);
/* STORE_NOT_FOUND if not registered. */
int store_instance_remove(store_t *s, const char *tenant_id, const char *instance_id);

/* Validation, shared with the CLI and the API (store_valid.c). */
bool store_valid_tenant_id(const char *s);   /* "vpc-" + 8 or 17 lowercase hex */
bool store_valid_instance_id(const char *s); /* "i-" + 8 or 17 lowercase hex */
bool store_valid_account_id(const char *s);  /* 12 digits */
/* Non-empty, shorter than STORE_AUDIT_DIR_SIZE, no control characters. */
bool store_valid_audit_dir(const char *s);
/* "registry" or "identity-document"; 0, or -1 for anything else. */
int store_verifier_parse(const char *s, store_verifier_t *out);
/* The text form; NULL for a value out of range. */
const char *store_verifier_name(store_verifier_t v);

/* cidr_parse_list() with a tenant's limits, for yes/no checks. */
bool store_valid_networks(const char *text);
/* "vpce-" + 8 or 17 lowercase hex, comma-separated, at most 16; NULL is fine. */
bool store_valid_endpoints(const char *s);
/* Whether the comma-separated list holds id. */
bool store_endpoints_contain(const char *list, const char *id);

#endif
