# mod_dme: build, run and test.  See README.md.

APXS      ?= apxs
HTTPD     ?= /usr/sbin/apache2
PKGS       = apr-1 apr-util-1 libcurl libxml-2.0 libmemcached gmime-3.0 openssl jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN       = -Wall -Wextra -Wno-unused-parameter
CFLAGS    ?= -O2 -g
CFLAGS    += $(WARN) -std=gnu99 -fPIC -Ilib $(PKG_CFLAGS)

LIB_SRC    = $(sort $(wildcard lib/*.c))
LIB_OBJ    = $(LIB_SRC:.c=.o)
LIB_A      = lib/libdme.a
MOD_SRC    = $(sort $(wildcard mod_dme/*.c))
MOD_SO     = mod_dme/.libs/mod_dme.so
UNIT_SRC   = $(sort $(wildcard t/unit/test_*.c))
UNIT_BIN   = $(UNIT_SRC:.c=)

.PHONY: all deps run stop test unit-test apache-test lint fuzz clean bench

all: $(MOD_SO)

deps:
	./scripts/deps.sh

lib/%.o: lib/%.c lib/*.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

# apxs compiles the glue with httpd's flags; the core comes in as a static
# library so the module is one self-contained .so.
$(MOD_SO): $(MOD_SRC) mod_dme/*.h $(LIB_A)
	cd mod_dme && $(APXS) -c -o mod_dme.so \
	    -Wc,"$(WARN) -std=gnu99 -I../lib $(PKG_CFLAGS)" \
	    $(notdir $(MOD_SRC)) ../$(LIB_A) $(PKG_LIBS) >/dev/null

t/unit/test_%: t/unit/test_%.c t/unit/unit.h $(LIB_A)
	$(CC) $(CFLAGS) -It/unit -o $@ $< $(LIB_A) $(PKG_LIBS)

unit-test: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

apache-test: $(MOD_SO)
	./t/run-apache-tests.sh

test: deps all unit-test apache-test

run: deps all
	./scripts/run.sh start

stop:
	./scripts/run.sh stop

bench: all
	./scripts/bench.sh

lint:
	./scripts/lint.sh

fuzz:
	./t/fuzz/build.sh

clean:
	rm -f lib/*.o $(LIB_A) $(UNIT_BIN)
	rm -rf mod_dme/.libs mod_dme/*.la mod_dme/*.lo mod_dme/*.slo mod_dme/*.o
