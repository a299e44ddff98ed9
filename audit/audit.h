/* audit: one signed, hash-chained, per-tenant numbered record per key
 * operation that passed authentication, durable before the answer leaves.
 * The format is audit/FORMAT.md.
 *
 * audit_record() blocks (HSM signature, file writes, fsync): call it on a
 * worker thread. Concurrent calls share fsyncs (group commit): within a
 * tenant, records are signed in chain order, and one caller writes all the
 * records waiting at that moment (temporary files, fsync, rename in order,
 * one directory fsync) while the others wait for it. If writing fails, the
 * call fails (no audit, no secret) and the chain goes back to its last
 * durable record, so numbers have no gap and are never reused.
 * Nothing here may hold a secret: RSA keys appear as fingerprints, blobs as
 * hashes. */
#ifndef SKD_AUDIT_H
#define SKD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "../hsm/hsm.h"

typedef struct audit audit_t;

typedef struct audit_event {
    const char *tenant_id;     /* vpc_id */
    const char *account_id;
    const char *caller_type;   /* "instance" */
    const char *caller_id;     /* instance id from the path */
    const char *caller_ip;
    const char *call_name;     /* "generate-secret", ... */
    const char *volume_uuid;   /* NULL when the body had none */
    const char *source_instance_id; /* convert-secret only */
    char rsa_key_sha256[65];   /* hex, "" when the call has no RSA key */
    char blob_sha256[2][65];   /* encrypted_secret, wrapped_secret: hex, "" when none */
    const char *result;        /* "Succeed" or "Failed" */
    const char *failure_reason; /* NULL on success */
    uint64_t op_start_us;      /* wall clock, microseconds since the epoch */
    uint64_t op_end_us;
} audit_event_t;

/* Records go under dir/<tenant>/. Tenants' chains are recovered from disk
 * at their first record. hsm signs; node names this skd in records. */
audit_t *audit_open(const char *dir, hsm_t *hsm, char *err, size_t err_len);
void audit_close(audit_t *a);

/* Recovers and checks the chain of every tenant directory now (needs the
 * HSM's keys loaded). Returns the number of damaged chains (logged; their
 * tenants' calls fail until an operator repairs them). Blocks. */
int audit_recover_all(audit_t *a);

/* Makes ev durable (also under tenant_dir/<tenant>/ when tenant_dir is not
 * NULL); sets *seq. 0, or -1 if the record could not be made durable: the
 * call must then fail. */
int audit_record(audit_t *a, const audit_event_t *ev, const char *tenant_dir, uint64_t *seq);

#endif
