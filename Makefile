# A thin wrapper around Meson and Ninja; see README.md.
#
#   make          build (build/receiptd, build/receipt)
#   make run      install what is missing, build, serve examples/site
#   make check    install what is missing, build, run every test
#   make bench    side-by-side benchmark against nginx (bench/README.md)
#   make bench-scale  the ledger at 10 million deliveries: size, reports, admin API
#                 (bench/README.md; long)
#   make fuzz     run every libFuzzer harness for FUZZ_SECONDS each
#   make install  install into the configured prefix (DESTDIR= stages it)
#   make format   clang-format the C sources in place
#   make man      write the OPTIONS of docs/receiptd.8 and dist/receiptd.conf from
#                 the option table
#   make clean    remove the build directories

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
MESON_OPTS ?=
LISTEN     ?= 127.0.0.1:8080
ADMIN      ?= 127.0.0.1:8091
STATE_DIR  ?= var/state

ifeq ($(CI),true)
MESON_OPTS += -Dwerror=true
endif

.PHONY: all deps build run check test bench bench-scale fuzz install format format-check man clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	@if [ -e $(BUILD)/cli/receipt ]; then ln -sf cli/receipt $(BUILD)/receipt; fi

$(ASAN_BUILD)/build.ninja:
	CC=clang meson setup $(ASAN_BUILD) $(MESON_OPTS) -Db_sanitize=address,undefined -Db_lundef=false

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

run: deps build
	@mkdir -p $(dir $(STATE_DIR)) && mkdir -p -m 0700 $(STATE_DIR)
	$(BUILD)/receiptd --root examples/site --listen $(LISTEN) --admin-listen $(ADMIN) \
		--state-dir $(STATE_DIR)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false -Db_lundef=false

check: deps build $(ASAN_BUILD)/build.ninja $(FUZZ_BUILD)/build.ninja node_modules/.package-lock.json
	@$(MAKE) --no-print-directory format-check
	ninja -C $(ASAN_BUILD)
	ninja -C $(FUZZ_BUILD)
	@if [ -e $(ASAN_BUILD)/cli/receipt ]; then ln -sf cli/receipt $(ASAN_BUILD)/receipt; fi
	FUZZ_BUILD=$(FUZZ_BUILD) tests/run-all $(BUILD) $(ASAN_BUILD)

test: check

bench: deps build
	tests/with-postgres bench/run

bench-scale: deps build
	tests/with-postgres bench/report-scale

# Programs, libreceipt with its header and pkg-config file, man pages, the
# systemd unit and sysusers.d entry, the sample configuration (kept when
# one is installed already). The prefix is Meson's (/usr/local unless
# configured: meson configure build -Dprefix=/usr).
install: build
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(DESTDIR))

# Every libFuzzer harness for FUZZ_SECONDS each; corpora under $(FUZZ_BUILD)/corpus.
fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
		[ -f "$$f" ] && [ -x "$$f" ] || continue; \
		name=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$name; \
		echo "== $$name"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_BUILD)/corpus/$$name \
			2>&1 | grep -E '^(stat::number_of_executed_units|==|SUMMARY)' || exit 1; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

man: build
	scripts/update-man $(BUILD)

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h') && echo "clang-format: the tree is formatted"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
