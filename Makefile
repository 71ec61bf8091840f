# attend: the two-command start. `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD   ?= build
JOBS    ?= $(shell nproc)
WERROR  ?= 0
PYTHON  ?= /usr/bin/python3
CMAKE_FLAGS ?=

SAN_BUILD ?= build-sanitize
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: demo test test-sanitize fuzz bench build deps deps-test configure install clean help

help:
	@echo "make demo   install what is missing, build, train the dates model into runs/dates"
	@echo "make test   install what is missing, build, run every test"
	@echo "make build  build the library, the attend CLI and the tests"
	@echo "make bench  build and run the benchmarks (attend beside PyTorch)"
	@echo "make test-sanitize  every test under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make fuzz   run each libFuzzer target for FUZZ_SECONDS (default 60)"

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

configure:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DATTEND_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) $(CMAKE_FLAGS) > /dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: train the default model (bi-GRU encoder, GRU decoder, additive attention) on the
# built-in dates task, report held-out exact match, draw one alignment, and write the HTML report.
demo: deps
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_TESTS=OFF"
	$(BUILD)/attend train --task dates --out runs/dates --max-minutes 6 --eval-every 100 --overwrite
	$(BUILD)/attend eval --model runs/dates --test runs/dates/test.tsv
	$(BUILD)/attend translate --model runs/dates "the 3rd of march, 1999" "Wednesday, November 25, 2026" "11/25/26"
	$(BUILD)/attend align --model runs/dates --out runs/dates/alignment.png "the 25th of november, 2026"
	$(BUILD)/attend report --model runs/dates --data runs/dates/test.tsv --test runs/dates/test.tsv \
	  --out runs/dates/report.html

test: deps-test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_TESTS=ON"
	cd $(BUILD) && OMP_WAIT_POLICY=PASSIVE ctest --output-on-failure -j $(JOBS)

# The C++ suite under ASan + UBSan (any report fails the run), then the Python cases that pass
# extreme sizes, integers and NaN (tests/python/test_reliability.py) through the sanitized module,
# with the sanitizer runtimes preloaded into Debian's uninstrumented interpreter. Not in it: the
# PyTorch oracle (torch under a preloaded ASan is not a supported setup) and the install test
# (its consumer is a plain build).
SAN_RUNTIME = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libubsan.so)
test-sanitize: deps-test
	@$(MAKE) --no-print-directory build BUILD=$(SAN_BUILD) CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DATTEND_SANITIZE=address,undefined -DATTEND_BUILD_PYTHON=ON -DATTEND_BUILD_TESTS=ON"
	cd $(SAN_BUILD) && OMP_WAIT_POLICY=PASSIVE ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -E '^(Package|Python)\.'
	LD_PRELOAD="$(SAN_RUNTIME)" ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ATTEND_PYTHONPATH=$(SAN_BUILD)/python \
	  ATTEND_CLI=$(SAN_BUILD)/attend OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/python/test_reliability.py

# libFuzzer (clang, with ASan and UBSan) on every reader of untrusted input: safetensors,
# config.json, vocabularies, TSV, the command line. Seeds in fuzz/corpus/.
fuzz:
	@scripts/install-deps.sh fuzz
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DATTEND_FUZZ=ON \
	  -DATTEND_BUILD_TESTS=OFF -DATTEND_BUILD_PYTHON=OFF > /dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Speed, side by side with PyTorch (docs/benchmarks.md).
bench: deps-test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_BENCH=ON"
	$(BUILD)/bench/gemm_blocking --benchmark_color=false
	$(BUILD)/bench/gemv_cache --benchmark_color=false
	OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/layer_norm_bench --benchmark_color=false
	OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/mechanism_step_bench --benchmark_color=false
	$(PYTHON) bench/seq2seq.py --attend $(BUILD)/bench/seq2seq_bench
	$(PYTHON) bench/transformer.py --attend $(BUILD)/bench/transformer_bench
	$(PYTHON) bench/sdpa.py --attend $(BUILD)/bench/sdpa_bench
	OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/sdpa_decode_bench 1
	OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/sdpa_decode_bench 2

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

clean:
	rm -rf $(BUILD)
