# tern — top-level Makefile.
#
# `make localserve` and `make check` do all set-up on a fresh Debian 12
# machine: missing packages (contrib/install-deps.sh), autoreconf and
# configure on demand, build, then run.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR = $(PREFIX)/sbin
MANDIR = $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)

# config.mk comes from configure; it is (re)made on demand, except for the
# goals that must work on an unconfigured tree.
NOCONFIG_GOALS = clean distclean deps
ifeq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
else
include config.mk
endif

# Layers of DESIGN.md, bottom to top. tests/check-layers.sh reads this order.
LAYERS = util smtp message sasl mailauth config store core net server queue metrics
LIB_SRCS = $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.cpp))
LIB_OBJS = $(LIB_SRCS:.cpp=.o)
UNIT_SRCS = $(wildcard tests/unit/*.cpp)
UNIT_OBJS = $(UNIT_SRCS:.cpp=.o)
HELPER_SRCS = $(wildcard tests/helpers/*.cpp)
HELPER_OBJS = $(HELPER_SRCS:.cpp=.o)
BLACKBOX_SRCS = $(wildcard tests/blackbox/*.cpp)
BLACKBOX_OBJS = $(BLACKBOX_SRCS:.cpp=.o)

CPPFLAGS_TERN = -Isrc -Itests -DTERN_VERSION='"$(TERN_VERSION)"' \
	-DTERN_SYSCONFDIR='"$(SYSCONFDIR)"'
WARN = -Wall -Wextra -Wno-unused-parameter
ALL_CXXFLAGS = $(CXXFLAGS_CONF) $(WARN) $(CPPFLAGS_TERN) -MMD -MP $(CXXFLAGS)

.PHONY: all deps check unit blackbox layers localserve install clean distclean bench fuzz

all: src/ternd src/ternctl

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
# maps ~1.6 MB resident on its own).
src/ternd: src/ternd.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -static-libstdc++ -static-libgcc -o $@ $^ $(LIBS_CONF)

src/ternctl: src/ternctl.o src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

tests/unit-tests: $(UNIT_OBJS) src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

tests/blackbox-tests: $(BLACKBOX_OBJS) $(HELPER_OBJS) src/libtern.a
	$(CXX) $(LDFLAGS_CONF) -o $@ $^ $(LIBS_CONF)

layers:
	@sh tests/check-layers.sh $(LAYERS)

unit: tests/unit-tests
	tests/unit-tests

blackbox: all tests/blackbox-tests
	tests/blackbox-tests

check: deps layers all tests/unit-tests tests/blackbox-tests
	tests/unit-tests
	tests/blackbox-tests

localserve: deps all
	src/ternd --localserve -f

bench: all
	@echo "no benchmarks yet"

fuzz:
	@echo "no fuzz targets yet"

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/tern
	install -m 755 src/ternd src/ternctl $(DESTDIR)$(SBINDIR)/
	install -m 644 man/ternd.8 man/ternctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 man/tern.json.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 etc/tern.json $(DESTDIR)$(SYSCONFDIR)/tern/tern.json.example

clean:
	rm -f src/*.o src/*/*.o src/*.d src/*/*.d tests/*/*.o tests/*/*.d
	rm -f src/libtern.a src/ternd src/ternctl tests/unit-tests tests/blackbox-tests

distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache aclocal.m4

-include $(LIB_SRCS:.cpp=.d) $(UNIT_SRCS:.cpp=.d) $(HELPER_SRCS:.cpp=.d) $(BLACKBOX_SRCS:.cpp=.d) src/ternd.d src/ternctl.d
