/* store: the tenants and instances skd knows, each tenant's EKT, and the
 * installations of the certificate pipeline (names, addresses, ACME
 * challenge values) with the key/value pairs skd pushes to the DNS servers.
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
#define STORE_CONFLICT 3 /* a unique name (an installation's label) is taken */
#define STORE_LIMIT 4    /* a per-installation limit is reached */

/* Buffer sizes, terminating NUL included. */
#define STORE_TENANT_ID_SIZE 22   /* "vpc-" + 17 hex */
#define STORE_INSTANCE_ID_SIZE 20 /* "i-" + 17 hex */
#define STORE_ACCOUNT_ID_SIZE 13  /* 12 digits */
#define STORE_IP_SIZE 46          /* INET6_ADDRSTRLEN */
#define STORE_NETWORKS_MAX 64     /* networks per tenant */
#define STORE_NETWORKS_TEXT_SIZE 4096
#define STORE_AUDIT_DIR_SIZE 4096
#define STORE_EKT_MAX 4096 /* bytes */
#define STORE_INSTALLATION_ID_SIZE 33 /* 32 lowercase hex digits */
#define STORE_LABEL_SIZE 64           /* a DNS label: 1..63 of [a-z0-9-] */
#define STORE_THUMBPRINT_SIZE 44      /* RFC 7638 SHA-256 thumbprint, base64url */
#define STORE_JWK_MAX 1024            /* bytes of the JWK's JSON text */
#define STORE_METADATA_MAX 2048       /* bytes of the metadata's JSON text */
#define STORE_TXT_SIZE 256            /* a TXT (challenge) value: 1..255 bytes */
#define STORE_CHALLENGES_MAX 8        /* TXT values per installation at once */
#define STORE_KVP_KEY_SIZE 321        /* the contract's longest key is 320 bytes */

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

/* ---- installations (certificate pipeline) ----
 *
 * An installation registered a P-256 key (its JWK and RFC 7638 thumbprint)
 * and got a unique DNS label; it may set one IPv4 and one IPv6 address and up
 * to STORE_CHALLENGES_MAX TXT values for _acme-challenge.<label>. Removing it
 * removes its addresses and values. */

typedef struct store_txt_list {
    char values[STORE_CHALLENGES_MAX][STORE_TXT_SIZE];
    size_t n;
} store_txt_list_t;

/* Ownership: for store_installation_add the store only reads jwk and
 * metadata. Filled by the store, jwk and metadata are malloc'd: release them
 * with store_installation_clear. */
typedef struct store_installation {
    char id[STORE_INSTALLATION_ID_SIZE];
    char label[STORE_LABEL_SIZE];
    char thumbprint[STORE_THUMBPRINT_SIZE];
    char *jwk;      /* the public key's JSON text */
    char *metadata; /* a JSON object's text; NULL: none */
    int64_t created_at; /* Unix seconds; set by store_installation_add */
    char ipv4[STORE_IP_SIZE]; /* "": none */
    char ipv6[STORE_IP_SIZE];
    store_txt_list_t challenges; /* ordered by value */
} store_installation_t;

/* Adds inst (id, label, thumbprint, jwk, metadata; the rest is ignored).
 * STORE_EXISTS if an installation has that thumbprint already: inst's id,
 * label and created_at are then overwritten with the existing one's.
 * STORE_CONFLICT if the label (or the id) is taken. */
int store_installation_add(store_t *s, store_installation_t *inst);
/* Everything about one installation; STORE_NOT_FOUND if none. On success
 * out owns jwk and metadata (store_installation_clear). */
int store_installation_get(store_t *s, const char *id, store_installation_t *out);
/* Removes the installation with its addresses and values, atomically;
 * removed (may be NULL) receives what it held, as store_installation_get
 * would have. STORE_NOT_FOUND if none. */
int store_installation_remove(store_t *s, const char *id, store_installation_t *removed);
/* Frees the owned fields and zeroes *inst. */
void store_installation_clear(store_installation_t *inst);

/* Sets the installation's IPv4 or IPv6 address (by the address's family;
 * normalized with ip_normalize); the other family's is kept. STORE_NOT_FOUND
 * if no such installation. */
int store_installation_set_address(store_t *s, const char *id, const char *ip);

/* Adds a TXT value: 0 if added or already there; STORE_LIMIT if the
 * installation holds STORE_CHALLENGES_MAX values already; STORE_NOT_FOUND if
 * no such installation. Atomic across threads and processes. */
int store_challenge_add(store_t *s, const char *id, const char *value);
/* Removes one value, or every value if value is NULL; removed (may be NULL)
 * receives the values actually removed (none is not an error).
 * STORE_NOT_FOUND if no such installation. */
int store_challenge_remove(store_t *s, const char *id, const char *value, store_txt_list_t *removed);

/* The key/value pairs of the DNS servers (the kvpsync keys of
 * ../notes/pipeline_contract.md, built by store_kvp_key) for every
 * installation, read in one snapshot and sorted by key (bytewise). keys[i]
 * and vals[i] are NUL-terminated and point into one allocation. */
typedef struct store_kvp_list {
    const char **keys;
    const char **vals;
    size_t n;
    char *arena;
} store_kvp_list_t;

int store_kvp_list(store_t *s, store_kvp_list_t *out);
void store_kvp_list_free(store_kvp_list_t *list);

typedef enum store_kvp_kind {
    STORE_KVP_NAME, /* "n/<label>"        = ""                   */
    STORE_KVP_A,    /* "a/<label>"        = "192.0.2.7"          */
    STORE_KVP_AAAA, /* "aaaa/<label>"     = "2001:db8::7"        */
    STORE_KVP_TXT,  /* "t/<label>/<txt>"  = ""                   */
} store_kvp_kind_t;

/* Writes the key of one record into out (STORE_KVP_KEY_SIZE is enough); txt
 * only for STORE_KVP_TXT. 0, or -1 if label or txt is not valid or the key
 * would pass the contract's 320 bytes (a 63-byte label with a 255-byte value). */
int store_kvp_key(char *out, size_t len, store_kvp_kind_t kind, const char *label, const char *txt);

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
/* 32 lowercase hex digits. */
bool store_valid_installation_id(const char *s);
/* 1..63 of [a-z0-9-], neither first nor last '-'. */
bool store_valid_label(const char *s);
/* 43 base64url characters (a SHA-256 digest). */
bool store_valid_thumbprint(const char *s);
/* 1..255 printable ASCII bytes, no space and no '/'. */
bool store_valid_txt(const char *s);

#endif
