/* skd tenant add / skd instance add: the operator registers tenants and
 * instances by writing the store directly (skd serve reads them per call). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "admin_cli.h"
#include "config.h"

static void usage_tenant(FILE *out) {
    fprintf(out, "Usage: skd tenant add -c FILE --id vpc-ID --account ACCOUNT --networks CIDR[,CIDR...]\n"
                 "                      [--verifier registry|identity-document] [--audit-dir DIR]\n"
                 "                      [--endpoints vpce-ID[,vpce-ID...]]\n"
                 "\n"
                 "Registers a tenant: callers from its networks belong to it.\n");
}

static void usage_instance(FILE *out) {
    fprintf(out, "Usage: skd instance add -c FILE --tenant vpc-ID --id i-ID --ip ADDRESS\n"
                 "\n"
                 "Registers an instance of a tenant and its address (the registry verifier).\n");
}

/* Opens the store named by the configuration. */
static store_t *open_store(const char *config_path, const char *cmd) {
    config_t cfg;
    char err[512];
    if (config_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "skd: %s\n", err);
        return NULL;
    }
    store_t *s = NULL;
    if (!cfg.store_path)
        fprintf(stderr, "skd %s: %s has no [store] path\n", cmd, config_path);
    else if (!(s = store_open_sqlite(cfg.store_path, err, sizeof err)))
        fprintf(stderr, "skd %s: %s\n", cmd, err);
    config_free(&cfg);
    return s;
}

/* Reports a store result in one line; returns the exit code. */
static int report(int rc, const char *cmd, const char *what) {
    if (rc == 0) {
        printf("skd %s: %s added\n", cmd, what);
        return 0;
    }
    if (rc == STORE_EXISTS)
        fprintf(stderr, "skd %s: %s already exists\n", cmd, what);
    else if (rc == STORE_NOT_FOUND)
        fprintf(stderr, "skd %s: no such tenant for %s\n", cmd, what);
    else
        fprintf(stderr, "skd %s: %s\n", cmd, store_last_error());
    return 1;
}

static int tenant_add(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"id", required_argument, NULL, 'i'},
        {"account", required_argument, NULL, 'a'},  {"networks", required_argument, NULL, 'n'},
        {"verifier", required_argument, NULL, 'v'}, {"audit-dir", required_argument, NULL, 'd'},
        {"endpoints", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'}, {0},
    };
    const char *config = NULL, *verifier = "registry";
    store_tenant_t t = {0};
    const char *id = NULL, *account = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:i:a:n:v:d:e:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'i': id = optarg; break;
        case 'a': account = optarg; break;
        case 'n': t.networks = optarg; break;
        case 'v': verifier = optarg; break;
        case 'd': t.audit_dir = optarg; break;
        case 'e': t.endpoints = optarg; break;
        case 'h': usage_tenant(stdout); return 0;
        default: usage_tenant(stderr); return 2;
        }
    }
    if (!config || !id || !account || !t.networks || optind != argc) {
        fprintf(stderr, "skd tenant add: needs -c FILE, --id, --account and --networks (see --help)\n");
        return 2;
    }
    if (!store_valid_tenant_id(id) || !store_valid_account_id(account) ||
        store_verifier_parse(verifier, &t.verifier) != 0) {
        fprintf(stderr, "skd tenant add: want --id vpc- and 8 or 17 lowercase hex digits, --account of 12 digits, "
                        "--verifier registry or identity-document\n");
        return 2;
    }
    snprintf(t.id, sizeof t.id, "%s", id);
    snprintf(t.account_id, sizeof t.account_id, "%s", account);
    store_t *s = open_store(config, "tenant add");
    if (!s)
        return 1;
    char what[64];
    snprintf(what, sizeof what, "tenant %s", id);
    int rc = report(store_tenant_add(s, &t), "tenant add", what);
    store_close(s);
    return rc;
}

static int instance_add(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"tenant", required_argument, NULL, 't'},
        {"id", required_argument, NULL, 'i'},     {"ip", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    const char *config = NULL, *tenant = NULL, *id = NULL, *ip = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:t:i:p:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 't': tenant = optarg; break;
        case 'i': id = optarg; break;
        case 'p': ip = optarg; break;
        case 'h': usage_instance(stdout); return 0;
        default: usage_instance(stderr); return 2;
        }
    }
    if (!config || !tenant || !id || !ip || optind != argc) {
        fprintf(stderr, "skd instance add: needs -c FILE, --tenant, --id and --ip (see --help)\n");
        return 2;
    }
    char norm[STORE_IP_SIZE];
    if (!store_valid_tenant_id(tenant) || !store_valid_instance_id(id) ||
        ip_normalize(ip, norm, sizeof norm) != 0) {
        fprintf(stderr, "skd instance add: want --tenant vpc-..., --id i- and 8 or 17 lowercase hex digits, "
                        "--ip an IPv4 or IPv6 address\n");
        return 2;
    }
    store_t *s = open_store(config, "instance add");
    if (!s)
        return 1;
    char what[64];
    snprintf(what, sizeof what, "instance %s", id);
    int rc = report(store_instance_add(s, tenant, id, norm), "instance add", what);
    store_close(s);
    return rc;
}

int cmd_tenant(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        return tenant_add(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage_tenant(stdout);
        return 0;
    }
    usage_tenant(stderr);
    return 2;
}

int cmd_instance(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        return instance_add(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage_instance(stdout);
        return 0;
    }
    usage_instance(stderr);
    return 2;
}
