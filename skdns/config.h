/* config: skdns's INI file (parsed by inih), validated as a whole at start.
 * Every option is described in skdns.conf.example. Errors read
 * "FILE:LINE: message". */
#ifndef SKDNS_CONFIG_H
#define SKDNS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/log.h"
#include "ratelimit.h"
#include "zone.h"

#define SKDNS_MAX_LISTEN 8

typedef struct skdns_addr {
    struct sockaddr_storage addr;
    char text[64];
} skdns_addr_t;

typedef struct skdns_sender {
    uint32_t id;
    char *psk_path;
    int line;
} skdns_sender_t;

typedef struct skdns_config {
    char *path;
    /* [dns] */
    skdns_addr_t listen[SKDNS_MAX_LISTEN]; /* UDP and TCP on each */
    size_t n_listen;
    zone_config_t zone;
    size_t buffers; /* UDP responses waiting for the socket */
    rl_config_t rate_limit;
    size_t tcp_max_connections;
    uint64_t tcp_idle_timeout_ms;
    size_t tcp_max_pipelined; /* queries answered but not yet written, per connection */
    /* [kvpsync] */
    skdns_addr_t kvpsync_listen;
    uint32_t startup_grace_ms, tombstone_ms; /* 0: kvpsync's defaults */
    size_t max_keys;                         /* per sender; 0: kvpsync's default */
    skdns_sender_t senders[ZONE_MAX_SENDERS];
    size_t n_senders;
    /* [log] */
    log_level_t log_level;
} skdns_config_t;

/* Loads and validates path; on failure returns -1 with "FILE:LINE: reason" in err. */
int skdns_config_load(skdns_config_t *cfg, const char *path, char *err, size_t err_len);
void skdns_config_free(skdns_config_t *cfg);

#endif
