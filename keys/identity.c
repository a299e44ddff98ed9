#include "identity.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <stdio.h>
#include <string.h>

#include "../common/base64.h"
#include "../common/cidr.h"

int identity_load(identity_verifier_t *v, const char *pem_path, char *err, size_t err_len) {
    v->signers = sk_X509_new_null();
    FILE *f = fopen(pem_path, "r");
    if (!v->signers || !f) {
        snprintf(err, err_len, "cannot read signer certificates %s", pem_path);
        if (f)
            fclose(f);
        identity_free(v);
        return -1;
    }
    X509 *cert;
    while ((cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(v->signers, cert);
    fclose(f);
    ERR_clear_error(); /* the read that ended the loop */
    if (sk_X509_num(v->signers) == 0) {
        snprintf(err, err_len, "no certificate in %s", pem_path);
        identity_free(v);
        return -1;
    }
    return 0;
}

void identity_free(identity_verifier_t *v) {
    sk_X509_pop_free(v->signers, X509_free);
    v->signers = NULL;
}

static bool field_is(json_t *doc, const char *name, const char *want) {
    const char *got = json_string_value(json_object_get(doc, name));
    return got && strcmp(got, want) == 0;
}

int identity_verify(const identity_verifier_t *v, const char *document_b64, const char *signature_b64,
                    const identity_claim_t *claim, char *reason, size_t reason_len) {
    if (!document_b64 || !signature_b64) {
        snprintf(reason, reason_len, "no identity document");
        return -1;
    }
    buf_t doc, sig;
    buf_init(&doc, 0);
    buf_init(&sig, 0);
    int rc = -1;
    PKCS7 *p7 = NULL;
    BIO *content = NULL;
    json_t *json = NULL;
    if (base64_decode(document_b64, strlen(document_b64), &doc) != 0 ||
        base64_decode(signature_b64, strlen(signature_b64), &sig) != 0) {
        snprintf(reason, reason_len, "identity document or signature not base64");
        goto done;
    }
    const unsigned char *p = (const unsigned char *)sig.data;
    p7 = d2i_PKCS7(NULL, &p, (long)sig.len);
    content = BIO_new_mem_buf(doc.data, (int)doc.len);
    /* Only the configured signers count (NOINTERN); they are trusted as
     * configured, so no chain is built (NOVERIFY). */
    if (!p7 || !content ||
        PKCS7_verify(p7, v->signers, NULL, content, NULL, PKCS7_NOINTERN | PKCS7_NOVERIFY | PKCS7_BINARY) != 1) {
        ERR_clear_error();
        snprintf(reason, reason_len, "identity document signature does not verify");
        goto done;
    }
    json_error_t jerr;
    json = json_loadb(doc.data, doc.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *ip_text = json_string_value(json_object_get(json, "privateIp"));
    char ip[64];
    if (!json_is_object(json) || !ip_text || ip_normalize(ip_text, ip, sizeof ip) != 0) {
        snprintf(reason, reason_len, "identity document unreadable");
        goto done;
    }
    if (!field_is(json, "instanceId", claim->instance_id))
        snprintf(reason, reason_len, "identity document is for another instance");
    else if (strcmp(ip, claim->ip) != 0)
        snprintf(reason, reason_len, "identity document names another address");
    else if (!field_is(json, "accountId", claim->account_id))
        snprintf(reason, reason_len, "identity document is from another account");
    else
        rc = 0;
done:
    json_decref(json);
    BIO_free(content);
    PKCS7_free(p7);
    buf_free(&doc);
    buf_free(&sig);
    return rc;
}
