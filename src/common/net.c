/* Address checks and the command-line tools' blocking socket helpers: see
 * net.h. */
#include "common/net.h"
#include "common/limits.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---------------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: no deadline) for poll(). */
static int remaining_ms(long long deadline)
{
    long long left;

    if (deadline < 0)
        return -1;
    left = deadline - now_ms();
    if (left < 0)
        return 0;
    if (left > 0x7fffffff)
        return 0x7fffffff;
    return (int)left;
}

long long ch_deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int ch_fd_wait(int fd, short events, long long deadline, const char *what,
               char *errmsg)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rv;

    do {
        rv = poll(&pfd, 1, remaining_ms(deadline));
    } while (rv < 0 && errno == EINTR);
    if (rv == 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "timed out %s", what);
        return CH_ETIMEDOUT;
    }
    if (rv < 0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "poll: %s", strerror(errno));
        return CH_EIO;
    }
    return 0;
}

int ch_fd_send_all(int fd, const void *data, size_t n, long long deadline,
                   const char *what, char *errmsg)
{
    const char *p = data;
    ssize_t w;
    int rv;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "send: %s", strerror(errno));
            return CH_EIO;
        }
        rv = ch_fd_wait(fd, POLLOUT, deadline, what, errmsg);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- addresses and TCP --------------------------------------------------- */

int ch_hostport_split(const char *hostport, char *host, size_t host_size,
                      char *port, size_t port_size)
{
    const char *colon;
    const char *h = hostport;
    size_t hn;

    if (hostport == NULL || hostport[0] == '\0')
        return CH_EINVAL;
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (end == NULL || end[1] != ':')
            return CH_EINVAL;
        h = hostport + 1;
        hn = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (colon == NULL)
            return CH_EINVAL;
        hn = (size_t)(colon - hostport);
    }
    if (hn == 0 || hn >= host_size || colon[1] == '\0' ||
        strlen(colon + 1) >= port_size)
        return CH_EINVAL;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return CH_EINVAL;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

bool ch_hostport_valid(const char *hostport)
{
    char host[CH_MAX_ADDR_BYTES + 1];
    char port[8];

    if (ch_hostport_split(hostport, host, sizeof host, port, sizeof port) != 0)
        return false;
    return atoi(port) >= 1 && atoi(port) <= 65535;
}

/* Waits for a non-blocking connect on fd to finish. Returns 0 or an errno. */
static int connect_wait(int fd, long long deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    int rv;

    for (;;) {
        rv = poll(&pfd, 1, remaining_ms(deadline));
        if (rv > 0)
            break;
        if (rv == 0)
            return ETIMEDOUT;
        if (errno != EINTR)
            return errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

int ch_resolve(const char *hostport, struct addrinfo **res, char *errmsg)
{
    char host[256];
    char port[16];
    struct addrinfo hints;
    int rv;

    if (ch_hostport_split(hostport, host, sizeof(host), port, sizeof(port)) !=
        0) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad address %.200s (want HOST:PORT)",
                 hostport);
        return CH_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    *res = NULL;
    rv = getaddrinfo(host, port, &hints, res);
    if (rv != 0 || *res == NULL) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "cannot resolve %.200s: %s", host,
                 rv != 0 ? gai_strerror(rv) : "no address");
        return CH_ECONNECT;
    }
    return 0;
}

int ch_tcp_connect(const char *hostport, int timeout_ms, int *fd, char *errmsg)
{
    struct addrinfo *res = NULL;
    struct addrinfo *ai;
    long long deadline = ch_deadline_after(timeout_ms);
    int last_err = ECONNREFUSED;
    int one = 1;
    int s;
    int rv;

    rv = ch_resolve(hostport, &res, errmsg);
    if (rv != 0)
        return rv;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        s = socket(ai->ai_family,
                   ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
        if (s < 0) {
            last_err = errno;
            continue;
        }
        if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
            last_err = 0;
        else if (errno == EINPROGRESS)
            last_err = connect_wait(s, deadline);
        else
            last_err = errno;
        if (last_err == 0) {
            /* Latency matters more than segment count for small frames. */
            if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) !=
                0) {
                last_err = errno;
                close(s);
                continue;
            }
            freeaddrinfo(res);
            *fd = s;
            return 0;
        }
        close(s);
        if (last_err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    snprintf(errmsg, CH_ERRMSG_SIZE, "cannot connect to %s: %s", hostport,
             last_err == ETIMEDOUT ? "timed out" : strerror(last_err));
    return last_err == ETIMEDOUT ? CH_ETIMEDOUT : CH_ECONNECT;
}
