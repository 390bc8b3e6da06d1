/* vethfloor: what the kernel alone charges for a pod's veth pair, the floor under any plugin's
 * ADD and DEL.
 *
 *   vethfloor N NETNS   N times: create a veth pair with one end in NETNS (one RTM_NEWLINK, as
 *                       plugins do it), then delete it (one RTM_DELLINK); runs in the caller's
 *                       network namespace
 *
 * Prints "add usec", "gone usec" and "del usec" lines per round: the request to create, the
 * time until the kernel announces the pair's removal (RTM_DELLINK to listeners: the devices are
 * unregistered, their names free), and the time until the delete request returns (after the
 * kernel has also waited to free them). Exits 1 on a netlink error. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[4096];
static size_t len;

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Append an attribute; returns its offset, so that nested ones can have their length fixed. */
static size_t attr(unsigned short type, const void *data, size_t n) {
    size_t at = len;
    struct rtattr *a = (struct rtattr *)(buf + len);
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(n);
    if (n) memcpy(RTA_DATA(a), data, n);
    len += RTA_ALIGN(a->rta_len);
    return at;
}

static void end(size_t at) { ((struct rtattr *)(buf + at))->rta_len = len - at; }

static void start(unsigned short type, unsigned short flags) {
    memset(buf, 0, sizeof buf);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
}

/* Send the message in buf and wait for its ACK; 0 or the negative errno. */
static int call(int fd) {
    ((struct nlmsghdr *)buf)->nlmsg_len = len;
    if (send(fd, buf, len, 0) < 0) return -1;
    char reply[4096];
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -1;
    struct nlmsghdr *h = (struct nlmsghdr *)reply;
    if (h->nlmsg_type != NLMSG_ERROR) return -1;
    return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: vethfloor N NETNS\n");
        return 2;
    }
    int rounds = atoi(argv[1]);
    int ns = open(argv[2], O_RDONLY | O_CLOEXEC);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (ns < 0 || fd < 0) return 2;
    const char *host = "vethfloor0", *peer = "vethfloor1";
    for (int r = 0; r < rounds; r++) {
        start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        attr(IFLA_IFNAME, host, strlen(host) + 1);
        size_t info = attr(IFLA_LINKINFO, NULL, 0);
        attr(IFLA_INFO_KIND, "veth", 5);
        size_t data = attr(IFLA_INFO_DATA, NULL, 0);
        size_t p = attr(VETH_INFO_PEER, NULL, 0);
        len += sizeof(struct ifinfomsg);
        attr(IFLA_IFNAME, peer, strlen(peer) + 1);
        attr(IFLA_NET_NS_FD, &ns, sizeof ns);
        end(p);
        end(data);
        end(info);
        long long t0 = now_us();
        int e = call(fd);
        long long t1 = now_us();
        if (e) {
            fprintf(stderr, "vethfloor: create: %s\n", strerror(-e));
            return 1;
        }
        /* A listener for the announcement; the request goes out from a child, which waits
         * for the ACK while the parent waits for the announcement. */
        int ev = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
        if (ev < 0 || bind(ev, (struct sockaddr *)&sa, sizeof sa) < 0) return 2;
        int index = (int)if_nametoindex(host);
        start(RTM_DELLINK, 0);
        attr(IFLA_IFNAME, host, strlen(host) + 1);
        int report[2];
        if (pipe(report) < 0) return 2;
        long long t2 = now_us();
        pid_t pid = fork();
        if (pid < 0) return 2;
        if (pid == 0) {
            int r = call(fd);
            long long t = now_us();
            if (write(report[1], &r, sizeof r) < 0 || write(report[1], &t, sizeof t) < 0) _exit(1);
            _exit(0);
        }
        long long gone = 0;
        while (!gone) {
            /* The child's report first means the kernel refused: no announcement will come. */
            struct pollfd pf[2] = {{.fd = ev, .events = POLLIN}, {.fd = report[0], .events = POLLIN}};
            if (poll(pf, 2, -1) < 0 || (pf[1].revents && !pf[0].revents)) break;
            char rb[16384];
            ssize_t n = recv(ev, rb, sizeof rb, 0);
            if (n <= 0) break;
            for (struct nlmsghdr *h = (struct nlmsghdr *)rb; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                struct ifinfomsg *ifi = NLMSG_DATA(h);
                if (h->nlmsg_type == RTM_DELLINK && ifi->ifi_family == AF_UNSPEC && ifi->ifi_index == index)
                    gone = now_us();
            }
        }
        close(ev);
        long long t3 = 0;
        if (read(report[0], &e, sizeof e) != sizeof e || read(report[0], &t3, sizeof t3) != sizeof t3) return 2;
        waitpid(pid, NULL, 0);
        close(report[0]);
        close(report[1]);
        if (e || !gone) {
            fprintf(stderr, "vethfloor: delete: %s\n", e ? strerror(-e) : "no announcement");
            return 1;
        }
        printf("add %lld\ngone %lld\ndel %lld\n", t1 - t0, gone - t2, t3 - t2);
    }
    return 0;
}
