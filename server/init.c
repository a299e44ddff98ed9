/* skd init: creates skd's keys on the token, once. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../hsm/hsm.h"
#include "config.h"
#include "init.h"

static void usage_init(FILE *out) {
    fprintf(out, "Usage: skd init -c FILE [--public-key PEM]\n"
                 "\n"
                 "Creates the domain key and the P-384 signing key pair on the token of FILE's [hsm]\n"
                 "section and records the binding profile the token supports. Refuses a token that\n"
                 "already holds skd keys. The user PIN is read from standard input (a prompt without\n"
                 "echo on a terminal); it is never an argument.\n"
                 "\n"
                 "  -c, --config FILE      configuration (INI), see skd.conf.example\n"
                 "  -p, --public-key PEM   also write the signing public key to PEM\n"
                 "  -h, --help             show this help\n");
}

/* One line from standard input, without echo on a terminal. */
static int read_pin(char *pin, size_t cap) {
    struct termios saved, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        fprintf(stderr, "HSM user PIN: ");
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *r = fgets(pin, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fprintf(stderr, "\n");
    }
    if (!r)
        return -1;
    pin[strcspn(pin, "\r\n")] = '\0';
    return pin[0] ? 0 : -1;
}

/* Writes the public key as PEM: temporary file, then rename. */
static int write_public_key(const buf_t *der, const char *path) {
    const unsigned char *p = (const unsigned char *)der->data;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)der->len);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = pkey ? fopen(tmp, "w") : NULL;
    int rc = -1;
    if (f) {
        rc = PEM_write_PUBKEY(f, pkey) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
        if (fclose(f) != 0)
            rc = -1;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -1;
        if (rc != 0)
            unlink(tmp);
    }
    EVP_PKEY_free(pkey);
    return rc;
}

int cmd_init(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"public-key", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *config_path = NULL, *pem_path = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:p:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            pem_path = optarg;
            break;
        case 'h':
            usage_init(stdout);
            return 0;
        default:
            usage_init(stderr);
            return 2;
        }
    }
    if (!config_path || optind != argc) {
        fprintf(stderr, "skd init: %s\n", config_path ? "unexpected argument" : "missing -c FILE");
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "skd: %s\n", err);
        return 1;
    }
    int rc = 1;
    hsm_t *h = NULL;
    char pin[256];
    if (!cfg.hsm_module) {
        fprintf(stderr, "skd init: %s has no [hsm] section\n", config_path);
    } else if (read_pin(pin, sizeof pin) != 0) {
        fprintf(stderr, "skd init: no PIN on standard input\n");
    } else if (hsm_open(&h, cfg.hsm_module, cfg.hsm_token_label, err, sizeof err) != HSM_OK ||
               hsm_login(h, pin, strlen(pin), err, sizeof err) != HSM_OK || hsm_init(h, err, sizeof err) != HSM_OK ||
               hsm_load_keys(h, err, sizeof err) != HSM_OK) {
        fprintf(stderr, "skd init: %s\n", err);
    } else if (pem_path && write_public_key(hsm_public_key_der(h), pem_path) != 0) {
        fprintf(stderr, "skd init: cannot write %s\n", pem_path);
    } else {
        printf("skd init: created the domain key and the signing key pair on token \"%s\" "
               "(blobs bound with profile kwp, secrets released as %s)\n",
               cfg.hsm_token_label, hsm_oaep_name(hsm_oaep(h)));
        if (pem_path)
            printf("skd init: signing public key written to %s\n", pem_path);
        rc = 0;
    }
    OPENSSL_cleanse(pin, sizeof pin);
    hsm_close(h);
    config_free(&cfg);
    return rc;
}
