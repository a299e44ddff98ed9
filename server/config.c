#include "config.h"

#include "../common/ini_file.h"
#include "../common/net.h"

#include <arpa/inet.h>
#include <limits.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parse_state {
    config_t *cfg;
    ini_file_t *ini; /* the file being read: its line, its first error */
    int tls_listen_line;
} parse_state_t;

/* Records the first error, at the line being parsed; returns 0 (stops inih). */
#define failf(st, ...) ini_fail((st)->ini, __VA_ARGS__)

static int parse_bool(const char *v, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}


static int add_listen(parse_state_t *st, listen_addr_t *list, size_t *count, const char *value) {
    if (*count == CONFIG_MAX_LISTEN)
        return failf(st, "too many listen addresses (at most %d)", CONFIG_MAX_LISTEN);
    listen_addr_t *l = &list[*count];
    if (strlen(value) >= sizeof l->text || net_parse_address(value, &l->addr) != 0)
        return failf(st, "bad address \"%s\" (want 127.0.0.1:8080 or [::1]:8080)", value);
    snprintf(l->text, sizeof l->text, "%s", value);
    l->line = st->ini->line;
    (*count)++;
    return 1;
}

static int set_string(char **slot, const char *value) {
    free(*slot);
    *slot = strdup(value);
    return *slot != NULL;
}

static int set_networks(parse_state_t *st, const char *name, const char *value, cidr_t *out, size_t *n) {
    char err[160];
    if (cidr_parse_list(value, out, CONFIG_MAX_NETS, n, err, sizeof err) != 0)
        return failf(st, "%s: %s", name, err);
    return 1;
}

/* "sk.test." or "sk.test": lowercase DNS labels of [a-z0-9-]; stored with
 * the final dot. */
static int set_zone(parse_state_t *st, const char *value) {
    size_t len = strlen(value);
    if (len && value[len - 1] == '.')
        len--;
    if (len == 0 || len + 2 > CONFIG_ZONE_SIZE)
        return failf(st, "zone: want a DNS name such as sk.test. (at most %d bytes)", CONFIG_ZONE_SIZE - 2);
    for (size_t i = 0, label = 0; i <= len; i++) {
        char c = i < len ? value[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || value[i - 1] == '-' || value[i - label] == '-')
                return failf(st, "zone: \"%s\" has an empty, too long or badly dashed label", value);
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            label++;
        } else {
            return failf(st, "zone: \"%s\": lowercase letters, digits, '-' and '.' only", value);
        }
    }
    free(st->cfg->installations_zone);
    if (!(st->cfg->installations_zone = malloc(len + 2)))
        return failf(st, "out of memory");
    memcpy(st->cfg->installations_zone, value, len);
    memcpy(st->cfg->installations_zone + len, ".", 2);
    return 1;
}

/* "names = api.sk.test, www.sk.test": checked against the zone later. */
static int set_acme_names(parse_state_t *st, const char *value) {
    config_t *cfg = st->cfg;
    for (size_t i = 0; i < cfg->acme_name_count; i++)
        free(cfg->acme_names[i]);
    cfg->acme_name_count = 0;
    for (const char *p = value; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (!len)
            break;
        if (cfg->acme_name_count == CONFIG_ACME_NAMES)
            return failf(st, "names: at most %d", CONFIG_ACME_NAMES);
        if (len >= 254)
            return failf(st, "names: a name has at most 253 bytes");
        char *name = strndup(p, p[len - 1] == '.' ? len - 1 : len);
        if (!name)
            return failf(st, "out of memory");
        for (size_t i = 0; i < cfg->acme_name_count; i++) {
            if (strcmp(cfg->acme_names[i], name) == 0) {
                free(name);
                return failf(st, "names: \"%.*s\" given twice", (int)len, p);
            }
        }
        cfg->acme_names[cfg->acme_name_count++] = name;
        p += len;
    }
    if (!cfg->acme_name_count)
        return failf(st, "names: want one name or more, comma-separated");
    return 1;
}

/* "receiver = NAME HOST:PORT PSKFILE" */
static int add_receiver(parse_state_t *st, const char *value) {
    config_t *cfg = st->cfg;
    if (cfg->kvpsend_receiver_count == CONFIG_MAX_RECEIVERS)
        return failf(st, "too many receivers (at most %d)", CONFIG_MAX_RECEIVERS);
    char name[64], addr[80], path[4096];
    int used = 0;
    if (sscanf(value, "%63s %79s %4095s %n", name, addr, path, &used) != 3 || value[used] != '\0')
        return failf(st, "receiver: want \"NAME HOST:PORT PSKFILE\"");
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return failf(st, "receiver: name \"%s\": letters, digits, '-', '_' and '.' only", name);
    }
    for (size_t i = 0; i < cfg->kvpsend_receiver_count; i++) {
        if (strcmp(cfg->kvpsend_receivers[i].name, name) == 0)
            return failf(st, "receiver: name \"%s\" used twice", name);
    }
    config_receiver_t *r = &cfg->kvpsend_receivers[cfg->kvpsend_receiver_count];
    if (net_parse_address(addr, &r->addr) != 0)
        return failf(st, "receiver: bad address \"%s\" (want 127.0.0.1:5354 or [::1]:5354)", addr);
    if (!(r->psk_file = strdup(path)))
        return failf(st, "out of memory");
    snprintf(r->name, sizeof r->name, "%s", name);
    r->line = st->ini->line;
    cfg->kvpsend_receiver_count++;
    return 1;
}

/* A numeric option: its section, name, bounds and where it goes. */
typedef struct num_option {
    const char *section;
    const char *name;
    uint64_t min, max;
    size_t offset;
    int size; /* sizeof the field: 4 (unsigned) or 8 */
} num_option_t;

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size options are stored as 64-bit numbers");

#define NUM(sec, nm, lo, hi, field)                                                                       \
    {sec, nm, lo, hi, offsetof(config_t, field), (int)sizeof(((config_t *)0)->field)}

static const num_option_t num_options[] = {
    NUM("server", "worker_threads", 1, 128, worker_threads),
    NUM("server", "max_connections", 1, 1000000, max_connections),
    NUM("server", "max_queued_jobs", 1, 1000000, max_queued_jobs),
    NUM("server", "shutdown_timeout_ms", 0, 3600000, shutdown_timeout_ms),
    NUM("limits", "max_header_bytes", 256, 1048576, http.max_header_bytes),
    NUM("limits", "max_headers", 1, 1000, http.max_headers),
    NUM("limits", "max_body_bytes", 0, 1073741824, http.max_body_bytes),
    NUM("limits", "max_pipelined", 1, 1024, http.max_pipelined),
    NUM("limits", "header_timeout_ms", 1, 3600000, http.header_timeout_ms),
    NUM("limits", "body_timeout_ms", 1, 3600000, http.body_timeout_ms),
    NUM("limits", "idle_timeout_ms", 1, 3600000, http.idle_timeout_ms),
    NUM("limits", "request_timeout_ms", 1, 3600000, http.request_timeout_ms),
    NUM("limits", "write_queue_bytes", 4096, 1073741824, write_queue_bytes),
    NUM("limits", "write_timeout_ms", 1, 3600000, write_timeout_ms),
    NUM("installations", "longpoll_wait_ms", 1, 3600000, longpoll_wait_ms),
    NUM("kvpsend", "sender_id", 1, 4294967295u, kvpsend_sender_id),
    NUM("kvpsend", "reconcile_interval_ms", 10, 3600000, reconcile_interval_ms),
    NUM("acme", "renew_before_ms", 1, 10ull * 366 * 86400 * 1000, acme_renew_before_ms),
};

static int on_option(ini_file_t *f, void *user, const char *section, const char *name, const char *value) {
    parse_state_t *st = user;
    st->ini = f;
    config_t *cfg = st->cfg;
    if (!name)
        return 1; /* a section header alone */
    if (strcmp(section, "kvpsend") == 0)
        cfg->kvpsend = true;
    if (strcmp(section, "acme") == 0)
        cfg->acme = true;
    for (size_t i = 0; i < sizeof num_options / sizeof num_options[0]; i++) {
        const num_option_t *o = &num_options[i];
        if (strcmp(section, o->section) != 0 || strcmp(name, o->name) != 0)
            continue;
        uint64_t n;
        if (ini_parse_u64(value, o->min, o->max, &n) != 0) {
            return failf(st, "%s: want a whole number from %llu to %llu", name, (unsigned long long)o->min,
                         (unsigned long long)o->max);
        }
        char *field = (char *)cfg + o->offset;
        if (o->size == sizeof(unsigned)) {
            unsigned u = (unsigned)n;
            memcpy(field, &u, sizeof u);
        } else {
            memcpy(field, &n, sizeof n); /* size_t and uint64_t: both 8 bytes here */
        }
        return 1;
    }
    if (strcmp(section, "public") == 0) {
        if (strcmp(name, "listen") == 0)
            return add_listen(st, cfg->public_listen, &cfg->public_listen_count, value);
        if (strcmp(name, "tls_listen") == 0) {
            if (!st->tls_listen_line)
                st->tls_listen_line = st->ini->line;
            return add_listen(st, cfg->tls_listen, &cfg->tls_listen_count, value);
        }
        if (strcmp(name, "proxy_protocol_from") == 0)
            return set_networks(st, name, value, cfg->proxy_protocol_from, &cfg->proxy_protocol_from_count);
        if (strcmp(name, "trusted_proxies") == 0)
            return set_networks(st, name, value, cfg->trusted_proxies, &cfg->trusted_proxies_count);
        if (strcmp(name, "tls_cert") == 0)
            return set_string(&cfg->tls_cert, value);
        if (strcmp(name, "tls_key") == 0)
            return set_string(&cfg->tls_key, value);
    } else if (strcmp(section, "admin") == 0) {
        if (strcmp(name, "listen") == 0)
            return add_listen(st, cfg->admin_listen, &cfg->admin_listen_count, value);
    } else if (strcmp(section, "hsm") == 0) {
        if (strcmp(name, "module") == 0)
            return set_string(&cfg->hsm_module, value);
        if (strcmp(name, "token_label") == 0) {
            if (strlen(value) > 32)
                return failf(st, "token_label: at most 32 characters");
            return set_string(&cfg->hsm_token_label, value);
        }
    } else if (strcmp(section, "audit") == 0) {
        if (strcmp(name, "dir") == 0)
            return set_string(&cfg->audit_dir, value);
    } else if (strcmp(section, "identity") == 0) {
        if (strcmp(name, "signer_certs") == 0)
            return set_string(&cfg->identity_signer_certs, value);
    } else if (strcmp(section, "store") == 0) {
        if (strcmp(name, "path") == 0)
            return set_string(&cfg->store_path, value);
    } else if (strcmp(section, "installations") == 0) {
        if (strcmp(name, "zone") == 0)
            return set_zone(st, value);
        if (strcmp(name, "enrolment_tokens") == 0)
            return set_string(&cfg->enrolment_tokens, value);
    } else if (strcmp(section, "kvpsend") == 0) {
        if (strcmp(name, "receiver") == 0)
            return add_receiver(st, value);
    } else if (strcmp(section, "acme") == 0) {
        if (strcmp(name, "directory") == 0) {
            if (strncmp(value, "https://", 8) != 0 || !value[8])
                return failf(st, "directory: want the CA's https:// directory URL");
            return set_string(&cfg->acme_directory, value);
        }
        if (strcmp(name, "contact") == 0) {
            if (strncmp(value, "mailto:", 7) != 0 || !value[7])
                return failf(st, "contact: want a mailto: address");
            return set_string(&cfg->acme_contact, value);
        }
        if (strcmp(name, "names") == 0)
            return set_acme_names(st, value);
        if (strcmp(name, "ca_bundle") == 0)
            return set_string(&cfg->acme_ca_bundle, value);
        if (strcmp(name, "state_dir") == 0)
            return set_string(&cfg->acme_state_dir, value);
    } else if (strcmp(section, "log") == 0) {
        if (strcmp(name, "level") == 0) {
            if (log_level_parse(value, &cfg->log_level) != 0)
                return failf(st, "level: want error, warn, info or debug, not \"%s\"", value);
            return 1;
        }
        if (strcmp(name, "access_log") == 0) {
            if (parse_bool(value, &cfg->access_log) != 0)
                return failf(st, "access_log: want true or false, not \"%s\"", value);
            return 1;
        }
    }
    return failf(st, "unknown option \"%s\" in section [%s]", name, section);
}

static void set_defaults(config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->worker_threads = 4;
    cfg->max_connections = 10000;
    cfg->max_queued_jobs = 4096;
    cfg->shutdown_timeout_ms = 10000;
    cfg->http = (http_limits_t){
        .max_header_bytes = 16384,
        .max_headers = 64,
        .max_body_bytes = 65536,
        .max_pipelined = 32,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .request_timeout_ms = 30000,
    };
    cfg->write_queue_bytes = 1024 * 1024;
    cfg->write_timeout_ms = 30000;
    cfg->log_level = LOG_INFO;
    cfg->access_log = true;
    cfg->longpoll_wait_ms = 25000;
    cfg->reconcile_interval_ms = 1000;
}

/* The [installations] and [kvpsend] sections as a whole; 0 or -1 with err. */
static int check_installations(const config_t *cfg, const char *path, char *err, size_t err_len) {
    if (!cfg->installations_zone) {
        if (cfg->enrolment_tokens || cfg->kvpsend) {
            snprintf(err, err_len, "%s: %s needs [installations] zone", path,
                     cfg->kvpsend ? "[kvpsend]" : "[installations]");
            return -1;
        }
        return 0;
    }
    if (!cfg->store_path) {
        snprintf(err, err_len, "%s: [installations] needs [store] path (installations live there)", path);
        return -1;
    }
    if (cfg->longpoll_wait_ms >= cfg->http.request_timeout_ms) {
        snprintf(err, err_len,
                 "%s: [installations] longpoll_wait_ms (%llu) must be below [limits] request_timeout_ms (%llu)", path,
                 (unsigned long long)cfg->longpoll_wait_ms, (unsigned long long)cfg->http.request_timeout_ms);
        return -1;
    }
    if (cfg->kvpsend && (!cfg->kvpsend_sender_id || !cfg->kvpsend_receiver_count)) {
        snprintf(err, err_len, "%s: [kvpsend] needs sender_id and at least one receiver", path);
        return -1;
    }
    for (size_t i = 1; i < cfg->kvpsend_receiver_count; i++) {
        if (cfg->kvpsend_receivers[i].addr.ss_family != cfg->kvpsend_receivers[0].addr.ss_family) {
            snprintf(err, err_len, "%s:%d: [kvpsend] receivers must all be IPv4 or all IPv6 (one socket)", path,
                     cfg->kvpsend_receivers[i].line);
            return -1;
        }
    }
    return 0;
}

/* A label skd may take for itself: 1..63 of [a-z0-9-], no '-' at either
 * end, and not a name server's "ns<digits>" (certs_api.c's rules). */
static bool acme_label_ok(const char *label, size_t len) {
    if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-')
        return false;
    bool ns = len > 2 && label[0] == 'n' && label[1] == 's';
    for (size_t i = 0; i < len; i++) {
        char c = label[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (i >= 2 && (c < '0' || c > '9'))
            ns = false;
    }
    return !ns;
}

/* The [acme] section as a whole, and its defaults (state_dir next to the
 * store; the certificate and key there unless [public] names them). */
static int check_acme(config_t *cfg, const char *path, char *err, size_t err_len) {
    if (!cfg->acme)
        return 0;
    if (!cfg->installations_zone || !cfg->kvpsend) {
        snprintf(err, err_len,
                 "%s: [acme] needs [installations] zone and [kvpsend]: skd publishes its own dns-01 values "
                 "through them", path);
        return -1;
    }
    if (!cfg->acme_directory || !cfg->acme_name_count) {
        snprintf(err, err_len, "%s: [acme] needs directory and names", path);
        return -1;
    }
    const char *zone = cfg->installations_zone;
    size_t zlen = strlen(zone) - 1; /* without the final dot */
    for (size_t i = 0; i < cfg->acme_name_count; i++) {
        const char *n = cfg->acme_names[i];
        size_t len = strlen(n);
        const char *dot = strchr(n, '.');
        if (!dot || len != (size_t)(dot - n) + 1 + zlen || strncmp(dot + 1, zone, zlen) != 0 ||
            !acme_label_ok(n, (size_t)(dot - n))) {
            snprintf(err, err_len, "%s: [acme] names: \"%s\" is not <label>.%.*s (label: lowercase letters, digits "
                     "and '-'; not ns<digits>)", path, n, (int)zlen, zone);
            return -1;
        }
    }
    if (!cfg->acme_state_dir) {
        char *copy = strdup(cfg->store_path);
        char *dir = copy ? dirname(copy) : NULL;
        size_t len = dir ? strlen(dir) + sizeof "/acme" : 0;
        if (dir && (cfg->acme_state_dir = malloc(len)))
            snprintf(cfg->acme_state_dir, len, "%s/acme", dir);
        free(copy);
    }
    const char *files[2] = {"cert.pem", "key.pem"};
    char **slots[2] = {&cfg->tls_cert, &cfg->tls_key};
    for (int i = 0; i < 2 && cfg->acme_state_dir; i++) {
        if (*slots[i])
            continue;
        size_t len = strlen(cfg->acme_state_dir) + 1 + strlen(files[i]) + 1;
        if ((*slots[i] = malloc(len)))
            snprintf(*slots[i], len, "%s/%s", cfg->acme_state_dir, files[i]);
    }
    if (!cfg->acme_state_dir || !cfg->tls_cert || !cfg->tls_key) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

int config_load(config_t *cfg, const char *path, char *err, size_t err_len) {
    set_defaults(cfg);
    cfg->path = strdup(path);
    if (!cfg->path) {
        snprintf(err, err_len, "out of memory");
        config_free(cfg);
        return -1;
    }
    parse_state_t st = {.cfg = cfg};
    bool failed = ini_file_parse(path, on_option, &st, err, err_len) != 0;
    cfg->http.max_output_bytes = cfg->write_queue_bytes < 65536 ? cfg->write_queue_bytes : 65536;
    /* Before the TLS check: [acme] may provide tls_cert and tls_key. */
    if (!failed && check_installations(cfg, path, err, err_len) != 0)
        failed = true;
    if (!failed && check_acme(cfg, path, err, err_len) != 0)
        failed = true;
    if (!failed && cfg->tls_listen_count && (!cfg->tls_cert || !cfg->tls_key)) {
        snprintf(err, err_len, "%s:%d: tls_listen needs tls_cert and tls_key in [public]", path, st.tls_listen_line);
        failed = true;
    }
    if (!failed && (cfg->hsm_module != NULL) != (cfg->hsm_token_label != NULL)) {
        snprintf(err, err_len, "%s: [hsm] needs both module and token_label", path);
        failed = true;
    }
    if (!failed && cfg->public_listen_count + cfg->tls_listen_count == 0) {
        snprintf(err, err_len, "%s: [public] needs at least one listen or tls_listen address", path);
        failed = true;
    }
    if (failed) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(config_t *cfg) {
    free(cfg->path);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->hsm_module);
    free(cfg->hsm_token_label);
    free(cfg->store_path);
    free(cfg->identity_signer_certs);
    free(cfg->audit_dir);
    free(cfg->installations_zone);
    free(cfg->enrolment_tokens);
    for (size_t i = 0; i < cfg->kvpsend_receiver_count; i++) {
        free(cfg->kvpsend_receivers[i].psk_file);
        cfg->kvpsend_receivers[i].psk_file = NULL;
    }
    for (size_t i = 0; i < cfg->acme_name_count; i++) {
        free(cfg->acme_names[i]);
        cfg->acme_names[i] = NULL;
    }
    cfg->acme_name_count = 0;
    free(cfg->acme_directory);
    free(cfg->acme_contact);
    free(cfg->acme_ca_bundle);
    free(cfg->acme_state_dir);
    cfg->acme_directory = cfg->acme_contact = cfg->acme_ca_bundle = cfg->acme_state_dir = NULL;
    cfg->installations_zone = cfg->enrolment_tokens = NULL;
    cfg->identity_signer_certs = cfg->audit_dir = NULL;
    cfg->path = cfg->tls_cert = cfg->tls_key = NULL;
    cfg->hsm_module = cfg->hsm_token_label = cfg->store_path = NULL;
}
