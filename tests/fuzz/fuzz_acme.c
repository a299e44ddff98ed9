/* The ACME machine fed arbitrary answers from the CA: the input is a
 * sequence of records (status byte, length byte, body), each answering
 * whatever the machine asks; challenges and keys are granted at once.
 * The first byte picks the operation and options. Nothing may crash,
 * leak or loop. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../acme/acme.h"
#include "../support/acme_test_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const int STATUSES[] = {200, 201, 204, 400, 403, 404, 429, 500, 503};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static EVP_PKEY *key, *new_key;
    if (!key) {
        key = acme_key_new_p256();
        new_key = acme_key_new_p256();
    }
    static const char *names[] = {"a.sk.test", "b.sk.test"};
    /* Bits 1-2 of the first byte: the operation (issue, revoke, keyChange, renewalInfo). */
    acme_op_t op = size ? (acme_op_t)((data[0] >> 1) & 3) : ACME_OP_ISSUE;
    acme_config_t cfg = {.directory_url = "https://ca.test/dir", .account_key = key, .names = names, .nnames = 2,
                         .order_url = size && (data[0] & 1) ? "https://ca.test/o/1" : NULL,
                         .op = op,
                         .account_url = op == ACME_OP_ISSUE ? NULL : "https://ca.test/a/1",
                         .cert_pem = ACME_TEST_CERT_PEM,
                         .cert_pem_len = sizeof ACME_TEST_CERT_PEM - 1,
                         .new_account_key = new_key,
                         .eab_kid = size && (data[0] & 8) ? "kid" : NULL,
                         .eab_hmac_key = "c2VjcmV0"};
    acme_t m;
    if (acme_init(&m, &cfg) < 0) {
        acme_free(&m);
        return 0;
    }
    acme_action_t a;
    uint64_t now = 0;
    acme_advance(&m, NULL, now, &a);
    size_t off = size ? 1 : 0;
    for (int steps = 0; steps < 200; steps++) {
        acme_input_t in = {.kind = ACME_IN_NONE};
        char body[256 + 1];
        switch (a.kind) {
        case ACME_ACT_REQUEST: {
            if (off + 2 > size)
                goto out;
            size_t len = data[off + 1];
            if (off + 2 + len > size)
                len = size - off - 2;
            memcpy(body, data + off + 2, len);
            body[len] = 0;
            in.kind = ACME_IN_RESPONSE;
            in.response = (acme_response_t){.status = STATUSES[data[off] % 9],
                                            .replay_nonce = data[off] & 0x10 ? "fuzznonce" : NULL,
                                            .location = data[off] & 0x20 ? "https://ca.test/loc" : NULL,
                                            .retry_after = data[off] & 0x40 ? "1" : NULL,
                                            .body = body,
                                            .body_len = len,
                                            .wall = 1};
            off += 2 + len;
            break;
        }
        case ACME_ACT_WAIT:
            now = a.wake_at;
            break;
        case ACME_ACT_SET_CHALLENGES:
            in.kind = ACME_IN_CHALLENGES_SET;
            in.ok = true;
            break;
        case ACME_ACT_NEED_KEY:
            in.kind = ACME_IN_KEY;
            in.key = key;
            break;
        case ACME_ACT_DONE:
        case ACME_ACT_FAILED:
            goto out;
        default:
            break;
        }
        acme_advance(&m, &in, now, &a);
    }
out:
    acme_free(&m);
    return 0;
}
