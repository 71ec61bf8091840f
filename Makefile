# attend: the two-command start. `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD   ?= build
JOBS    ?= $(shell nproc)
WERROR  ?= 0
PYTHON  ?= /usr/bin/python3
CMAKE_FLAGS ?=

.PHONY: demo test bench build deps deps-test configure install clean help

help:
	@echo "make demo   install what is missing, build, train the dates model into runs/dates"
	@echo "make test   install what is missing, build, run every test"
	@echo "make build  build the library, the attend CLI and the tests"
	@echo "make bench  build and run the benchmarks (attend beside PyTorch)"

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

configure:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DATTEND_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) $(CMAKE_FLAGS) > /dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: train the default model (bi-GRU encoder, GRU decoder, additive attention) on the
# built-in dates task, report held-out exact match, and draw one alignment.
demo: deps
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_TESTS=OFF"
	$(BUILD)/attend train --task dates --out runs/dates --max-minutes 6
	$(BUILD)/attend eval --model runs/dates --test runs/dates/test.tsv
	$(BUILD)/attend translate --model runs/dates "the 3rd of march, 1999" "Wednesday, November 25, 2026" "11/25/26"
	$(BUILD)/attend align --model runs/dates --out runs/dates/alignment.png "the 25th of november, 2026"

test: deps-test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_TESTS=ON"
	cd $(BUILD) && OMP_WAIT_POLICY=PASSIVE ctest --output-on-failure -j $(JOBS)

# Speed, side by side with PyTorch (docs/benchmarks.md).
bench: deps-test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DATTEND_BUILD_BENCH=ON"
	$(BUILD)/bench/gemm_blocking
	$(PYTHON) bench/seq2seq.py --attend $(BUILD)/bench/seq2seq_bench

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

clean:
	rm -rf $(BUILD)
