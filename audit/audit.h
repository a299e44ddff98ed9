/* audit: one signed, hash-chained, per-tenant numbered record per key
 * operation that passed authentication, durable before the answer leaves.
 * The format is audit/FORMAT.md.
 *
 * audit_submit() signs the event (unless another thread is signing for the
 * tenant: then it only queues it) and returns without waiting for the disk,
 * so that a worker goes back to the HSM: records are signed per tenant in
 * chain order (tenants in parallel), a writer thread (below the workers'
 * priority, so that its batches grow when the CPUs are busy) makes them
 * durable in batches (audit/files.h: temporary files written and synced,
 * renamed in order, one directory fsync per tenant and batch), and the
 * outcome comes back on the loop thread. If writing fails,
 * the call fails (no audit, no secret) and the chain goes back to its last
 * durable record, so numbers have no gap and are never reused.
 * Nothing here may hold a secret: RSA keys appear as fingerprints, blobs as
 * hashes. */
#ifndef SKD_AUDIT_H
#define SKD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

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
 * at their first record. hsm signs; node names this skd in records;
 * outcomes run on loop. */
audit_t *audit_open(const char *dir, hsm_t *hsm, uv_loop_t *loop, char *err, size_t err_len);
/* After the loop has stopped: records already submitted are still written,
 * and their outcomes run here. */
void audit_close(audit_t *a);

/* Recovers and checks the chain of every tenant directory now (needs the
 * HSM's keys loaded). Returns the number of damaged chains (logged; their
 * tenants' calls fail until an operator repairs them). Blocks. */
int audit_recover_all(audit_t *a);

/* What the writer has done so far. Any thread. */
typedef struct audit_counters {
    uint64_t records_written;
    uint64_t batches_written;
    uint64_t records_failed; /* could not be signed or written: their calls failed */
} audit_counters_t;
void audit_get_counters(audit_t *a, audit_counters_t *out);

/* On the loop thread: status 0 once the record is durable (seq is its
 * number), -1 if it could not be made durable: the call must then fail. */
typedef void (*audit_done_fn)(int status, uint64_t seq, void *arg);

/* Makes ev durable (also under tenant_dir/<tenant>/ when tenant_dir is not
 * NULL), then calls done. Any thread; ev must stay valid until done runs.
 * Returns -1 (and done is not called) when the event cannot be queued. */
int audit_submit(audit_t *a, const audit_event_t *ev, const char *tenant_dir, audit_done_fn done, void *arg);

#endif
