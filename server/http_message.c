/* Requests and responses: construction, lookup and freeing. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

const char *http_request_header(const http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *http_request_param(const http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}

void http_request_free(http_request_t *req) {
    if (!req)
        return;
    http_response_free(req->response);
    buf_free(&req->head);
    buf_free_secure(&req->body); /* bodies may carry key material */
    free(req->headers);
    free(req->offsets);
    free(req->path_parts);
    free(req);
}

http_response_t *http_response_new(int status) {
    http_response_t *resp = calloc(1, sizeof *resp);
    if (!resp)
        return NULL;
    resp->status = status;
    buf_init(&resp->headers, 0);
    buf_init(&resp->body, 0);
    return resp;
}

static bool header_safe(const char *s) {
    return strpbrk(s, "\r\n") == NULL;
}

int http_response_header(http_response_t *resp, const char *name, const char *value) {
    if (!header_safe(name) || !header_safe(value) || !*name || strchr(name, ':'))
        return -1;
    return buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

int http_response_body(http_response_t *resp, const char *content_type, const void *data, size_t len) {
    resp->content_type = content_type;
    resp->body.len = 0;
    return buf_append(&resp->body, data, len);
}

void http_response_free(http_response_t *resp) {
    if (!resp)
        return;
    buf_free(&resp->headers);
    buf_free_secure(&resp->body); /* bodies may carry wrapped secrets */
    free(resp);
}

const char *http_status_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void http_respond_empty(http_request_t *req, int status) {
    http_response_t *resp = http_response_new(status);
    if (resp)
        http_respond(req, resp);
}

void http_respond_json(http_request_t *req, int status, const char *json, size_t len) {
    http_response_t *resp = http_response_new(status);
    if (!resp || http_response_body(resp, "application/json", json, len) != 0) {
        http_response_free(resp);
        resp = http_response_new(500); /* empty 500 needs no allocation of a body */
        if (!resp)
            return;
    }
    http_respond(req, resp);
}

void http_respond_error(http_request_t *req, int status, const char *message) {
    json_t *obj = json_pack("{s:s}", "message", message);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text) {
        http_respond_json(req, status, text, strlen(text));
        free(text);
    } else {
        static const char fallback[] = "{\"message\":\"Internal error\"}";
        http_respond_json(req, 500, fallback, sizeof fallback - 1);
    }
}
