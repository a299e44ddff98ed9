/* kvprecv: skdns's side of kvpsync on libuv. Owns a UDP socket bound to an
 * address, feeds every datagram to a kvps_receiver_t (owned by the caller)
 * and sends its replies back to the datagram's source.
 *
 * Bind a specific address, not a wildcard, on a host with several addresses:
 * the senders expect the reply from the address they sent to. */
#ifndef SKD_KVPRECV_H
#define SKD_KVPRECV_H

#include <sys/socket.h>

#include <uv.h>

#include "kvpsync.h"

typedef struct kvprecv kvprecv_t;

struct kvprecv {
    uv_udp_t udp;
    kvps_receiver_t *r;
    void (*close_cb)(kvprecv_t *);
    uint8_t rbuf[KVPS_MAX_PACKET + 1]; /* one more: longer datagrams are seen and dropped */
};

/* Returns 0 or a negative libuv error; nothing to close then (see udp.h for a
 * case never seen in practice). */
int kvprecv_init(kvprecv_t *k, uv_loop_t *loop, const struct sockaddr *addr, kvps_receiver_t *r);
/* cb (may be NULL) runs when k may be freed; free the receiver after. */
void kvprecv_close(kvprecv_t *k, void (*cb)(kvprecv_t *));

#endif
