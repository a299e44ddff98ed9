/* Internals shared by the files of hsm/. */
#ifndef SKD_HSM_INTERNAL_H
#define SKD_HSM_INTERNAL_H

#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdbool.h>

#include "hsm.h"

#define HSM_LABEL_DOMAIN "skd-domain-key"
#define HSM_LABEL_SIGNING "skd-signing-key"
#define HSM_LABEL_CONFIG "skd-config"

struct hsm {
    CK_FUNCTION_LIST *p11;
    CK_SLOT_ID slot;
    pthread_mutex_t lock; /* guards idle sessions */
    CK_SESSION_HANDLE *idle;
    size_t nidle, idle_cap;
    bool logged_in;
    bool keys_loaded;
    CK_OBJECT_HANDLE domain_key;
    CK_OBJECT_HANDLE signing_key;
    buf_t public_key_der;
    hsm_profile_t profile;
    hsm_oaep_t oaep;
};

/* Borrows a session (opening one if none is idle); gives it back. */
CK_RV hsm_session_get(hsm_t *h, CK_SESSION_HANDLE *s);
void hsm_session_put(hsm_t *h, CK_SESSION_HANDLE s);
/* Destroys a session object if set; handles are reset to 0. */
void hsm_destroy(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *obj);
/* Imports an RSA public key (SPKI DER, 3072..8192 bits, e = 65537) as a session object for wrapping. */
hsm_status_t hsm_import_rsa(hsm_t *h, CK_SESSION_HANDLE s, const void *spki, size_t len, CK_OBJECT_HANDLE *key);
/* C_WrapKey with RSA-OAEP (the token's hash) into out. */
CK_RV hsm_wrap_oaep(hsm_t *h, CK_SESSION_HANDLE s, hsm_oaep_t oaep, CK_OBJECT_HANDLE rsa, CK_OBJECT_HANDLE key,
                    buf_t *out);
const char *hsm_rv_name(CK_RV rv);

#endif
