#!/bin/sh
# packaging/build.sh — build the cnibox .deb and .rpm from an already built binary.
#
#   packaging/build.sh [--bin PATH] [--out DIR] [--version V] [--release N] [--list-from FILE]
#                      [deb|rpm|all]
#
#   --bin PATH        the static binary (default: $CNIBOX_BIN, else the Makefile's release build)
#   --out DIR         where the packages go (default: dist/ in the tree)
#   --version V       package version (default: $CNIBOX_VERSION, else Cargo.toml's)
#   --release N       package release (default: $CNIBOX_PKG_RELEASE, else 1)
#   --list-from FILE  applet names, one a line, when the binary cannot run here (cross builds)
#
# Layout of both packages:
#   /usr/libexec/cnibox/cnibox          the binary
#   /opt/cni/bin/<applet>               symlinks to /usr/libexec/cnibox/cnibox (absolute, as links
#                                       between top-level directories should be: /opt may be a
#                                       symlink of another depth), one per applet of `cnibox --list`,
#                                       shipped as package files so that dpkg/rpm replace them by
#                                       rename on upgrade and remove exactly these on removal
#   /usr/share/doc/cnibox/              LICENSE, copyright, THIRD-PARTY-LICENSES (the crates linked
#                                       in, from packaging/third-party.sh), README files
# Runs offline: needs only dpkg-deb (dpkg) and rpmbuild (rpm).
set -eu
umask 022

prog=packaging/build.sh
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}
here=$(cd "$(dirname "$0")" && pwd -P)
top=${here%/*}

BIN=${CNIBOX_BIN:-}
OUT=$top/dist
VERSION=${CNIBOX_VERSION:-}
RELEASE=${CNIBOX_PKG_RELEASE:-1}
LIST_FROM=
WHAT=all
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --version) VERSION=$2; shift 2 ;;
        --release) RELEASE=$2; shift 2 ;;
        --list-from) LIST_FROM=$2; shift 2 ;;
        deb | rpm | all) WHAT=$1; shift ;;
        -h | --help) sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

if [ -z "$BIN" ]; then
    BIN=$top/target/cnibox
fi
[ -f "$BIN" ] || die "no binary at $BIN; run 'make build' first or pass --bin"
# The architecture is the binary's (its ELF e_machine), not the build host's: a cross build
# must not be labelled for the host.
case $(od -An -tu2 -j18 -N2 "$BIN" 2>/dev/null | tr -d ' ') in
    62) ARCH=x86_64 ;;
    183) ARCH=aarch64 ;;
    40) ARCH=armv7l ;;
    21) ARCH=ppc64le ;;
    3) ARCH=i686 ;;
    243) ARCH=riscv64 ;;
    *) die "cannot tell the architecture of $BIN" ;;
esac
if [ -z "$VERSION" ]; then
    VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$top/Cargo.toml" | head -n 1)
fi
[ -n "$VERSION" ] || die "cannot read the version from Cargo.toml"
# Both formats sort "~" before anything, which is what a "-rc1" pre-release suffix means.
VERSION=$(printf '%s' "$VERSION" | tr - '~')
case $VERSION in *[!A-Za-z0-9.+~]* | [!0-9]*) die "bad version '$VERSION'" ;; esac
case $RELEASE in '' | *[!A-Za-z0-9.+~]*) die "bad release '$RELEASE'" ;; esac
case $ARCH in
    x86_64) DEBARCH=amd64 ;;
    aarch64) DEBARCH=arm64 ;;
    armv7l) DEBARCH=armhf ;;
    ppc64le) DEBARCH=ppc64el ;;
    i?86) DEBARCH=i386 ;;
    *) DEBARCH=$ARCH ;;
esac
RPMARCH=$ARCH
case $RPMARCH in armv7l) RPMARCH=armv7hl ;; esac
# Timestamps from the last commit, so that two builds of one tree give the same packages.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/cnibox-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the tree both packages ship ---------------------------------------------------------------
stage=$work/root
LIBEXEC=/usr/libexec/cnibox
CNIBIN=/opt/cni/bin
DOC=/usr/share/doc/cnibox

mkdir -p "$stage$LIBEXEC" "$stage$DOC"
cp "$BIN" "$stage$LIBEXEC/cnibox"
chmod 0755 "$stage$LIBEXEC/cnibox"
if [ -n "$LIST_FROM" ]; then
    cp "$LIST_FROM" "$work/applets"
else
    "$BIN" --list >"$work/applets" || die "cannot run '$BIN --list'; pass --list-from FILE"
fi
sh "$top/symlinks.sh" --quiet --absolute --root "$stage" --target "$LIBEXEC/cnibox" --list-from "$work/applets" "$CNIBIN" ||
    die "symlinks.sh failed"
applets=$(cd "$stage$CNIBIN" && ls)
[ -n "$applets" ] || die "no applets"

cp "$top/LICENSE" "$stage$DOC/LICENSE"
[ -f "$top/README.md" ] && cp "$top/README.md" "$stage$DOC/README.md"
cp "$here/README.md" "$stage$DOC/README.packaging.md"
cp "$here/deb/copyright" "$stage$DOC/copyright"
cp "$here/THIRD-PARTY-LICENSES" "$stage$DOC/THIRD-PARTY-LICENSES"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage$DOC" -type f -exec chmod 0644 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

summary=$(printf '%s\n' $applets | tr '\n' ' ' | sed 's/ $//')

# ---- .deb --------------------------------------------------------------------------------------
build_deb() {
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
    d=$work/deb
    cp -a "$stage" "$d"
    mkdir -p "$d/DEBIAN"
    size=$(du -sk --apparent-size "$d" | cut -f1)
    sed -e "s/@VERSION@/$VERSION-$RELEASE/" -e "s/@ARCH@/$DEBARCH/" -e "s/@SIZE@/$size/" \
        -e "s/@APPLETS@/$summary/" "$here/deb/control.in" >"$d/DEBIAN/control"
    (cd "$d" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
        xargs md5sum) >"$d/DEBIAN/md5sums"
    chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/md5sums"
    touch -d "@$SOURCE_DATE_EPOCH" "$d/DEBIAN" "$d/DEBIAN/control" "$d/DEBIAN/md5sums"
    deb=$OUT/cnibox_${VERSION}-${RELEASE}_$DEBARCH.deb
    dpkg-deb --root-owner-group -Zxz --build "$d" "$deb" >/dev/null || die "dpkg-deb failed"
    echo "$deb"
}

# ---- .rpm --------------------------------------------------------------------------------------
build_rpm() {
    command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian package rpm)"
    r=$work/rpm
    mkdir -p "$r/BUILD" "$r/BUILDROOT" "$r/SPECS" "$r/SOURCES" "$r/SRPMS"
    {
        echo "%dir $LIBEXEC"
        echo "$LIBEXEC/cnibox"
        echo "%dir /opt/cni"
        echo "%dir $CNIBIN"
        for a in $applets; do echo "$CNIBIN/$a"; done
        echo "%dir $DOC"
        echo "%license $DOC/LICENSE"
        echo "%license $DOC/copyright"
        echo "%license $DOC/THIRD-PARTY-LICENSES"
        for f in "$stage$DOC"/README*; do echo "%doc $DOC/${f##*/}"; done
    } >"$r/files.list"
    rpmbuild -bb --quiet --nodeps \
        --define "_topdir $r" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        --define "_rpmdir $OUT" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "cnibox_version $VERSION" \
        --define "cnibox_release $RELEASE" \
        --define "cnibox_stage $stage" \
        --define "cnibox_files $r/files.list" \
        --define "cnibox_applets $summary" \
        --target "$RPMARCH" \
        "$here/rpm/cnibox.spec" >"$r/log" 2>&1 || { cat "$r/log" >&2; die "rpmbuild failed"; }
    echo "$OUT/cnibox-$VERSION-$RELEASE.$RPMARCH.rpm"
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
case $WHAT in
    deb) build_deb ;;
    rpm) build_rpm ;;
    all) build_deb; build_rpm ;;
esac
