/* b64url: base64url without padding (RFC 7515 section 2), the JWS encoding.
 *
 * Decoding is strict: only [A-Za-z0-9_-], no padding, no whitespace, and
 * the unused bits of the last character zero, so that every byte string has
 * exactly one accepted text (a signature cannot be re-encoded). */
#ifndef SKD_B64URL_H
#define SKD_B64URL_H

#include <stddef.h>

#include "../common/buf.h"

/* Characters of the encoding of len bytes (without a NUL). */
size_t b64url_encoded_len(size_t len);
/* Writes the encoding of data and a NUL into out; -1 if out_len is too small. */
int b64url_encode(const void *data, size_t len, char *out, size_t out_len);
/* Appends the decoding of text[0..len) to out (whose limit bounds it);
 * -1 on anything but the canonical encoding. */
int b64url_decode(const char *text, size_t len, buf_t *out);

#endif
