/* agent: what the agent's commands share. Their common options, the
 * configuration, the instance's identity, progress lines ("Step...  OK"),
 * and the three key-API operations with every check done before anything
 * is used: signatures against the pinned key, OAEP unwrap into locked
 * memory, and reading and checking a volume's sk token. */
#ifndef SK_AGENT_H
#define SK_AGENT_H

#include <getopt.h>
#include <openssl/evp.h>
#include <stdbool.h>

#include "../common/buf.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "ids.h"
#include "secmem.h"
#include "token.h"
#include "volume.h"

/* Exit codes (the original agent's). */
enum { AGENT_OK = 0, AGENT_FAIL = 1, AGENT_USAGE = 2, AGENT_STATE = 4, AGENT_NOT_ROOT = 5 };

#define AGENT_DEFAULT_CONFIG_DIR "/etc/sk"
#define AGENT_RSA_BITS 4096

/* The options every agent command takes (getopt_long codes 'C', 'I', 'B',
 * 'N', 'h'), to put first in its option table. */
#define AGENT_LONG_OPTIONS                                                                      \
    {"config-dir", required_argument, NULL, 'C'},                                               \
    {"instance-id", required_argument, NULL, 'I'},                                              \
    {"bind-address", required_argument, NULL, 'B'},                                             \
    {"ignore-nitro-check", no_argument, NULL, 'N'},                                             \
    {"help", no_argument, NULL, 'h'}
#define AGENT_COMMON_HELP                                                                                              \
    "  --config-dir DIR      configuration directory (default /etc/sk)\n"                                              \
    "  --instance-id ID      this instance's id (default: from the metadata service, IMDSv2)\n"                        \
    "  --bind-address ADDR   source address of the calls to the key API\n"                                             \
    "  -h, --help            show this help\n"

typedef struct agent {
    const char *me; /* "sk mount" */
    const char *config_dir;
    const char *instance_opt;
    const char *bind_address;
    char api_url[SKCFG_URL_MAX + 1];
    char ca_file[SKCFG_PATH_MAX + 16];
    char instance_id[SKID_INSTANCE_MAX + 1];
    char tenant[SKID_TENANT_MAX + 1]; /* "" when unknown */
    EVP_PKEY *api_key;
    char api_fpr[SKCRYPTO_FPR_LEN + 1];
    unsigned rsa_bits;
    skhttp_opts_t http;
    bool step_open;
    bool http_ready; /* libcurl initialized (agent_load), cleaned up by agent_free */
} agent_t;

/* A volume opened and its token read and checked (agent_open_volume). */
typedef struct agent_volume {
    const char *device;
    skvol_t *vol;
    int token_id;
    sktoken_t token;
    char uuid[SKID_UUID_LEN + 1]; /* the LUKS UUID, lower case */
} agent_volume_t;

void agent_init(agent_t *a, const char *me);
void agent_free(agent_t *a);
/* Handles a common option: 1 when it was one, 0 when not. */
int agent_option(agent_t *a, int ch, const char *arg);
/* Parses the options of a command that takes the common ones, -h and (when
 * check is not NULL) --check: AGENT_OK, AGENT_USAGE, or -1 once --help has
 * been answered. opts: AGENT_LONG_OPTIONS and the command's own. */
int agent_parse_options(agent_t *a, int argc, char **argv, void (*usage)(FILE *), const struct option *opts,
                        bool *check);
/* Reports a getopt error ('?' or ':'); returns AGENT_USAGE. */
int agent_usage_error(agent_t *a, int ch, char **argv);
/* AGENT_OK when running as root, else prints why and returns AGENT_NOT_ROOT. */
int agent_require_root(agent_t *a);
/* AGENT_OK when path is a block device or a regular file, else AGENT_USAGE. */
int agent_check_device(agent_t *a, const char *path);
/* Reads the configuration and the pinned key; with identity also learns
 * the instance id (--instance-id or IMDSv2) and the tenant. */
int agent_load(agent_t *a, bool identity);

/* One progress line: the step's text, then OK or NOK on the same line. */
void agent_step(agent_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void agent_ok(agent_t *a);
/* NOK if a step is open, then "me: message" on stderr; returns code. */
int agent_fail(agent_t *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* generate-secret for volume uuid: the encrypted secret and its signature
 * (verified) and the secret itself (unwrapped into locked memory). */
int agent_generate(agent_t *a, const char *uuid, buf_t *blob, buf_t *sig, secmem_t *secret);
/* convert-secret of blob from source to this instance: the new blob and
 * its signature (verified). */
int agent_convert(agent_t *a, const buf_t *blob, const char *source, const char *uuid, buf_t *new_blob, buf_t *new_sig);

/* Opens device and checks its token before anything else: LUKS2 with one
 * sk token (else AGENT_STATE), the token well formed, its volume_uuid the
 * LUKS UUID, made under the pinned key, its blob signed by it (else a
 * CRITICAL AGENT_FAIL). */
int agent_open_volume(agent_t *a, const char *device, agent_volume_t *v);
void agent_close_volume(agent_volume_t *v);
/* AGENT_OK unless both this instance's and the token's tenants are known
 * and differ (an early, clear refusal: the key service refuses anyway). */
int agent_check_tenant(agent_t *a, const agent_volume_t *v);
/* Has the token's current blob released (it must belong to this instance
 * and tenant), unwrapped, and checked against the keyslot. */
int agent_unlock(agent_t *a, agent_volume_t *v, secmem_t *secret);

#endif
