#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int skhttp_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void skhttp_global_cleanup(void) {
    curl_global_cleanup();
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg) {
    buf_t *b = arg;
    size_t n = size * nmemb;
    return buf_append(b, data, n) == 0 ? n : 0; /* 0: curl fails with CURLE_WRITE_ERROR */
}

/* Errors worth another try: the network, not the peer's answer or our setup. */
static int transient(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static CURLcode once(CURL *c, const skhttp_opts_t *o, const char *method, const char *url, struct curl_slist *hdrs,
                     const char *body, skhttp_response_t *resp, char *cerr) {
    curl_easy_reset(c);
    resp->body.len = 0;
    resp->status = 0;
    cerr[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    char iface[128];
    if (o->bind_address) {
        snprintf(iface, sizeof iface, "host!%s", o->bind_address);
        curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
    }
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    return rc;
}

int skhttp_request(const skhttp_opts_t *o, const char *method, const char *url, const char *const *headers,
                   const char *body, skhttp_response_t *resp, int *tries, char *err, size_t errlen) {
    buf_init(&resp->body, o->max_body);
    resp->status = 0;
    if (tries)
        *tries = 0;
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    int ok = c != NULL;
    for (size_t i = 0; ok && headers && headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, headers[i]);
        ok = n != NULL;
        hdrs = n ? n : hdrs;
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        return -1;
    }
    char cerr[CURL_ERROR_SIZE];
    long wait = o->backoff_ms;
    CURLcode rc = CURLE_OK;
    int n = 0;
    for (;;) {
        n++;
        rc = once(c, o, method, url, hdrs, body, resp, cerr);
        if (rc == CURLE_OK || !transient(rc) || n >= o->attempts)
            break;
        sleep_ms(wait);
        wait *= 2;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (tries)
        *tries = n;
    if (rc == CURLE_OK)
        return 0;
    snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
    if (rc == CURLE_WRITE_ERROR)
        snprintf(err, errlen, "the answer is longer than %zu bytes", o->max_body);
    buf_free(&resp->body);
    return -1;
}
