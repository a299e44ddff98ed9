/* audit: one event per key operation that passed authentication.
 *
 * Handlers fill an audit_event_t and hand it to audit_record() on the worker
 * thread that did the operation, before the answer goes out. This is the
 * interface only: the audit issue makes records signed, hash-chained,
 * sequenced per tenant and durable (and audit_record() may then fail, which
 * fails the call). Until then events go to the operational log. Nothing
 * here may hold a secret: RSA keys appear as fingerprints, blobs as hashes. */
#ifndef SKD_AUDIT_H
#define SKD_AUDIT_H

#include <stdint.h>

typedef struct audit_event {
    const char *tenant_id;     /* vpc_id */
    const char *account_id;
    const char *caller_type;   /* "instance" */
    const char *caller_id;     /* instance id from the path */
    const char *caller_ip;
    const char *call_name;     /* "generate-secret", ... */
    const char *volume_uuid;
    const char *source_instance_id; /* convert-secret only */
    char rsa_key_sha256[65];   /* hex, "" when the call has no RSA key */
    char blob_sha256[2][65];   /* hex of returned blobs, "" when none */
    const char *result;        /* "Succeed" or "Failed" */
    const char *failure_reason; /* NULL on success */
    uint64_t op_start_us;      /* wall clock, microseconds since the epoch */
    uint64_t op_end_us;
} audit_event_t;

/* Records ev; returns 0, or -1 if it could not be made durable (the call
 * must then fail). Called on a worker thread. */
int audit_record(const audit_event_t *ev);

#endif
