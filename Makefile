# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install dev bench sanitize _sanitize clean browser schemas screenshot

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

test: dev browser schemas
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

# The report tests open the report in a real headless browser: Debian's chromium and its chromedriver.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "browser: installing chromium and chromium-driver (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "browser: *** apt-get install chromium chromium-driver FAILED: the browser tests will SKIP ***"; \
	else echo "browser: *** not root or no apt-get: cannot install chromium; the browser tests will SKIP ***"; fi

# The ECS field list Elastic publishes (ecs_flat of the npm package @elastic/ecs: no PyPI package
# carries it), as JSON for the tests that check every ECS field name kubehawk writes. The OCSF
# schema comes from PyPI (ocsf-json-schema, in the dev extras).
ECS_NPM := @elastic/ecs@9.4.0
SCHEMAS := build/schemas
schemas: $(SCHEMAS)/ecs_flat.json
$(SCHEMAS)/ecs_flat.json:
	@if ! command -v npm >/dev/null || ! command -v node >/dev/null; then \
	  echo "schemas: *** no npm/node here: the ECS field-name tests will SKIP ***"; exit 0; fi; \
	rm -rf $(SCHEMAS)/ecs && mkdir -p $(SCHEMAS)/ecs && cd $(SCHEMAS)/ecs && \
	npm pack --silent $(ECS_NPM) >/dev/null && tar xzf elastic-ecs-*.tgz && \
	node -e 'process.stdout.write(JSON.stringify(require("./package/generated/ecs_flat.js").EcsFlat))' > ../ecs_flat.json.tmp && \
	mv ../ecs_flat.json.tmp ../ecs_flat.json

# The README's screenshot of the report, taken by the browser test itself.
screenshot: dev browser
	KUBEHAWK_SCREENSHOT_TO=docs/report.png $(BIN)/python -m pytest -q tests/report/test_report_browser.py -k sample

lint: dev
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/bench_detect.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
