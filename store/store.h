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

/* ip is normalized (store_normalize_ip). STORE_EXISTS if the instance is
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

/* Networks and addresses (store_net.c). */
typedef struct store_network {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits zero; AF_INET uses 4 bytes */
    unsigned prefix;  /* 0..32 or 0..128 */
} store_network_t;

/* Parses one or more CIDRs separated by commas, spaces around them allowed:
 * "10.0.0.0/8, fd00::/8". Each needs its prefix length and no host bits set.
 * At most max entries (STORE_NETWORKS_MAX for a tenant). 0, or -1 with the
 * reason in err. */
int store_parse_networks(const char *text, store_network_t *out, size_t max, size_t *n, char *err,
                         size_t err_len);
/* store_parse_networks with a tenant's limits, for yes/no checks. */
bool store_valid_networks(const char *text);
/* Canonical text: "10.0.0.0/8,fd00::/8". 0, or -1 if out is too small. */
int store_format_networks(const store_network_t *nets, size_t n, char *out, size_t out_len);
/* Whether addr (4 or 16 bytes in network order, per family) lies in net.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 networks, as
 * dual-stack sockets report IPv4 peers that way. */
bool store_network_contains(const store_network_t *net, int family, const void *addr);
/* Canonical text of an IPv4 or IPv6 address (inet_ntop form; an
 * IPv4-mapped IPv6 address becomes plain IPv4). 0, or -1 if in is not an
 * address or out is too small (STORE_IP_SIZE is enough). */
int store_normalize_ip(const char *in, char *out, size_t out_len);

#endif
