/* spawn: exec commands and report, per run, the wall time, the peak RSS of the largest process
 * of its tree and the CPU time (user + system) of the whole tree.
 *
 *   spawn N LABEL=PATH [LABEL=PATH ...]   N rounds of each PATH in turn (A B A B ...)
 *   spawn -1 LABEL [-n NETNS] PROG [ARG ...]   one run of PROG, in network namespace NETNS if given
 *                                   (with that namespace's /sys, as `ip netns exec` gives it)
 *   spawn -p LABEL PROG [ARG ...]   one PROG per line of stdin, all at once, the line as its last
 *                                   argument; prints "LABEL usec failures" once all have ended
 *
 * Children get the caller's environment and /dev/null for stdin, stdout and stderr. Each run
 * prints "LABEL usec maxrss_kib status cpu_usec". posix_spawn + wait4 keep the harness's own
 * cost per run small and equal for both sides. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static posix_spawn_file_actions_t fa;

static long long usec(struct timeval tv) { return (long long)tv.tv_sec * 1000000LL + tv.tv_usec; }

/* Run argv once and print its line. */
static void run(const char *label, int label_len, char **cargv) {
    pid_t pid;
    int status = 0;
    struct rusage ru;
    long long t0 = now_ns();
    if (posix_spawn(&pid, cargv[0], &fa, NULL, cargv, environ) != 0) {
        printf("%.*s -1 -1 -1 -1\n", label_len, label);
        return;
    }
    wait4(pid, &status, 0, &ru);
    long long t1 = now_ns();
    /* wait4's rusage covers the child and every descendant it waited for (a runtime client's
       plugins): CPU time is summed, peak RSS is the largest of them. */
    printf("%.*s %lld %ld %d %lld\n", label_len, label, (t1 - t0) / 1000, ru.ru_maxrss,
           WIFEXITED(status) ? WEXITSTATUS(status) : 128, usec(ru.ru_utime) + usec(ru.ru_stime));
    fflush(stdout);
}

/* Become part of the node whose network namespace is at `path`, before any timing, as
   `ip netns exec` makes a process part of one: join the namespace, and in a mount namespace of
   our own mount a sysfs that shows its links. (A node's /sys shows its own links; a plugin that
   reads link state there would otherwise see the root namespace's and fall back to asking the
   kernel, which is a different cost from the one it has on a node.) */
static int enter_node(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return -1;
    close(fd);
    if (unshare(CLONE_NEWNS) != 0 || mount("", "/", NULL, MS_SLAVE | MS_REC, NULL) != 0) return -1;
    if (umount2("/sys", MNT_DETACH) != 0) return -1;
    return mount("sysfs", "/sys", "sysfs", 0, NULL);
}

/* Start one child per line of stdin at once and wait for them all: what a node sees when a
   runtime sets up many pods together, without a shell's fork per call in the figure. Children
   keep the harness's stderr (the bench sends it to its error log). */
static int parallel(const char *label, char **base, int nbase) {
    static char line[4096];
    char ***argvs = NULL;
    int n = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        char **a = calloc((size_t)nbase + 2, sizeof *a);
        argvs = realloc(argvs, sizeof *argvs * (size_t)(n + 1));
        if (!a || !argvs) {
            printf("%s -1 -1\n", label);
            return 2;
        }
        memcpy(a, base, sizeof *a * (size_t)nbase);
        a[nbase] = strdup(line);
        argvs[n++] = a;
    }
    posix_spawn_file_actions_t pfa;
    posix_spawn_file_actions_init(&pfa);
    posix_spawn_file_actions_addopen(&pfa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&pfa, 1, "/dev/null", O_WRONLY, 0);
    int failed = 0, started = 0, status;
    long long t0 = now_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, argvs[i][0], &pfa, NULL, argvs[i], environ) == 0) started++;
        else failed++;
    }
    for (; started > 0; started--) {
        if (wait(&status) < 0) break;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    long long t1 = now_ns();
    printf("%s %lld %d\n", label, (t1 - t0) / 1000, failed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spawn N LABEL=PATH... | spawn -1 LABEL PROG [ARG...] | spawn -p LABEL PROG [ARG...]\n");
        return 2;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (strcmp(argv[1], "-p") == 0) {
        if (argc < 4) return 2;
        return parallel(argv[2], argv + 3, argc - 3);
    }
    if (strcmp(argv[1], "-1") == 0) {
        int first = 3;
        if (argc > 5 && strcmp(argv[3], "-n") == 0) {
            if (enter_node(argv[4]) != 0) {
                perror(argv[4]);
                printf("%s -1 -1 -1 -1\n", argv[2]);
                return 2;
            }
            first = 5;
        }
        if (argc <= first) return 2;
        run(argv[2], (int)strlen(argv[2]), argv + first);
        return 0;
    }
    int rounds = atoi(argv[1]);
    for (int r = 0; r < rounds; r++) {
        for (int i = 2; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq) return 2;
            char *cargv[] = {eq + 1, NULL};
            run(argv[i], (int)(eq - argv[i]), cargv);
        }
    }
    return 0;
}
