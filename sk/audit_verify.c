/* "sk audit verify AUDIT-DIR --pubkey PEM" (see audit/verify.h). */
#include "audit_verify.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../audit/verify.h"
#include "../common/buf.h"

static void usage(FILE *out) {
    fprintf(out,
            "Usage: sk audit verify AUDIT-DIR --pubkey PEM [--jobs N]\n"
            "\n"
            "Verifies every audit record of every tenant subdirectory of AUDIT-DIR\n"
            "(AUDIT-DIR/<vpc_id>/<vpc_op_seq_num, 9 digits>.json, see audit/FORMAT.md):\n"
            "each file is the record's canonical form (jq -cjS .) and one newline, holds\n"
            "only objects, printable-ASCII strings, integers (below 2^53 in magnitude) and\n"
            "null, has event_version 2, vpc_id equal to its directory and vpc_op_seq_num\n"
            "equal to its file number; numbering starts at 1 without gaps; each signature\n"
            "verifies with PEM over SHA-256 of jq -cjS 'del(.signature)'; each prev_hash\n"
            "is the SHA-256 of the previous record's canonical form (64 zeros for record\n"
            "1). Leftover *.json.tmp files are ignored; any other file is an error.\n"
            "\n"
            "On success prints one line per tenant and a total. Otherwise prints\n"
            "  sk audit verify: FAILED: TENANT/FILE: REASON\n"
            "for the first record (in tenant and number order) that does not verify.\n"
            "\n"
            "  --pubkey PEM    the audit signing public key, EC P-384 (the key of\n"
            "                  GET /v1/public-signing-key; var/api_public_key.pem in the demo)\n"
            "  -j, --jobs N    threads checking signatures (default: one per CPU)\n"
            "  -h, --help      show this help\n"
            "\n"
            "Exit status: 0 every record verifies; 1 a record does not, or AUDIT-DIR or PEM\n"
            "cannot be read; 2 usage error.\n");
}

static void on_tenant(const audit_verify_tenant_t *t, void *arg) {
    buf_t *lines = arg;
    char name[256];
    size_t i = 0;
    for (; t->tenant[i] && i + 1 < sizeof name; i++)
        name[i] = (t->tenant[i] >= 0x20 && t->tenant[i] <= 0x7e) ? t->tenant[i] : '?';
    name[i] = '\0';
    if (t->records == 0)
        buf_printf(lines, "%s: 0 records\n", name);
    else
        buf_printf(lines, "%s: %" PRIu64 " record%s, 1..%" PRIu64 ", chain and signatures OK\n", name, t->records,
                   t->records == 1 ? "" : "s", t->records);
}

int sk_audit_verify(int argc, char **argv) {
    static const struct option opts[] = {
        {"pubkey", required_argument, NULL, 'k'},
        {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *me = argv[0];
    const char *pem = NULL;
    unsigned jobs = 0;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":k:j:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'k':
            pem = optarg;
            break;
        case 'j': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 64) {
                fprintf(stderr, "%s: --jobs wants a number from 1 to 64\n", me);
                return 2;
            }
            jobs = (unsigned)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "%s: %s needs a value (see --help)\n", me, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option %s (see --help)\n", me, argv[optind - 1]);
            return 2;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "%s: missing AUDIT-DIR (see --help)\n", me);
        return 2;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s: unexpected argument %s (see --help)\n", me, argv[optind + 1]);
        return 2;
    }
    if (!pem) {
        fprintf(stderr, "%s: missing --pubkey PEM (see --help)\n", me);
        return 2;
    }
    const char *dir = argv[optind];

    char err[512];
    EVP_PKEY *pub = audit_verify_load_pubkey(pem, err, sizeof err);
    if (!pub) {
        fprintf(stderr, "%s: %s\n", me, err);
        return 1;
    }
    buf_t lines;
    buf_init(&lines, 0);
    audit_verify_opts_t vo = {.threads = jobs, .on_tenant = on_tenant, .arg = &lines};
    audit_verify_summary_t sum;
    audit_verify_failure_t fail;
    int rc = audit_verify_dir(dir, pub, &vo, &sum, &fail);
    EVP_PKEY_free(pub);
    if (rc == AUDIT_VERIFY_OK) {
        fwrite(lines.data ? lines.data : "", 1, lines.len, stdout);
        printf("total: %" PRIu64 " tenant%s, %" PRIu64 " record%s, all verified\n", sum.tenants,
               sum.tenants == 1 ? "" : "s", sum.records, sum.records == 1 ? "" : "s");
        buf_free(&lines);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    buf_free(&lines);
    if (rc == AUDIT_VERIFY_ERROR) {
        fprintf(stderr, "%s: %s\n", me, fail.reason);
        return 1;
    }
    fprintf(stderr, "%s: FAILED: %s%s%s: %s\n", me, fail.tenant, fail.file[0] ? "/" : "", fail.file, fail.reason);
    return 1;
}
