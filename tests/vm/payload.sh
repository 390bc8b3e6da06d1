#!/bin/sh
# Runs inside the VM of `make test-vm`, from /payload where the test binaries and cnibox are.
# Each argument is `BINARY[:FILTER]`: a cargo test binary (by basename) and an optional
# test-name filter. Every binary runs, one test at a time; the exit status is 1 if any failed.
status=0
for spec in "$@"; do
  bin=${spec%%:*}
  filter=
  [ "$bin" = "$spec" ] || filter=${spec#*:}
  echo "=== $bin $filter"
  # shellcheck disable=SC2086
  if ! "./$bin" --test-threads=1 $filter; then
    echo "=== FAILED: $bin $filter"
    status=1
  fi
done
exit $status
