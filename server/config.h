/* config: skd's INI file (parsed by inih), validated as a whole at start.
 * Every option is documented in skd.conf.example. Errors read
 * "FILE:LINE: message" so that an operator finds the line at once. */
#ifndef SKD_CONFIG_H
#define SKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/cidr.h"
#include "../common/log.h"
#include "http.h"

#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_NETS 32
#define CONFIG_MAX_RECEIVERS 8
#define CONFIG_ZONE_SIZE 192 /* room for <63-byte label>.<zone> in 253 bytes */
#define CONFIG_ACME_NAMES 16 /* ACME_MAX_NAMES */

/* One "receiver = NAME HOST:PORT PSKFILE" line of [kvpsend]. */
typedef struct config_receiver {
    char name[64];
    struct sockaddr_storage addr;
    char *psk_file;
    int line;
} config_receiver_t;

typedef struct listen_addr {
    struct sockaddr_storage addr;
    char text[64]; /* as written: "127.0.0.1:8080", "[::1]:8080" */
    int line;
} listen_addr_t;

typedef struct config {
    char *path;
    /* [server] */
    unsigned worker_threads;
    size_t max_connections;
    size_t max_queued_jobs;
    uint64_t shutdown_timeout_ms;
    /* [limits] */
    http_limits_t http;
    size_t write_queue_bytes;
    uint64_t write_timeout_ms;
    /* [public] */
    listen_addr_t public_listen[CONFIG_MAX_LISTEN];
    size_t public_listen_count;
    listen_addr_t tls_listen[CONFIG_MAX_LISTEN];
    size_t tls_listen_count;
    char *tls_cert;
    char *tls_key;
    cidr_t proxy_protocol_from[CONFIG_MAX_NETS]; /* peers that must send PROXY v2 */
    size_t proxy_protocol_from_count;
    cidr_t trusted_proxies[CONFIG_MAX_NETS]; /* peers whose forwarding headers count */
    size_t trusted_proxies_count;
    /* [admin] */
    listen_addr_t admin_listen[CONFIG_MAX_LISTEN];
    size_t admin_listen_count;
    /* [hsm] (optional: without it skd serves no key routes) */
    char *hsm_module;
    char *hsm_token_label;
    /* [audit] */
    char *audit_dir;
    /* [identity] */
    char *identity_signer_certs;
    /* [store] */
    char *store_path;
    /* [installations] (optional: without zone skd serves no installations API) */
    char *installations_zone;  /* lowercase, with the final dot: "sk.test." */
    char *enrolment_tokens;    /* file of tokens, one per line; NULL: open registration */
    uint64_t longpoll_wait_ms; /* a challenge PUT waits this long for the DNS servers */
    /* [kvpsend] (optional: without it challenge PUTs answer 503) */
    bool kvpsend;              /* the section is present */
    unsigned kvpsend_sender_id;
    config_receiver_t kvpsend_receivers[CONFIG_MAX_RECEIVERS];
    size_t kvpsend_receiver_count;
    uint64_t reconcile_interval_ms;
    /* [acme] (optional: skd obtains and renews the certificate of its TLS
     * listener; needs [installations] and [kvpsend]) */
    bool acme;                  /* the section is present */
    char *acme_directory;       /* the CA's directory URL (https) */
    char *acme_contact;         /* "mailto:..." or NULL */
    char *acme_names[CONFIG_ACME_NAMES]; /* "<label>.<zone>", lowercase, no final dot */
    size_t acme_name_count;
    char *acme_ca_bundle;       /* PEM roots to trust the CA with; NULL: the system's */
    char *acme_state_dir;       /* account key, order, ...; default <store dir>/acme */
    uint64_t acme_renew_before_ms; /* renew this long before expiry; 0: at two thirds of the lifetime */
    /* [log] */
    log_level_t log_level;
    bool access_log;
} config_t;

/* Loads and validates path; on failure returns -1 with "FILE:LINE: reason" in err. */
int config_load(config_t *cfg, const char *path, char *err, size_t err_len);
void config_free(config_t *cfg);

#endif
