/* nonce: the anti-replay nonces of the installations API (ACME's
 * Replay-Nonce, RFC 8555 section 6.5), sans-IO, on the loop thread.
 *
 * Design: a nonce authenticates itself instead of sitting in a table:
 *
 *   nonce = b64url(seq (8 bytes) || issued_ms (8) || HMAC-SHA256(key, seq || issued_ms)[:16])
 *
 * with key random per process and seq a per-process counter. Issuing costs
 * no memory, so a flood of GET /api/v1/nonce cannot push out the nonces
 * honest clients hold (as it would in a bounded table of issued nonces).
 * Single use is a bitmap of the last `window` sequence numbers: a nonce is
 * refused once used, once older than the lifetime, or once more than
 * `window` nonces were issued after it (its bit slot is reused), so the
 * memory is fixed (NONCE_WINDOW bits: 128 KiB) whatever the load.
 *
 * Several skd nodes share nothing here: a nonce from another node (another
 * key) is refused as badNonce with a fresh nonce of this node, and clients
 * retry (ACME clients do; a load balancer with sticky sessions avoids it).
 * A shared key would need a shared used-set to keep nonces single-use. */
#ifndef SKD_NONCE_H
#define SKD_NONCE_H

#include <stddef.h>
#include <stdint.h>

#define NONCE_KEY_BYTES 32
#define NONCE_TEXT_SIZE 44 /* 43 base64url characters and a NUL */
#define NONCE_WINDOW ((uint64_t)1 << 20) /* the service's window */

typedef struct nonce_table {
    uint8_t key[NONCE_KEY_BYTES];
    uint64_t lifetime_ms;
    uint64_t window;   /* a power of two, at least 8 */
    uint64_t next_seq; /* the next nonce's number */
    uint8_t *used;     /* window bits: bit seq % window */
} nonce_table_t;

typedef enum nonce_result {
    NONCE_OK,       /* valid and now used */
    NONCE_INVALID,  /* not one of ours (malformed, forged, another node's) */
    NONCE_EXPIRED,  /* too old */
    NONCE_REPLAYED, /* used already */
} nonce_result_t;

/* key: NONCE_KEY_BYTES random bytes; window: a power of two >= 8
 * (NONCE_WINDOW in the service). 0, or -1 out of memory or bad window. */
int nonce_table_init(nonce_table_t *t, const uint8_t *key, uint64_t lifetime_ms, uint64_t window);
void nonce_table_free(nonce_table_t *t);
/* A fresh nonce, NUL-terminated; now_ms is monotonic. */
void nonce_issue(nonce_table_t *t, uint64_t now_ms, char out[NONCE_TEXT_SIZE]);
/* Checks and uses text (any bytes; len need not be NUL-bounded). */
nonce_result_t nonce_redeem(nonce_table_t *t, const char *text, size_t len, uint64_t now_ms);

#endif
