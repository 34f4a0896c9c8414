#ifndef LEADIMPORT_CSHAREDMEMORY_SHIM_H
#define LEADIMPORT_CSHAREDMEMORY_SHIM_H
/* What the metrics shared between worker processes need and Swift's Glibc module leaves out:
   atomic operations on 64-bit words in a shared mapping, memfd_create, and the length of a
   listening socket's accept queue (TCP_INFO for TCP; sock_diag for Unix sockets). */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <linux/rtnetlink.h>

static inline void leadimport_word_add(uint64_t *word, uint64_t value) {
    __atomic_fetch_add(word, value, __ATOMIC_RELAXED);
}

static inline uint64_t leadimport_word_add_fetch(uint64_t *word, uint64_t value) {
    return __atomic_add_fetch(word, value, __ATOMIC_RELAXED);
}

/* Takes value off *word, never going below zero. */
static inline void leadimport_word_sub_floor(uint64_t *word, uint64_t value) {
    uint64_t seen = __atomic_load_n(word, __ATOMIC_RELAXED);
    uint64_t next;
    do {
        next = seen > value ? seen - value : 0;
    } while (!__atomic_compare_exchange_n(word, &seen, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static inline uint64_t leadimport_word_load(const uint64_t *word) {
    return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static inline void leadimport_word_store(uint64_t *word, uint64_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

/* Raises *word to value when value is larger. */
static inline void leadimport_word_raise(uint64_t *word, uint64_t value) {
    uint64_t seen = __atomic_load_n(word, __ATOMIC_RELAXED);
    while (value > seen && !__atomic_compare_exchange_n(word, &seen, value, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

static inline int leadimport_memfd_create(const char *name) {
    /* MFD_CLOEXEC: a child gets it only where the spawn's file actions put it. */
    return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */);
}

/* The accept queue of the listening TCP socket fd: *queued connections waiting for accept and
   *limit the backlog. 0, or -1 when fd is not a TCP socket. */
static inline int leadimport_tcp_listen_queue(int fd, uint32_t *queued, uint32_t *limit) {
    struct tcp_info info;
    socklen_t length = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
    /* For a listening socket Linux reports the queue in tcpi_unacked and the backlog in tcpi_sacked. */
    *queued = info.tcpi_unacked;
    *limit = info.tcpi_sacked;
    return 0;
}

/* The same for a listening Unix stream socket, asked of the kernel by its inode through
   NETLINK_SOCK_DIAG (UNIX_DIAG_RQLEN: queue length and backlog). 0, or -1. */
static inline int leadimport_unix_listen_queue(int fd, uint32_t *queued, uint32_t *limit) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (sock < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } message;
    memset(&message, 0, sizeof(message));
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = 1U << 10; /* TCP_LISTEN */
    message.request.udiag_ino = (uint32_t)st.st_ino;
    message.request.udiag_show = UDIAG_SHOW_RQLEN;
    message.request.udiag_cookie[0] = (uint32_t)~0U;
    message.request.udiag_cookie[1] = (uint32_t)~0U;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    struct timeval timeout = { 0, 200000 };
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    if (sendto(sock, &message, sizeof(message), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        close(sock);
        return -1;
    }
    long buffer[1024];
    ssize_t received = recv(sock, buffer, sizeof(buffer), 0);
    close(sock);
    if (received <= 0) return -1;
    for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)received);
         header = NLMSG_NEXT(header, received)) {
        if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY) return -1;
        struct unix_diag_msg *answer = NLMSG_DATA(header);
        if (answer->udiag_ino != (uint32_t)st.st_ino) continue;
        int left = (int)(header->nlmsg_len - NLMSG_LENGTH(sizeof(*answer)));
        for (struct rtattr *attribute = (struct rtattr *)(answer + 1); RTA_OK(attribute, left);
             attribute = RTA_NEXT(attribute, left)) {
            if (attribute->rta_type == UNIX_DIAG_RQLEN) {
                struct unix_diag_rqlen *rq = RTA_DATA(attribute);
                *queued = rq->udiag_rqueue;
                *limit = rq->udiag_wqueue;
                return 0;
            }
        }
    }
    return -1;
}
#endif
