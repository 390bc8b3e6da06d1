# cnibox — build, test, demo, bench, package.
# Everything here runs offline on Debian 12 as root; `make test` installs what it needs.

SHELL := /bin/bash
ARCH := $(shell uname -m)
# musl when its target is installed, else glibc with +crt-static; the target is always explicit
# so that RUSTFLAGS never reach build scripts or proc-macros. A rustup toolchain without the
# musl target gets it added first (a fresh machine's has only glibc's, whose static build is
# 0.9 MB larger); offline (or after five minutes without it), the glibc build is made instead.
# (Without rustup on the PATH, as under `sudo make install`, a musl build in the tree counts too.)
MUSL := $(ARCH)-unknown-linux-musl
# Not for `make -n` or `make -q`, which must change nothing.
ifeq ($(origin TARGET),undefined)
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS))),)
ifneq ($(filter all build test test-vm demo bench hot-order package install lint,$(or $(MAKECMDGOALS),all)),)
$(shell command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx '$(MUSL)' \
  && { echo "adding the rust target $(MUSL)" >&2; $$(command -v timeout >/dev/null && echo timeout 300) rustup target add $(MUSL) >&2 \
  || echo "could not add $(MUSL): building for glibc" >&2; })
endif
endif
endif
TARGET ?= $(shell { rustup target list --installed 2>/dev/null | grep -qx '$(ARCH)-unknown-linux-musl' || { ! command -v rustup >/dev/null && [ -x target/$(ARCH)-unknown-linux-musl/release/cnibox ]; }; } && echo $(ARCH)-unknown-linux-musl || echo $(ARCH)-unknown-linux-gnu)
CARGO ?= cargo
CARGO_BIN := target/$(TARGET)/release/cnibox
# The shipped binary: cargo's (built with its symbols, which name the functions of src/hot.order),
# stripped and without unwind tables (panic=abort never unwinds).
BIN := target/cnibox
# Static, and not position-independent, as the reference's static Go binaries are: no start-up
# relocation pass and a smaller file.
# Build paths are remapped so the binary does not depend on where it was built.
CARGO_HOME ?= $(HOME)/.cargo
# LLVM's machine outliner folds repeated instruction sequences into shared functions (about
# 65 KB smaller).
RUSTFLAGS_STATIC := -C target-feature=+crt-static -C relocation-model=static \
  -C llvm-args=-enable-machine-outliner=always \
  --remap-path-prefix=$(CARGO_HOME)/registry/src=crates --remap-path-prefix=$(CURDIR)=cnibox \
  --remap-path-prefix=/rustc/$(shell rustc -vV 2>/dev/null | sed -n 's/^commit-hash: //p')=rust
# No RELRO segment in the musl build: a static musl program never makes it read-only (that is
# the dynamic loader's work), so it only split the writable data into two mappings, and each
# process faulted in a page more. (glibc's static start-up does protect it: kept there.)
ifneq ($(findstring musl,$(TARGET)),)
RUSTFLAGS_STATIC += -C link-arg=-Wl,-z,norelro
endif
# Linked by the toolchain's own lld (rustup ships it) when present: identical functions folded,
# and the functions pod set-up runs placed first in the order of src/hot.order, so a short-lived
# call touches a few 64 KiB windows of the file instead of all of them (see tests/bench/hot-order.sh).
HOT_ORDER := $(CURDIR)/src/hot.order
GCC_LD := $(shell rustc --print sysroot 2>/dev/null)/lib/rustlib/$(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')/bin/gcc-ld
ifneq ($(wildcard $(GCC_LD)/ld.lld),)
RUSTFLAGS_STATIC += -C link-arg=-fuse-ld=lld -C link-arg=-B$(GCC_LD) -C link-arg=-Wl,--icf=all \
  -C link-arg=-Wl,--symbol-ordering-file=$(HOT_ORDER) -C link-arg=-Wl,--no-warn-symbol-ordering
endif
# /usr/local, as installs from a source tree go: /usr/libexec/cnibox is the package's, and a
# `make uninstall` must never remove files a package owns.
PREFIX ?= /usr/local
DESTDIR ?=
CNI_BIN_DIR ?= /opt/cni/bin

# Debian packages the tests use: iproute2 (ip netns), nftables, the Go reference plugins,
# Go with libcni's source, and podman with runc and a static busybox, for the real-runtime
# client tests; python3 for the licence-notice check; dbus-daemon and python3's dbus and gi
# modules for the firewalld backend's private bus and its stand-in firewalld.
TEST_DEBS := iproute2 nftables iputils-ping containernetworking-plugins golang-go golang-github-appc-cni-dev rpm \
  podman runc busybox-static python3 dbus-daemon python3-dbus python3-gi

# What `make demo` needs on a fresh machine.
DEMO_DEBS := iproute2 iputils-ping
# Kernel features this host may lack (ipvlan, bridge VLAN filtering) are tested under Debian's
# stock kernel in a throwaway VM, with the tool kept beside the clone.
VMTEST := $(CURDIR)/../shared/tools/vm-kernel-test/run-in-vm.sh
# cargo test binaries to run there, each as TARGET[:FILTER] (`lib` is the unit tests).
VM_TESTS := ipvlan bridge:vlan lib:kernel_tests

.PHONY: all build test test-vm deps demo-deps demo bench hot-order package install uninstall lint clean

all: build

build: $(BIN)

$(CARGO_BIN): $(shell find src -name '*.rs') src/hot.order Cargo.toml Cargo.lock
	@# cargo does not see the order file: a binary older than it is removed so that cargo relinks.
	@if [ -e $@ ] && [ src/hot.order -nt $@ ]; then rm -f $@ $(dir $@)deps/cnibox-*; fi
	@# Each registry's own directory (crates.io's is named after a hash of its address) maps to
	@# `crates` too, so that panic locations read `crates/<crate>-<version>/…` (6 KB less). The
	@# sources are fetched first, so the flags, and with them cargo's fingerprints, are the same
	@# from the first build on.
	@$(CARGO) fetch --locked --offline >/dev/null 2>&1 || $(CARGO) fetch --locked
	RUSTFLAGS="$(RUSTFLAGS_STATIC) $$(for d in $(CARGO_HOME)/registry/src/*/; do [ -d "$$d" ] && printf -- '--remap-path-prefix=%s=crates ' "$${d%/}"; done)" \
	  CARGO_PROFILE_RELEASE_STRIP=false $(CARGO) build --release --locked --target $(TARGET)

# Which target the shipped binary was last made for: a change of target (musl added, or not
# there) makes it again even where the other target's build is older than it.
TARGET_STAMP := target/.made-for-$(TARGET)
$(TARGET_STAMP):
	@mkdir -p $(dir $@) && rm -f target/.made-for-* && touch $@

$(BIN): $(CARGO_BIN) $(TARGET_STAMP)
	@if command -v objcopy >/dev/null; then \
	  objcopy --strip-all --remove-section=.eh_frame --remove-section=.eh_frame_hdr --remove-section=.gcc_except_table $< $@; \
	else cp $< $@; fi
	@# Static: no program interpreter (readelf from binutils, else file(1), else unchecked).
	@if command -v readelf >/dev/null; then ! readelf -lW $@ | grep -q INTERP || { echo "error: $@ is not static"; exit 1; }; \
	elif command -v file >/dev/null; then file $@ | grep -q 'statically linked' || { echo "error: $@ is not static"; exit 1; }; fi
	@ls -l $@

deps: DEBS = $(TEST_DEBS)
demo-deps: DEBS = $(DEMO_DEBS)
deps demo-deps:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# Unit tests and integration tests in one run; integration tests exec the static release binary.
test: deps build
	@# The licence notices the packages ship must list what Cargo.lock links in.
	./packaging/third-party.sh --check
	CNIBOX_BIN=$(CURDIR)/$(BIN) CNIBOX_REQUIRE_LIBCNI=1 CNIBOX_REQUIRE_PODMAN=1 CNIBOX_REQUIRE_DBUS=1 $(CARGO) test --locked -- --test-threads=2
	@if [ -x "$(VMTEST)" ]; then $(MAKE) --no-print-directory test-vm; \
	else echo "note: $(VMTEST) not found: ipvlan and bridge VLAN tests did not run under a stock kernel"; fi

# The VM_TESTS binaries (debug test builds) and the static binary in one VM boot: the tests
# find cnibox through CNIBOX_BIN, and a missing ipvlan or VLAN filtering there is a failure.
test-vm: build
	@if [ ! -x "$(VMTEST)" ]; then echo "test-vm: skipped: $(VMTEST) not found"; exit 0; fi; \
	set -eo pipefail; \
	targets=""; for t in $(VM_TESTS); do n=$${t%%:*}; \
	  if [ "$$n" = lib ]; then targets="$$targets --lib"; else targets="$$targets --test $$n"; fi; done; \
	json=$$($(CARGO) test --locked --no-run --message-format=json $$targets); \
	exes=""; specs=""; \
	for t in $(VM_TESTS); do n=$${t%%:*}; f=$${t#$$n}; [ "$$n" = lib ] && n=cnibox; \
	  exe=$$(printf '%s\n' "$$json" | grep -o '"executable":"[^"]*/'"$$n"'-[0-9a-f]*"' | cut -d'"' -f4 | tail -n1); \
	  [ -n "$$exe" ] || { echo "test-vm: no test binary for $$t"; exit 1; }; \
	  exes="$$exes $$exe"; specs="$$specs $$(basename $$exe)$$f"; done; \
	refenv=""; refbin=""; if [ -x /usr/lib/cni/ipvlan ]; then \
	  refenv="-e CNIBOX_REFERENCE_DIR=/payload"; refbin=/usr/lib/cni/ipvlan; fi; \
	$(VMTEST) -t 600 -e CNIBOX_BIN=/payload/cnibox -e CNIBOX_REQUIRE_IPVLAN=1 -e CNIBOX_REQUIRE_VLAN_FILTERING=1 \
	  $$refenv tests/vm/payload.sh $$exes $(BIN) $$refbin -- $$specs

demo: demo-deps build
	CNIBOX_BIN=$(CURDIR)/$(BIN) ./tests/demo.sh

# Both distro packages into dist/; CNIBOX_VERSION and CNIBOX_PKG_RELEASE override the version.
package: build
	CNIBOX_BIN=$(CURDIR)/$(BIN) ./packaging/build.sh --out dist all

# cnibox against the reference plugins (installed when missing); BENCH_QUICK=1 for a short run.
bench: build
	CNIBOX_BIN=$(CURDIR)/$(BIN) ./tests/bench/bench.sh

# Regenerate src/hot.order from cargo's binary, which keeps its symbols (the shipped one is
# stripped by objcopy), run under valgrind (root: it makes network namespaces).
hot-order: build
	./tests/bench/hot-order.sh $(CARGO_BIN)

lint:
	./packaging/third-party.sh --check
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	@# The shipped build's own code (src/nounwind.rs is only in static builds that abort on panic).
	$(CARGO) clippy --release --bin cnibox --target $(TARGET) -- -D warnings

# The binary is written under a temporary name and renamed into place: on a node, plugins
# started meanwhile run the old one or the new one, never a missing or half-written file.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/libexec/cnibox/.cnibox.new
	mv -f $(DESTDIR)$(PREFIX)/libexec/cnibox/.cnibox.new $(DESTDIR)$(PREFIX)/libexec/cnibox/cnibox
	./symlinks.sh --target $(PREFIX)/libexec/cnibox/cnibox --root "$(DESTDIR)" $(CNI_BIN_DIR)

uninstall:
	./symlinks.sh --uninstall --target $(PREFIX)/libexec/cnibox/cnibox --root "$(DESTDIR)" $(CNI_BIN_DIR)
	rm -f $(DESTDIR)$(PREFIX)/libexec/cnibox/cnibox $(DESTDIR)$(PREFIX)/libexec/cnibox/.cnibox.new
	-rmdir $(DESTDIR)$(PREFIX)/libexec/cnibox 2>/dev/null

clean:
	$(CARGO) clean
