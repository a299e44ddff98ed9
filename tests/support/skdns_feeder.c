/* skdns-feeder: a test-only kvpsync sender (kvpsend) driven by lines on
 * stdin, so that the integration tests feed skdns through the real protocol.
 *
 *   skdns-feeder --id N --psk FILE --to 127.0.0.1:PORT [--lease-ms N]
 *
 * Commands, one per line:
 *   put KEY [VALUE]   prints "ok ID" (ID 0: refused)
 *   del KEY           prints "ok ID" (ID 0: absent)
 *   wait              prints "ready" once every update so far is served
 *                     (kvpsend_wait: at least one receiver healthy and all
 *                     healthy receivers acknowledged it)
 * EOF or "quit" closes the sender and exits 0. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kvpsync/kvpsend.h"

typedef struct feeder {
    uv_loop_t *loop;
    kvpsend_t send;
    uv_pipe_t in;
    char line[1024];
    size_t len;
    bool closing;
} feeder_t;

static void closed(kvpsend_t *k) {
    (void)k;
}

static void finish(feeder_t *f) {
    if (f->closing)
        return;
    f->closing = true;
    uv_close((uv_handle_t *)&f->in, NULL);
    kvpsend_close(&f->send, closed);
}

static void ready(int status, void *arg) {
    (void)arg;
    printf(status == 0 ? "ready\n" : "cancelled\n");
    fflush(stdout);
}

static void command(feeder_t *f, char *line) {
    char *save = NULL, *verb = strtok_r(line, " ", &save), *key = strtok_r(NULL, " ", &save);
    char *val = strtok_r(NULL, "", &save);
    if (!verb) {
        return;
    } else if (strcmp(verb, "put") == 0 && key) {
        printf("ok %llu\n", (unsigned long long)kvpsend_put(&f->send, key, val ? val : ""));
    } else if (strcmp(verb, "del") == 0 && key) {
        printf("ok %llu\n", (unsigned long long)kvpsend_del(&f->send, key));
    } else if (strcmp(verb, "wait") == 0) {
        kvpsend_stats_t st;
        kvpsend_stats(&f->send, &st);
        if (st.next_id <= 1 || kvpsend_ready(&f->send, st.next_id - 1))
            printf("ready\n");
        else if (!kvpsend_wait(&f->send, st.next_id - 1, ready, f))
            printf("error out of memory\n");
    } else if (strcmp(verb, "quit") == 0) {
        finish(f);
    } else {
        printf("error unknown command\n");
    }
    fflush(stdout);
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    feeder_t *f = h->data;
    *buf = uv_buf_init(f->line + f->len, (unsigned)(sizeof f->line - 1 - f->len));
}

static void on_input(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    feeder_t *f = s->data;
    if (nread < 0) {
        finish(f);
        return;
    }
    f->len += (size_t)nread;
    char *nl;
    while (!f->closing && (nl = memchr(f->line, '\n', f->len))) {
        *nl = '\0';
        size_t used = (size_t)(nl - f->line) + 1;
        command(f, f->line);
        memmove(f->line, f->line + used, f->len - used);
        f->len -= used;
    }
    if (f->len == sizeof f->line - 1) {
        fprintf(stderr, "skdns-feeder: line too long\n");
        finish(f);
    }
}

static int parse_addr(const char *text, struct sockaddr_storage *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    memset(out, 0, sizeof *out);
    if (!colon || (size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},
        {"psk", required_argument, NULL, 'p'},
        {"to", required_argument, NULL, 't'},
        {"lease-ms", required_argument, NULL, 'l'},
        {0},
    };
    kvpsend_receiver_config_t rc = {.name = "skdns"};
    kvpsend_config_t cfg = {.receivers = &rc, .n_receivers = 1};
    const char *psk = NULL, *to = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'i')
            cfg.sender_id = (uint32_t)strtoul(optarg, NULL, 10);
        else if (ch == 'p')
            psk = optarg;
        else if (ch == 't')
            to = optarg;
        else if (ch == 'l')
            cfg.lease_ms = (uint32_t)strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    char err[256];
    if (!psk || !to || parse_addr(to, &rc.addr) != 0) {
        fprintf(stderr, "usage: skdns-feeder --id N --psk FILE --to 127.0.0.1:PORT [--lease-ms N]\n");
        return 2;
    }
    if (kvps_psk_load(psk, &rc.psk, err, sizeof err) != 0) {
        fprintf(stderr, "skdns-feeder: %s\n", err);
        return 1;
    }
    feeder_t f = {.loop = uv_default_loop()};
    int r = kvpsend_init(&f.send, f.loop, &cfg);
    if (r != 0) {
        fprintf(stderr, "skdns-feeder: %s\n", uv_strerror(r));
        return 1;
    }
    uv_pipe_init(f.loop, &f.in, 0);
    f.in.data = &f;
    if (uv_pipe_open(&f.in, 0) != 0 || uv_read_start((uv_stream_t *)&f.in, alloc_in, on_input) != 0) {
        fprintf(stderr, "skdns-feeder: stdin must be a pipe\n");
        finish(&f);
    }
    uv_run(f.loop, UV_RUN_DEFAULT);
    uv_loop_close(f.loop);
    return 0;
}
