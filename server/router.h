/* router: maps (method, path) to a handler; "{Name}" segments are parameters.
 *
 *   router_add(r, HTTP_POST, "/v1/encryption/{InstanceId}/generate-secret", h, ctx);
 *
 * A path that matches a route with another method gives 405 with Allow; HEAD
 * is served by the GET route. */
#ifndef SKD_ROUTER_H
#define SKD_ROUTER_H

#include "http.h"

typedef void (*route_handler_t)(http_request_t *req, void *ctx);

#define ROUTER_MAX_SEGMENTS 16

typedef struct route {
    int method;
    const char *pattern; /* also the route's name in metrics */
    char *segments[ROUTER_MAX_SEGMENTS];
    size_t nsegments;
    route_handler_t handler;
    void *ctx;
    size_t index; /* position in the router, for per-route metrics */
} route_t;

typedef struct router {
    route_t *routes;
    size_t nroutes;
} router_t;

typedef enum router_result {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,
    ROUTER_BAD_METHOD,
} router_result_t;

void router_init(router_t *r);
void router_free(router_t *r);
/* Returns 0, or -1 for a malformed pattern or no memory. */
int router_add(router_t *r, int method, const char *pattern, route_handler_t handler, void *ctx);
/* Matches req->path; on ROUTER_FOUND sets req->route and its parameters; on
 * ROUTER_BAD_METHOD writes the allowed methods ("GET, HEAD") into allow. */
router_result_t router_match(const router_t *r, http_request_t *req, char *allow, size_t allow_len);

#endif
