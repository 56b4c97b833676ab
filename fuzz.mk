# fuzz.mk - libFuzzer harnesses (tests/fuzz/), included by the Makefile.
# Also usable alone: make -f fuzz.mk fuzz-build | fuzz-run-all [FUZZ_SECONDS=N]
#
#   fuzz-build     build every harness with clang -fsanitize=fuzzer,address,undefined
#                  into .fuzz/ (objects in .fuzz/obj, apart from the normal build)
#   fuzz-run-all   run each harness FUZZ_SECONDS on its seeds (tests/fuzz/corpus/<name>)
#                  plus what earlier runs found (.fuzz/corpus/<name>); fails if any
#                  harness crashes, leaks, trips UBSan or an oracle. Crash inputs are
#                  kept in .fuzz/crash/<name>/, logs in .fuzz/<name>.log.
#   fuzz-clean     remove .fuzz/
# Variables: FUZZ_CC (clang), FUZZ_CFLAGS (-O1 -g), FUZZ_SECONDS (10), FUZZ_HARNESSES,
# FUZZ_FLAGS (extra libFuzzer options, e.g. -jobs=2 or -max_len=8192).
# Reproduce a crash: .fuzz/fuzz_stream .fuzz/crash/fuzz_stream/crash-... (with
# XMPPD_FUZZ_LOG=1 to see the server's log lines).

FUZZ_CC ?= clang
FUZZ_CFLAGS ?= -O1 -g
FUZZ_SECONDS ?= 10
FUZZ_FLAGS ?=
FUZZ_LIBS ?= -lmbedtls -lmbedx509 -lmbedcrypto -pthread
FUZZ_HARNESSES ?= fuzz_xml fuzz_jid fuzz_sasl fuzz_store fuzz_config fuzz_stream fuzz_http

FUZZ_OUT = .fuzz
FUZZ_SRC = tests/fuzz
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_XCFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP -iquote . $(FUZZ_SAN)

# Modules under test (no server.c, loop_poll.c or log.c: fake_server.c and
# fuzz_log.c stand in for them), plus the harness helpers.
FUZZ_MODULES = c2s router im presence roster offline account disco caps_ver \
               xml jid precis precis_table sasl tls sha_ni store config buf worker hooks \
               $(SERVICE_SRCS:.c=)
FUZZ_HELPERS = fuzz_common fuzz_log fake_server
FUZZ_LIB_OBJS = $(addprefix $(FUZZ_OUT)/obj/,$(addsuffix .o,xml jid precis precis_table sasl tls sha_ni store config buf \
                                                fuzz_common fuzz_log))
FUZZ_STREAM_OBJS = $(addprefix $(FUZZ_OUT)/obj/,$(addsuffix .o,$(FUZZ_MODULES) $(FUZZ_HELPERS)))
FUZZ_BINS = $(addprefix $(FUZZ_OUT)/,$(FUZZ_HARNESSES))

.PHONY: fuzz-build fuzz-run-all fuzz-clean
.PRECIOUS: $(FUZZ_OUT)/obj/%.o

fuzz-build: $(FUZZ_BINS)

# Library code is instrumented for coverage but not linked with the fuzzer main.
$(FUZZ_OUT)/obj/%.o: %.c
	@mkdir -p $(FUZZ_OUT)/obj
	$(FUZZ_CC) $(FUZZ_XCFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OUT)/obj/%.o: $(FUZZ_SRC)/%.c
	@mkdir -p $(FUZZ_OUT)/obj
	$(FUZZ_CC) $(FUZZ_XCFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OUT)/fuzz_stream: $(FUZZ_OUT)/obj/fuzz_stream.o $(FUZZ_STREAM_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# HTTP (issue 14): the request parser alone.
$(FUZZ_OUT)/fuzz_http: $(FUZZ_OUT)/obj/fuzz_http.o $(FUZZ_OUT)/obj/http_parse.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_OUT)/fuzz_%: $(FUZZ_OUT)/obj/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# Each harness: seeds from the tree (read only) and a work corpus under .fuzz
# (libFuzzer writes new inputs into the first directory). All harnesses run even
# when one fails; the target fails if any did.
fuzz-run-all: fuzz-build
	@fail=""; \
	for h in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_OUT)/corpus/$$h $(FUZZ_OUT)/crash/$$h $(FUZZ_SRC)/corpus/$$h; \
		dict=""; \
		if [ -f $(FUZZ_SRC)/$$h.dict ]; then dict="-dict=$(FUZZ_SRC)/$$h.dict"; fi; \
		echo "fuzz: $$h for $(FUZZ_SECONDS) s"; \
		if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
			./$(FUZZ_OUT)/$$h -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
			-rss_limit_mb=2048 -artifact_prefix=$(FUZZ_OUT)/crash/$$h/ $$dict $(FUZZ_FLAGS) \
			$(FUZZ_OUT)/corpus/$$h $(FUZZ_SRC)/corpus/$$h > $(FUZZ_OUT)/$$h.log 2>&1; then \
			tail -n 1 $(FUZZ_OUT)/$$h.log; \
		else \
			fail="$$fail $$h"; \
			echo "fuzz: $$h FAILED (log $(FUZZ_OUT)/$$h.log, inputs in $(FUZZ_OUT)/crash/$$h/):"; \
			grep -v '^#[0-9]' $(FUZZ_OUT)/$$h.log | tail -n 60; \
		fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: FAILED:$$fail"; exit 1; fi; \
	echo "fuzz: all harnesses ran $(FUZZ_SECONDS) s without a crash"

fuzz-clean:
	rm -rf $(FUZZ_OUT)

-include $(wildcard $(FUZZ_OUT)/obj/*.d)

# Federation DNS (dns.c, WITH_S2S): the reply parser; the loop is stubbed in
# the harness.
FUZZ_HARNESSES += fuzz_dns
$(FUZZ_OUT)/fuzz_dns: $(FUZZ_OUT)/obj/fuzz_dns.o $(FUZZ_OUT)/obj/dns.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# WebSocket (issue 14 step 2): the frame parser alone.
FUZZ_HARNESSES += fuzz_ws
$(FUZZ_OUT)/fuzz_ws: $(FUZZ_OUT)/obj/fuzz_ws.o $(FUZZ_OUT)/obj/ws_frame.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# BOSH (issue 14): the <body/> parser and rid window alone.
FUZZ_HARNESSES += fuzz_bosh
$(FUZZ_OUT)/fuzz_bosh: $(FUZZ_OUT)/obj/fuzz_bosh.o $(FUZZ_OUT)/obj/bosh_body.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# A rule's prerequisites are expanded where it is read: harnesses added with
# += above (fuzz_dns, fuzz_ws) were missing from fuzz-build's; keep this last.
fuzz-build: $(FUZZ_BINS)
