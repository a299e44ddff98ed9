#include "wire.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p) {
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void mac(const uint8_t *buf, size_t len, const kvps_psk_t *psk, uint8_t tag[KVPS_TAG_LEN]) {
    unsigned int tlen = KVPS_TAG_LEN;
    HMAC(EVP_sha256(), psk->key, sizeof psk->key, buf, len, tag, &tlen);
}

void kvps_wire_sign(uint8_t *buf, size_t len, const kvps_psk_t *psk) {
    mac(buf, len - KVPS_TAG_LEN, psk, buf + len - KVPS_TAG_LEN);
}

/* The exact length a datagram of this type must have (R2), 0 if unknown. */
static size_t expected_len(const uint8_t *buf, size_t len, uint8_t type) {
    switch (type) {
    case KVPS_HELLO:
    case KVPS_START:
    case KVPS_FLUSH:
    case KVPS_KEEPALIVE:
        return KVPS_SEND_FIXED + KVPS_TAG_LEN;
    case KVPS_UPDATE:
        if (len < KVPS_UPDATE_FIXED)
            return 0;
        return KVPS_UPDATE_FIXED + (size_t)get16(buf + 58) + buf[57] + KVPS_TAG_LEN;
    case KVPS_ACK:
        return KVPS_ACK_LEN;
    default:
        return 0;
    }
}

int kvps_wire_peek(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *sender_id) {
    if (len < KVPS_HDR_LEN + KVPS_TAG_LEN || len > KVPS_MAX_PACKET)
        return -1;
    if (get32(buf) != KVPS_MAGIC || buf[4] != KVPS_VERSION || get16(buf + 6) != 0)
        return -1;
    if (expected_len(buf, len, buf[5]) != len)
        return -1;
    *type = buf[5];
    *sender_id = get32(buf + 8);
    return 0;
}

/* Field ranges (R3), after the MAC. */
static int check_fields(const kvps_pkt_t *p) {
    if (p->session == 0)
        return -1;
    switch (p->type) {
    case KVPS_HELLO:
        return p->gen == 0 && p->seq == 0 && p->anchor_ms == 0 && p->lease_ms == 0 ? 0 : -1;
    case KVPS_KEEPALIVE:
        if (p->seq != 0)
            return -1;
        /* fall through */
    case KVPS_START:
    case KVPS_FLUSH:
        break;
    case KVPS_UPDATE:
        if (p->klen == 0 || p->klen > KVPS_MAX_KEY)
            return -1;
        if (p->op != KVPS_OP_PUT && (p->op != KVPS_OP_DEL || p->vlen != 0))
            return -1;
        break;
    case KVPS_ACK:
        return p->receiver_id != 0 && (p->flags & ~(KVPS_FLAG_ACKED | KVPS_FLAG_RESYNC)) == 0 ? 0 : -1;
    }
    if (p->receiver_id == 0 || p->lease_ms > KVPS_MAX_LEASE_MS || (p->lease_ms == 0 && p->anchor_ms != 0))
        return -1;
    return 0;
}

int kvps_wire_decode(const uint8_t *buf, size_t len, const kvps_psk_t *psk, kvps_pkt_t *out) {
    uint8_t type;
    uint32_t sender_id;
    if (kvps_wire_peek(buf, len, &type, &sender_id) != 0)
        return -1;
    uint8_t tag[KVPS_TAG_LEN];
    mac(buf, len - KVPS_TAG_LEN, psk, tag);
    if (CRYPTO_memcmp(tag, buf + len - KVPS_TAG_LEN, KVPS_TAG_LEN) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->type = type;
    out->sender_id = sender_id;
    out->gen = get32(buf + 12);
    out->receiver_id = get64(buf + 16);
    out->session = get64(buf + 24);
    if (type == KVPS_ACK) {
        out->echo_ms = get64(buf + 32);
        out->receiver_ms = get64(buf + 40);
        out->cur_session = get64(buf + 48);
        out->cur_gen = get32(buf + 56);
        out->ack_next = get32(buf + 60);
        out->ack_seq = get32(buf + 64);
        out->flags = buf[68];
        if (buf[69] || buf[70] || buf[71])
            return -1;
    } else {
        out->sent_ms = get64(buf + 32);
        out->anchor_ms = get64(buf + 40);
        out->lease_ms = get32(buf + 48);
        out->seq = get32(buf + 52);
        if (type == KVPS_UPDATE) {
            out->op = buf[56];
            out->vlen = buf[57];
            out->klen = get16(buf + 58);
            out->key = buf + KVPS_UPDATE_FIXED;
            out->val = out->key + out->klen;
        }
    }
    return check_fields(out);
}

size_t kvps_wire_encode(const kvps_pkt_t *p, const kvps_psk_t *psk, uint8_t *out, size_t cap) {
    size_t len;
    if (p->type == KVPS_ACK)
        len = KVPS_ACK_LEN;
    else if (p->type == KVPS_UPDATE)
        len = KVPS_UPDATE_FIXED + p->klen + p->vlen + KVPS_TAG_LEN;
    else
        len = KVPS_SEND_FIXED + KVPS_TAG_LEN;
    if (len > cap || len > KVPS_MAX_PACKET)
        return 0;
    memset(out, 0, len);
    put32(out, KVPS_MAGIC);
    out[4] = KVPS_VERSION;
    out[5] = p->type;
    put32(out + 8, p->sender_id);
    put32(out + 12, p->gen);
    put64(out + 16, p->receiver_id);
    put64(out + 24, p->session);
    if (p->type == KVPS_ACK) {
        put64(out + 32, p->echo_ms);
        put64(out + 40, p->receiver_ms);
        put64(out + 48, p->cur_session);
        put32(out + 56, p->cur_gen);
        put32(out + 60, p->ack_next);
        put32(out + 64, p->ack_seq);
        out[68] = p->flags;
    } else {
        put64(out + 32, p->sent_ms);
        put64(out + 40, p->anchor_ms);
        put32(out + 48, p->lease_ms);
        put32(out + 52, p->seq);
        if (p->type == KVPS_UPDATE) {
            out[56] = p->op;
            out[57] = (uint8_t)p->vlen;
            put16(out + 58, (uint16_t)p->klen);
            memcpy(out + KVPS_UPDATE_FIXED, p->key, p->klen);
            if (p->vlen)
                memcpy(out + KVPS_UPDATE_FIXED + p->klen, p->val, p->vlen);
        }
    }
    kvps_wire_sign(out, len, psk);
    return len;
}
