/* sk cert issue / renew: the ACME machine (acme/acme.h) on a libuv loop,
 * with dns-01 values set through skd and the state directory as its
 * memory (cert_state.h). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../acme/acme.h"
#include "cert.h"
#include "cert_skd.h"
#include "cert_state.h"

static const char *prog = "sk cert issue";

/* Set by SIGTERM/SIGINT in sk cert renew --daemon: finish cleanly. */
static volatile sig_atomic_t stopping;

static void say(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (f == stderr)
        fprintf(f, "%s: ", prog);
    vfprintf(f, fmt, ap);
    fprintf(f, "\n");
    fflush(f);
    va_end(ap);
}

typedef struct issue {
    uv_loop_t loop;
    acme_http_t http;
    uv_timer_t timer;
    uv_timer_t watch;       /* notices `stopping` */
    uv_work_t work;
    acme_t m;
    const char *dir;
    skd_installation_t inst[ACME_MAX_NAMES];
    size_t ninst;
    json_t *state;          /* acme.json */
    skd_call_t calls[ACME_MAX_NAMES];
    size_t calls_left;
    bool setting;           /* the calls set values (else they delete them) */
    char call_error[512];
    EVP_PKEY *new_key;
    bool stopped;
    int result;
} issue_t;

static void feed(issue_t *s, const acme_input_t *in);

static void stop(issue_t *s, int result) {
    if (s->stopped)
        return;
    s->stopped = true;
    s->result = result;
    acme_http_close(&s->http);
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->watch, NULL);
}

static void on_watch(uv_timer_t *t) {
    issue_t *s = t->data;
    if (!stopping)
        return;
    say(stderr, "stopped by a signal; the order resumes on the next run");
    stop(s, 1);
}

static void on_answer(int status, const acme_http_response_t *res, const char *error, void *arg) {
    issue_t *s = arg;
    acme_input_t in = acme_http_input(status, res, error);
    feed(s, &in);
}

static void on_timer(uv_timer_t *t) { feed(t->data, NULL); }

/* The certificate key, off the loop, kept before finalizing with it. */
static void make_key(uv_work_t *w) {
    issue_t *s = w->data;
    s->new_key = acme_key_new_p256();
    if (s->new_key && cert_write_key(s->dir, "order-key.pem", s->new_key) < 0) {
        EVP_PKEY_free(s->new_key);
        s->new_key = NULL;
    }
}

static void key_made(uv_work_t *w, int status) {
    issue_t *s = w->data;
    if (status < 0 || !s->new_key) {
        say(stderr, "cannot make or write the certificate key in %s", s->dir);
        stop(s, 1);
        return;
    }
    say(stdout, "certificate key made");
    acme_input_t in = {.kind = ACME_IN_KEY, .key = s->new_key};
    feed(s, &in);
    EVP_PKEY_free(s->new_key);
    s->new_key = NULL;
}

static void call_done(skd_call_t *c, int status, long http_status, const char *body, const char *error) {
    issue_t *s = c->data;
    if ((status < 0 || http_status != 200) && !s->call_error[0]) {
        if (status < 0)
            snprintf(s->call_error, sizeof s->call_error, "skd: %s", error);
        else
            snprintf(s->call_error, sizeof s->call_error, "skd: HTTP %ld %.400s", http_status, body);
        for (char *p = s->call_error; *p; p++)
            if (*p == '\n')
                *p = ' ';
    }
    if (--s->calls_left)
        return;
    if (!s->setting) {
        if (s->call_error[0])
            say(stderr, "warning: deleting the dns-01 values: %s", s->call_error);
        else
            say(stdout, "dns-01 values deleted");
        feed(s, NULL);
        return;
    }
    acme_input_t in = {.kind = ACME_IN_CHALLENGES_SET, .ok = !s->call_error[0], .error = s->call_error};
    feed(s, &in);
}

/* One skd call per value, all at once; each through the installation of its name. */
static int challenge_calls(issue_t *s, const acme_action_t *a, bool set) {
    s->setting = set;
    s->call_error[0] = '\0';
    s->calls_left = a->nchallenges;
    for (size_t i = 0; i < a->nchallenges; i++) {
        const skd_installation_t *inst = NULL;
        for (size_t k = 0; k < s->ninst; k++)
            if (strncmp(s->inst[k].name, a->challenges[i].name, strlen(a->challenges[i].name)) == 0 &&
                strcmp(s->inst[k].name + strlen(a->challenges[i].name), ".") == 0)
                inst = &s->inst[k];
        skd_call_t *c = &s->calls[i];
        memset(c, 0, sizeof *c);
        c->http = &s->http;
        c->inst = inst;
        c->method = set ? "PUT" : "DELETE";
        c->repeat_202 = set;
        c->cb = call_done;
        c->data = s;
        if (!inst)
            return -1;
        snprintf(c->path, sizeof c->path, "/api/v1/installations/%s/challenge", inst->id);
        snprintf(c->payload, sizeof c->payload, "{\"value\":\"%s\"}", a->challenges[i].value);
    }
    for (size_t i = 0; i < a->nchallenges; i++)
        if (skd_call_start(&s->calls[i]) < 0)
            return -1;
    return 0;
}

static int save_state(issue_t *s) { return cert_write_json(s->dir, "acme.json", s->state); }

static int save_cert(issue_t *s, const acme_action_t *a) {
    if (cert_write_pair(s->dir, a->chain, a->chain_len, a->cert_key) < 0)
        return -1;
    json_object_del(s->state, "order");
    if (save_state(s) < 0)
        return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/order-key.pem", s->dir);
    unlink(path);
    return 0;
}

static void feed(issue_t *s, const acme_input_t *in) {
    if (s->stopped)
        return;
    acme_action_t a;
    acme_advance(&s->m, in, uv_now(&s->loop), &a);
    /* A step's line comes once what it needs saved is saved. */
    char line[sizeof s->m.progress];
    snprintf(line, sizeof line, "%s", acme_progress(&s->m));
    if (line[0] && a.kind != ACME_ACT_SAVE_ACCOUNT && a.kind != ACME_ACT_SAVE_ORDER)
        say(stdout, "%s", line);
    switch (a.kind) {
    case ACME_ACT_REQUEST: {
        acme_http_request_t r = {.method = a.request.method,
                                 .url = a.request.url,
                                 .body = a.request.body,
                                 .body_len = a.request.body_len,
                                 .content_type = a.request.content_type,
                                 .accept = a.request.accept};
        if (acme_http_send(&s->http, &r, on_answer, s) < 0) {
            say(stderr, "cannot start a request to %s", a.request.url);
            stop(s, 1);
        }
        return;
    }
    case ACME_ACT_WAIT:
        uv_timer_start(&s->timer, on_timer, a.wake_at > uv_now(&s->loop) ? a.wake_at - uv_now(&s->loop) : 0, 0);
        return;
    case ACME_ACT_SET_CHALLENGES:
        say(stdout, "setting %zu dns-01 value%s through skd", a.nchallenges, a.nchallenges == 1 ? "" : "s");
        if (challenge_calls(s, &a, true) < 0) {
            say(stderr, "no installation in the state can set the dns-01 value of %s", a.challenges[0].name);
            stop(s, 1);
        }
        return;
    case ACME_ACT_DELETE_CHALLENGES:
        if (challenge_calls(s, &a, false) < 0)
            feed(s, NULL);
        return;
    case ACME_ACT_NEED_KEY:
        s->work.data = s;
        if (uv_queue_work(&s->loop, &s->work, make_key, key_made) < 0) {
            say(stderr, "cannot start making the key");
            stop(s, 1);
        }
        return;
    case ACME_ACT_SAVE_ACCOUNT:
        json_object_set_new(s->state, "account", json_string(acme_account_url(&s->m)));
        break;
    case ACME_ACT_SAVE_ORDER:
        if (acme_order_url(&s->m)[0])
            json_object_set_new(s->state, "order", json_string(acme_order_url(&s->m)));
        else
            json_object_del(s->state, "order");
        break;
    case ACME_ACT_SAVE_CERT:
        if (save_cert(s, &a) < 0) {
            say(stderr, "cannot write %s/cert.pem and key.pem", s->dir);
            stop(s, 1);
            return;
        }
        say(stdout, "certificate written to %s/cert.pem, key to %s/key.pem", s->dir, s->dir);
        feed(s, NULL);
        return;
    case ACME_ACT_DONE:
        say(stdout, "done");
        stop(s, 0);
        return;
    case ACME_ACT_FAILED:
        say(stderr, "%s", acme_failure(&s->m));
        stop(s, 1);
        return;
    }
    if (save_state(s) < 0) { /* SAVE_ACCOUNT, SAVE_ORDER */
        say(stderr, "cannot write %s/acme.json", s->dir);
        stop(s, 1);
        return;
    }
    if (line[0])
        say(stdout, "%s", line);
    feed(s, NULL);
}

/* The order, account and keys of an earlier run, if they belong to this CA and these names. */
static int run_machine(issue_t *s, const acme_config_t *cfg, const char *ca_bundle);

static int issue(const char *dir, const char *directory, const char *ca_bundle, char **also, size_t nalso,
                 long timeout_s, const char *eab_kid, const char *eab_key) {
    issue_t *s = calloc(1, sizeof *s);
    const char *names[ACME_MAX_NAMES];
    char name_buf[ACME_MAX_NAMES][256];
    EVP_PKEY *account_key = NULL, *order_key = NULL;
    buf_t current; /* the certificate being renewed */
    buf_init(&current, 0);
    int result = 1;
    if (!s)
        return 1;
    s->dir = dir;
    if (nalso + 1 > ACME_MAX_NAMES) {
        say(stderr, "at most %d names", ACME_MAX_NAMES);
        goto out;
    }
    for (size_t i = 0; i <= nalso; i++) {
        const char *d = i == 0 ? dir : also[i - 1];
        if (skd_installation_load(d, &s->inst[i]) < 0) {
            say(stderr, "%s holds no registered installation (sk cert register)", d);
            goto out;
        }
        s->ninst++;
        snprintf(name_buf[i], sizeof name_buf[i], "%s", s->inst[i].name);
        size_t n = strlen(name_buf[i]);
        if (n && name_buf[i][n - 1] == '.')
            name_buf[i][n - 1] = '\0';
        names[i] = name_buf[i];
    }
    s->state = cert_read_json(dir, "acme.json");
    const char *saved_dir = json_string_value(json_object_get(s->state, "directory"));
    if (!s->state || !saved_dir || strcmp(saved_dir, directory) != 0) { /* another CA: start afresh */
        json_decref(s->state);
        s->state = json_object();
    } else if (cert_read_file(dir, "cert.pem", &current) < 0) { /* this CA's: the new one replaces it */
        buf_free(&current);
    }
    json_t *jnames = json_array();
    for (size_t i = 0; i <= nalso; i++)
        json_array_append_new(jnames, json_string(names[i]));
    if (!json_equal(json_object_get(s->state, "names"), jnames))
        json_object_del(s->state, "order"); /* an order for other names */
    json_object_set_new(s->state, "names", jnames);
    json_object_set_new(s->state, "directory", json_string(directory));
    if (ca_bundle)
        json_object_set_new(s->state, "ca_bundle", json_string(ca_bundle));
    json_t *also_list = json_array();
    for (size_t i = 0; i < nalso; i++)
        json_array_append_new(also_list, json_string(also[i]));
    json_object_set_new(s->state, "also", also_list);
    /* The account key is on disk before the account exists. */
    account_key = cert_read_key(dir, "account-key.pem");
    if (!account_key) {
        json_object_del(s->state, "account");
        account_key = acme_key_new_p256();
        if (!account_key || cert_write_key(dir, "account-key.pem", account_key) < 0) {
            say(stderr, "cannot write %s/account-key.pem", dir);
            goto out;
        }
        say(stdout, "account key made");
    }
    const char *order = json_string_value(json_object_get(s->state, "order"));
    if (order) {
        order_key = cert_read_key(dir, "order-key.pem");
        say(stdout, "resuming order %s", order);
    }
    if (save_state(s) < 0) {
        say(stderr, "cannot write %s/acme.json", dir);
        goto out;
    }
    acme_config_t cfg = {
        .eab_kid = eab_kid,
        .eab_hmac_key = eab_key,
        .directory_url = directory,
        .account_key = account_key,
        .account_url = json_string_value(json_object_get(s->state, "account")),
        .order_url = order,
        .cert_key = order_key,
        .cert_pem = current.len ? current.data : NULL,
        .cert_pem_len = current.len,
        .names = names,
        .nnames = nalso + 1,
        .timeout_ms = (uint64_t)timeout_s * 1000,
    };
    result = run_machine(s, &cfg, ca_bundle);
out:
    for (size_t i = 0; i < s->ninst; i++)
        EVP_PKEY_free(s->inst[i].key);
    json_decref(s->state);
    EVP_PKEY_free(account_key);
    EVP_PKEY_free(order_key);
    buf_free(&current);
    free(s);
    return result;
}

/* Runs one machine on a loop of its own to its end: 0 done, 1 failed. */
static int run_machine(issue_t *s, const acme_config_t *cfg, const char *ca_bundle) {
    if (acme_init(&s->m, cfg) < 0) {
        say(stderr, "%s", acme_failure(&s->m));
        acme_free(&s->m);
        return 1;
    }
    if (uv_loop_init(&s->loop) < 0 || acme_http_init(&s->http, &s->loop, ca_bundle) < 0 ||
        uv_timer_init(&s->loop, &s->timer) < 0 || uv_timer_init(&s->loop, &s->watch) < 0) {
        say(stderr, "cannot set up the event loop");
        acme_free(&s->m);
        return 1;
    }
    s->timer.data = s;
    s->watch.data = s;
    uv_timer_start(&s->watch, on_watch, 200, 200);
    s->result = 1;
    feed(s, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    acme_free(&s->m);
    return s->result;
}

static void usage_issue(FILE *f) {
    fprintf(f, "Usage: sk cert issue --acme DIRECTORY-URL [--ca-bundle PEM] --state DIR [--also DIR]... [--timeout S]\n"
               "                     [--eab-kid KID --eab-hmac-key B64URL]\n"
               "Gets a certificate for the installation's name (and the names of the installations in\n"
               "the --also state directories) with dns-01 values set through skd; writes DIR/cert.pem\n"
               "(the chain) and DIR/key.pem. An order interrupted earlier is resumed.\n");
}

int sk_cert_issue(int argc, char **argv) {
    prog = argv[0];
    static const struct option opts[] = {{"acme", 1, 0, 'a'},    {"ca-bundle", 1, 0, 'c'}, {"state", 1, 0, 'd'},
                                         {"also", 1, 0, 'o'},    {"timeout", 1, 0, 't'},   {"help", 0, 0, 'h'},
                                         {"eab-kid", 1, 0, 'k'}, {"eab-hmac-key", 1, 0, 'm'}, {0, 0, 0, 0}};
    const char *directory = NULL, *ca = NULL, *dir = NULL, *eab_kid = NULL, *eab_key = NULL;
    char *also[ACME_MAX_NAMES];
    size_t nalso = 0;
    long timeout = 300;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': directory = optarg; break;
        case 'c': ca = optarg; break;
        case 'd': dir = optarg; break;
        case 'o':
            if (nalso + 1 >= ACME_MAX_NAMES) {
                say(stderr, "at most %d names", ACME_MAX_NAMES);
                return 2;
            }
            also[nalso++] = optarg;
            break;
        case 't': timeout = strtol(optarg, NULL, 10); break;
        case 'k': eab_kid = optarg; break;
        case 'm': eab_key = optarg; break;
        case 'h': usage_issue(stdout); return 0;
        default: usage_issue(stderr); return 2;
        }
    }
    if (!directory || !dir || optind != argc || timeout <= 0 || !eab_kid != !eab_key) {
        usage_issue(stderr);
        return 2;
    }
    return issue(dir, directory, ca, also, nalso, timeout, eab_kid, eab_key);
}

/* Asks the CA of st for its renewal window of pem (RFC 9773) and plans
 * the renewal of that certificate (valid nb..na) into *plan. */
static void ask_renewal_info(const char *dir, json_t *st, const buf_t *pem, time_t nb, time_t na,
                             acme_renewal_plan_t *plan) {
    const char *name = "-";
    EVP_PKEY *key = cert_read_key(dir, "account-key.pem"); /* signs nothing; the machine wants one */
    issue_t *s = key ? calloc(1, sizeof *s) : NULL;
    acme_config_t cfg = {.op = ACME_OP_RENEWAL_INFO,
                         .directory_url = json_string_value(json_object_get(st, "directory")),
                         .account_key = key,
                         .names = &name,
                         .nnames = 1,
                         .cert_pem = pem->data,
                         .cert_pem_len = pem->len,
                         .timeout_ms = 60000};
    if (!s) {
        plan->start = plan->end = 0;
        plan->at = acme_renew_at(nb, na);
        plan->recheck_ms = 0;
        EVP_PKEY_free(key);
        return;
    }
    s->dir = dir;
    run_machine(s, &cfg, json_string_value(json_object_get(st, "ca_bundle")));
    acme_renewal_plan(&s->m, nb, na, time(NULL), plan);
    char at[32];
    struct tm tm;
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&plan->at, &tm));
    if (plan->start)
        say(stdout, "renewal at %s, in the CA's window (renewalInfo)", at);
    else if (acme_state(&s->m) == ACME_DONE)
        say(stdout, "the CA offers no renewal window: renewal at %s, two thirds into the lifetime", at);
    else
        say(stdout, "no renewal window (%s): renewal at %s, two thirds into the lifetime", acme_failure(&s->m), at);
    free(s);
    EVP_PKEY_free(key);
}

/* When DIR/cert.pem is due for renewal (0: now, no usable certificate): in
 * the CA's renewal window, else two thirds into its lifetime. The plan is
 * kept in acme.json ("renewal", for that certificate) until the CA may be
 * asked again (its Retry-After): *check (0: whenever). */
static time_t renew_time(const char *dir, json_t *st, time_t *check) {
    buf_t pem, id;
    buf_init(&pem, 0);
    buf_init(&id, 0);
    BIO *bio = cert_read_file(dir, "cert.pem", &pem) == 0 ? BIO_new_mem_buf(pem.data, (int)pem.len) : NULL;
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    time_t at = 0, now = time(NULL);
    struct tm tb, ta;
    *check = 0;
    if (x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tb) == 1 && ASN1_TIME_to_tm(X509_get0_notAfter(x), &ta) == 1) {
        time_t nb = timegm(&tb), na = timegm(&ta);
        json_t *saved = json_object_get(st, "renewal");
        const char *saved_cert = json_string_value(json_object_get(saved, "cert"));
        acme_renewal_plan_t plan = {0};
        if (acme_ari_cert_id(pem.data, pem.len, &id) < 0) {
            at = acme_renew_at(nb, na); /* a certificate the CA's renewalInfo cannot name */
        } else if (saved_cert && strcmp(saved_cert, id.data) == 0 &&
                   now < (*check = (time_t)json_integer_value(json_object_get(saved, "check")))) {
            at = (time_t)json_integer_value(json_object_get(saved, "at"));
        } else {
            if (saved_cert && strcmp(saved_cert, id.data) == 0) {
                plan.start = (time_t)json_integer_value(json_object_get(saved, "start"));
                plan.end = (time_t)json_integer_value(json_object_get(saved, "end"));
                plan.at = (time_t)json_integer_value(json_object_get(saved, "at"));
            }
            ask_renewal_info(dir, st, &pem, nb, na, &plan);
            at = plan.at;
            *check = now + (time_t)(plan.recheck_ms / 1000);
            if (plan.recheck_ms > 0) {
                json_object_set_new(st, "renewal",
                                    json_pack("{s:s, s:I, s:I, s:I, s:I}", "cert", id.data, "start",
                                              (json_int_t)plan.start, "end", (json_int_t)plan.end, "at",
                                              (json_int_t)plan.at, "check",
                                              (json_int_t)(now + plan.recheck_ms / 1000)));
                if (cert_write_json(dir, "acme.json", st) < 0)
                    say(stderr, "warning: cannot write %s/acme.json", dir);
            }
        }
    }
    X509_free(x);
    buf_free(&pem);
    buf_free(&id);
    return at;
}

static void on_stop_signal(int sig) {
    (void)sig;
    stopping = 1;
}

/* Sleeps for seconds, or until a stop signal. */
static void nap(time_t seconds) {
    struct timespec left = {.tv_sec = seconds};
    while (!stopping && nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
}

static void usage_renew(FILE *f) {
    fprintf(f, "Usage: sk cert renew --state DIR [--daemon]\n"
               "Renews DIR/cert.pem with the CA of the last sk cert issue at a random time in the\n"
               "CA's renewal window (RFC 9773 renewalInfo), or once two thirds of its lifetime\n"
               "have passed when the CA offers none; --daemon: keep doing so.\n");
}

int sk_cert_renew(int argc, char **argv) {
    prog = argv[0];
    static const struct option opts[] = {{"state", 1, 0, 'd'}, {"daemon", 0, 0, 'D'}, {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL;
    bool daemon = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'D': daemon = true; break;
        case 'h': usage_renew(stdout); return 0;
        default: usage_renew(stderr); return 2;
        }
    }
    if (!dir || optind != argc) {
        usage_renew(stderr);
        return 2;
    }
    if (daemon) {
        struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: sleeps end */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    unsigned failures = 0;
    for (;;) {
        if (stopping) {
            say(stdout, "stopped");
            return 0;
        }
        json_t *st = cert_read_json(dir, "acme.json");
        const char *directory = json_string_value(json_object_get(st, "directory"));
        if (!directory) {
            json_decref(st);
            say(stderr, "%s/acme.json names no CA: run sk cert issue first", dir);
            return 1;
        }
        time_t check, at = renew_time(dir, st, &check), now = time(NULL);
        if (at > now) {
            char when[64];
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
            say(stdout, "not due until %s", when);
            json_decref(st);
            if (!daemon)
                return 0;
            time_t wake = check > now && check < at ? check : at; /* the CA's window may move */
            nap(wake - now > 3600 ? 3600 : wake - now);
            continue;
        }
        char *also[ACME_MAX_NAMES];
        size_t nalso = 0;
        json_t *v;
        size_t i;
        json_array_foreach(json_object_get(st, "also"), i, v) {
            if (json_is_string(v) && nalso + 1 < ACME_MAX_NAMES)
                also[nalso++] = strdup(json_string_value(v));
        }
        char *dir_url = strdup(directory);
        const char *ca = json_string_value(json_object_get(st, "ca_bundle"));
        char *ca_copy = ca ? strdup(ca) : NULL;
        json_decref(st);
        int rc = issue(dir, dir_url, ca_copy, also, nalso, 300, NULL, NULL);
        for (size_t k = 0; k < nalso; k++)
            free(also[k]);
        free(dir_url);
        free(ca_copy);
        if (!daemon)
            return rc;
        /* Failed: try again later, backing off up to an hour. */
        failures = rc ? failures + 1 : 0;
        if (rc && !stopping)
            nap(failures > 6 ? 3600 : 60 << (failures - 1));
    }
}

/* ------------------------------------------------------------ revoke, rollover */

/* Runs op with the CA, account and account key of DIR's last issue. */
static int account_op(const char *dir, acme_config_t *cfg) {
    json_t *st = cert_read_json(dir, "acme.json");
    const char *directory = json_string_value(json_object_get(st, "directory"));
    const char *account = json_string_value(json_object_get(st, "account"));
    EVP_PKEY *key = cert_read_key(dir, "account-key.pem");
    int rc = 1;
    if (!directory || !account || !key) {
        say(stderr, "%s holds no ACME account: run sk cert issue first", dir);
    } else {
        issue_t *s = calloc(1, sizeof *s);
        const char *name = "-"; /* operations on the account name nothing */
        cfg->directory_url = directory;
        cfg->account_url = account;
        cfg->account_key = key;
        cfg->names = &name;
        cfg->nnames = 1;
        if (s) {
            s->dir = dir;
            rc = run_machine(s, cfg, json_string_value(json_object_get(st, "ca_bundle")));
            free(s);
        }
    }
    EVP_PKEY_free(key);
    json_decref(st);
    return rc;
}

static void usage_revoke(FILE *f) {
    fprintf(f, "Usage: sk cert revoke --state DIR [--reason N]\n"
               "Revokes DIR/cert.pem (signed with the account key; N: an RFC 5280 reason code, default 0).\n");
}

int sk_cert_revoke(int argc, char **argv) {
    prog = argv[0];
    static const struct option opts[] = {{"state", 1, 0, 'd'}, {"reason", 1, 0, 'r'}, {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL;
    long reason = 0;
    char *end = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r': reason = strtol(optarg, &end, 10); break;
        case 'h': usage_revoke(stdout); return 0;
        default: usage_revoke(stderr); return 2;
        }
    }
    if (!dir || optind != argc || (end && *end) || reason < 0 || reason > 10) {
        usage_revoke(stderr);
        return 2;
    }
    buf_t pem;
    buf_init(&pem, 0);
    if (cert_read_file(dir, "cert.pem", &pem) < 0) {
        buf_free(&pem);
        say(stderr, "no %s/cert.pem", dir);
        return 1;
    }
    acme_config_t cfg = {.op = ACME_OP_REVOKE, .cert_pem = pem.data, .cert_pem_len = pem.len,
                         .revoke_reason = (int)reason};
    int rc = account_op(dir, &cfg);
    buf_free(&pem);
    return rc;
}

static void usage_rollover(FILE *f) {
    fprintf(f, "Usage: sk cert rollover --state DIR\n"
               "Replaces the ACME account key (RFC 8555 7.3.5). The new key is written to\n"
               "DIR/account-key.new.pem first and becomes DIR/account-key.pem once the CA agreed.\n");
}

int sk_cert_rollover(int argc, char **argv) {
    prog = argv[0];
    static const struct option opts[] = {{"state", 1, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': usage_rollover(stdout); return 0;
        default: usage_rollover(stderr); return 2;
        }
    }
    if (!dir || optind != argc) {
        usage_rollover(stderr);
        return 2;
    }
    /* A new key left by an interrupted rollover is used again: the CA may know it already. */
    EVP_PKEY *key = cert_read_key(dir, "account-key.new.pem");
    if (!key) {
        key = acme_key_new_p256();
        if (!key || cert_write_key(dir, "account-key.new.pem", key) < 0) {
            EVP_PKEY_free(key);
            say(stderr, "cannot write %s/account-key.new.pem", dir);
            return 1;
        }
    }
    acme_config_t cfg = {.op = ACME_OP_KEY_CHANGE, .new_account_key = key};
    int rc = account_op(dir, &cfg);
    EVP_PKEY_free(key);
    if (rc != 0)
        return rc;
    if (cert_rename(dir, "account-key.new.pem", "account-key.pem") < 0) {
        say(stderr, "the CA took the new key, but renaming %s/account-key.new.pem failed: rename it to account-key.pem",
            dir);
        return 1;
    }
    say(stdout, "account key replaced");
    return 0;
}
