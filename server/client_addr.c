#include "client_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "../common/cidr.h"

static int addr_text(const struct sockaddr_storage *a, char *out, size_t len) {
    const void *addr = a->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                                               : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    char text[64];
    if ((a->ss_family != AF_INET && a->ss_family != AF_INET6) || !inet_ntop(a->ss_family, addr, text, sizeof text))
        return -1;
    return ip_normalize(text, out, len);
}

bool client_from_trusted_proxy(const conn_t *c, const config_t *cfg) {
    char peer[64];
    unsigned char raw[16];
    if (!cfg->trusted_proxies_count || addr_text(&c->peer_addr, peer, sizeof peer) != 0)
        return false;
    int family = strchr(peer, ':') ? AF_INET6 : AF_INET;
    return inet_pton(family, peer, raw) == 1 &&
           cidr_list_contains(cfg->trusted_proxies, cfg->trusted_proxies_count, family, raw);
}

int client_addr_of(const http_request_t *req, const config_t *cfg, char *out, size_t len) {
    const conn_t *c = req->conn->owner;
    if (addr_text(&c->client_addr, out, len) != 0)
        return -1;
    const char *xff = http_request_header(req, "X-Forwarded-For");
    if (!xff || !client_from_trusted_proxy(c, cfg))
        return 0; /* not a trusted proxy: its headers mean nothing */
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ')
        last++;
    return ip_normalize(last, out, len);
}
