/* sk chk-pubkey: the pinned API signing key against the one the API serves. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "commands.h"

static void usage(FILE *out) {
    fprintf(out, "Usage: sk chk-pubkey [OPTIONS]\n"
                 "\n"
                 "Compares the pinned API signing key (DIR/api_public_key.pem) with the one the\n"
                 "key API serves (GET /v1/public-signing-key). Needs no root.\n"
                 "\n"
                 "  --config-dir DIR      configuration directory (default /etc/sk)\n"
                 "  --bind-address ADDR   source address of the call\n"
                 "  -h, --help            show this help\n"
                 "\n"
                 "Exit status: 0 the keys are identical, 1 they differ or the API cannot be\n"
                 "reached, 2 usage.\n");
}

static int compare(agent_t *a) {
    char url[SKCFG_URL_MAX + 64], err[512];
    printf("Pinned key (%s/api_public_key.pem): SHA-256 %s\n", a->config_dir, a->api_fpr);
    agent_step(a, "Fetching the API's signing key...");
    snprintf(url, sizeof url, "%s/public-signing-key", a->api_url);
    const char *headers[] = {"Accept: application/json", NULL};
    skhttp_response_t resp;
    int tries = 0;
    if (skhttp_request(&a->http, "GET", url, headers, NULL, &resp, &tries, err, sizeof err) != 0)
        return agent_fail(a, AGENT_FAIL, "cannot reach the key API at %s: %s (after %d tr%s)", a->api_url, err, tries,
                          tries == 1 ? "y" : "ies");
    buf_t served, pinned;
    buf_init(&served, 4096);
    buf_init(&pinned, 0);
    int rc = AGENT_OK;
    if (resp.status != 200) {
        char msg[256];
        skapi_error_message(resp.body.data, resp.body.len, msg, sizeof msg);
        rc = agent_fail(a, AGENT_FAIL, "the key API refused: HTTP %ld %s", resp.status, msg);
    } else if (skapi_parse_public_key(resp.body.data, resp.body.len, &served, err, sizeof err) != 0 ||
               skcrypto_spki(a->api_key, &pinned) != 0) {
        rc = agent_fail(a, AGENT_FAIL, "%s", err);
    } else {
        agent_ok(a);
        if (served.len == pinned.len && memcmp(served.data, pinned.data, served.len) == 0) {
            printf("Keys are identical\n");
        } else {
            unsigned char md[32];
            char hex[65] = "";
            if (EVP_Digest(served.data, served.len, md, NULL, EVP_sha256(), NULL))
                for (int i = 0; i < 32; i++)
                    snprintf(hex + 2 * i, 3, "%02x", md[i]);
            rc = agent_fail(a, AGENT_FAIL,
                            "CRITICAL: the pinned and the served API signing keys differ (served: SHA-256 %s)", hex);
        }
    }
    buf_free(&served);
    buf_free(&pinned);
    buf_free(&resp.body);
    return rc;
}

int sk_chk_pubkey(int argc, char **argv) {
    static const struct option opts[] = {AGENT_LONG_OPTIONS, {0}};
    agent_t a;
    agent_init(&a, argv[0]);
    int parsed = agent_parse_options(&a, argc, argv, usage, opts, NULL);
    if (parsed != AGENT_OK)
        return parsed < 0 ? AGENT_OK : parsed;
    if (argc != optind)
        return agent_fail(&a, AGENT_USAGE, "unexpected argument %s (see --help)", argv[optind]);
    int rc = agent_load(&a, false);
    if (rc == AGENT_OK)
        rc = compare(&a);
    agent_free(&a);
    return rc;
}
