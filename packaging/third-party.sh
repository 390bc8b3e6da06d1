#!/bin/sh
# packaging/third-party.sh — write packaging/THIRD-PARTY-LICENSES: the crates compiled into the
# cnibox binary (Cargo.lock's normal dependencies for the Linux targets, build-time proc-macros
# left out), each with its licence expression and the licence texts its source ships, from
# cargo's offline registry. Rerun after Cargo.lock changes; `--check` fails when the file is
# stale. The C library linked in (musl, MIT; or glibc, LGPL-2.1+) is named at the top.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
top=${here%/*}
out=$here/THIRD-PARTY-LICENSES
check=0
[ "${1:-}" = --check ] && check=1

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cd "$top"
cargo metadata --format-version 1 --offline --locked --filter-platform "$(uname -m)-unknown-linux-musl" |
    python3 -c '
import json, os, sys
m = json.load(sys.stdin)
pk = {p["id"]: p for p in m["packages"]}
res = {n["id"]: n for n in m["resolve"]["nodes"]}
def runtime(p):
    return not any("proc-macro" in t["kind"] for t in p["targets"])
root = next(p["id"] for p in m["packages"] if p["name"] == "cnibox")
seen, todo = set(), [root]
while todo:
    i = todo.pop()
    if i in seen:
        continue
    seen.add(i)
    if not runtime(pk[i]):
        continue  # a proc-macro runs at build time: neither it nor its dependencies are linked
    for d in res[i]["deps"]:
        if any(k["kind"] is None for k in d["dep_kinds"]):
            todo.append(d["pkg"])
crates = sorted((pk[i] for i in seen if pk[i]["name"] != "cnibox" and runtime(pk[i])),
                key=lambda p: (p["name"], p["version"]))
print("Third-party software in the cnibox binary")
print("=========================================")
print()
print("cnibox itself is licensed under the Apache License 2.0 (LICENSE). The static binary also")
print("contains the Rust standard library (MIT OR Apache-2.0), the C library it is linked with")
print("(musl, MIT; or, in a glibc build, the GNU C Library, LGPL-2.1-or-later), and these crates:")
print()
for p in crates:
    print("  %-22s %-10s %s" % (p["name"], p["version"], p["license"]))
for p in crates:
    d = os.path.dirname(p["manifest_path"])
    texts = sorted(f for f in os.listdir(d) if f.upper().startswith(("LICENSE", "LICENCE", "COPYING", "UNLICENSE")))
    # Where MIT is one of the choices, it is the one taken (its text carries the notice).
    mit = [f for f in texts if "MIT" in f.upper()]
    if "MIT" in p["license"].replace("(", " ").replace(")", " ").split() and mit:
        texts = mit
    print()
    print("-" * 78)
    print("%s %s (%s)" % (p["name"], p["version"], p["license"]))
    for f in texts:
        path = os.path.join(d, f)
        if os.path.isfile(path):
            print()
            print("%s:" % f)
            print()
            with open(path, encoding="utf-8", errors="replace") as t:
                print(t.read().rstrip())
' >"$tmp"

if [ "$check" = 1 ]; then
    cmp -s "$tmp" "$out" || { echo "$out is stale: run packaging/third-party.sh" >&2; exit 1; }
else
    cp "$tmp" "$out"
    echo "$out"
fi
