/* base64: standard alphabet with padding, on one line (the API's encoding). */
#ifndef SKD_BASE64_H
#define SKD_BASE64_H

#include <stddef.h>

#include "buf.h"

/* Appends the encoding of data to out. */
int base64_encode(const void *data, size_t len, buf_t *out);
/* Strict decoding: only the standard alphabet, correct padding, no
 * whitespace; appends to out. Returns -1 on anything else. */
int base64_decode(const char *text, size_t len, buf_t *out);

#endif
