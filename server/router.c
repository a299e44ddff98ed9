#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void router_init(router_t *r) {
    r->routes = NULL;
    r->nroutes = 0;
}

static void route_free(route_t *rt) {
    for (size_t i = 0; i < rt->nsegments; i++)
        free(rt->segments[i]);
}

void router_free(router_t *r) {
    for (size_t i = 0; i < r->nroutes; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    router_init(r);
}

static bool is_param(const char *segment) {
    size_t n = strlen(segment);
    return n > 2 && segment[0] == '{' && segment[n - 1] == '}';
}

int router_add(router_t *r, int method, const char *pattern, route_handler_t handler, void *ctx) {
    if (pattern[0] != '/')
        return -1;
    route_t rt = {.method = method, .pattern = pattern, .handler = handler, .ctx = ctx};
    size_t nparams = 0;
    const char *p = pattern + 1;
    while (*p || rt.nsegments == 0) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (rt.nsegments == ROUTER_MAX_SEGMENTS)
            goto fail;
        char *seg = strndup(p, len);
        if (!seg)
            goto fail;
        rt.segments[rt.nsegments++] = seg;
        if (is_param(seg)) {
            if (++nparams > HTTP_MAX_PARAMS)
                goto fail;
            seg[len - 1] = '\0'; /* keep "{Name" and use seg + 1 as the name */
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    route_t *grown = realloc(r->routes, (r->nroutes + 1) * sizeof *grown);
    if (!grown)
        goto fail;
    r->routes = grown;
    rt.index = r->nroutes;
    r->routes[r->nroutes++] = rt;
    return 0;
fail:
    route_free(&rt);
    return -1;
}

/* Compares the path with a route's segments; fills req's parameters. The
 * values point into path_copy, which is split at the slashes. */
static bool match_segments(const route_t *rt, char *const *parts, size_t nparts, http_request_t *req) {
    if (nparts != rt->nsegments)
        return false;
    size_t np = 0;
    for (size_t i = 0; i < nparts; i++) {
        const char *seg = rt->segments[i];
        if (seg[0] == '{') { /* a parameter, stored as "{Name" */
            if (parts[i][0] == '\0')
                return false; /* a parameter is never empty */
            req->param_names[np] = seg + 1;
            req->param_values[np] = parts[i];
            np++;
        } else if (strcmp(seg, parts[i]) != 0) {
            return false;
        }
    }
    req->nparams = np;
    return true;
}

router_result_t router_match(const router_t *r, http_request_t *req, char *allow, size_t allow_len) {
    /* Split a copy of the path; parameter values point into it and live as
     * long as the request. */
    free(req->path_parts);
    req->path_parts = strdup(req->path + 1);
    if (!req->path_parts)
        return ROUTER_NOT_FOUND;
    char *copy = req->path_parts;
    char *parts[ROUTER_MAX_SEGMENTS];
    size_t nparts = 0;
    char *p = copy;
    for (;;) {
        if (nparts == ROUTER_MAX_SEGMENTS)
            return ROUTER_NOT_FOUND;
        parts[nparts++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    bool path_known = false;
    size_t allow_used = 0;
    if (allow_len)
        allow[0] = '\0';
    int method = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    for (size_t i = 0; i < r->nroutes; i++) {
        const route_t *rt = &r->routes[i];
        if (!match_segments(rt, parts, nparts, req))
            continue;
        if (rt->method == method) {
            req->route = rt;
            return ROUTER_FOUND;
        }
        path_known = true;
        const char *name = llhttp_method_name((llhttp_method_t)rt->method);
        int n = snprintf(allow + allow_used, allow_len - allow_used, "%s%s%s", allow_used ? ", " : "", name,
                         rt->method == HTTP_GET ? ", HEAD" : "");
        if (n > 0 && (size_t)n < allow_len - allow_used)
            allow_used += (size_t)n;
    }
    req->nparams = 0;
    return path_known ? ROUTER_BAD_METHOD : ROUTER_NOT_FOUND;
}
