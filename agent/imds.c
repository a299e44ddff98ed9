#include "imds.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

#define TOKEN_MAX 256
#define VALUE_MAX 256

static const skhttp_opts_t opts = {
    .connect_timeout_ms = 1000, .timeout_ms = 2000, .attempts = 3, .backoff_ms = 200, .max_body = VALUE_MAX};

/* GET base/path with the session token into out (printable, no newline). */
static int get(const char *base, const char *token, const char *path, char *out, size_t outlen, char *err,
               size_t errlen) {
    char url[512], hdr[TOKEN_MAX + 64];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", token);
    const char *headers[] = {hdr, NULL};
    skhttp_response_t r;
    int tries;
    if (skhttp_request(&opts, "GET", url, headers, NULL, &r, &tries, err, errlen) != 0)
        return -1;
    int rc = -1;
    if (r.status != 200)
        snprintf(err, errlen, "metadata service: GET %s: HTTP %ld", path, r.status);
    else if (r.body.len == 0 || r.body.len >= outlen || memchr(r.body.data, '\0', r.body.len))
        snprintf(err, errlen, "metadata service: GET %s: unexpected answer", path);
    else {
        memcpy(out, r.body.data, r.body.len);
        out[r.body.len] = '\0';
        rc = 0;
    }
    buf_free(&r.body);
    return rc;
}

int skimds_identity(const char *base, char id[SKID_INSTANCE_MAX + 1], char tenant[SKID_TENANT_MAX + 1], char *err,
                    size_t errlen) {
    char url[512];
    snprintf(url, sizeof url, "%s/latest/api/token", base);
    const char *headers[] = {"X-aws-ec2-metadata-token-ttl-seconds: 60", NULL};
    skhttp_response_t r;
    int tries;
    char token[TOKEN_MAX + 1];
    tenant[0] = '\0';
    if (skhttp_request(&opts, "PUT", url, headers, NULL, &r, &tries, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "metadata service %s: %s (after %d tr%s)", base, why, tries, tries == 1 ? "y" : "ies");
        return -1;
    }
    int ok = r.status == 200 && r.body.len > 0 && r.body.len <= TOKEN_MAX;
    for (size_t i = 0; ok && i < r.body.len; i++) /* it goes into a header line */
        ok = r.body.data[i] > 0x20 && r.body.data[i] < 0x7f;
    if (ok) {
        memcpy(token, r.body.data, r.body.len);
        token[r.body.len] = '\0';
    } else {
        snprintf(err, errlen, "metadata service %s: no session token (HTTP %ld)", base, r.status);
    }
    buf_free(&r.body);
    if (!ok)
        return -1;
    char value[VALUE_MAX];
    int rc = -1;
    if (get(base, token, "/latest/meta-data/instance-id", value, sizeof value, err, errlen) != 0)
        goto done;
    if (!skid_instance(value)) {
        snprintf(err, errlen, "metadata service: the instance id is not i- and 8 or 17 hex digits");
        goto done;
    }
    snprintf(id, SKID_INSTANCE_MAX + 1, "%.*s", SKID_INSTANCE_MAX, value);
    rc = 0;
    /* The VPC (skd's tenant), through the primary interface's MAC: optional. */
    char mac[VALUE_MAX], path[VALUE_MAX + 64], ignored[256];
    if (get(base, token, "/latest/meta-data/mac", mac, sizeof mac, ignored, sizeof ignored) == 0 &&
        strspn(mac, "0123456789abcdefABCDEF:") == strlen(mac)) {
        snprintf(path, sizeof path, "/latest/meta-data/network/interfaces/macs/%s/vpc-id", mac);
        if (get(base, token, path, value, sizeof value, ignored, sizeof ignored) == 0 && skid_tenant(value))
            snprintf(tenant, SKID_TENANT_MAX + 1, "%.*s", SKID_TENANT_MAX, value);
    }
done:
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}
