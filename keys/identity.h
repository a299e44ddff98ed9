/* identity: the identity-document instance verifier.
 *
 * The caller sends its AWS-style instance identity document (JSON, base64) in
 * X-Instance-Identity-Document and the document's detached PKCS#7 signature
 * (DER, base64) in X-Instance-Identity-Signature, as an EC2 instance reads
 * them from its metadata service. The signature must come from one of the
 * configured signer certificates ([identity] signer_certs), and the document
 * must name the instance in the path, the caller's address and the tenant's
 * account. Thread-safe once loaded (read-only). */
#ifndef SKD_IDENTITY_H
#define SKD_IDENTITY_H

#include <openssl/x509.h>
#include <stddef.h>

#define IDENTITY_DOCUMENT_HEADER "X-Instance-Identity-Document"
#define IDENTITY_SIGNATURE_HEADER "X-Instance-Identity-Signature"

typedef struct identity_verifier {
    STACK_OF(X509) *signers;
} identity_verifier_t;

/* Loads every certificate of a PEM file. 0, or -1 with the reason in err. */
int identity_load(identity_verifier_t *v, const char *pem_path, char *err, size_t err_len);
void identity_free(identity_verifier_t *v);

typedef struct identity_claim {
    const char *instance_id; /* from the path */
    const char *ip;          /* the caller's address, normalized */
    const char *account_id;  /* the tenant's */
} identity_claim_t;

/* 0 if the document is signed by a configured signer and matches claim;
 * -1 with the reason (for the security log) otherwise. */
int identity_verify(const identity_verifier_t *v, const char *document_b64, const char *signature_b64,
                    const identity_claim_t *claim, char *reason, size_t reason_len);

#endif
