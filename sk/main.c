/* sk: the client side of skd (instance agent, certificate client, audit
 * verifier). Commands are one to three words ("audit verify", "cert
 * challenge set"); each is one line of the table below and gets argv with
 * argv[0] set to its full name ("sk audit verify"), parses its own options
 * and answers --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../agent/commands.h"
#include "audit_verify.h"
#include "cert.h"

typedef int (*sk_command_fn)(int argc, char **argv);

typedef struct sk_command {
    const char *words;   /* the command's words after "sk", separated by one space */
    const char *args;    /* its synopsis */
    const char *summary; /* one line for "sk --help" */
    sk_command_fn run;
} sk_command_t;

static const sk_command_t commands[] = {
    {"prep-dev", "[-f FS] [-a MOUNTPOINT] [--delete-all-existing-data] DEVICE",
     "make DEVICE an sk volume: LUKS2 opened by a secret the key API releases", sk_prep_dev},
    {"mount", "DEVICE MOUNTPOINT", "unlock an sk volume with its released secret and mount it", sk_mount},
    {"check", "DEVICE", "check that the released secret opens an sk volume (maps and mounts nothing)", sk_check},
    {"umount", "MOUNTPOINT", "unmount an sk volume and close its mapping", sk_umount},
    {"takeown", "-i SOURCE_INSTANCE DEVICE", "take over a volume of another instance (restored snapshot)",
     sk_takeown},
    {"automount", "[--check]", "mount the volumes of automount.conf (at boot: sk-automount.service)", sk_automount},
    {"chk-pubkey", "", "compare the pinned API signing key with the one the API serves", sk_chk_pubkey},
    {"cert register", "--server URL --state DIR [--label LABEL] [--token TOKEN]",
     "register this installation with skd; prints its name", sk_cert_register},
    {"cert challenge set", "VALUE --state DIR", "publish a dns-01 value; returns once it is served",
     sk_cert_challenge_set},
    {"cert challenge delete", "VALUE|all --state DIR", "delete a dns-01 value", sk_cert_challenge_delete},
    {"cert issue", "--acme DIRECTORY-URL [--ca-bundle PEM] --state DIR [--also DIR]... [--eab-kid KID --eab-hmac-key K]",
     "get the installation's certificate (DIR/cert.pem, DIR/key.pem) from an ACME CA", sk_cert_issue},
    {"cert renew", "--state DIR [--daemon]", "renew the certificate when two thirds of its lifetime have passed",
     sk_cert_renew},
    {"cert revoke", "--state DIR [--reason N]", "revoke DIR/cert.pem with the account key", sk_cert_revoke},
    {"cert rollover", "--state DIR", "replace the ACME account key (keyChange)", sk_cert_rollover},
    {"audit verify", "AUDIT-DIR --pubkey PEM", "verify every audit record: signatures, hash chain, numbering",
     sk_audit_verify},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* How many leading words of cmd->words argv[0..argc) matches: all of them
 * (returns their count), a strict prefix (returns -count), or none (0). */
static int match(const sk_command_t *cmd, int argc, char **argv) {
    const char *w = cmd->words;
    int i = 0;
    for (; *w; i++) {
        size_t len = strcspn(w, " ");
        if (i >= argc || strlen(argv[i]) != len || strncmp(argv[i], w, len) != 0)
            return -i;
        w += len;
        if (*w == ' ')
            w++;
    }
    return i;
}

static void usage(FILE *out, int nwords, char **words) {
    fprintf(out, "Usage: sk");
    for (int i = 0; i < nwords; i++)
        fprintf(out, " %s", words[i]);
    fprintf(out, " COMMAND [ARGS]\n\n%s", nwords ? "" : "The client side of skd.\n\n");
    fprintf(out, "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (nwords && match(&commands[i], nwords, words) != -nwords)
            continue;
        fprintf(out, "  sk %s %s\n      %s\n", commands[i].words, commands[i].args, commands[i].summary);
    }
    fprintf(out, "\n"
                 "Options:\n"
                 "  -h, --help   show this help (also: sk COMMAND --help)\n"
                 "\n"
                 "Every command prints one line on failure and exits non-zero (2: usage error).\n"
                 "The agent's commands also run as links named sk-prep-dev, sk-mount, ...\n");
}

/* Called through a link named "sk-prep-dev" (the original agent's
 * names): run that one-word command. Returns -1 for any other name. */
static int run_as_link(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strncmp(base, "sk-", 3) != 0)
        return -1;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strchr(commands[i].words, ' ') || strcmp(commands[i].words, base + 3) != 0)
            continue;
        char name[64];
        snprintf(name, sizeof name, "sk %s", commands[i].words);
        argv[0] = name;
        return commands[i].run(argc, argv);
    }
    fprintf(stderr, "%s: no sk command of that name (try sk --help)\n", base);
    return 2;
}

static int is_help(const char *arg) {
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

int main(int argc, char **argv) {
    int linked = run_as_link(argc, argv);
    if (linked >= 0)
        return linked;
    int nargs = argc - 1;
    char **args = argv + 1;
    if (nargs == 0) {
        fprintf(stderr, "sk: missing command (try sk --help)\n");
        return 2;
    }
    if (is_help(args[0])) {
        usage(stdout, 0, NULL);
        return 0;
    }

    const sk_command_t *best = NULL;
    int best_words = 0, prefix_words = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int m = match(&commands[i], nargs, args);
        if (m > best_words) {
            best = &commands[i];
            best_words = m;
        } else if (-m > prefix_words) {
            prefix_words = -m;
        }
    }
    if (best) {
        /* argv[0] of the command: "sk audit verify" */
        char name[128] = "sk";
        for (int i = 0; i < best_words; i++) {
            strncat(name, " ", sizeof name - strlen(name) - 1);
            strncat(name, args[i], sizeof name - strlen(name) - 1);
        }
        args[best_words - 1] = name;
        return best->run(nargs - best_words + 1, args + best_words - 1);
    }
    if (prefix_words > 0) { /* "sk audit", "sk audit --help", "sk audit bogus" */
        if (nargs == prefix_words) {
            fprintf(stderr, "sk:");
            for (int i = 0; i < prefix_words; i++)
                fprintf(stderr, " %s", args[i]);
            fprintf(stderr, ": missing command (try sk");
            for (int i = 0; i < prefix_words; i++)
                fprintf(stderr, " %s", args[i]);
            fprintf(stderr, " --help)\n");
            return 2;
        }
        if (is_help(args[prefix_words])) {
            usage(stdout, prefix_words, args);
            return 0;
        }
        fprintf(stderr, "sk: unknown command \"");
        for (int i = 0; i <= prefix_words; i++)
            fprintf(stderr, "%s%s", i ? " " : "", args[i]);
        fprintf(stderr, "\" (try sk --help)\n");
        return 2;
    }
    fprintf(stderr, "sk: unknown command \"%s\" (try sk --help)\n", args[0]);
    return 2;
}
