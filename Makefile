# tern — top-level Makefile.
#
# `make localserve` and `make check` do all set-up on a fresh Debian 12
# machine: missing packages (contrib/install-deps.sh), autoreconf and
# configure on demand, build, then run.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR = $(PREFIX)/sbin
MANDIR = $(PREFIX)/share/man
# The config lives in /etc/tern whatever PREFIX is (ternd(8): -c defaults to
# /etc/tern/tern.json).
SYSCONFDIR ?= /etc
LIBDIR = $(PREFIX)/lib
SYSTEMDUNITDIR ?= $(LIBDIR)/systemd/system
# `make install` strips the binaries; STRIP= keeps their symbols (for
# debugging, or for a packager that strips them itself).
STRIP ?= -s
# The contrib/*.in files with the install paths filled in.
SUBST_PATHS = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g'

# config.mk comes from configure; it is (re)made on demand, except for the
# goals that must work on an unconfigured tree.
NOCONFIG_GOALS = clean distclean deps deb check-sanitized
# `make -n` must run nothing, but GNU make remakes an included makefile for
# real even then (here: configure, and apt-get for missing packages). A dry
# run reads config.mk's settings as text, when it is there, which make does
# not try to remake; the configure steps are then only printed.
DRY_RUN = $(findstring n,$(filter-out --%,$(firstword -$(MAKEFLAGS))))
ifeq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
else ifneq ($(DRY_RUN),)
$(if $(wildcard config.mk),$(eval $(file <config.mk)))
else
include config.mk
endif

# Layers of doc/design.md, bottom to top. tests/check-layers.sh reads this order.
LAYERS = util smtp message milter sasl mailauth inbound config decide store core net server queue metrics
LIB_SRCS = $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.cpp))
LIB_OBJS = $(LIB_SRCS:.cpp=.o)
UNIT_SRCS = $(wildcard tests/unit/*.cpp)
UNIT_OBJS = $(UNIT_SRCS:.cpp=.o)
HELPER_SRCS = $(wildcard tests/helpers/*.cpp)
HELPER_OBJS = $(HELPER_SRCS:.cpp=.o)
BLACKBOX_SRCS = $(wildcard tests/blackbox/*.cpp)
BLACKBOX_OBJS = $(BLACKBOX_SRCS:.cpp=.o)
# The session-dialogue tier (tests/session/): one session over scripted I/O.
SESSION_SRCS = $(wildcard tests/session/*.cpp)
SESSION_OBJS = $(SESSION_SRCS:.cpp=.o)

CPPFLAGS_TERN = -Isrc -Itests -DTERN_VERSION='"$(TERN_VERSION)"' \
	-DTERN_SYSCONFDIR='"$(SYSCONFDIR)"'
WARN = -Wall -Wextra -Wno-unused-parameter
ALL_CXXFLAGS = $(CXXFLAGS_CONF) $(WARN) $(CPPFLAGS_TERN) -MMD -MP $(CXXFLAGS)

.PHONY: all deps check check-sanitized unit blackbox layers localserve install clean distclean bench fuzz deb
.PHONY: format format-check function-length

all: src/ternd src/ternctl src/sendmail.tern

deps:
	@contrib/install-deps.sh

configure: configure.ac
	@contrib/install-deps.sh
	autoreconf -fi

config.mk: configure config.mk.in
	./configure CXXFLAGS="-O2 -g" --quiet

%.o: %.cpp config.mk
	$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

src/libtern.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

# The daemon links libstdc++ statically: only the pages it uses become
# resident, which keeps idle RSS under the 4 MB target (shared libstdc++
# maps ~1.6 MB resident on its own). --as-needed leaves out the libraries
# it does not call (libzip, only the tests' zip writer, and OpenSSL's
# libcrypto, whose relocated tables cost 400 kB that never leave). -z now
# binds every imported function at start, before the start-up pages are
# given back: lazily, the first call of each one after that (the first
# connection's) looks it up in every library's symbol tables and maps
# their pages again.
src/ternd: src/ternd.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -static-libstdc++ -static-libgcc -Wl,--as-needed -Wl,-z,now -o $@ $^ $(LIBS_CONF)

src/ternctl: src/ternctl.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

src/sendmail.tern: src/sendmail.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

# The unit tests share the loopback DNS responder of the black-box tests.
tests/unit-tests: $(UNIT_OBJS) tests/helpers/dns_server.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

tests/blackbox-tests: $(BLACKBOX_OBJS) $(HELPER_OBJS) src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

tests/session-tests: $(SESSION_OBJS) src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

layers:
	@sh tests/check-layers.sh $(LAYERS)

# House style (.clang-format): `make format` rewrites src/ and tests/ in
# place; `make format-check` fails on any difference.
format:
	@sh tests/check-format.sh --fix

format-check:
	@sh tests/check-format.sh

# Functions of src/ over 80 lines fail the check (split them into named steps).
function-length:
	@sh tests/check-function-length.sh

unit: tests/unit-tests
	tests/unit-tests

blackbox: all tests/blackbox-tests
	tests/blackbox-tests

check: deps layers format-check function-length all tests/unit-tests tests/session-tests tests/blackbox-tests fuzz-replay-build
	sh tests/run-all.sh

localserve: deps all
	src/ternd --localserve -f

# The tests again, against a build of HEAD with ASan and UBSan in a
# temporary clone (tests/check-sanitized.sh); not part of `make check`.
check-sanitized: deps
	sh tests/check-sanitized.sh

# Benchmarks (tests/bench/, README.md "Benchmarks and fuzzing"): tern and a
# private Postfix side by side on loopback, interleaved, with ratios. It
# reports, it never fails the build. BENCH_TIME: seconds per load run;
# BENCH_REPS: repetitions of every run (the table shows medians).
BENCH_TIME ?= 4
BENCH_REPS ?= 3
BENCH_SRCS = $(wildcard tests/bench/*.cpp)
BENCH_OBJS = $(BENCH_SRCS:.cpp=.o)
BENCH_HELPER_OBJS = tests/helpers/daemon.o tests/helpers/dns_server.o tests/helpers/smtp_client.o

tests/bench/tern-bench: $(BENCH_OBJS) $(BENCH_HELPER_OBJS)
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ -lpthread

# Fills a message history for the bench's large-history run (links the library).
tests/bench/tern-fill-history: tests/bench/tools/fill_history.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

bench: all tests/bench/tern-bench tests/bench/tern-fill-history
	-@contrib/install-deps.sh
	-@TERN_SRCDIR="$(CURDIR)" tests/bench/tern-bench --time $(BENCH_TIME) --reps $(BENCH_REPS)

# Fuzzing (tests/fuzz/): libFuzzer targets for the pure parsers, built with
# clang++ and ASan/UBSan into tests/fuzz/build/. The library sources of the
# pure layers are compiled again with the fuzzer instrumentation; each
# target links only what it uses from that archive.
FUZZ_TIME ?= 20
FUZZ_CXX ?= clang++
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS = $(CXXFLAGS_CONF) $(WARN) $(CPPFLAGS_TERN) -MMD -MP $(FUZZ_SANITIZE) -fsanitize=fuzzer-no-link
FUZZ_LAYERS = util smtp message milter sasl mailauth config
FUZZ_LIB_SRCS = $(foreach l,$(FUZZ_LAYERS),$(wildcard src/$(l)/*.cpp)) src/net/proxy_protocol.cpp \
	src/inbound/delivery_rate.cpp src/inbound/junk_filter.cpp
FUZZ_LIB_OBJS = $(patsubst src/%.cpp,tests/fuzz/build/src/%.o,$(FUZZ_LIB_SRCS))
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.cpp)
FUZZ_BINS = $(patsubst tests/fuzz/%.cpp,tests/fuzz/build/%,$(FUZZ_SRCS))

tests/fuzz/build/src/%.o: src/%.cpp config.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c -o $@ $<

tests/fuzz/build/%.o: tests/fuzz/%.cpp config.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c -o $@ $<

tests/fuzz/build/libtern-fuzz.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

tests/fuzz/build/fuzz_%: tests/fuzz/build/fuzz_%.o tests/fuzz/build/libtern-fuzz.a
	$(FUZZ_CXX) $(FUZZ_SANITIZE) -fsanitize=fuzzer $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

# The session target (fuzz_session) drives a whole server::Connection over
# the session tier's scripted wire: it links every layer, compiled again
# with the instrumentation, and the tier's harness.
FUZZ_FULL_LIB_OBJS = $(patsubst src/%.cpp,tests/fuzz/build/src/%.o,$(LIB_SRCS))

tests/fuzz/build/libtern-fuzz-full.a: $(FUZZ_FULL_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

tests/fuzz/build/session/%.o: tests/session/%.cpp config.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c -o $@ $<

tests/fuzz/build/fuzz_session: tests/fuzz/build/fuzz_session.o tests/fuzz/build/session/harness.o tests/fuzz/build/libtern-fuzz-full.a
	$(FUZZ_CXX) $(FUZZ_SANITIZE) -fsanitize=fuzzer $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

.PRECIOUS: tests/fuzz/build/%.o
.PHONY: fuzz-toolchain fuzz-build fuzz-replay fuzz-replay-build

# Replay without libFuzzer (part of `make check`): each target linked with
# g++ to tests/fuzz/replay_main.cpp, which runs it on every saved input of
# tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/.
# The pure targets link the same list of sources as the fuzz build
# (FUZZ_LIB_SRCS, compiled by g++), so a source missing from that list
# fails `make check` rather than only `make fuzz`.
FUZZ_REPLAY_BINS = $(patsubst tests/fuzz/%.cpp,tests/fuzz/replay/%,$(FUZZ_SRCS))

tests/fuzz/replay/libtern-pure.a: $(FUZZ_LIB_SRCS:.cpp=.o)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

tests/fuzz/replay/fuzz_%: tests/fuzz/fuzz_%.o tests/fuzz/replay_main.o tests/fuzz/replay/libtern-pure.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

tests/fuzz/replay/fuzz_session: tests/fuzz/fuzz_session.o tests/session/harness.o tests/fuzz/replay_main.o src/libtern.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

.SECONDARY: $(FUZZ_SRCS:.cpp=.o) tests/fuzz/replay_main.o

fuzz-replay-build: $(FUZZ_REPLAY_BINS)

fuzz-replay: fuzz-replay-build
	@sh tests/fuzz/replay.sh $(FUZZ_REPLAY_BINS)

fuzz-toolchain:
	@sh tests/fuzz/check-toolchain.sh $(FUZZ_CXX)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-toolchain
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_BINS)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/tern \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/init.d $(DESTDIR)$(SYSCONFDIR)/logrotate.d \
		$(DESTDIR)$(LIBDIR)/tern
	install -m 755 $(STRIP) src/ternd src/ternctl src/sendmail.tern $(DESTDIR)$(SBINDIR)/
	ln -sf sendmail.tern $(DESTDIR)$(SBINDIR)/mailq
	install -m 644 man/ternd.8 man/ternctl.8 man/sendmail.tern.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 man/tern.json.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 etc/tern.json $(DESTDIR)$(SYSCONFDIR)/tern/tern.json.example
	$(SUBST_PATHS) contrib/ternd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/ternd.service
	$(SUBST_PATHS) contrib/ternd.init.in > $(DESTDIR)$(SYSCONFDIR)/init.d/ternd
	$(SUBST_PATHS) contrib/ternd.logrotate.in > $(DESTDIR)$(SYSCONFDIR)/logrotate.d/ternd
	$(SUBST_PATHS) contrib/certbot/tern-deploy-hook.in > $(DESTDIR)$(LIBDIR)/tern/certbot-deploy-hook
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/ternd.service $(DESTDIR)$(SYSCONFDIR)/logrotate.d/ternd
	chmod 755 $(DESTDIR)$(SYSCONFDIR)/init.d/ternd $(DESTDIR)$(LIBDIR)/tern/certbot-deploy-hook
	@# The system user of the example config and the unit, on a real install by root.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd tern >/dev/null; then \
		echo "adduser --system --group --home /var/lib/tern --no-create-home tern"; \
		adduser --system --group --home /var/lib/tern --no-create-home tern; \
	fi

# The Debian package (debian/): built by dpkg-buildpackage in a copy of the
# tree under DEB_BUILD_DIR, with Debian's build flags, so the objects here
# stay as they are; the .deb lands in DEB_BUILD_DIR.
DEB_BUILD_DIR ?= build-deb
DEB_JOBS ?= 2
deb:
	rm -rf $(DEB_BUILD_DIR)/tern
	mkdir -p $(DEB_BUILD_DIR)/tern
	tar -cf - --exclude=./.git --exclude=./build-deb --exclude=./$(DEB_BUILD_DIR) --exclude='./src/*.[oda]' --exclude='./tests/*.[od]' \
		--exclude=./config.mk --exclude=./config.status --exclude=./config.log --exclude=./autom4te.cache \
		--exclude=./src/ternd --exclude=./src/ternctl --exclude=./src/sendmail.tern --exclude=./tern-localserve \
		--exclude=./tests/unit-tests --exclude=./tests/session-tests --exclude=./tests/blackbox-tests --exclude=./tests/fuzz/build \
		--exclude=./tests/fuzz/replay --exclude=./tests/bench/tern-bench . | tar -xf - -C $(DEB_BUILD_DIR)/tern
	cd $(DEB_BUILD_DIR)/tern && dpkg-buildpackage -b -us -uc -j$(DEB_JOBS)
	@ls $(DEB_BUILD_DIR)/*.deb

clean:
	rm -f src/*.o src/*/*.o src/*.d src/*/*.d tests/*/*.o tests/*/*.d
	rm -f src/libtern.a src/ternd src/ternctl src/sendmail.tern tests/unit-tests tests/session-tests tests/blackbox-tests tests/bench/tern-bench tests/bench/tern-fill-history
	rm -rf tests/fuzz/build tests/fuzz/replay

distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache aclocal.m4

-include $(LIB_SRCS:.cpp=.d) $(UNIT_SRCS:.cpp=.d) $(HELPER_SRCS:.cpp=.d) $(BLACKBOX_SRCS:.cpp=.d) $(SESSION_SRCS:.cpp=.d) src/ternd.d src/ternctl.d src/sendmail.d
-include $(BENCH_SRCS:.cpp=.d) tests/bench/tools/fill_history.d $(FUZZ_FULL_LIB_OBJS:.o=.d) tests/fuzz/build/session/harness.d $(FUZZ_SRCS:tests/fuzz/%.cpp=tests/fuzz/build/%.d)
-include $(FUZZ_SRCS:.cpp=.d) tests/fuzz/replay_main.d
