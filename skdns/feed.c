#include "feed.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../common/log.h"
#include "../kvpsync/kvprecv.h"

struct feed {
    uv_loop_t *loop;
    zone_t *zone;
    const skdns_config_t *cfg;
    kvps_receiver_t *rx;
    kvprecv_t recv;
    bool listening;
    uint64_t rejected; /* events the zone refused (keys breaking the contract) */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void rejected(feed_t *f, size_t sender_index, const uint8_t *key, size_t klen) {
    if (f->rejected++ == 0) /* a bug of the sender's: say it once */
        log_warn("kvpsync: sender %u sent a key skdns does not serve (\"%.*s\"); such keys are ignored",
                 f->cfg->senders[sender_index].id, (int)(klen > 80 ? 80 : klen), (const char *)key);
}

static void on_put(void *arg, size_t sender_index, const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen) {
    feed_t *f = arg;
    if (zone_put(f->zone, (unsigned)sender_index, key, klen, val, vlen) != 0)
        rejected(f, sender_index, key, klen);
}

static void on_del(void *arg, size_t sender_index, const uint8_t *key, size_t klen) {
    feed_t *f = arg;
    if (zone_del(f->zone, (unsigned)sender_index, key, klen) != 0)
        rejected(f, sender_index, key, klen);
}

dns_feed_t feed_state(void *arg) {
    feed_t *f = arg;
    if (!f->rx)
        return DNS_FEED_POSITIVES;
    if (!kvps_receiver_any_synced(f->rx))
        return DNS_FEED_INCOMPLETE;
    uv_update_time(f->loop); /* a lease is never judged on a stale time */
    return kvps_receiver_negatives_ok(f->rx, uv_now(f->loop)) ? DNS_FEED_CONFIDENT : DNS_FEED_POSITIVES;
}

static int make_receiver(feed_t *f) {
    const skdns_config_t *cfg = f->cfg;
    kvps_receiver_sender_t senders[ZONE_MAX_SENDERS];
    char err[256];
    int r = 0;
    for (size_t i = 0; i < cfg->n_senders && r == 0; i++) {
        senders[i].sender_id = cfg->senders[i].id;
        if ((r = kvps_psk_load(cfg->senders[i].psk_path, &senders[i].psk, err, sizeof err)) != 0)
            log_error("%s:%d: sender %u: %s", cfg->path, cfg->senders[i].line, cfg->senders[i].id, err);
    }
    uint64_t id = 0;
    while (r == 0 && id == 0)
        if (getrandom(&id, sizeof id, 0) != sizeof id)
            r = -1;
    if (r == 0) {
        kvps_receiver_config_t rc = {
            .senders = senders,
            .n_senders = cfg->n_senders,
            .tombstone_ms = cfg->tombstone_ms,
            .startup_grace_ms = cfg->startup_grace_ms,
            .max_keys = cfg->max_keys,
        };
        static const kvps_receiver_events_t events = {on_put, on_del};
        uv_update_time(f->loop);
        f->rx = kvps_receiver_new(&rc, &events, f, uv_now(f->loop), id);
        if (!f->rx) {
            log_error("%s: cannot make the kvpsync receiver (bad settings or out of memory)", cfg->path);
            r = -1;
        }
    }
    memset(senders, 0, sizeof senders); /* the receiver keeps its own copy of the keys */
    return r;
}

int feed_start(feed_t **out, uv_loop_t *loop, const skdns_config_t *cfg, zone_t *zone) {
    feed_t *f = calloc(1, sizeof *f);
    *out = f;
    if (!f) {
        log_error("out of memory");
        return -1;
    }
    f->loop = loop;
    f->cfg = cfg;
    f->zone = zone;
    if (cfg->n_senders == 0) {
        log_warn("%s: no [kvpsync] sender: only the apex is served and negatives are SERVFAIL", cfg->path);
        return 0;
    }
    if (make_receiver(f) != 0)
        return -1;
    int r = kvprecv_init(&f->recv, loop, (const struct sockaddr *)&cfg->kvpsync_listen.addr, f->rx);
    if (r != 0) {
        log_error("kvpsync listener %s: %s", cfg->kvpsync_listen.text, uv_strerror(r));
        return -1;
    }
    f->listening = true;
    log_info("kvpsync receiver on %s, %zu sender(s)", cfg->kvpsync_listen.text, cfg->n_senders);
    return 0;
}

static void freed(feed_t *f) {
    void (*cb)(void *) = f->close_cb;
    void *arg = f->close_arg;
    if (f->rx)
        kvps_receiver_free(f->rx);
    free(f);
    if (cb)
        cb(arg);
}

static void recv_closed(kvprecv_t *k) {
    freed((feed_t *)((char *)k - offsetof(feed_t, recv)));
}

void feed_close(feed_t *f, void (*cb)(void *arg), void *arg) {
    f->close_cb = cb;
    f->close_arg = arg;
    if (f->listening)
        kvprecv_close(&f->recv, recv_closed);
    else if (!uv_is_closing((uv_handle_t *)&f->recv.udp))
        freed(f);
    /* else kvprecv_init failed past its bind (udp.h: never seen): libuv
     * still holds the handle and no callback says when it lets go; the
     * process is exiting, the feed is left to it. */
}
