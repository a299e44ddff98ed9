/* wire: kvpsync datagrams (PROTOCOL.md "Wire format"), encoded and decoded
 * with their HMAC-SHA256 tag. Internal to kvpsync. */
#ifndef SKD_KVPS_WIRE_H
#define SKD_KVPS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvpsync.h"

#define KVPS_MAGIC 0x4B565053u /* "KVPS" */
#define KVPS_VERSION 1
#define KVPS_HDR_LEN 32
#define KVPS_TAG_LEN 32
#define KVPS_SEND_FIXED 56 /* header and the fields of every sender packet */
#define KVPS_UPDATE_FIXED 60
#define KVPS_ACK_BODY 72
#define KVPS_ACK_LEN (KVPS_ACK_BODY + KVPS_TAG_LEN)

enum kvps_type {
    KVPS_HELLO = 1,
    KVPS_START = 2,
    KVPS_UPDATE = 3,
    KVPS_FLUSH = 4,
    KVPS_KEEPALIVE = 5,
    KVPS_ACK = 6,
};

enum { KVPS_OP_PUT = 1, KVPS_OP_DEL = 2 };
enum { KVPS_FLAG_ACKED = 1, KVPS_FLAG_RESYNC = 2 };

typedef struct kvps_pkt {
    uint8_t type;
    uint32_t sender_id, gen;
    uint64_t receiver_id, session;
    /* sender packets */
    uint64_t sent_ms, anchor_ms;
    uint32_t lease_ms, seq;
    uint8_t op;
    const uint8_t *key, *val;
    size_t klen, vlen;
    /* ACK */
    uint64_t echo_ms, receiver_ms, cur_session;
    uint32_t cur_gen, ack_next, ack_seq;
    uint8_t flags;
} kvps_pkt_t;

/* Checks framing and the exact length for the type, without the MAC; sets
 * *type and *sender_id (to find the key). Returns 0 or -1. */
int kvps_wire_peek(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *sender_id);
/* Full check (framing, length, MAC in constant time, field ranges); on 0 the
 * pointers of out point into buf. */
int kvps_wire_decode(const uint8_t *buf, size_t len, const kvps_psk_t *psk, kvps_pkt_t *out);
/* Returns the datagram's length, 0 when cap is too small. */
size_t kvps_wire_encode(const kvps_pkt_t *p, const kvps_psk_t *psk, uint8_t *out, size_t cap);
/* Writes the tag over buf[0, len - KVPS_TAG_LEN) into the last bytes. */
void kvps_wire_sign(uint8_t *buf, size_t len, const kvps_psk_t *psk);

/* Serial-number order of 32-bit counters (RFC 1982): a before b. */
static inline bool kvps_serial_lt(uint32_t a, uint32_t b) {
    uint32_t d = b - a;
    return d != 0 && d < 0x80000000u;
}

#endif
