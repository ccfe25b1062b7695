# sbx front door. `make` builds, `make test` runs the whole suite twice
# (normal build and ASan+UBSan build), `make run` runs the main demo.
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson
NINJA      ?= ninja
MESON_FLAGS = -Dwerror=true

.PHONY: all deps build build-asan test run bench install fuzz clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja: | deps
	$(MESON) setup $(BUILD) $(MESON_FLAGS)

$(ASAN_BUILD)/build.ninja: | deps
	$(MESON) setup $(ASAN_BUILD) $(MESON_FLAGS) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	$(NINJA) -C $(ASAN_BUILD)

# Both suites run even if the first fails; the summary decides the status.
test: build build-asan
	@./scripts/test-prep.sh $(CURDIR)
	@echo "== normal build"; $(MESON) test -C $(BUILD) --print-errorlogs --num-processes 2 || true
	@echo "== ASan+UBSan build"; $(MESON) test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 || true
	@./scripts/test-summary.py $(BUILD) $(ASAN_BUILD)

run: build
	@./scripts/run-demo.sh $(BUILD)

bench: build
	@for b in $$(find $(BUILD)/bench -maxdepth 2 -type f -name 'bench_*' -perm -u+x | sort); do \
		echo "== $$b"; "$$b" || exit 1; done

install: build
	$(MESON) install -C $(BUILD)

build-fuzz/build.ninja: | deps
	CC=clang $(MESON) setup build-fuzz -Dfuzz=enabled -Dtests=false -Db_lundef=false \
		-Db_sanitize=address,undefined -Dc_args=-fsanitize=fuzzer-no-link

# libFuzzer binaries land in build-fuzz/fuzz/; the whole library is built
# with coverage instrumentation. Run one with e.g.
#   build-fuzz/fuzz/fuzz_policyfile -max_total_time=60 CORPUS_DIR
fuzz: deps build-fuzz/build.ninja
	$(NINJA) -C build-fuzz

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
