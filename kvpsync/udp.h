/* udp: a libuv UDP handle on a socket bound before libuv sees it, so that a
 * failed bind leaves no handle to close. Internal to kvpsend and kvprecv. */
#ifndef SKD_KVPS_UDP_H
#define SKD_KVPS_UDP_H

#include <sys/socket.h>

#include <uv.h>

/* Returns 0 (receiving with alloc_cb and recv_cb) or a negative libuv error.
 * After a failure past the bind (never seen in practice) the handle is
 * closing: its memory stays in use until the loop runs. */
int kvps_udp_open(uv_loop_t *loop, uv_udp_t *udp, const struct sockaddr *addr, uv_alloc_cb alloc_cb,
                  uv_udp_recv_cb recv_cb);

#endif
