/* proxy_v2: a parser of the PROXY protocol version 2 header (haproxy's
 * proxy-protocol.txt), sans I/O: fed the first bytes of a connection.
 *
 * Load balancers (AWS NLB among them) put it before the client's bytes to
 * tell the real client address; an AWS TLV (type 0xEA, subtype 0x01) carries
 * the VPC endpoint id the client came through. Only peers configured in
 * proxy_protocol_from may send it; from anyone else it is not parsed. */
#ifndef SKD_PROXY_V2_H
#define SKD_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A header longer than this is refused (TLVs included). */
#define PROXY_V2_MAX 1024

typedef struct proxy_v2_info {
    int local;                       /* LOCAL command: health check, no client address */
    struct sockaddr_storage source;  /* the client, for PROXY over TCP */
    char vpce_id[64];                /* "" when absent */
} proxy_v2_info_t;

/* Returns the header's length once data holds all of it, 0 when more bytes
 * are needed, -1 when data is not a valid header. */
int proxy_v2_parse(const uint8_t *data, size_t len, proxy_v2_info_t *out);

#endif
