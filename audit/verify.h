/* verify: checks audit records against audit/FORMAT.md.
 *
 * The verification core of "sk audit verify", usable by tests and by skd:
 * given an audit directory (one subdirectory per tenant, one file
 * NNNNNNNNN.json per record) and the signing public key, it walks every
 * tenant in name order and every record in number order and stops at the
 * first record that does not verify, with its tenant, file and a precise
 * reason. Records are read one at a time (memory does not grow with their
 * number); signatures are checked by a few threads in batches, and the
 * reported failure is still the first one in walking order.
 *
 * Checks, in this order, for each tenant directory:
 *   - entries: NNNNNNNNN.json (9 digits, a regular file); *.json.tmp is
 *     ignored (a crash leftover); anything else is "unexpected file";
 *   - numbering: 1, 2, 3, ... with no gap;
 * and for each record:
 *   - at most AUDIT_RECORD_MAX bytes; JSON (jansson, duplicate keys refused);
 *   - only objects, strings of printable ASCII (0x20-0x7e), integers of at
 *     most 2^53-1 in magnitude and null, nested at most AUDIT_MAX_DEPTH deep:
 *     for these, jansson's JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII
 *     output is byte for byte what "jq -cjS ." prints;
 *   - the file is exactly that canonical form followed by one newline;
 *   - event_version 2, vpc_id the directory's name, vpc_op_seq_num the
 *     file's number, prev_hash 64 lowercase hex digits, signature base64;
 *   - the signature (DER ECDSA) verifies over SHA-256 of the canonical form
 *     without "signature";
 *   - prev_hash is 64 zeros for record 1, else the SHA-256 of the previous
 *     record's canonical form. */
#ifndef SKD_AUDIT_VERIFY_H
#define SKD_AUDIT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define AUDIT_RECORD_MAX (1024 * 1024)
#define AUDIT_MAX_DEPTH 32

enum {
    AUDIT_VERIFY_OK = 0,      /* every record verifies */
    AUDIT_VERIFY_FAILED = 1,  /* a record (or entry) does not: see the failure */
    AUDIT_VERIFY_ERROR = -1,  /* the audit directory itself could not be read, or out of memory */
};

/* Where and why verification stopped. Names are copied with every byte
 * outside printable ASCII replaced by '?', so that they print on one line. */
typedef struct audit_verify_failure {
    char tenant[256]; /* "" when about the audit directory itself */
    char file[256];   /* "" when about the tenant directory (or a stray top-level entry in tenant) */
    char reason[512];
} audit_verify_failure_t;

/* One tenant that verified completely. */
typedef struct audit_verify_tenant {
    const char *tenant;   /* the directory's name */
    uint64_t records;     /* records 1..records verified; 0 for an empty directory */
    char last_hash[65];   /* hex SHA-256 of the last record's canonical form (the next prev_hash) */
} audit_verify_tenant_t;

typedef void (*audit_verify_tenant_fn)(const audit_verify_tenant_t *t, void *arg);

typedef struct audit_verify_opts {
    unsigned threads;               /* signature threads; 0: one per online CPU */
    audit_verify_tenant_fn on_tenant; /* may be NULL; called in order, after each verified tenant */
    void *arg;
} audit_verify_opts_t;

typedef struct audit_verify_summary {
    uint64_t tenants;
    uint64_t records;
} audit_verify_summary_t;

/* Reads a PEM public key ("BEGIN PUBLIC KEY") that must be EC P-384.
 * Returns NULL with a message in err on failure. */
EVP_PKEY *audit_verify_load_pubkey(const char *pem_path, char *err, size_t errlen);

/* Verifies every tenant subdirectory of dir. opts may be NULL. Returns
 * AUDIT_VERIFY_OK (sum filled), AUDIT_VERIFY_FAILED (fail filled; sum
 * counts what verified before) or AUDIT_VERIFY_ERROR (fail->reason says
 * why). */
int audit_verify_dir(const char *dir, EVP_PKEY *pub, const audit_verify_opts_t *opts, audit_verify_summary_t *sum,
                     audit_verify_failure_t *fail);

/* Verifies one tenant directory whose records must carry vpc_id tenant
 * (skd at start-up: out->records and out->last_hash continue the chain).
 * Same return values; an unreadable directory is AUDIT_VERIFY_FAILED. */
int audit_verify_tenant_dir(const char *path, const char *tenant, EVP_PKEY *pub, const audit_verify_opts_t *opts,
                            audit_verify_tenant_t *out, audit_verify_failure_t *fail);

/* Verifies one record held in memory (text, len: the file's bytes) as
 * record seq of tenant, following the record whose canonical hash is
 * prev_hash (hex; NULL or 64 zeros for record 1). On success returns
 * AUDIT_VERIFY_OK and, if hash is not NULL, writes the record's own hex
 * hash; else AUDIT_VERIFY_FAILED with reason. */
int audit_verify_record(const char *text, size_t len, const char *tenant, uint64_t seq, const char *prev_hash,
                        EVP_PKEY *pub, char hash[65], char *reason, size_t reasonlen);

#endif
