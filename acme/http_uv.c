#include "http_uv.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

typedef struct acme_http_transfer {
    struct acme_http_transfer *next;
    acme_http_t *h;
    CURL *easy;
    struct curl_slist *headers;
    acme_http_cb cb;
    void *arg;
    acme_http_response_t res;
    int too_large;
    char error[CURL_ERROR_SIZE];
} transfer_t;

/* One watched socket. */
typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    acme_http_t *h;
} poll_ctx_t;

static void poll_closed(uv_handle_t *handle) { free(handle->data); }

static void transfer_free(transfer_t *t) {
    curl_slist_free_all(t->headers);
    buf_free(&t->res.body);
    free(t);
}

static void unlink_transfer(acme_http_t *h, transfer_t *t) {
    for (transfer_t **p = &h->transfers; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            return;
        }
}

static void check_done(acme_http_t *h) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer_t *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(h->multi, t->easy);
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->res.status);
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
        unlink_transfer(h, t);
        if (rc == CURLE_OK) {
            t->cb(0, &t->res, NULL, t->arg);
        } else {
            const char *why = t->too_large ? "answer too large" : t->error[0] ? t->error : curl_easy_strerror(rc);
            t->cb(-1, NULL, why, t->arg);
        }
        transfer_free(t);
    }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
    poll_ctx_t *p = handle->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(p->h->multi, p->fd, flags, &running);
    check_done(p->h);
}

static void on_timer(uv_timer_t *timer) {
    acme_http_t *h = timer->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
    (void)easy;
    acme_http_t *h = userp;
    poll_ctx_t *p = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (p) {
            uv_poll_stop(&p->poll);
            uv_close((uv_handle_t *)&p->poll, poll_closed);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p || uv_poll_init_socket(h->loop, &p->poll, fd) < 0) {
            free(p);
            return -1;
        }
        p->fd = fd;
        p->h = h;
        p->poll.data = p;
        curl_multi_assign(h->multi, fd, p);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&p->poll, events, on_poll) < 0 ? -1 : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    acme_http_t *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        return uv_timer_stop(&h->timer) < 0 ? -1 : 0;
    return uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0) < 0 ? -1 : 0;
}

int acme_http_init(acme_http_t *h, uv_loop_t *loop, const char *ca_bundle) {
    memset(h, 0, sizeof *h);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi || uv_timer_init(loop, &h->timer) < 0)
        return -1;
    h->timer.data = h;
    if (ca_bundle && !(h->ca_bundle = strdup(ca_bundle)))
        return -1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return 0;
}

/* Keeps a header's value (trimmed) if it is one of ours. */
static void keep_header(acme_http_response_t *r, const char *line, size_t len) {
    static const struct {
        const char *name;
        size_t off, size;
    } KEPT[] = {
        {"replay-nonce", offsetof(acme_http_response_t, replay_nonce), ACME_HTTP_HEADER_MAX},
        {"location", offsetof(acme_http_response_t, location), ACME_HTTP_HEADER_MAX},
        {"retry-after", offsetof(acme_http_response_t, retry_after), 64},
        {"content-type", offsetof(acme_http_response_t, content_type), 128},
    };
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    for (size_t i = 0; i < sizeof KEPT / sizeof KEPT[0]; i++) {
        if (strlen(KEPT[i].name) != nlen || strncasecmp(line, KEPT[i].name, nlen) != 0)
            continue;
        size_t vlen = (size_t)(end - v);
        if (vlen < KEPT[i].size) {
            char *dst = (char *)r + KEPT[i].off;
            memcpy(dst, v, vlen);
            dst[vlen] = '\0';
        }
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *arg) {
    transfer_t *t = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) { /* a new answer (after a 100): start over */
        t->res.replay_nonce[0] = t->res.location[0] = t->res.retry_after[0] = t->res.content_type[0] = '\0';
    } else {
        keep_header(&t->res, data, len);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    transfer_t *t = arg;
    if (buf_append(&t->res.body, data, size * n) < 0) {
        t->too_large = 1;
        return 0;
    }
    return size * n;
}

static int add_header(transfer_t *t, const char *name, const char *value) {
    if (!value)
        return 0;
    char line[ACME_HTTP_HEADER_MAX + 64];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(t->headers, line);
    if (!l)
        return -1;
    t->headers = l;
    return 0;
}

int acme_http_send(acme_http_t *h, const acme_http_request_t *req, acme_http_cb cb, void *arg) {
    if (h->closing)
        return -1;
    transfer_t *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->h = h;
    t->cb = cb;
    t->arg = arg;
    buf_init(&t->res.body, ACME_HTTP_BODY_MAX);
    CURL *e = t->easy = curl_easy_init();
    if (!e || add_header(t, "Content-Type", req->content_type) < 0 || add_header(t, "Accept", req->accept) < 0 ||
        add_header(t, "Authorization", req->authorization) < 0 || add_header(t, "Expect", "") < 0) {
        curl_easy_cleanup(e);
        transfer_free(t);
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : (long)ACME_HTTP_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "skd-acme/1");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    if (h->ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_bundle);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        transfer_free(t);
        return -1;
    }
    t->next = h->transfers;
    h->transfers = t;
    return 0;
}

void acme_http_close(acme_http_t *h) {
    if (!h->multi)
        return;
    h->closing = 1;
    while (h->transfers) {
        transfer_t *t = h->transfers;
        h->transfers = t->next;
        curl_multi_remove_handle(h->multi, t->easy);
        curl_easy_cleanup(t->easy);
        transfer_free(t);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    uv_close((uv_handle_t *)&h->timer, NULL);
    free(h->ca_bundle);
    h->ca_bundle = NULL;
}

acme_input_t acme_http_input(int status, const acme_http_response_t *res, const char *error) {
    acme_input_t in = {.kind = ACME_IN_TRANSPORT_ERROR, .error = error};
    if (status == 0) {
        in.kind = ACME_IN_RESPONSE;
        in.response = (acme_response_t){
            .status = (int)res->status,
            .replay_nonce = res->replay_nonce[0] ? res->replay_nonce : NULL,
            .location = res->location[0] ? res->location : NULL,
            .retry_after = res->retry_after[0] ? res->retry_after : NULL,
            .content_type = res->content_type[0] ? res->content_type : NULL,
            .body = res->body.data,
            .body_len = res->body.len,
            .wall = time(NULL),
        };
    }
    return in;
}
