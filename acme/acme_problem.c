/* acme_problem: ACME problem documents as one-line messages, Retry-After,
 * and the renewal time of a certificate. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"

#define ERR_PREFIX "urn:ietf:params:acme:error:"

/* What the types a user meets most often mean, in a few words. */
static const struct {
    const char *type;
    const char *hint;
} HINTS[] = {
    {"rateLimited", "the CA's rate limit was reached; try again later"},
    {"orderNotReady", "the order is not ready for finalization yet"},
    {"unauthorized", "the CA did not accept the validation"},
    {"dns", "the CA's DNS lookup failed"},
    {"badNonce", "the CA refused the nonce"},
    {"incorrectResponse", "the CA saw another TXT value than expected"},
    {"caa", "a CAA record forbids this CA"},
    {"connection", "the CA could not reach the server"},
    {"rejectedIdentifier", "the CA will not issue for this name"},
    {"badCSR", "the CA refused the CSR"},
    {"externalAccountRequired", "the CA needs an external account binding"},
    {"accountDoesNotExist", "the CA does not know this account"},
    {"malformed", "the CA found the request malformed"},
    {"serverInternal", "the CA had an internal error"},
    {"userActionRequired", "the CA needs the account holder to act (e.g. new terms of service)"},
};

/* Appends s with control characters replaced, at most max bytes. */
static int append_clean(buf_t *out, const char *s, size_t max) {
    for (size_t i = 0; s[i] && i < max; i++) {
        char c = iscntrl((unsigned char)s[i]) ? ' ' : s[i];
        if (buf_append(out, &c, 1) < 0)
            return -1;
    }
    return 0;
}

int acme_problem_message(const char *body, size_t len, buf_t *out) {
    json_t *doc = body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    int rc = 0;
    if (!type) {
        rc = buf_append_str(out, "no problem document");
        goto done;
    }
    const char *shortname = strncmp(type, ERR_PREFIX, strlen(ERR_PREFIX)) == 0 ? type + strlen(ERR_PREFIX) : type;
    rc |= append_clean(out, shortname, 64);
    if (detail && *detail) {
        rc |= buf_append_str(out, ": ");
        rc |= append_clean(out, detail, 300);
    }
    /* The first subproblem names the identifier that failed. */
    json_t *sub = json_array_get(json_object_get(doc, "subproblems"), 0);
    const char *sub_detail = json_string_value(json_object_get(sub, "detail"));
    const char *sub_name = json_string_value(json_object_get(json_object_get(sub, "identifier"), "value"));
    if (sub_detail) {
        rc |= buf_append_str(out, " [");
        if (sub_name) {
            rc |= append_clean(out, sub_name, 255);
            rc |= buf_append_str(out, ": ");
        }
        rc |= append_clean(out, sub_detail, 200);
        rc |= buf_append_str(out, "]");
    }
    for (size_t i = 0; i < sizeof HINTS / sizeof HINTS[0]; i++) {
        if (strcmp(shortname, HINTS[i].type) == 0) {
            rc |= buf_printf(out, " (%s)", HINTS[i].hint);
            break;
        }
    }
done:
    json_decref(doc);
    if (rc == 0)
        rc = acme_buf_terminate(out);
    return rc ? -1 : 0;
}

int64_t acme_retry_after_ms(const char *value, time_t wall) {
    if (!value)
        return -1;
    while (*value == ' ')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        unsigned long long s = strtoull(value, &end, 10);
        while (*end == ' ')
            end++;
        if (*end || s > 86400ULL * 365)
            return -1;
        return (int64_t)s * 1000;
    }
    if (!wall)
        return -1;
    struct tm tm = {0}; /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    time_t at = timegm(&tm);
    return at <= wall ? 0 : (int64_t)(at - wall) * 1000;
}

time_t acme_renew_at(time_t not_before, time_t not_after) {
    if (not_after <= not_before)
        return not_before;
    return not_before + (not_after - not_before) / 3 * 2;
}

time_t acme_renewal_pick(time_t start, time_t end, time_t now, uint32_t r) {
    time_t at = start;
    if (end > start) /* r / 2^32 of the way, end included */
        at = start + (time_t)(((uint64_t)(end - start) + 1) * r >> 32);
    return at < now ? now : at;
}

int64_t acme_renewal_recheck_ms(int64_t retry_ms) {
    if (retry_ms < 0)
        return (int64_t)ACME_ARI_RECHECK_S * 1000;
    if (retry_ms < 60 * 1000)
        return 60 * 1000;
    return retry_ms > 86400 * 1000 ? 86400 * 1000 : retry_ms;
}

int acme_rfc3339(const char *s, time_t *out) {
    struct tm tm = {0};
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p || (s[10] != 'T' && s[10] != 't'))
        return -1;
    if (*p == '.') /* fractions of a second: ignored */
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    long offset = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
               p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && p[6] == '\0') {
        offset = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600L + ((p[4] - '0') * 10 + (p[5] - '0')) * 60L;
        if (*p == '-')
            offset = -offset;
    } else {
        return -1;
    }
    *out = timegm(&tm) - offset;
    return 0;
}
