/* nop: a CNI plugin that does nothing but answer. It reads its configuration and, for ADD,
 * prints a fixed result; the benchmark drives it through the runtime client to measure what
 * every per-pod call costs before a plugin does any work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char buf[4096];
    const char *cmd = getenv("CNI_COMMAND");
    while (read(0, buf, sizeof buf) > 0) {
    }
    if (cmd && strcmp(cmd, "ADD") == 0)
        fputs("{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"02:00:00:00:00:01\","
              "\"sandbox\":\"/run/netns/nop\"}],\"ips\":[{\"address\":\"10.0.0.2/24\",\"interface\":0}]}\n",
              stdout);
    else if (cmd && strcmp(cmd, "VERSION") == 0)
        fputs("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}\n", stdout);
    return 0;
}
