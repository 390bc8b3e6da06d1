#!/usr/bin/env bash
# tests/bench/bench.sh — cnibox against the reference plugins (containernetworking-plugins).
#
# Measures, with A (cnibox) and B (reference) interleaved A B A B …, medians and min–max of:
#   install size      one cnibox binary vs the sum of the reference binaries for the same plugins
#   exec              latency and peak RSS of CNI_COMMAND=VERSION for several applets
#   kernel floor      what creating and deleting a veth pair costs the kernel alone
#   client floor      the runtime client driving a plugin that only answers
#   per pod           ADD and DEL latency and peak RSS through one runtime client, per chain
#                     (bridge + host-local, ptp + host-local, nerdctl's chain with bandwidth
#                     added, and that chain with cnibox's iptables backends), each pod in its
#                     own netns
#   concurrency       32 and 64 simultaneous ADDs then DELs on one network, from a cold start,
#                     all started at once by the spawn harness:
#                     wall time and failures
#   scaling           per-pod ADD and DEL latency when the bridge already holds 10, 100, 250 pods
#                     (each side on a kernel holding its own pods only, the sides taking turns)
# and prints a table (both figures and the ratio cnibox/reference) and target/bench.json.
# It does not assert. Metrics whose applets cnibox does not have yet print "n/a".
#
# Everything runs inside throwaway "host" network namespaces: no bridge, veth or sysctl change
# reaches the real host; IPAM state and the result cache (CNI_CACHE_DIR) live on a journaled
# ext4 image under a temporary directory, /run/cni on a tmpfs in a mount namespace of the run's
# own; all is removed on exit.
# Both sides are driven by the same runtime client, cnibox's cnitool applet, whose NETCONFPATH
# points at a configuration resolving to the cnibox links or to the reference directory. Peak
# RSS is that of the largest process of the call tree (GNU time, wait4 rusage).
#
# Environment:
#   CNIBOX_BIN       the binary (default: the release build in target/)
#   BENCH_QUICK=1    a short run (fewer iterations, smaller levels)
#   BENCH_REF_DIR    the reference plugins (default /usr/lib/cni; installed when missing)
#   BENCH_JSON       the JSON output (default target/bench.json)
#   BENCH_CNITOOL    another libcni-cnitool-compatible client instead of cnibox's
#   BENCH_REF_BOTH=1 point side A at the reference too (checks the benchmark itself)
#   BENCH_ONLY       the sections to run, of: size exec floors chains concurrency scaling
#                    (default: all; concurrency and scaling probe the bridge chain all the same)
#   BENCH_SAMPLES    a directory to copy the raw samples into (a file a metric and side, a
#                    value a line, unscaled: µs, KiB, bytes, counts)
#   BENCH_POD_IPV6=off  a control run: every pod namespace gets IPv6 off for its new devices
#                    (net.ipv6.conf.default.disable_ipv6=1 there, before the plugin runs), so
#                    that no pod sends the first IPv6 packets (MLD report, router solicitation)
#                    that the bridge floods to every port; not how a node runs
set -euo pipefail
export LC_ALL=C

SELF=$(readlink -f "${BASH_SOURCE[0]}")
TOP=$(cd "$(dirname "$SELF")/../.." && pwd -P)

log() { printf '%s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}
now_us() {
    local t=$EPOCHREALTIME
    echo "${t/./}"
}

# ---- inner mode: runs inside a host netns (ip netns exec), driven by a plan ------------------
# Plan lines: "<verb> <chain> <side> <pod> <key>"; key "-" runs untimed (filling a bridge).
# Latency and RSS go to $W/s/<key>.<side> and <key>_rss.<side>; failures to <key>_fail.<side>.
cnitool_call() { # verb chain side pod [host]
    local confdir=$W/conf/$2-$3 cnipath ns=()
    if [ "$3" = A ]; then cnipath=$CNI_PATH_A; else cnipath=$CNI_PATH_B; fi
    [ -n "${5:-}" ] && ns=(ip netns exec "$5")
    NETCONFPATH=$confdir CNI_PATH=$cnipath "${TIMECMD[@]}" "${ns[@]}" "$CNITOOL" "$1" "$(cat "$confdir/name")" \
        "/run/netns/$4" </dev/null >/dev/null 2>>"$W/err.$3.log"
}

# One timed call through the spawn harness: wall time, peak RSS and CPU time of the client and
# the plugins it ran.
spawn_call() { # verb chain side pod key [host]
    local confdir=$W/conf/$2-$3 cnipath label us rss rc cpu ns=()
    if [ "$3" = A ]; then cnipath=$CNI_PATH_A; else cnipath=$CNI_PATH_B; fi
    [ -n "${6:-}" ] && ns=(-n "/run/netns/$6")
    read -r label us rss rc cpu < <(NETCONFPATH=$confdir CNI_PATH=$cnipath \
        "$SPAWN" -1 "$3" "${ns[@]}" "$CNITOOL" "$1" "$(cat "$confdir/name")" "/run/netns/$4")
    if [ "$rc" = 0 ]; then
        echo "$us" >>"$W/s/$5.$3"
        echo "$rss" >>"$W/s/${5}_rss.$3"
        echo "$cpu" >>"$W/s/${5}_cpu.$3"
    else
        echo "$4" >>"$W/s/${5}_fail.$3"
    fi
}

inner_plan() {
    local verb chain side pod key host t0 t1
    while read -r verb chain side pod key host; do
        if [ "$key" = - ]; then
            TIMECMD=()
            cnitool_call "$verb" "$chain" "$side" "$pod" "$host" || echo "$verb $chain $pod" >>"$W/s/fill_fail.$side"
            continue
        fi
        if [ -n "$SPAWN" ]; then
            spawn_call "$verb" "$chain" "$side" "$pod" "$key" "$host"
            continue
        fi
        TIMECMD=()
        [ -n "$TIME_BIN" ] && TIMECMD=("$TIME_BIN" -f %M -o "$W/rss.tmp")
        t0=$(now_us)
        if cnitool_call "$verb" "$chain" "$side" "$pod" "$host"; then
            t1=$(now_us)
            echo $((t1 - t0)) >>"$W/s/$key.$side"
            if [ -n "$TIME_BIN" ] && [ -s "$W/rss.tmp" ]; then tail -n 1 "$W/rss.tmp" >>"$W/s/${key}_rss.$side"; fi
        else
            echo "$pod" >>"$W/s/${key}_fail.$side"
        fi
    done
}

# "<verb> <chain> <side> <key> <pods…>": all at once; wall time and failures.
inner_par() {
    local verb=$1 chain=$2 side=$3 key=$4 t0 t1 p fails=$W/par.fail confdir=$W/conf/$2-$3 cnipath label us failed
    shift 4
    TIMECMD=()
    if [ -n "$SPAWN" ]; then
        # All clients started by the spawn harness at once: no shell fork per call in the figure.
        if [ "$side" = A ]; then cnipath=$CNI_PATH_A; else cnipath=$CNI_PATH_B; fi
        read -r label us failed < <(printf '/run/netns/%s\n' "$@" | NETCONFPATH=$confdir CNI_PATH=$cnipath \
            "$SPAWN" -p "$side" "$CNITOOL" "$verb" "$(cat "$confdir/name")" 2>>"$W/err.$side.log")
        echo "$us" >>"$W/s/$key.$side"
        echo "$failed" >>"$W/s/${key}_failed.$side"
        return
    fi
    : >"$fails"
    t0=$(now_us)
    for p in "$@"; do
        { cnitool_call "$verb" "$chain" "$side" "$p" || echo "$p" >>"$fails"; } &
    done
    wait
    t1=$(now_us)
    echo $((t1 - t0)) >>"$W/s/$key.$side"
    wc -l <"$fails" | tr -d ' ' >>"$W/s/${key}_failed.$side"
}

if [ "${1:-}" = --inner ]; then
    shift
    TIMECMD=()
    case $1 in
        plan) inner_plan <"$2" ;;
        par) shift; inner_par "$@" ;;
        *) die "unknown inner command $1" ;;
    esac
    exit 0
fi

# ---- setup -----------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs ip (iproute2)"
# The run has a mount namespace of its own, where /run/cni, which plugins write per call
# (tuning's backups, cnibox's notes for portmap's and firewall's garbage collection), is a
# tmpfs, as a node's /run is, and the machine's own /run/cni is left as it is; the node
# namespaces the run makes are mounted only there, so they go with it however it ends.
if [ -z "${BENCH_OWN_MOUNTS:-}" ] && command -v unshare >/dev/null; then
    export BENCH_OWN_MOUNTS=1
    exec unshare --mount --propagation private "$SELF" "$@"
fi
RUN_CNI="the machine's /run/cni"
if [ "${BENCH_OWN_MOUNTS:-}" = 1 ] && mkdir -p /run/cni && mount -t tmpfs -o mode=0755,size=64m cnibox-bench /run/cni; then
    RUN_CNI="a tmpfs of the run's own"
fi
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-}
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
REF=${BENCH_REF_DIR:-/usr/lib/cni}
JSON=${BENCH_JSON:-$TOP/target/bench.json}
POD_IPV6=${BENCH_POD_IPV6:-on}
case $POD_IPV6 in on | off) ;; *) die "BENCH_POD_IPV6 is on or off, not \"$POD_IPV6\"" ;; esac
ARCH=$(uname -m)
BIN=${CNIBOX_BIN:-$TOP/target/cnibox}
[ -x "$BIN" ] || die "no cnibox binary at $BIN (make build, or set CNIBOX_BIN)"
BIN=$(readlink -f "$BIN")

apt_install() {
    command -v apt-get >/dev/null || return 1
    log "installing $*"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
        >/dev/null 2>&1
}
if [ ! -x "$REF/bridge" ] && [ "$REF" = /usr/lib/cni ]; then
    apt_install containernetworking-plugins || log "could not install containernetworking-plugins"
fi
[ -d "$REF" ] || log "no reference plugins in $REF: its figures are n/a"
# The reference's portmap, firewall and ipMasq write iptables rules.
command -v iptables >/dev/null || apt_install iptables || log "no iptables: the reference's full chain is n/a"
TIME_BIN=
if [ -x /usr/bin/time ] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
    TIME_BIN=/usr/bin/time
elif apt_install time && [ -x /usr/bin/time ]; then
    TIME_BIN=/usr/bin/time
else
    log "no GNU time: peak RSS is n/a"
fi

if [ "$QUICK" = 1 ]; then
    VERSION_ITERS=20 VERSION_MAX=3 POD_N=5 CONC_LEVELS="32" CONC_ROUNDS=1 CONC_SETTLE=0 SCALE_LEVELS="10 50" SCALE_M=3 SCALE_SETTLE=1
else
    VERSION_ITERS=100 VERSION_MAX=6 POD_N=30 CONC_LEVELS="32 64" CONC_ROUNDS=5 CONC_SETTLE=1 SCALE_LEVELS="10 100 250" SCALE_M=20 SCALE_SETTLE=15
fi

W=$(mktemp -d /tmp/cnibox-bench.XXXXXX)
TAG=cbxb$$
mkdir -p "$W/s" "$W/conf" "$W/cnibox-bin"
: >"$W/netns.list"
: >"$W/metrics"

cleanup() {
    local rc=$?
    # A second interrupt must not cut the cleanup short.
    trap - EXIT
    trap '' INT TERM
    jobs -p | xargs -r kill 2>/dev/null || true
    if [ -s "$W/netns.list" ]; then
        sed 's/^/netns delete /' "$W/netns.list" >"$W/netns.del"
        ip -force -batch "$W/netns.del" >/dev/null 2>&1 || true
    fi
    # Results a runtime client that ignores CNI_CACHE_DIR (BENCH_CNITOOL) cached for this run's
    # networks (all named $TAG…).
    rm -f /var/lib/cni/results/"$TAG"* 2>/dev/null || true
    if [ -n "${BENCH_SAMPLES:-}" ]; then
        mkdir -p "$BENCH_SAMPLES" && cp -r "$W/s/." "$BENCH_SAMPLES/" || true
    fi
    if [ -n "${STATE:-}" ] && mountpoint -q "$STATE" 2>/dev/null; then umount "$STATE" 2>/dev/null || umount -l "$STATE" 2>/dev/null || true; fi
    rm -rf "$W"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What the plugins and the runtime client keep between calls (host-local's leases, the client's
# result cache) goes where a node keeps it, /var/lib/cni: on a journaled filesystem. On ext4
# without a journal (as this project's development VM's root is), each new file's inode is found
# by skipping every inode of its group deleted in the last minutes, and the benchmark deletes
# them by the thousand: a cost no node pays, added alike to both sides' every ADD (0.26 ms per
# bridge ADD after 2 000 deletions in each of the two directories). So the run keeps that state
# on a journaled ext4 image of its own, loop-mounted under $W, or, where that cannot be had, in
# $W itself.
STATE=$W/state
mkdir -p "$STATE"
if command -v mkfs.ext4 >/dev/null && truncate -s 256M "$W/state.img" 2>/dev/null &&
    mkfs.ext4 -q -F -j "$W/state.img" >/dev/null 2>&1 && mount -o loop "$W/state.img" "$STATE" 2>/dev/null; then
    STATE_ON="a journaled ext4 image (loop-mounted)"
else
    rm -f "$W/state.img"
    STATE_ON="$(findmnt -n -o FSTYPE --target "$W" 2>/dev/null || echo unknown) under $W"
    log "no journaled image for the leases and the result cache: they stay under $W"
fi
export CNI_CACHE_DIR=$STATE/cache
if [ -n "${BENCH_CNITOOL:-}" ]; then
    STATE_ON="$STATE_ON (leases; the result cache where $BENCH_CNITOOL keeps it)"
fi
log "leases and result cache on $STATE_ON; /run/cni on $RUN_CNI"

mapfile -t APPLETS < <("$BIN" --list)
for a in "${APPLETS[@]}"; do ln -s "$BIN" "$W/cnibox-bin/$a"; done
has_a() { [ -e "$W/cnibox-bin/$1" ]; }
has_b() { [ -x "$REF/$1" ]; }
COMMON=()
for a in "${APPLETS[@]}"; do has_b "$a" && COMMON+=("$a"); done

# Both sides' programs start out of the page cache, as on a node that loads them from disk.
# Peak RSS depends on it: kernels with large page-cache folios (ext4 since Linux 6.16) map the
# whole folio a touched page belongs to, and a file just written (the build's objcopy) sits in
# folios as large as its writes, where one read back from disk sits in readahead-sized ones:
# the same cnibox binary peaks at 1.53 MiB freshly written and about 1.2 MiB once loaded.
# Written back first: the kernel drops only clean pages.
for f in "$BIN" "${COMMON[@]/#/$REF/}"; do
    sync "$f" 2>/dev/null || true
    dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true
done

REF_BOTH=${BENCH_REF_BOTH:-0}
if [ "$REF_BOTH" = 1 ]; then
    log "BENCH_REF_BOTH=1: side A runs the reference plugins too"
    CNI_PATH_A=$REF
    has_a() { has_b "$1"; }
else
    CNI_PATH_A=$W/cnibox-bin
fi
CNI_PATH_B=$REF
CNITOOL=${BENCH_CNITOOL:-}
if [ -z "$CNITOOL" ]; then
    if [ -e "$W/cnibox-bin/cnitool" ]; then CNITOOL=$W/cnibox-bin/cnitool; fi
fi
# Timing and RSS come from tests/bench/spawn.c (posix_spawn + wait4, A and B alternating; static,
# since a child's peak RSS starts from the RSS of the process that spawned it), so
# the harness adds the same small cost to both sides. Its floor — the same harness running an
# empty static program — is reported too: no process can start faster than that here. On x86_64
# that program has no C library (its entry point only exits): glibc's static start-up runs
# dozens of CPUID instructions, each a trap to the hypervisor in a VM (tests/bench/nop.c).
build_floor() {
    if [ "$ARCH" = x86_64 ]; then
        printf 'void _start(void) { __asm__ volatile("mov $231, %%eax\\n xor %%edi, %%edi\\n syscall"); }\n' >"$W/floor.c"
        gcc -O2 -static -nostdlib -ffreestanding -o "$W/floor" "$W/floor.c" 2>/dev/null && return
    fi
    printf 'int main(void){return 0;}\n' >"$W/floor.c" && gcc -O2 -static -o "$W/floor" "$W/floor.c" 2>/dev/null
}
SPAWN=""
if command -v gcc >/dev/null && gcc -O2 -static -o "$W/spawn" "$TOP/tests/bench/spawn.c" 2>/dev/null && build_floor; then
    SPAWN=$W/spawn
else
    log "no gcc: exec figures come from bash timing"
fi
export W CNI_PATH_A CNI_PATH_B CNITOOL TIME_BIN SPAWN

metric() { # key|label|unit|scale (sample values are divided by scale for display and JSON)
    printf '%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" >>"$W/metrics"
}
add_netns() { # names… (batched; all recorded for cleanup)
    local n
    : >"$W/netns.add"
    for n in "$@"; do
        echo "$n" >>"$W/netns.list"
        echo "netns add $n" >>"$W/netns.add"
    done
    ip -batch "$W/netns.add" >/dev/null
}
del_netns() {
    local n
    : >"$W/netns.del1"
    for n in "$@"; do echo "netns delete $n" >>"$W/netns.del1"; done
    ip -force -batch "$W/netns.del1" >/dev/null 2>&1 || true
    grep -vxF -f <(printf '%s\n' "$@") "$W/netns.list" >"$W/netns.keep" || true
    mv "$W/netns.keep" "$W/netns.list"
}
SEQ=0
new_host() { # sets HOST
    SEQ=$((SEQ + 1))
    HOST=${TAG}h$SEQ
    add_netns "$HOST"
    ip -n "$HOST" link set lo up
}
new_pods() { # side count: sets NEW (an array of names)
    local side=$1 count=$2 i
    SEQ=$((SEQ + 1))
    NEW=()
    for ((i = 1; i <= count; i++)); do NEW+=("${TAG}p$SEQ$side$i"); done
    add_netns "${NEW[@]}"
    if [ "$POD_IPV6" = off ]; then
        for i in "${NEW[@]}"; do ip netns exec "$i" sysctl -qw net.ipv6.conf.default.disable_ipv6=1; done
    fi
}
in_host() { # host inner-args…
    local h=$1
    shift
    ip netns exec "$h" "$SELF" --inner "$@"
}

# Each section starts on a quiet machine: once the CPUs have been idle for at least nine tenths
# of a fifth of a second (for at most 30 s). The kernel tears deleted namespaces down in its
# own workers for seconds after they go: a run started straight after another (or a section
# straight after one that deleted hundreds) measured in its teardown (the runtime client alone
# 0.63 ms, against 0.43 in the run before, with the same build).
cpu_times() { # total idle (jiffies, all CPUs)
    awk '/^cpu /{t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6}' /proc/stat
}
quiet() { # [max seconds, 30 unless given]
    local i t0 i0 t1 i1
    for ((i = 0; i < ${1:-30} * 5; i++)); do
        read -r t0 i0 < <(cpu_times)
        sleep 0.2
        read -r t1 i1 < <(cpu_times)
        if [ $((t1 - t0)) -gt 0 ] && [ $(((i1 - i0) * 100 / (t1 - t0))) -ge 90 ]; then
            return 0
        fi
    done
    log "the machine stayed busy for ${1:-30} s: measuring all the same"
}

# ---- install size ----------------------------------------------------------------------------
if want size; then
    log "install size"
    metric size "install size (${#COMMON[@]} common plugins)" MiB 1048576
    stat -c %s "$BIN" >"$W/s/size.A"
    if [ ${#COMMON[@]} -gt 0 ]; then
        total=0
        for a in "${COMMON[@]}"; do total=$((total + $(stat -L -c %s "$REF/$a"))); done
        echo "$total" >"$W/s/size.B"
    fi
fi

# ---- exec: CNI_COMMAND=VERSION ---------------------------------------------------------------
quiet
VERSION_APPLETS=()
for a in loopback host-local bridge ptp static portmap tuning bandwidth firewall macvlan ipvlan vlan; do
    if [ ${#VERSION_APPLETS[@]} -lt "$VERSION_MAX" ] && { has_a "$a" || has_b "$a"; }; then VERSION_APPLETS+=("$a"); fi
done
version_once() { # side applet key (bash fallback)
    local exe t0 t1
    if [ "$1" = A ]; then exe=$CNI_PATH_A/$2; else exe=$CNI_PATH_B/$2; fi
    t0=$EPOCHREALTIME
    if CNI_COMMAND=VERSION "$exe" </dev/null >/dev/null 2>&1; then
        t1=$EPOCHREALTIME
        echo $((${t1/./} - ${t0/./})) >>"$W/s/$3_ms.$1"
    else
        echo x >>"$W/s/$3_ms_fail.$1"
    fi
    if [ -n "$TIME_BIN" ] && CNI_COMMAND=VERSION "$TIME_BIN" -f %M -o "$W/rss.tmp" "$exe" </dev/null >/dev/null 2>&1; then
        tail -n 1 "$W/rss.tmp" >>"$W/s/$3_rss.$1"
    fi
}
version_spawn() { # applet key: both sides alternating, plus the floor
    local args=() label us rss rc
    has_a "$1" && args+=("A=$CNI_PATH_A/$1")
    has_b "$1" && args+=("B=$CNI_PATH_B/$1")
    args+=("F=$W/floor")
    CNI_COMMAND=VERSION "$SPAWN" "$VERSION_ITERS" "${args[@]}" | while read -r label us rss rc _cpu; do
        if [ "$label" = F ]; then
            echo "$us" >>"$W/s/floor_ms.A"
            echo "$us" >>"$W/s/floor_ms.B"
        elif [ "$rc" = 0 ]; then
            echo "$us" >>"$W/s/$2_ms.$label"
            echo "$rss" >>"$W/s/$2_rss.$label"
        else
            echo x >>"$W/s/$2_ms_fail.$label"
        fi
    done
}
want exec || VERSION_APPLETS=()
[ -n "$SPAWN" ] && want exec && metric floor_ms "process start floor (empty static program)" ms 1000
for a in "${VERSION_APPLETS[@]}"; do
    log "exec VERSION: $a"
    key=version_${a//-/_}
    metric "${key}_ms" "exec VERSION $a: latency" ms 1000
    metric "${key}_rss" "exec VERSION $a: peak RSS" MiB 1024
    if [ -n "$SPAWN" ]; then
        version_spawn "$a" "$key"
        continue
    fi
    for ((i = 0; i < VERSION_ITERS; i++)); do
        has_a "$a" && version_once A "$a" "$key"
        has_b "$a" && version_once B "$a" "$key"
    done
done

# ---- the kernel's floor --------------------------------------------------------------------------
# What the kernel alone charges for a pod's veth pair (tests/bench/vethfloor.c: one RTM_NEWLINK
# with the peer in the pod's namespace, one RTM_DELLINK), in a node namespace of its own: no
# plugin, of either side, can ADD a veth-attached pod faster. Deletion is timed twice: until the
# kernel announces the pair unregistered (names free, addresses, routes and bridge port gone),
# the floor of a DEL; and until the request returns, after the kernel has also waited for an
# RCU barrier to free the devices, which cnibox leaves to a child process and the reference
# waits for.
if want floors && command -v gcc >/dev/null && gcc -O2 -static -o "$W/vethfloor" "$TOP/tests/bench/vethfloor.c" 2>/dev/null; then
    log "kernel floor: veth pair create and delete"
    metric veth_add_floor "kernel floor: veth pair create (one RTM_NEWLINK)" ms 1000
    metric veth_gone_floor "kernel floor: veth pair delete, until unregistered" ms 1000
    metric veth_del_floor "kernel floor: veth pair delete, until the request returns" ms 1000
    new_host
    new_pods F 1
    if ip netns exec "$HOST" "$W/vethfloor" "$POD_N" "/run/netns/${NEW[0]}" >"$W/floor.out"; then
        while read -r op us; do
            for side in A B; do echo "$us" >>"$W/s/veth_${op}_floor.$side"; done
        done <"$W/floor.out"
    else
        log "  vethfloor failed"
    fi
    del_netns "$HOST" "${NEW[0]}"
fi

# ---- the runtime client's floor -------------------------------------------------------------------
# The runtime client driving a plugin that only answers (tests/bench/nop.c reads its
# configuration and prints a fixed result): what every per-pod figure below includes on both
# sides before a plugin does any work (two process starts, the client's configuration lookup and
# its result cache), so the gap between the two sides' ADD is measured from here, not from zero.
# The plugin is built freestanding where nop.c can be (x86_64): a C library's start-up is no part
# of what a client costs, and glibc's is slow in a VM (nop.c says why).
build_nop() {
    if [ "$ARCH" = x86_64 ]; then
        gcc -O2 -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -DNOP_FREESTANDING \
            -o "$W/nop-bin/nop" "$TOP/tests/bench/nop.c" 2>/dev/null && return
    fi
    gcc -O2 -static -o "$W/nop-bin/nop" "$TOP/tests/bench/nop.c" 2>/dev/null
}
if want floors && [ -n "$SPAWN" ] && [ -n "$CNITOOL" ] && mkdir -p "$W/nop-bin" "$W/conf/nop" && build_nop; then
    log "client floor: cnitool with a plugin that only answers"
    metric client_add_floor "client floor: cnitool ADD, plugin only answers" ms 1000
    metric client_del_floor "client floor: cnitool DEL, plugin only answers" ms 1000
    echo "${TAG}nop" >"$W/conf/nop/name"
    printf '{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"nop"}]}\n' "${TAG}nop" >"$W/conf/nop/nop.conflist"
    new_host
    new_pods F 1
    quiet
    for ((i = 0; i < POD_N; i++)); do
        for verb in add del; do
            read -r _ us _ rc _ < <(NETCONFPATH=$W/conf/nop CNI_PATH=$W/nop-bin \
                "$SPAWN" -1 F -n "/run/netns/$HOST" "$CNITOOL" "$verb" "${TAG}nop" "/run/netns/${NEW[0]}")
            if [ "$rc" = 0 ]; then
                for side in A B; do echo "$us" >>"$W/s/client_${verb}_floor.$side"; done
            fi
        done
    done
    del_netns "$HOST" "${NEW[0]}"
fi

# ---- per-pod chains ----------------------------------------------------------------------------
SUBNET=0
write_conf() { # chain side
    local chain=$1 side=$2 dir=$W/conf/$1-$2 ipam main
    SUBNET=$((SUBNET + 1))
    mkdir -p "$dir" "$STATE/ipam/$chain-$side"
    echo "$TAG$chain$side" >"$dir/name"
    ipam="\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.$((200 + SUBNET)).0.0/16\"}]],\"dataDir\":\"$STATE/ipam/$chain-$side\"}"
    case $chain in
        bridge) main="{\"type\":\"bridge\",\"bridge\":\"cbx$side$SUBNET\",\"isGateway\":true,\"ipMasq\":false,$ipam}" ;;
        ptp) main="{\"type\":\"ptp\",\"ipMasq\":false,$ipam}" ;;
        # The chain of nerdctl's default network, with bandwidth added.
        full) main="{\"type\":\"bridge\",\"bridge\":\"cbx$side$SUBNET\",\"isGateway\":true,\"ipMasq\":true,$ipam},
{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}},
{\"type\":\"bandwidth\",\"capabilities\":{\"bandwidth\":true}},
{\"type\":\"tuning\",\"sysctl\":{\"net.ipv4.conf.IFNAME.arp_notify\":\"1\"}},
{\"type\":\"firewall\"}" ;;
        # The same with every rule in iptables, as the reference writes them (the reference's
        # 1.1 ignores the backend keys it does not know, and uses iptables anyway).
        fullipt) main="{\"type\":\"bridge\",\"bridge\":\"cbx$side$SUBNET\",\"isGateway\":true,\"ipMasq\":true,\"ipMasqBackend\":\"iptables\",$ipam},
{\"type\":\"portmap\",\"backend\":\"iptables\",\"capabilities\":{\"portMappings\":true}},
{\"type\":\"bandwidth\",\"capabilities\":{\"bandwidth\":true}},
{\"type\":\"tuning\",\"sysctl\":{\"net.ipv4.conf.IFNAME.arp_notify\":\"1\"}},
{\"type\":\"firewall\",\"backend\":\"iptables\"}" ;;
    esac
    printf '{"cniVersion":"1.0.0","name":"%s","plugins":[%s]}\n' "$TAG$chain$side" "$main" >"$dir/$chain.conflist"
}
fresh_ipam() { rm -rf "$STATE/ipam"/*/* 2>/dev/null || true; }

chain_plugins() { # chain: the plugins it runs
    case $1 in
        full | fullipt) echo bridge portmap bandwidth tuning firewall ;;
        *) echo "$1" ;;
    esac
}
chain_label() { # chain: how the table names it
    case $1 in
        full) echo "bridge+host-local+portmap+bandwidth+tuning+firewall" ;;
        fullipt) echo "bridge+host-local+portmap+bandwidth+tuning+firewall, iptables backends" ;;
        *) echo "$1+host-local" ;;
    esac
}

# Sides that can run a chain: its plugins and host-local exist there, and one probe pod gets an
# address on eth0 through the runtime client.
chain_sides() { # chain: sets USABLE to the usable sides
    local chain=$1 side h p
    USABLE=
    [ -n "$CNITOOL" ] || return 0
    for side in A B; do
        local missing="" plugin
        for plugin in $(chain_plugins "$chain") host-local; do
            if [ $side = A ]; then has_a "$plugin" || missing="$missing $plugin"; fi
            if [ $side = B ]; then has_b "$plugin" || missing="$missing $plugin"; fi
        done
        [ -z "$missing" ] || { log "  side $side lacks$missing"; continue; }
        write_conf "$chain" "$side"
        new_host
        h=$HOST
        new_pods "$side" 1
        p=${NEW[0]}
        printf 'add %s %s %s probe\ndel %s %s %s probe\n' "$chain" "$side" "$p" "$chain" "$side" "$p" >"$W/plan"
        # Check the address between ADD and DEL.
        head -n 1 "$W/plan" >"$W/plan1"
        in_host "$h" plan "$W/plan1"
        if ip -n "$p" -4 addr show dev eth0 2>/dev/null | grep -q inet; then
            USABLE="$USABLE $side"
        else
            why=$(tail -n 2 "$W/err.$side.log" 2>/dev/null | tr '\n' ' ')
            log "  $chain on side $side does not attach a pod (${why:-no IPv4 address on eth0}); its figures are n/a"
        fi
        tail -n 1 "$W/plan" >"$W/plan1"
        in_host "$h" plan "$W/plan1"
        del_netns "$h" "$p"
        rm -f "$W/s/probe"*
    done
    fresh_ipam
}

declare -A SIDES
# Capability args every call carries; only the full chain's plugins declare them.
export CAP_ARGS='{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":100000000,"ingressBurst":10000000,"egressRate":100000000,"egressBurst":10000000}}'
for chain in bridge ptp full fullipt; do
    want chains || [ $chain = bridge ] || continue
    log "chain $chain: probing"
    chain_sides "$chain"
    SIDES[$chain]=$USABLE
    [ -n "${SIDES[$chain]}" ] || { log "  no side can run $chain"; continue; }
    want chains || continue
    log "chain $chain (${SIDES[$chain]}): $POD_N pods, ADD then DEL"
    for k in add del; do
        metric "${chain}_$k" "per pod $(chain_label "$chain"): $k latency" ms 1000
        metric "${chain}_${k}_rss" "per pod $(chain_label "$chain"): $k peak RSS" MiB 1024
        [ -n "$SPAWN" ] && metric "${chain}_${k}_cpu" "per pod $(chain_label "$chain"): $k CPU time (user+sys)" ms 1000
    done
    # Each side on a node namespace of its own, as a node runs one implementation: neither sees
    # the other's bridge, rules or nat tables. Calls still alternate A B A B.
    declare -A PODS=() NODES=()
    for side in ${SIDES[$chain]}; do
        new_host
        NODES[$side]=$HOST
        new_pods "$side" "$POD_N"
        PODS[$side]="${NEW[*]}"
    done
    quiet
    : >"$W/plan"
    for verb in add del; do
        for ((i = 1; i <= POD_N; i++)); do
            for side in ${SIDES[$chain]}; do
                pod=$(echo ${PODS[$side]} | cut -d' ' -f"$i")
                echo "$verb $chain $side $pod ${chain}_$verb ${NODES[$side]}" >>"$W/plan"
            done
        done
    done
    "$SELF" --inner plan "$W/plan"
    del_netns ${NODES[A]:-} ${NODES[B]:-} ${PODS[A]:-} ${PODS[B]:-}
    unset PODS NODES
    fresh_ipam
done

# A cold start is a quiet node: before each side's run, the kernel's work left from the run
# before (namespaces and links of either side still being torn down, by the kernel's cleanup
# workers and by plugins that leave a deleted link's freeing to a child) is let finish, so
# that neither side pays for the other's teardown.
settle() { # seconds
    local i
    for ((i = 0; i < 50; i++)); do
        pgrep -f "^$W/" >/dev/null || break
        sleep 0.1
    done
    sleep "$1"
    quiet
}

# ---- concurrency (bridge) ----------------------------------------------------------------------
if want concurrency && [ -n "${SIDES[bridge]:-}" ]; then
    for n in $CONC_LEVELS; do
        metric "conc${n}_add" "$n concurrent ADDs, cold: wall time" ms 1000
        metric "conc${n}_add_failed" "$n concurrent ADDs: failures" count 1
        metric "conc${n}_del" "$n concurrent DELs: wall time" ms 1000
        metric "conc${n}_del_failed" "$n concurrent DELs: failures" count 1
        for ((r = 1; r <= CONC_ROUNDS; r++)); do
            for side in ${SIDES[bridge]}; do
                log "concurrency $n, round $r, side $side"
                fresh_ipam
                new_host
                new_pods "$side" "$n"
                settle "$CONC_SETTLE"
                in_host "$HOST" par add bridge "$side" "conc${n}_add" "${NEW[@]}"
                in_host "$HOST" par del bridge "$side" "conc${n}_del" "${NEW[@]}"
                del_netns "$HOST" "${NEW[@]}"
            done
        done
    done
fi

# ---- scaling (bridge) ----------------------------------------------------------------------------
# A node with N pods runs one implementation: each side is measured on a kernel that holds its
# own N pods only, as a node would, not the other side's as well (the kernel's per-namespace
# structures that a pod's set-up walks, such as the /proc/sys entries of every namespace, would
# count both). So for each level the sides take turns (A B, then B A at the next level): a node
# namespace filled to N pods, the pause below, then SCALE_M ADD+DEL, and the lot torn down.
if want scaling && [ -n "${SIDES[bridge]:-}" ]; then
    order=${SIDES[bridge]}
    for level in $SCALE_LEVELS; do
        metric "scale${level}_add" "ADD with $level pods on the bridge: latency" ms 1000
        metric "scale${level}_del" "DEL with $level pods on the bridge: latency" ms 1000
        if [ -n "$SPAWN" ]; then
            # The client's and plugins' own CPU time (the kernel's work in their system calls
            # included; its workers' work for the new pod, such as IPv6's first packets, not).
            metric "scale${level}_add_cpu" "ADD with $level pods on the bridge: CPU time (user+sys)" ms 1000
            metric "scale${level}_del_cpu" "DEL with $level pods on the bridge: CPU time (user+sys)" ms 1000
        fi
        for side in $order; do
            log "scaling: side $side, filling the bridge to $level pods"
            fresh_ipam
            new_host
            node=$HOST
            new_pods "$side" "$level"
            fill=("${NEW[@]}")
            : >"$W/plan"
            for pod in "${fill[@]}"; do echo "add bridge $side $pod - $node" >>"$W/plan"; done
            "$SELF" --inner plan "$W/plan"
            # A node reaches N pods over minutes, the fill in seconds: let the kernel's own work
            # for the new interfaces (IPv6 DAD, MLD reports, router solicitations, each flooded
            # to every port of the bridge under the RTNL lock) and for the namespaces the turn
            # before tore down die down, so that what is measured is the cost of a pod on a node
            # that holds N, not the tail of the fill. Each new pod solicits a router at once and
            # again about 4, 12, 28 and 60 s later (RFC 7559's backoff, with no router
            # answering): pods filled together solicit together, so the fill's pods send their
            # third round about 10-13 s after it ends (earlier for those filled first) and their
            # fourth from about 20 s. The pods are measured about 15 s after the fill, between
            # the two (a node whose pods came over minutes has no such bursts).
            sleep "$SCALE_SETTLE"
            # Briefly: the window between two rounds of solicitations is a few seconds.
            quiet 3
            log "scaling: side $side, $SCALE_M ADD+DEL at $level pods"
            new_pods "$side" "$SCALE_M"
            : >"$W/plan"
            for pod in "${NEW[@]}"; do
                echo "add bridge $side $pod scale${level}_add $node" >>"$W/plan"
                echo "del bridge $side $pod scale${level}_del $node" >>"$W/plan"
            done
            "$SELF" --inner plan "$W/plan"
            del_netns "$node" "${fill[@]}" "${NEW[@]}"
        done
        order=$(echo "$order" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }')
    done
    for side in A B; do
        if [ -s "$W/s/fill_fail.$side" ]; then
            log "scaling: $(wc -l <"$W/s/fill_fail.$side") fill ADDs failed on side $side"
        fi
    done
    fresh_ipam
fi

# ---- report ----------------------------------------------------------------------------------------
stats() { # file scale: "n median min max" in display units, or nothing
    [ -s "$1" ] || return 0
    sort -n "$1" | awk -v s="$2" '{a[NR]=$1} END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%d %.4f %.4f %.4f\n", NR, m / s, a[1] / s, a[NR] / s }'
}
fmt_cell() { # n median min max unit
    local d=2
    [ "$5" = count ] && d=0
    if [ "$1" -gt 1 ]; then
        awk -v m="$2" -v lo="$3" -v hi="$4" -v d="$d" 'BEGIN { printf "%.*f [%.*f-%.*f]", d, m, d, lo, d, hi }'
    else
        awk -v m="$2" -v d="$d" 'BEGIN { printf "%.*f", d, m }'
    fi
}
json_side() { # "n median min max" failures
    if [ -z "$1" ]; then
        printf 'null'
    else
        # shellcheck disable=SC2086
        set -- $1 "$2"
        printf '{"n":%s,"median":%s,"min":%s,"max":%s,"failures":%s}' "$1" "$2" "$3" "$4" "$5"
    fi
}
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

mkdir -p "$(dirname "$JSON")"
ref_version=$(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)
a_label=cnibox
[ "$REF_BOTH" = 1 ] && a_label="A (=reference)"
{
    printf '{\n  "tool": "cnibox bench",\n  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "kernel": %s,\n  "cnibox": %s,\n' "$(json_str "$(uname -r)")" "$(json_str "$("$BIN" --version 2>/dev/null || echo unknown)")"
    printf '  "reference": %s,\n  "reference_dir": %s,\n' "$(json_str "$ref_version")" "$(json_str "$REF")"
    printf '  "quick": %s,\n  "reference_on_both_sides": %s,\n' "$([ "$QUICK" = 1 ] && echo true || echo false)" \
        "$([ "$REF_BOTH" = 1 ] && echo true || echo false)"
    printf '  "pod_ipv6": %s,\n' "$([ "$POD_IPV6" = on ] && echo true || echo false)"
    printf '  "state_on": %s,\n  "run_cni_on": %s,\n' "$(json_str "$STATE_ON")" "$(json_str "$RUN_CNI")"
    printf '  "applets": [%s],\n' "$(for a in "${APPLETS[@]}"; do printf '"%s",' "$a"; done | sed 's/,$//')"
    printf '  "common_with_reference": [%s],\n' "$(for a in "${COMMON[@]}"; do printf '"%s",' "$a"; done | sed 's/,$//')"
    printf '  "metrics": [\n'
} >"$JSON"

printf '\n%-46s %26s %26s %7s\n' "metric (median [min-max])" "$a_label" "reference" "ratio"
printf '%s\n' "$(printf '%.0s-' {1..108})"
first=1
while IFS='|' read -r key label unit scale; do
    declare -A S=() F=()
    for side in A B; do
        S[$side]=$(stats "$W/s/$key.$side" "$scale")
        F[$side]=0
        for ff in "$W/s/${key}_fail.$side" "$W/s/${key}_ms_fail.$side"; do
            [ -s "$ff" ] && F[$side]=$((F[$side] + $(wc -l <"$ff")))
        done
    done
    cells=()
    for side in A B; do
        if [ -n "${S[$side]}" ]; then
            # shellcheck disable=SC2086
            c=$(fmt_cell ${S[$side]} "$unit")
            if [ "${F[$side]}" -gt 0 ]; then c="$c (${F[$side]} failed)"; fi
        elif [ "${F[$side]}" -gt 0 ]; then
            c="all ${F[$side]} failed"
        else
            c=n/a
        fi
        cells+=("$c")
    done
    ratio=-
    if [ -n "${S[A]}" ] && [ -n "${S[B]}" ]; then
        ratio=$(awk -v a="$(echo "${S[A]}" | cut -d' ' -f2)" -v b="$(echo "${S[B]}" | cut -d' ' -f2)" \
            'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    fi
    printf '%-46s %26s %26s %7s\n' "$label ($unit)" "${cells[0]}" "${cells[1]}" "$ratio"
    jr=null
    if [ "$ratio" != - ]; then jr=$ratio; fi
    {
        [ $first = 1 ] || printf ',\n'
        printf '    {"key":"%s","label":%s,"unit":"%s","cnibox":%s,"reference":%s,"ratio":%s}' "$key" \
            "$(json_str "$label")" "$unit" "$(json_side "${S[A]}" "${F[A]}")" "$(json_side "${S[B]}" "${F[B]}")" "$jr"
    } >>"$JSON"
    first=0
    unset S F
done <"$W/metrics"
printf '\n  ]\n}\n' >>"$JSON"
echo
echo "ratio = $a_label / reference (below 1: cnibox is smaller or faster); JSON: $JSON"
if [ "$POD_IPV6" = off ]; then echo "control run: IPv6 off in every pod namespace (BENCH_POD_IPV6=off)"; fi
