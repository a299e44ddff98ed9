#include "base64.h"

#include <openssl/evp.h>
#include <string.h>

int base64_encode(const void *data, size_t len, buf_t *out) {
    size_t need = 4 * ((len + 2) / 3) + 1;
    if (len > (size_t)1 << 30 || buf_reserve(out, need) != 0)
        return -1;
    int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, data, (int)len);
    out->len += (size_t)n;
    return 0;
}

static int is_b64(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
           ch == '/';
}

int base64_decode(const char *text, size_t len, buf_t *out) {
    /* EVP_DecodeBlock skips whitespace and ignores padding: check first. */
    if (len == 0 || len % 4 != 0 || len > (size_t)1 << 30)
        return -1;
    size_t pad = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < len - pad; i++)
        if (!is_b64(text[i]))
            return -1;
    if (buf_reserve(out, len / 4 * 3) != 0)
        return -1;
    int n = EVP_DecodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)text, (int)len);
    if (n < 0)
        return -1;
    out->len += (size_t)n - pad;
    return 0;
}
