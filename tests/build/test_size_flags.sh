#!/bin/sh
# Size without losing speed (issue 16): an -O2 build compiles the files of
# HOT_SRCS at -O2 and every other file with -Oz (-Os where the compiler has
# no -Oz) after it; any other CFLAGS
# level applies to every file; every build but SANITIZE=1 drops unused
# sections and unwind tables, even when LDFLAGS is set on the command line
# (as cross builds and tools/sizes.sh do); HOT_CFLAGS go to the hot files of
# an -O2 build only. Only `make -n`, objects pointed at
# a scratch directory. Prints "N passed, N failed".
set -u
# Run from make (make check SANITIZE=1), the caller's command-line variables
# reach these makes through MAKEFLAGS and the environment: each case below
# sets what it tests and nothing else.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SANITIZE SMALL CFLAGS LDFLAGS COLD_CFLAGS RELR HOT_CFLAGS
for v in $(env | sed -n 's/^\(WITH_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/xmppd-size-flags.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
dry() { make -C "$top" -n -B O="$tmp/" "$@" "$tmp/xmppd" 2>&1; }
# compile LINES FILE: the command that compiles FILE
compile() { echo "$1" | grep -- " -c -o [^ ]* $2\$"; }

out=$(dry) || bad "default build refused"
compile "$out" pie.c | grep -q -- "-O2 .* -O[sz] -c" && ok || bad "cold pie.c not -Oz or -Os"
compile "$out" xml.c | grep -q -- "-O[sz]" && bad "hot xml.c built -Oz or -Os" || ok
compile "$out" xml.c | grep -q -- "-O2" && ok || bad "hot xml.c not -O2"
compile "$out" xml.c | grep -q -- "-fno-asynchronous-unwind-tables" && ok ||
	bad "no -fno-asynchronous-unwind-tables"
compile "$out" xml.c | grep -q -- "-ffunction-sections" && ok || bad "no -ffunction-sections"
echo "$out" | grep -- "-o $tmp/xmppd " | grep -q -- "--gc-sections" && ok || bad "link without --gc-sections"

out=$(dry LDFLAGS=-L/nowhere) || bad "LDFLAGS=-L/nowhere refused"
echo "$out" | grep -- "-o $tmp/xmppd " | grep -q -- "-L/nowhere.*--gc-sections" && ok ||
	bad "LDFLAGS on the command line loses --gc-sections"
out=$(dry SMALL=1 LDFLAGS=-L/nowhere) || bad "SMALL=1 refused"
echo "$out" | grep -- "-o $tmp/xmppd " | grep -q -- "-flto" && ok ||
	bad "SMALL=1 with LDFLAGS links without -flto"

# DT_RELR only where the linker does it: RELR=no, and mipsel's ld (which
# warns that it ignores it) never sees it.
out=$(dry RELR=no) || bad "RELR=no refused"
echo "$out" | grep -- "-o $tmp/xmppd " | grep -q -- "pack-relative-relocs" &&
	bad "RELR=no still packs relocations" || ok
if command -v mipsel-linux-gnu-gcc > /dev/null; then
	out=$(dry CC=mipsel-linux-gnu-gcc) || bad "CC=mipsel-linux-gnu-gcc refused"
	echo "$out" | grep -- "-o $tmp/xmppd " | grep -q -- "pack-relative-relocs" &&
		bad "mipsel links with -z pack-relative-relocs, which its ld ignores" || ok
fi

out=$(dry CFLAGS="-O0 -g") || bad "CFLAGS=-O0 refused"
compile "$out" pie.c | grep -q -- "-O[sz]" && bad "CFLAGS=-O0 still builds pie.c -Oz or -Os" || ok
out=$(dry COLD_CFLAGS=) || bad "COLD_CFLAGS= refused"
compile "$out" pie.c | grep -q -- "-O[sz]" && bad "COLD_CFLAGS= still builds pie.c -Oz or -Os" || ok
out=$(dry SANITIZE=1) || bad "SANITIZE=1 refused"
compile "$out" xml.c | grep -q -- "-fno-asynchronous-unwind-tables" &&
	bad "SANITIZE=1 without unwind tables" || ok
compile "$out" pie.c | grep -q -- "-O[sz]" && bad "SANITIZE=1 builds pie.c -Oz or -Os" || ok

# -Oz where the compiler has it (gcc 12, clang), -Os where it does not.
if cc -Oz -x c -c -o /dev/null /dev/null 2> /dev/null; then
	compile "$(dry)" pie.c | grep -q -- " -Oz -c" && ok || bad "cold pie.c not -Oz, though cc has it"
fi
printf '#!/bin/sh\ncase " $* " in *" -Oz "*) exit 1 ;; esac\nexec cc "$@"\n' > "$tmp/cc-no-oz"
chmod +x "$tmp/cc-no-oz"
out=$(dry CC="$tmp/cc-no-oz") || bad "CC without -Oz refused"
compile "$out" pie.c | grep -q -- "-O2 .* -Os -c" && ok || bad "CC without -Oz: cold pie.c not -Os"

# HOT_CFLAGS: the hot files of an -O2 build without alignment padding or
# inlining of functions not marked inline; never in other builds; each flag
# only where the compiler takes it (clang 14 warns on -falign-jumps).
out=$(dry) || bad "default build refused"
compile "$out" xml.c | grep -q -- "-O2 .*-falign-functions=1 .*-fno-inline-functions" && ok ||
	bad "hot xml.c without HOT_CFLAGS"
compile "$out" pie.c | grep -q -- "-falign-functions=1" && bad "cold pie.c gets HOT_CFLAGS" || ok
for v in "CFLAGS=-O0 -g" "CFLAGS=-Os" SANITIZE=1 HOT_CFLAGS=; do
	out=$(dry "$v") || bad "$v refused"
	compile "$out" xml.c | grep -q -- "-falign-functions=1" && bad "$v still gets HOT_CFLAGS" || ok
done
out=$(dry HOT_CFLAGS=-fno-tree-vectorize) || bad "HOT_CFLAGS=-fno-tree-vectorize refused"
compile "$out" xml.c | grep -q -- "-O2 .*-fno-tree-vectorize" && ok || bad "HOT_CFLAGS not applied"
if command -v clang > /dev/null; then
	out=$(dry CC=clang) || bad "CC=clang refused"
	compile "$out" xml.c | grep -q -- "-falign-jumps" && bad "clang gets -falign-jumps" || ok
	compile "$out" xml.c | grep -q -- "-falign-functions=1" && ok || bad "clang without HOT_CFLAGS"
fi

# Every hot file exists (a rename must not silently make it cold).
for f in $(make -C "$top" -s -f Makefile -f - print-hot <<'MK'
print-hot: ; @echo $(HOT_SRCS)
MK
); do
	[ -f "$top/$f" ] && ok || bad "HOT_SRCS names $f, which does not exist"
done

echo "tests/build/test_size_flags.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
