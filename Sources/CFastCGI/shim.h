#ifndef LEADIMPORT_CFASTCGI_SHIM_H
#define LEADIMPORT_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#include <stdint.h>
#include <sys/epoll.h>

/* epoll for the FastCGI server's worker threads. Swift's Glibc module does not include
 * <sys/epoll.h>, and `struct epoll_event` is packed on x86-64, so Swift never touches it: these
 * take and return its two fields. */

static inline int leadimport_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

/* op: EPOLL_CTL_ADD, EPOLL_CTL_MOD or EPOLL_CTL_DEL. Returns 0 or -1 with errno set. */
static inline int leadimport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

/* Waits for one event (a worker takes one connection at a time). Returns 1, 0 on time-out, or -1
 * with errno set. */
static inline int leadimport_epoll_wait_one(int epfd, int timeout_ms, uint32_t *events, uint64_t *data) {
    struct epoll_event event;
    int n = epoll_wait(epfd, &event, 1, timeout_ms);
    if (n == 1) {
        *events = event.events;
        *data = event.data.u64;
    }
    return n;
}

static const uint32_t leadimport_EPOLLIN = EPOLLIN;
static const uint32_t leadimport_EPOLLRDHUP = EPOLLRDHUP;
static const uint32_t leadimport_EPOLLHUP = EPOLLHUP;
static const uint32_t leadimport_EPOLLERR = EPOLLERR;
static const uint32_t leadimport_EPOLLONESHOT = EPOLLONESHOT;
static const int leadimport_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
static const int leadimport_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
static const int leadimport_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

#endif
