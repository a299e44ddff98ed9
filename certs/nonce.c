#include "nonce.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "b64url.h"

#define MAC_BYTES 16
#define RAW_BYTES (8 + 8 + MAC_BYTES)

int nonce_table_init(nonce_table_t *t, const uint8_t *key, uint64_t lifetime_ms, uint64_t window) {
    memset(t, 0, sizeof *t);
    if (window < 8 || (window & (window - 1)) != 0)
        return -1;
    memcpy(t->key, key, NONCE_KEY_BYTES);
    t->lifetime_ms = lifetime_ms;
    t->window = window;
    t->used = calloc(window / 8, 1);
    return t->used ? 0 : -1;
}

void nonce_table_free(nonce_table_t *t) {
    free(t->used);
    OPENSSL_cleanse(t, sizeof *t);
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void mac(const nonce_table_t *t, const uint8_t *msg, uint8_t out[MAC_BYTES]) {
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), t->key, NONCE_KEY_BYTES, msg, 16, full, &len);
    memcpy(out, full, MAC_BYTES);
}

static uint8_t *slot(const nonce_table_t *t, uint64_t seq, uint8_t *bit) {
    uint64_t i = seq & (t->window - 1);
    *bit = (uint8_t)(1u << (i % 8));
    return &t->used[i / 8];
}

void nonce_issue(nonce_table_t *t, uint64_t now_ms, char out[NONCE_TEXT_SIZE]) {
    uint64_t seq = t->next_seq++;
    uint8_t bit, *byte = slot(t, seq, &bit);
    *byte &= (uint8_t)~bit; /* the slot held seq - window, now out of the window */
    uint8_t raw[RAW_BYTES];
    put64(raw, seq);
    put64(raw + 8, now_ms);
    mac(t, raw, raw + 16);
    b64url_encode(raw, sizeof raw, out, NONCE_TEXT_SIZE);
}

nonce_result_t nonce_redeem(nonce_table_t *t, const char *text, size_t len, uint64_t now_ms) {
    if (len != NONCE_TEXT_SIZE - 1)
        return NONCE_INVALID;
    buf_t raw;
    buf_init(&raw, RAW_BYTES);
    uint8_t bytes[RAW_BYTES], want[MAC_BYTES];
    int ok = b64url_decode(text, len, &raw) == 0 && raw.len == RAW_BYTES;
    if (ok)
        memcpy(bytes, raw.data, RAW_BYTES);
    buf_free(&raw);
    if (!ok)
        return NONCE_INVALID;
    mac(t, bytes, want);
    if (CRYPTO_memcmp(want, bytes + 16, MAC_BYTES) != 0)
        return NONCE_INVALID;
    uint64_t seq = get64(bytes), issued = get64(bytes + 8);
    if (seq >= t->next_seq)
        return NONCE_INVALID; /* cannot happen with our key; keeps the window sound */
    if (now_ms < issued || now_ms - issued > t->lifetime_ms || t->next_seq - seq > t->window)
        return NONCE_EXPIRED;
    uint8_t bit, *byte = slot(t, seq, &bit);
    if (*byte & bit)
        return NONCE_REPLAYED;
    *byte |= bit;
    return NONCE_OK;
}
