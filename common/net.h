/* net: small helpers for socket addresses. */
#ifndef SKD_NET_H
#define SKD_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "127.0.0.1:8080" or "[::1]:8080" (IPv6 only in brackets) into out; 0 or -1. */
int net_parse_address(const char *text, struct sockaddr_storage *out);
/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool net_is_loopback(const struct sockaddr_storage *addr);
/* "127.0.0.1:8080" or "[::1]:8080"; "?" for other families. */
void net_format(const struct sockaddr_storage *addr, char *out, size_t out_len);

#endif
