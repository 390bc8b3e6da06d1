// libcni-client drives CNI plugins through libcni itself (the library containerd, CRI-O
// and podman use), so the integration tests see plugins exactly as a runtime calls them.
//
//	libcni-client add|check|del <confdir> <network> <netns> [cachedir]
//
// CNI_PATH, CNI_IFNAME (default eth0), CNI_ARGS and CAP_ARGS are read as cnitool reads them.
// add prints the result as JSON; errors go to stderr with exit status 1.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fail(fmt.Errorf("usage: libcni-client add|check|del <confdir> <network> <netns> [cachedir]"))
	}
	verb, dir, network, netns := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	cacheDir := ""
	if len(os.Args) > 5 {
		cacheDir = os.Args[5]
	}
	list, err := libcni.LoadConfList(dir, network)
	if err != nil {
		fail(err)
	}
	var caps map[string]interface{}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &caps); err != nil {
			fail(err)
		}
	}
	var args [][2]string
	if s := os.Getenv("CNI_ARGS"); s != "" {
		for _, pair := range strings.Split(s, ";") {
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 {
				fail(fmt.Errorf("invalid CNI_ARGS pair %q", pair))
			}
			args = append(args, [2]string{kv[0], kv[1]})
		}
	}
	ifname, ok := os.LookupEnv("CNI_IFNAME")
	if !ok {
		ifname = "eth0"
	}
	netns, err = filepath.Abs(netns)
	if err != nil {
		fail(err)
	}
	sum := sha512.Sum512([]byte(netns))
	rt := &libcni.RuntimeConf{
		ContainerID:    fmt.Sprintf("libcni-%x", sum[:10]),
		NetNS:          netns,
		IfName:         ifname,
		Args:           args,
		CapabilityArgs: caps,
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if err := result.Print(); err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}
