# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install dev bench sanitize _sanitize clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py src/kubehawk/_linescreen.c src/kubehawk/_needles.c
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml setup.py src/kubehawk/_linescreen.c src/kubehawk/_needles.c
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/kubehawk detect --format table --min-level medium --config examples/kubehawk.yaml examples/sample-audit.log

test: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory sanitize

# The C extensions read untrusted lines: their tests again, built with AddressSanitizer and UBSan, each
# Python object in its own malloc'd block (PYTHONMALLOC=malloc), so that any read past a line is caught.
ASAN_DIR := build/asan
sanitize: dev
	@if ! command -v gcc >/dev/null || [ ! -e "$$(gcc -print-file-name=libasan.so)" ]; then \
	  echo "sanitize: skipped, no gcc with AddressSanitizer here"; exit 0; fi; $(MAKE) --no-print-directory _sanitize

_sanitize:
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR) && cp -r src/kubehawk $(ASAN_DIR)/ && rm -f $(ASAN_DIR)/kubehawk/*.so
	for m in _linescreen _needles; do \
	  gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" src/kubehawk/$$m.c \
	    -o $(ASAN_DIR)/kubehawk/$$m$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') || exit 1; \
	done
	PYTHONPATH=$(ASAN_DIR) PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  sh -c '$(BIN)/python -c "import kubehawk._linescreen as m; assert \"$(ASAN_DIR)/\" in m.__file__, m.__file__" && \
	         $(BIN)/python -m pytest -q -p no:cacheprovider tests/rules/test_linescreen.py tests/test_needles.py'

lint: dev
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/bench_detect.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
