/* sk: the client side of skd (instance agent, certificate client, audit
 * verifier). Commands are one to three words ("audit verify", "cert
 * challenge set"); each is one line of the table below and gets argv with
 * argv[0] set to its full name ("sk audit verify"), parses its own options
 * and answers --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_verify.h"

typedef int (*sk_command_fn)(int argc, char **argv);

typedef struct sk_command {
    const char *words;   /* the command's words after "sk", separated by one space */
    const char *args;    /* its synopsis */
    const char *summary; /* one line for "sk --help" */
    sk_command_fn run;
} sk_command_t;

static const sk_command_t commands[] = {
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
                 "Every command prints one line on failure and exits non-zero (2: usage error).\n");
}

static int is_help(const char *arg) {
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

int main(int argc, char **argv) {
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
