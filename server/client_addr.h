/* client_addr: who a request comes from, from the transport only: the
 * socket, a PROXY v2 header from a configured load balancer (conn.c), or the
 * forwarding headers of a configured trusted proxy. Never the body. Shared by
 * every API that acts on the caller's address (key release, installations). */
#ifndef SKD_CLIENT_ADDR_H
#define SKD_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "conn.h"
#include "http.h"

/* Whether the immediate peer of c is one of cfg's [public] trusted_proxies:
 * only then do forwarding headers (X-Forwarded-For, -Proto, x-amzn-vpc-id) count. */
bool client_from_trusted_proxy(const conn_t *c, const config_t *cfg);

/* The client's address of req in canonical text (ip_normalize): the last
 * X-Forwarded-For entry when a trusted proxy sent one (the address it saw
 * connecting), else the connection's client address. -1 when unusable. */
int client_addr_of(const http_request_t *req, const config_t *cfg, char *out, size_t len);

#endif
