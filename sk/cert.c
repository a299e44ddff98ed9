/* sk cert register / challenge set|delete / issue / renew. */
#include "cert.h"

#include <getopt.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../acme/acme.h"
#include "cert_skd.h"
#include "cert_state.h"

#define MAX_ALSO (ACME_MAX_NAMES - 1)

static const char *prog = "sk cert";

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* ------------------------------------------------------------ installations */

/* One call to skd, run to its end on a loop of its own. */
typedef struct sync_call {
    int status;
    long http_status;
    char error[256];
    char body[4096];
} sync_call_t;

static void sync_done(skd_call_t *c, int status, long http_status, const char *body, const char *error) {
    sync_call_t *s = c->data;
    s->status = status;
    s->http_status = http_status;
    snprintf(s->error, sizeof s->error, "%s", error ? error : "");
    snprintf(s->body, sizeof s->body, "%s", body ? body : "");
}

static int run_call(skd_call_t *c, const char *ca_bundle, sync_call_t *s) {
    uv_loop_t loop;
    acme_http_t http;
    if (uv_loop_init(&loop) < 0)
        return -1;
    int rc = acme_http_init(&http, &loop, ca_bundle);
    memset(s, 0, sizeof *s);
    s->status = -1;
    snprintf(s->error, sizeof s->error, "no answer");
    c->http = &http;
    c->cb = sync_done;
    c->data = s;
    if (rc == 0 && skd_call_start(c) == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    acme_http_close(&http);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}

/* The "message" of an API error, or the body. */
static const char *api_error(const char *body, char *out, size_t size) {
    json_t *j = json_loads(body, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(out, size, "%s", m ? m : body);
    json_decref(j);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return out;
}

static void usage_register(FILE *f) {
    fprintf(f, "Usage: sk cert register --server URL --state DIR [--label LABEL] [--token TOKEN]\n"
               "Registers this installation with skd (a new P-256 key in DIR) and prints its name.\n");
}

int sk_cert_register(int argc, char **argv) {
    prog = argv[0];
    static const struct option opts[] = {{"server", 1, 0, 's'}, {"state", 1, 0, 'd'}, {"label", 1, 0, 'l'},
                                         {"token", 1, 0, 't'},  {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    const char *server = NULL, *dir = NULL, *label = NULL, *token = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'd': dir = optarg; break;
        case 'l': label = optarg; break;
        case 't': token = optarg; break;
        case 'h': usage_register(stdout); return 0;
        default: usage_register(stderr); return 2;
        }
    }
    if (!server || !dir || optind != argc) {
        usage_register(stderr);
        return 2;
    }
    if (mkdir(dir, 0700) < 0 && access(dir, W_OK) < 0)
        return die("cannot use the state directory %s", dir);
    skd_installation_t inst = {0};
    snprintf(inst.server, sizeof inst.server, "%s", server);
    size_t n = strlen(inst.server);
    while (n && inst.server[n - 1] == '/')
        inst.server[--n] = '\0';
    /* The key is kept before registering: a lost answer is retried with it. */
    inst.key = cert_read_key(dir, "installation-key.pem");
    if (!inst.key) {
        inst.key = acme_key_new_p256();
        if (!inst.key || cert_write_key(dir, "installation-key.pem", inst.key) < 0) {
            EVP_PKEY_free(inst.key);
            return die("cannot write %s/installation-key.pem", dir);
        }
    }
    skd_call_t call = {.inst = &inst, .method = "POST", .path = "/api/v1/installations", .jwk = true};
    json_t *payload = label ? json_pack("{s:s}", "label", label) : json_object();
    char *text = json_dumps(payload, JSON_COMPACT);
    snprintf(call.payload, sizeof call.payload, "%s", text);
    free(text);
    json_decref(payload);
    char auth[512];
    if (token) {
        snprintf(auth, sizeof auth, "Bearer %s", token);
        call.authorization = auth;
    }
    sync_call_t s;
    run_call(&call, NULL, &s);
    EVP_PKEY_free(inst.key);
    char why[512];
    if (s.status < 0)
        return die("%s: %s", server, s.error);
    if (s.http_status != 200 && s.http_status != 201)
        return die("registration refused (HTTP %ld): %s", s.http_status, api_error(s.body, why, sizeof why));
    json_t *ans = json_loads(s.body, 0, NULL);
    const char *id = json_string_value(json_object_get(ans, "id"));
    const char *name = json_string_value(json_object_get(ans, "name"));
    const char *lab = json_string_value(json_object_get(ans, "label"));
    if (!id || !name || !lab) {
        json_decref(ans);
        return die("skd's answer has no id, name or label");
    }
    json_t *state = json_pack("{s:s, s:s, s:s, s:s}", "server", inst.server, "id", id, "name", name, "label", lab);
    int rc = cert_write_json(dir, "installation.json", state);
    json_decref(state);
    if (rc < 0) {
        json_decref(ans);
        return die("cannot write %s/installation.json", dir);
    }
    printf("%s\n", name);
    json_decref(ans);
    return 0;
}

/* ------------------------------------------------------------ challenge set|delete */

static void usage_challenge(FILE *f, const char *what) {
    fprintf(f, "Usage: sk cert challenge %s VALUE --state DIR\n%s", what,
            strcmp(what, "set") == 0 ? "Publishes the dns-01 value; returns once every DNS server serves it.\n"
                                       : "Deletes the dns-01 value (\"all\": every value).\n");
}

static int challenge(int argc, char **argv, bool set) {
    prog = argv[0];
    const char *what = set ? "set" : "delete";
    static const struct option opts[] = {{"state", 1, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': usage_challenge(stdout, what); return 0;
        default: usage_challenge(stderr, what); return 2;
        }
    }
    if (!dir || optind != argc - 1) {
        usage_challenge(stderr, what);
        return 2;
    }
    const char *value = argv[optind];
    skd_installation_t inst;
    if (skd_installation_load(dir, &inst) < 0)
        return die("%s holds no registered installation (sk cert register)", dir);
    skd_call_t call = {.inst = &inst, .method = set ? "PUT" : "DELETE", .repeat_202 = set};
    snprintf(call.path, sizeof call.path, "/api/v1/installations/%s/challenge", inst.id);
    if (set || strcmp(value, "all") != 0)
        snprintf(call.payload, sizeof call.payload, "{\"value\":\"%.64s\"}", value);
    sync_call_t s;
    run_call(&call, NULL, &s);
    EVP_PKEY_free(inst.key);
    char why[512];
    if (s.status < 0)
        return die("%s: %s", inst.server, s.error);
    if (s.http_status != 200)
        return die("HTTP %ld: %s", s.http_status, api_error(s.body, why, sizeof why));
    step(set ? "served" : "deleted");
    return 0;
}

int sk_cert_challenge_set(int argc, char **argv) { return challenge(argc, argv, true); }
int sk_cert_challenge_delete(int argc, char **argv) { return challenge(argc, argv, false); }
