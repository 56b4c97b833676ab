# xmppd - one flat Makefile, GNU make.
#
# User-facing variables (override on the command line):
#   CC, CFLAGS (default -O2 -g), LDFLAGS, PREFIX (/usr/local), DESTDIR, BINDIR,
#   SYSCONFDIR, MANDIR, STRIP
#   SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer
#   SMALL=1      optimise for size, drop unused sections
#   WITH_EPOLL=yes  use the Linux epoll loop backend (default: portable poll())
# Cross-compiling: make CC=mipsel-linux-gnu-gcc CFLAGS="-Os -I/path/to/mbedtls/include"
#   LDFLAGS=-L/path/to/mbedtls/lib   (the target is whatever CC produces)

CC ?= cc
# SMALL=1 changes the default optimisation: project flags come before CFLAGS
# on the command line, so an -Os there would lose to CFLAGS' -O2.
ifeq ($(SMALL),1)
CFLAGS ?= -Os
endif
CFLAGS ?= -O2 -g
LDFLAGS ?=
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
STRIP ?= strip
PYTHON ?= /usr/bin/python3

# Project flags stay even when CFLAGS is overridden.
PPFLAGS = -std=c11 -D_GNU_SOURCE -iquote .
XCFLAGS = $(PPFLAGS) -Wall -Wextra -MMD -MP
LIBS = -lmbedtls -lmbedx509 -lmbedcrypto -pthread

ifeq ($(SANITIZE),1)
XCFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SMALL),1)
XCFLAGS += -ffunction-sections -fdata-sections
LDFLAGS += -Wl,--gc-sections
endif

ifeq ($(WITH_EPOLL),yes)
LOOP_SRC = loop_epoll.c
else
LOOP_SRC = loop_poll.c
endif

# Services plug in through hooks.h from their own files: each WITH_... switch
# adds or leaves out files, nothing else.
SERVICE_SRCS =
SERVICE_SRCS += muc.c
SERVICE_SRCS += pep.c caps.c caps_ver.c
SERVICE_SRCS += carbons.c csi.c
SERVICE_SRCS += component.c push.c
SERVICE_SRCS += sm.c
SERVICE_SRCS += mam.c

SRCS = server.c $(LOOP_SRC) c2s.c router.c im.c presence.c roster.c offline.c blocking.c \
       register.c disco.c vcard.c private.c xml.c jid.c precis.c precis_table.c sasl.c tls.c sha_ni.c store.c config.c \
       log.c buf.c worker.c hooks.c $(SERVICE_SRCS)
OBJS = $(SRCS:.c=.o)

UNIT_TESTS = test_xml test_jid test_sasl test_store test_config test_tls test_log
UNIT_TESTS += test_caps # PEP (XEP-0163): rule at the end
# XEP-0198 stream management: its counter arithmetic (sm.h)
UNIT_TESTS += test_sm
UNIT_BINS = $(addprefix tests/unit/,$(UNIT_TESTS))
# Each unit test links the modules it covers (and what they need).
LIB_OBJS = xml.o jid.o precis.o precis_table.o sasl.o tls.o sha_ni.o store.o config.o log.o buf.o

.PHONY: all run check unit build-tests integration bench bench-smoke install uninstall clean deps \
	test-deps

all: xmppd

xmppd: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

# Objects remember the flags they were built with: switching SANITIZE, SMALL
# or CC rebuilds everything instead of silently linking stale objects.
BUILD_FLAGS = $(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS)
.build-flags: FORCE
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
FORCE:

# The mbedTLS headers, looked for the way the compiler will look for them
# ($(CC) and $(CFLAGS): a cross build checks its own include path, not the
# build host's /usr/include). Before any object is compiled, once per change
# of compiler or flags (the stamp follows .build-flags), so a fresh machine
# gets what to install instead of a compiler error.
MBEDTLS_PROBE = printf '\043include <mbedtls/version.h>\n' | $(CC) $(PPFLAGS) $(CFLAGS) -E -o /dev/null -x c -
.build-deps: .build-flags
	@if ! err=$$($(MBEDTLS_PROBE) 2>&1); then \
		echo "$$err" | sed -n '1,3s/^/  /p' >&2; \
		echo "xmppd: '$(CC) $(CFLAGS)' does not find the mbedTLS headers (mbedtls/version.h)." >&2; \
		echo "  Debian/Ubuntu: apt-get install libmbedtls-dev   (or: make deps)" >&2; \
		echo "  Cross build: add -I<mbedTLS include dir> to CFLAGS (and -L<lib dir> to LDFLAGS)." >&2; \
		exit 1; \
	fi
	@touch $@

%.o: %.c .build-flags | .build-deps
	$(CC) $(XCFLAGS) $(CFLAGS) -c -o $@ $<

tests/unit/%: tests/unit/%.c $(LIB_OBJS) .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)

# Build dependencies (a C compiler and mbedTLS headers) when missing.
deps:
	@tools/install-deps.sh build

test-deps:
	@tools/install-deps.sh test

# Start a server on the default configuration (domain localhost, 127.0.0.1:5222
# STARTTLS and :5223 direct TLS, data in ./data). As root it runs with
# allow_root, since a quick start has no service user to drop to.
run: deps
	@$(MAKE) --no-print-directory xmppd
	@if [ "$$(id -u)" = 0 ]; then \
		printf 'allow_root yes\n' > .run-as-root.conf; \
		echo "starting ./xmppd -f -c .run-as-root.conf (root: allow_root yes)"; \
		exec ./xmppd -f -c .run-as-root.conf; \
	else \
		echo "starting ./xmppd -f"; exec ./xmppd -f; \
	fi

check: deps test-deps
	@$(MAKE) --no-print-directory xmppd $(UNIT_BINS) tests/unit/precis_filter tools/xmpp-bench
	@$(MAKE) --no-print-directory unit build-tests integration bench-smoke

# precis_table.c is generated and committed; the check regenerates it from
# the Unicode data (unicode-data) when that is installed. precis.c is also
# compared with another PRECIS implementation (python3-precis-i18n).
unit: $(UNIT_BINS) tests/unit/precis_filter
	@fail=0; for t in $(UNIT_BINS); do ./$$t || fail=1; done; \
	PYTHON=$(PYTHON) tests/unit/check-unicode-table.sh || fail=1; \
	$(PYTHON) tests/unit/check-precis-reference.py tests/unit/precis_filter || fail=1; \
	if [ $$fail -ne 0 ]; then echo "unit tests FAILED"; exit 1; fi

# Tests of the build itself (tests/build/*.sh; each exits non-zero on failure).
build-tests:
	@fail=0; for t in tests/build/*.sh; do sh $$t || fail=1; done; \
	if [ $$fail -ne 0 ]; then echo "build tests FAILED"; exit 1; fi

# A sanitizer build is slower: every test deadline is stretched (conftest.py).
ifeq ($(SANITIZE),1)
XMPPD_TEST_SLOWDOWN ?= 3
endif
export XMPPD_TEST_SLOWDOWN

integration: xmppd
	XMPPD_STRICT=1 XMPPD_BIN=$(CURDIR)/xmppd PYTHON=$(PYTHON) tests/run-integration.sh -q

# The load generator (tools/xmpp-bench.c): never linked into xmppd.
bench: tools/xmpp-bench

tools/xmpp-bench: tools/xmpp-bench.c | .build-deps
	$(CC) -std=c11 -O2 -Wall -Wextra $(LDFLAGS) -o $@ tools/xmpp-bench.c $(LIBS)

# Functional smoke test of the benchmark scenarios (no timing thresholds).
bench-smoke: xmppd tools/xmpp-bench
	tools/bench-smoke.sh ./xmppd tools/xmpp-bench

install: xmppd
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/xmppd $(DESTDIR)$(MANDIR)/man8
	install -m 755 xmppd $(DESTDIR)$(BINDIR)/xmppd
	$(STRIP) $(DESTDIR)$(BINDIR)/xmppd || true
	install -m 644 xmppd.conf.example $(DESTDIR)$(SYSCONFDIR)/xmppd/xmppd.conf.example
	install -m 644 xmppd.8 $(DESTDIR)$(MANDIR)/man8/xmppd.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/xmppd $(DESTDIR)$(MANDIR)/man8/xmppd.8
	rm -f $(DESTDIR)$(SYSCONFDIR)/xmppd/xmppd.conf.example

clean:
	rm -f xmppd tools/xmpp-bench *.o *.d $(UNIT_BINS) tests/unit/precis_filter tests/unit/*.d \
		.run-as-root.conf .build-flags .build-deps
	rm -rf .fuzz

-include $(OBJS:.o=.d)

# libFuzzer harnesses (tests/fuzz/, clang): see fuzz.mk. Included last so that
# 'all' stays the default target.
include fuzz.mk
.PHONY: fuzz fuzz-run
fuzz: fuzz-build
fuzz-run: fuzz-run-all

# PEP (XEP-0163): the XEP-0115 verification string is tested alone.
tests/unit/test_caps: tests/unit/test_caps.c caps_ver.o $(LIB_OBJS) .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< caps_ver.o $(LIB_OBJS) $(LIBS)
