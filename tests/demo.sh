#!/usr/bin/env bash
# make demo: attach two network namespaces to a bridge through the cnitool applet, show their
# addresses, ping one from the other, then tear both down and show nothing is left.
# Everything happens inside a throwaway "node" namespace, so the machine's own network is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CNIBOX_BIN:-target/cnibox}
BIN=$(readlink -f "$BIN")
work=$(mktemp -d /tmp/cnibox-demo.XXXXXX)
node=cnibox-demo-node-$$
pods=(cnibox-demo-a-$$ cnibox-demo-b-$$)

cleanup() {
    for p in "${pods[@]}"; do ip netns delete "$p" 2>/dev/null || true; done
    ip netns delete "$node" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$work/bin" "$work/net.d" "$work/cache"
"$BIN" --list | while read -r applet; do ln -s "$BIN" "$work/bin/$applet"; done
step "one binary, $(du -h "$BIN" | cut -f1), linked as: $(ls "$work/bin" | tr '\n' ' ')"

cat > "$work/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "demo",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "demo0",
      "isGateway": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.99.0.0/24" }]],
        "dataDir": "$work/ipam"
      }
    }
  ]
}
JSON
step "network config"
cat "$work/net.d/10-demo.conflist"

ip netns add "$node"
ip -n "$node" link set lo up
for p in "${pods[@]}"; do ip netns add "$p"; done

export NETCONFPATH=$work/net.d CNI_PATH=$work/bin CNI_CACHE_DIR=$work/cache
for p in "${pods[@]}"; do
    step "cnitool add demo /run/netns/$p"
    ip netns exec "$node" "$work/bin/cnitool" add demo "/run/netns/$p"
    echo
done

step "addresses inside the pods"
for p in "${pods[@]}"; do echo "$p:"; ip -n "$p" -br addr show dev eth0; done
b_ip=$(ip -n "${pods[1]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)

step "ping ${pods[1]} ($b_ip) from ${pods[0]}"
ip netns exec "${pods[0]}" ping -c 3 -W 2 "$b_ip"

step "ping the gateway from ${pods[1]}"
ip netns exec "${pods[1]}" ping -c 1 -W 2 10.99.0.1

for p in "${pods[@]}"; do
    step "cnitool del demo /run/netns/$p"
    ip netns exec "$node" "$work/bin/cnitool" del demo "/run/netns/$p"
done

step "left behind on the node"
veths=$(ip -n "$node" -o link show type veth | wc -l)
leases=$(find "$work/ipam/demo" -type f ! -name lock ! -name 'last_reserved_ip.*' | wc -l)
echo "veth links: $veths, IP leases: $leases"
[ "$veths" -eq 0 ] && [ "$leases" -eq 0 ]
step "demo done"
