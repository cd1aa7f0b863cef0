# djinn: a Djinn-CI-compatible image registry (SQLite extension) and build
# runtime (djinn-lua). See README.md.
#
#   make            build/djinn.so and build/djinn-lua
#   make test       build and run every suite; last line "N passed, N failed"
#                   (SUITE=PATTERN: only the suites whose name matches,
#                   e.g. make test SUITE=registry)
#   make check      the everyday subset: no VM boot, no dockerd, no root
#   make asan       the same tests under ASan + UBSan, in build-asan/
#   make valgrind   C and SQL tests under valgrind
#   make fuzz       run the libFuzzer harnesses for a bounded time
#   make lint       cppcheck;  make format-check  clang-format --dry-run
#   make install    PREFIX=/usr/local (DESTDIR= too): the binary, the
#                   extension, the Lua modules, the man page, the bash
#                   completion, the examples and the image builder
#   make uninstall  the same PREFIX/DESTDIR: removes exactly those files

PKG_CONFIG ?= pkg-config
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
PREFIX ?= /usr/local
B ?= build

WARN = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wwrite-strings -Wformat=2 -Wundef

EXT_PKGS = sqlite3 zlib libcrypto libzstd jansson libcurl
RT_PKGS  = lua5.4 yaml-0.1 libssh libcurl libarchive hiredis $(EXT_PKGS)
# djinn-lua itself links only what every start needs; libssh, libcurl and
# libarchive are in modules of their own (runtime/lazy.c), loaded when
# first required: each start then maps 12 shared objects instead of 50.
EXE_PKGS = lua5.4 yaml-0.1 hiredis sqlite3 zlib libcrypto libzstd jansson

EXT_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(EXT_PKGS))
EXT_LIBS   := $(shell $(PKG_CONFIG) --libs $(EXT_PKGS))
RT_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(RT_PKGS))
RT_LIBS    := $(shell $(PKG_CONFIG) --libs $(RT_PKGS))
EXE_LIBS   := $(shell $(PKG_CONFIG) --libs $(EXE_PKGS))

EXT_SRCS  = $(wildcard ext/*.c)
RT_SRCS   = $(wildcard runtime/*.c)
CTEST_SRCS = $(wildcard tests/c/*_test.c)
SCHEMA    = $(sort $(wildcard schema/[0-9][0-9][0-9]_*.sql))

# The extension's sources are compiled twice: position-independent for the
# loadable build/djinn.so, and with SQLITE_CORE for static linking into
# djinn-lua and the test drivers (the same code, not a copy).
PIC_OBJS  = $(EXT_SRCS:%.c=$(B)/pic/%.o) $(B)/pic/schema.o
CORE_OBJS = $(EXT_SRCS:%.c=$(B)/core/%.o) $(B)/core/schema.o
RT_OBJS   = $(RT_SRCS:%.c=$(B)/rt/%.o)
# The lazily loaded modules (runtime/lazy.c): their objects, and the rest.
SSH_OBJS  = $(patsubst %.c,$(B)/rt/%.o,$(wildcard runtime/l_ssh*.c))
HTTP_OBJS = $(B)/rt/runtime/l_http.o $(B)/rt/ext/fetch.o $(B)/rt/ext/url.o
TAR_OBJS  = $(B)/rt/runtime/l_tar.o
MODS      = $(B)/mod/ssh.so $(B)/mod/http.so $(B)/mod/tar.so
EXE_OBJS  = $(filter-out $(SSH_OBJS) $(HTTP_OBJS) $(TAR_OBJS),$(RT_OBJS)) \
	$(filter-out $(B)/core/ext/fetch.o,$(CORE_OBJS))
CTESTS    = $(CTEST_SRCS:tests/c/%.c=$(B)/tests/%)

EXT_DEFS = -D_POSIX_C_SOURCE=200809L -Iext -I$(B)
RT_DEFS  = -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iext -Iruntime -I$(B) \
           -DDJINN_LUADIR='"$(PREFIX)/share/djinn/lua"' \
           -DDJINN_LIBDIR='"$(PREFIX)/lib/djinn"' \
           -DDJINN_VERSION='"$(VERSION)"'
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

.PHONY: all test check asan valgrind fuzz lint format-check clean install \
	uninstall demo
all: $(B)/djinn.so $(if $(RT_SRCS),$(B)/djinn-lua $(B)/djinn-keeper $(MODS) \
	$(B)/djinn-lua.bash)

# The bash completion, generated from the option tables of djinn.cli.
$(B)/djinn-lua.bash: $(B)/djinn-lua lua/djinn/cli.lua lua/djinn/queue_cli.lua \
		lua/djinn/completion.lua
	$(B)/djinn-lua completion bash > $@.tmp && mv $@.tmp $@

$(B)/schema.c: $(SCHEMA) schema/embed.sh
	@mkdir -p $(@D)
	sh schema/embed.sh $(SCHEMA) > $@

$(B)/pic/%.o: %.c ext/*.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -fPIC $(EXT_DEFS) $(EXT_CFLAGS) -c $< -o $@
$(B)/pic/schema.o: $(B)/schema.c
	$(CC) $(CFLAGS) $(WARN) -fPIC $(EXT_DEFS) $(EXT_CFLAGS) -c $< -o $@
$(B)/core/%.o: %.c ext/*.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -DSQLITE_CORE $(EXT_DEFS) $(EXT_CFLAGS) -c $< -o $@
$(B)/core/schema.o: $(B)/schema.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -DSQLITE_CORE $(EXT_DEFS) $(EXT_CFLAGS) -c $< -o $@
$(B)/rt/%.o: %.c ext/*.h $(wildcard runtime/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -fPIC -DSQLITE_CORE $(RT_DEFS) $(RT_CFLAGS) -c $< -o $@

$(B)/djinn.so: $(PIC_OBJS)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(LDFLAGS) $(EXT_LIBS)

# Full RELRO (-z now): every symbol is bound once at start, so the
# worker's forked builds inherit the bindings instead of each resolving
# (and copying the pages of) what it calls first; the GOT is read-only.
$(B)/djinn-lua: $(EXE_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -Wl,-z,relro,-z,now $(EXE_LIBS) -lm

# The keeper of the os driver's jobs (proc.spawn{reap = true}): a program
# of its own, libc only, started by djinn-lua with vfork and exec. Linked
# statically (a static PIE, still placed at random): it starts once per
# job, and the dynamic loader's work (mapping and relocating libc) was
# half its CPU time. Not under the sanitizers, which need the dynamic
# loader (make asan sets KEEPER_STATIC empty).
KEEPER_STATIC ?= -static-pie
$(B)/djinn-keeper: runtime/keeper/keeper.c runtime/proc_spawn.c runtime/proc_spawn.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -D_DEFAULT_SOURCE -D_GNU_SOURCE -Iruntime -o $@ \
		runtime/keeper/keeper.c runtime/proc_spawn.c $(LDFLAGS) $(KEEPER_STATIC)

# Each module has its own copy of runtime/util.c's helpers (-Bsymbolic:
# its calls stay inside it); Lua and SQLite come from djinn-lua's process.
MOD_PKGS_ssh  = libssh
MOD_PKGS_http = libcurl libcrypto
MOD_PKGS_tar  = libarchive
$(B)/mod/ssh.so: $(SSH_OBJS)
$(B)/mod/http.so: $(HTTP_OBJS)
$(B)/mod/tar.so: $(TAR_OBJS)
$(MODS): $(B)/mod/%.so: $(B)/rt/runtime/util.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -Wl,-Bsymbolic -o $@ $^ $(LDFLAGS) \
		$(shell $(PKG_CONFIG) --libs $(MOD_PKGS_$*))

$(B)/tests/%: tests/c/%.c tests/c/tap.h $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -DSQLITE_CORE $(RT_DEFS) -Itests/c $(EXT_CFLAGS) \
		-o $@ $< $(CORE_OBJS) $(LDFLAGS) $(EXT_LIBS) -lm

$(B)/sql_runner: tests/sql_runner.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -DSQLITE_CORE $(RT_DEFS) $(EXT_CFLAGS) \
		-o $@ $< $(CORE_OBJS) $(LDFLAGS) $(EXT_LIBS) -lm

TEST_BINS = all $(CTESTS) $(if $(wildcard tests/sql_runner.c),$(B)/sql_runner)

test: $(TEST_BINS)
	@sh tests/run.sh $(B)

check: $(TEST_BINS)
	@QUICK=1 sh tests/run.sh $(B)

SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan:
	$(MAKE) B=build-asan CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" KEEPER_STATIC= test

valgrind: $(TEST_BINS)
	@VALGRIND=1 sh tests/run.sh $(B)

FUZZ_TIME ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_POSIX_C_SOURCE=200809L -Iext
$(B)/fuzz/qcow2_fuzz: tests/fuzz/qcow2_fuzz.c ext/qcow2.c ext/qcow2.h ext/jsonstr.c ext/jsonstr.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(shell $(PKG_CONFIG) --cflags zlib libzstd jansson) -o $@ \
		tests/fuzz/qcow2_fuzz.c ext/qcow2.c ext/jsonstr.c \
		$(shell $(PKG_CONFIG) --libs zlib libzstd jansson)
# The JSON string escaper against jansson (differential: a difference aborts).
$(B)/fuzz/jsonstr_fuzz: tests/fuzz/jsonstr_fuzz.c ext/jsonstr.c ext/jsonstr.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(shell $(PKG_CONFIG) --cflags jansson) -o $@ \
		tests/fuzz/jsonstr_fuzz.c ext/jsonstr.c $(shell $(PKG_CONFIG) --libs jansson)
# The Lua parsers (manifest, driver.conf, djinn.yaml): one harness, three
# entry points, linked with the C modules they use (not main.c).
# The manifest checks namespaces with the registry's own rule
# (djinn.registry.check_namespace), so the extension is linked too.
LUA_FUZZ_SRCS = tests/fuzz/lua_fuzz.c runtime/l_yaml.c runtime/l_fs.c runtime/util.c \
	runtime/l_registry.c $(EXT_SRCS) $(B)/schema.c
LUA_FUZZ_PKGS = lua5.4 yaml-0.1 $(EXT_PKGS)
$(B)/fuzz/manifest_fuzz: FUZZ_TARGET = 1
$(B)/fuzz/conf_fuzz: FUZZ_TARGET = 2
$(B)/fuzz/yaml_fuzz: FUZZ_TARGET = 3
$(B)/fuzz/manifest_fuzz $(B)/fuzz/conf_fuzz $(B)/fuzz/yaml_fuzz: $(LUA_FUZZ_SRCS) runtime/djinn.h runtime/util.h ext/*.h tests/fuzz/lua_fuzz.lua
	@mkdir -p $(@D)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
		-D_DEFAULT_SOURCE -D_GNU_SOURCE -DSQLITE_CORE -Iruntime -Iext -I$(B) \
		-DFUZZ_TARGET=$(FUZZ_TARGET) \
		-DFUZZ_LUADIR='"$(CURDIR)/lua"' \
		-DFUZZ_SCRIPT='"$(CURDIR)/tests/fuzz/lua_fuzz.lua"' \
		$(shell $(PKG_CONFIG) --cflags $(LUA_FUZZ_PKGS)) -o $@ \
		$(LUA_FUZZ_SRCS) $(shell $(PKG_CONFIG) --libs $(LUA_FUZZ_PKGS)) -lm
# The registry on hostile database files: the extension's sources with
# SQLITE_CORE (as CORE_OBJS), UBSan fatal, and the calls that change files
# wrapped so that a damaged registry cannot make the harness touch anything
# outside its private directory (see tests/fuzz/registry_fuzz.c). Its seeds
# are generated (real sqlite3 shell + $(B)/djinn.so), not committed.
REG_FUZZ_SRCS = tests/fuzz/registry_fuzz.c $(EXT_SRCS) $(B)/schema.c
REG_FUZZ_WRAP = -Wl,--wrap=unlink,--wrap=unlinkat,--wrap=rename \
	-Wl,--wrap=renameat,--wrap=link,--wrap=linkat,--wrap=mkdir
$(B)/fuzz/registry_fuzz: $(REG_FUZZ_SRCS) ext/*.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fno-sanitize-recover=undefined -DSQLITE_CORE \
		-I$(B) $(EXT_CFLAGS) $(REG_FUZZ_WRAP) -o $@ $(REG_FUZZ_SRCS) \
		$(EXT_LIBS)
$(B)/fuzz/corpus-registry/.stamp: tests/fuzz/mkcorpus-registry.sh $(B)/djinn.so
	sh tests/fuzz/mkcorpus-registry.sh $(@D) $(B)/djinn
	@touch $@
FUZZERS = qcow2_fuzz manifest_fuzz conf_fuzz yaml_fuzz registry_fuzz jsonstr_fuzz
fuzz: $(FUZZERS:%=$(B)/fuzz/%) $(B)/fuzz/corpus-registry/.stamp
	sh tests/fuzz/run.sh $(B) $(FUZZ_TIME) $(FUZZERS)

lint:
	cppcheck --enable=warning,performance,portability --error-exitcode=1 \
		--inline-suppr --std=c11 --quiet -D__GNUC__ -Iext ext runtime

format-check:
	clang-format --dry-run -Werror ext/*.c ext/*.h $(wildcard runtime/*.c runtime/*.h runtime/keeper/*.c)

# What install copies, as paths relative to the source tree: every Lua
# module (in its folder), the examples, and the image builder
# (tests/vm/build-image.sh, as share/djinn/vm/build-image.sh).
LUA_FILES  = $(shell find lua -name '*.lua' | sort)
EX_FILES   = $(shell find examples -type f | sort)
VM_FILES   = tests/vm/build-image.sh
SHARE      = $(DESTDIR)$(PREFIX)/share
MAN1       = $(SHARE)/man/man1
BASHCOMP   = $(SHARE)/bash-completion/completions
INST_FILES = $(DESTDIR)$(PREFIX)/bin/djinn-lua \
	$(DESTDIR)$(PREFIX)/lib/djinn/djinn.so \
	$(DESTDIR)$(PREFIX)/lib/djinn/djinn-keeper \
	$(MODS:$(B)/mod/%=$(DESTDIR)$(PREFIX)/lib/djinn/%) \
	$(LUA_FILES:lua/%=$(SHARE)/djinn/lua/%) \
	$(EX_FILES:%=$(SHARE)/djinn/%) \
	$(VM_FILES:tests/vm/%=$(SHARE)/djinn/vm/%) \
	$(MAN1)/djinn-lua.1 $(BASHCOMP)/djinn-lua

install: all
	install -D -m 755 $(B)/djinn.so $(DESTDIR)$(PREFIX)/lib/djinn/djinn.so
	install -D -m 755 $(B)/djinn-lua $(DESTDIR)$(PREFIX)/bin/djinn-lua
	install -D -m 755 $(B)/djinn-keeper $(DESTDIR)$(PREFIX)/lib/djinn/djinn-keeper
	for f in $(MODS:$(B)/mod/%=%); do \
		install -D -m 755 $(B)/mod/$$f $(DESTDIR)$(PREFIX)/lib/djinn/$$f || exit 1; done
	for f in $(LUA_FILES:lua/%=%); do \
		install -D -m 644 lua/$$f $(SHARE)/djinn/lua/$$f || exit 1; done
	for f in $(EX_FILES); do \
		install -D -m 644 $$f $(SHARE)/djinn/$$f || exit 1; done
	for f in $(VM_FILES:tests/vm/%=%); do \
		install -D -m 755 tests/vm/$$f $(SHARE)/djinn/vm/$$f || exit 1; done
	install -D -m 644 docs/djinn-lua.1 $(MAN1)/djinn-lua.1
	install -D -m 644 $(B)/djinn-lua.bash $(BASHCOMP)/djinn-lua

# Removes the files install copied, then the directories of ours that are
# left empty (share/djinn, lib/djinn); nothing else.
uninstall:
	rm -f $(INST_FILES)
	-[ ! -d $(SHARE)/djinn ] || find $(SHARE)/djinn -depth -type d -empty -delete
	-rmdir $(DESTDIR)$(PREFIX)/lib/djinn 2>/dev/null

clean:
	rm -rf build build-asan

# Benchmarks (not part of `make test`, which has no timing assertions):
# bench/run.sh runs every side-by-side bench under bench/ and prints one
# summary table (BENCH=NAME for one, RUNS=N runs of each side).
# build/qcow2_bench is the validator's, driven by bench/qcow2-bench.sh.
.PHONY: bench
bench: all $(B)/qcow2_bench
	bash bench/run.sh $(B)
$(B)/qcow2_bench: bench/qcow2_bench.c ext/qcow2.c ext/qcow2.h ext/jsonstr.c ext/jsonstr.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -D_POSIX_C_SOURCE=200809L -Iext \
		$(shell $(PKG_CONFIG) --cflags zlib libzstd jansson) -o $@ \
		bench/qcow2_bench.c ext/qcow2.c ext/jsonstr.c \
		$(LDFLAGS) $(shell $(PKG_CONFIG) --libs zlib libzstd jansson)

# The build queue in one command: a private Redis, two workers, the
# os-driver examples submitted and one followed (examples/queue-demo.sh).
.PHONY: queue-demo
queue-demo: all
	sh examples/queue-demo.sh $(B)

# The VM demo: build everything, build the tiny image once (cached in
# $(B)/vm), register it as demo/tiny in the default registry (skipped when
# the same file is already registered) and run examples/hello.yml in it.
# Needs qemu-system-x86 and the packages tests/vm/build-image.sh lists.
.PHONY: demo
demo: all
	bash tests/vm/build-image.sh $(B)/vm
	$(B)/djinn-lua examples/demo-register.lua $(B)/vm/djinn-tiny.qcow2 demo tiny
	$(B)/djinn-lua run --driver-config examples/vm.conf --objects examples/files \
		--artifacts $(B)/demo-artifacts examples/hello.yml
	@echo "artifacts in $(B)/demo-artifacts:" && ls -l $(B)/demo-artifacts

# VM benchmark (not part of `make test`): boot and per-job overheads.
.PHONY: vm-bench
vm-bench: all
	bash bench/vm-bench.sh $(B)

# Real base images (issue 14, part 3): build Debian 12 from the host's
# mirror without mounts (examples/images/debian-12.sh; kept in
# build/images by its stamp, packages cached beside it) and install it as
# Djinn's base image debian/12 with the alias debian/stable under
# driver.conf's disks (DISKS=DIR overrides; DRIVER_CONFIG=FILE names
# another driver.conf), then run the image-contract check on it (image
# check --boot; the verdict is recorded in the default registry).
# tests/e2e/debian_image.sh checks all of it in `make test`.
.PHONY: images
images: all
	bash examples/images/debian-12.sh build/images/debian-12.qcow2
	$(B)/djinn-lua examples/images/install-base.lua build/images/debian-12.qcow2 \
		debian/12 debian/stable $(if $(DISKS),--disks $(DISKS)) \
		$(if $(DRIVER_CONFIG),--driver-config $(DRIVER_CONFIG))
	$(if $(DISKS),printf 'driver qemu {\n    disks "%s"\n}\n' '$(DISKS)' > build/images/driver.conf)
	$(B)/djinn-lua image check --boot debian/stable \
		$(if $(DISKS),--driver-config build/images/driver.conf,$(if $(DRIVER_CONFIG),--driver-config $(DRIVER_CONFIG)))
