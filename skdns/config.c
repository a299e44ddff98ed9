#include "config.h"

#include "../common/ini_file.h"
#include "../common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parse_state {
    skdns_config_t *cfg;
    ini_file_t *ini;  /* the file being read: its line, its first error */
    bool listen_set; /* the first listen line replaces the default */
    bool mname_set, rname_set;
} parse_state_t;

/* Records the first error, at the line being parsed; returns 0 (stops inih). */
#define failf(st, ...) ini_fail((st)->ini, __VA_ARGS__)

/* "127.0.0.1:5353" or "[::1]:5353", kept as text too. */
static int parse_address(const char *text, skdns_addr_t *out) {
    memset(out, 0, sizeof *out);
    if (strlen(text) >= sizeof out->text || net_parse_address(text, &out->addr) != 0)
        return -1;
    snprintf(out->text, sizeof out->text, "%s", text);
    return 0;
}

/* ---- numbers ---- */

typedef struct num_option {
    const char *section, *name;
    uint64_t min, max;
    size_t offset;
    size_t size; /* of the field: 4 or 8 */
} num_option_t;

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size options are stored as 64-bit numbers");

#define NUM(sec, nm, lo, hi, field)                                                                       \
    {sec, nm, lo, hi, offsetof(skdns_config_t, field), sizeof(((skdns_config_t *)0)->field)}

static const num_option_t num_options[] = {
    NUM("dns", "ttl", 0, 86400, zone.ttl),
    NUM("dns", "apex_ttl", 0, 604800, zone.apex_ttl),
    NUM("dns", "soa_serial", 0, UINT32_MAX, zone.serial),
    NUM("dns", "soa_refresh", 0, INT32_MAX, zone.refresh),
    NUM("dns", "soa_retry", 0, INT32_MAX, zone.retry),
    NUM("dns", "soa_expire", 0, INT32_MAX, zone.expire),
    NUM("dns", "soa_minimum", 0, 86400, zone.minimum),
    NUM("dns", "max_records", 1, 100000000, zone.max_records),
    NUM("dns", "buffers", 1, 1000000, buffers),
    NUM("dns", "rate_limit", 0, 10000000, rate_limit.rate),
    NUM("dns", "rate_limit_burst", 1, 10000000, rate_limit.burst),
    NUM("dns", "rate_limit_slip", 0, 100, rate_limit.slip),
    NUM("dns", "rate_limit_ipv4_prefix", 1, 32, rate_limit.ipv4_prefix),
    NUM("dns", "rate_limit_ipv6_prefix", 1, 64, rate_limit.ipv6_prefix),
    NUM("dns", "rate_limit_table", 16, 100000000, rate_limit.table_size),
    NUM("dns", "tcp_max_connections", 1, 1000000, tcp_max_connections),
    NUM("dns", "tcp_idle_timeout_ms", 1, 3600000, tcp_idle_timeout_ms),
    NUM("dns", "tcp_max_pipelined", 1, 1024, tcp_max_pipelined),
    NUM("kvpsync", "startup_grace_ms", 0, 3600000, startup_grace_ms),
    NUM("kvpsync", "tombstone_ms", 0, 3600000, tombstone_ms),
    NUM("kvpsync", "max_keys", 0, 100000000, max_keys),
};

static int set_number(parse_state_t *st, const num_option_t *o, const char *value) {
    uint64_t n;
    if (ini_parse_u64(value, o->min, o->max, &n) != 0)
        return failf(st, "%s: want a whole number from %llu to %llu", o->name, (unsigned long long)o->min,
                     (unsigned long long)o->max);
    char *field = (char *)st->cfg + o->offset;
    if (o->size == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)n;
        memcpy(field, &u, sizeof u);
    } else {
        memcpy(field, &n, sizeof n);
    }
    return 1;
}

/* ---- [dns] ---- */

static int set_name(parse_state_t *st, const char *name, const char *value, uint8_t *out) {
    if (dns_name_from_text(value, out) < 0)
        return failf(st, "%s: \"%s\" is not a domain name", name, value);
    return 1;
}

/* ns = NAME [ADDRESS ...] */
static int add_ns(parse_state_t *st, const char *value) {
    zone_config_t *z = &st->cfg->zone;
    if (z->n_ns == ZONE_MAX_NS)
        return failf(st, "ns: at most %d", ZONE_MAX_NS);
    zone_ns_t *ns = &z->ns[z->n_ns];
    memset(ns, 0, sizeof *ns);
    char *copy = strdup(value), *save = NULL;
    if (!copy)
        return failf(st, "out of memory");
    char *word = strtok_r(copy, " \t", &save);
    int ok = word && dns_name_from_text(word, ns->name) > 0;
    if (!ok)
        failf(st, "ns: want a name and its addresses if it is in the zone: \"ns1.sk.test. 192.0.2.53\"");
    while (ok && (word = strtok_r(NULL, " \t", &save))) {
        if (ns->n_a < ZONE_MAX_GLUE && inet_pton(AF_INET, word, ns->a[ns->n_a]) == 1)
            ns->n_a++;
        else if (ns->n_aaaa < ZONE_MAX_GLUE && inet_pton(AF_INET6, word, ns->aaaa[ns->n_aaaa]) == 1)
            ns->n_aaaa++;
        else
            ok = failf(st, "ns: \"%s\" is not an address (or more than %d of a family)", word, ZONE_MAX_GLUE);
    }
    free(copy);
    if (ok)
        z->n_ns++;
    return ok;
}

static int add_caa(parse_state_t *st, const char *tag, const char *value) {
    zone_config_t *z = &st->cfg->zone;
    if (z->n_caa == ZONE_MAX_CAA)
        return failf(st, "at most %d CAA records", ZONE_MAX_CAA);
    zone_caa_t *caa = &z->caa[z->n_caa];
    if (strlen(value) >= sizeof caa->value)
        return failf(st, "caa_%s: at most %zu characters", tag, sizeof caa->value - 1);
    for (const char *p = value; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"')
            return failf(st, "caa_%s: printable characters only, no quotes", tag);
    caa->flags = 0;
    snprintf(caa->tag, sizeof caa->tag, "%s", tag);
    snprintf(caa->value, sizeof caa->value, "%s", value);
    z->n_caa++;
    return 1;
}

static int add_listen(parse_state_t *st, const char *value) {
    skdns_config_t *cfg = st->cfg;
    if (!st->listen_set) {
        cfg->n_listen = 0;
        st->listen_set = true;
    }
    if (cfg->n_listen == SKDNS_MAX_LISTEN)
        return failf(st, "listen: at most %d addresses", SKDNS_MAX_LISTEN);
    if (parse_address(value, &cfg->listen[cfg->n_listen]) != 0)
        return failf(st, "listen: bad address \"%s\" (want 127.0.0.1:5353 or [::1]:5353)", value);
    cfg->n_listen++;
    return 1;
}

/* ---- [kvpsync] ---- */

/* sender = ID PSKFILE */
static int add_sender(parse_state_t *st, const char *value) {
    skdns_config_t *cfg = st->cfg;
    if (cfg->n_senders == ZONE_MAX_SENDERS)
        return failf(st, "sender: at most %d", ZONE_MAX_SENDERS);
    char id[16];
    size_t idlen = strcspn(value, " \t");
    const char *path = value + idlen + strspn(value + idlen, " \t");
    uint64_t n;
    if (idlen == 0 || idlen >= sizeof id || !*path)
        return failf(st, "sender: want \"ID PSKFILE\"");
    memcpy(id, value, idlen);
    id[idlen] = '\0';
    if (ini_parse_u64(id, 0, UINT32_MAX, &n) != 0)
        return failf(st, "sender: the id must be a whole number below 2^32");
    for (size_t i = 0; i < cfg->n_senders; i++)
        if (cfg->senders[i].id == n)
            return failf(st, "sender: id %s is listed twice (line %d)", id, cfg->senders[i].line);
    skdns_sender_t *s = &cfg->senders[cfg->n_senders];
    s->id = (uint32_t)n;
    s->line = st->ini->line;
    if (!(s->psk_path = strdup(path)))
        return failf(st, "out of memory");
    cfg->n_senders++;
    return 1;
}

static int on_option(ini_file_t *f, void *user, const char *section, const char *name, const char *value) {
    parse_state_t *st = user;
    st->ini = f;
    skdns_config_t *cfg = st->cfg;
    if (!name)
        return 1; /* a section header alone (inih built to report them) */
    if (strcmp(section, "dns") && strcmp(section, "kvpsync") && strcmp(section, "log"))
        return failf(st, "unknown section [%s]", section);
    for (size_t i = 0; i < sizeof num_options / sizeof num_options[0]; i++)
        if (strcmp(section, num_options[i].section) == 0 && strcmp(name, num_options[i].name) == 0)
            return set_number(st, &num_options[i], value);
    if (strcmp(section, "dns") == 0) {
        if (strcmp(name, "listen") == 0)
            return add_listen(st, value);
        if (strcmp(name, "zone") == 0)
            return set_name(st, name, value, cfg->zone.apex);
        if (strcmp(name, "ns") == 0)
            return add_ns(st, value);
        if (strcmp(name, "soa_mname") == 0)
            return (st->mname_set = true) && set_name(st, name, value, cfg->zone.soa_mname);
        if (strcmp(name, "soa_rname") == 0)
            return (st->rname_set = true) && set_name(st, name, value, cfg->zone.soa_rname);
        if (strcmp(name, "caa_issue") == 0 || strcmp(name, "caa_issuewild") == 0 ||
            strcmp(name, "caa_iodef") == 0)
            return add_caa(st, name + 4, value);
    } else if (strcmp(section, "kvpsync") == 0) {
        if (strcmp(name, "listen") == 0) {
            if (parse_address(value, &cfg->kvpsync_listen) != 0)
                return failf(st, "listen: bad address \"%s\" (want 127.0.0.1:5354 or [::1]:5354)", value);
            return 1;
        }
        if (strcmp(name, "sender") == 0)
            return add_sender(st, value);
    } else if (strcmp(section, "log") == 0) {
        if (strcmp(name, "level") == 0) {
            if (log_level_parse(value, &cfg->log_level) != 0)
                return failf(st, "level: want error, warn, info or debug");
            return 1;
        }
    }
    return failf(st, "unknown option \"%s\" in [%s]", name, section);
}

static void set_defaults(skdns_config_t *cfg) {
    parse_address("127.0.0.1:5353", &cfg->listen[0]);
    cfg->n_listen = 1;
    parse_address("127.0.0.1:5354", &cfg->kvpsync_listen);
    dns_name_from_text("sk.test", cfg->zone.apex);
    cfg->zone.ttl = 1;
    cfg->zone.apex_ttl = 3600;
    cfg->zone.serial = 1;
    cfg->zone.refresh = 3600;
    cfg->zone.retry = 600;
    cfg->zone.expire = 604800;
    cfg->zone.minimum = 1;
    cfg->zone.max_records = 1000000;
    cfg->buffers = 1024;
    cfg->rate_limit = (rl_config_t){.rate = 100, .burst = 200, .slip = 2, .ipv4_prefix = 24, .ipv6_prefix = 56,
                                    .table_size = 65536};
    cfg->tcp_max_connections = 256;
    cfg->tcp_idle_timeout_ms = 10000;
    cfg->tcp_max_pipelined = 16;
    cfg->log_level = LOG_INFO;
}

/* Defaults that depend on the zone, and checks across options. */
static int finish(parse_state_t *st) {
    zone_config_t *z = &st->cfg->zone;
    if (z->n_ns == 0)
        return failf(st, "[dns] needs at least one \"ns = NAME [ADDRESS...]\"");
    if (!st->mname_set)
        memcpy(z->soa_mname, z->ns[0].name, dns_name_len(z->ns[0].name));
    size_t apex_len = dns_name_len(z->apex);
    if (!st->rname_set) { /* hostmaster.<zone> */
        if (11 + apex_len > DNS_NAME_MAX)
            return failf(st, "the zone's name is too long for the default soa_rname");
        memcpy(z->soa_rname, "\x0ahostmaster", 11);
        memcpy(z->soa_rname + 11, z->apex, apex_len);
    }
    char why[160];
    zone_t *trial = zone_new(z, (const uint64_t[2]){0, 0}, why, sizeof why); /* the zone's own checks */
    if (!trial)
        return failf(st, "%s", why);
    zone_free(trial);
    return 1;
}

int skdns_config_load(skdns_config_t *cfg, const char *path, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    set_defaults(cfg);
    cfg->path = strdup(path);
    parse_state_t st = {.cfg = cfg};
    if (!cfg->path) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    bool failed = ini_file_parse(path, on_option, &st, err, err_len) != 0;
    if (!failed) {
        /* Checks across options: errors without a line. */
        ini_file_t whole = {.path = path, .err = err, .err_len = err_len};
        st.ini = &whole;
        finish(&st);
        failed = whole.failed;
    }
    if (failed) {
        skdns_config_free(cfg);
        return -1;
    }
    return 0;
}

void skdns_config_free(skdns_config_t *cfg) {
    for (size_t i = 0; i < cfg->n_senders; i++)
        free(cfg->senders[i].psk_path);
    cfg->n_senders = 0;
    free(cfg->path);
    cfg->path = NULL;
}
