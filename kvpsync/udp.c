#include "udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

int kvps_udp_open(uv_loop_t *loop, uv_udp_t *udp, const struct sockaddr *addr, uv_alloc_cb alloc_cb,
                  uv_udp_recv_cb recv_cb) {
    socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (bind(fd, addr, alen) != 0 || (rc = uv_udp_init(loop, udp)) != 0) {
        rc = rc ? rc : -errno;
        close(fd);
        return rc;
    }
    if ((rc = uv_udp_open(udp, fd)) != 0)
        close(fd);
    else
        rc = uv_udp_recv_start(udp, alloc_cb, recv_cb);
    if (rc != 0)
        uv_close((uv_handle_t *)udp, NULL);
    return rc;
}
