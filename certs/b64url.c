#include "b64url.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encoded_len(size_t len) {
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

int b64url_encode(const void *data, size_t len, char *out, size_t out_len) {
    const uint8_t *p = data;
    if (len > ((size_t)1 << 30) || b64url_encoded_len(len) >= out_len)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
    return 0;
}

static int value_of(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int b64url_decode(const char *text, size_t len, buf_t *out) {
    if (len % 4 == 1 || len > ((size_t)1 << 30))
        return -1;
    size_t start = out->len;
    for (size_t i = 0; i < len; i += 4) {
        size_t chars = len - i >= 4 ? 4 : len - i;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = k < chars ? value_of(text[i + k]) : 0;
            if (d < 0)
                goto fail;
            v = v << 6 | (uint32_t)d;
        }
        uint8_t bytes[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        size_t n = chars - 1; /* 4 chars: 3 bytes, 3: 2, 2: 1 */
        /* The bits past the last byte must be zero (canonical form). */
        if (n < 3 && bytes[n] != 0)
            goto fail;
        if (buf_append(out, bytes, n) != 0)
            goto fail;
    }
    return 0;
fail:
    out->len = start;
    return -1;
}
