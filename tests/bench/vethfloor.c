/* vethfloor: what the kernel alone charges for a pod's veth pair, the floor under any plugin's
 * ADD and DEL.
 *
 *   vethfloor N NETNS   N times: create a veth pair with one end in NETNS (one RTM_NEWLINK, as
 *                       plugins do it), then delete it (one RTM_DELLINK); runs in the caller's
 *                       network namespace
 *
 * Prints "add usec" and "del usec" lines, one pair per round; exits 1 on a netlink error. */
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
        start(RTM_DELLINK, 0);
        attr(IFLA_IFNAME, host, strlen(host) + 1);
        long long t2 = now_us();
        e = call(fd);
        long long t3 = now_us();
        if (e) {
            fprintf(stderr, "vethfloor: delete: %s\n", strerror(-e));
            return 1;
        }
        printf("add %lld\ndel %lld\n", t1 - t0, t3 - t2);
    }
    return 0;
}
