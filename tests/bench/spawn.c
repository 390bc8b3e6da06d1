/* spawn: exec commands alternately and report, per run, the wall time and the child's peak RSS.
 *
 *   spawn N LABEL=PATH [LABEL=PATH ...]
 *
 * Runs PATH of each label in turn (A B A B ...), N rounds, with the caller's environment and
 * stdin/stdout/stderr on /dev/null, and prints "LABEL usec maxrss_kib status" per run.
 * posix_spawn + wait4 keep the harness's own cost per run small and equal for both sides. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spawn N LABEL=PATH...\n");
        return 2;
    }
    int rounds = atoi(argv[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    for (int r = 0; r < rounds; r++) {
        for (int i = 2; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq) return 2;
            char *path = eq + 1;
            char *cargv[] = {path, NULL};
            pid_t pid;
            int status = 0;
            struct rusage ru;
            long long t0 = now_ns();
            if (posix_spawn(&pid, path, &fa, NULL, cargv, environ) != 0) {
                printf("%.*s -1 -1 -1\n", (int)(eq - argv[i]), argv[i]);
                continue;
            }
            wait4(pid, &status, 0, &ru);
            long long t1 = now_ns();
            printf("%.*s %lld %ld %d\n", (int)(eq - argv[i]), argv[i], (t1 - t0) / 1000, ru.ru_maxrss,
                   WIFEXITED(status) ? WEXITSTATUS(status) : 128);
        }
    }
    return 0;
}
