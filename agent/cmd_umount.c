/* sk umount: unmount an sk volume and close its mapping. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "agent.h"
#include "commands.h"
#include "mount.h"

static void usage(FILE *out) {
    fprintf(out, "Usage: sk umount [OPTIONS] MOUNTPOINT\n"
                 "\n"
                 "Unmounts the sk volume mounted on MOUNTPOINT and closes its device-mapper\n"
                 "mapping (/dev/mapper/sk-<LUKS UUID>); the key API is not called.\n"
                 "\n"
                 "  -h, --help   show this help\n"
                 "\n"
                 "Exit status: 0 success, 1 failure, 2 usage, 4 no sk volume is mounted on\n"
                 "MOUNTPOINT, 5 not root.\n");
}

int sk_umount(int argc, char **argv) {
    static const struct option opts[] = {AGENT_LONG_OPTIONS, {0}};
    agent_t a;
    agent_init(&a, argv[0]);
    int parsed = agent_parse_options(&a, argc, argv, usage, opts, NULL);
    if (parsed != AGENT_OK)
        return parsed < 0 ? AGENT_OK : parsed;
    if (argc - optind != 1)
        return agent_fail(&a, AGENT_USAGE, "want exactly one MOUNTPOINT (see --help)");
    int rc = agent_require_root(&a);
    if (rc != AGENT_OK)
        return rc;
    char real[PATH_MAX], name[256], err[512];
    if (!realpath(argv[optind], real))
        return agent_fail(&a, AGENT_USAGE, "%s: %m", argv[optind]);
    agent_step(&a, "Finding the sk volume mounted on %s...", real);
    rc = skmount_mapper_at(real, name, sizeof name, err, sizeof err);
    if (rc < 0)
        return agent_fail(&a, AGENT_FAIL, "%s", err);
    if (rc == 1)
        return agent_fail(&a, AGENT_STATE, "nothing is mounted on %s", real);
    if (rc == 2 || strncmp(name, "sk-", 3) != 0)
        return agent_fail(&a, AGENT_STATE, "what is mounted on %s is not an sk volume", real);
    agent_ok(&a);
    agent_step(&a, "Unmounting %s...", real);
    if (umount2(real, 0) != 0)
        return agent_fail(&a, AGENT_FAIL, "cannot unmount %s: %m", real);
    agent_ok(&a);
    agent_step(&a, "Closing /dev/mapper/%s...", name);
    if (skvol_deactivate(name, err, sizeof err) != 0)
        return agent_fail(&a, AGENT_FAIL, "%s", err);
    agent_ok(&a);
    printf("Success\n");
    return AGENT_OK;
}
