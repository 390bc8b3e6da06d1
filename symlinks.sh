#!/bin/sh
# symlinks.sh — link the cnibox binary under every applet name into a CNI plugin directory.
#
#   symlinks.sh [--target PATH] [--root DESTDIR] [--list-from FILE] [--hardlink] [--absolute]
#               [--force] [--uninstall] [--quiet] [DIR]
#
# DIR (default /opt/cni/bin) gets one link per applet that `cnibox --list` prints. Links are
# relative (../../../usr/libexec/cnibox/cnibox), so a tree staged under --root stays valid once
# copied into place. Every link is made under a temporary name and renamed over the old one, so a
# runtime exec'ing a plugin never sees it missing. Links of applets that are gone from the list
# and still lead to cnibox are removed.
#
# A file that does not lead to cnibox is never replaced unless --force; a directory never is.
# --uninstall removes only the symlinks that lead to TARGET and the hardlinks that share its
# inode; everything else in DIR stays.
#
#   --target PATH     the binary, as seen on the installed system (default /usr/libexec/cnibox/cnibox)
#   --root DESTDIR    staging root: DIR and TARGET are looked up under it (for packaging)
#   --list-from FILE  applet names, one a line ("-" for stdin), instead of running TARGET --list
#                     (for a root whose binary cannot run here)
#   --hardlink        hardlinks instead of symlinks (for installers that copy files, not links)
#   --absolute        symlinks to TARGET itself, not relative ones (for packages: a link from
#                     /opt into /usr crosses top-level directories, which may be symlinks of
#                     another depth on the installed system)
#   --force           replace files that do not lead to cnibox
#   --uninstall       remove cnibox's links from DIR
#   --quiet           print only errors
set -eu

prog=${0##*/}
TARGET=/usr/libexec/cnibox/cnibox
ROOT=
LIST_FROM=
HARDLINK=0
ABSOLUTE=0
FORCE=0
UNINSTALL=0
QUIET=0
DIR=

die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}
say() {
    [ "$QUIET" = 1 ] || printf '%s: %s\n' "$prog" "$*"
}
usage() {
    sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"
}
need_arg() {
    [ $# -ge 2 ] || die "$1 needs an argument"
}

while [ $# -gt 0 ]; do
    case $1 in
        --target) need_arg "$@"; TARGET=$2; shift 2 ;;
        --target=*) TARGET=${1#*=}; shift ;;
        --root) need_arg "$@"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --list-from) need_arg "$@"; LIST_FROM=$2; shift 2 ;;
        --list-from=*) LIST_FROM=${1#*=}; shift ;;
        --hardlink) HARDLINK=1; shift ;;
        --absolute) ABSOLUTE=1; shift ;;
        --force) FORCE=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -q|--quiet) QUIET=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$DIR" ] || die "only one DIR may be given"; DIR=$1; shift ;;
    esac
done
if [ $# -gt 0 ]; then
    [ -z "$DIR" ] && [ $# -eq 1 ] || die "only one DIR may be given"
    DIR=$1
fi
DIR=${DIR:-/opt/cni/bin}

case $TARGET in /*) ;; *) die "--target must be an absolute path: $TARGET" ;; esac
case $DIR in /*) ;; *) die "DIR must be an absolute path: $DIR" ;; esac
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
    ROOT=${ROOT%/}
    PHYSROOT=$(cd -P "$ROOT/" && pwd -P)
    [ "$PHYSROOT" != / ] || { ROOT=; PHYSROOT=; }
else
    PHYSROOT=
fi

# Normalise an absolute path lexically: no "//", ".", ".." or trailing "/"; the root is "".
norm() {
    _out=
    _ifs=$IFS
    IFS=/
    set -f
    for _c in $1; do
        case $_c in
            '' | .) ;;
            ..) _out=${_out%/*} ;;
            *) _out=$_out/$_c ;;
        esac
    done
    set +f
    IFS=$_ifs
    printf '%s\n' "$_out"
}

# The physical path (symlinks resolved, as seen on the installed system) of a directory
# when it exists, else its lexical form.
physical() {
    _p=$(norm "$1")
    if [ -d "$ROOT$_p/" ] && _r=$(cd -P "$ROOT$_p/" 2>/dev/null && pwd -P); then
        if [ -z "$PHYSROOT" ]; then
            norm "$_r"
            return
        fi
        case $_r in
            "$PHYSROOT") printf '\n'; return ;;
            "$PHYSROOT"/*) norm "${_r#"$PHYSROOT"}"; return ;;
        esac
    fi
    printf '%s\n' "$_p"
}

# The relative path from directory $1 to path $2 (both normalised, root as "").
relpath() {
    _common=$1
    _up=
    while :; do
        case $2/ in "$_common"/*) break ;; esac
        _common=${_common%/*}
        _up=../$_up
    done
    printf '%s%s\n' "$_up" "${2#"$_common"/}"
}

TDIR=$(physical "${TARGET%/*}")
TNAME=${TARGET##*/}
[ -n "$TNAME" ] || die "--target names a directory: $TARGET"
TARGET_PHYS=$TDIR/$TNAME
LDIR=$(physical "$DIR")
if [ "$ABSOLUTE" = 1 ]; then REL=$TARGET; else REL=$(relpath "$LDIR" "$TARGET_PHYS"); fi
TGT=$ROOT$TARGET_PHYS
D=$ROOT$LDIR

# Does $1 (a path in D) lead to this cnibox: a symlink resolving to TARGET or spelling its
# path, or a hardlink sharing its inode? This is all --uninstall and pruning remove.
leads_to_target() {
    if [ -L "$1" ]; then
        [ -e "$TGT" ] && [ "$1" -ef "$TGT" ] && return 0
        _l=$(readlink "$1") || return 1
        [ "$_l" = "$REL" ] || [ "$_l" = "$TARGET" ] || [ "$_l" = "$TARGET_PHYS" ] || [ "$_l" = "$TGT" ]
        return
    fi
    [ -f "$1" ] && [ -e "$TGT" ] && [ "$1" -ef "$TGT" ]
}

# May an install replace $1? Anything that leads to this cnibox, a symlink to any file named
# cnibox (an earlier install elsewhere), or a regular file that is a cnibox binary (a copy or a
# hardlink left by an earlier version).
is_cnibox() {
    leads_to_target "$1" && return 0
    if [ -L "$1" ]; then
        _l=$(readlink "$1") || return 1
        [ "${_l##*/}" = cnibox ]
        return
    fi
    [ -f "$1" ] || return 1
    cmp -s "$1" "$TGT" && return 0
    LC_ALL=C grep -q -a -F 'cnibox internal error' "$1" 2>/dev/null
}

TMP=
cleanup() {
    if [ -n "$TMP" ]; then rm -f "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MV_T=
if mv --help 2>&1 | grep -q -e '-T\b' -e '--no-target-directory'; then MV_T=-T; fi

# ---- uninstall -------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
    if [ ! -d "$D" ]; then
        say "$DIR does not exist; nothing to remove"
        exit 0
    fi
    n=0
    for f in "$D"/* "$D"/.[!.]*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        [ "$f" = "$TGT" ] && continue
        if leads_to_target "$f"; then
            rm -f "$f" || die "cannot remove $f"
            n=$((n + 1))
        fi
    done
    say "removed $n links to $TARGET from $DIR"
    exit 0
fi

# ---- install ---------------------------------------------------------------------------------
[ -f "$TGT" ] || die "target $TGT does not exist (build or install the binary first)"

if [ -n "$LIST_FROM" ]; then
    if [ "$LIST_FROM" = - ]; then
        names=$(cat) || die "cannot read the applet list from stdin"
    else
        [ -r "$LIST_FROM" ] || die "cannot read the applet list $LIST_FROM"
        names=$(cat "$LIST_FROM")
    fi
else
    names=$("$TGT" --list 2>/dev/null) ||
        die "cannot run '$TGT --list' here (foreign architecture or staging root?); pass --list-from FILE"
fi
# Drop blank lines and check every name before touching anything.
list=
set -f
for name in $names; do
    case $name in
        cnibox | "$TNAME") die "refusing applet name '$name': it is the binary's own name" ;;
        .* | *[!A-Za-z0-9._-]*) die "invalid applet name '$name' in the list" ;;
    esac
    list="$list $name"
done
set +f
[ -n "$list" ] || die "the applet list is empty"

mkdir -p "$D" || die "cannot create $D"
[ -w "$D" ] || die "$D is not writable"

failed=0
n=0
for name in $list; do
    dest=$D/$name
    if [ -d "$dest" ] && [ ! -L "$dest" ]; then
        printf '%s: error: %s is a directory; not replacing it\n' "$prog" "$dest" >&2
        failed=$((failed + 1))
        continue
    fi
    if { [ -e "$dest" ] || [ -L "$dest" ]; } && ! is_cnibox "$dest"; then
        if [ "$FORCE" != 1 ]; then
            printf '%s: error: %s exists and is not cnibox; not replacing it (use --force)\n' "$prog" "$dest" >&2
            failed=$((failed + 1))
            continue
        fi
        say "replacing foreign $dest (--force)"
    fi
    # A hardlink that already is the target stays (rename cannot replace a file by itself).
    if [ "$HARDLINK" = 1 ] && [ ! -L "$dest" ] && [ -f "$dest" ] && [ "$dest" -ef "$TGT" ]; then
        n=$((n + 1))
        continue
    fi
    TMP=$D/.$name.cnibox-new.$$
    rm -f "$TMP"
    if [ "$HARDLINK" = 1 ]; then
        ln "$TGT" "$TMP" 2>/dev/null ||
            die "cannot hardlink $TGT into $D (different filesystems?); use symlinks"
    else
        ln -s "$REL" "$TMP" || die "cannot create a symlink in $D"
        # An absolute link is resolved on the installed system: under --root, look it up there.
        if [ "$ABSOLUTE" = 1 ]; then _reach=$ROOT$REL; else _reach=$TMP; fi
        [ "$_reach" -ef "$TGT" ] || die "link $REL from $D does not reach $TGT"
    fi
    # The rename is the atomic step: the old link stays usable until it is replaced.
    if [ -L "$dest" ] && [ -d "$dest" ] && [ -z "$MV_T" ]; then
        rm -f "$dest"
    fi
    mv -f $MV_T "$TMP" "$dest" || die "cannot rename $TMP to $dest"
    TMP=
    n=$((n + 1))
done

# Applets that are no longer in the list: remove their links, only when they are ours.
pruned=0
for f in "$D"/*; do
    [ -L "$f" ] || [ -f "$f" ] || continue
    [ "$f" = "$TGT" ] && continue
    name=${f##*/}
    case " $list " in *" $name "*) continue ;; esac
    if leads_to_target "$f"; then
        rm -f "$f" && pruned=$((pruned + 1))
    fi
done

kind=symlinks
[ "$HARDLINK" = 1 ] && kind=hardlinks
if [ "$pruned" -gt 0 ]; then
    say "$n $kind in $DIR -> $TARGET; removed $pruned stale"
else
    say "$n $kind in $DIR -> $TARGET"
fi
if [ "$failed" -gt 0 ]; then
    die "$failed names were not linked (see above)"
fi
exit 0
