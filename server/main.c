/* skd: the API node. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_cli.h"
#include "init.h"
#include "serve.h"

static void usage(FILE *out) {
    fprintf(out, "Usage: skd COMMAND [OPTIONS]\n"
                 "\n"
                 "Commands:\n"
                 "  serve -c FILE   run the API server with the configuration FILE\n"
                 "  init -c FILE    create skd's keys on the token (once per token)\n"
                 "  tenant add ...  register a tenant (skd tenant add --help)\n"
                 "  instance add ...  register an instance (skd instance add --help)\n"
                 "\n"
                 "Options:\n"
                 "  -h, --help      show this help (also: skd COMMAND --help)\n"
                 "  -V, --version   print the version\n"
                 "\n"
                 "Every option of FILE is described in skd.conf.example.\n");
}

static void usage_serve(FILE *out) {
    fprintf(out, "Usage: skd serve -c FILE\n"
                 "\n"
                 "Runs the API node: the public and admin listeners of FILE on one event loop.\n"
                 "SIGTERM or SIGINT: graceful shutdown; SIGHUP: reload the TLS certificate.\n"
                 "\n"
                 "  -c, --config FILE   configuration (INI), see skd.conf.example\n"
                 "  -h, --help          show this help\n");
}

static int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *config_path = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage_serve(stdout);
            return 0;
        default:
            usage_serve(stderr);
            return 2;
        }
    }
    if (!config_path || optind != argc) {
        fprintf(stderr, "skd serve: %s\n", config_path ? "unexpected argument" : "missing -c FILE");
        return 2;
    }

    return serve_run(config_path, NULL, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("skd %s\n", SKD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(cmd, "tenant") == 0)
        return cmd_tenant(argc - 1, argv + 1);
    if (strcmp(cmd, "instance") == 0)
        return cmd_instance(argc - 1, argv + 1);
    fprintf(stderr, "skd: unknown command \"%s\" (try skd --help)\n", cmd);
    return 2;
}
