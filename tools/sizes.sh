#!/bin/sh
# tools/sizes.sh: the stripped size of xmppd per build and per feature (issue 16).
#
#   tools/sizes.sh [--check] [--arch x86-64|mipsel|all]
#
# Prints a Markdown table (BENCHMARKS.md keeps one): the full build (make:
# -O2 for the hot files, -Oz or -Os for the rest, see HOT_SRCS in the Makefile), the
# router build (make SMALL=1 WITH_ALL=no), and for each feature
# switch what it costs: full build minus the full build with that switch
# alone off. Build rows are the stripped binary's file size, dynamically
# linked against libc and mbedTLS (as OpenWrt installs libmbedtls as a
# package of its own); the file grows in whole pages on x86-64, so feature
# rows are the difference in code and data (text + data of size(1)). In
# bytes and KB (1 KB = 1024 bytes).
#
# --check  only the two budget builds, x86-64; exit 1 when one is over budget:
#          the default build of `make` (every switch on) <= 400 KB, the router
#          build (SMALL=1, every switch off) <= 200 KB (.ci/run).
# --arch   x86-64 (default; the build host's cc), mipsel, or all. mipsel needs
#          mipsel-linux-gnu-gcc (apt-get install gcc-mipsel-linux-gnu) and the
#          mbedTLS headers and libraries of that architecture: MIPSEL_SYSROOT
#          if set, else unpacked into .sizes/sysroot-mipsel by apt-get download
#          with a private apt configuration and dpkg -x (the system's package
#          state is not changed). tools/cross.sh builds and runs cross builds;
#          this script only measures them.
#
# Every build goes to .sizes/<arch>/<name>/ (make O=...), apart from the
# normal build in the tree. Environment: MAKE (make), JOBS (2).
set -eu
cd "$(dirname "$0")/.."
: "${MAKE:=make}"
: "${JOBS:=2}"
FULL_BUDGET=$((400 * 1024))
MIN_BUDGET=$((200 * 1024))
# The Makefile's FEATURES, in its order.
FEATURES=$(sed -n 's/^FEATURES = //p' Makefile)

check=0
arch=x86-64
while [ $# -gt 0 ]; do
    case "$1" in
    --check) check=1 ;;
    --arch) shift; arch=${1:-} ;;
    -h | --help) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check] [--arch x86-64|mipsel|all]" >&2; exit 2 ;;
    esac
    shift
done
case "$arch" in
x86-64 | mipsel) archs=$arch ;;
all) archs="x86-64 mipsel" ;;
*) echo "$0: unknown --arch '$arch' (x86-64, mipsel, all)" >&2; exit 2 ;;
esac

# mbedTLS of mipsel, for headers and linking only (never installed).
mipsel_sysroot() {
    if [ -n "${MIPSEL_SYSROOT:-}" ]; then
        echo "$MIPSEL_SYSROOT"
        return
    fi
    root=$PWD/.sizes/sysroot-mipsel
    if [ ! -f "$root/usr/include/mbedtls/version.h" ]; then
        apt=$PWD/.sizes/apt-mipsel
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$root"
        : > "$apt/status"
        cp /etc/apt/sources.list.d/*.sources "$apt/" 2>/dev/null || true
        [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$apt/sources.list"
        cat > "$apt/apt.conf" <<EOF
APT::Architecture "mipsel";
APT::Architectures { "mipsel"; };
APT::Sandbox::User "root";
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt";
EOF
        APT_CONFIG=$apt/apt.conf apt-get -qq update >&2
        (cd "$apt/debs" && APT_CONFIG=$apt/apt.conf apt-get -qq download \
            libmbedtls-dev libmbedtls14 libmbedx509-1 libmbedcrypto7 >&2)
        for d in "$apt"/debs/*.deb; do
            dpkg -x "$d" "$root"
        done
    fi
    echo "$root"
}

# build ARCH NAME MAKE-ARGS...: prints the stripped file size and text + data,
# in bytes.
build() {
    a=$1 name=$2
    shift 2
    out=.sizes/$a/$name/
    mkdir -p "$out"
    case "$a" in
    x86-64) cc=${CC:-cc} strip=${STRIP:-strip} size=size extra_c= extra_l= ;;
    mipsel)
        root=$(mipsel_sysroot)
        lib=$root/usr/lib/mipsel-linux-gnu
        cc=mipsel-linux-gnu-gcc strip=mipsel-linux-gnu-strip size=mipsel-linux-gnu-size
        extra_c="-I$root/usr/include" extra_l="-L$lib -Wl,-rpath-link,$lib" ;;
    esac
    opt=-O2
    case " $* " in *" SMALL=1 "*) opt=-Os ;; esac
    if ! $MAKE -s -j"$JOBS" O="$out" CC="$cc" CFLAGS="$opt $extra_c" LDFLAGS="$extra_l" \
        "$@" "${out}xmppd" > "$out/build.log" 2>&1; then
        cat "$out/build.log" >&2
        echo "$0: build $a $name ($*) failed" >&2
        exit 1
    fi
    "$strip" -o "$out/xmppd.stripped" "${out}xmppd"
    echo "$(wc -c < "$out/xmppd.stripped" | tr -d ' ')" \
        "$("$size" "$out/xmppd.stripped" | awk 'NR == 2 { print $1 + $2 }')"
}

kb() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'
}

if [ "$check" = 1 ]; then
    full=$(build x86-64 full | cut -d' ' -f1)
    min=$(build x86-64 min SMALL=1 WITH_ALL=no | cut -d' ' -f1)
    rc=0
    echo "make (all on):         $full bytes ($(kb "$full") KB), budget $(kb $FULL_BUDGET) KB"
    echo "SMALL=1 WITH_ALL=no:   $min bytes ($(kb "$min") KB), budget $(kb $MIN_BUDGET) KB"
    if [ "$full" -gt "$FULL_BUDGET" ]; then
        echo "sizes: the full build (make, every switch on) is over its budget" >&2
        rc=1
    fi
    if [ "$min" -gt "$MIN_BUDGET" ]; then
        echo "sizes: the router build (SMALL=1, every switch off) is over its budget" >&2
        rc=1
    fi
    exit $rc
fi

# One column per architecture: rows are collected into a file per arch.
tmp=.sizes/table
mkdir -p "$tmp"
for a in $archs; do
    if [ "$a" = mipsel ] && ! command -v mipsel-linux-gnu-gcc > /dev/null; then
        echo "$0: mipsel-linux-gnu-gcc missing (apt-get install gcc-mipsel-linux-gnu)" >&2
        exit 1
    fi
    r=$(build "$a" full)
    full=${r% *} full_mem=${r#* }
    small=$(build "$a" small SMALL=1 | cut -d' ' -f1)
    min=$(build "$a" min SMALL=1 WITH_ALL=no | cut -d' ' -f1)
    {
        echo "$full $(kb "$full")"
        echo "$small $(kb "$small")"
        echo "$min $(kb "$min")"
        for f in $FEATURES; do
            args="WITH_$f=no"
            # PUSH needs COMPONENTS (Makefile): switching COMPONENTS off takes PUSH along.
            [ "$f" = COMPONENTS ] && args="$args WITH_PUSH=no"
            # shellcheck disable=SC2086
            s=$(build "$a" "no-$f" $args | cut -d' ' -f2)
            echo "$((full_mem - s)) $(kb $((full_mem - s)))"
        done
    } > "$tmp/$a"
done

printf '| build |'
for a in $archs; do printf ' %s bytes | %s KB |' "$a" "$a"; done
printf '\n|---|'
for a in $archs; do printf -- '---:|---:|'; done
printf '\n'
i=0
for label in "full (make: -O2 hot, -Oz cold)" "SMALL=1, all on" "SMALL=1 WITH_ALL=no (router)" \
    $(for f in $FEATURES; do
        if [ "$f" = COMPONENTS ]; then echo "WITH_COMPONENTS=no+PUSH"; else echo "WITH_$f=no"; fi
    done); do
    i=$((i + 1))
    case "$label" in WITH_*) label="$label saves" ;; esac
    printf '| %s |' "$label"
    for a in $archs; do
        sed -n "${i}p" "$tmp/$a" | awk '{ printf " %s | %s |", $1, $2 }'
    done
    printf '\n'
done
