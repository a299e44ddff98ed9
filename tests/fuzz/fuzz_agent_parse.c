/* libFuzzer: the parsers of what the agent reads from outside. The first
 * byte picks one: a volume's sk token (anyone with the disk can write it),
 * a key-API answer, an automount.conf, a mountinfo text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/api.h"
#include "../../agent/config.h"
#include "../../agent/mountinfo.h"
#include "../../agent/token.h"

static skcfg_mount_t mounts[SKCFG_MOUNTS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[256];
    switch (data[0] % 4) {
    case 0: {
        sktoken_t t;
        if (sktoken_parse(text, len, &t, err, sizeof err) == 0) {
            /* what parses must encode, and encode to the same token */
            char *json = sktoken_encode(&t);
            if (!json)
                abort();
            sktoken_t again;
            if (sktoken_parse(json, strlen(json), &again, err, sizeof err) != 0 || again.nhistory != t.nhistory ||
                again.current.blob.len != t.current.blob.len)
                abort();
            sktoken_free(&again);
            free(json);
        }
        sktoken_free(&t);
        break;
    }
    case 1: {
        skapi_reply_t r;
        skapi_reply_init(&r);
        skapi_parse_reply(text, len, SKAPI_ENCRYPTED | SKAPI_WRAPPED, &r, err, sizeof err);
        skapi_reply_free(&r);
        buf_t der;
        buf_init(&der, 4096);
        skapi_parse_public_key(text, len, &der, err, sizeof err);
        buf_free(&der);
        skapi_error_message(text, len, err, sizeof err);
        break;
    }
    case 2: {
        size_t n;
        skcfg_parse_automount(text, len, mounts, &n, err, sizeof err);
        char line[512];
        skcfg_one_line(text, len, line, sizeof line);
        break;
    }
    default: {
        char source[256];
        skmnt_source(text, len, "/mnt/data", source, sizeof source);
        break;
    }
    }
    return 0;
}
