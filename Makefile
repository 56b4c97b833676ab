# xmppd - one flat Makefile, GNU make.
#
# User-facing variables (override on the command line):
#   CC, CFLAGS (default -O2 -g), LDFLAGS, PREFIX (/usr/local), DESTDIR, BINDIR,
#   SYSCONFDIR, MANDIR, STRIP
#   SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer
#   SMALL=1      optimise for size (-Os everywhere, link-time optimisation)
#   COLD_CFLAGS  added after CFLAGS for the files not in HOT_SRCS (-Oz, or -Os
#                where CC lacks -Oz, when CFLAGS has -O2, as by default; empty:
#                -O2 throughout)
#   HOT_CFLAGS   added after CFLAGS for the files in HOT_SRCS when CFLAGS has
#                -O2 (default: no code alignment padding, no inlining of functions
#                not marked inline, simple block order, each where $(CC) takes
#                it; empty: plain -O2)
#   RELR=no      no packed relative relocations (default: when the linker can)
#   WITH_EPOLL=yes  use the Linux epoll loop backend (default: portable poll())
#   O=DIR/       objects and the binary go to DIR/ (make check builds the
#                all-off router build into .min/ this way)
#
# Feature switches (issue 16): WITH_<FEATURE>=yes|no, each default yes
# (WITH_ALL=no makes no the default of every switch; `make SMALL=1 WITH_ALL=no`
# is the router build with every optional feature off).
#   WITH_PEP         XEP-0163 personal eventing, XEP-0115 caps (pep.c caps.c)
#   WITH_CARBONS     XEP-0280 message carbons (carbons.c)
#   WITH_CSI         XEP-0352 client state indication (csi.c)
#   WITH_SM          XEP-0198 stream management (sm.c)
#   WITH_MAM         XEP-0313 message archive (mam.c)
#   WITH_COMPONENTS  XEP-0114 external components (component.c)
#   WITH_PUSH        XEP-0357 push notifications (push.c); needs WITH_COMPONENTS:
#                    without S2S an app server is only reachable as a component
#   WITH_VCARD       XEP-0054 vcard-temp (vcard.c)
#   WITH_PRIVATE     XEP-0049 private XML storage (private.c)
#   WITH_BLOCKING    XEP-0191 blocking command (blocking.c)
#   WITH_REGISTRATION  XEP-0077 in-band registration, password change and
#                    cancellation (register.c); accounts from xmppd adduser only
#   WITH_ADHOC       XEP-0050 ad-hoc commands, XEP-0133 service administration
#                    (adhoc.c admin.c)
#   WITH_IMPORT      xmppd export / import, XEP-0227 files to and from other
#                    servers (pie.c)
#   WITH_S2S         federation: RFC 6120 server-to-server streams, XEP-0220
#                    dialback (s2s.c)
#   WITH_MUC         XEP-0045 multi-user chat (muc.c)
#   WITH_LEGACY_AUTH XEP-0078 non-SASL login, jabber:iq:auth (legacy.c), for old
#                    clients and Tsung's stock scenarios; the legacy_auth option
#   WITH_HTTP        HTTP/1.1 server in the loop (http.c http_parse.c): http_port,
#                    https_port, XEP-0156 host-meta; WebSocket/BOSH/admin build on it
#   WITH_WEBADMIN    web admin console at /admin/ (webadmin.c webadmin_util.c);
#                    needs WITH_HTTP and WITH_ADHOC (admin.c's actions), and
#                    follows them unless given
#   WITH_BOSH        XEP-0124/XEP-0206 XMPP over BOSH at /http-bind (bosh.c
#                    bosh_body.c); needs WITH_HTTP, and follows it unless given
#   WITH_UPLOAD      XEP-0363 HTTP file upload (upload.c); needs WITH_HTTP, and
#                    is what WITH_HTTP is unless given
# How a switch works: a feature lives in its own files, which register with
# hooks.h from a constructor, so leaving its files out of SERVICE_SRCS is all
# it takes (disco advertises what registered). The names of the switches that
# are off reach config.c as XMPPD_WITHOUT, and config.c's feature table
# (feature_options[]) refuses their options at start-up: "'mam_max_page':
# compiled without MAM (make WITH_MAM=yes)". A new feature X: its name in
# FEATURES, its files in SRCS_X, a dependency check if it needs another
# switch, and its option rows in config.c's feature_options[].
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
# 64-bit off_t and ino_t on 32-bit glibc targets (mipsel, armhf): readdir()
# and stat() fail with EOVERFLOW otherwise (store.c asserts it).
PPFLAGS += -D_FILE_OFFSET_BITS=64
XCFLAGS = $(PPFLAGS) -Wall -Wextra -MMD -MP
LIBS = -lmbedtls -lmbedx509 -lmbedcrypto -pthread

# Project link flags: beside LDFLAGS, which a cross build sets on the command
# line (where it would override a += here).
XLDFLAGS =

ifeq ($(SANITIZE),1)
XCFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
XLDFLAGS += -fsanitize=address,undefined
else
# Size (issue 16), every build but the sanitizer's: unused functions and data
# are dropped at link time; C needs no unwind tables (no exceptions, no
# pthread_cancel, no backtrace()): .eh_frame was 57 KB of the -O2 binary.
# With -g, gdb still unwinds from .debug_frame (strip removes it).
XCFLAGS += -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
XLDFLAGS += -Wl,--gc-sections
# DT_RELR (glibc 2.36, musl 1.2.4, binutils 2.38) packs the relative
# relocations of a PIE's pointer tables: 12 KB less on x86-64. Probed with
# $(CC): ld ignores it with a warning (not an error) where the target lacks
# it (mipsel), older ones refuse it; RELR=no leaves it out.
RELR ?= $(shell o=$$(printf 'int main(void){return 0;}\n' | $(CC) $(CFLAGS) $(LDFLAGS) -x c - \
	-Wl,-z,pack-relative-relocs -o /dev/null 2>&1) && [ -z "$$o" ] && echo yes)
ifeq ($(RELR),yes)
XLDFLAGS += -Wl,-z,pack-relative-relocs
endif
endif
ifeq ($(SMALL),1)
# Link-time optimisation drops and inlines across modules. SMALL_LTO= (empty)
# for a toolchain without an LTO linker plugin.
SMALL_LTO ?= -flto=auto
XCFLAGS += $(SMALL_LTO)
XLDFLAGS += $(SMALL_LTO)
endif

# Size without losing speed (issue 16): an -O2 build (the default) keeps -O2
# for the files the server spends its own CPU time in (HOT_SRCS: perf on
# tools/xmpp-bench's msg, login SCRAM, muc-fanout and mam-fill; every other
# file had under 0.2% of the samples; see BENCHMARKS.md) and compiles every
# other file with COLD_CFLAGS (-Oz, or -Os). CFLAGS at another level (-O0 -g to
# debug, -Os for a router) applies to every file; COLD_CFLAGS= (empty) makes
# an -O2 build -O2 throughout.
# sasl.c and c2s.c were hot only in the login scenario, where PBKDF2 (sha_ni.c,
# mbedTLS) does the work: at -Os since HTTP came in (8 KB); three rounds of
# tools/bench-builds.sh showed the server's user CPU per login 75 -> 60 us and
# per message 36.4 -> 35.6 us, i.e. no cost beyond the noise.
# blocking.c (one lookup per stanza; the rest is the list's iq handling) went
# to -Os too when the group chat limits came in: 1.9 KB.
HOT_SRCS = server.c loop_poll.c loop_epoll.c xml.c buf.c router.c jid.c precis.c sha_ni.c \
	store.c mam.c hooks.c
# (Not in SANITIZE=1 builds, which keep their flags for the tests.)
# -Oz (gcc 12, clang) where $(CC) has it, else -Os: size first in code that
# barely runs (4 KB off the default build, see BENCHMARKS.md). Probed once.
# Inside the HOT_SRCS files, what runs rarely is marked COLD (cold.h).
ifneq ($(filter -O2,$(CFLAGS)),)
ifneq ($(SANITIZE),1)
ifeq ($(origin COLD_CFLAGS),undefined)
COLD_CFLAGS := $(shell $(CC) -Oz -x c -c -o /dev/null /dev/null 2>/dev/null && echo -Oz || echo -Os)
endif
endif
endif
COLD_CFLAGS ?=
# Code generation of the hot files (issue 16 budget): -O2 pads functions, loops
# and jump targets to 16 bytes, inlines functions not marked inline and lays
# out blocks for the branch predictor at the cost of copies (stc); turning the
# three off took 16.5 KB of code off the default build (gcc 12) for no CPU
# cost out of the noise of tools/bench-builds.sh (BENCHMARKS.md, "Code
# generation flags of the hot files"). Each flag is kept only where $(CC)
# takes it without a warning (clang 14 takes the first, third and fourth:
# 19 KB); probed once.
HOT_CFLAGS_TRY = -falign-functions=1 -falign-jumps=1 -falign-loops=1 -fno-inline-functions \
	-freorder-blocks-algorithm=simple
ifneq ($(filter -O2,$(CFLAGS)),)
ifneq ($(SANITIZE),1)
ifeq ($(origin HOT_CFLAGS),undefined)
HOT_CFLAGS := $(strip $(shell for f in $(HOT_CFLAGS_TRY); do \
	$(CC) -Werror $$f -x c -c -o /dev/null /dev/null 2>/dev/null && printf '%s ' $$f; done))
endif
endif
endif
HOT_CFLAGS ?=

ifeq ($(WITH_EPOLL),yes)
LOOP_SRC = loop_epoll.c
else
LOOP_SRC = loop_poll.c
endif

# Feature switches (see the top): every one is yes or no.
FEATURES = PEP CARBONS CSI SM MAM COMPONENTS PUSH VCARD PRIVATE BLOCKING REGISTRATION ADHOC IMPORT S2S MUC LEGACY_AUTH HTTP WEBADMIN BOSH UPLOAD
WITH_ALL ?= yes
# The features served over HTTP (issue 14) follow WITH_HTTP unless set (so
# that `make WITH_HTTP=no` alone, as OpenWrt's menu passes it, still builds);
# the web admin console also follows WITH_ADHOC, whose actions it uses.
WITH_UPLOAD ?= $(WITH_HTTP)
WITH_BOSH ?= $(WITH_HTTP)
WITH_WEBADMIN ?= $(if $(filter yesyes,$(WITH_HTTP)$(WITH_ADHOC)),yes,no)
$(foreach f,$(FEATURES),$(eval WITH_$(f) ?= $(WITH_ALL)))
$(foreach f,$(FEATURES),$(if $(filter yes no,$(WITH_$(f))),,\
	$(error WITH_$(f)=$(WITH_$(f)): must be yes or no)))
ifeq ($(WITH_PUSH)$(WITH_COMPONENTS),yesno)
$(error WITH_PUSH=yes needs WITH_COMPONENTS=yes (push notifications go to an app server \
	that only a component can be, without S2S): set WITH_PUSH=no or WITH_COMPONENTS=yes)
endif
# web admin console (issue 14): served by http.c, acts through admin.c.
ifeq ($(WITH_WEBADMIN),yes)
ifneq ($(WITH_HTTP)$(WITH_ADHOC),yesyes)
$(error WITH_WEBADMIN=yes needs WITH_HTTP=yes and WITH_ADHOC=yes (the console is served over \
	HTTP and acts through admin.c): set WITH_WEBADMIN=no or turn those on)
endif
endif
ifeq ($(WITH_BOSH)$(WITH_HTTP),yesno)
$(error WITH_BOSH=yes needs WITH_HTTP=yes (BOSH is served at /http-bind by the HTTP \
	server): set WITH_BOSH=no or WITH_HTTP=yes)
endif
# XEP-0363 HTTP File Upload (issue 14 item 4)
ifeq ($(WITH_UPLOAD)$(WITH_HTTP),yesno)
$(error WITH_UPLOAD=yes needs WITH_HTTP=yes (files go up and down over HTTP): \
	set WITH_UPLOAD=no or WITH_HTTP=yes)
endif
FEATURES_OFF = $(foreach f,$(FEATURES),$(if $(filter no,$(WITH_$(f))),$(f)))
PPFLAGS += -DXMPPD_WITHOUT='"$(strip $(FEATURES_OFF))"'

# Services plug in through hooks.h from their own files: each WITH_... switch
# adds or leaves out its files (SRCS_<FEATURE>), nothing else.
SRCS_PEP = pep.c caps.c
SRCS_CARBONS = carbons.c
SRCS_CSI = csi.c
SRCS_SM = sm.c
SRCS_MAM = mam.c
SRCS_COMPONENTS = component.c
SRCS_PUSH = push.c
SRCS_VCARD = vcard.c
SRCS_PRIVATE = private.c
SRCS_BLOCKING = blocking.c
SRCS_REGISTRATION = register.c
SRCS_ADHOC = adhoc.c admin.c # XEP-0050 ad-hoc commands, XEP-0133 administration
SRCS_IMPORT = pie.c # XEP-0227: xmppd export / import
SRCS_S2S = s2s.c dns.c # RFC 6120 server-to-server, XEP-0220 dialback; DNS SRV
SRCS_MUC = muc.c # XEP-0045 multi-user chat
SRCS_LEGACY_AUTH = legacy.c # XEP-0078 jabber:iq:auth
SRCS_HTTP = http.c http_parse.c # issue 14: HTTP/1.1 server, XEP-0156
SRCS_HTTP += ws.c ws_frame.c # issue 14 step 2: XMPP over WebSocket (RFC 7395)
SRCS_WEBADMIN = webadmin.c webadmin_util.c # issue 14 item 3: web admin console
SRCS_BOSH = bosh.c bosh_body.c # issue 14: XMPP over BOSH (XEP-0124/0206)
SRCS_UPLOAD = upload.c # issue 14 item 4: XEP-0363 HTTP File Upload
SERVICE_SRCS =
SERVICE_SRCS += $(foreach f,$(FEATURES),$(if $(filter yes,$(WITH_$(f))),$(SRCS_$(f))))

SRCS = server.c $(LOOP_SRC) c2s.c router.c im.c presence.c roster.c offline.c \
       account.c disco.c xml.c jid.c precis.c precis_table.c sasl.c tls.c sha_ni.c store.c config.c \
       log.c buf.c worker.c hooks.c $(SERVICE_SRCS)
# XEP-0115 ver of a disco#info answer: caps.c's (PEP) and the server's own (disco.c)
SRCS += caps_ver.c
# when paused senders resume (server.c's bookkeeping, pause.h)
SRCS += pause.c
O ?=
OBJS = $(addprefix $(O),$(SRCS:.c=.o))

UNIT_TESTS = test_xml test_jid test_sasl test_store test_config test_tls test_log
UNIT_TESTS += test_caps # PEP (XEP-0163): rule at the end
# XEP-0198 stream management: its counter arithmetic (sm.h)
UNIT_TESTS += test_sm
# paused senders resumed at the end of the turn a queue drained (pause.h)
UNIT_TESTS += test_pause
UNIT_TESTS += test_dns # federation DNS (dns.c): rule at the end
UNIT_TESTS += test_http # HTTP request parser (http_parse.c): rule at the end
UNIT_TESTS += test_hooks # s2s fixes (issue 12): message phases; rule at the end
UNIT_TESTS += test_ws # WebSocket frame parser (ws_frame.c): rule at the end
UNIT_TESTS += test_webadmin # web admin helpers (webadmin_util.c): rule at the end
UNIT_TESTS += test_bosh # BOSH <body/> parser and rid window (bosh_body.c): rule at the end
UNIT_TESTS += test_precis_table # blocked PRECIS property runs (issue 16): rule at the end
UNIT_BINS = $(addprefix tests/unit/,$(UNIT_TESTS))
# Each unit test links the modules it covers (and what they need).
LIB_OBJS = xml.o jid.o precis.o precis_table.o sasl.o tls.o sha_ni.o store.o config.o log.o buf.o

.PHONY: all run check unit build-tests integration bench bench-smoke install uninstall clean deps \
	test-deps

all: $(O)xmppd

$(O)xmppd: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $(OBJS) $(LIBS)
ifneq ($(O),)
.PHONY: xmppd
xmppd: $(O)xmppd
endif

# Objects remember the flags they were built with: switching SANITIZE, SMALL
# or CC rebuilds everything instead of silently linking stale objects.
BUILD_FLAGS = $(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) cold: $(COLD_CFLAGS) hot: $(HOT_SRCS) $(HOT_CFLAGS)
$(O).build-flags: FORCE
	@mkdir -p $(@D)
	@echo '$(subst ','\'',$(BUILD_FLAGS))' | cmp -s - $@ || echo '$(subst ','\'',$(BUILD_FLAGS))' > $@
FORCE:

# The mbedTLS headers, looked for the way the compiler will look for them
# ($(CC) and $(CFLAGS): a cross build checks its own include path, not the
# build host's /usr/include). Before any object is compiled, once per change
# of compiler or flags (the stamp follows .build-flags), so a fresh machine
# gets what to install instead of a compiler error.
MBEDTLS_PROBE = printf '\043include <mbedtls/version.h>\n' | $(CC) $(PPFLAGS) $(CFLAGS) -E -o /dev/null -x c -
$(O).build-deps: $(O).build-flags
	@if ! err=$$($(MBEDTLS_PROBE) 2>&1); then \
		echo "$$err" | sed -n '1,3s/^/  /p' >&2; \
		echo "xmppd: '$(CC) $(CFLAGS)' does not find the mbedTLS headers (mbedtls/version.h)." >&2; \
		echo "  Debian/Ubuntu: apt-get install libmbedtls-dev   (or: make deps)" >&2; \
		echo "  Cross build: add -I<mbedTLS include dir> to CFLAGS (and -L<lib dir> to LDFLAGS)." >&2; \
		exit 1; \
	fi
	@touch $@

$(O)%.o: %.c $(O).build-flags | $(O).build-deps
	$(CC) $(XCFLAGS) $(CFLAGS) $(if $(filter $(HOT_SRCS),$<),$(HOT_CFLAGS),$(COLD_CFLAGS)) -c -o $@ $<

tests/unit/%: tests/unit/%.c $(LIB_OBJS) .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)

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
	@$(MAKE) --no-print-directory check-min

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

# The integration tests mostly wait on sockets, so they run in TEST_JOBS
# pytest-xdist workers (python3-pytest-xdist), a file per worker at a time
# (--dist loadfile keeps a file's module fixtures, e.g. its Prosody, in one
# process). TEST_JOBS=1, or no xdist installed, runs them one after another.
TEST_JOBS ?= 4
XDIST = $(shell [ "$(TEST_JOBS)" -gt 1 ] 2>/dev/null && $(PYTHON) -c 'import xdist' 2>/dev/null \
	&& echo "-n $(TEST_JOBS) --dist loadfile")

integration: xmppd
	XMPPD_STRICT=1 XMPPD_BIN=$(CURDIR)/xmppd PYTHON=$(PYTHON) tests/run-integration.sh -q $(XDIST)

# The load generator (tools/xmpp-bench.c): never linked into xmppd.
bench: tools/xmpp-bench

tools/xmpp-bench: tools/xmpp-bench.c | .build-deps
	$(CC) -std=c11 -O2 -Wall -Wextra $(LDFLAGS) -o $@ tools/xmpp-bench.c $(LIBS)

# Functional smoke test of the benchmark scenarios (no timing thresholds).
bench-smoke: xmppd tools/xmpp-bench
	tools/bench-smoke.sh ./xmppd tools/xmpp-bench

# Feature switches (issue 16): the router build, every switch off, built into
# .min/ beside the normal one, logs in, routes, advertises nothing it lacks and
# refuses the options of what it lacks (test_72_features.py reads xmppd -V).
.PHONY: check-min
check-min:
	@$(MAKE) --no-print-directory O=.min/ SMALL=1 WITH_ALL=no .min/xmppd
	XMPPD_STRICT=1 XMPPD_BIN=$(CURDIR)/.min/xmppd PYTHON=$(PYTHON) tests/run-integration.sh -q \
		test_72_features.py test_01_stream.py test_04_routing.py

install: $(O)xmppd
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/xmppd $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(O)xmppd $(DESTDIR)$(BINDIR)/xmppd
	$(STRIP) $(DESTDIR)$(BINDIR)/xmppd || true
	install -m 644 xmppd.conf.example $(DESTDIR)$(SYSCONFDIR)/xmppd/xmppd.conf.example
	install -m 644 xmppd.8 $(DESTDIR)$(MANDIR)/man8/xmppd.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/xmppd $(DESTDIR)$(MANDIR)/man8/xmppd.8
	rm -f $(DESTDIR)$(SYSCONFDIR)/xmppd/xmppd.conf.example

clean:
	rm -f xmppd tools/xmpp-bench *.o *.d $(UNIT_BINS) tests/unit/precis_filter tests/unit/*.d \
		.run-as-root.conf .build-flags .build-deps
	rm -rf .fuzz .min .sizes .order

-include $(OBJS:.o=.d)

# libFuzzer harnesses (tests/fuzz/, clang): see fuzz.mk. Included last so that
# 'all' stays the default target.
include fuzz.mk
.PHONY: fuzz fuzz-run
fuzz: fuzz-build
fuzz-run: fuzz-run-all

# The XEP-0115 verification string (disco.c, caps.c) is tested alone.
tests/unit/test_caps: tests/unit/test_caps.c caps_ver.o $(LIB_OBJS) .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< caps_ver.o $(LIB_OBJS) $(LIBS)

# Paused senders (pause.h): the bookkeeping is tested alone.
tests/unit/test_pause: tests/unit/test_pause.c pause.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< pause.o
# Federation DNS (dns.c, WITH_S2S): its packet builder and parser, the loop stubbed.
tests/unit/test_dns: tests/unit/test_dns.c dns.o $(LIB_OBJS) .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< dns.o $(LIB_OBJS) $(LIBS)
# HTTP server (issue 14): the request parser is tested alone.
tests/unit/test_http: tests/unit/test_http.c http_parse.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< http_parse.o
# s2s fixes (issue 12): the phases of a message to an account (hooks.c) alone.
tests/unit/test_hooks: tests/unit/test_hooks.c hooks.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< hooks.o
# s2s fixes (issue 12 item 1): services must not depend on the order their
# hooks run in (hooks.h); constructors run in link order, so this links every
# object in reverse and runs the tests of the strips and the archive.
reverse = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
.PHONY: check-hook-order
check-hook-order:
	$(MAKE) O=.order/ SRCS="$(strip $(call reverse,$(SRCS)))" .order/xmppd
	XMPPD_STRICT=1 XMPPD_BIN=$(CURDIR)/.order/xmppd tests/run-integration.sh -q test_83_s2s_flood.py \
		test_61_carbons.py test_63_mam.py test_68_carbons_attack.py
# WebSocket (issue 14 step 2): the RFC 6455 frame parser alone.
tests/unit/test_ws: tests/unit/test_ws.c ws_frame.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< ws_frame.o
# Web admin console (issue 14): the log ring, token compare and form decoding.
tests/unit/test_webadmin: tests/unit/test_webadmin.c webadmin_util.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< webadmin_util.o
# BOSH (issue 14): the <body/> parser and rid window alone.
tests/unit/test_bosh: tests/unit/test_bosh.c bosh_body.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< bosh_body.o
# Size (issue 16): precis_table.c's blocked property runs against the flat
# ones (gen-unicode.py --flat), every code point; precis.c is included.
tests/unit/test_precis_table: tests/unit/test_precis_table.c precis.c precis_table.o .build-flags
	$(CC) $(XCFLAGS) $(CFLAGS) $(LDFLAGS) $(XLDFLAGS) -o $@ $< precis_table.o
