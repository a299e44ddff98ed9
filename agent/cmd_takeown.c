/* sk takeown: rebind a volume's secret from its former instance (a
 * restored snapshot or AMI) to this one. The new blob must verify and open
 * the keyslot before it replaces the old one, which stays in the history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "commands.h"

static void usage(FILE *out) {
    fprintf(out, "Usage: sk takeown -i SOURCE_INSTANCE [OPTIONS] DEVICE\n"
                 "\n"
                 "Has the key API convert the secret of the sk volume DEVICE from SOURCE_INSTANCE\n"
                 "(its owner, e.g. the instance a snapshot was taken on) to this instance, checks\n"
                 "the new encrypted secret's signature and that it opens the keyslot, then stores\n"
                 "it in the sk token; the former one is kept in the token's history.\n"
                 "\n"
                 "  -i, --source-instance ID   the volume's current owner (i-...)\n" AGENT_COMMON_HELP "\n"
                 "Exit status: 0 success (or already owned), 1 failure, 2 usage, 4 DEVICE is not an\n"
                 "sk volume, 5 not root.\n");
}

static int take(agent_t *a, const char *device, const char *source) {
    agent_volume_t v;
    secmem_t secret = {0};
    buf_t blob, sig;
    buf_init(&blob, SKTOKEN_BLOB_MAX);
    buf_init(&sig, SKTOKEN_SIG_MAX);
    char *json = NULL, err[1024], now[32];
    int rc = agent_open_volume(a, device, &v);
    if (rc != AGENT_OK)
        goto done;
    const char *owner = v.token.current.instance_id;
    if ((rc = agent_check_tenant(a, &v)) != AGENT_OK)
        goto done;
    if (strcmp(owner, a->instance_id) == 0) {
        printf("%s already belongs to this instance (%s): nothing to do\n", device, owner);
        goto done;
    }
    if (strcmp(owner, source) != 0) {
        rc = agent_fail(a, AGENT_FAIL, "%s belongs to instance %s, not %s", device, owner, source);
        goto done;
    }
    rc = agent_convert(a, &v.token.current.blob, source, v.uuid, &blob, &sig);
    if (rc != AGENT_OK)
        goto done;
    /* In memory only until the new blob has proved itself, as the next mount will use it. */
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    int dropped = sktoken_replace(&v.token, &blob, &sig, a->instance_id, now);
    if (dropped < 0) {
        rc = agent_fail(a, AGENT_FAIL, "the new encrypted secret does not fit the sk token");
        goto done;
    }
    rc = agent_unlock(a, &v, &secret);
    if (rc != AGENT_OK)
        goto done;
    agent_step(a, "Storing the new encrypted secret (the former one kept in the history)...");
    if (!(json = sktoken_encode(&v.token))) {
        rc = agent_fail(a, AGENT_FAIL, "cannot encode the sk token");
        goto done;
    }
    if (skvol_set_token(v.vol, v.token_id, json, err, sizeof err) != 0) {
        rc = agent_fail(a, AGENT_FAIL, "%s", err);
        goto done;
    }
    agent_ok(a);
    if (dropped)
        printf("Note: the history was full; its oldest entry was dropped\n");
    printf("Success: %s now belongs to %s (%zu earlier blob%s in its history)\n", device, a->instance_id,
           v.token.nhistory, v.token.nhistory == 1 ? "" : "s");
done:
    secmem_free(&secret);
    free(json);
    buf_free(&blob);
    buf_free(&sig);
    agent_close_volume(&v);
    return rc;
}

int sk_takeown(int argc, char **argv) {
    static const struct option opts[] = {
        AGENT_LONG_OPTIONS,
        {"source-instance", required_argument, NULL, 'i'},
        {"source_instance", required_argument, NULL, 'i'}, /* the original's spelling */
        {0},
    };
    agent_t a;
    agent_init(&a, argv[0]);
    const char *source = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":i:h", opts, NULL)) != -1) {
        if (agent_option(&a, ch, optarg))
            continue;
        if (ch == 'i') {
            source = optarg;
        } else if (ch == 'h') {
            usage(stdout);
            return AGENT_OK;
        } else {
            return agent_usage_error(&a, ch, argv);
        }
    }
    if (!source || !skid_instance(source))
        return agent_fail(&a, AGENT_USAGE, "-i SOURCE_INSTANCE must be i- and 8 or 17 lower-case hex digits");
    if (argc - optind != 1)
        return agent_fail(&a, AGENT_USAGE, "want exactly one DEVICE (see --help)");
    const char *device = argv[optind];
    int rc = agent_require_root(&a);
    if (rc == AGENT_OK)
        rc = agent_check_device(&a, device);
    if (rc != AGENT_OK)
        return rc;
    rc = agent_load(&a, true);
    if (rc == AGENT_OK)
        rc = take(&a, device, source);
    agent_free(&a);
    return rc;
}
